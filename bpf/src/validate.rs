//! A static validator for program sets: a small verifier in the manner of the kernel's,
//! enforcing statically the rules the reference interpreter checks while running.
//!
//! [`validate`] checks every program of a set, and for each:
//! - the **call graph** of its functions: acyclic, at most
//!   [`MAX_CALL_FRAMES`](crate::exec::MAX_CALL_FRAMES) frames deep, at most
//!   [`MAX_STACK`] bytes of combined stack (each function's depth rounded up to 16), and a
//!   subprogram that makes tail calls called only while its callers use under 256 bytes;
//! - **termination**: every backward jump that closes a cycle (its target leads back to it;
//!   a jump back to an `exit` does not) closes a counted loop of the generator's form
//!   `rC = N (N > 0); L: ...; rC -= 1; if rC != 0 goto L`, where nothing in the body writes
//!   `rC`, the body is entered only through its head, the decrement is not jumped over,
//!   and loops nest properly;
//! - by a forward abstract interpretation of each function (a worklist over instruction
//!   indexes, joining states where paths meet and iterating loops to a fixpoint):
//!   - every register read is defined on every path (R1 and R10 at a program's entry;
//!     at a subprogram's entry R1-R5 as every call site defines them; R1-R5 are undefined
//!     after a call, R0-R5 after a tail call);
//!   - memory accesses go through the stack pointer (within the function's
//!     [`Program::function_stack_depth`], reading only bytes written on every path), the
//!     context pointer (within `ctx_size`) or a NULL-checked map value pointer (within the
//!     value), atomics naturally aligned;
//!   - pointers only move by adding or subtracting a constant, are never stored, compared
//!     (except a map value pointer with 0, the NULL check), passed as scalar helper
//!     arguments, or returned;
//!   - helpers exist; `bpf_map_lookup_elem` gets an array map and a pointer to a 4-byte
//!     key; tail calls get the context in R1, a prog array in R2 and a scalar in R3;
//!   - constant divisors are non-zero and constant shifts within the width.
//!
//! The validator is conservative where that keeps it small: pointers to a caller's stack
//! or to map values passed to a subprogram cannot be used there, and a register holding
//! different kinds of values on different paths can only be moved.
//!
//! # Usage
//! ```
//! let set = bpf::asm::parse_set("r0 = r2\nexit\n").unwrap().set;
//! let err = bpf::validate::validate(&set, Some(64)).unwrap_err();
//! assert_eq!(err.rule, bpf::validate::Rule::UninitRegister);
//! assert_eq!(err.pc, 0);
//! ```

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::ops::Range;

use crate::exec::MAX_CALL_FRAMES;
use crate::helpers::{self, MAP_LOOKUP_ELEM, TAIL_CALL};
use crate::insn::{AluOp, AtomicOp, Call, Cond, Insn, Operand, Reg, Size, Width};
use crate::program::{Program, MAX_STACK};
use crate::set::{MapRef, ProgramSet, SetProgram, PSEUDO_MAP_FD};

/// The rule a program breaks.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// A register is read where it is not defined on every path.
    UninitRegister,
    /// A stack byte is read where it is not written on every path.
    UninitStack,
    /// A stack access leaves the function's stack.
    StackBounds,
    /// A context access leaves the context.
    CtxBounds,
    /// A map value access leaves the value.
    MapValueBounds,
    /// A map value pointer is dereferenced before it is checked against NULL.
    NullCheck,
    /// Memory is accessed through something that is not a stack, context or map value
    /// pointer.
    BadMemoryBase,
    /// An atomic operation is not naturally aligned.
    MisalignedAtomic,
    /// A pointer takes part in arithmetic other than adding a constant.
    PointerArithmetic,
    /// A pointer is stored to memory.
    PointerStore,
    /// A pointer is compared (other than a map value pointer's NULL check).
    PointerComparison,
    /// A function returns a pointer (or nothing defined to be a scalar) in R0.
    PointerReturn,
    /// A helper gets an argument its prototype does not accept.
    HelperArgument,
    /// A helper id no engine offers.
    UnknownHelper,
    /// A tail call's R1, R2 or R3 is not the context, a prog array, a scalar.
    TailCallArgs,
    /// bpf2bpf calls recurse, nest too deep or use too much stack.
    CallGraph,
    /// A backward jump that is not a counted loop's.
    UnboundedLoop,
    /// A constant division by zero or a constant shift past the width.
    BadImmediate,
    /// Something this validator does not model (kfunc calls, other `lddw` pseudo sources).
    Unsupported,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::UninitRegister => "uninitialized register",
            Rule::UninitStack => "uninitialized stack",
            Rule::StackBounds => "stack access out of bounds",
            Rule::CtxBounds => "context access out of bounds",
            Rule::MapValueBounds => "map value access out of bounds",
            Rule::NullCheck => "missing NULL check",
            Rule::BadMemoryBase => "invalid memory base",
            Rule::MisalignedAtomic => "misaligned atomic",
            Rule::PointerArithmetic => "pointer arithmetic",
            Rule::PointerStore => "pointer stored to memory",
            Rule::PointerComparison => "pointer comparison",
            Rule::PointerReturn => "invalid return value",
            Rule::HelperArgument => "invalid helper argument",
            Rule::UnknownHelper => "unknown helper",
            Rule::TailCallArgs => "invalid tail call",
            Rule::CallGraph => "invalid call graph",
            Rule::UnboundedLoop => "unbounded loop",
            Rule::BadImmediate => "invalid immediate",
            Rule::Unsupported => "unsupported",
        })
    }
}

/// Why a program set is invalid: the first rule broken, where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidateError {
    /// The program's name.
    pub prog: String,
    /// The slot (kernel pc) of the offending instruction.
    pub pc: usize,
    /// The rule broken.
    pub rule: Rule,
    /// What exactly is wrong.
    pub detail: String,
}

impl fmt::Display for ValidateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "program {}, pc {}: {}: {}", self.prog, self.pc, self.rule, self.detail)
    }
}

impl std::error::Error for ValidateError {}

/// Checks every program of `set` against the rules of the [module documentation](self).
/// `ctx_size` bounds accesses through the context pointer; `None` leaves them unbounded
/// above (pass `Some(0)` for runs without a context).
///
/// Attachments are checked as the kernel checks tracing programs: their context is the
/// traced function's arguments (and return value, for fexit), read-only, read 8 bytes at a
/// time at multiples of 8.
pub fn validate(set: &ProgramSet, ctx_size: Option<usize>) -> Result<(), ValidateError> {
    for prog in set.progs() {
        Validator::new(set, prog, ctx_size).run()?;
    }
    for a in set.attachments() {
        let mut v = Validator::new(set, &a.program, Some(a.kind.ctx_size()));
        v.tracing = true;
        v.run()?;
    }
    Ok(())
}

/// For each instruction of program `prog` of `set`, whether R1 holds the context pointer
/// itself (offset 0) on every path that reaches it, as [`validate`]'s dataflow tracks values
/// (`false` where no path reaches). `Err` when the program breaks one of the rules.
pub fn context_in_r1(
    set: &ProgramSet,
    prog: usize,
    ctx_size: Option<usize>,
) -> Result<Vec<bool>, ValidateError> {
    let states = Validator::new(set, &set.progs()[prog], ctx_size).run()?;
    Ok(states.iter().map(|s| s.as_ref().is_some_and(|s| s.regs[1] == Val::Ctx(0))).collect())
}

/// Why a register is undefined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    Entry,
    SubprogEntry,
    NotPassed,
    Clobbered(usize),
    ReturnsNothing(usize),
    TailCall(usize),
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Entry => write!(f, "only r1 and r10 are defined at a program's entry"),
            Why::SubprogEntry => write!(f, "a subprogram starts with r0 and r6-r9 undefined"),
            Why::NotPassed => write!(f, "not every call of this subprogram defines it"),
            Why::Clobbered(pc) => write!(f, "R1-R5 are clobbered by the call at pc {pc}"),
            Why::ReturnsNothing(pc) => write!(f, "the function called at pc {pc} returns nothing"),
            Why::TailCall(pc) => write!(f, "R0-R5 are clobbered by the tail call at pc {pc}"),
        }
    }
}

/// What a register holds. Pointer offsets are constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Val {
    Undef(Why),
    Scalar,
    Ctx(i64),
    Stack(i64),
    /// `lddw rN, map` of some prog array (any one: tail calls need no more).
    ProgArray,
    /// `lddw rN, map` of array map `a` (its index among the array maps).
    ArrayRef(usize),
    /// A pointer into a value of array map `array` (its index among the array maps).
    Value {
        array: usize,
        off: i64,
    },
    /// The result of the lookup at instruction `id`, not yet NULL-checked.
    ValueOrNull {
        array: usize,
        id: usize,
    },
    /// A caller's stack or map value pointer, passed to a subprogram: not tracked.
    Foreign,
    /// Different kinds of values on different paths.
    Mixed,
}

impl Val {
    fn join(self, o: Val) -> Val {
        match (self, o) {
            _ if self == o => self,
            (Val::Undef(_), _) => self,
            (_, Val::Undef(_)) => o,
            _ => Val::Mixed,
        }
    }

    fn describe(self) -> String {
        match self {
            Val::Undef(_) => "nothing defined".into(),
            Val::Scalar => "a scalar".into(),
            Val::Ctx(o) => format!("the context pointer{}", offset(o)),
            Val::Stack(o) => format!("a stack pointer (r10{})", offset(o)),
            Val::ProgArray => "a prog array reference".into(),
            Val::ArrayRef(a) => format!("a reference to array map {a}"),
            Val::Value { array, off } => {
                format!("a pointer into a value of array map {array}{}", offset(off))
            }
            Val::ValueOrNull { .. } => "a map value pointer or NULL".into(),
            Val::Foreign => "a pointer from the caller (not tracked in a subprogram)".into(),
            Val::Mixed => "values of different kinds on different paths".into(),
        }
    }
}

fn offset(o: i64) -> String {
    if o == 0 {
        String::new()
    } else {
        format!(" {} {}", if o < 0 { '-' } else { '+' }, o.unsigned_abs())
    }
}

/// The abstract state at one instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    regs: [Val; 11],
    /// Written bytes of the 512 below r10, bit `i` = byte `r10 - 512 + i`.
    stack: [u64; 8],
}

impl State {
    fn join(&self, o: &State) -> State {
        let mut s = self.clone();
        for r in 0..11 {
            s.regs[r] = s.regs[r].join(o.regs[r]);
        }
        for k in 0..8 {
            s.stack[k] &= o.stack[k];
        }
        s
    }

    fn bytes(off: i64, len: i64) -> impl Iterator<Item = usize> {
        (off..off + len).map(|b| (512 + b) as usize)
    }

    fn written(&self, off: i64, len: i64) -> bool {
        State::bytes(off, len).all(|b| self.stack[b / 64] >> (b % 64) & 1 == 1)
    }

    fn write(&mut self, off: i64, len: i64) {
        for b in State::bytes(off, len) {
            self.stack[b / 64] |= 1 << (b % 64);
        }
    }

    fn clobber(&mut self, regs: Range<usize>, why: Why) {
        for r in regs {
            self.regs[r] = Val::Undef(why);
        }
    }
}

/// How an instruction uses memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    Atomic,
}

type Res<T> = Result<T, ValidateError>;

/// One program under validation.
struct Validator<'a> {
    set: &'a ProgramSet,
    prog: &'a SetProgram,
    ctx_size: Option<usize>,
    funcs: Vec<Range<usize>>,
    /// Per function: (instruction index, callee function) of every bpf2bpf call.
    calls: Vec<Vec<(usize, usize)>>,
    /// Whether the program is a tracing program (an attachment): its context is
    /// read-only u64 arguments.
    tracing: bool,
}

impl<'a> Validator<'a> {
    fn new(set: &'a ProgramSet, prog: &'a SetProgram, ctx_size: Option<usize>) -> Validator<'a> {
        let (funcs, calls) = (prog.prog.functions(), prog.prog.calls());
        Validator { set, prog, ctx_size, funcs, calls, tracing: false }
    }

    /// Checks every rule; the state before each instruction.
    fn run(&self) -> Res<Vec<Option<State>>> {
        self.call_graph()?;
        for f in 0..self.funcs.len() {
            self.loops(f)?;
        }
        self.dataflow()
    }

    fn p(&self) -> &'a Program {
        &self.prog.prog
    }

    fn err(&self, index: usize, rule: Rule, detail: impl Into<String>) -> ValidateError {
        ValidateError { prog: self.prog.name.clone(), pc: self.p().pc_of(index), rule, detail: detail.into() }
    }

    // ---- the call graph ----

    /// Acyclic, at most 8 frames, at most 512 bytes of stack, tail calls in subprograms
    /// only below 256 bytes of caller stack.
    fn call_graph(&self) -> Res<()> {
        let rounded = |f: usize| self.p().function_stack_depth(f).div_ceil(16) * 16;
        let tail_calls = |f: usize| {
            self.funcs[f]
                .clone()
                .any(|i| matches!(self.p().insns()[i], Insn::TailCall | Insn::Call(Call::Helper(TAIL_CALL))))
        };
        // Depth-first over call chains: (function, functions on the chain, stack below).
        let mut seen = HashSet::new();
        let mut todo = vec![(0usize, vec![0usize], 0u32)];
        while let Some((f, chain, below)) = todo.pop() {
            if !seen.insert((f, chain.len(), below)) {
                continue;
            }
            let total = below + rounded(f);
            for &(i, g) in &self.calls[f] {
                if chain.contains(&g) {
                    return Err(self.err(i, Rule::CallGraph, "the call makes the functions recurse"));
                }
                if chain.len() + 1 > MAX_CALL_FRAMES {
                    return Err(self.err(
                        i,
                        Rule::CallGraph,
                        format!(
                            "the call makes a chain of {} frames (at most {MAX_CALL_FRAMES})",
                            chain.len() + 1
                        ),
                    ));
                }
                if tail_calls(g) && total >= 256 {
                    return Err(self.err(
                        i,
                        Rule::CallGraph,
                        format!(
                            "the callee makes tail calls and its callers use {total} bytes of stack \
                             (tail calls in subprograms need less than 256)"
                        ),
                    ));
                }
                if total + rounded(g) > MAX_STACK {
                    return Err(self.err(
                        i,
                        Rule::CallGraph,
                        format!(
                            "the combined stack of the chain would be {} bytes (each depth rounded up to \
                             16; at most {MAX_STACK})",
                            total + rounded(g)
                        ),
                    ));
                }
                let mut c = chain.clone();
                c.push(g);
                todo.push((g, c, total));
            }
        }
        Ok(())
    }

    // ---- termination ----

    /// Every backward jump in function `f` closes a counted loop; loops nest properly.
    fn loops(&self, f: usize) -> Res<()> {
        let insns = self.p().insns();
        let range = self.funcs[f].clone();
        // Every edge inside the function: (from, to, is a fall-through).
        let mut edges = Vec::new();
        for i in range.clone() {
            if let (Some(t), Some(_)) = (self.p().target_of(i), insns[i].jump_offset()) {
                edges.push((i, t, false));
            }
            if !matches!(insns[i], Insn::Exit | Insn::Ja { .. } | Insn::JaLong { .. }) && i + 1 < range.end {
                edges.push((i, i + 1, true));
            }
        }
        // A backward jump makes a loop only when its target leads back to it; one that does
        // not (a jump back to an `exit`, say) is a plain jump, as the kernel's verifier
        // sees it (it rejects back edges of the control-flow graph, not backward offsets).
        let closes_cycle = |j: usize, t: usize| {
            let mut seen = vec![false; range.len()];
            let mut todo = vec![t];
            while let Some(x) = todo.pop() {
                if x == j {
                    return true;
                }
                if !std::mem::replace(&mut seen[x - range.start], true) {
                    todo.extend(edges.iter().filter(|e| e.0 == x).map(|e| e.1));
                }
            }
            false
        };
        let mut loops: Vec<(usize, usize)> = Vec::new();
        for &(j, t, fall) in &edges {
            if fall || t > j || !closes_cycle(j, t) {
                continue;
            }
            let bad = |why: String| self.err(j, Rule::UnboundedLoop, format!("backward jump: {why}"));
            let form = "only counted loops `rC = N; L: ...; rC -= 1; if rC != 0 goto L` are accepted";
            let Insn::Jmp { cond: Cond::Ne, dst: c, src: Operand::Imm(0), .. } = insns[j] else {
                return Err(bad(format!("not of the form `if rC != 0 goto L` ({form})")));
            };
            let is_dec = |i: usize| matches!(insns[i], Insn::Alu { op: AluOp::Sub, dst, src: Operand::Imm(1), .. } if dst == c);
            let is_init = |i: usize| matches!(insns[i], Insn::Alu { op: AluOp::Mov, dst, src: Operand::Imm(n), .. } if dst == c && n > 0);
            if t == j || !is_dec(j - 1) {
                return Err(bad(format!("{c} is not decremented by 1 right before the jump ({form})")));
            }
            if t == range.start || !is_init(t - 1) {
                return Err(bad(format!(
                    "{c} is not set to a positive constant right before the loop ({form})"
                )));
            }
            if let Some(w) = (t..j - 1).find(|&i| writes(&insns[i]).contains(&c.idx())) {
                return Err(bad(format!(
                    "the counter {c} is written in the loop, at pc {}",
                    self.p().pc_of(w)
                )));
            }
            for &(a, b, fall) in &edges {
                let inside = |x: usize| (t..=j).contains(&x);
                if inside(b) && !inside(a) && !(a + 1 == t && fall) {
                    return Err(bad(format!(
                        "the loop is entered at pc {} from pc {}, not through its head",
                        self.p().pc_of(b),
                        self.p().pc_of(a)
                    )));
                }
                if b == j && !fall {
                    return Err(bad(format!("the jump at pc {} skips the decrement", self.p().pc_of(a))));
                }
            }
            // Loops (head to back jump) are disjoint or nested.
            let (a1, b1) = (t - 1, j);
            let crossing = |&&(t2, j2): &&(usize, usize)| {
                let (a2, b2) = (t2 - 1, j2);
                a1 <= b2 && a2 <= b1 && !(a1 <= a2 && b2 <= b1) && !(a2 <= a1 && b1 <= b2)
            };
            if let Some(&(t2, j2)) = loops.iter().find(crossing) {
                return Err(bad(format!(
                    "the loop overlaps the loop from pc {} to {} without nesting in it",
                    self.p().pc_of(t2),
                    self.p().pc_of(j2)
                )));
            }
            loops.push((t, j));
        }
        Ok(())
    }

    // ---- the abstract interpretation ----

    /// Interprets every reachable function, callers before callees: the state before each
    /// instruction (`None` where none reaches).
    fn dataflow(&self) -> Res<Vec<Option<State>>> {
        let n = self.funcs.len();
        let mut entries: Vec<Option<State>> = vec![None; n];
        let mut regs = [Val::Undef(Why::Entry); 11];
        regs[1] = Val::Ctx(0);
        regs[10] = Val::Stack(0);
        entries[0] = Some(State { regs, stack: [0; 8] });
        let mut all = vec![None; self.p().insns().len()];
        for f in self.topological() {
            let Some(entry) = entries[f].take() else { continue };
            let (calls, states) = self.function(f, entry)?;
            for i in self.funcs[f].clone() {
                all[i] = states[i].clone();
            }
            for (g, st) in calls {
                let mut regs = [Val::Undef(Why::SubprogEntry); 11];
                regs[10] = Val::Stack(0);
                for (reg, passed) in regs[1..6].iter_mut().zip(&st.regs[1..6]) {
                    *reg = match *passed {
                        v @ (Val::Scalar | Val::Ctx(_) | Val::ProgArray | Val::ArrayRef(_) | Val::Mixed) => v,
                        Val::Undef(_) => Val::Undef(Why::NotPassed),
                        _ => Val::Foreign,
                    };
                }
                let s = State { regs, stack: [0; 8] };
                entries[g] = Some(match &entries[g] {
                    Some(old) => old.join(&s),
                    None => s,
                });
            }
        }
        Ok(all)
    }

    /// Functions with callers first (the graph is acyclic once `call_graph` passed).
    fn topological(&self) -> Vec<usize> {
        let n = self.funcs.len();
        let mut indeg = vec![0; n];
        for calls in &self.calls {
            for &(_, g) in calls {
                indeg[g] += 1;
            }
        }
        let mut ready: Vec<usize> = (0..n).filter(|&f| indeg[f] == 0).collect();
        let mut order = Vec::new();
        while let Some(f) = ready.pop() {
            order.push(f);
            for &(_, g) in &self.calls[f] {
                indeg[g] -= 1;
                if indeg[g] == 0 {
                    ready.push(g);
                }
            }
        }
        order
    }

    /// Runs function `f` to a fixpoint; returns the state at every bpf2bpf call, with the
    /// callee, and the state before each instruction.
    #[allow(clippy::type_complexity)]
    fn function(&self, f: usize, entry: State) -> Res<(Vec<(usize, State)>, Vec<Option<State>>)> {
        let start = self.funcs[f].start;
        let depth = self.p().function_stack_depth(f) as i64;
        let mut states: Vec<Option<State>> = vec![None; self.p().insns().len()];
        states[start] = Some(entry);
        let mut work = BTreeSet::from([start]);
        let mut calls = Vec::new();
        while let Some(i) = work.pop_first() {
            let Some(st) = states[i].clone() else { continue };
            for (j, s) in self.step(i, st, depth, f, &mut calls)? {
                let new = match &states[j] {
                    Some(old) => old.join(&s),
                    None => s,
                };
                if states[j].as_ref() != Some(&new) {
                    states[j] = Some(new);
                    work.insert(j);
                }
            }
        }
        Ok((calls, states))
    }

    /// Checks instruction `i` in state `st`; returns its successors with their states.
    fn step(
        &self,
        i: usize,
        mut st: State,
        depth: i64,
        f: usize,
        calls: &mut Vec<(usize, State)>,
    ) -> Res<Vec<(usize, State)>> {
        let insn = self.p().insns()[i];
        let next = i + 1;
        match insn {
            Insn::Alu { .. } | Insn::Neg { .. } | Insn::MovSx { .. } | Insn::End { .. } => {
                self.alu(i, &insn, &mut st)?
            }
            Insn::LdImm64 { dst, pseudo, imm } => {
                st.regs[dst.idx()] = match pseudo {
                    0 => Val::Scalar,
                    PSEUDO_MAP_FD => match self.set.map(imm) {
                        Some(MapRef::ProgArray(_)) => Val::ProgArray,
                        Some(MapRef::Array(a, _)) => Val::ArrayRef(a),
                        None => unreachable!("a checked set's map references exist"),
                    },
                    _ => {
                        return Err(self.err(
                            i,
                            Rule::Unsupported,
                            format!("lddw with pseudo source {pseudo}"),
                        ))
                    }
                }
            }
            Insn::Load { size, dst, src, off, .. } => {
                self.memory(i, &mut st, src, off, size, Access::Read, depth)?;
                st.regs[dst.idx()] = Val::Scalar;
            }
            Insn::StoreImm { size, dst, off, .. } => {
                self.memory(i, &mut st, dst, off, size, Access::Write, depth)?
            }
            Insn::Store { size, dst, src, off } => {
                self.scalar(i, &st, src, Rule::PointerStore, "stored value")?;
                self.memory(i, &mut st, dst, off, size, Access::Write, depth)?;
            }
            Insn::Atomic { size, op, dst, src, off } => {
                self.scalar(i, &st, src, Rule::PointerStore, "atomic operand")?;
                if op == AtomicOp::Cmpxchg {
                    self.scalar(i, &st, Reg::R0, Rule::PointerComparison, "cmpxchg's expected value")?;
                }
                self.memory(i, &mut st, dst, off, size, Access::Atomic, depth)?;
                if let Some(w) = insn.written_reg() {
                    st.regs[w.idx()] = Val::Scalar;
                }
            }
            Insn::Ja { .. } | Insn::JaLong { .. } => return Ok(vec![(self.target(i), st)]),
            Insn::Jmp { .. } => return self.jump(i, st),
            Insn::Call(Call::Local(_)) => {
                let g = self.calls[f].iter().find(|c| c.0 == i).map_or(0, |c| c.1);
                calls.push((g, st.clone()));
                st.regs[0] = Val::Scalar;
                st.clobber(1..6, Why::Clobbered(self.p().pc_of(i)));
            }
            Insn::Call(Call::Helper(TAIL_CALL)) | Insn::TailCall => self.tail_call(i, &mut st)?,
            Insn::Call(Call::Helper(id)) => self.helper(i, id, &mut st, depth)?,
            Insn::Call(Call::Kfunc(id)) => {
                let Some(proto) = helpers::kfunc_prototype(id) else {
                    let why = format!("kfunc {id}: only the kfuncs in bpf::helpers::KFUNCS are modelled");
                    return Err(self.err(i, Rule::Unsupported, why));
                };
                self.scalar_call(i, proto, &mut st)?;
            }
            Insn::Exit => {
                self.scalar(i, &st, Reg::R0, Rule::PointerReturn, "r0 at exit")?;
                return Ok(vec![]);
            }
        }
        Ok(vec![(next, st)])
    }

    fn target(&self, i: usize) -> usize {
        self.p().target_of(i).expect("a checked program's jumps have targets")
    }

    /// Reads `r`: it must be defined.
    fn read(&self, i: usize, st: &State, r: Reg) -> Res<Val> {
        match st.regs[r.idx()] {
            Val::Undef(why) => Err(self.err(
                i,
                Rule::UninitRegister,
                format!("{r} is read but not defined on every path ({why})"),
            )),
            v => Ok(v),
        }
    }

    /// Reads `r`, which must be a scalar; a pointer breaks `rule`.
    fn scalar(&self, i: usize, st: &State, r: Reg, rule: Rule, what: &str) -> Res<()> {
        match self.read(i, st, r)? {
            Val::Scalar => Ok(()),
            v => Err(self.err(i, rule, format!("{what} {r} must be a scalar, but holds {}", v.describe()))),
        }
    }

    /// ALU instructions: scalars only, but pointer ± constant and 64-bit moves.
    fn alu(&self, i: usize, insn: &Insn, st: &mut State) -> Res<()> {
        let (dst, val) = match *insn {
            Insn::Alu { width, op: AluOp::Mov, dst, src } => match src {
                Operand::Imm(_) => (dst, Val::Scalar),
                Operand::Reg(s) if width == Width::W64 => (dst, self.read(i, st, s)?),
                Operand::Reg(s) => {
                    self.scalar(i, st, s, Rule::PointerArithmetic, "32-bit move source")?;
                    (dst, Val::Scalar)
                }
            },
            Insn::Alu { width, op, dst, src } => {
                let bits = if width == Width::W64 { 64 } else { 32 };
                match (op, src) {
                    (AluOp::Div | AluOp::Sdiv | AluOp::Mod | AluOp::Smod, Operand::Imm(0)) => {
                        return Err(self.err(i, Rule::BadImmediate, "division by the constant 0"));
                    }
                    (AluOp::Lsh | AluOp::Rsh | AluOp::Arsh, Operand::Imm(k)) if !(0..bits).contains(&k) => {
                        return Err(self.err(i, Rule::BadImmediate, format!("shift by {k} in {bits} bits")));
                    }
                    _ => {}
                }
                let d = self.read(i, st, dst)?;
                if let Operand::Reg(s) = src {
                    self.read(i, st, s)?;
                }
                let moved = |off: i64| match (op, src) {
                    (AluOp::Add, Operand::Imm(k)) => Some(off + k as i64),
                    (AluOp::Sub, Operand::Imm(k)) => Some(off - k as i64),
                    _ => None,
                };
                let val = match (d, width) {
                    (Val::Ctx(o), Width::W64) if moved(o).is_some() => moved(o).map(Val::Ctx),
                    (Val::Stack(o), Width::W64) if moved(o).is_some() => moved(o).map(Val::Stack),
                    (Val::Value { array, off }, Width::W64) if moved(off).is_some() => {
                        moved(off).map(|off| Val::Value { array, off })
                    }
                    _ => None,
                };
                if let Some(v) = val {
                    (dst, v)
                } else {
                    self.scalar(i, st, dst, Rule::PointerArithmetic, "operand")?;
                    if let Operand::Reg(s) = src {
                        self.scalar(i, st, s, Rule::PointerArithmetic, "operand")?;
                    }
                    (dst, Val::Scalar)
                }
            }
            Insn::Neg { dst, .. } | Insn::End { dst, .. } => {
                self.scalar(i, st, dst, Rule::PointerArithmetic, "operand")?;
                (dst, Val::Scalar)
            }
            Insn::MovSx { dst, src, .. } => {
                self.scalar(i, st, src, Rule::PointerArithmetic, "sign-extended source")?;
                (dst, Val::Scalar)
            }
            _ => unreachable!("alu() is called for ALU instructions only"),
        };
        st.regs[dst.idx()] = val;
        Ok(())
    }

    /// A load, store or atomic of `size` at `base + off`.
    #[allow(clippy::too_many_arguments)]
    fn memory(
        &self,
        i: usize,
        st: &mut State,
        base: Reg,
        off: i16,
        size: Size,
        access: Access,
        depth: i64,
    ) -> Res<()> {
        let n = size.bytes() as i64;
        let at = |o: i64| o + off as i64;
        let aligned = |a: i64| {
            if access == Access::Atomic && a.rem_euclid(n) != 0 {
                Err(self.err(i, Rule::MisalignedAtomic, format!("{n}-byte atomic at offset {a}")))
            } else {
                Ok(())
            }
        };
        match self.read(i, st, base)? {
            Val::Stack(o) => {
                let a = at(o);
                if a < -depth || a + n > 0 {
                    return Err(self.err(
                        i,
                        Rule::StackBounds,
                        format!("{n} bytes at r10{} outside the function's {depth}-byte stack", offset(a)),
                    ));
                }
                aligned(a)?;
                if access != Access::Write && !st.written(a, n) {
                    return Err(self.err(
                        i,
                        Rule::UninitStack,
                        format!("{n} bytes at r10{} are read but not written on every path", offset(a)),
                    ));
                }
                st.write(a, n);
            }
            Val::Ctx(o) => {
                let a = at(o);
                if a < 0 || self.ctx_size.is_some_and(|c| a + n > c as i64) {
                    let size = self.ctx_size.map_or("unbounded".into(), |c| format!("{c}-byte"));
                    return Err(self.err(
                        i,
                        Rule::CtxBounds,
                        format!("{n} bytes at context offset {a} outside the {size} context"),
                    ));
                }
                if self.tracing && (access != Access::Read || n != 8 || a % 8 != 0) {
                    return Err(self.err(
                        i,
                        Rule::CtxBounds,
                        format!(
                            "{n} bytes at context offset {a}: a tracing program's context (the traced \
                             function's u64 arguments) is read-only and read 8 bytes at a time at \
                             multiples of 8"
                        ),
                    ));
                }
                aligned(a)?;
            }
            Val::Value { array, off: o } => {
                let a = at(o);
                let vs = self.set.arrays()[array].value_size as i64;
                if a < 0 || a + n > vs {
                    return Err(self.err(
                        i,
                        Rule::MapValueBounds,
                        format!("{n} bytes at offset {a} of a {vs}-byte map value"),
                    ));
                }
                aligned(a)?;
            }
            Val::ValueOrNull { .. } => {
                return Err(self.err(
                    i,
                    Rule::NullCheck,
                    format!("{base} may be NULL: compare it with 0 before using it"),
                ));
            }
            v => {
                return Err(self.err(
                    i,
                    Rule::BadMemoryBase,
                    format!("memory accessed through {base}, which holds {}", v.describe()),
                ));
            }
        }
        Ok(())
    }

    /// Conditional jumps: scalar operands, or a map value pointer's NULL check.
    fn jump(&self, i: usize, st: State) -> Res<Vec<(usize, State)>> {
        let Insn::Jmp { width, cond, dst, src, .. } = self.p().insns()[i] else {
            unreachable!("jump() is called for conditional jumps only")
        };
        let d = self.read(i, &st, dst)?;
        if let Operand::Reg(s) = src {
            self.read(i, &st, s)?;
        }
        let (taken, fall) = (self.target(i), i + 1);
        if let (Val::ValueOrNull { array, id }, Width::W64, Operand::Imm(0), Cond::Eq | Cond::Ne) =
            (d, width, src, cond)
        {
            let (mut null, mut found) = (st.clone(), st);
            for r in 0..11 {
                if matches!(null.regs[r], Val::ValueOrNull { id: x, .. } if x == id) {
                    null.regs[r] = Val::Scalar;
                    found.regs[r] = Val::Value { array, off: 0 };
                }
            }
            return Ok(if cond == Cond::Eq {
                vec![(taken, null), (fall, found)]
            } else {
                vec![(taken, found), (fall, null)]
            });
        }
        self.scalar(i, &st, dst, Rule::PointerComparison, "compared")?;
        if let Operand::Reg(s) = src {
            self.scalar(i, &st, s, Rule::PointerComparison, "compared")?;
        }
        Ok(vec![(taken, st.clone()), (fall, st)])
    }

    /// Helper calls: known ids, scalar arguments; `bpf_map_lookup_elem` takes an array
    /// map and a key pointer.
    fn helper(&self, i: usize, id: i32, st: &mut State, depth: i64) -> Res<()> {
        let Some(proto) = helpers::prototype(id) else {
            return Err(self.err(i, Rule::UnknownHelper, format!("no helper has id {id}")));
        };
        let pc = self.p().pc_of(i);
        if id == MAP_LOOKUP_ELEM {
            let Val::ArrayRef(array) = self.read(i, st, Reg::R1)? else {
                let v = st.regs[1].describe();
                return Err(self.err(
                    i,
                    Rule::HelperArgument,
                    format!("map_lookup_elem: r1 must be an array map, not {v}"),
                ));
            };
            if matches!(self.read(i, st, Reg::R2)?, Val::Scalar | Val::ProgArray | Val::ArrayRef(_)) {
                let v = st.regs[2].describe();
                return Err(self.err(
                    i,
                    Rule::HelperArgument,
                    format!("map_lookup_elem: r2 must point to the key, not {v}"),
                ));
            }
            self.memory(i, st, Reg::R2, 0, Size::W, Access::Read, depth)?;
            st.regs[0] = Val::ValueOrNull { array, id: i };
            st.clobber(1..6, Why::Clobbered(pc));
            Ok(())
        } else {
            self.scalar_call(i, proto, st)
        }
    }

    /// A helper or kfunc call that takes scalars and returns one (or nothing: R0 is then
    /// undefined).
    fn scalar_call(&self, i: usize, proto: helpers::Prototype, st: &mut State) -> Res<()> {
        for r in &Reg::ALL[1..=proto.scalar_args] {
            self.scalar(i, st, *r, Rule::HelperArgument, &format!("{} argument", proto.name))?;
        }
        let pc = self.p().pc_of(i);
        st.regs[0] = Val::Scalar;
        st.clobber(1..6, Why::Clobbered(pc));
        if !proto.returns {
            st.clobber(0..1, Why::ReturnsNothing(pc));
        }
        Ok(())
    }

    /// Tail calls: R1 the context, R2 a prog array, R3 a scalar index.
    fn tail_call(&self, i: usize, st: &mut State) -> Res<()> {
        let r1 = self.read(i, st, Reg::R1)?;
        if r1 != Val::Ctx(0) {
            return Err(self.err(
                i,
                Rule::TailCallArgs,
                format!("r1 must be the context pointer, not {}", r1.describe()),
            ));
        }
        let r2 = self.read(i, st, Reg::R2)?;
        if r2 != Val::ProgArray {
            return Err(self.err(
                i,
                Rule::TailCallArgs,
                format!("r2 must be a prog array, not {}", r2.describe()),
            ));
        }
        self.scalar(i, st, Reg::R3, Rule::TailCallArgs, "the index")?;
        st.clobber(0..6, Why::TailCall(self.p().pc_of(i)));
        Ok(())
    }
}

/// Registers an instruction writes (calls included), for the loop counter rule.
fn writes(insn: &Insn) -> Vec<usize> {
    match insn {
        Insn::Call(_) | Insn::TailCall => (0..6).collect(),
        other => other.written_reg().map(Reg::idx).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbitrary::{Arbitrary, Unstructured};

    fn check(text: &str) -> Result<(), ValidateError> {
        let file = crate::asm::parse_set(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        validate(&file.set, Some(64))
    }

    /// Asserts that `text` breaks `rule` at `pc`; returns the message.
    fn rejects(text: &str, rule: Rule, pc: usize) -> String {
        let e = check(text).expect_err(text);
        assert_eq!((e.rule, e.pc), (rule, pc), "{e}\n{text}");
        e.to_string()
    }

    fn accepts(text: &str) {
        if let Err(e) = check(text) {
            panic!("{e}\n{text}");
        }
    }

    const LOOKUP: &str = ".array arr 16 2\n\
        *(u32 *)(r10 - 4) = 1\n\
        r1 = arr ll\n\
        r2 = r10\n\
        r2 += -4\n\
        call map_lookup_elem\n";

    #[test]
    fn uninitialized_registers() {
        let msg = rejects("r0 = r3\nexit\n", Rule::UninitRegister, 0);
        assert!(msg.contains("only r1 and r10"), "{msg}");
        let msg = rejects(
            "r1 = 1\nr2 = 2\ncall jitdiff_counter\nr0 = 0\nr0 += r3\nexit\n",
            Rule::UninitRegister,
            4,
        );
        assert_eq!(
            msg,
            "program entry, pc 4: uninitialized register: r3 is read but not defined on every path \
             (R1-R5 are clobbered by the call at pc 2)"
        );
        // Defined on one path only.
        rejects("r2 = 0\nif r2 == 0 goto +1\nr0 = 1\nexit\n", Rule::UninitRegister, 3);
        // After a tail call R0 is gone too.
        let tail = ".map m 1\nr2 = m ll\nr3 = 0\ncall bpf_tail_call\nexit\n";
        let msg = rejects(tail, Rule::UninitRegister, 4);
        assert!(msg.contains("tail call at pc 3"), "{msg}");
        // A subprogram gets only what every caller passes.
        let sub = "r2 = 1\ncall f\nr2 = 7\ncall f\nexit\nf:\nr0 = r6\nexit\n";
        rejects(sub, Rule::UninitRegister, 5);
        accepts("r2 = 1\ncall f\nr2 = 7\ncall f\nexit\nf:\nr0 = r2\nexit\n");
        rejects("r2 = 1\ncall f\ncall f\nexit\nf:\nr0 = r2\nexit\n", Rule::UninitRegister, 4);
        // R0 at exit.
        rejects("exit\n", Rule::UninitRegister, 0);
    }

    #[test]
    fn stack_rules() {
        accepts("*(u64 *)(r10 - 8) = 1\nr0 = *(u32 *)(r10 - 4)\nexit\n");
        rejects("r0 = *(u64 *)(r10 - 8)\nexit\n", Rule::UninitStack, 0);
        // Written on one path only.
        rejects(
            "r2 = 0\nif r2 == 0 goto +1\n*(u64 *)(r10 - 8) = 1\nr0 = *(u8 *)(r10 - 1)\nexit\n",
            Rule::UninitStack,
            3,
        );
        rejects(".stack 8\n*(u64 *)(r10 - 16) = 1\nr0 = 0\nexit\n", Rule::StackBounds, 0);
        rejects("*(u64 *)(r10 - 4) = 1\nr0 = 0\nexit\n", Rule::StackBounds, 0);
        rejects(
            "*(u32 *)(r10 - 6) = 1\nr1 = 1\nlock *(u32 *)(r10 - 6) += r1\nr0 = 0\nexit\n",
            Rule::MisalignedAtomic,
            2,
        );
    }

    #[test]
    fn context_rules() {
        accepts("r0 = *(u64 *)(r1 + 56)\nr1 += 8\nr0 = *(u64 *)(r1 + 48)\nexit\n");
        rejects("r0 = *(u64 *)(r1 + 60)\nexit\n", Rule::CtxBounds, 0);
        rejects("r0 = *(u8 *)(r1 - 1)\nexit\n", Rule::CtxBounds, 0);
        rejects("r1 = 5\nr0 = *(u8 *)(r1 + 0)\nexit\n", Rule::BadMemoryBase, 1);
    }

    #[test]
    fn map_value_rules() {
        accepts(&format!("{LOOKUP}if r0 == 0 goto +1\nr0 = *(u64 *)(r0 + 8)\nr0 = 0\nexit\n"));
        accepts(&format!("{LOOKUP}r6 = r0\nif r0 != 0 goto +2\nr0 = 0\nexit\nr0 = *(u64 *)(r6 + 8)\nexit\n"));
        let msg = rejects(&format!("{LOOKUP}r0 = *(u64 *)(r0 + 0)\nexit\n"), Rule::NullCheck, 6);
        assert!(msg.contains("r0 may be NULL"), "{msg}");
        rejects(
            &format!("{LOOKUP}if r0 == 0 goto +1\nr0 = *(u64 *)(r0 + 12)\nr0 = 0\nexit\n"),
            Rule::MapValueBounds,
            7,
        );
        // The key must be written.
        rejects(
            ".array arr 8 1\nr1 = arr ll\nr2 = r10\nr2 += -4\ncall 1\nr0 = 0\nexit\n",
            Rule::UninitStack,
            4,
        );
        // R1 must be an array map, not a prog array.
        rejects(".map m 1\nr1 = m ll\nr2 = r10\ncall 1\nr0 = 0\nexit\n", Rule::HelperArgument, 3);
    }

    #[test]
    fn pointer_rules() {
        rejects("r2 = 1\nr1 += r2\nr0 = 0\nexit\n", Rule::PointerArithmetic, 1);
        rejects("r1 *= 2\nr0 = 0\nexit\n", Rule::PointerArithmetic, 0);
        rejects("w2 = w10\nr0 = 0\nexit\n", Rule::PointerArithmetic, 0);
        rejects("*(u64 *)(r10 - 8) = r1\nr0 = 0\nexit\n", Rule::PointerStore, 0);
        rejects("if r1 > 3 goto +0\nr0 = 0\nexit\n", Rule::PointerComparison, 0);
        rejects("r0 = r10\nexit\n", Rule::PointerReturn, 1);
        rejects("r2 = r1\nr3 = 0\nr4 = 0\nr5 = 0\nr1 = 0\ncall jitdiff_mix\nexit\n", Rule::HelperArgument, 5);
        // Pointer kinds that disagree between paths become unusable.
        rejects("r2 = 0\nif r2 == 0 goto +1\nr2 = r1\nr0 = *(u8 *)(r2 + 0)\nexit\n", Rule::BadMemoryBase, 3);
    }

    #[test]
    fn helper_and_tail_call_rules() {
        rejects("call 99\nexit\n", Rule::UnknownHelper, 0);
        rejects("call kfunc:1234\nexit\n", Rule::Unsupported, 0);
        accepts("r1 = 1\nr2 = 2\nr3 = 3\nr4 = 4\nr5 = 5\ncall kfunc:jitdiff_kmix\nexit\n");
        accepts("call kfunc:jitdiff_kcounter\nexit\n");
        // kfunc arguments are scalars, and R1-R5 are clobbered like after a helper.
        rejects("r2 = 2\nr3 = 3\nr4 = 4\nr5 = 5\ncall kfunc:jitdiff_kmix\nexit\n", Rule::HelperArgument, 4);
        rejects("call kfunc:jitdiff_kcounter\nr0 = r1\nexit\n", Rule::UninitRegister, 1);
        accepts(".map m 1\nr2 = m ll\nr3 = 0\ncall bpf_tail_call\nr0 = 0\nexit\n");
        rejects(".map m 1\nr2 = 1\nr3 = 0\ncall bpf_tail_call\nr0 = 0\nexit\n", Rule::TailCallArgs, 2);
        rejects(
            ".map m 1\nr1 = 0\nr2 = m ll\nr3 = 0\ncall bpf_tail_call\nr0 = 0\nexit\n",
            Rule::TailCallArgs,
            4,
        );
        rejects(".map m 1\nr2 = m ll\nr3 = r10\ncall bpf_tail_call\nr0 = 0\nexit\n", Rule::TailCallArgs, 3);
    }

    #[test]
    fn call_graph_rules() {
        rejects("call f\nexit\nf:\ncall f\nexit\n", Rule::CallGraph, 2);
        // Nine frames.
        let mut chain = String::from("call f1\nexit\n");
        for k in 1..=8 {
            chain += &format!("f{k}:\n");
            if k < 8 {
                chain += &format!("call f{}\n", k + 1);
            } else {
                chain += "r0 = 0\n";
            }
            chain += "exit\n";
        }
        let msg = rejects(&chain, Rule::CallGraph, 14);
        assert!(msg.contains("9 frames"), "{msg}");
        let stacks = |b: u32| format!(".stack 256\nr0 = 0\ncall f\nexit\n.stack {b}\nf:\nr0 = 0\nexit\n");
        accepts(&stacks(256));
        rejects(&stacks(264), Rule::CallGraph, 1);
        let tail =
            ".map m 1\n.stack 256\ncall f\nexit\nf:\nr2 = m ll\nr3 = 0\ncall bpf_tail_call\nr0 = 0\nexit\n";
        rejects(tail, Rule::CallGraph, 0);
    }

    #[test]
    fn termination_rules() {
        let counted = "r0 = 0\nr7 = 3\nl:\nr0 += 1\nr7 -= 1\nif r7 != 0 goto l\nexit\n";
        accepts(counted);
        rejects("r0 = 0\nl:\nr0 += 1\nif r0 != 10 goto l\nexit\n", Rule::UnboundedLoop, 2);
        rejects("r0 = 0\nl:\ngoto l\n", Rule::UnboundedLoop, 1);
        let msg =
            rejects("r0 = 0\nr7 = 3\nl:\nr7 = 5\nr7 -= 1\nif r7 != 0 goto l\nexit\n", Rule::UnboundedLoop, 4);
        assert!(msg.contains("written in the loop"), "{msg}");
        rejects("r0 = 0\nr7 = 0\nl:\nr7 -= 1\nif r7 != 0 goto l\nexit\n", Rule::UnboundedLoop, 3);
        // Skipping the decrement.
        rejects(
            "r0 = 0\nr7 = 3\nl:\nif r0 == 0 goto +1\nr7 -= 1\nif r7 != 0 goto l\nexit\n",
            Rule::UnboundedLoop,
            4,
        );
        // Entering the body past the head.
        rejects(
            "r0 = 0\nif r1 == 0 goto l\nr7 = 3\nl:\nr7 -= 1\nif r7 != 0 goto l\nexit\n",
            Rule::UnboundedLoop,
            4,
        );
        // A call in the body clobbers a counter in R1-R5.
        rejects(
            "r0 = 0\nr3 = 2\nl:\ncall jitdiff_counter\nr3 -= 1\nif r3 != 0 goto l\nexit\n",
            Rule::UnboundedLoop,
            4,
        );
        // A backward jump that closes no cycle is no loop: here both go back to an `exit`.
        accepts("goto start\nout:\nexit\nstart:\nr0 = 2\nr2 = *(u64 *)(r1 + 0)\nif r2 == 0 goto out\nr0 = 3\ngoto out\n");
        // But one whose target leads back to it is, whatever lies between.
        rejects("r0 = 0\nl:\nif r0 == 0 goto +1\nr0 += 1\ngoto l\n", Rule::UnboundedLoop, 3);
        // Nested loops are fine; the fixpoint joins the stack state.
        accepts(
            "r0 = 0\nr7 = 2\nl:\nr8 = 3\nm:\n*(u64 *)(r10 - 8) = r0\nr0 += 1\nr8 -= 1\nif r8 != 0 goto m\n\
             r7 -= 1\nif r7 != 0 goto l\nr0 = *(u64 *)(r10 - 8)\nexit\n",
        );
    }

    #[test]
    fn immediates() {
        rejects("r0 = 1\nr0 /= 0\nexit\n", Rule::BadImmediate, 1);
        rejects("w0 = 1\nw0 <<= 32\nexit\n", Rule::BadImmediate, 1);
        accepts("r0 = 1\nr0 <<= 63\nexit\n");
    }

    #[test]
    fn the_corpus_validates() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
        let mut n = 0;
        for dir in ["tailcalls", "examples"] {
            let mut paths: Vec<_> =
                std::fs::read_dir(root.join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
            paths.sort();
            for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "s")) {
                let file = crate::load::load_set_file(&path).unwrap();
                let ctx = file.ctx.and_then(|i| i.ctx).map(|c| c.len());
                if let Err(e) = validate(&file.set, ctx) {
                    panic!("{}: {e}", path.display());
                }
                n += 1;
            }
        }
        assert!(n >= 18, "{n} corpus files");
    }

    #[test]
    fn generated_sets_validate() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut generated = 0;
        // Sets with loops, lookups, tail calls, bpf2bpf calls.
        let mut seen = [0usize; 4];
        for k in 0..500 {
            let bytes: Vec<u8> = (0..8192)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let mut u = Unstructured::new(&bytes);
            let Ok(cfg) = crate::gen::Config::arbitrary(&mut u) else { continue };
            let Ok(g) = crate::gen::generate(&cfg, &mut u) else { continue };
            generated += 1;
            let insns = || g.set.progs().iter().flat_map(|p| p.prog.insns().iter());
            for (k, f) in [
                |i: &Insn| i.jump_offset().is_some_and(|o| o < 0),
                |i: &Insn| *i == Insn::Call(Call::Helper(MAP_LOOKUP_ELEM)),
                |i: &Insn| *i == Insn::Call(Call::Helper(TAIL_CALL)),
                |i: &Insn| matches!(i, Insn::Call(Call::Local(_))),
            ]
            .into_iter()
            .enumerate()
            {
                seen[k] += insns().any(f) as usize;
            }
            let ctx = g.input.ctx.as_ref().map(Vec::len);
            if let Err(e) = validate(&g.set, ctx) {
                panic!("set {k}: {e}\n{}", crate::asm::print_set(&g.set, Some(&g.input)));
            }
        }
        assert!(generated >= 450, "only {generated} of 500 inputs generated a set");
        assert!(seen.iter().all(|&n| n >= 20), "sets with loops, lookups, tail calls, calls: {seen:?}");
    }

    #[test]
    fn context_in_r1_follows_the_context_through_moves_and_calls() {
        let text = "r6 = r1\ncall with_ctx\nr1 = 5\ncall with_ctx\nr1 = r6\nr1 += 8\nexit\n\
                    with_ctx:\nr0 = 0\nexit\n";
        let file = crate::asm::parse_set(text).unwrap();
        let ctx = context_in_r1(&file.set, 0, Some(64)).unwrap();
        // r6 = r1 | call (r1 the context) | r1 = 5 | call (a scalar) | r1 = r6 | r1 += 8 |
        // exit (the context + 8) | the callee's two instructions (one caller passes a scalar).
        assert_eq!(ctx, [true, true, false, false, false, true, false, false, false]);
        let bad = crate::asm::parse_set("r0 = *(u64 *)(r1 + 64)\nexit\n").unwrap();
        assert_eq!(context_in_r1(&bad.set, 0, Some(64)).unwrap_err().rule, Rule::CtxBounds);
    }
}
