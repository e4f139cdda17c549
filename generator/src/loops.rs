//! Loop shapes read off a set statically, for measuring how many of them a generator
//! reaches: the test of every loop (a conditional jump backward) by width, condition
//! and operand kind, whether a loop is the plain counted-down form, early exits; and two
//! ways values travel through memory, pointers to a caller's stack passed to bpf2bpf
//! calls and global variables.

use bpf::insn::{AluOp, Call, Cond, Insn, Operand, Reg, Width};
use bpf::set::ProgramSet;

/// A loop test's form: (width, condition, operand is a register).
pub type LoopTest = (Width, Cond, bool);

/// Every loop-test form: 2 widths x 11 conditions x immediate or register.
pub fn all_loop_tests() -> Vec<LoopTest> {
    let mut v = Vec::new();
    for width in [Width::W32, Width::W64] {
        for cond in Cond::ALL {
            for reg in [false, true] {
                v.push((width, cond, reg));
            }
        }
    }
    v
}

/// What a set's loops and calls look like.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoopFacts {
    /// The form of every loop test.
    pub tests: Vec<LoopTest>,
    /// Whether some loop is not of the counted-down form `if rC != 0 goto loop`.
    pub other_than_counted: bool,
    /// Whether some loop has a jump out of its body past its test.
    pub early_exit: bool,
    /// Whether some bpf2bpf call gets a pointer to its caller's stack in R1-R5 (set with
    /// `rK = r10; rK += off` right before the call, as the generator does).
    pub caller_stack_pointer: bool,
    /// Whether some program uses a global variable (`lddw rN, &map + off`).
    pub global_variable: bool,
}

/// The loop facts of every program of `set`.
pub fn loop_facts(set: &ProgramSet) -> LoopFacts {
    let mut facts = LoopFacts::default();
    for p in set.progs() {
        let prog = &p.prog;
        let insns = prog.insns();
        let mut loops = Vec::new();
        for (j, insn) in insns.iter().enumerate() {
            let Insn::Jmp { width, cond, src, .. } = *insn else { continue };
            let Some(t) = prog.target_of(j).filter(|&t| t <= j) else { continue };
            facts.tests.push((width, cond, matches!(src, Operand::Reg(_))));
            facts.other_than_counted |= !(cond == Cond::Ne && src == Operand::Imm(0));
            loops.push((t, j));
        }
        for (i, _) in insns.iter().enumerate() {
            if let Some(to) = prog.target_of(i).filter(|&to| to > i) {
                facts.early_exit |= loops.iter().any(|&(t, j)| (t..j).contains(&i) && to > j);
            }
        }
        facts.global_variable |=
            insns.iter().any(|i| matches!(i, Insn::LdImm64 { pseudo: bpf::set::PSEUDO_MAP_VALUE, .. }));
        facts.caller_stack_pointer |= insns.windows(3).any(|w| {
            matches!(
                w,
                [
                    Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: a, src: Operand::Reg(Reg::R10) },
                    Insn::Alu { width: Width::W64, op: AluOp::Add, dst: b, src: Operand::Imm(_) },
                    Insn::Call(Call::Local(_)),
                ] if a == b && (1..=5).contains(&a.num())
            )
        });
    }
    facts.tests.sort_unstable_by_key(|&(w, c, r)| (w as u8, c as u8, r));
    facts.tests.dedup();
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(text: &str) -> LoopFacts {
        loop_facts(&bpf::asm::parse_set(text).unwrap().set)
    }

    #[test]
    fn loops_are_told_by_their_tests() {
        let counted = facts("r0 = 0\nr7 = 3\nl:\nr0 += 1\nr7 -= 1\nif r7 != 0 goto l\nexit\n");
        assert_eq!(counted.tests, [(Width::W64, Cond::Ne, false)]);
        assert!(!counted.other_than_counted && !counted.early_exit);
        let other =
            facts("r0 = 0\nr8 = 9\nl:\nr0 += 1\nif r0 > 5 goto out\nif w0 s< w8 goto l\nout:\nexit\n");
        assert_eq!(other.tests, [(Width::W32, Cond::Slt, true)]);
        assert!(other.other_than_counted && other.early_exit);
        // A forward jump is no loop test.
        assert!(facts("r0 = 0\nif r0 == 0 goto +0\nexit\n").tests.is_empty());
        assert_eq!(all_loop_tests().len(), 44);
    }

    #[test]
    fn caller_stack_pointers() {
        let text =
            "*(u64 *)(r10 - 8) = 1\nr2 = r10\nr2 += -8\ncall f\nexit\nf:\nr0 = *(u64 *)(r2 + 0)\nexit\n";
        assert!(facts(text).caller_stack_pointer);
        assert!(!facts("r2 = 1\ncall f\nexit\nf:\nr0 = r2\nexit\n").caller_stack_pointer);
    }
}
