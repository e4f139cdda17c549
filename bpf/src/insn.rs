//! The typed eBPF instruction model.
//!
//! Every instruction the foundation supports is one variant of [`Insn`]; operands use
//! checked newtypes ([`Reg`]) and small enums, so an `Insn` value can always be encoded.
//! Jump and call offsets are counted in 8-byte slots, exactly as on the wire, so that
//! the program counters printed anywhere in jitdiff are the kernel's.

use std::fmt;

/// An eBPF register, `r0` to `r10`. Construction checks the range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reg(u8);

impl Reg {
    /// Return value and scratch.
    pub const R0: Reg = Reg(0);
    /// First argument; the context pointer at entry.
    pub const R1: Reg = Reg(1);
    /// Second argument.
    pub const R2: Reg = Reg(2);
    /// Third argument.
    pub const R3: Reg = Reg(3);
    /// Fourth argument.
    pub const R4: Reg = Reg(4);
    /// Fifth argument.
    pub const R5: Reg = Reg(5);
    /// Callee-saved.
    pub const R6: Reg = Reg(6);
    /// Callee-saved.
    pub const R7: Reg = Reg(7);
    /// Callee-saved.
    pub const R8: Reg = Reg(8);
    /// Callee-saved.
    pub const R9: Reg = Reg(9);
    /// Read-only frame pointer.
    pub const R10: Reg = Reg(10);
    /// Every register, in number order.
    pub const ALL: [Reg; 11] =
        [Reg(0), Reg(1), Reg(2), Reg(3), Reg(4), Reg(5), Reg(6), Reg(7), Reg(8), Reg(9), Reg(10)];

    /// The register numbered `n`, or `None` when `n > 10`.
    pub const fn new(n: u8) -> Option<Reg> {
        if n <= 10 {
            Some(Reg(n))
        } else {
            None
        }
    }

    /// The register's number, 0 to 10.
    pub const fn num(self) -> u8 {
        self.0
    }

    /// The register's number as an index, 0 to 10.
    pub const fn idx(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Operation width of an ALU or jump instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Width {
    /// `BPF_ALU` / `BPF_JMP32`: operates on the low 32 bits; ALU results are zero-extended.
    W32,
    /// `BPF_ALU64` / `BPF_JMP`: operates on all 64 bits.
    W64,
}

/// The second operand of an ALU or conditional jump: an immediate (`BPF_K`) or a register (`BPF_X`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    /// A 32-bit immediate; 64-bit operations sign-extend it.
    Imm(i32),
    /// A register.
    Reg(Reg),
}

/// Binary ALU operations (everything in `BPF_ALU`/`BPF_ALU64` but NEG, END and MOVSX).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AluOp {
    /// `+=`
    Add,
    /// `-=`
    Sub,
    /// `*=`
    Mul,
    /// Unsigned `/=`; division by zero gives 0.
    Div,
    /// Signed `s/=` (cpu v4, `off = 1`).
    Sdiv,
    /// Unsigned `%=`; modulo by zero leaves the dividend.
    Mod,
    /// Signed `s%=` (cpu v4, `off = 1`).
    Smod,
    /// `|=`
    Or,
    /// `&=`
    And,
    /// `^=`
    Xor,
    /// `<<=`, count masked to the width.
    Lsh,
    /// Logical `>>=`, count masked to the width.
    Rsh,
    /// Arithmetic `s>>=`, count masked to the width.
    Arsh,
    /// `=`
    Mov,
}

impl AluOp {
    /// Every binary ALU operation.
    pub const ALL: [AluOp; 14] = [
        AluOp::Add,
        AluOp::Sub,
        AluOp::Mul,
        AluOp::Div,
        AluOp::Sdiv,
        AluOp::Mod,
        AluOp::Smod,
        AluOp::Or,
        AluOp::And,
        AluOp::Xor,
        AluOp::Lsh,
        AluOp::Rsh,
        AluOp::Arsh,
        AluOp::Mov,
    ];

    /// The operator as LLVM prints it, without the `=` (`+`, `s/`, `<<`, ...); empty for MOV.
    pub const fn symbol(self) -> &'static str {
        match self {
            AluOp::Add => "+",
            AluOp::Sub => "-",
            AluOp::Mul => "*",
            AluOp::Div => "/",
            AluOp::Sdiv => "s/",
            AluOp::Mod => "%",
            AluOp::Smod => "s%",
            AluOp::Or => "|",
            AluOp::And => "&",
            AluOp::Xor => "^",
            AluOp::Lsh => "<<",
            AluOp::Rsh => ">>",
            AluOp::Arsh => "s>>",
            AluOp::Mov => "",
        }
    }
}

/// Conditions of conditional jumps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cond {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// unsigned `>`
    Gt,
    /// unsigned `>=`
    Ge,
    /// unsigned `<`
    Lt,
    /// unsigned `<=`
    Le,
    /// signed `s>`
    Sgt,
    /// signed `s>=`
    Sge,
    /// signed `s<`
    Slt,
    /// signed `s<=`
    Sle,
    /// `&` (jump if any bit is set in both)
    Set,
}

impl Cond {
    /// Every condition.
    pub const ALL: [Cond; 11] = [
        Cond::Eq,
        Cond::Ne,
        Cond::Gt,
        Cond::Ge,
        Cond::Lt,
        Cond::Le,
        Cond::Sgt,
        Cond::Sge,
        Cond::Slt,
        Cond::Sle,
        Cond::Set,
    ];

    /// The operator as LLVM prints it (`==`, `s<=`, `&`, ...).
    pub const fn symbol(self) -> &'static str {
        match self {
            Cond::Eq => "==",
            Cond::Ne => "!=",
            Cond::Gt => ">",
            Cond::Ge => ">=",
            Cond::Lt => "<",
            Cond::Le => "<=",
            Cond::Sgt => "s>",
            Cond::Sge => "s>=",
            Cond::Slt => "s<",
            Cond::Sle => "s<=",
            Cond::Set => "&",
        }
    }

    /// Evaluates the condition on two operands already reduced to the jump's width
    /// (for 32-bit jumps, pass the low 32 bits zero-extended and set `w32`).
    pub const fn holds(self, a: u64, b: u64, w32: bool) -> bool {
        let (sa, sb) =
            if w32 { (a as u32 as i32 as i64, b as u32 as i32 as i64) } else { (a as i64, b as i64) };
        match self {
            Cond::Eq => a == b,
            Cond::Ne => a != b,
            Cond::Gt => a > b,
            Cond::Ge => a >= b,
            Cond::Lt => a < b,
            Cond::Le => a <= b,
            Cond::Sgt => sa > sb,
            Cond::Sge => sa >= sb,
            Cond::Slt => sa < sb,
            Cond::Sle => sa <= sb,
            Cond::Set => a & b != 0,
        }
    }
}

/// Access size of loads, stores and atomics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    /// 1 byte (`u8`).
    B,
    /// 2 bytes (`u16`).
    H,
    /// 4 bytes (`u32`).
    W,
    /// 8 bytes (`u64`).
    DW,
}

impl Size {
    /// Every size.
    pub const ALL: [Size; 4] = [Size::B, Size::H, Size::W, Size::DW];

    /// Width in bytes.
    pub const fn bytes(self) -> u32 {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }

    /// Width in bits as LLVM names the type (`8` for `u8`).
    pub const fn bits(self) -> u32 {
        self.bytes() * 8
    }
}

/// Byte-order conversions (`BPF_END`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// `le16/le32/le64` (`BPF_ALU | BPF_END | BPF_TO_LE`): on little-endian, truncation.
    Le,
    /// `be16/be32/be64` (`BPF_ALU | BPF_END | BPF_TO_BE`): on little-endian, a byte swap.
    Be,
    /// `bswap16/32/64` (`BPF_ALU64 | BPF_END`, cpu v4): an unconditional byte swap.
    Swap,
}

/// Atomic read-modify-write operations (`BPF_STX | BPF_ATOMIC`, selected by `imm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtomicOp {
    /// `lock *(..) += src`
    Add,
    /// `lock *(..) |= src`
    Or,
    /// `lock *(..) &= src`
    And,
    /// `lock *(..) ^= src`
    Xor,
    /// `src = atomic_fetch_add(..)`: the old value goes into `src`.
    FetchAdd,
    /// `src = atomic_fetch_or(..)`
    FetchOr,
    /// `src = atomic_fetch_and(..)`
    FetchAnd,
    /// `src = atomic_fetch_xor(..)`
    FetchXor,
    /// `src = xchg(..)`: swap memory and `src`.
    Xchg,
    /// `r0 = cmpxchg(.., r0, src)`: store `src` if memory equals `r0`; the old value goes into `r0`.
    Cmpxchg,
}

impl AtomicOp {
    /// Every atomic operation.
    pub const ALL: [AtomicOp; 10] = [
        AtomicOp::Add,
        AtomicOp::Or,
        AtomicOp::And,
        AtomicOp::Xor,
        AtomicOp::FetchAdd,
        AtomicOp::FetchOr,
        AtomicOp::FetchAnd,
        AtomicOp::FetchXor,
        AtomicOp::Xchg,
        AtomicOp::Cmpxchg,
    ];
}

/// Width of a sign extension (`MOVSX` source or `MEMSX` is given by [`Size`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SxBits {
    /// From 8 bits.
    S8,
    /// From 16 bits.
    S16,
    /// From 32 bits (64-bit `MOVSX` only).
    S32,
}

impl SxBits {
    /// The number of source bits.
    pub const fn bits(self) -> u32 {
        match self {
            SxBits::S8 => 8,
            SxBits::S16 => 16,
            SxBits::S32 => 32,
        }
    }
}

/// The target of a `call` instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// A helper function by id (`src = 0`).
    Helper(i32),
    /// A bpf2bpf call (`src = 1`, `BPF_PSEUDO_CALL`): the target is `pc + 1 + offset` slots.
    Local(i32),
    /// A kernel function by BTF id (`src = 2`, `BPF_PSEUDO_KFUNC_CALL`).
    Kfunc(i32),
}

/// One eBPF instruction. `LdImm64` occupies two 8-byte slots, every other variant one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Insn {
    /// Binary ALU operation `dst op= src`.
    Alu {
        /// 32-bit (`w` registers) or 64-bit.
        width: Width,
        /// The operation.
        op: AluOp,
        /// Destination and first operand.
        dst: Reg,
        /// Second operand.
        src: Operand,
    },
    /// `dst = -dst`.
    Neg {
        /// 32-bit or 64-bit.
        width: Width,
        /// Operand and result.
        dst: Reg,
    },
    /// `dst = (sN) src` (cpu v4 `MOVSX`: `MOV X` with `off` = 8, 16 or 32).
    MovSx {
        /// 32-bit (result zero-extended) or 64-bit.
        width: Width,
        /// Sign extension source width; `S32` only with `W64`.
        from: SxBits,
        /// Destination.
        dst: Reg,
        /// Source.
        src: Reg,
    },
    /// Byte-order conversion of `dst` to `bits` wide (16, 32 or 64).
    End {
        /// Which conversion.
        order: ByteOrder,
        /// 16, 32 or 64.
        bits: u8,
        /// Operand and result.
        dst: Reg,
    },
    /// `goto +off` (16-bit offset, `BPF_JMP | BPF_JA`).
    Ja {
        /// Offset in slots from the next instruction.
        off: i16,
    },
    /// `gotol +imm` (32-bit offset, `BPF_JMP32 | BPF_JA`, cpu v4).
    JaLong {
        /// Offset in slots from the next instruction.
        off: i32,
    },
    /// `if dst cond src goto +off`.
    Jmp {
        /// Compare 32 (`JMP32`) or 64 bits.
        width: Width,
        /// The condition.
        cond: Cond,
        /// First operand.
        dst: Reg,
        /// Second operand.
        src: Operand,
        /// Offset in slots from the next instruction.
        off: i16,
    },
    /// `dst = *(size *)(src + off)`; with `signed`, `MEMSX` sign-extends B/H/W.
    Load {
        /// Access size.
        size: Size,
        /// Sign-extending load (`BPF_MEMSX`, never with `DW`).
        signed: bool,
        /// Destination.
        dst: Reg,
        /// Base address register.
        src: Reg,
        /// Signed byte offset.
        off: i16,
    },
    /// `*(size *)(dst + off) = imm` (`BPF_ST`).
    StoreImm {
        /// Access size.
        size: Size,
        /// Base address register.
        dst: Reg,
        /// Signed byte offset.
        off: i16,
        /// Value, truncated to the size (sign-extended for DW).
        imm: i32,
    },
    /// `*(size *)(dst + off) = src` (`BPF_STX | BPF_MEM`).
    Store {
        /// Access size.
        size: Size,
        /// Base address register.
        dst: Reg,
        /// Value register.
        src: Reg,
        /// Signed byte offset.
        off: i16,
    },
    /// An atomic read-modify-write on `*(size *)(dst + off)`; `size` is `W` or `DW`.
    Atomic {
        /// `W` or `DW`.
        size: Size,
        /// The operation.
        op: AtomicOp,
        /// Base address register.
        dst: Reg,
        /// Operand (and, for fetching forms, result) register.
        src: Reg,
        /// Signed byte offset.
        off: i16,
    },
    /// `dst = imm ll`: a 64-bit immediate in two slots. `pseudo` is the `src` field
    /// (0 for a plain constant; map references in later program-set formats).
    LdImm64 {
        /// Destination.
        dst: Reg,
        /// The `src_reg` field of the first slot.
        pseudo: u8,
        /// The 64-bit value.
        imm: u64,
    },
    /// A legacy packet load (`BPF_LD | BPF_ABS` or `BPF_IND`, `B`/`H`/`W`), allowed in
    /// socket filters and tc programs with the context in R6: R0 = the big-endian value of
    /// `size` at offset `imm` (plus `index` for `BPF_IND`) of the socket buffer's data, as
    /// the kernel's `bpf_skb_load_helper_*` read it; R1 to R5 are clobbered. A load outside
    /// the packet returns 0 from the current function (see
    /// [`crate::ProgType::legacy_packet_load`]).
    LoadPacket {
        /// `B`, `H` or `W`.
        size: Size,
        /// The index register of `BPF_IND` (`None`: `BPF_ABS`).
        index: Option<Reg>,
        /// The offset (added to the index).
        imm: i32,
    },
    /// `call` a helper, a subprogram or a kfunc.
    Call(Call),
    /// The kernel-internal `BPF_TAIL_CALL` (`0xf5`): R1 = ctx, R2 = prog array, R3 = index.
    TailCall,
    /// `exit`: return R0.
    Exit,
}

impl Insn {
    /// The number of 8-byte slots the instruction occupies (2 for `LdImm64`, else 1).
    pub const fn slots(&self) -> usize {
        match self {
            Insn::LdImm64 { .. } => 2,
            _ => 1,
        }
    }

    /// Whether this is a tail call: `call 12` (`bpf_tail_call`, as programs and the
    /// verifier see it) or the kernel-internal tail-call instruction (0xf5).
    pub const fn is_tail_call(&self) -> bool {
        matches!(self, Insn::TailCall | Insn::Call(Call::Helper(crate::helpers::TAIL_CALL)))
    }

    /// The branch offset in slots if this instruction is a jump (`Ja`, `JaLong`, `Jmp`).
    pub const fn jump_offset(&self) -> Option<i64> {
        match *self {
            Insn::Ja { off } => Some(off as i64),
            Insn::JaLong { off } => Some(off as i64),
            Insn::Jmp { off, .. } => Some(off as i64),
            _ => None,
        }
    }

    /// The register written by this instruction, if any (atomics with fetch write `src`,
    /// CMPXCHG writes R0; calls write R0 and are not reported here).
    pub const fn written_reg(&self) -> Option<Reg> {
        match *self {
            Insn::Alu { dst, .. }
            | Insn::Neg { dst, .. }
            | Insn::MovSx { dst, .. }
            | Insn::End { dst, .. }
            | Insn::Load { dst, .. }
            | Insn::LdImm64 { dst, .. } => Some(dst),
            Insn::LoadPacket { .. } => Some(Reg::R0),
            Insn::Atomic { op, src, .. } => match op {
                AtomicOp::Add | AtomicOp::Or | AtomicOp::And | AtomicOp::Xor => None,
                AtomicOp::Cmpxchg => Some(Reg::R0),
                _ => Some(src),
            },
            _ => None,
        }
    }
}
