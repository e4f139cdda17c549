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
//!   has none) and R10 = [`STACK_TOP`] ([`entry_registers`]). Every register counts as
//!   defined at entry.
//! - Memory is the context buffer at [`CTX_ADDR`] (a copy of the input's bytes), the
//!   stacks of the live frames, and the values of the set's array maps. The entry frame's
//!   stack is `[STACK_TOP - stack_depth, STACK_TOP)` ([`stack_range`]), zeroed at entry.
//!   Array map `a` (map reference `k` = the number of prog arrays + `a`) holds its
//!   [`ArrayMap::values`](bpf::ArrayMap::values) afresh at every run, from
//!   [`map_addr`](bpf::exec::map_addr)`(k) + `[`ARRAY_VALUES_OFFSET`](bpf::exec::ARRAY_VALUES_OFFSET)
//!   on, value after value without padding (the JIT's layout); the outcome's `arrays` are
//!   the values as the run left them, after a fault too. Every load, store and atomic must
//!   lie entirely inside a stack or the context, or, through a pointer to a map value (see
//!   below), inside one value of an array map; anything else stops the run with a
//!   `MemoryAccess` fault naming the access and the ranges. Atomics must be naturally
//!   aligned (`MisalignedAtomic`, checked before the bounds); on a map value both the
//!   address and the offset within the value must be (the verifier checks the offset; the
//!   kernel's values are 8-byte aligned, these are not when `value_size` is not a multiple
//!   of 8, so an atomic this layout misaligns is a fault too and is never compared).
//! - Every executed instruction counts against the budget ([`DEFAULT_BUDGET`] or
//!   [`Reference::with_budget`]), across all frames and programs; when it runs out the run
//!   stops with a `Budget` fault at the instruction that would have run next.
//! - Faults carry the slot pc of the faulting instruction (in a program other than the
//!   entry, the detail starts with "in program NAME (#i): "); the outcome's `ctx` is the
//!   context as the run left it, after a fault too.
//! - jitdiff's kfuncs ([`bpf::helpers::KFUNCS`]) are called like helpers (and traced as
//!   kfunc calls); `lddw rN, &map + off` ([`PSEUDO_MAP_VALUE`](bpf::PSEUDO_MAP_VALUE), a
//!   global variable) loads the address of that array map's value (it has one) plus `off`,
//!   marked as a map value; other kfunc ids and `lddw` with a pseudo source other than 0,
//!   [`PSEUDO_MAP_FD`](bpf::PSEUDO_MAP_FD) and `PSEUDO_MAP_VALUE` are not modelled: a run that reaches one is
//!   [`RunResult::CannotJudge`], as is one that reaches an `Insn` the wire format cannot
//!   express (`movsx` 32-bit from 32 bits, a byte swap to another width than 16/32/64, a
//!   sign-extending 8-byte load, a 1- or 2-byte atomic). Unreached, they do not matter.
//!
//! # Program sets, calls and tail calls
//! A run starts in program 0 of the [`ProgramSet`]. The kernel's verifier rejects some
//! programs for what they do at calls; the reference finds these while running and stops
//! with a `Verifier` fault (the program is invalid), naming the rule:
//! - `lddw rN, map` loads [`bpf::exec::map_addr`]`(k)`, marked as a map address.
//! - A bpf-to-bpf call pushes a frame with a fresh stack of the callee's depth
//!   ([`Program::function_stack_depth`](bpf::Program::function_stack_depth)) at an address of its own
//!   ([`frame_top`]); the stacks of the callers stay valid, so pointers to them work. The
//!   callee gets R1-R5 as they are (defined or not), a new R10, and R0 and R6-R9
//!   undefined. At its `exit`, R0 is its result, the caller's R6-R10 are back and R1-R5 are
//!   undefined. A call chain of more than [`MAX_CALL_FRAMES`](bpf::exec::MAX_CALL_FRAMES)
//!   (8) frames, or of more than 512 bytes of stack, is a fault; each function's depth
//!   counts rounded up to 16 bytes (the verifier's rounding for JIT-compiled programs), and
//!   a subprogram that contains a tail call may not be called when the frames of its
//!   callers use 256 bytes or more. The verifier checks all of this statically, for every
//!   call chain a program has, once per program: the reference checks the chains that run,
//!   counting from the frame the program's main function runs in.
//! - A helper call ([`bpf::helpers`]) calls the shared [`Helpers`](bpf::helpers::Helpers)
//!   of the run, which records the trace of the outcome. An unknown helper, an undefined
//!   argument or an address passed where the prototype expects a scalar is a fault. R0 is
//!   the result; R1-R5 become undefined.
//! - `bpf_map_lookup_elem` (`call 1`) is performed here. R1 must be defined and hold
//!   exactly an array map's address as `lddw rN, map` loaded it (a prog array is a fault:
//!   the verifier allows those only in tail calls); R2 must be defined and point (an address
//!   of the stack, the context or a map value, not a scalar) to 4 readable bytes that were
//!   written and hold no address: the key, a little-endian u32. R0 is the value's address,
//!   `map_addr(k) + ARRAY_VALUES_OFFSET + key * value_size`, marked as a map value, or NULL
//!   (0, a scalar) when `key >= max_entries`; R1-R5 become undefined. The lookup is traced
//!   as [`Helpers::record_lookup`](bpf::helpers::Helpers::record_lookup)`(array index, key,
//!   found)`. Dereferencing NULL is a `MemoryAccess` fault (the verifier demands a NULL
//!   check).
//! - A tail call (`call 12` or `BPF_TAIL_CALL`) needs R1 defined, R2 exactly a map address
//!   and R3 a defined scalar. It fails, as the kernel interpreter's does, when `(u32)R3` is
//!   not below the map's `max_entries`, then when the count of tail calls is already
//!   [`MAX_TAIL_CALL_CNT`](bpf::exec::MAX_TAIL_CALL_CNT) (33), then (after counting it) when
//!   the slot is empty; a failed tail call continues at the next instruction with R0-R5
//!   undefined. A successful one replaces the running frame by the target program's main
//!   function (fresh stack; R1 kept, R10 new, everything else undefined); what the target
//!   returns goes to whoever called the frame it replaced. Which count applies is the
//!   [`TailCallSemantics`].
//! - Reading an undefined register is a fault naming it and the call that made it so:
//!   `R3 is undefined: R1-R5 are clobbered by the call at pc 7`. `xor` and `sub` of a
//!   register with itself read it too.
//! - Stacks of new frames (callees and tail-call targets) start uninitialized: reading a
//!   byte before writing it is a fault (the verifier rejects it for unprivileged programs,
//!   and the bytes an engine would read there are leftovers that differ between engines).
//!
//! # Pointer provenance
//! Engines place the stack (and possibly the context) at different addresses, so a value
//! computed from an address differs between them by construction. The reference marks such
//! values and reports [`Outcome::r0_is_address`](bpf::Outcome::r0_is_address) when R0 holds
//! one at `exit`:
//! - R10 is marked, R1 too when there is a context;
//! - moves and sign-extending moves copy the mark; an ALU operation with a marked operand
//!   gives a marked result (address ± scalar is an address, anything else is still derived
//!   from one); immediates, plain `lddw` and `xor`/`sub` of a register with itself (always
//!   0) give unmarked values;
//! - `lddw rN, map` gives a value marked as a map address: map addresses are the same in
//!   every engine, but a map address is still no scalar (helpers reject it, and R0 holding
//!   one counts as an address);
//! - `bpf_map_lookup_elem` gives a value marked as a map-value address. Only a load, store
//!   or atomic whose base register carries this mark reaches the array maps' values (the
//!   verifier dereferences no scalar and no map address), and then only inside one value.
//!   The bound is checked on the address: an access entirely inside another value of the
//!   same map than the one the pointer came from is not caught (the kernel would reject it;
//!   every engine with this layout reads the same bytes there);
//! - stores record the mark per byte, in a shadow of the stacks, the context and the array
//!   maps' values; a load is marked when any byte it reads is; atomics combine the marks of
//!   memory and `src`. A stack or context address stored in the context or a map value
//!   makes those bytes differ between engines, and the outcome has no field to say which
//!   bytes those are: a run that exits with any such byte left in an array map's values
//!   is [`RunResult::CannotJudge`] (addresses of maps and map values are the same in every
//!   engine and stay comparable). The context has no such guard yet.

mod alu;
mod atomic;
mod calls;
mod decode;
mod layout;
mod machine;
mod memory;
#[cfg(test)]
mod testutil;

use bpf::trace::Trace;
use bpf::{EmptySlotRule, Engine, Input, ProgramSet, RunResult};

pub use layout::{
    ctx_range, entry_registers, frame_top, stack_range, CTX_ADDR, DEFAULT_BUDGET, FRAME_STRIDE, STACK_BASE,
    STACK_SIZE, STACK_TOP,
};

/// How tail calls are counted against [`MAX_TAIL_CALL_CNT`](bpf::exec::MAX_TAIL_CALL_CNT)
/// when a run mixes bpf-to-bpf calls and tail calls. Whether an empty slot counts is the
/// separate [`EmptySlotRule`]; a run's [`Outcome::tail_calls`](bpf::Outcome::tail_calls)
/// counts the successful tail calls in total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TailCallSemantics {
    /// Today's kernel (x86-64 and arm64 since v6.12): one count per run, shared by every
    /// frame and every tail-call target, so a run makes at most 33 successful tail calls.
    /// (The kernel's interpreter never mixes the two: the verifier rejects programs with
    /// both bpf-to-bpf calls and tail calls unless they are JIT-compiled.)
    #[default]
    Global,
    /// The old x86-64 and arm64 JITs: a bpf-to-bpf call gives the callee a copy of the
    /// caller's count, and the caller's count is as it was when the callee returns (the
    /// callee's tail calls do not use up the caller's); a tail-call target continues with
    /// the count of the frame it replaces. Subprograms that each tail-call can then make
    /// the number of tail calls explode.
    PerFrame,
}

/// The reference engine (name `"reference"`). Reusable: the buffers of one run are kept for
/// the next, so repeated runs do not allocate except for the outcome.
///
/// [`Engine::run_set`] never panics on a checked [`ProgramSet`]: it returns an outcome
/// (exit or fault) or, for features it does not model, [`RunResult::CannotJudge`].
#[derive(Clone, Debug)]
pub struct Reference {
    budget: u64,
    semantics: TailCallSemantics,
    empty_slot: EmptySlotRule,
    buffers: calls::Buffers,
}

impl Default for Reference {
    fn default() -> Self {
        Reference::new()
    }
}

impl Reference {
    /// An engine with the [`DEFAULT_BUDGET`] of 100 million executed instructions and
    /// [`TailCallSemantics::Global`].
    pub fn new() -> Reference {
        Reference::with_budget_and_semantics(DEFAULT_BUDGET, TailCallSemantics::Global)
    }

    /// An engine that stops a run with a `Budget` fault when it would execute more than
    /// `budget` instructions (each instruction counts once, `lddw` included), with
    /// [`TailCallSemantics::Global`].
    pub fn with_budget(budget: u64) -> Reference {
        Reference::with_budget_and_semantics(budget, TailCallSemantics::Global)
    }

    /// An engine with the [`DEFAULT_BUDGET`] that counts tail calls as `semantics` says.
    pub fn with_semantics(semantics: TailCallSemantics) -> Reference {
        Reference::with_budget_and_semantics(DEFAULT_BUDGET, semantics)
    }

    /// An engine with both a budget (see [`Reference::with_budget`]) and tail-call
    /// semantics.
    pub fn with_budget_and_semantics(budget: u64, semantics: TailCallSemantics) -> Reference {
        Reference {
            budget,
            semantics,
            empty_slot: EmptySlotRule::default(),
            buffers: calls::Buffers::default(),
        }
    }

    /// This engine, counting a tail call through an empty slot as `rule` says (the default
    /// is [`EmptySlotRule::Free`], today's kernel).
    pub fn with_empty_slot(self, rule: EmptySlotRule) -> Reference {
        Reference { empty_slot: rule, ..self }
    }

    /// Whether a tail call through an empty slot counts.
    pub fn empty_slot(&self) -> EmptySlotRule {
        self.empty_slot
    }

    /// The instruction budget of every run.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// How tail calls are counted.
    pub fn semantics(&self) -> TailCallSemantics {
        self.semantics
    }

    fn counting(&self) -> (TailCallSemantics, EmptySlotRule) {
        (self.semantics, self.empty_slot)
    }

    /// Runs `set` on `input` exactly as [`Engine::run_set`] does, and also records every
    /// executed instruction with the registers just before it. A register counts as
    /// comparable when it is defined and not derived from a stack or context address.
    pub fn trace_set(&mut self, set: &ProgramSet, input: &Input) -> (RunResult, Trace) {
        let mut trace = Trace::default();
        let result =
            calls::run_set(set, input, self.budget, self.counting(), &mut self.buffers, Some(&mut trace));
        (result, trace)
    }
}

impl Engine for Reference {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn run_set(&mut self, set: &ProgramSet, input: &Input) -> RunResult {
        calls::run_set(set, input, self.budget, self.counting(), &mut self.buffers, None)
    }

    fn work(&self) -> Option<u64> {
        Some(self.buffers.work)
    }
}
