//! Every injectable bug is found by a short fixed-seed fuzzing session, in the field its
//! slip should show in, with the JIT as the odd one out; the same set and input on the
//! correct JIT agree.

use compare::engines::{Engines, Options, ALL};
use compare::{compare, Field, Verdict};
use jit::bugs::{Bug, CATALOGUE};
use jitdiff::bench::first_finding;

/// Where each bug can show: a wrong value reaches R0, memory or a helper's arguments, or
/// steers a branch and so which tail calls are made; a wrong count of tail calls shows
/// in the count (and what the skipped program would have done); a broken frame or
/// return register shows as an ABI fault or a crash.
fn expected(bug: Bug) -> &'static [Field] {
    use Field::*;
    // A value an fexit program sees (a subprogram's return value) may be the only one
    // that is wrong; a wrong value or branch in a loop's test may keep the loop going
    // where it ends on the reference (a hang, an error).
    const VALUE: &[Field] = &[R0, Ctx, TailCalls, Helpers, Arrays, Attachments, Error];
    const TAIL_CALLS: &[Field] = &[TailCalls, R0, Ctx, Helpers, Arrays, Attachments];
    match bug {
        Bug::A0NotSignExtended => &[Error],
        // The target runs on the caller's stack, without its own adjustment: it faults,
        // or its stack values land where the caller's were.
        Bug::TailCallSkipOffset => &[Error, R0, Ctx, TailCalls, Helpers, Arrays],
        // From the main function the native caller's registers are lost (an ABI fault);
        // from a subprogram, the BPF caller's R6-R9, which then compute a wrong value.
        Bug::TailCallNoRestore => &[Error, R0, Ctx, TailCalls, Helpers, Arrays],
        Bug::TailCallIndexSigned => &[Error, TailCalls],
        // A traced function that starts from the tracing program's fresh count makes more
        // tail calls, until the native stack runs out (an error) or the count shows; a
        // pointer-scheme count that is not a pointer faults.
        Bug::TrampolineLosesTcc => &[Error, TailCalls, R0, Ctx, Helpers, Arrays, Attachments],
        // A wrong address or a landing one instruction off reads or computes the wrong
        // value, or faults.
        Bug::LargeOffsetTruncated | Bug::BranchRelaxOffset => &[Error, R0, Ctx, TailCalls, Helpers, Arrays],
        // A loop's branch that lands 4 KiB forward, or a loop test on the wrong width, runs
        // the wrong code or loops on (a hang).
        Bug::BranchRelaxThreshold | Bug::Jmp32LoopFullWidth => {
            &[Error, R0, Ctx, TailCalls, Helpers, Arrays, Attachments]
        }
        Bug::TccOffByOne
        | Bug::TccLostAcrossHelpers
        | Bug::TccLostAcrossKfuncs
        | Bug::TailCallIndexNotZext
        | Bug::StackRestoreInRegisterScheme
        | Bug::TccKeptBeforeSlotCheck
        | Bug::TccNotReloadedBeforeCall => TAIL_CALLS,
        // A subprogram's tail calls that do not use up its caller's count: they can
        // multiply (the hierarchy shape) until the run hangs, or the count shows.
        Bug::TccNotWrittenBackAfterCall => &[TailCalls, Error, R0, Ctx, Helpers, Arrays, Attachments],
        _ => VALUE,
    }
}

#[test]
fn every_bug_is_found_and_blamed_on_the_jit() {
    let mut failures = Vec::new();
    let mut correct = Engines::with_options(&ALL, &Options { budget: Some(300_000), ..Options::default() });
    for info in CATALOGUE {
        let Some(found) = first_finding(jit::Bugs::NONE.with(info.bug), 1, 100_000) else {
            failures.push(format!("{}: not found in 100000 runs", info.name));
            continue;
        };
        let first = &found.diffs[0];
        if !expected(info.bug).contains(&first.field) {
            failures.push(format!(
                "{}: first difference in {}, expected one of {:?} ({})",
                info.name,
                first.field,
                expected(info.bug),
                first.explanation
            ));
        }
        for d in &found.diffs {
            if d.odd_one_out != Some("jit") {
                failures.push(format!(
                    "{}: {} blamed on {:?}: {}",
                    info.name, d.field, d.odd_one_out, d.explanation
                ));
            }
        }
        let again = compare(&correct.run_set(&found.case.set, &found.case.input));
        if again != Verdict::Agree {
            failures.push(format!(
                "{}: the correct JIT does not agree on the finding's set: {again:?}",
                info.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn without_a_bug_the_same_sessions_find_nothing() {
    assert!(first_finding(jit::Bugs::NONE, 1, 3_000).is_none());
}
