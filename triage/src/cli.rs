//! The `jitdiff` command line: `run` and `jit`.
//!
//! Exit status: 0 when every engine agrees, 1 on a mismatch, 2 on bad input (unreadable
//! or malformed files, bad options, programs the kernel's verifier would reject, or
//! programs nothing could be concluded about).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use bpf::{Input, Program};

use crate::compare::{compare, Verdict};
use crate::engines::{parse_list, Engines};
use crate::present::{to_json, to_text};

/// Differential testing of eBPF JITs: runs programs on a reference interpreter, rbpf and
/// jitdiff's RV64 JIT (in unicorn) and reports every disagreement.
#[derive(Debug, Parser)]
#[command(name = "jitdiff", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run each program on every engine and compare the outcomes.
    Run(RunArgs),
    /// Print the RV64 code the JIT makes of a program, interleaved with the BPF
    /// instruction each range came from.
    Jit {
        /// A program: LLVM-syntax assembly, raw bytecode (.bin) or a BPF ELF object (.o).
        file: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Programs: LLVM-syntax assembly, raw bytecode (.bin) or BPF ELF objects (.o).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print one JSON object per line and program instead of a table.
    #[arg(long)]
    json: bool,
    /// Engines to compare, comma-separated; must include `reference`.
    #[arg(long, default_value = "reference,rbpf,jit")]
    engines: String,
    /// Context bytes R1 points to, as hex (e.g. `0102ff`); default: 64 zero bytes.
    #[arg(long, conflicts_with_all = ["ctx_size", "no_ctx"])]
    ctx: Option<String>,
    /// Size of a zero-filled context (bytes, at most 65536).
    #[arg(long, conflicts_with = "no_ctx")]
    ctx_size: Option<usize>,
    /// Run with R1 = 0 and no context.
    #[arg(long)]
    no_ctx: bool,
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

fn input_of(a: &RunArgs) -> Result<Input, String> {
    if a.no_ctx {
        return Ok(Input::none());
    }
    if let Some(h) = &a.ctx {
        return parse_hex(h).map(Input::with_ctx);
    }
    match a.ctx_size {
        Some(n) if n > 65536 => Err(format!("--ctx-size: {n} is larger than 65536")),
        Some(n) => Ok(Input::with_ctx(vec![0; n])),
        None => Ok(Input::with_ctx(vec![0; 64])),
    }
}

fn load(path: &Path) -> Result<Program, String> {
    bpf::load::load_file(path).map_err(|e| e.to_string())
}

/// Runs the command line `args` (program name first), writing results to `out` and
/// diagnostics to `err`; returns the exit status.
pub fn main(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let text = e.render().to_string();
            let _ = if code == 0 { write!(out, "{text}") } else { write!(err, "{text}") };
            return code;
        }
    };
    match cli.command {
        Command::Run(a) => cmd_run(&a, out, err),
        Command::Jit { file } => cmd_jit(&file, out, err),
    }
}

fn cmd_run(a: &RunArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let names = match parse_list(&a.engines) {
        Ok(n) => n,
        Err(e) => return usage(err, &format!("--engines: {e}")),
    };
    let input = match input_of(a) {
        Ok(i) => i,
        Err(e) => return usage(err, &e),
    };
    let mut engines = Engines::new(&names);
    let (mut bad, mut mismatch) = (false, false);
    for file in &a.files {
        let shown = file.display().to_string();
        let prog = match load(file) {
            Ok(p) => p,
            Err(e) => {
                let _ = writeln!(err, "jitdiff: {e}");
                bad = true;
                continue;
            }
        };
        let results = engines.run(&prog, &input);
        let verdict = compare(&results);
        match verdict {
            Verdict::Agree => {}
            Verdict::Mismatch(_) => mismatch = true,
            Verdict::Inconclusive(_) | Verdict::Invalid(_) => bad = true,
        }
        let _ = if a.json {
            writeln!(out, "{}", to_json(&shown, &results, &verdict))
        } else {
            write!(out, "{}", to_text(&shown, &results, &verdict))
        };
    }
    if bad {
        2
    } else {
        u8::from(mismatch)
    }
}

fn usage(err: &mut dyn Write, msg: &str) -> u8 {
    let _ = writeln!(err, "jitdiff: {msg}");
    2
}

fn cmd_jit(file: &Path, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let prog = match load(file) {
        Ok(p) => p,
        Err(e) => return usage(err, &e),
    };
    let compiled = match jit::compile::compile(&prog) {
        Ok(c) => c,
        Err(e) => return usage(err, &format!("{}: {e}", file.display())),
    };
    let line = |out: &mut dyn Write, k: usize| {
        let inst = compiled.insts[k];
        let _ = writeln!(out, "  {:5x}:  {:08x}  {inst}", k * 4, inst.encode());
    };
    let first = compiled.insn_ranges.first().map_or(compiled.epilogue, |r| r.start);
    let _ = writeln!(out, "; prologue");
    (0..first / 4).for_each(|k| line(out, k));
    for (i, range) in compiled.insn_ranges.iter().enumerate() {
        let _ = writeln!(out, "; {:4}: {}", prog.pc_of(i), prog.insns()[i]);
        (range.start / 4..range.end / 4).for_each(|k| line(out, k));
    }
    let _ = writeln!(out, "; epilogue");
    (compiled.epilogue / 4..compiled.insts.len()).for_each(|k| line(out, k));
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
    }

    #[test]
    fn hex_contexts() {
        assert_eq!(parse_hex("0x01ff").unwrap(), vec![1, 0xff]);
        assert_eq!(parse_hex("01 02").unwrap(), vec![1, 2]);
        assert!(parse_hex("zz").unwrap_err().contains("not a hex byte"));
    }
}
