//! Guests never outlive jitdiff: killed with SIGKILL while its kernel engines work, its
//! qemu processes die with it, and the next run removes the folder it could not.

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
    let corpus = dir.join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    Command::new(env!("CARGO_BIN_EXE_jitdiff"))
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
    if let Err(e) = kernel::KernelImage::cached("7.3") {
        println!("skipped: no kernel image for 7.3 ({e})");
        return None;
    }
    Some(fuzz(dir, &[&["--kernel", "7.3"], args].concat()))
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
    let folder = std::env::temp_dir().join(format!("jitdiff-{pid}"));
    assert!(folder.exists(), "a killed process cannot remove its own folder");
    // The next run with kernel engines removes it.
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
    if let Err(e) = kernel::KernelImage::cached("7.3") {
        println!("skipped: no kernel image for 7.3 ({e})");
        return;
    }
    let dir = std::env::temp_dir().join(format!("jitdiff-restart-{}", std::process::id()));
    let corpus = dir.join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    let fuzz = Command::new(env!("CARGO_BIN_EXE_jitdiff"))
        .args([
            "fuzz",
            "-q",
            "--json",
            "--engines",
            "reference,kernel-jit",
            "--kernel",
            "7.3",
            "--time",
            "10",
        ])
        .arg("--artifacts")
        .arg(dir.join("artifacts"))
        .arg("--corpus")
        .arg(&corpus)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let qemu = loop {
        let q = children(fuzz.id()).into_iter().find(|(_, c)| c.starts_with("qemu")).map(|(p, _)| p);
        if q.is_some() || start.elapsed() > Duration::from_secs(30) {
            break q.expect("a guest starts");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_secs(3));
    assert!(Command::new("kill").args(["-KILL", &qemu.to_string()]).status().unwrap().success());
    let out = fuzz.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let summary: serde_json::Value =
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(summary["guest_restarts"]["died"], 1, "{summary}");
    assert!(summary["kernel_ran"].as_u64().is_some_and(|n| n > 0), "{summary}");
    std::fs::remove_dir_all(&dir).unwrap();
}
