//! Pre-decoding: a [`Program`] becomes a flat list of [`Op`]s, one per instruction, that the
//! executor runs with a single `match` per step.
//!
//! Decoding fixes everything the instruction word decides: the operation and width become
//! the variant, immediates are widened the way the instruction's width requires (sign-extended
//! to 64 bits for 64-bit ALU operations and jumps, the raw 32 bits for 32-bit ones), and jump
//! targets are resolved to instruction indexes. Every `Op` is 16 bytes.
//!
//! Instructions the reference does not model (calls, tail calls, map references), and `Insn`
//! values the wire format cannot express (which the verifier would reject), become
//! [`Op::Unsupported`]: the run stops with "cannot judge" only if execution reaches them.

use bpf::{AluOp, AtomicOp, ByteOrder, Cond, Insn, Operand, Program, Size, SxBits, Width};

/// One pre-decoded instruction. Registers are `u8` numbers (0 to 10), jump targets are
/// instruction indexes, memory offsets are the instruction's signed 16-bit offset.
///
/// Naming: `K` takes an immediate, `X` a register; `64`/`32` is the operation width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    // 64-bit ALU: (dst, imm sign-extended to 64) or (dst, src).
    Add64K(u8, u64),
    Add64X(u8, u8),
    Sub64K(u8, u64),
    Sub64X(u8, u8),
    Mul64K(u8, u64),
    Mul64X(u8, u8),
    Div64K(u8, u64),
    Div64X(u8, u8),
    Sdiv64K(u8, u64),
    Sdiv64X(u8, u8),
    Mod64K(u8, u64),
    Mod64X(u8, u8),
    Smod64K(u8, u64),
    Smod64X(u8, u8),
    Or64K(u8, u64),
    Or64X(u8, u8),
    And64K(u8, u64),
    And64X(u8, u8),
    Xor64K(u8, u64),
    Xor64X(u8, u8),
    Lsh64K(u8, u64),
    Lsh64X(u8, u8),
    Rsh64K(u8, u64),
    Rsh64X(u8, u8),
    Arsh64K(u8, u64),
    Arsh64X(u8, u8),
    /// `dst = imm`; also `lddw` with a plain constant, and `xor`/`sub` of a register with
    /// itself (always 0, and no longer an address).
    Mov64K(u8, u64),
    Mov64X(u8, u8),
    // 32-bit ALU: (dst, imm as its raw 32 bits) or (dst, src).
    Add32K(u8, u64),
    Add32X(u8, u8),
    Sub32K(u8, u64),
    Sub32X(u8, u8),
    Mul32K(u8, u64),
    Mul32X(u8, u8),
    Div32K(u8, u64),
    Div32X(u8, u8),
    Sdiv32K(u8, u64),
    Sdiv32X(u8, u8),
    Mod32K(u8, u64),
    Mod32X(u8, u8),
    Smod32K(u8, u64),
    Smod32X(u8, u8),
    Or32K(u8, u64),
    Or32X(u8, u8),
    And32K(u8, u64),
    And32X(u8, u8),
    Xor32K(u8, u64),
    Xor32X(u8, u8),
    Lsh32K(u8, u64),
    Lsh32X(u8, u8),
    Rsh32K(u8, u64),
    Rsh32X(u8, u8),
    Arsh32K(u8, u64),
    Arsh32X(u8, u8),
    Mov32K(u8, u64),
    Mov32X(u8, u8),
    // Unary operations on dst, and MOVSX (dst, src).
    Neg64(u8),
    Neg32(u8),
    Sx8To64(u8, u8),
    Sx16To64(u8, u8),
    Sx32To64(u8, u8),
    Sx8To32(u8, u8),
    Sx16To32(u8, u8),
    Trunc16(u8),
    Trunc32(u8),
    Swap16(u8),
    Swap32(u8),
    Swap64(u8),
    /// `le64`: nothing to do on a little-endian machine (still one executed instruction).
    Nop,
    /// `goto target`.
    Ja(u32),
    // Conditional jumps, 64-bit: (dst, target, imm sign-extended) or (dst, src, target).
    Jeq64K(u8, u32, u64),
    Jeq64X(u8, u8, u32),
    Jne64K(u8, u32, u64),
    Jne64X(u8, u8, u32),
    Jgt64K(u8, u32, u64),
    Jgt64X(u8, u8, u32),
    Jge64K(u8, u32, u64),
    Jge64X(u8, u8, u32),
    Jlt64K(u8, u32, u64),
    Jlt64X(u8, u8, u32),
    Jle64K(u8, u32, u64),
    Jle64X(u8, u8, u32),
    Jsgt64K(u8, u32, u64),
    Jsgt64X(u8, u8, u32),
    Jsge64K(u8, u32, u64),
    Jsge64X(u8, u8, u32),
    Jslt64K(u8, u32, u64),
    Jslt64X(u8, u8, u32),
    Jsle64K(u8, u32, u64),
    Jsle64X(u8, u8, u32),
    Jset64K(u8, u32, u64),
    Jset64X(u8, u8, u32),
    // Conditional jumps, 32-bit: (dst, target, imm as its raw 32 bits) or (dst, src, target).
    Jeq32K(u8, u32, u64),
    Jeq32X(u8, u8, u32),
    Jne32K(u8, u32, u64),
    Jne32X(u8, u8, u32),
    Jgt32K(u8, u32, u64),
    Jgt32X(u8, u8, u32),
    Jge32K(u8, u32, u64),
    Jge32X(u8, u8, u32),
    Jlt32K(u8, u32, u64),
    Jlt32X(u8, u8, u32),
    Jle32K(u8, u32, u64),
    Jle32X(u8, u8, u32),
    Jsgt32K(u8, u32, u64),
    Jsgt32X(u8, u8, u32),
    Jsge32K(u8, u32, u64),
    Jsge32X(u8, u8, u32),
    Jslt32K(u8, u32, u64),
    Jslt32X(u8, u8, u32),
    Jsle32K(u8, u32, u64),
    Jsle32X(u8, u8, u32),
    Jset32K(u8, u32, u64),
    Jset32X(u8, u8, u32),
    // Loads: (dst, base, off).
    LdxB(u8, u8, i16),
    LdxH(u8, u8, i16),
    LdxW(u8, u8, i16),
    LdxDw(u8, u8, i16),
    LdxsB(u8, u8, i16),
    LdxsH(u8, u8, i16),
    LdxsW(u8, u8, i16),
    // Immediate stores: (base, off, imm sign-extended to 64; the store truncates it).
    StB(u8, i16, u64),
    StH(u8, i16, u64),
    StW(u8, i16, u64),
    StDw(u8, i16, u64),
    // Register stores: (base, src, off).
    StxB(u8, u8, i16),
    StxH(u8, u8, i16),
    StxW(u8, u8, i16),
    StxDw(u8, u8, i16),
    // Atomics: (operation, base, src, off).
    AtomicW(AtomicOp, u8, u8, i16),
    AtomicDw(AtomicOp, u8, u8, i16),
    /// `exit`.
    Exit,
    /// Something the reference does not model; [`unsupported_reason`] says what.
    Unsupported,
}

/// Decodes `prog` into `out` (cleared first; its allocation is reused).
pub(super) fn decode_into(prog: &Program, out: &mut Vec<Op>) {
    out.clear();
    out.reserve(prog.insns().len());
    for (index, insn) in prog.insns().iter().enumerate() {
        out.push(decode_one(prog, index, insn));
    }
}

/// The jump target of instruction `index` as an `Op` operand. A checked [`Program`] always
/// has one in range; should that ever fail, the jump goes to `u32::MAX`, which the executor
/// reports as a host fault instead of panicking.
fn target(prog: &Program, index: usize) -> u32 {
    prog.target_of(index).and_then(|t| u32::try_from(t).ok()).unwrap_or(u32::MAX)
}

fn decode_one(prog: &Program, index: usize, insn: &Insn) -> Op {
    match *insn {
        Insn::Alu { width, op, dst, src } => alu(width, op, dst.num(), src),
        Insn::Neg { width: Width::W64, dst } => Op::Neg64(dst.num()),
        Insn::Neg { width: Width::W32, dst } => Op::Neg32(dst.num()),
        Insn::MovSx { width, from, dst, src } => {
            let (d, s) = (dst.num(), src.num());
            match (width, from) {
                (Width::W64, SxBits::S8) => Op::Sx8To64(d, s),
                (Width::W64, SxBits::S16) => Op::Sx16To64(d, s),
                (Width::W64, SxBits::S32) => Op::Sx32To64(d, s),
                (Width::W32, SxBits::S8) => Op::Sx8To32(d, s),
                (Width::W32, SxBits::S16) => Op::Sx16To32(d, s),
                (Width::W32, SxBits::S32) => Op::Unsupported,
            }
        }
        Insn::End { order, bits, dst } => {
            let d = dst.num();
            match (order, bits) {
                (ByteOrder::Le, 16) => Op::Trunc16(d),
                (ByteOrder::Le, 32) => Op::Trunc32(d),
                (ByteOrder::Le, 64) => Op::Nop,
                (ByteOrder::Be | ByteOrder::Swap, 16) => Op::Swap16(d),
                (ByteOrder::Be | ByteOrder::Swap, 32) => Op::Swap32(d),
                (ByteOrder::Be | ByteOrder::Swap, 64) => Op::Swap64(d),
                _ => Op::Unsupported,
            }
        }
        Insn::Ja { .. } | Insn::JaLong { .. } => Op::Ja(target(prog, index)),
        Insn::Jmp { width, cond, dst, src, .. } => jump(width, cond, dst.num(), src, target(prog, index)),
        Insn::Load { size, signed, dst, src, off } => {
            let (d, s) = (dst.num(), src.num());
            match (size, signed) {
                (Size::B, false) => Op::LdxB(d, s, off),
                (Size::H, false) => Op::LdxH(d, s, off),
                (Size::W, false) => Op::LdxW(d, s, off),
                (Size::DW, false) => Op::LdxDw(d, s, off),
                (Size::B, true) => Op::LdxsB(d, s, off),
                (Size::H, true) => Op::LdxsH(d, s, off),
                (Size::W, true) => Op::LdxsW(d, s, off),
                (Size::DW, true) => Op::Unsupported,
            }
        }
        Insn::StoreImm { size, dst, off, imm } => {
            let (d, k) = (dst.num(), imm as i64 as u64);
            match size {
                Size::B => Op::StB(d, off, k),
                Size::H => Op::StH(d, off, k),
                Size::W => Op::StW(d, off, k),
                Size::DW => Op::StDw(d, off, k),
            }
        }
        Insn::Store { size, dst, src, off } => {
            let (d, s) = (dst.num(), src.num());
            match size {
                Size::B => Op::StxB(d, s, off),
                Size::H => Op::StxH(d, s, off),
                Size::W => Op::StxW(d, s, off),
                Size::DW => Op::StxDw(d, s, off),
            }
        }
        Insn::Atomic { size, op, dst, src, off } => match size {
            Size::W => Op::AtomicW(op, dst.num(), src.num(), off),
            Size::DW => Op::AtomicDw(op, dst.num(), src.num(), off),
            Size::B | Size::H => Op::Unsupported,
        },
        Insn::LdImm64 { dst, pseudo: 0, imm } => Op::Mov64K(dst.num(), imm),
        Insn::LdImm64 { .. } | Insn::Call(_) | Insn::TailCall => Op::Unsupported,
        Insn::Exit => Op::Exit,
    }
}

fn alu(width: Width, op: AluOp, d: u8, src: Operand) -> Op {
    match (width, src) {
        // `xor`/`sub` of a register with itself: 0 at either width, whatever the register held.
        (_, Operand::Reg(s)) if s.num() == d && matches!(op, AluOp::Xor | AluOp::Sub) => Op::Mov64K(d, 0),
        (Width::W64, Operand::Imm(imm)) => {
            let k = imm as i64 as u64;
            match op {
                AluOp::Add => Op::Add64K(d, k),
                AluOp::Sub => Op::Sub64K(d, k),
                AluOp::Mul => Op::Mul64K(d, k),
                AluOp::Div => Op::Div64K(d, k),
                AluOp::Sdiv => Op::Sdiv64K(d, k),
                AluOp::Mod => Op::Mod64K(d, k),
                AluOp::Smod => Op::Smod64K(d, k),
                AluOp::Or => Op::Or64K(d, k),
                AluOp::And => Op::And64K(d, k),
                AluOp::Xor => Op::Xor64K(d, k),
                AluOp::Lsh => Op::Lsh64K(d, k),
                AluOp::Rsh => Op::Rsh64K(d, k),
                AluOp::Arsh => Op::Arsh64K(d, k),
                AluOp::Mov => Op::Mov64K(d, k),
            }
        }
        (Width::W64, Operand::Reg(s)) => {
            let s = s.num();
            match op {
                AluOp::Add => Op::Add64X(d, s),
                AluOp::Sub => Op::Sub64X(d, s),
                AluOp::Mul => Op::Mul64X(d, s),
                AluOp::Div => Op::Div64X(d, s),
                AluOp::Sdiv => Op::Sdiv64X(d, s),
                AluOp::Mod => Op::Mod64X(d, s),
                AluOp::Smod => Op::Smod64X(d, s),
                AluOp::Or => Op::Or64X(d, s),
                AluOp::And => Op::And64X(d, s),
                AluOp::Xor => Op::Xor64X(d, s),
                AluOp::Lsh => Op::Lsh64X(d, s),
                AluOp::Rsh => Op::Rsh64X(d, s),
                AluOp::Arsh => Op::Arsh64X(d, s),
                AluOp::Mov => Op::Mov64X(d, s),
            }
        }
        (Width::W32, Operand::Imm(imm)) => {
            let k = imm as u32 as u64;
            match op {
                AluOp::Add => Op::Add32K(d, k),
                AluOp::Sub => Op::Sub32K(d, k),
                AluOp::Mul => Op::Mul32K(d, k),
                AluOp::Div => Op::Div32K(d, k),
                AluOp::Sdiv => Op::Sdiv32K(d, k),
                AluOp::Mod => Op::Mod32K(d, k),
                AluOp::Smod => Op::Smod32K(d, k),
                AluOp::Or => Op::Or32K(d, k),
                AluOp::And => Op::And32K(d, k),
                AluOp::Xor => Op::Xor32K(d, k),
                AluOp::Lsh => Op::Lsh32K(d, k),
                AluOp::Rsh => Op::Rsh32K(d, k),
                AluOp::Arsh => Op::Arsh32K(d, k),
                AluOp::Mov => Op::Mov32K(d, k),
            }
        }
        (Width::W32, Operand::Reg(s)) => {
            let s = s.num();
            match op {
                AluOp::Add => Op::Add32X(d, s),
                AluOp::Sub => Op::Sub32X(d, s),
                AluOp::Mul => Op::Mul32X(d, s),
                AluOp::Div => Op::Div32X(d, s),
                AluOp::Sdiv => Op::Sdiv32X(d, s),
                AluOp::Mod => Op::Mod32X(d, s),
                AluOp::Smod => Op::Smod32X(d, s),
                AluOp::Or => Op::Or32X(d, s),
                AluOp::And => Op::And32X(d, s),
                AluOp::Xor => Op::Xor32X(d, s),
                AluOp::Lsh => Op::Lsh32X(d, s),
                AluOp::Rsh => Op::Rsh32X(d, s),
                AluOp::Arsh => Op::Arsh32X(d, s),
                AluOp::Mov => Op::Mov32X(d, s),
            }
        }
    }
}

fn jump(width: Width, cond: Cond, d: u8, src: Operand, t: u32) -> Op {
    match (width, src) {
        (Width::W64, Operand::Imm(imm)) => {
            let k = imm as i64 as u64;
            match cond {
                Cond::Eq => Op::Jeq64K(d, t, k),
                Cond::Ne => Op::Jne64K(d, t, k),
                Cond::Gt => Op::Jgt64K(d, t, k),
                Cond::Ge => Op::Jge64K(d, t, k),
                Cond::Lt => Op::Jlt64K(d, t, k),
                Cond::Le => Op::Jle64K(d, t, k),
                Cond::Sgt => Op::Jsgt64K(d, t, k),
                Cond::Sge => Op::Jsge64K(d, t, k),
                Cond::Slt => Op::Jslt64K(d, t, k),
                Cond::Sle => Op::Jsle64K(d, t, k),
                Cond::Set => Op::Jset64K(d, t, k),
            }
        }
        (Width::W64, Operand::Reg(s)) => {
            let s = s.num();
            match cond {
                Cond::Eq => Op::Jeq64X(d, s, t),
                Cond::Ne => Op::Jne64X(d, s, t),
                Cond::Gt => Op::Jgt64X(d, s, t),
                Cond::Ge => Op::Jge64X(d, s, t),
                Cond::Lt => Op::Jlt64X(d, s, t),
                Cond::Le => Op::Jle64X(d, s, t),
                Cond::Sgt => Op::Jsgt64X(d, s, t),
                Cond::Sge => Op::Jsge64X(d, s, t),
                Cond::Slt => Op::Jslt64X(d, s, t),
                Cond::Sle => Op::Jsle64X(d, s, t),
                Cond::Set => Op::Jset64X(d, s, t),
            }
        }
        (Width::W32, Operand::Imm(imm)) => {
            let k = imm as u32 as u64;
            match cond {
                Cond::Eq => Op::Jeq32K(d, t, k),
                Cond::Ne => Op::Jne32K(d, t, k),
                Cond::Gt => Op::Jgt32K(d, t, k),
                Cond::Ge => Op::Jge32K(d, t, k),
                Cond::Lt => Op::Jlt32K(d, t, k),
                Cond::Le => Op::Jle32K(d, t, k),
                Cond::Sgt => Op::Jsgt32K(d, t, k),
                Cond::Sge => Op::Jsge32K(d, t, k),
                Cond::Slt => Op::Jslt32K(d, t, k),
                Cond::Sle => Op::Jsle32K(d, t, k),
                Cond::Set => Op::Jset32K(d, t, k),
            }
        }
        (Width::W32, Operand::Reg(s)) => {
            let s = s.num();
            match cond {
                Cond::Eq => Op::Jeq32X(d, s, t),
                Cond::Ne => Op::Jne32X(d, s, t),
                Cond::Gt => Op::Jgt32X(d, s, t),
                Cond::Ge => Op::Jge32X(d, s, t),
                Cond::Lt => Op::Jlt32X(d, s, t),
                Cond::Le => Op::Jle32X(d, s, t),
                Cond::Sgt => Op::Jsgt32X(d, s, t),
                Cond::Sge => Op::Jsge32X(d, s, t),
                Cond::Slt => Op::Jslt32X(d, s, t),
                Cond::Sle => Op::Jsle32X(d, s, t),
                Cond::Set => Op::Jset32X(d, s, t),
            }
        }
    }
}

/// Why the reference cannot judge a program that reached `insn` (decoded as
/// [`Op::Unsupported`]); the text names the instruction and its slot `pc`.
pub(super) fn unsupported_reason(insn: &Insn, pc: usize) -> String {
    let what = match *insn {
        Insn::Call(bpf::Call::Helper(id)) => format!(
            "call of helper {id}: calls need a program set with helpers; a single program cannot call"
        ),
        Insn::Call(bpf::Call::Local(off)) => format!(
            "bpf-to-bpf call {off:+}: calls need a program set with call frames; a single program cannot call"
        ),
        Insn::Call(bpf::Call::Kfunc(id)) => {
            format!("call of kfunc {id}: calls need a program set; a single program cannot call")
        }
        Insn::TailCall => {
            "tail call: tail calls need a program set and a program array; a single program cannot tail-call"
                .to_string()
        }
        Insn::LdImm64 { pseudo, .. } => {
            format!("lddw with pseudo source {pseudo} (a map or BTF reference): maps are not modelled yet")
        }
        Insn::End { bits, .. } => {
            format!("byte swap to {bits} bits: only 16, 32 and 64 exist (the verifier rejects it)")
        }
        Insn::MovSx { .. } => {
            "32-bit movsx from 32 bits does not exist (the verifier rejects it)".to_string()
        }
        Insn::Load { size, .. } => {
            format!("sign-extending {}-byte load does not exist (only 1, 2 and 4)", size.bytes())
        }
        Insn::Atomic { size, .. } => {
            format!("{}-byte atomic does not exist (only 4 and 8 bytes)", size.bytes())
        }
        ref other => format!("{other:?} is not modelled"),
    };
    format!("pc {pc}: {what}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpf::Reg;

    #[test]
    fn ops_are_16_bytes() {
        assert!(std::mem::size_of::<Op>() <= 16, "Op is {} bytes", std::mem::size_of::<Op>());
    }

    #[test]
    fn immediates_widen_by_width_and_targets_are_indexes() {
        let prog = Program::new(vec![
            Insn::Alu { width: Width::W64, op: AluOp::Add, dst: Reg::R0, src: Operand::Imm(-1) },
            Insn::Alu { width: Width::W32, op: AluOp::Add, dst: Reg::R0, src: Operand::Imm(-1) },
            Insn::LdImm64 { dst: Reg::R2, pseudo: 0, imm: 0x1_0000_0000 },
            Insn::Jmp { width: Width::W64, cond: Cond::Eq, dst: Reg::R0, src: Operand::Imm(-2), off: 1 },
            Insn::Jmp { width: Width::W32, cond: Cond::Eq, dst: Reg::R0, src: Operand::Imm(-2), off: -6 },
            Insn::Exit,
        ])
        .expect("valid program");
        let mut ops = Vec::new();
        decode_into(&prog, &mut ops);
        assert_eq!(
            ops,
            vec![
                Op::Add64K(0, 0xffff_ffff_ffff_ffff),
                Op::Add32K(0, 0xffff_ffff),
                Op::Mov64K(2, 0x1_0000_0000),
                // slot 4 + 1 + 1 = slot 6 = index 5
                Op::Jeq64K(0, 5, 0xffff_ffff_ffff_fffe),
                // slot 5 + 1 - 6 = slot 0 = index 0
                Op::Jeq32K(0, 0, 0xffff_fffe),
                Op::Exit,
            ]
        );
    }
}
