//! The interface every execution engine implements, and what a run produces.
//!
//! Engines (the reference interpreter, rbpf, the RV64 JIT in unicorn) never depend on each
//! other: they meet only here. A run yields an [`Outcome`] or, when an engine knows it
//! cannot reproduce the kernel's semantics for a program, [`RunResult::CannotJudge`].

use std::fmt;

use crate::helpers::HelperCall;
use crate::program::Program;
use crate::set::ProgramSet;

pub use crate::layout::{
    map_addr, ARRAY_VALUES_OFFSET, CTX_ADDR, MAPS_ADDR, MAP_PTRS_OFFSET, MAP_STRIDE, MAX_ARRAY_BYTES,
    MAX_MAP_ENTRIES,
};

/// The kernel's limit on successful tail calls in one run (`MAX_TAIL_CALL_CNT`).
pub const MAX_TAIL_CALL_CNT: u32 = 33;
/// Whether a tail call through an empty prog-array slot uses up one of the
/// [`MAX_TAIL_CALL_CNT`] tail calls. Both rules check the index first (an index at or past
/// `max_entries` never counts) and the count next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EmptySlotRule {
    /// Today's kernel: only a tail call that finds a program counts. The interpreter since
    /// Linux 7.0 ("bpf: Do not increment tailcall count when prog is NULL"), the x86-64
    /// and arm64 JITs before it, and 7.x's RV64 JIT, which checks the slot before it
    /// stores the decremented count back.
    #[default]
    Free,
    /// Linux 6.12's interpreter and RV64 JIT: every tail call past the index check counts,
    /// an empty slot included.
    Counted,
}

impl EmptySlotRule {
    /// Both rules.
    pub const ALL: [EmptySlotRule; 2] = [EmptySlotRule::Free, EmptySlotRule::Counted];

    /// The rule's name on the command line and in `kernel/build.sh`'s build-info.txt.
    pub const fn name(self) -> &'static str {
        match self {
            EmptySlotRule::Free => "free",
            EmptySlotRule::Counted => "counted",
        }
    }
}

impl std::fmt::Display for EmptySlotRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for EmptySlotRule {
    type Err = String;

    fn from_str(s: &str) -> Result<EmptySlotRule, String> {
        EmptySlotRule::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| format!("unknown empty-slot rule {s:?} (known: free, counted)"))
    }
}

/// The kernel's limit on nested bpf2bpf frames (`MAX_CALL_FRAMES`).
pub const MAX_CALL_FRAMES: usize = 8;

/// What a program runs on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Input {
    /// The context buffer R1 points to, or `None` for R1 = 0 (no context).
    pub ctx: Option<Vec<u8>>,
}

impl Input {
    /// No context: R1 = 0 at entry.
    pub fn none() -> Input {
        Input { ctx: None }
    }

    /// A context buffer of these bytes; R1 points to its first byte.
    pub fn with_ctx(bytes: Vec<u8>) -> Input {
        Input { ctx: Some(bytes) }
    }
}

/// The engine-neutral class of a run that did not reach `exit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// A load, store or atomic outside the stack and the context (the verifier would
    /// have rejected the program).
    MemoryAccess,
    /// An atomic operation on an address that is not naturally aligned.
    MisalignedAtomic,
    /// The instruction budget ran out (the program may not terminate). Budgets are
    /// counted in different units by different engines, so this class is never
    /// compared: a run that hits it is inconclusive.
    Budget,
    /// The run did not finish within a generous multiple of the instructions the reference
    /// interpreter needed to finish it (counted deterministically, see
    /// [`Engine::bound_next_run`]): the program ends, and this engine loops where it
    /// should not. Unlike [`FaultKind::Budget`], compared like any other class.
    Hang,
    /// The engine met code it could not execute (an illegal machine instruction, a jump
    /// into nowhere, a wrong return address).
    BadCode,
    /// The program breaks a rule the kernel's verifier enforces, found while running it:
    /// a read of a register a call left undefined, a call chain deeper than 8 frames, an
    /// unknown helper, or an address passed where a helper expects a scalar. Only the
    /// reference interpreter checks these; the program is invalid.
    Verifier,
    /// Native code broke the RISC-V calling convention: the return value in `a0` is not
    /// R0's low 32 bits sign-extended, or a callee-saved register or `sp` was not
    /// restored. Only the JIT can have this fault.
    Abi,
    /// Something failed in the engine's host side (emulator error, unexpected state).
    Host,
    /// The kernel running the program crashed (an oops or a panic in its log): only the
    /// kernel engines can have this fault, and it is always the kernel's bug.
    KernelCrash,
}

impl FaultKind {
    /// A short, stable name (used in JSON output and signatures).
    pub const fn name(self) -> &'static str {
        match self {
            FaultKind::MemoryAccess => "memory-access",
            FaultKind::MisalignedAtomic => "misaligned-atomic",
            FaultKind::Budget => "budget",
            FaultKind::Hang => "hang",
            FaultKind::BadCode => "bad-code",
            FaultKind::Verifier => "verifier",
            FaultKind::Abi => "abi",
            FaultKind::Host => "host",
            FaultKind::KernelCrash => "kernel-crash",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a run stopped before `exit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The class compared across engines.
    pub kind: FaultKind,
    /// The BPF pc (slot) where it happened, when the engine knows it.
    pub pc: Option<usize>,
    /// A human-readable account.
    pub detail: String,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pc {
            Some(pc) => write!(f, "{} at pc {pc}: {}", self.kind, self.detail),
            None => write!(f, "{}: {}", self.kind, self.detail),
        }
    }
}

/// Which observables an engine reports: every field for engines that see the whole
/// machine ([`Observes::ALL`]); less for engines that run programs somewhere they can
/// only be watched from outside (the kernel's `BPF_PROG_TEST_RUN` returns 32 bits of R0
/// and neither a tail-call count nor a helper trace). Fields an engine does not observe
/// are left out of every comparison with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observes {
    /// How many low bits of R0 the engine reports (64 or 32); the rest of
    /// [`Outcome::result`]'s value is zero.
    pub r0_bits: u32,
    /// Whether [`Outcome::tail_calls`] is observed.
    pub tail_calls: bool,
    /// Whether [`Outcome::helper_calls`] is observed.
    pub helper_calls: bool,
    /// Whether [`Outcome::attachments`] is observed (each attachment's runs).
    pub attachments: bool,
    /// Whether the return values in [`Outcome::attachments`] are observed too.
    pub attachment_returns: bool,
}

impl Observes {
    /// Every field, all 64 bits of R0.
    pub const ALL: Observes = Observes {
        r0_bits: 64,
        tail_calls: true,
        helper_calls: true,
        attachments: true,
        attachment_returns: true,
    };
}

/// The most fexit return values an [`AttachmentSeen`] keeps.
pub const MAX_SEEN_RETURNS: usize = 64;

/// What one attachment (fentry or fexit program) of the set saw in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttachmentSeen {
    /// How many times the trampoline ran it.
    pub runs: u32,
    /// For fexit: the traced function's return value at each run (R0's low 32 bits,
    /// sign-extended), the first [`MAX_SEEN_RETURNS`] of them.
    pub returns: Vec<u64>,
    /// Whether some return value was derived from a stack or context address (only the
    /// reference interpreter tracks this): engines place those differently, so the
    /// return values are then not compared, the runs still are.
    pub address_returns: bool,
}

impl AttachmentSeen {
    /// Records one run, with the traced function's return value for fexit.
    pub fn record(&mut self, ret: Option<u64>) {
        self.runs = self.runs.saturating_add(1);
        if let Some(r) = ret {
            if self.returns.len() < MAX_SEEN_RETURNS {
                self.returns.push(r);
            }
        }
    }
}

impl Default for Observes {
    fn default() -> Observes {
        Observes::ALL
    }
}

/// Everything observable about one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The full 64-bit R0 at `exit`, or the fault that stopped the run.
    pub result: Result<u64, Fault>,
    /// The context buffer's bytes after the run (empty without a context).
    pub ctx: Vec<u8>,
    /// Whether R0 holds a value derived from a pointer (stack or context address).
    /// Such values differ between engines by construction and are not compared.
    /// Only engines that track provenance (the reference interpreter) set this.
    pub r0_is_address: bool,
    /// How many tail calls succeeded (jumped into their target).
    pub tail_calls: u32,
    /// Every helper call, in order (tail calls are not helper calls).
    pub helper_calls: Vec<HelperCall>,
    /// The contents of every array map after the run, in the set's order.
    pub arrays: Vec<Vec<u8>>,
    /// What each of the set's attachments saw, in the set's order (empty without them).
    pub attachments: Vec<AttachmentSeen>,
    /// Which of these fields the engine observes.
    pub observes: Observes,
}

impl Outcome {
    /// An outcome with no tail calls and no helper calls.
    pub fn new(result: Result<u64, Fault>, ctx: Vec<u8>, r0_is_address: bool) -> Outcome {
        Outcome {
            result,
            ctx,
            r0_is_address,
            tail_calls: 0,
            helper_calls: Vec::new(),
            arrays: Vec::new(),
            attachments: Vec::new(),
            observes: Observes::ALL,
        }
    }
}

/// What an engine says about a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunResult {
    /// The engine ran the program.
    Ran(Outcome),
    /// The engine cannot reproduce the kernel's semantics for this program (the reason
    /// names the instruction or feature); it is left out of the comparison.
    CannotJudge(String),
    /// The engine's own verifier (a real kernel's) refused to load the program set, with
    /// its log: nothing ran. Never a mismatch; counted as the verifier's acceptance rate.
    Rejected(String),
}

/// An execution engine: runs a program set on one input with the kernel's semantics.
pub trait Engine {
    /// A short stable name (`reference`, `rbpf`, `jit`).
    fn name(&self) -> &'static str;

    /// Runs the entry program of `set` on `input`. Never panics on any checked
    /// [`ProgramSet`]: every failure is an [`Outcome`] with a [`Fault`], or
    /// [`RunResult::CannotJudge`].
    fn run_set(&mut self, set: &ProgramSet, input: &Input) -> RunResult;

    /// Says that `set` will run on each of `inputs` after the sets announced before it: an
    /// engine that runs elsewhere (a real kernel in a guest) may start on it now, in the
    /// background, and answer the [`Engine::prepare`] of the same set and inputs from that
    /// work, so that it works while the host does other things. A set announced and never
    /// prepared is dropped. Results are the same either way. The default does nothing.
    fn announce(&mut self, set: &ProgramSet, inputs: &[Input]) {
        let _ = (set, inputs);
    }

    /// Says that `set` is about to run on each of `inputs`, in this order: an engine whose
    /// runs are costly to start one by one (a real kernel in a guest) may run them all now
    /// and answer the [`Engine::run_set`] calls that follow from what it kept. Results are
    /// the same either way. The default does nothing.
    fn prepare(&mut self, set: &ProgramSet, inputs: &[Input]) {
        let _ = (set, inputs);
    }

    /// The machine code this engine runs for `set`'s entry program on `input`, as a
    /// disassembly, when that code was not made by jitdiff (the real kernel's JIT), so that
    /// reports can show it. `None` (the default) for interpreters and for jitdiff's own JIT,
    /// whose listing the reports take from its compiler; `Some(Err(why))` when the engine
    /// has such code but could not produce it for this set.
    fn native_listing(&mut self, set: &ProgramSet, input: &Input) -> Option<Result<String, String>> {
        let _ = (set, input);
        None
    }

    /// How many times this engine had to replace what it runs on after it failed (a real
    /// kernel's guest that died, stopped answering or answered garbage), by cause; empty
    /// (the default) for engines that run in this process.
    fn restarts(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// The instructions the last run executed, for an engine that counts them in the
    /// kernel's units (the reference interpreter); `None` (the default) otherwise.
    fn work(&self) -> Option<u64> {
        None
    }

    /// Bounds the next [`Engine::run_set`] by `work`, the instructions the reference
    /// interpreter executed to finish the same run: an engine that can count its own
    /// progress stops a run that goes on far longer than any correct execution could (a
    /// generous multiple of `work`), and reports [`FaultKind::Hang`]; it also spends no
    /// more wall-clock time on it than that work warrants. The default ignores it.
    fn bound_next_run(&mut self, work: u64) {
        let _ = work;
    }

    /// Runs a single program (a set of one program and no maps).
    fn run(&mut self, prog: &Program, input: &Input) -> RunResult {
        self.run_set(&ProgramSet::single(prog.clone()), input)
    }
}
