//! The eBPF side of jitdiff: the instruction model, its wire encoding, programs, and the
//! interface every execution engine implements.
//!
//! # Usage
//! ```
//! use bpf::{Insn, Program, Reg, AluOp, Operand, Width};
//! let prog = Program::new(vec![
//!     Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R0, src: Operand::Imm(7) },
//!     Insn::Exit,
//! ])
//! .unwrap();
//! assert_eq!(Program::from_bytes(&prog.to_bytes()).unwrap(), prog);
//! ```
#![deny(missing_docs)]

pub mod asm;
pub mod context;
pub mod elf;
pub mod exec;
pub mod helpers;
pub mod insn;
pub mod layout;
pub mod load;
pub mod opcode;
pub mod program;
pub mod raw;
pub mod set;
pub mod slots;
pub mod trace;
pub mod validate;

pub use context::ProgType;
pub use exec::{
    AttachmentSeen, EmptySlotRule, Engine, Fault, FaultKind, Input, Observes, Outcome, RunResult,
};
pub use insn::{AluOp, AtomicOp, ByteOrder, Call, Cond, Insn, Operand, Reg, Size, SxBits, Width};
pub use program::{Program, ProgramError, MAX_STACK};
pub use raw::{decode, decode_bytes, encode_bytes, DecodeError, RawInsn};
pub use set::{
    ArrayMap, AttachKind, AttachTarget, Attachment, MapRef, ProgArray, ProgramSet, SetError, SetProgram,
    PSEUDO_MAP_FD, PSEUDO_MAP_VALUE,
};
