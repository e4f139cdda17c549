//! The JIT engine on its own: constants it materialises, faults it reports, and the
//! checks the runner makes of the calling convention. Expected values are the constants
//! themselves or follow from the program text.

use bpf::asm::parse_program;
use bpf::{Engine, FaultKind, Input, Insn, Outcome, Program, Reg, RunResult};
use jit::Jit;

fn run(jit: &mut Jit, prog: &Program, input: &Input) -> Outcome {
    match jit.run(prog, input) {
        RunResult::Ran(o) => o,
        other => panic!("the JIT did not run it: {other:?}"),
    }
}

fn constant(v: u64) -> Program {
    Program::new(vec![Insn::LdImm64 { dst: Reg::R0, pseudo: 0, imm: v }, Insn::Exit]).unwrap()
}

/// Every single-bit value, its complement, sign-extension boundaries of the 12-, 20- and
/// 32-bit immediates, and a fixed pseudo-random sweep: `r0 = v ll; exit` returns v.
#[test]
fn every_constant_materialises_exactly() {
    let mut values: Vec<u64> = vec![
        0,
        1,
        u64::MAX,
        0x7ff,
        0x800,
        0xfff,
        0x1000,
        0x7ffff7ff,
        0x7ffff800,
        0x7fffffff,
        0x80000000,
        0xffffffff,
        0x1_0000_0000,
        0xffff_ffff_ffff_f800,
        0xffff_ffff_8000_0000,
        0xffff_ffff_7fff_f800,
        i64::MIN as u64,
        i64::MAX as u64,
        0x8000_0000_0000_0800,
        0x7fff_ffff_ffff_f800,
    ];
    for b in 0..64 {
        values.push(1 << b);
        values.push(!(1u64 << b));
        values.push((1u64 << b).wrapping_sub(1));
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..500 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        values.push(x);
        values.push(x & 0xffff_f800);
        values.push(x | 0xffff_ffff_0000_0000);
    }
    let mut jit = Jit::new();
    for v in values {
        assert_eq!(run(&mut jit, &constant(v), &Input::none()).result, Ok(v), "constant {v:#x}");
    }
}

#[test]
fn a_wild_load_is_a_memory_fault_at_its_bpf_pc() {
    let prog = parse_program("r0 = 0\nr1 = 0x50000000 ll\nr0 = *(u64 *)(r1 + 8)\nexit").unwrap();
    let out = run(&mut Jit::new(), &prog, &Input::none());
    let f = out.result.unwrap_err();
    assert_eq!(f.kind, FaultKind::MemoryAccess);
    assert_eq!(f.pc, Some(3), "the load is at pc 3 (the lddw takes two slots)");
    assert!(f.detail.contains("0x50000008"), "{}", f.detail);
}

#[test]
fn an_endless_loop_is_a_budget_fault() {
    let prog = parse_program("r0 = 0\nloop:\nr0 += 1\ngoto loop\nexit").unwrap();
    let f = run(&mut Jit::with_block_limit(100_000), &prog, &Input::none()).result.unwrap_err();
    assert_eq!(f.kind, FaultKind::Budget);
}

#[test]
fn context_writes_are_returned_and_do_not_leak_into_the_next_run() {
    let mut jit = Jit::new();
    let write = parse_program("*(u32 *)(r1 + 4) = -1\nr0 = 0\nexit").unwrap();
    let out = run(&mut jit, &write, &Input::with_ctx(vec![1; 8]));
    assert_eq!(out.ctx, vec![1, 1, 1, 1, 0xff, 0xff, 0xff, 0xff]);
    // Bytes past the context's end (still inside the mapped page) are cleared per run.
    let read = parse_program("r0 = *(u32 *)(r1 + 4)\nexit").unwrap();
    assert_eq!(run(&mut jit, &read, &Input::with_ctx(vec![0; 4096])).result, Ok(0));
}

#[test]
fn new_code_at_the_same_address_replaces_the_old() {
    let mut jit = Jit::new();
    for v in 0..50u64 {
        assert_eq!(run(&mut jit, &constant(v), &Input::none()).result, Ok(v));
    }
}

#[test]
fn registers_start_at_zero_like_the_other_engines() {
    let prog =
        parse_program("r0 = r2\nr0 |= r3\nr0 |= r4\nr0 |= r5\nr0 |= r6\nr0 |= r7\nr0 |= r8\nr0 |= r9\nexit")
            .unwrap();
    assert_eq!(run(&mut Jit::new(), &prog, &Input::none()).result, Ok(0));
}
