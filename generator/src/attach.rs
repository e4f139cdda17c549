//! Attachments: fentry and fexit programs on functions of a generated set.
//!
//! A tracing program sees the traced function's R1-R5 as they were at the call, which may
//! be addresses or values the verifier calls undefined: their bits differ between engines,
//! so a generated tracing program never reads them. It counts its runs in an array map
//! (the kernel's selftests count in a global), calls jitdiff's counting helper or kfunc so
//! that the order of its runs shows in the helper trace, and, for fexit, keeps the low 32
//! bits of the return value it saw (generated functions return scalars). Its own prologue
//! starts a fresh tail-call count and its calls clobber every caller-saved register: a
//! trampoline that does not keep the traced function's count and registers around it shows.

use arbitrary::Unstructured;

use super::{chance, Config};
use bpf::helpers::{COUNTER, KFUNC_COUNTER, KFUNC_PREEMPT_DISABLE, KFUNC_PREEMPT_ENABLE, MAP_LOOKUP_ELEM};
use bpf::insn::{AluOp, AtomicOp, Call, Cond, Insn, Operand, Reg, Size, Width};
use bpf::program::Program;
use bpf::set::{AttachKind, AttachTarget, Attachment, ProgramSet, SetProgram, PSEUDO_MAP_FD};

/// The most attachments a generated set gets.
const MAX_GENERATED: usize = 3;

/// The functions of `prog` that its main function reaches by calls, main first. The kernel's
/// verifier removes the others as dead code, with their BTF, so nothing can attach to them.
fn called(prog: &Program) -> Vec<usize> {
    let calls = prog.calls();
    let mut reached = vec![0];
    let mut k = 0;
    while let Some(&f) = reached.get(k) {
        for &(_, g) in calls.get(f).map(Vec::as_slice).unwrap_or_default() {
            if !reached.contains(&g) {
                reached.push(g);
            }
        }
        k += 1;
    }
    reached
}

/// `set` with up to [`MAX_GENERATED`] attachments (none for half of the sets) on functions
/// that are called, half of them on functions that make tail calls when there are such
/// functions.
pub(super) fn attach(
    cfg: &Config,
    set: ProgramSet,
    u: &mut Unstructured<'_>,
) -> arbitrary::Result<ProgramSet> {
    if !cfg.attachments_enabled || !u.ratio(1, 2)? {
        return Ok(set);
    }
    let functions: Vec<AttachTarget> = set
        .progs()
        .iter()
        .enumerate()
        .flat_map(|(prog, p)| called(&p.prog).into_iter().map(move |func| AttachTarget { prog, func }))
        .collect();
    let tail_callers: Vec<AttachTarget> = functions
        .iter()
        .copied()
        .filter(|t| {
            let code = &set.progs()[t.prog].prog;
            code.functions()[t.func].clone().any(|i| code.insns()[i].is_tail_call())
        })
        .collect();
    let n = u.int_in_range(1..=MAX_GENERATED)?;
    let mut attachments = Vec::with_capacity(n);
    for k in 0..n {
        let pool = if !tail_callers.is_empty() && u.arbitrary()? { &tail_callers } else { &functions };
        let target = *u.choose(pool)?;
        let kind = if u.arbitrary()? { AttachKind::Fentry } else { AttachKind::Fexit };
        let prog = program(cfg, &set, kind, u)?;
        attachments.push(Attachment {
            kind,
            target,
            program: SetProgram { name: format!("{}{k}", kind.name()), prog },
        });
    }
    set.clone().with_attachments(attachments).or(Ok(set))
}

/// A tracing program's body.
fn program(
    cfg: &Config,
    set: &ProgramSet,
    kind: AttachKind,
    u: &mut Unstructured<'_>,
) -> arbitrary::Result<Program> {
    let mut insns = Vec::new();
    let keeps_return = kind == AttachKind::Fexit && u.arbitrary()?;
    if keeps_return {
        insns.push(Insn::Load { size: Size::DW, signed: false, dst: Reg::R6, src: Reg::R1, off: 40 });
    }
    if !cfg.kernel_helpers && cfg.helpers_enabled && chance(u, 1, 2)? {
        insns.push(Insn::Call(Call::Helper(COUNTER)));
    }
    if cfg.kfuncs_enabled && chance(u, 1, 3)? {
        // A kernel has none of jitdiff's kfuncs, but every program type may call these.
        match cfg.kernel_helpers {
            true => insns
                .extend([KFUNC_PREEMPT_DISABLE, KFUNC_PREEMPT_ENABLE].map(|k| Insn::Call(Call::Kfunc(k)))),
            false => insns.push(Insn::Call(Call::Kfunc(KFUNC_COUNTER))),
        }
    }
    if !set.arrays().is_empty() {
        let a = u.int_in_range(0..=set.arrays().len() - 1)?;
        let key = u.int_in_range(0..=set.arrays()[a].max_entries() - 1)?;
        let map = (set.maps().len() + a) as u64;
        let atomic = cfg.atomics_enabled && u.arbitrary()?;
        insns.extend([
            Insn::StoreImm { size: Size::W, dst: Reg::R10, off: -4, imm: key as i32 },
            Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R2, src: Operand::Reg(Reg::R10) },
            Insn::Alu { width: Width::W64, op: AluOp::Add, dst: Reg::R2, src: Operand::Imm(-4) },
            Insn::LdImm64 { dst: Reg::R1, pseudo: PSEUDO_MAP_FD, imm: map },
            Insn::Call(Call::Helper(MAP_LOOKUP_ELEM)),
        ]);
        let mut update = if atomic {
            vec![
                Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R1, src: Operand::Imm(1) },
                Insn::Atomic { size: Size::DW, op: AtomicOp::Add, dst: Reg::R0, src: Reg::R1, off: 0 },
            ]
        } else {
            vec![
                Insn::Load { size: Size::DW, signed: false, dst: Reg::R1, src: Reg::R0, off: 0 },
                Insn::Alu { width: Width::W64, op: AluOp::Add, dst: Reg::R1, src: Operand::Imm(1) },
                Insn::Store { size: Size::DW, dst: Reg::R0, src: Reg::R1, off: 0 },
            ]
        };
        if keeps_return {
            // Into the second word of an 8-byte value, past the counter's low half.
            update.push(Insn::Store { size: Size::W, dst: Reg::R0, src: Reg::R6, off: 4 });
        }
        insns.push(Insn::Jmp {
            width: Width::W64,
            cond: Cond::Eq,
            dst: Reg::R0,
            src: Operand::Imm(0),
            off: update.len() as i16,
        });
        insns.extend(update);
    }
    insns.push(Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R0, src: Operand::Imm(0) });
    insns.push(Insn::Exit);
    Program::new(insns).map_err(|_| arbitrary::Error::IncorrectFormat)
}
