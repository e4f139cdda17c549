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

#[test]
fn guests_die_with_jitdiff_and_the_next_run_removes_its_folder() {
    if let Err(e) = kernel::KernelImage::cached("7.3") {
        println!("skipped: no kernel image for 7.3 ({e})");
        return;
    }
    let dir = std::env::temp_dir().join(format!("jitdiff-reliability-{}", std::process::id()));
    let corpus = dir.join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    let bin = env!("CARGO_BIN_EXE_jitdiff");
    let engines = "reference,kernel-jit,kernel-interp";
    let mut fuzz = Command::new(bin)
        .args(["fuzz", "-q", "--engines", engines, "--kernel", "7.3", "--time", "120"])
        .arg("--artifacts")
        .arg(dir.join("artifacts"))
        .arg("--corpus")
        .arg(&corpus)
        .spawn()
        .expect("jitdiff starts");
    let pid = fuzz.id();
    let start = Instant::now();
    let qemus = loop {
        let q: Vec<u32> =
            children(pid).into_iter().filter(|(_, c)| c.starts_with("qemu")).map(|(p, _)| p).collect();
        if q.len() >= 2 || start.elapsed() > Duration::from_secs(60) {
            break q;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
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
