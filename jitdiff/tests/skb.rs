//! tc and socket-filter programs as clang builds them (`bpf/tests/fixtures/skb.c`): a
//! `struct __sk_buff` over jitdiff's default packet on our engines and on the kernels' JIT
//! and interpreter. Expected values are worked out from the kernel's test run (Linux 6.12
//! and 7.3, `net/bpf/test_run.c`: the loopback device, `eth_type_trans`, what
//! `convert_skb_to___skb` writes back), as the fixture's comment explains.

use bpf::load::load_set_bytes;
use bpf::{Input, ProgType, ProgramSet, RunResult};
use compare::engines::Engines;
use compare::{compare, Verdict};

mod common;

fn fixture(name: &str) -> ProgramSet {
    let path = format!("{}/../bpf/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    load_set_bytes(name, &bytes).unwrap_or_else(|e| panic!("{e}")).set
}

/// The 192-byte `ctx_out` with these 4-byte fields set (offset, value), then the packet.
fn observed(fields: &[(usize, u32)], packet: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 192];
    for &(at, v) in fields {
        out[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(packet);
    out
}

/// What each program gives on the default packet: R0 and the context and packet after.
fn expected(prog_type: ProgType) -> (u64, Vec<u8>) {
    let packet = prog_type.default_input();
    // ifindex (40) is the loopback's, wire_len (160) the length the program sees.
    match prog_type {
        ProgType::Tc => {
            // mark (8) = len * 3, cb[1] (52) = protocol; the first byte flipped.
            let mut after = packet.clone();
            after[0] ^= 0xff;
            (1213, observed(&[(8, 192), (40, 1), (52, 8), (160, 64)], &after))
        }
        _ => {
            // cb[0] (48) = len, cb[2] (56) = hash + 7; the Ethernet header comes back zeroed.
            let mut after = packet.clone();
            after[..14].fill(0);
            (108_050, observed(&[(40, 1), (48, 50), (56, 7), (160, 50)], &after))
        }
    }
}

/// Runs both fixtures on `engines`, checks every engine that ran; how many ran each.
fn check(engines: &mut Engines) -> usize {
    let mut ran = 0;
    for (name, prog_type) in [("skb_tc.o", ProgType::Tc), ("skb_socket.o", ProgType::Socket)] {
        let set = fixture(name);
        assert_eq!(set.prog_type(), prog_type);
        let (r0, ctx) = expected(prog_type);
        let results = engines.run_set(&set, &Input::with_ctx(prog_type.default_input()));
        ran = 0;
        for r in &results {
            match &r.result {
                RunResult::Ran(o) => {
                    ran += 1;
                    assert_eq!(o.result, Ok(r0), "{name} on {}", r.engine);
                    assert_eq!(o.ctx, ctx, "{name} on {}", r.engine);
                }
                RunResult::CannotJudge(why) if r.engine == "rbpf" => {
                    assert!(why.contains("__sk_buff"), "{why}")
                }
                other => panic!("{name} on {}: {other:?}", r.engine),
            }
        }
        assert_eq!(compare(&results), Verdict::Agree, "{name}");
    }
    ran
}

#[test]
fn tc_and_socket_programs_on_our_engines() {
    assert_eq!(check(&mut Engines::new(&["reference", "rbpf", "jit"])), 2);
}

#[test]
fn tc_and_socket_programs_on_the_kernels() {
    for kernel in ["6.12", "7.3"] {
        let Some(mut engines) = common::kernel_engines(kernel, &["reference", "kernel-jit", "kernel-interp"])
        else {
            continue;
        };
        assert_eq!(check(&mut engines), 3, "Linux {kernel}");
    }
}

/// A packet the kernel's test run would refuse is refused before any engine runs.
#[test]
fn a_packet_too_short_is_bad_input() {
    let dir = std::env::temp_dir().join(format!("jitdiff-skb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("short.s");
    std::fs::write(&file, ".progtype tc\n.ctx hex 0102\nr0 = 0\nexit\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jitdiff"))
        .args(["run", file.to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("short.s: line 2") && stderr.contains("not 2 bytes"), "{stderr}");
}
