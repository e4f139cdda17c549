//! The reference interpreter: the Linux kernel interpreter's semantics (`___bpf_prog_run`,
//! instruction-set.rst / RFC 9669), written for jitdiff. Every other engine is judged
//! against it.
//!
//! # Usage
//! ```
//! use bpf::{ProgramSet, AluOp, Engine, Input, Insn, Operand, Program, Reg, RunResult, Width};
//! use oracle::reference::{Reference, STACK_TOP};
//!
//! let prog = Program::new(vec![
//!     Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R0, src: Operand::Reg(Reg::R10) },
//!     Insn::Exit,
//! ])
//! .unwrap();
//! let RunResult::Ran(out) = Reference::new().run(&prog, &Input::none()) else { panic!() };
//! assert_eq!(out.result, Ok(STACK_TOP));
//! assert!(out.r0_is_address); // a pointer: other engines may place the stack elsewhere
//! ```
//!
//! # The machine
//! - Registers start at 0, except R1 = [`CTX_ADDR`] when the input has a context (0 when it
//!   has none) and R10 = [`STACK_TOP`] ([`entry_registers`]).
//! - Memory is the context buffer at [`CTX_ADDR`] (a copy of the input's bytes) and the
//!   stack `[STACK_TOP - stack_depth, STACK_TOP)` ([`stack_range`]), zeroed at entry.
//!   Every load, store and atomic must lie entirely inside one of them; anything else stops
//!   the run with a `MemoryAccess` fault naming the access and both ranges. Atomics must be
//!   naturally aligned (`MisalignedAtomic`, checked before the bounds).
//! - Every executed instruction counts against the budget ([`DEFAULT_BUDGET`] or
//!   [`Reference::with_budget`]); when it runs out the run stops with a `Budget` fault at the
//!   instruction that would have run next.
//! - Faults carry the slot pc of the faulting instruction; the outcome's `ctx` is the
//!   context as the run left it, after a fault too.
//! - Calls (helpers, bpf-to-bpf, kfuncs), tail calls and `lddw` map references are not
//!   modelled yet: a run that reaches one is [`RunResult::CannotJudge`], as is one that
//!   reaches an `Insn` the wire format cannot express (`movsx` 32-bit from 32 bits, a byte
//!   swap to another width than 16/32/64, a sign-extending 8-byte load, a 1- or 2-byte
//!   atomic). Unreached, they do not matter.
//!
//! # Pointer provenance
//! Engines place the stack (and possibly the context) at different addresses, so a value
//! computed from an address differs between them by construction. The reference marks such
//! values and reports [`Outcome::r0_is_address`](bpf::Outcome::r0_is_address) when R0 holds
//! one at `exit`:
//! - R10 is marked, R1 too when there is a context;
//! - moves and sign-extending moves copy the mark; an ALU operation with a marked operand
//!   gives a marked result (address ± scalar is an address, anything else is still derived
//!   from one); immediates, `lddw` and `xor`/`sub` of a register with itself (always 0)
//!   give unmarked values;
//! - stores record the mark per byte, in a shadow of the stack and the context; a load is
//!   marked when any byte it reads is; atomics combine the marks of memory and `src`.

mod alu;
mod atomic;
mod decode;
mod layout;
mod machine;
mod memory;
#[cfg(test)]
mod testutil;

use bpf::{Engine, Fault, Input, Outcome, Program, ProgramSet, RunResult};

pub use layout::{
    ctx_range, entry_registers, stack_range, CTX_ADDR, DEFAULT_BUDGET, STACK_BASE, STACK_SIZE, STACK_TOP,
};

use decode::Op;
use machine::{Machine, Regs, Stop};
use memory::Memory;

/// The reference engine (name `"reference"`). Reusable: the buffers of one run are kept for
/// the next, so repeated runs do not allocate except for the outcome's context copy.
///
/// [`Engine::run`] never panics on a checked [`Program`]: it returns an outcome (exit or
/// fault) or, for features it does not model, [`RunResult::CannotJudge`].
#[derive(Clone, Debug)]
pub struct Reference {
    budget: u64,
    ops: Vec<Op>,
    memory: Memory,
}

impl Default for Reference {
    fn default() -> Self {
        Reference::new()
    }
}

impl Reference {
    /// An engine with the [`DEFAULT_BUDGET`] of 100 million executed instructions.
    pub fn new() -> Reference {
        Reference::with_budget(DEFAULT_BUDGET)
    }

    /// An engine that stops a run with a `Budget` fault when it would execute more than
    /// `budget` instructions (each instruction counts once, `lddw` included).
    pub fn with_budget(budget: u64) -> Reference {
        Reference { budget, ops: Vec::new(), memory: Memory::default() }
    }

    /// The instruction budget of every run.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// The slot pc of instruction `index`, if there is one.
    fn pc_of(prog: &Program, index: usize) -> Option<usize> {
        (index < prog.insns().len()).then(|| prog.pc_of(index))
    }
}

impl Engine for Reference {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn run_set(&mut self, set: &ProgramSet, input: &Input) -> RunResult {
        if !set.is_single() {
            return RunResult::CannotJudge(
                "program sets of several programs or with maps are not supported yet".into(),
            );
        }
        self.run_single(&set.entry().prog, input)
    }
}

impl Reference {
    /// Runs one program with no maps.
    fn run_single(&mut self, prog: &Program, input: &Input) -> RunResult {
        decode::decode_into(prog, &mut self.ops);
        self.memory.reset(prog.stack_depth(), input.ctx.as_deref());
        let marked: &[u8] = if input.ctx.is_some() { &[1, 10] } else { &[10] };
        let mut machine = Machine {
            regs: Regs::new(entry_registers(input), marked),
            pc: 0,
            remaining: self.budget,
            budget: self.budget,
            mem: &mut self.memory,
        };
        let stop = machine.run(&self.ops);
        let result = match stop {
            Stop::Exit { r0, r0_is_address } => {
                return RunResult::Ran(Outcome::new(Ok(r0), self.memory.ctx_bytes().to_vec(), r0_is_address))
            }
            Stop::Fault { kind, index, detail } => {
                Err(Fault { kind, pc: Reference::pc_of(prog, index), detail })
            }
            Stop::Unsupported { index } => {
                let reason = match (prog.insns().get(index), Reference::pc_of(prog, index)) {
                    (Some(insn), Some(pc)) => decode::unsupported_reason(insn, pc),
                    _ => format!("instruction {index} is not modelled"),
                };
                return RunResult::CannotJudge(reason);
            }
        };
        RunResult::Ran(Outcome::new(result, self.memory.ctx_bytes().to_vec(), false))
    }
}
