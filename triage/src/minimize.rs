//! Minimising a finding: delta debugging on the program set (not on bytes). Candidates
//! drop programs, prog-array slots, runs of instructions and single instructions,
//! replace immediates with 0 or 1, and zero context words; a candidate is kept only if
//! the static validator accepts it and the engines still disagree with the same
//! [`Signature`], so minimisation never drifts to another bug. Deterministic, with a
//! bound on the attempts.

use std::fmt;

use bpf::{AttachTarget, Attachment, Call, FaultKind, Input, Insn, Operand, Program, ProgramSet, RunResult};

use compare::engines::Engines;
use compare::{compare, EngineResult, Field, Verdict};

/// The kind of difference a signature names, from the most upstream observable: a
/// wrong tail-call count explains any later difference in values, a fault explains
/// missing ones; otherwise a value differs (R0, memory, a helper's arguments), and which
/// one depends more on the program than on the bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// The number of successful tail calls differs.
    TailCalls,
    /// Whether or how a run faulted differs.
    Error,
    /// R0, the context, the array maps or the helper trace differ.
    Value,
}

impl Kind {
    /// A short stable name.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::TailCalls => "tail_calls",
            Kind::Error => "error",
            Kind::Value => "value",
        }
    }
}

/// What identifies a bug across its reproducers: the [`Kind`] of difference, the engine
/// that is the odd one out there, the fault class that engine ended with and, when the
/// JIT is the odd one out, the opcode class of the first divergent instruction
/// ([`compare::diverge`]). Which other engines could judge the set does not count: a
/// reproducer that rbpf can judge shows the same bug as one it cannot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signature {
    /// The kind of difference.
    pub kind: Kind,
    /// The engine alone in that field, if one is.
    pub odd_one_out: Option<&'static str>,
    /// The odd one out's fault class (`None` when it returned).
    pub odd_error: Option<FaultKind>,
    /// The opcode class of the first divergent instruction
    /// ([`Divergence::signature_class`](compare::diverge::Divergence::signature_class)),
    /// when the JIT is the odd one out and both engines could be traced.
    pub at: Option<&'static str>,
}

impl Signature {
    /// The signature of `set` on `input`, if the engines disagree: [`Signature::of`] the
    /// engines' results, with the first divergence when the JIT is the odd one out.
    pub fn of_run(engines: &mut Engines, set: &ProgramSet, input: &Input) -> Option<Signature> {
        let results = engines.run_set(set, input);
        Signature::of_results(&results, engines, set, input)
    }

    /// [`Signature::of_run`] for `results`, the engines' results of `set` on `input`
    /// already at hand (the first divergence still needs traced runs).
    pub fn of_results(
        results: &[EngineResult],
        engines: &mut Engines,
        set: &ProgramSet,
        input: &Input,
    ) -> Option<Signature> {
        Some(Signature::of(results)?.traced(engines, set, input))
    }

    /// This signature with the first divergence filled in, when the JIT is the odd one
    /// out.
    fn traced(mut self, engines: &mut Engines, set: &ProgramSet, input: &Input) -> Signature {
        if self.odd_one_out == Some("jit") {
            self.at = engines.first_divergence(set, input).map(|d| d.signature_class());
        }
        self
    }

    /// The signature of a comparison, if it is a mismatch, without the first divergence
    /// (which needs traced runs: see [`Signature::of_run`]).
    pub fn of(results: &[EngineResult]) -> Option<Signature> {
        let Verdict::Mismatch(diffs) = compare(results) else { return None };
        let has = |f: Field| diffs.iter().find(|d| d.field == f);
        let (kind, first) = match (has(Field::TailCalls), has(Field::Error)) {
            (Some(d), _) => (Kind::TailCalls, d),
            (None, Some(d)) => (Kind::Error, d),
            (None, None) => (Kind::Value, diffs.first()?),
        };
        let odd_error =
            results.iter().find(|r| Some(r.engine) == first.odd_one_out).and_then(|r| match &r.result {
                RunResult::Ran(o) => o.result.as_ref().err().map(|f| f.kind),
                RunResult::CannotJudge(_) | RunResult::Rejected(_) => None,
            });
        Some(Signature { kind, odd_one_out: first.odd_one_out, odd_error, at: None })
    }
}

impl Signature {
    /// What groups findings and keeps the minimiser on one bug. When the first
    /// divergence names an instruction (a wrong value or branch after it), that
    /// instruction is the root cause and what it later made differ (R0, the tail-call
    /// count, a fault) is a consequence: the key is the odd one out and the opcode
    /// class, `jit@alu32`. Otherwise (no trace, or traces that agree to the end) it is
    /// the whole signature.
    pub fn group_key(&self) -> String {
        match self.at {
            Some(at) if at != "end" => format!("{}@{at}", self.odd_one_out.unwrap_or("none")),
            _ => self.to_string(),
        }
    }
}

impl fmt::Display for Signature {
    /// A stable one-line form, such as `value:jit:ok@alu32` or `error:jit:abi@end`
    /// (without `@` when there is no divergence to name).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let error = self.odd_error.map_or("ok", FaultKind::name);
        write!(f, "{}:{}:{error}", self.kind.name(), self.odd_one_out.unwrap_or("none"))?;
        match self.at {
            Some(at) => write!(f, "@{at}"),
            None => Ok(()),
        }
    }
}

/// A minimised finding. Its signature is the final set's: the minimiser keeps the
/// [`Signature::group_key`], so the observable may differ from the original's.
#[derive(Clone, Debug)]
pub struct Minimized {
    /// The smallest set found that reproduces the signature.
    pub set: ProgramSet,
    /// Its input.
    pub input: Input,
    /// The signature it reproduces.
    pub signature: Signature,
    /// BPF instructions before and after.
    pub size_before: usize,
    /// BPF instructions after.
    pub size_after: usize,
    /// Engine runs spent.
    pub attempts: u64,
}

struct Search<'e> {
    engines: &'e mut Engines,
    target: Signature,
    attempts: u64,
    max_attempts: u64,
}

impl Search<'_> {
    /// Whether `set` on `input` is valid and still shows the target's group key.
    fn reproduces(&mut self, set: &ProgramSet, input: &Input) -> bool {
        if self.attempts >= self.max_attempts {
            return false;
        }
        let ctx = input.ctx.as_ref().map_or(0, Vec::len);
        if bpf::validate::validate(set, Some(ctx)).is_err() {
            return false;
        }
        self.attempts += 1;
        // The untraced signature first: most candidates fail there, without tracing.
        let Some(base) = Signature::of(&self.engines.run_set(set, input)) else { return false };
        if base.odd_one_out != self.target.odd_one_out {
            return false;
        }
        base.traced(self.engines, set, input).group_key() == self.target.group_key()
    }
}

/// Rebuilds `set` with program `p`'s instructions replaced, if the result is a program.
/// When the functions are still the same ones, each keeps at most its old stack depth:
/// inference gives a function that copies r10 the whole 512 bytes, which would break the
/// stack rules of calls that the smaller candidate still obeys.
fn with_insns(set: &ProgramSet, p: usize, insns: Vec<Insn>) -> Option<ProgramSet> {
    let mut prog = Program::new(insns).ok()?;
    let old = &set.progs()[p].prog;
    let n = old.functions().len();
    if prog.functions().len() == n {
        let depths = (0..n).map(|f| old.function_stack_depth(f).min(prog.function_stack_depth(f))).collect();
        if prog.set_stack_depths(depths).is_err() {
            prog = Program::new(prog.insns().to_vec()).ok()?;
        }
    }
    let mut progs = set.progs().to_vec();
    progs[p].prog = prog;
    let c = ProgramSet::with_arrays(progs, set.maps().to_vec(), set.arrays().to_vec()).ok()?;
    reattach(set, c, Some)
}

/// `candidate` (made from `set` with programs moved: `moved` gives a program's new
/// index, `None` when it is gone) with `set`'s attachments on the same functions; those
/// whose program or function is gone are dropped.
fn reattach(
    set: &ProgramSet,
    candidate: ProgramSet,
    moved: impl Fn(usize) -> Option<usize>,
) -> Option<ProgramSet> {
    if set.attachments().is_empty() {
        return Some(candidate);
    }
    let kept = set
        .attachments()
        .iter()
        .filter_map(|a| {
            let prog = moved(a.target.prog)?;
            let functions = candidate.progs().get(prog)?.prog.function_starts().len();
            (a.target.func < functions)
                .then(|| Attachment { target: AttachTarget { prog, func: a.target.func }, ..a.clone() })
        })
        .collect();
    candidate.with_attachments(kept).ok()
}

/// Drops attachments, last first.
fn drop_attachments(s: &mut Search<'_>, set: &mut ProgramSet, input: &Input) {
    let mut k = set.attachments().len();
    while k > 0 {
        k -= 1;
        let mut kept = set.attachments().to_vec();
        kept.remove(k);
        if let Ok(c) = set.clone().with_attachments(kept) {
            if s.reproduces(&c, input) {
                *set = c;
            }
        }
    }
}

/// `insns` without the instructions `lo..hi`, with every pc-relative jump and call
/// offset moved so that each still reaches the same instruction (or, if that one was
/// removed, the first one after the removed run).
pub fn remove_run(insns: &[Insn], lo: usize, hi: usize) -> Vec<Insn> {
    let mut slot = Vec::with_capacity(insns.len() + 1);
    let mut at = 0i64;
    for insn in insns {
        slot.push(at);
        at += insn.slots() as i64;
    }
    slot.push(at);
    let (gap_lo, gap_hi) = (slot[lo], slot[hi]);
    let removed = gap_hi - gap_lo;
    let moved = |s: i64| {
        if s < gap_lo {
            s
        } else if s < gap_hi {
            gap_lo
        } else {
            s - removed
        }
    };
    let mut out = Vec::with_capacity(insns.len() - (hi - lo));
    for (i, insn) in insns.iter().enumerate() {
        if (lo..hi).contains(&i) {
            continue;
        }
        let from = slot[i] + 1;
        let retarget = |off: i64| moved(from + off) - moved(slot[i]) - 1;
        out.push(match *insn {
            Insn::Ja { off } => Insn::Ja { off: retarget(off as i64) as i16 },
            Insn::JaLong { off } => Insn::JaLong { off: retarget(off as i64) as i32 },
            Insn::Jmp { width, cond, dst, src, off } => {
                Insn::Jmp { width, cond, dst, src, off: retarget(off as i64) as i16 }
            }
            Insn::Call(Call::Local(off)) => Insn::Call(Call::Local(retarget(off as i64) as i32)),
            other => other,
        });
    }
    out
}

/// Simpler versions of one instruction: its immediate replaced by 0, or by 1 unless it
/// is 0 already (0 is simpler than 1, so no two candidates undo each other).
fn simpler(insn: &Insn) -> Vec<Insn> {
    let mut v = Vec::new();
    let imm = match *insn {
        Insn::Alu { src: Operand::Imm(i), .. } | Insn::Jmp { src: Operand::Imm(i), .. } => i as i64,
        Insn::StoreImm { imm, .. } => imm as i64,
        Insn::LdImm64 { imm, .. } => imm as i64,
        _ => return v,
    };
    let ks: &[i64] = match imm {
        0 => &[],
        1 => &[0],
        _ => &[0, 1],
    };
    for &k in ks {
        let c = match *insn {
            Insn::Alu { width, op, dst, src: Operand::Imm(i) } if i as i64 != k => {
                Insn::Alu { width, op, dst, src: Operand::Imm(k as i32) }
            }
            Insn::Jmp { width, cond, dst, src: Operand::Imm(i), off } if i as i64 != k => {
                Insn::Jmp { width, cond, dst, src: Operand::Imm(k as i32), off }
            }
            Insn::StoreImm { size, dst, off, imm } if imm as i64 != k => {
                Insn::StoreImm { size, dst, off, imm: k as i32 }
            }
            Insn::LdImm64 { dst, pseudo: 0, imm } if imm as i64 != k => {
                Insn::LdImm64 { dst, pseudo: 0, imm: k as u64 }
            }
            _ => continue,
        };
        v.push(c);
    }
    v
}

/// Minimises `set` on `input`, which must show a mismatch on `engines`; spends at most
/// `max_attempts` engine runs and calls `progress(attempts, size)` after each pass.
pub fn minimize(
    engines: &mut Engines,
    set: &ProgramSet,
    input: &Input,
    max_attempts: u64,
    progress: &mut dyn FnMut(u64, usize),
) -> Result<Minimized, String> {
    let target = Signature::of_run(engines, set, input)
        .ok_or("the engines agree on this set and input: there is nothing to minimise")?;
    let mut s = Search { engines, target, attempts: 1, max_attempts };
    let (mut set, mut input) = (set.clone(), input.clone());
    let size_before = set.insn_count();
    loop {
        let before = (set.clone(), input.clone());
        drop_attachments(&mut s, &mut set, &input);
        promote_programs(&mut s, &mut set, &input);
        drop_programs(&mut s, &mut set, &input);
        clear_slots(&mut s, &mut set, &input);
        for p in 0..set.progs().len() {
            drop_calls(&mut s, &mut set, &input, p);
            remove_instructions(&mut s, &mut set, &input, p);
            helpers_to_moves(&mut s, &mut set, &input, p);
            return_early(&mut s, &mut set, &input, p);
            to_constants(&mut s, &mut set, &input, p);
            simplify_immediates(&mut s, &mut set, &input, p);
        }
        drop_unused_maps(&mut s, &mut set, &input);
        zero_context(&mut s, &set, &mut input);
        progress(s.attempts, set.insn_count());
        if (&set, &input) == (&before.0, &before.1) || s.attempts >= s.max_attempts {
            break;
        }
    }
    // The key stayed the same; the observable may have changed along the way.
    let signature = Signature::of_run(s.engines, &set, &input).unwrap_or(s.target);
    Ok(Minimized { size_after: set.insn_count(), set, input, signature, size_before, attempts: s.attempts })
}

/// Drops programs other than the entry, last first; slots that held a dropped program
/// become empty and later programs move down.
fn drop_programs(s: &mut Search<'_>, set: &mut ProgramSet, input: &Input) {
    let mut p = set.progs().len();
    while p > 1 {
        p -= 1;
        let mut progs = set.progs().to_vec();
        progs.remove(p);
        let mut maps = set.maps().to_vec();
        for m in &mut maps {
            for slot in &mut m.slots {
                *slot = match *slot {
                    Some(q) if q == p => None,
                    Some(q) if q > p => Some(q - 1),
                    other => other,
                };
            }
        }
        let moved = |q: usize| match q {
            q if q == p => None,
            q if q > p => Some(q - 1),
            q => Some(q),
        };
        if let Some(c) = ProgramSet::with_arrays(progs, maps, set.arrays().to_vec())
            .ok()
            .and_then(|c| reattach(set, c, moved))
        {
            if s.reproduces(&c, input) {
                *set = c;
            }
        }
    }
}

fn clear_slots(s: &mut Search<'_>, set: &mut ProgramSet, input: &Input) {
    for m in 0..set.maps().len() {
        for k in 0..set.maps()[m].slots.len() {
            if set.maps()[m].slots[k].is_none() {
                continue;
            }
            let mut maps = set.maps().to_vec();
            maps[m].slots[k] = None;
            let c = ProgramSet::with_arrays(set.progs().to_vec(), maps, set.arrays().to_vec()).ok();
            if let Some(c) = c.and_then(|c| reattach(set, c, Some)) {
                if s.reproduces(&c, input) {
                    *set = c;
                }
            }
        }
    }
}

/// Removes runs of instructions from program `p`, halving the run length down to one.
fn remove_instructions(s: &mut Search<'_>, set: &mut ProgramSet, input: &Input, p: usize) {
    let mut chunk = (set.progs()[p].prog.insns().len() / 2).max(1);
    loop {
        let mut lo = 0;
        while lo < set.progs()[p].prog.insns().len() {
            let insns = set.progs()[p].prog.insns();
            let hi = (lo + chunk).min(insns.len());
            let candidate = with_insns(set, p, remove_run(insns, lo, hi));
            match candidate {
                Some(c) if s.reproduces(&c, input) => *set = c,
                _ => lo += chunk,
            }
        }
        if chunk == 1 {
            break;
        }
        chunk /= 2;
    }
}

/// `dst = src`, 64-bit.
fn mov(dst: bpf::Reg, src: Operand) -> Insn {
    Insn::Alu { width: bpf::Width::W64, op: bpf::AluOp::Mov, dst, src }
}

/// R1 to R5, the argument registers, as operands.
fn arguments() -> impl Iterator<Item = Operand> {
    (1..=5u8).map(|k| Operand::Reg(bpf::Reg::new(k).expect("R1-R5 exist")))
}

/// Replaces each bpf2bpf call whose callee has no other caller with `r0 = k` (0, 1, -1)
/// or `r0 = rK` (an argument register) and drops the callee.
fn drop_calls(s: &mut Search<'_>, set: &mut ProgramSet, input: &Input, p: usize) {
    let mut i = 0;
    while i < set.progs()[p].prog.insns().len() {
        let prog = &set.progs()[p].prog;
        let is_call = matches!(prog.insns()[i], Insn::Call(Call::Local(_)));
        let target = prog.target_of(i);
        let callee = target.and_then(|t| prog.functions().into_iter().find(|f| f.start == t));
        let callers = |t: usize| (0..prog.insns().len()).filter(|&j| prog.target_of(j) == Some(t)).count();
        if let (true, Some(f)) = (is_call, callee) {
            if callers(f.start) == 1 {
                for src in [0, 1, -1].map(Operand::Imm).into_iter().chain(arguments()) {
                    let mut insns = prog.insns().to_vec();
                    insns[i] = mov(bpf::Reg::R0, src);
                    if let Some(c) = with_insns(set, p, remove_run(&insns, f.start, f.end)) {
                        if s.reproduces(&c, input) {
                            *set = c;
                            break;
                        }
                    }
                }
            }
        }
        i += 1;
    }
}

/// Replaces each helper call with `r0 = rK` for one of its argument registers (a wrong
/// value that reaches a helper's arguments then reaches R0 instead, and the registers
/// that only fed the helper can go), or else with a call of a helper without arguments.
fn helpers_to_moves(s: &mut Search<'_>, set: &mut ProgramSet, input: &Input, p: usize) {
    for i in 0..set.progs()[p].prog.insns().len() {
        let insn = set.progs()[p].prog.insns()[i];
        if !matches!(insn, Insn::Call(Call::Helper(_))) || insn.is_tail_call() {
            continue;
        }
        let moves = arguments().map(|src| mov(bpf::Reg::R0, src));
        // A helper without arguments, for bugs that need a call but not this one.
        let plain = Insn::Call(Call::Helper(bpf::helpers::GET_NUMA_NODE_ID));
        for c in moves.chain((insn != plain).then_some(plain)) {
            let mut insns = set.progs()[p].prog.insns().to_vec();
            insns[i] = c;
            if let Some(c) = with_insns(set, p, insns) {
                if s.reproduces(&c, input) {
                    *set = c;
                    break;
                }
            }
        }
    }
}

/// Makes each other program the entry in turn (a bug in a tail-call target may not need
/// the programs that led there); slots follow their programs.
fn promote_programs(s: &mut Search<'_>, set: &mut ProgramSet, input: &Input) {
    for q in 1..set.progs().len() {
        let n = set.progs().len();
        // New position of old program j: q goes first, the others keep their order.
        let pos = |j: usize| {
            if j == q {
                0
            } else if j < q {
                j + 1
            } else {
                j
            }
        };
        let mut progs = set.progs().to_vec();
        let promoted = progs.remove(q);
        progs.insert(0, promoted);
        debug_assert_eq!(progs.len(), n);
        let mut maps = set.maps().to_vec();
        for m in &mut maps {
            for slot in m.slots.iter_mut().flatten() {
                *slot = pos(*slot);
            }
        }
        let c = ProgramSet::with_arrays(progs, maps, set.arrays().to_vec()).ok();
        if let Some(c) = c.and_then(|c| reattach(set, c, |j| Some(pos(j)))) {
            if s.reproduces(&c, input) {
                *set = c;
                return;
            }
        }
    }
}

/// Ends program `p` right after an instruction, returning the register it wrote
/// (`r0 = rD; exit`): a wrong value then shows in R0 at once, and everything after it,
/// including the branches and helper calls that carried it to an observable, goes. The
/// earliest instruction that still reproduces wins; only the main function is cut.
fn return_early(s: &mut Search<'_>, set: &mut ProgramSet, input: &Input, p: usize) {
    let main_end = set.progs()[p].prog.functions().first().map_or(0, |f| f.end);
    for i in 0..main_end.saturating_sub(1) {
        let insns = set.progs()[p].prog.insns();
        let Some(dst) = insns[i].written_reg() else { continue };
        let mut cut: Vec<Insn> = insns[..=i].to_vec();
        if dst != bpf::Reg::R0 {
            cut.push(mov(bpf::Reg::R0, Operand::Reg(dst)));
        }
        cut.push(Insn::Exit);
        // Only where the kept part calls no subprogram (they would be cut off), and only
        // when it is smaller.
        let calls = insns[..=i].iter().any(|x| matches!(x, Insn::Call(Call::Local(_))));
        if calls || cut.len() >= insns.len() {
            continue;
        }
        if let Some(c) = with_insns(set, p, cut) {
            if s.reproduces(&c, input) {
                *set = c;
                return;
            }
        }
    }
}

/// Drops maps no `lddw` refers to (prog arrays and array maps alike), renumbering the
/// references to the maps after them.
fn drop_unused_maps(s: &mut Search<'_>, set: &mut ProgramSet, input: &Input) {
    let mut k = set.maps().len() + set.arrays().len();
    while k > 0 {
        k -= 1;
        let refers = |insn: &Insn, k: u64| matches!(*insn, Insn::LdImm64 { pseudo: bpf::PSEUDO_MAP_FD, imm, .. } if imm == k);
        let used = set.progs().iter().any(|p| p.prog.insns().iter().any(|i| refers(i, k as u64)));
        // Attachments' map references are not renumbered: a set whose attachments refer to
        // this map or a later one keeps it.
        let attached = set.attachments().iter().any(|a| {
            a.program.prog.insns().iter().any(
                |i| matches!(*i, Insn::LdImm64 { pseudo: bpf::PSEUDO_MAP_FD, imm, .. } if imm >= k as u64),
            )
        });
        if used || attached {
            continue;
        }
        let mut progs = set.progs().to_vec();
        let mut ok = true;
        for sp in &mut progs {
            let insns: Vec<Insn> = sp
                .prog
                .insns()
                .iter()
                .map(|&i| match i {
                    Insn::LdImm64 { dst, pseudo: bpf::PSEUDO_MAP_FD, imm } if imm > k as u64 => {
                        Insn::LdImm64 { dst, pseudo: bpf::PSEUDO_MAP_FD, imm: imm - 1 }
                    }
                    other => other,
                })
                .collect();
            match Program::with_stack_depth(insns, sp.prog.stack_depth()) {
                Ok(mut prog) => {
                    let depths =
                        (0..sp.prog.functions().len()).map(|f| sp.prog.function_stack_depth(f)).collect();
                    ok &= prog.set_stack_depths(depths).is_ok();
                    sp.prog = prog;
                }
                Err(_) => ok = false,
            }
        }
        let (mut maps, mut arrays) = (set.maps().to_vec(), set.arrays().to_vec());
        if k < maps.len() {
            maps.remove(k);
        } else {
            arrays.remove(k - maps.len());
        }
        let c = ProgramSet::with_arrays(progs, maps, arrays).ok().and_then(|c| reattach(set, c, Some));
        if let (true, Some(c)) = (ok, c) {
            if s.reproduces(&c, input) {
                *set = c;
            }
        }
    }
}

/// Replaces each instruction that computes a register (a helper call: R0) with a
/// constant: 0, 1, -1, or `w = 0x80000000`, the value whose sign bit is bit 31.
fn to_constants(s: &mut Search<'_>, set: &mut ProgramSet, input: &Input, p: usize) {
    for i in 0..set.progs()[p].prog.insns().len() {
        let insn = set.progs()[p].prog.insns()[i];
        let dst = match insn {
            Insn::Call(Call::Helper(_)) if !insn.is_tail_call() => bpf::Reg::R0,
            Insn::Alu { op: bpf::AluOp::Mov, src: Operand::Imm(_), .. } => continue,
            _ => match insn.written_reg() {
                Some(r) => r,
                None => continue,
            },
        };
        let sign31 =
            Insn::Alu { width: bpf::Width::W32, op: bpf::AluOp::Mov, dst, src: Operand::Imm(i32::MIN) };
        for c in [0, 1, -1].map(|k| mov(dst, Operand::Imm(k))).into_iter().chain([sign31]) {
            let mut insns = set.progs()[p].prog.insns().to_vec();
            insns[i] = c;
            if let Some(c) = with_insns(set, p, insns) {
                if s.reproduces(&c, input) {
                    *set = c;
                    break;
                }
            }
        }
    }
}

fn simplify_immediates(s: &mut Search<'_>, set: &mut ProgramSet, input: &Input, p: usize) {
    for i in 0..set.progs()[p].prog.insns().len() {
        for simple in simpler(&set.progs()[p].prog.insns()[i]) {
            let mut insns = set.progs()[p].prog.insns().to_vec();
            insns[i] = simple;
            if let Some(c) = with_insns(set, p, insns) {
                if s.reproduces(&c, input) {
                    *set = c;
                    break;
                }
            }
        }
    }
}

/// Zeroes the whole context if that keeps the signature, else each 8-byte word.
fn zero_context(s: &mut Search<'_>, set: &ProgramSet, input: &mut Input) {
    let Some(ctx) = input.ctx.clone() else { return };
    if ctx.iter().all(|b| *b == 0) {
        return;
    }
    let zero = Input::with_ctx(vec![0; ctx.len()]);
    if s.reproduces(set, &zero) {
        *input = zero;
        return;
    }
    for w in 0..ctx.len().div_ceil(8) {
        let mut c = input.ctx.clone().expect("has a context");
        let end = (w * 8 + 8).min(c.len());
        if c[w * 8..end].iter().all(|b| *b == 0) {
            continue;
        }
        c[w * 8..end].fill(0);
        let candidate = Input::with_ctx(c);
        if s.reproduces(set, &candidate) {
            *input = candidate;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpf::asm::parse_set;
    use compare::engines::{Options, ALL};

    #[test]
    fn removing_a_run_keeps_jumps_on_their_targets() {
        let set = parse_set("r0 = 0\nif r1 == 0 goto +2\nr0 = 1\nr0 = 2\nr0 += 3\nexit\n").unwrap().set;
        let insns = set.entry().prog.insns();
        // Removing `r0 = 1` makes the jump skip one instruction; removing the jump's
        // target (`r0 = 2`... `r0 = 1 r0 = 2`) lands it on `r0 += 3`.
        let one = remove_run(insns, 2, 3);
        assert_eq!(one[1].jump_offset(), Some(1));
        let both = remove_run(insns, 2, 4);
        assert_eq!(both[1].jump_offset(), Some(0));
        assert_eq!(both.len(), 4);
    }

    #[test]
    fn an_injected_bug_minimises_to_its_trigger() {
        // ALU32 results not zero-extended: a few instructions show it.
        let text = "\
.ctx 16
r6 = r1
r2 = *(u64 *)(r6 + 0)
r3 = 7
r3 *= r2
w2 += -1
r4 = r2
r4 ^= 5
if r4 > 3 goto +1
r4 = 1
*(u64 *)(r6 + 8) = r4
r0 = r2
exit
";
        let f = parse_set(text).unwrap();
        let input = Input::with_ctx(vec![0; 16]);
        let opts = Options {
            bugs: jit::Bugs::NONE.with(jit::Bug::Alu32ArithNoZext),
            budget: Some(100_000),
            ..Options::default()
        };
        let mut engines = Engines::with_options(&ALL, &opts);
        let m = minimize(&mut engines, &f.set, &input, 10_000, &mut |_, _| {}).unwrap();
        // w2 = 0 - 1 = 0xffffffff on the kernel, sign-extended on the buggy JIT: the
        // smallest reproducer a person would write is `w2 += -1; r0 = r2; exit` with
        // r2 defined first: four instructions.
        assert!(
            m.size_after <= 6,
            "{} instructions:\n{}",
            m.size_after,
            bpf::asm::print_set(&m.set, Some(&m.input))
        );
        assert_eq!(m.signature.kind, Kind::Value);
        assert_eq!(m.signature.odd_one_out, Some("jit"));
        assert!(m.size_before > m.size_after);
        // The correct JIT agrees on the minimised set.
        let mut correct = Engines::new(&ALL);
        assert_eq!(compare(&correct.run_set(&m.set, &m.input)), Verdict::Agree);
    }

    /// The set in `text`, on an 8-byte context, minimised against a JIT that forgets the
    /// zero-extension of 32-bit arithmetic; with the result as text.
    fn minimized_with_zext_bug(text: &str) -> (Minimized, String) {
        let f = parse_set(text).unwrap();
        let opts = Options { bugs: jit::Bugs::NONE.with(jit::Bug::Alu32ArithNoZext), ..Options::default() };
        let mut engines = Engines::with_options(&ALL, &opts);
        let m = minimize(&mut engines, &f.set, &Input::with_ctx(vec![0; 8]), 10_000, &mut |_, _| {}).unwrap();
        let shown = bpf::asm::print_set(&m.set, Some(&m.input));
        (m, shown)
    }

    #[test]
    fn a_bug_in_a_tail_call_target_that_reaches_a_helper_minimises_to_the_target_alone() {
        // The entry only tail-calls `leaf`, whose 32-bit add is wrong on the buggy JIT and
        // shows only in the arguments of a helper call.
        let text = "\
.ctx 8
.map jmp 1
.slot jmp 0 leaf

.prog entry
    r2 = jmp ll
    r3 = 0
    call bpf_tail_call
    r0 = 0
    exit

.prog leaf
    r1 = 0
    r2 = 0
    r3 = 0x7fffffff
    w3 += 1
    r4 = 0
    r5 = 0
    call jitdiff_mix
    r0 = 0
    exit
";
        let (m, shown) = minimized_with_zext_bug(text);
        // `r3 = 0x7fffffff; w3 += 1; r0 = r3; exit`: one program, no maps, the helper's
        // argument turned into R0.
        assert_eq!(m.size_after, 4, "{shown}");
        assert!(m.set.is_single(), "{shown}");
        assert_eq!(m.signature.to_string(), "value:jit:ok@alu32");
    }

    #[test]
    fn a_value_that_only_steers_a_branch_is_returned_instead() {
        // The wrong upper half of r1 decides a signed compare; the smallest reproducer
        // returns r1 right after the 32-bit add.
        let text = "\
r0 = 0
r1 = 0x7fffffff
w1 += 1
r2 = 3
if r1 s> 0 goto +2
r0 = 7
exit
r0 = 9
exit
";
        let (m, shown) = minimized_with_zext_bug(text);
        assert_eq!(m.size_after, 4, "{shown}");
        assert!(shown.contains("w1 += 1\nr0 = r1\nexit"), "{shown}");
    }

    #[test]
    fn agreeing_sets_are_refused() {
        let f = parse_set("r0 = 1\nexit\n").unwrap();
        let mut engines = Engines::new(&ALL);
        let e = minimize(&mut engines, &f.set, &Input::none(), 100, &mut |_, _| {}).unwrap_err();
        assert!(e.contains("nothing to minimise"), "{e}");
    }
}
