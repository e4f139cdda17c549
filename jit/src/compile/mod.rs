//! The BPF-to-RV64 compiler, shaped like the kernel's RV64 JIT: the same register
//! assignment and frames, one small emitter per idea, branch relaxation for far targets,
//! a selectable tail-call-counter scheme, and a map from every BPF instruction to the
//! machine code it became.

mod emit;
mod frame;
mod layout;
mod regs;
mod scheme;
mod trampoline;

use std::ops::Range;

use bpf::exec::{map_addr, MAP_PTRS_OFFSET};
use bpf::{
    helpers, AttachKind, AttachTarget, Call, EmptySlotRule, Insn, Operand, Program, ProgramSet, Reg,
    PSEUDO_MAP_FD,
};

use crate::bugs::{Bug, Bugs};
use crate::guest::{helper_addr, kfunc_addr, packet_load_addr, CODE_ADDR, MAX_MAPS};
use crate::rv64::{BranchOp, Imm12, Inst, LoadOp, ROp, ShiftOp, XReg};

pub use layout::LayoutError;
pub use regs::map as map_reg;
pub use scheme::{Scheme, MAX_TAIL_CALL_CNT};

use frame::Frame;
use layout::{Label, Layout};

/// Why a program cannot be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// An instruction the JIT does not handle.
    #[error("program {prog}, pc {pc}: {what} is not supported by the JIT")]
    Unsupported {
        /// Index of the program in its set.
        prog: usize,
        /// BPF pc (slot).
        pc: usize,
        /// What it is.
        what: String,
    },
    /// The set has more maps than the JIT's memory map holds.
    #[error("the set has {0} maps; the JIT's memory map holds {MAX_MAPS}")]
    TooManyMaps(usize),
    /// The code is too large to lay out.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A trampoline lies beyond the reach of its patch site.
    #[error("the trampoline of program {0}, function {1} is out of reach of its patch site")]
    TrampolineReach(usize, usize),
}

/// The trampoline of one traced function.
#[derive(Clone, Debug)]
pub struct Trampoline {
    /// The traced function.
    pub target: AttachTarget,
    /// Guest address of its code.
    pub base: u64,
    /// Its instructions.
    pub insts: Vec<Inst>,
}

/// One compiled program (all its functions, in one piece of code).
#[derive(Clone, Debug)]
pub struct Compiled {
    /// Guest address the code is built for.
    pub base: u64,
    /// The machine instructions, in order; the entry point is the first.
    pub insts: Vec<Inst>,
    /// Byte range of the code of each BPF instruction (indexed like `Program::insns`).
    pub insn_ranges: Vec<Range<usize>>,
    /// Byte offset of each function's prologue.
    pub entries: Vec<usize>,
    /// Byte offset of each function's epilogue.
    pub epilogues: Vec<usize>,
    /// Byte offsets of the jumps that complete tail calls (one per tail-call site).
    pub tail_call_jumps: Vec<usize>,
}

impl Compiled {
    /// The machine code, little-endian.
    pub fn code(&self) -> Vec<u8> {
        self.insts.iter().flat_map(|i| i.encode().to_le_bytes()).collect()
    }

    /// The BPF instruction index whose code contains byte `offset`, if any (prologue and
    /// epilogue bytes belong to none).
    pub fn insn_at(&self, offset: usize) -> Option<usize> {
        self.insn_ranges.iter().position(|r| r.contains(&offset))
    }

    /// The code's size in bytes.
    pub fn len(&self) -> usize {
        self.insts.len() * 4
    }

    /// For every jump of `prog` (whose code this is): whether it is conditional, and the
    /// distance in bytes from its branch (or jump) to its target's code in its shortest
    /// form (one instruction), the distance by which branch relaxation chooses its form:
    /// a forward jump that relaxation made longer counts without the bytes it grew.
    pub fn jump_distances(&self, prog: &Program) -> Vec<(bool, i64)> {
        let insns = prog.insns();
        (0..insns.len())
            .filter_map(|i| {
                let cond = match insns[i] {
                    Insn::Jmp { .. } => true,
                    Insn::Ja { .. } | Insn::JaLong { .. } => false,
                    _ => return None,
                };
                let (r, target) = (self.insn_ranges.get(i)?, self.insn_ranges.get(prog.target_of(i)?)?);
                if r.is_empty() {
                    return None;
                }
                // The jump's own item ends its code: 4 bytes (near), 8 (a conditional's
                // inverted branch and `jal`, or `auipc`+`jalr`) or 12 (inverted branch,
                // `auipc`, `jalr`).
                let last = r.end / 4 - 1;
                let size = match (&self.insts[last], cond) {
                    (Inst::Jalr { .. }, true) => 12,
                    (Inst::Jalr { .. }, false) | (Inst::Jal { .. }, true) => 8,
                    _ => 4,
                };
                let d = target.start as i64 - (r.end - size) as i64;
                Some((cond, if d > 0 { d - (size as i64 - 4) } else { d }))
            })
            .collect()
    }

    /// Whether there is no code (never true for a compiled program).
    pub fn is_empty(&self) -> bool {
        self.insts.is_empty()
    }
}

/// A compiled program set: each program's code at its own address.
#[derive(Clone, Debug)]
pub struct CompiledSet {
    /// The scheme the code keeps the tail-call counter with.
    pub scheme: Scheme,
    /// The programs, in the set's order, with the patch sites of traced functions
    /// rewritten to call their trampolines.
    pub progs: Vec<Compiled>,
    /// The attachments' programs, in the set's order.
    pub attachments: Vec<Compiled>,
    /// One trampoline per traced function.
    pub trampolines: Vec<Trampoline>,
    /// The code region's contents from [`CODE_ADDR`]: every program, attachment and
    /// trampoline at its base, zeros between them.
    pub image: Vec<u8>,
}

impl CompiledSet {
    /// The program and BPF instruction index whose code contains guest address `addr`.
    pub fn locate(&self, addr: u64) -> Option<(usize, usize)> {
        self.progs.iter().enumerate().find_map(|(p, c)| {
            let off = addr.checked_sub(c.base)? as usize;
            if off >= c.len() {
                return None;
            }
            c.insn_at(off).map(|i| (p, i))
        })
    }

    /// Guest addresses of every tail-call jump.
    pub fn tail_call_sites(&self) -> Vec<u64> {
        self.progs.iter().flat_map(|c| c.tail_call_jumps.iter().map(move |&o| c.base + o as u64)).collect()
    }

    /// Guest bytes the code occupies from [`CODE_ADDR`].
    pub fn span(&self) -> u64 {
        self.image.len() as u64
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
        Insn::LoadPacket { index, .. } => [Some(Reg::R6), index].into_iter().flatten().collect(),
        Insn::Ja { .. } | Insn::JaLong { .. } | Insn::Call(_) | Insn::TailCall | Insn::Exit => vec![],
    }
}

/// Compiles a single program at [`CODE_ADDR`] with the `register` scheme.
pub fn compile(prog: &Program) -> Result<Compiled, CompileError> {
    compile_prog(prog, 0, Codegen::default(), CODE_ADDR)
}

/// The choices that shape the code of a tail call: the counter's scheme, whether a tail
/// call through an empty slot counts, and the bugs to inject (see [`crate::bugs`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Codegen {
    /// How the tail-call counter is kept.
    pub scheme: Scheme,
    /// Whether the counter's decrement is stored before (`Counted`) or after (`Free`)
    /// the slot is found to hold a program.
    pub empty_slot: EmptySlotRule,
    /// Bugs injected into the code (none for the correct JIT).
    pub bugs: Bugs,
}

/// Compiles every program of a set with `scheme`, today's empty-slot rule and no bugs,
/// placing them one after another from [`CODE_ADDR`] on 4 KiB boundaries.
pub fn compile_set(set: &ProgramSet, scheme: Scheme) -> Result<CompiledSet, CompileError> {
    compile_set_with(set, Codegen { scheme, ..Codegen::default() })
}

/// [`compile_set`] with every choice of `codegen`.
pub fn compile_set_with(set: &ProgramSet, codegen: Codegen) -> Result<CompiledSet, CompileError> {
    let scheme = codegen.scheme;
    if set.maps().len() > MAX_MAPS {
        return Err(CompileError::TooManyMaps(set.maps().len()));
    }
    let mut base = CODE_ADDR;
    let next = |base: u64, len: usize| base + (len as u64).div_ceil(0x1000) * 0x1000;
    let mut progs = Vec::with_capacity(set.progs().len());
    for (p, sp) in set.progs().iter().enumerate() {
        let c = compile_prog(&sp.prog, p, codegen, base)?;
        base = next(base, c.len());
        progs.push(c);
    }
    let mut attachments = Vec::with_capacity(set.attachments().len());
    for (k, a) in set.attachments().iter().enumerate() {
        let c = compile_prog(&a.program.prog, set.progs().len() + k, codegen, base)?;
        base = next(base, c.len());
        attachments.push(c);
    }
    let mut trampolines: Vec<Trampoline> = Vec::new();
    for a in set.attachments() {
        if trampolines.iter().any(|t| t.target == a.target) {
            continue;
        }
        let entries = |kind| set.attached(a.target, kind).map(|k| attachments[k].base).collect::<Vec<_>>();
        let mut l = Layout::default();
        l.bugs = codegen.bugs;
        trampoline::emit_trampoline(&mut l, &entries(AttachKind::Fentry), &entries(AttachKind::Fexit));
        let insts = l.finish(base)?.insts;
        let (AttachTarget { prog, func }, at) = (a.target, base);
        base = next(base, insts.len() * 4);
        let traced = &mut progs[prog];
        let site = traced.entries[func];
        let patch = trampoline::patch_site(traced.base + site as u64, at)
            .ok_or(CompileError::TrampolineReach(prog, func))?;
        traced.insts[site / 4..site / 4 + 2].copy_from_slice(&patch);
        trampolines.push(Trampoline { target: a.target, base: at, insts });
    }
    let pieces = progs
        .iter()
        .chain(&attachments)
        .map(|c| (c.base, c.insts.as_slice()))
        .chain(trampolines.iter().map(|t| (t.base, t.insts.as_slice())));
    let span =
        pieces.clone().map(|(b, insts)| b + 4 * insts.len() as u64 - CODE_ADDR).max().unwrap_or(0) as usize;
    let mut image = vec![0u8; span];
    for (b, insts) in pieces {
        let at = (b - CODE_ADDR) as usize;
        for (k, inst) in insts.iter().enumerate() {
            image[at + 4 * k..at + 4 * k + 4].copy_from_slice(&inst.encode().to_le_bytes());
        }
    }
    Ok(CompiledSet { scheme, progs, attachments, trampolines, image })
}

/// What one function needs from its frame.
struct FunctionFacts {
    used: Vec<XReg>,
    uses_fp: bool,
    calls: bool,
    helper_calls: bool,
}

fn facts(insns: &[Insn]) -> FunctionFacts {
    let mut used: Vec<XReg> = Vec::new();
    let (mut uses_fp, mut calls, mut helper_calls) = (false, false, false);
    for insn in insns {
        for r in regs_used(insn) {
            uses_fp |= r == Reg::R10;
            if let Some(x) = regs::callee_saved(r) {
                if !used.contains(&x) {
                    used.push(x);
                }
            }
        }
        match insn {
            _ if insn.is_tail_call() => {}
            Insn::Call(Call::Local(_)) => calls = true,
            // the kernel's verifier turns a legacy packet load into a helper call
            Insn::Call(_) | Insn::LoadPacket { .. } => {
                calls = true;
                helper_calls = true;
            }
            _ => {}
        }
    }
    used.sort();
    FunctionFacts { used, uses_fp, calls, helper_calls }
}

fn compile_prog(prog: &Program, p: usize, codegen: Codegen, base: u64) -> Result<Compiled, CompileError> {
    let Codegen { scheme, empty_slot, bugs } = codegen;
    let insns = prog.insns();
    let functions = prog.functions();
    let starts: Vec<usize> = functions.iter().map(|f| f.start).collect();
    let mut l = Layout::default();
    l.bugs = bugs;
    l.empty_slot = empty_slot;
    let mut tail_calls = 0usize;
    for (f, range) in functions.iter().enumerate() {
        let facts = facts(&insns[range.clone()]);
        let mut used = facts.used.clone();
        if facts.helper_calls && scheme.saves_across_helpers() {
            used.push(regs::TCC_SAVED);
        }
        // Without r10 a function has no way to address its stack: give it none, as the
        // kernel's verifier-computed depth would.
        let depth = if facts.uses_fp { prog.function_stack_depth(f) } else { 0 };
        let frame = Frame::new(&used, facts.calls, depth);
        l.start_function(f);
        frame.emit_prologue(&mut l, f == 0, scheme, facts.uses_fp);
        for i in range.clone() {
            l.start_insn(i);
            let pc = prog.pc_of(i);
            let unsupported = |what: &str| CompileError::Unsupported { prog: p, pc, what: what.into() };
            let target = || Label::Insn(prog.target_of(i).expect("checked programs have in-range targets"));
            match insns[i] {
                Insn::Alu { width, op, dst, src } => emit::emit_alu(&mut l, width, op, dst, src),
                Insn::Neg { width, dst } => emit::emit_neg(&mut l, width, dst),
                Insn::MovSx { width, from, dst, src } => emit::emit_movsx(&mut l, width, from, dst, src),
                Insn::End { order, bits, dst } => emit::emit_end(&mut l, order, bits, dst),
                Insn::Ja { .. } | Insn::JaLong { .. } => l.jump(target()),
                Insn::Jmp { width, cond, dst, src, .. } => {
                    let backward = prog.target_of(i).is_some_and(|t| t <= i);
                    let width =
                        if backward && bugs.has(Bug::Jmp32LoopFullWidth) { bpf::Width::W64 } else { width };
                    emit::emit_cond_jump(&mut l, width, cond, dst, src, target())
                }
                Insn::Load { size, signed, dst, src, off } => {
                    emit::emit_load(&mut l, size, signed, dst, src, off)
                }
                Insn::StoreImm { size, dst, off, imm } => emit::emit_store_imm(&mut l, size, dst, off, imm),
                Insn::Store { size, dst, src, off } => emit::emit_store(&mut l, size, dst, src, off),
                Insn::Atomic { size, op, dst, src, off } => {
                    emit::emit_atomic(&mut l, size, op, dst, src, off)
                }
                Insn::LdImm64 { dst, pseudo: 0, imm } => emit::emit_imm(&mut l, regs::map(dst), imm as i64),
                Insn::LdImm64 { dst, pseudo: PSEUDO_MAP_FD, imm } => {
                    emit::emit_imm(&mut l, regs::map(dst), map_addr(imm as usize) as i64)
                }
                Insn::LdImm64 { dst, pseudo: bpf::PSEUDO_MAP_VALUE, imm } => {
                    let (k, off) = bpf::set::map_value_parts(imm);
                    let addr = map_addr(k as usize) + bpf::exec::ARRAY_VALUES_OFFSET + u64::from(off);
                    emit::emit_imm(&mut l, regs::map(dst), addr as i64)
                }
                Insn::LdImm64 { pseudo, .. } => {
                    return Err(unsupported(&format!("lddw with src = {pseudo}")))
                }
                Insn::TailCall | Insn::Call(Call::Helper(helpers::TAIL_CALL)) => {
                    emit_tail_call(&mut l, &frame, scheme, Label::Insn(i + 1));
                    tail_calls += 1;
                }
                Insn::Call(Call::Local(_)) => {
                    let t = prog.target_of(i).expect("checked");
                    let callee = starts.binary_search(&t).expect("call targets start functions");
                    scheme.emit_before_call(&mut l);
                    l.call(Label::Entry(callee));
                    scheme.emit_after_call(&mut l);
                }
                Insn::Call(Call::Helper(id)) => {
                    let addr = helper_addr(id).ok_or_else(|| unsupported(&format!("helper {id}")))?;
                    scheme.emit_before_helper(&mut l);
                    l.call(Label::Abs(addr));
                    scheme.emit_after_helper(&mut l);
                    l.push(Inst::mv(regs::map(Reg::R0), XReg::A0));
                }
                Insn::Call(Call::Kfunc(id)) => {
                    let addr = kfunc_addr(id).ok_or_else(|| unsupported(&format!("kfunc {id}")))?;
                    scheme.emit_before_kfunc(&mut l);
                    l.call(Label::Abs(addr));
                    scheme.emit_after_kfunc(&mut l);
                    l.push(Inst::mv(regs::map(Reg::R0), XReg::A0));
                }
                Insn::LoadPacket { size, index, imm } => {
                    emit_packet_load(&mut l, scheme, size, index, imm, i, f);
                }
                Insn::Exit => {
                    if i + 1 != range.end {
                        l.jump(Label::Epilogue(f));
                    }
                }
            }
        }
        frame.emit_epilogue(&mut l, scheme);
    }
    let laid = l.finish(base)?;
    debug_assert_eq!(laid.marks.len(), tail_calls);
    Ok(Compiled {
        base,
        insts: laid.insts,
        insn_ranges: laid.insn_ranges,
        entries: laid.entries,
        epilogues: laid.epilogues,
        tail_call_jumps: laid.marks,
    })
}

/// A legacy packet load (instruction `i` of function `f`), as the code the kernel's verifier
/// puts in its place before any JIT sees it (`bpf_gen_ld_abs`): `r2 = imm` (or `r2 = index`,
/// `r2 += imm`), `r1 = r6`, a call of the size's load helper, then `if r0 s>= 0` on to the
/// next instruction, else `w0 ^= w0` and return from the function.
fn emit_packet_load(
    l: &mut Layout,
    scheme: Scheme,
    size: bpf::Size,
    index: Option<Reg>,
    imm: i32,
    i: usize,
    f: usize,
) {
    match index {
        None => emit::emit_alu(l, bpf::Width::W64, bpf::AluOp::Mov, Reg::R2, bpf::Operand::Imm(imm)),
        Some(x) => {
            emit::emit_alu(l, bpf::Width::W64, bpf::AluOp::Mov, Reg::R2, bpf::Operand::Reg(x));
            if imm != 0 {
                emit::emit_alu(l, bpf::Width::W64, bpf::AluOp::Add, Reg::R2, bpf::Operand::Imm(imm));
            }
        }
    }
    emit::emit_alu(l, bpf::Width::W64, bpf::AluOp::Mov, Reg::R1, bpf::Operand::Reg(Reg::R6));
    scheme.emit_before_helper(l);
    l.call(Label::Abs(packet_load_addr(size)));
    scheme.emit_after_helper(l);
    l.push(Inst::mv(regs::map(Reg::R0), XReg::A0));
    l.branch(BranchOp::Bge, regs::map(Reg::R0), XReg::ZERO, Label::Insn(i + 1));
    emit::emit_alu(l, bpf::Width::W32, bpf::AluOp::Xor, Reg::R0, bpf::Operand::Reg(Reg::R0));
    l.jump(Label::Epilogue(f));
}

/// `bpf_tail_call(ctx = R1, map = R2, index = R3)`, in the kernel's order: the index
/// (as u32) against `max_entries`, then the counter, then the slot; the decremented
/// counter is kept before the slot is looked at under [`EmptySlotRule::Counted`] (6.12)
/// and only once it holds a program under [`EmptySlotRule::Free`] (7.x's RV64 JIT). On
/// success, unwind this function's frame and jump into the target past its counter
/// initialisation, with R1 and the counter as they are. Failure continues at `out`.
fn emit_tail_call(l: &mut Layout, frame: &Frame, scheme: Scheme, out: Label) {
    let (r2, r3) = (regs::map(Reg::R2), regs::map(Reg::R3));
    let (t1, t2, t3) = (regs::TMP1, regs::TMP2, regs::TMP3);
    let i = |v: i64| Imm12::new(v).expect("small");
    if l.bugs.has(Bug::TailCallIndexSigned) {
        emit::emit_sext32(l, t2, r3);
        l.push(Inst::Load { op: LoadOp::Lw, rd: t1, rs1: r2, imm: Imm12::ZERO });
        l.branch(BranchOp::Bge, t2, t1, out);
    } else {
        if l.bugs.has(Bug::TailCallIndexNotZext) {
            l.push(Inst::mv(t2, r3));
        } else {
            emit::emit_zext32(l, t2, r3);
        }
        l.push(Inst::Load { op: LoadOp::Lwu, rd: t1, rs1: r2, imm: Imm12::ZERO });
        l.branch(BranchOp::Bgeu, t2, t1, out);
    }
    scheme.emit_tail_count_check(l, out);
    let keep_before_slot = l.empty_slot == EmptySlotRule::Counted || l.bugs.has(Bug::TccKeptBeforeSlotCheck);
    if keep_before_slot {
        scheme.emit_tail_count_keep(l);
    }
    l.push(Inst::Shift { op: ShiftOp::Slli, rd: t1, rs1: t2, shamt: 3 });
    l.push(Inst::R { op: ROp::Add, rd: t1, rs1: t1, rs2: r2 });
    l.push(Inst::Load { op: LoadOp::Ld, rd: t1, rs1: t1, imm: i(MAP_PTRS_OFFSET as i64) });
    l.branch(BranchOp::Beq, t1, XReg::ZERO, out);
    if !keep_before_slot {
        scheme.emit_tail_count_keep(l);
    }
    l.push(Inst::Load { op: LoadOp::Ld, rd: t3, rs1: t1, imm: Imm12::ZERO });
    if !l.bugs.has(Bug::TailCallNoRestore) {
        frame.emit_restore(l);
    }
    let skip = scheme.skip() + if l.bugs.has(Bug::TailCallSkipOffset) { 4 } else { 0 };
    l.mark(Inst::Jalr { rd: XReg::ZERO, rs1: t3, imm: i(skip) });
}
