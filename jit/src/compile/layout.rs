//! Code layout with branch relaxation.
//!
//! Emitters append [`Item`]s: fixed instructions, or branches and jumps to a [`Label`]
//! whose distance is not known yet. [`Layout::finish`] gives every branch the shortest
//! form that reaches its target, iterating until no branch grows (forms only ever grow,
//! so this terminates), then produces the final instructions and the byte range of every
//! BPF instruction.

use std::ops::Range;

use crate::rv64::{split_hi_lo, BranchOp, Imm13, Imm21, Inst, XReg};

/// A branch or call target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    /// The first machine instruction of BPF instruction `index`.
    Insn(usize),
    /// The prologue of function `f` (its entry point).
    Entry(usize),
    /// The epilogue of function `f`.
    Epilogue(usize),
    /// An absolute guest address outside this code (a helper's trap address).
    Abs(u64),
}

/// A piece of code whose size may depend on the layout.
#[derive(Clone, Copy, Debug)]
pub enum Item {
    /// A fixed instruction.
    Fixed(Inst),
    /// `if rs1 op rs2 goto label`.
    Branch {
        /// condition
        op: BranchOp,
        /// first operand
        rs1: XReg,
        /// second operand
        rs2: XReg,
        /// target
        target: Label,
    },
    /// `goto label`.
    Jump {
        /// target
        target: Label,
    },
    /// `call label`, linking in `ra`.
    Call {
        /// target
        target: Label,
    },
}

/// How far a branch can reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Form {
    /// `bCC` (±4 KiB) or `jal` (±1 MiB): one instruction.
    Near,
    /// Conditional: inverted `bCC` over a `jal` (±1 MiB). Jump: `auipc`+`jalr` (±2 GiB).
    Mid,
    /// Conditional: inverted `bCC` over `auipc`+`jalr` (±2 GiB).
    Far,
}

/// Scratch register for far jumps; free at every branch because branches are the last
/// thing a BPF instruction's code does.
const FAR_TMP: XReg = XReg::T1;

/// The layout under construction.
#[derive(Debug, Default)]
pub struct Layout {
    /// The bugs to inject into the code (none for the correct JIT).
    pub bugs: crate::bugs::Bugs,
    /// Whether a tail call through an empty slot counts.
    pub empty_slot: bpf::EmptySlotRule,
    items: Vec<Item>,
    /// Item index where each BPF instruction's code starts.
    insn_start: Vec<usize>,
    /// Item index of each function's prologue.
    entry_start: Vec<usize>,
    /// Item index of each function's epilogue.
    epilogue_start: Vec<usize>,
    marks: Vec<usize>,
}

/// Why code cannot be laid out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("branch at byte {at:#x} to byte {to:#x} is beyond the ±2 GiB reach of auipc+jalr")]
pub struct LayoutError {
    /// Byte offset of the branch.
    pub at: usize,
    /// Byte offset of its target.
    pub to: usize,
}

/// The final code.
#[derive(Clone, Debug)]
pub struct Laid {
    /// The instructions, 4 bytes each, in order.
    pub insts: Vec<Inst>,
    /// Byte range of each BPF instruction's code (empty for instructions emitting nothing).
    pub insn_ranges: Vec<Range<usize>>,
    /// Byte offset of each function's prologue.
    pub entries: Vec<usize>,
    /// Byte offset of each function's epilogue.
    pub epilogues: Vec<usize>,
    /// Byte offset of every instruction pushed with [`Layout::mark`], in order.
    pub marks: Vec<usize>,
}

impl Layout {
    /// Appends a fixed instruction.
    pub fn push(&mut self, inst: Inst) {
        self.items.push(Item::Fixed(inst));
    }

    /// Appends a conditional branch to `target`.
    pub fn branch(&mut self, op: BranchOp, rs1: XReg, rs2: XReg, target: Label) {
        self.items.push(Item::Branch { op, rs1, rs2, target });
    }

    /// Appends an unconditional jump to `target`.
    pub fn jump(&mut self, target: Label) {
        self.items.push(Item::Jump { target });
    }

    /// Appends a call to `target` (return address in `ra`).
    pub fn call(&mut self, target: Label) {
        self.items.push(Item::Call { target });
    }

    /// Appends a fixed instruction whose final byte offset is reported in
    /// [`Laid::marks`].
    pub fn mark(&mut self, inst: Inst) {
        self.marks.push(self.items.len());
        self.items.push(Item::Fixed(inst));
    }

    /// Marks the start of function `f`'s prologue (call in order, once per function).
    pub fn start_function(&mut self, f: usize) {
        debug_assert_eq!(f, self.entry_start.len());
        self.entry_start.push(self.items.len());
    }

    /// Marks the start of BPF instruction `index` (call in order, once per instruction).
    pub fn start_insn(&mut self, index: usize) {
        debug_assert_eq!(index, self.insn_start.len());
        self.insn_start.push(self.items.len());
    }

    /// Marks the start of the current function's epilogue.
    pub fn start_epilogue(&mut self) {
        self.epilogue_start.push(self.items.len());
    }

    fn size(item: &Item, form: Form) -> usize {
        match (item, form) {
            (Item::Fixed(_), _) => 4,
            (Item::Branch { .. }, Form::Near) => 4,
            (Item::Branch { .. }, Form::Mid) => 8,
            (Item::Branch { .. }, Form::Far) => 12,
            (Item::Jump { .. }, Form::Near) => 4,
            (Item::Jump { .. }, _) => 8,
            (Item::Call { .. }, Form::Near) => 4,
            (Item::Call { .. }, _) => 8,
        }
    }

    /// The byte offset of `l` relative to the code's start, given item offsets.
    fn label_offset(&self, l: Label, offsets: &[usize], base: u64) -> i64 {
        match l {
            Label::Insn(i) => offsets[self.insn_start[i]] as i64,
            Label::Entry(f) => offsets[self.entry_start[f]] as i64,
            Label::Epilogue(f) => offsets[self.epilogue_start[f]] as i64,
            Label::Abs(a) => a.wrapping_sub(base) as i64,
        }
    }

    /// Whether the [`crate::bugs::Bug::BranchRelaxThreshold`] slip keeps a branch over
    /// `dist` bytes short that does not fit.
    fn slips_short(&self, item: &Item, dist: i64) -> bool {
        matches!(item, Item::Branch { .. })
            && dist == -4100
            && self.bugs.has(crate::bugs::Bug::BranchRelaxThreshold)
    }

    fn fits(&self, item: &Item, form: Form, dist: i64) -> bool {
        match (item, form) {
            (Item::Fixed(_), _) => true,
            (Item::Branch { .. }, Form::Near) => Imm13::new(dist).is_some() || self.slips_short(item, dist),
            // The jal sits 4 bytes after the inverted branch.
            (Item::Branch { .. }, Form::Mid) => Imm21::new(dist - 4).is_some(),
            (Item::Branch { .. }, Form::Far) => split_hi_lo(dist - 4).is_some(),
            (Item::Jump { .. } | Item::Call { .. }, Form::Near) => Imm21::new(dist).is_some(),
            (Item::Jump { .. } | Item::Call { .. }, _) => split_hi_lo(dist).is_some(),
        }
    }

    /// Chooses branch forms and produces the final instructions, for code that will be
    /// placed at guest address `base` (which only absolute targets depend on).
    pub fn finish(self, base: u64) -> Result<Laid, LayoutError> {
        let n = self.items.len();
        let mut forms = vec![Form::Near; n];
        let mut offsets = vec![0usize; n + 1];
        loop {
            for i in 0..n {
                offsets[i + 1] = offsets[i] + Self::size(&self.items[i], forms[i]);
            }
            let mut grew = false;
            for i in 0..n {
                let target = match self.items[i] {
                    Item::Fixed(_) => continue,
                    Item::Branch { target, .. } | Item::Jump { target } | Item::Call { target } => target,
                };
                let to = self.label_offset(target, &offsets, base);
                let dist = to - offsets[i] as i64;
                while !self.fits(&self.items[i], forms[i], dist) {
                    forms[i] = match forms[i] {
                        Form::Near => Form::Mid,
                        Form::Mid if matches!(self.items[i], Item::Branch { .. }) => Form::Far,
                        _ => return Err(LayoutError { at: offsets[i], to: to as usize }),
                    };
                    grew = true;
                }
            }
            if !grew {
                break;
            }
        }
        let mut insts = Vec::with_capacity(offsets[n] / 4);
        for i in 0..n {
            let item = self.items[i];
            let dist = |t: Label| self.label_offset(t, &offsets, base) - offsets[i] as i64;
            match (item, forms[i]) {
                (Item::Fixed(inst), _) => insts.push(inst),
                (Item::Branch { op, rs1, rs2, target }, form) => {
                    let d = dist(target);
                    match form {
                        // The slip's wrapped offset: -4100 read back in 13 bits.
                        Form::Near if self.slips_short(&item, d) => {
                            insts.push(Inst::Branch { op, rs1, rs2, off: imm13(d + 8192) })
                        }
                        Form::Near => insts.push(Inst::Branch { op, rs1, rs2, off: imm13(d) }),
                        Form::Mid => {
                            let from_jal =
                                if self.bugs.has(crate::bugs::Bug::BranchRelaxOffset) { 0 } else { 4 };
                            insts.push(Inst::Branch { op: op.invert(), rs1, rs2, off: imm13(8) });
                            insts.push(Inst::Jal { rd: XReg::ZERO, off: imm21(d - from_jal) });
                        }
                        Form::Far => {
                            insts.push(Inst::Branch { op: op.invert(), rs1, rs2, off: imm13(12) });
                            push_far_jump(&mut insts, d - 4);
                        }
                    }
                }
                (Item::Jump { target }, Form::Near) => {
                    insts.push(Inst::Jal { rd: XReg::ZERO, off: imm21(dist(target)) })
                }
                (Item::Jump { target }, _) => push_far_jump(&mut insts, dist(target)),
                (Item::Call { target }, Form::Near) => {
                    insts.push(Inst::Jal { rd: XReg::RA, off: imm21(dist(target)) })
                }
                (Item::Call { target }, _) => {
                    let (hi, lo) = split_hi_lo(dist(target)).expect("relaxation chose a form that reaches");
                    insts.push(Inst::Auipc { rd: XReg::RA, imm: hi });
                    insts.push(Inst::Jalr { rd: XReg::RA, rs1: XReg::RA, imm: lo });
                }
            }
        }
        // A BPF instruction's code ends where the next instruction's, or the next
        // prologue or epilogue, begins; an instruction that emitted nothing (the next
        // one starts where it does) has an empty range.
        let mut bounds: Vec<usize> =
            self.insn_start.iter().chain(&self.entry_start).chain(&self.epilogue_start).copied().collect();
        bounds.push(n);
        bounds.sort_unstable();
        let insn_ranges = self
            .insn_start
            .iter()
            .enumerate()
            .map(|(k, &s)| {
                let end = match self.insn_start.get(k + 1) {
                    Some(&next) if next == s => s,
                    _ => bounds[bounds.partition_point(|&b| b <= s)],
                };
                offsets[s]..offsets[end]
            })
            .collect();
        Ok(Laid {
            insts,
            insn_ranges,
            entries: self.entry_start.iter().map(|&i| offsets[i]).collect(),
            epilogues: self.epilogue_start.iter().map(|&i| offsets[i]).collect(),
            marks: self.marks.iter().map(|&i| offsets[i]).collect(),
        })
    }
}

fn imm13(d: i64) -> Imm13 {
    Imm13::new(d).expect("relaxation chose a form that reaches")
}

fn imm21(d: i64) -> Imm21 {
    Imm21::new(d).expect("relaxation chose a form that reaches")
}

fn push_far_jump(insts: &mut Vec<Inst>, d: i64) {
    let (hi, lo) = split_hi_lo(d).expect("relaxation chose a form that reaches");
    insts.push(Inst::Auipc { rd: FAR_TMP, imm: hi });
    insts.push(Inst::Jalr { rd: XReg::ZERO, rs1: FAR_TMP, imm: lo });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nops(l: &mut Layout, n: usize) {
        for _ in 0..n {
            l.push(Inst::nop());
        }
    }

    #[test]
    fn near_mid_and_far_branches() {
        // insn 0: a branch to insn 2; insn 1: padding of `pad` nops; insn 2: a nop.
        for (pad, expect_len) in [(10usize, 1usize), (2000, 2), (300_000, 3)] {
            let mut l = Layout::default();
            l.start_insn(0);
            l.branch(BranchOp::Beq, XReg::A0, XReg::A1, Label::Insn(2));
            l.start_insn(1);
            nops(&mut l, pad);
            l.start_insn(2);
            l.push(Inst::nop());
            l.start_epilogue();
            let laid = l.finish(0).unwrap();
            assert_eq!(laid.insn_ranges[0].len(), expect_len * 4, "pad {pad}");
            let target = laid.insn_ranges[2].start as i64;
            // Follow the emitted code as the CPU would, from byte 0, with a0 == a1.
            let reached = match laid.insts[..expect_len] {
                [Inst::Branch { op: BranchOp::Beq, off, .. }] => off.get(),
                [Inst::Branch { op: BranchOp::Bne, off: skip, .. }, Inst::Jal { off, .. }] => {
                    assert_eq!(skip.get(), 8);
                    4 + off.get()
                }
                [Inst::Branch { op: BranchOp::Bne, off: skip, .. }, Inst::Auipc { imm, .. }, Inst::Jalr { imm: lo, .. }] =>
                {
                    assert_eq!(skip.get(), 12);
                    4 + (imm.get() << 12) + lo.get()
                }
                ref other => panic!("unexpected code {other:?}"),
            };
            assert_eq!(reached, target);
        }
    }

    #[test]
    fn an_instruction_without_code_has_an_empty_range() {
        let mut l = Layout::default();
        l.start_insn(0);
        l.push(Inst::nop());
        l.start_insn(1);
        l.start_insn(2);
        l.push(Inst::nop());
        l.start_epilogue();
        l.push(Inst::Ebreak);
        let laid = l.finish(0x4000_0000).unwrap();
        assert_eq!(laid.insn_ranges, vec![0..4, 4..4, 4..8]);
    }

    #[test]
    fn backward_jump_and_epilogue_label() {
        let mut l = Layout::default();
        l.start_insn(0);
        l.push(Inst::nop());
        l.start_insn(1);
        l.jump(Label::Insn(0));
        l.jump(Label::Epilogue(0));
        l.start_epilogue();
        l.push(Inst::Ebreak);
        l.call(Label::Abs(0x1000));
        let laid = l.finish(0x4000_0000).unwrap();
        assert_eq!(laid.insts[1], Inst::Jal { rd: XReg::ZERO, off: Imm21::new(-4).unwrap() });
        assert_eq!(laid.insts[2], Inst::Jal { rd: XReg::ZERO, off: Imm21::new(4).unwrap() });
        assert_eq!(laid.epilogues, vec![12]);
        assert_eq!(laid.insn_ranges[1], 4..12);
        // A call 1 GiB back, from byte 16 of code at 0x4000_0000: auipc + jalr.
        match laid.insts[4..] {
            [Inst::Auipc { rd: XReg::RA, imm }, Inst::Jalr { rd: XReg::RA, rs1: XReg::RA, imm: lo }] => {
                assert_eq!(0x4000_0000 + 16 + (imm.get() << 12) + lo.get(), 0x1000)
            }
            ref other => panic!("{other:?}"),
        }
    }
}
