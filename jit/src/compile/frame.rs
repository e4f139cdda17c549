//! Prologue and epilogue: a function's stack frame.
//!
//! Frame, from the caller's `sp` (= `s0`) down: the counter slot at `s0 - 8` (see
//! [`super::scheme`]), `ra` if the function calls, `s0`, the callee-saved registers the
//! body uses, padding to 16 bytes, then the BPF stack (its depth rounded up to 16).
//! `s5` (R10) points at the top of the BPF stack.

use crate::rv64::{IOp, Imm12, Inst, LoadOp, StoreOp, XReg};

use super::layout::Layout;
use super::scheme::Scheme;

/// What a function's frame must hold.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Callee-saved registers to save, in order.
    saved: Vec<XReg>,
    /// Bytes of counter slot and saved registers (multiple of 16).
    save_area: i64,
    /// Bytes of BPF stack (multiple of 16).
    bpf_stack: i64,
}

fn imm(v: i64) -> Imm12 {
    Imm12::new(v).expect("frames are smaller than 2 KiB")
}

impl Frame {
    /// A frame saving `ra` if `calls`, `s0`, and `used` (callee-saved registers the body
    /// writes), with `stack_depth` bytes of BPF stack.
    pub fn new(used: &[XReg], calls: bool, stack_depth: u32) -> Frame {
        let mut saved = Vec::new();
        if calls {
            saved.push(XReg::RA);
        }
        saved.push(XReg::S0);
        saved.extend(used.iter().copied().filter(|r| *r != XReg::S0 && *r != XReg::RA));
        let save_area = (8 + saved.len() as i64 * 8 + 15) & !15;
        let bpf_stack = (stack_depth as i64 + 15) & !15;
        Frame { saved, save_area, bpf_stack }
    }

    fn total(&self) -> i64 {
        self.save_area + self.bpf_stack
    }

    /// Where saved register `k` lives, relative to `sp` (below the counter slot).
    fn save_offset(&self, k: usize) -> i64 {
        self.total() - 16 - 8 * k as i64
    }

    /// Two `nop`s (the kernel's fentry patch site), the counter initialisation when
    /// `entry` (the main function of a program: tail calls jump past it), the frame, and
    /// what the scheme does once the frame exists.
    pub fn emit_prologue(&self, l: &mut Layout, entry: bool, scheme: Scheme, uses_fp: bool) {
        l.push(Inst::nop());
        l.push(Inst::nop());
        if entry {
            scheme.emit_init(l);
        }
        let total = self.total();
        l.push(Inst::I { op: IOp::Addi, rd: XReg::SP, rs1: XReg::SP, imm: imm(-total) });
        for (k, r) in self.saved.iter().enumerate() {
            l.push(Inst::Store { op: StoreOp::Sd, rs2: *r, rs1: XReg::SP, imm: imm(self.save_offset(k)) });
        }
        l.push(Inst::I { op: IOp::Addi, rd: XReg::S0, rs1: XReg::SP, imm: imm(total) });
        if uses_fp {
            l.push(Inst::I { op: IOp::Addi, rd: XReg::S5, rs1: XReg::SP, imm: imm(self.bpf_stack) });
        }
        scheme.emit_after_frame(l);
    }

    /// Restores the saved registers and `sp`, touching nothing else (tail calls use this
    /// before jumping into their target).
    pub fn emit_restore(&self, l: &mut Layout) {
        for (k, r) in self.saved.iter().enumerate() {
            l.push(Inst::Load { op: LoadOp::Ld, rd: *r, rs1: XReg::SP, imm: imm(self.save_offset(k)) });
        }
        l.push(Inst::I { op: IOp::Addi, rd: XReg::SP, rs1: XReg::SP, imm: imm(self.total()) });
    }

    /// The epilogue: what the scheme does before a return, restore, move R0 into `a0`
    /// sign-extended from 32 bits (the RISC-V ABI for the `unsigned int` a BPF program
    /// returns), and return.
    pub fn emit_epilogue(&self, l: &mut Layout, scheme: Scheme) {
        l.start_epilogue();
        scheme.emit_before_return(l);
        self.emit_restore(l);
        if l.bugs.has(crate::bugs::Bug::A0NotSignExtended) {
            l.push(Inst::mv(XReg::A0, XReg::A5));
        } else {
            l.push(Inst::I { op: IOp::Addiw, rd: XReg::A0, rs1: XReg::A5, imm: Imm12::ZERO });
        }
        l.push(Inst::Jalr { rd: XReg::ZERO, rs1: XReg::RA, imm: Imm12::ZERO });
    }
}
