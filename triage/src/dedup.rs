//! `jitdiff triage`: replays every finding in a directory with the configuration it was
//! made with, minimises each, and groups them by configuration and [`Signature`],
//! keeping the smallest reproducer per group. Input files are only read.

use std::path::{Path, PathBuf};

use generator::Generated;

use crate::minimize::{minimize, Minimized, Signature};
use compare::config::FindingConfig;

/// One group of findings made with the same configuration and with the same
/// [`Signature::group_key`].
#[derive(Clone, Debug)]
pub struct Group {
    /// What the findings share.
    pub key: String,
    /// The configuration they were replayed with.
    pub config: FindingConfig,
    /// Every distinct signature seen in the group, in the order first seen.
    pub signatures: Vec<Signature>,
    /// The smallest minimised reproducer.
    pub best: Minimized,
    /// Every input that showed the signature, in the order read.
    pub inputs: Vec<PathBuf>,
}

/// The result of triaging a directory.
#[derive(Clone, Debug, Default)]
pub struct Triage {
    /// Files read.
    pub inputs: usize,
    /// Groups, largest first (then by signature).
    pub groups: Vec<Group>,
    /// Files that could not be read or showed no finding, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Files that showed a known divergence of a kernel ([`compare::known`]), with its name:
    /// not grouped.
    pub known: Vec<(PathBuf, &'static str)>,
}

/// Every regular file below `dir` that may hold a finding, sorted: set text (`.s`),
/// fuzz inputs (`.input`) and libFuzzer's artifacts (`crash-*` and the like). Hidden
/// files and minimised outputs (`.min.s`) are left out.
pub fn finding_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    crate::files::files_below(dir, &|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        !name.starts_with('.') && !name.ends_with(".min.s")
    })
}

/// Reads one finding: set text (with its context, else 64 zero bytes) or fuzz input
/// bytes (generator bytes, or a set after the text marker).
pub fn read_finding(path: &Path) -> Result<Generated, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let is_text =
        path.extension().is_some_and(|x| x == "s") || bytes.starts_with(generator::input::TEXT_MAGIC);
    if is_text {
        // The marker line is an assembler comment: the text loads as it is.
        let f = bpf::load::load_set_bytes(&path.display().to_string(), &bytes).map_err(|e| e.to_string())?;
        let input = generator::input::ctx_or_default(f.ctx, f.set.prog_type());
        return Ok(Generated { set: f.set, input });
    }
    generator::input::generate_from(&bytes)
        .ok_or_else(|| format!("{}: not a program set, and too short to generate one from", path.display()))
}

/// The configuration recorded with the finding at `path`: its own
/// [`compare::config::PREFIX`] line, or for a fuzz input (`.input`) the line of the `.s` file
/// saved beside it. `Ok(None)` when there is none (libFuzzer's artifacts, hand-written sets).
pub fn recorded_config(path: &Path) -> Result<Option<FindingConfig>, String> {
    let read = |p: &Path| std::fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned());
    let text = read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let own = FindingConfig::from_text(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if own.is_some() || path.extension().is_none_or(|x| x != "input") {
        return Ok(own);
    }
    let beside = path.with_extension("s");
    match read(&beside) {
        Ok(text) => FindingConfig::from_text(&text).map_err(|e| format!("{}: {e}", beside.display())),
        Err(_) => Ok(None),
    }
}

/// Inputs of a group that are minimised; the smallest result is the group's
/// reproducer. Minimising keeps the signature, so every input of a group would
/// minimise to a reproducer of the same group: a few of the smallest are enough.
pub const MINIMIZED_PER_GROUP: usize = 3;

/// Triages `files`, each replayed with the configuration `config_of` gives for it (an
/// `Err` skips the file with that reason): one run per file to find its signature, then
/// the [`MINIMIZED_PER_GROUP`] smallest inputs of each group minimised with at most
/// `max_attempts` engine runs each. A finding on which the engines now agree is skipped
/// with the configuration it was replayed with. `progress(done, total)` is called as files
/// are read and groups minimised.
pub fn triage(
    files: &[PathBuf],
    config_of: &dyn Fn(&Path) -> Result<FindingConfig, String>,
    max_attempts: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Triage {
    let mut t = Triage { inputs: files.len(), ..Triage::default() };
    // The engines of each configuration, built once.
    let mut engines = compare::config::EnginesByConfig::default();
    // Per (configuration, group key): the signatures seen and the members read.
    type Members = Vec<(PathBuf, Generated)>;
    let mut found: Vec<(usize, String, Vec<Signature>, Members)> = Vec::new();
    for (k, path) in files.iter().enumerate() {
        progress(k, files.len());
        let (g, config) = match read_finding(path).and_then(|g| Ok((g, config_of(path)?))) {
            Ok(x) => x,
            Err(e) => {
                t.skipped.push((path.clone(), e));
                continue;
            }
        };
        let c = match engines.index(config) {
            Ok(c) => c,
            Err(e) => {
                t.skipped.push((path.clone(), format!("its engines cannot be built: {e}")));
                continue;
            }
        };
        let (config, run) = engines.get(c);
        let results = run.run_set(&g.set, &g.input);
        if let compare::Verdict::Mismatch(diffs) = compare::compare(&results) {
            if let Some(k) = compare::known::explain(run, &g.set, &results, &diffs) {
                t.known.push((path.clone(), k.name));
                continue;
            }
        }
        let Some(sig) = Signature::of_results(&results, run, &g.set, &g.input) else {
            let why = format!(
                "the engines agree on it (or it is invalid or inconclusive) with {}: nothing to minimise",
                config.describe()
            );
            t.skipped.push((path.clone(), why));
            continue;
        };
        let key = sig.group_key();
        match found.iter_mut().find(|(fc, k, _, _)| *fc == c && *k == key) {
            Some((_, _, sigs, members)) => {
                if !sigs.contains(&sig) {
                    sigs.push(sig);
                }
                members.push((path.clone(), g));
            }
            None => found.push((c, key, vec![sig], vec![(path.clone(), g)])),
        }
    }
    progress(files.len(), files.len());
    for (c, key, signatures, mut members) in found {
        let inputs: Vec<PathBuf> = members.iter().map(|m| m.0.clone()).collect();
        members.sort_by_key(|m| m.1.set.insn_count());
        let mut best: Option<Minimized> = None;
        for (_, g) in members.iter().take(MINIMIZED_PER_GROUP) {
            if let Ok(m) = minimize(engines.get(c).1, &g.set, &g.input, max_attempts, &mut |_, _| {}) {
                if best.as_ref().is_none_or(|b| m.size_after < b.size_after) {
                    best = Some(m);
                }
            }
        }
        if let Some(best) = best {
            t.groups.push(Group { key, config: engines.get(c).0.clone(), signatures, best, inputs });
        }
    }
    t.groups.sort_by(|a, b| b.inputs.len().cmp(&a.inputs.len()).then_with(|| a.key.cmp(&b.key)));
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use compare::engines::Options;

    #[test]
    fn findings_of_one_bug_form_one_group_and_bad_files_are_skipped() {
        let dir = std::env::temp_dir().join(format!("jitdiff-dedup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Two different programs showing the same missing zero-extension in R0.
        std::fs::write(dir.join("a.s"), ".ctx 8\nr0 = -1\nw0 += 0\nr1 = 2\nexit\n").unwrap();
        std::fs::write(dir.join("b.s"), ".ctx 8\nr2 = 3\nr0 = -2\nw0 -= 0\nexit\n").unwrap();
        // One where the engines agree, one that does not parse.
        std::fs::write(dir.join("c.s"), ".ctx 8\nr0 = 1\nexit\n").unwrap();
        std::fs::write(dir.join("d.s"), "r0 = \n").unwrap();
        let opts = Options {
            bugs: jit::Bugs::NONE.with(jit::Bug::Alu32ArithNoZext),
            budget: Some(100_000),
            ..Options::default()
        };
        let config = FindingConfig { options: opts, ..FindingConfig::default() };
        let files = finding_files(&dir).unwrap();
        let t = triage(&files, &|_| Ok(config.clone()), 5_000, &mut |_, _| {});
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(t.inputs, 4);
        assert_eq!(t.groups.len(), 1, "{:?}", t.groups);
        assert_eq!(t.groups[0].inputs.len(), 2);
        assert_eq!(t.groups[0].key, "jit@alu32");
        assert_eq!(t.groups[0].best.signature.to_string(), "value:jit:ok@alu32");
        assert_eq!(t.groups[0].best.size_after, 3);
        assert_eq!(t.skipped.len(), 2);
        assert!(t.skipped.iter().any(|(p, why)| p.ends_with("c.s") && why.contains("engines agree")));
        assert!(t.skipped.iter().any(|(p, why)| p.ends_with("d.s") && why.contains("d.s")));
    }
}
