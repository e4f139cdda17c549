//! The numeric constants of the eBPF wire format (`include/uapi/linux/bpf.h`'s values).
//!
//! Only [`crate::raw`] turns these into [`crate::Insn`] values and back; no other module
//! handles opcode bytes.

/// Instruction class: the low 3 bits of the opcode.
pub mod class {
    /// Wide immediate loads (`LD_IMM64`).
    pub const LD: u8 = 0x00;
    /// Loads from memory into a register.
    pub const LDX: u8 = 0x01;
    /// Stores of an immediate.
    pub const ST: u8 = 0x02;
    /// Stores of a register, and atomics.
    pub const STX: u8 = 0x03;
    /// 32-bit arithmetic.
    pub const ALU: u8 = 0x04;
    /// 64-bit jumps, calls and exit.
    pub const JMP: u8 = 0x05;
    /// 32-bit jumps.
    pub const JMP32: u8 = 0x06;
    /// 64-bit arithmetic.
    pub const ALU64: u8 = 0x07;
}

/// Source-operand bit of ALU and jump opcodes.
pub mod src {
    /// Immediate operand.
    pub const K: u8 = 0x00;
    /// Register operand.
    pub const X: u8 = 0x08;
}

/// Size field of memory opcodes.
pub mod size {
    /// 4 bytes.
    pub const W: u8 = 0x00;
    /// 2 bytes.
    pub const H: u8 = 0x08;
    /// 1 byte.
    pub const B: u8 = 0x10;
    /// 8 bytes.
    pub const DW: u8 = 0x18;
}

/// Mode field of memory opcodes.
pub mod mode {
    /// Immediate (with `LD | DW`: `LD_IMM64`).
    pub const IMM: u8 = 0x00;
    /// Legacy packet load at a constant offset (`LD` only).
    pub const ABS: u8 = 0x20;
    /// Legacy packet load at a register plus a constant (`LD` only).
    pub const IND: u8 = 0x40;
    /// Plain memory access.
    pub const MEM: u8 = 0x60;
    /// Sign-extending load (cpu v4).
    pub const MEMSX: u8 = 0x80;
    /// Atomic operation (`STX` only).
    pub const ATOMIC: u8 = 0xc0;
}

/// Operation field of ALU opcodes.
pub mod alu {
    /// add
    pub const ADD: u8 = 0x00;
    /// sub
    pub const SUB: u8 = 0x10;
    /// mul
    pub const MUL: u8 = 0x20;
    /// div (sdiv with off = 1)
    pub const DIV: u8 = 0x30;
    /// or
    pub const OR: u8 = 0x40;
    /// and
    pub const AND: u8 = 0x50;
    /// left shift
    pub const LSH: u8 = 0x60;
    /// logical right shift
    pub const RSH: u8 = 0x70;
    /// negate
    pub const NEG: u8 = 0x80;
    /// mod (smod with off = 1)
    pub const MOD: u8 = 0x90;
    /// xor
    pub const XOR: u8 = 0xa0;
    /// mov (movsx with off = 8/16/32)
    pub const MOV: u8 = 0xb0;
    /// arithmetic right shift
    pub const ARSH: u8 = 0xc0;
    /// byte-order conversion
    pub const END: u8 = 0xd0;
}

/// Operation field of jump opcodes.
pub mod jmp {
    /// unconditional jump
    pub const JA: u8 = 0x00;
    /// ==
    pub const JEQ: u8 = 0x10;
    /// unsigned >
    pub const JGT: u8 = 0x20;
    /// unsigned >=
    pub const JGE: u8 = 0x30;
    /// bit test
    pub const JSET: u8 = 0x40;
    /// !=
    pub const JNE: u8 = 0x50;
    /// signed >
    pub const JSGT: u8 = 0x60;
    /// signed >=
    pub const JSGE: u8 = 0x70;
    /// call
    pub const CALL: u8 = 0x80;
    /// exit
    pub const EXIT: u8 = 0x90;
    /// unsigned <
    pub const JLT: u8 = 0xa0;
    /// unsigned <=
    pub const JLE: u8 = 0xb0;
    /// signed <
    pub const JSLT: u8 = 0xc0;
    /// signed <=
    pub const JSLE: u8 = 0xd0;
    /// kernel-internal tail call
    pub const TAIL_CALL: u8 = 0xf0;
}

/// The `imm` field of atomic instructions.
pub mod atomic {
    /// add
    pub const ADD: i32 = 0x00;
    /// or
    pub const OR: i32 = 0x40;
    /// and
    pub const AND: i32 = 0x50;
    /// xor
    pub const XOR: i32 = 0xa0;
    /// the old value is returned in `src`
    pub const FETCH: i32 = 0x01;
    /// exchange (always fetches)
    pub const XCHG: i32 = 0xe0 | FETCH;
    /// compare and exchange (always fetches, into R0)
    pub const CMPXCHG: i32 = 0xf0 | FETCH;
}

/// The `src` field of `call`.
pub mod pseudo_call {
    /// A helper by id.
    pub const HELPER: u8 = 0;
    /// A bpf2bpf call.
    pub const LOCAL: u8 = 1;
    /// A kernel function.
    pub const KFUNC: u8 = 2;
}
