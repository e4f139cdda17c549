//! Lowering: rewrites a program into one that rbpf 0.4.1 runs with the kernel's semantics.
//!
//! Each instruction is expanded on its own (see [`super::reloc`] for the relocation of
//! jumps); nothing needs a scratch register. What cannot be rewritten that way is refused
//! with a reason naming the instruction and its pc. Every rule below was checked against
//! rbpf 0.4.1's `interpreter.rs` and `verifier.rs`.
//!
//! Besides the per-instruction rules, the lowered program
//! - starts with `lddw r1, <ctx>` (two synthetic slots) whose immediate the engine patches
//!   before each run, so that R1 is the context's address even for an empty context (rbpf
//!   sets R1 = 0 when its memory slice is empty);
//! - counts backward jumps: a local call to a budget subroutine appended after the program
//!   precedes every backward jump (see [`TICK_HELPER`]), so a non-terminating program stops.

use bpf::{AluOp, AtomicOp, ByteOrder, Call, Cond, Insn, Operand, Program, Reg, Size, SxBits, Width};

use super::reloc::{Label, Piece, RelocError, Relocator, Target, SYNTHETIC};

/// Helper id of the budget counter called by the budget subroutine. It returns 0 while the
/// budget lasts, then 1.
pub(crate) const TICK_HELPER: u32 = 0x7fff_0001;
/// Helper id that is never registered: calling it makes rbpf stop with an error, which is
/// how the budget subroutine ends a run whose budget is spent.
pub(crate) const STOP_HELPER: u32 = 0x7fff_0002;
/// The largest lowered program rbpf 0.4.1 jumps in correctly: its interpreter computes
/// jump targets as `(insn_ptr as i16 + off) as usize`, so a jump from or to a slot beyond
/// 32767 goes astray.
pub(crate) const MAX_SLOTS: usize = 32767;
/// rbpf's stack: one 512-byte area, R10 at its top in the outermost frame.
const RBPF_STACK: i64 = 512;
/// Slots taken by the synthetic `lddw r1, <ctx>` at the start.
const PREFIX_SLOTS: usize = 2;

const TICK: Label = Label(0);

/// A program as rbpf will run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lowered {
    insns: Vec<Insn>,
    bytes: Vec<u8>,
    origin: Vec<u32>,
    moved: Vec<bool>,
    has_budget: bool,
}

impl Lowered {
    /// The lowered instructions. The first is the synthetic `lddw r1, 0` whose immediate
    /// the engine replaces by the context's address; budget code, when present, follows
    /// the program's last instruction.
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// The lowered program as rbpf bytecode (with R1 = 0 in the prefix).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The index of the original instruction that output slot `slot` comes from; `None`
    /// for synthetic code (the prefix and the budget subroutine) and past the end.
    pub fn original_index(&self, slot: usize) -> Option<usize> {
        match self.origin.get(slot) {
            Some(&o) if o != SYNTHETIC => Some(o as usize),
            _ => None,
        }
    }

    /// Whether original instruction `index` is a stack access the lowering moved below
    /// rbpf's stack because it lies outside the program's declared stack depth.
    pub fn moved_stack_access(&self, index: usize) -> bool {
        self.moved.get(index).copied().unwrap_or(false)
    }

    /// Whether the program has backward jumps, hence budget code.
    pub fn has_budget(&self) -> bool {
        self.has_budget
    }
}

/// Registers known to hold `R10 + c`, as `Some(c)`, at one point of the program.
type StackFacts = [Option<i64>; 11];

fn fresh_facts() -> StackFacts {
    let mut f = [None; 11];
    f[Reg::R10.idx()] = Some(0);
    f
}

/// Lowers `prog`, or explains (naming the instruction and its pc) why rbpf 0.4.1 cannot
/// run it with the kernel's semantics. Linear in the program's size.
pub fn lower(prog: &Program) -> Result<Lowered, String> {
    let insns = prog.insns();
    let n = insns.len();
    let mut is_target = vec![false; n];
    let mut targets = Vec::with_capacity(n);
    let mut has_back = false;
    for (i, insn) in insns.iter().enumerate() {
        let target = prog.target_of(i);
        if let Some(t) = target {
            is_target[t] = true;
            has_back |= t <= i && insn.jump_offset().is_some();
        }
        targets.push(target);
    }
    let depth = i64::from(prog.stack_depth());
    let mut rel = Relocator::new(n, 1);
    let mut moved = vec![false; n];
    let prefix = Insn::LdImm64 { dst: Reg::R1, pseudo: 0, imm: 0 };
    rel.emit_synthetic(&[Piece::plain(prefix)]).map_err(|e| internal(&e))?;
    let mut facts = fresh_facts();
    let mut pieces = Vec::with_capacity(8);
    for (i, insn) in insns.iter().enumerate() {
        if is_target[i] {
            facts = fresh_facts();
        }
        pieces.clear();
        moved[i] = expand(prog, i, targets[i], &facts, depth, &mut pieces)?;
        if depth < RBPF_STACK {
            update_facts(&mut facts, insn);
        }
        rel.emit_insn(&pieces).map_err(|e| internal(&e))?;
    }
    if has_back {
        rel.bind(TICK);
        rel.emit_synthetic(&budget_subroutine()).map_err(|e| internal(&e))?;
    }
    let out = rel.finish().map_err(|e| match e {
        RelocError::TooFar { origin: Some(i), offset, bits } => format!(
            "pc {}: {}: after lowering the jump needs an offset of {offset} slots, beyond rbpf's \
             {bits}-bit offset field",
            prog.pc_of(i),
            if matches!(insns[i], Insn::JaLong { .. }) { "gotol" } else { "jump" },
        ),
        other => internal(&other),
    })?;
    if out.origin.len() > MAX_SLOTS {
        return Err(format!(
            "the lowered program has {} slots; rbpf 0.4.1 computes jump targets in 16-bit \
             arithmetic and goes wrong beyond {MAX_SLOTS}",
            out.origin.len()
        ));
    }
    debug_assert_eq!(out.origin[..PREFIX_SLOTS], [SYNTHETIC; PREFIX_SLOTS]);
    let mut bytes = Vec::with_capacity(out.origin.len() * 8);
    let mut slots = Vec::with_capacity(2);
    for insn in &out.insns {
        slots.clear();
        insn.encode_into(&mut slots);
        for s in &slots {
            bytes.extend_from_slice(&s.to_bytes());
        }
    }
    Ok(Lowered { insns: out.insns, bytes, origin: out.origin, moved, has_budget: has_back })
}

fn internal(e: &RelocError) -> String {
    format!("internal error in the rbpf lowering: {e:?}")
}

/// The budget subroutine, reached by a local call before each backward jump.
///
/// rbpf's local call saves R6-R9 and its `exit` restores them, and rbpf's helper calls
/// write R0 only: so the subroutine may use R6 to keep R0 across the helper call, and
/// returns with every register (and the stack, which it does not touch) as it found them.
/// When the helper says the budget is spent, it calls a helper that is never registered,
/// and rbpf stops the run with an error the engine recognises.
fn budget_subroutine() -> [Piece; 6] {
    let stop_if_spent =
        Insn::Jmp { width: Width::W64, cond: Cond::Ne, dst: Reg::R0, src: Operand::Imm(0), off: 0 };
    [
        Piece::plain(alu(Width::W64, AluOp::Mov, Reg::R6, Operand::Reg(Reg::R0))),
        Piece::plain(Insn::Call(Call::Helper(TICK_HELPER as i32))),
        Piece::to(stop_if_spent, Target::Local(5)),
        Piece::plain(alu(Width::W64, AluOp::Mov, Reg::R0, Operand::Reg(Reg::R6))),
        Piece::plain(Insn::Exit),
        Piece::plain(Insn::Call(Call::Helper(STOP_HELPER as i32))),
    ]
}

const fn alu(width: Width, op: AluOp, dst: Reg, src: Operand) -> Insn {
    Insn::Alu { width, op, dst, src }
}

const fn jmp64_k(cond: Cond, dst: Reg, imm: i32) -> Insn {
    Insn::Jmp { width: Width::W64, cond, dst, src: Operand::Imm(imm), off: 0 }
}

fn atomic_name(op: AtomicOp) -> &'static str {
    match op {
        AtomicOp::Add => "atomic add",
        AtomicOp::Or => "atomic or",
        AtomicOp::And => "atomic and",
        AtomicOp::Xor => "atomic xor",
        AtomicOp::FetchAdd => "atomic fetch_add",
        AtomicOp::FetchOr => "atomic fetch_or",
        AtomicOp::FetchAnd => "atomic fetch_and",
        AtomicOp::FetchXor => "atomic fetch_xor",
        AtomicOp::Xchg => "atomic xchg",
        AtomicOp::Cmpxchg => "atomic cmpxchg",
    }
}

/// Appends the expansion of instruction `i` (whose jump or call target is `target`) to
/// `out`. Returns whether a stack access was moved (see [`stack_fault_offset`]).
fn expand(
    prog: &Program,
    i: usize,
    target: Option<usize>,
    facts: &StackFacts,
    depth: i64,
    out: &mut Vec<Piece>,
) -> Result<bool, String> {
    let insn = prog.insns()[i];
    let pc = prog.pc_of(i);
    let cannot = |what: &str, why: &str| Err(format!("pc {pc}: {what}: {why}"));
    let jump_target = || {
        target
            .map(Target::Insn)
            .ok_or_else(|| format!("pc {pc}: internal error in the rbpf lowering: a jump without a target"))
    };
    // Budget: every backward jump (a jump to itself included) is preceded by a call to the
    // budget subroutine. Jumps land only on the first piece of an expansion and pieces jump
    // only forward inside their expansion, so each execution of the backward jump passes
    // the call first. The call also keeps the relocated offset of a self-jump at -2 or
    // below (rbpf's verifier rejects offset -1 as an "infinite loop").
    if let (Some(t), Some(_)) = (target, insn.jump_offset()) {
        if t <= i {
            out.push(Piece::to(Insn::Call(Call::Local(0)), Target::Label(TICK)));
        }
    }
    let mut moved = false;
    match insn {
        Insn::Alu { op: AluOp::Sdiv, .. } => {
            return cannot("sdiv", "rbpf 0.4.1 ignores the offset field and runs signed division as unsigned")
        }
        Insn::Alu { op: AluOp::Smod, .. } => {
            return cannot("smod", "rbpf 0.4.1 ignores the offset field and runs signed modulo as unsigned")
        }
        // MOD32: rbpf skips the instruction when the divisor's low 32 bits are zero, leaving
        // all 64 bits of dst; the kernel keeps the low 32 bits and zeroes the upper ones.
        // `w_dst = w_dst` zeroes them and changes nothing when rbpf already did (a nonzero
        // divisor gives a zero-extended result). The K form needs it only for K = 0.
        Insn::Alu { width: Width::W32, op: AluOp::Mod, dst, src } => {
            out.push(Piece::plain(insn));
            if matches!(src, Operand::Reg(_) | Operand::Imm(0)) {
                out.push(Piece::plain(alu(Width::W32, AluOp::Mov, dst, Operand::Reg(dst))));
            }
        }
        // Every other ALU operation runs as in the kernel (checked one by one: 32-bit results
        // are zero-extended, DIV by zero gives 0 in both widths, MOD64 by zero leaves dst,
        // 64-bit immediates are sign-extended, shift counts are masked).
        Insn::Alu { .. } => out.push(Piece::plain(insn)),
        // NEG64 is `-(dst as i64)` in rbpf, which panics on i64::MIN when rbpf is built with
        // overflow checks. `dst *= -1` (a wrapping multiply by 2^64 - 1) is the same value
        // modulo 2^64 and cannot panic.
        Insn::Neg { width: Width::W64, dst } => {
            out.push(Piece::plain(alu(Width::W64, AluOp::Mul, dst, Operand::Imm(-1))))
        }
        Insn::Neg { width: Width::W32, .. } => out.push(Piece::plain(insn)),
        // MOVSX: rbpf ignores the offset field and runs a plain MOV. `dst = src` (or
        // `w_dst = w_src`), then a left shift that puts bit n-1 of the source in the sign
        // bit and an arithmetic right shift back: the low n bits, sign-extended to the
        // operation's width. The 32-bit forms use 32-bit shifts, whose results rbpf
        // zero-extends, as the kernel does. With dst == src the copy is left out: the shifts
        // read only dst.
        Insn::MovSx { width, from, dst, src } => {
            let bits = match (width, from) {
                (Width::W64, _) => 64,
                (Width::W32, SxBits::S8 | SxBits::S16) => 32,
                (Width::W32, SxBits::S32) => {
                    return cannot("movsx32 from 32 bits", "not a valid instruction (no encoding)")
                }
            };
            let shift = Operand::Imm((bits - from.bits()) as i32);
            if dst != src {
                out.push(Piece::plain(alu(width, AluOp::Mov, dst, Operand::Reg(src))));
            }
            out.push(Piece::plain(alu(width, AluOp::Lsh, dst, shift)));
            out.push(Piece::plain(alu(width, AluOp::Arsh, dst, shift)));
        }
        Insn::End { bits, .. } if !matches!(bits, 16 | 32 | 64) => {
            return Err(format!(
                "pc {pc}: byte swap to {bits} bits: rbpf's verifier rejects it (\"unsupported \
                 argument for LE/BE\")"
            ))
        }
        // BSWAP (ALU64 END, cpu v4) is rejected by rbpf's verifier. An unconditional byte
        // swap of the low `bits` bits, zero-extended, is exactly what TO_BE does on a
        // little-endian host, which rbpf implements as `(dst as uN).to_be()`. The engine
        // refuses to run on big-endian hosts.
        Insn::End { order: ByteOrder::Swap, bits, dst } => {
            out.push(Piece::plain(Insn::End { order: ByteOrder::Be, bits, dst }))
        }
        Insn::End { .. } => out.push(Piece::plain(insn)),
        // JA, and gotol (JMP32 JA, which rbpf's verifier rejects) as a 16-bit JA when the
        // relocated offset fits (the relocation refuses it otherwise).
        Insn::Ja { .. } | Insn::JaLong { .. } => {
            out.push(Piece::to(Insn::Ja { off: 0 }, jump_target()?));
        }
        // rbpf's verifier refuses r10 as the dst field of everything but stores, jumps
        // included (it takes the field for a destination). `r10 op rX` is `rX op' r10` with
        // the operands swapped (rbpf accepts r10 as src); `r10 op r10` is decided statically
        // (R10 equals itself); the immediate form cannot be swapped.
        Insn::Jmp { width, cond, dst: Reg::R10, src, .. } => match src {
            Operand::Reg(Reg::R10) => match cond {
                Cond::Eq | Cond::Ge | Cond::Le | Cond::Sge | Cond::Sle => {
                    out.push(Piece::to(Insn::Ja { off: 0 }, jump_target()?))
                }
                Cond::Ne | Cond::Gt | Cond::Lt | Cond::Sgt | Cond::Slt => {
                    out.push(Piece::to(Insn::Ja { off: 0 }, Target::Local(out.len() + 1)))
                }
                Cond::Set => {
                    return cannot(
                        "if r10 & r10",
                        "rbpf's verifier refuses r10 as the first operand of a jump, and the \
                         outcome depends on the stack's address",
                    )
                }
            },
            Operand::Reg(other) => {
                let swapped = match cond {
                    Cond::Gt => Cond::Lt,
                    Cond::Lt => Cond::Gt,
                    Cond::Ge => Cond::Le,
                    Cond::Le => Cond::Ge,
                    Cond::Sgt => Cond::Slt,
                    Cond::Slt => Cond::Sgt,
                    Cond::Sge => Cond::Sle,
                    Cond::Sle => Cond::Sge,
                    Cond::Eq | Cond::Ne | Cond::Set => cond,
                };
                let j = Insn::Jmp { width, cond: swapped, dst: other, src: Operand::Reg(Reg::R10), off: 0 };
                out.push(Piece::to(j, jump_target()?));
            }
            Operand::Imm(_) => {
                return cannot(
                    "jump comparing r10 with an immediate",
                    "rbpf's verifier refuses r10 as the first operand of a jump (\"cannot write into \
                     register r10\"), and an immediate cannot be swapped into that place",
                )
            }
        },
        Insn::Jmp { width: Width::W64, cond, dst, src: Operand::Imm(c), .. }
            if c < 0 && matches!(cond, Cond::Eq | Cond::Ne | Cond::Gt | Cond::Ge | Cond::Lt | Cond::Le) =>
        {
            negative_k_jump(cond, dst, c, jump_target()?, out);
        }
        // Every other jump runs as in the kernel: JMP32 compares the low 32 bits (unsigned
        // with `imm as u32`, signed as i32), JSET and the signed 64-bit jumps sign-extend
        // the immediate, the X forms compare registers.
        Insn::Jmp { .. } => {
            out.push(Piece::to(insn, jump_target()?));
        }
        Insn::Load { size: Size::DW, signed: true, .. } => {
            return cannot("ldxsdw", "not a valid instruction (MEMSX has no 64-bit form)")
        }
        // A zero-extending load, then (for MEMSX, which rbpf rejects) the sign extension of
        // the loaded bits by two 64-bit shifts on dst. When dst is the base register the
        // load overwrites the base, but the shifts come after it and read only dst.
        Insn::Load { size, signed, dst, src, off } => {
            let off = match stack_fault_offset(facts, src, off, size, depth) {
                Some(o) => {
                    moved = true;
                    o.map_err(|why| format!("pc {pc}: load: {why}"))?
                }
                None => off,
            };
            out.push(Piece::plain(Insn::Load { size, signed: false, dst, src, off }));
            if signed {
                let shift = Operand::Imm(64 - size.bits() as i32);
                out.push(Piece::plain(alu(Width::W64, AluOp::Lsh, dst, shift)));
                out.push(Piece::plain(alu(Width::W64, AluOp::Arsh, dst, shift)));
            }
        }
        Insn::StoreImm { size, dst, off, imm } => {
            let off = match stack_fault_offset(facts, dst, off, size, depth) {
                Some(o) => {
                    moved = true;
                    o.map_err(|why| format!("pc {pc}: store: {why}"))?
                }
                None => off,
            };
            out.push(Piece::plain(Insn::StoreImm { size, dst, off, imm }));
        }
        Insn::Store { size, dst, src, off } => {
            let off = match stack_fault_offset(facts, dst, off, size, depth) {
                Some(o) => {
                    moved = true;
                    o.map_err(|why| format!("pc {pc}: store: {why}"))?
                }
                None => off,
            };
            out.push(Piece::plain(Insn::Store { size, dst, src, off }));
        }
        Insn::Atomic { op, .. } => {
            return cannot(
                atomic_name(op),
                "rbpf 0.4.1 has no atomic instructions (its verifier rejects BPF_ATOMIC as XADD)",
            )
        }
        Insn::LdImm64 { pseudo, .. } if pseudo != 0 => {
            return Err(format!(
                "pc {pc}: lddw with src = {pseudo}: rbpf 0.4.1 ignores src and would load the raw \
                 immediate instead of the object it names"
            ))
        }
        Insn::LdImm64 { .. } | Insn::Exit => out.push(Piece::plain(insn)),
        Insn::Call(c) => {
            let what = match c {
                Call::Helper(_) => "call helper",
                Call::Local(_) => "local call",
                Call::Kfunc(_) => "kfunc call",
            };
            return cannot(what, "calls need a program set");
        }
        Insn::TailCall => return cannot("tail call", "calls need a program set"),
    }
    Ok(moved)
}

/// A 64-bit JEQ/JNE/JGT/JGE/JLT/JLE against an immediate `c < 0`.
///
/// rbpf compares with `c as u32 as u64` (zero-extended); the kernel with `c as i64 as u64`
/// (sign-extended), call it C. The signed jumps sign-extend correctly in rbpf, so the
/// unsigned comparison is rewritten into signed ones. Let x be dst, xs its signed value.
/// Since c < 0, C >= 2^63: C lies in the upper half of the unsigned order, which holds
/// exactly the x with xs < 0, and inside that half the unsigned order is the signed one
/// (x = xs + 2^64 and C = c + 2^64). Every x with xs >= 0 is below C. Hence:
/// - `x >u C`  iff `xs < 0 && xs > c`   (xs >= 0 gives x < 2^63 <= C);
/// - `x >=u C` iff `xs < 0 && xs >= c`;
/// - `x <u C`  iff `!(x >=u C)` iff `xs >= 0 || xs < c`;
/// - `x <=u C` iff `!(x >u C)`  iff `xs >= 0 || xs <= c`;
/// - `x == C`  iff `xs == c`    iff `!(xs < c) && xs <= c`;
/// - `x != C`  iff `xs != c`    iff `xs < c || xs > c`.
///
/// As jumps ("next" is the instruction after the pair, T the target):
/// `&&` forms jump to next when the first conjunct fails, then jump to T on the second;
/// `||` forms jump to T on either. `xs >= 0` is `if x s>= 0`.
fn negative_k_jump(cond: Cond, dst: Reg, c: i32, t: Target, out: &mut Vec<Piece>) {
    let next = Target::Local(out.len() + 2);
    let (first, first_target, second) = match cond {
        // xs >= 0 -> not taken; else taken iff xs > c
        Cond::Gt => (jmp64_k(Cond::Sge, dst, 0), next, jmp64_k(Cond::Sgt, dst, c)),
        // xs >= 0 -> not taken; else taken iff xs >= c
        Cond::Ge => (jmp64_k(Cond::Sge, dst, 0), next, jmp64_k(Cond::Sge, dst, c)),
        // xs >= 0 -> taken; else taken iff xs < c
        Cond::Lt => (jmp64_k(Cond::Sge, dst, 0), t, jmp64_k(Cond::Slt, dst, c)),
        // xs >= 0 -> taken; else taken iff xs <= c
        Cond::Le => (jmp64_k(Cond::Sge, dst, 0), t, jmp64_k(Cond::Sle, dst, c)),
        // xs < c -> not taken; else (xs >= c) taken iff xs <= c, i.e. xs == c
        Cond::Eq => (jmp64_k(Cond::Slt, dst, c), next, jmp64_k(Cond::Sle, dst, c)),
        // xs < c -> taken; else taken iff xs > c
        Cond::Ne => (jmp64_k(Cond::Slt, dst, c), t, jmp64_k(Cond::Sgt, dst, c)),
        Cond::Sgt | Cond::Sge | Cond::Slt | Cond::Sle | Cond::Set => {
            unreachable!("only the unsigned and equality conditions are rewritten")
        }
    };
    out.push(Piece::to(first, first_target));
    out.push(Piece::to(second, t));
}

/// Stack accesses outside the declared depth.
///
/// rbpf gives the outermost frame its whole 512-byte stack, with R10 at the top; the
/// kernel allows only `[R10 - depth, R10)`. When `base` is known to hold `R10 + c` and the
/// access `[c + off, c + off + size)` lies inside rbpf's stack but not inside the depth,
/// the returned offset is `off - 512`, which puts the access entirely below rbpf's stack,
/// so that rbpf faults at this instruction as the kernel does (nothing else rbpf accepts is
/// there: the context sits in the middle of a guard area far larger than 512 bytes).
/// `Some(Err(..))` when `off - 512` does not fit 16 bits; `None` when nothing is to do.
/// Accesses through pointers the block-local tracking does not know stay as they are: rbpf
/// accepts them where the kernel would not (a known residual divergence).
fn stack_fault_offset(
    facts: &StackFacts,
    base: Reg,
    off: i16,
    size: Size,
    depth: i64,
) -> Option<Result<i16, String>> {
    if depth >= RBPF_STACK {
        return None;
    }
    let start = facts[base.idx()]?.checked_add(i64::from(off))?;
    let end = start + i64::from(size.bytes());
    let in_rbpf_stack = start >= -RBPF_STACK && end <= 0;
    let in_depth = start >= -depth && end <= 0;
    if !in_rbpf_stack || in_depth {
        return None;
    }
    Some(i16::try_from(i64::from(off) - RBPF_STACK).map_err(|_| {
        format!(
            "the access at R10{start:+} lies outside the declared stack depth of {depth} bytes, \
             and its offset cannot be moved below rbpf's stack to make it fault"
        )
    }))
}

/// Forward transfer of the block-local R10 tracking: `r = r10`, `r = q` (q tracked) and
/// `r += K` / `r -= K` keep a register tracked; any other write forgets it.
fn update_facts(facts: &mut StackFacts, insn: &Insn) {
    match *insn {
        Insn::Alu { width: Width::W64, op: AluOp::Mov, dst, src: Operand::Reg(src) } => {
            facts[dst.idx()] = facts[src.idx()];
        }
        Insn::Alu { width: Width::W64, op: AluOp::Add, dst, src: Operand::Imm(k) } => {
            facts[dst.idx()] = facts[dst.idx()].and_then(|c| c.checked_add(i64::from(k)));
        }
        Insn::Alu { width: Width::W64, op: AluOp::Sub, dst, src: Operand::Imm(k) } => {
            facts[dst.idx()] = facts[dst.idx()].and_then(|c| c.checked_sub(i64::from(k)));
        }
        Insn::Call(_) | Insn::TailCall => {
            for f in &mut facts[..=5] {
                *f = None;
            }
        }
        _ => {
            if let Some(r) = insn.written_reg() {
                facts[r.idx()] = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W64: Width = Width::W64;
    const W32: Width = Width::W32;
    const PREFIX: Insn = Insn::LdImm64 { dst: Reg::R1, pseudo: 0, imm: 0 };

    fn mov(dst: Reg, imm: i32) -> Insn {
        alu(W64, AluOp::Mov, dst, Operand::Imm(imm))
    }
    fn lowered(insns: Vec<Insn>) -> Lowered {
        lower(&Program::new(insns).unwrap()).unwrap()
    }

    #[test]
    fn forward_only_programs_only_gain_the_prefix() {
        let insns = vec![
            mov(Reg::R0, 1),
            Insn::LdImm64 { dst: Reg::R2, pseudo: 0, imm: 1 << 40 },
            Insn::Jmp { width: W64, cond: Cond::Eq, dst: Reg::R0, src: Operand::Imm(5), off: 1 },
            alu(W32, AluOp::Mod, Reg::R0, Operand::Imm(3)),
            Insn::Jmp { width: W32, cond: Cond::Eq, dst: Reg::R0, src: Operand::Imm(-1), off: 0 },
            Insn::Jmp { width: W64, cond: Cond::Set, dst: Reg::R0, src: Operand::Imm(-1), off: 0 },
            Insn::Jmp { width: W64, cond: Cond::Sgt, dst: Reg::R0, src: Operand::Imm(-1), off: 0 },
            Insn::Exit,
        ];
        let l = lowered(insns.clone());
        assert_eq!(l.insns()[0], PREFIX);
        assert_eq!(&l.insns()[1..], &insns[..]);
        assert!(!l.has_budget());
        assert_eq!(l.bytes().len(), 8 * 11);
        // slots: 0-1 prefix | 2 mov | 3-4 lddw | 5 jeq ...
        assert_eq!(
            [0, 1, 2, 3, 4, 5].map(|s| l.original_index(s)),
            [None, None, Some(0), Some(1), Some(1), Some(2)]
        );
        assert_eq!(l.original_index(100), None);
    }

    #[test]
    fn mod32_gets_a_zero_extension_only_when_the_divisor_may_be_zero() {
        let zext = alu(W32, AluOp::Mov, Reg::R0, Operand::Reg(Reg::R0));
        for (src, extra) in [
            (Operand::Imm(3), false),
            (Operand::Imm(-1), false),
            (Operand::Imm(0), true),
            (Operand::Reg(Reg::R1), true),
        ] {
            let m = alu(W32, AluOp::Mod, Reg::R0, src);
            let l = lowered(vec![m, Insn::Exit]);
            let want: Vec<Insn> =
                if extra { vec![PREFIX, m, zext, Insn::Exit] } else { vec![PREFIX, m, Insn::Exit] };
            assert_eq!(l.insns(), &want[..], "{src:?}");
        }
    }

    #[test]
    fn negative_k_jumps_become_signed_pairs() {
        let j = |cond: Cond| Insn::Jmp { width: W64, cond, dst: Reg::R3, src: Operand::Imm(-7), off: 1 };
        let s = |cond: Cond, imm: i32, off: i16| Insn::Jmp {
            width: W64,
            cond,
            dst: Reg::R3,
            src: Operand::Imm(imm),
            off,
        };
        // 0: jump +1 -> 2 ; 1: r0 = 0 ; 2: exit. Lowered: 2 first, 3 second, 4 mov, 5 exit.
        let cases = [
            (Cond::Gt, s(Cond::Sge, 0, 1), s(Cond::Sgt, -7, 1)),
            (Cond::Ge, s(Cond::Sge, 0, 1), s(Cond::Sge, -7, 1)),
            (Cond::Lt, s(Cond::Sge, 0, 2), s(Cond::Slt, -7, 1)),
            (Cond::Le, s(Cond::Sge, 0, 2), s(Cond::Sle, -7, 1)),
            (Cond::Eq, s(Cond::Slt, -7, 1), s(Cond::Sle, -7, 1)),
            (Cond::Ne, s(Cond::Slt, -7, 2), s(Cond::Sgt, -7, 1)),
        ];
        for (cond, first, second) in cases {
            let l = lowered(vec![j(cond), mov(Reg::R0, 0), Insn::Exit]);
            assert_eq!(l.insns()[1..3], [first, second], "{cond:?}");
        }
    }

    #[test]
    fn backward_jumps_call_the_budget_subroutine_first() {
        let l = lowered(vec![mov(Reg::R0, 0), Insn::Ja { off: -1 }]);
        // slots: 0-1 prefix | 2 mov | 3 call, 4 ja | 5.. subroutine
        assert!(l.has_budget());
        assert_eq!(l.insns()[2], Insn::Call(Call::Local(1)));
        assert_eq!(l.insns()[3], Insn::Ja { off: -2 });
        assert_eq!(l.insns()[4], alu(W64, AluOp::Mov, Reg::R6, Operand::Reg(Reg::R0)));
        assert_eq!(l.insns()[5], Insn::Call(Call::Helper(TICK_HELPER as i32)));
        assert_eq!(
            l.insns()[6],
            Insn::Jmp { width: W64, cond: Cond::Ne, dst: Reg::R0, src: Operand::Imm(0), off: 2 }
        );
        assert_eq!(l.insns()[9], Insn::Call(Call::Helper(STOP_HELPER as i32)));
        assert_eq!(l.original_index(5), None);
        assert_eq!(l.original_index(4), Some(1));
        // A backward jump to an earlier instruction lands on that instruction, not on its call.
        let l = lowered(vec![
            mov(Reg::R0, 0),
            Insn::Jmp { width: W64, cond: Cond::Eq, dst: Reg::R0, src: Operand::Imm(1), off: 1 },
            Insn::Ja { off: -2 },
            Insn::Exit,
        ]);
        // slots: 2 mov | 3 jeq | 4 call, 5 ja -> 3 | 6 exit
        assert_eq!(l.insns()[2].jump_offset(), Some(2));
        assert_eq!(l.insns()[4], Insn::Ja { off: -3 });
    }

    #[test]
    fn neg64_movsx_bswap_and_memsx_shapes() {
        let l = lowered(vec![Insn::Neg { width: W64, dst: Reg::R0 }, Insn::Exit]);
        assert_eq!(l.insns()[1], alu(W64, AluOp::Mul, Reg::R0, Operand::Imm(-1)));
        let l = lowered(vec![
            Insn::MovSx { width: W32, from: SxBits::S8, dst: Reg::R0, src: Reg::R0 },
            Insn::Exit,
        ]);
        assert_eq!(
            l.insns()[1..3],
            [
                alu(W32, AluOp::Lsh, Reg::R0, Operand::Imm(24)),
                alu(W32, AluOp::Arsh, Reg::R0, Operand::Imm(24))
            ]
        );
        let l = lowered(vec![Insn::End { order: ByteOrder::Swap, bits: 32, dst: Reg::R2 }, Insn::Exit]);
        assert_eq!(l.insns()[1], Insn::End { order: ByteOrder::Be, bits: 32, dst: Reg::R2 });
        let l = lowered(vec![
            Insn::Load { size: Size::H, signed: true, dst: Reg::R1, src: Reg::R1, off: 2 },
            Insn::Exit,
        ]);
        assert_eq!(
            l.insns()[1..4],
            [
                Insn::Load { size: Size::H, signed: false, dst: Reg::R1, src: Reg::R1, off: 2 },
                alu(W64, AluOp::Lsh, Reg::R1, Operand::Imm(48)),
                alu(W64, AluOp::Arsh, Reg::R1, Operand::Imm(48)),
            ]
        );
    }

    #[test]
    fn stack_accesses_outside_the_depth_are_moved_below_rbpfs_stack() {
        let st = |off: i16| Insn::StoreImm { size: Size::DW, dst: Reg::R10, off, imm: 1 };
        let low = |depth: u32, off: i16| {
            let l = lower(&Program::with_stack_depth(vec![st(off), Insn::Exit], depth).unwrap()).unwrap();
            (l.insns()[1], l.moved_stack_access(0))
        };
        assert_eq!(low(16, -16), (st(-16), false));
        assert_eq!(low(16, -24), (st(-536), true));
        assert_eq!(low(16, -12), (st(-12), false));
        // Straddling the limit: [-20, -12) is partly below R10 - 16.
        assert_eq!(low(16, -20), (st(-532), true));
        assert_eq!(low(512, -512), (st(-512), false));
        // Already outside rbpf's stack: left alone.
        assert_eq!(low(16, -520), (st(-520), false));
        assert_eq!(low(16, 0), (st(0), false));
        // A tracked pointer far above R10 with an offset that cannot move 512 further down.
        let prog = Program::with_stack_depth(
            vec![
                alu(W64, AluOp::Mov, Reg::R2, Operand::Reg(Reg::R10)),
                alu(W64, AluOp::Add, Reg::R2, Operand::Imm(32_000)),
                Insn::StoreImm { size: Size::B, dst: Reg::R2, off: -32_500, imm: 1 },
                Insn::Exit,
            ],
            16,
        )
        .unwrap();
        let why = lower(&prog).unwrap_err();
        assert!(why.starts_with("pc 2: store: the access at R10-500"), "{why}");
    }
}
