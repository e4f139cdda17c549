//! Engine costs: JIT compile time per BPF instruction, unicorn time per run with new code
//! every run, reference and rbpf time per executed instruction, and one 64-instruction
//! program through all three engines. Run with `cargo bench -p jitdiff --bench engines`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bpf::{AluOp, Engine, Input, Insn, Operand, Program, Reg, Width};

/// A straight-line program of `n` ALU instructions on r0-r9, varied by `seed` so that
/// every call yields new machine code. r1-r9 are set first so every read is defined.
fn alu_program(n: usize, seed: u64) -> Program {
    let ops = [AluOp::Add, AluOp::Sub, AluOp::Mul, AluOp::Xor, AluOp::Or, AluOp::And, AluOp::Lsh, AluOp::Rsh];
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut insns: Vec<Insn> = (1..=9)
        .map(|r| Insn::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst: Reg::new(r).unwrap(),
            src: Operand::Imm(next() as i32),
        })
        .collect();
    while insns.len() < n - 1 {
        let v = next();
        let src = if v & 1 == 0 {
            Operand::Imm((v >> 8) as i32 & 0xfff)
        } else {
            Operand::Reg(Reg::new((v >> 4) as u8 % 10).unwrap())
        };
        let width = if v & 2 == 0 { Width::W64 } else { Width::W32 };
        insns.push(Insn::Alu {
            width,
            op: ops[(v >> 40) as usize % ops.len()],
            dst: Reg::new((v >> 20) as u8 % 10).unwrap(),
            src,
        });
    }
    insns.push(Insn::Exit);
    Program::new(insns).unwrap()
}

fn time<F: FnMut(u64)>(min: Duration, mut f: F) -> (Duration, u64) {
    let start = Instant::now();
    let mut iters = 0u64;
    while start.elapsed() < min {
        f(iters);
        iters += 1;
    }
    (start.elapsed(), iters)
}

fn per(d: Duration, n: u64) -> f64 {
    d.as_nanos() as f64 / n as f64
}

fn main() {
    let min = Duration::from_millis(if std::env::args().any(|a| a == "--quick") { 200 } else { 2000 });
    println!("engine costs on one core (release build)\n");

    for n in [64usize, 256, 1024] {
        let progs: Vec<Program> = (0..64).map(|s| alu_program(n, s)).collect();
        let (d, it) = time(min, |i| {
            black_box(jit::compile::compile(&progs[i as usize % progs.len()]).unwrap());
        });
        println!("jit compile, {n:4} BPF insns: {:8.1} ns per BPF instruction", per(d, it * n as u64));
    }

    let mut jit_engine = jit::Jit::new();
    let input = Input::with_ctx(vec![0; 64]);
    for n in [16usize, 64, 256] {
        let (d, it) = time(min, |i| {
            black_box(jit_engine.run(&alu_program(n, 1_000_000 + i), &input));
        });
        println!(
            "jit + unicorn, {n:3} BPF insns, new code every run: {:8.1} us per run",
            per(d, it) / 1000.0
        );
    }

    let long = alu_program(4096, 7);
    let mut reference = oracle::reference::Reference::new();
    let (d, it) = time(min, |_| {
        black_box(reference.run(&long, &input));
    });
    println!("reference interpreter: {:8.2} ns per instruction", per(d, it * 4096));
    let mut rbpf = oracle::rbpf::Rbpf::new();
    let (d, it) = time(min, |_| {
        black_box(rbpf.run(&long, &input));
    });
    println!("rbpf (including lowering and its verifier): {:8.2} ns per instruction", per(d, it * 4096));

    let mut engines = compare::engines::Engines::new(&compare::engines::ALL);
    let (d, it) = time(min, |i| {
        let p = alu_program(64, 5_000_000 + i);
        black_box(compare::compare(&engines.run(&p, &input)));
    });
    println!(
        "\n64-instruction program through all three engines and the comparison: {:8.1} us",
        per(d, it) / 1000.0
    );
}
