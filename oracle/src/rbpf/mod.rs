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
//! | one 512-byte stack, all of it below R10 | accesses at a known `R10 + c` outside the depth are moved below the stack, so they fault |
//! | jump arithmetic in `i16` of the slot index | cannot judge beyond 32767 lowered slots |
//! | no instruction limit | backward jumps call a budget subroutine: [`FaultKind::Budget`] when spent |
//! | verifier rejects a jump with offset -1 | never emitted (a backward jump is preceded by the budget call) |
//!
//! Anything else rbpf's verifier rejects gives "cannot judge" with rbpf's message; a panic
//! inside rbpf (none is known to remain) becomes a [`FaultKind::Host`] fault.
//!
//! # Memory
//! R1 points to a copy of the context placed in the middle of a guard area of 64 KiB on
//! each side, so that an access at `ctx ± 32 KiB` (any 16-bit offset from the context or
//! from R10) never lands in another area rbpf accepts (its stack is a separate
//! allocation). rbpf uses host addresses, so pointer values differ from the reference's;
//! [`Outcome::r0_is_address`] is left false and the comparison takes provenance from the
//! reference interpreter. Accesses through pointers computed far away from their base,
//! and stack accesses outside the declared depth through pointers the lowering does not
//! track, may still land in memory rbpf accepts where the kernel would fault.
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

mod lower;
mod reloc;
#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use bpf::{Engine, Fault, FaultKind, Input, Outcome, Program, RunResult};

use lower::TICK_HELPER;
pub use lower::{lower, Lowered};

/// The default number of backward jumps a run may take before it is stopped with
/// [`FaultKind::Budget`]: 1,000,000 (every loop iteration takes at least one, so a run the
/// reference interpreter finishes within a budget of as many instructions is never cut).
pub const DEFAULT_BACK_EDGE_BUDGET: u64 = 1_000_000;

/// At least this many bytes on each side of the context copy belong to no area rbpf accepts.
const GUARD: usize = 64 * 1024;

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
    /// The context copy, 8-byte aligned between guard areas; reused between runs.
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

fn execute<'a>(bytes: &'a [u8], mem: &'a mut [u8], budget: u64) -> Exec {
    let mut vm = match rbpf::EbpfVmRaw::new(Some(bytes)) {
        Ok(vm) => vm,
        Err(e) => return Exec::Rejected(e.to_string()),
    };
    if let Err(e) = vm.register_helper(TICK_HELPER, tick) {
        return Exec::Ran(Err(e.to_string()));
    }
    TICKS_LEFT.set(budget);
    SPENT.set(false);
    match catch_unwind(AssertUnwindSafe(|| vm.execute_program(mem))) {
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

    fn run(&mut self, prog: &Program, input: &Input) -> RunResult {
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
        if self.buf.len() < 2 * GUARD + len + 8 {
            self.buf = vec![0; 2 * GUARD + len + 8];
        }
        // The context starts 8-byte aligned, as in the reference interpreter.
        let start = GUARD + (self.buf.as_ptr() as usize + GUARD).wrapping_neg() % 8;
        let ctx = &mut self.buf[start..start + len];
        if let Some(bytes) = &input.ctx {
            ctx.copy_from_slice(bytes);
        }
        let r1 = if input.ctx.is_some() { ctx.as_ptr() as u64 } else { 0 };
        let mut bytes = lowered.bytes().to_vec();
        // The prefix `lddw r1, imm`: low half in slot 0, high half in slot 1.
        bytes[4..8].copy_from_slice(&(r1 as u32).to_le_bytes());
        bytes[12..16].copy_from_slice(&((r1 >> 32) as u32).to_le_bytes());
        let mem: &mut [u8] = if input.ctx.is_some() { ctx } else { &mut [] };
        let result = match execute(&bytes, mem, self.budget) {
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
                let index = slot.and_then(|s| lowered.original_index(s));
                let mut detail = msg;
                if index.is_some_and(|i| lowered.moved_stack_access(i)) {
                    detail.push_str(&format!(
                        "\n(the access lies outside the program's stack depth of {} bytes; the \
                         lowering moved it 512 bytes down so that rbpf faults as the kernel does)",
                        prog.stack_depth()
                    ));
                }
                Err(Fault { kind: FaultKind::MemoryAccess, pc: index.map(|i| prog.pc_of(i)), detail })
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
            Some(_) => self.buf[start..start + len].to_vec(),
            None => Vec::new(),
        };
        RunResult::Ran(Outcome { result, ctx, r0_is_address: false })
    }
}
