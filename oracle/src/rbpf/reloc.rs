//! Expansion and relocation: the general pass under the rbpf lowering.
//!
//! Every instruction of the original program becomes an *expansion*: a short sequence of
//! [`Piece`]s. Jumps and local calls inside pieces name their target symbolically
//! ([`Target`]): an original instruction (meaning the first slot of its expansion), a
//! position inside the expansion being emitted, or a label bound to synthetic code
//! appended by the lowering (the budget subroutine). Once everything is emitted,
//! [`Relocator::finish`] turns the targets into slot offsets. The whole pass is linear in
//! the size of the output.
//!
//! Offsets are counted in 8-byte slots, as on the wire: an `LdImm64` counts twice, both
//! in the original program and in the output.

use bpf::{Call, Insn};

/// Where a jump or local call of a [`Piece`] goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The first slot of the expansion of original instruction `i` (an index, not a pc).
    Insn(usize),
    /// Piece `k` of the expansion being emitted; `k` equal to the expansion's length means
    /// the slot right after it (the next instruction's expansion, or the next synthetic code).
    Local(usize),
    /// The code bound to this label with [`Relocator::bind`].
    Label(Label),
}

/// A name for synthetic code appended after the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Label(pub(crate) usize);

/// One instruction of an expansion. With a target, `insn` must be a `Ja`, `JaLong`, `Jmp`
/// or `Call(Local)`; its offset field is overwritten by the relocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) insn: Insn,
    pub(crate) target: Option<Target>,
}

impl Piece {
    /// An instruction without a target.
    pub(crate) const fn plain(insn: Insn) -> Piece {
        Piece { insn, target: None }
    }

    /// A jump or local call to `target`.
    pub(crate) const fn to(insn: Insn, target: Target) -> Piece {
        Piece { insn, target: Some(target) }
    }
}

/// Marks an output slot that belongs to no original instruction.
pub(crate) const SYNTHETIC: u32 = u32::MAX;

/// Why relocation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RelocError {
    /// A relocated offset does not fit the instruction's offset field.
    TooFar {
        /// Original instruction index of the jump, `None` in synthetic code.
        origin: Option<usize>,
        /// The offset that was needed, in slots.
        offset: i64,
        /// Width of the field in bits (16 or 32).
        bits: u32,
    },
    /// A piece with a target is not a jump or a local call (a bug in the lowering).
    NotAJump(Insn),
    /// A `Target::Local` past the end of its expansion (a bug in the lowering).
    LocalOutOfRange(usize),
    /// A target names an original instruction that was never emitted, or a label that was
    /// never bound (a bug in the lowering).
    Unresolved(Target),
}

#[derive(Clone, Copy, Debug)]
enum Resolved {
    Slot(usize),
    Insn(usize),
    Label(usize),
}

#[derive(Clone, Copy, Debug)]
struct Fixup {
    /// Index into `Relocator::insns`.
    at: usize,
    /// Slot of that instruction.
    slot: usize,
    target: Resolved,
}

/// Collects expansions and relocates them.
#[derive(Debug)]
pub(crate) struct Relocator {
    insns: Vec<Insn>,
    origin: Vec<u32>,
    starts: Vec<usize>,
    labels: Vec<Option<usize>>,
    fixups: Vec<Fixup>,
    slots: usize,
    piece_slots: Vec<usize>,
}

/// The relocated output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Relocated {
    /// The instructions, with every offset final.
    pub(crate) insns: Vec<Insn>,
    /// For each output slot, the index of the original instruction it comes from, or
    /// [`SYNTHETIC`].
    pub(crate) origin: Vec<u32>,
}

impl Relocator {
    /// A relocator for a program of `n_insns` original instructions and `n_labels` labels.
    pub(crate) fn new(n_insns: usize, n_labels: usize) -> Relocator {
        Relocator {
            insns: Vec::with_capacity(n_insns + n_insns / 2 + 8),
            origin: Vec::with_capacity(n_insns + n_insns / 2 + 8),
            starts: Vec::with_capacity(n_insns),
            labels: vec![None; n_labels],
            fixups: Vec::new(),
            slots: 0,
            piece_slots: Vec::with_capacity(8),
        }
    }

    /// Emits the expansion of the next original instruction (the first call emits
    /// instruction 0, the next one instruction 1, ...).
    pub(crate) fn emit_insn(&mut self, pieces: &[Piece]) -> Result<(), RelocError> {
        let index = self.starts.len();
        self.starts.push(self.slots);
        self.emit(pieces, index as u32)
    }

    /// Emits synthetic code that belongs to no original instruction.
    pub(crate) fn emit_synthetic(&mut self, pieces: &[Piece]) -> Result<(), RelocError> {
        self.emit(pieces, SYNTHETIC)
    }

    /// Binds `label` to the next slot.
    pub(crate) fn bind(&mut self, label: Label) {
        self.labels[label.0] = Some(self.slots);
    }

    fn emit(&mut self, pieces: &[Piece], origin: u32) -> Result<(), RelocError> {
        if let [Piece { insn, target: None }] = pieces {
            // The common case: one instruction, no target.
            self.insns.push(*insn);
            self.slots += insn.slots();
            self.origin.resize(self.slots, origin);
            return Ok(());
        }
        self.piece_slots.clear();
        for p in pieces {
            self.piece_slots.push(self.slots);
            self.slots += p.insn.slots();
        }
        self.piece_slots.push(self.slots);
        for (k, p) in pieces.iter().enumerate() {
            let slot = self.piece_slots[k];
            if let Some(t) = p.target {
                let target = match t {
                    Target::Insn(i) => Resolved::Insn(i),
                    Target::Label(l) => Resolved::Label(l.0),
                    Target::Local(j) => {
                        Resolved::Slot(*self.piece_slots.get(j).ok_or(RelocError::LocalOutOfRange(j))?)
                    }
                };
                self.fixups.push(Fixup { at: self.insns.len(), slot, target });
            }
            self.insns.push(p.insn);
            for _ in 0..p.insn.slots() {
                self.origin.push(origin);
            }
        }
        Ok(())
    }

    /// Resolves every target into an offset.
    pub(crate) fn finish(mut self) -> Result<Relocated, RelocError> {
        for f in &self.fixups {
            let target = match f.target {
                Resolved::Slot(s) => s,
                Resolved::Insn(i) => *self.starts.get(i).ok_or(RelocError::Unresolved(Target::Insn(i)))?,
                Resolved::Label(l) => {
                    self.labels[l].ok_or(RelocError::Unresolved(Target::Label(Label(l))))?
                }
            };
            let offset = target as i64 - (f.slot as i64 + 1);
            let origin = match self.origin[f.slot] {
                SYNTHETIC => None,
                o => Some(o as usize),
            };
            let too_far = |bits| RelocError::TooFar { origin, offset, bits };
            let insn = &mut self.insns[f.at];
            *insn = match *insn {
                Insn::Ja { .. } => Insn::Ja { off: i16::try_from(offset).map_err(|_| too_far(16))? },
                Insn::JaLong { .. } => Insn::JaLong { off: i32::try_from(offset).map_err(|_| too_far(32))? },
                Insn::Jmp { width, cond, dst, src, .. } => {
                    Insn::Jmp { width, cond, dst, src, off: i16::try_from(offset).map_err(|_| too_far(16))? }
                }
                Insn::Call(Call::Local(_)) => {
                    Insn::Call(Call::Local(i32::try_from(offset).map_err(|_| too_far(32))?))
                }
                other => return Err(RelocError::NotAJump(other)),
            };
        }
        Ok(Relocated { insns: self.insns, origin: self.origin })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpf::{AluOp, Cond, Operand, Reg, Width};

    fn mov(dst: Reg, imm: i32) -> Insn {
        Insn::Alu { width: Width::W64, op: AluOp::Mov, dst, src: Operand::Imm(imm) }
    }
    fn jeq(imm: i32) -> Insn {
        Insn::Jmp { width: Width::W64, cond: Cond::Eq, dst: Reg::R1, src: Operand::Imm(imm), off: 0 }
    }
    fn lddw(imm: u64) -> Insn {
        Insn::LdImm64 { dst: Reg::R2, pseudo: 0, imm }
    }
    const JA: Insn = Insn::Ja { off: 0 };
    fn p(i: Insn) -> Piece {
        Piece::plain(i)
    }

    fn run(exps: &[Vec<Piece>]) -> Relocated {
        let mut r = Relocator::new(exps.len(), 0);
        for e in exps {
            r.emit_insn(e).unwrap();
        }
        r.finish().unwrap()
    }

    #[test]
    fn identity_keeps_offsets_and_origins() {
        // 0: if r1 == 0 goto 3 ; 1: lddw (slots 1-2) ; 3: exit
        let out =
            run(&[vec![Piece::to(jeq(0), Target::Insn(2))], vec![p(lddw(1 << 40))], vec![p(Insn::Exit)]]);
        assert_eq!(out.insns[0].jump_offset(), Some(2));
        assert_eq!(out.origin, vec![0, 1, 1, 2]);
    }

    #[test]
    fn forward_jump_over_an_expanded_instruction() {
        // The middle instruction becomes three slots: the jump must now skip 3 slots.
        let out = run(&[
            vec![Piece::to(JA, Target::Insn(2))],
            vec![p(mov(Reg::R0, 1)), p(mov(Reg::R0, 2)), p(mov(Reg::R0, 3))],
            vec![p(Insn::Exit)],
        ]);
        assert_eq!(out.insns[0], Insn::Ja { off: 3 });
        assert_eq!(out.origin, vec![0, 1, 1, 1, 2]);
    }

    #[test]
    fn backward_jump_lands_on_the_start_of_an_expansion() {
        // 0: mov ; 1: expanded into [mov, lddw] (3 slots) ; 2: expanded [mov, ja -> insn 1]
        let out = run(&[
            vec![p(mov(Reg::R0, 0))],
            vec![p(mov(Reg::R0, 1)), p(lddw(7))],
            vec![p(mov(Reg::R3, 0)), Piece::to(JA, Target::Insn(1))],
            vec![p(Insn::Exit)],
        ]);
        // slots: 0 mov | 1 mov, 2-3 lddw | 4 mov, 5 ja | 6 exit ; ja at 5 -> 1: off = 1 - 6
        // (the lddw is one entry of `insns`: the ja is entry 4)
        assert_eq!(out.insns[4], Insn::Ja { off: -5 });
        assert_eq!(out.origin, vec![0, 1, 1, 1, 2, 2, 3]);
    }

    #[test]
    fn self_jump_goes_to_the_start_of_its_own_expansion() {
        // A jump to itself, expanded with an instruction in front: off = -2 (never -1).
        let out = run(&[vec![p(mov(Reg::R0, 0)), Piece::to(JA, Target::Insn(0))]]);
        assert_eq!(out.insns[1], Insn::Ja { off: -2 });
    }

    #[test]
    fn jump_to_the_last_instruction_after_expansions() {
        let out = run(&[
            vec![Piece::to(jeq(1), Target::Insn(3)), Piece::to(jeq(2), Target::Insn(3))],
            vec![p(lddw(1)), p(lddw(2))],
            vec![Piece::to(JA, Target::Insn(3))],
            vec![p(Insn::Exit)],
        ]);
        // slots: 0 jeq, 1 jeq | 2-3, 4-5 lddw | 6 ja | 7 exit
        assert_eq!(out.insns[0].jump_offset(), Some(6));
        assert_eq!(out.insns[1].jump_offset(), Some(5));
        assert_eq!(out.insns[4], Insn::Ja { off: 0 });
        assert_eq!(out.origin.len(), 8);
    }

    #[test]
    fn local_targets_inside_and_right_after_an_expansion() {
        // [jeq -> Local(2) (past the lddw), lddw, jeq -> Local(3) (= after the expansion)]
        let out = run(&[
            vec![Piece::to(jeq(1), Target::Local(2)), p(lddw(5)), Piece::to(jeq(2), Target::Local(3))],
            vec![p(Insn::Exit)],
        ]);
        // slots: 0 jeq, 1-2 lddw, 3 jeq | 4 exit
        assert_eq!(out.insns[0].jump_offset(), Some(2));
        assert_eq!(out.insns[2].jump_offset(), Some(0));
    }

    #[test]
    fn labels_and_local_calls() {
        let mut r = Relocator::new(2, 1);
        r.emit_synthetic(&[p(lddw(0))]).unwrap();
        r.emit_insn(&[Piece::to(Insn::Call(Call::Local(0)), Target::Label(Label(0))), p(mov(Reg::R0, 1))])
            .unwrap();
        r.emit_insn(&[p(Insn::Exit)]).unwrap();
        r.bind(Label(0));
        r.emit_synthetic(&[p(Insn::Exit)]).unwrap();
        let out = r.finish().unwrap();
        // slots: 0-1 lddw | 2 call, 3 mov | 4 exit | 5 label: exit
        assert_eq!(out.insns[1], Insn::Call(Call::Local(2)));
        assert_eq!(out.origin, vec![SYNTHETIC, SYNTHETIC, 0, 0, 1, SYNTHETIC]);
    }

    #[test]
    fn offsets_that_do_not_fit_are_reported_with_their_origin() {
        let mut exps = vec![vec![Piece::to(JA, Target::Insn(2))]];
        exps.push(vec![p(mov(Reg::R0, 0)); 40_000]);
        exps.push(vec![p(Insn::Exit)]);
        let mut r = Relocator::new(3, 0);
        for e in &exps {
            r.emit_insn(e).unwrap();
        }
        assert_eq!(r.finish(), Err(RelocError::TooFar { origin: Some(0), offset: 40_000, bits: 16 }));
        // The 32-bit JaLong reaches.
        let mut r = Relocator::new(3, 0);
        exps[0] = vec![Piece::to(Insn::JaLong { off: 0 }, Target::Insn(2))];
        for e in &exps {
            r.emit_insn(e).unwrap();
        }
        assert_eq!(r.finish().unwrap().insns[0], Insn::JaLong { off: 40_000 });
    }

    #[test]
    fn lowering_bugs_are_errors_not_panics() {
        let mut r = Relocator::new(1, 1);
        assert_eq!(r.emit_insn(&[Piece::to(JA, Target::Local(5))]), Err(RelocError::LocalOutOfRange(5)));
        let mut r = Relocator::new(1, 1);
        r.emit_insn(&[Piece::to(Insn::Exit, Target::Insn(0))]).unwrap();
        assert_eq!(r.finish(), Err(RelocError::NotAJump(Insn::Exit)));
        let mut r = Relocator::new(1, 1);
        r.emit_insn(&[Piece::to(JA, Target::Label(Label(0)))]).unwrap();
        assert_eq!(r.finish(), Err(RelocError::Unresolved(Target::Label(Label(0)))));
    }
}
