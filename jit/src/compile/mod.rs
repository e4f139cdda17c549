//! The BPF-to-RV64 compiler, shaped like the kernel's RV64 JIT: the same register
//! assignment and frame, one small emitter per idea, branch relaxation for far targets,
//! and a map from every BPF instruction to the machine code it became.

mod emit;
mod frame;
mod layout;
mod regs;

use std::ops::Range;

use bpf::{Insn, Operand, Program, Reg};

use crate::rv64::{Inst, XReg};

pub use frame::MAX_TAIL_CALL_CNT;
pub use layout::LayoutError;
pub use regs::map as map_reg;

use layout::{Label, Layout};

/// Why a program cannot be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// An instruction the JIT does not handle in this form.
    #[error("pc {pc}: {what} is not supported by the JIT for single programs")]
    Unsupported {
        /// BPF pc (slot).
        pc: usize,
        /// What it is.
        what: String,
    },
    /// The code is too large to lay out.
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// A compiled function.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The machine instructions, in order; the entry point is the first.
    pub insts: Vec<Inst>,
    /// Byte range of the code of each BPF instruction (indexed like `Program::insns`).
    pub insn_ranges: Vec<Range<usize>>,
    /// Byte offset of the epilogue.
    pub epilogue: usize,
}

impl Compiled {
    /// The machine code, little-endian.
    pub fn code(&self) -> Vec<u8> {
        self.insts.iter().flat_map(|i| i.encode().to_le_bytes()).collect()
    }

    /// The BPF instruction index whose code contains byte `offset`, if any (prologue and
    /// epilogue bytes belong to none).
    pub fn insn_at(&self, offset: usize) -> Option<usize> {
        let i = self.insn_ranges.partition_point(|r| r.end <= offset);
        self.insn_ranges.get(i).filter(|r| r.contains(&offset)).map(|_| i)
    }
}

fn regs_used(insn: &Insn) -> Vec<Reg> {
    let op = |o: Operand| match o {
        Operand::Reg(r) => Some(r),
        Operand::Imm(_) => None,
    };
    match *insn {
        Insn::Alu { dst, src, .. } | Insn::Jmp { dst, src, .. } => {
            [Some(dst), op(src)].into_iter().flatten().collect()
        }
        Insn::MovSx { dst, src, .. }
        | Insn::Load { dst, src, .. }
        | Insn::Store { dst, src, .. }
        | Insn::Atomic { dst, src, .. } => vec![dst, src],
        Insn::Neg { dst, .. }
        | Insn::End { dst, .. }
        | Insn::StoreImm { dst, .. }
        | Insn::LdImm64 { dst, .. } => {
            vec![dst]
        }
        Insn::Ja { .. } | Insn::JaLong { .. } | Insn::Call(_) | Insn::TailCall | Insn::Exit => vec![],
    }
}

/// Compiles one program.
pub fn compile(prog: &Program) -> Result<Compiled, CompileError> {
    let insns = prog.insns();
    let mut used: Vec<XReg> = Vec::new();
    let mut uses_fp = false;
    for insn in insns {
        for r in regs_used(insn) {
            uses_fp |= r == Reg::R10;
            if let Some(x) = regs::callee_saved(r) {
                if !used.contains(&x) {
                    used.push(x);
                }
            }
        }
    }
    used.sort();
    // Without r10 a program has no way to address its stack: give it none, as the
    // kernel's verifier-computed stack depth would.
    let depth = if uses_fp { prog.stack_depth() } else { 0 };
    let frame = frame::Frame::new(&used, false, depth);
    let mut l = Layout::default();
    frame.emit_prologue(&mut l, uses_fp);
    let last = insns.len() - 1;
    for (i, insn) in insns.iter().enumerate() {
        l.start_insn(i);
        let pc = prog.pc_of(i);
        let target = || Label::Insn(prog.target_of(i).expect("checked programs have in-range targets"));
        match *insn {
            Insn::Alu { width, op, dst, src } => emit::emit_alu(&mut l, width, op, dst, src),
            Insn::Neg { width, dst } => emit::emit_neg(&mut l, width, dst),
            Insn::MovSx { width, from, dst, src } => emit::emit_movsx(&mut l, width, from, dst, src),
            Insn::End { order, bits, dst } => emit::emit_end(&mut l, order, bits, dst),
            Insn::Ja { .. } | Insn::JaLong { .. } => l.jump(target()),
            Insn::Jmp { width, cond, dst, src, .. } => {
                emit::emit_cond_jump(&mut l, width, cond, dst, src, target())
            }
            Insn::Load { size, signed, dst, src, off } => {
                emit::emit_load(&mut l, size, signed, dst, src, off)
            }
            Insn::StoreImm { size, dst, off, imm } => emit::emit_store_imm(&mut l, size, dst, off, imm),
            Insn::Store { size, dst, src, off } => emit::emit_store(&mut l, size, dst, src, off),
            Insn::Atomic { size, op, dst, src, off } => emit::emit_atomic(&mut l, size, op, dst, src, off),
            Insn::LdImm64 { dst, pseudo: 0, imm } => emit::emit_imm(&mut l, regs::map(dst), imm as i64),
            Insn::LdImm64 { pseudo, .. } => {
                return Err(CompileError::Unsupported {
                    pc,
                    what: format!("lddw with src = {pseudo} (a map reference)"),
                })
            }
            Insn::Call(_) | Insn::TailCall => {
                return Err(CompileError::Unsupported { pc, what: "a call".into() })
            }
            Insn::Exit => {
                if i != last {
                    l.jump(Label::Epilogue);
                }
            }
        }
    }
    frame.emit_epilogue(&mut l);
    let laid = l.finish()?;
    Ok(Compiled { insts: laid.insts, insn_ranges: laid.insn_ranges, epilogue: laid.epilogue })
}
