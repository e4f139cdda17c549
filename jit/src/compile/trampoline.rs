//! BPF trampolines, in the manner of the kernel's RV64 `arch_prepare_bpf_trampoline`: the
//! code an fentry/fexit attachment makes a traced function go through.
//!
//! Every function's prologue starts with two `nop`s (the patch site). Attaching rewrites
//! them into `auipc t0, hi; jalr t0, lo(t0)`: a call reaches the trampoline with `t0` =
//! the function's entry + 8 (the rest of its prologue) and `ra` = the caller's return
//! address. The trampoline saves the tail-call count (`a6`) and the arguments `a0`-`a4`,
//! runs each fentry program with `a0` pointing to the arguments, reloads the arguments and
//! the count, calls the function past its patch site, keeps the count, `a0` (the return
//! value the fexit programs see, after the arguments) and `a5` (BPF R0), runs each fexit
//! program, reloads `a5`, `a0` and the count, and returns to the caller. A tail call enters
//! its target past the patch site, so it never goes through a trampoline.

use bpf::set::ATTACH_ARGS;

use crate::bugs::Bug;
use crate::rv64::{split_hi_lo, IOp, Imm12, Inst, LoadOp, StoreOp, XReg};

use super::layout::{Label, Layout};
use super::regs::TCC;

/// The trampoline's own frame below the 16 bytes of `ra` and `s0` it saves for the traced
/// function's caller: the traced function's resume address (`t0`), `s0`, the count, the
/// arguments and the return value (`a0`), and `a5`; a multiple of 16.
const FRAME: i64 = (16 + 8 + 8 * (ATTACH_ARGS as i64 + 1) + 8 + 8 + 15) & !15;
/// Offsets from the trampoline's `s0`.
const TCC_OFF: i64 = -24;
const ARGS_OFF: i64 = TCC_OFF - 8 * (ATTACH_ARGS as i64 + 1);
/// The return value sits right after the arguments, where an fexit program reads it.
const RET_OFF: i64 = ARGS_OFF + 8 * ATTACH_ARGS as i64;
const R0_OFF: i64 = ARGS_OFF - 8;

fn imm(v: i64) -> Imm12 {
    Imm12::new(v).expect("the trampoline's frame is small")
}

fn sd(l: &mut Layout, rs2: XReg, base: XReg, off: i64) {
    l.push(Inst::Store { op: StoreOp::Sd, rs2, rs1: base, imm: imm(off) });
}

fn ld(l: &mut Layout, rd: XReg, base: XReg, off: i64) {
    l.push(Inst::Load { op: LoadOp::Ld, rd, rs1: base, imm: imm(off) });
}

fn addi(l: &mut Layout, rd: XReg, rs1: XReg, v: i64) {
    l.push(Inst::I { op: IOp::Addi, rd, rs1, imm: imm(v) });
}

const ARG_REGS: [XReg; ATTACH_ARGS] = [XReg::A0, XReg::A1, XReg::A2, XReg::A3, XReg::A4];

/// Runs the tracing programs whose entries are `progs`, each with `a0` = the arguments.
fn emit_invoke(l: &mut Layout, progs: &[u64]) {
    for &p in progs {
        addi(l, XReg::A0, XReg::S0, ARGS_OFF);
        l.call(Label::Abs(p));
    }
}

/// The trampoline of one traced function, calling `fentries` before it and `fexits` after
/// it (the guest addresses of the tracing programs' entries).
pub fn emit_trampoline(l: &mut Layout, fentries: &[u64], fexits: &[u64]) {
    let keeps_count = !l.bugs.has(Bug::TrampolineLosesTcc);
    // The traced function's caller's frame record, then the trampoline's own frame.
    addi(l, XReg::SP, XReg::SP, -16);
    sd(l, XReg::RA, XReg::SP, 8);
    sd(l, XReg::S0, XReg::SP, 0);
    addi(l, XReg::S0, XReg::SP, 16);
    addi(l, XReg::SP, XReg::SP, -FRAME);
    sd(l, XReg::T0, XReg::SP, FRAME - 8);
    sd(l, XReg::S0, XReg::SP, FRAME - 16);
    addi(l, XReg::S0, XReg::SP, FRAME);
    sd(l, TCC, XReg::S0, TCC_OFF);
    for (k, r) in ARG_REGS.into_iter().enumerate() {
        sd(l, r, XReg::S0, ARGS_OFF + 8 * k as i64);
    }
    emit_invoke(l, fentries);
    for (k, r) in ARG_REGS.into_iter().enumerate() {
        ld(l, r, XReg::S0, ARGS_OFF + 8 * k as i64);
    }
    if keeps_count {
        ld(l, TCC, XReg::S0, TCC_OFF);
    }
    // Call the traced function past its patch site.
    ld(l, XReg::T1, XReg::S0, -8);
    l.push(Inst::Jalr { rd: XReg::RA, rs1: XReg::T1, imm: Imm12::ZERO });
    sd(l, TCC, XReg::S0, TCC_OFF);
    sd(l, XReg::A0, XReg::S0, RET_OFF);
    sd(l, XReg::A5, XReg::S0, R0_OFF);
    emit_invoke(l, fexits);
    ld(l, XReg::A5, XReg::S0, R0_OFF);
    ld(l, XReg::A0, XReg::S0, RET_OFF);
    if keeps_count {
        ld(l, TCC, XReg::S0, TCC_OFF);
    }
    ld(l, XReg::T0, XReg::SP, FRAME - 8);
    ld(l, XReg::S0, XReg::SP, FRAME - 16);
    addi(l, XReg::SP, XReg::SP, FRAME);
    ld(l, XReg::RA, XReg::SP, 8);
    ld(l, XReg::S0, XReg::SP, 0);
    addi(l, XReg::SP, XReg::SP, 16);
    l.push(Inst::Jalr { rd: XReg::ZERO, rs1: XReg::RA, imm: Imm12::ZERO });
}

/// The two instructions that replace a function's patch site at `site` to call the
/// trampoline at `trampoline`: `auipc t0, hi; jalr t0, lo(t0)`, leaving `t0` = `site` + 8.
/// `None` when the trampoline is out of reach (more than 2 GiB away).
pub fn patch_site(site: u64, trampoline: u64) -> Option<[Inst; 2]> {
    let (hi, lo) = split_hi_lo(trampoline.wrapping_sub(site) as i64)?;
    Some([Inst::Auipc { rd: XReg::T0, imm: hi }, Inst::Jalr { rd: XReg::T0, rs1: XReg::T0, imm: lo }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_keeps_its_slots_apart_and_aligned() {
        assert_eq!(FRAME, 96, "88 bytes of slots, rounded up to 16");
        // t0 at -8, s0 at -16 (from the frame's top), then the count, the arguments with
        // the return value right after them, and a5 below.
        assert_eq!((TCC_OFF, ARGS_OFF, RET_OFF, R0_OFF), (-24, -72, -32, -80));
    }

    #[test]
    fn the_patch_site_calls_the_trampoline_and_resumes_after_itself() {
        for (site, target) in
            [(0x4000_0000u64, 0x4000_3000u64), (0x4000_1ff8, 0x4000_1000), (0x4000_0800, 0x4123_4fff)]
        {
            let [Inst::Auipc { rd: XReg::T0, imm: hi }, Inst::Jalr { rd: XReg::T0, rs1: XReg::T0, imm: lo }] =
                patch_site(site, target).expect("near")
            else {
                panic!("auipc t0 then jalr t0, t0 expected")
            };
            let reached = site as i64 + (hi.get() << 12) + lo.get();
            assert_eq!(reached as u64, target, "from {site:#x}");
        }
        assert!(patch_site(0x4000_0000, 0x1_4000_0000).is_none(), "4 GiB away");
    }
}
