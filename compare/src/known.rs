//! Divergences of real kernels that are explained and written down: a finding that
//! matches one is counted apart ("known"), not saved as a new finding, so that a long run
//! on a kernel with an explained difference is not buried under copies of it. Each entry
//! holds for the kernel versions it names only; the same symptom on another kernel is a
//! finding.

use crate::engines::Engines;
use crate::verdict::{Difference, EngineResult, Field};

/// One explained divergence.
pub struct KnownDivergence {
    /// A short name, for summaries.
    pub name: &'static str,
    /// The kernel engines that may be the odd one out (`kernel-jit`, `kernel-interp`).
    pub engines: &'static [&'static str],
    /// The kernel versions it holds for: a version matches when it starts with one of these.
    pub kernels: &'static [&'static str],
    /// What happens, and where it is written down.
    pub explanation: &'static str,
    /// Whether a run of `set` shows it: the odd one out's outcome against the reference's,
    /// and the empty-slot rule the reference ran.
    shows: fn(
        odd: &bpf::Outcome,
        reference: &bpf::Outcome,
        rule: bpf::EmptySlotRule,
        set: &bpf::ProgramSet,
    ) -> bool,
    /// The fields it may make differ.
    fields: &'static [Field],
}

/// Every known divergence.
pub const ALL: &[KnownDivergence] = &[
    KnownDivergence {
        name: "rv64-6.12-empty-slot-tcc",
        engines: &["kernel-jit"],
        kernels: &["6.12."],
        explanation: "Linux 6.12's RV64 JIT, in a program that also calls, decrements the tail-call \
                      count into a6 before the empty-slot check and loses the decrement on that path, \
                      so it makes more tail calls than its interpreter (corpus/kernel/rv64-empty-slot-tcc.s)",
        shows: |odd, reference, _, _| odd.tail_calls > reference.tail_calls,
        fields: &[Field::TailCalls, Field::Ctx, Field::R0, Field::Arrays],
    },
    KnownDivergence {
        name: "6.12-counts-empty-slots",
        engines: &["kernel-jit", "kernel-interp"],
        kernels: &["6.12."],
        explanation: "Linux 6.12 counts a tail call through an empty slot against the 33 (its \
                      interpreter, and its RV64 JIT in a program without calls); 7.0 stopped \
                      (3733f4be2870), so beside a newer kernel, or a reference running today's rule, \
                      6.12 makes fewer tail calls (corpus/kernel/6.12-counts-empty-slots.s)",
        shows: |odd, reference, rule, _| {
            rule == bpf::EmptySlotRule::Free && odd.tail_calls < reference.tail_calls
        },
        fields: &[Field::TailCalls, Field::Ctx, Field::R0, Field::Arrays],
    },
    KnownDivergence {
        name: "interp-tail-call-frame",
        engines: &["kernel-interp"],
        kernels: &["6.12.", "7.3."],
        explanation: "the kernel's interpreter runs a whole tail-call chain in the entry program's \
                      frame, sized by the entry's stack: the verifier gives every program that makes \
                      tail calls 512 bytes, but the end of its fixups (since may_goto, 6.9) overwrites \
                      that with the program's own depth, so a tail-called program with a deeper stack \
                      writes past the frame over the interpreter's saved registers and the kernel \
                      crashes (corpus/kernel/interp-tail-call-frame.s)",
        shows: |odd, _, _, set| {
            matches!(&odd.result, Err(f) if f.kind == bpf::FaultKind::KernelCrash)
                && kernel::engine::overruns_interpreter_frame(set)
        },
        fields: &[Field::Error],
    },
];

/// The known divergence `diffs` (of `results` of `set`, from `engines`) show, if every
/// difference is the same kernel engine's and explained by one entry for its kernel.
pub fn explain(
    engines: &Engines,
    set: &bpf::ProgramSet,
    results: &[EngineResult],
    diffs: &[Difference],
) -> Option<&'static KnownDivergence> {
    let odd = diffs.first()?.odd_one_out?;
    if diffs.iter().any(|d| d.odd_one_out != Some(odd)) {
        return None;
    }
    let base = odd.split('@').next()?;
    let version = engines.kernel_version(odd)?;
    let rule = engines.options().empty_slot_rule();
    let outcome = |name: &str| match &results.iter().find(|r| r.engine == name)?.result {
        bpf::RunResult::Ran(o) => Some(o.clone()),
        _ => None,
    };
    let (odd_outcome, reference) = (outcome(odd)?, outcome("reference")?);
    ALL.iter().find(|k| {
        k.engines.contains(&base)
            && k.kernels.iter().any(|v| version.starts_with(v))
            && diffs.iter().all(|d| k.fields.contains(&d.field))
            && (k.shows)(&odd_outcome, &reference, rule, set)
    })
}
