//! Program sets on rbpf: bpf2bpf calls, helpers and tail calls. Every expected value is
//! written out from the kernel's definition (`___bpf_prog_run`, the verifier's rules),
//! never taken from an engine; helper results come from the shared implementation in
//! `bpf::helpers`, which defines them.

use super::*;
use bpf::helpers;
use bpf::{
    AluOp, Call, Cond, Fault, FaultKind, Insn, Operand, ProgArray, Program, Reg, SetProgram, Size, Width,
    PSEUDO_MAP_FD,
};

const W64: Width = Width::W64;
const EXIT: Insn = Insn::Exit;
const TAIL: Insn = Insn::Call(Call::Helper(helpers::TAIL_CALL));

fn mov(dst: Reg, imm: i32) -> Insn {
    Insn::Alu { width: W64, op: AluOp::Mov, dst, src: Operand::Imm(imm) }
}
fn movr(dst: Reg, src: Reg) -> Insn {
    Insn::Alu { width: W64, op: AluOp::Mov, dst, src: Operand::Reg(src) }
}
fn add(dst: Reg, imm: i32) -> Insn {
    Insn::Alu { width: W64, op: AluOp::Add, dst, src: Operand::Imm(imm) }
}
fn addr(dst: Reg, src: Reg) -> Insn {
    Insn::Alu { width: W64, op: AluOp::Add, dst, src: Operand::Reg(src) }
}
fn call(off: i32) -> Insn {
    Insn::Call(Call::Local(off))
}
fn helper(id: i32) -> Insn {
    Insn::Call(Call::Helper(id))
}
fn map(dst: Reg, k: u64) -> Insn {
    Insn::LdImm64 { dst, pseudo: PSEUDO_MAP_FD, imm: k }
}
fn st(base: Reg, off: i16, imm: i32) -> Insn {
    Insn::StoreImm { size: Size::DW, dst: base, off, imm }
}
fn ld(dst: Reg, base: Reg, off: i16) -> Insn {
    Insn::Load { size: Size::DW, signed: false, dst, src: base, off }
}
fn jne(dst: Reg, imm: i32, off: i16) -> Insn {
    Insn::Jmp { width: W64, cond: Cond::Ne, dst, src: Operand::Imm(imm), off }
}

/// A program whose every function has `depth` bytes of stack.
fn prog_with_depth(insns: Vec<Insn>, depth: u32) -> Program {
    let mut p = Program::new(insns).unwrap();
    let n = p.functions().len();
    p.set_stack_depths(vec![depth; n]).unwrap();
    p
}

/// A set of programs (the first is the entry) and prog arrays.
fn set_of(progs: Vec<Program>, maps: Vec<Vec<Option<usize>>>) -> ProgramSet {
    ProgramSet::new(
        progs.into_iter().enumerate().map(|(i, prog)| SetProgram { name: format!("p{i}"), prog }).collect(),
        maps.into_iter().enumerate().map(|(i, slots)| ProgArray { name: format!("m{i}"), slots }).collect(),
    )
    .unwrap()
}

fn run_on(engine: &mut Rbpf, set: &ProgramSet, input: &Input) -> Outcome {
    match engine.run_set(set, input) {
        RunResult::Ran(o) => o,
        RunResult::CannotJudge(why) => panic!("rbpf cannot judge: {why}"),
        RunResult::Rejected(log) => panic!("rejected: {log}"),
    }
}
fn outcome(set: &ProgramSet, input: &Input) -> Outcome {
    run_on(&mut Rbpf::new(), set, input)
}
fn cannot_judge(set: &ProgramSet, input: &Input) -> String {
    match Rbpf::new().run_set(set, input) {
        RunResult::CannotJudge(why) => why,
        other => panic!("expected cannot-judge, got: {other:?}"),
    }
}
/// The helpers of `helpers::ALL` the rbpf backend runs: all but `map_lookup_elem` (array
/// maps are not modelled) and `strtoul` (it reads and writes memory).
fn offered() -> Vec<i32> {
    helpers::ALL.into_iter().filter(|&id| id != helpers::MAP_LOOKUP_ELEM && id != helpers::STRTOUL).collect()
}

fn ctx8() -> Input {
    Input::with_ctx(vec![0; 8])
}

#[test]
fn a_subprogram_call_has_its_own_frame_and_keeps_r6_to_r9() {
    let main = prog_with_depth(
        vec![
            mov(Reg::R6, 5),
            st(Reg::R10, -8, 11),
            movr(Reg::R1, Reg::R10),
            add(Reg::R1, -8),
            call(4), // pc 4 -> pc 9
            addr(Reg::R0, Reg::R6),
            ld(Reg::R2, Reg::R10, -8),
            addr(Reg::R0, Reg::R2),
            EXIT,
            // pc 9: the subprogram; R1 points to the caller's slot.
            st(Reg::R10, -8, 7),
            ld(Reg::R0, Reg::R1, 0),
            st(Reg::R1, 0, 100),
            mov(Reg::R6, 1000),
            ld(Reg::R3, Reg::R10, -8),
            addr(Reg::R0, Reg::R3),
            EXIT,
        ],
        8,
    );
    // The callee reads the caller's 11 through the pointer and adds its own 7: 18; it
    // writes 100 into the caller's slot; its R6 = 1000 is gone after the return (R6 = 5).
    // 18 + 5 + 100 = 123. Overlapping frames would give the callee the caller's slot.
    let out = outcome(&ProgramSet::single(main), &Input::none());
    assert_eq!(out.result, Ok(123));
    assert_eq!((out.tail_calls, out.helper_calls.len()), (0, 0));
}

#[test]
fn a_callee_frame_ends_where_its_depth_says() {
    // main (16 bytes) calls sub (8 bytes): sub's frame is the 8 bytes below main's frame;
    // a store 16 bytes below sub's R10 leaves both.
    let at = |off: i16| {
        let mut p = Program::new(vec![call(1), EXIT, st(Reg::R10, off, 1), mov(Reg::R0, 0), EXIT]).unwrap();
        p.set_stack_depths(vec![16, 8]).unwrap();
        Rbpf::new().run(&p, &Input::none())
    };
    let RunResult::Ran(ok) = at(-8) else { panic!() };
    assert_eq!(ok.result, Ok(0));
    let RunResult::Ran(bad) = at(-16) else { panic!() };
    let f = bad.result.unwrap_err();
    assert_eq!((f.kind, f.pc), (FaultKind::MemoryAccess, Some(2)));
}

/// Functions f0..f(n-1): each stores k at R10 - 8, calls the next, and adds back what it
/// stored; the last one runs a loop of three iterations adding 100 (so it calls the budget
/// subroutine from the deepest frame).
fn nested(n: usize) -> Program {
    let mut insns = Vec::new();
    for k in 0..n - 1 {
        insns.extend([
            st(Reg::R10, -8, k as i32),
            call(3),
            ld(Reg::R1, Reg::R10, -8),
            addr(Reg::R0, Reg::R1),
            EXIT,
        ]);
    }
    insns.extend([
        mov(Reg::R0, 0),
        mov(Reg::R2, 3),
        add(Reg::R0, 100),
        add(Reg::R2, -1),
        jne(Reg::R2, 0, -3),
        EXIT,
    ]);
    prog_with_depth(insns, 8)
}

#[test]
fn seven_nested_calls_run_and_eight_cannot_be_judged() {
    // 8 frames: 300 from the deepest, plus 0 + 1 + ... + 6 = 21 from the others.
    let p = nested(8);
    assert_eq!(p.functions().len(), 8);
    assert_eq!(outcome(&ProgramSet::single(p), &Input::none()).result, Ok(321));
    // The loop's backward jump runs three times: a budget of 2 stops the run.
    let out = run_on(&mut Rbpf::with_back_edge_budget(2), &ProgramSet::single(nested(8)), &Input::none());
    assert_eq!(out.result.unwrap_err().kind, FaultKind::Budget);
    // 9 frames: the call from the 8th (pc 36) is refused.
    let why = cannot_judge(&ProgramSet::single(nested(9)), &Input::none());
    assert!(why.starts_with("pc 36: local call: calls can nest more than 8 frames"), "{why}");
}

#[test]
fn recursion_cannot_be_judged() {
    // f0 calls f1 (pc 3), which calls f0 back, unless r1 == 0 (never reached anyway).
    let p =
        Program::new(vec![mov(Reg::R1, 1), call(1), EXIT, jne(Reg::R1, 0, 1), EXIT, call(-6), EXIT]).unwrap();
    let why = cannot_judge(&ProgramSet::single(p), &Input::none());
    assert!(why.starts_with("pc 5: local call: recursive"), "{why}");
    let selfcall = Program::new(vec![mov(Reg::R0, 0), call(1), EXIT, call(-1), EXIT]).unwrap();
    let why = cannot_judge(&ProgramSet::single(selfcall), &Input::none());
    assert!(why.starts_with("pc 3: local call: recursive"), "{why}");
}

#[test]
fn every_helper_returns_its_value_into_r0_and_is_traced() {
    use helpers::*;
    // r9 = ctx; r6 = 0x66; after each call, *(u64 *)(r9 + 8k) = r0; finally r0 = r6 + r9 - ctx
    // would need the address: return r6 instead and check the context.
    let calls: [(i32, &[(Reg, i32)]); 9] = [
        (COUNTER, &[]),
        (COUNTER, &[]),
        (KTIME_GET_NS, &[]),
        (JIFFIES64, &[]),
        (KTIME_GET_BOOT_NS, &[]),
        (KTIME_GET_COARSE_NS, &[]),
        (GET_NUMA_NODE_ID, &[]),
        (TEST_FUNC, &[]),
        (MIX, &[(Reg::R1, 1), (Reg::R2, 2), (Reg::R3, 3), (Reg::R4, 4), (Reg::R5, 5)]),
    ];
    let mut insns = vec![movr(Reg::R9, Reg::R1), mov(Reg::R6, 0x66)];
    for (k, (id, args)) in calls.iter().enumerate() {
        insns.extend(args.iter().map(|&(r, v)| mov(r, v)));
        insns.push(helper(*id));
        insns.push(Insn::Store { size: Size::DW, dst: Reg::R9, src: Reg::R0, off: 8 * k as i16 });
    }
    insns.extend([movr(Reg::R0, Reg::R6), EXIT]);
    let out = outcome(&ProgramSet::single(Program::new(insns).unwrap()), &Input::with_ctx(vec![0; 72]));
    assert_eq!(out.result, Ok(0x66), "r6 survives helper calls");
    // The counter counts 1, 2; the clock advances by 1000 on each read: 1000 .. 4000; the
    // NUMA node and bpf_test_func give 0; MIX is a function of R1-R5.
    let mix = Helpers::new().call(MIX, [1, 2, 3, 4, 5]).unwrap();
    let want = [1, 2, 1000, 2000, 3000, 4000, 0, 0, mix];
    let got: Vec<u64> = out.ctx.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(got, want);
    let trace: Vec<HelperCall> = calls
        .iter()
        .zip(want)
        .map(|((id, _), ret)| HelperCall {
            id: *id,
            kfunc: false,
            args: if *id == MIX { vec![1, 2, 3, 4, 5] } else { vec![] },
            ret,
        })
        .collect();
    assert_eq!(out.helper_calls, trace);
    // A fresh run starts with fresh helper state.
    let again =
        outcome(&ProgramSet::single(Program::new(vec![helper(COUNTER), EXIT]).unwrap()), &Input::none());
    assert_eq!(again.result, Ok(1));
}

#[test]
fn helpers_in_subprograms_share_one_trace() {
    use helpers::COUNTER;
    // main: call COUNTER (1); call sub; r0 += r6 where r6 = the first result; sub: COUNTER (2).
    let p = Program::new(vec![
        helper(COUNTER),
        movr(Reg::R6, Reg::R0),
        call(2),
        addr(Reg::R0, Reg::R6),
        EXIT,
        helper(COUNTER),
        EXIT,
    ])
    .unwrap();
    let out = outcome(&ProgramSet::single(p), &Input::none());
    assert_eq!(out.result, Ok(3));
    assert_eq!(out.helper_calls.iter().map(|c| c.ret).collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn unknown_helpers_and_kfuncs_cannot_be_judged() {
    let why = cannot_judge(
        &ProgramSet::single(Program::new(vec![mov(Reg::R0, 0), helper(2), EXIT]).unwrap()),
        &Input::none(),
    );
    assert!(why.starts_with("pc 1: call of helper 2: not a helper jitdiff offers"), "{why}");
    let why = cannot_judge(
        &ProgramSet::single(Program::new(vec![Insn::Call(Call::Kfunc(7)), EXIT]).unwrap()),
        &Input::none(),
    );
    assert!(why.starts_with("pc 0: kfunc call 7:"), "{why}");
    // The engine's own helper ids are not callable either.
    for id in [lower::TICK_HELPER, lower::STOP_HELPER, lower::TAIL_HELPER, lower::FETCH_HELPER] {
        assert!(!helpers::ALL.contains(&(id as i32)));
        let p = Program::new(vec![helper(id as i32), EXIT]).unwrap();
        cannot_judge(&ProgramSet::single(p), &Input::none());
    }
}

/// `r2 = map 0; r3 = index; tail call; r0 = 99; exit` (`index` as a 64-bit constant).
fn tail_caller(index: u64, insn: Insn) -> Program {
    Program::new(vec![
        map(Reg::R2, 0),
        Insn::LdImm64 { dst: Reg::R3, pseudo: 0, imm: index },
        insn,
        mov(Reg::R0, 99),
        EXIT,
    ])
    .unwrap()
}
fn returns(v: i32) -> Program {
    Program::new(vec![mov(Reg::R0, v), EXIT]).unwrap()
}

#[test]
fn a_tail_call_returns_the_targets_r0() {
    for insn in [TAIL, Insn::TailCall] {
        let set = set_of(vec![tail_caller(1, insn), returns(42)], vec![vec![None, Some(1)]]);
        let out = outcome(&set, &ctx8());
        assert_eq!((out.result, out.tail_calls), (Ok(42), 1), "{insn:?}");
    }
    // The target gets the same R1: it reads the context.
    let reads = Program::new(vec![
        Insn::Load { size: Size::B, signed: false, dst: Reg::R0, src: Reg::R1, off: 3 },
        EXIT,
    ])
    .unwrap();
    let set = set_of(vec![tail_caller(0, TAIL), reads], vec![vec![Some(1)]]);
    let out = outcome(&set, &Input::with_ctx(vec![1, 2, 3, 4]));
    assert_eq!((out.result, out.tail_calls), (Ok(4), 1));
}

#[test]
fn an_index_at_or_past_max_entries_falls_through() {
    for index in [2, 3, 0xffff_ffff, u64::MAX] {
        let set = set_of(vec![tail_caller(index, TAIL), returns(42)], vec![vec![None, Some(1)]]);
        let out = outcome(&set, &ctx8());
        assert_eq!((out.result, out.tail_calls), (Ok(99), 0), "index {index:#x}");
    }
}

#[test]
fn the_index_is_the_low_32_bits_of_r3() {
    // 0x1_0000_0000 is index 0 (slot 0 holds program 1); as a 64-bit value it would be
    // past max_entries = 1.
    let set = set_of(vec![tail_caller(0x1_0000_0000, TAIL), returns(42)], vec![vec![Some(1)]]);
    let out = outcome(&set, &ctx8());
    assert_eq!((out.result, out.tail_calls), (Ok(42), 1));
}

#[test]
fn an_empty_slot_fails_and_consumes_a_count_only_under_the_6_12_rule() {
    // r7 = ctx; r6 = n; L: tail call to the empty slot 0; r6 -= 1; if r6 != 0 goto L;
    // tail call to slot 1 (program 1, returns 42); r0 = 7.
    let entry = |n: i32| {
        Program::new(vec![
            movr(Reg::R7, Reg::R1),
            mov(Reg::R6, n),
            movr(Reg::R1, Reg::R7), // pc 2
            map(Reg::R2, 0),
            mov(Reg::R3, 0),
            TAIL,
            add(Reg::R6, -1),
            jne(Reg::R6, 0, -7),
            movr(Reg::R1, Reg::R7),
            map(Reg::R2, 0),
            mov(Reg::R3, 1),
            TAIL,
            mov(Reg::R0, 7),
            EXIT,
        ])
        .unwrap()
    };
    let counted = || Rbpf::new().with_empty_slot(EmptySlotRule::Counted);
    // 6.12: 33 empty-slot attempts spend the count: the last tail call fails, R0 = 7.
    let set = set_of(vec![entry(33), returns(42)], vec![vec![None, Some(1)]]);
    let out = run_on(&mut counted(), &set, &ctx8());
    assert_eq!((out.result, out.tail_calls), (Ok(7), 0));
    // Today's rule: they cost nothing, the last tail call succeeds.
    let out = outcome(&set, &ctx8());
    assert_eq!((out.result, out.tail_calls), (Ok(42), 1));
    // 6.12: after 32 of them one count is left.
    let set = set_of(vec![entry(32), returns(42)], vec![vec![None, Some(1)]]);
    let out = run_on(&mut counted(), &set, &ctx8());
    assert_eq!((out.result, out.tail_calls), (Ok(42), 1));
}

/// `*(u32 *)ctx += 1`, then a tail call through slot 0 of map 0, then `r0 = 1`.
fn self_tail_caller() -> Program {
    Program::new(vec![
        movr(Reg::R6, Reg::R1),
        Insn::Load { size: Size::W, signed: false, dst: Reg::R0, src: Reg::R6, off: 0 },
        add(Reg::R0, 1),
        Insn::Store { size: Size::W, dst: Reg::R6, src: Reg::R0, off: 0 },
        movr(Reg::R1, Reg::R6),
        map(Reg::R2, 0),
        mov(Reg::R3, 0),
        TAIL,
        mov(Reg::R0, 1),
        EXIT,
    ])
    .unwrap()
}

#[test]
fn a_self_tail_call_runs_34_times() {
    // The entry and 33 successful tail calls each increment the counter; the 34th tail
    // call fails and that invocation returns 1, which every frame passes on.
    let set = set_of(vec![self_tail_caller()], vec![vec![Some(0)]]);
    let out = outcome(&set, &Input::with_ctx(vec![0; 4]));
    assert_eq!(out.result, Ok(1));
    assert_eq!(out.tail_calls, 33);
    assert_eq!(out.ctx, vec![34, 0, 0, 0]);
}

#[test]
fn a_tail_call_from_a_subprogram_returns_to_its_caller() {
    let entry = Program::new(vec![
        mov(Reg::R6, 10),
        call(2), // pc 1 -> pc 4
        addr(Reg::R0, Reg::R6),
        EXIT,
        // pc 4: the subprogram (R1 is still the context)
        mov(Reg::R6, 20),
        map(Reg::R2, 0),
        mov(Reg::R3, 0),
        TAIL,
        mov(Reg::R0, 5),
        EXIT,
    ])
    .unwrap();
    // The subprogram's frame ends with the target's 42; main goes on with its own R6.
    let set = set_of(vec![entry.clone(), returns(42)], vec![vec![Some(1)]]);
    let out = outcome(&set, &ctx8());
    assert_eq!((out.result, out.tail_calls), (Ok(52), 1));
    // Without a target the subprogram returns 5.
    let set = set_of(vec![entry, returns(42)], vec![vec![None]]);
    let out = outcome(&set, &ctx8());
    assert_eq!((out.result, out.tail_calls), (Ok(15), 0));
}

#[test]
fn a_target_reaches_the_live_frames_above_the_one_it_replaced() {
    // main stores 77 at R10 - 8 and passes its address to sub in R1; sub tail-calls with
    // that R1 (the reference interpreter keeps any R1; the kernel's verifier would want
    // the context); the target reads through it. The target's own frame starts at sub's
    // R10, below main's frame.
    let entry = Program::new(vec![
        st(Reg::R10, -8, 77),
        movr(Reg::R1, Reg::R10),
        add(Reg::R1, -8),
        call(1), // pc 3 -> pc 5
        EXIT,
        map(Reg::R2, 0), // pc 5: sub
        mov(Reg::R3, 0),
        TAIL,
        mov(Reg::R0, 0),
        EXIT,
    ])
    .unwrap();
    let mut entry = entry;
    entry.set_stack_depths(vec![8, 16]).unwrap();
    let target = Program::new(vec![
        st(Reg::R10, -16, 5),
        ld(Reg::R0, Reg::R1, 0),
        ld(Reg::R2, Reg::R10, -16),
        addr(Reg::R0, Reg::R2),
        EXIT,
    ])
    .unwrap();
    let set = set_of(vec![entry, target], vec![vec![Some(1)]]);
    assert_eq!(outcome(&set, &ctx8()).result, Ok(82));
}

#[test]
fn one_counter_one_trace_and_one_budget_for_the_whole_run() {
    use helpers::COUNTER;
    // The entry calls COUNTER (1), then tail-calls a program that calls it again (2).
    let entry = Program::new(vec![
        movr(Reg::R6, Reg::R1),
        helper(COUNTER),
        movr(Reg::R1, Reg::R6),
        map(Reg::R2, 0),
        mov(Reg::R3, 0),
        TAIL,
        EXIT,
    ])
    .unwrap();
    let set = set_of(vec![entry, Program::new(vec![helper(COUNTER), EXIT]).unwrap()], vec![vec![Some(1)]]);
    let out = outcome(&set, &ctx8());
    assert_eq!(out.result, Ok(2));
    let rets: Vec<u64> = out.helper_calls.iter().map(|c| c.ret).collect();
    assert_eq!(rets, [1, 2]);
    // A self tail call whose every invocation runs one backward jump (not taken): 34 in all.
    let looping = Program::new(vec![
        movr(Reg::R6, Reg::R1),
        mov(Reg::R2, 1),
        add(Reg::R2, -1),
        jne(Reg::R2, 0, -2),
        movr(Reg::R1, Reg::R6),
        map(Reg::R2, 0),
        mov(Reg::R3, 0),
        TAIL,
        mov(Reg::R0, 1),
        EXIT,
    ])
    .unwrap();
    let set = set_of(vec![looping], vec![vec![Some(0)]]);
    let ok = run_on(&mut Rbpf::with_back_edge_budget(34), &set, &ctx8());
    assert_eq!((ok.result, ok.tail_calls), (Ok(1), 33));
    let spent = run_on(&mut Rbpf::with_back_edge_budget(33), &set, &ctx8());
    assert_eq!(spent.result.unwrap_err().kind, FaultKind::Budget);
}

#[test]
fn a_fault_in_a_target_ends_the_run() {
    use helpers::COUNTER;
    // The target reads 8 bytes at ctx + 4 of an 8-byte context.
    let target =
        Program::new(vec![movr(Reg::R6, Reg::R1), helper(COUNTER), ld(Reg::R0, Reg::R6, 4), EXIT]).unwrap();
    let set = set_of(vec![tail_caller(0, TAIL), target], vec![vec![Some(1)]]);
    let out = outcome(&set, &ctx8());
    let f: Fault = out.result.unwrap_err();
    assert_eq!((f.kind, f.pc), (FaultKind::MemoryAccess, Some(2)));
    assert!(f.detail.starts_with("program p1 (reached by tail call 1): "), "{}", f.detail);
    assert_eq!((out.tail_calls, out.helper_calls.len()), (1, 1));
    // A target rbpf cannot run makes the run unjudgeable, when it is reached.
    let sdiv = Program::new(vec![
        Insn::Alu { width: W64, op: AluOp::Sdiv, dst: Reg::R0, src: Operand::Imm(2) },
        EXIT,
    ])
    .unwrap();
    let set = set_of(vec![tail_caller(0, TAIL), sdiv.clone()], vec![vec![Some(1)]]);
    let why = cannot_judge(&set, &ctx8());
    assert!(why.starts_with("pc 4: tail call: its target, program p1: pc 0: sdiv"), "{why}");
    let set = set_of(vec![tail_caller(1, TAIL), sdiv], vec![vec![Some(1)]]);
    assert_eq!(outcome(&set, &ctx8()).result, Ok(99));
}

#[test]
fn map_references_are_checked() {
    // R2 must hold a map reference.
    let p = Program::new(vec![mov(Reg::R2, 0), mov(Reg::R3, 0), TAIL, mov(Reg::R0, 0), EXIT]).unwrap();
    let why = cannot_judge(&set_of(vec![p], vec![vec![Some(0)]]), &ctx8());
    assert!(why.starts_with("pc 2: tail call: r2 = 0x0 is not a map reference"), "{why}");
    // A map that does not exist (a single program has none).
    let p = Program::new(vec![map(Reg::R0, 0), EXIT]).unwrap();
    let why = cannot_judge(&ProgramSet::single(p), &Input::none());
    assert!(why.starts_with("pc 0: lddw map 0: there is no such map"), "{why}");
    // The map reference is the shared guest address; there is no memory behind it.
    let p = Program::new(vec![map(Reg::R0, 1), EXIT]).unwrap();
    let set = set_of(vec![p], vec![vec![None], vec![None]]);
    assert_eq!(outcome(&set, &ctx8()).result, Ok(bpf::exec::map_addr(1)));
    let p = Program::new(vec![
        map(Reg::R2, 0),
        Insn::Load { size: Size::W, signed: false, dst: Reg::R0, src: Reg::R2, off: 0 },
        EXIT,
    ])
    .unwrap();
    let why = cannot_judge(&set_of(vec![p], vec![vec![None]]), &ctx8());
    assert!(why.starts_with("pc 2: an access to a map's memory"), "{why}");
}

#[test]
fn array_maps_cannot_be_judged_when_referenced_and_are_reported_unchanged_otherwise() {
    use bpf::set::ArrayMap;
    let arrays = vec![ArrayMap { name: "a".into(), value_size: 4, values: vec![1, 2, 3, 4, 5, 6, 7, 8] }];
    let with = |prog: Program| {
        let progs = vec![SetProgram { name: "p".into(), prog }];
        let maps = vec![ProgArray { name: "m".into(), slots: vec![None] }];
        ProgramSet::with_arrays(progs, maps, arrays.clone()).unwrap()
    };
    // Map 0 is the prog array, map 1 the array map.
    let why =
        cannot_judge(&with(Program::new(vec![map(Reg::R1, 1), mov(Reg::R0, 0), EXIT]).unwrap()), &ctx8());
    assert!(why.starts_with("pc 0: lddw map 1: an array map"), "{why}");
    let why =
        cannot_judge(&with(Program::new(vec![helper(helpers::MAP_LOOKUP_ELEM), EXIT]).unwrap()), &ctx8());
    assert!(why.starts_with("pc 0: call of helper 1 (map_lookup_elem)"), "{why}");
    let out = outcome(&with(Program::new(vec![mov(Reg::R0, 3), EXIT]).unwrap()), &ctx8());
    assert_eq!((out.result, out.arrays), (Ok(3), vec![vec![1, 2, 3, 4, 5, 6, 7, 8]]));
}

/// Each invocation: f0 increments `*(u32 *)ctx` and calls f1, ..., f6 calls f7, which
/// tail-calls the program itself through slot 0 and returns 1000 when that fails; every
/// f_k stores 1 at R10 - 8 before its call and adds it to R0 afterwards. Every function has
/// `depth` bytes of stack.
fn deep_self_tail_caller(depth: u32) -> Program {
    let mut insns = vec![
        movr(Reg::R6, Reg::R1),
        Insn::Load { size: Size::W, signed: false, dst: Reg::R0, src: Reg::R6, off: 0 },
        add(Reg::R0, 1),
        Insn::Store { size: Size::W, dst: Reg::R6, src: Reg::R0, off: 0 },
    ];
    for _ in 0..7 {
        insns.extend([
            st(Reg::R10, -(depth as i16), 1),
            call(3),
            ld(Reg::R2, Reg::R10, -(depth as i16)),
            addr(Reg::R0, Reg::R2),
            EXIT,
        ]);
    }
    insns.extend([map(Reg::R2, 0), mov(Reg::R3, 0), TAIL, mov(Reg::R0, 1000), EXIT]);
    prog_with_depth(insns, depth)
}

#[test]
fn thirty_three_nested_tail_calls_from_the_eighth_frame() {
    // The innermost invocation returns 1000 + 7; each of the 33 outer ones adds 7 more:
    // 1000 + 7 * 34. Each level's frames start 7 * 512 bytes below the previous level's.
    let set = set_of(vec![deep_self_tail_caller(512)], vec![vec![Some(0)]]);
    let out = outcome(&set, &Input::with_ctx(vec![0; 4]));
    assert_eq!(out.result, Ok(1000 + 7 * 34));
    assert_eq!((out.tail_calls, out.ctx.as_slice()), (33, &[34, 0, 0, 0][..]));
}

#[test]
fn thirty_four_nested_vms_fit_a_small_host_stack() {
    // Each nested VM takes about 2 KiB of host stack (1,936 bytes measured on x86-64 in a
    // release build: the helper, the VM and rbpf's interpreter), 64 KiB for all 34; a
    // thread with 1 MiB leaves a wide margin, debug builds included (spawned threads get
    // 2 MiB by default).
    let handle = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(|| {
            let set = set_of(vec![deep_self_tail_caller(64)], vec![vec![Some(0)]]);
            outcome(&set, &Input::with_ctx(vec![0; 4])).result
        })
        .unwrap();
    assert_eq!(handle.join().unwrap(), Ok(1000 + 7 * 34));
}

#[test]
fn every_helper_id_has_a_forwarding_function() {
    // Registration pairs ALL[k] with SHARED_HELPERS[k]; each must call its own id.
    let set =
        ProgramSet::single(Program::new(offered().into_iter().map(helper).chain([EXIT]).collect()).unwrap());
    let out = outcome(&set, &Input::none());
    let ids: Vec<i32> = out.helper_calls.iter().map(|c| c.id).collect();
    assert_eq!(ids, offered());
}

/// A fixed-seed generator of program sets both oracles can run, with only what the
/// kernel's verifier allows: scalars in R0 and R6-R8 (set at each function's entry), the
/// context in R9 (R1 at entry; a callee gets it in R1), each function's own frame zeroed
/// before use, R1-R5 written before every read after a call, local calls only to later
/// functions, helpers with scalar arguments, and tail calls with R1 = ctx.
struct SetGen(u64);

impl SetGen {
    fn next(&mut self) -> u64 {
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
    fn scalar(&mut self) -> Reg {
        self.pick(&[Reg::R0, Reg::R6, Reg::R7, Reg::R8])
    }
    fn imm(&mut self) -> i32 {
        match self.below(4) {
            0 => self.below(16) as i32 - 8,
            1 => i32::MIN,
            _ => self.next() as i32,
        }
    }

    /// One function's body (function `f` of `n_funcs`, `depth` bytes of stack, 32 bytes of
    /// context, `n_maps` maps). Local calls are emitted as `call 0` with the callee's index
    /// in `calls`, fixed up once every function's position is known.
    fn function(
        &mut self,
        f: usize,
        n_funcs: usize,
        n_maps: usize,
        calls: &mut Vec<(usize, usize)>,
    ) -> Vec<Insn> {
        let mut insns = vec![movr(Reg::R9, Reg::R1)];
        for k in 0..4 {
            insns.push(st(Reg::R10, -8 * (k + 1), 0));
        }
        for r in [Reg::R0, Reg::R6, Reg::R7, Reg::R8] {
            insns.push(mov(r, self.imm()));
        }
        let n = 3 + self.below(12);
        for _ in 0..n {
            match self.below(10) {
                0..=2 => {
                    let op = self.pick(&[
                        AluOp::Add,
                        AluOp::Sub,
                        AluOp::Mul,
                        AluOp::Xor,
                        AluOp::Or,
                        AluOp::Lsh,
                        AluOp::Rsh,
                    ]);
                    let width = self.pick(&[Width::W32, W64]);
                    let src = match (self.below(2), op) {
                        // The verifier refuses constant shifts by the width or more.
                        (0, AluOp::Lsh | AluOp::Rsh) => Operand::Imm(self.below(32) as i32),
                        (0, _) => Operand::Imm(self.imm()),
                        _ => Operand::Reg(self.scalar()),
                    };
                    insns.push(Insn::Alu { width, op, dst: self.scalar(), src });
                }
                3 => {
                    let off = -8 * (1 + self.below(4) as i16);
                    insns.push(Insn::Store { size: Size::DW, dst: Reg::R10, src: self.scalar(), off });
                    insns.push(ld(self.scalar(), Reg::R10, off));
                }
                4 => {
                    let size = self.pick(&[Size::B, Size::H, Size::W, Size::DW]);
                    let off = 8 * self.below(4) as i16;
                    if self.below(2) == 0 {
                        insns.push(Insn::Store { size, dst: Reg::R9, src: self.scalar(), off });
                    } else {
                        insns.push(Insn::Load { size, signed: false, dst: self.scalar(), src: Reg::R9, off });
                    }
                }
                5 => {
                    let id = self.pick(&offered());
                    if id == helpers::MIX {
                        insns.push(movr(Reg::R1, self.scalar()));
                        for r in [Reg::R2, Reg::R3, Reg::R4, Reg::R5] {
                            insns.push(mov(r, self.imm()));
                        }
                    }
                    insns.push(helper(id));
                }
                6 if f + 1 < n_funcs => {
                    insns.push(movr(Reg::R1, Reg::R9));
                    calls.push((insns.len(), f + 1 + self.below((n_funcs - f - 1) as u64) as usize));
                    insns.push(call(0));
                }
                7 if n_maps > 0 => {
                    insns.push(movr(Reg::R1, Reg::R9));
                    insns.push(map(Reg::R2, self.below(n_maps as u64)));
                    insns.push(Insn::LdImm64 {
                        dst: Reg::R3,
                        pseudo: 0,
                        imm: self.pick(&[0, 1, 2, 0x1_0000_0001]),
                    });
                    insns.push(if self.below(2) == 0 { TAIL } else { Insn::TailCall });
                    // R0 is undefined after a tail call that fails.
                    insns.push(mov(Reg::R0, self.imm()));
                }
                _ => {
                    // A forward jump over the next instruction.
                    let cond = self.pick(&Cond::ALL);
                    insns.push(Insn::Jmp {
                        width: W64,
                        cond,
                        dst: self.scalar(),
                        src: Operand::Imm(self.imm()),
                        off: 1,
                    });
                    insns.push(mov(self.scalar(), self.imm()));
                }
            }
        }
        insns.push(EXIT);
        insns
    }

    fn program(&mut self, n_maps: usize) -> Program {
        let n_funcs = 1 + self.below(3) as usize;
        let mut bodies = Vec::new();
        let mut calls = Vec::new();
        for f in 0..n_funcs {
            let mut c = Vec::new();
            bodies.push(self.function(f, n_funcs, n_maps, &mut c));
            calls.push(c);
        }
        // Lay the functions out one after the other and resolve the calls (in slots).
        let slots = |insns: &[Insn]| insns.iter().map(Insn::slots).sum::<usize>();
        let starts: Vec<usize> =
            bodies.iter().scan(0, |s, b| Some(std::mem::replace(s, *s + slots(b)))).collect();
        let mut all = Vec::new();
        for (f, body) in bodies.iter_mut().enumerate() {
            for &(i, g) in &calls[f] {
                let pc = starts[f] + slots(&body[..i]);
                body[i] = call((starts[g] - pc - 1) as i32);
            }
            all.extend_from_slice(body);
        }
        prog_with_depth(all, 32)
    }

    fn set(&mut self) -> ProgramSet {
        let n_progs = 1 + self.below(3) as usize;
        let n_maps = self.below(3) as usize;
        let progs = (0..n_progs).map(|_| self.program(n_maps)).collect();
        let maps = (0..n_maps)
            .map(|_| {
                let len = 1 + self.below(3);
                (0..len).map(|_| (self.below(3) != 0).then(|| self.below(n_progs as u64) as usize)).collect()
            })
            .collect();
        set_of(progs, maps)
    }
}

/// The two oracles agree on random sets: same R0, fault class, context, tail-call count
/// and helper trace. The reference interpreter is being taught program sets; until it
/// runs them, this test has nothing to compare and says so.
#[test]
fn agrees_with_the_reference_on_random_sets() {
    use crate::reference::Reference;
    let mut reference = Reference::with_budget(1_000_000);
    let probe = Program::new(vec![call(1), EXIT, mov(Reg::R0, 1), EXIT]).unwrap();
    if let RunResult::CannotJudge(why) = reference.run(&probe, &Input::none()) {
        eprintln!("skipped: the reference interpreter cannot run bpf2bpf calls yet ({why})");
        return;
    }
    let mut gen = SetGen(0x5eed_0f5e_75ca_11ed);
    let mut rbpf = Rbpf::with_back_edge_budget(10_000);
    let (mut judged, mut compared, mut with_tail_calls, mut with_helpers) = (0, 0, 0, 0);
    for case in 0..1_000 {
        let set = gen.set();
        let input = Input::with_ctx((0..32).map(|_| gen.next() as u8).collect());
        let (RunResult::Ran(want), got) = (reference.run_set(&set, &input), rbpf.run_set(&set, &input))
        else {
            continue;
        };
        judged += 1;
        let RunResult::Ran(got) = got else { panic!("case {case}: rbpf cannot judge {set:?}: {got:?}") };
        if want.result.is_err() || want.r0_is_address {
            continue;
        }
        assert_eq!(
            (&want.result, &want.ctx, want.tail_calls, &want.helper_calls),
            (&got.result, &got.ctx, got.tail_calls, &got.helper_calls),
            "case {case}: {set:?}\ninput {input:?}"
        );
        compared += 1;
        with_tail_calls += usize::from(got.tail_calls > 0);
        with_helpers += usize::from(!got.helper_calls.is_empty());
    }
    if judged == 0 {
        eprintln!("skipped: the reference interpreter cannot run program sets with maps yet");
    }
    assert!(compared * 10 >= judged * 9, "only {compared} of {judged} runs compared");
    // (With this seed: 1000 compared, 260 of them with tail calls, 673 with helper calls.)
    assert!(
        with_tail_calls * 5 >= compared && with_helpers * 2 >= compared,
        "{with_tail_calls} {with_helpers}"
    );
}
