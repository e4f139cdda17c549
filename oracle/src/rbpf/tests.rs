//! The rbpf engine against hand-derived kernel semantics. Every expected value is written
//! out from the kernel's definition of the instruction, never taken from an engine.

use super::*;
use bpf::{
    AluOp, AtomicOp, ByteOrder, Call, Cond, Fault, FaultKind, Insn, Operand, Program, Reg, Size, SxBits,
    Width, MAX_STACK,
};

const W64: Width = Width::W64;
const W32: Width = Width::W32;

fn alu(width: Width, op: AluOp, dst: Reg, src: Operand) -> Insn {
    Insn::Alu { width, op, dst, src }
}
fn mov(dst: Reg, imm: i32) -> Insn {
    alu(W64, AluOp::Mov, dst, Operand::Imm(imm))
}
fn lddw(dst: Reg, imm: u64) -> Insn {
    Insn::LdImm64 { dst, pseudo: 0, imm }
}
fn jmp(width: Width, cond: Cond, dst: Reg, src: Operand, off: i16) -> Insn {
    Insn::Jmp { width, cond, dst, src, off }
}
fn load(size: Size, signed: bool, dst: Reg, src: Reg, off: i16) -> Insn {
    Insn::Load { size, signed, dst, src, off }
}
fn store(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
    Insn::Store { size, dst, src, off }
}
const EXIT: Insn = Insn::Exit;

fn run_on(engine: &mut Rbpf, prog: &Program, input: &Input) -> Outcome {
    match engine.run(prog, input) {
        RunResult::Ran(o) => {
            assert!(!o.r0_is_address);
            o
        }
        RunResult::CannotJudge(why) => panic!("rbpf cannot judge: {why}"),
        RunResult::Rejected(log) => panic!("rejected: {log}"),
    }
}
fn outcome(insns: Vec<Insn>, input: &Input) -> Outcome {
    run_on(&mut Rbpf::new(), &Program::new(insns).unwrap(), input)
}
fn r0(insns: Vec<Insn>) -> u64 {
    match outcome(insns, &Input::none()).result {
        Ok(v) => v,
        Err(f) => panic!("unexpected fault: {f}"),
    }
}
fn fault(insns: Vec<Insn>, input: &Input) -> Fault {
    fault_with_depth(insns, MAX_STACK, input)
}
fn fault_with_depth(insns: Vec<Insn>, depth: u32, input: &Input) -> Fault {
    let prog = Program::with_stack_depth(insns, depth).unwrap();
    match run_on(&mut Rbpf::new(), &prog, input).result {
        Ok(v) => panic!("expected a fault, got r0 = {v:#x}"),
        Err(f) => f,
    }
}
fn cannot_judge(insns: Vec<Insn>) -> String {
    match Rbpf::new().run(&Program::new(insns).unwrap(), &Input::none()) {
        RunResult::CannotJudge(why) => why,
        other => panic!("expected cannot-judge, got: {other:?}"),
    }
}

/// `r1 = x; r0 = 0; if r1 <cond> c goto +1; exit; r0 = 1; exit`: 1 iff the jump is taken.
fn jump_taken(cond: Cond, x: u64, c: i32) -> bool {
    let v = r0(vec![
        lddw(Reg::R1, x),
        mov(Reg::R0, 0),
        jmp(W64, cond, Reg::R1, Operand::Imm(c), 1),
        EXIT,
        mov(Reg::R0, 1),
        EXIT,
    ]);
    assert!(v <= 1);
    v == 1
}

#[test]
fn name_is_rbpf() {
    assert_eq!(Rbpf::new().name(), "rbpf");
    assert_eq!(Rbpf::default().back_edge_budget(), DEFAULT_BACK_EDGE_BUDGET);
}

#[test]
fn jeq_minus_one_sign_extends() {
    // r1 = -1 (64-bit); if r1 == -1 goto +1; r0 = 0; exit; r0 = 1; exit  ->  1
    let v = r0(vec![
        mov(Reg::R1, -1),
        jmp(W64, Cond::Eq, Reg::R1, Operand::Imm(-1), 2),
        mov(Reg::R0, 0),
        EXIT,
        mov(Reg::R0, 1),
        EXIT,
    ]);
    assert_eq!(v, 1);
}

#[test]
fn negative_k_jumps_by_hand() {
    // (x, c, [==, !=, >, >=, <, <=]) with the immediate sign-extended to 64 bits.
    let table: &[(u64, i32, [bool; 6])] = &[
        (u64::MAX, -1, [true, false, false, true, false, true]),
        (0xffff_ffff, -1, [false, true, false, false, true, true]),
        (0, -1, [false, true, false, false, true, true]),
        (0x7fff_ffff_ffff_ffff, -1, [false, true, false, false, true, true]),
        (0x8000_0000_0000_0000, -2, [false, true, false, false, true, true]),
        (u64::MAX, -2, [false, true, true, true, false, false]),
        (0xffff_ffff_ffff_fffe, -2, [true, false, false, true, false, true]),
        (0xffff_ffff_8000_0000, i32::MIN, [true, false, false, true, false, true]),
        (0xffff_ffff_7fff_ffff, i32::MIN, [false, true, false, false, true, true]),
        (0xffff_ffff_8000_0001, i32::MIN, [false, true, true, true, false, false]),
        (0x8000_0000, i32::MIN, [false, true, false, false, true, true]),
    ];
    let conds = [Cond::Eq, Cond::Ne, Cond::Gt, Cond::Ge, Cond::Lt, Cond::Le];
    for &(x, c, expected) in table {
        for (cond, want) in conds.into_iter().zip(expected) {
            assert_eq!(jump_taken(cond, x, c), want, "{x:#x} {} {c}", cond.symbol());
        }
    }
}

#[test]
fn every_64_bit_k_jump_agrees_with_the_definition() {
    let xs = [
        0,
        1,
        0x7f,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        0x1_0000_0000,
        0x7fff_ffff_ffff_ffff,
        0x8000_0000_0000_0000,
        0xffff_ffff_8000_0000,
        0xffff_ffff_ffff_fffe,
        u64::MAX,
    ];
    let cs = [0, 1, 0x7fff_ffff, -1, -2, -0x7f, i32::MIN, i32::MIN + 1];
    for cond in Cond::ALL {
        for &x in &xs {
            for &c in &cs {
                let want = cond.holds(x, c as i64 as u64, false);
                assert_eq!(jump_taken(cond, x, c), want, "{x:#x} {} {c}", cond.symbol());
            }
        }
    }
}

#[test]
fn jumps_on_r10() {
    // R10 is a nonzero stack address: r10 > 0, r10 == r10, !(r10 != r10), !(r10 < 0).
    let taken = |cond: Cond, width: Width, src: Reg| {
        let v = r0(vec![
            mov(Reg::R1, 0),
            mov(Reg::R0, 0),
            jmp(width, cond, Reg::R10, Operand::Reg(src), 1),
            EXIT,
            mov(Reg::R0, 1),
            EXIT,
        ]);
        v == 1
    };
    // (Only the 64-bit comparisons with 0 are independent of where the stack lies.)
    assert!(taken(Cond::Gt, W64, Reg::R1));
    assert!(taken(Cond::Ge, W64, Reg::R1));
    assert!(taken(Cond::Ne, W64, Reg::R1));
    assert!(!taken(Cond::Lt, W64, Reg::R1));
    assert!(!taken(Cond::Le, W64, Reg::R1));
    assert!(!taken(Cond::Eq, W64, Reg::R1));
    for width in [W64, W32] {
        for (cond, want) in [
            (Cond::Eq, true),
            (Cond::Ge, true),
            (Cond::Le, true),
            (Cond::Sge, true),
            (Cond::Sle, true),
            (Cond::Ne, false),
            (Cond::Gt, false),
            (Cond::Lt, false),
            (Cond::Sgt, false),
            (Cond::Slt, false),
        ] {
            assert_eq!(taken(cond, width, Reg::R10), want, "{width:?} r10 {} r10", cond.symbol());
        }
    }
    // r10 & r10 is r10, never 0; w10 & w10 depends on where the stack is.
    assert!(taken(Cond::Set, W64, Reg::R10));
    let why =
        cannot_judge(vec![mov(Reg::R0, 0), jmp(W32, Cond::Set, Reg::R10, Operand::Reg(Reg::R10), 0), EXIT]);
    assert!(why.starts_with("pc 1: if w10 & w10:"), "{why}");
    // r1 = r10 - 8: r10 s> r1, r1 s< r10, r10 >= r1.
    let swapped = |cond: Cond| {
        r0(vec![
            alu(W64, AluOp::Mov, Reg::R1, Operand::Reg(Reg::R10)),
            alu(W64, AluOp::Add, Reg::R1, Operand::Imm(-8)),
            mov(Reg::R0, 0),
            jmp(W64, cond, Reg::R10, Operand::Reg(Reg::R1), 1),
            EXIT,
            mov(Reg::R0, 1),
            EXIT,
        ]) == 1
    };
    assert!(swapped(Cond::Sgt) && swapped(Cond::Sge) && swapped(Cond::Gt) && swapped(Cond::Ge));
    assert!(!swapped(Cond::Slt) && !swapped(Cond::Sle) && !swapped(Cond::Lt) && !swapped(Cond::Le));
    let why = cannot_judge(vec![mov(Reg::R0, 0), jmp(W64, Cond::Gt, Reg::R10, Operand::Imm(0), 0), EXIT]);
    assert!(why.starts_with("pc 1: jump comparing r10 with an immediate"), "{why}");
}

#[test]
fn backward_negative_k_jump_loops() {
    // r0 = 0; r1 = -5; L: r0 += 1; r1 += 1; if r1 <u -1 goto L; exit
    // r1 goes -4, -3, -2 (all below 2^64 - 1, loop again), -1 (stop): 4 iterations.
    let v = r0(vec![
        mov(Reg::R0, 0),
        mov(Reg::R1, -5),
        alu(W64, AluOp::Add, Reg::R0, Operand::Imm(1)),
        alu(W64, AluOp::Add, Reg::R1, Operand::Imm(1)),
        jmp(W64, Cond::Lt, Reg::R1, Operand::Imm(-1), -3),
        EXIT,
    ]);
    assert_eq!(v, 4);
}

#[test]
fn alu32_results_are_zero_extended() {
    const DST: u64 = 0xdead_beef_0000_0007; // low 32 bits: 7
    const SRC: u64 = 0xffff_ffff_0000_0002; // low 32 bits: 2
    const ZERO_LOW: u64 = 0x1_0000_0000; // low 32 bits: 0, the register is not 0
    let x = |op: AluOp, dst: u64, src: u64| {
        r0(vec![lddw(Reg::R0, dst), lddw(Reg::R2, src), alu(W32, op, Reg::R0, Operand::Reg(Reg::R2)), EXIT])
    };
    let k = |op: AluOp, dst: u64, imm: i32| {
        r0(vec![lddw(Reg::R0, dst), alu(W32, op, Reg::R0, Operand::Imm(imm)), EXIT])
    };
    let table = [
        (AluOp::Add, 9),
        (AluOp::Sub, 5),
        (AluOp::Mul, 14),
        (AluOp::Div, 3),
        (AluOp::Mod, 1),
        (AluOp::Or, 7),
        (AluOp::And, 2),
        (AluOp::Xor, 5),
        (AluOp::Lsh, 28),
        (AluOp::Rsh, 1),
        (AluOp::Arsh, 1),
        (AluOp::Mov, 2),
    ];
    for (op, want) in table {
        assert_eq!(x(op, DST, SRC), want, "w0 {}= w2", op.symbol());
        assert_eq!(k(op, DST, 2), want, "w0 {}= 2", op.symbol());
    }
    // Division by a zero divisor: DIV gives 0, MOD keeps the low 32 bits, zeroes the rest.
    assert_eq!(x(AluOp::Div, DST, ZERO_LOW), 0);
    assert_eq!(x(AluOp::Mod, DST, ZERO_LOW), 7);
    assert_eq!(x(AluOp::Mod, DST, 0), 7);
    assert_eq!(k(AluOp::Div, DST, 0), 0);
    assert_eq!(k(AluOp::Mod, DST, 0), 7);
    // Shift counts are masked to 5 bits: 33 -> 1.
    assert_eq!(k(AluOp::Lsh, DST, 33), 14);
    // 0x80000000 s>> 4 = 0xf8000000, upper half zero.
    assert_eq!(k(AluOp::Arsh, 0xdead_beef_8000_0000, 4), 0xf800_0000);
    let neg = r0(vec![lddw(Reg::R0, DST), Insn::Neg { width: W32, dst: Reg::R0 }, EXIT]);
    assert_eq!(neg, 0xffff_fff9);
}

#[test]
fn alu64_division_by_zero_and_neg() {
    const DST: u64 = 0xdead_beef_0000_0007;
    let x = |op: AluOp, src: u64| {
        r0(vec![lddw(Reg::R0, DST), lddw(Reg::R2, src), alu(W64, op, Reg::R0, Operand::Reg(Reg::R2)), EXIT])
    };
    assert_eq!(x(AluOp::Div, 0), 0);
    assert_eq!(x(AluOp::Mod, 0), DST);
    // The low half of the divisor is zero but the register is not: a real division.
    assert_eq!(x(AluOp::Div, 0x1_0000_0000), 0xdead_beef);
    assert_eq!(x(AluOp::Mod, 0x1_0000_0000), 7);
    // 64-bit immediates are sign-extended: 7 / (2^64 - 1) = 0, DST % (2^64 - 1) = DST.
    let k = r0(vec![lddw(Reg::R0, DST), alu(W64, AluOp::Div, Reg::R0, Operand::Imm(-1)), EXIT]);
    assert_eq!(k, 0);
    let neg = |v: u64| r0(vec![lddw(Reg::R0, v), Insn::Neg { width: W64, dst: Reg::R0 }, EXIT]);
    assert_eq!(neg(0x8000_0000_0000_0000), 0x8000_0000_0000_0000);
    assert_eq!(neg(1), u64::MAX);
    assert_eq!(neg(0), 0);
}

#[test]
fn movsx_edge_values() {
    let sx = |width: Width, from: SxBits, v: u64, same: bool| {
        let src = if same { Reg::R0 } else { Reg::R3 };
        r0(vec![
            lddw(Reg::R0, 0x5555_5555_5555_5555),
            lddw(src, v),
            Insn::MovSx { width, from, dst: Reg::R0, src },
            EXIT,
        ])
    };
    let table: &[(Width, SxBits, u64, u64)] = &[
        (W64, SxBits::S8, 0x80, 0xffff_ffff_ffff_ff80),
        (W64, SxBits::S8, 0x7f, 0x7f),
        (W64, SxBits::S8, 0x1234_5678_9abc_de80, 0xffff_ffff_ffff_ff80),
        (W64, SxBits::S16, 0x8000, 0xffff_ffff_ffff_8000),
        (W64, SxBits::S16, 0x7fff, 0x7fff),
        (W64, SxBits::S32, 0x8000_0000, 0xffff_ffff_8000_0000),
        (W64, SxBits::S32, 0xffff_ffff_7fff_ffff, 0x7fff_ffff),
        (W32, SxBits::S8, 0x80, 0xffff_ff80),
        (W32, SxBits::S8, 0xffff_ffff_ffff_ff7f, 0x7f),
        (W32, SxBits::S16, 0x8000, 0xffff_8000),
        (W32, SxBits::S16, 0x1_0000_7fff, 0x7fff),
    ];
    for &(width, from, v, want) in table {
        for same in [false, true] {
            assert_eq!(sx(width, from, v, same), want, "{width:?} {from:?} {v:#x} same={same}");
        }
    }
}

#[test]
fn byte_swaps() {
    let end = |order: ByteOrder, bits: u8| {
        r0(vec![lddw(Reg::R0, 0x0123_4567_89ab_cdef), Insn::End { order, bits, dst: Reg::R0 }, EXIT])
    };
    assert_eq!(end(ByteOrder::Swap, 16), 0xefcd);
    assert_eq!(end(ByteOrder::Swap, 32), 0xefcd_ab89);
    assert_eq!(end(ByteOrder::Swap, 64), 0xefcd_ab89_6745_2301);
    assert_eq!(end(ByteOrder::Be, 16), 0xefcd);
    assert_eq!(end(ByteOrder::Be, 32), 0xefcd_ab89);
    assert_eq!(end(ByteOrder::Be, 64), 0xefcd_ab89_6745_2301);
    assert_eq!(end(ByteOrder::Le, 16), 0xcdef);
    assert_eq!(end(ByteOrder::Le, 32), 0x89ab_cdef);
    assert_eq!(end(ByteOrder::Le, 64), 0x0123_4567_89ab_cdef);
}

#[test]
fn sign_extending_loads_from_the_context() {
    let ctx = Input::with_ctx(vec![0x80, 0x7f, 0x00, 0x80, 0x01, 0x02, 0x03, 0x84]);
    let ld = |size: Size, dst: Reg, off: i16| {
        let mut insns = vec![load(size, true, dst, Reg::R1, off)];
        if dst != Reg::R0 {
            insns.push(alu(W64, AluOp::Mov, Reg::R0, Operand::Reg(dst)));
        }
        insns.push(EXIT);
        outcome(insns, &ctx).result.unwrap()
    };
    assert_eq!(ld(Size::B, Reg::R0, 0), 0xffff_ffff_ffff_ff80);
    assert_eq!(ld(Size::B, Reg::R0, 1), 0x7f);
    assert_eq!(ld(Size::H, Reg::R0, 2), 0xffff_ffff_ffff_8000);
    assert_eq!(ld(Size::H, Reg::R0, 0), 0x7f80);
    assert_eq!(ld(Size::W, Reg::R0, 4), 0xffff_ffff_8403_0201);
    // 80 7f 00 80 is 0x80007f80: bit 31 set, so sign-extended.
    assert_eq!(ld(Size::W, Reg::R0, 0), 0xffff_ffff_8000_7f80);
    // The destination is the base register: the load replaces it, the shifts follow.
    assert_eq!(ld(Size::B, Reg::R1, 0), 0xffff_ffff_ffff_ff80);
    assert_eq!(ld(Size::W, Reg::R1, 4), 0xffff_ffff_8403_0201);
    // Zero-extending loads for comparison.
    let zx = outcome(vec![load(Size::W, false, Reg::R0, Reg::R1, 4), EXIT], &ctx).result;
    assert_eq!(zx, Ok(0x8403_0201));
}

#[test]
fn stores_reach_the_context_and_the_stack() {
    let ctx = Input::with_ctx(vec![0; 8]);
    let out = outcome(
        vec![
            lddw(Reg::R2, 0x1122_3344_5566_7788),
            store(Size::DW, Reg::R10, Reg::R2, -8),
            load(Size::W, false, Reg::R3, Reg::R10, -4),
            store(Size::W, Reg::R1, Reg::R3, 0),
            Insn::StoreImm { size: Size::H, dst: Reg::R1, off: 6, imm: -2 },
            mov(Reg::R0, 0),
            EXIT,
        ],
        &ctx,
    );
    assert_eq!(out.result, Ok(0));
    assert_eq!(out.ctx, vec![0x44, 0x33, 0x22, 0x11, 0, 0, 0xfe, 0xff]);
    // ST DW sign-extends its immediate.
    let out = outcome(
        vec![Insn::StoreImm { size: Size::DW, dst: Reg::R1, off: 0, imm: -2 }, mov(Reg::R0, 0), EXIT],
        &ctx,
    );
    assert_eq!(out.ctx, vec![0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
}

#[test]
fn r1_is_zero_without_context_and_an_address_with_an_empty_one() {
    let prog = vec![mov(Reg::R0, 0), jmp(W64, Cond::Eq, Reg::R1, Operand::Imm(0), 1), mov(Reg::R0, 1), EXIT];
    assert_eq!(outcome(prog.clone(), &Input::none()).result, Ok(0));
    let out = outcome(prog, &Input::with_ctx(Vec::new()));
    assert_eq!(out.result, Ok(1));
    assert!(out.ctx.is_empty());
    // But an empty context has no byte to read.
    let f = fault(vec![load(Size::B, false, Reg::R0, Reg::R1, 0), EXIT], &Input::with_ctx(Vec::new()));
    assert_eq!((f.kind, f.pc), (FaultKind::MemoryAccess, Some(0)));
}

#[test]
fn out_of_bounds_accesses_fault_at_their_pc() {
    let ctx = Input::with_ctx(vec![1, 2, 3, 4]);
    // pc 0-1: lddw; pc 2: movsx (3 lowered slots); pc 3: the load, 8 bytes from a 4-byte context.
    let f = fault(
        vec![
            lddw(Reg::R5, 1),
            Insn::MovSx { width: W64, from: SxBits::S8, dst: Reg::R4, src: Reg::R5 },
            load(Size::DW, false, Reg::R0, Reg::R1, 0),
            EXIT,
        ],
        &ctx,
    );
    assert_eq!((f.kind, f.pc), (FaultKind::MemoryAccess, Some(3)));
    assert!(f.detail.contains("out of bounds"), "{}", f.detail);
    // Straddling the end, before the start, far away, and without a context.
    for off in [3, -1, 4, 30_000, -30_000] {
        let f = fault(vec![load(Size::H, false, Reg::R0, Reg::R1, off), EXIT], &ctx);
        assert_eq!((f.kind, f.pc), (FaultKind::MemoryAccess, Some(0)), "off {off}");
    }
    let f = fault(vec![mov(Reg::R0, 0), store(Size::B, Reg::R1, Reg::R0, 4), EXIT], &ctx);
    assert_eq!((f.kind, f.pc), (FaultKind::MemoryAccess, Some(1)));
    let f = fault(vec![load(Size::B, false, Reg::R0, Reg::R1, 0), EXIT], &Input::none());
    assert_eq!((f.kind, f.pc), (FaultKind::MemoryAccess, Some(0)));
    // A sign-extending load faults at its own pc too.
    let f = fault(vec![mov(Reg::R0, 0), load(Size::W, true, Reg::R0, Reg::R1, 2), EXIT], &ctx);
    assert_eq!((f.kind, f.pc), (FaultKind::MemoryAccess, Some(1)));
}

#[test]
fn stack_bounds_follow_the_declared_depth() {
    let none = Input::none();
    let ok = |insns: Vec<Insn>, depth: u32| {
        let prog = Program::with_stack_depth(insns, depth).unwrap();
        run_on(&mut Rbpf::new(), &prog, &none).result
    };
    let st = |base: Reg, off: i16| Insn::StoreImm { size: Size::DW, dst: base, off, imm: 7 };
    // The full 512 bytes: the lowest 8 are fine, below and at R10 are not.
    assert_eq!(
        ok(vec![st(Reg::R10, -512), load(Size::DW, false, Reg::R0, Reg::R10, -512), EXIT], 512),
        Ok(7)
    );
    for off in [-520, -516, 0, -4] {
        let f = fault_with_depth(vec![st(Reg::R10, off), EXIT], 512, &none);
        assert_eq!((f.kind, f.pc), (FaultKind::MemoryAccess, Some(0)), "off {off}");
    }
    // A 16-byte stack: R10 - 16 is fine, R10 - 24 and a straddle of the limit are not.
    assert_eq!(ok(vec![st(Reg::R10, -16), load(Size::DW, false, Reg::R0, Reg::R10, -16), EXIT], 16), Ok(7));
    for off in [-24, -20, -512, 0] {
        let f = fault_with_depth(vec![mov(Reg::R0, 0), st(Reg::R10, off), EXIT], 16, &none);
        assert_eq!((f.kind, f.pc), (FaultKind::MemoryAccess, Some(1)), "off {off}");
    }
    let f = fault_with_depth(vec![load(Size::B, true, Reg::R0, Reg::R10, -17), EXIT], 16, &none);
    assert_eq!((f.kind, f.pc), (FaultKind::MemoryAccess, Some(0)));
    // No stack at all.
    let f = fault_with_depth(vec![load(Size::B, false, Reg::R0, Reg::R10, -1), EXIT], 0, &none);
    assert_eq!((f.kind, f.pc), (FaultKind::MemoryAccess, Some(0)));
    // Through a copy of R10 moved by constants.
    let via = |add: i32, off: i16| {
        vec![
            alu(W64, AluOp::Mov, Reg::R2, Operand::Reg(Reg::R10)),
            alu(W64, AluOp::Add, Reg::R2, Operand::Imm(add)),
            alu(W64, AluOp::Mov, Reg::R3, Operand::Reg(Reg::R2)),
            alu(W64, AluOp::Sub, Reg::R3, Operand::Imm(8)),
            store(Size::DW, Reg::R3, Reg::R10, off),
            mov(Reg::R0, 0),
            EXIT,
        ]
    };
    // r3 = r10 - 16 - 8: off 8 -> R10 - 16 (inside), off 0 -> R10 - 24 (outside).
    assert_eq!(ok(via(-16, 8), 16), Ok(0));
    let f = fault_with_depth(via(-16, 0), 16, &none);
    assert_eq!((f.kind, f.pc), (FaultKind::MemoryAccess, Some(4)));
    // Through a pointer moved in a loop: r2 = r10; L: r2 -= 8; *(u64 *)(r2 + 0) = 7;
    // if r2 != r10 - 32 goto L. With a 24-byte stack the fourth store (R10 - 32) faults.
    let looped = |depth: u32| {
        let prog = Program::with_stack_depth(
            vec![
                alu(W64, AluOp::Mov, Reg::R2, Operand::Reg(Reg::R10)),
                alu(W64, AluOp::Mov, Reg::R3, Operand::Reg(Reg::R10)),
                alu(W64, AluOp::Add, Reg::R3, Operand::Imm(-32)),
                alu(W64, AluOp::Sub, Reg::R2, Operand::Imm(8)),
                st(Reg::R2, 0),
                jmp(W64, Cond::Ne, Reg::R2, Operand::Reg(Reg::R3), -3),
                load(Size::DW, false, Reg::R0, Reg::R10, -32),
                EXIT,
            ],
            depth,
        )
        .unwrap();
        run_on(&mut Rbpf::new(), &prog, &none).result
    };
    assert_eq!(looped(32), Ok(7));
    let f = looped(24).unwrap_err();
    assert_eq!((f.kind, f.pc), (FaultKind::MemoryAccess, Some(4)));
    // The stack starts zeroed on every run, whatever the previous run left.
    let mut engine = Rbpf::new();
    let prog =
        Program::new(vec![load(Size::DW, false, Reg::R0, Reg::R10, -8), st(Reg::R10, -8), EXIT]).unwrap();
    for _ in 0..2 {
        assert_eq!(run_on(&mut engine, &prog, &none).result, Ok(0));
    }
}

#[test]
fn cannot_judge_names_the_instruction_and_pc() {
    let at3 = |insn: Insn| cannot_judge(vec![lddw(Reg::R0, 1), mov(Reg::R1, 1), insn, EXIT]);
    let why = at3(alu(W64, AluOp::Sdiv, Reg::R0, Operand::Reg(Reg::R1)));
    assert!(why.starts_with("pc 3: sdiv:"), "{why}");
    let why = at3(alu(W32, AluOp::Smod, Reg::R0, Operand::Imm(3)));
    assert!(why.starts_with("pc 3: smod:"), "{why}");
    for op in AtomicOp::ALL {
        let why = at3(Insn::Atomic { size: Size::DW, op, dst: Reg::R10, src: Reg::R1, off: -8 });
        assert!(why.starts_with("pc 3: atomic"), "{why}");
    }
    let why = at3(Insn::Call(Call::Helper(2)));
    assert!(why.starts_with("pc 3: call of helper 2: not a helper jitdiff offers"), "{why}");
    let why = at3(Insn::Call(Call::Kfunc(1)));
    assert!(why.starts_with("pc 3: kfunc call 1:"), "{why}");
    // Reached with R2 = 0, which is no map reference.
    let why = at3(Insn::TailCall);
    assert!(why.starts_with("pc 3: tail call: r2 = 0x0 is not a map reference"), "{why}");
    let why = at3(Insn::LdImm64 { dst: Reg::R2, pseudo: 1, imm: 5 });
    assert!(why.starts_with("pc 3: lddw map 5: there is no such map"), "{why}");
    let why = at3(Insn::LdImm64 { dst: Reg::R2, pseudo: 2, imm: 5 });
    assert!(why.starts_with("pc 3: lddw &map 5 + 0: a global variable"), "{why}");
    let why = at3(Insn::LdImm64 { dst: Reg::R2, pseudo: 3, imm: 5 });
    assert!(why.starts_with("pc 3: lddw with src = 3"), "{why}");
    let why = at3(Insn::End { order: ByteOrder::Le, bits: 8, dst: Reg::R0 });
    assert!(why.starts_with("pc 3: byte swap to 8 bits"), "{why}");
}

#[test]
fn infinite_loops_end_with_budget() {
    let budget = |insns: Vec<Insn>| {
        let f = fault(insns, &Input::none());
        assert_eq!(f.kind, FaultKind::Budget);
        f
    };
    // goto -1, with the default budget.
    budget(vec![Insn::Ja { off: -1 }]);
    // if r0 == 0 goto -1 (a conditional self-jump), and a longer loop over a backward gotol.
    budget(vec![mov(Reg::R0, 0), jmp(W64, Cond::Eq, Reg::R0, Operand::Imm(0), -1), EXIT]);
    budget(vec![mov(Reg::R0, 0), alu(W64, AluOp::Add, Reg::R0, Operand::Imm(1)), Insn::JaLong { off: -2 }]);
}

#[test]
fn budget_counts_backward_jumps_exactly() {
    // r1 = n; L: r1 -= 1; if r1 != 0 goto L; r0 = 1; exit: the backward jump runs n times.
    let count = |n: i32| {
        let prog = Program::new(vec![
            mov(Reg::R1, n),
            alu(W64, AluOp::Sub, Reg::R1, Operand::Imm(1)),
            jmp(W64, Cond::Ne, Reg::R1, Operand::Imm(0), -2),
            mov(Reg::R0, 1),
            EXIT,
        ])
        .unwrap();
        run_on(&mut Rbpf::with_back_edge_budget(10), &prog, &Input::none()).result
    };
    assert_eq!(count(10), Ok(1));
    assert_eq!(count(11).unwrap_err().kind, FaultKind::Budget);
}

#[test]
fn loops_keep_every_register() {
    // r2..r9 = 2..9; r0 = 0; r1 = 100; L: r0 += r1; r1 -= 1; if r1 != 0 goto L;
    // r0 += r2 + ... + r9  ->  5050 + 44 = 5094.
    let mut insns: Vec<Insn> = (2..=9).map(|r| mov(Reg::new(r).unwrap(), r as i32)).collect();
    insns.extend([
        mov(Reg::R0, 0),
        mov(Reg::R1, 100),
        alu(W64, AluOp::Add, Reg::R0, Operand::Reg(Reg::R1)),
        alu(W64, AluOp::Sub, Reg::R1, Operand::Imm(1)),
        jmp(W64, Cond::Ne, Reg::R1, Operand::Imm(0), -3),
    ]);
    insns.extend((2..=9).map(|r| alu(W64, AluOp::Add, Reg::R0, Operand::Reg(Reg::new(r).unwrap()))));
    insns.push(EXIT);
    assert_eq!(r0(insns), 5094);
}

#[test]
fn gotol_becomes_ja() {
    // gotol +1 over `r0 = 0` to `r0 = 2`.
    let v = r0(vec![
        mov(Reg::R0, 1),
        Insn::JaLong { off: 1 },
        mov(Reg::R0, 0),
        alu(W64, AluOp::Add, Reg::R0, Operand::Imm(1)),
        EXIT,
    ]);
    assert_eq!(v, 2);
    // A gotol over 40,000 instructions cannot become a 16-bit ja.
    let mut insns = vec![Insn::JaLong { off: 40_000 }];
    insns.extend(std::iter::repeat_n(mov(Reg::R0, 0), 40_000));
    insns.push(EXIT);
    let why = cannot_judge(insns);
    assert!(why.starts_with("pc 0: gotol:"), "{why}");
}

#[test]
fn long_programs_cannot_be_judged() {
    // MAX_SLOTS movs and an exit, plus the two-slot prefix: 32,770 slots.
    let mut insns = vec![mov(Reg::R0, 0); lower::MAX_SLOTS];
    insns.push(EXIT);
    let why = cannot_judge(insns);
    assert!(why.contains("16-bit"), "{why}");
}

/// The divergences the lowering exists for, on rbpf itself: if a new rbpf version fixes
/// one, this test says so.
#[test]
fn rbpf_itself_diverges_where_documented() {
    let raw = |insns: &[Insn]| {
        let bytes = bpf::encode_bytes(insns);
        let vm = rbpf::EbpfVmNoData::new(Some(&bytes)).map_err(|e| e.to_string())?;
        vm.execute_program().map_err(|e| e.to_string())
    };
    // JEQ -1 zero-extends: not taken for r1 = -1.
    let jeq = [
        mov(Reg::R1, -1),
        mov(Reg::R0, 0),
        jmp(W64, Cond::Eq, Reg::R1, Operand::Imm(-1), 1),
        EXIT,
        mov(Reg::R0, 1),
        EXIT,
    ];
    assert_eq!(raw(&jeq), Ok(0));
    // MOD32 by zero keeps the upper half.
    let mod32 = [
        lddw(Reg::R0, 0x1_0000_0007),
        mov(Reg::R1, 0),
        alu(W32, AluOp::Mod, Reg::R0, Operand::Reg(Reg::R1)),
        EXIT,
    ];
    assert_eq!(raw(&mod32), Ok(0x1_0000_0007));
    // SDIV runs unsigned: -6 s/ 2 gives (2^64 - 6) / 2.
    let sdiv = [mov(Reg::R0, -6), alu(W64, AluOp::Sdiv, Reg::R0, Operand::Imm(2)), EXIT];
    assert_eq!(raw(&sdiv), Ok(0x7fff_ffff_ffff_fffd));
    // MOVSX runs as MOV.
    let movsx =
        [mov(Reg::R1, 0x80), Insn::MovSx { width: W64, from: SxBits::S8, dst: Reg::R0, src: Reg::R1 }, EXIT];
    assert_eq!(raw(&movsx), Ok(0x80));
    // Pseudo lddw loads the raw immediate.
    assert_eq!(raw(&[Insn::LdImm64 { dst: Reg::R0, pseudo: 1, imm: 5 }, EXIT]), Ok(5));
    // BSWAP, MEMSX, gotol, atomics and jumps to self are refused by the verifier.
    for rejected in [
        vec![Insn::End { order: ByteOrder::Swap, bits: 16, dst: Reg::R0 }, EXIT],
        vec![load(Size::B, true, Reg::R0, Reg::R10, -1), EXIT],
        vec![Insn::JaLong { off: 0 }, EXIT],
        vec![Insn::Atomic { size: Size::W, op: AtomicOp::Add, dst: Reg::R10, src: Reg::R0, off: -4 }, EXIT],
        vec![jmp(W64, Cond::Eq, Reg::R0, Operand::Imm(1), -1), EXIT],
        vec![jmp(W64, Cond::Eq, Reg::R10, Operand::Reg(Reg::R1), 0), EXIT],
    ] {
        assert!(raw(&rejected).unwrap_err().contains("[Verifier]"), "{rejected:?}");
    }
    // R1 is 0 when the memory is empty.
    let bytes = bpf::encode_bytes(&[alu(W64, AluOp::Mov, Reg::R0, Operand::Reg(Reg::R1)), EXIT]);
    let vm = rbpf::EbpfVmRaw::new(Some(&bytes)).unwrap();
    assert_eq!(vm.execute_program(&mut []).unwrap(), 0);
}

/// Runs `bytes` on a new VM made for `lowered`'s helpers.
fn execute(bytes: &[u8], lowered: &Lowered) -> Exec {
    match Vm::new(bytes.to_vec(), lowered) {
        Ok(vm) => vm.run(&[], &[]),
        Err(refused) => refused,
    }
}

#[test]
fn rbpf_panics_and_rejections_are_caught() {
    // `call` as the last instruction passes rbpf's verifier; when it returns, the
    // interpreter runs off the end into its `unreachable!()`.
    // (Any lowering with budget code: it says which helpers to register, the counter here.)
    let any = lower(&Program::new(vec![Insn::Ja { off: -1 }]).unwrap(), MapCounts::default()).unwrap();
    run::TICKS_LEFT.set(5);
    let bytes = bpf::encode_bytes(&[mov(Reg::R0, 0), Insn::Call(Call::Helper(TICK_HELPER as i32))]);
    match execute(&bytes, &any) {
        Exec::Panicked(msg) => assert!(msg.contains("unreachable"), "{msg}"),
        _ => panic!("expected a panic"),
    }
    let bytes = bpf::encode_bytes(&[
        mov(Reg::R0, 0),
        Insn::Atomic { size: Size::W, op: AtomicOp::Add, dst: Reg::R10, src: Reg::R0, off: -4 },
        EXIT,
    ]);
    match execute(&bytes, &any) {
        Exec::Rejected(msg) => assert_eq!(insn_number(&msg), Some(1), "{msg}"),
        _ => panic!("expected a rejection"),
    }
}

#[test]
fn insn_numbers_are_parsed_from_rbpf_messages() {
    assert_eq!(insn_number("Error: out of bounds memory load (insn #12), addr 0x0"), Some(12));
    assert_eq!(insn_number("[Verifier] Error: infinite loop (insn #0)"), Some(0));
    assert_eq!(insn_number("Error: unknown helper function (id: 0x1)"), None);
}

/// A small fixed-seed generator of programs both oracles can run: scalar work in r0 and
/// r2-r8, a stack pointer in r9, memory through r1 (the context), r9 and r10, forward and
/// backward jumps (negative immediates included), and every instruction the lowering
/// rewrites.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    fn imm(&mut self) -> i32 {
        match self.below(6) {
            0 => 0,
            1 => -1,
            2 => i32::MIN,
            3 => self.below(70) as i32 - 35,
            _ => self.next() as i32,
        }
    }
    fn width(&mut self) -> Width {
        self.pick(&[W32, W64])
    }
    fn scalar(&mut self) -> Reg {
        self.pick(&[Reg::R0, Reg::R2, Reg::R3, Reg::R4, Reg::R5, Reg::R6, Reg::R7, Reg::R8])
    }
    fn operand(&mut self) -> Operand {
        if self.below(2) == 0 {
            Operand::Imm(self.imm())
        } else {
            Operand::Reg(self.scalar())
        }
    }
    fn address(&mut self) -> (Reg, i16) {
        match self.below(3) {
            0 => (Reg::R10, -(self.below(80) as i16) - 1),
            1 => (Reg::R9, 8 - self.below(80) as i16),
            _ => (Reg::R1, self.below(40) as i16 - 4),
        }
    }

    fn program(&mut self) -> Program {
        let mut insns = vec![
            alu(W64, AluOp::Mov, Reg::R9, Operand::Reg(Reg::R10)),
            alu(W64, AluOp::Add, Reg::R9, Operand::Imm(-(self.below(40) as i32))),
        ];
        for r in [Reg::R0, Reg::R2, Reg::R3, Reg::R4, Reg::R5, Reg::R6, Reg::R7, Reg::R8] {
            let v = self.next();
            insns.push(lddw(r, if self.below(3) == 0 { v & 0xff } else { v }));
        }
        let n = 5 + self.below(40) as usize;
        for i in 0..n {
            let insn = match self.below(12) {
                0..=3 => {
                    let op = self.pick(&AluOp::ALL.map(|o| {
                        if matches!(o, AluOp::Sdiv | AluOp::Smod) {
                            AluOp::Mod
                        } else {
                            o
                        }
                    }));
                    alu(self.width(), op, self.scalar(), self.operand())
                }
                4 => {
                    let width = self.width();
                    let from = match (width, self.below(3)) {
                        (_, 0) => SxBits::S8,
                        (_, 1) => SxBits::S16,
                        (W64, _) => SxBits::S32,
                        _ => SxBits::S8,
                    };
                    Insn::MovSx { width, from, dst: self.scalar(), src: self.scalar() }
                }
                5 if self.below(4) == 0 => Insn::Neg { width: self.width(), dst: self.scalar() },
                5 => Insn::End {
                    order: self.pick(&[ByteOrder::Le, ByteOrder::Be, ByteOrder::Swap]),
                    bits: self.pick(&[16, 32, 64]),
                    dst: self.scalar(),
                },
                6..=7 => {
                    let off = if self.below(8) == 0 {
                        -(self.below(i as u64 + 1) as i16) - 1
                    } else {
                        self.below((n - i) as u64) as i16
                    };
                    let cond = self.pick(&Cond::ALL);
                    match self.below(10) {
                        0 => Insn::JaLong { off: i32::from(off) },
                        // Comparisons between stack pointers do not depend on where the stack is.
                        1 => jmp(W64, cond, Reg::R10, Operand::Reg(self.pick(&[Reg::R9, Reg::R10])), off),
                        _ => jmp(self.width(), cond, self.scalar(), self.operand(), off),
                    }
                }
                8..=9 => {
                    let size = self.pick(&Size::ALL);
                    let (base, off) = self.address();
                    load(size, size != Size::DW && self.below(2) == 0, self.scalar(), base, off)
                }
                _ => {
                    let size = self.pick(&Size::ALL);
                    let (base, off) = self.address();
                    if self.below(2) == 0 {
                        store(size, base, self.scalar(), off)
                    } else {
                        Insn::StoreImm { size, dst: base, off, imm: self.imm() }
                    }
                }
            };
            insns.push(insn);
        }
        insns.push(EXIT);
        let depth = self.pick(&[512, 64, 16, 0]);
        Program::with_stack_depth(insns, depth).unwrap()
    }

    fn input(&mut self) -> Input {
        match self.below(3) {
            0 => Input::none(),
            1 => Input::with_ctx(vec![]),
            _ => Input::with_ctx((0..32).map(|_| self.next() as u8).collect()),
        }
    }
}

/// The two oracles agree on random programs: same R0, same fault class and pc, same
/// context. Runs whose R0 is an address or that spend a budget are not compared.
#[test]
fn agrees_with_the_reference_on_random_programs() {
    use crate::reference::Reference;
    let mut gen = Gen(0x1234_5678_9abc_def1);
    let mut rbpf = Rbpf::with_back_edge_budget(10_000);
    let mut reference = Reference::with_budget(1_000_000);
    let mut compared = 0;
    for case in 0..2_000 {
        let prog = gen.program();
        let input = gen.input();
        let (RunResult::Ran(want), RunResult::Ran(got)) =
            (reference.run(&prog, &input), rbpf.run(&prog, &input))
        else {
            panic!("case {case}: a program of plain instructions was not judged");
        };
        let budget = |o: &Outcome| matches!(&o.result, Err(f) if f.kind == FaultKind::Budget);
        if want.r0_is_address || budget(&want) || budget(&got) {
            continue;
        }
        let same = match (&want.result, &got.result) {
            (Ok(a), Ok(b)) => a == b,
            (Err(a), Err(b)) => (a.kind, a.pc) == (b.kind, b.pc),
            _ => false,
        };
        assert!(
            same && want.ctx == got.ctx,
            "case {case}: {prog:?}\ninput {input:?}\nreference {want:?}\nrbpf {got:?}\nlowered {:?}",
            lower(&prog, MapCounts::default()).map(|l| l.insns().to_vec())
        );
        compared += 1;
    }
    assert!(compared > 1_800, "only {compared} runs compared");
}
