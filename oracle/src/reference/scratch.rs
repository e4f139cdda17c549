//! TEMPORARY: kernel test_bpf replay and timing (removed before handing back).
use super::Reference;
use bpf::{Engine, Input, Program, RunResult};
use std::time::Instant;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn replay(path: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut engine = Reference::new();
    let (mut ok, mut bad, mut noload) = (0, 0, 0);
    let mut insns_run = 0usize;
    let mut total = std::time::Duration::ZERO;
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (idx, ctx, size, depth, want) = (
            f[0],
            f[1],
            f[2].parse::<usize>().unwrap(),
            f[3].parse::<u32>().unwrap(),
            f[4].parse::<u64>().unwrap(),
        );
        let bytes = hex(f[5]);
        let insns = match bpf::decode_bytes(&bytes) {
            Ok(i) => i,
            Err(e) => {
                println!("#{idx}: decode {e}");
                noload += 1;
                continue;
            }
        };
        let depth = if depth == 0 { 512 } else { depth };
        let prog = match Program::with_stack_depth(insns.clone(), depth) {
            Ok(p) => p,
            Err(e) => {
                // trailing unreachable instruction after exit: drop it
                let mut i2 = insns.clone();
                i2.pop();
                match Program::with_stack_depth(i2, depth) {
                    Ok(p) => {
                        println!("#{idx}: trimmed ({e})");
                        p
                    }
                    Err(e) => {
                        println!("#{idx}: load {e}");
                        noload += 1;
                        continue;
                    }
                }
            }
        };
        let input = match ctx {
            "none" => Input::none(),
            _ => Input::with_ctx(vec![0; size]),
        };
        let t = Instant::now();
        let res = engine.run(&prog, &input);
        total += t.elapsed();
        insns_run += prog.insns().len();
        match res {
            RunResult::Ran(out) => match out.result {
                Ok(r0) if r0 as u32 as u64 == want => ok += 1,
                other => {
                    bad += 1;
                    println!("#{idx}: got {other:?} want {want}");
                }
            },
            RunResult::CannotJudge(w) => {
                bad += 1;
                println!("#{idx}: cannot judge {w}");
            }
        }
    }
    println!(
        "{path}: ok {ok} bad {bad} noload {noload}; total run time {total:?} ({insns_run} static insns)"
    );
}

#[test]
#[ignore]
fn kernel_static() {
    replay("/tmp/refcheck/static.txt");
}

#[test]
#[ignore]
fn kernel_generated() {
    replay("/tmp/refcheck/generated.txt");
}

#[test]
#[ignore]
fn timing() {
    use bpf::{AluOp, Insn, Operand, Reg, Width};
    let all = [
        AluOp::Add,
        AluOp::Sub,
        AluOp::Mul,
        AluOp::Xor,
        AluOp::Or,
        AluOp::And,
        AluOp::Lsh,
        AluOp::Rsh,
        AluOp::Arsh,
        AluOp::Div,
        AluOp::Mod,
    ];
    let mut e = Reference::new();
    let input = Input::none();
    let n = 100;
    for (name, ops) in [("no div/mod", &all[..9]), ("with div/mod", &all[..]), ("add only", &all[..1])] {
        let mut insns = Vec::new();
        for i in 0..10_000usize {
            let op = ops[i % ops.len()];
            let width = if i % 3 == 0 { Width::W32 } else { Width::W64 };
            let dst = Reg::new((i % 9) as u8).unwrap();
            let src = if i % 2 == 0 {
                Operand::Imm((i as i32) * 7919 + 1)
            } else {
                Operand::Reg(Reg::new(((i + 3) % 9) as u8).unwrap())
            };
            insns.push(Insn::Alu { width, op, dst, src });
        }
        insns.push(Insn::Exit);
        let prog = Program::new(insns).unwrap();
        for _ in 0..50 {
            e.run(&prog, &input);
        }
        let mut v = Vec::new();
        let mut dec = f64::MAX;
        let mut all = f64::MAX;
        for _ in 0..15 {
            let t = Instant::now();
            for _ in 0..n {
                super::decode::decode_into(&prog, &mut v);
                std::hint::black_box(&v);
            }
            dec = dec.min(t.elapsed().as_nanos() as f64 / (n as f64 * 10_001.0));
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(e.run(&prog, &input));
            }
            all = all.min(t.elapsed().as_nanos() as f64 / (n as f64 * 10_001.0));
        }
        println!("{name}: run {all:.2} ns/insn, of which decode {dec:.2}");
    }
    let lp = Program::new(vec![
        Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R1, src: Operand::Imm(2_000_000) },
        Insn::Alu { width: Width::W64, op: AluOp::Add, dst: Reg::R0, src: Operand::Reg(Reg::R1) },
        Insn::Alu { width: Width::W32, op: AluOp::Xor, dst: Reg::R0, src: Operand::Imm(0x55) },
        Insn::Store { size: bpf::Size::DW, dst: Reg::R10, src: Reg::R0, off: -8 },
        Insn::Load { size: bpf::Size::W, signed: false, dst: Reg::R2, src: Reg::R10, off: -8 },
        Insn::Alu { width: Width::W64, op: AluOp::Sub, dst: Reg::R1, src: Operand::Imm(1) },
        Insn::Jmp { width: Width::W64, cond: bpf::Cond::Ne, dst: Reg::R1, src: Operand::Imm(0), off: -6 },
        Insn::Exit,
    ])
    .unwrap();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        std::hint::black_box(e.run(&lp, &input));
        best = best.min(t.elapsed().as_nanos() as f64 / 12_000_002.0);
    }
    println!("loop with load/store: {best:.2} ns/insn");
}
