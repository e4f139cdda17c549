//! Generating one program: its functions, each a structured body of straight-line code,
//! conditional blocks, loops and calls, over an abstract state.

use arbitrary::Unstructured;

use super::{Config, EDGE_I32, EDGE_U64};
use bpf::helpers::{COUNTER, GET_NUMA_NODE_ID, MAP_LOOKUP_ELEM, MIX, TAIL_CALL};
use bpf::insn::{AluOp, AtomicOp, ByteOrder, Call, Cond, Insn, Operand, Reg, Size, SxBits, Width};
use bpf::program::Program;
use bpf::set::{map_value_imm, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE};

/// The maps a program can refer to.
pub(super) struct Shape {
    /// max_entries of each prog array (map indexes 0..).
    pub prog_arrays: Vec<u32>,
    /// (value_size, max_entries) of each array map (map indexes after the prog arrays).
    pub arrays: Vec<(u32, u32)>,
}

/// What a register holds, as far as the verifier knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Nothing a program may read.
    Undef,
    /// A number.
    Scalar,
    /// The context pointer.
    Ctx,
    /// The frame pointer.
    Stack,
    /// A pointer to 8 written bytes of a caller's stack, passed as an argument.
    CallerStack,
}

/// The abstract state at one point of a function.
#[derive(Clone, Debug)]
struct State {
    kind: [Kind; 11],
    /// Registers that must not be written here (the context copy, loop counters, and
    /// pointers inside loop bodies).
    frozen: u16,
    /// Written bytes of the 512 below r10, bit `i` = byte `r10 - 512 + i`.
    stack: [u64; 8],
}

impl State {
    /// What holds on both of two paths that join.
    fn meet(&self, o: &State) -> State {
        let mut s = self.clone();
        for r in 0..11 {
            if s.kind[r] != o.kind[r] {
                s.kind[r] = Kind::Undef;
            }
        }
        for i in 0..8 {
            s.stack[i] &= o.stack[i];
        }
        s
    }

    fn byte(off: i64) -> usize {
        (512 + off) as usize
    }

    fn written(&self, off: i64, len: u32) -> bool {
        (0..len as i64).all(|k| {
            let b = State::byte(off + k);
            self.stack[b / 64] >> (b % 64) & 1 == 1
        })
    }

    fn write(&mut self, off: i64, len: u32) {
        for k in 0..len as i64 {
            let b = State::byte(off + k);
            self.stack[b / 64] |= 1 << (b % 64);
        }
    }

    fn is(&self, r: Reg, k: Kind) -> bool {
        self.kind[r.idx()] == k
    }

    fn frozen(&self, r: Reg) -> bool {
        self.frozen >> r.num() & 1 == 1
    }

    /// Registers that hold `k`.
    fn regs(&self, k: Kind) -> Vec<Reg> {
        Reg::ALL.into_iter().filter(|r| self.is(*r, k)).collect()
    }

    /// Registers an instruction may overwrite.
    fn writable(&self) -> Vec<Reg> {
        Reg::ALL[..10].iter().copied().filter(|r| !self.frozen(*r)).collect()
    }

    fn clobber_call(&mut self) {
        for r in 0..=5 {
            self.kind[r] = Kind::Undef;
        }
    }
}

/// A function's interface: which of R1.. it receives.
#[derive(Clone, Copy, Debug)]
struct Sig {
    /// R1 is the context pointer.
    ctx_arg: bool,
    /// R1 (or R2, with `ctx_arg`) to R`args` are scalars, but for `stack_arg`.
    args: u8,
    /// R`args` is a pointer to 8 bytes of the caller's stack, which the caller wrote.
    stack_arg: bool,
}

/// A bpf2bpf call to patch: its index in the function's instructions, and the callee.
type CallSite = (usize, usize);

/// The register kept as a copy of the context pointer when calls need it (R6: where legacy
/// packet loads take it).
const CTX_COPY: Reg = Reg::R6;

/// The longest packet [`crate::generate`] makes for a `__sk_buff` program.
pub(super) const MAX_GENERATED_PACKET: usize = 128;

struct Gen<'c, 'a, 'u> {
    cfg: &'c Config,
    shape: &'c Shape,
    u: &'a mut Unstructured<'u>,
    sigs: &'c [Sig],
    func: usize,
    depth_bytes: u32,
    out: Vec<Insn>,
    /// (index in `out`, callee) of every bpf2bpf call, patched once functions are placed.
    calls: Vec<CallSite>,
    st: State,
    budget: usize,
    in_loop: bool,
    /// The early exits of the loop being generated: each `if` jump's index in `out`,
    /// patched to the loop's end, and the state it leaves with.
    breaks: Vec<(usize, State)>,
}

/// How a loop ends each iteration: the counter's update, the backward jump's test
/// (width, condition, first and second operand), and the registers the body may not
/// write.
struct Latch {
    update: Insn,
    test: (Width, Cond, Reg, Operand),
    frozen: u16,
}

/// Padding instructions (`rX += k`, one RV64 instruction each in jitdiff's JIT and the
/// kernel's) that put a loop's backward branch one 4-byte step past the B-type reach of
/// -4096 bytes: the body's code is 4 bytes per padding instruction plus the counter's
/// `addi`, so the branch reaches back `4 * (pad + 1)` bytes.
const BACKWARD_BTYPE_PAD: usize = 1024;
/// Padding that puts a conditional jump forward one step past the B-type reach of +4094
/// bytes: the branch itself plus 4 bytes per padding instruction.
const FORWARD_BTYPE_PAD: usize = 1023;
/// Padding that puts a `gotol` one step past the `jal` reach of +1 MiB - 2.
const FORWARD_JAL_PAD: usize = 262_143;
/// How many 4-byte steps either side of a boundary padded jumps sweep.
const BOUNDARY_STEPS: usize = 8;
/// Tail-call attempts through guarded sites after which they stop (more than the
/// kernel's 33, so that only a JIT whose count never runs out meets the guard).
const TAIL_CALL_GUARD: i32 = 40;

/// Constants in a [`Gen::long_run`]: each takes up to eight RV64 instructions.
const LONG_RUN: usize = 160;

/// bpf2bpf call sites per function at most (one in a chain: eight functions with three
/// calls each would make 3^7 calls of the last one).
const MAX_CALL_SITES: usize = 3;

/// One program: its functions, placed one after another, with calls patched.
pub(super) fn program(cfg: &Config, shape: &Shape, u: &mut Unstructured<'_>) -> arbitrary::Result<Program> {
    let n_funcs = if cfg.calls_enabled && cfg.max_funcs > 1 { u.int_in_range(2..=cfg.max_funcs)? } else { 1 };
    let mut sigs = vec![Sig { ctx_arg: true, args: 1, stack_arg: false }];
    for f in 1..n_funcs {
        // The context only travels down a chain: a function without it cannot call the
        // next with it, so in a chain the functions that take it come first.
        let ctx_arg = u.arbitrary()? && (!cfg.chain_calls || sigs[f - 1].ctx_arg);
        let args = u.int_in_range(0..=5)?;
        let stack_arg = cfg.mem_enabled && args > ctx_arg as u8 && u.ratio(1, 3)?;
        sigs.push(Sig { ctx_arg, args, stack_arg });
    }
    let mut bodies = Vec::with_capacity(n_funcs);
    let mut depths = Vec::with_capacity(n_funcs);
    // A subprogram that makes tail calls needs its callers' frames below 256 bytes, each
    // rounded up to 32 bytes by the kernel's interpreter (16 by its JIT), and the kernel
    // engine keeps the context in 8 more bytes of each frame on the way: with up to four
    // functions three callers may take 7 words each (64 bytes with the context), with up to
    // eight seven callers 3 words (32 bytes).
    let max_words = if n_funcs > 4 { 3 } else { 7 };
    for f in 0..n_funcs {
        let depth_bytes = 8 * u.int_in_range(1..=max_words)?;
        let (out, calls) = function(cfg, shape, u, &sigs, f, depth_bytes)?;
        bodies.push((out, calls));
        depths.push(depth_bytes);
    }
    // Keep the functions reachable from the main one (calls only go to later
    // functions), place them, and patch bpf2bpf call offsets (in slots).
    let mut reachable = vec![false; n_funcs];
    reachable[0] = true;
    for f in 0..n_funcs {
        if reachable[f] {
            for &(_, callee) in &bodies[f].1 {
                reachable[callee] = true;
            }
        }
    }
    let slots = |v: &[Insn]| v.iter().map(Insn::slots).sum::<usize>();
    let mut starts = vec![0usize; n_funcs];
    let mut at = 0usize;
    for f in (0..n_funcs).filter(|&f| reachable[f]) {
        starts[f] = at;
        at += slots(&bodies[f].0);
    }
    let mut insns = Vec::with_capacity(at);
    let mut kept_depths = Vec::new();
    for (f, (mut body, calls)) in bodies.into_iter().enumerate() {
        if !reachable[f] {
            continue;
        }
        for (k, callee) in calls {
            let pc = starts[f] + slots(&body[..k]);
            body[k] = Insn::Call(Call::Local((starts[callee] as i64 - pc as i64 - 1) as i32));
        }
        insns.extend(body);
        kept_depths.push(depths[f]);
    }
    let depths = kept_depths;
    let mut prog = Program::new(insns).map_err(|_| arbitrary::Error::IncorrectFormat)?;
    // Functions that copy r10 (map lookups) make the inference give 512 bytes: set the
    // depths the generator chose and kept every access within.
    prog.set_stack_depths(depths).map_err(|_| arbitrary::Error::IncorrectFormat)?;
    Ok(prog)
}

fn function(
    cfg: &Config,
    shape: &Shape,
    u: &mut Unstructured<'_>,
    sigs: &[Sig],
    f: usize,
    depth_bytes: u32,
) -> arbitrary::Result<(Vec<Insn>, Vec<CallSite>)> {
    let mut kind = [Kind::Undef; 11];
    kind[10] = Kind::Stack;
    let sig = sigs[f];
    if sig.ctx_arg {
        kind[1] = Kind::Ctx;
    }
    let first = if sig.ctx_arg { 2 } else { 1 };
    for k in kind.iter_mut().take(sig.args as usize + 1).skip(first) {
        *k = Kind::Scalar;
    }
    if sig.stack_arg {
        kind[sig.args as usize] = Kind::CallerStack;
    }
    let mut g = Gen {
        cfg,
        shape,
        u,
        sigs,
        func: f,
        depth_bytes,
        out: Vec::new(),
        calls: Vec::new(),
        st: State { kind, frozen: 1 << 10, stack: [0; 8] },
        // Deep chains share the size of four functions, so that they stay cheap to run.
        budget: if sigs.len() > 4 { cfg.max_insns * 4 / sigs.len() } else { cfg.max_insns }.max(4),
        in_loop: false,
        breaks: Vec::new(),
    };
    // The entry counter (see `Config::count_entries`), first thing in a main function.
    if cfg.count_entries && f == 0 && sig.ctx_arg {
        let (ctx, word) = (Reg::R1, bpf::insn::Size::DW);
        g.emit(Insn::Load { size: word, signed: false, dst: Reg::R0, src: ctx, off: 0 });
        g.emit(Insn::Alu { width: Width::W64, op: AluOp::Add, dst: Reg::R0, src: Operand::Imm(1) });
        g.emit(Insn::Store { size: word, dst: ctx, src: Reg::R0, off: 0 });
        g.st.kind[0] = Kind::Scalar;
    }
    // Keep the context in a callee-saved register when calls or legacy packet loads (which
    // take it in R6) may need it later.
    if sig.ctx_arg && (cfg.tail_calls_enabled || cfg.calls_enabled || cfg.prog_type.is_skb()) {
        g.emit(Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: CTX_COPY, src: Operand::Reg(Reg::R1) });
        g.st.kind[CTX_COPY.idx()] = Kind::Ctx;
        g.st.frozen |= 1 << CTX_COPY.num();
    }
    g.block(0)?;
    if !g.st.is(Reg::R0, Kind::Scalar) {
        let v = g.imm32()?;
        g.emit(mov(Reg::R0, v));
    }
    g.emit(Insn::Exit);
    Ok((g.out, g.calls))
}

fn mov(dst: Reg, imm: i32) -> Insn {
    Insn::Alu { width: Width::W64, op: AluOp::Mov, dst, src: Operand::Imm(imm) }
}

/// What the next step of a block does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Alu,
    Unary,
    Wide,
    Load,
    Store,
    Atomic,
    If,
    Loop,
    Break,
    Call,
    Helper,
    Kfunc,
    Lookup,
    Global,
    TailCall,
    PacketLoad,
}

impl Gen<'_, '_, '_> {
    fn emit(&mut self, insn: Insn) {
        self.out.push(insn);
        self.budget = self.budget.saturating_sub(1);
    }

    fn imm32(&mut self) -> arbitrary::Result<i32> {
        if super::chance(self.u, self.cfg.edge_bias as u32, 100)? {
            Ok(*self.u.choose(&EDGE_I32)?)
        } else {
            self.u.arbitrary()
        }
    }

    fn imm64(&mut self) -> arbitrary::Result<u64> {
        if super::chance(self.u, self.cfg.edge_bias as u32, 100)? {
            Ok(*self.u.choose(&EDGE_U64)?)
        } else {
            self.u.arbitrary()
        }
    }

    fn width(&mut self) -> arbitrary::Result<Width> {
        Ok(match (self.cfg.alu32_enabled, self.cfg.alu64_enabled) {
            (true, true) => *self.u.choose(&[Width::W32, Width::W64])?,
            (true, false) => Width::W32,
            _ => Width::W64,
        })
    }

    fn scalar(&mut self) -> arbitrary::Result<Option<Reg>> {
        let regs = self.st.regs(Kind::Scalar);
        Ok(if regs.is_empty() { None } else { Some(*self.u.choose(&regs)?) })
    }

    /// A scalar register that may be overwritten.
    fn scalar_dst(&mut self) -> arbitrary::Result<Option<Reg>> {
        let regs: Vec<Reg> = self.st.regs(Kind::Scalar).into_iter().filter(|r| !self.st.frozen(*r)).collect();
        Ok(if regs.is_empty() { None } else { Some(*self.u.choose(&regs)?) })
    }

    fn any_dst(&mut self) -> arbitrary::Result<Reg> {
        let regs = self.st.writable();
        Ok(*self.u.choose(&regs)?)
    }

    fn define(&mut self, r: Reg) {
        self.st.kind[r.idx()] = Kind::Scalar;
    }

    /// A register holding the context, for a memory access (never for a `__sk_buff`,
    /// whose fields this generator leaves alone).
    fn ctx_reg(&mut self) -> arbitrary::Result<Option<Reg>> {
        if self.cfg.prog_type.is_skb() {
            return Ok(None);
        }
        let regs = self.st.regs(Kind::Ctx);
        Ok(if regs.is_empty() { None } else { Some(*self.u.choose(&regs)?) })
    }

    fn steps(&self, depth: usize) -> Vec<Step> {
        let c = self.cfg;
        let mut v = vec![Step::Alu, Step::Alu, Step::Alu, Step::Wide, Step::Unary];
        let room = self.budget > 4 && depth < c.max_depth;
        if c.mem_enabled {
            v.extend([Step::Load, Step::Store]);
        }
        if c.atomics_enabled {
            v.push(Step::Atomic);
        }
        if (c.jmp_enabled || c.jmp32_enabled) && room {
            v.extend([Step::If, Step::If]);
        }
        if c.loops_enabled && room && !self.in_loop && self.free_counter().is_some() {
            v.extend([Step::Loop, Step::Loop]);
        }
        if self.in_loop && (c.jmp_enabled || c.jmp32_enabled) {
            v.push(Step::Break);
        }
        if !self.in_loop {
            // A few call sites per function: calls multiply along a chain.
            let max_sites = if c.chain_calls { 1 } else { MAX_CALL_SITES };
            if c.calls_enabled && self.func + 1 < self.sigs.len() && self.calls.len() < max_sites {
                v.push(Step::Call);
                // A chain needs a call in every function: make the first one likely.
                if c.chain_calls && self.calls.is_empty() {
                    v.extend([Step::Call, Step::Call, Step::Call]);
                }
            }
            if c.kfuncs_enabled {
                v.push(Step::Kfunc);
            }
            if c.helpers_enabled {
                v.push(Step::Helper);
                if !self.shape.arrays.is_empty() {
                    v.push(Step::Lookup);
                }
            }
            // Not in a loop's body: its register becomes a pointer, which the body's next
            // iteration would not expect.
            if c.mem_enabled && !self.shape.arrays.is_empty() {
                v.extend([Step::Global, Step::Global]);
            }
            if c.tail_calls_enabled && !self.shape.prog_arrays.is_empty() && self.st.is(CTX_COPY, Kind::Ctx) {
                v.push(Step::TailCall);
            }
            if c.prog_type.is_skb() && self.st.is(Reg::R6, Kind::Ctx) {
                v.extend([Step::PacketLoad, Step::PacketLoad]);
            }
        }
        v
    }

    fn free_counter(&self) -> Option<Reg> {
        self.free_counter_besides(None)
    }

    /// A free counter register other than `taken` (a loop's second: its bound).
    fn free_counter_besides(&self, taken: Option<Reg>) -> Option<Reg> {
        [Reg::R7, Reg::R8, Reg::R9].into_iter().find(|&r| Some(r) != taken && !self.st.frozen(r))
    }

    /// Steps until the budget or the bytes run out.
    fn block(&mut self, depth: usize) -> arbitrary::Result<()> {
        while self.budget > 0 && !self.u.is_empty() {
            let steps = self.steps(depth);
            let step = *self.u.choose(&steps)?;
            match step {
                Step::Alu => self.alu()?,
                Step::Unary => self.unary()?,
                Step::Wide => {
                    let dst = self.any_dst()?;
                    let imm = self.imm64()?;
                    self.emit(Insn::LdImm64 { dst, pseudo: 0, imm });
                    self.define(dst);
                }
                Step::Load => self.load()?,
                Step::Store => self.store()?,
                Step::Atomic => self.atomic()?,
                Step::If => self.if_block(depth)?,
                Step::Loop => self.loop_(depth)?,
                Step::Break => self.break_()?,
                Step::Call => self.call()?,
                Step::Helper => self.helper()?,
                Step::Kfunc => self.kfunc()?,
                Step::Lookup => self.lookup()?,
                Step::Global => self.global()?,
                Step::TailCall => self.tail_call()?,
                Step::PacketLoad => self.packet_load()?,
            }
            if depth > 0 && self.u.ratio(1, 6)? {
                break;
            }
        }
        Ok(())
    }

    fn alu(&mut self) -> arbitrary::Result<()> {
        let width = self.width()?;
        let Some(dst) = self.scalar_dst()? else {
            let dst = self.any_dst()?;
            let imm = self.imm32()?;
            self.emit(Insn::Alu { width, op: AluOp::Mov, dst, src: Operand::Imm(imm) });
            self.define(dst);
            return Ok(());
        };
        let mut ops = vec![
            AluOp::Add,
            AluOp::Sub,
            AluOp::Mul,
            AluOp::Div,
            AluOp::Mod,
            AluOp::Or,
            AluOp::And,
            AluOp::Xor,
            AluOp::Lsh,
            AluOp::Rsh,
            AluOp::Arsh,
            AluOp::Mov,
        ];
        if self.cfg.v4_enabled {
            ops.extend([AluOp::Sdiv, AluOp::Smod]);
        }
        let op = *self.u.choose(&ops)?;
        let src = match self.scalar()? {
            Some(r) if self.u.arbitrary()? => Operand::Reg(r),
            _ => {
                let bits = if width == Width::W64 { 64 } else { 32 };
                let mut imm = self.imm32()?;
                match op {
                    // The verifier rejects constant shifts past the width and constant
                    // division by zero.
                    AluOp::Lsh | AluOp::Rsh | AluOp::Arsh => imm = imm.rem_euclid(bits),
                    AluOp::Div | AluOp::Mod | AluOp::Sdiv | AluOp::Smod if imm == 0 => imm = 1,
                    _ => {}
                }
                Operand::Imm(imm)
            }
        };
        self.emit(Insn::Alu { width, op, dst, src });
        Ok(())
    }

    fn unary(&mut self) -> arbitrary::Result<()> {
        let Some(dst) = self.scalar_dst()? else { return self.alu() };
        let width = self.width()?;
        let choice = self.u.int_in_range(0..=if self.cfg.v4_enabled { 5 } else { 2 })?;
        let insn = match choice {
            0 => Insn::Neg { width, dst },
            // Unconditional jumps to the next instruction.
            2 => Insn::Ja { off: 0 },
            4 => Insn::JaLong { off: 0 },
            1 => {
                let bits = *self.u.choose(&[16u8, 32, 64])?;
                let order = if self.u.arbitrary()? { ByteOrder::Le } else { ByteOrder::Be };
                Insn::End { order, bits, dst }
            }
            3 => Insn::End { order: ByteOrder::Swap, bits: *self.u.choose(&[16u8, 32, 64])?, dst },
            _ => {
                let Some(src) = self.scalar()? else { return self.alu() };
                let from = if width == Width::W64 {
                    *self.u.choose(&[SxBits::S8, SxBits::S16, SxBits::S32])?
                } else {
                    *self.u.choose(&[SxBits::S8, SxBits::S16])?
                };
                Insn::MovSx { width, from, dst, src }
            }
        };
        self.emit(insn);
        Ok(())
    }

    /// A memory operand: (base, offset) for an access of `size`, in the context or on
    /// the stack; `need_written` restricts stack offsets to written bytes.
    fn place(&mut self, size: Size, need_written: bool) -> arbitrary::Result<Option<(Reg, i16)>> {
        let n = size.bytes();
        let outer = self.st.regs(Kind::CallerStack);
        if !outer.is_empty() && self.u.ratio(1, 3)? {
            // 8 bytes the caller wrote, at an offset aligned to the access.
            let base = *self.u.choose(&outer)?;
            let off = self.u.int_in_range(0..=8 / n - 1)? * n;
            return Ok(Some((base, off as i16)));
        }
        let use_ctx = self.u.arbitrary::<bool>()?;
        if use_ctx {
            if let Some(base) = self.ctx_reg()? {
                // The entry counter's word is nobody else's.
                let first = if self.cfg.count_entries { 8 / n } else { 0 };
                let slots = self.cfg.ctx_size / n;
                let off = self.u.int_in_range(first..=slots - 1)? * n;
                return Ok(Some((base, off as i16)));
            }
        }
        let slots = self.depth_bytes / n;
        let candidates: Vec<i64> = (1..=slots as i64)
            .map(|k| -(k * n as i64))
            .filter(|&off| !need_written || self.st.written(off, n))
            .collect();
        if candidates.is_empty() {
            return Ok(None);
        }
        Ok(Some((Reg::R10, *self.u.choose(&candidates)? as i16)))
    }

    fn size(&mut self) -> arbitrary::Result<Size> {
        Ok(*self.u.choose(&Size::ALL)?)
    }

    fn load(&mut self) -> arbitrary::Result<()> {
        let size = self.size()?;
        let Some((src, off)) = self.place(size, true)? else { return self.store() };
        let signed = self.cfg.v4_enabled && size != Size::DW && self.u.ratio(1, 3)?;
        let dst = self.any_dst()?;
        self.emit(Insn::Load { size, signed, dst, src, off });
        self.define(dst);
        Ok(())
    }

    fn store(&mut self) -> arbitrary::Result<()> {
        let size = self.size()?;
        let Some((dst, off)) = self.place(size, false)? else { return self.alu() };
        let insn = match self.scalar()? {
            Some(src) if self.u.arbitrary()? => Insn::Store { size, dst, src, off },
            _ => {
                let imm = self.imm32()?;
                Insn::StoreImm { size, dst, off, imm }
            }
        };
        self.emit(insn);
        if dst == Reg::R10 {
            self.st.write(off as i64, size.bytes());
        }
        Ok(())
    }

    fn atomic(&mut self) -> arbitrary::Result<()> {
        let size = if self.u.arbitrary()? { Size::W } else { Size::DW };
        let Some((dst, off)) = self.place(size, true)? else { return self.store() };
        let Some(src) = self.scalar_dst()? else { return self.alu() };
        let op = *self.u.choose(&AtomicOp::ALL)?;
        if op == AtomicOp::Cmpxchg && (!self.st.is(Reg::R0, Kind::Scalar) || self.st.frozen(Reg::R0)) {
            return self.alu();
        }
        self.emit(Insn::Atomic { size, op, dst, src, off });
        Ok(())
    }

    fn cond(&mut self) -> arbitrary::Result<Option<Insn>> {
        let Some(dst) = self.scalar()? else { return Ok(None) };
        let width = match (self.cfg.jmp_enabled, self.cfg.jmp32_enabled) {
            (true, true) => *self.u.choose(&[Width::W32, Width::W64])?,
            (true, false) => Width::W64,
            _ => Width::W32,
        };
        let cond = *self.u.choose(&Cond::ALL)?;
        let src = match self.scalar()? {
            Some(r) if self.u.arbitrary()? => Operand::Reg(r),
            _ => Operand::Imm(self.imm32()?),
        };
        Ok(Some(Insn::Jmp { width, cond, dst, src, off: 0 }))
    }

    /// A run of 64-bit constants long enough (about 5 KiB of RV64 code) that a jump over
    /// it cannot be a single conditional branch. Not counted against the budget.
    fn long_run(&mut self) -> arbitrary::Result<()> {
        for _ in 0..LONG_RUN {
            let dst = self.any_dst()?;
            let imm = self.u.arbitrary::<u64>()? | 1 << 63 | 0x0101_0101;
            self.out.push(Insn::LdImm64 { dst, pseudo: 0, imm });
            self.define(dst);
        }
        Ok(())
    }

    /// `if cond goto +n` over a nested block: afterwards only what holds on both paths.
    /// With [`Config::long_jumps`], some jump over a long run of constants, and some over
    /// padding that puts the branch in 4-byte steps around the B-type reach, or (a
    /// `gotol`, never on the kernel engines) around the `jal` reach.
    fn if_block(&mut self, depth: usize) -> arbitrary::Result<()> {
        let Some(jmp) = self.cond()? else { return self.alu() };
        if self.cfg.long_jumps && self.u.ratio(1, 4)? {
            let r = self.padding_reg(None)?;
            // A jump over 1 MiB of code only at the top of a function: no 16-bit offset of
            // an enclosing jump could cross it.
            let top = depth == 0 && !self.in_loop;
            let jal = top && self.cfg.v4_enabled && !self.cfg.kernel_helpers && self.u.ratio(1, 16)?;
            let pad = self.around(if jal { FORWARD_JAL_PAD } else { FORWARD_BTYPE_PAD })?;
            if jal {
                self.emit(Insn::JaLong { off: pad as i32 });
            } else if let Insn::Jmp { width, cond, dst, src, .. } = jmp {
                self.emit(Insn::Jmp { width, cond, dst, src, off: pad as i16 });
            }
            return self.pad(r, pad);
        }
        let at = self.out.len();
        self.emit(jmp);
        let before = self.st.clone();
        self.block(depth + 1)?;
        if self.cfg.long_jumps && self.u.ratio(1, 4)? {
            self.long_run()?;
        }
        let n: usize = self.out[at + 1..].iter().map(Insn::slots).sum();
        if let Insn::Jmp { off, .. } = &mut self.out[at] {
            *off = n as i16;
        }
        self.st = before.meet(&self.st);
        Ok(())
    }

    /// A loop, bounded by construction, of one of the shapes compilers emit: counted down
    /// to zero, compared with a constant or a register under any condition and width,
    /// bounded by a value from the context, or (with [`Config::long_jumps`]) padded so
    /// that its backward branch lies around the B-type reach. Its counter, bound and every
    /// pointer are frozen in the body, which makes no calls and may leave early: every
    /// iteration starts from at least the state the body was generated for.
    fn loop_(&mut self, depth: usize) -> arbitrary::Result<()> {
        let Some(c) = self.free_counter() else { return self.alu() };
        if self.cfg.long_jumps && self.u.ratio(1, 2)? {
            return self.padded_loop(c);
        }
        let latch = match self.u.int_in_range(0..=3)? {
            0 => self.counted_head(c)?,
            1 | 2 => match self.compare_head(c)? {
                Some(l) => l,
                None => self.counted_head(c)?,
            },
            _ => match self.ctx_bound_head(c)? {
                Some(l) => l,
                None => self.counted_head(c)?,
            },
        };
        let saved_frozen = self.st.frozen;
        self.st.frozen |= latch.frozen;
        for r in Reg::ALL {
            if matches!(self.st.kind[r.idx()], Kind::Ctx | Kind::Stack | Kind::CallerStack) {
                self.st.frozen |= 1 << r.num();
            }
        }
        self.in_loop = true;
        let outer_breaks = std::mem::take(&mut self.breaks);
        let start = self.out.len();
        self.block(depth + 1)?;
        self.in_loop = false;
        self.emit(latch.update);
        let body: usize = self.out[start..].iter().map(Insn::slots).sum();
        let (width, cond, dst, src) = latch.test;
        self.emit(Insn::Jmp { width, cond, dst, src, off: -(body as i16) - 1 });
        for (at, st) in std::mem::replace(&mut self.breaks, outer_breaks) {
            let n: usize = self.out[at + 1..].iter().map(Insn::slots).sum();
            if let Insn::Jmp { off, .. } = &mut self.out[at] {
                *off = n as i16;
            }
            self.st = self.st.meet(&st);
        }
        self.st.frozen = saved_frozen;
        Ok(())
    }

    /// The width of a loop's test.
    fn jump_width(&mut self) -> arbitrary::Result<Width> {
        Ok(match (self.cfg.jmp_enabled, self.cfg.jmp32_enabled) {
            (true, true) => *self.u.choose(&[Width::W32, Width::W64])?,
            (false, true) => Width::W32,
            _ => Width::W64,
        })
    }

    /// Sets `r` to `v`, with a `mov` when it fits (sign-extended) and a `lddw` when not.
    fn set_const(&mut self, r: Reg, v: u64) {
        match i32::try_from(v as i64) {
            Ok(k) => self.emit(mov(r, k)),
            Err(_) => self.emit(Insn::LdImm64 { dst: r, pseudo: 0, imm: v }),
        }
        self.define(r);
    }

    /// `c = N; loop: ...; c -= 1; if c != 0 goto loop`, 1 to 4 iterations; a 32-bit test
    /// may count down only the low half of a counter whose upper half is set.
    fn counted_head(&mut self, c: Reg) -> arbitrary::Result<Latch> {
        let n = self.u.int_in_range(1..=4u64)?;
        let width = self.jump_width()?;
        let high = if width == Width::W32 && self.u.arbitrary()? {
            self.u.int_in_range(1..=u32::MAX as u64)?
        } else {
            0
        };
        self.set_const(c, high << 32 | n);
        Ok(Latch {
            update: Insn::Alu { width: Width::W64, op: AluOp::Sub, dst: c, src: Operand::Imm(1) },
            test: (width, Cond::Ne, c, Operand::Imm(0)),
            frozen: 1 << c.num(),
        })
    }

    /// `c = I; [b = B;] loop: ...; c += S; if c COND B goto loop` (or `if b COND c`), any
    /// condition and width, with a bound that ends the loop after exactly 1 to 4 iterations
    /// (found by evaluating the test as the kernel does); `None` when no bound tried
    /// does.
    fn compare_head(&mut self, c: Reg) -> arbitrary::Result<Option<Latch>> {
        let n = self.u.int_in_range(1..=4u64)?;
        let width = self.jump_width()?;
        let w32 = width == Width::W32;
        let cond = *self.u.choose(&Cond::ALL)?;
        let init = if self.u.arbitrary()? { self.u.int_in_range(0..=8)? } else { self.imm64()? };
        let step = *self.u.choose(&[1i32, -1, 2, -2, 3, -3, 16, -16, 0x4000_0000])?;
        let value = |k: u64| init.wrapping_add(k.wrapping_mul(step as i64 as u64));
        let reduce = |v: u64| if w32 { v as u32 as u64 } else { v };
        let b = self.free_counter_besides(Some(c));
        let in_reg = b.is_some() && self.u.arbitrary()?;
        let swap = in_reg && self.u.arbitrary()?;
        let continues = |k: u64, bound: u64| {
            let (v, bound) = (reduce(value(k)), reduce(bound));
            if swap {
                cond.holds(bound, v, w32)
            } else {
                cond.holds(v, bound, w32)
            }
        };
        // An immediate is sign-extended to 64 bits, or read in 32.
        let as_imm = |bound: u64| -> Option<i32> {
            if w32 {
                Some(bound as u32 as i32)
            } else {
                i32::try_from(bound as i64).ok()
            }
        };
        let mut candidates = Vec::new();
        for base in [value(n), value(n - 1), value(1), init] {
            for d in [0u64, 1, u64::MAX] {
                candidates.push(base.wrapping_add(d));
            }
        }
        let first = self.u.choose_index(candidates.len())?;
        candidates.rotate_left(first);
        let found = candidates.into_iter().find(|&bound| {
            (in_reg || as_imm(bound).is_some()) && (1..n).all(|k| continues(k, bound)) && !continues(n, bound)
        });
        let Some(bound) = found else { return Ok(None) };
        self.set_const(c, init);
        let (test, frozen) = match b {
            Some(b) if in_reg => {
                self.set_const(b, bound);
                let test =
                    if swap { (width, cond, b, Operand::Reg(c)) } else { (width, cond, c, Operand::Reg(b)) };
                (test, 1 << c.num() | 1 << b.num())
            }
            _ => {
                let k = as_imm(bound).expect("the bound was chosen to fit");
                ((width, cond, c, Operand::Imm(k)), 1 << c.num())
            }
        };
        let update = Insn::Alu { width: Width::W64, op: AluOp::Add, dst: c, src: Operand::Imm(step) };
        Ok(Some(Latch { update, test, frozen }))
    }

    /// `b = ctx[i] & 3; c = 0; loop: ...; c += 1; if c < b goto loop` (or `<=`, signed or
    /// not, or the operands swapped): at most 4 iterations, how many decided by the
    /// context. `None` without a context pointer or a second free register.
    fn ctx_bound_head(&mut self, c: Reg) -> arbitrary::Result<Option<Latch>> {
        let Some(ctx) = self.ctx_reg()? else { return Ok(None) };
        let Some(b) = self.free_counter_besides(Some(c)) else {
            return Ok(None);
        };
        let first = if self.cfg.count_entries { 8 } else { 0 };
        let off = self.u.int_in_range(first..=self.cfg.ctx_size - 1)?;
        self.emit(Insn::Load { size: Size::B, signed: false, dst: b, src: ctx, off: off as i16 });
        self.emit(Insn::Alu { width: Width::W64, op: AluOp::And, dst: b, src: Operand::Imm(3) });
        self.define(b);
        self.set_const(c, 0);
        let width = self.jump_width()?;
        let test = match self.u.int_in_range(0..=7)? {
            k @ 0..=3 => (width, [Cond::Lt, Cond::Le, Cond::Slt, Cond::Sle][k], c, Operand::Reg(b)),
            k => (width, [Cond::Gt, Cond::Ge, Cond::Sgt, Cond::Sge][k - 4], b, Operand::Reg(c)),
        };
        let update = Insn::Alu { width: Width::W64, op: AluOp::Add, dst: c, src: Operand::Imm(1) };
        Ok(Some(Latch { update, test, frozen: 1 << c.num() | 1 << b.num() }))
    }

    /// A padding register: a scalar that may be overwritten, defined first if need be.
    fn padding_reg(&mut self, not: Option<Reg>) -> arbitrary::Result<Reg> {
        let regs: Vec<Reg> =
            self.st.writable().into_iter().filter(|&r| Some(r) != not && r != Reg::R0).collect();
        let r = *self.u.choose(&regs)?;
        self.ensure_scalar(r)?;
        Ok(r)
    }

    /// `pad` instructions `r += k` (not counted against the budget).
    fn pad(&mut self, r: Reg, pad: usize) -> arbitrary::Result<()> {
        let k = self.u.int_in_range(1..=2047)?;
        for _ in 0..pad {
            self.out.push(Insn::Alu { width: Width::W64, op: AluOp::Add, dst: r, src: Operand::Imm(k) });
        }
        Ok(())
    }

    /// A step from -[`BOUNDARY_STEPS`] to +[`BOUNDARY_STEPS`] around a boundary.
    fn around(&mut self, at: usize) -> arbitrary::Result<usize> {
        Ok(at - BOUNDARY_STEPS + self.u.int_in_range(0..=2 * BOUNDARY_STEPS)?)
    }

    /// `c = N; loop: r += k (padding); c -= 1; if c != 0 goto loop`, with the backward
    /// branch placed in 4-byte steps around the B-type reach.
    fn padded_loop(&mut self, c: Reg) -> arbitrary::Result<()> {
        let r = self.padding_reg(Some(c))?;
        let n = self.u.int_in_range(1..=2)?;
        self.emit(mov(c, n));
        self.define(c);
        let pad = self.around(BACKWARD_BTYPE_PAD)?;
        self.pad(r, pad)?;
        self.emit(Insn::Alu { width: Width::W64, op: AluOp::Sub, dst: c, src: Operand::Imm(1) });
        self.emit(Insn::Jmp {
            width: Width::W64,
            cond: Cond::Ne,
            dst: c,
            src: Operand::Imm(0),
            off: -(pad as i16) - 2,
        });
        Ok(())
    }

    /// An early exit from the loop being generated: `if cond goto <after the loop>`.
    fn break_(&mut self) -> arbitrary::Result<()> {
        let Some(jmp) = self.cond()? else { return self.alu() };
        self.breaks.push((self.out.len(), self.st.clone()));
        self.emit(jmp);
        Ok(())
    }

    /// Makes `r` a scalar if it is not one, with a constant.
    fn ensure_scalar(&mut self, r: Reg) -> arbitrary::Result<()> {
        if !self.st.is(r, Kind::Scalar) {
            let v = self.imm32()?;
            self.emit(mov(r, v));
            self.define(r);
        }
        Ok(())
    }

    fn after_call(&mut self) {
        self.st.clobber_call();
        self.define(Reg::R0);
    }

    fn call(&mut self) -> arbitrary::Result<()> {
        let callee = if self.cfg.chain_calls {
            self.func + 1
        } else {
            self.u.int_in_range(self.func + 1..=self.sigs.len() - 1)?
        };
        let sig = self.sigs[callee];
        if sig.ctx_arg && !self.st.is(Reg::R1, Kind::Ctx) {
            if !self.st.is(CTX_COPY, Kind::Ctx) {
                return self.alu();
            }
            self.emit(Insn::Alu {
                width: Width::W64,
                op: AluOp::Mov,
                dst: Reg::R1,
                src: Operand::Reg(CTX_COPY),
            });
            self.st.kind[1] = Kind::Ctx;
        }
        for k in (if sig.ctx_arg { 2 } else { 1 })..=sig.args {
            self.ensure_scalar(Reg::ALL[k as usize])?;
        }
        if sig.stack_arg {
            // 8 bytes of this frame, written, for the callee to read and write.
            let arg = Reg::ALL[sig.args as usize];
            let off = -8 * self.u.int_in_range(1..=self.depth_bytes / 8)? as i16;
            let imm = self.imm32()?;
            self.emit(Insn::StoreImm { size: Size::DW, dst: Reg::R10, off, imm });
            self.st.write(off as i64, 8);
            self.emit(Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: arg, src: Operand::Reg(Reg::R10) });
            self.emit(Insn::Alu {
                width: Width::W64,
                op: AluOp::Add,
                dst: arg,
                src: Operand::Imm(off as i32),
            });
        }
        self.calls.push((self.out.len(), callee));
        self.emit(Insn::Call(Call::Local(0)));
        self.after_call();
        Ok(())
    }

    fn helper(&mut self) -> arbitrary::Result<()> {
        if self.cfg.kernel_helpers {
            self.emit(Insn::Call(Call::Helper(GET_NUMA_NODE_ID)));
        } else if self.u.arbitrary()? {
            for r in [Reg::R1, Reg::R2, Reg::R3, Reg::R4, Reg::R5] {
                self.ensure_scalar(r)?;
            }
            self.emit(Insn::Call(Call::Helper(MIX)));
        } else {
            self.emit(Insn::Call(Call::Helper(COUNTER)));
        }
        self.after_call();
        Ok(())
    }

    /// Calls a kfunc: `jitdiff_kmix` of five scalars or `jitdiff_kcounter`, or a pair of the
    /// kernel's (the only kind with [`Config::kernel_helpers`]).
    fn kfunc(&mut self) -> arbitrary::Result<()> {
        use bpf::helpers::{
            KFUNC_PREEMPT_DISABLE, KFUNC_PREEMPT_ENABLE, KFUNC_RCU_READ_LOCK, KFUNC_RCU_READ_UNLOCK,
        };
        // The kernel's kfuncs, in pairs (its verifier refuses an exit inside the section);
        // a kernel has none of jitdiff's own.
        if self.cfg.kernel_helpers || self.u.ratio(1, 3)? {
            let (enter, leave) = if self.u.arbitrary()? {
                (KFUNC_RCU_READ_LOCK, KFUNC_RCU_READ_UNLOCK)
            } else {
                (KFUNC_PREEMPT_DISABLE, KFUNC_PREEMPT_ENABLE)
            };
            self.emit(Insn::Call(Call::Kfunc(enter)));
            self.emit(Insn::Call(Call::Kfunc(leave)));
            self.st.clobber_call();
            self.st.kind[0] = Kind::Undef;
            return Ok(());
        }
        if self.u.arbitrary()? {
            for r in [Reg::R1, Reg::R2, Reg::R3, Reg::R4, Reg::R5] {
                self.ensure_scalar(r)?;
            }
            self.emit(Insn::Call(Call::Kfunc(bpf::helpers::KFUNC_MIX)));
        } else {
            self.emit(Insn::Call(Call::Kfunc(bpf::helpers::KFUNC_COUNTER)));
        }
        self.after_call();
        Ok(())
    }

    /// Looks up a key in an array map and, when found, updates an 8-byte word of the
    /// value; afterwards R0-R5 are dead.
    fn lookup(&mut self) -> arbitrary::Result<()> {
        let a = self.u.int_in_range(0..=self.shape.arrays.len() - 1)?;
        let (value_size, entries) = self.shape.arrays[a];
        let key = if self.u.ratio(4, 5)? { self.u.int_in_range(0..=entries - 1)? } else { entries };
        let off = -(4 * self.u.int_in_range(1..=self.depth_bytes / 4)? as i64);
        self.emit(Insn::StoreImm { size: Size::W, dst: Reg::R10, off: off as i16, imm: key as i32 });
        self.st.write(off, 4);
        let map = (self.shape.prog_arrays.len() + a) as u64;
        self.emit(Insn::LdImm64 { dst: Reg::R1, pseudo: PSEUDO_MAP_FD, imm: map });
        self.emit(Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R2, src: Operand::Reg(Reg::R10) });
        self.emit(Insn::Alu {
            width: Width::W64,
            op: AluOp::Add,
            dst: Reg::R2,
            src: Operand::Imm(off as i32),
        });
        self.emit(Insn::Call(Call::Helper(MAP_LOOKUP_ELEM)));
        let voff = 8 * self.u.int_in_range(0..=value_size / 8 - 1)? as i16;
        let imm = self.imm32()?;
        self.emit(Insn::Jmp {
            width: Width::W64,
            cond: Cond::Eq,
            dst: Reg::R0,
            src: Operand::Imm(0),
            off: 3,
        });
        self.emit(Insn::Load { size: Size::DW, signed: false, dst: Reg::R1, src: Reg::R0, off: voff });
        self.emit(Insn::Alu { width: Width::W64, op: AluOp::Add, dst: Reg::R1, src: Operand::Imm(imm) });
        self.emit(Insn::Store { size: Size::DW, dst: Reg::R0, src: Reg::R1, off: voff });
        self.st.clobber_call();
        self.st.kind[0] = Kind::Undef;
        Ok(())
    }

    /// A global variable as libbpf makes one: `rG = &array + off ll` (the address of the
    /// value of an array map of one value, never NULL), then a load, a store or an atomic
    /// add through
    /// it, so that values flow between the programs and runs of a set through memory.
    fn global(&mut self) -> arbitrary::Result<()> {
        // Only an array of one value has an address to load, as for the kernel.
        let single: Vec<usize> =
            (0..self.shape.arrays.len()).filter(|&a| self.shape.arrays[a].1 == 1).collect();
        if single.is_empty() {
            return self.alu();
        }
        let a = *self.u.choose(&single)?;
        let value_size = self.shape.arrays[a].0;
        let size = if self.u.arbitrary()? { Size::W } else { Size::DW };
        let n = size.bytes();
        let off = n * self.u.int_in_range(0..=value_size / n - 1)?;
        let g = self.any_dst()?;
        let map = (self.shape.prog_arrays.len() + a) as u32;
        self.emit(Insn::LdImm64 { dst: g, pseudo: PSEUDO_MAP_VALUE, imm: map_value_imm(map, off) });
        self.st.kind[g.idx()] = Kind::Undef;
        match (self.u.int_in_range(0..=2)?, self.scalar()?) {
            (0, _) => {
                let dst = self.any_dst()?;
                self.emit(Insn::Load { size, signed: false, dst, src: g, off: 0 });
                self.define(dst);
            }
            (1, Some(src)) => self.emit(Insn::Atomic { size, op: AtomicOp::Add, dst: g, src, off: 0 }),
            (_, Some(src)) => self.emit(Insn::Store { size, dst: g, src, off: 0 }),
            (_, None) => {
                let imm = self.imm32()?;
                self.emit(Insn::StoreImm { size, dst: g, off: 0, imm });
            }
        }
        Ok(())
    }

    /// `bpf_tail_call(ctx, prog array, index)`, with indexes in and out of range and
    /// with upper bits set. Half of them are guarded by a count of attempts in the
    /// context's last word, which skips the tail call after [`TAIL_CALL_GUARD`]: a cycle
    /// of tail calls then stops by itself even on a JIT whose count never runs out, and
    /// shows as a wrong count rather than a run that never ends.
    /// A legacy packet load (R6 holds the context): of 1, 2 or 4 bytes, at a constant
    /// offset or a scalar register plus one; mostly inside the packet, else at the
    /// kernel's special offsets or outside it (where the function returns 0).
    fn packet_load(&mut self) -> arbitrary::Result<()> {
        const SKF_NET_OFF: i32 = -0x10_0000;
        const SKF_LL_OFF: i32 = -0x20_0000;
        let size = *self.u.choose(&[Size::B, Size::H, Size::W])?;
        let index = match self.st.regs(Kind::Scalar).as_slice() {
            regs if !regs.is_empty() && self.u.ratio(1, 3)? => Some(*self.u.choose(regs)?),
            _ => None,
        };
        let imm = match self.u.int_in_range(0..=9u8)? {
            0 => SKF_NET_OFF + self.u.int_in_range(0..=40)?,
            1 => SKF_LL_OFF + self.u.int_in_range(0..=60)?,
            2 => self.imm32()?,
            _ => self.u.int_in_range(0..=MAX_GENERATED_PACKET as i32)?,
        };
        self.emit(Insn::LoadPacket { size, index, imm });
        self.after_call();
        Ok(())
    }

    fn tail_call(&mut self) -> arbitrary::Result<()> {
        let m = self.u.int_in_range(0..=self.shape.prog_arrays.len() - 1)?;
        let entries = self.shape.prog_arrays[m];
        let guard = self.cfg.ctx_size >= 16
            && !self.cfg.prog_type.is_skb()
            && !self.st.frozen(Reg::R0)
            && self.u.arbitrary()?;
        let guard_at = self.out.len();
        if guard {
            let word = (self.cfg.ctx_size - 8) as i16;
            self.emit(Insn::Load { size: Size::DW, signed: false, dst: Reg::R0, src: CTX_COPY, off: word });
            self.emit(Insn::Alu { width: Width::W64, op: AluOp::Add, dst: Reg::R0, src: Operand::Imm(1) });
            self.emit(Insn::Store { size: Size::DW, dst: CTX_COPY, src: Reg::R0, off: word });
            let limit = Operand::Imm(TAIL_CALL_GUARD);
            self.emit(Insn::Jmp { width: Width::W64, cond: Cond::Gt, dst: Reg::R0, src: limit, off: 0 });
        }
        if !self.st.is(Reg::R1, Kind::Ctx) {
            self.emit(Insn::Alu {
                width: Width::W64,
                op: AluOp::Mov,
                dst: Reg::R1,
                src: Operand::Reg(CTX_COPY),
            });
        }
        self.emit(Insn::LdImm64 { dst: Reg::R2, pseudo: PSEUDO_MAP_FD, imm: m as u64 });
        let index: u64 = match self.u.int_in_range(0..=9)? {
            0 => entries as u64,
            1 => u32::MAX as u64,
            2 => (1 << 32) | self.u.int_in_range(0..=entries - 1)? as u64,
            _ => self.u.int_in_range(0..=entries - 1)? as u64,
        };
        self.emit(Insn::LdImm64 { dst: Reg::R3, pseudo: 0, imm: index });
        self.emit(Insn::Call(Call::Helper(TAIL_CALL)));
        if guard {
            let jump = guard_at + 3;
            let n: usize = self.out[jump + 1..].iter().map(Insn::slots).sum();
            if let Insn::Jmp { off, .. } = &mut self.out[jump] {
                *off = n as i16;
            }
        }
        self.st.clobber_call();
        self.st.kind[0] = Kind::Undef;
        Ok(())
    }
}
