//! Measures the guest: boot-to-ready time and throughput for batches of small jobs.
//!
//! `cargo run --release -p kernel --example bench [-- JOBS]` (default 1000 jobs per batch).

use std::time::Instant;

use kernel::{prog_type, Guest, Input, Job, JobResult, KernelImage, Map};

fn insn(op: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let o = off.to_le_bytes();
    let i = imm.to_le_bytes();
    [op, dst | (src << 4), o[0], o[1], i[0], i[1], i[2], i[3]]
}

/// A small program on a 64-byte array-map buffer: r1 = &buffer; a few loads, ALU and
/// stores; returns a sum.
fn small_program() -> Vec<[u8; 8]> {
    vec![
        insn(0x18, 1, 2, 0, 0), // r1 = &map[0].value
        insn(0, 0, 0, 0, 0),
        insn(0x79, 2, 1, 0, 0),  // r2 = *(u64 *)(r1 + 0)
        insn(0x79, 3, 1, 8, 0),  // r3 = *(u64 *)(r1 + 8)
        insn(0x0f, 2, 3, 0, 0),  // r2 += r3
        insn(0x27, 2, 0, 0, 7),  // r2 *= 7
        insn(0x7b, 1, 2, 16, 0), // *(u64 *)(r1 + 16) = r2
        insn(0x61, 0, 1, 4, 0),  // r0 = *(u32 *)(r1 + 4)
        insn(0x0f, 0, 2, 0, 0),  // r0 += r2
        insn(0x95, 0, 0, 0, 0),  // exit
    ]
}

fn job(jit: bool, inputs: usize) -> Job {
    Job {
        jit,
        prog_type: prog_type::XDP,
        maps: vec![Map::Array { value_size: 64, max_entries: 1, initial: vec![0; 64] }],
        input_map: Some(0),
        progs: vec![small_program()],
        inputs: (0..inputs).map(|i| Input { data: vec![0; 14], map_overlay: vec![i as u8; 64] }).collect(),
        ..Job::default()
    }
}

/// `job` plus a prog array and a second program: the entry keeps the context at fp-512,
/// stores, tail-calls slot 0 (the second program, with the same prologue), which stores.
fn tail_call_job(jit: bool, inputs: usize) -> Job {
    let mut j = job(jit, inputs);
    let main = vec![
        insn(0x7b, 10, 1, -512, 0), // *(u64 *)(r10 - 512) = r1
        insn(0x18, 1, 2, 0, 0),     // r1 = &map[0].value
        insn(0, 0, 0, 0, 0),
        insn(0x7a, 1, 0, 0, 1),     // *(u64 *)(r1 + 0) = 1
        insn(0x79, 1, 10, -512, 0), // r1 = ctx
        insn(0x18, 2, 1, 0, 1),     // r2 = prog array (map 1)
        insn(0, 0, 0, 0, 0),
        insn(0xb7, 3, 0, 0, 0),  // r3 = 0
        insn(0x85, 0, 0, 0, 12), // tail call
        insn(0xb7, 0, 0, 0, 0),
        insn(0x95, 0, 0, 0, 0),
    ];
    j.maps.push(Map::ProgArray { max_entries: 4 });
    j.progs = vec![main, small_program()];
    j.slots = vec![kernel::Slot { map: 1, key: 0, prog: 1 }];
    j
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let image = match KernelImage::locate() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let t = Instant::now();
    let mut guest = Guest::boot(&image).expect("boot");
    println!("boot to ready: {:.3} s ({})", t.elapsed().as_secs_f64(), guest.banner());
    for jit in [true, false] {
        let name = if jit { "jit" } else { "interp" };
        // n jobs of 1 input each: load + 1 run per job
        let jobs: Vec<Job> = (0..n).map(|_| job(jit, 1)).collect();
        let t = Instant::now();
        let r = guest.run(&jobs).expect("run");
        let s = t.elapsed().as_secs_f64();
        assert!(r.iter().all(|x| matches!(x, JobResult::Ran { .. })));
        println!("{name}: {n} jobs x 1 input: {s:.3} s, {:.0} jobs/s", n as f64 / s);
        // 1 job with n inputs: runs only
        let t = Instant::now();
        let r = guest.run(&[job(jit, n)]).expect("run");
        let s = t.elapsed().as_secs_f64();
        assert_eq!(r[0].runs().unwrap().len(), n);
        println!("{name}: 1 job x {n} inputs: {s:.3} s, {:.0} runs/s", n as f64 / s);
        // n/4 jobs of 4 inputs (the fuzzer's default shape)
        let jobs: Vec<Job> = (0..n / 4).map(|_| job(jit, 4)).collect();
        let t = Instant::now();
        guest.run(&jobs).expect("run");
        let s = t.elapsed().as_secs_f64();
        println!("{name}: {} jobs x 4 inputs: {s:.3} s, {:.0} runs/s", n / 4, n as f64 / s);
        // the same with a tail call (2 programs, a prog array)
        let jobs: Vec<Job> = (0..n / 4).map(|_| tail_call_job(jit, 4)).collect();
        let t = Instant::now();
        let r = guest.run(&jobs).expect("run");
        let s = t.elapsed().as_secs_f64();
        assert!(
            r.iter().all(|x| x.runs().is_some_and(|runs| runs.iter().all(|r| r.errno == 0))),
            "{:?}",
            r[0]
        );
        println!("{name}: {} tail-call jobs x 4 inputs: {s:.3} s, {:.0} runs/s", n / 4, n as f64 / s);
    }
    let t = Instant::now();
    for _ in 0..100 {
        guest.run(&[]).expect("ping");
    }
    println!("empty round trip: {:.3} ms", t.elapsed().as_secs_f64() * 10.0);
}
