//! Building engines by name.

use bpf::{Engine, Input, Program, ProgramSet};

use crate::compare::EngineResult;

/// Every engine jitdiff knows, in the order they are shown.
pub const ALL: [&str; 3] = ["reference", "rbpf", "jit"];

/// The engine called `name`, or `None` for an unknown name.
pub fn build(name: &str) -> Option<Box<dyn Engine>> {
    match name {
        "reference" => Some(Box::new(oracle::reference::Reference::new())),
        "rbpf" => Some(Box::new(oracle::rbpf::Rbpf::new())),
        "jit" => Some(Box::new(jit::Jit::new())),
        _ => None,
    }
}

/// Parses a comma-separated engine list (`reference,jit`). The reference interpreter is
/// required: it decides which programs are valid.
pub fn parse_list(list: &str) -> Result<Vec<&'static str>, String> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let known = ALL
            .iter()
            .find(|n| **n == name)
            .ok_or_else(|| format!("unknown engine {name:?} (known: {})", ALL.join(", ")))?;
        if !out.contains(known) {
            out.push(*known);
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
}

impl Engines {
    /// Builds the named engines (names from [`ALL`]).
    pub fn new(names: &[&'static str]) -> Engines {
        Engines { engines: names.iter().filter_map(|n| build(n)).collect() }
    }

    /// Runs `prog` on `input` on every engine, in order.
    pub fn run(&mut self, prog: &Program, input: &Input) -> Vec<EngineResult> {
        self.run_set(&ProgramSet::single(prog.clone()), input)
    }

    /// Runs a program set on `input` on every engine, in order.
    pub fn run_set(&mut self, set: &ProgramSet, input: &Input) -> Vec<EngineResult> {
        self.engines.iter_mut().map(|e| EngineResult { engine: e.name(), result: e.run_set(set, input) }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_lists() {
        assert_eq!(parse_list("reference,jit").unwrap(), vec!["reference", "jit"]);
        assert_eq!(parse_list(" jit , reference,jit").unwrap(), vec!["jit", "reference"]);
        assert!(parse_list("jit,rbpf").unwrap_err().contains("must include reference"));
        assert!(parse_list("reference,qemu").unwrap_err().contains("unknown engine \"qemu\""));
        assert!(parse_list("reference").unwrap_err().contains("at least two"));
    }

    #[test]
    fn every_listed_engine_builds_under_its_name() {
        for name in ALL {
            assert_eq!(build(name).map(|e| e.name()), Some(name));
        }
    }
}
