//! Divergences of real kernels that are explained and written down: a finding that
//! matches one is counted apart ("known"), not saved as a new finding, so that a long run
//! on a kernel with an explained difference is not buried under copies of it. Each entry
//! holds for the kernel versions it names only; the same symptom on another kernel is a
//! finding.

use crate::compare::{Difference, EngineResult, Field};
use crate::engines::Engines;

/// One explained divergence.
pub struct KnownDivergence {
    /// A short name, for summaries.
    pub name: &'static str,
    /// The kernel engine that is the odd one out (`kernel-jit` or `kernel-interp`).
    pub engine: &'static str,
    /// The kernel versions it holds for: a version matches when it starts with one of these.
    pub kernels: &'static [&'static str],
    /// What happens, and where it is written down.
    pub explanation: &'static str,
    /// Whether a run shows it: the odd one out's outcome against the reference's.
    shows: fn(odd: &bpf::Outcome, reference: &bpf::Outcome) -> bool,
    /// The fields it may make differ.
    fields: &'static [Field],
}

/// Every known divergence.
pub const ALL: &[KnownDivergence] = &[KnownDivergence {
    name: "rv64-6.12-empty-slot-tcc",
    engine: "kernel-jit",
    kernels: &["6.12."],
    explanation: "Linux 6.12's RV64 JIT, in a program that also calls, decrements the tail-call \
                  count into a6 before the empty-slot check and loses the decrement on that path, \
                  so it makes more tail calls than its interpreter (corpus/kernel/rv64-empty-slot-tcc.s)",
    shows: |odd, reference| odd.tail_calls > reference.tail_calls,
    fields: &[Field::TailCalls, Field::Ctx, Field::R0, Field::Arrays],
}];

/// The known divergence `diffs` (of `results`, from `engines`) show, if every difference is
/// the same kernel engine's and explained by one entry for its kernel.
pub fn explain(
    engines: &Engines,
    results: &[EngineResult],
    diffs: &[Difference],
) -> Option<&'static KnownDivergence> {
    let odd = diffs.first()?.odd_one_out?;
    if diffs.iter().any(|d| d.odd_one_out != Some(odd)) {
        return None;
    }
    let (base, _) = kernel::engine::parse_engine_name(odd)?;
    let version = engines.kernel_version(odd)?;
    let outcome = |name: &str| match &results.iter().find(|r| r.engine == name)?.result {
        bpf::RunResult::Ran(o) => Some(o.clone()),
        _ => None,
    };
    let (odd_outcome, reference) = (outcome(odd)?, outcome("reference")?);
    ALL.iter().find(|k| {
        (k.engine == "kernel-jit") == base
            && k.kernels.iter().any(|v| version.starts_with(v))
            && diffs.iter().all(|d| k.fields.contains(&d.field))
            && (k.shows)(&odd_outcome, &reference)
    })
}
