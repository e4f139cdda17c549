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
//! | LD_IMM64 ignores src (pseudo loads) | cannot judge when src != 0 |
//! | calls: no tail calls, helpers/kfuncs not modelled | cannot judge ("calls need a program set") |
//! | R1 = 0 when the context is empty | a synthetic `lddw r1, <ctx>` first |
//! | one 512-byte stack, all of it valid below R10, whatever the depth | a synthetic `lddw r10, <top>` points R10 to a stack of exactly the declared depth, passed as rbpf's "mbuff" area |
//! | verifier rejects r10 as the first operand of a jump | X form: operands swapped; `r10 op r10`: decided statically; K form: cannot judge |
//! | jump arithmetic in `i16` of the slot index | cannot judge beyond 32767 lowered slots |
//! | no instruction limit | backward jumps call a budget subroutine: [`FaultKind::Budget`] when spent |
//! | verifier rejects a jump with offset -1 | never emitted (a backward jump is preceded by the budget call) |
//!
//! Anything else rbpf's verifier rejects gives "cannot judge" with rbpf's message; a panic
//! inside rbpf (none is known to remain) becomes a [`FaultKind::Host`] fault.
//!
//! # Memory
//! rbpf accepts an access when it lies entirely inside one of three areas: its "mem" and
//! "mbuff" slices and its own 512-byte stack. The engine passes the context copy as mem
//! and a stack of exactly `prog.stack_depth()` bytes as mbuff, both carved out of one
//! buffer of its own, and the lowered program's prefix sets R1 and R10 to them (rbpf's own
//! stack is never pointed to). The two areas sit 64 KiB apart with 64 KiB of guard on the
//! outer sides, so that no 16-bit offset from R1 or R10 reaches the other area: every
//! access the kernel would refuse as outside `[R10 - depth, R10)` or the context faults in
//! rbpf too. The stack top is 16-byte aligned, the context 8-byte aligned, and the stack
//! is zeroed before each run. rbpf uses host addresses, so pointer values differ from the
//! reference's; [`Outcome::r0_is_address`] is left false and the comparison takes
//! provenance from the reference interpreter. Only pointers moved by large computed
//! amounts could still land in an area rbpf accepts where the kernel would fault.
//!
//! # Non-termination
//! rbpf has no instruction limit and runs on the caller's thread. Every backward jump of
//! the lowered program is preceded by a local call to a small subroutine that calls a
//! counting helper; when more than the budget of backward jumps has been taken, the
//! subroutine calls an unregistered helper and rbpf stops with an error, reported as
//! [`FaultKind::Budget`]. A run that never takes a backward jump ends after at most as many
//! instructions as the program has. The subroutine uses a call frame: programs with
//! local calls (not supported yet) could otherwise use all 8 of rbpf's frames.
//!
//! # Usage
//! ```
//! use bpf::{ProgramSet, AluOp, Cond, Engine, Input, Insn, Operand, Program, Reg, RunResult, Width};
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

mod lower;
mod reloc;
#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use bpf::{Engine, Fault, FaultKind, Input, Outcome, Program, ProgramSet, RunResult, MAX_STACK};

use lower::TICK_HELPER;
pub use lower::{lower, Lowered};

/// The default number of backward jumps a run may take before it is stopped with
/// [`FaultKind::Budget`]: 1,000,000. Every loop iteration takes at least one, so a run that
/// ends within 1,000,000 executed instructions is never cut; an endless loop is stopped
/// after about 0.2 s. (Budget faults are never compared, so the budget trades coverage of
/// long runs against time, not soundness.)
pub const DEFAULT_BACK_EDGE_BUDGET: u64 = 1_000_000;

/// At least this many bytes around the stack and the context belong to no area rbpf accepts.
const GUARD: usize = 64 * 1024;

/// Where the stack and the context lie in [`Rbpf::buf`], as offsets.
struct Layout {
    /// One past the stack's last byte (R10); 16-byte aligned in memory.
    stack_top: usize,
    /// The context's first byte (R1); 8-byte aligned in memory.
    ctx: usize,
}

impl Layout {
    /// The buffer size that fits a context of `len` bytes wherever the buffer lands.
    fn size(len: usize) -> usize {
        GUARD + MAX_STACK as usize + 16 + GUARD + 8 + len + GUARD
    }

    /// The offsets inside a buffer starting at address `base`.
    fn at(base: usize) -> Layout {
        let align = |off: usize, to: usize| off + (base + off).wrapping_neg() % to;
        let stack_top = align(GUARD + MAX_STACK as usize, 16);
        Layout { stack_top, ctx: align(stack_top + GUARD, 8) }
    }
}

thread_local! {
    /// Backward jumps the current run may still take.
    static TICKS_LEFT: Cell<u64> = const { Cell::new(0) };
    /// Set when the current run has spent its budget.
    static SPENT: Cell<bool> = const { Cell::new(false) };
}

/// The counting helper called by the budget subroutine: 0 while budget remains, then 1.
fn tick(_: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    let left = TICKS_LEFT.get();
    if left == 0 {
        SPENT.set(true);
        1
    } else {
        TICKS_LEFT.set(left - 1);
        0
    }
}

/// The rbpf 0.4.1 interpreter as an [`Engine`] named `rbpf`.
///
/// Runs every program it accepts with the kernel's semantics (as far as the divergences
/// listed in the [module documentation](self) are lowered away), answers
/// [`RunResult::CannotJudge`] for the rest, never hangs (backward jumps are counted), and
/// never panics (rbpf runs under `catch_unwind`).
pub struct Rbpf {
    budget: u64,
    /// The stack and the context copy between guard areas (see [`Layout`]); reused
    /// between runs.
    buf: Vec<u8>,
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

    /// An engine that stops a run with [`FaultKind::Budget`] once it has taken more than
    /// `budget` backward jumps.
    pub fn with_back_edge_budget(budget: u64) -> Rbpf {
        Rbpf { budget, buf: Vec::new() }
    }

    /// The number of backward jumps a run may take.
    pub fn back_edge_budget(&self) -> u64 {
        self.budget
    }
}

/// What rbpf did with a lowered program.
enum Exec {
    /// The verifier refused it.
    Rejected(String),
    /// It ran: R0, or rbpf's error.
    Ran(Result<u64, String>),
    /// It panicked.
    Panicked(String),
}

/// Runs `bytes` on rbpf with `mem` (the context) and `mbuff` (the stack) as the areas it
/// accepts besides its own stack.
fn execute(bytes: &[u8], mem: &mut [u8], mbuff: &mut [u8], budget: u64) -> Exec {
    let mut vm = match rbpf::EbpfVmMbuff::new(Some(bytes)) {
        Ok(vm) => vm,
        Err(e) => return Exec::Rejected(e.to_string()),
    };
    if let Err(e) = vm.register_helper(TICK_HELPER, tick) {
        return Exec::Ran(Err(e.to_string()));
    }
    TICKS_LEFT.set(budget);
    SPENT.set(false);
    // rbpf takes both areas as shared slices and writes through pointers it rebuilds from
    // the registers; the slices are derived from exclusive borrows held for the call.
    match catch_unwind(AssertUnwindSafe(|| vm.execute_program(mem, mbuff))) {
        Ok(r) => Exec::Ran(r.map_err(|e| e.to_string())),
        Err(payload) => Exec::Panicked(
            payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_string()),
        ),
    }
}

/// The slot number N in rbpf's "(insn #N)".
fn insn_number(msg: &str) -> Option<usize> {
    let rest = &msg[msg.find("insn #")? + "insn #".len()..];
    let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..digits].parse().ok()
}

impl Engine for Rbpf {
    fn name(&self) -> &'static str {
        "rbpf"
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

impl Rbpf {
    /// Runs one program with no maps.
    fn run_single(&mut self, prog: &Program, input: &Input) -> RunResult {
        if cfg!(target_endian = "big") {
            return RunResult::CannotJudge(
                "rbpf's loads, stores and TO_BE follow the host's byte order: the rbpf backend \
                 needs a little-endian host"
                    .into(),
            );
        }
        let lowered = match lower(prog) {
            Ok(l) => l,
            Err(reason) => return RunResult::CannotJudge(reason),
        };
        let pc_of_slot = |slot: usize| lowered.original_index(slot).map(|i| prog.pc_of(i));
        let len = input.ctx.as_ref().map_or(0, Vec::len);
        if self.buf.len() < Layout::size(len) {
            self.buf = vec![0; Layout::size(len)];
        }
        let layout = Layout::at(self.buf.as_ptr() as usize);
        let depth = (prog.stack_depth() as usize).min(MAX_STACK as usize);
        let (below, above) = self.buf.split_at_mut(layout.stack_top);
        let stack = &mut below[layout.stack_top - depth..];
        stack.fill(0);
        let ctx = &mut above[layout.ctx - layout.stack_top..][..len];
        if let Some(bytes) = &input.ctx {
            ctx.copy_from_slice(bytes);
        }
        let r1 = if input.ctx.is_some() { ctx.as_ptr() as u64 } else { 0 };
        let r10 = stack.as_ptr() as u64 + depth as u64;
        let mut bytes = lowered.bytes().to_vec();
        // The prefix `lddw r1, imm; lddw r10, imm`: the halves of each immediate are the
        // `imm` fields (bytes 4-7) of two consecutive slots.
        for (slot, value) in [(0, r1), (2, r10)] {
            bytes[slot * 8 + 4..slot * 8 + 8].copy_from_slice(&(value as u32).to_le_bytes());
            bytes[slot * 8 + 12..slot * 8 + 16].copy_from_slice(&((value >> 32) as u32).to_le_bytes());
        }
        let mem: &mut [u8] = if input.ctx.is_some() { ctx } else { &mut [] };
        let result = match execute(&bytes, mem, stack, self.budget) {
            Exec::Rejected(msg) => {
                let at = insn_number(&msg).and_then(pc_of_slot);
                return RunResult::CannotJudge(match at {
                    Some(pc) => format!("pc {pc}: rbpf 0.4.1 rejects the lowered program: {msg}"),
                    None => format!("rbpf 0.4.1 rejects the lowered program: {msg}"),
                });
            }
            Exec::Ran(Ok(r0)) => Ok(r0),
            Exec::Ran(Err(_)) if SPENT.get() => Err(Fault {
                kind: FaultKind::Budget,
                pc: None,
                detail: format!(
                    "more than {} backward jumps (rbpf has no instruction limit; the lowering \
                     counts backward jumps)",
                    self.budget
                ),
            }),
            Exec::Ran(Err(msg)) if msg.contains("out of bounds memory") => {
                // rbpf reports the slot after the faulting one (its pc is already advanced).
                let slot = insn_number(&msg).and_then(|n| n.checked_sub(1));
                let pc = slot.and_then(pc_of_slot);
                Err(Fault { kind: FaultKind::MemoryAccess, pc, detail: msg })
            }
            Exec::Ran(Err(msg)) => Err(Fault {
                kind: FaultKind::Host,
                pc: insn_number(&msg).and_then(pc_of_slot),
                detail: format!("rbpf error: {msg}"),
            }),
            Exec::Panicked(msg) => {
                Err(Fault { kind: FaultKind::Host, pc: None, detail: format!("rbpf panicked: {msg}") })
            }
        };
        let ctx = match &input.ctx {
            Some(_) => self.buf[layout.ctx..layout.ctx + len].to_vec(),
            None => Vec::new(),
        };
        RunResult::Ran(Outcome::new(result, ctx, false))
    }
}
