//! The standalone fuzzer: the generator fed by a seeded random source instead of
//! libFuzzer, on every engine, on one or more threads, saving every finding.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use generator::input::{ctx_or_default, generate_for, text_input, vary, KernelTarget, Rng};
use generator::shapes::Shape;
use generator::Generated;

use compare::config::FindingConfig;
use compare::engines::{Engines, Options};
use compare::{compare, Verdict};

/// Bytes of generator input per run.
pub const INPUT_LEN: usize = 4096;

/// What one fuzzing session is told.
#[derive(Clone, Debug)]
pub struct FuzzOptions {
    /// Stop after this long (`None`: no time limit).
    pub time: Option<Duration>,
    /// Stop after this many runs in all (`None`: no limit).
    pub runs: Option<u64>,
    /// The first seed; thread `k` uses `seed + k`.
    pub seed: u64,
    /// Threads.
    pub jobs: usize,
    /// Engine configuration.
    pub engines: Options,
    /// Where findings are saved (created if missing).
    pub artifacts: PathBuf,
    /// Program sets (`.s` files, searched recursively) replayed before generating.
    pub corpus: Option<PathBuf>,
    /// Inputs each generated set runs on (at least 1): the generator's context, then
    /// variations of it ([`vary`]). The set is compiled and translated once for all of
    /// them.
    pub inputs_per_set: usize,
    /// Stop at the first finding (for measuring time to detect).
    pub stop_at_first_finding: bool,
    /// The engines compared (default [`compare::engines::ALL`]). With kernel engines the generator uses
    /// only the kernel's helpers, and most sets avoid mixing bpf2bpf calls with tail calls
    /// (which 6.12's RV64 JIT refuses).
    pub engine_names: Vec<&'static str>,
}

/// Where fuzzing time goes, for [`Stats::time_shares`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Turning bytes into a program set and its inputs.
    Generate,
    /// The reference interpreter.
    Reference,
    /// rbpf.
    Rbpf,
    /// The JIT: compiling and running in unicorn.
    Jit,
    /// The kernel engines: a round trip to the guest.
    Kernel,
    /// Comparing outcomes and recording statistics.
    Compare,
}

impl Stage {
    /// Every stage, in the order shown.
    pub const ALL: [Stage; 6] =
        [Stage::Generate, Stage::Reference, Stage::Rbpf, Stage::Jit, Stage::Kernel, Stage::Compare];

    /// A short stable name.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Generate => "generate",
            Stage::Reference => "reference",
            Stage::Rbpf => "rbpf",
            Stage::Jit => "jit",
            Stage::Kernel => "kernel",
            Stage::Compare => "compare",
        }
    }

    fn of_engine(name: &str) -> Option<Stage> {
        match name {
            "reference" => Some(Stage::Reference),
            "rbpf" => Some(Stage::Rbpf),
            "jit" => Some(Stage::Jit),
            "kernel-jit" | "kernel-interp" => Some(Stage::Kernel),
            _ => None,
        }
    }
}

/// What a session found.
#[derive(Debug, Default)]
pub struct Stats {
    /// Runs made: one set on one input, on every engine.
    pub runs: AtomicU64,
    /// Distinct program sets generated (each run on one or more inputs).
    pub sets: AtomicU64,
    /// Runs whose engines disagreed (saved).
    pub findings: AtomicU64,
    /// Generated sets the reference called invalid: generator bugs (saved).
    pub invalid: AtomicU64,
    /// Runs that ran out of budget (skipped).
    pub inconclusive: AtomicU64,
    /// BPF instructions generated, for the mean set size.
    pub insns: AtomicU64,
    /// Nanoseconds spent in each [`Stage`], indexed like [`Stage::ALL`].
    pub nanos: [AtomicU64; 6],
    /// Sets that make a tail call.
    pub with_tail_calls: AtomicU64,
    /// Sets with a bpf2bpf call.
    pub with_subprograms: AtomicU64,
    /// Sets with a kfunc call.
    pub with_kfuncs: AtomicU64,
    /// Sets with an fentry or fexit attachment.
    pub with_attachments: AtomicU64,
    /// Which call shapes ([`generator::shapes::Shape::ALL`]) the sets had.
    pub shapes: [AtomicBool; generator::shapes::Shape::ALL.len()],
    /// Which instruction forms ([`generator::forms::all_forms`]) the sets used.
    pub forms: Vec<AtomicBool>,
    /// Which loop-test forms ([`generator::loops::all_loop_tests`]) the sets' loops used.
    pub loop_tests: Vec<AtomicBool>,
    /// Sets with a loop.
    pub with_loops: AtomicU64,
    /// Sets with a loop not of the counted-down form.
    pub with_other_loops: AtomicU64,
    /// Sets with an early exit out of a loop.
    pub with_early_exits: AtomicU64,
    /// Sets with a pointer to a caller's stack passed to a bpf2bpf call.
    pub with_caller_stack: AtomicU64,
    /// Sets with a global variable.
    pub with_globals: AtomicU64,
    /// Which jump distances around each [`Boundary`] the sets' code had, in jitdiff's
    /// JIT, `2 * BOUNDARY_STEPS + 1` per boundary in [`Boundary::ALL`]'s order.
    pub distances: Vec<AtomicBool>,
    /// Corpus program sets replayed before generating.
    pub corpus: AtomicU64,
    /// Runs whose mismatch is a known divergence of a kernel ([`compare::known`]), counted
    /// here and not as findings.
    pub known: AtomicU64,
    /// Of [`Stats::known`], the runs of each known divergence, in [`compare::known::ALL`]'s
    /// order.
    pub known_each: [AtomicU64; compare::known::ALL.len()],
    /// When the first finding was made: time since the start and runs made by then.
    pub first_finding: Mutex<Option<(Duration, u64)>>,
    /// Guests of the kernel engines replaced after they failed, by cause (the real kernel's
    /// guest died, stopped answering or answered garbage); the runs it owed were run again
    /// on the new one.
    pub guest_restarts: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Kernel engine runs, by what the kernel said (see [`KernelVerdicts`]).
    pub kernel: KernelVerdicts,
}

/// What the kernel engines said about the runs asked of them, in all and per call shape.
#[derive(Debug, Default)]
pub struct KernelVerdicts {
    /// Loaded and ran.
    pub ran: AtomicU64,
    /// Refused by the verifier in a shape the kernel supports: the generator or the
    /// lowering made something the kernel does not accept (each one is worth a look).
    pub rejected: AtomicU64,
    /// Of [`KernelVerdicts::rejected`], those in sets that mix bpf2bpf calls and tail calls
    /// in one program.
    pub rejected_mixed: AtomicU64,
    /// Refused because that kernel does not run programs mixing bpf2bpf calls and tail
    /// calls at all: its interpreter never does, nor a JIT without tail calls in
    /// subprograms such as 6.12's RV64 JIT ([`kernel::engine::refused_for_mixing`]). Not
    /// counted in the acceptance.
    pub mixing_unsupported: AtomicU64,
    /// Not run: features the kernel engine cannot reproduce, or a guest failure.
    pub cannot_judge: AtomicU64,
    /// Per call shape, in [`Shape::ALL`]'s order: runs of sets with that shape that the
    /// kernel ran, rejected, refused for mixing, could not judge (the four counts above).
    pub by_shape: [[AtomicU64; 4]; Shape::ALL.len()],
}

/// Which of the four counts of a [`KernelVerdicts`] a result goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KernelVerdict {
    Ran,
    Rejected,
    MixingUnsupported,
    CannotJudge,
}

/// The kernel's verdicts on the runs of sets with one call shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapeVerdicts {
    /// The shape's name ([`Shape::name`]).
    pub shape: &'static str,
    /// Runs the kernel loaded and ran.
    pub ran: u64,
    /// Runs its verifier refused, in a shape it supports.
    pub rejected: u64,
    /// Runs refused because the kernel does not run programs that mix calls and tail calls.
    pub mixing_unsupported: u64,
    /// Runs the kernel engine could not judge.
    pub cannot_judge: u64,
}

impl KernelVerdicts {
    /// The share of runs in supported shapes the kernel's verifier accepted, if any ran.
    pub fn acceptance(&self) -> Option<f64> {
        let ran = self.ran.load(Ordering::Relaxed);
        let total = ran + self.rejected.load(Ordering::Relaxed);
        (total > 0).then(|| ran as f64 / total as f64)
    }

    /// The verdicts per call shape, for the shapes that were asked of the kernel.
    pub fn by_shape(&self) -> Vec<ShapeVerdicts> {
        Shape::ALL
            .iter()
            .zip(&self.by_shape)
            .map(|(s, c)| {
                let [ran, rejected, mixing_unsupported, cannot_judge] =
                    c.each_ref().map(|n| n.load(Ordering::Relaxed));
                ShapeVerdicts { shape: s.name(), ran, rejected, mixing_unsupported, cannot_judge }
            })
            .filter(|v| v.ran + v.rejected + v.mixing_unsupported + v.cannot_judge > 0)
            .collect()
    }

    /// Counts one kernel engine's result for `set`, whose call shapes are `shapes`;
    /// `Some(log)` for a rejection in a supported shape (worth a look: the generator made
    /// something the kernel refuses).
    fn record(&self, set: &bpf::ProgramSet, shapes: &[Shape], result: &bpf::RunResult) -> Option<String> {
        let verdict = match result {
            bpf::RunResult::Ran(_) => KernelVerdict::Ran,
            bpf::RunResult::CannotJudge(_) => KernelVerdict::CannotJudge,
            bpf::RunResult::Rejected(log) if kernel::engine::refused_for_mixing(log) => {
                KernelVerdict::MixingUnsupported
            }
            bpf::RunResult::Rejected(_) => KernelVerdict::Rejected,
        };
        let count = match verdict {
            KernelVerdict::Ran => &self.ran,
            KernelVerdict::Rejected => &self.rejected,
            KernelVerdict::MixingUnsupported => &self.mixing_unsupported,
            KernelVerdict::CannotJudge => &self.cannot_judge,
        };
        count.fetch_add(1, Ordering::Relaxed);
        for &shape in shapes {
            self.by_shape[shape as usize][verdict as usize].fetch_add(1, Ordering::Relaxed);
        }
        match (verdict, result) {
            (KernelVerdict::Rejected, bpf::RunResult::Rejected(log)) => {
                if mixes_calls_and_tail_calls(set) {
                    self.rejected_mixed.fetch_add(1, Ordering::Relaxed);
                }
                Some(log.clone())
            }
            _ => None,
        }
    }
}

/// Whether a program of `set` makes both bpf2bpf calls and tail calls.
pub fn mixes_calls_and_tail_calls(set: &bpf::ProgramSet) -> bool {
    set.progs().iter().any(|p| {
        let insns = p.prog.insns();
        insns.iter().any(|i| matches!(i, bpf::Insn::Call(bpf::Call::Local(_))))
            && insns.iter().any(bpf::Insn::is_tail_call)
    })
}

/// A distance at which a jump's RV64 encoding changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boundary {
    /// A conditional branch backward past -4096 bytes (B-type) is relaxed.
    BtypeBackward,
    /// A conditional branch forward past +4094 bytes (B-type) is relaxed.
    BtypeForward,
    /// A jump forward past +1 MiB - 2 (`jal`) takes `auipc`+`jalr`.
    JalForward,
}

/// 4-byte steps counted on either side of a boundary.
pub const BOUNDARY_STEPS: usize = 8;

impl Boundary {
    /// Every boundary.
    pub const ALL: [Boundary; 3] = [Boundary::BtypeBackward, Boundary::BtypeForward, Boundary::JalForward];

    /// A short stable name.
    pub const fn name(self) -> &'static str {
        match self {
            Boundary::BtypeBackward => "b-type-backward",
            Boundary::BtypeForward => "b-type-forward",
            Boundary::JalForward => "jal-forward",
        }
    }

    /// The first distance past the reach (a multiple of 4), and whether the boundary is
    /// one of conditional branches.
    const fn edge(self) -> (i64, bool) {
        match self {
            Boundary::BtypeBackward => (-4100, true),
            Boundary::BtypeForward => (4096, true),
            Boundary::JalForward => (1 << 20, false),
        }
    }

    /// The step (0 to `2 * BOUNDARY_STEPS`, the edge at `BOUNDARY_STEPS`) of a jump at
    /// distance `d`, if it lies that close.
    fn step(self, conditional: bool, d: i64) -> Option<usize> {
        let (edge, cond) = self.edge();
        let k = (d - edge) / 4 + BOUNDARY_STEPS as i64;
        (cond == conditional && d % 4 == 0 && (0..=2 * BOUNDARY_STEPS as i64).contains(&k))
            .then_some(k as usize)
    }
}

impl Stats {
    fn new() -> Stats {
        Stats {
            forms: (0..generator::forms::all_forms().len()).map(|_| AtomicBool::new(false)).collect(),
            loop_tests: (0..generator::loops::all_loop_tests().len())
                .map(|_| AtomicBool::new(false))
                .collect(),
            distances: (0..Boundary::ALL.len() * (2 * BOUNDARY_STEPS + 1))
                .map(|_| AtomicBool::new(false))
                .collect(),
            ..Stats::default()
        }
    }

    /// How many loop-test forms the sets' loops used, and how many there are.
    pub fn loop_tests_seen(&self) -> (usize, usize) {
        (self.loop_tests.iter().filter(|f| f.load(Ordering::Relaxed)).count(), self.loop_tests.len())
    }

    /// Per boundary, how many of its distances the sets' jumps had, of how many.
    pub fn distances_seen(&self) -> Vec<(Boundary, usize, usize)> {
        let n = 2 * BOUNDARY_STEPS + 1;
        Boundary::ALL
            .iter()
            .enumerate()
            .map(|(b, &boundary)| {
                let seen =
                    self.distances[b * n..(b + 1) * n].iter().filter(|s| s.load(Ordering::Relaxed)).count();
                (boundary, seen, n)
            })
            .collect()
    }

    /// Records the loops of `set`, and, for a set with a jump over more than 900
    /// instructions, where its jumps lie in jitdiff's JIT around each [`Boundary`].
    fn record_loops(&self, set: &bpf::ProgramSet) {
        let facts = generator::loops::loop_facts(set);
        let all = generator::loops::all_loop_tests();
        for t in &facts.tests {
            if let Some(k) = all.iter().position(|a| a == t) {
                self.loop_tests[k].store(true, Ordering::Relaxed);
            }
        }
        for (yes, count) in [
            (!facts.tests.is_empty(), &self.with_loops),
            (facts.other_than_counted, &self.with_other_loops),
            (facts.early_exit, &self.with_early_exits),
            (facts.caller_stack_pointer, &self.with_caller_stack),
            (facts.global_variable, &self.with_globals),
        ] {
            if yes {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        let long = set.progs().iter().any(|p| {
            (0..p.prog.insns().len()).any(|i| p.prog.target_of(i).is_some_and(|t| t.abs_diff(i) > 900))
        });
        if !long {
            return;
        }
        let Ok(compiled) = jit::compile::compile_set(set, jit::Scheme::Register) else { return };
        let n = 2 * BOUNDARY_STEPS + 1;
        for (c, p) in compiled.progs.iter().zip(set.progs()) {
            for (cond, d) in c.jump_distances(&p.prog) {
                for (b, boundary) in Boundary::ALL.iter().enumerate() {
                    if let Some(k) = boundary.step(cond, d) {
                        self.distances[b * n + k].store(true, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Counts a run that shows `known` (if it shows one); whether it did.
    fn count_known(&self, known: Option<&'static compare::known::KnownDivergence>) -> bool {
        let Some(k) = known else { return false };
        self.known.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = compare::known::ALL.iter().position(|e| e.name == k.name) {
            self.known_each[i].fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// The known divergences runs showed, with their runs, in [`compare::known::ALL`]'s order.
    pub fn known_seen(&self) -> Vec<(&'static str, u64)> {
        compare::known::ALL
            .iter()
            .zip(&self.known_each)
            .map(|(k, n)| (k.name, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// How many instruction forms the sets used, and how many the ISA has.
    pub fn forms_seen(&self) -> (usize, usize) {
        (self.forms.iter().filter(|f| f.load(Ordering::Relaxed)).count(), self.forms.len())
    }

    /// The share of measured time spent in each stage, in [`Stage::ALL`]'s order.
    pub fn time_shares(&self) -> Vec<(Stage, f64)> {
        let ns: Vec<u64> = self.nanos.iter().map(|n| n.load(Ordering::Relaxed)).collect();
        let total = ns.iter().sum::<u64>().max(1) as f64;
        Stage::ALL.iter().zip(ns).map(|(s, n)| (*s, n as f64 / total)).collect()
    }

    /// The mean number of BPF instructions per generated set.
    pub fn mean_set_size(&self) -> f64 {
        self.insns.load(Ordering::Relaxed) as f64 / self.sets.load(Ordering::Relaxed).max(1) as f64
    }

    fn charge(&self, stage: Stage, since: Instant) {
        self.charge_nanos(stage, since.elapsed());
    }

    /// Adds `spent` to `stage`'s time.
    fn charge_nanos(&self, stage: Stage, spent: Duration) {
        self.nanos[stage as usize].fetch_add(spent.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The call shapes not seen yet.
    pub fn shapes_missing(&self) -> Vec<generator::shapes::Shape> {
        generator::shapes::Shape::ALL
            .into_iter()
            .filter(|s| !self.shapes[*s as usize].load(Ordering::Relaxed))
            .collect()
    }

    /// Records the call shapes of `set` and returns them.
    fn record_shapes(&self, set: &bpf::ProgramSet) -> Vec<Shape> {
        let shapes = generator::shapes::shapes_of(set);
        for s in &shapes {
            self.shapes[*s as usize].store(true, Ordering::Relaxed);
        }
        if shapes.contains(&Shape::Subprogram) {
            self.with_subprograms.fetch_add(1, Ordering::Relaxed);
        }
        if shapes.iter().any(|s| matches!(s, Shape::TailCallFromMain | Shape::TailCallFromSubprogram)) {
            self.with_tail_calls.fetch_add(1, Ordering::Relaxed);
        }
        if shapes.contains(&Shape::Kfunc) {
            self.with_kfuncs.fetch_add(1, Ordering::Relaxed);
        }
        if !set.attachments().is_empty() {
            self.with_attachments.fetch_add(1, Ordering::Relaxed);
        }
        shapes
    }

    fn record_forms(&self, set: &bpf::ProgramSet, all: &[generator::forms::Form]) {
        for p in set.progs() {
            for insn in p.prog.insns() {
                if let Ok(k) = all.binary_search(&generator::forms::form_of(insn)) {
                    self.forms[k].store(true, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Which [`KernelTarget`] `engines` are: a kernel JIT of version 7 or later runs the mix.
pub fn kernel_target(engines: &Engines) -> KernelTarget {
    let names = engines.names();
    if !names.iter().any(|n| compare::engines::is_kernel(n)) {
        return KernelTarget::None;
    }
    let mixing_jit = |n: &&str| {
        kernel::engine::parse_engine_name(n).is_some_and(|(jit, _)| jit)
            && engines
                .kernel_version(n)
                .and_then(|v| v.split('.').next()?.parse::<u32>().ok())
                .is_some_and(|m| m >= 7)
    };
    if names.iter().any(mixing_jit) {
        KernelTarget::Mixing
    } else {
        KernelTarget::NotMixing
    }
}

/// Saves a finding as `KIND-N.input` (`bytes`) and `KIND-N.s` (the set, then `config`'s
/// line and `report` as comments), under names no file has yet.
fn save(
    dir: &Path,
    kind: &str,
    n: u64,
    bytes: &[u8],
    g: &Generated,
    (config, report): (&FindingConfig, &str),
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let text = format!(
        "{}\n{}\n; {}\n",
        bpf::asm::print_set(&g.set, Some(&g.input)),
        config.line(),
        report.replace('\n', "\n; ")
    );
    // Never overwrite, even with another jitdiff saving into the same folder: the first
    // free name whose `.input` this process claims.
    let mut k = 0;
    let stem = loop {
        let stem = match k {
            0 => dir.join(format!("{kind}-{n:04}")),
            _ => dir.join(format!("{kind}-{n:04}-{k}")),
        };
        match triage::files::write_new(&stem.with_extension("input"), bytes) {
            Ok(()) => break stem,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => k += 1,
            Err(e) => return Err(e),
        }
    };
    triage::files::write_new(&stem.with_extension("s"), text.as_bytes())?;
    Ok(stem.with_extension("s"))
}

/// Set when the user interrupts the session (Ctrl-C, SIGTERM): every fuzzing thread stops
/// before its next run, and the session ends as at its time limit, with its summary.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Sets its flag when dropped: when the thread that holds it ends, however it ends.
struct StopOnExit<'a>(&'a AtomicBool);

impl Drop for StopOnExit<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// With kernel engines, how many sets are generated and announced to them ahead of the one
/// being compared, so that each guest always has the next one to work on.
const SETS_AHEAD: usize = 3;

/// Runs a fuzzing session; `status` is called about once a second with the stats.
pub fn fuzz(opts: &FuzzOptions, status: &(dyn Fn(&Stats, Duration) + Sync)) -> Arc<Stats> {
    let stats = Arc::new(Stats::new());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let saved = Mutex::new(());
    let all_forms = generator::forms::all_forms();
    if let Some(dir) = &opts.corpus {
        replay_corpus(dir, opts, &stats, &all_forms, start);
    }
    std::thread::scope(|s| {
        for k in 0..opts.jobs.max(1) {
            let (stats, stop, saved, all_forms) = (&stats, &stop, &saved, &all_forms);
            s.spawn(move || {
                // A thread that ends, even by a panic, ends the session (the panic then
                // reaches the caller) rather than leaving it waiting for ever.
                let _stop_on_exit = StopOnExit(stop);
                let mut engines = Engines::with_options(&opts.engine_names, &opts.engines);
                let kernel = kernel_target(&engines);
                let seed = opts.seed.wrapping_add(k as u64);
                let config = FindingConfig {
                    engines: opts.engine_names.clone(),
                    options: *engines.options(),
                    inputs: Some(opts.inputs_per_set),
                    seed: Some(seed),
                };
                let mut rng = Rng::new(seed);
                let mut bytes = vec![0u8; INPUT_LEN];
                // A set and its inputs from the next fuzz input, if it makes one.
                let next_set = |rng: &mut Rng, bytes: &mut Vec<u8>| -> Option<(Generated, Vec<bpf::Input>)> {
                    rng.fill(bytes);
                    let g = generate_for(bytes, kernel)?;
                    let mut inputs = vec![g.input.clone()];
                    while inputs.len() < opts.inputs_per_set.max(1) {
                        inputs.push(vary(&g.input, g.set.prog_type(), rng));
                    }
                    Some((g, inputs))
                };
                let mut ahead: std::collections::VecDeque<(Generated, Vec<bpf::Input>)> = Default::default();
                'sets: while !stop.load(Ordering::Relaxed) {
                    let ran_all = opts.runs.is_some_and(|r| stats.runs.load(Ordering::Relaxed) >= r);
                    let interrupted = INTERRUPTED.load(Ordering::Relaxed);
                    if ran_all || interrupted || opts.time.is_some_and(|t| start.elapsed() >= t) {
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                    // With kernel engines, the next sets are generated and announced before
                    // this one is collected, so that the guests work on them meanwhile (the
                    // sets, and the random bits each takes, are the same either way).
                    let t = Instant::now();
                    // Time spent announcing is the kernel engines', not the generator's.
                    let mut announcing = Duration::ZERO;
                    let mut announce = |engines: &mut Engines, set: &Generated, inputs: &[bpf::Input]| {
                        let t = Instant::now();
                        engines.announce(&set.set, inputs);
                        announcing += t.elapsed();
                    };
                    let (g, inputs) = match ahead.pop_front() {
                        Some(announced) => announced,
                        None => {
                            let Some(fresh) = next_set(&mut rng, &mut bytes) else { continue };
                            if kernel != KernelTarget::None {
                                announce(&mut engines, &fresh.0, &fresh.1);
                            }
                            fresh
                        }
                    };
                    if kernel != KernelTarget::None {
                        for _ in ahead.len()..SETS_AHEAD {
                            if let Some(next) = next_set(&mut rng, &mut bytes) {
                                announce(&mut engines, &next.0, &next.1);
                                ahead.push_back(next);
                            }
                        }
                    }
                    stats.sets.fetch_add(1, Ordering::Relaxed);
                    stats.insns.fetch_add(g.set.insn_count() as u64, Ordering::Relaxed);
                    let shapes = stats.record_shapes(&g.set);
                    stats.record_forms(&g.set, all_forms);
                    stats.record_loops(&g.set);
                    stats.charge_nanos(Stage::Kernel, announcing);
                    stats.charge_nanos(Stage::Generate, t.elapsed().saturating_sub(announcing));
                    if kernel != KernelTarget::None {
                        let t = Instant::now();
                        engines.prepare(&g.set, &inputs);
                        stats.charge(Stage::Kernel, t);
                    }
                    for (k, input) in inputs.iter().enumerate() {
                        if INTERRUPTED.load(Ordering::Relaxed) {
                            stop.store(true, Ordering::Relaxed);
                            break 'sets;
                        }
                        let n = stats.runs.fetch_add(1, Ordering::Relaxed);
                        if opts.runs.is_some_and(|r| n >= r) {
                            stats.runs.fetch_sub(1, Ordering::Relaxed);
                            stop.store(true, Ordering::Relaxed);
                            break 'sets;
                        }
                        let results = engines.run_set_timed(&g.set, input, &mut |engine, since| {
                            if let Some(stage) = Stage::of_engine(engine) {
                                stats.charge(stage, since);
                            }
                        });
                        let t = Instant::now();
                        for r in results.iter().filter(|r| compare::engines::is_kernel(r.engine)) {
                            let log = stats.kernel.record(&g.set, &shapes, &r.result);
                            // The first rejections are kept for a look; a flood is not.
                            if let Some(log) =
                                log.filter(|_| stats.kernel.rejected.load(Ordering::Relaxed) <= 50)
                            {
                                let case = Generated { set: g.set.clone(), input: input.clone() };
                                let _guard = saved.lock().unwrap_or_else(|e| e.into_inner());
                                let report = format!("{} rejected it:\n{log}", r.engine);
                                let (bytes, what) = (text_input(&case), (&config, report.as_str()));
                                let _ = save(&opts.artifacts, "rejected", n, &bytes, &case, what);
                            }
                        }
                        let verdict = compare(&results);
                        stats.charge(Stage::Compare, t);
                        let kind = match verdict {
                            Verdict::Agree => continue,
                            Verdict::Inconclusive(_) => {
                                stats.inconclusive.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            Verdict::Mismatch(diffs)
                                if stats.count_known(compare::known::explain(
                                    &engines, &g.set, &results, &diffs,
                                )) =>
                            {
                                continue;
                            }
                            Verdict::Mismatch(_) => {
                                stats.findings.fetch_add(1, Ordering::Relaxed);
                                let mut first = stats.first_finding.lock().unwrap_or_else(|e| e.into_inner());
                                first.get_or_insert((start.elapsed(), n + 1));
                                if opts.stop_at_first_finding {
                                    stop.store(true, Ordering::Relaxed);
                                }
                                "finding"
                            }
                            Verdict::Invalid(_) => {
                                stats.invalid.fetch_add(1, Ordering::Relaxed);
                                "invalid"
                            }
                        };
                        let report = triage::present::to_text("generated", &g.set, &results, &verdict);
                        let case = Generated { set: g.set.clone(), input: input.clone() };
                        // The generator bytes reproduce the first input only, and only
                        // in the default generator mode; a variation, or a set made for the
                        // kernel engines, is saved as the text of its set, which
                        // reproduces it exactly.
                        let saved_bytes = if k == 0 && kernel == KernelTarget::None {
                            bytes.clone()
                        } else {
                            text_input(&case)
                        };
                        let _guard = saved.lock().unwrap_or_else(|e| e.into_inner());
                        if let Err(e) =
                            save(&opts.artifacts, kind, n, &saved_bytes, &case, (&config, &report))
                        {
                            eprintln!("jitdiff: cannot save a {kind} in {}: {e}", opts.artifacts.display());
                        }
                    }
                }
                let mut restarts = stats.guest_restarts.lock().unwrap_or_else(|e| e.into_inner());
                for (cause, n) in engines.restarts() {
                    *restarts.entry(cause).or_insert(0) += n;
                }
            });
        }
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            if start.elapsed().as_millis() % 1000 < 200 {
                status(&stats, start.elapsed());
            }
        }
    });
    status(&stats, start.elapsed());
    stats
}

/// Replays every corpus set once (its own context, else 64 zero bytes), saving any
/// disagreement like a generated one; unreadable files are reported and skipped.
fn replay_corpus(
    dir: &Path,
    opts: &FuzzOptions,
    stats: &Stats,
    all_forms: &[generator::forms::Form],
    start: Instant,
) {
    let files = match triage::files::corpus_files(dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("jitdiff: cannot read the corpus {}: {e}", dir.display());
            return;
        }
    };
    let mut engines = Engines::with_options(&opts.engine_names, &opts.engines);
    let config = FindingConfig {
        engines: opts.engine_names.clone(),
        options: *engines.options(),
        inputs: None,
        seed: None,
    };
    for (n, file) in files.iter().enumerate() {
        if opts.time.is_some_and(|t| start.elapsed() >= t) {
            break;
        }
        let f = match bpf::load::load_set_file(file) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("jitdiff: corpus: {e}");
                continue;
            }
        };
        let input = ctx_or_default(f.ctx, f.set.prog_type());
        let g = Generated { set: f.set, input };
        stats.corpus.fetch_add(1, Ordering::Relaxed);
        stats.record_forms(&g.set, all_forms);
        let results = engines.run_set(&g.set, &g.input);
        let verdict = compare(&results);
        if let Verdict::Inconclusive(_) = verdict {
            stats.inconclusive.fetch_add(1, Ordering::Relaxed);
        }
        if let Verdict::Mismatch(diffs) = &verdict {
            if stats.count_known(compare::known::explain(&engines, &g.set, &results, diffs)) {
                continue;
            }
            stats.findings.fetch_add(1, Ordering::Relaxed);
            let report = format!(
                "{}\n(corpus file {})",
                triage::present::to_text("corpus", &g.set, &results, &verdict),
                file.display()
            );
            let what = (&config, report.as_str());
            if let Err(e) = save(&opts.artifacts, "corpus-finding", n as u64, &text_input(&g), &g, what) {
                eprintln!("jitdiff: cannot save a finding in {}: {e}", opts.artifacts.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_divergences_are_counted_by_name() {
        let stats = Stats::new();
        let frame = compare::known::ALL.iter().find(|k| k.name == "interp-tail-call-frame").unwrap();
        assert!(!stats.count_known(None));
        assert!(stats.count_known(Some(frame)) && stats.count_known(Some(frame)));
        assert_eq!(stats.known.load(Ordering::Relaxed), 2);
        assert_eq!(stats.known_seen(), [("interp-tail-call-frame", 2)]);
    }

    #[test]
    fn a_short_session_on_the_correct_jit_finds_nothing() {
        let dir = std::env::temp_dir().join(format!("jitdiff-fuzz-test-{}", std::process::id()));
        let opts = FuzzOptions {
            engine_names: compare::engines::ALL.to_vec(),
            time: None,
            runs: Some(200),
            seed: 1,
            jobs: 1,
            engines: Options::default(),
            artifacts: dir.clone(),
            corpus: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus")),
            inputs_per_set: 4,
            stop_at_first_finding: false,
        };
        let stats = fuzz(&opts, &|_, _| {});
        assert_eq!(stats.runs.load(Ordering::Relaxed), 200);
        assert_eq!(stats.sets.load(Ordering::Relaxed), 50, "four inputs per set");
        assert_eq!(stats.findings.load(Ordering::Relaxed), 0);
        assert_eq!(stats.invalid.load(Ordering::Relaxed), 0);
        assert!(!dir.exists(), "nothing was saved");
        assert!(stats.corpus.load(Ordering::Relaxed) >= 18, "the corpus sets were replayed");
        let (seen, total) = stats.forms_seen();
        assert!(seen > total / 2, "{seen} of {total} forms");
    }
}
