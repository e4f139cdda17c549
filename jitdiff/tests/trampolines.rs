//! fentry and fexit programs around the functions of a set, against the kernel's own
//! expectations: the trampoline shapes of the kernel's tail-call selftests
//! (`tools/testing/selftests/bpf/prog_tests/tailcalls.c`: `tailcall_bpf2bpf_fentry`,
//! `_fexit`, `_fentry_fexit` and `_fentry_entry`), rewritten as the program sets in
//! `corpus/trampolines/`. The selftests count in global variables; here the traced programs
//! count in context word 0 and the tracing programs in array `counts`. Every expected value
//! is the selftest's, worked out again in the header comment of each file.
//!
//! Each case runs on the reference interpreter and on the JIT with every scheme whose count
//! semantics is the kernel's (`register`, `pointer`, `writeback`), under both empty-slot
//! rules; each engine must give the selftest's values, and the engines must agree on every
//! field, what the attachments saw included.
//!
//! Each case also runs on Linux 7.3 (when scripts/test.sh has built the image): its JIT must
//! give the selftest's values in what a kernel run shows (R0's low 32 bits, the context, the
//! array maps, and each tracing program's run count), and its interpreter cannot judge the
//! sets: the kernel attaches tracing programs only to JIT-compiled programs.

use std::path::PathBuf;

use bpf::load::load_set_file;
use bpf::{AttachKind, EmptySlotRule, Engine, Input, Outcome, ProgramSet, RunResult};
use compare::{compare, EngineResult, Verdict};
use oracle::reference::Reference;

mod common;

/// The kernel whose JIT and interpreter the cases also run on.
const KERNEL: &str = "7.3";

/// What a run must give: R0, successful tail calls, context word 0 (the traced programs'
/// count), and per attachment its runs and, for fexit, every return value it saw.
struct Want {
    r0: u64,
    tail_calls: u32,
    count: u32,
    runs: Vec<u32>,
    returns: Vec<Vec<u64>>,
}

fn load(file: &str) -> (ProgramSet, Input) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus/trampolines").join(file);
    let f = load_set_file(&path).unwrap_or_else(|e| panic!("{e}"));
    (f.set, f.ctx.unwrap_or_else(Input::none))
}

/// `set` with only the attachments of the kinds in `keep`.
fn only(set: &ProgramSet, keep: &[AttachKind]) -> ProgramSet {
    let kept = set.attachments().iter().filter(|a| keep.contains(&a.kind)).cloned().collect();
    set.clone().with_attachments(kept).unwrap_or_else(|e| panic!("{e}"))
}

/// The engines: the reference and the JIT with each global-count scheme, under `rule`.
fn engines(rule: EmptySlotRule) -> Vec<(&'static str, Box<dyn Engine>)> {
    let mut v: Vec<(&'static str, Box<dyn Engine>)> =
        vec![("reference", Box::new(Reference::new().with_empty_slot(rule)))];
    for scheme in [jit::Scheme::Register, jit::Scheme::Pointer, jit::Scheme::Writeback] {
        v.push(("jit", Box::new(jit::Jit::new().with_scheme(scheme).with_empty_slot(rule))));
    }
    v
}

fn check_outcome(what: &str, set: &ProgramSet, o: &Outcome, want: &Want) {
    let bits = if o.observes.r0_bits == 64 { u64::MAX } else { (1 << o.observes.r0_bits) - 1 };
    assert_eq!(o.result, Ok(want.r0 & bits), "{what}: R0");
    if o.observes.tail_calls {
        assert_eq!(o.tail_calls, want.tail_calls, "{what}: successful tail calls");
    }
    let count = u32::from_le_bytes(o.ctx[..4].try_into().expect("a context of 8 bytes"));
    assert_eq!(count, want.count, "{what}: the traced programs' count (context word 0)");
    let runs: Vec<u32> = o.attachments.iter().map(|a| a.runs).collect();
    assert_eq!(runs, want.runs, "{what}: runs of each attachment");
    if o.observes.attachment_returns {
        let returns: Vec<Vec<u64>> = o.attachments.iter().map(|a| a.returns.clone()).collect();
        assert_eq!(returns, want.returns, "{what}: return values each attachment saw");
    }
    // The tracing programs' own counters in array `counts`: word 0 of slot 0 counts the
    // fentry's runs, of slot 1 the fexit's, which keeps the last return value it saw in
    // word 1.
    let word = |at: usize| u32::from_le_bytes(o.arrays[0][at..at + 4].try_into().expect("8-byte values"));
    for (a, (&n, returns)) in set.attachments().iter().zip(want.runs.iter().zip(&want.returns)) {
        let slot = if a.kind == AttachKind::Fentry { 0 } else { 8 };
        assert_eq!(word(slot), n, "{what}: the {} program's counter in array counts", a.kind.name());
        if let Some(&last) = returns.last() {
            assert_eq!(
                u64::from(word(slot + 4)),
                last & 0xffff_ffff,
                "{what}: the last return value the fexit saw"
            );
        }
    }
}

fn check(name: &str, set: &ProgramSet, input: &Input, want: &Want) {
    for rule in EmptySlotRule::ALL {
        let mut results = Vec::new();
        for (engine, mut e) in engines(rule) {
            let what = format!("{name} on {engine} (empty slot {rule})");
            match e.run_set(set, input) {
                RunResult::Ran(o) => check_outcome(&what, set, &o, want),
                other => panic!("{what}: {other:?}"),
            }
            results.push(EngineResult { engine, result: e.run_set(set, input) });
        }
        assert_eq!(compare(&results), Verdict::Agree, "{name} (empty slot {rule})");
    }
    on_the_kernel(name, set, input, want);
}

/// The case on Linux 7.3's JIT, with the reference beside it, and on its interpreter, which
/// cannot judge it. Prints `skipped: no kernel image` without an image.
fn on_the_kernel(name: &str, set: &ProgramSet, input: &Input, want: &Want) {
    let Some(mut engines) = common::kernel_engines(KERNEL, &["reference", "kernel-jit", "kernel-interp"])
    else {
        return;
    };
    let results = engines.run_set(set, input);
    for r in &results {
        let what = format!("{name} on {} [Linux {KERNEL}]", r.engine);
        match (r.engine, &r.result) {
            ("kernel-interp", RunResult::CannotJudge(why)) => {
                assert!(why.contains("Can attach to only JITed progs"), "{what}: {why}")
            }
            (_, RunResult::Ran(o)) if r.engine != "kernel-interp" => check_outcome(&what, set, o, want),
            (_, other) => panic!("{what}: {other:?}"),
        }
    }
    assert_eq!(compare(&results), Verdict::Agree, "{name} [Linux {KERNEL}]");
}

#[test]
fn tailcall_bpf2bpf_fentry_fexit() {
    let (set, input) = load("tailcall_bpf2bpf_fentry_fexit.s");
    let ones = vec![1u64; 33];
    let fentry = Want { r0: 1, tail_calls: 33, count: 33, runs: vec![33], returns: vec![vec![]] };
    check("tailcall_bpf2bpf_fentry", &only(&set, &[AttachKind::Fentry]), &input, &fentry);
    let fexit = Want { r0: 1, tail_calls: 33, count: 33, runs: vec![33], returns: vec![ones.clone()] };
    check("tailcall_bpf2bpf_fexit", &only(&set, &[AttachKind::Fexit]), &input, &fexit);
    let both = Want { r0: 1, tail_calls: 33, count: 33, runs: vec![33, 33], returns: vec![vec![], ones] };
    check("tailcall_bpf2bpf_fentry_fexit", &set, &input, &both);
}

#[test]
fn tailcall_bpf2bpf_fentry_entry() {
    let (set, input) = load("tailcall_bpf2bpf_fentry_entry.s");
    let want = Want { r0: 1, tail_calls: 33, count: 34, runs: vec![1], returns: vec![vec![]] };
    check("tailcall_bpf2bpf_fentry_entry", &set, &input, &want);
}

#[test]
fn an_fexit_sees_the_low_32_bits_of_r0_sign_extended() {
    let text = "
        .array counts 8 1
        .prog entry
            r0 = 0x180000002 ll
            exit
        .fexit seen entry
            r0 = 0
            exit
    ";
    let set = bpf::load::load_set_text("fexit.s", text).unwrap_or_else(|e| panic!("{e}")).set;
    let mut r = Reference::new();
    let RunResult::Ran(o) = r.run_set(&set, &Input::with_ctx(vec![0; 8])) else { panic!() };
    assert_eq!(o.result, Ok(0x1_8000_0002));
    assert_eq!(o.attachments[0].returns, vec![0xffff_ffff_8000_0002]);
}

#[test]
fn an_attachment_to_a_function_the_verifier_removes_never_runs() {
    // The call is dead (R0 is 0 at the branch), so the kernel's verifier removes the
    // subprogram with its BTF and refuses the fentry ("Subprog f1 doesn't exist"): it can
    // never run, and the kernel engine reports it with no runs, as the other engines see it.
    let text = "
        .ctx 8
        .prog entry
            r0 = 0
            if r0 == 0 goto skip
            call sub
        skip:
            exit
        sub:
            r0 = 1
            exit
        .fentry never entry:1
            r0 = 0
            exit
        .fexit always entry
            r0 = 0
            exit
    ";
    let f = bpf::load::load_set_text("dead.s", text).unwrap_or_else(|e| panic!("{e}"));
    let (set, input) = (f.set, f.ctx.unwrap_or_else(Input::none));
    let want = Want { r0: 0, tail_calls: 0, count: 0, runs: vec![0, 1], returns: vec![vec![], vec![0]] };
    for (engine, mut e) in engines(EmptySlotRule::Free) {
        let RunResult::Ran(o) = e.run_set(&set, &input) else { panic!("{engine} could not run it") };
        assert_eq!(o.attachments.iter().map(|a| a.runs).collect::<Vec<_>>(), want.runs, "{engine}");
        assert_eq!(o.attachments[1].returns, vec![0], "{engine}: the fexit on main saw R0");
    }
    let Some(mut engines) = common::kernel_engines(KERNEL, &["reference", "kernel-jit"]) else { return };
    let results = engines.run_set(&set, &input);
    let RunResult::Ran(o) = &results[1].result else { panic!("kernel-jit: {:?}", results[1].result) };
    assert_eq!(o.attachments.iter().map(|a| a.runs).collect::<Vec<_>>(), vec![0, 1], "kernel-jit");
    assert_eq!(compare(&results), Verdict::Agree);
}

#[test]
fn a_clang_object_with_fentry_and_fexit_sections() {
    // bpf/tests/fixtures/fentry.c: `entry` adds one to context word 0 and calls
    // subprog_tail, which tail-calls `entry` (slot 0) and returns 1 when that fails. The
    // fentry on subprog_tail runs at each of the 34 calls (1 run of `entry` + 33 tail calls);
    // the fexit on `entry` runs once, for the run of the entry (tail calls skip the
    // trampoline), and sees the 1 that comes back through every frame. Each tracing program
    // calls jitdiff_kcounter once per run: 35 calls.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bpf/tests/fixtures/fentry.o");
    let f = load_set_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let input = Input::with_ctx(vec![0; 8]);
    for rule in EmptySlotRule::ALL {
        for (engine, mut e) in engines(rule) {
            let RunResult::Ran(o) = e.run_set(&f.set, &input) else { panic!("{engine} could not run it") };
            let what = format!("fentry.o on {engine} (empty slot {rule})");
            assert_eq!(o.result, Ok(1), "{what}");
            assert_eq!(u64::from_le_bytes(o.ctx[..8].try_into().expect("8 bytes")), 34, "{what}");
            let seen: Vec<(u32, Vec<u64>)> =
                o.attachments.iter().map(|a| (a.runs, a.returns.clone())).collect();
            assert_eq!(seen, [(34, vec![]), (1, vec![1])], "{what}");
            assert_eq!(o.helper_calls.len(), 35, "{what}");
        }
    }
}
