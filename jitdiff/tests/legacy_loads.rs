//! Legacy packet loads (`LD_ABS`/`LD_IND`) on every engine, against values worked out from
//! the kernel's semantics (Linux 6.12 and 7.3: `check_ld_abs` in kernel/bpf/verifier.c,
//! `bpf_gen_ld_abs` and `bpf_skb_load_helper_*` in net/core/filter.c, the test run's
//! `eth_type_trans` in net/bpf/test_run.c): the big-endian value at an offset from the
//! socket buffer's data (a tc program's Ethernet header, a socket filter's network
//! header), `SKF_NET_OFF` and `SKF_LL_OFF` counted from those headers, the offset the low
//! 32 bits of index plus immediate, and a load outside the packet returning 0 from the
//! function that made it.

use bpf::{Input, ProgramSet, RunResult};
use compare::engines::{Engines, Options};
use compare::{compare, Verdict};

mod common;

/// A 60-byte IPv4 frame: byte `i` is `i`, but for the EtherType 0x0800 at 12 and 13.
fn frame() -> Vec<u8> {
    let mut f: Vec<u8> = (0..60).collect();
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f
}

fn set(text: &str) -> ProgramSet {
    bpf::asm::parse_set(text).unwrap_or_else(|e| panic!("{e}\n{text}")).set
}

/// (what, program text, expected R0) on [`frame`].
fn cases() -> Vec<(&'static str, String, u64)> {
    let tc = |body: &str| format!(".progtype tc\nr6 = r1\n{body}\nexit\n");
    let socket = |body: &str| format!(".progtype socket\nr6 = r1\n{body}\nexit\n");
    vec![
        ("a tc program's offset 12 is the EtherType", tc("r0 = *(u16 *)skb[12]"), 0x0800),
        ("the last four bytes, big-endian", tc("r0 = *(u32 *)skb[56]"), 0x3839_3a3b),
        ("one byte past the end returns 0", tc("r0 = *(u32 *)skb[57]\nr0 = 5"), 0),
        ("a socket filter's offset 0 is the network header", socket("r0 = *(u8 *)skb[0]"), 14),
        ("SKF_NET_OFF counts from the network header", tc("r0 = *(u8 *)skb[-1048576]"), 14),
        ("SKF_LL_OFF + 12: a socket filter's EtherType", socket("r0 = *(u16 *)skb[-2097140]"), 0x0800),
        ("another negative offset returns 0", tc("r0 = *(u8 *)skb[-2097153]\nr0 = 5"), 0),
        ("an index plus the offset", tc("r7 = 10\nr0 = *(u8 *)skb[r7 + 5]"), 15),
        ("an index of -1 is outside", tc("r7 = -1\nr0 = *(u8 *)skb[r7]\nr0 = 5"), 0),
        ("only the low 32 bits of the index count", tc("r7 = 0x100000000 ll\nr0 = *(u8 *)skb[r7 + 3]"), 3),
        (
            "R6 and the other callee-saved registers survive, R0 is the value",
            tc("r7 = 1000\nr0 = *(u8 *)skb[20]\nr0 += r7\nr1 = r6\nr0 += 0"),
            1020,
        ),
        (
            "a load outside the packet returns 0 from the subprogram, not the program",
            ".progtype tc\nr6 = r1\nr1 = r6\ncall sub\nr0 += 100\nexit\n\
             sub:\nr6 = r1\nr0 = *(u8 *)skb[1000]\nr0 = 7\nexit\n"
                .to_string(),
            100,
        ),
        (
            "a load inside the packet in a subprogram",
            ".progtype tc\nr6 = r1\nr1 = r6\ncall sub\nr0 += 100\nexit\n\
             sub:\nr6 = r1\nr0 = *(u8 *)skb[2]\nexit\n"
                .to_string(),
            102,
        ),
    ]
}

/// Runs every case on `engines`: each engine that can judge gives the expected R0; rbpf
/// says it cannot judge, naming the reason. How many kernel runs there were.
fn check(engines: &mut Engines) -> usize {
    let mut kernel_runs = 0;
    for (what, text, want) in cases() {
        let set = set(&text);
        bpf::validate::validate(&set, Some(60)).unwrap_or_else(|e| panic!("{what}: {e}"));
        let results = engines.run_set(&set, &Input::with_ctx(frame()));
        for r in &results {
            match &r.result {
                RunResult::Ran(o) => {
                    let r0 = *o.result.as_ref().unwrap_or_else(|f| panic!("{what} on {}: {f:?}", r.engine));
                    // the kernel's test run reports R0's low 32 bits
                    assert_eq!(r0 as u32 as u64, want, "{what} on {}", r.engine);
                    kernel_runs += usize::from(r.engine.starts_with("kernel"));
                }
                RunResult::CannotJudge(why) if r.engine == "rbpf" => assert!(!why.is_empty()),
                other => panic!("{what} on {}: {other:?}", r.engine),
            }
        }
        assert!(!matches!(compare(&results), Verdict::Mismatch(_)), "{what}: {:?}", compare(&results));
    }
    kernel_runs
}

#[test]
fn legacy_packet_loads_on_our_engines() {
    for scheme in jit::Scheme::ALL {
        let opts = Options { scheme, ..Options::default() };
        check(&mut Engines::try_with_options(&["reference", "rbpf", "jit"], &opts).unwrap());
    }
}

#[test]
fn legacy_packet_loads_on_the_kernels() {
    for kernel in ["6.12", "7.3"] {
        let Some(mut engines) = common::kernel_engines(kernel, &["reference", "kernel-jit", "kernel-interp"])
        else {
            continue;
        };
        assert_eq!(check(&mut engines), 2 * cases().len(), "every case ran on both of {kernel}'s engines");
    }
}

/// The verifier's rules: only socket filters and tc programs, R6 the context, R1-R5
/// unreadable after the load.
#[test]
fn the_validator_applies_the_kernels_rules() {
    use bpf::validate::{validate, Rule};
    let rule = |text: &str| validate(&set(text), Some(60)).map_err(|e| e.rule);
    assert_eq!(rule(".progtype tc\nr6 = r1\nr0 = *(u8 *)skb[0]\nexit\n"), Ok(()));
    // a buffer program (XDP here) may not
    assert_eq!(rule("r6 = r1\nr0 = *(u8 *)skb[0]\nexit\n"), Err(Rule::PacketLoadType));
    // R6 must hold the context, at offset 0
    assert_eq!(rule(".progtype tc\nr0 = *(u8 *)skb[0]\nexit\n"), Err(Rule::UninitRegister));
    assert_eq!(rule(".progtype tc\nr6 = 0\nr0 = *(u8 *)skb[0]\nexit\n"), Err(Rule::PacketLoadContext));
    assert_eq!(
        rule(".progtype tc\nr6 = r1\nr6 += 4\nr0 = *(u8 *)skb[0]\nexit\n"),
        Err(Rule::PacketLoadContext)
    );
    // the index must be defined
    assert_eq!(rule(".progtype tc\nr6 = r1\nr0 = *(u8 *)skb[r7]\nexit\n"), Err(Rule::UninitRegister));
    // R1-R5 are clobbered, R6-R9 kept
    assert_eq!(
        rule(".progtype tc\nr6 = r1\nr2 = 1\nr0 = *(u8 *)skb[0]\nr0 = r2\nexit\n"),
        Err(Rule::UninitRegister)
    );
    assert_eq!(rule(".progtype socket\nr6 = r1\nr7 = 1\nr0 = *(u8 *)skb[0]\nr0 = r7\nexit\n"), Ok(()));
}
