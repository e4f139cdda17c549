//! The `jitdiff` command line: `run` and `jit`.
//!
//! Exit status: 0 when every engine agrees, 1 on a mismatch, 2 on bad input (unreadable
//! or malformed files, bad options, programs the kernel's verifier would reject, or
//! programs nothing could be concluded about).

use std::io::Write;

use crate::progress::{Progress, Sink};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use bpf::asm::SetFile;
use bpf::Input;

use compare::config::FindingConfig;
use compare::engines::{parse_list, Engines, Options};
use compare::{compare, Verdict};
use triage::present::{to_json, to_text};

/// Differential testing of eBPF JITs: runs programs on a reference interpreter, rbpf and
/// jitdiff's RV64 JIT (in unicorn) and reports every disagreement.
#[derive(Debug, Parser)]
#[command(name = "jitdiff", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// No progress on standard error (the final summary is still printed).
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate program sets from a seeded random source and run them on every engine
    /// until the time or run limit; every disagreement is saved to the artifacts folder.
    Fuzz(FuzzArgs),
    /// Run each program on every engine and compare the outcomes.
    Run(RunArgs),
    /// Print the RV64 code the JIT makes of a program, interleaved with the BPF
    /// instruction each range came from.
    Jit {
        /// A program: LLVM-syntax assembly, raw bytecode (.bin) or a BPF ELF object (.o).
        file: PathBuf,
        /// How the JIT keeps the tail-call counter: register, stack, pointer or writeback.
        #[arg(long, default_value = "register")]
        scheme: jit::Scheme,
        /// Inject bugs (names from `jitdiff bugs`, comma-separated or repeated).
        #[arg(long, value_delimiter = ',')]
        inject: Vec<jit::Bug>,
        /// Whether a tail call through an empty slot uses up a count: `free` (today's
        /// kernel, the default) or `counted` (Linux 6.12).
        #[arg(long, default_value = "free")]
        empty_slot: bpf::EmptySlotRule,
    },
    /// Minimise a finding: the smallest program set (and context) on which the engines
    /// still disagree in the same way.
    Minimize(MinimizeArgs),
    /// Replay every finding in a directory, minimise each, group them by signature, and
    /// write a report per group (Markdown, HTML) and a JSON summary to a new directory.
    Triage(TriageArgs),
    /// List the bugs that can be injected into the JIT, with what each does.
    Bugs,
    /// Benchmarks: `bench bugs` measures how fast fuzzing finds each injectable bug.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

/// How findings are replayed: with the configuration each records (a `; jitdiff config:`
/// line, see [`compare::config`]), each option given here overriding its part; a finding
/// with none gets the defaults.
#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// How the JIT keeps the tail-call counter: register, stack, pointer or writeback
    /// (default: as recorded, else register).
    #[arg(long)]
    scheme: Option<jit::Scheme>,
    /// The count semantics the reference implements: global or per-frame (default: as
    /// recorded, else global).
    #[arg(long, value_parser = compare::config::parse_semantics)]
    semantics: Option<oracle::reference::TailCallSemantics>,
    /// Bugs injected into the JIT (default: as recorded, else none).
    #[arg(long, value_delimiter = ',')]
    inject: Vec<jit::Bug>,
    /// Engines to compare; must include `reference` (default: as recorded, else
    /// reference,rbpf,jit).
    #[arg(long)]
    engines: Option<String>,
    /// Whether a tail call through an empty prog-array slot uses up one of the 33:
    /// `free` (today's kernel) or `counted` (Linux 6.12). Default: as recorded, else the
    /// rule of the kernel engines' kernel, read from its interpreter, else free.
    #[arg(long)]
    empty_slot: Option<bpf::EmptySlotRule>,
    /// The kernel that `kernel-jit` and `kernel-interp` run: a Debian version (6.12, 7.3)
    /// or the path of a kernel source tree or tarball (built on first use by
    /// kernel/build.sh). `kernel-jit@KERNEL` in --engines names one per engine.
    #[arg(long)]
    kernel: Option<String>,
}

impl ReplayArgs {
    /// The configuration to replay a finding with: `recorded` (or the defaults) with
    /// every option given here in its place, and the fuzzer's budget.
    fn resolve(&self, recorded: Option<FindingConfig>) -> Result<FindingConfig, String> {
        let mut c = recorded.unwrap_or_default();
        if let Some(list) = &self.engines {
            c.engines = parse_list(list).map_err(|e| format!("--engines: {e}"))?;
        }
        let o = &mut c.options;
        o.budget = Some(compare::engines::FUZZ_BUDGET);
        o.scheme = self.scheme.unwrap_or(o.scheme);
        o.semantics = self.semantics.unwrap_or(o.semantics);
        if !self.inject.is_empty() {
            o.bugs = self.inject.iter().copied().collect();
        }
        if self.empty_slot.is_some() {
            o.empty_slot = self.empty_slot;
        }
        if self.kernel.is_some() {
            o.kernel = kernel_option(&self.kernel);
        }
        Ok(c)
    }

    /// [`ReplayArgs::resolve`] for the finding at `path`, with what it records.
    fn for_finding(&self, path: &Path) -> Result<FindingConfig, String> {
        self.resolve(triage::dedup::recorded_config(path)?)
    }
}

#[derive(Debug, clap::Args)]
struct MinimizeArgs {
    /// A finding: a program set as text (`.s`, with its `.ctx`) or a fuzz input
    /// (generator bytes, or a set after the `; jitdiff program set` line).
    input: PathBuf,
    /// Where the minimised set goes (default: INPUT with `.min.s`); never overwritten.
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    engines: ReplayArgs,
    /// Engine runs to spend at most.
    #[arg(long, default_value_t = 20_000)]
    max_attempts: u64,
}

#[derive(Debug, clap::Args)]
struct TriageArgs {
    /// A directory of findings: `jitdiff fuzz` artifacts, libFuzzer crash files, or
    /// program sets as text; searched recursively, only read.
    dir: PathBuf,
    /// A new directory for the reports (default: DIR-triage).
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    engines: ReplayArgs,
    /// Engine runs to spend minimising each finding at most.
    #[arg(long, default_value_t = 5_000)]
    max_attempts: u64,
    /// End with one JSON summary line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum BenchWhat {
    /// Fuzz each injected bug from several seeds and report the time and runs to the
    /// first finding.
    Bugs {
        /// Give up on a seed after this many seconds.
        #[arg(long, default_value_t = 120)]
        time_limit: u64,
        /// Seeds per bug (1 to K).
        #[arg(long, default_value_t = 5)]
        seeds: u64,
        /// Only these bugs (default: the whole catalogue).
        #[arg(long, value_delimiter = ',')]
        bug: Vec<jit::Bug>,
        /// Where the findings are saved.
        #[arg(long, default_value = "artifacts/bench-bugs")]
        artifacts: PathBuf,
        /// One JSON line per bug instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
struct FuzzArgs {
    /// Stop after this many seconds (default 60 unless --runs is given).
    #[arg(long)]
    time: Option<u64>,
    /// Stop after this many runs in all.
    #[arg(long)]
    runs: Option<u64>,
    /// The first seed (thread k uses seed + k).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Threads.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// How the JIT keeps the tail-call counter: register, stack, pointer or writeback.
    #[arg(long, default_value = "register")]
    scheme: jit::Scheme,
    /// The count semantics the reference implements: global or per-frame.
    #[arg(long, default_value = "global", value_parser = compare::config::parse_semantics)]
    semantics: oracle::reference::TailCallSemantics,
    /// Where findings are saved (each as the generator input and the set as text).
    #[arg(long, default_value = "artifacts")]
    artifacts: PathBuf,
    /// Program sets (`.s` files, searched recursively) to replay before generating;
    /// default: `corpus` when it exists.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Inputs each generated set runs on: its own context, then variations of it; the
    /// set is compiled and translated once for all of them (1 to 64).
    #[arg(long, default_value_t = 4)]
    inputs: usize,
    /// Inject bugs into the JIT (names from `jitdiff bugs`, comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    inject: Vec<jit::Bug>,
    /// End with one JSON summary line instead of text.
    #[arg(long)]
    json: bool,
    /// Engines to compare, comma-separated; must include `reference`. `kernel-jit` and
    /// `kernel-interp` run the real kernel (built on first use by `kernel/build.sh`).
    #[arg(long, default_value = "reference,rbpf,jit")]
    engines: String,
    /// Whether a tail call through an empty prog-array slot uses up one of the 33:
    /// `free` (today's kernel, the default without kernel engines) or `counted` (Linux
    /// 6.12). Default: the rule of the kernel engines' kernel, read from its interpreter.
    #[arg(long)]
    empty_slot: Option<bpf::EmptySlotRule>,
    /// The kernel that `kernel-jit` and `kernel-interp` run: a Debian version (6.12, 7.3)
    /// or the path of a kernel source tree or tarball (built on first use by
    /// kernel/build.sh). `kernel-jit@KERNEL` in --engines names one per engine.
    #[arg(long)]
    kernel: Option<String>,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Program sets or programs: LLVM-syntax assembly (with `.prog`/`.map`/`.slot`
    /// directives for sets), raw bytecode (.bin) or BPF ELF objects (.o).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print one JSON object per line and program instead of a table.
    #[arg(long)]
    json: bool,
    /// The engines and their configuration (a file saved by jitdiff replays with the
    /// configuration it records).
    #[command(flatten)]
    engines: ReplayArgs,
    /// Context bytes R1 points to, as hex (e.g. `0102ff`); default: the file's `.ctx`,
    /// else 64 zero bytes.
    #[arg(long, conflicts_with_all = ["ctx_size", "no_ctx"])]
    ctx: Option<String>,
    /// Size of a zero-filled context (bytes, at most 65536).
    #[arg(long, conflicts_with = "no_ctx")]
    ctx_size: Option<usize>,
    /// Run with R1 = 0 and no context.
    #[arg(long)]
    no_ctx: bool,
    /// Run programs the static validator rejects (the reference still judges each run;
    /// for unverified programs such as lib/test_bpf.c's).
    #[arg(long)]
    no_validate: bool,
    /// Fill a prog array's slot before the run, as a loader's user space does:
    /// `MAP:INDEX=PROG` puts program PROG in slot INDEX of prog array MAP, `MAP:INDEX=`
    /// empties it (after the file's own slots and `--slots`; repeatable).
    #[arg(long = "slot", value_name = "MAP:INDEX=PROG")]
    slot: Vec<String>,
    /// A file of `MAP:INDEX=PROG` lines, applied as `--slot`s (`#` starts a comment).
    #[arg(long, value_name = "FILE")]
    slots: Option<PathBuf>,
}

/// `--kernel`, kept for the life of the process (engine options are `Copy`).
fn kernel_option(kernel: &Option<String>) -> Option<&'static str> {
    kernel.as_deref().map(kernel::engine::intern)
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let s = s.strip_prefix("0x").unwrap_or(&s);
    if !s.len().is_multiple_of(2) {
        return Err(format!("--ctx: {} hex digits is not a whole number of bytes", s.len()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16)
                .map_err(|_| format!("--ctx: {:?} is not a hex byte", &s[i..i + 2]))
        })
        .collect()
}

/// The context the options ask for (a `__sk_buff` program's packet), or `None` when they
/// leave it to the file (its `.ctx` line) or the default (64 zero bytes, or the default
/// packet).
fn input_of(a: &RunArgs) -> Result<Option<Input>, String> {
    if a.no_ctx {
        return Ok(Some(Input::none()));
    }
    if let Some(h) = &a.ctx {
        return parse_hex(h).map(|b| Some(Input::with_ctx(b)));
    }
    match a.ctx_size {
        Some(n) if n > 65536 => Err(format!("--ctx-size: {n} is larger than 65536")),
        Some(n) => Ok(Some(Input::with_ctx(vec![0; n]))),
        None => Ok(None),
    }
}

fn load(path: &Path) -> Result<SetFile, String> {
    bpf::load::load_set_file(path).map_err(|e| e.to_string())
}

/// Runs the command line `args` (program name first), writing results to `out` and
/// diagnostics to `err`; returns the exit status.
pub fn main(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    main_with(args, out, err, false)
}

/// [`main`], told whether `err` is a terminal: progress is then redrawn in place (see
/// [`crate::progress`]) instead of written as a plain line every few seconds.
pub fn main_with(args: &[String], out: &mut dyn Write, err: &mut dyn Write, err_is_terminal: bool) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let text = e.render().to_string();
            let _ = if code == 0 { write!(out, "{text}") } else { write!(err, "{text}") };
            return code;
        }
    };
    let sink = Sink::new(err_is_terminal, cli.quiet);
    match cli.command {
        Command::Run(a) => cmd_run(&a, out, err),
        Command::Fuzz(a) => cmd_fuzz(&a, sink, out, err),
        Command::Jit { file, scheme, inject, empty_slot } => {
            let codegen = jit::compile::Codegen { scheme, empty_slot, bugs: inject.into_iter().collect() };
            cmd_jit(&file, codegen, out, err)
        }
        Command::Minimize(a) => cmd_minimize(&a, sink, out, err),
        Command::Triage(a) => cmd_triage(&a, sink, out, err),
        Command::Bugs => {
            for i in jit::bugs::CATALOGUE {
                let commit = i.commit.map(|c| format!(" (kernel fix {c})")).unwrap_or_default();
                let _ = writeln!(out, "{}{commit}\n    {}", i.name, i.description);
            }
            0
        }
        Command::Bench { what: BenchWhat::Bugs { time_limit, seeds, bug, artifacts, json } } => {
            if seeds == 0 || time_limit == 0 {
                return usage(err, "--seeds and --time-limit must be at least 1");
            }
            let bugs: Vec<jit::Bug> =
                if bug.is_empty() { jit::bugs::CATALOGUE.iter().map(|i| i.bug).collect() } else { bug };
            crate::bench::bugs(&bugs, seeds, time_limit, &artifacts, json, out);
            0
        }
    }
}

fn cmd_run(a: &RunArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let input = match input_of(a) {
        Ok(i) => i,
        Err(e) => return usage(err, &e),
    };
    // Options that cannot apply to any file are refused before the work.
    if let Err(e) = a.engines.resolve(None) {
        return usage(err, &e);
    }
    let mut slots = match &a.slots {
        Some(path) => match bpf::slots::read_slot_file(path) {
            Ok(s) => s,
            Err(e) => return usage(err, &format!("--slots: {e}")),
        },
        None => Vec::new(),
    };
    for text in &a.slot {
        match text.parse() {
            Ok(s) => slots.push(s),
            Err(e) => return usage(err, &format!("--slot: {e}")),
        }
    }
    // The engines of each configuration the files ask for, built once.
    let mut built = compare::config::EnginesByConfig::default();
    let (mut bad, mut mismatch) = (false, false);
    for file in &a.files {
        let shown = file.display().to_string();
        let mut file_set = match load(file) {
            Ok(p) => p,
            Err(e) => {
                let _ = writeln!(err, "jitdiff: {e}");
                bad = true;
                continue;
            }
        };
        file_set.set = match bpf::slots::apply(file_set.set, &slots) {
            Ok(set) => set,
            Err(e) => {
                let _ = writeln!(err, "jitdiff: {shown}: {e}");
                bad = true;
                continue;
            }
        };
        let mut config = match a.engines.for_finding(file) {
            Ok(c) => c,
            Err(e) => {
                let _ = writeln!(err, "jitdiff: {e}");
                bad = true;
                continue;
            }
        };
        config.options.budget = None;
        let (config, engines) = match built.index(config) {
            Ok(k) => built.get(k),
            Err(e) => return usage(err, &format!("--engines: {e}")),
        };
        let names = &config.engines;
        let input =
            generator::input::ctx_or_default(input.clone().or(file_set.ctx), file_set.set.prog_type());
        if let Err(e) = file_set.set.prog_type().check(&input) {
            let _ = writeln!(err, "jitdiff: {shown}: {e}");
            bad = true;
            continue;
        }
        if !a.no_validate {
            let ctx_size = Some(input.ctx.as_ref().map_or(0, Vec::len));
            if let Err(e) = bpf::validate::validate(&file_set.set, ctx_size) {
                let kernel = e
                    .rule
                    .kernel_message()
                    .map_or(String::new(), |m| format!("; the kernel's verifier says \"{m}\" for the same"));
                let _ = writeln!(
                    err,
                    "jitdiff: {shown}: {e} (the validator rejects it{kernel}; --no-validate runs it anyway)"
                );
                bad = true;
                continue;
            }
        }
        let results = engines.run_set(&file_set.set, &input);
        let verdict = compare(&results);
        match verdict {
            Verdict::Agree => {}
            Verdict::Mismatch(_) => mismatch = true,
            Verdict::Inconclusive(_) | Verdict::Invalid(_) => bad = true,
        }
        // Where a mismatch involves the JIT, the first divergent instruction says where
        // to look (traced runs: only for mismatches).
        let divergence = match &verdict {
            Verdict::Mismatch(d)
                if names.contains(&"jit") && d.iter().any(|d| d.odd_one_out == Some("jit")) =>
            {
                engines.first_divergence(&file_set.set, &input)
            }
            _ => None,
        };
        // A mismatch that is a known divergence of a kernel says which (fuzz does not count
        // those as findings).
        let known = match &verdict {
            Verdict::Mismatch(d) => compare::known::explain(engines, &file_set.set, &results, d),
            _ => None,
        };
        // Where an engine runs code jitdiff did not make (the kernel's JIT), a mismatch shows it.
        let native = match &verdict {
            Verdict::Mismatch(_) => engines.native_listings(&file_set.set, &input),
            _ => Vec::new(),
        };
        let _ = if a.json {
            let mut v = to_json(&shown, &results, &verdict);
            if let Some(d) = &divergence {
                v["first_divergence"] = serde_json::json!({
                    "program": d.prog,
                    "pc": file_set.set.progs()[d.prog].prog.pc_of(d.index),
                    "class": d.signature_class(),
                    "what": d.what.to_string(),
                    "text": d.describe(&file_set.set),
                });
            }
            if let Some(k) = known {
                v["known_divergence"] = serde_json::json!({ "name": k.name, "explanation": k.explanation });
            }
            for (name, listing) in &native {
                v["native_code"][*name] = match listing {
                    Ok(text) => serde_json::json!(text),
                    Err(why) => serde_json::json!({ "error": why }),
                };
            }
            writeln!(out, "{v}")
        } else {
            let mut text = to_text(&shown, &file_set.set, &results, &verdict);
            if let Some(k) = known {
                text += &format!("    a known divergence ({}): {}\n", k.name, k.explanation);
            }
            if let Some(d) = &divergence {
                text += &format!("    {}\n", d.describe(&file_set.set));
            }
            for (name, listing) in &native {
                match listing {
                    Ok(code) => code.lines().for_each(|l| text += &format!("    {l}\n")),
                    Err(why) => text += &format!("    {name}'s code is not available: {why}\n"),
                }
            }
            write!(out, "{text}")
        };
    }
    if bad {
        2
    } else {
        u8::from(mismatch)
    }
}

fn cmd_fuzz(a: &FuzzArgs, sink: Sink, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    use crate::fuzz::{fuzz, FuzzOptions, INTERRUPTED};
    use std::sync::atomic::Ordering::Relaxed;
    // Ctrl-C or SIGTERM ends the session as its time limit would (summary, guests shut
    // down, findings whole) within a second: a kernel engine waiting on a slow verifier
    // gives up the wait (that set cannot be judged). A second signal ends the process at
    // once. Installed once per process (a second fuzz in the same process, as in tests,
    // keeps the first handler).
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Relaxed) {
            std::process::exit(130);
        }
        kernel::stop_waiting();
    });
    if a.jobs == 0 || a.jobs > 256 {
        return usage(err, &format!("--jobs: {} is not from 1 to 256", a.jobs));
    }
    if a.inputs == 0 || a.inputs > 64 {
        return usage(err, &format!("--inputs: {} is not from 1 to 64", a.inputs));
    }
    if a.artifacts.exists() && !a.artifacts.is_dir() {
        return usage(err, &format!("--artifacts: {} exists and is not a directory", a.artifacts.display()));
    }
    let names = match parse_list(&a.engines) {
        Ok(n) => n,
        Err(e) => return usage(err, &format!("--engines: {e}")),
    };
    let kernel = kernel_option(&a.kernel);
    // Built once here so that a missing kernel image is built or an error, not a thread's panic.
    if let Err(e) = Engines::try_with_options(&names, &Options { kernel, ..Options::default() }) {
        return usage(err, &format!("--engines: {e}"));
    }
    let time = match (a.time, a.runs) {
        (None, None) => Some(60),
        (t, _) => t,
    };
    let opts = FuzzOptions {
        time: time.map(std::time::Duration::from_secs),
        runs: a.runs,
        seed: a.seed,
        jobs: a.jobs,
        engines: Options {
            scheme: a.scheme,
            semantics: a.semantics,
            budget: Some(compare::engines::FUZZ_BUDGET),
            bugs: a.inject.iter().copied().collect(),
            kernel,
            empty_slot: a.empty_slot,
        },
        artifacts: a.artifacts.clone(),
        corpus: a.corpus.clone().or_else(|| Some(PathBuf::from("corpus")).filter(|p| p.is_dir())),
        inputs_per_set: a.inputs,
        stop_at_first_finding: false,
        engine_names: names.clone(),
    };
    let progress = Progress::new(if a.json { Sink::Quiet } else { sink }, None, "runs");
    let status = |s: &crate::fuzz::Stats, t: std::time::Duration| {
        let line = || {
            let runs = s.runs.load(Relaxed);
            let (seen, total) = s.forms_seen();
            let shapes = generator::shapes::Shape::ALL.len();
            format!(
                "{:>6.1}s  runs {runs}  ({:.0}/s)  findings {}  invalid {}  inconclusive {}  forms {seen}/{total}  shapes {}/{shapes}",
                t.as_secs_f64(),
                runs as f64 / t.as_secs_f64().max(1e-9),
                s.findings.load(Relaxed),
                s.invalid.load(Relaxed),
                s.inconclusive.load(Relaxed),
                shapes - s.shapes_missing().len(),
            )
        };
        // The status thread's stream: `err` is not shared with it.
        if let Some(l) = progress.update(None, line, false) {
            eprintln!("{l}");
        }
    };
    let start = std::time::Instant::now();
    let stats = fuzz(&opts, &status);
    progress.finish();
    let secs = start.elapsed().as_secs_f64();
    let (runs, sets) = (stats.runs.load(Relaxed), stats.sets.load(Relaxed));
    let (findings, invalid) = (stats.findings.load(Relaxed), stats.invalid.load(Relaxed));
    let mean = stats.mean_set_size();
    let shares = stats.time_shares();
    if a.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({
                "runs": runs,
                "seconds": secs,
                "runs_per_sec": runs as f64 / secs.max(1e-9),
                "sets": sets,
                "sets_per_sec": sets as f64 / secs.max(1e-9),
                "inputs_per_set": a.inputs,
                "time_shares": shares.iter().map(|(s, f)| (s.name().to_string(), serde_json::json!(f))).collect::<serde_json::Map<_, _>>(),
                "findings": findings,
                "invalid": invalid,
                "inconclusive": stats.inconclusive.load(Relaxed),
                "mean_insns": mean,
                "share_with_tail_calls": stats.with_tail_calls.load(Relaxed) as f64 / sets.max(1) as f64,
                "share_with_subprograms": stats.with_subprograms.load(Relaxed) as f64 / sets.max(1) as f64,
                "share_with_kfuncs": stats.with_kfuncs.load(Relaxed) as f64 / sets.max(1) as f64,
                "share_with_attachments": stats.with_attachments.load(Relaxed) as f64 / sets.max(1) as f64,
                "shapes_seen": generator::shapes::Shape::ALL.len() - stats.shapes_missing().len(),
                "shapes_total": generator::shapes::Shape::ALL.len(),
                "shapes_missing": stats.shapes_missing().iter().map(|s| s.name()).collect::<Vec<_>>(),
                "forms_seen": stats.forms_seen().0,
                "forms_total": stats.forms_seen().1,
                "loop_tests_seen": stats.loop_tests_seen().0,
                "loop_tests_total": stats.loop_tests_seen().1,
                "share_with_loops": stats.with_loops.load(Relaxed) as f64 / sets.max(1) as f64,
                "share_with_other_loops": stats.with_other_loops.load(Relaxed) as f64 / sets.max(1) as f64,
                "share_with_early_exits": stats.with_early_exits.load(Relaxed) as f64 / sets.max(1) as f64,
                "share_with_caller_stack_pointers": stats.with_caller_stack.load(Relaxed) as f64 / sets.max(1) as f64,
                "share_with_globals": stats.with_globals.load(Relaxed) as f64 / sets.max(1) as f64,
                "jump_distances": stats.distances_seen().iter().map(|(b, seen, total)| (b.name().to_string(), serde_json::json!({"seen": seen, "total": total}))).collect::<serde_json::Map<_, _>>(),
                "corpus": stats.corpus.load(Relaxed),
                "known_divergences": stats.known.load(Relaxed),
                "known_divergences_each": stats.known_seen().into_iter().map(|(k, n)| (k.to_string(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
                "scheme": a.scheme.name(),
                "seed": a.seed,
                "jobs": a.jobs,
                "engines": names,
                "kernel_verifier_acceptance": stats.kernel.acceptance(),
                "kernel_ran": stats.kernel.ran.load(Relaxed),
                "kernel_rejected": stats.kernel.rejected.load(Relaxed),
                "kernel_rejected_mixed_calls_and_tail_calls": stats.kernel.rejected_mixed.load(Relaxed),
                "kernel_mixing_unsupported": stats.kernel.mixing_unsupported.load(Relaxed),
                "kernel_cannot_judge": stats.kernel.cannot_judge.load(Relaxed),
                "guest_restarts": *stats.guest_restarts.lock().unwrap_or_else(|e| e.into_inner()),
                "kernel_by_shape": stats.kernel.by_shape().iter().map(|v| (v.shape.to_string(), serde_json::json!({
                    "ran": v.ran,
                    "rejected": v.rejected,
                    "mixing_unsupported": v.mixing_unsupported,
                    "cannot_judge": v.cannot_judge,
                }))).collect::<serde_json::Map<_, _>>(),
            })
        );
    } else {
        let _ = writeln!(
            out,
            "{runs} runs in {secs:.1} s ({:.0}/s): {sets} sets ({:.0}/s, mean size {mean:.1} instructions) on {} inputs each; {findings} findings, {invalid} invalid sets{}",
            runs as f64 / secs.max(1e-9),
            sets as f64 / secs.max(1e-9),
            a.inputs,
            if findings + invalid > 0 { format!(" (saved in {})", a.artifacts.display()) } else { String::new() },
        );
        let shares: Vec<String> =
            shares.iter().map(|(s, f)| format!("{} {:.0}%", s.name(), f * 100.0)).collect();
        let _ = writeln!(out, "time: {}", shares.join(", "));
        let (seen, total) = stats.forms_seen();
        let missing: Vec<&str> = stats.shapes_missing().iter().map(|s| s.name()).collect();
        let _ = writeln!(
            out,
            "reach: {seen} of {total} instruction forms; {} of {} call shapes{}; {:.0}% of sets with bpf2bpf calls, {:.0}% with tail calls, {:.0}% with kfunc calls, {:.0}% with fentry/fexit attachments",
            generator::shapes::Shape::ALL.len() - missing.len(),
            generator::shapes::Shape::ALL.len(),
            if missing.is_empty() { String::new() } else { format!(" (missing: {})", missing.join(", ")) },
            100.0 * stats.with_subprograms.load(Relaxed) as f64 / sets.max(1) as f64,
            100.0 * stats.with_tail_calls.load(Relaxed) as f64 / sets.max(1) as f64,
            100.0 * stats.with_kfuncs.load(Relaxed) as f64 / sets.max(1) as f64,
            100.0 * stats.with_attachments.load(Relaxed) as f64 / sets.max(1) as f64,
        );
        let (tests, all_tests) = stats.loop_tests_seen();
        let distances: Vec<String> = stats
            .distances_seen()
            .iter()
            .map(|(b, seen, total)| format!("{} {seen} of {total}", b.name()))
            .collect();
        let share = |n: &std::sync::atomic::AtomicU64| 100.0 * n.load(Relaxed) as f64 / sets.max(1) as f64;
        let _ = writeln!(
            out,
            "loops: {:.0}% of sets, {:.0}% with a loop not counted down to zero, {:.0}% with an early exit; \
             {tests} of {all_tests} loop tests (width, condition, operand); {:.0}% of sets pass a pointer to \
             the caller's stack, {:.0}% use a global variable; jump distances in 4-byte steps around the \
             encodings' reach: {}",
            share(&stats.with_loops),
            share(&stats.with_other_loops),
            share(&stats.with_early_exits),
            share(&stats.with_caller_stack),
            share(&stats.with_globals),
            distances.join(", "),
        );
        let known = stats.known.load(Relaxed);
        if known > 0 {
            let names: Vec<String> = stats.known_seen().iter().map(|(k, n)| format!("{k}: {n}")).collect();
            let _ = writeln!(
                out,
                "{known} runs showed a known divergence of a kernel ({}; not counted as findings)",
                names.join(", ")
            );
        }
        let restarts = stats.guest_restarts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if !restarts.is_empty() {
            let causes: Vec<String> = restarts.iter().map(|(c, n)| format!("{c} {n}")).collect();
            let _ = writeln!(
                out,
                "kernel guests restarted {} times ({}); the runs they owed ran again on new guests",
                restarts.values().sum::<u64>(),
                causes.join(", ")
            );
        }
        if let Some(acceptance) = stats.kernel.acceptance() {
            let k = &stats.kernel;
            let _ = writeln!(
                out,
                "kernel verifier acceptance: {:.1}% ({} ran, {} rejected, {} of them mixing bpf2bpf calls and \
                 tail calls{}); {} refused because that kernel does not run programs mixing bpf2bpf calls \
                 and tail calls (its interpreter, 6.12's JIT); {} runs the kernel engines could not judge",
                acceptance * 100.0,
                k.ran.load(Relaxed),
                k.rejected.load(Relaxed),
                k.rejected_mixed.load(Relaxed),
                if k.rejected.load(Relaxed) > 0 {
                    format!(", saved as rejected-* in {}", a.artifacts.display())
                } else {
                    String::new()
                },
                k.mixing_unsupported.load(Relaxed),
                k.cannot_judge.load(Relaxed),
            );
            let shapes: Vec<String> = k
                .by_shape()
                .iter()
                .map(|v| {
                    let asked = v.ran + v.rejected + v.mixing_unsupported + v.cannot_judge;
                    format!("{} {:.0}%", v.shape, 100.0 * v.ran as f64 / asked as f64)
                })
                .collect();
            let _ = writeln!(out, "kernel runs per call shape (ran / asked): {}", shapes.join(", "));
        }
    }
    u8::from(findings + invalid > 0)
}

fn cmd_minimize(a: &MinimizeArgs, sink: Sink, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let g = match triage::dedup::read_finding(&a.input) {
        Ok(g) => g,
        Err(e) => return usage(err, &e),
    };
    let output = a.output.clone().unwrap_or_else(|| a.input.with_extension("min.s"));
    if output.exists() {
        return usage(err, &format!("{} exists; name another output with -o", output.display()));
    }
    let config = match a.engines.for_finding(&a.input) {
        Ok(c) => c,
        Err(e) => return usage(err, &e),
    };
    let mut engines = match Engines::try_with_options(&config.engines, &config.options) {
        Ok(e) => e,
        Err(e) => return usage(err, &format!("--engines: {e}")),
    };
    let display = Progress::new(sink, None, "runs");
    let mut progress = |attempts: u64, size: usize| {
        if let Some(l) = display.update(None, || format!("{attempts} runs, {size} instructions"), false) {
            let _ = writeln!(err, "{l}");
        }
    };
    let minimized = triage::minimize::minimize(&mut engines, &g.set, &g.input, a.max_attempts, &mut progress);
    display.finish();
    let m = match minimized {
        Ok(m) => m,
        Err(e) => {
            return usage(err, &format!("{}: {e} (replayed with {})", a.input.display(), config.describe()));
        }
    };
    let text = format!(
        "; minimised by jitdiff from {} ({} -> {} instructions, {} runs)\n; signature: {}\n{}\n{}",
        a.input.display(),
        m.size_before,
        m.size_after,
        m.attempts,
        m.signature,
        config.line(),
        bpf::asm::print_set(&m.set, Some(&m.input))
    );
    // Claimed exclusively: a file made there since the check above is not overwritten.
    if let Err(e) = triage::files::write_new(&output, text.as_bytes()) {
        return usage(err, &format!("cannot write {}: {e}", output.display()));
    }
    let _ = writeln!(
        out,
        "{}: {} -> {} instructions ({}), written to {}",
        a.input.display(),
        m.size_before,
        m.size_after,
        m.signature,
        output.display()
    );
    0
}

fn cmd_triage(a: &TriageArgs, sink: Sink, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    if !a.dir.is_dir() {
        return usage(err, &format!("{}: not a directory", a.dir.display()));
    }
    let output = a.output.clone().unwrap_or_else(|| {
        let mut name = a.dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push("-triage");
        a.dir.with_file_name(name)
    });
    // Checked before the work, not only when the reports are written.
    if let Err(e) = triage::pages::ensure_new_dir(&output) {
        return usage(err, &e);
    }
    let files = match triage::dedup::finding_files(&a.dir) {
        Ok(f) => f,
        Err(e) => return usage(err, &format!("cannot read {}: {e}", a.dir.display())),
    };
    // Options that cannot apply to any finding are refused before the work.
    if let Err(e) = a.engines.resolve(None) {
        return usage(err, &e);
    }
    let start = std::time::Instant::now();
    // A bar on a terminal; elsewhere a line every few seconds and at the end, so a large
    // directory does not flood a log with one line per input.
    let display = Progress::new(if a.json { Sink::Quiet } else { sink }, Some(files.len() as u64), "inputs");
    let mut progress = |done: usize, total: usize| {
        let line = || format!("{done}/{total} inputs");
        if let Some(l) = display.update(Some(done as u64), line, done == total) {
            let _ = writeln!(err, "{l}");
        }
    };
    let config_of = |p: &Path| a.engines.for_finding(p);
    let t = triage::dedup::triage(&files, &config_of, a.max_attempts, &mut progress);
    display.finish();
    for (p, why) in &t.skipped {
        let _ = writeln!(err, "jitdiff: skipped {}: {why}", p.display());
    }
    let summary = match triage::pages::write_reports(&t, &output, start.elapsed().as_secs_f64()) {
        Ok(s) => s,
        Err(e) => return usage(err, &e),
    };
    if a.json {
        let line = serde_json::json!({
            "inputs": summary["inputs"],
            "groups": summary["groups"],
            "skipped": summary["skipped"],
            "known": summary["known"],
            "seconds": summary["seconds"],
            "output": summary["output"],
        });
        let _ = writeln!(out, "{line}");
    } else {
        let _ = writeln!(
            out,
            "{} inputs, {} groups, {} skipped{}, in {:.1} s; reports in {}",
            t.inputs,
            t.groups.len(),
            t.skipped.len(),
            if t.known.is_empty() {
                String::new()
            } else {
                format!(", {} known divergences of a kernel (not grouped)", t.known.len())
            },
            start.elapsed().as_secs_f64(),
            output.display()
        );
        for (k, g) in t.groups.iter().enumerate() {
            let _ = writeln!(
                out,
                "  group-{}: {} ({} inputs, {} instructions)",
                k + 1,
                g.key,
                g.inputs.len(),
                g.best.size_after
            );
        }
    }
    0
}

fn usage(err: &mut dyn Write, msg: &str) -> u8 {
    let _ = writeln!(err, "jitdiff: {msg}");
    2
}

fn cmd_jit(file: &Path, codegen: jit::compile::Codegen, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let set = match load(file) {
        Ok(f) => f.set,
        Err(e) => return usage(err, &e),
    };
    let compiled = match jit::compile::compile_set_with(&set, codegen) {
        Ok(c) => c,
        Err(e) => return usage(err, &format!("{}: {e}", file.display())),
    };
    let _ = write!(out, "{}", jit::listing::listing(&set, &compiled));
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> (u8, String, String) {
        let args: Vec<String> =
            std::iter::once("jitdiff").chain(args.iter().copied()).map(String::from).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = main(&args, &mut out, &mut err);
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[test]
    fn bad_options_exit_2() {
        assert_eq!(run(&["run"]).0, 2);
        assert_eq!(run(&["frobnicate"]).0, 2);
        let (code, _, err) = run(&["run", "--engines", "jit", "x.s"]);
        assert_eq!(code, 2);
        assert!(err.contains("must include reference"), "{err}");
        let (code, _, err) = run(&["run", "--ctx", "abc", "x.s"]);
        assert_eq!(code, 2);
        assert!(err.contains("whole number of bytes"), "{err}");
        assert_eq!(run(&["--help"]).0, 0);
        let (code, _, err) = run(&["run", "--inject", "no-such-bug", "x.s"]);
        assert_eq!(code, 2);
        assert!(err.contains("unknown bug \"no-such-bug\""), "{err}");
        let (code, out, _) = run(&["bugs"]);
        assert_eq!(code, 0);
        assert_eq!(out.lines().filter(|l| !l.starts_with(' ')).count(), jit::bugs::CATALOGUE.len());
        assert!(out.contains("tcc-off-by-one (kernel fix 745abfaa9eaf)"), "{out}");
        let (code, _, err) = run(&["fuzz", "--inputs", "0"]);
        assert_eq!(code, 2);
        assert!(err.contains("--inputs: 0 is not from 1 to 64"), "{err}");
    }

    #[test]
    fn hex_contexts() {
        assert_eq!(parse_hex("0x01ff").unwrap(), vec![1, 0xff]);
        assert_eq!(parse_hex("01 02").unwrap(), vec![1, 2]);
        assert!(parse_hex("zz").unwrap_err().contains("not a hex byte"));
    }
}
