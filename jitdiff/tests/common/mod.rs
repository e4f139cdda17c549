//! Shared by the integration tests: the kernel's test vectors and running a program on
//! every engine.

#![allow(dead_code)]

use std::path::PathBuf;

use bpf::{decode, Input, Program, RawInsn, RunResult};
use compare::engines::{Engines, ALL};
use compare::{compare, Verdict};
use serde_json::Value;

/// The folders of the kernel's test vectors (lib/test_bpf.c's tables as JSON), made from
/// kernel sources by `kernel/test-vectors.sh`: those `JITDIFF_TEST_VECTORS` names,
/// separated by `:` (`scripts/test.sh` sets it: Linux 6.12's first, then 7.3's), or else
/// the one the script made last (`current` under `JITDIFF_VECTORS_CACHE`, default
/// `~/.cache/jitdiff/test-vectors`).
pub fn test_bpf_dirs() -> Vec<PathBuf> {
    let dirs: Vec<PathBuf> = match std::env::var("JITDIFF_TEST_VECTORS") {
        Ok(list) => list.split(':').filter(|d| !d.is_empty()).map(PathBuf::from).collect(),
        Err(_) => vec![std::env::var_os("JITDIFF_VECTORS_CACHE")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/jitdiff/test-vectors"))
            })
            .expect("HOME is set")
            .join("current")],
    };
    for dir in &dirs {
        assert!(
            dir.join("tests.json").is_file(),
            "the kernel's test vectors are missing from {}: run kernel/test-vectors.sh (scripts/test.sh does)",
            dir.display()
        );
    }
    assert!(!dirs.is_empty(), "JITDIFF_TEST_VECTORS names no folder");
    dirs
}

/// The first folder of [`test_bpf_dirs`] (Linux 6.12's under `scripts/test.sh`).
pub fn test_bpf_dir() -> PathBuf {
    test_bpf_dirs().swap_remove(0)
}

/// The kernel whose vectors are in `dir`, as its `source.txt` names it ("lib/test_bpf.c of
/// Linux 7.3.4 (...)" gives "7.3.4").
pub fn vectors_kernel(dir: &std::path::Path) -> String {
    let source = std::fs::read_to_string(dir.join("source.txt")).unwrap_or_default();
    source.split_whitespace().skip_while(|w| *w != "Linux").nth(1).unwrap_or("unknown").to_string()
}

/// One kernel test: its name, program, input, and the expected u32 of R0.
pub struct KernelTest {
    pub name: String,
    pub prog: Program,
    pub input: Input,
    pub expected: u32,
}

/// Builds a test from one object of `tests.json` / `tests_generated.jsonl.gz`.
pub fn kernel_test(t: &Value) -> KernelTest {
    let name = t["name"].as_str().expect("name").to_string();
    let slots: Vec<RawInsn> = t["insns"]
        .as_array()
        .expect("insns")
        .iter()
        .map(|i| {
            let f: Vec<i64> =
                i.as_array().expect("insn").iter().map(|x| x.as_i64().expect("field")).collect();
            RawInsn { code: f[0] as u8, dst: f[1] as u8, src: f[2] as u8, off: f[3] as i16, imm: f[4] as i32 }
        })
        .collect();
    let insns = decode(&slots).unwrap_or_else(|e| panic!("{name}: {e}"));
    let depth = t["stack_depth"].as_u64().expect("stack_depth") as u32;
    let prog = Program::with_stack_depth(insns, if depth == 0 { 512 } else { depth })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let sub = &t["subtests"][0];
    let input = match t["ctx"].as_str().expect("ctx") {
        "none" => Input::none(),
        "buffer" => Input::with_ctx(vec![0; sub["data_size"].as_u64().expect("data_size") as usize]),
        // The program never reads R1: any context will do.
        _ => Input::with_ctx(vec![0; 64]),
    };
    KernelTest { name, prog, input, expected: sub["result"].as_u64().expect("result") as u32 }
}

/// Runs a kernel test on every engine: each engine that can judge must return the
/// expected u32, and all must agree on every field. Returns the failures, and the names
/// of the engines that could not judge.
pub fn check_kernel_test(engines: &mut Engines, t: &KernelTest) -> (Vec<String>, Vec<&'static str>) {
    let results = engines.run(&t.prog, &t.input);
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    for r in &results {
        match &r.result {
            RunResult::Ran(o) => match o.result {
                Ok(v) if v as u32 == t.expected => {}
                Ok(v) => failures.push(format!(
                    "{}: {} returned {:#x}, expected {:#x}",
                    t.name, r.engine, v as u32, t.expected
                )),
                Err(ref f) => failures.push(format!("{}: {} faulted: {f}", t.name, r.engine)),
            },
            RunResult::CannotJudge(why) => {
                if r.engine != "rbpf" {
                    failures.push(format!("{}: {} cannot judge: {why}", t.name, r.engine));
                }
                skipped.push(r.engine);
            }
            RunResult::Rejected(log) => failures.push(format!("{}: {} rejected it: {log}", t.name, r.engine)),
        }
    }
    if let v @ (Verdict::Mismatch(_) | Verdict::Invalid(_) | Verdict::Inconclusive(_)) = compare(&results) {
        failures.push(format!("{}: engines disagree: {v:?}", t.name));
    }
    (failures, skipped)
}

/// Every engine.
pub fn all_engines() -> Engines {
    Engines::new(&ALL)
}

/// Runs `prog` on every engine and checks that each engine able to judge returns exactly
/// `expected` (all 64 bits of R0) and that the engines agree on every field. Returns the
/// failures, each naming the case.
pub fn check_r0(
    engines: &mut Engines,
    name: &str,
    prog: &Program,
    input: &Input,
    expected: u64,
) -> Vec<String> {
    let results = engines.run(prog, input);
    let mut failures = Vec::new();
    for r in &results {
        match &r.result {
            RunResult::Ran(o) => match o.result {
                Ok(v) if v == expected => {}
                Ok(v) => {
                    failures.push(format!("{name}: {} returned {v:#x}, expected {expected:#x}", r.engine))
                }
                Err(ref f) => failures.push(format!("{name}: {} faulted: {f}", r.engine)),
            },
            RunResult::CannotJudge(why) if r.engine != "rbpf" => {
                failures.push(format!("{name}: {} cannot judge: {why}", r.engine))
            }
            RunResult::CannotJudge(_) => {}
            RunResult::Rejected(log) => failures.push(format!("{name}: {} rejected it: {log}", r.engine)),
        }
    }
    if let v @ (Verdict::Mismatch(_) | Verdict::Invalid(_) | Verdict::Inconclusive(_)) = compare(&results) {
        failures.push(format!("{name}: engines disagree: {v:?}"));
    }
    failures
}

/// Assembles LLVM-syntax text into a program, panicking with the case name on error.
pub fn asm(name: &str, text: &str) -> Program {
    bpf::asm::parse_program(text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The engines `names` with kernel engines on Linux `kernel`, or `None` (after printing
/// `skipped: no kernel image for KERNEL`) when no image of it is built.
pub fn kernel_engines(kernel: &'static str, names: &[&'static str]) -> Option<Engines> {
    if let Err(e) = kernel::KernelImage::cached(kernel) {
        println!("skipped: no kernel image for {kernel} ({e})");
        return None;
    }
    let opts = compare::engines::Options { kernel: Some(kernel), ..compare::engines::Options::default() };
    Some(Engines::try_with_options(names, &opts).expect("kernel engines"))
}
