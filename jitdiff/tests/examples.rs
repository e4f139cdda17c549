//! The shapes compilers emit that jitdiff's validator once refused, from
//! `corpus/examples` and from small C programs clang built
//! (`bpf/tests/fixtures/compiled`), on every in-process engine and (when an image is
//! built) on Linux 7.3's JIT and interpreter, with the values each file's comment, or the
//! C source, gives.

use bpf::load::load_set_file;
use bpf::{Input, RunResult};
use compare::engines::{Engines, Options, ALL};
use compare::{compare, Verdict};

/// (file, R0) — each file's comment says why.
const CASES: &[(&str, u64)] = &[
    ("backward-jump-to-exit.s", 2),
    ("loop-jmp32-high-bits.s", 3),
    ("loop-ctx-bound.s", 120),
    ("caller-stack-pointer.s", 10),
    ("global-counter.s", 1),
    ("tc-packet-walk.s", 80),
];

/// The context the C programs run on: byte i = 7i + 3, but byte 9 = 0x7f.
const C_CTX: &str =
    "030a11181f262d343b7f4950575e656c737a81888f969da4abb2b9c0c7ced5dce3eaf1f8ff060d141b22293037\
                     3e454c535a61686f767d848b9299a0a7aeb5bc";

/// (object, R0's low 32 bits) for the C programs on [`C_CTX`], computed from the C source
/// (each function's `return`, truncated to its `int`).
const C_CASES: &[(&str, u64)] = &[
    ("by_ref.o", 0x6044280c),
    ("ctx_bound.o", 0x33),
    ("early_break.o", 0x9),
    ("globals_loop.o", 0x4),
    ("nested.o", 0xf),
    ("popcount.o", 0x17),
    ("ptr_walk.o", 0x405),
    ("rodata_table.o", 0xff),
    ("sum_array.o", 0x632b6cd4),
    ("switch.o", 0x11),
    ("var_index.o", 0x9),
    ("void_sub.o", 0x18110a11),
];

/// C programs the kernel's verifier cannot bound: `while (x) { x &= x - 1; c++; }` over an
/// unknown 64-bit x is one state per iteration with nothing to prune, and the guest gives
/// up before the verifier does. jitdiff's validator accepts it and leaves the loop to the
/// engines' budgets (it ends within 64 iterations).
const KERNEL_CANNOT_BOUND: &[&str] = &["popcount.o"];

fn c_ctx() -> Input {
    let hex = C_CTX;
    Input::with_ctx(
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect(),
    )
}

fn run(engines: &mut Engines, file: &str, r0: u64) -> usize {
    let (path, default) = match file.strip_suffix(".o") {
        Some(_) => {
            (format!("{}/../bpf/tests/fixtures/compiled/{file}", env!("CARGO_MANIFEST_DIR")), Some(c_ctx()))
        }
        None => (format!("{}/../corpus/examples/{file}", env!("CARGO_MANIFEST_DIR")), None),
    };
    let f = load_set_file(std::path::Path::new(&path)).unwrap_or_else(|e| panic!("{e}"));
    // Without a `.ctx`: 64 zero bytes, or a tc program's default packet.
    let ctx = f.ctx.or(default).unwrap_or_else(|| Input::with_ctx(f.set.prog_type().default_input()));
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
            // rbpf models neither array maps (the global variable) nor a __sk_buff.
            RunResult::CannotJudge(why)
                if r.engine == "rbpf" && (why.contains("array map") || why.contains("__sk_buff")) => {}
            other => panic!("{file}: {}: {other:?}", r.engine),
        }
    }
    assert_eq!(compare(&results), Verdict::Agree, "{file}");
    ran
}

#[test]
fn compiler_shapes_run_alike_on_our_engines() {
    let mut engines = Engines::new(&ALL);
    for &(file, r0) in CASES.iter().chain(C_CASES) {
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
    for &(file, r0) in CASES.iter().chain(C_CASES).filter(|(f, _)| !KERNEL_CANNOT_BOUND.contains(f)) {
        assert_eq!(run(&mut engines, file, r0), 3, "{file}");
    }
}
