//! The experiments behind "Program type" in `kernel/PROTOCOL.md`, kept as tests: how a
//! jitdiff program (R1 = a byte buffer it loads from and stores to) can run on the real
//! kernel, under the RV64 JIT and the interpreter. Each test prints "skipped: no kernel
//! image" and passes when `kernel/build.sh` has not been run.

mod common;

use common::*;
use kernel::{prog_type, BufferMode, Input, Job, JobResult, RunOutput};

const XDP: u32 = prog_type::XDP;
/// `BPF_F_ANY_ALIGNMENT`: without it the riscv64 verifier checks packet accesses as if the
/// packet started 2 bytes past an aligned address (NET_IP_ALIGN).
const ANY_ALIGNMENT: u32 = 2;
/// Stack slot where the adapter keeps the context for tail calls.
const CTX_SLOT: i16 = -512;

/// `*(u64 *)(r10 - 512) = r1`: keeps the context for tail calls. Only for programs with
/// tail calls: it makes the frame 512 bytes, so a program with bpf2bpf calls would exceed
/// the combined stack limit (riscv64 refuses tail calls mixed with bpf2bpf calls anyway).
fn keep_ctx(keep: bool) -> Vec<Insn> {
    if keep {
        vec![stx(8, 10, 1, CTX_SLOT)]
    } else {
        vec![]
    }
}

/// Approach "packet": XDP, the buffer is the packet; R1 = data, checked for `n` bytes.
fn packet_prologue(n: i32, keep: bool) -> Vec<Insn> {
    let mut p = keep_ctx(keep);
    p.extend([
        ldx(4, 2, 1, 4), // r2 = xdp_md->data_end
        ldx(4, 1, 1, 0), // r1 = xdp_md->data
        mov_reg(3, 1),
        add_imm(3, n),
        jle_reg(3, 2, 2), // if data + n <= data_end goto body
        mov_imm(0, 0),
        exit(),
    ]);
    p
}

/// Approach "map value": XDP (any non-sleepable type works), the buffer is the single value
/// of an array map, addressed directly (`lddw` src_reg 2), filled per input by an overlay.
fn map_value_prologue(map: u32, keep: bool) -> Vec<Insn> {
    prog(&[&keep_ctx(keep), &ld_map_value(1, map, 0)])
}

/// A body using everything jitdiff's programs use (besides tail calls, which the riscv64
/// JIT cannot mix with bpf2bpf calls): sized loads and stores up to the buffer's end, a
/// spilled buffer pointer, stack atomics, get_numa_node_id, an array-map lookup and a
/// bpf2bpf call that gets the buffer in R1. `lookup_map` is an array map (8-byte values)
/// whose value 0 is read into the buffer and incremented.
fn feature_body(size: i16, lookup_map: u32) -> Vec<Insn> {
    let last = size - 8;
    let mut p = prog(&[
        &[
            mov_reg(6, 1),
            // sized copies: the last 8 bytes to 8..16, then 4, 2 and 1 bytes from 16.. to 24..
            ldx(8, 2, 6, last),
            stx(8, 6, 2, 8),
            ldx(4, 2, 6, 16),
            stx(4, 6, 2, 24),
            ldx(2, 2, 6, 20),
            stx(2, 6, 2, 28),
            ldx(1, 2, 6, 22),
            stx(1, 6, 2, 30),
            st_imm(1, 6, 31, 0x5a),
            st_imm(8, 6, last, -2), // 0xffff_ffff_ffff_fffe at the very end
            // spill the buffer pointer, clobber, reload
            stx(8, 10, 6, -8),
            mov_imm(6, 0),
            ldx(8, 6, 10, -8),
            // stack atomics on fp-16 (64-bit) and fp-24 (32-bit)
            st_imm(8, 10, -16, 5),
            mov_imm(2, 3),
            atomic(8, 10, 2, -16, 0x01), // r2 = fetch_add(fp-16, 3): r2 = 5, mem = 8
            stx(8, 6, 2, 32),
            mov_imm(2, 100),
            atomic(8, 10, 2, -16, 0xe1), // r2 = xchg(fp-16, 100): r2 = 8, mem = 100
            stx(8, 6, 2, 40),
            mov_imm(0, 100),
            mov_imm(2, 7),
            atomic(8, 10, 2, -16, 0xf1), // r0 = cmpxchg(fp-16, r0 = 100, 7): r0 = 100, mem = 7
            ldx(8, 2, 10, -16),
            stx(8, 6, 2, 48),
            stx(8, 6, 0, 56),
            st_imm(4, 10, -24, 1),
            mov_imm(2, 2),
            atomic(4, 10, 2, -24, 0x00), // lock *(u32 *)(fp-24) += 2
            ldx(4, 2, 10, -24),
            stx(4, 6, 2, 64),
            call(HELPER_GET_NUMA_NODE_ID),
            stx(8, 6, 0, 72),
            // lookup of key 0 in the array map: store value + 0 into the buffer, value += 1
            st_imm(4, 10, -32, 0),
        ],
        &ld_map(1, lookup_map),
        &[
            mov_reg(2, 10),
            add_imm(2, -32),
            call(HELPER_MAP_LOOKUP_ELEM),
            jeq_imm(0, 0, 4),
            ldx(8, 2, 0, 0),
            stx(8, 6, 2, 80),
            add_imm(2, 1),
            stx(8, 0, 2, 0),
            // bpf2bpf call with the buffer in R1
            mov_reg(1, 6),
            call_local(3),
            stx(8, 6, 0, 96),
            mov_imm(0, 1),
            exit(),
        ],
    ]);
    // the subprogram: *(u64 *)(r1 + 88) = 0x0102030405060708; spill r1 and reload; return 9
    p.extend(prog(&[
        &ld_imm64(2, 0x0102_0304_0506_0708),
        &[stx(8, 10, 1, -8), mov_imm(1, 0), ldx(8, 1, 10, -8), stx(8, 1, 2, 88), mov_imm(0, 9), exit()],
    ]));
    p
}

/// What `feature_body` leaves in a buffer that started as `input`.
fn feature_expect(input: &[u8], lookup_value: u64) -> Vec<u8> {
    let size = input.len();
    let mut b = input.to_vec();
    let put = |b: &mut Vec<u8>, at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
    let last8: [u8; 8] = input[size - 8..].try_into().unwrap();
    put(&mut b, 8, &last8);
    let w = b[16..20].to_vec();
    put(&mut b, 24, &w);
    let h = b[20..22].to_vec();
    put(&mut b, 28, &h);
    b[30] = b[22];
    b[31] = 0x5a;
    put(&mut b, size - 8, &(-2i64).to_le_bytes());
    put(&mut b, 32, &5u64.to_le_bytes());
    put(&mut b, 40, &8u64.to_le_bytes());
    put(&mut b, 48, &7u64.to_le_bytes());
    put(&mut b, 56, &100u64.to_le_bytes());
    put(&mut b, 64, &3u32.to_le_bytes());
    put(&mut b, 72, &0u64.to_le_bytes()); // one NUMA node
    put(&mut b, 80, &lookup_value.to_le_bytes());
    put(&mut b, 88, &0x0102_0304_0506_0708u64.to_le_bytes());
    put(&mut b, 96, &9u64.to_le_bytes());
    b
}

fn pattern(size: usize, seed: u8) -> Vec<u8> {
    (0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn check_features(runs: &[RunOutput], buffers: &[Vec<u8>], inputs: &[Vec<u8>], lookup_map: usize) {
    assert_eq!(runs.len(), inputs.len());
    for ((run, buffer), input) in runs.iter().zip(buffers).zip(inputs) {
        assert_eq!(run.errno, 0, "{run:?}");
        assert_eq!(run.retval, 1);
        assert_eq!(buffer, &feature_expect(input, 0x77), "buffer after the run");
        assert_eq!(run.maps[lookup_map][..8], 0x78u64.to_le_bytes(), "array map value after the run");
    }
}

#[test]
fn packet_buffer_features() {
    for size in [128usize, 3520] {
        let inputs: Vec<Vec<u8>> = vec![pattern(size, 1), pattern(size, 2)];
        let mut jobs = vec![];
        for jit in [true, false] {
            let main = prog(&[&packet_prologue(size as i32, false), &feature_body(size as i16, 1)]);
            let mut j = job(jit, XDP, vec![main], inputs.clone());
            j.prog_flags = ANY_ALIGNMENT;
            j.maps = vec![prog_array(1), array(8, 1, 0x77u64.to_le_bytes().to_vec())];
            jobs.push(j);
        }
        let Some(r) = run(&jobs) else { return };
        for result in &r {
            let runs = ran(result);
            let outs: Vec<Vec<u8>> = runs.iter().map(|r| r.output.clone()).collect();
            check_features(runs, &outs, &inputs, 1);
        }
    }
}

#[test]
fn map_value_buffer_features() {
    for size in [128usize, 4096] {
        let inputs: Vec<Vec<u8>> = vec![pattern(size, 1), pattern(size, 2)];
        let mut jobs = vec![];
        for jit in [true, false] {
            let main = prog(&[&map_value_prologue(0, false), &feature_body(size as i16, 2)]);
            let j = Job {
                maps: vec![
                    array(size as u32, 1, vec![0; size]),
                    prog_array(1),
                    array(8, 1, 0x77u64.to_le_bytes().to_vec()),
                ],
                input_map: Some(0),
                inputs: inputs.iter().map(|i| Input { data: vec![0; 14], map_overlay: i.clone() }).collect(),
                ..job(jit, XDP, vec![main], vec![])
            };
            jobs.push(j);
        }
        let Some(r) = run(&jobs) else { return };
        for (result, jit) in r.iter().zip([true, false]) {
            let JobResult::Ran { entry, runs } = result else { panic!("{result:#?}") };
            assert_eq!(entry.jited, jit);
            let bufs: Vec<Vec<u8>> = runs.iter().map(|r| r.maps[0].clone()).collect();
            check_features(runs, &bufs, &inputs, 2);
        }
    }
}

/// main: keep ctx, prologue, store 0x33 at 100, restore ctx, tail call slot 0, return 99.
/// slot 0 holds a program with the same prologue that stores 0x44 at 101 and returns 7.
fn tail_call_programs(prologue: &[Insn], target_prologue: &[Insn]) -> Vec<Vec<Insn>> {
    let main = prog(&[
        prologue,
        &[st_imm(1, 1, 100, 0x33), ldx(8, 1, 10, CTX_SLOT)],
        &ld_map(2, 1),
        &[mov_imm(3, 0), call(HELPER_TAIL_CALL), mov_imm(0, 99), exit()],
    ]);
    let target = prog(&[target_prologue, &[st_imm(1, 1, 101, 0x44), mov_imm(0, 7), exit()]]);
    vec![main, target]
}

#[test]
fn tail_call_with_the_context_kept_on_the_stack() {
    let size = 256;
    let input = pattern(size, 3);
    let mut want = input.clone();
    want[100] = 0x33;
    want[101] = 0x44;
    let mut jobs = vec![];
    for jit in [true, false] {
        // packet buffer: prog array is map 1 (map 0 unused)
        let mut j = job(
            jit,
            XDP,
            tail_call_programs(&packet_prologue(size as i32, true), &packet_prologue(size as i32, false)),
            vec![input.clone()],
        );
        j.prog_flags = ANY_ALIGNMENT;
        j.maps = vec![array(8, 1, vec![0; 8]), prog_array(2)];
        j.slots = vec![slot(1, 0, 1)];
        jobs.push(j);
        // map-value buffer: buffer is map 0, prog array map 1
        let mut j = job(
            jit,
            XDP,
            tail_call_programs(&map_value_prologue(0, true), &map_value_prologue(0, false)),
            vec![],
        );
        j.maps = vec![array(size as u32, 1, vec![0; size]), prog_array(2)];
        j.slots = vec![slot(1, 0, 1)];
        j.input_map = Some(0);
        j.inputs = vec![Input { data: vec![0; 14], map_overlay: input.clone() }];
        jobs.push(j);
    }
    let Some(r) = run(&jobs) else { return };
    for (i, result) in r.iter().enumerate() {
        let run = &ran(result)[0];
        assert_eq!(run.retval, 7, "job {i}");
        let buffer = if i % 2 == 0 { &run.output } else { &run.maps[0] };
        assert_eq!(buffer, &want, "job {i}");
    }
}

#[test]
fn riscv64_rejects_tail_calls_mixed_with_bpf2bpf_calls() {
    // main: tail call, then a bpf2bpf call; both JIT and interpreter refuse it on riscv64
    let main = prog(&[
        &[mov_reg(6, 1)],
        &ld_map(2, 0),
        &[mov_imm(3, 0), call(HELPER_TAIL_CALL), call_local(1), exit(), mov_imm(0, 0), exit()],
    ]);
    let jobs: Vec<Job> = [true, false]
        .into_iter()
        .map(|jit| Job { maps: vec![prog_array(1)], ..job(jit, XDP, vec![main.clone()], vec![vec![0; 14]]) })
        .collect();
    let Some(r) = run(&jobs) else { return };
    for result in &r {
        let JobResult::Rejected { errno, log, .. } = result else { panic!("{result:#?}") };
        assert_eq!(*errno, 22);
        assert!(
            log.contains("tail_calls are not allowed in non-JITed programs with bpf-to-bpf calls"),
            "{log}"
        );
    }
}

#[test]
fn packet_access_alignment_without_the_flag() {
    // strict: a 4-byte store at packet offset 8 is refused (2 + 8 is not 4-aligned) ...
    let store_at =
        |off: i16| prog(&[&packet_prologue(64, false), &[st_imm(4, 1, off, 1), mov_imm(0, 0), exit()]]);
    let jobs = [
        job(true, XDP, vec![store_at(8)], vec![vec![0; 64]]),
        job(true, XDP, vec![store_at(6)], vec![vec![0; 64]]),
    ];
    let Some(r) = run(&jobs) else { return };
    let JobResult::Rejected { log, .. } = &r[0] else { panic!("{:#?}", r[0]) };
    assert!(log.contains("misaligned packet access"), "{log}");
    // ... and one at offset 6 is accepted
    assert_eq!(ran(&r[1])[0].errno, 0);
}

#[test]
fn largest_packets() {
    // SCHED_CLS: data_size_in above PAGE_SIZE - headroom - tailroom (4096 - 66 - 320 = 3710)
    // is EINVAL. XDP accepts more, but only 4096 - 256 - 320 = 3520 bytes are linear (directly
    // accessible): the rest goes to fragments, so a prologue for 3521 bytes bails out.
    let sizes = [14usize, 3520, 3521, 3710, 3711];
    let inputs: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0; n]).collect();
    let p = vec![mov_imm(0, 1), exit()];
    let check = |n: i32| prog(&[&packet_prologue(n, false), &[mov_imm(0, 1), exit()]]);
    let jobs = [
        job(true, XDP, vec![p.clone()], inputs.clone()),
        job(true, prog_type::SCHED_CLS, vec![p], inputs),
        job(true, XDP, vec![check(3520)], vec![vec![0; 3520], vec![0; 4096]]),
        job(true, XDP, vec![check(3521)], vec![vec![0; 3521], vec![0; 4096]]),
    ];
    let Some(r) = run(&jobs) else { return };
    let errnos = |x: &JobResult| ran(x).iter().map(|r| r.errno).collect::<Vec<_>>();
    let retvals = |x: &JobResult| ran(x).iter().map(|r| r.retval).collect::<Vec<_>>();
    assert_eq!(errnos(&r[0]), [0, 0, 0, 0, 0], "XDP");
    assert_eq!(errnos(&r[1]), [0, 0, 0, 0, 22], "SCHED_CLS");
    assert_eq!(retvals(&r[2]), [1, 1], "XDP, 3520 linear bytes");
    assert_eq!(retvals(&r[3]), [0, 0], "XDP, 3521 bytes are never linear");
}

#[test]
fn sched_cls_packet_prologue() {
    // __sk_buff: data at offset 76, data_end at 80
    let size = 128;
    let prologue = vec![
        ldx(4, 2, 1, 80),
        ldx(4, 1, 1, 76),
        mov_reg(3, 1),
        add_imm(3, size),
        jle_reg(3, 2, 2),
        mov_imm(0, 0),
        exit(),
    ];
    let p = prog(&[
        &prologue,
        &[st_imm(1, 1, 0, 0x11), st_imm(8, 1, size as i16 - 8, -1), mov_imm(0, 3), exit()],
    ]);
    let input = pattern(size as usize, 9);
    let mut j = job(true, prog_type::SCHED_CLS, vec![p], vec![input.clone()]);
    j.prog_flags = ANY_ALIGNMENT;
    let Some(r) = run(&[j]) else { return };
    let run = &ran(&r[0])[0];
    let mut want = input;
    want[0] = 0x11;
    want[size as usize - 8..].copy_from_slice(&[0xff; 8]);
    assert_eq!(run.retval, 3);
    assert_eq!(run.output, want);
}

#[test]
fn syscall_type_is_sleepable_and_refuses_prog_arrays() {
    // BPF_PROG_TYPE_SYSCALL: the context is a plain writable buffer written back in place...
    let p = vec![st_imm(8, 1, 8, 0x1234), mov_imm(0, 5), exit()];
    let mut j = job(true, prog_type::SYSCALL, vec![p], vec![]);
    j.buffer_mode = BufferMode::CtxInPlace;
    j.prog_flags = 1 << 4; // BPF_F_SLEEPABLE
    j.inputs = vec![vec![0xaa; 16].into()];
    // ... but it must be sleepable, and a sleepable program cannot use a prog array
    let q = prog(&[&ld_map(2, 0), &[mov_imm(3, 0), call(HELPER_TAIL_CALL), mov_imm(0, 0), exit()]]);
    let mut k = job(true, prog_type::SYSCALL, vec![q], vec![vec![0; 16]]);
    k.buffer_mode = BufferMode::CtxInPlace;
    k.prog_flags = 1 << 4;
    k.maps = vec![prog_array(1)];
    let mut not_sleepable = j.clone();
    not_sleepable.prog_flags = 0;
    let Some(r) = run(&[j, k, not_sleepable]) else { return };
    let run = &ran(&r[0])[0];
    assert_eq!(run.retval, 5);
    let mut want = vec![0xaa; 16];
    want[8..16].copy_from_slice(&0x1234u64.to_le_bytes());
    assert_eq!(run.output, want);
    let JobResult::Rejected { log, .. } = &r[1] else { panic!("{:#?}", r[1]) };
    assert!(
        log.contains("Sleepable programs can only use array, hash, ringbuf and local storage maps"),
        "{log}"
    );
    let JobResult::Rejected { log, .. } = &r[2] else { panic!("{:#?}", r[2]) };
    assert!(log.contains("sleepable"), "{log}");
}

#[test]
fn no_buffer_is_a_scalar_r1() {
    // "no buffer": the prologue sets r1 = 0; a program that never dereferences it runs, one
    // that does is refused by the verifier (where the engines would fault at run time).
    let runs_fine = vec![mov_imm(1, 0), mov_imm(0, 3), exit()];
    let derefs = vec![mov_imm(1, 0), ldx(8, 0, 1, 0), exit()];
    let jobs = [
        job(true, XDP, vec![runs_fine], vec![vec![0; 14]]),
        job(false, XDP, vec![derefs], vec![vec![0; 14]]),
    ];
    let Some(r) = run(&jobs) else { return };
    assert_eq!(ran(&r[0])[0].retval, 3);
    let JobResult::Rejected { errno, log, .. } = &r[1] else { panic!("{:#?}", r[1]) };
    assert_eq!(*errno, 13);
    assert!(log.contains("R1 invalid mem access 'scalar'"), "{log}");
}

#[test]
fn tail_call_limit_is_33() {
    // A program that counts its executions in the buffer and tail-calls itself: the entry
    // plus MAX_TAIL_CALL_CNT (33) tail calls run, then the tail call falls through.
    let p = prog(&[
        &map_value_prologue(0, true),
        &[ldx(8, 2, 1, 0), add_imm(2, 1), stx(8, 1, 2, 0), ldx(8, 1, 10, CTX_SLOT)],
        &ld_map(2, 1),
        &[mov_imm(3, 0), call(HELPER_TAIL_CALL)],
        &ld_map_value(1, 0, 0),
        &[ldx(8, 0, 1, 0), exit()],
    ]);
    let jobs: Vec<Job> = [true, false]
        .into_iter()
        .map(|jit| Job {
            maps: vec![array(8, 1, vec![0; 8]), prog_array(1)],
            slots: vec![slot(1, 0, 0)],
            input_map: Some(0),
            inputs: vec![Input { data: vec![0; 14], map_overlay: vec![] }],
            ..job(jit, XDP, vec![p.clone()], vec![])
        })
        .collect();
    let Some(r) = run(&jobs) else { return };
    for result in &r {
        let run = &ran(result)[0];
        assert_eq!(run.retval, 34);
        assert_eq!(run.maps[0], 34u64.to_le_bytes());
    }
}
