//! The first divergent BPF instruction: the reference interpreter's and the JIT's
//! instruction traces ([`bpf::trace`]) walked side by side until the engines stop
//! agreeing on where execution is or on a register's value.
//!
//! The culprit is the last instruction both executed before the first disagreement: it
//! went somewhere else (a jump), produced another value (anything that writes a
//! register), or the JIT stopped inside it. Registers are compared only where the
//! reference says every engine must agree (defined, and not derived from a stack or
//! context address). A wrong value stored to memory shows when it is loaded back; when
//! the traces agree to the end, the difference lies in memory, a helper's arguments or
//! the exit itself, and the last instruction is named.

use std::fmt;

use bpf::trace::{Step, Trace};
use bpf::{Call, Input, Insn, ProgramSet, RunResult, Size, Width};

use crate::options::Options;

/// What the engines disagree on after the culprit instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum What {
    /// Execution continued at different instructions (`None`: that engine stopped).
    ControlFlow {
        /// Where the reference went: (program, instruction index).
        reference: Option<(usize, usize)>,
        /// Where the JIT went.
        jit: Option<(usize, usize)>,
    },
    /// A register holds different values.
    Register {
        /// The register number (0 to 10).
        reg: usize,
        /// The reference's value.
        reference: u64,
        /// The JIT's value.
        jit: u64,
    },
    /// Registers and control flow agree to the end of both traces: the difference is in
    /// memory, a helper's arguments or the exit.
    AtEnd,
}

/// The first divergent instruction of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The program of the set the culprit belongs to.
    pub prog: usize,
    /// The culprit's instruction index in that program.
    pub index: usize,
    /// Steps both engines executed in agreement before the culprit's effect showed.
    pub agreed: usize,
    /// What differs after it.
    pub what: What,
    /// The culprit's opcode class ([`opcode_class`]).
    pub class: &'static str,
}

/// The BPF opcode class of an instruction, refined where one class holds different
/// ideas: `alu32`, `alu64`, `jmp`, `jmp32`, `call`, `tail_call`, `exit`, `ld` (`lddw`),
/// `ldx`, `st`, `stx`, `atomic32`, `atomic64`, `ld_abs`, `ld_ind` (legacy packet loads).
pub fn opcode_class(insn: &Insn) -> &'static str {
    let w = |w: Width, a, b| if w == Width::W32 { a } else { b };
    match *insn {
        Insn::Alu { width, .. } | Insn::Neg { width, .. } | Insn::MovSx { width, .. } => {
            w(width, "alu32", "alu64")
        }
        Insn::End { order, .. } => {
            if order == bpf::ByteOrder::Swap {
                "alu64"
            } else {
                "alu32"
            }
        }
        Insn::Ja { .. } => "jmp",
        Insn::JaLong { .. } => "jmp32",
        Insn::Jmp { width, .. } => w(width, "jmp32", "jmp"),
        Insn::Load { .. } => "ldx",
        Insn::StoreImm { .. } => "st",
        Insn::Store { .. } => "stx",
        Insn::Atomic { size, .. } => {
            if size == Size::DW {
                "atomic64"
            } else {
                "atomic32"
            }
        }
        Insn::LdImm64 { .. } => "ld",
        Insn::LoadPacket { index: None, .. } => "ld_abs",
        Insn::LoadPacket { index: Some(_), .. } => "ld_ind",
        _ if insn.is_tail_call() => "tail_call",
        Insn::Call(Call::Helper(_) | Call::Local(_) | Call::Kfunc(_)) => "call",
        Insn::Exit => "exit",
        Insn::TailCall => "tail_call",
    }
}

fn place(set: &ProgramSet, at: Option<(usize, usize)>) -> String {
    match at {
        None => "nowhere (it stopped)".into(),
        Some((p, i)) => match set.progs().get(p) {
            Some(sp) if i < sp.prog.insns().len() => {
                let pc = sp.prog.pc_of(i);
                let name = if p == 0 { String::new() } else { format!("program {}, ", sp.name) };
                format!("{name}pc {pc} ({})", sp.prog.insns()[i])
            }
            _ => format!("program {p}, instruction {i}"),
        },
    }
}

impl Divergence {
    /// What a signature records of the divergence: the culprit's opcode class, or `end`
    /// when registers and control flow agree to the end.
    pub fn signature_class(&self) -> &'static str {
        match self.what {
            What::AtEnd => "end",
            _ => self.class,
        }
    }

    /// A one-paragraph account, naming the culprit by its slot pc and text.
    pub fn describe(&self, set: &ProgramSet) -> String {
        let culprit = place(set, Some((self.prog, self.index)));
        let after = format!("after {} agreeing steps", self.agreed);
        match &self.what {
            What::ControlFlow { reference, jit } => format!(
                "first divergence at {culprit} [{}], {after}: next the reference runs {}, the JIT {}",
                self.class,
                place(set, *reference),
                place(set, *jit)
            ),
            What::Register { reg, reference, jit } => format!(
                "first divergence at {culprit} [{}], {after}: afterwards R{reg} is {reference:#x} in the \
                 reference and {jit:#x} in the JIT",
                self.class
            ),
            What::AtEnd => format!(
                "registers and control flow agree through all {} steps; the last instruction is {culprit} \
                 [{}]: the difference is in memory, a helper's arguments or the exit",
                self.agreed, self.class
            ),
        }
    }
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            What::ControlFlow { .. } => f.write_str("control flow"),
            What::Register { reg, .. } => write!(f, "R{reg}"),
            What::AtEnd => f.write_str("memory or exit"),
        }
    }
}

/// Compares two traces of the same set: `code(prog, index)` says whether the JIT
/// emitted code for an instruction (instructions without code leave no JIT step and are
/// skipped in the reference's trace too). `None` when either trace is empty.
pub fn first_divergence(
    set: &ProgramSet,
    reference: &Trace,
    jit: &Trace,
    code: impl Fn(usize, usize) -> bool,
) -> Option<Divergence> {
    let ref_steps: Vec<(usize, &Step)> =
        reference.steps.iter().enumerate().filter(|(_, s)| code(s.prog, s.index)).collect();
    let jit_steps = &jit.steps;
    if ref_steps.is_empty() || jit_steps.is_empty() {
        return None;
    }
    let class_of = |p: usize, i: usize| {
        set.progs().get(p).and_then(|sp| sp.prog.insns().get(i)).map_or("unknown", opcode_class)
    };
    // The culprit for a disagreement seen at filtered step `k`: one of the reference's
    // steps since the previous filtered step (the one with JIT code, then any without).
    // For a register, the last of them that changed it in the reference (an instruction
    // without code can be wrong only by leaving out a change); otherwise the one with
    // code, the only one the JIT ran.
    let culprit = |k: usize, reg: Option<usize>| {
        let end = ref_steps[k].0;
        let start = if k == 0 { 0 } else { ref_steps[k - 1].0 };
        let changed = reg.and_then(|r| {
            (start..end).rev().find(|&i| reference.steps[i].regs[r] != reference.steps[i + 1].regs[r])
        });
        let s = &reference.steps[changed.unwrap_or(start.min(end.saturating_sub(1)))];
        (s.prog, s.index)
    };
    // A function's last `exit` starts the JIT's epilogue, which every way out of the
    // function runs: after an earlier `exit` or a legacy packet load's return of 0 the JIT
    // shows one more step there, where the reference has left the function. Such steps are
    // passed over.
    let insn_at = |s: &Step| set.progs().get(s.prog).and_then(|sp| sp.prog.insns().get(s.index).copied());
    let last_exit = |s: &Step| {
        set.progs().get(s.prog).is_some_and(|sp| {
            sp.prog.insns().get(s.index) == Some(&Insn::Exit)
                && sp.prog.functions().iter().any(|f| f.end == s.index + 1)
        })
    };
    let after_an_early_exit = |jit: &[Step], at: usize| {
        at > 0 && last_exit(&jit[at]) && {
            let before = &jit[at - 1];
            before.prog == jit[at].prog
                && before.index != jit[at].index
                && matches!(insn_at(before), Some(Insn::Exit | Insn::LoadPacket { .. }))
        }
    };
    let mut passed_over = Vec::with_capacity(jit.steps.len());
    for (at, s) in jit.steps.iter().enumerate() {
        let next_ref = ref_steps.get(passed_over.len()).map(|(_, r)| (r.prog, r.index));
        if after_an_early_exit(&jit.steps, at) && next_ref != Some((s.prog, s.index)) {
            continue;
        }
        passed_over.push(*s);
    }
    let jit_steps = &passed_over;
    let n = ref_steps.len().min(jit_steps.len());
    for k in 0..n {
        let (r, j) = (ref_steps[k].1, &jit_steps[k]);
        let what = if (r.prog, r.index) != (j.prog, j.index) {
            Some(What::ControlFlow { reference: Some((r.prog, r.index)), jit: Some((j.prog, j.index)) })
        } else {
            (0..11)
                .find(|&reg| r.is_comparable(reg) && r.regs[reg] != j.regs[reg])
                .map(|reg| What::Register { reg, reference: r.regs[reg], jit: j.regs[reg] })
        };
        if let Some(what) = what {
            let reg = match what {
                What::Register { reg, .. } => Some(reg),
                _ => None,
            };
            let (prog, index) = culprit(k, reg);
            return Some(Divergence { prog, index, agreed: k, what, class: class_of(prog, index) });
        }
    }
    let last = |s: &Step| (s.prog, s.index);
    let (what, (prog, index)) = if ref_steps.len() == jit_steps.len() || reference.cut || jit.cut {
        (What::AtEnd, last(ref_steps[n - 1].1))
    } else if ref_steps.len() > n {
        let next = last(ref_steps[n].1);
        (What::ControlFlow { reference: Some(next), jit: None }, culprit(n, None))
    } else {
        (What::ControlFlow { reference: None, jit: Some(last(&jit_steps[n])) }, last(ref_steps[n - 1].1))
    };
    Some(Divergence { prog, index, agreed: n, what, class: class_of(prog, index) })
}

/// Traces runs on the reference interpreter and the JIT configured by [`Options`].
pub struct Tracer {
    reference: oracle::reference::Reference,
    jit: jit::Jit,
}

impl Tracer {
    /// Engines configured by `opts` as [`crate::options`] builds them.
    pub fn new(opts: &Options) -> Tracer {
        Tracer { reference: crate::options::reference(opts), jit: crate::options::jit(opts) }
    }

    /// The first divergent instruction of `set` on `input` between the reference and the
    /// JIT, or `None` when either cannot run it (cannot judge, does not compile) or a
    /// trace is empty.
    pub fn first_divergence(&mut self, set: &ProgramSet, input: &Input) -> Option<Divergence> {
        let (r, rt) = self.reference.trace_set(set, input);
        let (j, jt) = self.jit.trace_set(set, input);
        if matches!(r, RunResult::CannotJudge(_)) || matches!(j, RunResult::CannotJudge(_)) {
            return None;
        }
        let compiled = self.jit.compiled(set)?;
        let code = |p: usize, i: usize| {
            compiled.progs.get(p).and_then(|c| c.insn_ranges.get(i)).is_some_and(|r| !r.is_empty())
        };
        first_divergence(set, &rt, &jt, code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpf::{AluOp, Cond, Operand, Program, Reg};

    fn mov(dst: Reg, imm: i32) -> Insn {
        Insn::Alu { width: Width::W64, op: AluOp::Mov, dst, src: Operand::Imm(imm) }
    }

    fn step(index: usize, r0: u64) -> Step {
        let mut regs = [0; 11];
        regs[0] = r0;
        Step { prog: 0, index, regs, comparable: Step::ALL_COMPARABLE }
    }

    fn trace(steps: Vec<Step>) -> Trace {
        Trace { steps, cut: false }
    }

    fn set() -> ProgramSet {
        // r0 = 1; if r0 == 1 goto +1; r0 = 2; exit
        let jeq = Insn::Jmp { width: Width::W64, cond: Cond::Eq, dst: Reg::R0, src: Operand::Imm(1), off: 1 };
        ProgramSet::single(Program::new(vec![mov(Reg::R0, 1), jeq, mov(Reg::R0, 2), Insn::Exit]).unwrap())
    }

    #[test]
    fn a_wrong_value_names_the_instruction_that_wrote_it() {
        let r = trace(vec![step(0, 0), step(1, 1), step(3, 1)]);
        let j = trace(vec![step(0, 0), step(1, 5), step(2, 5), step(3, 2)]);
        let d = first_divergence(&set(), &r, &j, |_, _| true).unwrap();
        assert_eq!((d.prog, d.index, d.agreed, d.class), (0, 0, 1, "alu64"));
        assert_eq!(d.what, What::Register { reg: 0, reference: 1, jit: 5 });
        assert!(d
            .describe(&set())
            .starts_with("first divergence at pc 0 (r0 = 1) [alu64], after 1 agreeing"));
    }

    #[test]
    fn a_different_branch_names_the_jump() {
        let r = trace(vec![step(0, 0), step(1, 1), step(3, 1)]);
        let j = trace(vec![step(0, 0), step(1, 1), step(2, 1), step(3, 2)]);
        let d = first_divergence(&set(), &r, &j, |_, _| true).unwrap();
        assert_eq!((d.index, d.class), (1, "jmp"));
        assert_eq!(d.what, What::ControlFlow { reference: Some((0, 3)), jit: Some((0, 2)) });
    }

    #[test]
    fn registers_the_reference_cannot_compare_are_skipped() {
        let mut odd = step(1, 1);
        odd.regs[10] = 0x1234;
        let mut r1 = step(1, 1);
        r1.comparable &= !(1 << 10);
        let r = trace(vec![step(0, 0), r1, step(3, 1)]);
        let j = trace(vec![step(0, 0), odd, step(3, 1)]);
        let d = first_divergence(&set(), &r, &j, |_, _| true).unwrap();
        assert_eq!((d.what, d.index, d.class), (What::AtEnd, 3, "exit"));
    }

    #[test]
    fn a_jit_that_stops_early_is_blamed_on_its_last_instruction() {
        let r = trace(vec![step(0, 0), step(1, 1), step(3, 1)]);
        let j = trace(vec![step(0, 0), step(1, 1)]);
        let d = first_divergence(&set(), &r, &j, |_, _| true).unwrap();
        assert_eq!(d.index, 1);
        assert_eq!(d.what, What::ControlFlow { reference: Some((0, 3)), jit: None });
    }

    #[test]
    fn instructions_without_jit_code_are_skipped_but_can_be_culprits() {
        // The JIT emitted nothing for instruction 0: its trace starts at 1.
        let r = trace(vec![step(0, 0), step(1, 1), step(3, 1)]);
        let j = trace(vec![step(1, 7), step(3, 7)]);
        let d = first_divergence(&set(), &r, &j, |_, i| i != 0).unwrap();
        assert_eq!((d.index, d.agreed), (0, 0));
        assert_eq!(d.what, What::Register { reg: 0, reference: 1, jit: 7 });
    }

    #[test]
    fn a_value_that_passes_through_an_instruction_without_code_blames_its_writer() {
        // r0 = 1 (code), then an instruction without code that leaves R0 alone (index 1
        // here), then the JIT shows another R0: the writer is to blame, not the no-op.
        let r = trace(vec![step(0, 0), step(1, 1), step(2, 1), step(3, 2)]);
        let j = trace(vec![step(0, 0), step(2, 9), step(3, 2)]);
        let d = first_divergence(&set(), &r, &j, |_, i| i != 1).unwrap();
        assert_eq!((d.index, d.what.clone()), (0, What::Register { reg: 0, reference: 1, jit: 9 }));
        // If the instruction without code changes R0 in the reference, it is to blame.
        let r = trace(vec![step(0, 0), step(1, 1), step(2, 5), step(3, 2)]);
        let j = trace(vec![step(0, 0), step(2, 1), step(3, 2)]);
        let d = first_divergence(&set(), &r, &j, |_, i| i != 1).unwrap();
        assert_eq!((d.index, d.what), (1, What::Register { reg: 0, reference: 5, jit: 1 }));
    }

    #[test]
    fn the_epilogue_after_an_early_exit_is_no_divergence() {
        // r0 = 1; if r0 == 2 goto +1; exit; r0 = 5; exit: the JIT runs the shared
        // epilogue (the last exit's code) after the early exit, the reference has left.
        let jeq = Insn::Jmp { width: Width::W64, cond: Cond::Eq, dst: Reg::R0, src: Operand::Imm(2), off: 1 };
        let prog = Program::new(vec![mov(Reg::R0, 1), jeq, Insn::Exit, mov(Reg::R0, 5), Insn::Exit]).unwrap();
        let set = ProgramSet::single(prog);
        let r = trace(vec![step(0, 0), step(1, 1), step(2, 1)]);
        let j = trace(vec![step(0, 0), step(1, 1), step(2, 1), step(4, 1)]);
        let d = first_divergence(&set, &r, &j, |_, _| true).unwrap();
        assert_eq!((d.what, d.index), (What::AtEnd, 2));
        // the same last exit reached by the reference too is a step of both
        let r = trace(vec![step(0, 0), step(1, 1), step(3, 1), step(4, 5)]);
        let j = trace(vec![step(0, 0), step(1, 1), step(3, 1), step(4, 6)]);
        let d = first_divergence(&set, &r, &j, |_, _| true).unwrap();
        assert_eq!(d.what, What::Register { reg: 0, reference: 5, jit: 6 });
    }

    #[test]
    fn real_engines_find_an_injected_bug_at_its_instruction() {
        // A 32-bit add whose result the JIT does not zero-extend.
        let add32 = Insn::Alu { width: Width::W32, op: AluOp::Add, dst: Reg::R0, src: Operand::Imm(1) };
        let prog = Program::new(vec![mov(Reg::R0, 0x7fff_ffff), add32, Insn::Exit]).unwrap();
        let set = ProgramSet::single(prog);
        let bugs = jit::Bugs::NONE.with(jit::Bug::Alu32ArithNoZext);
        let d = Tracer::new(&Options { bugs, ..Options::default() }).first_divergence(&set, &Input::none());
        let d = d.expect("a divergence");
        assert_eq!((d.index, d.class), (1, "alu32"));
        // 0x7fffffff + 1 in 32 bits is 0x80000000, zero-extended; RV64's addw sign-extends.
        assert_eq!(d.what, What::Register { reg: 0, reference: 0x8000_0000, jit: 0xffff_ffff_8000_0000 });
        // Without the bug the traces agree to the end.
        let d = Tracer::new(&Options::default()).first_divergence(&set, &Input::none()).unwrap();
        assert_eq!((d.what, d.index), (What::AtEnd, 2));
    }
}
