//! A static validator for program sets: a small verifier in the manner of the kernel's,
//! accepting what the kernel's verifier accepts (for a privileged loader) wherever the
//! engines can agree on the result, and enforcing statically the rules the reference
//! interpreter checks while running.
//!
//! [`validate`] checks every program of a set, and for each:
//! - the **call graph** of its functions: acyclic, at most
//!   [`MAX_CALL_FRAMES`](crate::exec::MAX_CALL_FRAMES) frames deep, at most
//!   [`MAX_STACK`] bytes of combined stack (each function's depth rounded up to 16, the
//!   kernel's rounding for JIT-compiled programs), and a subprogram that makes tail calls
//!   called only while its callers use under 256 bytes;
//! - by a forward abstract interpretation of each function (a worklist over instruction
//!   indexes, joining states where paths meet and iterating loops to a fixpoint, widening
//!   ranges that keep growing), starting at the main function and entering each
//!   subprogram from every call with the registers and stacks that call passes:
//!   - registers hold scalars with a known unsigned range (a constant is a range of one),
//!     or pointers (context, stack of a frame of the call chain, map value) with a range
//!     of offsets; ALU operations, jumps and loads keep the ranges sound, and a jump
//!     whose outcome the ranges decide follows only the path it takes, as the kernel's
//!     verifier does, while the other narrows the ranges compared;
//!   - every register read is defined on every path (R1 and R10 at a program's entry;
//!     at a subprogram's entry R1-R5 as the call defines them; R1-R5 are undefined after a
//!     call, R0-R5 after a tail call); a subprogram may exit with R0 undefined (then its
//!     caller's R0 is undefined), a program's main function may not;
//!   - memory accesses go through a stack pointer (of the running function or, passed
//!     down, of a caller: within that function's
//!     [`Program::function_stack_depth`], reading only bytes written on every path), the
//!     context pointer (within `ctx_size`: jitdiff's context is a buffer, which the kernel
//!     engines pass as a map value; a tracing program's, its arguments, at constant
//!     offsets) or a NULL-checked map value pointer (within the value), atomics naturally
//!     aligned; a variable offset must lie in bounds for all its values;
//!   - pointers move by adding or subtracting a scalar whose range is bounded, are never
//!     stored, compared (except a map value pointer with 0, the NULL check), passed as
//!     scalar helper arguments, or returned from the main function; a subprogram may
//!     return a pointer, but not into its own stack;
//!   - helpers exist; `bpf_map_lookup_elem` gets an array map and a pointer to a 4-byte
//!     key; tail calls get the context in R1, a prog array in R2 and a scalar in R3;
//!   - constant divisors are non-zero and constant shifts within the width.
//!
//! **Loops** of any shape are accepted. The kernel's verifier walks a loop until it ends
//! (or until its state repeats, which it refuses as an infinite loop); this validator
//! walks the first 64 iterations of every path one by one too (a pointer that moves in
//! step with a counter keeps a constant offset in each), then joins the iterations and
//! widens what still grows. It cannot always prove that a loop ends, so it accepts every
//! loop whose body is safe and leaves termination to the engines' instruction budgets: a
//! run that spends its budget is inconclusive, never a finding.
//!
//! Where the validator is stricter than the kernel, it is because the result would differ
//! between engines: a read of stack bytes not written on every path (the kernel lets a
//! privileged program read whatever the stack held), a pointer compared or stored (its
//! value is an engine's own address). And it joins paths where the kernel keeps them
//! apart (where two branches meet, and past the 64th iteration of a loop), so a pointer
//! that moves in step with a counter through a longer loop is refused (its offset is
//! widened to unbounded).
//!
//! [`stack_depths`] computes each function's stack depth as the verifier does: the
//! deepest byte any access reaches through a pointer into that function's frame,
//! rounded up to 8.
//!
//! # Usage
//! ```
//! let set = bpf::asm::parse_set("r0 = r2\nexit\n").unwrap().set;
//! let err = bpf::validate::validate(&set, Some(64)).unwrap_err();
//! assert_eq!(err.rule, bpf::validate::Rule::UninitRegister);
//! assert_eq!(err.pc, 0);
//! ```

mod interp;
mod live;
mod value;

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;

use crate::exec::MAX_CALL_FRAMES;
use crate::helpers::TAIL_CALL;
use crate::insn::{Call, Insn};
use crate::program::{Program, MAX_STACK};
use crate::set::{ProgramSet, SetProgram};

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
    /// A context access leaves the context (or its offset is not a constant).
    CtxBounds,
    /// A map value access leaves the value.
    MapValueBounds,
    /// A packet access reaches past the bytes a comparison with `data_end` proved to be in
    /// the packet (or before its start).
    PacketBounds,
    /// A map value pointer is dereferenced before it is checked against NULL.
    NullCheck,
    /// Memory is accessed through something that is not a stack, context or map value
    /// pointer.
    BadMemoryBase,
    /// An atomic operation is not naturally aligned.
    MisalignedAtomic,
    /// A pointer takes part in arithmetic other than adding or subtracting a bounded
    /// scalar.
    PointerArithmetic,
    /// A pointer is stored to memory.
    PointerStore,
    /// A pointer is compared (other than a map value pointer's NULL check).
    PointerComparison,
    /// A function returns what it may not: the main function a pointer, a subprogram a
    /// pointer into its own stack.
    PointerReturn,
    /// A helper gets an argument its prototype does not accept.
    HelperArgument,
    /// A helper id no engine offers.
    UnknownHelper,
    /// A tail call's R1, R2 or R3 is not the context, a prog array, a scalar.
    TailCallArgs,
    /// bpf2bpf calls recurse, nest too deep or use too much stack.
    CallGraph,
    /// The analysis needs more steps than the kernel's verifier would take.
    TooComplex,
    /// A constant division by zero or a constant shift past the width.
    BadImmediate,
    /// A legacy packet load (`LD_ABS`/`LD_IND`) in a program that is not a socket filter
    /// or tc program.
    PacketLoadType,
    /// A legacy packet load without the context pointer in R6.
    PacketLoadContext,
    /// Something this validator does not model (kfunc calls, other `lddw` pseudo sources).
    Unsupported,
}

impl Rule {
    /// The message (its format string) the kernel's verifier prints for the same case, where
    /// it has one: `kernel/bpf/verifier.c` of Linux 7.3. Where this validator is stricter
    /// than the kernel is for a privileged loader (reading stack bytes not written, storing
    /// or comparing a pointer), the message is the one an unprivileged loader gets.
    pub const fn kernel_message(self) -> Option<&'static str> {
        Some(match self {
            Rule::UninitRegister => "R%d !read_ok",
            Rule::UninitStack => "invalid read from stack off %d+%d size %d",
            Rule::StackBounds => "invalid%s stack %s off=%lld size=%d",
            Rule::CtxBounds => "invalid bpf_context access off=%d size=%d",
            Rule::MapValueBounds => "invalid access to map value, value_size=%d off=%d size=%d",
            Rule::PacketBounds => "invalid access to packet, off=%d size=%d, R%d(id=%d,off=%d,r=%d)",
            Rule::NullCheck => "%s invalid mem access 'map_value_or_null'",
            Rule::BadMemoryBase => "%s invalid mem access '%s'",
            Rule::MisalignedAtomic => "misaligned %saccess off %s+%d size %d",
            Rule::PointerArithmetic => "R%d pointer arithmetic on %s prohibited",
            Rule::PointerStore => "R%d leaks addr into mem",
            Rule::PointerComparison => "R%d pointer comparison prohibited",
            Rule::PointerReturn => "R%d leaks addr as return value",
            Rule::HelperArgument | Rule::TailCallArgs => "%s type=%s expected=%s",
            Rule::UnknownHelper => "invalid func %s#%d",
            Rule::CallGraph => "combined stack size of %d calls is %d. Too large",
            Rule::TooComplex => "BPF program is too large. Processed %d insn",
            Rule::BadImmediate => "div by zero",
            Rule::PacketLoadType => "BPF_LD_[ABS|IND] instructions not allowed for this program type",
            Rule::PacketLoadContext => "at the time of BPF_LD_ABS|IND R6 != pointer to skb",
            Rule::Unsupported => return None,
        })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::UninitRegister => "uninitialized register",
            Rule::UninitStack => "uninitialized stack",
            Rule::StackBounds => "stack access out of bounds",
            Rule::CtxBounds => "context access out of bounds",
            Rule::MapValueBounds => "map value access out of bounds",
            Rule::PacketBounds => "packet access out of bounds",
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
            Rule::TooComplex => "program too complex",
            Rule::BadImmediate => "invalid immediate",
            Rule::PacketLoadType => "legacy packet load in the wrong program type",
            Rule::PacketLoadContext => "legacy packet load without the context",
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
/// (`true` where no path reaches: a jump the constants decide never goes there, and no
/// run gets there either). `Err` when the program breaks one of the rules.
pub fn context_in_r1(
    set: &ProgramSet,
    prog: usize,
    ctx_size: Option<usize>,
) -> Result<Vec<bool>, ValidateError> {
    let mut v = Validator::new(set, &set.progs()[prog], ctx_size);
    v.run()?;
    Ok(v.ctx_in_r1.iter().map(|c| c.unwrap_or(true)).collect())
}

/// The stack depth of every function of program `prog` of `set` as the kernel's verifier
/// computes it: the deepest byte below the function's r10 that any access reaches
/// through a pointer into its frame (its own, or one of its callees' through a pointer
/// passed down), rounded up to 8; 0 for a function no path reaches. `Err` when the
/// program breaks one of the rules with every function given [`MAX_STACK`] bytes.
pub fn stack_depths(
    set: &ProgramSet,
    prog: usize,
    ctx_size: Option<usize>,
) -> Result<Vec<u32>, ValidateError> {
    let mut v = Validator::new(set, &set.progs()[prog], ctx_size);
    v.infer_depths = true;
    v.run()?;
    Ok(v.deepest.iter().map(|&d| (d as u32).div_ceil(8) * 8).collect())
}

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
    /// Whether stack depths are being inferred: every function may use [`MAX_STACK`]
    /// bytes, and `deepest` records what they do use.
    infer_depths: bool,
    /// Per function, the deepest stack byte accessed below its r10.
    deepest: Vec<i64>,
    /// Per instruction, whether R1 held the context on every visit (`None`: never
    /// visited).
    ctx_in_r1: Vec<Option<bool>>,
    /// Instructions interpreted so far, against [`interp::STEP_LIMIT`].
    steps: usize,
    /// The values ranges widen to: every constant a jump compares with (64-bit and
    /// 32-bit readings), one either side of it, and the extremes of the widths, sorted.
    thresholds: Vec<u64>,
    /// Per instruction, whether a backward jump goes to it (a loop head, where ranges
    /// are widened).
    heads: Vec<bool>,
    /// Per instruction, the registers a path from it may read (bit `r`).
    live: Vec<u16>,
    /// What each subprogram analysis returned, by call chain and entry state.
    summaries: std::collections::HashMap<(Vec<usize>, value::State), Option<interp::Summary>>,
}

type Res<T> = Result<T, ValidateError>;

impl<'a> Validator<'a> {
    fn new(set: &'a ProgramSet, prog: &'a SetProgram, ctx_size: Option<usize>) -> Validator<'a> {
        let (funcs, calls) = (prog.prog.functions(), prog.prog.calls());
        let n = prog.prog.insns().len();
        let mut thresholds = vec![0, i32::MAX as u64, u32::MAX as u64, i64::MAX as u64, u64::MAX];
        for insn in prog.prog.insns() {
            if let Insn::Jmp { src: crate::insn::Operand::Imm(k), .. } = insn {
                for v in [*k as i64 as u64, *k as u32 as u64] {
                    thresholds.extend([v.wrapping_sub(1), v, v.wrapping_add(1)]);
                }
            }
        }
        thresholds.sort_unstable();
        thresholds.dedup();
        let mut heads = vec![false; n];
        for i in 0..n {
            if let Some(t) = prog.prog.target_of(i).filter(|&t| t <= i) {
                heads[t] = true;
            }
        }
        Validator {
            set,
            prog,
            ctx_size,
            deepest: vec![0; funcs.len()],
            funcs,
            calls,
            tracing: false,
            infer_depths: false,
            ctx_in_r1: vec![None; n],
            thresholds,
            heads,
            live: live::live_in(&prog.prog),
            steps: 0,
            summaries: Default::default(),
        }
    }

    /// Checks every rule.
    fn run(&mut self) -> Res<()> {
        self.call_graph()?;
        self.interpret()
    }

    fn p(&self) -> &'a Program {
        &self.prog.prog
    }

    fn err(&self, index: usize, rule: Rule, detail: impl Into<String>) -> ValidateError {
        ValidateError { prog: self.prog.name.clone(), pc: self.p().pc_of(index), rule, detail: detail.into() }
    }

    /// The stack depth function `f` may use.
    fn depth(&self, f: usize) -> i64 {
        if self.infer_depths {
            MAX_STACK as i64
        } else {
            self.p().function_stack_depth(f) as i64
        }
    }

    // ---- the call graph ----

    /// Acyclic, at most 8 frames, at most 512 bytes of stack, tail calls in subprograms
    /// only below 256 bytes of caller stack (the stack rules only with declared depths).
    fn call_graph(&self) -> Res<()> {
        let rounded =
            |f: usize| if self.infer_depths { 0 } else { self.p().function_stack_depth(f).div_ceil(16) * 16 };
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
}

#[cfg(test)]
mod tests;
