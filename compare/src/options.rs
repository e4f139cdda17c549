//! How the engines are configured for a run ([`Options`]: scheme, semantics, budget,
//! injected bugs, kernel, empty-slot rule), and our two configurable engines built from
//! them.

use bpf::EmptySlotRule;

/// How the engines are configured for a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// How the JIT keeps the tail-call counter.
    pub scheme: jit::Scheme,
    /// The count semantics the reference interpreter implements.
    pub semantics: oracle::reference::TailCallSemantics,
    /// Bound on a run: reference instructions and JIT translation blocks (`None`: the
    /// engines' defaults, 100 million each). A run that reaches it is inconclusive.
    pub budget: Option<u64>,
    /// Bugs injected into the JIT (none by default).
    pub bugs: jit::Bugs,
    /// The kernel that `kernel-jit` and `kernel-interp` without `@SPEC` run (a Debian
    /// version or a path; `None`: [`kernel::DEFAULT_KERNEL`]).
    pub kernel: Option<&'static str>,
    /// Whether a tail call through an empty slot counts, for the reference, rbpf and the
    /// JIT. `None`: the rule of the kernel engines' kernels when they all have the same,
    /// else today's ([`EmptySlotRule::Free`]); see [`crate::engines::Engines::try_with_options`].
    pub empty_slot: Option<EmptySlotRule>,
}

impl Default for Options {
    /// The defaults: the `register` scheme against `global` semantics.
    fn default() -> Options {
        Options {
            scheme: jit::Scheme::Register,
            semantics: oracle::reference::TailCallSemantics::Global,
            budget: None,
            bugs: jit::Bugs::NONE,
            kernel: None,
            empty_slot: None,
        }
    }
}

impl Options {
    /// The empty-slot rule in force: [`Options::empty_slot`], else today's.
    pub fn empty_slot_rule(&self) -> EmptySlotRule {
        self.empty_slot.unwrap_or_default()
    }
}

/// The fuzzer's bound on a run (reference instructions, JIT blocks): generated sets run
/// a few thousand instructions, so a run that reaches this is one that explodes (such as
/// the hierarchy shape under per-frame counting) and is skipped as inconclusive.
pub const FUZZ_BUDGET: u64 = 300_000;

/// The reference interpreter configured by `opts` (budget and semantics).
pub fn reference(opts: &Options) -> oracle::reference::Reference {
    match opts.budget {
        Some(b) => oracle::reference::Reference::with_budget_and_semantics(b, opts.semantics),
        None => oracle::reference::Reference::with_semantics(opts.semantics),
    }
    .with_empty_slot(opts.empty_slot_rule())
}

/// The JIT configured by `opts` (block limit, scheme and injected bugs).
pub fn jit(opts: &Options) -> jit::Jit {
    match opts.budget {
        Some(b) => jit::Jit::with_block_limit(b as usize),
        None => jit::Jit::new(),
    }
    .with_scheme(opts.scheme)
    .with_bugs(opts.bugs)
    .with_empty_slot(opts.empty_slot_rule())
}
