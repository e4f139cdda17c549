//! Lowering: rewrites a program into one that rbpf 0.4.1 runs with the kernel's semantics.
//!
//! Each instruction is expanded on its own (see [`super::reloc`] for the relocation of
//! jumps); nothing needs a scratch register. What cannot be rewritten that way is refused
//! with a reason naming the instruction and its pc. Every rule below was checked against
//! rbpf 0.4.1's `interpreter.rs` and `verifier.rs`.
//!
//! Besides the per-instruction rules, the lowered program
//! - starts with `lddw r1, <ctx>; lddw r10, <stack top>` (four synthetic slots, see
//!   [`PREFIX_SLOTS`]) whose immediates the engine patches before each run: R1 is the
//!   context's address even for an empty context (rbpf sets R1 = 0 when its memory slice is
//!   empty), and R10 points to a stack the engine provides, instead of rbpf's own 512-byte
//!   stack (rbpf's verifier accepts `lddw r10`);
//! - counts backward jumps: a local call to a budget subroutine appended after the program
//!   precedes every backward jump (see [`TICK_HELPER`]), so a non-terminating program stops;
//! - keeps bpf2bpf calls as rbpf local calls, with each function's declared stack depth as
//!   its frame size ([`Lowered::frame_size`]), after checking that no call chain is
//!   recursive or deeper than the kernel's 8 frames;
//! - keeps calls of the helpers of [`bpf::helpers::ALL`] but `map_lookup_elem` (the
//!   engine registers those it finds, see [`Lowered::helper_ids`]), and rewrites each tail
//!   call (`call 12` or the kernel-internal `tail_call`) into a call of
//!   [`TAIL_HELPER`] (see [`tail_call_site`]);
//! - loads a prog array's reference (`lddw rN, map k`) as the guest address
//!   [`bpf::exec::map_addr`]`(k)`, which the tail-call helper recognises in R2; array maps
//!   are not modelled (their references and lookups cannot be judged).

use std::rc::Rc;

use bpf::exec::{map_addr, MAX_CALL_FRAMES};
use bpf::helpers::TAIL_CALL;
use bpf::{
    AluOp, AtomicOp, ByteOrder, Call, Cond, Insn, Operand, Program, Reg, Size, SxBits, Width, PSEUDO_MAP_FD,
};

use super::reloc::{Label, Piece, RelocError, Relocator, Target, SYNTHETIC};

/// Helper id of the budget counter called by the budget subroutine. It returns 0 while the
/// budget lasts, then 1.
pub(crate) const TICK_HELPER: u32 = 0x7fff_0001;
/// Helper id that is never registered: calling it makes rbpf stop with an error, which is
/// how the budget subroutine and tail-call sites end a run that must stop.
pub(crate) const STOP_HELPER: u32 = 0x7fff_0002;
/// Helper id of the tail call: R1 = ctx, R2 = map, R3 = index as in the kernel, plus R4 =
/// the calling frame's R10 and R5 = the pc of the tail-call site. Returns 0 when the tail
/// call failed (execution continues after it), 1 when the target ran to its `exit` (its R0
/// is then fetched with [`FETCH_HELPER`]), 2 when the run must stop.
pub(crate) const TAIL_HELPER: u32 = 0x7fff_0003;
/// Helper id that returns the R0 of the tail-call target that just returned.
pub(crate) const FETCH_HELPER: u32 = 0x7fff_0004;
/// The largest lowered program rbpf 0.4.1 jumps in correctly: its interpreter computes
/// jump targets as `(insn_ptr as i16 + off) as usize`, so a jump from or to a slot beyond
/// 32767 goes astray.
pub(crate) const MAX_SLOTS: usize = 32767;
/// Slots taken by the synthetic `lddw r1, <ctx>; lddw r10, <stack top>` at the start: the
/// immediate of R1 is in the 32-bit halves at bytes 4 and 12, that of R10 at 20 and 28.
pub(crate) const PREFIX_SLOTS: usize = 4;

const TICK: Label = Label(0);

/// A program as rbpf will run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lowered {
    insns: Vec<Insn>,
    bytes: Vec<u8>,
    origin: Vec<u32>,
    has_budget: bool,
    helper_ids: Vec<u32>,
    frame_sizes: Rc<[u16]>,
    stack_extent: u32,
    /// Whether rbpf's verifier has accepted these bytes once (with any context and stack
    /// addresses patched in: the verifier does not look at `lddw` immediates).
    verified: std::cell::Cell<bool>,
}

impl Lowered {
    /// Whether rbpf's verifier has accepted this program before.
    pub fn verified(&self) -> bool {
        self.verified.get()
    }

    /// Records that rbpf's verifier accepted this program.
    pub fn set_verified(&self) {
        self.verified.set(true);
    }

    /// The lowered instructions. The first two are the synthetic `lddw r1, 0` and
    /// `lddw r10, 0` whose immediates the engine replaces by the context's address and the
    /// stack's top; budget code, when present, follows the program's last instruction.
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// The lowered program as rbpf bytecode (with R1 = R10 = 0 in the prefix).
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

    /// Whether the program has backward jumps, hence budget code.
    pub fn has_budget(&self) -> bool {
        self.has_budget
    }

    /// The ids of the helpers the lowered program calls (the budget counter and the
    /// tail-call helpers included; the stop helper, never registered, excluded), sorted.
    pub fn helper_ids(&self) -> &[u32] {
        &self.helper_ids
    }

    /// The stack bytes of the function output slot `slot` belongs to: its declared depth
    /// (the prefix belongs to the main function; the budget subroutine uses no stack); 0
    /// past the end. rbpf lowers R10 by the caller's frame size on a local call, so the
    /// callee's frame lies right below its caller's.
    pub fn frame_size(&self, slot: usize) -> u16 {
        self.frame_sizes.get(slot).copied().unwrap_or(0)
    }

    /// [`Lowered::frame_size`] of every slot, shared (handed to rbpf's stack-usage
    /// calculator).
    pub(crate) fn frame_sizes(&self) -> Rc<[u16]> {
        Rc::clone(&self.frame_sizes)
    }

    /// The stack bytes the deepest chain of calls can use: the largest sum of frame sizes
    /// along a path of the static call graph from the main function.
    pub fn stack_extent(&self) -> u32 {
        self.stack_extent
    }
}

/// How many maps of each kind a program set has. Map references (`lddw rN, map k`) number
/// the prog arrays first, then the array maps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapCounts {
    /// Prog arrays (maps 0 to `prog_arrays - 1`).
    pub prog_arrays: usize,
    /// Array maps (the next `arrays` map indexes).
    pub arrays: usize,
}

impl MapCounts {
    /// The counts of `set`.
    pub fn of(set: &bpf::ProgramSet) -> MapCounts {
        MapCounts { prog_arrays: set.maps().len(), arrays: set.arrays().len() }
    }

    /// Every map of either kind.
    pub fn total(self) -> usize {
        self.prog_arrays + self.arrays
    }
}

/// Lowers `prog`, a program of a set with `maps`, or explains (naming the instruction and
/// its pc) why rbpf 0.4.1 cannot run it with the kernel's semantics. Linear in the
/// program's size.
pub fn lower(prog: &Program, maps: MapCounts) -> Result<Lowered, String> {
    let insns = prog.insns();
    let n = insns.len();
    let mut targets = Vec::with_capacity(n);
    let mut has_back = false;
    for (i, insn) in insns.iter().enumerate() {
        let target = prog.target_of(i);
        has_back |= target.is_some_and(|t| t <= i) && insn.jump_offset().is_some();
        targets.push(target);
    }
    let functions = prog.functions();
    let mut function_of = vec![0; n];
    for (f, range) in functions.iter().enumerate() {
        function_of[range.clone()].fill(f);
    }
    let stack_extent = check_call_graph(prog, &functions, &function_of)?;
    let mut rel = Relocator::new(n, 1);
    let prefix = [
        Piece::plain(Insn::LdImm64 { dst: Reg::R1, pseudo: 0, imm: 0 }),
        Piece::plain(Insn::LdImm64 { dst: Reg::R10, pseudo: 0, imm: 0 }),
    ];
    rel.emit_synthetic(&prefix).map_err(|e| internal(&e))?;
    let mut pieces = Vec::with_capacity(8);
    for (i, &target) in targets.iter().enumerate() {
        pieces.clear();
        expand(prog, i, target, maps, &mut pieces)?;
        rel.emit_insn(&pieces).map_err(|e| internal(&e))?;
    }
    if has_back {
        rel.bind(TICK);
        rel.emit_synthetic(&budget_subroutine()).map_err(|e| internal(&e))?;
    }
    let out = rel.finish().map_err(|e| match e {
        RelocError::TooFar { origin: Some(i), offset, bits } => format!(
            "pc {}: {}: after lowering the {} needs an offset of {offset} slots, beyond rbpf's \
             {bits}-bit offset field",
            prog.pc_of(i),
            match insns[i] {
                Insn::JaLong { .. } => "gotol",
                Insn::Call(_) => "local call",
                _ => "jump",
            },
            if matches!(insns[i], Insn::Call(_)) { "call" } else { "jump" },
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
    let depth = |f: usize| prog.function_stack_depth(f).min(bpf::MAX_STACK) as u16;
    let frame_sizes: Rc<[u16]> = out
        .origin
        .iter()
        .enumerate()
        .map(|(slot, &o)| match o {
            SYNTHETIC if slot < PREFIX_SLOTS => depth(0),
            SYNTHETIC => 0,
            i => depth(function_of[i as usize]),
        })
        .collect();
    let mut helper_ids: Vec<u32> = out
        .insns
        .iter()
        .filter_map(|insn| match *insn {
            Insn::Call(Call::Helper(id)) if id as u32 != STOP_HELPER => Some(id as u32),
            _ => None,
        })
        .collect();
    helper_ids.sort_unstable();
    helper_ids.dedup();
    let mut slots = Vec::with_capacity(out.origin.len());
    for insn in &out.insns {
        insn.encode_into(&mut slots);
    }
    let mut bytes = vec![0; slots.len() * 8];
    for (chunk, s) in bytes.chunks_exact_mut(8).zip(&slots) {
        chunk.copy_from_slice(&s.to_bytes());
    }
    Ok(Lowered {
        insns: out.insns,
        bytes,
        origin: out.origin,
        has_budget: has_back,
        helper_ids,
        frame_sizes,
        stack_extent,
        verified: std::cell::Cell::new(false),
    })
}

/// Checks the static call graph from the main function: no recursion, and no chain of
/// more than [`MAX_CALL_FRAMES`] frames (the kernel's limit; rbpf 0.4.1 runs up to 9, and
/// the budget subroutine may need the 9th). Returns the largest sum of stack depths along
/// a chain. The recursion is at most 8 deep.
fn check_call_graph(
    prog: &Program,
    functions: &[std::ops::Range<usize>],
    function_of: &[usize],
) -> Result<u32, String> {
    struct Walk<'a> {
        prog: &'a Program,
        /// (call instruction, callee function) of each function.
        calls: Vec<Vec<(usize, usize)>>,
        /// (frames, stack bytes) of the deepest chain starting at each function.
        done: Vec<Option<(usize, u32)>>,
        on_path: Vec<bool>,
    }
    impl Walk<'_> {
        fn visit(&mut self, f: usize, frames_above: usize) -> Result<(usize, u32), String> {
            if let Some(d) = self.done[f] {
                return Ok(d);
            }
            self.on_path[f] = true;
            let mut deepest = (0, 0);
            for k in 0..self.calls[f].len() {
                let (i, g) = self.calls[f][k];
                let pc = self.prog.pc_of(i);
                if self.on_path[g] {
                    return Err(format!(
                        "pc {pc}: local call: recursive (the function calls itself, directly or \
                         through others); the kernel's verifier rejects recursion, and rbpf would \
                         run until it has no frame left"
                    ));
                }
                let too_deep = || {
                    Err(format!(
                        "pc {pc}: local call: calls can nest more than {MAX_CALL_FRAMES} frames deep \
                         here (the kernel's limit); rbpf 0.4.1 has 9 and the budget subroutine may \
                         need the last one"
                    ))
                };
                // f is frame number frames_above + 1; g would be the next one.
                if frames_above + 2 > MAX_CALL_FRAMES {
                    return too_deep();
                }
                let (frames, stack) = self.visit(g, frames_above + 1)?;
                if frames_above + 1 + frames > MAX_CALL_FRAMES {
                    return too_deep();
                }
                deepest = (deepest.0.max(frames), deepest.1.max(stack));
            }
            self.on_path[f] = false;
            let depth = self.prog.function_stack_depth(f).min(bpf::MAX_STACK);
            let d = (deepest.0 + 1, deepest.1 + depth);
            self.done[f] = Some(d);
            Ok(d)
        }
    }
    let mut calls = vec![Vec::new(); functions.len()];
    for (i, insn) in prog.insns().iter().enumerate() {
        if let (Insn::Call(Call::Local(_)), Some(t)) = (insn, prog.target_of(i)) {
            calls[function_of[i]].push((i, function_of[t]));
        }
    }
    let n = functions.len();
    let mut walk = Walk { prog, calls, done: vec![None; n], on_path: vec![false; n] };
    Ok(walk.visit(0, 0)?.1)
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
/// `out`.
fn expand(
    prog: &Program,
    i: usize,
    target: Option<usize>,
    maps: MapCounts,
    out: &mut Vec<Piece>,
) -> Result<(), String> {
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
    match insn {
        Insn::LoadPacket { .. } => {
            return cannot(
                "legacy packet load",
                "rbpf 0.4.1 reads LD_ABS/LD_IND from its own memory argument in host byte order, not the \
                 socket buffer's data in network byte order, and cannot end the function at the packet's end",
            )
        }
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
        // (R10 equals itself, and is a nonzero address in every engine, so `r10 & r10` holds
        // too; the 32-bit `w10 & w10` depends on where the stack is); the immediate form
        // cannot be swapped.
        Insn::Jmp { width, cond, dst: Reg::R10, src, .. } => match src {
            Operand::Reg(Reg::R10) => match cond {
                Cond::Eq | Cond::Ge | Cond::Le | Cond::Sge | Cond::Sle => {
                    out.push(Piece::to(Insn::Ja { off: 0 }, jump_target()?))
                }
                Cond::Set if width == Width::W64 => out.push(Piece::to(Insn::Ja { off: 0 }, jump_target()?)),
                Cond::Ne | Cond::Gt | Cond::Lt | Cond::Sgt | Cond::Slt => {
                    out.push(Piece::to(Insn::Ja { off: 0 }, Target::Local(out.len() + 1)))
                }
                Cond::Set => {
                    return cannot(
                        "if w10 & w10",
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
            out.push(Piece::plain(Insn::Load { size, signed: false, dst, src, off }));
            if signed {
                let shift = Operand::Imm(64 - size.bits() as i32);
                out.push(Piece::plain(alu(Width::W64, AluOp::Lsh, dst, shift)));
                out.push(Piece::plain(alu(Width::W64, AluOp::Arsh, dst, shift)));
            }
        }
        // Stores run as in the kernel (ST DW sign-extends its immediate).
        Insn::StoreImm { .. } | Insn::Store { .. } => out.push(Piece::plain(insn)),
        Insn::Atomic { op, .. } => {
            return cannot(
                atomic_name(op),
                "rbpf 0.4.1 has no atomic instructions (its verifier rejects BPF_ATOMIC as XADD)",
            )
        }
        // A prog array's reference: the map's guest address, as every engine that chooses
        // its own addresses loads it (the tail-call helper recognises it in R2).
        Insn::LdImm64 { dst, pseudo: PSEUDO_MAP_FD, imm } if imm < maps.prog_arrays as u64 => {
            out.push(Piece::plain(Insn::LdImm64 { dst, pseudo: 0, imm: map_addr(imm as usize) }));
        }
        Insn::LdImm64 { pseudo: PSEUDO_MAP_FD, imm, .. } if imm < maps.total() as u64 => {
            return cannot(
                &format!("lddw map {imm}"),
                "an array map: the rbpf backend does not model array maps (their memory and lookups)",
            )
        }
        Insn::LdImm64 { pseudo: PSEUDO_MAP_FD, imm, .. } => {
            return Err(format!(
                "pc {pc}: lddw map {imm}: there is no such map (the program set has {})",
                maps.total()
            ))
        }
        Insn::LdImm64 { pseudo: bpf::PSEUDO_MAP_VALUE, imm, .. } => {
            return cannot(
                &format!("lddw &map {} + {}", imm & 0xffff_ffff, imm >> 32),
                "a global variable (an array map's value): the rbpf backend does not model array maps",
            )
        }
        Insn::LdImm64 { pseudo, .. } if pseudo != 0 => {
            return Err(format!(
                "pc {pc}: lddw with src = {pseudo}: rbpf 0.4.1 ignores src and would load the raw \
                 immediate instead of the object it names"
            ))
        }
        Insn::LdImm64 { .. } | Insn::Exit => out.push(Piece::plain(insn)),
        // rbpf's local call saves R6-R9 and the return address, lowers R10 by the caller's
        // frame size (the engine's stack-usage calculator answers `Lowered::frame_size`) and
        // undoes both at `exit`, as the kernel's calls behave for everything the verifier
        // lets a program read.
        Insn::Call(Call::Local(_)) => {
            let callee = target.ok_or_else(|| {
                format!("pc {pc}: internal error in the rbpf lowering: a call without a target")
            })?;
            out.push(Piece::to(Insn::Call(Call::Local(0)), Target::Insn(callee)));
        }
        Insn::Call(Call::Helper(TAIL_CALL)) | Insn::TailCall => tail_call_site(pc, out),
        // rbpf writes the helper's result to R0 and leaves R1-R9 alone: the kernel leaves
        // R1-R5 undefined and keeps R6-R9, so everything a valid program can read agrees.
        Insn::Call(Call::Helper(bpf::helpers::MAP_LOOKUP_ELEM)) => {
            return cannot(
                "call of helper 1 (map_lookup_elem)",
                "the rbpf backend does not model array maps (their memory and lookups)",
            )
        }
        Insn::Call(Call::Helper(bpf::helpers::STRTOUL)) => {
            return cannot(
                "call of helper 106 (strtoul)",
                "the rbpf backend offers only helpers of scalars (strtoul reads and writes memory)",
            )
        }
        Insn::Call(Call::Helper(id)) => {
            if bpf::helpers::prototype(id).is_none() || !bpf::helpers::ALL.contains(&id) {
                return cannot(
                    &format!("call of helper {id}"),
                    "not a helper jitdiff offers (the kernel's verifier rejects unknown helper ids)",
                );
            }
            out.push(Piece::plain(insn));
        }
        Insn::Call(Call::Kfunc(id)) => {
            if bpf::helpers::kfunc_prototype(id).is_none() {
                return cannot(&format!("kfunc call {id}"), "not one of jitdiff's kfuncs");
            }
            // rbpf has no kfuncs: the kfunc becomes the helper of the same id, which the
            // runner registers to forward to the shared kfunc (no helper has its id).
            out.push(Piece::plain(Insn::Call(Call::Helper(id))));
        }
    }
    Ok(())
}

/// The expansion of a tail call at `pc` (`call 12`, or the kernel-internal `tail_call`):
///
/// ```text
/// r4 = r10            the calling frame's R10: the target's frame takes its place
/// r5 = pc             for messages
/// call TAIL_HELPER    R1 = ctx, R2 = map, R3 = index, as in the kernel
/// if r0 == 0 goto +4  0: the tail call failed, go on after it
/// if r0 == 1 goto +1  1: the target returned
/// call STOP_HELPER    2: the run must stop (unregistered: rbpf stops with an error)
/// call FETCH_HELPER   R0 = the target's R0
/// exit                the calling frame ends with it
/// ```
///
/// Writing R4 and R5 (and R0 on failure) is invisible to valid programs: the kernel's
/// verifier treats R0-R5 as unreadable after a tail call (bpf_tail_call returns void)
/// until they are written again. R6-R9 are untouched (helper calls keep them in rbpf).
/// After a successful tail call the frame's `exit` returns the target's R0 to the frame's
/// caller, or ends the run when the frame is the main function, as in the kernel.
pub(crate) fn tail_call_site(pc: usize, out: &mut Vec<Piece>) {
    let base = out.len();
    let r0_is = |imm: i32, to: usize| {
        let j = Insn::Jmp { width: Width::W64, cond: Cond::Eq, dst: Reg::R0, src: Operand::Imm(imm), off: 0 };
        Piece::to(j, Target::Local(base + to))
    };
    out.extend([
        Piece::plain(alu(Width::W64, AluOp::Mov, Reg::R4, Operand::Reg(Reg::R10))),
        Piece::plain(alu(Width::W64, AluOp::Mov, Reg::R5, Operand::Imm(pc as i32))),
        Piece::plain(Insn::Call(Call::Helper(TAIL_HELPER as i32))),
        r0_is(0, 8),
        r0_is(1, 6),
        Piece::plain(Insn::Call(Call::Helper(STOP_HELPER as i32))),
        Piece::plain(Insn::Call(Call::Helper(FETCH_HELPER as i32))),
        Piece::plain(Insn::Exit),
    ]);
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

#[cfg(test)]
mod tests {
    use super::*;

    const W64: Width = Width::W64;
    const W32: Width = Width::W32;
    const PREFIX: [Insn; 2] = [
        Insn::LdImm64 { dst: Reg::R1, pseudo: 0, imm: 0 },
        Insn::LdImm64 { dst: Reg::R10, pseudo: 0, imm: 0 },
    ];

    fn mov(dst: Reg, imm: i32) -> Insn {
        alu(W64, AluOp::Mov, dst, Operand::Imm(imm))
    }
    fn lowered(insns: Vec<Insn>) -> Lowered {
        lower(&Program::new(insns).unwrap(), MapCounts::default()).unwrap()
    }
    /// The lowered instructions after the prefix.
    fn body(l: &Lowered) -> &[Insn] {
        &l.insns()[PREFIX.len()..]
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
        assert_eq!(l.insns()[..2], PREFIX);
        assert_eq!(body(&l), &insns[..]);
        assert!(!l.has_budget());
        assert_eq!(l.bytes().len(), 8 * 13);
        // slots: 0-3 prefix | 4 mov | 5-6 lddw | 7 jeq ...
        assert_eq!(
            [0, 3, 4, 5, 6, 7].map(|s| l.original_index(s)),
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
            let want: Vec<Insn> = if extra { vec![m, zext, Insn::Exit] } else { vec![m, Insn::Exit] };
            assert_eq!(body(&l), &want[..], "{src:?}");
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
        // 0: jump +1 -> 2 ; 1: r0 = 0 ; 2: exit. Lowered body: first, second, mov, exit.
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
            assert_eq!(body(&l)[..2], [first, second], "{cond:?}");
        }
    }

    #[test]
    fn backward_jumps_call_the_budget_subroutine_first() {
        let l = lowered(vec![mov(Reg::R0, 0), Insn::Ja { off: -1 }]);
        // slots: 0-3 prefix | 4 mov | 5 call, 6 ja | 7.. subroutine
        assert!(l.has_budget());
        let b = body(&l);
        assert_eq!(b[1], Insn::Call(Call::Local(1)));
        assert_eq!(b[2], Insn::Ja { off: -2 });
        assert_eq!(b[3], alu(W64, AluOp::Mov, Reg::R6, Operand::Reg(Reg::R0)));
        assert_eq!(b[4], Insn::Call(Call::Helper(TICK_HELPER as i32)));
        assert_eq!(
            b[5],
            Insn::Jmp { width: W64, cond: Cond::Ne, dst: Reg::R0, src: Operand::Imm(0), off: 2 }
        );
        assert_eq!(b[6], alu(W64, AluOp::Mov, Reg::R0, Operand::Reg(Reg::R6)));
        assert_eq!(b[7], Insn::Exit);
        assert_eq!(b[8], Insn::Call(Call::Helper(STOP_HELPER as i32)));
        assert_eq!(b.len(), 9);
        assert_eq!(l.original_index(7), None);
        assert_eq!(l.original_index(6), Some(1));
        assert_eq!(l.original_index(5), Some(1));
        // A backward jump to an earlier instruction lands on that instruction, not on its call.
        let l = lowered(vec![
            mov(Reg::R0, 0),
            Insn::Jmp { width: W64, cond: Cond::Eq, dst: Reg::R0, src: Operand::Imm(1), off: 1 },
            Insn::Ja { off: -2 },
            Insn::Exit,
        ]);
        // slots: 4 mov | 5 jeq | 6 call, 7 ja -> 5 | 8 exit
        assert_eq!(body(&l)[1].jump_offset(), Some(2));
        assert_eq!(body(&l)[3], Insn::Ja { off: -3 });
    }

    #[test]
    fn neg64_movsx_bswap_and_memsx_shapes() {
        let l = lowered(vec![Insn::Neg { width: W64, dst: Reg::R0 }, Insn::Exit]);
        assert_eq!(body(&l)[0], alu(W64, AluOp::Mul, Reg::R0, Operand::Imm(-1)));
        let l = lowered(vec![
            Insn::MovSx { width: W32, from: SxBits::S8, dst: Reg::R0, src: Reg::R0 },
            Insn::Exit,
        ]);
        assert_eq!(
            body(&l)[..2],
            [
                alu(W32, AluOp::Lsh, Reg::R0, Operand::Imm(24)),
                alu(W32, AluOp::Arsh, Reg::R0, Operand::Imm(24))
            ]
        );
        let l = lowered(vec![Insn::End { order: ByteOrder::Swap, bits: 32, dst: Reg::R2 }, Insn::Exit]);
        assert_eq!(body(&l)[0], Insn::End { order: ByteOrder::Be, bits: 32, dst: Reg::R2 });
        let l = lowered(vec![
            Insn::Load { size: Size::H, signed: true, dst: Reg::R1, src: Reg::R1, off: 2 },
            Insn::Exit,
        ]);
        assert_eq!(
            body(&l)[..3],
            [
                Insn::Load { size: Size::H, signed: false, dst: Reg::R1, src: Reg::R1, off: 2 },
                alu(W64, AluOp::Lsh, Reg::R1, Operand::Imm(48)),
                alu(W64, AluOp::Arsh, Reg::R1, Operand::Imm(48)),
            ]
        );
    }

    #[test]
    fn calls_tail_calls_and_map_references_shapes() {
        // 0: r2 = map 1 (slots 0-1); 2: call pc+2 -> pc 5; 3: tail call; 4: exit;
        // 5: helper COUNTER; 6: exit.
        let mut p = Program::new(vec![
            Insn::LdImm64 { dst: Reg::R2, pseudo: PSEUDO_MAP_FD, imm: 1 },
            Insn::Call(Call::Local(2)),
            Insn::TailCall,
            Insn::Exit,
            Insn::Call(Call::Helper(bpf::helpers::COUNTER)),
            Insn::Exit,
        ])
        .unwrap();
        p.set_stack_depths(vec![24, 40]).unwrap();
        let l = lower(&p, MapCounts { prog_arrays: 2, arrays: 0 }).unwrap();
        let b = body(&l);
        assert_eq!(b[0], Insn::LdImm64 { dst: Reg::R2, pseudo: 0, imm: map_addr(1) });
        // slots: 4-5 lddw | 6 call | 7-14 tail-call site | 15 exit | 16 helper call | 17 exit
        assert_eq!(b[1], Insn::Call(Call::Local(9)));
        let jeq =
            |imm, off| Insn::Jmp { width: W64, cond: Cond::Eq, dst: Reg::R0, src: Operand::Imm(imm), off };
        assert_eq!(
            b[2..10],
            [
                alu(W64, AluOp::Mov, Reg::R4, Operand::Reg(Reg::R10)),
                mov(Reg::R5, 3),
                Insn::Call(Call::Helper(TAIL_HELPER as i32)),
                jeq(0, 4),
                jeq(1, 1),
                Insn::Call(Call::Helper(STOP_HELPER as i32)),
                Insn::Call(Call::Helper(FETCH_HELPER as i32)),
                Insn::Exit,
            ]
        );
        assert_eq!(b[11], Insn::Call(Call::Helper(bpf::helpers::COUNTER)));
        // Frame sizes: the prefix and main's slots 24, the subprogram's 40; the chain 64.
        assert_eq!([0, 3, 4, 14, 15, 16, 17, 18].map(|s| l.frame_size(s)), [24, 24, 24, 24, 24, 40, 40, 0]);
        assert_eq!(l.stack_extent(), 64);
        assert_eq!(l.original_index(14), Some(2));
        // `call 12` is the same tail call.
        let p = Program::new(vec![Insn::Call(Call::Helper(12)), Insn::Exit]).unwrap();
        assert_eq!(
            body(&lower(&p, MapCounts::default()).unwrap())[2],
            Insn::Call(Call::Helper(TAIL_HELPER as i32))
        );
    }

    #[test]
    fn the_stack_extent_is_the_deepest_chain() {
        // main (8) calls a (16) and b (32); a calls b: chains 8+16+32 and 8+32.
        let mut p = Program::new(vec![
            Insn::Call(Call::Local(2)), // -> 3 (a)
            Insn::Call(Call::Local(3)), // -> 5 (b)
            Insn::Exit,
            Insn::Call(Call::Local(1)), // a -> 5 (b)
            Insn::Exit,
            mov(Reg::R0, 0),
            Insn::Exit,
        ])
        .unwrap();
        p.set_stack_depths(vec![8, 16, 32]).unwrap();
        assert_eq!(lower(&p, MapCounts::default()).unwrap().stack_extent(), 56);
        assert_eq!(lowered(vec![mov(Reg::R0, 0), Insn::Exit]).stack_extent(), 0);
    }
}
