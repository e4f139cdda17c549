//! Builders and runners shared by the tests of the reference's modules.

use bpf::{AluOp, Engine, Input, Insn, Operand, Outcome, Program, Reg, RunResult, Width};

use super::Reference;

/// `dst = imm ll`.
pub(super) fn lddw(dst: Reg, imm: u64) -> Insn {
    Insn::LdImm64 { dst, pseudo: 0, imm }
}

/// 64-bit `dst = imm`.
pub(super) fn mov64(dst: Reg, imm: i32) -> Insn {
    alu64(AluOp::Mov, dst, imm)
}

/// 64-bit `dst = src`.
pub(super) fn movx(dst: Reg, src: Reg) -> Insn {
    alux(Width::W64, AluOp::Mov, dst, src)
}

/// 64-bit `dst op= imm`.
pub(super) fn alu64(op: AluOp, dst: Reg, imm: i32) -> Insn {
    Insn::Alu { width: Width::W64, op, dst, src: Operand::Imm(imm) }
}

/// 32-bit `wdst op= imm`.
pub(super) fn alu32(op: AluOp, dst: Reg, imm: i32) -> Insn {
    Insn::Alu { width: Width::W32, op, dst, src: Operand::Imm(imm) }
}

/// `dst op= src` at `width`.
pub(super) fn alux(width: Width, op: AluOp, dst: Reg, src: Reg) -> Insn {
    Insn::Alu { width, op, dst, src: Operand::Reg(src) }
}

/// Runs a checked program on an input with the default reference; panics on "cannot judge".
pub(super) fn run_prog(prog: &Program, input: &Input) -> Outcome {
    match Reference::new().run(prog, input) {
        RunResult::Ran(out) => out,
        RunResult::CannotJudge(why) => panic!("cannot judge: {why}"),
        RunResult::Rejected(log) => panic!("rejected: {log}"),
    }
}

/// Runs instructions (stack depth inferred, as [`Program::new`] does) on an input.
pub(super) fn run_on(insns: Vec<Insn>, input: Input) -> Outcome {
    let prog = Program::new(insns).expect("test program is valid");
    run_prog(&prog, &input)
}

/// Runs instructions (stack depth inferred) without a context.
pub(super) fn run(insns: Vec<Insn>) -> Outcome {
    run_on(insns, Input::none())
}

/// Runs instructions with the full 512-byte stack on an input.
pub(super) fn run512_on(insns: Vec<Insn>, input: Input) -> Outcome {
    let prog = Program::with_stack_depth(insns, bpf::MAX_STACK).expect("test program is valid");
    run_prog(&prog, &input)
}

/// Runs instructions with the full 512-byte stack without a context.
pub(super) fn run512(insns: Vec<Insn>) -> Outcome {
    run512_on(insns, Input::none())
}

/// The R0 a program returns without a context; panics on a fault.
pub(super) fn r0_of(insns: Vec<Insn>) -> u64 {
    match run(insns.clone()).result {
        Ok(v) => v,
        Err(f) => panic!("{f} in {insns:?}"),
    }
}
