//! The `jitdiff` binary end to end: outcomes, JSON shape, exit statuses, and the errors
//! bad input gets.

use std::path::PathBuf;
use std::process::Command;

/// A test's own scratch folder, `jitdiff-cli-PID/TEST`, removed when its thread ends
/// (passed or failed), with the process's folder once it is empty.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

thread_local! {
    static SCRATCH: Scratch = {
        let test = std::thread::current().name().unwrap_or("main").replace("::", "-");
        Scratch(std::env::temp_dir().join(format!("jitdiff-cli-{}", std::process::id())).join(test))
    };
}

fn dir() -> PathBuf {
    let d = SCRATCH.with(|s| s.0.clone());
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn jitdiff(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jitdiff")).args(args).output().expect("jitdiff runs");
    (
        out.status.code().expect("exit status"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn agreeing_program_exits_0_with_stable_json() {
    let p = write("ok.s", b"r0 = 0x7fffffff ll\nw0 += 1\nexit\n");
    let (code, out, err) = jitdiff(&["run", "--json", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["verdict"], "agree");
    assert_eq!(v["file"], p.to_str().unwrap());
    for e in ["reference", "rbpf", "jit"] {
        // 0x7fffffff + 1 in 32 bits, zero-extended.
        assert_eq!(v["engines"][e]["r0"], 0x8000_0000u64, "{e}: {out}");
        assert_eq!(v["engines"][e]["error"], serde_json::Value::Null);
    }
}

#[test]
fn rbpf_says_why_it_cannot_judge() {
    let p = write("sdiv.s", b"r0 = -7\nr1 = 2\nr0 s/= r1\nexit\n");
    let (code, out, _) = jitdiff(&["run", "--json", p.to_str().unwrap()]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["engines"]["rbpf"]["cannot_judge"].as_str().unwrap().contains("pc 2"), "{out}");
    // Signed division truncates toward zero: -7 s/ 2 = -3.
    assert_eq!(v["engines"]["jit"]["r0"], (-3i64) as u64);
}

#[test]
fn bad_input_exits_2_naming_the_file_and_the_problem() {
    let truncated = write("trunc.bin", &[0xb7, 0, 0, 0, 1, 0, 0, 0, 0x95, 0, 0]);
    let unknown = write("unknown.s", b"r0 = 1\nfrob r0\nexit\n");
    let far = write("far.s", b"r0 = 1\ngoto +5\nexit\n");
    let mut elf = std::fs::read("/proc/self/exe").unwrap();
    elf.truncate(4096);
    let not_bpf = write("host.o", &elf);
    for (p, expect) in [
        (&truncated, "truncated"),
        (&unknown, "unknown mnemonic \"frob\""),
        (&far, "out of range"),
        (&not_bpf, "not a BPF ELF"),
    ] {
        let (code, _, err) = jitdiff(&["run", p.to_str().unwrap()]);
        assert_eq!(code, 2, "{}: {err}", p.display());
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(err.contains(name) && err.contains(expect), "{name}: expected {expect:?} in {err:?}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let (code, _, err) = jitdiff(&["run", dir().join("missing.s").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.s"), "{err}");
}

#[test]
fn invalid_programs_exit_2_with_the_validator_or_reference_reason() {
    let p = write("oob.s", b"r0 = *(u64 *)(r10 + 8)\nexit\n");
    let (code, _, err) = jitdiff(&["run", p.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("oob.s: program entry, pc 0") && err.contains("the validator rejects it"), "{err}");
    // Past the validator, the reference interpreter finds the out-of-bounds load.
    let (code, out, _) = jitdiff(&["run", "--no-validate", p.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(out.contains("invalid program") && out.contains("verifier would reject"), "{out}");
}

#[test]
fn jit_listing_interleaves_bpf_and_rv64() {
    let p = write("list.s", b"w0 = 1\nexit\n");
    let (code, out, err) = jitdiff(&["jit", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("; function 0: prologue") && out.contains("; function 0: epilogue"), "{out}");
    assert!(out.contains("w0 = 1"), "{out}");
    // mov32 of 1 materialises the constant in a5 (R0).
    assert!(out.contains("addi a5, zero, 1"), "{out}");
    assert!(out.contains("sext.w a0, a5") && out.contains("ret"), "{out}");
}

#[test]
fn minimize_shrinks_an_injected_bug_and_never_overwrites() {
    // R0's upper half must be zero after a 32-bit add: the injected bug leaves it set.
    let input = write(
        "zext-finding.s",
        b".ctx 8\nr6 = r1\nr2 = 5\nr3 = *(u32 *)(r6 + 0)\nr0 = -1\nw0 += 0\nr3 += r2\n*(u32 *)(r6 + 4) = r3\nexit\n",
    );
    let out = dir().join("zext-finding.min.s");
    let _ = std::fs::remove_file(&out);
    let (code, stdout, stderr) =
        jitdiff(&["minimize", input.to_str().unwrap(), "--inject", "alu32-arith-no-zext"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("8 -> 3 instructions (value:jit:ok@alu32)"), "{stdout}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("r0 = -1\nw0 += 0\nexit\n"), "{text}");
    // A second run refuses to overwrite the output.
    let (code, _, stderr) =
        jitdiff(&["minimize", input.to_str().unwrap(), "--inject", "alu32-arith-no-zext"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("exists; name another output with -o"), "{stderr}");
    // Without the bug there is nothing to minimise.
    let other = dir().join("zext-other.min.s");
    let _ = std::fs::remove_file(&other);
    let (code, _, stderr) = jitdiff(&["minimize", input.to_str().unwrap(), "-o", other.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("nothing to minimise"), "{stderr}");
    assert!(!other.exists());
}

#[test]
fn findings_replay_with_the_configuration_they_record() {
    // 0x7fffffff + 1 in 32 bits is 0x80000000, zero-extended; the alu32-arith-no-zext
    // slip leaves it sign-extended (0xffffffff80000000): the JIT is the odd one out.
    let set = "r0 = 0x7fffffff ll\nw0 += 1\nexit\n";
    let line = "; jitdiff config: engines=reference,jit scheme=register semantics=global empty-slot=free \
                inject=alu32-arith-no-zext inputs=4 seed=3";
    let folder = dir().join("recorded");
    std::fs::create_dir_all(&folder).unwrap();
    let p = folder.join("finding-0001.s");
    std::fs::write(&p, format!("{line}\n{set}")).unwrap();
    let path = p.to_str().unwrap();
    let (code, out, err) = jitdiff(&["run", path]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("jit is the odd one out") && !out.contains("rbpf"), "{out}");
    // An option given on the command line replaces its part of the record.
    let (code, out, _) = jitdiff(&["run", "--inject", "tcc-off-by-one", path]);
    assert_eq!(code, 0, "{out}");
    // minimize and triage replay it the same way.
    let min = dir().join("recorded.min.s");
    let (code, _, err) = jitdiff(&["minimize", path, "-o", min.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read_to_string(&min).unwrap().contains("inject=alu32-arith-no-zext"));
    let report = dir().join("recorded-triage");
    let (code, out, err) = jitdiff(&["triage", folder.to_str().unwrap(), "-o", report.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 inputs, 1 groups, 0 skipped"), "{out}");
    // Without the slip it no longer reproduces, and triage says with what it tried.
    let (_, out, err) = jitdiff(&[
        "triage",
        folder.to_str().unwrap(),
        "--inject",
        "tcc-off-by-one",
        "-o",
        dir().join("recorded-triage-2").to_str().unwrap(),
    ]);
    assert!(out.contains("0 groups, 1 skipped"), "{out}");
    assert!(err.contains("engines agree on it") && err.contains("injected tcc-off-by-one"), "{err}");
}

#[test]
fn a_malformed_configuration_line_is_bad_input() {
    let p = write("badconfig.s", b"; jitdiff config: scheme=sideways\nr0 = 0\nexit\n");
    let (code, _, err) = jitdiff(&["run", p.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("badconfig.s") && err.contains("config field scheme"), "{err}");
}

/// On a pipe, progress is plain lines (no carriage returns), the first at once; `--quiet`
/// silences it; the summary on stdout is the same either way.
#[test]
fn progress_on_a_pipe_is_plain_lines_and_quiet_silences_it() {
    let artifacts = dir().join("progress-artifacts");
    let corpus = dir().join("progress-corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    let (a, c) = (artifacts.to_str().unwrap(), corpus.to_str().unwrap());
    let (code, out, err) =
        jitdiff(&["fuzz", "--runs", "3000", "--seed", "5", "--artifacts", a, "--corpus", c]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains('\r'), "{err:?}");
    assert!(err.lines().next().is_some_and(|l| l.contains("runs") && l.contains("findings 0")), "{err:?}");
    let (code, quiet_out, quiet_err) =
        jitdiff(&["fuzz", "-q", "--runs", "3000", "--seed", "5", "--artifacts", a, "--corpus", c]);
    assert_eq!(code, 0);
    assert_eq!(quiet_err, "");
    // The same summary but for the measured times and rates.
    let shape = |s: &str| s.split(|c: char| c.is_ascii_digit() || c == '.').collect::<String>();
    assert!(out.starts_with("3000 runs in "), "{out}");
    assert_eq!(shape(&out), shape(&quiet_out));
}
