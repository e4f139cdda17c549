//! Pre-decoding: a [`Program`] becomes a flat list of [`Op`]s, one per instruction, that the
//! executor runs with a single `match` on [`Op::code`] per step.
//!
//! Decoding fixes everything the instruction word decides: the operation, width and operand
//! kind become the code (computed arithmetically from the instruction's fields, so decoding
//! takes one branch per instruction kind, not one per field); immediates are widened the way
//! the instruction's width requires (sign-extended to 64 bits for 64-bit ALU operations,
//! jumps and stores, the raw 32 bits for 32-bit ALU operations and jumps); jump targets are
//! resolved to instruction indexes. Every `Op` is 16 bytes.
//!
//! Calls, tail calls and `exit` get codes that stop the executor's loop and hand the
//! instruction to the frame logic (`calls`). Instructions the reference does not model
//! (kfunc calls, `lddw` of other pseudo sources than map references) and `Insn` values the
//! wire format cannot express (which the verifier would reject) get [`code::UNSUPPORTED`]:
//! the run stops with "cannot judge" only if execution reaches them.

use bpf::{AluOp, AtomicOp, ByteOrder, Call, Cond, Insn, Operand, Program, Size, SxBits, Width};

/// One pre-decoded instruction. Which fields matter depends on the code (see [`code`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Op {
    /// What to do: one of the [`code`] constants.
    pub code: u8,
    /// Destination (ALU, loads), base register (stores, atomics) or compared register (jumps).
    pub dst: u8,
    /// Source register of register forms, stores and atomics.
    pub src: u8,
    /// Jump target (instruction index), or the memory offset of loads, stores and atomics
    /// (the `i16` in the low 16 bits; see [`Op::off`]).
    pub aux: u32,
    /// The widened immediate of `K` forms, `lddw` and immediate stores; for atomics, the
    /// operation's index in [`AtomicOp::ALL`].
    pub imm: u64,
}

/// The operation codes. Binary ALU operations and conditional jumps are numbered
/// arithmetically from their fields ([`alu_code`], [`jmp_code`]); everything else is listed.
/// Names: `K` takes the immediate, `X` the `src` register; `64`/`32` is the width.
#[allow(missing_docs)]
pub(super) mod code {
    use super::{alu_code, jmp_code};
    use bpf::{AluOp, Cond, Width};

    macro_rules! alu_codes {
        ($($op:ident: $k64:ident $x64:ident $k32:ident $x32:ident;)*) => {$(
            pub const $k64: u8 = alu_code(AluOp::$op, Width::W64, false);
            pub const $x64: u8 = alu_code(AluOp::$op, Width::W64, true);
            pub const $k32: u8 = alu_code(AluOp::$op, Width::W32, false);
            pub const $x32: u8 = alu_code(AluOp::$op, Width::W32, true);
        )*};
    }
    alu_codes! {
        Add: ADD64K ADD64X ADD32K ADD32X;
        Sub: SUB64K SUB64X SUB32K SUB32X;
        Mul: MUL64K MUL64X MUL32K MUL32X;
        Div: DIV64K DIV64X DIV32K DIV32X;
        Sdiv: SDIV64K SDIV64X SDIV32K SDIV32X;
        Mod: MOD64K MOD64X MOD32K MOD32X;
        Smod: SMOD64K SMOD64X SMOD32K SMOD32X;
        Or: OR64K OR64X OR32K OR32X;
        And: AND64K AND64X AND32K AND32X;
        Xor: XOR64K XOR64X XOR32K XOR32X;
        Lsh: LSH64K LSH64X LSH32K LSH32X;
        Rsh: RSH64K RSH64X RSH32K RSH32X;
        Arsh: ARSH64K ARSH64X ARSH32K ARSH32X;
        Mov: MOV64K MOV64X MOV32K MOV32X;
    }

    macro_rules! jmp_codes {
        ($($cond:ident: $k64:ident $x64:ident $k32:ident $x32:ident;)*) => {$(
            pub const $k64: u8 = jmp_code(Cond::$cond, Width::W64, false);
            pub const $x64: u8 = jmp_code(Cond::$cond, Width::W64, true);
            pub const $k32: u8 = jmp_code(Cond::$cond, Width::W32, false);
            pub const $x32: u8 = jmp_code(Cond::$cond, Width::W32, true);
        )*};
    }
    jmp_codes! {
        Eq: JEQ64K JEQ64X JEQ32K JEQ32X;
        Ne: JNE64K JNE64X JNE32K JNE32X;
        Gt: JGT64K JGT64X JGT32K JGT32X;
        Ge: JGE64K JGE64X JGE32K JGE32X;
        Lt: JLT64K JLT64X JLT32K JLT32X;
        Le: JLE64K JLE64X JLE32K JLE32X;
        Sgt: JSGT64K JSGT64X JSGT32K JSGT32X;
        Sge: JSGE64K JSGE64X JSGE32K JSGE32X;
        Slt: JSLT64K JSLT64X JSLT32K JSLT32X;
        Sle: JSLE64K JSLE64X JSLE32K JSLE32X;
        Set: JSET64K JSET64X JSET32K JSET32X;
    }

    /// The first code after the arithmetic ranges.
    const OTHER: u8 = super::JMP_BASE + 4 * 11;
    pub const NEG64: u8 = OTHER;
    pub const NEG32: u8 = OTHER + 1;
    pub const SX8_64: u8 = OTHER + 2;
    pub const SX16_64: u8 = OTHER + 3;
    pub const SX32_64: u8 = OTHER + 4;
    pub const SX8_32: u8 = OTHER + 5;
    pub const SX16_32: u8 = OTHER + 6;
    pub const TRUNC16: u8 = OTHER + 7;
    pub const TRUNC32: u8 = OTHER + 8;
    pub const SWAP16: u8 = OTHER + 9;
    pub const SWAP32: u8 = OTHER + 10;
    pub const SWAP64: u8 = OTHER + 11;
    /// `le64`: nothing to do on a little-endian machine (still one executed instruction).
    pub const NOP: u8 = OTHER + 12;
    pub const JA: u8 = OTHER + 13;
    pub const LDX_B: u8 = OTHER + 14;
    pub const LDX_H: u8 = OTHER + 15;
    pub const LDX_W: u8 = OTHER + 16;
    pub const LDX_DW: u8 = OTHER + 17;
    pub const LDXS_B: u8 = OTHER + 18;
    pub const LDXS_H: u8 = OTHER + 19;
    pub const LDXS_W: u8 = OTHER + 20;
    pub const ST_B: u8 = OTHER + 21;
    pub const ST_H: u8 = OTHER + 22;
    pub const ST_W: u8 = OTHER + 23;
    pub const ST_DW: u8 = OTHER + 24;
    pub const STX_B: u8 = OTHER + 25;
    pub const STX_H: u8 = OTHER + 26;
    pub const STX_W: u8 = OTHER + 27;
    pub const STX_DW: u8 = OTHER + 28;
    pub const ATOMIC_W: u8 = OTHER + 29;
    pub const ATOMIC_DW: u8 = OTHER + 30;
    pub const EXIT: u8 = OTHER + 31;
    /// `xor`/`sub` of a register with itself: reads it, leaves an unmarked 0.
    pub const ZERO: u8 = OTHER + 32;
    /// `lddw dst, map`: `imm` is the map's address; the result is marked as a map pointer.
    pub const LD_MAP: u8 = OTHER + 33;
    /// `lddw dst, map` naming a map the set does not have; `imm` is the map index.
    pub const NO_MAP: u8 = OTHER + 34;
    /// bpf-to-bpf call; `aux` is the target instruction index.
    pub const CALL: u8 = OTHER + 35;
    /// Helper call; `imm` is the helper id (sign-extended).
    pub const HELPER: u8 = OTHER + 36;
    /// `bpf_tail_call`: `call 12` or the internal `BPF_TAIL_CALL` instruction.
    pub const TAIL_CALL: u8 = OTHER + 37;
    /// Something the reference does not model; `unsupported_reason` says what.
    pub const UNSUPPORTED: u8 = OTHER + 38;
    /// kfunc call; `imm` is the kfunc id (sign-extended).
    pub const KFUNC: u8 = OTHER + 39;
    /// `lddw dst, &map + off`: `imm` is the address; the result is marked as a pointer to a
    /// map value.
    pub const LD_VALUE: u8 = OTHER + 40;
    /// A legacy packet load: `aux` is the size in bytes, `src` the index register (or
    /// [`super::NO_REG`] for `LD_ABS`), `imm` the offset (sign-extended).
    pub const PACKET_LOAD: u8 = OTHER + 41;
}

/// The code of a binary ALU operation: `op * 4 + (64-bit) * 2 + (register form)`, 0 to 55.
pub(super) const fn alu_code(op: AluOp, width: Width, x: bool) -> u8 {
    op as u8 * 4 + (matches!(width, Width::W64) as u8) * 2 + x as u8
}

/// The first conditional-jump code.
const JMP_BASE: u8 = 4 * 14;

/// The code of a conditional jump: `JMP_BASE + cond * 4 + (64-bit) * 2 + (register form)`.
pub(super) const fn jmp_code(cond: Cond, width: Width, x: bool) -> u8 {
    JMP_BASE + cond as u8 * 4 + (matches!(width, Width::W64) as u8) * 2 + x as u8
}

impl Op {
    /// An op with only a code and registers.
    const fn new(code: u8, dst: u8, src: u8) -> Op {
        Op { code, dst, src, aux: 0, imm: 0 }
    }

    /// A memory op: `off` goes into `aux`.
    const fn mem(code: u8, dst: u8, src: u8, off: i16) -> Op {
        Op { code, dst, src, aux: off as u16 as u32, imm: 0 }
    }

    /// The memory offset of a load, store or atomic.
    #[inline(always)]
    pub(super) const fn off(&self) -> i16 {
        self.aux as u16 as i16
    }
}

/// Decodes `prog`, whose set has `maps` maps, into `out` (cleared first; its allocation is
/// reused). Returns whether the program contains a bpf-to-bpf call.
pub(super) fn decode_into(prog: &Program, maps: usize, out: &mut Vec<Op>) -> bool {
    out.clear();
    out.extend(prog.insns().iter().enumerate().map(|(index, insn)| decode_one(prog, maps, index, insn)));
    out.iter().any(|op| op.code == code::CALL)
}

/// The jump target of instruction `index`. A checked [`Program`] always has one in range;
/// should that ever fail, the jump goes to `u32::MAX`, which the executor reports as a host
/// fault instead of panicking.
fn target(prog: &Program, index: usize) -> u32 {
    prog.target_of(index).and_then(|t| u32::try_from(t).ok()).unwrap_or(u32::MAX)
}

/// `(register form, src register, immediate widened to the width)` of an operand.
#[inline(always)]
fn operand(src: Operand, width: Width) -> (bool, u8, u64) {
    let (x, s, k) = match src {
        Operand::Imm(k) => (false, 0, k),
        Operand::Reg(r) => (true, r.num(), 0),
    };
    let imm = if matches!(width, Width::W64) { k as i64 as u64 } else { k as u32 as u64 };
    (x, s, imm)
}

/// Index of a size: B 0, H 1, W 2, DW 3.
#[inline(always)]
fn size_index(size: Size) -> u8 {
    match size {
        Size::B => 0,
        Size::H => 1,
        Size::W => 2,
        Size::DW => 3,
    }
}

#[inline(always)]
fn decode_one(prog: &Program, maps: usize, index: usize, insn: &Insn) -> Op {
    let unsupported = Op::new(code::UNSUPPORTED, 0, 0);
    match *insn {
        Insn::Alu { width, op, dst, src } => {
            let (x, s, imm) = operand(src, width);
            let d = dst.num();
            if x && s == d && matches!(op, AluOp::Xor | AluOp::Sub) {
                // `xor`/`sub` of a register with itself: 0 at either width, and not an
                // address; the register is still read (the verifier requires it defined).
                return Op::new(code::ZERO, d, 0);
            }
            Op { imm, ..Op::new(alu_code(op, width, x), d, s) }
        }
        Insn::Jmp { width, cond, dst, src, .. } => {
            let (x, s, imm) = operand(src, width);
            Op { aux: target(prog, index), imm, ..Op::new(jmp_code(cond, width, x), dst.num(), s) }
        }
        Insn::Ja { .. } | Insn::JaLong { .. } => Op { aux: target(prog, index), ..Op::new(code::JA, 0, 0) },
        Insn::Neg { width, dst } => {
            Op::new(if matches!(width, Width::W64) { code::NEG64 } else { code::NEG32 }, dst.num(), 0)
        }
        Insn::MovSx { width, from, dst, src } => {
            let c = match (width, from) {
                (Width::W64, SxBits::S8) => code::SX8_64,
                (Width::W64, SxBits::S16) => code::SX16_64,
                (Width::W64, SxBits::S32) => code::SX32_64,
                (Width::W32, SxBits::S8) => code::SX8_32,
                (Width::W32, SxBits::S16) => code::SX16_32,
                (Width::W32, SxBits::S32) => return unsupported,
            };
            Op::new(c, dst.num(), src.num())
        }
        Insn::End { order, bits, dst } => {
            let c = match (order, bits) {
                (ByteOrder::Le, 16) => code::TRUNC16,
                (ByteOrder::Le, 32) => code::TRUNC32,
                (ByteOrder::Le, 64) => code::NOP,
                (ByteOrder::Be | ByteOrder::Swap, 16) => code::SWAP16,
                (ByteOrder::Be | ByteOrder::Swap, 32) => code::SWAP32,
                (ByteOrder::Be | ByteOrder::Swap, 64) => code::SWAP64,
                _ => return unsupported,
            };
            Op::new(c, dst.num(), 0)
        }
        Insn::Load { size, signed, dst, src, off } => {
            let c = match (signed, size) {
                (false, _) => code::LDX_B + size_index(size),
                (true, Size::DW) => return unsupported,
                (true, _) => code::LDXS_B + size_index(size),
            };
            Op::mem(c, dst.num(), src.num(), off)
        }
        Insn::StoreImm { size, dst, off, imm } => {
            Op { imm: imm as i64 as u64, ..Op::mem(code::ST_B + size_index(size), dst.num(), 0, off) }
        }
        Insn::Store { size, dst, src, off } => {
            Op::mem(code::STX_B + size_index(size), dst.num(), src.num(), off)
        }
        Insn::Atomic { size, op, dst, src, off } => {
            let c = match size {
                Size::W => code::ATOMIC_W,
                Size::DW => code::ATOMIC_DW,
                Size::B | Size::H => return unsupported,
            };
            let Some(i) = AtomicOp::ALL.iter().position(|&o| o == op) else { return unsupported };
            Op { imm: i as u64, ..Op::mem(c, dst.num(), src.num(), off) }
        }
        Insn::LdImm64 { dst, pseudo: 0, imm } => Op { imm, ..Op::new(code::MOV64K, dst.num(), 0) },
        Insn::LdImm64 { dst, pseudo: bpf::PSEUDO_MAP_FD, imm } => {
            match usize::try_from(imm).ok().filter(|&k| k < maps) {
                Some(k) => Op { imm: bpf::exec::map_addr(k), ..Op::new(code::LD_MAP, dst.num(), 0) },
                None => Op { imm, ..Op::new(code::NO_MAP, dst.num(), 0) },
            }
        }
        Insn::LdImm64 { dst, pseudo: bpf::PSEUDO_MAP_VALUE, imm } => {
            let (k, off) = bpf::set::map_value_parts(imm);
            match usize::try_from(k).ok().filter(|&k| k < maps) {
                Some(k) => {
                    let addr = bpf::exec::map_addr(k) + bpf::exec::ARRAY_VALUES_OFFSET + u64::from(off);
                    Op { imm: addr, ..Op::new(code::LD_VALUE, dst.num(), 0) }
                }
                None => Op { imm: k, ..Op::new(code::NO_MAP, dst.num(), 0) },
            }
        }
        Insn::LdImm64 { .. } => unsupported,
        Insn::Call(Call::Kfunc(id)) if bpf::helpers::kfunc_prototype(id).is_some() => {
            Op { imm: id as i64 as u64, ..Op::new(code::KFUNC, 0, 0) }
        }
        Insn::Call(Call::Kfunc(_)) => unsupported,
        Insn::Call(Call::Local(_)) => Op { aux: target(prog, index), ..Op::new(code::CALL, 0, 0) },
        Insn::Call(Call::Helper(bpf::helpers::TAIL_CALL)) | Insn::TailCall => Op::new(code::TAIL_CALL, 0, 0),
        Insn::Call(Call::Helper(id)) => Op { imm: id as i64 as u64, ..Op::new(code::HELPER, 0, 0) },
        Insn::Exit => Op::new(code::EXIT, 0, 0),
        Insn::LoadPacket { size, index, imm } => Op {
            aux: size.bytes(),
            imm: imm as i64 as u64,
            ..Op::new(code::PACKET_LOAD, 0, index.map_or(NO_REG, |x| x.num()))
        },
    }
}

/// No register (an unused entry of [`RegUse::reads`]).
pub(super) const NO_REG: u8 = u8::MAX;

/// The registers an op reads and writes, for the undefined-register check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RegUse {
    /// Registers read, in the order the kernel's verifier checks them (`src` before `dst`,
    /// R0 last); unused entries are [`NO_REG`].
    pub reads: [u8; 3],
    /// Bit `r` set: the op writes register `r` (the whole register: every write is 64 bits).
    pub writes: u16,
}

/// What `op` reads and writes. Calls, tail calls and the fault codes read and write nothing
/// here: the frame logic checks their operands and sets the registers they define.
pub(super) fn reg_use(op: &Op) -> RegUse {
    let (d, s) = (op.dst, op.src);
    let bit = |r: u8| 1u16 << (r & 15);
    let use_ = |reads: [u8; 3], writes: u16| RegUse { reads, writes };
    let none = use_([NO_REG; 3], 0);
    let c = op.code;
    let x = c & 1 == 1;
    let src_if_x = if x { s } else { NO_REG };
    if c < JMP_BASE {
        return if c / 4 == AluOp::Mov as u8 {
            use_([src_if_x, NO_REG, NO_REG], bit(d))
        } else {
            use_([src_if_x, d, NO_REG], bit(d))
        };
    }
    if c < code::NEG64 {
        return use_([src_if_x, d, NO_REG], 0);
    }
    match c {
        code::NEG64
        | code::NEG32
        | code::TRUNC16
        | code::TRUNC32
        | code::SWAP16
        | code::SWAP32
        | code::SWAP64
        | code::NOP
        | code::ZERO => use_([d, NO_REG, NO_REG], bit(d)),
        code::SX8_64 | code::SX16_64 | code::SX32_64 | code::SX8_32 | code::SX16_32 => {
            use_([s, NO_REG, NO_REG], bit(d))
        }
        code::LDX_B..=code::LDXS_W => use_([s, NO_REG, NO_REG], bit(d)),
        code::ST_B..=code::ST_DW => use_([d, NO_REG, NO_REG], 0),
        code::STX_B..=code::STX_DW => use_([s, d, NO_REG], 0),
        code::ATOMIC_W | code::ATOMIC_DW => match atomic_op(op) {
            Some(AtomicOp::Cmpxchg) => use_([s, d, 0], bit(0)),
            Some(AtomicOp::Add | AtomicOp::Or | AtomicOp::And | AtomicOp::Xor) | None => {
                use_([s, d, NO_REG], 0)
            }
            Some(_) => use_([s, d, NO_REG], bit(s)),
        },
        code::LD_MAP | code::LD_VALUE => use_([NO_REG; 3], bit(d)),
        code::EXIT => use_([0, NO_REG, NO_REG], 0),
        // R0 and R1-R5 are set by the frame logic, as after a helper call.
        code::PACKET_LOAD => use_([s, 6, NO_REG], 0),
        _ => none,
    }
}

/// The atomic operation an `ATOMIC_*` op carries in [`Op::imm`].
#[inline(always)]
pub(super) fn atomic_op(op: &Op) -> Option<AtomicOp> {
    usize::try_from(op.imm).ok().and_then(|i| AtomicOp::ALL.get(i)).copied()
}

/// Why the reference cannot judge a program that reached `insn` (decoded as
/// [`code::UNSUPPORTED`]); the text names the instruction and its slot `pc`.
pub(super) fn unsupported_reason(insn: &Insn, pc: usize) -> String {
    let what = match *insn {
        Insn::Call(Call::Kfunc(id)) => {
            format!("call of kfunc {id}: only jitdiff's own kfuncs are modelled, not a kernel's")
        }
        Insn::LdImm64 { pseudo, .. } => format!(
            "lddw with pseudo source {pseudo}: only plain constants (0), map references ({}) and map \
             values ({}) are modelled",
            bpf::PSEUDO_MAP_FD,
            bpf::PSEUDO_MAP_VALUE
        ),
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
        assert_eq!(std::mem::size_of::<Op>(), 16);
    }

    #[test]
    fn codes_are_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for op in AluOp::ALL {
            for w in [Width::W32, Width::W64] {
                for x in [false, true] {
                    assert!(seen.insert(alu_code(op, w, x)), "{op:?} {w:?} {x}");
                }
            }
        }
        for cond in Cond::ALL {
            for w in [Width::W32, Width::W64] {
                for x in [false, true] {
                    assert!(seen.insert(jmp_code(cond, w, x)), "{cond:?} {w:?} {x}");
                }
            }
        }
        assert_eq!(seen.len(), 100);
        assert_eq!(seen.last(), Some(&(code::NEG64 - 1)), "no gap and no overlap before the listed codes");
        const { assert!(code::UNSUPPORTED > code::TAIL_CALL && code::EXIT > code::NEG64) };
    }

    #[test]
    fn immediates_widen_by_width_and_targets_are_indexes() {
        let prog = Program::new(vec![
            Insn::Alu { width: Width::W64, op: AluOp::Add, dst: Reg::R0, src: Operand::Imm(-1) },
            Insn::Alu { width: Width::W32, op: AluOp::Add, dst: Reg::R0, src: Operand::Imm(-1) },
            Insn::LdImm64 { dst: Reg::R2, pseudo: 0, imm: 0x1_0000_0000 },
            Insn::Jmp { width: Width::W64, cond: Cond::Eq, dst: Reg::R0, src: Operand::Imm(-2), off: 1 },
            Insn::Jmp { width: Width::W32, cond: Cond::Eq, dst: Reg::R0, src: Operand::Imm(-2), off: -6 },
            Insn::StoreImm { size: Size::W, dst: Reg::R10, off: -4, imm: -1 },
            Insn::Exit,
        ])
        .expect("valid program");
        let mut ops = Vec::new();
        assert!(!decode_into(&prog, 0, &mut ops));
        let op = |code, dst, aux, imm| Op { code, dst, src: 0, aux, imm };
        assert_eq!(
            ops,
            vec![
                op(code::ADD64K, 0, 0, 0xffff_ffff_ffff_ffff),
                op(code::ADD32K, 0, 0, 0xffff_ffff),
                op(code::MOV64K, 2, 0, 0x1_0000_0000),
                // slot 4 + 1 + 1 = slot 6 = index 5
                op(code::JEQ64K, 0, 5, 0xffff_ffff_ffff_fffe),
                // slot 5 + 1 - 6 = slot 0 = index 0
                op(code::JEQ32K, 0, 0, 0xffff_fffe),
                op(code::ST_W, 10, 0xfffc, 0xffff_ffff_ffff_ffff),
                op(code::EXIT, 0, 0, 0),
            ]
        );
    }
}
