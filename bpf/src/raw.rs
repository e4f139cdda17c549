//! The 8-byte wire form of eBPF instructions, and conversion to and from [`Insn`].
//!
//! Decoding is total: any byte string either decodes or yields a [`DecodeError`] naming
//! the slot and the problem; it never panics.

use crate::insn::{AluOp, AtomicOp, ByteOrder, Call, Cond, Insn, Operand, Reg, Size, SxBits, Width};
use crate::opcode::{alu, atomic, class, jmp, mode, pseudo_call, size, src};

/// One 8-byte instruction slot as the kernel lays it out (little-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct RawInsn {
    /// Opcode byte.
    pub code: u8,
    /// Destination register field (low nibble of byte 1).
    pub dst: u8,
    /// Source register field (high nibble of byte 1).
    pub src: u8,
    /// Signed 16-bit offset.
    pub off: i16,
    /// Signed 32-bit immediate.
    pub imm: i32,
}

impl RawInsn {
    /// The slot's 8 little-endian bytes.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.src << 4) | (self.dst & 0x0f);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }

    /// Reads a slot from 8 little-endian bytes.
    pub fn from_bytes(b: [u8; 8]) -> RawInsn {
        RawInsn {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// Why a slot does not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("slot {slot}: {problem}")]
pub struct DecodeError {
    /// Index of the offending 8-byte slot.
    pub slot: usize,
    /// What is wrong with it.
    pub problem: String,
}

fn reg(n: u8, slot: usize, what: &str) -> Result<Reg, DecodeError> {
    Reg::new(n).ok_or_else(|| DecodeError {
        slot,
        problem: format!("{what} register r{n} does not exist (r0 to r10)"),
    })
}

fn width_of(cls: u8) -> Width {
    if cls == class::ALU || cls == class::JMP32 {
        Width::W32
    } else {
        Width::W64
    }
}

fn size_of(code: u8) -> Size {
    match code & 0x18 {
        size::W => Size::W,
        size::H => Size::H,
        size::B => Size::B,
        _ => Size::DW,
    }
}

fn size_bits(s: Size) -> u8 {
    match s {
        Size::W => size::W,
        Size::H => size::H,
        Size::B => size::B,
        Size::DW => size::DW,
    }
}

fn alu_code(op: AluOp) -> (u8, i16) {
    match op {
        AluOp::Add => (alu::ADD, 0),
        AluOp::Sub => (alu::SUB, 0),
        AluOp::Mul => (alu::MUL, 0),
        AluOp::Div => (alu::DIV, 0),
        AluOp::Sdiv => (alu::DIV, 1),
        AluOp::Mod => (alu::MOD, 0),
        AluOp::Smod => (alu::MOD, 1),
        AluOp::Or => (alu::OR, 0),
        AluOp::And => (alu::AND, 0),
        AluOp::Xor => (alu::XOR, 0),
        AluOp::Lsh => (alu::LSH, 0),
        AluOp::Rsh => (alu::RSH, 0),
        AluOp::Arsh => (alu::ARSH, 0),
        AluOp::Mov => (alu::MOV, 0),
    }
}

fn cond_code(c: Cond) -> u8 {
    match c {
        Cond::Eq => jmp::JEQ,
        Cond::Ne => jmp::JNE,
        Cond::Gt => jmp::JGT,
        Cond::Ge => jmp::JGE,
        Cond::Lt => jmp::JLT,
        Cond::Le => jmp::JLE,
        Cond::Sgt => jmp::JSGT,
        Cond::Sge => jmp::JSGE,
        Cond::Slt => jmp::JSLT,
        Cond::Sle => jmp::JSLE,
        Cond::Set => jmp::JSET,
    }
}

fn atomic_imm(op: AtomicOp) -> i32 {
    match op {
        AtomicOp::Add => atomic::ADD,
        AtomicOp::Or => atomic::OR,
        AtomicOp::And => atomic::AND,
        AtomicOp::Xor => atomic::XOR,
        AtomicOp::FetchAdd => atomic::ADD | atomic::FETCH,
        AtomicOp::FetchOr => atomic::OR | atomic::FETCH,
        AtomicOp::FetchAnd => atomic::AND | atomic::FETCH,
        AtomicOp::FetchXor => atomic::XOR | atomic::FETCH,
        AtomicOp::Xchg => atomic::XCHG,
        AtomicOp::Cmpxchg => atomic::CMPXCHG,
    }
}

fn operand_fields(s: Operand) -> (u8, u8, i32) {
    match s {
        Operand::Imm(i) => (src::K, 0, i),
        Operand::Reg(r) => (src::X, r.num(), 0),
    }
}

impl Insn {
    /// Appends the instruction's slots (one, or two for `LdImm64`) to `out`.
    pub fn encode_into(&self, out: &mut Vec<RawInsn>) {
        let r =
            |code: u8, dst: Reg, src: u8, off: i16, imm: i32| RawInsn { code, dst: dst.num(), src, off, imm };
        let alu_class = |w: Width| if w == Width::W32 { class::ALU } else { class::ALU64 };
        let jmp_class = |w: Width| if w == Width::W32 { class::JMP32 } else { class::JMP };
        let slot = match *self {
            Insn::Alu { width, op, dst, src } => {
                let (opc, off) = alu_code(op);
                let (s, sreg, imm) = operand_fields(src);
                r(alu_class(width) | opc | s, dst, sreg, off, imm)
            }
            Insn::Neg { width, dst } => r(alu_class(width) | alu::NEG, dst, 0, 0, 0),
            Insn::MovSx { width, from, dst, src: s } => {
                r(alu_class(width) | alu::MOV | src::X, dst, s.num(), from.bits() as i16, 0)
            }
            Insn::End { order, bits, dst } => {
                let code = match order {
                    ByteOrder::Le => class::ALU | alu::END | src::K,
                    ByteOrder::Be => class::ALU | alu::END | src::X,
                    ByteOrder::Swap => class::ALU64 | alu::END,
                };
                r(code, dst, 0, 0, bits as i32)
            }
            Insn::Ja { off } => r(class::JMP | jmp::JA, Reg::R0, 0, off, 0),
            Insn::JaLong { off } => r(class::JMP32 | jmp::JA, Reg::R0, 0, 0, off),
            Insn::Jmp { width, cond, dst, src, off } => {
                let (s, sreg, imm) = operand_fields(src);
                r(jmp_class(width) | cond_code(cond) | s, dst, sreg, off, imm)
            }
            Insn::Load { size: sz, signed, dst, src, off } => {
                let m = if signed { mode::MEMSX } else { mode::MEM };
                r(class::LDX | m | size_bits(sz), dst, src.num(), off, 0)
            }
            Insn::StoreImm { size: sz, dst, off, imm } => {
                r(class::ST | mode::MEM | size_bits(sz), dst, 0, off, imm)
            }
            Insn::Store { size: sz, dst, src, off } => {
                r(class::STX | mode::MEM | size_bits(sz), dst, src.num(), off, 0)
            }
            Insn::Atomic { size: sz, op, dst, src, off } => {
                r(class::STX | mode::ATOMIC | size_bits(sz), dst, src.num(), off, atomic_imm(op))
            }
            Insn::LdImm64 { dst, pseudo, imm } => {
                out.push(r(class::LD | mode::IMM | size::DW, dst, pseudo, 0, imm as u32 as i32));
                RawInsn { imm: (imm >> 32) as u32 as i32, ..RawInsn::default() }
            }
            Insn::Call(c) => {
                let (s, imm) = match c {
                    Call::Helper(id) => (pseudo_call::HELPER, id),
                    Call::Local(off) => (pseudo_call::LOCAL, off),
                    Call::Kfunc(id) => (pseudo_call::KFUNC, id),
                };
                r(class::JMP | jmp::CALL, Reg::R0, s, 0, imm)
            }
            Insn::LoadPacket { size: sz, index, imm } => {
                let (m, src) = index.map_or((mode::ABS, 0), |x| (mode::IND, x.num()));
                r(class::LD | m | size_bits(sz), Reg::R0, src, 0, imm)
            }
            Insn::TailCall => r(class::JMP | jmp::TAIL_CALL, Reg::R0, 0, 0, 0),
            Insn::Exit => r(class::JMP | jmp::EXIT, Reg::R0, 0, 0, 0),
        };
        out.push(slot);
    }

    /// The instruction's slots.
    pub fn encode(&self) -> Vec<RawInsn> {
        let mut v = Vec::with_capacity(2);
        self.encode_into(&mut v);
        v
    }
}

/// Decodes a sequence of slots into instructions (an `LdImm64` consumes two slots).
///
/// Accepts exactly the encodings [`Insn::encode_into`] produces, plus the kernel-internal
/// `BPF_ZEXT_REG` (`mov32 rX, rX` with `imm = 1`), which decodes as a plain `mov32`.
pub fn decode(slots: &[RawInsn]) -> Result<Vec<Insn>, DecodeError> {
    let mut out = Vec::with_capacity(slots.len());
    let mut i = 0;
    while i < slots.len() {
        let insn = decode_one(slots, i)?;
        i += insn.slots();
        out.push(insn);
    }
    Ok(out)
}

/// Decodes raw little-endian bytes (a multiple of 8) into instructions.
pub fn decode_bytes(bytes: &[u8]) -> Result<Vec<Insn>, DecodeError> {
    if !bytes.len().is_multiple_of(8) {
        return Err(DecodeError {
            slot: bytes.len() / 8,
            problem: format!(
                "truncated: {} bytes is not a whole number of 8-byte instructions ({} stray bytes at the end)",
                bytes.len(),
                bytes.len() % 8
            ),
        });
    }
    let slots: Vec<RawInsn> = bytes
        .chunks_exact(8)
        .map(|c| RawInsn::from_bytes(c.try_into().expect("chunks_exact gives 8 bytes")))
        .collect();
    decode(&slots)
}

/// Encodes instructions into little-endian bytes.
pub fn encode_bytes(insns: &[Insn]) -> Vec<u8> {
    let mut slots = Vec::with_capacity(insns.len() + 4);
    for i in insns {
        i.encode_into(&mut slots);
    }
    slots.iter().flat_map(|s| s.to_bytes()).collect()
}

fn decode_one(slots: &[RawInsn], i: usize) -> Result<Insn, DecodeError> {
    let s = slots[i];
    let bad = |problem: String| DecodeError { slot: i, problem };
    let unused = |what: &str, ok: bool| -> Result<(), DecodeError> {
        if ok {
            Ok(())
        } else {
            Err(bad(format!("opcode {:#04x}: reserved field {what} is not zero", s.code)))
        }
    };
    let cls = s.code & 0x07;
    let dst = reg(s.dst, i, "destination")?;
    match cls {
        class::ALU | class::ALU64 => {
            let width = width_of(cls);
            let op = s.code & 0xf0;
            let is_x = s.code & src::X != 0;
            let operand = |off_ok: bool| -> Result<Operand, DecodeError> {
                unused("off", off_ok)?;
                if is_x {
                    unused("imm", s.imm == 0)?;
                    Ok(Operand::Reg(reg(s.src, i, "source")?))
                } else {
                    unused("src", s.src == 0)?;
                    Ok(Operand::Imm(s.imm))
                }
            };
            let binop = |aop: AluOp, off_ok: bool| -> Result<Insn, DecodeError> {
                Ok(Insn::Alu { width, op: aop, dst, src: operand(off_ok)? })
            };
            match op {
                alu::ADD => binop(AluOp::Add, s.off == 0),
                alu::SUB => binop(AluOp::Sub, s.off == 0),
                alu::MUL => binop(AluOp::Mul, s.off == 0),
                alu::OR => binop(AluOp::Or, s.off == 0),
                alu::AND => binop(AluOp::And, s.off == 0),
                alu::XOR => binop(AluOp::Xor, s.off == 0),
                alu::LSH => binop(AluOp::Lsh, s.off == 0),
                alu::RSH => binop(AluOp::Rsh, s.off == 0),
                alu::ARSH => binop(AluOp::Arsh, s.off == 0),
                alu::DIV | alu::MOD => {
                    let signed = match s.off {
                        0 => false,
                        1 => true,
                        o => return Err(bad(format!("div/mod with off = {o} (0 or 1 expected)"))),
                    };
                    let aop = match (op == alu::DIV, signed) {
                        (true, false) => AluOp::Div,
                        (true, true) => AluOp::Sdiv,
                        (false, false) => AluOp::Mod,
                        (false, true) => AluOp::Smod,
                    };
                    binop(aop, true)
                }
                alu::MOV => {
                    if is_x && s.off != 0 {
                        let from = match (s.off, width) {
                            (8, _) => SxBits::S8,
                            (16, _) => SxBits::S16,
                            (32, Width::W64) => SxBits::S32,
                            (o, _) => {
                                return Err(bad(format!(
                                    "movsx with off = {o} (8, 16{} expected)",
                                    if width == Width::W64 { " or 32" } else { "" }
                                )))
                            }
                        };
                        unused("imm", s.imm == 0)?;
                        return Ok(Insn::MovSx { width, from, dst, src: reg(s.src, i, "source")? });
                    }
                    // BPF_ZEXT_REG: `mov32 rX, rX` with imm = 1, emitted by the kernel itself.
                    if is_x && width == Width::W32 && s.imm == 1 && s.src == s.dst {
                        return Ok(Insn::Alu { width, op: AluOp::Mov, dst, src: Operand::Reg(dst) });
                    }
                    binop(AluOp::Mov, s.off == 0)
                }
                alu::NEG => {
                    unused("src/off/imm", s.src == 0 && s.off == 0 && s.imm == 0 && !is_x)?;
                    Ok(Insn::Neg { width, dst })
                }
                alu::END => {
                    unused("src/off", s.src == 0 && s.off == 0)?;
                    if !matches!(s.imm, 16 | 32 | 64) {
                        return Err(bad(format!("byte swap width {} (16, 32 or 64 expected)", s.imm)));
                    }
                    let order = match (width, is_x) {
                        (Width::W32, false) => ByteOrder::Le,
                        (Width::W32, true) => ByteOrder::Be,
                        (Width::W64, false) => ByteOrder::Swap,
                        (Width::W64, true) => {
                            return Err(bad(format!("opcode {:#04x} is not a valid byte swap", s.code)))
                        }
                    };
                    Ok(Insn::End { order, bits: s.imm as u8, dst })
                }
                _ => Err(bad(format!("unknown ALU opcode {:#04x}", s.code))),
            }
        }
        class::JMP | class::JMP32 => {
            let width = width_of(cls);
            let op = s.code & 0xf0;
            let is_x = s.code & src::X != 0;
            let cond = match op {
                jmp::JA => {
                    unused("src/dst", s.src == 0 && s.dst == 0 && !is_x)?;
                    return if width == Width::W64 {
                        unused("imm", s.imm == 0)?;
                        Ok(Insn::Ja { off: s.off })
                    } else {
                        unused("off", s.off == 0)?;
                        Ok(Insn::JaLong { off: s.imm })
                    };
                }
                jmp::CALL if width == Width::W64 && !is_x => {
                    unused("dst/off", s.dst == 0 && s.off == 0)?;
                    return match s.src {
                        pseudo_call::HELPER => Ok(Insn::Call(Call::Helper(s.imm))),
                        pseudo_call::LOCAL => Ok(Insn::Call(Call::Local(s.imm))),
                        pseudo_call::KFUNC => Ok(Insn::Call(Call::Kfunc(s.imm))),
                        o => Err(bad(format!("call with src = {o} (0, 1 or 2 expected)"))),
                    };
                }
                jmp::EXIT if width == Width::W64 && !is_x => {
                    unused("dst/src/off/imm", s.dst == 0 && s.src == 0 && s.off == 0 && s.imm == 0)?;
                    return Ok(Insn::Exit);
                }
                jmp::TAIL_CALL if width == Width::W64 && !is_x => {
                    unused("dst/src/off/imm", s.dst == 0 && s.src == 0 && s.off == 0 && s.imm == 0)?;
                    return Ok(Insn::TailCall);
                }
                jmp::JEQ => Cond::Eq,
                jmp::JNE => Cond::Ne,
                jmp::JGT => Cond::Gt,
                jmp::JGE => Cond::Ge,
                jmp::JLT => Cond::Lt,
                jmp::JLE => Cond::Le,
                jmp::JSGT => Cond::Sgt,
                jmp::JSGE => Cond::Sge,
                jmp::JSLT => Cond::Slt,
                jmp::JSLE => Cond::Sle,
                jmp::JSET => Cond::Set,
                _ => return Err(bad(format!("unknown jump opcode {:#04x}", s.code))),
            };
            let src = if is_x {
                unused("imm", s.imm == 0)?;
                Operand::Reg(reg(s.src, i, "source")?)
            } else {
                unused("src", s.src == 0)?;
                Operand::Imm(s.imm)
            };
            Ok(Insn::Jmp { width, cond, dst, src, off: s.off })
        }
        class::LDX => {
            let m = s.code & 0xe0;
            let sz = size_of(s.code);
            let signed = match m {
                mode::MEM => false,
                mode::MEMSX if sz != Size::DW => true,
                _ => return Err(bad(format!("unsupported load opcode {:#04x}", s.code))),
            };
            unused("imm", s.imm == 0)?;
            Ok(Insn::Load { size: sz, signed, dst, src: reg(s.src, i, "source")?, off: s.off })
        }
        class::ST => {
            if s.code & 0xe0 != mode::MEM {
                return Err(bad(format!("unsupported store opcode {:#04x}", s.code)));
            }
            unused("src", s.src == 0)?;
            Ok(Insn::StoreImm { size: size_of(s.code), dst, off: s.off, imm: s.imm })
        }
        class::STX => {
            let sz = size_of(s.code);
            let sreg = reg(s.src, i, "source")?;
            match s.code & 0xe0 {
                mode::MEM => {
                    unused("imm", s.imm == 0)?;
                    Ok(Insn::Store { size: sz, dst, src: sreg, off: s.off })
                }
                mode::ATOMIC if matches!(sz, Size::W | Size::DW) => {
                    let op = AtomicOp::ALL
                        .into_iter()
                        .find(|&o| atomic_imm(o) == s.imm)
                        .ok_or_else(|| bad(format!("unknown atomic operation imm = {:#x}", s.imm)))?;
                    Ok(Insn::Atomic { size: sz, op, dst, src: sreg, off: s.off })
                }
                _ => Err(bad(format!("unsupported store opcode {:#04x}", s.code))),
            }
        }
        class::LD if matches!(s.code & 0xe0, mode::ABS | mode::IND) => {
            let sz = size_of(s.code);
            if sz == Size::DW {
                return Err(bad(format!("opcode {:#04x}: legacy packet loads are B, H or W", s.code)));
            }
            unused("dst", s.dst == 0)?;
            unused("off", s.off == 0)?;
            let index = if s.code & 0xe0 == mode::IND {
                Some(reg(s.src, i, "index")?)
            } else {
                unused("src", s.src == 0)?;
                None
            };
            Ok(Insn::LoadPacket { size: sz, index, imm: s.imm })
        }
        class::LD => {
            if s.code != (class::LD | mode::IMM | size::DW) {
                return Err(bad(format!("unsupported LD opcode {:#04x}", s.code)));
            }
            unused("off", s.off == 0)?;
            let Some(hi) = slots.get(i + 1) else {
                return Err(bad("64-bit immediate load (lddw) is missing its second slot".into()));
            };
            if hi.code != 0 || hi.dst != 0 || hi.src != 0 || hi.off != 0 {
                return Err(DecodeError {
                    slot: i + 1,
                    problem: "second slot of a 64-bit immediate load must have only imm set".into(),
                });
            }
            let imm = (s.imm as u32 as u64) | ((hi.imm as u32 as u64) << 32);
            Ok(Insn::LdImm64 { dst, pseudo: s.src, imm })
        }
        _ => unreachable!("class is 3 bits and all 8 values are matched"),
    }
}
