//! Prologue and epilogue: the function's stack frame.
//!
//! Frame, from the caller's `sp` down: `ra` (only if the function calls), `s0`, the
//! callee-saved registers the body uses, padding to 16 bytes, then the BPF stack
//! (`stack_depth` rounded up to 16). `s0` holds the caller's `sp`; `s5` (R10) points at
//! the top of the BPF stack.

use crate::rv64::{IOp, Imm12, Inst, LoadOp, StoreOp, XReg};

use super::layout::Layout;
use super::regs::TCC;

/// The maximum number of tail calls, whose counter the prologue initialises.
pub const MAX_TAIL_CALL_CNT: i64 = 33;

/// What the frame must hold.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Callee-saved registers to save, `s0` first.
    saved: Vec<XReg>,
    /// Bytes of saved-register area (multiple of 16).
    save_area: i64,
    /// Bytes of BPF stack (multiple of 16).
    bpf_stack: i64,
}

fn imm(v: i64) -> Imm12 {
    Imm12::new(v).expect("frames are smaller than 2 KiB")
}

impl Frame {
    /// A frame saving `s0`, `ra` if `calls`, and `used` (callee-saved registers the body
    /// writes), with `stack_depth` bytes of BPF stack.
    pub fn new(used: &[XReg], calls: bool, stack_depth: u32) -> Frame {
        let mut saved = Vec::new();
        if calls {
            saved.push(XReg::RA);
        }
        saved.push(XReg::S0);
        saved.extend(used.iter().copied().filter(|r| *r != XReg::S0 && *r != XReg::RA));
        let save_area = (saved.len() as i64 * 8 + 15) & !15;
        let bpf_stack = (stack_depth as i64 + 15) & !15;
        Frame { saved, save_area, bpf_stack }
    }

    fn total(&self) -> i64 {
        self.save_area + self.bpf_stack
    }

    /// Two `nop`s (the kernel's fentry patch site), the tail-call counter initialisation,
    /// then the frame set-up.
    pub fn emit_prologue(&self, l: &mut Layout, uses_fp: bool) {
        l.push(Inst::nop());
        l.push(Inst::nop());
        l.push(Inst::I { op: IOp::Addi, rd: TCC, rs1: XReg::ZERO, imm: imm(MAX_TAIL_CALL_CNT) });
        let total = self.total();
        l.push(Inst::I { op: IOp::Addi, rd: XReg::SP, rs1: XReg::SP, imm: imm(-total) });
        for (k, r) in self.saved.iter().enumerate() {
            l.push(Inst::Store {
                op: StoreOp::Sd,
                rs2: *r,
                rs1: XReg::SP,
                imm: imm(total - 8 * (k as i64 + 1)),
            });
        }
        l.push(Inst::I { op: IOp::Addi, rd: XReg::S0, rs1: XReg::SP, imm: imm(total) });
        if uses_fp {
            l.push(Inst::I { op: IOp::Addi, rd: XReg::S5, rs1: XReg::SP, imm: imm(self.bpf_stack) });
        }
    }

    /// Restores the saved registers and `sp`, moves R0 into `a0` sign-extended from 32
    /// bits (the RISC-V ABI for the `unsigned int` a BPF program returns), and returns.
    pub fn emit_epilogue(&self, l: &mut Layout) {
        l.start_epilogue();
        let total = self.total();
        for (k, r) in self.saved.iter().enumerate() {
            l.push(Inst::Load {
                op: LoadOp::Ld,
                rd: *r,
                rs1: XReg::SP,
                imm: imm(total - 8 * (k as i64 + 1)),
            });
        }
        l.push(Inst::I { op: IOp::Addi, rd: XReg::SP, rs1: XReg::SP, imm: imm(total) });
        l.push(Inst::I { op: IOp::Addiw, rd: XReg::A0, rs1: XReg::A5, imm: Imm12::ZERO });
        l.push(Inst::Jalr { rd: XReg::ZERO, rs1: XReg::RA, imm: Imm12::ZERO });
    }
}
