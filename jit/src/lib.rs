//! jitdiff's RV64 JIT: a BPF-to-RV64 compiler in the design of the Linux RV64 JIT, an
//! RV64 encoder, and a runner that executes the code in the unicorn emulator.
//!
//! # Usage
//! ```
//! use bpf::{AluOp, Engine, Input, Insn, Operand, Program, Reg, RunResult, Width};
//! let prog = Program::new(vec![
//!     Insn::Alu { width: Width::W32, op: AluOp::Mov, dst: Reg::R0, src: Operand::Imm(-1) },
//!     Insn::Exit,
//! ])
//! .unwrap();
//! let mut jit = jit::Jit::new();
//! let RunResult::Ran(out) = jit.run(&prog, &Input::none()) else { panic!() };
//! assert_eq!(out.result, Ok(0xffff_ffff));
//! ```
#![deny(missing_docs)]

pub mod bugs;
pub mod compile;
pub mod engine;
pub mod guest;
pub mod listing;
pub mod runner;
pub mod rv64;
pub mod watchdog;

pub use bugs::{Bug, Bugs};
pub use compile::Scheme;
pub use engine::Jit;
