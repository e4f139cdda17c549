//! The configuration a finding was made with, written into its artifact so that `run`,
//! `minimize` and `triage` replay it the same way: one comment line,
//!
//! ```text
//! ; jitdiff config: engines=reference,rbpf,jit scheme=register semantics=global empty-slot=free inject=tcc-off-by-one inputs=4 seed=7
//! ```
//!
//! (`kernel=SPEC` when kernel engines ran; `inject=` empty for none).

use oracle::reference::TailCallSemantics;

use crate::engines::{parse_list, Engines, Options};

/// The start of the line that holds a configuration.
pub const PREFIX: &str = "; jitdiff config:";

/// How a finding was made: the engines and everything that configures them, and the
/// fuzzing session's inputs per set and seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FindingConfig {
    /// The engines compared, as `--engines` takes them.
    pub engines: Vec<&'static str>,
    /// The engine options (the empty-slot rule resolved, as the engines ran).
    pub options: Options,
    /// Inputs per set of the session (`None`: not from a fuzzing session).
    pub inputs: Option<usize>,
    /// The seed of the thread that made it (`None`: not from a fuzzing session).
    pub seed: Option<u64>,
}

impl Default for FindingConfig {
    /// jitdiff's default engines and options, not from a fuzzing session.
    fn default() -> FindingConfig {
        FindingConfig {
            engines: crate::engines::ALL.to_vec(),
            options: Options::default(),
            inputs: None,
            seed: None,
        }
    }
}

/// A count semantics' name on the command line.
pub fn semantics_name(s: TailCallSemantics) -> &'static str {
    match s {
        TailCallSemantics::Global => "global",
        TailCallSemantics::PerFrame => "per-frame",
    }
}

/// The count semantics called `name` (`global` or `per-frame`).
pub fn parse_semantics(name: &str) -> Result<TailCallSemantics, String> {
    match name {
        "global" => Ok(TailCallSemantics::Global),
        "per-frame" => Ok(TailCallSemantics::PerFrame),
        _ => Err(format!("unknown semantics {name:?} (known: global, per-frame)")),
    }
}

impl FindingConfig {
    /// The configuration line, without a newline.
    pub fn line(&self) -> String {
        let fields: Vec<String> = self.fields().iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{PREFIX} {}", fields.join(" "))
    }

    /// In words, for messages: "engines reference,rbpf,jit, scheme register, ...".
    pub fn describe(&self) -> String {
        let words = |key| match key {
            "empty-slot" => "empty-slot rule",
            "inject" => "injected",
            "inputs" => "inputs per set",
            other => other,
        };
        let fields: Vec<String> = self
            .fields()
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{} {v}", words(k)))
            .collect();
        fields.join(", ")
    }

    /// The fields as (key, value).
    fn fields(&self) -> Vec<(&'static str, String)> {
        let o = &self.options;
        let mut f = vec![
            ("engines", self.engines.join(",")),
            ("scheme", o.scheme.to_string()),
            ("semantics", semantics_name(o.semantics).to_string()),
            ("empty-slot", o.empty_slot_rule().to_string()),
            ("inject", o.bugs.list().iter().map(|b| b.name()).collect::<Vec<_>>().join(",")),
        ];
        if let Some(k) = o.kernel {
            f.push(("kernel", k.to_string()));
        }
        if let Some(n) = self.inputs {
            f.push(("inputs", n.to_string()));
        }
        if let Some(s) = self.seed {
            f.push(("seed", s.to_string()));
        }
        f
    }

    /// The same engine configuration, without the session's inputs per set and seed
    /// (findings replay and group by what configures the engines).
    pub fn engines_only(&self) -> FindingConfig {
        FindingConfig { inputs: None, seed: None, ..self.clone() }
    }

    /// The options that make `jitdiff run`, `minimize` or `triage` replay it this way.
    pub fn replay_flags(&self) -> String {
        let o = &self.options;
        let mut f = format!(
            "--engines {} --scheme {} --semantics {} --empty-slot {}",
            self.engines.join(","),
            o.scheme,
            semantics_name(o.semantics),
            o.empty_slot_rule()
        );
        if !o.bugs.list().is_empty() {
            f += &format!(
                " --inject {}",
                o.bugs.list().iter().map(|b| b.name()).collect::<Vec<_>>().join(",")
            );
        }
        if let Some(k) = o.kernel {
            f += &format!(" --kernel {k}");
        }
        f
    }

    /// The configuration recorded in `text` (the first line starting with [`PREFIX`]):
    /// `Ok(None)` when there is none, `Err` naming the field when the line is malformed.
    pub fn from_text(text: &str) -> Result<Option<FindingConfig>, String> {
        let Some(line) = text.lines().find_map(|l| l.trim_start().strip_prefix(PREFIX)) else {
            return Ok(None);
        };
        let mut c = FindingConfig::default();
        for field in line.split_whitespace() {
            let (key, value) =
                field.split_once('=').ok_or_else(|| format!("config field {field:?} is not key=value"))?;
            let bad = |e: String| format!("config field {key}: {e}");
            match key {
                "engines" => c.engines = parse_list(value).map_err(bad)?,
                "scheme" => c.options.scheme = value.parse().map_err(bad)?,
                "semantics" => c.options.semantics = parse_semantics(value).map_err(bad)?,
                "empty-slot" => c.options.empty_slot = Some(value.parse().map_err(bad)?),
                "inject" => {
                    c.options.bugs = value
                        .split(',')
                        .filter(|b| !b.is_empty())
                        .map(|b| b.parse::<jit::Bug>())
                        .collect::<Result<_, _>>()
                        .map_err(bad)?
                }
                "kernel" if !value.is_empty() => c.options.kernel = Some(kernel::engine::intern(value)),
                "inputs" => c.inputs = Some(value.parse().map_err(|e| bad(format!("{e}")))?),
                "seed" => c.seed = Some(value.parse().map_err(|e| bad(format!("{e}")))?),
                _ => return Err(format!("unknown config field {key:?}")),
            }
        }
        Ok(Some(c))
    }
}

/// Engines for each configuration asked for, each built on first use.
#[derive(Default)]
pub struct EnginesByConfig {
    built: Vec<(FindingConfig, Engines)>,
}

impl EnginesByConfig {
    /// The index of the engines `config` configures, building them the first time; `Err`
    /// when they cannot be built (a kernel engine without an image).
    pub fn index(&mut self, config: FindingConfig) -> Result<usize, String> {
        let config = config.engines_only();
        if let Some(k) = self.built.iter().position(|(c, _)| *c == config) {
            return Ok(k);
        }
        let engines = Engines::try_with_options(&config.engines, &config.options)?;
        self.built.push((config, engines));
        Ok(self.built.len() - 1)
    }

    /// The configuration and engines at `index` (from [`EnginesByConfig::index`]).
    pub fn get(&mut self, index: usize) -> (&FindingConfig, &mut Engines) {
        let (c, e) = &mut self.built[index];
        (c, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpf::EmptySlotRule;

    #[test]
    fn a_configuration_survives_its_line() {
        let c = FindingConfig {
            engines: vec!["reference", "jit", "kernel-jit@7.3"],
            options: Options {
                scheme: jit::Scheme::Writeback,
                semantics: TailCallSemantics::PerFrame,
                empty_slot: Some(EmptySlotRule::Counted),
                bugs: jit::Bugs::NONE.with(jit::Bug::TccOffByOne),
                kernel: Some("6.12"),
                ..Options::default()
            },
            inputs: Some(4),
            seed: Some(9),
        };
        let text = format!("r0 = 0\nexit\n{}\n; other comments\n", c.line());
        assert_eq!(FindingConfig::from_text(&text), Ok(Some(c.clone())));
        assert_eq!(
            c.line(),
            "; jitdiff config: engines=reference,jit,kernel-jit@7.3 scheme=writeback semantics=per-frame \
             empty-slot=counted inject=tcc-off-by-one kernel=6.12 inputs=4 seed=9"
        );
        assert!(c.replay_flags().contains("--inject tcc-off-by-one --kernel 6.12"), "{}", c.replay_flags());
    }

    #[test]
    fn no_line_is_no_configuration_and_a_bad_line_is_an_error() {
        assert_eq!(FindingConfig::from_text("r0 = 0\nexit\n"), Ok(None));
        let bad = |line: &str| FindingConfig::from_text(&format!("{PREFIX} {line}\n")).unwrap_err();
        assert!(bad("scheme=nope").contains("scheme"), "{}", bad("scheme=nope"));
        assert!(bad("engines=jit").contains("must include reference"));
        assert!(bad("inject=no-such-bug").contains("inject"));
        assert!(bad("colour=blue").contains("unknown config field"));
        assert!(bad("seed").contains("not key=value"));
        // Fields left out keep the defaults.
        let c = FindingConfig::from_text(&format!("{PREFIX} inject=\n")).unwrap().unwrap();
        assert_eq!((c.engines, c.options), (crate::engines::ALL.to_vec(), Options::default()));
    }
}
