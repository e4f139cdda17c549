//! The RV64IMA instructions the JIT emits, as typed values with their encoding and
//! their objdump-style text.

use std::fmt;

use super::encode::{encode_b, encode_i, encode_j, encode_r, encode_s, encode_u};
use super::imm::{Imm12, Imm13, Imm20, Imm21};
use super::reg::XReg;

/// Register-register operations (R-type, opcodes OP and OP-32, including M).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ROp {
    /// add
    Add,
    /// sub
    Sub,
    /// shift left logical (low 6 bits of rs2)
    Sll,
    /// set if less than (signed)
    Slt,
    /// set if less than (unsigned)
    Sltu,
    /// xor
    Xor,
    /// shift right logical
    Srl,
    /// shift right arithmetic
    Sra,
    /// or
    Or,
    /// and
    And,
    /// multiply (low 64 bits)
    Mul,
    /// divide (signed)
    Div,
    /// divide (unsigned)
    Divu,
    /// remainder (signed)
    Rem,
    /// remainder (unsigned)
    Remu,
    /// 32-bit add, result sign-extended
    Addw,
    /// 32-bit sub, result sign-extended
    Subw,
    /// 32-bit shift left (low 5 bits of rs2)
    Sllw,
    /// 32-bit shift right logical
    Srlw,
    /// 32-bit shift right arithmetic
    Sraw,
    /// 32-bit multiply
    Mulw,
    /// 32-bit signed divide
    Divw,
    /// 32-bit unsigned divide
    Divuw,
    /// 32-bit signed remainder
    Remw,
    /// 32-bit unsigned remainder
    Remuw,
}

impl ROp {
    /// (opcode, funct3, funct7) of the operation.
    pub const fn fields(self) -> (u32, u32, u32) {
        const OP: u32 = 0b011_0011;
        const OP32: u32 = 0b011_1011;
        match self {
            ROp::Add => (OP, 0, 0),
            ROp::Sub => (OP, 0, 0x20),
            ROp::Sll => (OP, 1, 0),
            ROp::Slt => (OP, 2, 0),
            ROp::Sltu => (OP, 3, 0),
            ROp::Xor => (OP, 4, 0),
            ROp::Srl => (OP, 5, 0),
            ROp::Sra => (OP, 5, 0x20),
            ROp::Or => (OP, 6, 0),
            ROp::And => (OP, 7, 0),
            ROp::Mul => (OP, 0, 1),
            ROp::Div => (OP, 4, 1),
            ROp::Divu => (OP, 5, 1),
            ROp::Rem => (OP, 6, 1),
            ROp::Remu => (OP, 7, 1),
            ROp::Addw => (OP32, 0, 0),
            ROp::Subw => (OP32, 0, 0x20),
            ROp::Sllw => (OP32, 1, 0),
            ROp::Srlw => (OP32, 5, 0),
            ROp::Sraw => (OP32, 5, 0x20),
            ROp::Mulw => (OP32, 0, 1),
            ROp::Divw => (OP32, 4, 1),
            ROp::Divuw => (OP32, 5, 1),
            ROp::Remw => (OP32, 6, 1),
            ROp::Remuw => (OP32, 7, 1),
        }
    }

    /// The mnemonic.
    pub const fn name(self) -> &'static str {
        match self {
            ROp::Add => "add",
            ROp::Sub => "sub",
            ROp::Sll => "sll",
            ROp::Slt => "slt",
            ROp::Sltu => "sltu",
            ROp::Xor => "xor",
            ROp::Srl => "srl",
            ROp::Sra => "sra",
            ROp::Or => "or",
            ROp::And => "and",
            ROp::Mul => "mul",
            ROp::Div => "div",
            ROp::Divu => "divu",
            ROp::Rem => "rem",
            ROp::Remu => "remu",
            ROp::Addw => "addw",
            ROp::Subw => "subw",
            ROp::Sllw => "sllw",
            ROp::Srlw => "srlw",
            ROp::Sraw => "sraw",
            ROp::Mulw => "mulw",
            ROp::Divw => "divw",
            ROp::Divuw => "divuw",
            ROp::Remw => "remw",
            ROp::Remuw => "remuw",
        }
    }
}

/// Register-immediate operations (I-type, opcodes OP-IMM and OP-IMM-32, no shifts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IOp {
    /// add immediate
    Addi,
    /// set if less than immediate (signed)
    Slti,
    /// set if less than immediate (unsigned compare of the sign-extended immediate)
    Sltiu,
    /// xor immediate
    Xori,
    /// or immediate
    Ori,
    /// and immediate
    Andi,
    /// 32-bit add immediate, result sign-extended
    Addiw,
}

impl IOp {
    /// (opcode, funct3).
    pub const fn fields(self) -> (u32, u32) {
        match self {
            IOp::Addi => (0b001_0011, 0),
            IOp::Slti => (0b001_0011, 2),
            IOp::Sltiu => (0b001_0011, 3),
            IOp::Xori => (0b001_0011, 4),
            IOp::Ori => (0b001_0011, 6),
            IOp::Andi => (0b001_0011, 7),
            IOp::Addiw => (0b001_1011, 0),
        }
    }

    /// The mnemonic.
    pub const fn name(self) -> &'static str {
        match self {
            IOp::Addi => "addi",
            IOp::Slti => "slti",
            IOp::Sltiu => "sltiu",
            IOp::Xori => "xori",
            IOp::Ori => "ori",
            IOp::Andi => "andi",
            IOp::Addiw => "addiw",
        }
    }
}

/// Shifts by an immediate amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShiftOp {
    /// 64-bit shift left (amount 0..=63)
    Slli,
    /// 64-bit shift right logical
    Srli,
    /// 64-bit shift right arithmetic
    Srai,
    /// 32-bit shift left (amount 0..=31), result sign-extended
    Slliw,
    /// 32-bit shift right logical
    Srliw,
    /// 32-bit shift right arithmetic
    Sraiw,
}

impl ShiftOp {
    /// (opcode, funct3, funct6 placed in bits 31..26, largest amount).
    pub const fn fields(self) -> (u32, u32, u32, u8) {
        match self {
            ShiftOp::Slli => (0b001_0011, 1, 0, 63),
            ShiftOp::Srli => (0b001_0011, 5, 0, 63),
            ShiftOp::Srai => (0b001_0011, 5, 0x10, 63),
            ShiftOp::Slliw => (0b001_1011, 1, 0, 31),
            ShiftOp::Srliw => (0b001_1011, 5, 0, 31),
            ShiftOp::Sraiw => (0b001_1011, 5, 0x10, 31),
        }
    }

    /// The mnemonic.
    pub const fn name(self) -> &'static str {
        match self {
            ShiftOp::Slli => "slli",
            ShiftOp::Srli => "srli",
            ShiftOp::Srai => "srai",
            ShiftOp::Slliw => "slliw",
            ShiftOp::Srliw => "srliw",
            ShiftOp::Sraiw => "sraiw",
        }
    }
}

/// Loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadOp {
    /// signed byte
    Lb,
    /// signed half
    Lh,
    /// signed word
    Lw,
    /// double word
    Ld,
    /// unsigned byte
    Lbu,
    /// unsigned half
    Lhu,
    /// unsigned word
    Lwu,
}

impl LoadOp {
    /// funct3.
    pub const fn funct3(self) -> u32 {
        match self {
            LoadOp::Lb => 0,
            LoadOp::Lh => 1,
            LoadOp::Lw => 2,
            LoadOp::Ld => 3,
            LoadOp::Lbu => 4,
            LoadOp::Lhu => 5,
            LoadOp::Lwu => 6,
        }
    }

    /// The mnemonic.
    pub const fn name(self) -> &'static str {
        match self {
            LoadOp::Lb => "lb",
            LoadOp::Lh => "lh",
            LoadOp::Lw => "lw",
            LoadOp::Ld => "ld",
            LoadOp::Lbu => "lbu",
            LoadOp::Lhu => "lhu",
            LoadOp::Lwu => "lwu",
        }
    }
}

/// Stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// byte
    Sb,
    /// half
    Sh,
    /// word
    Sw,
    /// double word
    Sd,
}

impl StoreOp {
    /// funct3.
    pub const fn funct3(self) -> u32 {
        match self {
            StoreOp::Sb => 0,
            StoreOp::Sh => 1,
            StoreOp::Sw => 2,
            StoreOp::Sd => 3,
        }
    }

    /// The mnemonic.
    pub const fn name(self) -> &'static str {
        match self {
            StoreOp::Sb => "sb",
            StoreOp::Sh => "sh",
            StoreOp::Sw => "sw",
            StoreOp::Sd => "sd",
        }
    }
}

/// Conditional branches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BranchOp {
    /// ==
    Beq,
    /// !=
    Bne,
    /// signed <
    Blt,
    /// signed >=
    Bge,
    /// unsigned <
    Bltu,
    /// unsigned >=
    Bgeu,
}

impl BranchOp {
    /// funct3.
    pub const fn funct3(self) -> u32 {
        match self {
            BranchOp::Beq => 0,
            BranchOp::Bne => 1,
            BranchOp::Blt => 4,
            BranchOp::Bge => 5,
            BranchOp::Bltu => 6,
            BranchOp::Bgeu => 7,
        }
    }

    /// The branch taken exactly when this one is not.
    pub const fn invert(self) -> BranchOp {
        match self {
            BranchOp::Beq => BranchOp::Bne,
            BranchOp::Bne => BranchOp::Beq,
            BranchOp::Blt => BranchOp::Bge,
            BranchOp::Bge => BranchOp::Blt,
            BranchOp::Bltu => BranchOp::Bgeu,
            BranchOp::Bgeu => BranchOp::Bltu,
        }
    }

    /// The mnemonic.
    pub const fn name(self) -> &'static str {
        match self {
            BranchOp::Beq => "beq",
            BranchOp::Bne => "bne",
            BranchOp::Blt => "blt",
            BranchOp::Bge => "bge",
            BranchOp::Bltu => "bltu",
            BranchOp::Bgeu => "bgeu",
        }
    }
}

/// Atomic memory operations (A extension).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmoOp {
    /// swap
    Swap,
    /// add
    Add,
    /// xor
    Xor,
    /// and
    And,
    /// or
    Or,
}

impl AmoOp {
    /// funct5.
    pub const fn funct5(self) -> u32 {
        match self {
            AmoOp::Add => 0b00000,
            AmoOp::Swap => 0b00001,
            AmoOp::Xor => 0b00100,
            AmoOp::Or => 0b01000,
            AmoOp::And => 0b01100,
        }
    }

    /// The mnemonic stem (`amoadd`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            AmoOp::Swap => "amoswap",
            AmoOp::Add => "amoadd",
            AmoOp::Xor => "amoxor",
            AmoOp::And => "amoand",
            AmoOp::Or => "amoor",
        }
    }
}

/// Width of an atomic access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmoWidth {
    /// 32 bits (`.w`); loaded values are sign-extended.
    W,
    /// 64 bits (`.d`).
    D,
}

impl AmoWidth {
    const fn funct3(self) -> u32 {
        match self {
            AmoWidth::W => 2,
            AmoWidth::D => 3,
        }
    }

    const fn suffix(self) -> &'static str {
        match self {
            AmoWidth::W => "w",
            AmoWidth::D => "d",
        }
    }
}

/// One RV64 instruction (32-bit encodings only; the JIT emits no compressed forms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inst {
    /// `op rd, rs1, rs2`
    R {
        /// operation
        op: ROp,
        /// destination
        rd: XReg,
        /// first source
        rs1: XReg,
        /// second source
        rs2: XReg,
    },
    /// `op rd, rs1, imm`
    I {
        /// operation
        op: IOp,
        /// destination
        rd: XReg,
        /// source
        rs1: XReg,
        /// immediate
        imm: Imm12,
    },
    /// `op rd, rs1, shamt`
    Shift {
        /// operation
        op: ShiftOp,
        /// destination
        rd: XReg,
        /// source
        rs1: XReg,
        /// amount; checked against the operation's width when encoding
        shamt: u8,
    },
    /// `op rd, imm(rs1)`
    Load {
        /// width and extension
        op: LoadOp,
        /// destination
        rd: XReg,
        /// base
        rs1: XReg,
        /// offset
        imm: Imm12,
    },
    /// `op rs2, imm(rs1)`
    Store {
        /// width
        op: StoreOp,
        /// value
        rs2: XReg,
        /// base
        rs1: XReg,
        /// offset
        imm: Imm12,
    },
    /// `op rs1, rs2, off` (pc-relative)
    Branch {
        /// condition
        op: BranchOp,
        /// first operand
        rs1: XReg,
        /// second operand
        rs2: XReg,
        /// byte offset from this instruction
        off: Imm13,
    },
    /// `lui rd, imm`: `rd = sext(imm << 12)`
    Lui {
        /// destination
        rd: XReg,
        /// upper immediate
        imm: Imm20,
    },
    /// `auipc rd, imm`: `rd = pc + sext(imm << 12)`
    Auipc {
        /// destination
        rd: XReg,
        /// upper immediate
        imm: Imm20,
    },
    /// `jal rd, off`
    Jal {
        /// link register
        rd: XReg,
        /// byte offset from this instruction
        off: Imm21,
    },
    /// `jalr rd, imm(rs1)`
    Jalr {
        /// link register
        rd: XReg,
        /// base
        rs1: XReg,
        /// offset
        imm: Imm12,
    },
    /// `amo<op>.<w|d>[.aqrl] rd, rs2, (rs1)`
    Amo {
        /// operation
        op: AmoOp,
        /// access width
        width: AmoWidth,
        /// acquire + release ordering
        aqrl: bool,
        /// receives the old value
        rd: XReg,
        /// address
        rs1: XReg,
        /// operand
        rs2: XReg,
    },
    /// `lr.<w|d>.aqrl rd, (rs1)`
    Lr {
        /// access width
        width: AmoWidth,
        /// destination
        rd: XReg,
        /// address
        rs1: XReg,
    },
    /// `sc.<w|d>.aqrl rd, rs2, (rs1)`: rd = 0 on success
    Sc {
        /// access width
        width: AmoWidth,
        /// status
        rd: XReg,
        /// address
        rs1: XReg,
        /// value
        rs2: XReg,
    },
    /// `ebreak`
    Ebreak,
}

impl Inst {
    /// `addi rd, rs, 0`
    pub fn mv(rd: XReg, rs: XReg) -> Inst {
        Inst::I { op: IOp::Addi, rd, rs1: rs, imm: Imm12::ZERO }
    }

    /// `addi zero, zero, 0`
    pub fn nop() -> Inst {
        Inst::mv(XReg::ZERO, XReg::ZERO)
    }

    /// The 32-bit machine word. Panics only if a shift amount exceeds its operation's
    /// width, which the typed emitters never produce.
    pub fn encode(self) -> u32 {
        match self {
            Inst::R { op, rd, rs1, rs2 } => {
                let (opc, f3, f7) = op.fields();
                encode_r(opc, rd, f3, rs1, rs2, f7)
            }
            Inst::I { op, rd, rs1, imm } => {
                let (opc, f3) = op.fields();
                encode_i(opc, rd, f3, rs1, imm.get() as i32)
            }
            Inst::Shift { op, rd, rs1, shamt } => {
                let (opc, f3, f6, max) = op.fields();
                assert!(shamt <= max, "shift amount {shamt} out of range for {}", op.name());
                encode_i(opc, rd, f3, rs1, ((f6 << 6) | shamt as u32) as i32)
            }
            Inst::Load { op, rd, rs1, imm } => encode_i(0b000_0011, rd, op.funct3(), rs1, imm.get() as i32),
            Inst::Store { op, rs2, rs1, imm } => {
                encode_s(0b010_0011, op.funct3(), rs1, rs2, imm.get() as i32)
            }
            Inst::Branch { op, rs1, rs2, off } => {
                encode_b(0b110_0011, op.funct3(), rs1, rs2, off.get() as i32)
            }
            Inst::Lui { rd, imm } => encode_u(0b011_0111, rd, imm.get() as i32),
            Inst::Auipc { rd, imm } => encode_u(0b001_0111, rd, imm.get() as i32),
            Inst::Jal { rd, off } => encode_j(0b110_1111, rd, off.get() as i32),
            Inst::Jalr { rd, rs1, imm } => encode_i(0b110_0111, rd, 0, rs1, imm.get() as i32),
            Inst::Amo { op, width, aqrl, rd, rs1, rs2 } => {
                let f7 = (op.funct5() << 2) | if aqrl { 0b11 } else { 0 };
                encode_r(0b010_1111, rd, width.funct3(), rs1, rs2, f7)
            }
            Inst::Lr { width, rd, rs1 } => {
                encode_r(0b010_1111, rd, width.funct3(), rs1, XReg::ZERO, (0b00010 << 2) | 0b11)
            }
            Inst::Sc { width, rd, rs1, rs2 } => {
                encode_r(0b010_1111, rd, width.funct3(), rs1, rs2, (0b00011 << 2) | 0b11)
            }
            Inst::Ebreak => 0x0010_0073,
        }
    }
}

/// Formats an immediate as Capstone does: decimal from -9 to 9, hexadecimal beyond.
fn fmt_imm(v: i64) -> String {
    if (-9..=9).contains(&v) {
        v.to_string()
    } else if v < 0 {
        format!("-{:#x}", v.unsigned_abs())
    } else {
        format!("{v:#x}")
    }
}

/// Capstone's text for the instruction, with the aliases it prints (`nop`, `mv`,
/// `ret`, `j`, `jr`, `neg`, `not`, `seqz`, `snez`, `sext.w`, `beqz`, ...); branch and jump targets are offsets relative to the instruction.
impl fmt::Display for Inst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Inst::R { op: ROp::Sub, rd, rs1: XReg::ZERO, rs2 } => write!(f, "neg {rd}, {rs2}"),
            Inst::R { op: ROp::Subw, rd, rs1: XReg::ZERO, rs2 } => write!(f, "negw {rd}, {rs2}"),
            Inst::R { op: ROp::Sltu, rd, rs1: XReg::ZERO, rs2 } => write!(f, "snez {rd}, {rs2}"),
            Inst::R { op, rd, rs1, rs2 } => write!(f, "{} {rd}, {rs1}, {rs2}", op.name()),
            Inst::I { op: IOp::Sltiu, rd, rs1, imm } if imm.get() == 1 => write!(f, "seqz {rd}, {rs1}"),
            Inst::I { op: IOp::Xori, rd, rs1, imm } if imm.get() == -1 => write!(f, "not {rd}, {rs1}"),
            Inst::I { op: IOp::Addi, rd: XReg::ZERO, rs1: XReg::ZERO, imm } if imm.get() == 0 => {
                f.write_str("nop")
            }
            Inst::I { op: IOp::Addi, rd, rs1, imm } if imm.get() == 0 => write!(f, "mv {rd}, {rs1}"),
            Inst::I { op: IOp::Addiw, rd, rs1, imm } if imm.get() == 0 => write!(f, "sext.w {rd}, {rs1}"),
            Inst::I { op, rd, rs1, imm } => write!(f, "{} {rd}, {rs1}, {}", op.name(), fmt_imm(imm.get())),
            Inst::Shift { op, rd, rs1, shamt } => {
                write!(f, "{} {rd}, {rs1}, {}", op.name(), fmt_imm(shamt.into()))
            }
            Inst::Load { op, rd, rs1, imm } => write!(f, "{} {rd}, {}({rs1})", op.name(), fmt_imm(imm.get())),
            Inst::Store { op, rs2, rs1, imm } => {
                write!(f, "{} {rs2}, {}({rs1})", op.name(), fmt_imm(imm.get()))
            }
            Inst::Branch { op, rs1, rs2: XReg::ZERO, off }
                if op != BranchOp::Bltu && op != BranchOp::Bgeu =>
            {
                let alias = match op {
                    BranchOp::Beq => "beqz",
                    BranchOp::Bne => "bnez",
                    BranchOp::Blt => "bltz",
                    _ => "bgez",
                };
                write!(f, "{alias} {rs1}, {}", fmt_imm(off.get()))
            }
            Inst::Branch { op: op @ (BranchOp::Blt | BranchOp::Bge), rs1: XReg::ZERO, rs2, off } => {
                let alias = if op == BranchOp::Blt { "bgtz" } else { "blez" };
                write!(f, "{alias} {rs2}, {}", fmt_imm(off.get()))
            }
            Inst::Branch { op, rs1, rs2, off } => {
                write!(f, "{} {rs1}, {rs2}, {}", op.name(), fmt_imm(off.get()))
            }
            Inst::Lui { rd, imm } => write!(f, "lui {rd}, {}", fmt_imm(imm.get() & 0xf_ffff)),
            Inst::Auipc { rd, imm } => write!(f, "auipc {rd}, {}", fmt_imm(imm.get() & 0xf_ffff)),
            Inst::Jal { rd: XReg::ZERO, off } => write!(f, "j {}", fmt_imm(off.get())),
            Inst::Jal { rd: XReg::RA, off } => write!(f, "jal {}", fmt_imm(off.get())),
            Inst::Jal { rd, off } => write!(f, "jal {rd}, {}", fmt_imm(off.get())),
            Inst::Jalr { rd: XReg::ZERO, rs1: XReg::RA, imm } if imm.get() == 0 => f.write_str("ret"),
            Inst::Jalr { rd: XReg::ZERO, rs1, imm } if imm.get() == 0 => write!(f, "jr {rs1}"),
            Inst::Jalr { rd: XReg::RA, rs1, imm } if imm.get() == 0 => write!(f, "jalr {rs1}"),
            Inst::Jalr { rd, rs1, imm } => write!(f, "jalr {rd}, {rs1}, {}", fmt_imm(imm.get())),
            Inst::Amo { op, width, aqrl, rd, rs1, rs2 } => write!(
                f,
                "{}.{}{} {rd}, {rs2}, ({rs1})",
                op.name(),
                width.suffix(),
                if aqrl { ".aqrl" } else { "" }
            ),
            Inst::Lr { width, rd, rs1 } => write!(f, "lr.{}.aqrl {rd}, ({rs1})", width.suffix()),
            Inst::Sc { width, rd, rs1, rs2 } => write!(f, "sc.{}.aqrl {rd}, {rs2}, ({rs1})", width.suffix()),
            Inst::Ebreak => f.write_str("ebreak"),
        }
    }
}
