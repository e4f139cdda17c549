//! Tail calls against the kernel's own expectations.
//!
//! 1. The shapes of the kernel's tail-call selftests (`tools/testing/selftests/bpf/
//!    prog_tests/tailcalls.c` and `progs/tailcall*.c`), rewritten as the program sets in
//!    `corpus/tailcalls/`. What the selftest observes through global variables is kept
//!    in context words; what it does with `bpf_map_delete_elem` is done here by editing
//!    the slot list of the loaded set. Every expected value is the selftest's, worked out
//!    again by hand in the header comment of each file (R0, the successful tail calls,
//!    and the context words that carry counts).
//! 2. lib/test_bpf.c's `tail_call_tests[]`, loaded from the `tail_calls.json` that
//!    `kernel/test-vectors.sh` makes from the kernel source, and run as the kernel's module runs them: one prog array of 11
//!    slots, each program 1000 times in a row, with its 4-byte state carried from run to
//!    run; expected results from the JSON.
//! 3. The limits: 8 frames, 512 bytes of stack, 33 tail calls, empty slots, indexes at
//!    or past `max_entries` and indexes with the upper 32 bits set.
//!
//! Every case that finishes also runs on Linux 7.3's RV64 JIT and interpreter (the kernel
//! engines, when scripts/test.sh has built the image), checked against the same
//! expectation in what a kernel run shows; 7.3's interpreter refuses the shapes that mix
//! bpf2bpf calls and tail calls, as the kernel says it must.
//!
//! Every case runs on four engine configurations, each under both empty-slot rules
//! (today's, where a tail call through an empty slot costs nothing, and Linux 6.12's,
//! where it costs one count; a case whose expectation differs says so):
//! - `global/register`, `global/pointer` and `global/writeback`: the reference
//!   interpreter with the global count semantics of today's kernel, rbpf (where it can
//!   judge), and the JIT with that scheme; every engine must give the kernel's
//!   expectation, and the engines must agree on every field;
//! - `per-frame/stack`: the reference with per-frame semantics and the JIT with the
//!   `stack` scheme, which must agree with each other on every field and give the
//!   per-frame expectation written down by hand (the same as the kernel's where no
//!   subprogram's tail calls are undone by a return; for the hierarchy shapes it differs,
//!   or the run never finishes and both engines must run out of their bounded budgets).
//!   rbpf implements only the global semantics and is left out.

mod common;

use std::path::PathBuf;

use bpf::load::{load_set_file, load_set_text};
use bpf::{
    EmptySlotRule, Engine, FaultKind, Input, Insn, Outcome, ProgArray, Program, ProgramSet, RawInsn,
    RunResult, SetProgram, PSEUDO_MAP_FD,
};
use compare::engines::{build, Engines, Options, ALL};
use compare::{compare, EngineResult, Field, Verdict};
use jit::{Jit, Scheme};
use oracle::reference::{Reference, TailCallSemantics};
use serde_json::Value;

/// The reference interpreter's instruction budget per run under per-frame semantics:
/// ample for every case that finishes (none runs more than a thousand instructions),
/// small enough that the exploding hierarchy shapes stop at once.
const PER_FRAME_BUDGET: u64 = 1_000_000;
/// The JIT's machine-instruction limit per run under per-frame semantics.
const PER_FRAME_BLOCK_LIMIT: usize = 4_000_000;

/// A count semantics with the engines that implement it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counting {
    /// Global count semantics: reference, rbpf and the JIT with this scheme.
    Global(Scheme),
    /// Per-frame count semantics: reference and the JIT's `stack` scheme, both bounded.
    PerFrame,
}

use Counting::{Global, PerFrame};

/// An engine configuration: the count semantics and whether a tail call through an
/// empty slot counts (today's kernel: no; Linux 6.12: yes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Config {
    counting: Counting,
    empty_slot: EmptySlotRule,
}

const CONFIGS: [Config; 8] = {
    let (free, counted) = (EmptySlotRule::Free, EmptySlotRule::Counted);
    [
        Config { counting: Global(Scheme::Register), empty_slot: free },
        Config { counting: Global(Scheme::Pointer), empty_slot: free },
        Config { counting: Global(Scheme::Writeback), empty_slot: free },
        Config { counting: PerFrame, empty_slot: free },
        Config { counting: Global(Scheme::Register), empty_slot: counted },
        Config { counting: Global(Scheme::Pointer), empty_slot: counted },
        Config { counting: Global(Scheme::Writeback), empty_slot: counted },
        Config { counting: PerFrame, empty_slot: counted },
    ]
};

impl Config {
    fn name(self) -> String {
        let counting = match self.counting {
            Global(s) => format!("global/{s}"),
            PerFrame => "per-frame/stack".into(),
        };
        format!("{counting}, empty slot {}", self.empty_slot)
    }

    /// The engines, in the order `reference`, (`rbpf`), `jit`. The global ones are
    /// exactly what `jitdiff run --scheme S --empty-slot R` builds.
    fn engines(self) -> Vec<Box<dyn Engine>> {
        match self.counting {
            Global(scheme) => {
                let opts = Options {
                    scheme,
                    semantics: TailCallSemantics::Global,
                    budget: None,
                    empty_slot: Some(self.empty_slot),
                    ..Options::default()
                };
                ALL.iter().map(|n| build(n, &opts).expect("a known engine")).collect()
            }
            PerFrame => vec![
                Box::new(
                    Reference::with_budget_and_semantics(PER_FRAME_BUDGET, TailCallSemantics::PerFrame)
                        .with_empty_slot(self.empty_slot),
                ),
                Box::new(
                    Jit::with_block_limit(PER_FRAME_BLOCK_LIMIT)
                        .with_scheme(Scheme::Stack)
                        .with_empty_slot(self.empty_slot),
                ),
            ],
        }
    }
}

/// What a run must give.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Want {
    /// It reaches `exit` with this R0 (all 64 bits), after this many successful tail
    /// calls and this many helper calls, leaving the context as these u32 words.
    Exit { r0: u64, tail_calls: u32, helpers: usize, ctx: Vec<u32> },
    /// It never finishes: every engine runs out of budget (the verdict is inconclusive).
    Budget,
    /// The kernel's verifier rejects it: the reference stops with a verifier fault and
    /// the verdict is "invalid".
    Invalid,
}

fn exit(r0: u64, tail_calls: u32, ctx: &[u32]) -> Want {
    Want::Exit { r0, tail_calls, helpers: 0, ctx: ctx.to_vec() }
}

fn words(bytes: &[u8]) -> Vec<u32> {
    bytes.chunks(4).map(|c| c.iter().rev().fold(0, |w, b| w << 8 | *b as u32)).collect()
}

/// A context of these u32 words.
fn ctx(words: &[u32]) -> Input {
    Input::with_ctx(words.iter().flat_map(|w| w.to_le_bytes()).collect())
}

fn render(o: &Outcome) -> String {
    let r0 = match &o.result {
        Ok(v) => format!("r0 = {v:#x}"),
        Err(f) => format!("fault {f}"),
    };
    format!(
        "{r0}, tail_calls = {}, helpers = {}, ctx = {:?}",
        o.tail_calls,
        o.helper_calls.len(),
        words(&o.ctx)
    )
}

/// Runs `set` on `input` on every engine of `config` and checks each against `want`;
/// returns the failures, each naming the case, the configuration and the engine.
fn check(
    config: Config,
    engines: &mut [Box<dyn Engine>],
    case: &str,
    set: &ProgramSet,
    input: &Input,
    want: &Want,
) -> Vec<String> {
    let results: Vec<EngineResult> = engines
        .iter_mut()
        .map(|e| EngineResult { engine: e.name(), result: e.run_set(set, input) })
        .collect();
    let at = format!("{case} [{}]", config.name());
    let mut failures = Vec::new();
    for r in &results {
        let o = match &r.result {
            RunResult::Ran(o) => o,
            RunResult::CannotJudge(why) if r.engine == "rbpf" => {
                eprintln!("note: {at}: rbpf cannot judge: {why}");
                continue;
            }
            RunResult::CannotJudge(why) => {
                failures.push(format!("{at}: {} cannot judge: {why}", r.engine));
                continue;
            }
            RunResult::Rejected(log) => {
                failures.push(format!("{at}: {} rejected it: {log}", r.engine));
                continue;
            }
        };
        let ok = match want {
            Want::Exit { r0, tail_calls, helpers, ctx } => {
                o.result == Ok(*r0)
                    && o.tail_calls == *tail_calls
                    && o.helper_calls.len() == *helpers
                    && words(&o.ctx) == *ctx
            }
            Want::Budget => matches!(&o.result, Err(f) if f.kind == FaultKind::Budget),
            // Only the reference judges validity; the others run what they are given.
            Want::Invalid => {
                r.engine != "reference" || matches!(&o.result, Err(f) if f.kind == FaultKind::Verifier)
            }
        };
        if !ok {
            failures.push(format!("{at}: {} gave {}; expected {want:?}", r.engine, render(o)));
        }
    }
    let verdict = compare(&results);
    let verdict_ok = match want {
        Want::Exit { .. } => verdict == Verdict::Agree,
        Want::Budget => matches!(verdict, Verdict::Inconclusive(_)),
        Want::Invalid => matches!(verdict, Verdict::Invalid(_)),
    };
    if !verdict_ok {
        failures.push(format!("{at}: verdict {verdict:?}"));
    }
    failures
}

/// One run of a shape: the set (possibly with slots edited), its input, and what the
/// kernel (global semantics) and per-frame counting give under today's empty-slot rule,
/// and under Linux 6.12's where that differs.
struct Step {
    what: String,
    set: ProgramSet,
    input: Input,
    global: Want,
    per_frame: Want,
    /// (global, per-frame) under 6.12's rule (a tail call through an empty slot counts),
    /// where they differ from today's.
    counted: Option<(Want, Want)>,
}

/// A step whose per-frame result is the kernel's.
fn step(what: &str, set: &ProgramSet, input: Input, want: Want) -> Step {
    Step { what: what.into(), set: set.clone(), input, global: want.clone(), per_frame: want, counted: None }
}

impl Step {
    /// The same step, giving `want` under Linux 6.12's empty-slot rule with either count
    /// semantics.
    fn counted(self, want: Want) -> Step {
        Step { counted: Some((want.clone(), want)), ..self }
    }

    fn want(&self, config: Config) -> &Want {
        let (global, per_frame) = match (&self.counted, config.empty_slot) {
            (Some((g, p)), EmptySlotRule::Counted) => (g, p),
            _ => (&self.global, &self.per_frame),
        };
        if config.counting == PerFrame {
            per_frame
        } else {
            global
        }
    }
}

/// Runs every step on every configuration, then on Linux 7.3's JIT and interpreter, and
/// panics once, listing every failure.
fn run_steps(file: &str, steps: &[Step]) {
    let mut failures = Vec::new();
    for config in CONFIGS {
        let mut engines = config.engines();
        for s in steps {
            let case = format!("{file}: {}", s.what);
            failures.extend(check(config, &mut engines, &case, &s.set, &s.input, s.want(config)));
        }
    }
    failures.extend(on_the_kernel(file, steps));
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// The kernel whose JIT and interpreter run the selftest shapes: the first with tail
/// calls in subprograms on RV64, and today's count semantics.
const KERNEL: &str = "7.3";

/// Runs the steps that finish on `reference`, `kernel-jit` and `kernel-interp` of
/// [`KERNEL`] and checks each kernel run against the kernel's expectation (global count,
/// today's empty-slot rule) in what a kernel run shows: R0's low 32 bits, the context, and
/// the tail calls only where counted. The interpreter refuses every program that mixes
/// bpf2bpf calls and tail calls, as the kernel's verifier says it must; a set that calls
/// jitdiff's own helpers cannot be judged there. Prints `skipped: no kernel image` without
/// an image (scripts/test.sh builds one).
fn on_the_kernel(file: &str, steps: &[Step]) -> Vec<String> {
    if let Err(e) = kernel::KernelImage::cached(KERNEL) {
        println!("skipped: no kernel image ({e})");
        return Vec::new();
    }
    let opts = Options { kernel: Some(KERNEL), ..Options::default() };
    let mut engines = Engines::try_with_options(&["reference", "kernel-jit", "kernel-interp"], &opts)
        .expect("kernel engines");
    let mut failures = Vec::new();
    for s in steps {
        let Want::Exit { r0, tail_calls, ctx, .. } = &s.global else { continue };
        let at = format!("{file}: {} [Linux {KERNEL}]", s.what);
        let results = engines.run_set(&s.set, &s.input);
        let mixed = jitdiff::fuzz::mixes_calls_and_tail_calls(&s.set);
        let mut judged = 0;
        for r in results.iter().filter(|r| r.engine != "reference") {
            match &r.result {
                RunResult::Ran(o) => {
                    judged += 1;
                    let got_r0 = o.result.as_ref().map(|v| *v & 0xffff_ffff);
                    let ok = got_r0 == Ok(*r0 & 0xffff_ffff)
                        && (!o.observes.tail_calls || o.tail_calls == *tail_calls)
                        && words(&o.ctx) == *ctx;
                    if !ok {
                        failures.push(format!(
                            "{at}: {} gave {}; expected {:?}",
                            r.engine,
                            render(o),
                            s.global
                        ));
                    }
                }
                RunResult::Rejected(log)
                    if r.engine == "kernel-interp" && mixed && kernel::engine::refused_for_mixing(log) => {}
                RunResult::CannotJudge(why) if why.contains("jitdiff_counter") => {}
                other => failures.push(format!("{at}: {}: {other:?}", r.engine)),
            }
        }
        let verdict = compare(&results);
        if judged > 0 && verdict != Verdict::Agree {
            failures.push(format!("{at}: verdict {verdict:?}"));
        }
        if judged == 0
            && !results
                .iter()
                .any(|r| matches!(&r.result, RunResult::CannotJudge(w) if w.contains("jitdiff_counter")))
        {
            failures.push(format!("{at}: the kernel ran it on neither engine"));
        }
    }
    failures
}

fn corpus(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus/tailcalls").join(file)
}

/// Loads `corpus/tailcalls/FILE`: its set and the context its `.ctx` declares.
fn load(file: &str) -> (ProgramSet, Input) {
    let f = load_set_file(&corpus(file)).unwrap_or_else(|e| panic!("{e}"));
    (f.set, f.ctx.unwrap_or_else(Input::none))
}

/// A set from text (for the limits), with its declared context.
fn text_set(name: &str, text: &str) -> (ProgramSet, Input) {
    let f = load_set_text(name, text).unwrap_or_else(|e| panic!("{e}"));
    (f.set, f.ctx.unwrap_or_else(Input::none))
}

/// `set` with the slots of prog array `map` replaced by `slots` (program names, `None`
/// for an empty slot), as `bpf_map_update_elem` / `bpf_map_delete_elem` would leave it.
fn with_slots(set: &ProgramSet, map: &str, slots: &[Option<&str>]) -> ProgramSet {
    let index = |name: &str| {
        set.progs().iter().position(|p| p.name == name).unwrap_or_else(|| panic!("no program {name}"))
    };
    let mut maps = set.maps().to_vec();
    let m = maps.iter_mut().find(|m| m.name == map).unwrap_or_else(|| panic!("no map {map}"));
    assert_eq!(m.slots.len(), slots.len(), "max_entries of {map} stays as declared");
    m.slots = slots.iter().map(|s| s.map(index)).collect();
    ProgramSet::with_arrays(set.progs().to_vec(), maps, set.arrays().to_vec())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `set` with slots `deleted` of `map` emptied.
fn delete(set: &ProgramSet, map: &str, deleted: &[usize]) -> ProgramSet {
    let mut maps = set.maps().to_vec();
    let m = maps.iter_mut().find(|m| m.name == map).unwrap_or_else(|| panic!("no map {map}"));
    for &k in deleted {
        assert!(m.slots[k].is_some(), "slot {k} of {map} is already empty");
        m.slots[k] = None;
    }
    ProgramSet::with_arrays(set.progs().to_vec(), maps, set.arrays().to_vec())
        .unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------------------------------
// 1. The selftest shapes.

#[test]
fn tailcall_1() {
    let (set, input) = load("tailcall_1.s");
    let c = &[0, 0];
    let (c0, c1, c2) = (Some("classifier_0"), Some("classifier_1"), Some("classifier_2"));
    let reversed = with_slots(&set, "jmp_table", &[c2, c1, c0]);
    let empty = with_slots(&set, "jmp_table", &[None, None, None]);
    let i = || input.clone();
    run_steps(
        "tailcall_1.s",
        &[
            // The selftest's sequence: run, then delete slot i, for i = 0, 1, 2.
            step("slots 0, 1, 2 filled", &set, i(), exit(0, 1, c)),
            step("slot 0 deleted", &delete(&set, "jmp_table", &[0]), i(), exit(1, 1, c)),
            step("slots 0, 1 deleted", &delete(&set, "jmp_table", &[0, 1]), i(), exit(2, 1, c)),
            step("all deleted", &empty, i(), exit(3, 0, c)),
            // Filled again in reverse: slot i holds classifier_(2 - i).
            step("reversed", &reversed, i(), exit(2, 1, c)),
            step("reversed, slot 0 deleted", &delete(&reversed, "jmp_table", &[0]), i(), exit(1, 1, c)),
            step(
                "reversed, slots 0, 1 deleted",
                &delete(&reversed, "jmp_table", &[0, 1]),
                i(),
                exit(0, 1, c),
            ),
            step("reversed, all deleted", &delete(&reversed, "jmp_table", &[0, 1, 2]), i(), exit(3, 0, c)),
        ],
    );
}

#[test]
fn tailcall_2() {
    let (set, input) = load("tailcall_2.s");
    let c = &[0, 0];
    run_steps(
        "tailcall_2.s",
        &[
            step("all filled", &set, input.clone(), exit(2, 3, c)),
            step("slot 2 deleted", &delete(&set, "jmp_table", &[2]), input.clone(), exit(1, 2, c)),
            // Today: the two failed attempts cost nothing and the 3 <-> 4 loop has counts
            // 1..33, the 33rd landing in program 3. 6.12: they cost counts 1 and 2, and the
            // loop has counts 3..33.
            step("slots 2 and 0 deleted", &delete(&set, "jmp_table", &[2, 0]), input, exit(3, 33, c))
                .counted(exit(3, 31, c)),
        ],
    );
}

#[test]
fn tailcall_3() {
    let (set, input) = load("tailcall_3.s");
    run_steps(
        "tailcall_3.s",
        &[
            step("slot 0 filled", &set, input.clone(), exit(1, 33, &[33])),
            step("slot 0 deleted", &delete(&set, "jmp_table", &[0]), input, exit(0, 0, &[0])),
        ],
    );
}

#[test]
fn tailcall_6() {
    let (set, input) = load("tailcall_6.s");
    assert_eq!(input, ctx(&[0, 0]), "count = 0, which = 0");
    run_steps(
        "tailcall_6.s",
        &[
            step("which = 0", &set, input.clone(), exit(1, 33, &[33, 0])),
            step("which = 1 (= max_entries)", &set, ctx(&[0, 1]), exit(0, 0, &[0, 1])),
            step("slot 0 deleted", &delete(&set, "jmp_table", &[0]), input, exit(0, 0, &[0, 0])),
        ],
    );
}

#[test]
fn tailcall_bpf2bpf_1() {
    let (set, input) = load("tailcall_bpf2bpf_1.s");
    let c = &[54, 0];
    run_steps(
        "tailcall_bpf2bpf_1.s",
        &[
            step("both filled", &set, input.clone(), exit(1, 1, c)),
            step("slot 1 deleted", &delete(&set, "jmp_table", &[1]), input.clone(), exit(0, 1, c)),
            step("slots 1 and 0 deleted", &delete(&set, "jmp_table", &[1, 0]), input, exit(108, 0, c)),
        ],
    );
}

#[test]
fn tailcall_bpf2bpf_2() {
    let (set, input) = load("tailcall_bpf2bpf_2.s");
    run_steps(
        "tailcall_bpf2bpf_2.s",
        &[
            step("slot 0 filled", &set, input.clone(), exit(1, 33, &[33, 0])),
            step("slot 0 deleted", &delete(&set, "jmp_table", &[0]), input, exit(0, 0, &[0, 0])),
            // Not in the selftest: a non-zero packet byte makes subprog_tail try slot 1,
            // out of range: classifier_0 runs once and 1 comes back.
            step("packet byte 1", &set, ctx(&[0, 1]), exit(1, 1, &[1, 1])),
        ],
    );
}

#[test]
fn tailcall_bpf2bpf_3() {
    let (set, input) = load("tailcall_bpf2bpf_3.s");
    let c = &[54, 0];
    run_steps(
        "tailcall_bpf2bpf_3.s",
        &[
            step("both filled", &set, input.clone(), exit(162, 2, c)),
            step("slot 1 deleted", &delete(&set, "jmp_table", &[1]), input.clone(), exit(54, 1, c)),
            step("slots 1 and 0 deleted", &delete(&set, "jmp_table", &[1, 0]), input, exit(108, 0, c)),
            // Not in the selftest: a non-zero first packet word sends subprog_tail2 to
            // slot 10, out of range.
            step("packet word 7", &set, ctx(&[54, 7]), exit(54, 1, &[54, 7])),
        ],
    );
}

#[test]
fn tailcall_bpf2bpf_4() {
    let (set, input) = load("tailcall_bpf2bpf_4.s");
    assert_eq!(input, ctx(&[54, 0, 0]), "len = 54, count = 0, noise = 0");
    run_steps("tailcall_bpf2bpf_4.s", &[step("noise = 0", &set, input, exit(162, 33, &[54, 31, 0]))]);
}

#[test]
fn tailcall_bpf2bpf_5() {
    let (set, input) = load("tailcall_bpf2bpf_5.s");
    assert_eq!(input, ctx(&[54, 0, 1]), "len = 54, count = 0, noise = 1");
    // subprog_tail_2 runs 32 times (once from classifier_1, 31 times from classifier_2),
    // each calling the helper once.
    let want = Want::Exit { r0: 162, tail_calls: 33, helpers: 32, ctx: vec![54, 31, 1] };
    run_steps("tailcall_bpf2bpf_5.s", &[step("noise = 1", &set, input, want)]);
}

#[test]
fn tailcall_bpf2bpf_6() {
    let (set, input) = load("tailcall_bpf2bpf_6.s");
    run_steps(
        "tailcall_bpf2bpf_6.s",
        &[
            step("slot 0 filled", &set, input.clone(), exit(0, 1, &[1])),
            step("slot 0 deleted", &delete(&set, "jmp_table", &[0]), input, exit(1, 0, &[0])),
        ],
    );
}

#[test]
fn tailcall_bpf2bpf_hierarchy_1() {
    let (set, input) = load("tailcall_bpf2bpf_hierarchy_1.s");
    run_steps(
        "tailcall_bpf2bpf_hierarchy_1.s",
        &[
            Step {
                what: "slot 0 holds entry".into(),
                set: set.clone(),
                input,
                global: exit(1, 33, &[34]),
                per_frame: Want::Budget,
                counted: None,
            },
            // The selftest's second run: slot 0 deleted, count carried over from the first.
            step(
                "slot 0 deleted, count 34 carried over",
                &delete(&set, "jmp_table", &[0]),
                ctx(&[34]),
                exit(1, 0, &[35]),
            ),
        ],
    );
}

#[test]
fn tailcall_bpf2bpf_hierarchy_2() {
    let (set, input) = load("tailcall_bpf2bpf_hierarchy_2.s");
    run_steps(
        "tailcall_bpf2bpf_hierarchy_2.s",
        &[Step {
            what: "two chains".into(),
            set,
            input,
            global: exit(33, 33, &[33, 0]),
            per_frame: exit(0x21_0021, 66, &[33, 33]),
            counted: None,
        }],
    );
}

#[test]
fn tailcall_bpf2bpf_hierarchy_3() {
    let (set, input) = load("tailcall_bpf2bpf_hierarchy_3.s");
    run_steps(
        "tailcall_bpf2bpf_hierarchy_3.s",
        &[Step {
            what: "two maps".into(),
            set,
            input,
            global: exit(33, 33, &[33]),
            per_frame: Want::Budget,
            counted: None,
        }],
    );
}

/// The shape on which the `stack` scheme and the global count differ: two chains of self
/// tail calls started from two subprograms (corpus/tailcalls/hierarchy-two-chains.s).
/// Global: the first chain takes all 33 tail calls (c0 = 33, c1 = 0); per-frame / `stack`:
/// each chain gets 33 (66 in all). Judged against the kernel's global semantics, the
/// `stack` scheme is the odd one out on the context and the tail-call count.
#[test]
fn hierarchy_two_chains_stack_against_global() {
    let (set, input) = load("hierarchy-two-chains.s");
    run_steps(
        "hierarchy-two-chains.s",
        &[Step {
            what: "two chains".into(),
            set: set.clone(),
            input: input.clone(),
            global: exit(0, 33, &[33, 0]),
            per_frame: exit(0, 66, &[33, 33]),
            counted: None,
        }],
    );
    // `jitdiff run --scheme stack` (the reference keeps the global semantics).
    let opts = Options {
        scheme: Scheme::Stack,
        semantics: TailCallSemantics::Global,
        budget: None,
        ..Options::default()
    };
    let mut engines = Engines::with_options(&ALL, &opts);
    let Verdict::Mismatch(diffs) = compare(&engines.run_set(&set, &input)) else {
        panic!("the stack scheme must disagree with the global count on this shape")
    };
    let fields: Vec<(Field, Option<&str>, Vec<String>)> = diffs
        .iter()
        .map(|d| (d.field, d.odd_one_out, d.values.iter().map(|(_, v)| v.clone()).collect()))
        .collect();
    // The values of reference, rbpf and jit.
    let values = |global: &str, stack: &str| vec![global.to_string(), global.to_string(), stack.to_string()];
    assert_eq!(
        fields,
        vec![
            (Field::Ctx, Some("jit"), values("2100000000000000", "2100000021000000")),
            (Field::TailCalls, Some("jit"), values("33", "66")),
        ]
    );
}

// ---------------------------------------------------------------------------------------
// 2. lib/test_bpf.c's tail_call_tests[].

/// One program of `tail_call_tests[]`.
struct TestBpf {
    name: String,
    prog: Program,
    /// `FLAG_NEED_STATE`: R1 points to a 4-byte state kept from run to run.
    need_state: bool,
    /// `FLAG_RESULT_IN_STATE`: the state, not R0, is compared with `result`.
    result_in_state: bool,
    result: u32,
    runs: usize,
}

/// Reads `tail_calls.json`: the programs (their `LD_IMM64 R2, TAIL_CALL_MARKER` made a
/// reference to map 0) and the prog array's slots.
fn test_bpf_tail_calls() -> (Vec<TestBpf>, ProgArray) {
    let path = common::test_bpf_dir().join("tail_calls.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: Value = serde_json::from_str(&text).expect("tail_calls.json is JSON");
    let marker = json["constants"]["TAIL_CALL_MARKER"].as_u64().expect("TAIL_CALL_MARKER");
    let tests: Vec<TestBpf> = json["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .map(|t| {
            let name = t["name"].as_str().expect("name").to_string();
            let slots: Vec<RawInsn> = t["insns_index_resolved"]
                .as_array()
                .expect("insns_index_resolved")
                .iter()
                .map(|i| {
                    let f: Vec<i64> =
                        i.as_array().expect("insn").iter().map(|x| x.as_i64().expect("field")).collect();
                    RawInsn {
                        code: f[0] as u8,
                        dst: f[1] as u8,
                        src: f[2] as u8,
                        off: f[3] as i16,
                        imm: f[4] as i32,
                    }
                })
                .collect();
            let mut markers = 0;
            let insns: Vec<Insn> = bpf::decode(&slots)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .into_iter()
                .map(|i| match i {
                    Insn::LdImm64 { dst, pseudo: 0, imm } if imm == marker => {
                        markers += 1;
                        Insn::LdImm64 { dst, pseudo: PSEUDO_MAP_FD, imm: 0 }
                    }
                    other => other,
                })
                .collect();
            let tail_calls = insns.iter().filter(|i| matches!(i, Insn::TailCall)).count();
            assert_eq!(markers, tail_calls, "{name}: one prog-array load per tail call");
            let depth = t["stack_depth"].as_u64().expect("stack_depth") as u32;
            let prog = if depth == 0 { Program::new(insns) } else { Program::with_stack_depth(insns, depth) }
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let flags: Vec<&str> =
                t["flags"].as_array().expect("flags").iter().map(|f| f.as_str().expect("flag")).collect();
            TestBpf {
                name,
                prog,
                need_state: flags.contains(&"FLAG_NEED_STATE"),
                result_in_state: flags.contains(&"FLAG_RESULT_IN_STATE"),
                result: t["result"].as_i64().expect("result") as u32,
                runs: t["runs"].as_u64().expect("runs") as usize,
            }
        })
        .collect();
    let array = &json["prog_array"];
    let max_entries = array["max_entries"].as_u64().expect("max_entries") as usize;
    let mut slots = vec![None; max_entries];
    for e in array["entries"].as_array().expect("entries") {
        let k = e["index"].as_u64().expect("index") as usize;
        if let Some(p) = e["program"].as_str() {
            assert!(p.contains(&format!("[{k}] \"{}\"", tests[k].name)), "slot {k} holds program {k}: {p}");
            slots[k] = Some(k);
        }
    }
    (tests, ProgArray { name: "tail_call_table".into(), slots })
}

/// The set that runs test `i`: every program, with program `i` moved first (the entry),
/// and the slots renumbered to match.
fn test_bpf_set(tests: &[TestBpf], array: &ProgArray, i: usize) -> ProgramSet {
    let order: Vec<usize> = std::iter::once(i).chain((0..tests.len()).filter(|&k| k != i)).collect();
    let pos = |k: usize| order.iter().position(|&o| o == k).expect("every program is placed");
    let progs =
        order.iter().map(|&k| SetProgram { name: format!("test{k}"), prog: tests[k].prog.clone() }).collect();
    let slots = array.slots.iter().map(|s| s.map(pos)).collect();
    ProgramSet::new(progs, vec![ProgArray { name: array.name.clone(), slots }])
        .unwrap_or_else(|e| panic!("{e}"))
}

/// lib/test_bpf.c's tail-call tests as `test_tail_call()` runs them: each program
/// `runs` (1000) times in a row on one engine; a `FLAG_NEED_STATE` test gets a 4-byte
/// context, zero before the first run, that each run's output carries into the next.
/// The expected value (the kernel's `result`) is the state after the last run
/// (`FLAG_RESULT_IN_STATE`) or the last run's R0 (low 32 bits). Also checked: the
/// successful tail calls of the last run (worked out by hand: chains of 0-3 tail calls,
/// 33 for the self tail calls of tests 6 and 7, none for the NULL slot and the index out
/// of range) and that every engine of the configuration agrees on the last run. R0 is
/// not compared for the state tests: the kernel ignores it there, and it is undefined
/// when a failed tail call is followed by `exit` (test 7 sets it before its tail call;
/// the reference reports it clobbered, the JIT and rbpf keep the old value).
#[test]
fn lib_test_bpf_tail_calls() {
    let (tests, array) = test_bpf_tail_calls();
    assert_eq!(tests.len(), 10);
    assert_eq!(array.slots.len(), 11, "max_entries 11: slots 0-9 hold the tests, slot 10 is empty");
    assert_eq!(array.slots[10], None);
    let tail_calls = [0, 1, 2, 3, 0, 1, 33, 33, 0, 0];
    let mut failures = Vec::new();
    for config in CONFIGS {
        let mut engines = config.engines();
        for (i, t) in tests.iter().enumerate() {
            let set = test_bpf_set(&tests, &array, i);
            let at = format!("tail_call_tests[{i}] \"{}\" [{}]", t.name, config.name());
            let mut last = Vec::new();
            for e in engines.iter_mut() {
                let (mut result, done) = run_like_test_bpf(e.as_mut(), &set, t);
                match &mut result {
                    RunResult::Ran(o) => {
                        let (what, got) = if t.result_in_state {
                            ("state", words(&o.ctx)[0])
                        } else {
                            ("R0", *o.result.as_ref().unwrap_or(&0) as u32)
                        };
                        if done < t.runs || got != t.result || o.tail_calls != tail_calls[i] {
                            failures.push(format!(
                                "{at}: {}: {done} of {} runs reached exit; the last gave {}, {what} = {got}; \
                                 the kernel expects {what} = {} after {} runs, and {} tail calls \
                                 in the last run",
                                e.name(),
                                t.runs,
                                render(o),
                                t.result,
                                t.runs,
                                tail_calls[i]
                            ));
                        }
                        if t.result_in_state {
                            o.result = o.result.clone().map(|_| 0);
                            o.r0_is_address = false;
                        }
                    }
                    RunResult::CannotJudge(why) if e.name() == "rbpf" => {
                        eprintln!("note: {at}: rbpf cannot judge: {why}")
                    }
                    RunResult::CannotJudge(why) => {
                        failures.push(format!("{at}: {} cannot judge: {why}", e.name()))
                    }
                    RunResult::Rejected(log) => {
                        failures.push(format!("{at}: {} rejected it: {log}", e.name()))
                    }
                }
                last.push(EngineResult { engine: e.name(), result });
            }
            let verdict = compare(&last);
            if verdict != Verdict::Agree {
                failures.push(format!("{at}: the last runs differ: {verdict:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// Runs test `t` on one engine `t.runs` times in a row, as `test_tail_call()` does: a
/// `FLAG_NEED_STATE` test gets a 4-byte state, zero before the first run, and each run's
/// output state is the next run's input. Stops at the first run that faults or cannot
/// be judged. Returns the last run's result and the number of runs that reached `exit`.
fn run_like_test_bpf(e: &mut dyn Engine, set: &ProgramSet, t: &TestBpf) -> (RunResult, usize) {
    let mut input = if t.need_state { Input::with_ctx(vec![0; 4]) } else { Input::none() };
    let mut result = RunResult::CannotJudge("not run".into());
    for done in 0..t.runs {
        result = e.run_set(set, &input);
        match &result {
            RunResult::Ran(o) if o.result.is_ok() => {
                if t.need_state {
                    input = Input::with_ctx(o.ctx.clone());
                }
            }
            _ => return (result, done),
        }
    }
    (result, t.runs)
}

// ---------------------------------------------------------------------------------------
// 3. Limits.

/// Runs one text-built set on every configuration; the same expectation everywhere
/// (none of these sets has a subprogram that makes tail calls).
fn check_everywhere(cases: &[(&str, &str, Want)]) {
    let cases: Vec<(&str, &str, Want, Want)> =
        cases.iter().map(|(n, t, w)| (*n, *t, w.clone(), w.clone())).collect();
    check_everywhere_by_rule(&cases);
}

/// [`check_everywhere`] with what each case gives under today's empty-slot rule and
/// under Linux 6.12's.
fn check_everywhere_by_rule(cases: &[(&str, &str, Want, Want)]) {
    let mut failures = Vec::new();
    for config in CONFIGS {
        let mut engines = config.engines();
        for (name, text, free, counted) in cases {
            let (set, input) = text_set(name, text);
            let want = if config.empty_slot == EmptySlotRule::Counted { counted } else { free };
            failures.extend(check(config, &mut engines, name, &set, &input, want));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// A chain of `calls` nested bpf2bpf calls (`calls + 1` frames): the deepest function
/// returns 1 and every other subprogram adds 1 to what its callee returned, so R0 =
/// `calls`.
fn call_chain(calls: usize) -> String {
    let mut s = String::from(".ctx none\n.prog entry\n    call f1\n    exit\n");
    for k in 1..calls {
        s += &format!("f{k}:\n    call f{}\n    r0 += 1\n    exit\n", k + 1);
    }
    s += &format!("f{calls}:\n    r0 = 1\n    exit\n");
    s
}

/// MAX_CALL_FRAMES = 8: the main function and 7 nested subprograms run; an 8th nested
/// call (9 frames) is rejected by the verifier.
#[test]
fn eight_frames_run_and_nine_are_invalid() {
    check_everywhere(&[
        ("8 frames (7 nested calls)", &call_chain(7), exit(7, 0, &[])),
        ("9 frames (8 nested calls)", &call_chain(8), Want::Invalid),
    ]);
}

/// MAX_BPF_STACK = 512 bytes for a whole call chain: 256 + 256 runs; 256 + 264 = 520 is
/// rejected. Each function writes its deepest and its top bytes; the main function's
/// value survives the call. R0 = 20 + 3 + 100.
#[test]
fn stack_of_512_runs_and_520_is_invalid() {
    let text = |sub_depth: u32| {
        format!(
            ".ctx none
.prog entry
.stack 256
    *(u64 *)(r10 - 256) = 100
    *(u64 *)(r10 - 8) = 0
    call sub
    r1 = *(u64 *)(r10 - 256)
    r0 += r1
    exit
sub:
.stack {sub_depth}
    *(u64 *)(r10 - {sub_depth}) = 20
    *(u64 *)(r10 - 8) = 3
    r0 = *(u64 *)(r10 - {sub_depth})
    r1 = *(u64 *)(r10 - 8)
    r0 += r1
    exit
"
        )
    };
    check_everywhere(&[
        ("512 bytes of stack (256 + 256)", &text(256), exit(123, 0, &[])),
        ("520 bytes of stack (256 + 264)", &text(264), Want::Invalid),
    ]);
}

/// A program in slot 0 of its own map that counts its runs (word 0), tail-calls itself,
/// and, when that fails, records which run's attempt failed (word 1).
const SELF_TAIL_CALL: &str = "
.ctx 8
.map self 1
.slot self 0 entry
.prog entry
    r6 = r1
    r1 = *(u32 *)(r6 + 0)
    r1 += 1
    *(u32 *)(r6 + 0) = r1
    r1 = r6
    r2 = self ll
    r3 = 0
    call bpf_tail_call
    r1 = *(u32 *)(r6 + 0)
    *(u32 *)(r6 + 4) = r1
    r0 = 7
    exit
";

/// Each run first tries `index` of a 2-slot map whose slot 0 holds the program itself
/// (slot 1 is empty), then slot 0; it counts its runs in word 0.
fn wasteful_self_tail_call(index: &str) -> String {
    format!(
        ".ctx 4
.map m 2
.slot m 0 entry
.prog entry
    r6 = r1
    r1 = *(u32 *)(r6 + 0)
    r1 += 1
    *(u32 *)(r6 + 0) = r1
    r1 = r6
    r2 = m ll
    r3 = {index}
    call bpf_tail_call
    r1 = r6
    r2 = m ll
    r3 = 0
    call bpf_tail_call
    r0 = 7
    exit
"
    )
}

/// MAX_TAIL_CALL_CNT = 33: runs 1 to 33 tail-call successfully, so the program runs 34
/// times, and the 34th attempt (made by run 34) fails and falls through.
#[test]
fn thirty_three_tail_calls_succeed_and_the_34th_fails() {
    check_everywhere(&[("self tail call", SELF_TAIL_CALL, exit(7, 33, &[34, 34]))]);
}

/// An empty slot: the tail call fails and the program goes on after it, with R6-R9
/// kept. Under today's rule it costs nothing: a program that tries an empty slot before
/// each self tail call still runs 34 times (33 tail calls). Under Linux 6.12's it costs
/// one count (the order: index, count, count++, slot): such a program spends counts
/// 2n - 1 and 2n in run n, so only runs 1 to 16 get their self tail call through; run 17
/// spends count 33 on the empty slot and its self tail call fails: 17 runs, 16 tail calls.
#[test]
fn an_empty_slot_falls_through_and_costs_a_count_only_under_6_12() {
    let single = "
.ctx none
.map m 2
.slot m 0 target
.prog entry
    r6 = 42
    r2 = m ll
    r3 = 1
    call bpf_tail_call
    r0 = r6
    exit
.prog target
    r0 = 5
    exit
";
    let wasteful = wasteful_self_tail_call("1");
    check_everywhere_by_rule(&[
        ("empty slot 1", single, exit(42, 0, &[]), exit(42, 0, &[])),
        ("an empty slot before each self tail call", &wasteful, exit(7, 33, &[34]), exit(7, 16, &[17])),
    ]);
}

/// index = max_entries: the tail call fails before the count is touched, so a program
/// that makes such an attempt before each self tail call still runs 34 times.
#[test]
fn an_index_of_max_entries_falls_through_and_costs_nothing() {
    let single = "
.ctx none
.map m 2
.slot m 0 target
.slot m 1 target
.prog entry
    r6 = 42
    r2 = m ll
    r3 = 2
    call bpf_tail_call
    r0 = r6
    exit
.prog target
    r0 = 5
    exit
";
    check_everywhere(&[
        ("index 2 of 2 slots", single, exit(42, 0, &[])),
        ("index = max_entries before each self tail call", &wasteful_self_tail_call("2"), exit(7, 33, &[34])),
    ]);
}

/// The index is a u32: only R3's low 32 bits count, and they are unsigned (0xffffffff is
/// far out of range, not -1).
#[test]
fn only_the_low_32_bits_of_the_index_count() {
    let text = |set_index: &str| {
        format!(
            ".ctx none
.map m 2
.slot m 1 target
.prog entry
    r2 = m ll
    {set_index}
    call bpf_tail_call
    r0 = 99
    exit
.prog target
    r0 = 5
    exit
"
        )
    };
    check_everywhere(&[
        ("index 0x1_0000_0001: slot 1", &text("r3 = 0x100000001 ll"), exit(5, 1, &[])),
        ("index 0xffffffff_00000001: slot 1", &text("r3 = -4294967295 ll"), exit(5, 1, &[])),
        ("index 0x1_0000_0000: slot 0, empty", &text("r3 = 0x100000000 ll"), exit(99, 0, &[])),
        ("index 0x1_0000_0002: 2 = max_entries", &text("r3 = 0x100000002 ll"), exit(99, 0, &[])),
        ("index r3 = -1: 0xffffffff, out of range", &text("r3 = -1"), exit(99, 0, &[])),
        ("index w3 = -1: 0xffffffff, out of range", &text("w3 = -1"), exit(99, 0, &[])),
    ]);
}
