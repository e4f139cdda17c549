//! How fuzz targets report a finding: one panicking function per mismatch class, each
//! `#[inline(never)]` with a stable one-line message, so that libFuzzer and ClusterFuzz,
//! which group crashes by stack frames, put each class in its own group.

use compare::{Field, Verdict};

macro_rules! class {
    ($name:ident, $what:literal) => {
        #[doc = concat!("Panics with the signature `", $what, "` and the details.")]
        #[inline(never)]
        #[cold]
        pub fn $name(details: &str) -> ! {
            panic!(concat!("jitdiff: ", $what, "\n{}"), details)
        }
    };
}

class!(mismatch_error, "mismatch in the fault class");
class!(mismatch_r0, "mismatch in r0");
class!(mismatch_ctx, "mismatch in the context memory");
class!(mismatch_tail_calls, "mismatch in the tail-call count");
class!(mismatch_helpers, "mismatch in the helper-call trace");
class!(mismatch_arrays, "mismatch in the array maps");
class!(mismatch_attachments, "mismatch in what the fentry/fexit programs saw");
class!(generator_invalid, "the generator made a program the reference rejects");

/// Compares `results` (of `set` on `input`) and panics as [`panic_on_finding`] does,
/// with the engines' outcomes and the set as text for details: what a fuzz target does
/// after running a set.
pub fn panic_on_mismatch(results: &[compare::EngineResult], set: &bpf::ProgramSet, input: &bpf::Input) {
    let verdict = compare::compare(results);
    panic_on_finding(&verdict, || {
        let report = crate::present::to_text("input", set, results, &verdict);
        format!("{report}\n{}", bpf::asm::print_set(set, Some(input)))
    });
}

/// Panics from the function of the first differing field when the verdict is a
/// mismatch, or from [`generator_invalid`] when it says the program is invalid;
/// returns otherwise. `details` makes the text report, only when there is a finding.
pub fn panic_on_finding(verdict: &Verdict, details: impl FnOnce() -> String) {
    if matches!(verdict, Verdict::Agree | Verdict::Inconclusive(_)) {
        return;
    }
    let details = &details();
    match verdict {
        Verdict::Mismatch(diffs) => match diffs.first().map(|d| d.field) {
            Some(Field::Error) => mismatch_error(details),
            Some(Field::R0) => mismatch_r0(details),
            Some(Field::Ctx) => mismatch_ctx(details),
            Some(Field::TailCalls) => mismatch_tail_calls(details),
            Some(Field::Helpers) => mismatch_helpers(details),
            Some(Field::Attachments) => mismatch_attachments(details),
            Some(Field::Arrays) | None => mismatch_arrays(details),
        },
        Verdict::Invalid(_) => generator_invalid(details),
        Verdict::Agree | Verdict::Inconclusive(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_has_its_own_message() {
        let r = std::panic::catch_unwind(|| mismatch_tail_calls("x"));
        let msg = r.unwrap_err().downcast::<String>().unwrap();
        assert_eq!(msg.lines().next(), Some("jitdiff: mismatch in the tail-call count"));
        panic_on_finding(&Verdict::Agree, || unreachable!("no report is made when engines agree"));
        panic_on_finding(&Verdict::Inconclusive("budget".into()), String::new);
        let r = std::panic::catch_unwind(|| panic_on_finding(&Verdict::Invalid("x".into()), || "y".into()));
        let msg = r.unwrap_err().downcast::<String>().unwrap();
        assert_eq!(*msg, "jitdiff: the generator made a program the reference rejects\ny");
    }

    #[test]
    fn a_mismatch_panics_with_its_class_and_the_set() {
        use bpf::{Outcome, RunResult};
        let set = bpf::asm::parse_set("r0 = 1\nexit\n").unwrap().set;
        let ran = |engine, r0| compare::EngineResult {
            engine,
            result: RunResult::Ran(Outcome::new(Ok(r0), vec![], false)),
        };
        let input = bpf::Input::none();
        panic_on_mismatch(&[ran("reference", 1), ran("jit", 1)], &set, &input);
        let r = std::panic::catch_unwind(|| {
            panic_on_mismatch(&[ran("reference", 1), ran("jit", 2)], &set, &input)
        });
        let msg = r.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.starts_with("jitdiff: mismatch in r0\n"), "{msg}");
        assert!(msg.ends_with("r0 = 1\nexit\n"), "{msg}");
    }
}
