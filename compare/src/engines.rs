//! Building engines by name.

use bpf::{EmptySlotRule, Engine, Input, Program, ProgramSet};

pub use crate::options::{jit, reference, Options, FUZZ_BUDGET};
use crate::verdict::EngineResult;

/// The engines that run in this process, in the order they are shown: the default set.
pub const ALL: [&str; 3] = ["reference", "rbpf", "jit"];
/// The real kernel's RV64 JIT and interpreter in a riscv64 guest under qemu (see the
/// `kernel` crate), on the kernel [`Options::kernel`] names; `kernel-jit@SPEC` and
/// `kernel-interp@SPEC` name a kernel of their own (a Debian version such as `7.3`, or the
/// path of a kernel source tree or tarball). Images are built by `kernel/build.sh`, on
/// first use if need be.
pub const KERNEL: [&str; 2] = ["kernel-jit", "kernel-interp"];

/// Whether `name` is a kernel engine (with or without `@SPEC`).
pub fn is_kernel(name: &str) -> bool {
    kernel::engine::parse_engine_name(name).is_some()
}

/// The engine called `name` configured by `opts`. `Err` for an unknown name, or for a
/// kernel engine without a kernel image.
pub fn build(name: &'static str, opts: &Options) -> Result<Box<dyn Engine>, String> {
    match name {
        "reference" => Ok(Box::new(reference(opts))),
        "rbpf" => Ok(Box::new(oracle::rbpf::Rbpf::new().with_empty_slot(opts.empty_slot_rule()))),
        "jit" => Ok(Box::new(jit(opts))),
        _ => match kernel_engine(name, opts) {
            Some(e) => e.map(|e| Box::new(e) as Box<dyn Engine>),
            None => Err(format!("unknown engine {name:?}")),
        },
    }
}

/// The kernel engine called `name` (`None` if the name is not a kernel engine's).
fn kernel_engine(name: &'static str, opts: &Options) -> Option<Result<kernel::KernelEngine, String>> {
    let (is_jit, spec) = kernel::engine::parse_engine_name(name)?;
    Some(kernel::KernelEngine::named(is_jit, spec.or(opts.kernel), name).map_err(|e| format!("{name}: {e}")))
}

/// Parses a comma-separated engine list (`reference,jit`). The reference interpreter is
/// required: it decides which programs are valid.
pub fn parse_list(list: &str) -> Result<Vec<&'static str>, String> {
    let mut out = Vec::new();
    let unknown = |name: &str| {
        format!(
            "unknown engine {name:?} (known: {}, {}, and kernel-jit@KERNEL or kernel-interp@KERNEL \
             with a Debian version such as 7.3 or a kernel source path)",
            ALL.join(", "),
            KERNEL.join(", ")
        )
    };
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let known = match (ALL.iter().find(|n| **n == name), kernel::engine::parse_engine_name(name)) {
            (Some(n), _) => *n,
            (None, Some((is_jit, spec))) => kernel::engine::engine_name(is_jit, spec),
            (None, None) => return Err(unknown(name)),
        };
        if !out.contains(&known) {
            out.push(known);
        }
    }
    if !out.contains(&"reference") {
        return Err("the engine list must include reference: it decides which programs are valid".into());
    }
    if out.len() < 2 {
        return Err("name at least two engines to compare".into());
    }
    Ok(out)
}

/// A set of engines built once and reused for many programs.
pub struct Engines {
    engines: Vec<Box<dyn Engine>>,
    /// The order the engines run in: the reference first (it bounds the others), then the
    /// rest as listed.
    order: Vec<usize>,
    opts: Options,
    /// Each kernel engine's name and its kernel's version, where recorded.
    kernel_versions: Vec<(&'static str, String)>,
    /// Built on first use: only triage traces runs.
    tracer: Option<crate::diverge::Tracer>,
}

/// Whether any program of the set makes a tail call.
fn has_tail_calls(set: &ProgramSet) -> bool {
    set.progs().iter().any(|p| p.prog.insns().iter().any(bpf::Insn::is_tail_call))
}

impl Engines {
    /// Builds the named engines (names from [`ALL`]) with the default options.
    pub fn new(names: &[&'static str]) -> Engines {
        Engines::with_options(names, &Options::default())
    }

    /// Builds the named engines configured by `opts`.
    ///
    /// # Panics
    /// When an engine cannot be built: use [`Engines::try_with_options`] for names from a
    /// user (kernel engines need an image).
    pub fn with_options(names: &[&'static str], opts: &Options) -> Engines {
        Engines::try_with_options(names, opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Builds the named engines configured by `opts`, or says which one cannot be built.
    /// The kernel engines are built first; when `opts` leaves the empty-slot rule open,
    /// the others follow their kernels' rule if they all have the same one, else today's.
    pub fn try_with_options(names: &[&'static str], opts: &Options) -> Result<Engines, String> {
        let mut kernels: Vec<(usize, kernel::KernelEngine)> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if let Some(e) = kernel_engine(name, opts) {
                kernels.push((i, e?));
            }
        }
        let mut opts = *opts;
        if opts.empty_slot.is_none() {
            let rules: Vec<Option<EmptySlotRule>> = kernels.iter().map(|(_, e)| e.empty_slot()).collect();
            opts.empty_slot = match rules.first() {
                Some(&first) if rules.iter().all(|r| *r == first) => first,
                _ => None,
            };
        }
        let kernel_versions =
            kernels.iter().filter_map(|(i, e)| Some((names[*i], e.kernel_version()?))).collect();
        let mut kernels = kernels.into_iter().peekable();
        let mut engines = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            match kernels.next_if(|(k, _)| *k == i) {
                Some((_, e)) => engines.push(Box::new(e) as Box<dyn Engine>),
                None => engines.push(build(name, &opts)?),
            }
        }
        let mut order: Vec<usize> = (0..engines.len()).collect();
        order.sort_by_key(|&i| engines[i].name() != "reference");
        Ok(Engines { engines, order, opts, kernel_versions, tracer: None })
    }

    /// The engines' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.engines.iter().map(|e| e.name()).collect()
    }

    /// The version of the kernel that kernel engine `name` runs (such as `6.12.118`), where
    /// its image records it.
    pub fn kernel_version(&self, name: &str) -> Option<&str> {
        self.kernel_versions.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The options the engines were built with, the empty-slot rule resolved.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The first BPF instruction after which the reference and the JIT (configured by
    /// these engines' options) disagree on `set` and `input`; see
    /// [`crate::diverge::Tracer::first_divergence`].
    pub fn first_divergence(
        &mut self,
        set: &ProgramSet,
        input: &Input,
    ) -> Option<crate::diverge::Divergence> {
        let opts = self.opts;
        self.tracer.get_or_insert_with(|| crate::diverge::Tracer::new(&opts)).first_divergence(set, input)
    }

    /// Each engine's disassembly of the machine code it ran for `set`'s entry program on
    /// `input`, for the engines that run code jitdiff did not make (see
    /// [`Engine::native_listing`]), by engine name.
    pub fn native_listings(
        &mut self,
        set: &ProgramSet,
        input: &Input,
    ) -> Vec<(&'static str, Result<String, String>)> {
        self.engines.iter_mut().filter_map(|e| Some((e.name(), e.native_listing(set, input)?))).collect()
    }

    /// Runs `prog` on `input` on every engine, in order.
    pub fn run(&mut self, prog: &Program, input: &Input) -> Vec<EngineResult> {
        self.run_set(&ProgramSet::single(prog.clone()), input)
    }

    /// How many times the engines replaced a failed guest, by cause, over all engines.
    pub fn restarts(&self) -> std::collections::BTreeMap<&'static str, u64> {
        let mut all = std::collections::BTreeMap::new();
        for (cause, n) in self.engines.iter().flat_map(|e| e.restarts()) {
            *all.entry(cause).or_insert(0) += n;
        }
        all
    }

    /// Tells every engine that `set` will run on each of `inputs` after the sets announced
    /// before it ([`Engine::announce`]): the kernel engines' guests start on it now.
    pub fn announce(&mut self, set: &ProgramSet, inputs: &[Input]) {
        for e in &mut self.engines {
            e.announce(set, inputs);
        }
    }

    /// Tells every engine that `set` is about to run on each of `inputs`
    /// ([`Engine::prepare`]).
    pub fn prepare(&mut self, set: &ProgramSet, inputs: &[Input]) {
        for e in &mut self.engines {
            e.prepare(set, inputs);
        }
    }

    /// Runs a program set on `input` on every engine; results in the engines' order. The
    /// reference runs first. When it runs out of budget the run is inconclusive whatever
    /// the others say, so the other engines are not run (a set that explodes costs one
    /// bounded run, not three); when it finishes, every other engine is bounded by the
    /// instructions it needed ([`Engine::bound_next_run`](bpf::Engine::bound_next_run)),
    /// so that one that loops where the program ends reports a `hang` quickly.
    /// rbpf's tail calls follow the global count semantics only; under other semantics
    /// it cannot judge sets that make tail calls.
    pub fn run_set(&mut self, set: &ProgramSet, input: &Input) -> Vec<EngineResult> {
        self.run_set_timed(set, input, &mut |_, _| {})
    }

    /// [`Engines::run_set`], calling `timed(engine, start)` as each engine finishes, with
    /// the instant it started.
    pub fn run_set_timed(
        &mut self,
        set: &ProgramSet,
        input: &Input,
        timed: &mut dyn FnMut(&'static str, std::time::Instant),
    ) -> Vec<EngineResult> {
        let per_frame =
            self.opts.semantics != oracle::reference::TailCallSemantics::Global && has_tail_calls(set);
        let mut results: Vec<Option<EngineResult>> = (0..self.engines.len()).map(|_| None).collect();
        // Whether the reference ran out of budget; its work when its run ended otherwise
        // (not when it could not judge: its work then says nothing of the run's length).
        let (mut out_of_budget, mut work) = (false, None);
        for &i in &self.order {
            let e = &mut self.engines[i];
            let start = std::time::Instant::now();
            let result = if out_of_budget {
                bpf::RunResult::CannotJudge(
                    "not run: the reference ran out of budget, so the run is inconclusive".into(),
                )
            } else if per_frame && e.name() == "rbpf" {
                bpf::RunResult::CannotJudge(
                    "rbpf's tail calls implement only the global count semantics".into(),
                )
            } else {
                if let Some(w) = work {
                    e.bound_next_run(w);
                }
                e.run_set(set, input)
            };
            timed(e.name(), start);
            if e.name() == "reference" {
                out_of_budget = matches!(&result, bpf::RunResult::Ran(o)
                    if o.result.as_ref().is_err_and(|f| f.kind == bpf::FaultKind::Budget));
                work = match &result {
                    bpf::RunResult::Ran(_) if !out_of_budget => e.work(),
                    _ => None,
                };
            }
            results[i] = Some(EngineResult { engine: e.name(), result });
        }
        results.into_iter().map(|r| r.expect("every engine ran")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KERNEL_LIST: [&str; 3] = ["reference", "kernel-jit", "kernel-interp"];

    #[test]
    fn engine_lists() {
        assert_eq!(parse_list("reference,jit").unwrap(), vec!["reference", "jit"]);
        assert_eq!(parse_list(" jit , reference,jit").unwrap(), vec!["jit", "reference"]);
        assert!(parse_list("jit,rbpf").unwrap_err().contains("must include reference"));
        assert!(parse_list("reference,qemu").unwrap_err().contains("unknown engine \"qemu\""));
        assert_eq!(parse_list("reference,kernel-jit,kernel-interp").unwrap(), KERNEL_LIST);
        assert!(parse_list("reference").unwrap_err().contains("at least two"));
        assert_eq!(
            parse_list("reference,kernel-jit@6.12,kernel-jit@7.3").unwrap(),
            vec!["reference", "kernel-jit@6.12", "kernel-jit@7.3"]
        );
        assert!(parse_list("reference,kernel-jit@").unwrap_err().contains("unknown engine"));
        assert!(is_kernel("kernel-interp@/src/linux") && is_kernel("kernel-jit") && !is_kernel("jit"));
    }

    #[test]
    fn every_listed_engine_builds_under_its_name() {
        for name in ALL {
            assert_eq!(build(name, &Options::default()).map(|e| e.name()), Ok(name));
        }
    }

    #[test]
    fn engines_after_a_reference_out_of_budget_are_not_run() {
        use bpf::{AluOp, Insn, Operand, Reg, RunResult, Width};
        let mov = |imm| Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R0, src: Operand::Imm(imm) };
        // Twenty instructions, a budget of ten.
        let mut insns: Vec<Insn> = (0..19).map(mov).collect();
        insns.push(Insn::Exit);
        let prog = Program::new(insns).unwrap();
        let opts = Options { budget: Some(10), ..Options::default() };
        let results = Engines::with_options(&ALL, &opts).run(&prog, &Input::none());
        let RunResult::Ran(o) = &results[0].result else { panic!("{:?}", results[0]) };
        assert_eq!(o.result.as_ref().unwrap_err().kind, bpf::FaultKind::Budget);
        for r in &results[1..] {
            assert!(matches!(&r.result, RunResult::CannotJudge(why) if why.starts_with("not run")), "{r:?}");
        }
        assert!(matches!(crate::verdict::compare(&results), crate::verdict::Verdict::Inconclusive(_)));
        // Within budget, every engine runs and agrees on R0 = 18.
        let results = Engines::new(&ALL).run(&prog, &Input::none());
        for r in &results {
            assert!(matches!(&r.result, RunResult::Ran(o) if o.result == Ok(18)), "{r:?}");
        }
    }

    #[test]
    fn an_engine_that_loops_where_the_reference_finishes_hangs_and_is_the_odd_one_out() {
        // The reference runs first even when listed last, and bounds the JIT by its work:
        // r1 = 0x100000003; loop: r1 -= 1; if w1 != 0 goto loop; r0 = 0; exit ends after
        // three iterations; a JIT whose loop condition compares 64 bits does not.
        let set = bpf::asm::parse_set("r1 = 0x100000003 ll\nl:\nr1 -= 1\nif w1 != 0 goto l\nr0 = 0\nexit\n")
            .unwrap()
            .set;
        let opts =
            Options { bugs: jit::Bugs::NONE.with(jit::bugs::Bug::Jmp32LoopFullWidth), ..Options::default() };
        let mut engines = Engines::with_options(&["jit", "rbpf", "reference"], &opts);
        let results = engines.run_set(&set, &Input::none());
        let bpf::RunResult::Ran(o) = &results[0].result else { panic!("{:?}", results[0]) };
        assert_eq!(o.result.as_ref().unwrap_err().kind, bpf::FaultKind::Hang);
        let crate::verdict::Verdict::Mismatch(diffs) = crate::verdict::compare(&results) else {
            panic!("{results:?}")
        };
        assert_eq!((diffs[0].field, diffs[0].odd_one_out), (crate::verdict::Field::Error, Some("jit")));
        assert!(diffs[0].explanation.contains("jit says hang"), "{}", diffs[0].explanation);
    }
}
