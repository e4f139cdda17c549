//! jitdiff as a scheduler or a user's harness runs it: killed with SIGKILL (its guests die
//! with it and leave no files; the next run removes a folder left by one killed at boot), interrupted (it ends with its summary, at
//! once even when a guest hangs), two at once in one folder (no finding lost), and with
//! guests that die, stop or answer garbage (each replaced and counted, the session goes
//! on).

use std::process::Command;
use std::time::{Duration, Instant};

/// The processes whose parent is `pid`, with their command names.
fn children(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        // pid (comm) state ppid ...
        let Some(close) = stat.rfind(')') else { continue };
        let comm = stat[stat.find('(').map_or(0, |i| i + 1)..close].to_string();
        let ppid = stat[close + 1..].split_whitespace().nth(1).and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push((p, comm));
        }
    }
    out
}

/// Whether process `pid` still runs (a zombie waiting to be reaped does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 1..].trim_start().starts_with(['Z', 'X'])))
        .is_some_and(|dead| !dead)
}

/// `jitdiff fuzz -q ARGS`, its findings in `DIR/artifacts`, an empty corpus in
/// `DIR/corpus`, its stdout piped.
fn fuzz(dir: &std::path::Path, args: &[&str]) -> std::process::Child {
    fuzz_with_env(dir, args, &[])
}

/// [`fuzz`] with environment variables set.
fn fuzz_with_env(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> std::process::Child {
    let corpus = dir.join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    Command::new(env!("CARGO_BIN_EXE_jitdiff"))
        .envs(env.iter().copied())
        .args(["fuzz", "-q"])
        .args(args)
        .arg("--artifacts")
        .arg(dir.join("artifacts"))
        .arg("--corpus")
        .arg(&corpus)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("jitdiff starts")
}

/// [`fuzz`] on Linux 7.3 (ARGS name the engines); `None` (after saying so) without a 7.3
/// image.
fn fuzz_on_the_kernel(dir: &std::path::Path, args: &[&str]) -> Option<std::process::Child> {
    fuzz_on_the_kernel_with_env(dir, args, &[])
}

/// [`fuzz_on_the_kernel`] with environment variables set.
fn fuzz_on_the_kernel_with_env(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> Option<std::process::Child> {
    if let Err(e) = kernel::KernelImage::cached("7.3") {
        println!("skipped: no kernel image for 7.3 ({e})");
        return None;
    }
    Some(fuzz_with_env(dir, &[&["--kernel", "7.3"], args].concat(), env))
}

/// The JSON summary of a `--json` session that ended by itself with status 0.
fn summary_of(fuzz: std::process::Child) -> serde_json::Value {
    let out = fuzz.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The first qemu that `pid` starts other than those in `not` (at most a minute's wait).
fn new_guest_of(pid: u32, not: &[u32]) -> Option<u32> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        let q = children(pid).into_iter().find(|(p, c)| c.starts_with("qemu") && !not.contains(p));
        if let Some((p, _)) = q {
            return Some(p);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn signal(pid: u32, signal: &str) {
    assert!(Command::new("kill").args([signal, &pid.to_string()]).status().unwrap().success());
}

/// [`fuzz`] with an injected bug, so that it finds things.
fn fuzz_with_a_bug(dir: &std::path::Path, args: &[&str]) -> std::process::Child {
    fuzz(dir, &[&["--inject", "alu32-arith-no-zext"], args].concat())
}

/// The qemu processes `pid` started, once there are `n` (at most a minute's wait).
fn guests_of(pid: u32, n: usize) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let q: Vec<u32> =
            children(pid).into_iter().filter(|(_, c)| c.starts_with("qemu")).map(|(p, _)| p).collect();
        if q.len() >= n || start.elapsed() > Duration::from_secs(60) {
            return q;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn guests_die_with_jitdiff_and_the_next_run_removes_its_folder() {
    let dir = std::env::temp_dir().join(format!("jitdiff-reliability-{}", std::process::id()));
    let bin = env!("CARGO_BIN_EXE_jitdiff");
    let engines = "reference,kernel-jit,kernel-interp";
    let Some(mut fuzz) = fuzz_on_the_kernel(&dir, &["--engines", engines, "--time", "120"]) else { return };
    let pid = fuzz.id();
    let qemus = guests_of(pid, 2);
    assert_eq!(qemus.len(), 2, "the two guests of {engines}");
    // Let them work on sets, then kill jitdiff as a scheduler would.
    std::thread::sleep(Duration::from_secs(2));
    fuzz.kill().unwrap();
    fuzz.wait().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    for q in &qemus {
        assert!(!running(*q), "qemu {q} outlived jitdiff {pid}");
    }
    // Ready guests keep nothing on disk (they read their logs through open handles).
    let folder = std::env::temp_dir().join(format!("jitdiff-{pid}"));
    assert!(!folder.exists(), "{} is left behind", folder.display());
    // A process killed while its guests boot leaves its folder: the next run with kernel
    // engines removes it once that process is gone.
    std::fs::create_dir_all(folder.join("guest-0")).unwrap();
    std::fs::write(folder.join("guest-0/console.log"), "OpenSBI\n").unwrap();
    let program = dir.join("ok.s");
    std::fs::write(&program, "r0 = 1\nexit\n").unwrap();
    let out = Command::new(bin)
        .args(["run", "--engines", "reference,kernel-jit", "--kernel", "7.3"])
        .arg(&program)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!folder.exists(), "{} is left behind", folder.display());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Two fuzzers saving into one artifacts folder at once, finding the same things under the
/// same names (same seed, an injected bug): every finding of both is saved whole, none
/// overwritten.
#[test]
fn two_fuzzers_share_an_artifacts_folder_without_losing_a_finding() {
    let dir = std::env::temp_dir().join(format!("jitdiff-shared-{}", std::process::id()));
    let artifacts = dir.join("artifacts");
    let start = || fuzz_with_a_bug(&dir, &["--runs", "2000", "--seed", "2"]);
    let (a, b) = (start(), start());
    let findings = |c: std::process::Child| -> usize {
        let out = c.wait_with_output().unwrap();
        // Exit status 1: findings.
        assert_eq!(out.status.code(), Some(1));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // "... sets on N inputs each; K findings, ..."
        let k =
            text.split(" findings").next().and_then(|s| s.rsplit(' ').next()).and_then(|n| n.parse().ok());
        k.unwrap_or_else(|| panic!("no findings count in {text}"))
    };
    let reported = findings(a) + findings(b);
    assert!(reported >= 2, "the injected bug is found ({reported})");
    let names: Vec<String> = std::fs::read_dir(&artifacts)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let inputs: Vec<&String> = names.iter().filter(|n| n.ends_with(".input")).collect();
    assert_eq!(inputs.len(), reported, "one saved finding per finding reported: {names:?}");
    assert_eq!(names.len(), 2 * reported, "an .input and an .s each, nothing else: {names:?}");
    for input in inputs {
        let stem = artifacts.join(input.trim_end_matches(".input"));
        assert!(!std::fs::read(stem.with_extension("input")).unwrap().is_empty());
        bpf::load::load_set_file(&stem.with_extension("s")).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Ctrl-C (SIGINT) or SIGTERM ends a fuzzing session as its time limit would: its own exit
/// status, the summary printed, every saved finding whole.
#[test]
fn an_interrupted_session_ends_with_its_summary() {
    for signal in ["-INT", "-TERM"] {
        let dir = std::env::temp_dir().join(format!("jitdiff-interrupt-{}{signal}", std::process::id()));
        let artifacts = dir.join("artifacts");
        let fuzz = fuzz_with_a_bug(&dir, &["--time", "600"]);
        std::thread::sleep(Duration::from_millis(1500));
        let sent = Command::new("kill").arg(signal).arg(fuzz.id().to_string()).status().unwrap();
        assert!(sent.success());
        let out = fuzz.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        // Ended by itself (status 1: the injected bug's findings), not by the signal.
        assert_eq!(out.status.code(), Some(1), "{signal}: {text}");
        assert!(text.contains(" runs in ") && text.contains(" findings"), "{signal}: {text}");
        for e in std::fs::read_dir(&artifacts).into_iter().flatten().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "s") {
                bpf::load::load_set_file(&p).unwrap_or_else(|e| panic!("{e}"));
                assert!(std::fs::metadata(p.with_extension("input")).unwrap().len() > 0);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// A guest killed in the middle of a fuzzing session is replaced: the session goes on, the
/// runs it owed run again on the new guest, and the summary counts the restart.
#[test]
fn a_guest_killed_during_a_session_is_replaced_and_counted() {
    let dir = std::env::temp_dir().join(format!("jitdiff-restart-{}", std::process::id()));
    let args = ["--json", "--engines", "reference,kernel-jit", "--time", "10"];
    let Some(fuzz) = fuzz_on_the_kernel(&dir, &args) else { return };
    let qemu = new_guest_of(fuzz.id(), &[]).expect("a guest starts");
    std::thread::sleep(Duration::from_secs(3));
    signal(qemu, "-KILL");
    let summary = summary_of(fuzz);
    assert_eq!(summary["guest_restarts"]["died"], 1, "{summary}");
    assert!(summary["kernel_ran"].as_u64().is_some_and(|n| n > 0), "{summary}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A guest that stops (SIGSTOP: it neither dies nor answers) is given up when its budget
/// (here `JITDIFF_GUEST_TIMEOUT=3` seconds) runs out, killed and replaced; the session goes
/// on and counts the restart.
#[test]
fn a_stopped_guest_is_given_up_at_its_budget_and_replaced() {
    let dir = std::env::temp_dir().join(format!("jitdiff-stopped-{}", std::process::id()));
    let args = ["--json", "--engines", "reference,kernel-jit", "--time", "20"];
    let env = [("JITDIFF_GUEST_TIMEOUT", std::ffi::OsStr::new("3"))];
    let Some(fuzz) = fuzz_on_the_kernel_with_env(&dir, &args, &env) else { return };
    let pid = fuzz.id();
    let stopped = new_guest_of(pid, &[]).expect("a guest starts");
    std::thread::sleep(Duration::from_secs(3));
    signal(stopped, "-STOP");
    let replacement = new_guest_of(pid, &[stopped]);
    assert!(replacement.is_some(), "no guest replaced the stopped one");
    assert!(!running(stopped), "the stopped guest {stopped} was not killed");
    let summary = summary_of(fuzz);
    assert_eq!(summary["guest_restarts"]["stopped answering"], 1, "{summary}");
    assert!(summary["kernel_ran"].as_u64().is_some_and(|n| n > 0), "{summary}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A guest that answers garbage (here a stand-in for qemu, named by `JITDIFF_QEMU`, whose
/// first guest sends a well-formed ready frame and then 8 bytes that are no frame; later
/// ones are the real qemu) is killed and replaced; the session goes on and counts it.
#[test]
fn a_guest_answering_garbage_is_replaced_and_counted() {
    let dir = std::env::temp_dir().join(format!("jitdiff-garbage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The ready frame: magic, payload length, then version and the banner as a blob.
    let banner = b"fake guest";
    let mut ready = b"JDRY".to_vec();
    ready.extend((8 + banner.len() as u32).to_le_bytes());
    ready.extend(kernel::PROTOCOL_VERSION.to_le_bytes());
    ready.extend((banner.len() as u32).to_le_bytes());
    ready.extend(banner);
    let octal: String = ready.iter().map(|b| format!("\\{b:03o}")).collect();
    let stand_in = dir.join("qemu-stand-in");
    std::fs::write(
        &stand_in,
        format!(
            "#!/bin/sh\n\
             if [ -e \"$0.started\" ]; then exec qemu-system-riscv64 \"$@\"; fi\n\
             : > \"$0.started\"\n\
             printf '{octal}'\n\
             head -c 8 > /dev/null\n\
             printf 'GARBAGE!'\n\
             exec sleep 600\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&stand_in, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let args = ["--json", "--engines", "reference,kernel-jit", "--time", "10"];
    let env = [("JITDIFF_QEMU", stand_in.as_os_str())];
    let Some(fuzz) = fuzz_on_the_kernel_with_env(&dir, &args, &env) else { return };
    let summary = summary_of(fuzz);
    assert!(dir.join("qemu-stand-in.started").exists(), "the stand-in's garbage guest ran");
    assert_eq!(summary["guest_restarts"]["answered garbage"], 1, "{summary}");
    assert!(summary["kernel_ran"].as_u64().is_some_and(|n| n > 0), "{summary}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Ctrl-C while a kernel engine waits on a guest that does not answer (stopped, with the
/// default 30-second budget) ends the session at once, with its summary, and leaves no qemu.
#[test]
fn an_interrupt_does_not_wait_for_a_hung_guest() {
    let dir = std::env::temp_dir().join(format!("jitdiff-hung-{}", std::process::id()));
    let args = ["--json", "--engines", "reference,kernel-jit", "--time", "600"];
    let Some(fuzz) = fuzz_on_the_kernel(&dir, &args) else { return };
    let pid = fuzz.id();
    let qemu = new_guest_of(pid, &[]).expect("a guest starts");
    std::thread::sleep(Duration::from_secs(2));
    signal(qemu, "-STOP");
    std::thread::sleep(Duration::from_secs(1));
    let interrupted = Instant::now();
    signal(pid, "-INT");
    let summary = summary_of(fuzz);
    let took = interrupted.elapsed();
    // Well before the guest's 30-second budget would have ended the wait.
    assert!(took < Duration::from_secs(15), "the session ended {took:?} after Ctrl-C");
    assert!(summary["runs"].as_u64().is_some_and(|n| n > 0), "{summary}");
    assert!(summary["guest_restarts"].as_object().is_some_and(|r| r.is_empty()), "{summary}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!running(qemu), "qemu {qemu} outlived the session");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A malformed guest budget in the environment is a clear error (status 2) naming the
/// variable, before any guest boots.
#[test]
fn a_malformed_guest_timeout_is_refused() {
    for bad in ["abc", "0", "-3", "1e9"] {
        let out = Command::new(env!("CARGO_BIN_EXE_jitdiff"))
            .env("JITDIFF_GUEST_TIMEOUT", bad)
            .args(["fuzz", "--engines", "reference,kernel-jit", "--runs", "1"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("JITDIFF_GUEST_TIMEOUT") && err.contains(bad), "{bad}: {err}");
    }
}
