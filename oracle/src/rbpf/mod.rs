//! The rbpf backend: the `rbpf` crate's interpreter (0.4.1, unpatched) as a second,
//! independent oracle.
//!
//! [`Rbpf`] lowers each program into one rbpf runs with the kernel's semantics (see
//! [`lower()`]), or answers [`RunResult::CannotJudge`] naming the instruction and pc. Its
//! divergences from the kernel, each checked against rbpf's source, and what the lowering
//! does about them:
//!
//! | rbpf 0.4.1 | here |
//! |---|---|
//! | 64-bit JEQ/JNE/JGT/JGE/JLT/JLE K zero-extend the immediate | negative K: two signed jumps |
//! | MOD32 by a zero divisor leaves all 64 bits of dst | followed by `w_dst = w_dst` |
//! | NEG64 panics on `i64::MIN` with overflow checks | `dst *= -1` |
//! | MOVSX runs as MOV | copy, then left and arithmetic right shifts |
//! | BSWAP (ALU64 END) rejected | TO_BE (a swap on little-endian hosts) |
//! | MEMSX loads rejected | zero-extending load, then two shifts |
//! | gotol (JMP32 JA) rejected | JA when the offset fits, else cannot judge |
//! | SDIV/SMOD run unsigned | cannot judge |
//! | atomics rejected | cannot judge |
//! | LD_IMM64 ignores src (pseudo loads) | a prog array's reference loads [`bpf::exec::map_addr`]; an array map's, and other pseudo loads: cannot judge (array maps are not modelled; a run that references none reports them unchanged) |
//! | local calls: 256 stack bytes per frame unless told | frame sizes are the declared per-function depths (a stack-usage calculator) |
//! | up to 9 frames; recursion runs until they are gone | a call graph that recurses or nests more than 8 frames (the kernel's limit): cannot judge |
//! | no helpers | every helper of [`bpf::helpers::ALL`], forwarding to one shared [`Helpers`](bpf::helpers::Helpers) per run; jitdiff's kfuncs as helpers of the same ids; `map_lookup_elem`, other ids and other kfuncs: cannot judge |
//! | no tail calls (`0x8d` rejected, `0xf5` unknown) | a helper call that runs the target in a nested VM (see *Tail calls*) |
//! | R1 = 0 when the context is empty | a synthetic `lddw r1, <ctx>` first |
//! | one memory region (and the stack) | a `struct __sk_buff` context (tc and socket programs, [`bpf::context`]): cannot judge |
//! | one 512-byte stack, all of it valid below R10, whatever the depth | a synthetic `lddw r10, <top>` points R10 into a stack the engine provides, passed as rbpf's "mbuff" area (see *Memory*) |
//! | verifier rejects r10 as the first operand of a jump | X form: operands swapped; `r10 op r10`: decided statically; K form: cannot judge |
//! | jump arithmetic in `i16` of the slot index | cannot judge beyond 32767 lowered slots |
//! | no instruction limit | backward jumps call a budget subroutine: [`FaultKind::Budget`](bpf::FaultKind::Budget) when spent |
//! | verifier rejects a jump with offset -1 | never emitted (a backward jump is preceded by the budget call) |
//!
//! Anything else rbpf's verifier rejects gives "cannot judge" with rbpf's message; a panic
//! inside rbpf (none is known to remain) becomes a [`FaultKind::Host`](bpf::FaultKind::Host) fault.
//!
//! # Memory
//! rbpf accepts an access when it lies entirely inside one of three areas: its "mem" and
//! "mbuff" slices and its own 512-byte stack. The engine passes the context copy as mem
//! and a stack area as mbuff, both carved out of one buffer of its own, and the lowered
//! program's prefix sets R1 and R10 to them (rbpf's own stack is never pointed to).
//!
//! The stack area of a program is its *stack extent*: the largest sum of declared depths
//! along a chain of bpf2bpf calls of its static call graph ([`Lowered::stack_extent`]),
//! below R10; for a program without calls, exactly its declared depth. rbpf lowers R10 by
//! the caller's frame size on a call, so each function's frame `[R10 - depth, R10)` lies
//! right below its caller's, and every frame that can be live lies inside the area. An
//! access outside the area faults in rbpf as in the kernel. An access outside the
//! function's own frame but inside the area (into a caller's frame through a passed
//! pointer, which the kernel allows, or into the space of callees, which it does not) is
//! accepted: the reference interpreter faults on the latter, and a reference fault makes
//! the program invalid, so nothing is compared. The stack is zeroed at the start of each
//! run; a frame reused by a later call, or by a tail-call target, keeps what was left
//! there (the reference interpreter treats reading such bytes as invalid).
//!
//! The stack and the context sit 64 KiB apart with 64 KiB of guard on the outer sides, so
//! that no 16-bit offset from R1 or any R10 reaches the other area. The stack top is
//! 16-byte aligned, the context 8-byte aligned. rbpf uses host addresses, so pointer
//! values differ from the reference's; [`Outcome::r0_is_address`] is left false and the
//! comparison takes provenance from the reference interpreter. Only pointers moved by
//! large computed amounts could still land in an area rbpf accepts where the kernel would
//! fault. Map references are guest addresses ([`bpf::exec::map_addr`]) with no memory
//! behind them: an access there is "cannot judge", and so is a run whose buffer happens to
//! cover those addresses.
//!
//! # Calls and helpers
//! bpf2bpf calls are rbpf's local calls: R6-R9 and the return address are saved and
//! restored, R10 moves by the caller's declared depth, R0 carries the result. R1-R5 keep
//! the caller's values (the kernel leaves them undefined; the verifier lets no program
//! read them). rbpf 0.4.1 allows 8 nested calls (9 frames); the kernel allows 8 frames, so
//! the budget subroutine, itself a local call, always has a frame left. A helper call runs
//! the shared [`Helpers`](bpf::helpers::Helpers) of the run, which records the trace;
//! rbpf writes its result to R0 and leaves R1-R9 alone.
//!
//! # Tail calls
//! Each tail-call site (`call 12`, or the kernel-internal `tail_call`) becomes a call of a
//! tail-call helper followed by code that either goes on after the site (the tail call
//! failed) or ends the calling frame with the target's R0 (see `lower::tail_call_site`).
//! The helper follows the kernel's order: the index is R3's low 32 bits; an index at or
//! past `max_entries` fails; a run that has counted [`MAX_TAIL_CALL_CNT`] tail calls
//! fails; an empty slot fails (spending one count only under 6.12's
//! [`EmptySlotRule::Counted`]); otherwise the count goes up and the target runs. One count serves the whole run, subprograms and targets included (the
//! kernel's behaviour since 6.12). R2 must hold a map reference as `lddw rN, map k` loads
//! it, or the run cannot be judged.
//!
//! The target runs in a new rbpf VM, nested inside the helper call, on the same thread:
//! with the caller's R1, with its R10 equal to the calling frame's (its frames take the
//! place of the calling frame and extend below, as in the kernel), on the same context
//! bytes, with the same budget and helpers. Its stack area reaches from the bottom of its
//! own stack extent up to the entry's R10, so that it also covers the frames of the
//! calling frame's callers, still live (the target may reach them through a pointer in
//! R1, which the reference interpreter allows). When it returns, the calling frame ends
//! with its R0; a fault or a "cannot judge" inside it ends the whole run.
//!
//! A tail call costs a new VM: rbpf's verifier and stack-usage pass over the target, a
//! copy of its lowered bytes, and the registration of the helpers it calls (the target is
//! lowered once per run): about 2 µs for a 10-instruction target, against about 2 µs for
//! a whole run of a 5-instruction program. At most 33 tail calls succeed, so VMs nest at
//! most 34 deep on the host stack, about 2 KiB each (x86-64, release build).
//!
//! # Non-termination
//! rbpf has no instruction limit and runs on the caller's thread. Every backward jump of
//! the lowered program is preceded by a local call to a small subroutine that calls a
//! counting helper; when more than the budget of backward jumps has been taken, the
//! subroutine calls an unregistered helper and rbpf stops with an error, reported as
//! [`FaultKind::Budget`](bpf::FaultKind::Budget). One budget serves the whole run,
//! tail-call targets included. A run that never takes a backward jump ends after at most
//! as many instructions as its programs have, times 34 (recursion is refused, at most 33
//! tail calls succeed).
//!
//! # Usage
//! ```
//! use bpf::{AluOp, Cond, Engine, Input, Insn, Operand, Program, Reg, RunResult, Width};
//! let prog = Program::new(vec![
//!     Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R0, src: Operand::Imm(-1) },
//!     Insn::Jmp { width: Width::W64, cond: Cond::Eq, dst: Reg::R0, src: Operand::Imm(-1), off: 1 },
//!     Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R0, src: Operand::Imm(0) },
//!     Insn::Exit,
//! ])
//! .unwrap();
//! let RunResult::Ran(out) = oracle::rbpf::Rbpf::new().run(&prog, &Input::none()) else { panic!() };
//! assert_eq!(out.result, Ok(u64::MAX));
//! ```
//!
//! A tail call into another program of a set:
//! ```
//! use bpf::{AluOp, Call, Engine, Input, Insn, Operand, Program, ProgArray, ProgramSet, Reg};
//! use bpf::{RunResult, SetProgram, Width, PSEUDO_MAP_FD};
//! let mov = |dst, imm| Insn::Alu { width: Width::W64, op: AluOp::Mov, dst, src: Operand::Imm(imm) };
//! let entry = Program::new(vec![
//!     Insn::LdImm64 { dst: Reg::R2, pseudo: PSEUDO_MAP_FD, imm: 0 },
//!     mov(Reg::R3, 0),
//!     Insn::Call(Call::Helper(12)),
//!     mov(Reg::R0, 1), // only when the tail call fails
//!     Insn::Exit,
//! ])
//! .unwrap();
//! let target = Program::new(vec![mov(Reg::R0, 42), Insn::Exit]).unwrap();
//! let set = ProgramSet::new(
//!     vec![SetProgram { name: "entry".into(), prog: entry }, SetProgram { name: "t".into(), prog: target }],
//!     vec![ProgArray { name: "jmp_table".into(), slots: vec![Some(1)] }],
//! )
//! .unwrap();
//! let RunResult::Ran(out) = oracle::rbpf::Rbpf::new().run_set(&set, &Input::with_ctx(vec![0; 8])) else {
//!     panic!()
//! };
//! assert_eq!((out.result, out.tail_calls), (Ok(42), 1));
//! ```

mod lower;
mod reloc;
mod run;
#[cfg(test)]
mod set_tests;
#[cfg(test)]
mod tests;

use std::rc::Rc;

use bpf::exec::{EmptySlotRule, MAPS_ADDR, MAP_STRIDE, MAX_CALL_FRAMES, MAX_TAIL_CALL_CNT};
use bpf::{Engine, Input, Outcome, ProgramSet, RunResult, MAX_STACK};

#[cfg(test)]
use lower::TICK_HELPER;
pub use lower::{lower, Lowered, MapCounts};
use run::{conclude, patched, Built, Memory, RunGuard, Stop};
#[cfg(test)]
use run::{insn_number, Exec, Vm};

/// The default number of backward jumps a run may take before it is stopped with
/// [`FaultKind::Budget`](bpf::FaultKind::Budget): 1,000,000. Every loop iteration takes at
/// least one, so a run that ends within 1,000,000 executed instructions is never cut; an
/// endless loop is stopped after about 0.2 s. (Budget faults are never compared, so the
/// budget trades coverage of long runs against time, not soundness.)
pub const DEFAULT_BACK_EDGE_BUDGET: u64 = 1_000_000;

/// At least this many bytes around the stack and the context belong to no area rbpf accepts.
const GUARD: usize = 64 * 1024;

/// The stack bytes a run may need: up to 34 programs (the entry and 33 tail-call targets)
/// nest, each with a call chain of at most 8 frames of at most 512 bytes.
const STACK_SPAN: usize = (MAX_TAIL_CALL_CNT as usize + 1) * MAX_CALL_FRAMES * MAX_STACK as usize;

/// Where the stack and the context lie in [`Rbpf::buf`], as offsets.
struct Layout {
    /// One past the stack's last byte (the entry's R10); 16-byte aligned in memory.
    stack_top: usize,
    /// The context's first byte (R1); 8-byte aligned in memory.
    ctx: usize,
}

impl Layout {
    /// The buffer size that fits a context of `len` bytes wherever the buffer lands.
    fn size(len: usize) -> usize {
        GUARD + STACK_SPAN + 16 + GUARD + 8 + len + GUARD
    }

    /// The offsets inside a buffer starting at address `base`.
    fn at(base: usize) -> Layout {
        let align = |off: usize, to: usize| off + (base + off).wrapping_neg() % to;
        let stack_top = align(GUARD + STACK_SPAN, 16);
        Layout { stack_top, ctx: align(stack_top + GUARD, 8) }
    }
}

/// The rbpf 0.4.1 interpreter as an [`Engine`] named `rbpf`.
///
/// Runs every program set it accepts with the kernel's semantics (as far as the
/// divergences listed in the [module documentation](self) are lowered away), answers
/// [`RunResult::CannotJudge`] for the rest, never hangs (backward jumps are counted), and
/// never panics (rbpf runs under `catch_unwind`).
pub struct Rbpf {
    budget: u64,
    empty_slot: EmptySlotRule,
    /// The stack and the context copy between guard areas (see [`Layout`]); reused
    /// between runs.
    buf: Vec<u8>,
    /// The set last run, with the lowerings and VMs its runs built: the same set run on
    /// another input is not lowered again, nor are its VMs built again where the addresses
    /// patched into them are the same.
    last: Option<(ProgramSet, Built)>,
}

impl std::fmt::Debug for Rbpf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rbpf").field("back_edge_budget", &self.budget).finish_non_exhaustive()
    }
}

impl Default for Rbpf {
    fn default() -> Rbpf {
        Rbpf::new()
    }
}

impl Rbpf {
    /// An engine with the [`DEFAULT_BACK_EDGE_BUDGET`].
    pub fn new() -> Rbpf {
        Rbpf::with_back_edge_budget(DEFAULT_BACK_EDGE_BUDGET)
    }

    /// An engine that stops a run with [`FaultKind::Budget`](bpf::FaultKind::Budget) once
    /// it has taken more than `budget` backward jumps (tail-call targets included).
    pub fn with_back_edge_budget(budget: u64) -> Rbpf {
        Rbpf { budget, empty_slot: EmptySlotRule::default(), buf: Vec::new(), last: None }
    }

    /// This engine, counting a tail call through an empty slot as `rule` says (default
    /// [`EmptySlotRule::Free`], today's kernel).
    pub fn with_empty_slot(self, rule: EmptySlotRule) -> Rbpf {
        Rbpf { empty_slot: rule, ..self }
    }

    /// The number of backward jumps a run may take.
    pub fn back_edge_budget(&self) -> u64 {
        self.budget
    }
}

impl Engine for Rbpf {
    fn name(&self) -> &'static str {
        "rbpf"
    }

    fn run_set(&mut self, set: &ProgramSet, input: &Input) -> RunResult {
        if cfg!(target_endian = "big") {
            return RunResult::CannotJudge(
                "rbpf's loads, stores and TO_BE follow the host's byte order: the rbpf backend \
                 needs a little-endian host"
                    .into(),
            );
        }
        if let Some(a) = set.attachments().first() {
            return RunResult::CannotJudge(format!(
                "{} {} is attached to the set: rbpf has no trampolines to run tracing programs around a function",
                a.kind.name(),
                a.program.name
            ));
        }
        if set.prog_type().is_skb() {
            return RunResult::CannotJudge(format!(
                "the set's programs are {} programs, whose context is a struct __sk_buff over a packet: \
                 rbpf gives a program one memory region, which cannot hold both with the pointers between \
                 them as the kernel sets them",
                set.prog_type().name()
            ));
        }
        let maps = MapCounts::of(set);
        let prog = &set.entry().prog;
        let mut built = match self.last.take() {
            Some((s, built)) if s == *set => built,
            _ => match lower(prog, maps) {
                Ok(l) => Built::new(set.progs().len(), Rc::new(l)),
                Err(reason) => return RunResult::CannotJudge(reason),
            },
        };
        let lowered = Rc::clone(built.lowered[0].as_ref().expect("the entry is lowered first"));
        let len = input.ctx.as_ref().map_or(0, Vec::len);
        if self.buf.len() < Layout::size(len) {
            self.buf = vec![0; Layout::size(len)];
        }
        let layout = Layout::at(self.buf.as_ptr() as usize);
        if let Some(bytes) = &input.ctx {
            self.buf[layout.ctx..layout.ctx + len].copy_from_slice(bytes);
        }
        // Every pointer into the buffer rbpf gets derives from `base`, taken after the last
        // use of the buffer as a slice and before the next one (the context copy at the end).
        let base = self.buf.as_mut_ptr();
        let window = MAPS_ADDR..MAPS_ADDR + maps.total() as u64 * MAP_STRIDE;
        let ours = base as u64..base as u64 + self.buf.len() as u64;
        if window.start < ours.end && ours.start < window.end {
            return RunResult::CannotJudge(format!(
                "the rbpf engine's memory {ours:#x?} covers the maps' guest addresses {window:#x?}, \
                 where rbpf has no map memory"
            ));
        }
        let mut memory = Memory {
            base,
            stack_lo: layout.stack_top - STACK_SPAN,
            stack_top: layout.stack_top,
            zeroed_from: layout.stack_top,
            ctx: layout.ctx,
            ctx_len: len,
            has_ctx: input.ctx.is_some(),
        };
        let top = layout.stack_top;
        // SAFETY: the buffer lives until the end of this call and is not touched otherwise
        // while rbpf runs; stack_lo <= top - extent (extent <= 8 * 512) <= top.
        let (ctx, stack) =
            unsafe { (memory.ctx_area(), memory.stack_area(top - lowered.stack_extent() as usize, top)) };
        let r1 = if input.ctx.is_some() { base as u64 + layout.ctx as u64 } else { 0 };
        let exec = match built.vm(0, patched(&lowered, r1, base as u64 + top as u64), &lowered) {
            Ok(vm) => {
                let guard = RunGuard::start(set, built, memory, self.budget, self.empty_slot);
                (vm.run(ctx, stack), guard)
            }
            Err(refused) => (refused, RunGuard::start(set, built, memory, self.budget, self.empty_slot)),
        };
        let (exec, guard) = exec;
        let result = match guard.take_stop() {
            Some(stop) => Err(stop),
            None => conclude(exec, prog, &lowered, maps, ""),
        };
        let Some(mut totals) = guard.finish() else {
            return RunResult::CannotJudge(
                "internal error in the rbpf engine: the run's state vanished".into(),
            );
        };
        self.last = Some((set.clone(), std::mem::take(&mut totals.built)));
        let result = match result {
            Ok(r0) => Ok(r0),
            Err(Stop::Fault(f)) => Err(f),
            Err(Stop::CannotJudge(reason)) => return RunResult::CannotJudge(reason),
        };
        let ctx = match &input.ctx {
            Some(_) => self.buf[layout.ctx..layout.ctx + len].to_vec(),
            None => Vec::new(),
        };
        RunResult::Ran(Outcome {
            result,
            ctx,
            r0_is_address: false,
            tail_calls: totals.tail_calls,
            helper_calls: totals.helpers.take_trace(),
            // No program that ran could reach an array map (references to them cannot be
            // judged), so they hold what they held.
            arrays: set.arrays().iter().map(|a| a.values.clone()).collect(),
            attachments: Vec::new(),
            observes: bpf::exec::Observes::ALL,
        })
    }
}
