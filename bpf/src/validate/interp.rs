//! The validator's abstract interpretation: each function run to a fixpoint over its
//! instructions, each subprogram entered from every call with that call's state (its
//! registers, and the stacks of every frame of the chain), returning to the caller what
//! holds at all its exits.

use std::collections::{BTreeSet, HashMap};

use super::value::{self, Bounds, Off, State, Val, Why, Written};
use super::{Res, Rule, Validator};
use crate::context::Field;
use crate::helpers::{self, MAP_LOOKUP_ELEM, TAIL_CALL};
use crate::insn::{AluOp, AtomicOp, Call, Cond, Insn, Operand, Reg, Size, Width};
use crate::set::{map_value_parts, MapRef, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE};

/// Instructions the interpretation may step through, over all functions and contexts:
/// the kernel verifier's own limit (`BPF_COMPLEXITY_LIMIT_INSNS`).
pub(super) const STEP_LIMIT: usize = 1_000_000;

/// After this many changes of the state at a loop head (the target of a backward jump:
/// every cycle has one) in the last layer, the ranges that still grow are widened, so that
/// every loop reaches a fixpoint.
const WIDEN_AFTER: u16 = 8;

/// Backward jumps a path may take before its iterations are joined: loops of up to this
/// many iterations are analysed one iteration at a time.
const UNROLL: u16 = 64;

/// The farthest a packet pointer may reach for a comparison with the packet's end to
/// prove bytes safe (the kernel's `MAX_PACKET_OFF`).
const MAX_PACKET_OFF: i64 = 0xffff;

/// The largest scalar a pointer may move by when it is not a constant (the kernel's
/// `BPF_MAX_VAR_OFF`).
const MAX_VAR_OFF: u64 = 1 << 29;

/// What a subprogram leaves its caller: R0 and the stacks of the frames below it, joined
/// over all its exits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(in crate::validate) struct Summary {
    r0: Val,
    stacks: Vec<Written>,
}

/// Where an instruction leads.
enum Next {
    /// To instruction `0` with state `1`.
    Goto(usize, State),
    /// Out of the subprogram, in this state.
    Return(State),
}

/// How an instruction uses memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// A load; `true` when it sign-extends.
    Read(bool),
    Write,
    Atomic,
}

impl Validator<'_> {
    /// Interprets the program from its main function.
    pub(super) fn interpret(&mut self) -> Res<()> {
        let mut regs = [Val::Undef(Why::Entry); 11];
        regs[1] = Val::Ctx(Off::at(0));
        regs[10] = Val::Stack { frame: 0, off: Off::at(0) };
        self.function(&[0], State { regs, stacks: vec![Written::default()] })?;
        Ok(())
    }

    /// Runs the last function of `chain` (called through the others) from `entry` to a
    /// fixpoint; what it returns, or `None` when no path returns.
    fn function(&mut self, chain: &[usize], entry: State) -> Res<Option<Summary>> {
        let f = *chain.last().expect("a call chain has a function");
        let start = self.funcs[f].start;
        // States by (layer, instruction): a path's layer is how many backward jumps it
        // has taken, up to UNROLL, so the first iterations of every loop are told apart
        // as the kernel's verifier tells them apart (a pointer that moves in step with a
        // counter keeps a constant offset in each); only the last layer joins iterations,
        // and widens at loop heads.
        let mut states: HashMap<(u16, usize), State> = HashMap::from([((0, start), entry)]);
        let mut changes: HashMap<(u16, usize), u16> = HashMap::new();
        let mut layers_at: HashMap<usize, Vec<u16>> = HashMap::new();
        let mut work = BTreeSet::from([(0u16, start)]);
        let mut exit: Option<Summary> = None;
        while let Some((layer, i)) = work.pop_first() {
            let st = states[&(layer, i)].clone();
            self.steps += 1;
            if self.steps > STEP_LIMIT {
                let detail = format!(
                    "the analysis took more than {STEP_LIMIT} steps (the kernel's verifier stops at as many: \
                     \"BPF program is too large\")"
                );
                return Err(self.err(i, Rule::TooComplex, detail));
            }
            let r1_ctx = st.regs[1] == Val::Ctx(Off::at(0));
            self.ctx_in_r1[i] = Some(self.ctx_in_r1[i].unwrap_or(true) && r1_ctx);
            for next in self.step(chain, i, st)? {
                match next {
                    Next::Goto(j, mut s) => {
                        let to = if j <= i { (layer + 1).min(UNROLL) } else { layer };
                        let key = (to, j);
                        s.forget_dead(self.live[j]);
                        // A state another layer already covers needs no walk of its own.
                        let layers = layers_at.entry(j).or_default();
                        if layers.iter().any(|&l| l != to && states.get(&(l, j)).is_some_and(|o| s.within(o)))
                        {
                            continue;
                        }
                        if !layers.contains(&to) {
                            layers.push(to);
                        }
                        let changed = changes.entry(key).or_insert(0);
                        let new = match states.get(&key) {
                            None => s,
                            Some(old) if to == UNROLL && self.heads[j] && *changed >= WIDEN_AFTER => {
                                old.widen(&s, &self.thresholds)
                            }
                            Some(old) => old.join(&s),
                        };
                        if states.get(&key) != Some(&new) {
                            *changed = changed.saturating_add(1);
                            states.insert(key, new);
                            work.insert(key);
                        }
                    }
                    Next::Return(s) => {
                        let own = chain.len() - 1;
                        let out = Summary { r0: s.regs[0], stacks: s.stacks[..own].to_vec() };
                        exit = Some(match exit {
                            None => out,
                            Some(e) => Summary {
                                r0: e.r0.join(out.r0),
                                stacks: Written::meet_all(&e.stacks, &out.stacks),
                            },
                        });
                    }
                }
            }
        }
        Ok(exit)
    }

    /// Checks instruction `i` of the last function of `chain` in state `st`; where it
    /// leads.
    fn step(&mut self, chain: &[usize], i: usize, mut st: State) -> Res<Vec<Next>> {
        let insn = self.p().insns()[i];
        let frame = chain.len() - 1;
        match insn {
            Insn::Alu { .. } | Insn::Neg { .. } | Insn::MovSx { .. } | Insn::End { .. } => {
                self.alu(i, &insn, &mut st, frame)?
            }
            Insn::LdImm64 { dst, pseudo, imm } => {
                st.regs[dst.idx()] = match pseudo {
                    0 => Val::konst(imm),
                    PSEUDO_MAP_FD => match self.set.map(imm) {
                        Some(MapRef::ProgArray(_)) => Val::ProgArray,
                        Some(MapRef::Array(a, _)) => Val::ArrayRef(a),
                        None => unreachable!("a checked set's map references exist"),
                    },
                    PSEUDO_MAP_VALUE => {
                        let (map, off) = map_value_parts(imm);
                        match self.set.map(map) {
                            Some(MapRef::Array(array, _)) => Val::Value { array, off: Off::at(off as i64) },
                            _ => unreachable!("a checked set's map value references name array maps"),
                        }
                    }
                    _ => {
                        return Err(self.err(
                            i,
                            Rule::Unsupported,
                            format!("lddw with pseudo source {pseudo}"),
                        ))
                    }
                }
            }
            Insn::Load { size, signed, dst, src, off } => {
                st.regs[dst.idx()] = self.memory(i, &mut st, chain, src, off, size, Access::Read(signed))?;
            }
            Insn::StoreImm { size, dst, off, .. } => {
                self.memory(i, &mut st, chain, dst, off, size, Access::Write)?;
            }
            Insn::Store { size, dst, src, off } => {
                self.scalar(i, &st, src, Rule::PointerStore, "stored value", frame)?;
                self.memory(i, &mut st, chain, dst, off, size, Access::Write)?;
            }
            Insn::Atomic { size, op, dst, src, off } => {
                self.scalar(i, &st, src, Rule::PointerStore, "atomic operand", frame)?;
                if op == AtomicOp::Cmpxchg {
                    self.scalar(i, &st, Reg::R0, Rule::PointerComparison, "cmpxchg's expected value", frame)?;
                }
                self.memory(i, &mut st, chain, dst, off, size, Access::Atomic)?;
                if let Some(w) = insn.written_reg() {
                    st.regs[w.idx()] = Val::SCALAR;
                }
            }
            Insn::LoadPacket { index, .. } => return self.packet_load(i, st, frame, index),
            Insn::Ja { .. } | Insn::JaLong { .. } => return Ok(vec![Next::Goto(self.target(i), st)]),
            Insn::Jmp { .. } => return self.jump(i, st, frame),
            Insn::Call(Call::Local(_)) => return self.call(chain, i, st),
            Insn::Call(Call::Helper(TAIL_CALL)) | Insn::TailCall => self.tail_call(i, &mut st, frame)?,
            Insn::Call(Call::Helper(id)) => self.helper(i, id, &mut st, chain)?,
            Insn::Call(Call::Kfunc(id)) => {
                let Some(proto) = helpers::kfunc_prototype(id) else {
                    let why = format!("kfunc {id}: only the kfuncs in bpf::helpers::KFUNCS are modelled");
                    return Err(self.err(i, Rule::Unsupported, why));
                };
                self.scalar_call(i, proto, &mut st, frame)?;
            }
            Insn::Exit if frame == 0 => {
                self.scalar(i, &st, Reg::R0, Rule::PointerReturn, "r0 at exit", frame)?;
                return Ok(vec![]);
            }
            Insn::Exit => {
                if matches!(st.regs[0], Val::Stack { frame: f, .. } if f as usize == frame) {
                    let detail = "r0 at a subprogram's exit points into its own stack, which the exit frees";
                    return Err(self.err(i, Rule::PointerReturn, detail));
                }
                return Ok(vec![Next::Return(st)]);
            }
        }
        Ok(vec![Next::Goto(i + 1, st)])
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

    /// Reads `r`, which must be a scalar (its range); a pointer breaks `rule`.
    fn scalar(&self, i: usize, st: &State, r: Reg, rule: Rule, what: &str, frame: usize) -> Res<Bounds> {
        match self.read(i, st, r)? {
            Val::Scalar(b) => Ok(b),
            v => Err(self.err(
                i,
                rule,
                format!("{what} {r} must be a scalar, but holds {}", v.describe(frame)),
            )),
        }
    }

    /// The value of an operand (an immediate sign-extended to 64 bits, or zero-extended
    /// from 32 for 32-bit instructions).
    fn operand(&self, i: usize, st: &State, src: Operand, width: Width) -> Res<Val> {
        match src {
            Operand::Reg(s) => self.read(i, st, s),
            Operand::Imm(k) if width == Width::W64 => Ok(Val::konst(k as i64 as u64)),
            Operand::Imm(k) => Ok(Val::konst(k as u32 as u64)),
        }
    }

    /// ALU instructions: scalars (their ranges), pointer ± bounded scalar, 64-bit moves.
    fn alu(&self, i: usize, insn: &Insn, st: &mut State, frame: usize) -> Res<()> {
        let describe = |v: Val| v.describe(frame);
        let (dst, val) = match *insn {
            Insn::Alu { width, op: AluOp::Mov, dst, src } => {
                match (width, self.operand(i, st, src, width)?) {
                    (Width::W64, v) => (dst, v),
                    (Width::W32, Val::Scalar(b)) => (dst, Val::Scalar(value::alu(AluOp::Mov, width, b, b))),
                    (Width::W32, v) => {
                        let detail =
                            format!("32-bit move source must be a scalar, but holds {}", describe(v));
                        return Err(self.err(i, Rule::PointerArithmetic, detail));
                    }
                }
            }
            Insn::Alu { width, op, dst, src } => {
                let bits = if width == Width::W64 { 64 } else { 32 };
                match (op, src) {
                    (AluOp::Div | AluOp::Sdiv | AluOp::Mod | AluOp::Smod, Operand::Imm(0)) => {
                        return Err(self.err(
                            i,
                            Rule::BadImmediate,
                            "division by the constant 0 (the kernel: \"div by zero\")",
                        ));
                    }
                    (AluOp::Lsh | AluOp::Rsh | AluOp::Arsh, Operand::Imm(k)) if !(0..bits).contains(&k) => {
                        return Err(self.err(
                            i,
                            Rule::BadImmediate,
                            format!("shift by {k} in {bits} bits (the kernel: \"invalid shift {k}\")"),
                        ));
                    }
                    _ => {}
                }
                let d = self.read(i, st, dst)?;
                let s = self.operand(i, st, src, width)?;
                let val = match (d, s) {
                    (Val::Scalar(a), Val::Scalar(b)) => Val::Scalar(value::alu(op, width, a, b)),
                    (p, Val::Scalar(b)) if width == Width::W64 && matches!(op, AluOp::Add | AluOp::Sub) => {
                        self.moved(i, p, b, op == AluOp::Sub, frame)?
                    }
                    (Val::Scalar(b), p) if width == Width::W64 && op == AluOp::Add => {
                        self.moved(i, p, b, false, frame)?
                    }
                    (d, s) => {
                        let culprit = if matches!(d, Val::Scalar(_)) { s } else { d };
                        let detail = format!(
                            "operand {} holds {}: only adding a bounded scalar to a pointer or subtracting one \
                             from it, in 64 bits, is allowed",
                            match (d, src) {
                                (Val::Scalar(_), Operand::Reg(r)) => r,
                                _ => dst,
                            },
                            describe(culprit)
                        );
                        return Err(self.err(i, Rule::PointerArithmetic, detail));
                    }
                };
                (dst, val)
            }
            Insn::Neg { width, dst } => {
                let a = self.scalar(i, st, dst, Rule::PointerArithmetic, "operand", frame)?;
                (dst, Val::Scalar(value::neg(width, a)))
            }
            Insn::End { order, bits, dst } => {
                let a = self.scalar(i, st, dst, Rule::PointerArithmetic, "operand", frame)?;
                (dst, Val::Scalar(value::end(order, bits, a)))
            }
            Insn::MovSx { width, from, dst, src } => {
                let a = self.scalar(i, st, src, Rule::PointerArithmetic, "sign-extended source", frame)?;
                (dst, Val::Scalar(value::sign_extend(width, from, a)))
            }
            _ => unreachable!("alu() is called for ALU instructions only"),
        };
        // A variable move makes a new packet pointer id (instruction i's): a pointer an
        // earlier visit of i made (a previous loop iteration) keeps its range, but no longer
        // shares it.
        if let Val::Packet { id, .. } = val {
            if id == packet_id(i) {
                for (k, v) in st.regs.iter_mut().enumerate() {
                    if let Val::Packet { id: j, .. } = v {
                        if *j == id && k != dst.idx() {
                            *j = Val::LONE;
                        }
                    }
                }
            }
        }
        st.regs[dst.idx()] = val;
        Ok(())
    }

    /// Pointer `p` moved by a scalar in `by` (subtracted when `minus`). A packet pointer
    /// moved by a constant keeps its id and range; moved by a variable it gets a new id
    /// (instruction `i`'s), and, when added to, no range (Linux 7.3's
    /// `adjust_ptr_min_max_vals`).
    fn moved(&self, i: usize, p: Val, by: Bounds, minus: bool, frame: usize) -> Res<Val> {
        let delta = match by.konst() {
            Some(k) => Off::at(k as i64),
            None if by.hi < MAX_VAR_OFF => Off { lo: by.lo as i64, hi: by.hi as i64 },
            None => {
                let detail = format!(
                    "{} moved by a scalar of range {by}: a variable offset must be below {MAX_VAR_OFF} (the \
                     kernel: \"math between pointer and register with unbounded min value is not allowed\")",
                    p.describe(frame)
                );
                return Err(self.err(i, Rule::PointerArithmetic, detail));
            }
        };
        Ok(match p {
            Val::Ctx(off) => Val::Ctx(off.moved(delta, minus)),
            Val::Stack { frame, off } => Val::Stack { frame, off: off.moved(delta, minus) },
            Val::Value { array, off } => Val::Value { array, off: off.moved(delta, minus) },
            Val::Packet { off, id, range } => match by.konst() {
                Some(_) => Val::Packet { off: off.moved(delta, minus), id, range },
                None => Val::Packet {
                    off: off.moved(delta, minus),
                    id: packet_id(i),
                    range: if minus { range } else { 0 },
                },
            },
            v => {
                let hint = if matches!(v, Val::ValueOrNull { .. }) {
                    ": check the lookup's result against NULL first"
                } else {
                    ""
                };
                return Err(self.err(
                    i,
                    Rule::PointerArithmetic,
                    format!("arithmetic on {}{hint}", v.describe(frame)),
                ));
            }
        })
    }

    /// A load, store or atomic of `size` at `base + off`; what a load reads (a scalar of
    /// the load's width, or a packet pointer from a `__sk_buff`).
    #[allow(clippy::too_many_arguments)]
    fn memory(
        &mut self,
        i: usize,
        st: &mut State,
        chain: &[usize],
        base: Reg,
        off: i16,
        size: Size,
        access: Access,
    ) -> Res<Val> {
        let frame = chain.len() - 1;
        let n = size.bytes() as i64;
        let loaded = match access {
            Access::Read(true) => Val::SCALAR,
            _ => Val::Scalar(Bounds::bits(size.bytes() * 8)),
        };
        let aligned = |this: &Self, at: Off| {
            let err = |rule, detail: String| this.err(i, rule, detail);
            if access != Access::Atomic {
                Ok(())
            } else if at.konst().is_none() {
                Err(err(Rule::MisalignedAtomic, format!("{n}-byte atomic at a variable offset{at}")))
            } else if at.lo.rem_euclid(n) != 0 {
                Err(err(Rule::MisalignedAtomic, format!("{n}-byte atomic at offset {}", at.lo)))
            } else {
                Ok(())
            }
        };
        let v = self.read(i, st, base)?;
        match v {
            Val::Stack { frame: k, off: o } => {
                let at = o.moved(Off::at(off as i64), false);
                let owner = chain[k as usize];
                let depth = self.depth(owner);
                let whose =
                    if k as usize == frame { "the function's".to_string() } else { format!("frame {k}'s") };
                if at.lo < -depth || at.hi + n > 0 {
                    return Err(self.err(
                        i,
                        Rule::StackBounds,
                        format!("{n} bytes at r10{at} outside {whose} {depth}-byte stack"),
                    ));
                }
                self.deepest[owner] = self.deepest[owner].max(-at.lo);
                aligned(self, at)?;
                let stack = &mut st.stacks[k as usize];
                if access != Access::Write && !stack.all(at.lo, at.hi + n - at.lo) {
                    return Err(self.err(
                        i,
                        Rule::UninitStack,
                        format!("{n} bytes at r10{at} are read but not written on every path"),
                    ));
                }
                // A write at a variable offset may leave any of its bytes as they were.
                if at.konst().is_some() {
                    stack.set(at.lo, n);
                }
            }
            Val::Ctx(o) if self.skb() => return self.skb_field(i, base, o, off, size, access, loaded),
            Val::Ctx(o) => {
                let at = o.moved(Off::at(off as i64), false);
                // jitdiff's context is a buffer (the kernel engines pass it as a map value):
                // a variable offset is fine within bounds, except in a tracing program,
                // whose context is the traced function's arguments.
                let a = match at.konst() {
                    Some(a) => a,
                    None if !self.tracing => at.lo,
                    None => {
                        return Err(self.err(
                            i,
                            Rule::CtxBounds,
                            format!(
                                "a tracing program's context read at a variable offset{at} (the kernel: \
                                 \"variable ctx access var_off disallowed\")"
                            ),
                        ))
                    }
                };
                if at.lo < 0 || self.ctx_size.is_some_and(|c| at.hi + n > c as i64) {
                    let size = self.ctx_size.map_or("unbounded".into(), |c| format!("{c}-byte"));
                    return Err(self.err(
                        i,
                        Rule::CtxBounds,
                        format!("{n} bytes at context offset{at} outside the {size} context"),
                    ));
                }
                if self.tracing && (access != Access::Read(false) || n != 8 || a % 8 != 0) {
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
                aligned(self, at)?;
            }
            Val::Value { array, off: o } => {
                let at = o.moved(Off::at(off as i64), false);
                let vs = self.set.arrays()[array].value_size as i64;
                if at.lo < 0 || at.hi + n > vs {
                    return Err(self.err(
                        i,
                        Rule::MapValueBounds,
                        format!("{n} bytes at offset{at} of a {vs}-byte map value"),
                    ));
                }
                aligned(self, at)?;
            }
            Val::Packet { off: o, id, range } => {
                let at = o.moved(Off::at(off as i64), false);
                if access == Access::Atomic {
                    return Err(self.err(
                        i,
                        Rule::BadMemoryBase,
                        format!("atomic on the packet (the kernel: \"BPF_ATOMIC stores into {base} pkt is not allowed\")"),
                    ));
                }
                if at.lo < 0 || at.hi + n > range {
                    let id = if id == Val::LONE { "?".to_string() } else { id.to_string() };
                    return Err(self.err(
                        i,
                        Rule::PacketBounds,
                        format!(
                            "{n} bytes at data{at}, but only the first {range} bytes are known to be in the \
                             packet (compare a pointer with data_end first; the kernel: \"invalid access to \
                             packet, off={off} size={n}, {base}(id={id},r={range})\")"
                        ),
                    ));
                }
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
                    format!("memory accessed through {base}, which holds {}", v.describe(frame)),
                ));
            }
        }
        Ok(loaded)
    }

    /// Whether R1 at entry points to a `struct __sk_buff`.
    fn skb(&self) -> bool {
        !self.tracing && self.set.prog_type().is_skb()
    }

    /// An access to a `__sk_buff` field through the context pointer `base` (at offset
    /// `o`), by the kernel's rules for the set's program type; what a load reads.
    #[allow(clippy::too_many_arguments)]
    fn skb_field(
        &self,
        i: usize,
        base: Reg,
        o: Off,
        off: i16,
        size: Size,
        access: Access,
        loaded: Val,
    ) -> Res<Val> {
        if o != Off::at(0) {
            return Err(self.err(
                i,
                Rule::CtxBounds,
                format!(
                    "the __sk_buff pointer moved{o} before the access (the kernel: \"dereference of modified \
                     ctx ptr {base} off=... disallowed\")"
                ),
            ));
        }
        if access == Access::Atomic {
            return Err(self.err(
                i,
                Rule::BadMemoryBase,
                format!("atomic on the __sk_buff (the kernel: \"BPF_ATOMIC stores into {base} ctx is not allowed\")"),
            ));
        }
        let prog_type = self.set.prog_type();
        let field =
            prog_type.field(off as i64, size.bytes(), access == Access::Write, access == Access::Read(true));
        match field {
            Ok(Field::Scalar) => Ok(loaded),
            Ok(Field::PacketStart) => Ok(Val::Packet { off: Off::at(0), id: 0, range: 0 }),
            Ok(Field::PacketEnd) => Ok(Val::PacketEnd),
            Err((true, why)) => Err(self.err(
                i,
                Rule::CtxBounds,
                format!("{why} (the kernel: \"invalid bpf_context access off={off} size={}\")", size.bytes()),
            )),
            Err((false, why)) => Err(self.err(i, Rule::Unsupported, why)),
        }
    }

    /// Conditional jumps: scalar operands (a jump the ranges decide goes one way; each way
    /// narrows the ranges), or a map value pointer's NULL check.
    fn jump(&self, i: usize, st: State, frame: usize) -> Res<Vec<Next>> {
        let Insn::Jmp { width, cond, dst, src, .. } = self.p().insns()[i] else {
            unreachable!("jump() is called for conditional jumps only")
        };
        let d = self.read(i, &st, dst)?;
        let s = self.operand(i, &st, src, width)?;
        let (taken, fall) = (self.target(i), i + 1);
        if let (Val::ValueOrNull { array, id }, Width::W64, Operand::Imm(0), Cond::Eq | Cond::Ne) =
            (d, width, src, cond)
        {
            let (mut null, mut found) = (st.clone(), st);
            for r in 0..11 {
                if matches!(null.regs[r], Val::ValueOrNull { id: x, .. } if x == id) {
                    null.regs[r] = Val::konst(0);
                    found.regs[r] = Val::Value { array, off: Off::at(0) };
                }
            }
            return Ok(if cond == Cond::Eq {
                vec![Next::Goto(taken, null), Next::Goto(fall, found)]
            } else {
                vec![Next::Goto(taken, found), Next::Goto(fall, null)]
            });
        }
        let packet = |v: Val| matches!(v, Val::Packet { .. } | Val::PacketEnd);
        if let (true, true, Width::W64, Operand::Reg(sr)) = (packet(d), packet(s), width, src) {
            if cond != Cond::Set {
                return Ok(packet_comparison(cond, dst, sr, d, s, st, taken, fall));
            }
        }
        let (Val::Scalar(a), Val::Scalar(b)) = (d, s) else {
            let (r, v) = match (d, src) {
                (Val::Scalar(_), Operand::Reg(r)) => (r, s),
                _ => (dst, d),
            };
            let detail = format!("compared {r} must be a scalar, but holds {}", v.describe(frame));
            return Err(self.err(i, Rule::PointerComparison, detail));
        };
        let ways = match value::decide(cond, width, a, b) {
            Some(true) => vec![(taken, true)],
            Some(false) => vec![(fall, false)],
            None => vec![(taken, true), (fall, false)],
        };
        let mut next = Vec::new();
        for (to, holds) in ways {
            let Some((a, b)) = value::refine(cond, width, holds, a, b) else { continue };
            let mut s = st.clone();
            if let Operand::Reg(r) = src {
                s.regs[r.idx()] = Val::Scalar(b);
            }
            s.regs[dst.idx()] = Val::Scalar(a);
            next.push(Next::Goto(to, s));
        }
        Ok(next)
    }

    /// A bpf2bpf call: the callee runs from this call's state; the caller goes on with what
    /// it returns.
    fn call(&mut self, chain: &[usize], i: usize, mut st: State) -> Res<Vec<Next>> {
        let f = *chain.last().expect("a call chain has a function");
        let g = self.calls[f].iter().find(|c| c.0 == i).map(|c| c.1).expect("a checked call has a callee");
        let pc = self.p().pc_of(i);
        let mut regs = [Val::Undef(Why::SubprogEntry); 11];
        for (arg, passed) in regs[1..6].iter_mut().zip(&st.regs[1..6]) {
            *arg = match *passed {
                Val::Undef(_) => Val::Undef(Why::NotPassed(pc)),
                v => v,
            };
        }
        regs[10] = Val::Stack { frame: chain.len() as u8, off: Off::at(0) };
        let mut stacks = st.stacks.clone();
        stacks.push(Written::default());
        let mut callee = chain.to_vec();
        callee.push(g);
        let mut entry = State { regs, stacks };
        entry.forget_dead(self.live[self.funcs[g].start]);
        let key = (callee, entry);
        let summary = match self.summaries.get(&key) {
            Some(s) => s.clone(),
            None => {
                let s = self.function(&key.0, key.1.clone())?;
                self.summaries.insert(key, s.clone());
                s
            }
        };
        let Some(back) = summary else { return Ok(vec![]) };
        st.stacks = back.stacks;
        st.regs[0] = match back.r0 {
            Val::Undef(_) => Val::Undef(Why::SubprogReturnsUndefined(pc)),
            v => v,
        };
        st.clobber(1..6, Why::Clobbered(pc));
        Ok(vec![Next::Goto(i + 1, st)])
    }

    /// Helper calls: known ids, scalar arguments; `bpf_map_lookup_elem` takes an array
    /// map and a key pointer.
    fn helper(&mut self, i: usize, id: i32, st: &mut State, chain: &[usize]) -> Res<()> {
        let frame = chain.len() - 1;
        let Some(proto) = helpers::prototype(id) else {
            return Err(self.err(i, Rule::UnknownHelper, format!("no helper has id {id}")));
        };
        if id == helpers::STRTOUL {
            return self.strtoul(i, st, chain);
        }
        if id != MAP_LOOKUP_ELEM {
            return self.scalar_call(i, proto, st, frame);
        }
        let pc = self.p().pc_of(i);
        let Val::ArrayRef(array) = self.read(i, st, Reg::R1)? else {
            let v = st.regs[1].describe(frame);
            return Err(self.err(
                i,
                Rule::HelperArgument,
                format!("map_lookup_elem: r1 must be an array map, not {v}"),
            ));
        };
        if !self.read(i, st, Reg::R2)?.is_pointer() {
            let v = st.regs[2].describe(frame);
            return Err(self.err(
                i,
                Rule::HelperArgument,
                format!("map_lookup_elem: r2 must point to the key, not {v}"),
            ));
        }
        self.memory(i, st, chain, Reg::R2, 0, Size::W, Access::Read(false))?;
        st.regs[0] = Val::ValueOrNull { array, id: i };
        st.clobber(1..6, Why::Clobbered(pc));
        Ok(())
    }

    /// `bpf_strtoul`: R1 a pointer to R2 readable bytes (R2 a constant above 0), R3 a
    /// scalar, R4 a pointer to 8 aligned writable bytes, which it writes. R0 a scalar.
    fn strtoul(&mut self, i: usize, st: &mut State, chain: &[usize]) -> Res<()> {
        let frame = chain.len() - 1;
        let arg = |this: &Self, st: &State, r: Reg, what: &str| -> Res<()> {
            if st.regs[r.idx()].is_pointer() {
                return Ok(());
            }
            let v = st.regs[r.idx()].describe(frame);
            Err(this.err(i, Rule::HelperArgument, format!("strtoul: {r} must point to {what}, not {v}")))
        };
        self.read(i, st, Reg::R1)?;
        arg(self, st, Reg::R1, "the text")?;
        let len = self.scalar(i, st, Reg::R2, Rule::HelperArgument, "strtoul's length", frame)?;
        let len = match len.konst() {
            Some(n) if (1..=crate::MAX_STACK as u64).contains(&n) => n,
            _ => {
                let detail =
                    "strtoul: r2 must be a constant length from 1 to 512 (a variable length is not modelled)";
                return Err(self.err(i, Rule::HelperArgument, detail.to_string()));
            }
        };
        for k in 0..len {
            self.memory(i, st, chain, Reg::R1, k as i16, Size::B, Access::Read(false))?;
        }
        self.scalar(i, st, Reg::R3, Rule::HelperArgument, "strtoul's flags", frame)?;
        self.read(i, st, Reg::R4)?;
        arg(self, st, Reg::R4, "8 bytes for the result")?;
        // MEM_ALIGNED: the verifier checks the result's alignment strictly
        if matches!(st.regs[4], Val::Stack { off, .. } if off.konst().is_none_or(|o| o % 8 != 0)) {
            let v = st.regs[4].describe(frame);
            let detail = format!("strtoul: r4 must point to 8 aligned bytes, not {v}");
            return Err(self.err(i, Rule::MisalignedAtomic, detail));
        }
        self.memory(i, st, chain, Reg::R4, 0, Size::DW, Access::Write)?;
        let pc = self.p().pc_of(i);
        st.regs[0] = Val::SCALAR;
        st.clobber(1..6, Why::Clobbered(pc));
        Ok(())
    }

    /// A helper or kfunc call that takes scalars and returns one (or nothing: R0 is then
    /// undefined).
    fn scalar_call(&self, i: usize, proto: helpers::Prototype, st: &mut State, frame: usize) -> Res<()> {
        for r in &Reg::ALL[1..=proto.scalar_args] {
            self.scalar(i, st, *r, Rule::HelperArgument, &format!("{} argument", proto.name), frame)?;
        }
        let pc = self.p().pc_of(i);
        st.regs[0] = Val::SCALAR;
        st.clobber(1..6, Why::Clobbered(pc));
        if !proto.returns {
            st.clobber(0..1, Why::ReturnsNothing(pc));
        }
        Ok(())
    }

    /// A legacy packet load: in a socket filter or tc program, R6 the context, the index a
    /// scalar. R0 becomes unknown and R1-R5 unreadable; in a subprogram, the load's
    /// hidden return of 0 (when the offset is outside the packet) is a path too.
    fn packet_load(&self, i: usize, mut st: State, frame: usize, index: Option<Reg>) -> Res<Vec<Next>> {
        let prog_type = self.set.prog_type();
        if !prog_type.is_skb() || self.tracing {
            let what = if self.tracing { "a tracing program" } else { prog_type.name() };
            let detail = format!("legacy packet loads are for socket filters and tc programs, not {what}");
            return Err(self.err(i, Rule::PacketLoadType, detail));
        }
        let r6 = self.read(i, &st, Reg::R6)?;
        if r6 != Val::Ctx(Off::at(0)) {
            let detail = format!("r6 must be the context pointer, not {}", r6.describe(frame));
            return Err(self.err(i, Rule::PacketLoadContext, detail));
        }
        if let Some(x) = index {
            self.scalar(
                i,
                &st,
                x,
                Rule::Unsupported,
                "a legacy packet load's index (a pointer is not modelled)",
                frame,
            )?;
        }
        let pc = self.p().pc_of(i);
        st.regs[0] = Val::SCALAR;
        st.clobber(1..6, Why::Clobbered(pc));
        let mut next = vec![Next::Goto(i + 1, st.clone())];
        if frame > 0 {
            st.regs[0] = Val::konst(0);
            next.push(Next::Return(st));
        }
        Ok(next)
    }

    /// Tail calls: R1 the context, R2 a prog array, R3 a scalar index.
    fn tail_call(&self, i: usize, st: &mut State, frame: usize) -> Res<()> {
        let r1 = self.read(i, st, Reg::R1)?;
        if r1 != Val::Ctx(Off::at(0)) {
            return Err(self.err(
                i,
                Rule::TailCallArgs,
                format!("r1 must be the context pointer, not {}", r1.describe(frame)),
            ));
        }
        let r2 = self.read(i, st, Reg::R2)?;
        if r2 != Val::ProgArray {
            return Err(self.err(
                i,
                Rule::TailCallArgs,
                format!("r2 must be a prog array, not {}", r2.describe(frame)),
            ));
        }
        self.scalar(i, st, Reg::R3, Rule::TailCallArgs, "the index", frame)?;
        st.clobber(0..6, Why::TailCall(self.p().pc_of(i)));
        Ok(())
    }
}

/// The id of the packet pointer a variable move at instruction `i` makes (0 is the id of
/// `data` and the pointers moved from it by constants).
fn packet_id(i: usize) -> u32 {
    i as u32 + 1
}

/// A 64-bit comparison of two packet pointers (`data` and pointers moved from it, or
/// `data_end`): both ways, and where one side is the end, the way that proves the other
/// pointer below (or at) the end marks bytes safe, as Linux 7.3's `try_match_pkt_pointers`
/// and `find_good_pkt_pointers` do.
#[allow(clippy::too_many_arguments)]
fn packet_comparison(
    cond: Cond,
    dst: Reg,
    src: Reg,
    d: Val,
    s: Val,
    st: State,
    taken: usize,
    fall: usize,
) -> Vec<Next> {
    let (mut yes, mut no) = (st.clone(), st);
    // (the way that learns, the pointer compared, whether it is below the end rather
    // than at most at it)
    let learn = match (d, s, cond) {
        (Val::Packet { .. }, Val::PacketEnd, Cond::Gt) => Some((&mut no, dst, false)),
        (Val::PacketEnd, Val::Packet { .. }, Cond::Gt) => Some((&mut yes, src, true)),
        (Val::Packet { .. }, Val::PacketEnd, Cond::Lt) => Some((&mut yes, dst, true)),
        (Val::PacketEnd, Val::Packet { .. }, Cond::Lt) => Some((&mut no, src, false)),
        (Val::Packet { .. }, Val::PacketEnd, Cond::Ge) => Some((&mut no, dst, true)),
        (Val::PacketEnd, Val::Packet { .. }, Cond::Ge) => Some((&mut yes, src, false)),
        (Val::Packet { .. }, Val::PacketEnd, Cond::Le) => Some((&mut yes, dst, false)),
        (Val::PacketEnd, Val::Packet { .. }, Cond::Le) => Some((&mut no, src, true)),
        _ => None,
    };
    if let Some((state, r, below)) = learn {
        if let Val::Packet { off, id, .. } = state.regs[r.idx()] {
            let top = off.hi;
            if off.lo >= 0 && !(top == 0 && below) && top <= MAX_PACKET_OFF {
                let safe = top + below as i64;
                for (k, v) in state.regs.iter_mut().enumerate() {
                    if let Val::Packet { id: j, range, .. } = v {
                        if (*j == id && id != Val::LONE) || k == r.idx() {
                            *range = (*range).max(safe);
                        }
                    }
                }
            }
        }
    }
    vec![Next::Goto(taken, yes), Next::Goto(fall, no)]
}
