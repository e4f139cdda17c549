//! Global variables and array maps as clang and libbpf make them, on every engine: the
//! shape of the kernel's tailcall3 selftest (a program that counts its runs in `.bss`
//! and tail-calls itself), built by clang (`bpf/tests/fixtures/globals.c`), and the same
//! in text. Expected values are the selftest's: R0 = 1 and a count of 33, the kernel's
//! tail-call limit.

use bpf::load::{load_set_bytes, load_set_text};
use bpf::{Input, ProgramSet, RunResult};
use compare::engines::Engines;
use compare::{compare, Verdict};

mod common;

fn fixture() -> ProgramSet {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../bpf/tests/fixtures/globals.o");
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    load_set_bytes("globals.o", &bytes).unwrap_or_else(|e| panic!("{e}")).set
}

/// The array values after a run: `hits` (two u64), `bss` (count), `data` (start),
/// `rodata` (step), as little-endian bytes.
fn selftest_arrays() -> Vec<Vec<u8>> {
    let mut hits = vec![0u8; 16];
    hits[8] = 33;
    vec![hits, vec![33, 0, 0, 0], vec![8, 0, 0, 0], vec![1, 0, 0, 0]]
}

/// Checks every engine that ran against the selftest's values; returns how many did.
fn check(engines: &mut Engines, set: &ProgramSet, arrays: &[Vec<u8>]) -> usize {
    let results = engines.run_set(set, &Input::with_ctx(vec![0; 64]));
    let mut ran = 0;
    for r in &results {
        match &r.result {
            RunResult::Ran(o) => {
                ran += 1;
                assert_eq!(o.result.as_ref().map(|v| v & 0xffff_ffff), Ok(1), "{}: {o:?}", r.engine);
                if o.observes.tail_calls {
                    assert_eq!(o.tail_calls, 33, "{}", r.engine);
                }
                assert_eq!(o.arrays, arrays, "{}", r.engine);
            }
            // rbpf models neither array maps nor a __sk_buff (globals.c is SEC("tc")).
            RunResult::CannotJudge(why) if r.engine == "rbpf" => assert!(why.contains("__sk_buff"), "{why}"),
            other => panic!("{}: {other:?}", r.engine),
        }
    }
    assert_eq!(compare(&results), Verdict::Agree);
    ran
}

#[test]
fn the_tailcall3_shape_counts_33_in_bss_on_our_engines() {
    let mut engines = Engines::new(&["reference", "rbpf", "jit"]);
    assert_eq!(check(&mut engines, &fixture(), &selftest_arrays()), 2);
}

#[test]
fn globals_in_text_form() {
    // The same shape written by hand: `count` at offset 4 of an 8-byte `.bss`.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../corpus/examples/global-counter.s");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let f = load_set_text("global-counter.s", &text).unwrap_or_else(|e| panic!("{e}"));
    let results = Engines::new(&["reference", "jit"]).run_set(&f.set, &f.ctx.unwrap());
    for r in &results {
        let RunResult::Ran(o) = &r.result else { panic!("{}: {:?}", r.engine, r.result) };
        assert_eq!((o.result.clone(), o.tail_calls), (Ok(1), 33), "{}", r.engine);
        assert_eq!(o.arrays, [vec![0, 0, 0, 0, 33, 0, 0, 0]], "{}", r.engine);
    }
    // An offset outside the value is refused when the set is built.
    let bad = text.replace("&bss + 4 ll", "&bss + 8 ll");
    let msg = load_set_text("bad.s", &bad).unwrap_err().to_string();
    assert!(msg.contains("offset 8 is outside the 8-byte value of array map bss"), "{msg}");
}

#[test]
fn the_tailcall3_shape_counts_33_in_bss_on_the_kernels() {
    for kernel in ["6.12", "7.3"] {
        let Some(mut engines) = common::kernel_engines(kernel, &["reference", "kernel-jit", "kernel-interp"])
        else {
            continue;
        };
        assert_eq!(check(&mut engines, &fixture(), &selftest_arrays()), 3, "Linux {kernel}");
    }
}
