//! `jitdiff bench bugs`: how fast the standalone fuzzer finds each injectable JIT bug.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::fuzz::{fuzz, FuzzOptions};
use compare::engines::Options;

/// The runs of one bug: for each seed, the time and runs to the first finding, if any.
#[derive(Clone, Debug)]
pub struct BugResult {
    /// The bug.
    pub bug: jit::Bug,
    /// Per seed: `Some((seconds, runs))` when found within the limit.
    pub seeds: Vec<Option<(f64, u64)>>,
}

impl BugResult {
    /// Seeds that found the bug.
    pub fn found(&self) -> usize {
        self.seeds.iter().flatten().count()
    }

    /// The median and maximum seconds to the first finding over the seeds that found it.
    pub fn times(&self) -> Option<(f64, f64)> {
        let mut t: Vec<f64> = self.seeds.iter().flatten().map(|s| s.0).collect();
        t.sort_by(f64::total_cmp);
        Some((median(&t)?, *t.last()?))
    }

    /// The median and maximum runs to the first finding.
    pub fn runs(&self) -> Option<(f64, u64)> {
        let mut r: Vec<u64> = self.seeds.iter().flatten().map(|s| s.1).collect();
        r.sort_unstable();
        let as_f: Vec<f64> = r.iter().map(|&x| x as f64).collect();
        Some((median(&as_f)?, *r.last()?))
    }
}

fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The engines `jitdiff fuzz` uses, with `bugs` injected into the JIT, whose scheme is
/// the one the bugs' code is in (see [`jit::Bug::scheme`]; the default otherwise).
fn fuzz_options(bugs: jit::Bugs) -> Options {
    let scheme = bugs.list().iter().find_map(|b| b.scheme()).unwrap_or_default();
    Options { budget: Some(compare::engines::FUZZ_BUDGET), bugs, scheme, ..Options::default() }
}

/// Fuzzes with `bug` injected from seed `seed` until the first finding or `limit`.
pub fn time_to_find(bug: jit::Bug, seed: u64, limit: Duration, artifacts: &Path) -> Option<(f64, u64)> {
    let opts = FuzzOptions {
        engine_names: compare::engines::ALL.to_vec(),
        time: Some(limit),
        runs: None,
        seed,
        jobs: 1,
        engines: fuzz_options(jit::Bugs::NONE.with(bug)),
        artifacts: artifacts.join(bug.name()),
        corpus: None,
        inputs_per_set: 4,
        stop_at_first_finding: true,
    };
    let stats = fuzz(&opts, &|_, _| {});
    let first = *stats.first_finding.lock().unwrap_or_else(|e| e.into_inner());
    first.filter(|_| stats.findings.load(Ordering::Relaxed) > 0).map(|(t, runs)| (t.as_secs_f64(), runs))
}

/// A finding made with a bug injected: the set, the input and what the engines said.
#[derive(Clone, Debug)]
pub struct Found {
    /// The program set and the input that showed the bug.
    pub case: generator::Generated,
    /// Every engine's result.
    pub results: Vec<compare::EngineResult>,
    /// The differences.
    pub diffs: Vec<compare::Difference>,
    /// Runs made up to and including this one.
    pub runs: u64,
}

/// The first finding of a single-threaded fuzzing session from `seed` with `bugs`
/// injected, within `max_runs` runs: the generator, context variations and engines of
/// `jitdiff fuzz`, deterministic for a seed.
pub fn first_finding(bugs: jit::Bugs, seed: u64, max_runs: u64) -> Option<Found> {
    use crate::fuzz::INPUT_LEN;
    use compare::engines::{Engines, ALL};
    use compare::{compare, Verdict};
    use generator::input::{generate_from, vary, Rng};
    let opts = fuzz_options(bugs);
    let mut engines = Engines::with_options(&ALL, &opts);
    let mut rng = Rng::new(seed);
    let mut bytes = vec![0u8; INPUT_LEN];
    let mut runs = 0;
    while runs < max_runs {
        rng.fill(&mut bytes);
        let Some(g) = generate_from(&bytes) else { continue };
        let mut input = g.input.clone();
        for _ in 0..4 {
            runs += 1;
            let results = engines.run_set(&g.set, &input);
            if let Verdict::Mismatch(diffs) = compare(&results) {
                let case = generator::Generated { set: g.set, input };
                return Some(Found { case, results, diffs, runs });
            }
            input = vary(&g.input, g.set.prog_type(), &mut rng);
        }
    }
    None
}

/// The first finding of `first_finding(bugs, seed, max_runs)`, minimised: the
/// minimiser's result and the seconds it took.
pub fn minimized_finding(
    bugs: jit::Bugs,
    seed: u64,
    max_runs: u64,
) -> Option<(triage::minimize::Minimized, f64)> {
    let found = first_finding(bugs, seed, max_runs)?;
    let opts = fuzz_options(bugs);
    let mut engines = compare::engines::Engines::with_options(&compare::engines::ALL, &opts);
    let start = std::time::Instant::now();
    let m = triage::minimize::minimize(
        &mut engines,
        &found.case.set,
        &found.case.input,
        MINIMIZE_ATTEMPTS,
        &mut |_, _| {},
    )
    .ok()?;
    Some((m, start.elapsed().as_secs_f64()))
}

/// Writes a minimised reproducer to `dir/<bug>.min.s` for a person to compare with
/// their own; an existing file is left alone (a warning names it).
fn save_reproducer(dir: &Path, bug: jit::Bug, m: &triage::minimize::Minimized) {
    use std::io::Write as _;
    let path = dir.join(format!("{}.min.s", bug.name()));
    let text = format!(
        "; {} minimised: {}\n{}",
        bug.name(),
        m.signature,
        bpf::asm::print_set(&m.set, Some(&m.input))
    );
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::OpenOptions::new().write(true).create_new(true).open(&path))
        .and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(e) = written {
        eprintln!("jitdiff: not saving {}: {e}", path.display());
    }
}

/// Engine runs the benchmark's minimiser may spend per finding.
pub const MINIMIZE_ATTEMPTS: u64 = 20_000;

/// Runs the benchmark for `bugs`, printing one line (or JSON object) per bug as it ends.
pub fn bugs(bugs: &[jit::Bug], seeds: u64, limit_s: u64, artifacts: &Path, json: bool, out: &mut dyn Write) {
    if !json {
        let _ = writeln!(
            out,
            "{:<34} {:>6} {:>9} {:>9} {:>11} {:>9} {:>10} {:>6}",
            "bug", "found", "median s", "max s", "median runs", "max runs", "min. size", "min. s"
        );
    }
    for &bug in bugs {
        let r = BugResult {
            bug,
            seeds: (1..=seeds)
                .map(|s| time_to_find(bug, s, Duration::from_secs(limit_s), artifacts))
                .collect(),
        };
        let (times, runs) = (r.times(), r.runs());
        // A finding from seed 1 of the single-threaded, deterministic session, minimised.
        let minimized = minimized_finding(jit::Bugs::NONE.with(bug), 1, 200_000).map(|(m, secs)| {
            save_reproducer(artifacts, bug, &m);
            (m.size_after, secs)
        });
        let _ = if json {
            writeln!(
                out,
                "{}",
                serde_json::json!({
                    "bug": bug.name(),
                    "found": r.found(),
                    "seeds": seeds,
                    "median_s": times.map(|t| t.0),
                    "max_s": times.map(|t| t.1),
                    "median_runs": runs.map(|x| x.0),
                    "max_runs": runs.map(|x| x.1),
                    "time_limit_s": limit_s,
                    "minimized_size": minimized.map(|m| m.0),
                    "minimize_s": minimized.map(|m| m.1),
                })
            )
        } else {
            let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}"));
            writeln!(
                out,
                "{:<34} {:>6} {:>9} {:>9} {:>11} {:>9} {:>10} {:>6}",
                bug.name(),
                format!("{}/{seeds}", r.found()),
                f(times.map(|t| t.0)),
                f(times.map(|t| t.1)),
                runs.map_or("-".into(), |x| format!("{:.0}", x.0)),
                runs.map_or("-".into(), |x| x.1.to_string()),
                minimized.map_or("-".into(), |m| m.0.to_string()),
                f(minimized.map(|m| m.1)),
            )
        };
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_maxima() {
        let r = BugResult {
            bug: jit::Bug::TccOffByOne,
            seeds: vec![Some((3.0, 30)), None, Some((1.0, 10)), Some((2.0, 20))],
        };
        assert_eq!(r.found(), 3);
        assert_eq!(r.times(), Some((2.0, 3.0)));
        assert_eq!(r.runs(), Some((20.0, 30)));
        let none = BugResult { bug: jit::Bug::TccOffByOne, seeds: vec![None] };
        assert_eq!((none.found(), none.times()), (0, None));
    }
}
