//! Jobs on the real guest, checked against the kernel's documented semantics. Every test
//! prints "skipped: no kernel image" and passes when `kernel/build.sh` has not been run.

mod common;

use common::*;
use kernel::{prog_type, BufferMode, Input, Job, JobResult, OutputKind};

const XDP: u32 = prog_type::XDP;

/// A 64-byte packet: XDP and SCHED_CLS need at least an Ethernet header (14 bytes).
fn packet() -> Vec<u8> {
    (0..64u8).collect()
}

#[test]
fn return_constant_jit_and_interpreter() {
    let p = vec![mov_imm(0, 42), exit()];
    let jobs = [job(true, XDP, vec![p.clone()], vec![packet()]), job(false, XDP, vec![p], vec![packet()])];
    let Some(r) = run(&jobs) else { return };
    for (result, jit) in r.iter().zip([true, false]) {
        let JobResult::Ran { entry, runs } = result else { panic!("{result:#?}") };
        assert_eq!(entry.jited, jit, "{entry:?}");
        assert_eq!(entry.jited_len > 0, jit);
        assert_eq!(entry.xlated_len, 16, "two instructions");
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].errno, 0);
        assert_eq!(runs[0].retval, 42);
        assert_eq!(runs[0].output_kind, OutputKind::Data);
        assert_eq!(runs[0].output, packet(), "the packet is unchanged");
    }
}

#[test]
fn empty_request_is_a_round_trip() {
    let Some(r) = run(&[]) else { return };
    assert!(r.is_empty());
}

#[test]
fn retval_is_32_bits() {
    // r0 = 0x1_2345_6789 (64-bit): BPF_PROG_TEST_RUN reports only the low half.
    let p = prog(&[&ld_imm64(0, 0x1_2345_6789), &[exit()]]);
    let jobs = [job(true, XDP, vec![p.clone()], vec![packet()]), job(false, XDP, vec![p], vec![packet()])];
    let Some(r) = run(&jobs) else { return };
    for result in &r {
        assert_eq!(ran(result)[0].retval, 0x2345_6789);
    }
}

/// The XDP prologue from PROTOCOL.md: r1 = packet start, bounds-checked for `n` bytes.
fn xdp_prologue(n: i32) -> Vec<Insn> {
    vec![
        ldx(4, 2, 1, 4), // r2 = data_end
        ldx(4, 1, 1, 0), // r1 = data
        mov_reg(3, 1),
        add_imm(3, n),
        jle_reg(3, 2, 2), // if r1 + n <= data_end goto body
        mov_imm(0, 0),
        exit(),
    ]
}

#[test]
fn store_into_packet_is_visible() {
    let p = prog(&[
        &xdp_prologue(64),
        &[st_imm(4, 1, 8, 0x1122_3344), st_imm(1, 1, 63, 0x7f), mov_imm(0, 2), exit()],
    ]);
    let mut jobs =
        [job(true, XDP, vec![p.clone()], vec![packet()]), job(false, XDP, vec![p], vec![packet()])];
    for j in &mut jobs {
        j.prog_flags = 2; // BPF_F_ANY_ALIGNMENT: riscv64 checks packet alignment as if data were at 2 mod 4
    }
    let Some(r) = run(&jobs) else { return };
    let mut want = packet();
    want[8..12].copy_from_slice(&0x1122_3344u32.to_le_bytes());
    want[63] = 0x7f;
    for result in &r {
        let run = &ran(result)[0];
        assert_eq!(run.retval, 2);
        assert_eq!(run.output, want);
    }
}

#[test]
fn short_packet_takes_the_prologue_exit() {
    // 32 bytes < 64: the bounds check fails and the prologue returns 0 without a store.
    let p = prog(&[&xdp_prologue(64), &[st_imm(1, 1, 0, 0xff), mov_imm(0, 7), exit()]]);
    let input: Vec<u8> = vec![0; 32];
    let Some(r) = run(&[job(true, XDP, vec![p], vec![input.clone()])]) else { return };
    let run = &ran(&r[0])[0];
    assert_eq!(run.retval, 0);
    assert_eq!(run.output, input);
}

/// `main: r0 = 0; tail_call(ctx, map 0, index); return 100` and `prog 1: return 1`.
fn tail_call_job(jit: bool, index: i32, filled: bool) -> Job {
    let main = prog(&[&ld_map(2, 0), &[mov_imm(3, index), call(HELPER_TAIL_CALL), mov_imm(0, 100), exit()]]);
    let target = vec![mov_imm(0, 1), exit()];
    Job {
        maps: vec![prog_array(4)],
        slots: if filled { vec![slot(0, 1, 1)] } else { vec![] },
        ..job(jit, XDP, vec![main, target], vec![packet()])
    }
}

#[test]
fn tail_call_and_empty_slot() {
    let jobs = [
        tail_call_job(true, 1, true),
        tail_call_job(false, 1, true),
        tail_call_job(true, 2, true),  // empty slot: falls through
        tail_call_job(false, 2, true), // empty slot: falls through
        tail_call_job(true, 9, true),  // out of range: falls through
        tail_call_job(true, 1, false), // nothing filled: falls through
    ];
    let Some(r) = run(&jobs) else { return };
    let got: Vec<u32> = r.iter().map(|x| ran(x)[0].retval).collect();
    assert_eq!(got, [1, 1, 100, 100, 100, 100]);
}

#[test]
fn uninitialised_register_is_rejected() {
    let p = vec![mov_reg(0, 5), exit()]; // r5 is never written
    let Some(r) = run(&[job(true, XDP, vec![p], vec![packet()])]) else { return };
    match &r[0] {
        JobResult::Rejected { prog, errno, log } => {
            assert_eq!(*prog, 0);
            assert_eq!(*errno, 13, "EACCES");
            assert!(log.contains("R5 !read_ok"), "{log}");
        }
        other => panic!("{other:#?}"),
    }
}

#[test]
fn rejection_names_the_failing_program() {
    let good = vec![mov_imm(0, 0), exit()];
    let bad = vec![exit()]; // r0 is not set
    let Some(r) = run(&[job(true, XDP, vec![good, bad], vec![packet()])]) else { return };
    match &r[0] {
        JobResult::Rejected { prog, log, .. } => {
            assert_eq!(*prog, 1);
            assert!(log.contains("R0 !read_ok"), "{log}");
        }
        other => panic!("{other:#?}"),
    }
}

/// Looks up key 1 of array map 0 (value_size 8, 2 entries), adds 5 to the value's first
/// word and stores 0xab into its last byte; returns the old first word.
fn map_job(jit: bool) -> Job {
    let p = prog(&[
        &[st_imm(4, 10, -4, 1)], // key = 1 on the stack
        &ld_map(1, 0),
        &[
            mov_reg(2, 10),
            add_imm(2, -4),
            call(HELPER_MAP_LOOKUP_ELEM),
            jne_imm(0, 0, 2),
            mov_imm(0, 0xee),
            exit(),
            ldx(4, 3, 0, 0),
            mov_reg(4, 3),
            add_imm(4, 5),
            stx(4, 0, 4, 0),
            st_imm(1, 0, 7, 0xab),
            mov_reg(0, 3),
            exit(),
        ],
    ]);
    let mut initial = vec![0u8; 16];
    initial[8] = 10;
    Job { maps: vec![array(8, 2, initial)], ..job(jit, XDP, vec![p], vec![packet(), packet()]) }
}

#[test]
fn array_map_lookup_and_store() {
    let Some(r) = run(&[map_job(true), map_job(false)]) else { return };
    for result in &r {
        let runs = ran(result);
        assert_eq!(runs.len(), 2);
        for run in runs {
            // the map is reset before every input, so both runs see 10
            assert_eq!(run.retval, 10);
            assert_eq!(run.maps.len(), 1);
            assert_eq!(run.maps[0], [0, 0, 0, 0, 0, 0, 0, 0, 15, 0, 0, 0, 0, 0, 0, 0xab]);
        }
    }
}

#[test]
fn input_map_overlay() {
    // r1 = &map0.value[0] (direct value access); return its byte 3 plus 1; store 9 at 0.
    let p = prog(&[&ld_map_value(1, 0, 0), &[ldx(1, 0, 1, 3), add_imm(0, 1), st_imm(1, 1, 0, 9), exit()]]);
    let job = Job {
        maps: vec![array(8, 1, vec![0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7])],
        input_map: Some(0),
        inputs: vec![
            Input { data: packet(), map_overlay: vec![] },
            Input { data: packet(), map_overlay: vec![1, 2, 3, 4] },
        ],
        ..job(true, XDP, vec![p], vec![])
    };
    let Some(r) = run(&[job]) else { return };
    let runs = ran(&r[0]);
    assert_eq!(runs[0].retval, 0xa4);
    assert_eq!(runs[0].maps[0], [9, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7]);
    assert_eq!(runs[1].retval, 5);
    assert_eq!(runs[1].maps[0], [9, 2, 3, 4, 0xa4, 0xa5, 0xa6, 0xa7]);
}

#[test]
fn bad_packet_sizes_are_run_errors() {
    let p = vec![mov_imm(0, 1), exit()];
    let Some(r) = run(&[job(true, XDP, vec![p], vec![vec![0; 13], vec![], vec![0; 14]])]) else { return };
    let runs = ran(&r[0]);
    assert_eq!(runs[0].errno, 22, "shorter than an Ethernet header: EINVAL");
    assert_eq!(runs[0].output_kind, OutputKind::None);
    assert_eq!(runs[1].errno, 22, "no packet: EINVAL");
    assert_eq!(runs[2].errno, 0);
    assert_eq!(runs[2].retval, 1);
}

#[test]
fn setup_failure_is_reported() {
    // value_size 0 is refused by BPF_MAP_CREATE
    let j =
        Job { maps: vec![array(0, 1, vec![])], ..job(true, XDP, vec![vec![mov_imm(0, 0), exit()]], vec![]) };
    let Some(r) = run(&[j]) else { return };
    match &r[0] {
        JobResult::SetupFailed { errno, message } => {
            assert_eq!(*errno, 22);
            assert!(message.contains("map 0"), "{message}");
        }
        other => panic!("{other:#?}"),
    }
}

#[test]
fn jited_image_and_xlated_dump() {
    let p = vec![mov_imm(0, 42), exit()];
    let mut j = job(true, XDP, vec![p.clone()], vec![packet()]);
    j.want_jited_image = true;
    j.want_xlated = true;
    let Some(r) = run(&[j]) else { return };
    let JobResult::Ran { entry, .. } = &r[0] else { panic!("{:#?}", r[0]) };
    assert_eq!(entry.jited_image.len(), entry.jited_len as usize);
    assert!(entry.jited_len >= 8 && entry.jited_len % 2 == 0, "RV64 code: {}", entry.jited_len);
    assert_eq!(entry.xlated, p.concat());
}

#[test]
fn malformed_request_keeps_the_guest_usable() {
    let Some(mut g) = guest() else { return };
    let g = g.as_mut().unwrap();
    // a lddw naming a map the job lacks is refused by the crate before sending...
    let bad = Job { progs: vec![prog(&[&ld_map(1, 3), &[mov_imm(0, 0), exit()]])], ..Job::default() };
    assert!(matches!(g.run(&[bad]), Err(kernel::GuestError::InvalidJob { .. })));
    // ...and the guest still answers
    let ok = job(true, XDP, vec![vec![mov_imm(0, 3), exit()]], vec![packet()]);
    assert_eq!(ran(&g.run(&[ok]).unwrap()[0])[0].retval, 3);
}

#[test]
fn ctx_mode_needs_the_type_to_accept_a_bare_context() {
    // BufferMode::Ctx passes only ctx_in/ctx_out: SCHED_CLS also needs packet data (at
    // least an Ethernet header), so the kernel refuses the run with EINVAL.
    let p = vec![mov_imm(0, 0), exit()];
    let j = Job {
        buffer_mode: BufferMode::Ctx,
        inputs: vec![Input { data: vec![0u8; 192], map_overlay: vec![] }], // sizeof(struct __sk_buff)
        ..job(true, prog_type::SCHED_CLS, vec![p], vec![])
    };
    let Some(r) = run(&[j]) else { return };
    let run = &ran(&r[0])[0];
    assert_eq!(run.errno, 22, "{run:?}");
    assert_eq!(run.output_kind, OutputKind::None);
}

#[test]
fn array_values_of_odd_size() {
    // value_size 5, 3 entries: look up key 2, store 0x77 in its last byte and return its
    // first; the reported contents are the 15 bytes in key order.
    let p = prog(&[
        &[st_imm(4, 10, -4, 2)],
        &ld_map(1, 0),
        &[
            mov_reg(2, 10),
            add_imm(2, -4),
            call(HELPER_MAP_LOOKUP_ELEM),
            jne_imm(0, 0, 2),
            mov_imm(0, 0xee),
            exit(),
        ],
        &[st_imm(1, 0, 4, 0x77), ldx(1, 0, 0, 0), exit()],
    ]);
    let initial: Vec<u8> = (1..=15).collect();
    let jobs: Vec<Job> = [true, false]
        .into_iter()
        .map(|jit| Job {
            maps: vec![array(5, 3, initial.clone())],
            ..job(jit, XDP, vec![p.clone()], vec![packet(); 2])
        })
        .collect();
    let Some(r) = run(&jobs) else { return };
    let mut want = initial;
    want[14] = 0x77;
    for result in &r {
        for run in ran(result) {
            assert_eq!(run.retval, 11);
            assert_eq!(run.maps[0], want);
        }
    }
}

#[test]
fn tracing_programs_and_kernel_functions_need_the_jit() {
    // An fentry attached to a JIT-compiled program runs once per run and is counted; the
    // same job with the interpreter is refused by the kernel itself, as is a call of a
    // kernel function (found by name in the guest's BTF) from an interpreted program.
    let traced = vec![mov_imm(0, 5), exit()];
    let btf = kernel::btf::for_functions(&[0]);
    let attachment = kernel::JobAttachment {
        fexit: false,
        target: 0,
        btf_id: kernel::btf::func_type_id(0),
        insns: vec![mov_imm(0, 0), exit()],
    };
    let mut with_fentry = job(true, XDP, vec![traced], vec![packet(), packet()]);
    with_fentry.btf = vec![Some(btf)];
    with_fentry.attachments = vec![attachment];
    let mut interpreted = with_fentry.clone();
    interpreted.jit = false;
    let kfunc_call = insn(0x85, 0, 2, 0, 0); // call kfunc 0 (BPF_PSEUDO_KFUNC_CALL)
    let calls = vec![kfunc_call, insn(0x85, 0, 2, 0, 1), mov_imm(0, 6), exit()];
    let mut kfuncs = job(true, XDP, vec![calls], vec![packet()]);
    kfuncs.kfuncs = vec!["bpf_preempt_disable".into(), "bpf_preempt_enable".into()];
    let mut kfuncs_interpreted = kfuncs.clone();
    kfuncs_interpreted.jit = false;
    let Some(r) = run(&[with_fentry, interpreted, kfuncs, kfuncs_interpreted]) else { return };
    let runs = ran(&r[0]);
    assert_eq!(
        runs.iter().map(|o| (o.retval, o.attachment_runs.clone())).collect::<Vec<_>>(),
        [(5, vec![1]), (5, vec![1])]
    );
    match &r[1] {
        JobResult::Rejected { prog: 1, log, .. } => {
            assert!(log.contains("Can attach to only JITed progs"), "{log}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ran(&r[2])[0].retval, 6);
    match &r[3] {
        JobResult::Rejected { prog: 0, log, .. } => {
            assert!(log.contains("JIT is required for calling kernel function"), "{log}")
        }
        other => panic!("{other:?}"),
    }
}
