//! A single eBPF function ready to run: instructions plus the facts engines need.

use crate::insn::{Call, Insn, Reg};
use crate::raw::{decode_bytes, encode_bytes, DecodeError};

/// The largest stack a BPF program may use (`MAX_BPF_STACK`).
pub const MAX_STACK: u32 = 512;

/// Why a sequence of instructions is not a runnable program.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    /// The bytes do not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The program has no instructions.
    #[error("the program is empty")]
    Empty,
    /// A jump leaves the program or lands inside a 64-bit immediate load.
    #[error("pc {pc}: jump to slot {target} is out of range (the program has {len} slots{inside})", inside = if *.inside_lddw { "; the target is the second half of an lddw" } else { "" })]
    JumpOutOfRange {
        /// Slot of the jump.
        pc: usize,
        /// Slot it would go to.
        target: i64,
        /// Number of slots in the program.
        len: usize,
        /// Whether the target is the second slot of an `lddw`.
        inside_lddw: bool,
    },
    /// A reachable instruction can fall through past the end of its function.
    #[error("pc {pc}: execution can run past the end of its function (end it with `exit` or an unconditional jump)")]
    FallsOffEnd {
        /// Slot of the last instruction.
        pc: usize,
    },
    /// An instruction writes the read-only frame pointer.
    #[error("pc {pc}: r10 is the read-only frame pointer and cannot be written")]
    WritesFramePointer {
        /// Slot of the instruction.
        pc: usize,
    },
    /// A jump leaves the function (main program or subprogram) it is in.
    #[error("pc {pc}: jump to pc {target} leaves its function (functions start at pc 0 and at every bpf2bpf call target)")]
    JumpAcrossFunctions {
        /// Slot of the jump.
        pc: usize,
        /// Slot it goes to.
        target: usize,
    },
    /// Stack depths were given for a different number of functions.
    #[error("{depths} stack depths given for {functions} functions")]
    StackDepthCount {
        /// Functions in the program.
        functions: usize,
        /// Depths given.
        depths: usize,
    },
    /// The declared stack depth is above [`MAX_STACK`].
    #[error("stack depth {0} exceeds the 512-byte eBPF stack")]
    StackTooDeep(u32),
}

/// A structurally sound eBPF function: every jump lands on an instruction boundary inside
/// the program, no path from the entry runs past the last instruction, and r10 is never
/// written.
///
/// Instructions are stored one per [`Insn`]; `pc` values used by the methods are slot
/// numbers, as the kernel counts them (an `lddw` takes two).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    insns: Vec<Insn>,
    /// Slot number of each instruction.
    slot_of: Vec<usize>,
    /// Instruction index starting at each slot (`usize::MAX` for an `lddw`'s second slot).
    index_at: Vec<usize>,
    /// Stack bytes of each function (indexed like [`Program::functions`]).
    stack_depths: Vec<u32>,
}

impl Program {
    /// Checks and wraps instructions. Each function's stack depth is inferred as the
    /// kernel's verifier would find it for direct accesses: the deepest `r10 - off`
    /// access, rounded up to 8 bytes; a function that copies r10 (or uses it in any way
    /// but as a memory base) may reach any depth and gets the full 512 bytes.
    pub fn new(insns: Vec<Insn>) -> Result<Program, ProgramError> {
        let mut p = Program::with_stack_depth(insns, MAX_STACK)?;
        p.stack_depths = p.functions().into_iter().map(|f| infer_stack_depth(&p.insns[f])).collect();
        Ok(p)
    }

    /// Checks and wraps instructions whose every function uses at most `stack_depth`
    /// bytes below r10.
    pub fn with_stack_depth(insns: Vec<Insn>, stack_depth: u32) -> Result<Program, ProgramError> {
        if insns.is_empty() {
            return Err(ProgramError::Empty);
        }
        if stack_depth > MAX_STACK {
            return Err(ProgramError::StackTooDeep(stack_depth));
        }
        let mut slot_of = Vec::with_capacity(insns.len());
        let mut index_at = Vec::with_capacity(insns.len() + 1);
        for (i, insn) in insns.iter().enumerate() {
            slot_of.push(index_at.len());
            index_at.push(i);
            if insn.slots() == 2 {
                index_at.push(usize::MAX);
            }
        }
        let mut p = Program { insns, slot_of, index_at, stack_depths: Vec::new() };
        p.check()?;
        p.stack_depths = vec![stack_depth; p.function_starts().len()];
        Ok(p)
    }

    /// Decodes little-endian bytecode and checks it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Program, ProgramError> {
        Program::new(decode_bytes(bytes)?)
    }

    fn check(&self) -> Result<(), ProgramError> {
        let len = self.index_at.len();
        for (i, insn) in self.insns.iter().enumerate() {
            let pc = self.slot_of[i];
            let target = match insn {
                Insn::Call(Call::Local(off)) => Some(*off as i64),
                other => other.jump_offset(),
            };
            if let Some(off) = target {
                let t = pc as i64 + 1 + off;
                if t < 0 || t >= len as i64 || self.index_at[t as usize] == usize::MAX {
                    return Err(ProgramError::JumpOutOfRange {
                        pc,
                        target: t,
                        len,
                        inside_lddw: t >= 0 && (t as usize) < len,
                    });
                }
            }
            if insn.written_reg() == Some(Reg::R10) {
                return Err(ProgramError::WritesFramePointer { pc });
            }
        }
        let starts = self.function_starts();
        let function_of = |i: usize| starts.partition_point(|&s| s <= i) - 1;
        for i in 0..self.insns.len() {
            if let (Some(t), Some(_)) = (self.target_of(i), self.insns[i].jump_offset()) {
                if function_of(t) != function_of(i) {
                    return Err(ProgramError::JumpAcrossFunctions {
                        pc: self.slot_of[i],
                        target: self.slot_of[t],
                    });
                }
            }
        }
        // Walk every path from the entry (and into every local call): none may run past
        // the last instruction. Unreachable code after the final exit is allowed.
        let n = self.insns.len();
        let mut seen = vec![false; n];
        let mut todo = vec![0usize];
        while let Some(i) = todo.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            let insn = self.insns[i];
            if let Some(t) = self.target_of(i) {
                todo.push(t);
            }
            if matches!(insn, Insn::Exit | Insn::Ja { .. } | Insn::JaLong { .. }) {
                continue;
            }
            if i + 1 == n || function_of(i + 1) != function_of(i) {
                return Err(ProgramError::FallsOffEnd { pc: self.slot_of[i] });
            }
            todo.push(i + 1);
        }
        Ok(())
    }

    /// The instructions, one entry per instruction (not per slot).
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// The number of 8-byte slots.
    pub fn slot_len(&self) -> usize {
        self.index_at.len()
    }

    /// The slot number (kernel pc) of instruction `index`.
    pub fn pc_of(&self, index: usize) -> usize {
        self.slot_of[index]
    }

    /// The instruction index that starts at slot `pc`, or `None` for an `lddw`'s second
    /// slot or a slot past the end.
    pub fn index_at(&self, pc: usize) -> Option<usize> {
        self.index_at.get(pc).copied().filter(|&i| i != usize::MAX)
    }

    /// The instruction index a jump or local call at instruction `index` goes to.
    /// `None` for instructions without a target. Always in range for a checked program.
    pub fn target_of(&self, index: usize) -> Option<usize> {
        let off = match self.insns[index] {
            Insn::Call(Call::Local(off)) => off as i64,
            other => other.jump_offset()?,
        };
        let t = self.slot_of[index] as i64 + 1 + off;
        self.index_at(t as usize)
    }

    /// Instruction indexes where functions start: 0 (the main program) and every
    /// bpf2bpf call target, sorted and without repeats.
    pub fn function_starts(&self) -> Vec<usize> {
        let mut starts: Vec<usize> = std::iter::once(0)
            .chain((0..self.insns.len()).filter_map(|i| match self.insns[i] {
                Insn::Call(Call::Local(_)) => self.target_of(i),
                _ => None,
            }))
            .collect();
        starts.sort_unstable();
        starts.dedup();
        starts
    }

    /// The instruction-index range of every function, main program first.
    pub fn functions(&self) -> Vec<std::ops::Range<usize>> {
        let starts = self.function_starts();
        let ends = starts.iter().skip(1).copied().chain([self.insns.len()]);
        starts.iter().copied().zip(ends).map(|(s, e)| s..e).collect()
    }

    /// Per function (in [`Program::functions`]' order), the bpf2bpf calls it makes: the
    /// instruction index of each call and the function it enters.
    pub fn calls(&self) -> Vec<Vec<(usize, usize)>> {
        let funcs = self.functions();
        funcs
            .iter()
            .map(|r| {
                r.clone()
                    .filter(|&i| matches!(self.insns[i], Insn::Call(Call::Local(_))))
                    .filter_map(|i| {
                        let t = self.target_of(i)?;
                        Some((i, funcs.iter().position(|f| f.start == t)?))
                    })
                    .collect()
            })
            .collect()
    }

    /// Bytes of stack below r10 the program may use (at most [`MAX_STACK`]).
    pub fn stack_depth(&self) -> u32 {
        self.stack_depths[0]
    }

    /// Stack bytes of function `f` (an index into [`Program::functions`]).
    pub fn function_stack_depth(&self, f: usize) -> u32 {
        self.stack_depths[f]
    }

    /// Sets every function's stack depth (one per function, in order).
    pub fn set_stack_depths(&mut self, depths: Vec<u32>) -> Result<(), ProgramError> {
        if let Some(&d) = depths.iter().find(|&&d| d > MAX_STACK) {
            return Err(ProgramError::StackTooDeep(d));
        }
        if depths.len() != self.stack_depths.len() {
            return Err(ProgramError::StackDepthCount {
                functions: self.stack_depths.len(),
                depths: depths.len(),
            });
        }
        self.stack_depths = depths;
        Ok(())
    }

    /// The program as little-endian bytecode.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_bytes(&self.insns)
    }
}

/// The stack depth of one function: the deepest direct `r10 - off` access rounded up to
/// 8, or [`MAX_STACK`] when r10 is used other than as a memory base.
fn infer_stack_depth(insns: &[Insn]) -> u32 {
    let mut deepest: i64 = 0;
    let mut access = |base: Reg, off: i16| {
        if base == Reg::R10 {
            deepest = deepest.max(-(off as i64));
        }
    };
    for insn in insns {
        match *insn {
            Insn::Load { src, off, .. } => access(src, off),
            Insn::StoreImm { dst, off, .. } => access(dst, off),
            Insn::Store { dst, src, off, .. } => {
                if src == Reg::R10 {
                    return MAX_STACK;
                }
                access(dst, off)
            }
            Insn::Atomic { dst, src, off, .. } => {
                if src == Reg::R10 {
                    return MAX_STACK;
                }
                access(dst, off)
            }
            Insn::Alu { src: crate::insn::Operand::Reg(Reg::R10), .. }
            | Insn::Jmp { src: crate::insn::Operand::Reg(Reg::R10), .. }
            | Insn::MovSx { src: Reg::R10, .. }
            | Insn::Jmp { dst: Reg::R10, .. } => return MAX_STACK,
            _ => {}
        }
    }
    (deepest.clamp(0, MAX_STACK as i64) as u32).div_ceil(8) * 8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{AluOp, Operand, Width};

    fn mov(dst: Reg, imm: i32) -> Insn {
        Insn::Alu { width: Width::W64, op: AluOp::Mov, dst, src: Operand::Imm(imm) }
    }

    #[test]
    fn slots_count_lddw_twice() {
        let p = Program::new(vec![
            Insn::LdImm64 { dst: Reg::R0, pseudo: 0, imm: 1 << 40 },
            Insn::Ja { off: 0 },
            Insn::Exit,
        ])
        .unwrap();
        assert_eq!(p.slot_len(), 4);
        assert_eq!(p.pc_of(1), 2);
        assert_eq!(p.index_at(1), None);
        assert_eq!(p.target_of(1), Some(2));
    }

    #[test]
    fn rejects_jump_into_lddw() {
        let err = Program::new(vec![
            Insn::Ja { off: 1 },
            Insn::LdImm64 { dst: Reg::R0, pseudo: 0, imm: 1 },
            Insn::Exit,
        ])
        .unwrap_err();
        assert!(matches!(err, ProgramError::JumpOutOfRange { pc: 0, target: 2, inside_lddw: true, .. }));
    }

    #[test]
    fn rejects_jump_past_end_and_fall_through() {
        let past = Program::new(vec![Insn::Ja { off: 5 }, Insn::Exit]).unwrap_err();
        assert!(matches!(past, ProgramError::JumpOutOfRange { target: 6, len: 2, .. }));
        let fall = Program::new(vec![mov(Reg::R0, 1)]).unwrap_err();
        assert_eq!(fall, ProgramError::FallsOffEnd { pc: 0 });
        // A conditional jump over the exit reaches the last instruction, which falls through.
        let cond = Insn::Jmp {
            width: Width::W64,
            cond: crate::Cond::Eq,
            dst: Reg::R1,
            src: Operand::Imm(0),
            off: 1,
        };
        let fall = Program::new(vec![cond, Insn::Exit, mov(Reg::R0, 1)]).unwrap_err();
        assert_eq!(fall, ProgramError::FallsOffEnd { pc: 2 });
        // Unreachable code after the final exit is fine (the kernel's test table has some).
        assert!(Program::new(vec![Insn::Exit, mov(Reg::R0, 1)]).is_ok());
    }

    #[test]
    fn functions_split_at_call_targets() {
        // 0: call pc+2 -> 3; 1: exit path of main; 3..: the subprogram.
        let p = Program::new(vec![
            Insn::Call(Call::Local(2)),
            mov(Reg::R0, 0),
            Insn::Exit,
            mov(Reg::R0, 1),
            Insn::Exit,
        ])
        .unwrap();
        assert_eq!(p.functions(), vec![0..3, 3..5]);
        let across =
            Program::new(vec![Insn::Call(Call::Local(1)), Insn::Ja { off: 0 }, Insn::Exit]).unwrap_err();
        assert_eq!(across, ProgramError::JumpAcrossFunctions { pc: 1, target: 2 });
    }

    #[test]
    fn stack_depth_is_inferred_per_function() {
        let st = |off| Insn::StoreImm { size: crate::Size::DW, dst: Reg::R10, off, imm: 0 };
        let p = Program::new(vec![
            st(-12),
            Insn::Call(Call::Local(1)),
            Insn::Exit,
            st(-256),
            Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R0, src: Operand::Reg(Reg::R10) },
            Insn::Exit,
        ])
        .unwrap();
        assert_eq!(p.functions().len(), 2);
        assert_eq!(p.function_stack_depth(0), 16, "12 bytes round up to 16");
        assert_eq!(p.function_stack_depth(1), 512, "r10 escapes into r0");
        assert_eq!(Program::new(vec![Insn::Exit]).unwrap().stack_depth(), 0);
    }

    #[test]
    fn rejects_writes_to_r10() {
        let err = Program::new(vec![mov(Reg::R10, 1), Insn::Exit]).unwrap_err();
        assert_eq!(err, ProgramError::WritesFramePointer { pc: 0 });
    }

    #[test]
    fn truncated_bytecode_names_the_slot() {
        let err = Program::from_bytes(&[0x95, 0, 0, 0, 0, 0, 0, 0, 0xb7, 0]).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}
