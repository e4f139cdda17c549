//! Field-by-field comparison of engine outcomes.
//!
//! The rules, in order:
//! 1. An engine that cannot judge a program is left out, and says why; so is one whose
//!    own verifier (a real kernel's) rejected it.
//! 2. A run that exhausted its budget is inconclusive: budgets are counted in different
//!    units by different engines, so nothing is compared.
//! 3. A fault in the reference interpreter means the kernel's verifier would have
//!    rejected the program (it accessed memory outside the stack and context, or made a
//!    misaligned atomic access): the program is invalid, and nothing is compared.
//! 4. Otherwise the fault class, R0 (unless the reference says it holds an address, which
//!    differs between engines by construction), the context memory, the number of
//!    successful tail calls, the helper-call trace, the array maps' values and what each
//!    attachment saw (its runs, and for fexit the return values, unless the reference says
//!    one was derived from an address) are compared. For
//!    every field that differs, the engine whose value stands alone is named as the odd
//!    one out; with only two engines, the one that is not the reference is.

use std::fmt;

use bpf::helpers::HelperCall;
use bpf::{FaultKind, Outcome, RunResult};

/// One engine's result, labelled.
#[derive(Clone, Debug)]
pub struct EngineResult {
    /// The engine's name.
    pub engine: &'static str,
    /// What it said.
    pub result: RunResult,
}

/// An observable compared across engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// Whether and how the run faulted.
    Error,
    /// The 64-bit return value.
    R0,
    /// The context memory after the run.
    Ctx,
    /// The number of successful tail calls.
    TailCalls,
    /// The helper calls, with their arguments and results.
    Helpers,
    /// The array maps' values after the run.
    Arrays,
    /// What each attachment (fentry/fexit program) saw: its runs and return values.
    Attachments,
}

impl Field {
    /// A short stable name.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Error => "error",
            Field::R0 => "r0",
            Field::Ctx => "ctx",
            Field::TailCalls => "tail_calls",
            Field::Helpers => "helpers",
            Field::Arrays => "arrays",
            Field::Attachments => "attachments",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One disagreeing field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// Which observable.
    pub field: Field,
    /// Each compared engine's value, rendered.
    pub values: Vec<(&'static str, String)>,
    /// The engine whose value stands alone, when one does.
    pub odd_one_out: Option<&'static str>,
    /// A sentence saying who says what.
    pub explanation: String,
}

/// The comparison's conclusion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every engine that could judge agrees on every field.
    Agree,
    /// At least one field differs.
    Mismatch(Vec<Difference>),
    /// A run hit its budget; nothing was compared.
    Inconclusive(String),
    /// The reference interpreter says the kernel's verifier would reject the program.
    Invalid(String),
}

impl Verdict {
    /// `agree`, `mismatch`, `inconclusive` or `invalid`.
    pub const fn name(&self) -> &'static str {
        match self {
            Verdict::Agree => "agree",
            Verdict::Mismatch(_) => "mismatch",
            Verdict::Inconclusive(_) => "inconclusive",
            Verdict::Invalid(_) => "invalid",
        }
    }
}

/// Renders a helper trace as `name(args) = ret; ...`, or `none`.
pub fn helper_trace(calls: &[HelperCall]) -> String {
    if calls.is_empty() {
        return "none".into();
    }
    calls.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("; ")
}

/// Renders context bytes as hex, in 8-byte groups.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(8)
        .map(|c| c.iter().map(|b| format!("{b:02x}")).collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Names the engine whose value is unlike every other's, if exactly one is; with two
/// engines, the one that is not the reference.
fn odd_one_out(values: &[(&'static str, String)]) -> Option<&'static str> {
    if values.len() == 2 {
        return values.iter().find(|(e, _)| *e != "reference").map(|(e, _)| *e);
    }
    let alone: Vec<_> =
        values.iter().filter(|(_, v)| values.iter().filter(|(_, w)| w == v).count() == 1).collect();
    let others_agree = |odd: &str| {
        let rest: Vec<_> = values.iter().filter(|(e, _)| *e != odd).collect();
        rest.windows(2).all(|w| w[0].1 == w[1].1)
    };
    match alone.as_slice() {
        [(e, _)] if others_agree(e) => Some(e),
        _ => None,
    }
}

fn explain(field: Field, values: &[(&'static str, String)], odd: Option<&'static str>) -> String {
    match odd {
        Some(odd) => {
            let theirs: Vec<_> = values.iter().filter(|(e, _)| *e != odd).collect();
            let mine = values.iter().find(|(e, _)| *e == odd).map(|(_, v)| v.as_str()).unwrap_or("");
            let names: Vec<_> = theirs.iter().map(|(e, _)| *e).collect();
            format!(
                "{odd} is the odd one out: {} {} {field} = {}, {odd} says {mine}",
                names.join(" and "),
                if names.len() > 1 { "agree on" } else { "says" },
                theirs.first().map(|(_, v)| v.as_str()).unwrap_or("")
            )
        }
        None => {
            let all: Vec<_> = values.iter().map(|(e, v)| format!("{e} says {v}")).collect();
            format!("no majority on {field}: {}", all.join(", "))
        }
    }
}

/// The difference in `field`, if the engines' raw values are not all equal; values are
/// rendered only then, so that agreeing runs (nearly all of them) cost no formatting.
fn differ<T: PartialEq>(
    field: Field,
    values: &[(&'static str, T)],
    render: impl Fn(&T) -> String,
) -> Option<Difference> {
    if values.windows(2).all(|w| w[0].1 == w[1].1) {
        return None;
    }
    let values: Vec<(&'static str, String)> = values.iter().map(|(e, v)| (*e, render(v))).collect();
    let odd = odd_one_out(&values);
    let explanation = explain(field, &values, odd);
    Some(Difference { field, values, odd_one_out: odd, explanation })
}

/// Compares the results of several engines on one program and input.
pub fn compare(results: &[EngineResult]) -> Verdict {
    let ran: Vec<(&'static str, &Outcome)> = results
        .iter()
        .filter_map(|r| match &r.result {
            RunResult::Ran(o) => Some((r.engine, o)),
            RunResult::CannotJudge(_) | RunResult::Rejected(_) => None,
        })
        .collect();
    for (e, o) in &ran {
        if let Err(f) = &o.result {
            if f.kind == FaultKind::Budget {
                return Verdict::Inconclusive(format!("{e} ran out of budget: {f}"));
            }
        }
    }
    let reference = ran.iter().find(|(e, _)| *e == "reference").map(|(_, o)| *o);
    if let Some(Err(f)) = reference.map(|o| &o.result) {
        return Verdict::Invalid(format!(
            "the reference interpreter stopped with {f}: the kernel's verifier would reject this program"
        ));
    }
    if let Some(RunResult::CannotJudge(why)) =
        results.iter().find(|r| r.engine == "reference").map(|r| &r.result)
    {
        return Verdict::Inconclusive(format!("the reference interpreter cannot judge this program: {why}"));
    }
    if ran.len() < 2 {
        return Verdict::Inconclusive("fewer than two engines could judge this program".into());
    }
    let mut diffs = Vec::new();
    let error: Vec<_> = ran.iter().map(|(e, o)| (*e, o.result.as_ref().err().map(|f| f.kind))).collect();
    diffs.extend(differ(Field::Error, &error, |k| k.map_or("none", FaultKind::name).to_string()));
    let finished: Vec<_> = ran.iter().filter(|(_, o)| o.result.is_ok()).collect();
    if !reference.is_some_and(|o| o.r0_is_address) {
        let r0 = |(e, o): &&(&'static str, &Outcome)| (*e, o.result.as_ref().copied().unwrap_or(0));
        let full: Vec<_> = finished.iter().filter(|(_, o)| o.observes.r0_bits == 64).map(r0).collect();
        if full.len() == finished.len() {
            diffs.extend(differ(Field::R0, &full, |v| format!("{v:#x}")));
        } else {
            // Some engine sees only R0's low 32 bits: all of them are compared on those,
            // and the engines that see 64 bits on all 64.
            let low: Vec<_> = finished.iter().map(r0).map(|(e, v)| (e, v as u32)).collect();
            diffs.extend(differ(Field::R0, &low, |v| format!("{v:#x} (low 32 bits)")));
            if full.len() >= 2 && !diffs.iter().any(|d| d.field == Field::R0) {
                diffs.extend(differ(Field::R0, &full, |v| format!("{v:#x}")));
            }
        }
    }
    let ctx: Vec<_> = finished.iter().map(|(e, o)| (*e, o.ctx.as_slice())).collect();
    diffs.extend(differ(Field::Ctx, &ctx, |c| hex(c)));
    let tail_calls: Vec<_> =
        finished.iter().filter(|(_, o)| o.observes.tail_calls).map(|(e, o)| (*e, o.tail_calls)).collect();
    diffs.extend(differ(Field::TailCalls, &tail_calls, u32::to_string));
    let helpers: Vec<_> = finished
        .iter()
        .filter(|(_, o)| o.observes.helper_calls)
        .map(|(e, o)| (*e, o.helper_calls.as_slice()))
        .collect();
    diffs.extend(differ(Field::Helpers, &helpers, |c| helper_trace(c)));
    let arrays: Vec<_> = finished.iter().map(|(e, o)| (*e, o.arrays.as_slice())).collect();
    diffs
        .extend(differ(Field::Arrays, &arrays, |a| a.iter().map(|v| hex(v)).collect::<Vec<_>>().join(" | ")));
    // The attachments' runs among every engine that counts them; then, if those agree, the
    // return values too among the engines that see them, except where the reference says
    // one was an address.
    let hidden: Vec<bool> =
        reference.map(|o| o.attachments.iter().map(|a| a.address_returns).collect()).unwrap_or_default();
    let seen = |returns: bool| -> Vec<(&'static str, Vec<Seen<'_>>)> {
        finished
            .iter()
            .filter(|(_, o)| o.observes.attachments && (!returns || o.observes.attachment_returns))
            .map(|(e, o)| {
                let each = o.attachments.iter().enumerate().map(|(k, a)| {
                    let shown = returns && !hidden.get(k).copied().unwrap_or(false);
                    (a.runs, shown.then_some(a.returns.as_slice()))
                });
                (*e, each.collect())
            })
            .collect()
    };
    match differ(Field::Attachments, &seen(false), |each| attachments_seen(each)) {
        Some(d) => diffs.push(d),
        None => diffs.extend(differ(Field::Attachments, &seen(true), |each| attachments_seen(each))),
    }
    if diffs.is_empty() {
        Verdict::Agree
    } else {
        Verdict::Mismatch(diffs)
    }
}

/// What one attachment saw, as compared: its runs, and its return values where they are
/// compared.
pub type Seen<'a> = (u32, Option<&'a [u64]>);

/// What the attachments saw, one `#k: N runs, returned [...]` per attachment.
pub fn attachments_seen(each: &[Seen<'_>]) -> String {
    let one = |(k, (runs, returns)): (usize, &Seen<'_>)| match returns {
        Some(r) if !r.is_empty() => {
            let values: Vec<String> = r.iter().map(|v| format!("{:#x}", v)).collect();
            format!("#{k}: {runs} runs, returned [{}]", values.join(", "))
        }
        _ => format!("#{k}: {runs} runs"),
    };
    each.iter().enumerate().map(one).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpf::Fault;

    fn ok(engine: &'static str, r0: u64) -> EngineResult {
        EngineResult { engine, result: RunResult::Ran(Outcome::new(Ok(r0), vec![], false)) }
    }

    fn fault(engine: &'static str, kind: FaultKind) -> EngineResult {
        EngineResult {
            engine,
            result: RunResult::Ran(Outcome::new(
                Err(Fault { kind, pc: Some(3), detail: "x".into() }),
                vec![],
                false,
            )),
        }
    }

    #[test]
    fn agreement() {
        assert_eq!(compare(&[ok("reference", 1), ok("rbpf", 1), ok("jit", 1)]), Verdict::Agree);
    }

    #[test]
    fn the_lone_value_is_the_odd_one_out() {
        let Verdict::Mismatch(d) = compare(&[ok("reference", 1), ok("rbpf", 1), ok("jit", 2)]) else {
            panic!()
        };
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].field, d[0].odd_one_out), (Field::R0, Some("jit")));
        assert_eq!(
            d[0].explanation,
            "jit is the odd one out: reference and rbpf agree on r0 = 0x1, jit says 0x2"
        );
    }

    #[test]
    fn with_two_engines_the_non_reference_one_is_blamed() {
        let cj = EngineResult { engine: "rbpf", result: RunResult::CannotJudge("sdiv".into()) };
        let Verdict::Mismatch(d) = compare(&[ok("reference", 1), cj, ok("jit", 2)]) else { panic!() };
        assert_eq!(d[0].odd_one_out, Some("jit"));
    }

    #[test]
    fn three_different_values_have_no_odd_one() {
        let Verdict::Mismatch(d) = compare(&[ok("reference", 1), ok("rbpf", 2), ok("jit", 3)]) else {
            panic!()
        };
        assert_eq!(d[0].odd_one_out, None);
    }

    #[test]
    fn a_fault_on_one_engine_alone_is_a_mismatch() {
        let Verdict::Mismatch(d) =
            compare(&[ok("reference", 1), ok("rbpf", 1), fault("jit", FaultKind::MemoryAccess)])
        else {
            panic!()
        };
        assert_eq!(d[0].field, Field::Error);
        assert_eq!(d[0].odd_one_out, Some("jit"));
    }

    #[test]
    fn budget_is_inconclusive_and_reference_faults_are_invalid() {
        assert!(matches!(
            compare(&[ok("reference", 1), fault("jit", FaultKind::Budget)]),
            Verdict::Inconclusive(_)
        ));
        assert!(matches!(
            compare(&[fault("reference", FaultKind::MemoryAccess), ok("jit", 1)]),
            Verdict::Invalid(_)
        ));
    }

    #[test]
    fn tail_call_counts_and_helper_traces_are_compared() {
        let mut a = ok("reference", 1);
        let mut b = ok("jit", 1);
        if let (RunResult::Ran(x), RunResult::Ran(y)) = (&mut a.result, &mut b.result) {
            x.tail_calls = 33;
            y.tail_calls = 32;
        }
        let Verdict::Mismatch(d) = compare(&[a, b]) else { panic!() };
        assert_eq!((d[0].field, d[0].odd_one_out), (Field::TailCalls, Some("jit")));
        assert_eq!(d[0].explanation, "jit is the odd one out: reference says tail_calls = 33, jit says 32");
    }

    #[test]
    fn attachment_runs_are_compared_with_every_engine_and_returns_with_those_that_see_them() {
        let seen = |engine, runs: u32, returns: Vec<u64>, sees_returns: bool| {
            let mut r = ok(engine, 1);
            if let RunResult::Ran(o) = &mut r.result {
                o.attachments = vec![bpf::AttachmentSeen { runs, returns, address_returns: false }];
                o.observes.attachment_returns = sees_returns;
            }
            r
        };
        // A kernel counts runs only: agreeing runs are agreement.
        let agree = [
            seen("reference", 2, vec![1, 1], true),
            seen("jit", 2, vec![1, 1], true),
            seen("kernel-jit", 2, vec![], false),
        ];
        assert_eq!(compare(&agree), Verdict::Agree);
        let Verdict::Mismatch(d) = compare(&[
            seen("reference", 2, vec![1, 1], true),
            seen("jit", 2, vec![1, 1], true),
            seen("kernel-jit", 3, vec![], false),
        ]) else {
            panic!("a different run count is a mismatch")
        };
        assert_eq!((d[0].field, d[0].odd_one_out), (Field::Attachments, Some("kernel-jit")));
        let Verdict::Mismatch(d) = compare(&[
            seen("reference", 2, vec![1, 1], true),
            seen("jit", 2, vec![1, 7], true),
            seen("kernel-jit", 2, vec![], false),
        ]) else {
            panic!("a different return value is a mismatch")
        };
        assert_eq!((d[0].field, d[0].odd_one_out), (Field::Attachments, Some("jit")));
        // A return value the reference derived from an address is not compared.
        let mut address = seen("reference", 2, vec![1, 1], true);
        if let RunResult::Ran(o) = &mut address.result {
            o.attachments[0].address_returns = true;
        }
        assert_eq!(compare(&[address, seen("jit", 2, vec![1, 7], true)]), Verdict::Agree);
    }

    #[test]
    fn fields_an_engine_does_not_observe_are_not_compared_with_it() {
        // A kernel-like engine: R0's low 32 bits, no tail-call count, no helper trace.
        let partial = |engine, r0: u64, tail_calls| {
            let mut r = ok(engine, r0 & 0xffff_ffff);
            if let RunResult::Ran(o) = &mut r.result {
                o.observes = bpf::Observes {
                    r0_bits: 32,
                    tail_calls: false,
                    helper_calls: false,
                    attachments: false,
                    attachment_returns: false,
                };
                o.tail_calls = tail_calls;
            }
            r
        };
        let full = |engine, r0, tail_calls| {
            let mut r = ok(engine, r0);
            if let RunResult::Ran(o) = &mut r.result {
                o.tail_calls = tail_calls;
            }
            r
        };
        let same =
            [full("reference", 0x1_0000_0002, 3), full("jit", 0x1_0000_0002, 3), partial("kernel", 0x2, 0)];
        assert_eq!(compare(&same), Verdict::Agree);
        // The low halves differ: the kernel engine is the odd one out.
        let Verdict::Mismatch(d) = compare(&[
            full("reference", 0x1_0000_0002, 3),
            full("jit", 0x1_0000_0002, 3),
            partial("kernel", 0x5, 3),
        ]) else {
            panic!()
        };
        assert_eq!((d.len(), d[0].field, d[0].odd_one_out), (1, Field::R0, Some("kernel")));
        assert!(d[0].explanation.contains("(low 32 bits)"), "{}", d[0].explanation);
        // The upper halves differ between the engines that see them.
        let Verdict::Mismatch(d) =
            compare(&[full("reference", 0x1_0000_0002, 3), full("jit", 0x2, 3), partial("kernel", 0x2, 3)])
        else {
            panic!()
        };
        assert_eq!((d[0].field, d[0].odd_one_out), (Field::R0, Some("jit")));
    }

    #[test]
    fn addresses_in_r0_are_not_compared() {
        let mut r = ok("reference", 0x2000_0200);
        if let RunResult::Ran(o) = &mut r.result {
            o.r0_is_address = true;
        }
        assert_eq!(compare(&[r, ok("jit", 0x3000_0000)]), Verdict::Agree);
    }
}
