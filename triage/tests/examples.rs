//! The shapes compilers emit that jitdiff's validator once refused, from
//! `corpus/examples`, on every in-process engine and (when an image is built) on Linux
//! 7.3's JIT and interpreter, with the values each file's comment derives from the
//! kernel's semantics.

use bpf::load::load_set_file;
use bpf::{Input, RunResult};
use triage::compare::{compare, Verdict};
use triage::engines::{Engines, Options, ALL};

/// (file, R0) — each file's comment says why.
const CASES: &[(&str, u64)] = &[
    ("backward-jump-to-exit.s", 2),
    ("loop-jmp32-high-bits.s", 3),
    ("loop-ctx-bound.s", 120),
    ("caller-stack-pointer.s", 10),
    ("global-counter.s", 1),
];

fn run(engines: &mut Engines, file: &str, r0: u64) -> usize {
    let path = format!("{}/../corpus/examples/{file}", env!("CARGO_MANIFEST_DIR"));
    let f = load_set_file(std::path::Path::new(&path)).unwrap_or_else(|e| panic!("{e}"));
    let ctx = f.ctx.unwrap_or_else(|| Input::with_ctx(vec![0; 64]));
    bpf::validate::validate(&f.set, Some(ctx.ctx.as_ref().map_or(0, Vec::len)))
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let results = engines.run_set(&f.set, &ctx);
    let mut ran = 0;
    for r in &results {
        match &r.result {
            RunResult::Ran(o) => {
                ran += 1;
                assert_eq!(o.result.as_ref().map(|v| v & 0xffff_ffff), Ok(r0), "{file}: {}", r.engine);
            }
            // rbpf does not model array maps (the global variable).
            RunResult::CannotJudge(why) if r.engine == "rbpf" && why.contains("array map") => {}
            other => panic!("{file}: {}: {other:?}", r.engine),
        }
    }
    assert_eq!(compare(&results), Verdict::Agree, "{file}");
    ran
}

#[test]
fn compiler_shapes_run_alike_on_our_engines() {
    let mut engines = Engines::new(&ALL);
    for &(file, r0) in CASES {
        assert!(run(&mut engines, file, r0) >= 2, "{file}");
    }
}

#[test]
fn compiler_shapes_run_alike_on_linux_7_3() {
    if let Err(e) = kernel::KernelImage::cached("7.3") {
        println!("skipped: no kernel image ({e})");
        return;
    }
    let opts = Options { kernel: Some("7.3"), ..Options::default() };
    let mut engines = Engines::try_with_options(&["reference", "kernel-jit", "kernel-interp"], &opts)
        .expect("kernel engines");
    for &(file, r0) in CASES {
        assert_eq!(run(&mut engines, file, r0), 3, "{file}");
    }
}
