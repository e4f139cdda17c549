//! The kernel's own tail-call selftests, as clang builds them from Linux 7.3's
//! tools/testing/selftests/bpf/progs (kernel/selftests.sh), run on every engine the way
//! their harness (prog_tests/tailcalls.c) runs them: the same slots filled and emptied
//! between runs, the same packet, and the return values and global counters it expects.
//!
//! The tables below are our reading of that harness, written as data: for each selftest
//! the object, the packet, and its steps (the slot changes before a run, then the return
//! value and the globals it expects).

use std::path::PathBuf;

use bpf::slots::SlotSetting;
use bpf::{Input, ProgramSet, RunResult};
use compare::engines::{Engines, Options};
use compare::{compare, Verdict};

/// The packet a selftest runs with.
#[derive(Clone, Copy, Debug)]
enum Packet {
    /// `buff`: 128 zero bytes.
    Zeros128,
    /// `pkt_v4` (tools/testing/selftests/bpf/network_helpers.c): 54 bytes, an Ethernet
    /// header with type IPv4, an IPv4 header with only ihl 5, protocol TCP and total length
    /// 123 set, a TCP header with only doff 5 and an urgent pointer of 123 stored in the
    /// host's (little-endian) order.
    V4,
}

impl Packet {
    fn bytes(self) -> Vec<u8> {
        match self {
            Packet::Zeros128 => vec![0; 128],
            Packet::V4 => {
                let mut p = vec![0u8; 54];
                p[12..14].copy_from_slice(&[0x08, 0x00]); // ETH_P_IP
                p[14] = 0x05; // ihl 5, version left 0
                p[16..18].copy_from_slice(&123u16.to_be_bytes()); // tot_len
                p[23] = 6; // IPPROTO_TCP
                p[14 + 20 + 12] = 5 << 4; // doff
                p[14 + 20 + 18..14 + 20 + 20].copy_from_slice(&123u16.to_le_bytes()); // urg_ptr
                p
            }
        }
    }
}

/// One run of a selftest: the slot changes made before it (`MAP:INDEX=PROG`, or
/// `MAP:INDEX=` to delete), the return value it expects and the globals (`.bss` variables
/// by name, as u32) it checks after it.
struct Step {
    slots: &'static [&'static str],
    retval: u32,
    globals: &'static [(&'static str, u32)],
}

const fn step(slots: &'static [&'static str], retval: u32) -> Step {
    Step { slots, retval, globals: &[] }
}

/// A selftest: its name in prog_tests/tailcalls.c, its object, its packet, its runs.
struct Selftest {
    name: &'static str,
    object: &'static str,
    packet: Packet,
    steps: &'static [Step],
}

const FILL_3: &[&str] = &["jmp_table:0=classifier_0", "jmp_table:1=classifier_1", "jmp_table:2=classifier_2"];

/// What prog_tests/tailcalls.c of Linux 7.3 does and expects. The kernel counts only tail
/// calls into a filled slot, at most 33 in a run.
const SELFTESTS: &[Selftest] = &[
    // entry tail-calls slot 0 four times, then 1, then 2, and returns 3: the first filled
    // slot answers. Slots emptied one by one, filled again, filled in reverse.
    Selftest {
        name: "tailcall_1",
        object: "tailcall1",
        packet: Packet::Zeros128,
        steps: &[
            step(FILL_3, 0),
            step(&["jmp_table:0="], 1),
            step(&["jmp_table:1="], 2),
            step(&["jmp_table:2="], 3),
            step(FILL_3, 0),
            step(&["jmp_table:0=classifier_2", "jmp_table:1=classifier_1", "jmp_table:2=classifier_0"], 2),
            step(&["jmp_table:0="], 1),
            step(&["jmp_table:1="], 0),
            step(&["jmp_table:2="], 3),
        ],
    },
    // entry -> classifier_0 -> 1 -> 2 returns 2; without slot 2 classifier_1 returns 1;
    // without slot 0 entry reaches slot 3, and classifiers 3 and 4 call each other until
    // the 33rd tail call, after which classifier_3 returns 3.
    Selftest {
        name: "tailcall_2",
        object: "tailcall2",
        packet: Packet::Zeros128,
        steps: &[
            step(
                &[
                    "jmp_table:0=classifier_0",
                    "jmp_table:1=classifier_1",
                    "jmp_table:2=classifier_2",
                    "jmp_table:3=classifier_3",
                    "jmp_table:4=classifier_4",
                ],
                2,
            ),
            step(&["jmp_table:2="], 1),
            step(&["jmp_table:0="], 3),
        ],
    },
    // classifier_0 counts and tail-calls itself: 33 tail calls, then it returns 1; entry's
    // tail call through empty slot 1 does not count.
    Selftest {
        name: "tailcall_3",
        object: "tailcall3",
        packet: Packet::Zeros128,
        steps: &[
            Step { slots: &["jmp_table:0=classifier_0"], retval: 1, globals: &[("count", 33)] },
            step(&["jmp_table:0="], 0),
        ],
    },
    // The same with the slot read from a global (`which`, 0): indirect tail calls.
    Selftest {
        name: "tailcall_6",
        object: "tailcall6",
        packet: Packet::Zeros128,
        steps: &[
            Step { slots: &["jmp_table:0=classifier_0"], retval: 1, globals: &[("count", 33), ("which", 0)] },
            step(&["jmp_table:0="], 0),
        ],
    },
    // entry tail-calls slot 1, else calls a subprogram that tail-calls slot 0, else
    // returns the packet's length times 2.
    Selftest {
        name: "tailcall_bpf2bpf_1",
        object: "tailcall_bpf2bpf1",
        packet: Packet::V4,
        steps: &[
            step(&["jmp_table:0=classifier_0", "jmp_table:1=classifier_1"], 1),
            step(&["jmp_table:1="], 0),
            step(&["jmp_table:0="], 108),
        ],
    },
    // classifier_0 counts and calls a subprogram that reads the packet's first byte with a
    // legacy packet load (0 in `buff`) and so tail-calls slot 0: classifier_0 again.
    Selftest {
        name: "tailcall_bpf2bpf_2",
        object: "tailcall_bpf2bpf2",
        packet: Packet::Zeros128,
        steps: &[
            Step { slots: &["jmp_table:0=classifier_0"], retval: 1, globals: &[("count", 33)] },
            step(&["jmp_table:0="], 0),
        ],
    },
    // entry's subprogram tail-calls classifier_0, whose global subprogram reads the
    // packet's first word and half-word with legacy packet loads (both 0) and so
    // tail-calls classifier_1 (len * 3) rather than slot 10; without slot 1 it returns
    // len; without slot 0 entry's subprogram returns len * 2. Stacks of 128 and 64 bytes.
    Selftest {
        name: "tailcall_bpf2bpf_3",
        object: "tailcall_bpf2bpf3",
        packet: Packet::V4,
        steps: &[
            step(&["jmp_table:0=classifier_0", "jmp_table:1=classifier_1"], 162),
            step(&["jmp_table:1="], 54),
            step(&["jmp_table:0="], 108),
        ],
    },
    // Subprograms at three depths, each tail-calling the next classifier; classifier_2
    // counts and tail-calls itself through a subprogram: of 33 tail calls the first two
    // reach classifiers 0 and 1, so classifier_2 runs 31 times and returns len * 3.
    Selftest {
        name: "tailcall_bpf2bpf_4",
        object: "tailcall_bpf2bpf4",
        packet: Packet::V4,
        steps: &[Step { slots: FILL_3, retval: 162, globals: &[("count", 31), ("noise", 0)] }],
    },
    // A subprogram tail-calls classifier_0 from below a frame with an odd stack size.
    Selftest {
        name: "tailcall_bpf2bpf_6",
        object: "tailcall_bpf2bpf6",
        packet: Packet::V4,
        steps: &[Step { slots: &["jmp_table:0=classifier_0"], retval: 0, globals: &[("done", 1)] }],
    },
    // entry counts, clobbers registers and stack (bpf_strtoul of "123456789") and calls a
    // subprogram that tail-calls slot 0, entry itself, twice: 33 tail calls, 34 entries.
    // Without slot 0 it counts once. (The harness reads 35 there: its globals persist from
    // run to run, while every run here starts from the object's.)
    Selftest {
        name: "tailcall_bpf2bpf_hierarchy_1",
        object: "tailcall_bpf2bpf_hierarchy1",
        packet: Packet::Zeros128,
        steps: &[
            Step { slots: &["jmp_table:0=entry"], retval: 1, globals: &[("count", 34)] },
            Step { slots: &["jmp_table:0="], retval: 1, globals: &[("count", 1)] },
        ],
    },
];

/// The folder of the selftest objects: `JITDIFF_SELFTESTS` (`scripts/test.sh` sets it),
/// else what `kernel/selftests.sh --kernel 7.3` makes (cached).
fn objects() -> PathBuf {
    if let Some(dir) = std::env::var_os("JITDIFF_SELFTESTS").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../kernel/selftests.sh");
    let out = std::process::Command::new(script)
        .args(["--kernel", "7.3"])
        .output()
        .expect("kernel/selftests.sh runs");
    assert!(out.status.success(), "kernel/selftests.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).lines().last().expect("a folder").trim())
}

/// The offset of global `name` in section `.bss` of `object`, from its symbol table.
fn bss_offset(object: &std::path::Path, name: &str) -> usize {
    use object::{Object, ObjectSection, ObjectSymbol};
    let bytes = std::fs::read(object).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let bss = file.section_by_name(".bss").expect(".bss").index();
    let sym = file
        .symbols()
        .find(|s| s.name() == Ok(name) && s.section_index() == Some(bss))
        .unwrap_or_else(|| panic!("{}: no .bss symbol {name}", object.display()));
    sym.address() as usize
}

/// The set of `test`'s object after each of its steps' slot changes, with the step.
fn steps(dir: &std::path::Path, test: &Selftest) -> Vec<(ProgramSet, &'static Step)> {
    let path = dir.join(format!("{}.o", test.object));
    let mut set = bpf::load::load_set_file(&path).unwrap_or_else(|e| panic!("{}: {e}", test.name)).set;
    test.steps
        .iter()
        .map(|step| {
            let settings: Vec<SlotSetting> = step.slots.iter().map(|s| s.parse().unwrap()).collect();
            set = bpf::slots::apply(set.clone(), &settings).unwrap_or_else(|e| panic!("{}: {e}", test.name));
            (set.clone(), step)
        })
        .collect()
}

/// Whether `set` mixes bpf2bpf calls and tail calls (the kernel's interpreter refuses
/// such programs; only JITs run them).
fn mixes_calls_and_tail_calls(set: &ProgramSet) -> bool {
    let code = set.progs().iter().map(|p| &p.prog);
    let calls = code.clone().any(|p| p.function_starts().len() > 1);
    calls && code.flat_map(|p| p.insns()).any(|i| i.is_tail_call())
}

/// Checks a run's return value and globals against `step`.
fn check(
    test: &Selftest,
    k: usize,
    engine: &str,
    result: &RunResult,
    step: &Step,
    set: &ProgramSet,
    dir: &std::path::Path,
) {
    let what = format!("{} step {} on {engine}", test.name, k + 1);
    let RunResult::Ran(o) = result else { panic!("{what}: {result:?}") };
    let r0 = o.result.as_ref().unwrap_or_else(|f| panic!("{what}: {f:?}"));
    assert_eq!(*r0 as u32, step.retval, "{what}: return value");
    if step.globals.is_empty() {
        return;
    }
    let bss = set.arrays().iter().position(|a| a.name == "bss").unwrap_or_else(|| panic!("{what}: no .bss"));
    let values = &o.arrays[bss];
    for &(name, want) in step.globals {
        let at = bss_offset(&dir.join(format!("{}.o", test.object)), name);
        let got = u32::from_le_bytes(values[at..at + 4].try_into().unwrap());
        assert_eq!(got, want, "{what}: global {name}");
    }
}

/// Every selftest on the reference, rbpf, our JIT and Linux 7.3's JIT and interpreter:
/// each engine that can judge gives the selftest's values; rbpf cannot judge `__sk_buff`
/// programs, and the interpreter's verifier refuses programs that mix bpf2bpf calls and
/// tail calls, each saying why.
#[test]
fn the_selftests_pass_on_every_engine() {
    let dir = objects();
    let names = ["reference", "rbpf", "jit", "kernel-jit", "kernel-interp"];
    let mut engines = match common_kernel_engines(&names) {
        Some(e) => e,
        None => {
            Engines::try_with_options(&names[..3], &Options { kernel: Some("7.3"), ..Options::default() })
                .unwrap()
        }
    };
    let mut runs = 0;
    for test in SELFTESTS {
        for (k, (set, step)) in steps(&dir, test).into_iter().enumerate() {
            bpf::validate::validate(&set, Some(test.packet.bytes().len()))
                .unwrap_or_else(|e| panic!("{}: the validator refuses it: {e}", test.name));
            let results = engines.run_set(&set, &Input::with_ctx(test.packet.bytes()));
            for r in &results {
                match r.engine {
                    "rbpf" => assert!(
                        matches!(&r.result, RunResult::CannotJudge(w) if w.contains("__sk_buff")),
                        "{:?}",
                        r.result
                    ),
                    "kernel-interp" if mixes_calls_and_tail_calls(&set) => {
                        let refused = "mixing of tail_calls and bpf-to-bpf calls is not supported";
                        assert!(
                            matches!(&r.result, RunResult::Rejected(log) if log.contains(refused)),
                            "{}: {:?}",
                            test.name,
                            r.result
                        )
                    }
                    engine => check(test, k, engine, &r.result, step, &set, &dir),
                }
                runs += 1;
            }
            assert!(
                !matches!(compare(&results), Verdict::Mismatch(_)),
                "{}: {:?}",
                test.name,
                compare(&results)
            );
        }
    }
    assert!(runs > 0);
}

/// Every tail-call scheme of our JIT agrees with the reference under the count semantics
/// it claims; the schemes with the kernel's (`global`) semantics give the selftests' values.
#[test]
fn every_scheme_runs_the_selftests_with_the_semantics_it_claims() {
    use oracle::reference::TailCallSemantics;
    let dir = objects();
    for scheme in jit::Scheme::ALL {
        let semantics = match scheme.semantics() {
            "per-frame" => TailCallSemantics::PerFrame,
            _ => TailCallSemantics::Global,
        };
        let budget = Some(compare::engines::FUZZ_BUDGET);
        let opts = Options { scheme, semantics, kernel: Some("7.3"), budget, ..Options::default() };
        let mut engines = Engines::try_with_options(&["reference", "jit"], &opts).unwrap();
        for test in SELFTESTS {
            for (k, (set, step)) in steps(&dir, test).into_iter().enumerate() {
                let results = engines.run_set(&set, &Input::with_ctx(test.packet.bytes()));
                let verdict = compare(&results);
                // Per-frame counting gives each call of a subprogram a count of its own: in
                // the hierarchy test's self-tail-calling subprograms the calls multiply
                // (the "tailcall hierarchy" problem) past the run's budget.
                if semantics == TailCallSemantics::PerFrame && test.name.contains("hierarchy") && k == 0 {
                    assert!(
                        matches!(verdict, Verdict::Inconclusive(_)),
                        "{} with {}: {verdict:?}",
                        test.name,
                        scheme.name()
                    );
                    continue;
                }
                assert_eq!(verdict, Verdict::Agree, "{} with {}", test.name, scheme.name());
                if semantics == TailCallSemantics::Global {
                    let jit = results.iter().find(|r| r.engine == "jit").unwrap();
                    check(test, k, &format!("jit ({})", scheme.name()), &jit.result, step, &set, &dir);
                }
            }
        }
    }
}

/// The engines `names` on Linux 7.3, or `None` (after saying so) without its image.
fn common_kernel_engines(names: &[&'static str]) -> Option<Engines> {
    if let Err(e) = kernel::KernelImage::cached("7.3") {
        println!("skipped on the kernel engines: no kernel image for 7.3 ({e})");
        return None;
    }
    let opts = Options { kernel: Some("7.3"), ..Options::default() };
    Some(Engines::try_with_options(names, &opts).expect("kernel engines"))
}
