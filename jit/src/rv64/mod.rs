//! The RV64 target: registers, range-checked immediates, typed instructions, and their
//! encodings. Only RV64IMA is emitted: unicorn implements neither Zba nor Zbb.

pub mod encode;
pub mod imm;
pub mod inst;
pub mod reg;

#[cfg(test)]
mod encode_tests;

pub use imm::{split_hi_lo, Imm12, Imm13, Imm20, Imm21};
pub use inst::{AmoOp, AmoWidth, BranchOp, IOp, Inst, LoadOp, ROp, ShiftOp, StoreOp};
pub use reg::XReg;
