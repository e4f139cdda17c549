//! The JIT as a [`bpf::Engine`]: compile a program set, run it in unicorn, and translate
//! what the machine did into an engine-neutral [`Outcome`].

use bpf::trace::Trace;
use bpf::{Engine, Fault, FaultKind, Input, Outcome, ProgramSet, RunResult};

use crate::bugs::Bugs;
use crate::compile::{compile_set_with, Codegen, CompiledSet, Scheme};
use crate::runner::{Native, Runner, Stop, BLOCK_LIMIT};
use bpf::EmptySlotRule;

/// Compiles program sets with jitdiff's RV64 JIT and runs them in one reusable emulator.
/// Create one per thread.
#[derive(Debug)]
pub struct Jit {
    runner: Option<Runner>,
    limit: usize,
    codegen: Codegen,
    /// The last set compiled and its code: running one set on several inputs compiles
    /// it once (and the runner then keeps its translated code too).
    last: Option<(ProgramSet, CompiledSet)>,
    /// The reference's work for the next run ([`Engine::bound_next_run`]).
    next_work: Option<u64>,
}

impl Default for Jit {
    fn default() -> Jit {
        Jit::new()
    }
}

impl Jit {
    /// A JIT engine with the `register` scheme and the default block limit; the
    /// emulator is created on first use.
    pub fn new() -> Jit {
        Jit { runner: None, limit: BLOCK_LIMIT, codegen: Codegen::default(), last: None, next_work: None }
    }

    /// The same engine keeping the tail-call counter with `scheme`.
    pub fn with_scheme(self, scheme: Scheme) -> Jit {
        Jit { codegen: Codegen { scheme, ..self.codegen }, last: None, ..self }
    }

    /// The same engine with `bugs` injected into its code (see [`crate::bugs`]).
    pub fn with_bugs(self, bugs: Bugs) -> Jit {
        Jit { codegen: Codegen { bugs, ..self.codegen }, last: None, ..self }
    }

    /// The same engine counting a tail call through an empty slot as `rule` says (the
    /// default is [`EmptySlotRule::Free`], today's kernel).
    pub fn with_empty_slot(self, rule: EmptySlotRule) -> Jit {
        Jit { codegen: Codegen { empty_slot: rule, ..self.codegen }, last: None, ..self }
    }

    /// A JIT engine whose runs stop with a budget fault after entering `limit`
    /// translation blocks (straight-line runs of machine code).
    pub fn with_block_limit(limit: usize) -> Jit {
        Jit { limit, ..Jit::new() }
    }

    /// The scheme in use.
    pub fn scheme(&self) -> Scheme {
        self.codegen.scheme
    }
}

/// The emulator in `slot`, created with `limit` on first use.
fn runner(slot: &mut Option<Runner>, limit: usize) -> Result<&mut Runner, String> {
    if slot.is_none() {
        let mut r = Runner::new()?;
        r.set_block_limit(limit);
        *slot = Some(r);
    }
    Ok(slot.as_mut().expect("just created"))
}

fn host(detail: String) -> RunResult {
    RunResult::Ran(Outcome::new(Err(Fault { kind: FaultKind::Host, pc: None, detail }), Vec::new(), false))
}

/// Turns a finished run into an outcome: R0 is `a5`; the native return value `a0` must
/// be R0's low 32 bits sign-extended, and callee-saved registers must be intact, or the
/// run is an ABI fault.
pub fn outcome(set: &ProgramSet, compiled: &CompiledSet, n: Native) -> Outcome {
    let located = compiled.locate(n.pc);
    let pc = located.map(|(p, i)| set.progs()[p].prog.pc_of(i));
    let place = match located {
        Some((p, _)) if p > 0 => format!(" in program {}", set.progs()[p].name),
        _ => String::new(),
    };
    let fault = |kind, detail: String| Err(Fault { kind, pc, detail: format!("{detail}{place}") });
    let result = match n.stop {
        Ok(()) if n.a0 != n.a5 as i32 as i64 as u64 => fault(
            FaultKind::Abi,
            format!(
                "the native return value a0 = {:#x} is not R0's low 32 bits sign-extended (R0 = {:#x})",
                n.a0, n.a5
            ),
        ),
        Ok(()) if !n.clobbered.is_empty() => {
            let list: Vec<String> =
                n.clobbered.iter().map(|(r, was, now)| format!("{r} was {was:#x}, is {now:#x}")).collect();
            Err(Fault {
                kind: FaultKind::Abi,
                pc: None,
                detail: format!("callee-saved registers not restored: {}", list.join("; ")),
            })
        }
        Ok(()) => Ok(n.a5),
        Err(Stop::Memory { addr, access }) => fault(
            FaultKind::MemoryAccess,
            match addr {
                Some(a) => format!("{access} of unmapped address {a:#x} (machine pc {:#x})", n.pc),
                None => format!("{access} fault at machine pc {:#x}", n.pc),
            },
        ),
        Err(Stop::Illegal) => {
            fault(FaultKind::BadCode, format!("illegal instruction at machine pc {:#x}", n.pc))
        }
        Err(Stop::Limit) => fault(FaultKind::Budget, "the block limit was reached without returning".into()),
        Err(Stop::Hang { blocks, work }) => fault(
            FaultKind::Hang,
            format!(
                "the run entered {blocks} translation blocks without returning, where the reference \
                 interpreter finished it in {work} instructions"
            ),
        ),
        Err(Stop::Emulator(e)) => {
            fault(FaultKind::BadCode, format!("emulator stopped with {e} at {:#x}", n.pc))
        }
    };
    Outcome {
        result,
        ctx: n.ctx,
        r0_is_address: false,
        tail_calls: n.tail_calls,
        helper_calls: n.helper_calls,
        arrays: n.arrays,
        attachments: n.attachments,
        observes: bpf::exec::Observes::ALL,
    }
}

impl Jit {
    /// Compiles `set` unless it is the last set compiled; the error says why the JIT
    /// cannot compile it.
    fn compile(&mut self, set: &ProgramSet) -> Result<(), String> {
        if self.last.as_ref().is_none_or(|(s, _)| s != set) {
            self.last = None;
            self.last = Some((set.clone(), compile_set_with(set, self.codegen).map_err(|e| e.to_string())?));
        }
        Ok(())
    }

    /// The code of `set` if it is the set this engine compiled last (the one it ran last).
    pub fn compiled(&self, set: &ProgramSet) -> Option<&CompiledSet> {
        self.last.as_ref().filter(|(s, _)| s == set).map(|(_, c)| c)
    }

    /// Runs `set` on `input` as [`Engine::run_set`] does, and also records the BPF
    /// registers R0-R10 (every one marked comparable: the JIT cannot tell addresses from
    /// scalars) each time the code of a BPF instruction starts to run. Instructions that
    /// emit no machine code leave no step. When the trace is cut (too many steps) the
    /// run was stopped there and its result is not the run's.
    pub fn trace_set(&mut self, set: &ProgramSet, input: &Input) -> (RunResult, Trace) {
        if let Err(why) = set.prog_type().check(input).and_then(|()| self.compile(set)) {
            return (RunResult::CannotJudge(why), Trace::default());
        }
        let runner = match runner(&mut self.runner, self.limit) {
            Ok(r) => r,
            Err(e) => return (host(e), Trace::default()),
        };
        let (_, compiled) = self.last.as_ref().expect("compiled above");
        match runner.run_traced(compiled, set, input.ctx.as_deref()) {
            Ok((native, trace)) => (RunResult::Ran(outcome(set, compiled, native)), trace),
            Err(e) => (host(e), Trace::default()),
        }
    }
}

impl Engine for Jit {
    fn name(&self) -> &'static str {
        "jit"
    }

    fn bound_next_run(&mut self, work: u64) {
        self.next_work = Some(work);
    }

    fn run_set(&mut self, set: &ProgramSet, input: &Input) -> RunResult {
        let work = self.next_work.take();
        if let Err(why) = set.prog_type().check(input).and_then(|()| self.compile(set)) {
            return RunResult::CannotJudge(why);
        }
        let runner = match runner(&mut self.runner, self.limit) {
            Ok(r) => r,
            Err(e) => return host(e),
        };
        let (_, compiled) = self.last.as_ref().expect("compiled above");
        match runner.run(compiled, set, input.ctx.as_deref(), work) {
            Ok(native) => RunResult::Ran(outcome(set, compiled, native)),
            Err(e) => host(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::compile_set;
    use bpf::{Insn, Program};

    fn finished(a0: u64, a5: u64, clobbered: Vec<(&'static str, u64, u64)>) -> Native {
        Native {
            stop: Ok(()),
            pc: crate::guest::EXIT_ADDR,
            a0,
            a5,
            clobbered,
            ctx: vec![],
            tail_calls: 0,
            helper_calls: vec![],
            arrays: vec![],
            attachments: vec![],
        }
    }

    #[test]
    fn abi_checks() {
        let set = ProgramSet::single(Program::new(vec![Insn::Exit]).unwrap());
        let c = compile_set(&set, Scheme::Register).unwrap();
        // 0x80000000 must come back in a0 as 0xffffffff80000000.
        let good = outcome(&set, &c, finished(0xffff_ffff_8000_0000, 0x8000_0000, vec![]));
        assert_eq!(good.result, Ok(0x8000_0000));
        let bad = outcome(&set, &c, finished(0x8000_0000, 0x8000_0000, vec![]));
        assert_eq!(bad.result.unwrap_err().kind, FaultKind::Abi);
        let clobber = outcome(&set, &c, finished(0, 0, vec![("s1", 0, 5)]));
        let f = clobber.result.unwrap_err();
        assert_eq!(f.kind, FaultKind::Abi);
        assert!(f.detail.contains("s1 was 0x0, is 0x5"), "{}", f.detail);
    }

    #[test]
    fn a_run_that_never_returns_ends_in_a_budget_fault() {
        // `goto -1`: the watchdog stops the uncounted run after its wall-clock limit, and
        // the counted rerun reaches the block limit, deterministically.
        let prog = Program::new(vec![Insn::Ja { off: -1 }, Insn::Exit]).unwrap();
        let mut jit = Jit::with_block_limit(10_000);
        for _ in 0..2 {
            let RunResult::Ran(out) = jit.run(&prog, &Input::none()) else { panic!("cannot judge") };
            let f = out.result.unwrap_err();
            assert_eq!(f.kind, FaultKind::Budget, "{f}");
            assert_eq!(f.pc, Some(0));
        }
        // The engine is still usable, and runs uncounted code again.
        let ok = Program::new(vec![
            Insn::Alu {
                width: bpf::Width::W64,
                op: bpf::AluOp::Mov,
                dst: bpf::Reg::R0,
                src: bpf::Operand::Imm(7),
            },
            Insn::Exit,
        ])
        .unwrap();
        let RunResult::Ran(out) = jit.run(&ok, &Input::none()) else { panic!("cannot judge") };
        assert_eq!(out.result, Ok(7));
    }

    #[test]
    fn a_run_far_longer_than_the_references_work_is_a_hang() {
        use bpf::{AluOp, Cond, Operand, Reg, Width};
        // r1 = 0x100000003; loop: r0 += 1; r1 -= 1; if w1 != 0 goto loop; exit: three
        // iterations (the low 32 bits count 3, 2, 1, 0), 11 instructions in all.
        let alu = |op, dst, imm| Insn::Alu { width: Width::W64, op, dst, src: Operand::Imm(imm) };
        let prog = Program::new(vec![
            Insn::LdImm64 { dst: Reg::R1, pseudo: 0, imm: 0x1_0000_0003 },
            alu(AluOp::Mov, Reg::R0, 0),
            alu(AluOp::Add, Reg::R0, 1),
            alu(AluOp::Sub, Reg::R1, 1),
            Insn::Jmp { width: Width::W32, cond: Cond::Ne, dst: Reg::R1, src: Operand::Imm(0), off: -3 },
            Insn::Exit,
        ])
        .unwrap();
        let run = |jit: &mut Jit, work: Option<u64>| {
            if let Some(w) = work {
                jit.bound_next_run(w);
            }
            let RunResult::Ran(out) = jit.run(&prog, &Input::none()) else { panic!("cannot judge") };
            out.result
        };
        // Correct, within the bound of the reference's 11 instructions.
        let mut jit = Jit::new();
        assert_eq!(run(&mut jit, Some(11)), Ok(3));
        // The slip that compares all 64 bits in the loop's condition runs 2^32 more
        // iterations: the run is a hang, decided by the counted rerun, every time.
        let mut slipped = Jit::new().with_bugs(Bugs::NONE.with(crate::bugs::Bug::Jmp32LoopFullWidth));
        for _ in 0..2 {
            let f = run(&mut slipped, Some(11)).unwrap_err();
            assert_eq!(f.kind, FaultKind::Hang, "{f}");
            assert!(
                f.detail.contains("where the reference interpreter finished it in 11 instructions"),
                "{f}"
            );
        }
        // The bound holds for one run only.
        let mut limited =
            Jit::with_block_limit(10_000).with_bugs(Bugs::NONE.with(crate::bugs::Bug::Jmp32LoopFullWidth));
        assert_eq!(run(&mut limited, None).unwrap_err().kind, FaultKind::Budget);
    }

    #[test]
    fn a_trace_shows_the_registers_before_each_instruction() {
        use bpf::{AluOp, Operand, Reg, Width};
        let mov = |dst, imm| Insn::Alu { width: Width::W64, op: AluOp::Mov, dst, src: Operand::Imm(imm) };
        let add = |dst, src| Insn::Alu { width: Width::W64, op: AluOp::Add, dst, src: Operand::Reg(src) };
        // r0 = 3; r6 = 4; r0 += r6; exit
        let prog =
            Program::new(vec![mov(Reg::R0, 3), mov(Reg::R6, 4), add(Reg::R0, Reg::R6), Insn::Exit]).unwrap();
        let set = ProgramSet::single(prog);
        let mut jit = Jit::new();
        let (result, trace) = jit.trace_set(&set, &Input::with_ctx(vec![0; 8]));
        let RunResult::Ran(out) = result else { panic!("cannot judge") };
        assert_eq!(out.result, Ok(7));
        let at: Vec<usize> = trace.steps.iter().map(|s| s.index).collect();
        assert_eq!(at, [0, 1, 2, 3]);
        let regs: Vec<(u64, u64, u64)> =
            trace.steps.iter().map(|s| (s.regs[0], s.regs[6], s.regs[1])).collect();
        let ctx = bpf::exec::CTX_ADDR;
        assert_eq!(regs, [(0, 0, ctx), (3, 0, ctx), (3, 4, ctx), (7, 4, ctx)]);
        // Untraced runs of the same engine are unaffected.
        let RunResult::Ran(again) = jit.run_set(&set, &Input::with_ctx(vec![0; 8])) else { panic!() };
        assert_eq!(again.result, Ok(7));
    }
}
