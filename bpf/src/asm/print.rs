//! Printing instructions in LLVM's BPF syntax.

use std::fmt;

use crate::helpers;
use crate::insn::{AtomicOp, ByteOrder, Call, Insn, Operand, Reg, Size, Width};

/// The name `call` prints for helper `id`: `bpf_tail_call` for 12, else the name in
/// [`crate::helpers::prototype`]; `None` for ids no engine knows.
pub(super) fn helper_name(id: i32) -> Option<&'static str> {
    if id == helpers::TAIL_CALL {
        return Some("bpf_tail_call");
    }
    helpers::prototype(id).map(|p| p.name)
}

/// The helper id of a name `call` accepts: every [`helper_name`], and the same names
/// with the kernel's `bpf_` prefix (`bpf_ktime_get_ns`).
pub(super) fn helper_id(name: &str) -> Option<i32> {
    let bare = name.strip_prefix("bpf_");
    helpers::ALL
        .into_iter()
        .chain([helpers::TAIL_CALL])
        .find(|&id| helper_name(id).is_some_and(|n| n == name || bare == Some(n)))
}

/// A register spelled for a width: `r3` or `w3`.
struct R(Reg, bool);

impl fmt::Display for R {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", if self.1 { 'w' } else { 'r' }, self.0.num())
    }
}

/// A memory operand's inside: `r10 - 8`, `r1 + 0`.
struct Mem(Reg, i16);

impl fmt::Display for Mem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let off = i32::from(self.1);
        if off < 0 {
            write!(f, "{} - {}", self.0, -off)
        } else {
            write!(f, "{} + {}", self.0, off)
        }
    }
}

/// A signed offset with its sign always written: `+3`, `-3`, `+0`.
struct Off(i64);

impl fmt::Display for Off {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 0 {
            write!(f, "{}", self.0)
        } else {
            write!(f, "+{}", self.0)
        }
    }
}

fn unsigned_type(size: Size) -> String {
    format!("u{}", size.bits())
}

fn atomic_name(op: AtomicOp) -> &'static str {
    match op {
        AtomicOp::Add | AtomicOp::FetchAdd => "add",
        AtomicOp::Or | AtomicOp::FetchOr => "or",
        AtomicOp::And | AtomicOp::FetchAnd => "and",
        AtomicOp::Xor | AtomicOp::FetchXor => "xor",
        AtomicOp::Xchg => "xchg",
        AtomicOp::Cmpxchg => "cmpxchg",
    }
}

fn atomic_symbol(op: AtomicOp) -> &'static str {
    match op {
        AtomicOp::Add => "+",
        AtomicOp::Or => "|",
        AtomicOp::And => "&",
        _ => "^",
    }
}

/// One instruction in LLVM's syntax, on one line without a newline (see [`crate::asm`]).
///
/// For every instruction that survives encoding and decoding unchanged,
/// [`crate::asm::parse`] reads the text back to the same instruction. Values the wire
/// format cannot hold (a `u8` atomic, `(s32)` on `w` registers, an `le8`) still print,
/// in the same style, but do not parse.
impl fmt::Display for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Insn::Alu { width, op, dst, src } => {
                let w = width == Width::W32;
                write!(f, "{} {}= ", R(dst, w), op.symbol())?;
                match src {
                    Operand::Reg(s) => write!(f, "{}", R(s, w)),
                    Operand::Imm(i) => write!(f, "{i}"),
                }
            }
            Insn::Neg { width, dst } => {
                let w = width == Width::W32;
                write!(f, "{} = -{}", R(dst, w), R(dst, w))
            }
            Insn::MovSx { width, from, dst, src } => {
                let w = width == Width::W32;
                write!(f, "{} = (s{}){}", R(dst, w), from.bits(), R(src, w))
            }
            Insn::End { order, bits, dst } => {
                let name = match order {
                    ByteOrder::Le => "le",
                    ByteOrder::Be => "be",
                    ByteOrder::Swap => "bswap",
                };
                write!(f, "{dst} = {name}{bits} {dst}")
            }
            Insn::Ja { off } => write!(f, "goto {}", Off(off.into())),
            Insn::JaLong { off } => write!(f, "gotol {}", Off(off.into())),
            Insn::Jmp { width, cond, dst, src, off } => {
                let w = width == Width::W32;
                write!(f, "if {} {} ", R(dst, w), cond.symbol())?;
                match src {
                    Operand::Reg(s) => write!(f, "{}", R(s, w))?,
                    Operand::Imm(i) => write!(f, "{i}")?,
                }
                write!(f, " goto {}", Off(off.into()))
            }
            Insn::Load { size, signed, dst, src, off } => {
                let ty = if signed { format!("s{}", size.bits()) } else { unsigned_type(size) };
                write!(f, "{dst} = *({ty} *)({})", Mem(src, off))
            }
            Insn::LoadPacket { size, index, imm } => {
                write!(f, "r0 = *({} *)skb[", unsigned_type(size))?;
                match (index, imm) {
                    (None, _) => write!(f, "{imm}]"),
                    (Some(x), 0) => write!(f, "{x}]"),
                    (Some(x), _) if imm < 0 => write!(f, "{x} - {}]", -i64::from(imm)),
                    (Some(x), _) => write!(f, "{x} + {imm}]"),
                }
            }
            Insn::StoreImm { size, dst, off, imm } => {
                write!(f, "*({} *)({}) = {imm}", unsigned_type(size), Mem(dst, off))
            }
            Insn::Store { size, dst, src, off } => {
                write!(f, "*({} *)({}) = {src}", unsigned_type(size), Mem(dst, off))
            }
            Insn::Atomic { size, op, dst, src, off } => {
                let w = size != Size::DW;
                let ty = unsigned_type(size);
                let mem = Mem(dst, off);
                let bits = size.bits();
                match op {
                    AtomicOp::Add | AtomicOp::Or | AtomicOp::And | AtomicOp::Xor => {
                        write!(f, "lock *({ty} *)({mem}) {}= {}", atomic_symbol(op), R(src, w))
                    }
                    AtomicOp::FetchAdd | AtomicOp::FetchOr | AtomicOp::FetchAnd | AtomicOp::FetchXor => {
                        let s = R(src, w);
                        write!(f, "{s} = atomic_fetch_{}(({ty} *)({mem}), {s})", atomic_name(op))
                    }
                    AtomicOp::Xchg => {
                        let s = R(src, w);
                        let pre = if w { "xchg32" } else { "xchg" };
                        write!(f, "{s} = {pre}_{bits}({mem}, {s})")
                    }
                    AtomicOp::Cmpxchg => {
                        let r0 = R(Reg::R0, w);
                        let pre = if w { "cmpxchg32" } else { "cmpxchg" };
                        write!(f, "{r0} = {pre}_{bits}({mem}, {r0}, {})", R(src, w))
                    }
                }
            }
            Insn::LdImm64 { dst, pseudo: 0, imm } => write!(f, "{dst} = {} ll", imm as i64),
            Insn::LdImm64 { dst, pseudo, imm } => write!(f, "ld_pseudo {dst}, {pseudo}, {imm}"),
            Insn::Call(Call::Helper(id)) => match helper_name(id) {
                Some(name) => write!(f, "call {name}"),
                None => write!(f, "call {id}"),
            },
            Insn::Call(Call::Local(off)) => write!(f, "call pc{}", Off(off.into())),
            Insn::Call(Call::Kfunc(id)) => match helpers::kfunc_prototype(id) {
                Some(p) => write!(f, "call kfunc:{}", p.name),
                None => write!(f, "call kfunc:{id}"),
            },
            Insn::TailCall => f.write_str("tail_call"),
            Insn::Exit => f.write_str("exit"),
        }
    }
}

/// The instructions as text, one per line, each line ending in `\n`; [`crate::asm::parse`]
/// reads the text back to the same instructions.
pub fn print_program(insns: &[Insn]) -> String {
    let mut out = String::new();
    for insn in insns {
        out.push_str(&insn.to_string());
        out.push('\n');
    }
    out
}
