//! Calls on the JIT: bpf2bpf calls, helpers through trap addresses, and tail calls under
//! each tail-call-counter scheme. Expected values follow from the programs and the
//! kernel's rules (at most 33 tail calls per run; a tail call through an empty slot costs
//! one under Linux 6.12's rule and nothing under today's).

use bpf::asm::parse_program;
use bpf::helpers::{COUNTER, MIX};
use bpf::EmptySlotRule;
use bpf::{Engine, FaultKind, Input, Outcome, ProgArray, ProgramSet, RunResult, SetProgram};
use jit::{Bug, Bugs, Jit, Scheme};

fn prog(name: &str, text: &str) -> SetProgram {
    SetProgram { name: name.into(), prog: parse_program(text).unwrap_or_else(|e| panic!("{name}: {e}")) }
}

fn run(jit: &mut Jit, set: &ProgramSet, input: &Input) -> Outcome {
    match jit.run_set(set, input) {
        RunResult::Ran(o) => o,
        other => panic!("the JIT did not run it: {other:?}"),
    }
}

fn ctx_u32(o: &Outcome) -> u32 {
    u32::from_le_bytes(o.ctx[..4].try_into().unwrap())
}

#[test]
fn bpf2bpf_call_returns_into_the_caller_with_r6_kept() {
    let main = prog(
        "main",
        "r6 = 100\nr1 = 5\ncall sub\nr0 += r6\nexit\nsub:\nr6 = 7\nr0 = r1\nr0 *= 2\nr0 += r6\nexit",
    );
    let set = ProgramSet::new(vec![main], vec![]).unwrap();
    for scheme in Scheme::ALL {
        // sub returns 5 * 2 + 7 = 17; the caller's r6 is still 100.
        assert_eq!(
            run(&mut Jit::new().with_scheme(scheme), &set, &Input::none()).result,
            Ok(117),
            "{scheme}"
        );
    }
}

#[test]
fn helpers_are_serviced_and_traced() {
    let text = format!(
        "call {COUNTER}\nr6 = r0\ncall {COUNTER}\nr1 = 3\nr2 = 4\nr3 = 5\nr4 = 6\nr5 = 7\ncall {MIX}\nr0 = r6\nexit"
    );
    let set = ProgramSet::single(parse_program(&text).unwrap());
    let out = run(&mut Jit::new(), &set, &Input::none());
    assert_eq!(out.result, Ok(1), "the first counter call returns 1");
    let ids: Vec<i32> = out.helper_calls.iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![COUNTER, COUNTER, MIX]);
    assert_eq!(out.helper_calls[2].args, vec![3, 4, 5, 6, 7]);
}

/// entry: tail-calls slot `index` of map 0; on failure returns 99.
fn tail_caller(index: &str) -> SetProgram {
    prog("entry", &format!("ld_pseudo r2, 1, 0\nr3 = {index}\ncall 12\nr0 = 99\nexit"))
}

#[test]
fn tail_call_success_and_the_failure_paths() {
    let target = prog("target", "r0 = 7\nexit");
    let map = |slots| vec![ProgArray { name: "m".into(), slots }];
    for scheme in Scheme::ALL {
        let mut jit = Jit::new().with_scheme(scheme);
        let ok = ProgramSet::new(vec![tail_caller("1"), target.clone()], map(vec![None, Some(1)])).unwrap();
        let out = run(&mut jit, &ok, &Input::none());
        assert_eq!((out.result, out.tail_calls), (Ok(7), 1), "{scheme}: success");
        let empty =
            ProgramSet::new(vec![tail_caller("0"), target.clone()], map(vec![None, Some(1)])).unwrap();
        let out = run(&mut jit, &empty, &Input::none());
        assert_eq!((out.result, out.tail_calls), (Ok(99), 0), "{scheme}: empty slot");
        let beyond =
            ProgramSet::new(vec![tail_caller("2"), target.clone()], map(vec![None, Some(1)])).unwrap();
        let out = run(&mut jit, &beyond, &Input::none());
        assert_eq!((out.result, out.tail_calls), (Ok(99), 0), "{scheme}: index = max_entries");
        // Only the low 32 bits of the index count: 0x1_0000_0001 is index 1.
        let wide =
            ProgramSet::new(vec![tail_caller("0x100000001 ll"), target.clone()], map(vec![None, Some(1)]))
                .unwrap_or_else(|e| panic!("{e}"));
        let out = run(&mut jit, &wide, &Input::none());
        assert_eq!((out.result, out.tail_calls), (Ok(7), 1), "{scheme}: index with upper bits set");
    }
}

/// entry: `n` tail calls through the empty slot 0, then one through slot 1 (the target,
/// returning 7); 99 when that fails.
fn after_empty_slots(n: u32) -> ProgramSet {
    let entry = format!(
        "r6 = r1\nr7 = {n}\nloop:\nr1 = r6\nld_pseudo r2, 1, 0\nr3 = 0\ncall 12\nr7 -= 1\n\
         if r7 != 0 goto loop\nr1 = r6\nld_pseudo r2, 1, 0\nr3 = 1\ncall 12\nr0 = 99\nexit"
    );
    let map = vec![ProgArray { name: "m".into(), slots: vec![None, Some(1)] }];
    ProgramSet::new(vec![prog("entry", &entry), prog("target", "r0 = 7\nexit")], map).unwrap()
}

#[test]
fn empty_slots_cost_a_count_only_under_the_6_12_rule() {
    for scheme in Scheme::ALL {
        let counted = || Jit::new().with_scheme(scheme).with_empty_slot(EmptySlotRule::Counted);
        // 6.12: 33 empty-slot tail calls spend the count; after 32 one is left.
        let out = run(&mut counted(), &after_empty_slots(33), &Input::none());
        assert_eq!((out.result, out.tail_calls), (Ok(99), 0), "{scheme}, counted, 33");
        let out = run(&mut counted(), &after_empty_slots(32), &Input::none());
        assert_eq!((out.result, out.tail_calls), (Ok(7), 1), "{scheme}, counted, 32");
        // Today's rule: they cost nothing.
        let out = run(&mut Jit::new().with_scheme(scheme), &after_empty_slots(40), &Input::none());
        assert_eq!((out.result, out.tail_calls), (Ok(7), 1), "{scheme}, free, 40");
        // The slip that keeps the count before the slot check behaves like 6.12.
        let bug = Bugs::NONE.with(Bug::TccKeptBeforeSlotCheck);
        let out =
            run(&mut Jit::new().with_scheme(scheme).with_bugs(bug), &after_empty_slots(33), &Input::none());
        assert_eq!((out.result, out.tail_calls), (Ok(99), 0), "{scheme}, free with the slip");
    }
}

/// A program that counts its runs in the context's first word, then tail-calls slot 0.
const SELF_TAIL_CALL: &str = "r6 = r1\nr1 = *(u32 *)(r6 + 0)\nr1 += 1\n*(u32 *)(r6 + 0) = r1\n\
    r1 = r6\nld_pseudo r2, 1, 0\nr3 = 0\ncall 12\nr0 = 1\nexit";

#[test]
fn a_self_tail_call_runs_34_times_under_every_scheme() {
    let set = ProgramSet::new(
        vec![prog("entry", SELF_TAIL_CALL)],
        vec![ProgArray { name: "m".into(), slots: vec![Some(0)] }],
    )
    .unwrap();
    for scheme in Scheme::ALL {
        let out = run(&mut Jit::new().with_scheme(scheme), &set, &Input::with_ctx(vec![0; 8]));
        // The first run plus 33 successful tail calls; the 34th attempt fails and returns 1.
        assert_eq!((out.result.clone(), out.tail_calls, ctx_u32(&out)), (Ok(1), 33, 34), "{scheme}");
    }
}

#[test]
fn the_count_survives_helper_calls() {
    let text = format!(
        "r6 = r1\nr1 = *(u32 *)(r6 + 0)\nr1 += 1\n*(u32 *)(r6 + 0) = r1\ncall {COUNTER}\n\
         r1 = r6\nld_pseudo r2, 1, 0\nr3 = 0\ncall 12\nr0 = 1\nexit"
    );
    let set = ProgramSet::new(
        vec![prog("entry", &text)],
        vec![ProgArray { name: "m".into(), slots: vec![Some(0)] }],
    )
    .unwrap();
    for scheme in Scheme::ALL {
        let out = run(&mut Jit::new().with_scheme(scheme), &set, &Input::with_ctx(vec![0; 8]));
        assert_eq!((out.tail_calls, ctx_u32(&out)), (33, 34), "{scheme}");
        assert_eq!(out.helper_calls.len(), 34, "{scheme}: one counter call per run");
    }
}

/// The "tailcall hierarchy" shape: the entry counts its runs, then calls a subprogram
/// twice; the subprogram tail-calls the entry.
fn hierarchy() -> ProgramSet {
    let entry = "r6 = r1\nr1 = *(u32 *)(r6 + 0)\nr1 += 1\n*(u32 *)(r6 + 0) = r1\n\
        r1 = r6\ncall sub\nr1 = r6\ncall sub\nr0 = 1\nexit\n\
        sub:\nld_pseudo r2, 1, 0\nr3 = 0\ncall 12\nr0 = 0\nexit";
    ProgramSet::new(vec![prog("entry", entry)], vec![ProgArray { name: "m".into(), slots: vec![Some(0)] }])
        .unwrap()
}

#[test]
fn hierarchy_is_bounded_by_one_global_count() {
    for scheme in [Scheme::Register, Scheme::Pointer, Scheme::Writeback] {
        let out = run(&mut Jit::new().with_scheme(scheme), &hierarchy(), &Input::with_ctx(vec![0; 8]));
        // One counter for the whole run: 33 successful tail calls, each a new run of
        // the entry, which is counted: 34 runs in all.
        assert_eq!((out.result.clone(), out.tail_calls, ctx_u32(&out)), (Ok(1), 33, 34), "{scheme}");
    }
}

#[test]
fn hierarchy_explodes_with_per_frame_counts() {
    // With the stack scheme each subprogram starts from its caller's count and the
    // caller's own count is restored afterwards, so the number of runs grows like 2^33:
    // the run cannot finish within a bounded budget.
    let out = run(
        &mut Jit::with_block_limit(2_000_000).with_scheme(Scheme::Stack),
        &hierarchy(),
        &Input::with_ctx(vec![0; 8]),
    );
    assert_eq!(out.result.unwrap_err().kind, FaultKind::Budget);
}

#[test]
fn writeback_slips_lose_the_global_count() {
    // Without the write-back after a call, each sub() returns to a caller whose slot still
    // holds its own count: per-frame counting, and the hierarchy explodes like 2^33.
    let bug = Bugs::NONE.with(Bug::TccNotWrittenBackAfterCall);
    let mut jit = Jit::with_block_limit(2_000_000).with_scheme(Scheme::Writeback).with_bugs(bug);
    let out = run(&mut jit, &hierarchy(), &Input::with_ctx(vec![0; 8]));
    assert_eq!(out.result.unwrap_err().kind, FaultKind::Budget);
    // Without the reload before a call, the a6 a helper call left (the runner scrambles
    // it to 0xc10bb3e5_00000010, negative) reaches the subprogram as its count: the
    // entry calls the counter helper, then sub(), which tail-calls the leaf. Correct: one
    // tail call, R0 = 7; with the slip the count is negative and the tail call fails.
    let text = format!(
        "call {COUNTER}\ncall sub\nexit\n\
         sub:\nld_pseudo r2, 1, 0\nr3 = 0\ncall 12\nr0 = 99\nexit"
    );
    let set = ProgramSet::new(
        vec![prog("entry", &text), prog("leaf", "r0 = 7\nexit")],
        vec![ProgArray { name: "m".into(), slots: vec![Some(1)] }],
    )
    .unwrap();
    let out = run(&mut Jit::new().with_scheme(Scheme::Writeback), &set, &Input::none());
    assert_eq!((out.result, out.tail_calls), (Ok(7), 1));
    let bug = Bugs::NONE.with(Bug::TccNotReloadedBeforeCall);
    let out = run(&mut Jit::new().with_scheme(Scheme::Writeback).with_bugs(bug), &set, &Input::none());
    assert_eq!((out.result, out.tail_calls), (Ok(99), 0));
}

#[test]
fn array_lookup_finds_values_and_returns_null_past_the_end() {
    // Store key 2 on the stack, look it up, add 5 to the 8-byte value, return it; then a
    // lookup of key 4 (= max_entries) gives NULL.
    let text = ".array vals 8 4 hex 0000000000000000 0000000000000000 0a00000000000000\n.prog entry\n\
        *(u32 *)(r10 - 4) = 2\nr1 = vals ll\nr2 = r10\nr2 += -4\ncall bpf_map_lookup_elem\n\
        if r0 == 0 goto miss\nr1 = *(u64 *)(r0 + 0)\nr1 += 5\n*(u64 *)(r0 + 0) = r1\n\
        *(u32 *)(r10 - 4) = 4\nr1 = vals ll\nr2 = r10\nr2 += -4\ncall bpf_map_lookup_elem\nexit\n\
        miss:\nr0 = 99\nexit\n";
    let f = bpf::asm::parse_set(text).unwrap();
    for scheme in Scheme::ALL {
        let out = run(&mut Jit::new().with_scheme(scheme), &f.set, &Input::none());
        assert_eq!(out.result, Ok(0), "{scheme}: the second lookup returns NULL");
        let mut expect = vec![0u8; 32];
        expect[16] = 15;
        assert_eq!(out.arrays, vec![expect], "{scheme}: value 2 went from 10 to 15");
        let found: Vec<u64> = out.helper_calls.iter().map(|c| c.ret).collect();
        assert_eq!(found, vec![1, 0]);
        assert_eq!(out.helper_calls[0].args, vec![0, 2]);
    }
}
