//! Frames: bpf-to-bpf calls, helper calls, tail calls and returns, and the verifier's rules
//! about them. The executor's loop ([`Machine::run`]) stops at every call and `exit`; this
//! module changes the frame and resumes it.
//!
//! A frame is one function activation. Each has its own stack at an address of its own
//! ([`frame_top`]), so a pointer into a frame that is gone never reaches a live one. The
//! frames of one program's call chain start at the frame its main function runs in (the
//! entry frame, or the frame a tail call replaced): the verifier checks each program on its
//! own, so the limits on call-chain length and combined stack size apply per program.

use bpf::exec::{
    map_addr, EmptySlotRule, ARRAY_VALUES_OFFSET, MAPS_ADDR, MAP_STRIDE, MAX_CALL_FRAMES, MAX_TAIL_CALL_CNT,
};
use bpf::helpers::{self, Helpers};
use bpf::set::ATTACH_ARGS;
use bpf::trace::{Step, Trace};
use bpf::{
    AttachKind, AttachTarget, AttachmentSeen, Fault, FaultKind, Input, Insn, MapRef, Outcome, Program,
    ProgramSet, RunResult, MAX_STACK,
};

use super::decode::{self, Op};
use super::layout::{entry_registers, frame_top, CTX_ADDR};
use super::machine::{bit, Machine, Regs, Stop};
use super::memory::{Memory, MARK_ADDR, MARK_MAP, MARK_VALUE, UNINIT};
use super::TailCallSemantics;

/// The caller stack depth (bytes, rounded) at or above which a subprogram that makes tail
/// calls may not be called.
const TAIL_CALL_STACK_LIMIT: u32 = 256;

/// A function of a program, as the frame logic needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FuncInfo {
    /// Instruction index of its first instruction.
    start: usize,
    /// Its stack depth in bytes.
    depth: u32,
    /// Whether it contains a tail call.
    tail_calls: bool,
}

/// Fills `out` with the functions of `prog`, main program first.
pub(super) fn function_table(prog: &Program, out: &mut Vec<FuncInfo>) {
    out.clear();
    for (f, range) in prog.functions().into_iter().enumerate() {
        let tail_calls = prog.insns().get(range.clone()).unwrap_or_default().iter().any(Insn::is_tail_call);
        out.push(FuncInfo { start: range.start, depth: prog.function_stack_depth(f), tail_calls });
    }
}

/// A stack depth as the verifier counts it towards the combined limit when the program is
/// JIT-compiled: rounded up to 16 bytes.
const fn rounded(depth: u32) -> u32 {
    depth.div_ceil(16) * 16
}

/// Why a register is undefined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    /// It is not (the initial state of every register).
    Defined,
    /// A helper call or a bpf-to-bpf call returned: R1-R5 are clobbered.
    Clobbered,
    /// A tail call failed: R0-R5 are clobbered.
    FailedTailCall,
    /// The function called returns nothing: R0 is undefined.
    ReturnsNothing,
    /// A subprogram starts with R0 and R6-R9 undefined.
    SubprogEntry,
    /// The subprogram called exited with R0 undefined.
    SubprogReturnsUndefined,
    /// A tail-call target starts with only R1 and R10 defined.
    TailCallEntry,
}

/// Why a register is undefined, and the call instruction that made it so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cause {
    why: Why,
    /// The program of the call.
    prog: usize,
    /// The instruction index of the call.
    index: usize,
}

impl Cause {
    const DEFINED: Cause = Cause { why: Why::Defined, prog: 0, index: 0 };
}

/// One function activation.
#[derive(Clone, Copy, Debug)]
pub(super) struct Frame {
    /// The program whose code runs in it.
    prog: usize,
    /// The running function's stack depth.
    depth: u32,
    /// The index (in the frame list) of the first frame of this program's call chain.
    base: usize,
    /// Where the caller resumes (an instruction index in the caller's program).
    ret: usize,
    /// The instruction index of the call that made this frame.
    call: usize,
    /// The caller's registers at the call.
    saved: Regs,
    /// The caller's undefined registers at the call.
    saved_undef: u16,
    /// Why they were undefined.
    saved_causes: [Cause; 11],
    /// The tail-call count of this frame ([`TailCallSemantics::PerFrame`]).
    count: u32,
    /// The function the frame was entered at through a trampoline with fexit programs,
    /// and the arguments they will see: they run when the frame returns, whatever
    /// program a tail call put in it meanwhile.
    traced: Option<Traced>,
}

/// A value with its provenance mark.
type Marked = (u64, u8);

/// What a trampoline keeps for the fexit programs of the function it called.
#[derive(Clone, Copy, Debug)]
pub(super) struct Traced {
    target: AttachTarget,
    args: [Marked; ATTACH_ARGS],
}

impl Frame {
    /// The entry frame.
    fn entry(depth: u32) -> Frame {
        Frame {
            prog: 0,
            depth,
            base: 0,
            ret: 0,
            call: 0,
            saved: Regs::new([0; 11], &[]),
            saved_undef: 0,
            saved_causes: [Cause::DEFINED; 11],
            count: 0,
            traced: None,
        }
    }
}

/// The buffers a run reuses from the previous one.
#[derive(Clone, Debug, Default)]
pub(super) struct Buffers {
    /// Decoded instructions of each program.
    pub ops: Vec<Vec<Op>>,
    /// Functions of each program (filled only for programs with bpf-to-bpf calls).
    pub funcs: Vec<Vec<FuncInfo>>,
    /// The stacks and the context.
    pub memory: Memory,
    /// The live frames, outermost first.
    pub frames: Vec<Frame>,
    /// Decoded instructions of each attachment's program.
    pub attachments: Vec<Vec<Op>>,
    /// Instructions the last run executed.
    pub work: u64,
}

/// The state of one run besides the running frame's.
struct Run<'s> {
    set: &'s ProgramSet,
    funcs: &'s [Vec<FuncInfo>],
    semantics: TailCallSemantics,
    empty_slot: EmptySlotRule,
    frames: &'s mut Vec<Frame>,
    /// Why each register of the running frame is undefined.
    causes: [Cause; 11],
    helpers: Helpers,
    /// The tail-call count of the run ([`TailCallSemantics::Global`]).
    count: u32,
    /// Successful tail calls.
    tail_calls: u32,
    /// Frames made so far (their stacks' addresses come from it).
    serial: u64,
    /// Decoded instructions of each attachment.
    att_ops: &'s [Vec<Op>],
    /// What each attachment saw.
    seen: Vec<AttachmentSeen>,
    /// The attachment whose program is running, if one is.
    in_attachment: Option<usize>,
}

/// Runs `code` one instruction at a time, recording each in `t`, until a stop other than
/// the end of the one-instruction allowance each step gets (the run's own budget still
/// applies: once it is spent, the executor reports it as usual).
fn step(m: &mut Machine<'_>, code: &[Op], prog: usize, t: &mut Trace) -> Stop {
    loop {
        if m.remaining == 0 || m.pc >= code.len() {
            return m.run(code);
        }
        let mut comparable = 0u16;
        for r in 0..11u8 {
            if m.undef & bit(r) == 0 && m.regs.mark[r as usize] & MARK_ADDR == 0 {
                comparable |= 1 << r;
            }
        }
        let mut regs = [0u64; 11];
        regs.copy_from_slice(&m.regs.val[..11]);
        t.push(Step { prog, index: m.pc, regs, comparable });
        let left = m.remaining - 1;
        m.remaining = 1;
        let stop = m.run(code);
        match stop {
            Stop::Fault { kind: FaultKind::Budget, .. } if m.remaining == 0 => m.remaining = left,
            other => {
                m.remaining += left;
                return other;
            }
        }
    }
}

/// Either end of a run that is not an exit.
enum End {
    Fault(Fault),
    CannotJudge(String),
}

impl From<Fault> for End {
    fn from(f: Fault) -> End {
        End::Fault(f)
    }
}

/// Runs `set` on `input`.
pub(super) fn run_set(
    set: &ProgramSet,
    input: &Input,
    budget: u64,
    (semantics, empty_slot): (TailCallSemantics, EmptySlotRule),
    buffers: &mut Buffers,
    trace: Option<&mut Trace>,
) -> RunResult {
    let progs = set.progs();
    let Buffers { ops, funcs, memory, frames, attachments, work } = buffers;
    attachments.resize_with(set.attachments().len(), Vec::new);
    for (a, ops) in set.attachments().iter().zip(attachments.iter_mut()) {
        decode::decode_into(&a.program.prog, set.maps().len() + set.arrays().len(), ops);
    }
    ops.resize_with(progs.len(), Vec::new);
    funcs.resize_with(progs.len(), Vec::new);
    for ((p, ops), funcs) in progs.iter().zip(ops.iter_mut()).zip(funcs.iter_mut()) {
        funcs.clear();
        if decode::decode_into(&p.prog, set.maps().len() + set.arrays().len(), ops) {
            function_table(&p.prog, funcs);
        }
    }
    let prog_type = set.prog_type();
    if let Err(why) = prog_type.check(input) {
        return RunResult::CannotJudge(why);
    }
    let (ctx, packet) = prog_type.presented(input.ctx.as_deref());
    let entry_depth = set.entry().prog.stack_depth();
    memory.reset(entry_depth, ctx.as_deref(), &packet, set.maps().len(), set.arrays());
    frames.clear();
    frames.push(Frame::entry(entry_depth));
    let marked: &[u8] = if input.ctx.is_some() { &[1, 10] } else { &[10] };
    let mut m = Machine {
        regs: Regs::new(entry_registers(input), marked),
        undef: 0,
        pc: 0,
        remaining: budget,
        budget,
        mem: memory,
    };
    let mut run = Run {
        set,
        funcs,
        semantics,
        empty_slot,
        frames,
        causes: [Cause::DEFINED; 11],
        helpers: Helpers::new(),
        count: 0,
        tail_calls: 0,
        serial: 0,
        att_ops: attachments,
        seen: vec![AttachmentSeen::default(); set.attachments().len()],
        in_attachment: None,
    };
    let end = run.enter_entry(&mut m).and_then(|()| run.execute(&mut m, ops, trace));
    *work = m.budget - m.remaining;
    let ctx = prog_type.observed(m.mem.ctx_bytes(), m.mem.packet_bytes());
    let arrays = m.mem.array_bytes();
    if end.is_ok() {
        if let Some(byte) = m.mem.engine_dependent_ctx_byte() {
            return RunResult::CannotJudge(format!(
                "at exit, context byte {byte} holds (part of) a stack or context address: engines \
                 place the stack and the context differently, so the context's bytes cannot be compared"
            ));
        }
        if let Some((name, byte)) = m.mem.engine_dependent_array_byte() {
            return RunResult::CannotJudge(format!(
                "at exit, byte {byte} of array map {name} holds (part of) a stack or context address: \
                 engines place the stack and the context differently, so the array maps' bytes cannot \
                 be compared"
            ));
        }
    }
    let (result, r0_is_address) = match end {
        Ok((r0, mark)) => (Ok(r0), mark != 0),
        Err(End::Fault(f)) => (Err(f), false),
        Err(End::CannotJudge(why)) => return RunResult::CannotJudge(why),
    };
    RunResult::Ran(Outcome {
        result,
        ctx,
        r0_is_address,
        tail_calls: run.tail_calls,
        helper_calls: run.helpers.take_trace(),
        arrays,
        attachments: run.seen,
        observes: bpf::exec::Observes::ALL,
    })
}

impl Run<'_> {
    /// Runs until the entry frame exits (R0 and its mark), a fault, or an instruction the
    /// reference cannot judge.
    fn execute(
        &mut self,
        m: &mut Machine<'_>,
        ops: &[Vec<Op>],
        mut trace: Option<&mut Trace>,
    ) -> Result<(u64, u8), End> {
        loop {
            let prog = self.prog();
            let Some(code) = ops.get(prog) else {
                return Err(self.fault(prog, usize::MAX, FaultKind::Host, "no such program".into()).into());
            };
            let stop = match trace.as_deref_mut() {
                None => m.run(code),
                Some(t) => step(m, code, prog, t),
            };
            // A legacy packet load outside the packet returns 0 from the running function.
            let stop = match stop {
                Stop::PacketLoad { index, offset, size, reg } => {
                    match self.packet_load(m, index, offset, size, reg)? {
                        true => continue,
                        false => Stop::Exit { r0: 0, r0_mark: 0 },
                    }
                }
                other => other,
            };
            match stop {
                Stop::Exit { r0, r0_mark } if self.frames.len() <= 1 => {
                    if let Some(traced) = self.frames.first().and_then(|f| f.traced) {
                        self.fexits(m, traced, (r0, r0_mark))?;
                    }
                    return Ok((r0, r0_mark));
                }
                Stop::Exit { r0, r0_mark } => self.ret(m, r0, r0_mark)?,
                // The verifier checks R0 only at the main function's exit: a subprogram
                // that exits with R0 undefined leaves its caller's R0 undefined.
                Stop::Undefined { index, reg: 0 }
                    if self.frames.len() > 1
                        && code.get(index).is_some_and(|op| op.code == decode::code::EXIT) =>
                {
                    self.ret_undefined(m)?
                }
                Stop::Call { index, target } => {
                    let entered = self.call(m, index, target)?;
                    let args = [1, 2, 3, 4, 5].map(|r| Run::argument(m, r));
                    self.trampoline(m, entered, args)?;
                }
                Stop::Helper { index, id, kfunc } => self.helper(m, index, id, kfunc)?,
                Stop::TailCall { index } => self.tail_call(m, index)?,
                Stop::PacketLoad { .. } => unreachable!("handled above"),
                Stop::Undefined { index, reg } => {
                    let detail = self.undefined(reg);
                    return Err(self.fault(prog, index, FaultKind::Verifier, detail).into());
                }
                Stop::Fault { kind, index, detail } => {
                    return Err(self.fault(prog, index, kind, detail).into())
                }
                Stop::Unsupported { index } => {
                    let p = self.set.progs().get(prog).map(|p| &p.prog);
                    let insn = p.and_then(|p| p.insns().get(index));
                    let reason = match (insn, p.and_then(|p| pc_of(p, index))) {
                        (Some(insn), Some(pc)) => decode::unsupported_reason(insn, pc),
                        _ => format!("instruction {index} is not modelled"),
                    };
                    return Err(End::CannotJudge(self.in_program(prog) + &reason));
                }
            }
        }
    }

    /// The program of the running frame.
    fn prog(&self) -> usize {
        self.frames.last().map_or(0, |f| f.prog)
    }

    /// "in program NAME: " for programs other than the entry, whose pcs are ambiguous
    /// otherwise; empty for the entry.
    fn in_program(&self, prog: usize) -> String {
        match self.set.progs().get(prog) {
            Some(p) if prog != 0 => format!("in program {} (#{prog}): ", p.name),
            _ => String::new(),
        }
    }

    /// A fault at instruction `index` of program `prog` (of the running attachment's
    /// program while one runs).
    fn fault(&self, prog: usize, index: usize, kind: FaultKind, detail: String) -> Fault {
        if let Some(a) = self.in_attachment.and_then(|a| self.set.attachments().get(a)) {
            let pc = pc_of(&a.program.prog, index);
            return Fault { kind, pc, detail: format!("in {} {}: {detail}", a.kind.name(), a.program.name) };
        }
        let pc = self.set.progs().get(prog).and_then(|p| pc_of(&p.prog, index));
        Fault { kind, pc, detail: self.in_program(prog) + &detail }
    }

    /// A verifier fault at instruction `index` of the running program.
    fn verifier(&self, index: usize, detail: String) -> Fault {
        self.fault(self.prog(), index, FaultKind::Verifier, detail)
    }

    /// The account of reading undefined register `reg` in the running frame.
    fn undefined(&self, reg: u8) -> String {
        let cause = self.causes.get(reg as usize).copied().unwrap_or(Cause::DEFINED);
        let attachment = self.in_attachment.and_then(|a| self.set.attachments().get(a));
        let code = match attachment {
            Some(a) => Some(&a.program.prog),
            None => self.set.progs().get(cause.prog).map(|p| &p.prog),
        };
        let pc = code.and_then(|p| pc_of(p, cause.index)).unwrap_or(cause.index);
        let of = match self.set.progs().get(cause.prog) {
            Some(p) if attachment.is_none() && cause.prog != self.prog() => format!(" of program {}", p.name),
            _ => String::new(),
        };
        let why = match cause.why {
            Why::Defined => "the verifier has not seen it written".to_string(),
            Why::Clobbered => format!("R1-R5 are clobbered by the call at pc {pc}{of}"),
            Why::FailedTailCall => format!("R0-R5 are clobbered by the tail call at pc {pc}{of}, which failed"),
            Why::ReturnsNothing => format!("the function called at pc {pc}{of} returns nothing"),
            Why::SubprogEntry => {
                format!("a subprogram starts with R0 and R6-R9 undefined (this one was called at pc {pc}{of})")
            }
            Why::SubprogReturnsUndefined => {
                format!("the subprogram called at pc {pc}{of} exited with R0 undefined")
            }
            Why::TailCallEntry => format!(
                "a tail-call target starts with only R1 and R10 defined (this one was entered by the tail call at pc {pc}{of})"
            ),
        };
        format!("R{reg} is undefined: {why}")
    }

    /// Makes registers `regs` of the running frame undefined because of `why` (the call at
    /// instruction `index` of the running program).
    fn clobber(&mut self, m: &mut Machine<'_>, regs: &[u8], why: Why, index: usize) {
        let prog = self.prog();
        for &r in regs {
            m.regs.set(r, 0, 0);
            m.undef |= bit(r);
            if let Some(c) = self.causes.get_mut(r as usize) {
                *c = Cause { why, prog, index };
            }
        }
    }

    /// A bpf-to-bpf call at `index` to instruction `target`: checks the verifier's limits
    /// and pushes a frame; the function entered, for its trampoline.
    fn call(&mut self, m: &mut Machine<'_>, index: usize, target: usize) -> Result<AttachTarget, Fault> {
        let Some(&cur) = self.frames.last() else {
            return Err(self.fault(0, index, FaultKind::Host, "no running frame".into()));
        };
        let chain = self.frames.get(cur.base..).unwrap_or_default();
        let frames = chain.len() + 1;
        if frames > MAX_CALL_FRAMES {
            return Err(self.verifier(
                index,
                format!(
                    "the call would make a chain of {frames} frames; the verifier allows at most \
                     {MAX_CALL_FRAMES} (MAX_CALL_FRAMES)"
                ),
            ));
        }
        let funcs = self.funcs.get(cur.prog).map(Vec::as_slice).unwrap_or_default();
        let Some(f) = funcs.iter().position(|f| f.start == target) else {
            let detail = format!("the call goes to instruction {target}, where no function starts");
            return Err(self.fault(cur.prog, index, FaultKind::Host, detail));
        };
        let callee = funcs[f];
        let below: u32 = chain.iter().map(|fr| rounded(fr.depth)).sum();
        if f != 0 && callee.tail_calls && below >= TAIL_CALL_STACK_LIMIT {
            return Err(self.verifier(
                index,
                format!(
                    "the called subprogram makes tail calls and its callers' frames use {below} bytes \
                     of stack; the verifier allows tail calls in subprograms only below \
                     {TAIL_CALL_STACK_LIMIT} bytes"
                ),
            ));
        }
        let total = below + rounded(callee.depth);
        if total > MAX_STACK {
            return Err(self.verifier(
                index,
                format!(
                    "the combined stack of {frames} frames would be {total} bytes (each function's \
                     depth rounded up to 16); the verifier allows at most {MAX_STACK}"
                ),
            ));
        }
        self.serial = self.serial.wrapping_add(1);
        let top = frame_top(self.serial);
        m.mem.push_frame(top, callee.depth);
        self.frames.push(Frame {
            prog: cur.prog,
            depth: callee.depth,
            base: cur.base,
            ret: index + 1,
            call: index,
            saved: m.regs,
            saved_undef: m.undef,
            saved_causes: self.causes,
            count: cur.count,
            traced: None,
        });
        self.clobber(m, &[0, 6, 7, 8, 9], Why::SubprogEntry, index);
        m.regs.set(10, top, MARK_ADDR);
        m.undef &= !bit(10);
        m.pc = target;
        Ok(AttachTarget { prog: cur.prog, func: f })
    }

    /// Register `r` as a trampoline saves it: its value and mark, or, when the verifier
    /// would call it undefined, a value that differs between engines (marked as an address).
    fn argument(m: &Machine<'_>, r: u8) -> Marked {
        if m.undef & bit(r) != 0 {
            (0, MARK_ADDR)
        } else {
            (m.regs.get(r), m.regs.mark_of(r))
        }
    }

    /// The run of the entry program reaches its main function through the trampoline
    /// of any attachment to it. R2-R5 are what the kernel's caller left in `a1`-`a4`
    /// (the instructions' address, leftovers): engine-dependent.
    fn enter_entry(&mut self, m: &mut Machine<'_>) -> Result<(), End> {
        let args = [Run::argument(m, 1), (0, MARK_ADDR), (0, MARK_ADDR), (0, MARK_ADDR), (0, MARK_ADDR)];
        self.trampoline(m, AttachTarget { prog: 0, func: 0 }, args)
    }

    /// A function was entered by a call, in the running frame: runs the fentry programs
    /// attached to `target` and leaves what its fexit programs need in the frame.
    fn trampoline(
        &mut self,
        m: &mut Machine<'_>,
        target: AttachTarget,
        args: [Marked; ATTACH_ARGS],
    ) -> Result<(), End> {
        let set = self.set;
        if set.attachments().is_empty() {
            return Ok(());
        }
        for a in set.attached(target, AttachKind::Fentry) {
            self.run_attachment(m, a, args, None)?;
        }
        if set.attached(target, AttachKind::Fexit).next().is_some() {
            if let Some(f) = self.frames.last_mut() {
                f.traced = Some(Traced { target, args });
            }
        }
        Ok(())
    }

    /// The function a trampoline called returned `ret` (R0 and its mark): its fexit
    /// programs run with the low 32 bits sign-extended, as the JIT leaves them in `a0`.
    fn fexits(&mut self, m: &mut Machine<'_>, traced: Traced, ret: Marked) -> Result<(), End> {
        let ret = (ret.0 as i32 as i64 as u64, ret.1);
        for a in self.set.attached(traced.target, AttachKind::Fexit) {
            self.run_attachment(m, a, traced.args, Some(ret))?;
        }
        Ok(())
    }

    /// Runs attachment `a`'s program with R1 pointing to `args` (and `ret` after them),
    /// each in a frame of its own, and puts the running frame back as it was.
    fn run_attachment(
        &mut self,
        m: &mut Machine<'_>,
        a: usize,
        args: [Marked; ATTACH_ARGS],
        ret: Option<Marked>,
    ) -> Result<(), End> {
        let set = self.set;
        let (Some(att), Some(code)) = (set.attachments().get(a), self.att_ops.get(a)) else {
            return Err(self.fault(0, 0, FaultKind::Host, format!("no attachment {a}")).into());
        };
        if let Some(seen) = self.seen.get_mut(a) {
            seen.record(ret.map(|r| r.0));
            seen.address_returns |= ret.is_some_and(|r| r.1 != 0);
        }
        let saved = (m.regs, m.undef, m.pc, self.causes, self.in_attachment);
        let size = att.kind.ctx_size();
        self.serial = self.serial.wrapping_add(1);
        let args_top = frame_top(self.serial);
        m.mem.push_frame(args_top, size as u32);
        let base = args_top - size as u64;
        for (k, (v, mark)) in args.into_iter().chain(ret).enumerate() {
            m.mem.store::<8>(base + 8 * k as u64, v, mark, false);
        }
        self.serial = self.serial.wrapping_add(1);
        let top = frame_top(self.serial);
        m.mem.push_frame(top, att.program.prog.stack_depth());
        let mut regs = [0u64; 11];
        (regs[1], regs[10]) = (base, top);
        (m.regs, m.undef, m.pc) = (Regs::new(regs, &[1, 10]), 0, 0);
        self.causes = [Cause::DEFINED; 11];
        self.in_attachment = Some(a);
        let end = loop {
            let stop = m.run(code);
            let step = match stop {
                Stop::Exit { .. } => break Ok(()),
                Stop::Helper { index, id, kfunc } => self.helper(m, index, id, kfunc).map_err(End::from),
                Stop::Undefined { index, reg } => {
                    let detail = self.undefined(reg);
                    Err(self.fault(0, index, FaultKind::Verifier, detail).into())
                }
                Stop::Fault { kind, index, detail } => Err(self.fault(0, index, kind, detail).into()),
                Stop::Unsupported { index } => {
                    let insn = att.program.prog.insns().get(index);
                    let reason = match (insn, pc_of(&att.program.prog, index)) {
                        (Some(insn), Some(pc)) => decode::unsupported_reason(insn, pc),
                        _ => format!("instruction {index} is not modelled"),
                    };
                    Err(End::CannotJudge(format!("in {} {}: {reason}", att.kind.name(), att.program.name)))
                }
                Stop::Call { index, .. } | Stop::TailCall { index } => {
                    Err(self.fault(0, index, FaultKind::Host, "a tracing program made a call".into()).into())
                }
                Stop::PacketLoad { index, .. } => {
                    let detail = "a tracing program made a legacy packet load (only socket filters and tc \
                                  programs may)";
                    Err(self.fault(0, index, FaultKind::Verifier, detail.into()).into())
                }
            };
            if step.is_err() {
                break step;
            }
        };
        m.mem.pop_frame();
        m.mem.pop_frame();
        (m.regs, m.undef, m.pc, self.causes, self.in_attachment) = saved;
        end
    }

    /// The running frame (not the entry frame) exits with R0 = `r0`: back to its caller,
    /// through the fexit programs of the function the frame was entered at.
    fn ret(&mut self, m: &mut Machine<'_>, r0: u64, r0_mark: u8) -> Result<(), End> {
        let Some(callee) = self.frames.pop() else { return Ok(()) };
        m.mem.pop_frame();
        m.regs = callee.saved;
        m.regs.set(0, r0, r0_mark);
        m.undef = callee.saved_undef & !bit(0);
        self.causes = callee.saved_causes;
        self.clobber(m, &[1, 2, 3, 4, 5], Why::Clobbered, callee.call);
        m.pc = callee.ret;
        match callee.traced {
            Some(traced) => self.fexits(m, traced, (r0, r0_mark)),
            None => Ok(()),
        }
    }

    /// Returns from a subprogram that exits with R0 undefined: the caller's R0 is undefined
    /// too (an fexit program cannot see a return value that does not exist: the run
    /// cannot be judged).
    fn ret_undefined(&mut self, m: &mut Machine<'_>) -> Result<(), End> {
        let Some(callee) = self.frames.last() else { return Ok(()) };
        if callee.traced.is_some() {
            let why =
                "an fexit program traces a subprogram that exits with R0 undefined: what it sees as the \
                       return value differs between engines";
            return Err(End::CannotJudge(self.in_program(self.prog()) + why));
        }
        let call = callee.call;
        self.ret(m, 0, 0)?;
        self.clobber(m, &[0], Why::SubprogReturnsUndefined, call);
        Ok(())
    }

    /// A helper call at `index`, or a kfunc call when `kfunc`.
    fn helper(&mut self, m: &mut Machine<'_>, index: usize, id: i32, kfunc: bool) -> Result<(), Fault> {
        if id == helpers::MAP_LOOKUP_ELEM && !kfunc {
            return self.lookup(m, index);
        }
        if id == helpers::STRTOUL && !kfunc {
            return self.strtoul(m, index);
        }
        let (what, proto) =
            if kfunc { ("kfunc", helpers::kfunc_prototype(id)) } else { ("helper", helpers::prototype(id)) };
        let Some(proto) = proto else {
            return Err(self.verifier(index, format!("unknown {what} {id}")));
        };
        for r in 1..=proto.scalar_args.min(5) as u8 {
            if m.undef & bit(r) != 0 {
                return Err(self.verifier(index, format!("helper {}: {}", proto.name, self.undefined(r))));
            }
            if m.regs.marked(r) {
                let detail = format!("helper {}: R{r} is an address, a scalar is expected", proto.name);
                return Err(self.verifier(index, detail));
            }
        }
        let args = [1, 2, 3, 4, 5].map(|r| m.regs.get(r));
        let ret = if kfunc { self.helpers.call_kfunc(id, args) } else { self.helpers.call(id, args) };
        let Some(ret) = ret else {
            return Err(self.verifier(index, format!("unknown {what} {id}")));
        };
        m.regs.set(0, ret, 0);
        m.undef &= !bit(0);
        self.clobber(m, &[1, 2, 3, 4, 5], Why::Clobbered, index);
        if !proto.returns {
            self.clobber(m, &[0], Why::ReturnsNothing, index);
        }
        Ok(())
    }

    /// A legacy packet load at `index` of `size` bytes at `offset` (`reg`: its index
    /// register): R6 must hold the
    /// context and the program be a socket filter or tc program. `true` with R0 the
    /// value read (see [`bpf::ProgType::legacy_packet_load`]) and R1-R5 undefined, or
    /// `false` when the offset is outside the packet (the function then returns 0).
    fn packet_load(
        &mut self,
        m: &mut Machine<'_>,
        index: usize,
        offset: i32,
        size: usize,
        reg: Option<u8>,
    ) -> Result<bool, Fault> {
        let prog_type = self.set.prog_type();
        if !prog_type.is_skb() {
            let detail = format!(
                "a legacy packet load in a {} program (only socket filters and tc programs may)",
                prog_type.name()
            );
            return Err(self.verifier(index, detail));
        }
        if m.regs.get(6) != CTX_ADDR || m.regs.mark_of(6) == 0 {
            return Err(self.verifier(index, "a legacy packet load needs the context pointer in R6".into()));
        }
        if reg.is_some_and(|x| m.regs.marked(x)) {
            return Err(self.verifier(index, "a legacy packet load's index is an address".into()));
        }
        let value = prog_type.legacy_packet_load(m.mem.packet_bytes(), offset, size);
        self.clobber(m, &[1, 2, 3, 4, 5], Why::Clobbered, index);
        let Some(value) = value else { return Ok(false) };
        m.regs.set(0, u64::from(value), 0);
        m.undef &= !bit(0);
        Ok(true)
    }

    /// The map register `r` names (its index and the map), if it holds exactly a map's
    /// address, marked as one and derived from no other address.
    fn map_in(&self, m: &Machine<'_>, r: u8) -> Option<(usize, MapRef<'_>)> {
        if m.regs.mark_of(r) != MARK_MAP {
            return None;
        }
        let off = m.regs.get(r).checked_sub(MAPS_ADDR)?;
        let k = usize::try_from(off / MAP_STRIDE).ok()?;
        if off % MAP_STRIDE != 0 {
            return None;
        }
        Some((k, self.set.map(k as u64)?))
    }

    /// `bpf_map_lookup_elem(R1 = map, R2 = pointer to a u32 key)` at `at`: R0 is a pointer
    /// to the key's value (marked [`MARK_VALUE`]) or NULL (0, a scalar) when the key is not
    /// below `max_entries`; R1-R5 become undefined. The call is traced with the array's
    /// index among the array maps, the key, and whether a value was found.
    fn lookup(&mut self, m: &mut Machine<'_>, at: usize) -> Result<(), Fault> {
        const NAME: &str = "map_lookup_elem";
        let verifier = |run: &Self, detail: String| run.verifier(at, format!("helper {NAME}: {detail}"));
        // The verifier's order: R1 (defined, a map), R2 (defined, a pointer to readable,
        // initialized bytes), then whether the map's type goes with the helper.
        if m.undef & bit(1) != 0 {
            return Err(verifier(self, self.undefined(1)));
        }
        let Some((k, map)) = self.map_in(m, 1) else {
            return Err(verifier(
                self,
                "R1 is not a map (it must hold what an `lddw rN, map` loaded)".into(),
            ));
        };
        if m.undef & bit(2) != 0 {
            return Err(verifier(self, self.undefined(2)));
        }
        let key_mark = m.regs.mark_of(2);
        if key_mark & (MARK_ADDR | MARK_VALUE) == 0 {
            let what = if key_mark == 0 { "a scalar" } else { "a map" };
            let detail = format!(
                "R2 is {what}; a pointer to the 4-byte key (on the stack, in the context or in a map \
                 value) is expected"
            );
            return Err(verifier(self, detail));
        }
        let key_addr = m.regs.get(2);
        let values = key_mark & MARK_VALUE != 0;
        let Some((key, mark)) = m.mem.load::<4>(key_addr, values) else {
            let miss = m.mem.miss_detail(key_addr, 4, "key read from", values);
            return Err(verifier(self, format!("R2 does not point to 4 readable bytes: {miss}")));
        };
        if mark & UNINIT != 0 {
            let detail = format!(
                "the 4-byte key at {key_addr:#x} includes stack bytes nothing wrote (the stack of a \
                 subprogram or a tail-call target starts uninitialized)"
            );
            return Err(verifier(self, detail));
        }
        if mark != 0 {
            // The kernel would take the bytes of an address as the key; engines place
            // stacks and the context differently, so the key would differ between them.
            let detail =
                format!("the 4-byte key at {key_addr:#x} holds (part of) an address, a scalar is expected");
            return Err(verifier(self, detail));
        }
        let (a, array) = match map {
            MapRef::Array(a, array) => (a, array),
            MapRef::ProgArray(p) => {
                let detail = format!(
                    "R1 is prog array {}; the verifier allows a prog array only in tail calls",
                    p.name
                );
                return Err(verifier(self, detail));
            }
        };
        let key = key as u32;
        let found = array.value_offset(key);
        self.helpers.record_lookup(a, key, found.is_some());
        match found {
            Some(off) => {
                m.regs.set(0, map_addr(k).wrapping_add(ARRAY_VALUES_OFFSET).wrapping_add(off), MARK_VALUE)
            }
            None => m.regs.set(0, 0, 0),
        }
        m.undef &= !bit(0);
        self.clobber(m, &[1, 2, 3, 4, 5], Why::Clobbered, at);
        Ok(())
    }

    /// `bpf_strtoul(R1 = text, R2 = its length, R3 = flags, R4 = where the number goes)` at
    /// `at` (see [`helpers::strtoul`]): the text's bytes must be readable and written
    /// scalars, the result's 8 bytes writable; R0 the count or an error, R1-R5 undefined.
    fn strtoul(&mut self, m: &mut Machine<'_>, at: usize) -> Result<(), Fault> {
        let verifier = |run: &Self, detail: String| run.verifier(at, format!("helper strtoul: {detail}"));
        for r in 1..=4 {
            if m.undef & bit(r) != 0 {
                return Err(verifier(self, self.undefined(r)));
            }
        }
        for (r, what) in [(1, "the text"), (4, "the result's 8 bytes")] {
            if m.regs.mark_of(r) & (MARK_ADDR | MARK_VALUE) == 0 {
                return Err(verifier(self, format!("R{r} must point to {what}")));
            }
        }
        if m.regs.marked(2) || m.regs.marked(3) {
            return Err(verifier(self, "R2 and R3 must be scalars".into()));
        }
        let (addr, len, flags) = (m.regs.get(1), m.regs.get(2), m.regs.get(3));
        if !(1..=512).contains(&len) {
            return Err(verifier(self, format!("the length R2 = {len} is not from 1 to 512")));
        }
        let values = m.regs.mark_of(1) & MARK_VALUE != 0;
        let mut text = Vec::with_capacity(len as usize);
        for k in 0..len {
            let a = addr.wrapping_add(k);
            match m.mem.load::<1>(a, values) {
                Some((b, 0)) => text.push(b as u8),
                Some((_, mark)) if mark & UNINIT != 0 => {
                    return Err(verifier(
                        self,
                        format!("the text at {a:#x} includes stack bytes nothing wrote"),
                    ))
                }
                Some(_) => {
                    return Err(verifier(self, format!("the text at {a:#x} holds (part of) an address")))
                }
                None => return Err(verifier(self, m.mem.miss_detail(a, 1, "text read from", values))),
            }
        }
        let (ret, res) = helpers::strtoul(&text, flags);
        let out = m.regs.get(4);
        let out_values = m.regs.mark_of(4) & MARK_VALUE != 0;
        if !out.is_multiple_of(8) || !m.mem.store::<8>(out, res, 0, out_values) {
            return Err(verifier(self, m.mem.miss_detail(out, 8, "result written to", out_values)));
        }
        self.helpers.record_strtoul(len, flags, ret, res);
        m.regs.set(0, ret, 0);
        m.undef &= !bit(0);
        self.clobber(m, &[1, 2, 3, 4, 5], Why::Clobbered, at);
        Ok(())
    }

    /// `bpf_tail_call(R1 = ctx, R2 = map, R3 = index)` at `index`.
    fn tail_call(&mut self, m: &mut Machine<'_>, at: usize) -> Result<(), Fault> {
        for r in [1, 2] {
            if m.undef & bit(r) != 0 {
                return Err(self.verifier(at, format!("tail call: {}", self.undefined(r))));
            }
        }
        let k = match self.map_in(m, 2) {
            Some((k, MapRef::ProgArray(_))) => k,
            Some((_, MapRef::Array(_, array))) => {
                let detail = format!("tail call: R2 is array map {}, a prog array is expected", array.name);
                return Err(self.verifier(at, detail));
            }
            None => {
                let detail =
                    "tail call: R2 is not a map (it must hold what an `lddw rN, map` loaded)".to_string();
                return Err(self.verifier(at, detail));
            }
        };
        if m.undef & bit(3) != 0 {
            return Err(self.verifier(at, format!("tail call: {}", self.undefined(3))));
        }
        if m.regs.marked(3) {
            let detail = "tail call: R3 (the index) is an address, a scalar is expected".to_string();
            return Err(self.verifier(at, detail));
        }
        let slots = self.set.maps().get(k).map(|map| map.slots.as_slice()).unwrap_or_default();
        // The kernel interpreter's order: the index check, the count check, then the slot,
        // counted when it holds a program (or, under the 6.12 rule, whatever it holds).
        let index = m.regs.get(3) as u32;
        let target = if index as usize >= slots.len() {
            None
        } else {
            let count = match self.semantics {
                TailCallSemantics::Global => &mut self.count,
                TailCallSemantics::PerFrame => match self.frames.last_mut() {
                    Some(f) => &mut f.count,
                    None => &mut self.count,
                },
            };
            if *count >= MAX_TAIL_CALL_CNT {
                None
            } else {
                let target = slots.get(index as usize).copied().flatten();
                if target.is_some() || self.empty_slot == EmptySlotRule::Counted {
                    *count += 1;
                }
                target
            }
        };
        // `call 12` is a helper call to the verifier, which leaves R0-R5 unknown when it
        // returns and verifies a target on its own (only R1 and R10 defined). The
        // kernel-internal instruction 0xf5 only runs unverified (as in lib/test_bpf.c):
        // it changes no register when it fails, and a target it enters sees R0-R5 as
        // they were (the kernel's interpreter and JITs agree on those; R6-R9 differ, as
        // JITs restore them in the epilogue before the jump).
        let internal = self
            .set
            .progs()
            .get(self.prog())
            .and_then(|p| p.prog.insns().get(at))
            .is_some_and(|i| matches!(i, Insn::TailCall));
        let Some(target) = target else {
            if !internal {
                self.clobber(m, &[0, 1, 2, 3, 4, 5], Why::FailedTailCall, at);
            }
            return Ok(());
        };
        let Some(depth) = self.set.progs().get(target).map(|p| p.prog.stack_depth()) else {
            let detail = format!("tail call: the map slot names program {target}, which does not exist");
            return Err(self.fault(self.prog(), at, FaultKind::Host, detail));
        };
        self.tail_calls += 1;
        let clobbered: &[u8] = if internal { &[6, 7, 8, 9] } else { &[0, 2, 3, 4, 5, 6, 7, 8, 9] };
        self.clobber(m, clobbered, Why::TailCallEntry, at);
        self.serial = self.serial.wrapping_add(1);
        let top = frame_top(self.serial);
        m.mem.replace_frame(top, depth);
        m.regs.set(10, top, MARK_ADDR);
        m.undef &= !bit(10);
        let level = self.frames.len().saturating_sub(1);
        if let Some(f) = self.frames.last_mut() {
            f.prog = target;
            f.depth = depth;
            f.base = level;
        }
        m.pc = 0;
        Ok(())
    }
}

/// The slot pc of instruction `index`, if there is one.
fn pc_of(prog: &Program, index: usize) -> Option<usize> {
    (index < prog.insns().len()).then(|| prog.pc_of(index))
}

#[cfg(test)]
mod tests {
    //! Calls, helpers and tail calls as whole program sets; every expected value is worked
    //! out by hand from the kernel's rules (the comments say how).

    use super::super::memory::{MARK_ADDR, MARK_VALUE};
    use super::super::testutil::*;
    use super::super::{frame_top, Reference, TailCallSemantics, CTX_ADDR};
    use bpf::exec::{map_addr, EmptySlotRule, MAP_STRIDE};
    use bpf::helpers::{self, HelperCall};
    use bpf::{
        AluOp, ArrayMap, AtomicOp, ByteOrder, Call, Cond, Engine, Fault, FaultKind, Input, Insn, Operand,
        Outcome, ProgArray, Program, ProgramSet, Reg, RunResult, SetProgram, Size, SxBits, Width,
        PSEUDO_MAP_FD,
    };
    use TailCallSemantics::{Global, PerFrame};

    /// A placeholder for `call` to function `n` of a [`link`]ed program.
    fn call_fn(n: i32) -> Insn {
        Insn::Call(Call::Local(i32::MIN + n))
    }

    /// Concatenates functions (the first is the main program) and resolves [`call_fn`].
    fn link(funcs: Vec<Vec<Insn>>) -> Vec<Insn> {
        let slots = |f: &[Insn]| f.iter().map(Insn::slots).sum::<usize>();
        let starts: Vec<usize> =
            funcs.iter().scan(0, |at, f| Some(std::mem::replace(at, *at + slots(f)))).collect();
        let mut out = Vec::new();
        let mut slot = 0;
        for insn in funcs.concat() {
            out.push(match insn {
                Insn::Call(Call::Local(n)) if n < i32::MIN + 100 => {
                    let target = starts[(n - i32::MIN) as usize];
                    Insn::Call(Call::Local(target as i32 - slot as i32 - 1))
                }
                other => other,
            });
            slot += insn.slots();
        }
        out
    }

    fn helper(id: i32) -> Insn {
        Insn::Call(Call::Helper(id))
    }

    fn tail() -> Insn {
        helper(helpers::TAIL_CALL)
    }

    fn ld_map(dst: Reg, k: u64) -> Insn {
        Insn::LdImm64 { dst, pseudo: PSEUDO_MAP_FD, imm: k }
    }

    fn st(size: Size, dst: Reg, off: i16, imm: i32) -> Insn {
        Insn::StoreImm { size, dst, off, imm }
    }

    fn stx(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::Store { size, dst, src, off }
    }

    fn ldx(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::Load { size, signed: false, dst, src, off }
    }

    fn addx(dst: Reg, src: Reg) -> Insn {
        alux(Width::W64, AluOp::Add, dst, src)
    }

    /// `if dst != imm goto +off`.
    fn jne(dst: Reg, imm: i32, off: i16) -> Insn {
        Insn::Jmp { width: Width::W64, cond: Cond::Ne, dst, src: Operand::Imm(imm), off }
    }

    /// A set of programs (program `i` is named `names[i]`, or `p{i}`) and maps.
    fn set(progs: Vec<Vec<Insn>>, maps: Vec<Vec<Option<usize>>>) -> ProgramSet {
        set_with(progs, maps, vec![])
    }

    /// [`set`] with array maps (map references number the prog arrays first).
    fn set_with(progs: Vec<Vec<Insn>>, maps: Vec<Vec<Option<usize>>>, arrays: Vec<ArrayMap>) -> ProgramSet {
        let names = ["entry", "leaf"];
        let progs = progs
            .into_iter()
            .enumerate()
            .map(|(i, insns)| SetProgram {
                name: names.get(i).map_or(format!("p{i}"), |n| n.to_string()),
                prog: Program::new(insns).expect("valid test program"),
            })
            .collect();
        let maps = maps
            .into_iter()
            .enumerate()
            .map(|(i, slots)| ProgArray { name: format!("map{i}"), slots })
            .collect();
        ProgramSet::with_arrays(progs, maps, arrays).expect("consistent test set")
    }

    fn run_with(engine: &mut Reference, set: &ProgramSet, input: Input) -> Outcome {
        match engine.run_set(set, &input) {
            RunResult::Ran(out) => out,
            RunResult::CannotJudge(why) => panic!("cannot judge: {why}"),
            RunResult::Rejected(log) => panic!("rejected: {log}"),
        }
    }

    /// Runs a set with the default engine (Global), without a context.
    fn go(set: &ProgramSet) -> Outcome {
        run_with(&mut Reference::new(), set, Input::none())
    }

    /// Runs one linked program.
    fn go1(funcs: Vec<Vec<Insn>>) -> Outcome {
        go(&set(vec![link(funcs)], vec![]))
    }

    /// The verifier fault of a run, with its pc.
    fn verifier(out: Outcome) -> Fault {
        let fault = out.result.expect_err("a verifier fault");
        assert_eq!(fault.kind, FaultKind::Verifier, "{fault}");
        fault
    }

    // ---- bpf-to-bpf calls ----

    #[test]
    fn a_stack_address_left_in_the_context_cannot_be_compared() {
        let prog = Program::new(vec![
            Insn::Store { size: Size::DW, dst: Reg::R1, src: Reg::R10, off: 0 },
            Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R0, src: Operand::Imm(0) },
            Insn::Exit,
        ])
        .unwrap();
        let result = Reference::new().run(&prog, &Input::with_ctx(vec![0; 8]));
        let RunResult::CannotJudge(why) = result else { panic!("{result:?}") };
        assert!(why.contains("context byte 0 holds (part of) a stack or context address"), "{why}");
    }

    #[test]
    fn a_subprogram_returns_a_value() {
        // r1 = 5; r0 = sub(r1) = 5 * 3; r0 += 1 -> 16.
        let out = go1(vec![
            vec![mov64(Reg::R1, 5), call_fn(1), alu64(AluOp::Add, Reg::R0, 1), Insn::Exit],
            vec![movx(Reg::R0, Reg::R1), alu64(AluOp::Mul, Reg::R0, 3), Insn::Exit],
        ]);
        assert_eq!((out.result, out.tail_calls, out.helper_calls), (Ok(16), 0, vec![]));
    }

    #[test]
    fn callee_saved_registers_survive_a_call_and_arguments_do_not() {
        let main = |after: Insn| {
            vec![
                mov64(Reg::R6, 1),
                mov64(Reg::R7, 2),
                mov64(Reg::R8, 3),
                mov64(Reg::R9, 4),
                mov64(Reg::R1, 10),
                call_fn(1), // pc 5
                after,
                addx(Reg::R0, Reg::R6),
                addx(Reg::R0, Reg::R7),
                addx(Reg::R0, Reg::R8),
                addx(Reg::R0, Reg::R9),
                Insn::Exit,
            ]
        };
        let sub = vec![
            mov64(Reg::R6, 100),
            mov64(Reg::R7, 100),
            mov64(Reg::R8, 100),
            mov64(Reg::R9, 100),
            movx(Reg::R0, Reg::R1),
            Insn::Exit,
        ];
        // The callee returns its r1 (10); the caller adds its own r6..r9: 10 + 1 + 2 + 3 + 4.
        assert_eq!(go1(vec![main(Insn::Ja { off: 0 }), sub.clone()]).result, Ok(20));
        for r in [Reg::R1, Reg::R2, Reg::R3, Reg::R4, Reg::R5] {
            let fault = verifier(go1(vec![main(movx(Reg::R0, r)), sub.clone()]));
            assert_eq!(fault.pc, Some(6));
            assert_eq!(
                fault.detail,
                format!("R{} is undefined: R1-R5 are clobbered by the call at pc 5", r.num())
            );
        }
    }

    #[test]
    fn a_subprogram_starts_with_r0_and_r6_to_r9_undefined() {
        for r in [Reg::R6, Reg::R7, Reg::R8, Reg::R9] {
            let fault = verifier(go1(vec![vec![call_fn(1), Insn::Exit], vec![movx(Reg::R0, r), Insn::Exit]]));
            assert_eq!(fault.pc, Some(2));
            assert_eq!(
                fault.detail,
                format!(
                    "R{} is undefined: a subprogram starts with R0 and R6-R9 undefined (this one was called at pc 0)",
                    r.num()
                )
            );
        }
        // A subprogram that never writes r0 returns (the verifier checks R0 only at the
        // main function's exit), and leaves its caller's R0 undefined...
        let fault = verifier(go1(vec![vec![call_fn(1), Insn::Exit], vec![Insn::Exit]]));
        assert_eq!(fault.pc, Some(1));
        assert_eq!(fault.detail, "R0 is undefined: the subprogram called at pc 0 exited with R0 undefined");
        // ...which matters only if the caller reads it: a void function's call.
        let out = go1(vec![vec![call_fn(1), mov64(Reg::R0, 7), Insn::Exit], vec![Insn::Exit]]);
        assert_eq!(out.result, Ok(7));
        // Arguments pass as they are: the second call hands over the r1 the first clobbered.
        let fault = verifier(go1(vec![
            vec![call_fn(1), call_fn(1), Insn::Exit],
            vec![movx(Reg::R0, Reg::R1), Insn::Exit],
        ]));
        assert_eq!(fault.pc, Some(3));
        assert_eq!(fault.detail, "R1 is undefined: R1-R5 are clobbered by the call at pc 0");
    }

    #[test]
    fn frames_have_their_own_stacks_and_reach_their_callers() {
        // The callee stores 42 through the pointer to its caller's r10 - 8.
        let out = go1(vec![
            vec![
                st(Size::DW, Reg::R10, -8, 1),
                movx(Reg::R1, Reg::R10),
                alu64(AluOp::Add, Reg::R1, -8),
                call_fn(1),
                ldx(Size::DW, Reg::R0, Reg::R10, -8),
                Insn::Exit,
            ],
            vec![st(Size::DW, Reg::R1, 0, 42), mov64(Reg::R0, 0), Insn::Exit],
        ]);
        assert_eq!((out.result, out.r0_is_address), (Ok(42), false));
        // Each frame's r10 - 8 is its own: the caller still reads its 7.
        let out = go1(vec![
            vec![st(Size::DW, Reg::R10, -8, 7), call_fn(1), ldx(Size::DW, Reg::R0, Reg::R10, -8), Insn::Exit],
            vec![st(Size::DW, Reg::R10, -8, 99), ldx(Size::DW, Reg::R0, Reg::R10, -8), Insn::Exit],
        ]);
        assert_eq!(out.result, Ok(7));
        // The first frame a run makes has its stack at frame_top(1).
        let out = go1(vec![vec![call_fn(1), Insn::Exit], vec![movx(Reg::R0, Reg::R10), Insn::Exit]]);
        assert_eq!((out.result, out.r0_is_address), (Ok(frame_top(1)), true));
        // A pointer into a frame that returned reaches nothing.
        let out = go1(vec![
            vec![call_fn(1), ldx(Size::DW, Reg::R0, Reg::R0, 0), Insn::Exit],
            vec![
                st(Size::DW, Reg::R10, -8, 5),
                movx(Reg::R0, Reg::R10),
                alu64(AluOp::Add, Reg::R0, -8),
                Insn::Exit,
            ],
        ]);
        let fault = out.result.expect_err("dangling");
        assert_eq!((fault.kind, fault.pc), (FaultKind::MemoryAccess, Some(1)));
        // Above a callee's r10 there is nothing either (its caller's stack is elsewhere).
        let out = go1(vec![
            vec![st(Size::DW, Reg::R10, -8, 7), call_fn(1), Insn::Exit],
            vec![ldx(Size::DW, Reg::R0, Reg::R10, 8), Insn::Exit],
        ]);
        let fault = out.result.expect_err("above r10");
        assert_eq!((fault.kind, fault.pc), (FaultKind::MemoryAccess, Some(3)));
        assert_eq!(
            fault.detail,
            "8-byte load from 0x20010208 is outside the stack (the subprogram has no stack), \
             the stacks of the calling frames [0x200001f8, 0x20000200) and there is no context"
        );
    }

    #[test]
    fn a_new_frame_starts_uninitialized() {
        let with = |sub: Vec<Insn>| go1(vec![vec![call_fn(1), Insn::Exit], sub]);
        let fault = verifier(with(vec![ldx(Size::DW, Reg::R0, Reg::R10, -8), Insn::Exit]));
        assert_eq!(fault.pc, Some(2));
        assert!(fault.detail.starts_with("8-byte load from 0x200101f8 reads stack bytes nothing wrote"));
        // Half written is not written.
        let half = vec![st(Size::W, Reg::R10, -8, 1), ldx(Size::DW, Reg::R0, Reg::R10, -8), Insn::Exit];
        assert_eq!(verifier(with(half)).pc, Some(3));
        let written = vec![st(Size::W, Reg::R10, -8, 1), ldx(Size::W, Reg::R0, Reg::R10, -8), Insn::Exit];
        assert_eq!(with(written).result, Ok(1));
        // An atomic reads before it writes.
        let atomic = vec![
            mov64(Reg::R0, 0),
            mov64(Reg::R1, 1),
            Insn::Atomic { size: Size::DW, op: AtomicOp::Add, dst: Reg::R10, src: Reg::R1, off: -8 },
            Insn::Exit,
        ];
        let fault = verifier(with(atomic));
        assert_eq!(fault.pc, Some(4));
        assert!(
            fault.detail.starts_with("8-byte atomic add on 0x200101f8 reads stack bytes"),
            "{}",
            fault.detail
        );
    }

    /// `calls` nested calls (`calls + 1` frames): each function calls the next, the last
    /// returns 7.
    fn chain(calls: usize) -> Vec<Insn> {
        let mut funcs: Vec<Vec<Insn>> = (1..=calls as i32).map(|n| vec![call_fn(n), Insn::Exit]).collect();
        funcs.push(vec![mov64(Reg::R0, 7), Insn::Exit]);
        link(funcs)
    }

    #[test]
    fn eight_frames_are_allowed_and_nine_are_not() {
        assert_eq!(go(&set(vec![chain(7)], vec![])).result, Ok(7));
        let fault = verifier(go(&set(vec![chain(8)], vec![])));
        // The eighth function (slots 14 and 15) makes the ninth frame.
        assert_eq!(fault.pc, Some(14));
        assert_eq!(
            fault.detail,
            "the call would make a chain of 9 frames; the verifier allows at most 8 (MAX_CALL_FRAMES)"
        );
    }

    /// main uses `a` bytes of stack and calls a subprogram using `b`, which returns 1.
    fn stacks(a: i16, b: i16) -> Outcome {
        go1(vec![
            vec![st(Size::DW, Reg::R10, -a, 0), call_fn(1), Insn::Exit],
            vec![st(Size::DW, Reg::R10, -b, 0), mov64(Reg::R0, 1), Insn::Exit],
        ])
    }

    #[test]
    fn the_combined_stack_is_at_most_512_bytes() {
        assert_eq!(stacks(256, 256).result, Ok(1));
        // 256 + 264 rounded up to 272.
        let fault = verifier(stacks(256, 264));
        assert_eq!(fault.pc, Some(1));
        assert_eq!(
            fault.detail,
            "the combined stack of 2 frames would be 528 bytes (each function's depth rounded up to 16); \
             the verifier allows at most 512"
        );
        // Rounding: 496 + 8 counts 496 + 16 = 512, allowed; 504 + 8 counts 512 + 16.
        assert_eq!(stacks(496, 8).result, Ok(1));
        assert!(verifier(stacks(504, 8)).detail.contains("would be 528 bytes"));
        // Three frames: 256 + 128 + 128 = 512 fits, 256 + 128 + 136 (144) does not.
        let three = |c: i16| {
            go1(vec![
                vec![st(Size::DW, Reg::R10, -256, 0), call_fn(1), Insn::Exit],
                vec![st(Size::DW, Reg::R10, -128, 0), call_fn(2), Insn::Exit],
                vec![st(Size::DW, Reg::R10, -c, 0), mov64(Reg::R0, 3), Insn::Exit],
            ])
        };
        assert_eq!(three(128).result, Ok(3));
        let fault = verifier(three(136));
        assert_eq!(fault.pc, Some(4));
        assert!(fault.detail.contains("of 3 frames would be 528 bytes"), "{}", fault.detail);
    }

    #[test]
    fn a_subprogram_that_tail_calls_needs_less_than_256_bytes_below_it() {
        // The subprogram tries slot 5 of a 1-slot map (out of range: it falls through).
        let with = |depth: i16| {
            go(&set(
                vec![link(vec![
                    vec![st(Size::DW, Reg::R10, -depth, 0), call_fn(1), Insn::Exit],
                    vec![ld_map(Reg::R2, 0), mov64(Reg::R3, 5), tail(), mov64(Reg::R0, 1), Insn::Exit],
                ])],
                vec![vec![Some(0)]],
            ))
        };
        assert_eq!(with(240).result, Ok(1));
        let fault = verifier(with(256));
        assert_eq!(fault.pc, Some(1));
        assert_eq!(
            fault.detail,
            "the called subprogram makes tail calls and its callers' frames use 256 bytes of stack; \
             the verifier allows tail calls in subprograms only below 256 bytes"
        );
        // 248 bytes count as 256.
        assert!(verifier(with(248)).detail.contains("use 256 bytes"));
    }

    #[test]
    fn the_budget_counts_every_frame() {
        // call, r0 = 1, exit (sub), exit (main): 4 instructions.
        let s =
            set(vec![link(vec![vec![call_fn(1), Insn::Exit], vec![mov64(Reg::R0, 1), Insn::Exit]])], vec![]);
        assert_eq!(run_with(&mut Reference::with_budget(4), &s, Input::none()).result, Ok(1));
        let fault = run_with(&mut Reference::with_budget(3), &s, Input::none()).result.expect_err("budget");
        assert_eq!((fault.kind, fault.pc), (FaultKind::Budget, Some(1)));
    }

    // ---- undefined registers ----

    #[test]
    fn every_kind_of_read_of_an_undefined_register_is_caught() {
        // After `call jitdiff_counter` at pc 0, r1 is undefined; each instruction reads it.
        let reads = [
            alux(Width::W32, AluOp::Mov, Reg::R1, Reg::R1),
            alux(Width::W64, AluOp::Xor, Reg::R1, Reg::R1),
            alux(Width::W32, AluOp::Xor, Reg::R1, Reg::R1),
            alux(Width::W64, AluOp::Sub, Reg::R1, Reg::R1),
            alu64(AluOp::Add, Reg::R1, 1),
            alux(Width::W64, AluOp::Add, Reg::R0, Reg::R1),
            Insn::Neg { width: Width::W64, dst: Reg::R1 },
            Insn::End { order: ByteOrder::Be, bits: 16, dst: Reg::R1 },
            Insn::End { order: ByteOrder::Le, bits: 64, dst: Reg::R1 },
            Insn::MovSx { width: Width::W64, from: SxBits::S8, dst: Reg::R0, src: Reg::R1 },
            Insn::Jmp { width: Width::W64, cond: Cond::Eq, dst: Reg::R1, src: Operand::Imm(0), off: 0 },
            Insn::Jmp { width: Width::W32, cond: Cond::Eq, dst: Reg::R0, src: Operand::Reg(Reg::R1), off: 0 },
            ldx(Size::B, Reg::R0, Reg::R1, 0),
            st(Size::B, Reg::R1, 0, 0),
            stx(Size::DW, Reg::R10, Reg::R1, -8),
            Insn::Atomic { size: Size::DW, op: AtomicOp::Add, dst: Reg::R10, src: Reg::R1, off: -8 },
        ];
        for insn in reads {
            let fault = verifier(go1(vec![vec![
                st(Size::DW, Reg::R10, -8, 0),
                helper(helpers::COUNTER),
                insn,
                Insn::Exit,
            ]]));
            assert_eq!(fault.pc, Some(2), "{insn:?}");
            assert_eq!(fault.detail, "R1 is undefined: R1-R5 are clobbered by the call at pc 1", "{insn:?}");
        }
        // Writes define: a constant, a load, a map reference.
        let out = go(&set(
            vec![vec![
                st(Size::DW, Reg::R10, -8, 3),
                helper(helpers::COUNTER),
                mov64(Reg::R1, 1),
                ldx(Size::DW, Reg::R2, Reg::R10, -8),
                ld_map(Reg::R3, 0),
                movx(Reg::R0, Reg::R1),
                addx(Reg::R0, Reg::R2),
                alu64(AluOp::Sub, Reg::R3, map_addr(0) as i32),
                addx(Reg::R0, Reg::R3),
                Insn::Exit,
            ]],
            vec![vec![None]],
        ));
        // 1 + 3 + 0; the map address minus itself keeps the map mark.
        assert_eq!((out.result, out.r0_is_address), (Ok(4), true));
        // cmpxchg reads r0, which a subprogram starts without.
        let fault = verifier(go1(vec![
            vec![call_fn(1), Insn::Exit],
            vec![
                st(Size::DW, Reg::R10, -8, 0),
                mov64(Reg::R3, 1),
                Insn::Atomic { size: Size::DW, op: AtomicOp::Cmpxchg, dst: Reg::R10, src: Reg::R3, off: -8 },
                Insn::Exit,
            ],
        ]));
        assert_eq!(fault.pc, Some(4));
        assert!(fault.detail.starts_with("R0 is undefined"), "{}", fault.detail);
    }

    // ---- helpers ----

    /// `r1 = 1` to `r5 = 5`: the arguments of the mixing functions in these tests.
    fn args_1_to_5() -> Vec<Insn> {
        (1..=5u8).map(|r| mov64(Reg::ALL[r as usize], r as i32)).collect()
    }

    #[test]
    fn every_helper_runs_and_is_traced() {
        use helpers::*;
        let out = go1(vec![[
            vec![
                helper(KTIME_GET_NS),
                helper(GET_NUMA_NODE_ID),
                helper(JIFFIES64),
                helper(KTIME_GET_BOOT_NS),
                helper(KTIME_GET_COARSE_NS),
                helper(TEST_FUNC),
            ],
            args_1_to_5(),
            vec![helper(MIX), helper(COUNTER), helper(COUNTER), Insn::Exit],
        ]
        .concat()]);
        // The clock advances by 1000 per read; numa node and bpf_test_func return 0; the
        // counter counts 1, 2. mix is the shared implementation's, on (1, 2, 3, 4, 5).
        let mixed = Helpers::new().call(MIX, [1, 2, 3, 4, 5]).expect("mix exists");
        let call = |id, args: Vec<u64>, ret| HelperCall { id, kfunc: false, args, ret };
        assert_eq!(out.result, Ok(2));
        assert_eq!(
            out.helper_calls,
            vec![
                call(KTIME_GET_NS, vec![], 1000),
                call(GET_NUMA_NODE_ID, vec![], 0),
                call(JIFFIES64, vec![], 2000),
                call(KTIME_GET_BOOT_NS, vec![], 3000),
                call(KTIME_GET_COARSE_NS, vec![], 4000),
                call(TEST_FUNC, vec![], 0),
                call(MIX, vec![1, 2, 3, 4, 5], mixed),
                call(COUNTER, vec![], 1),
                call(COUNTER, vec![], 2),
            ]
        );
        // Helpers in a subprogram share the run's state; the trace is in call order.
        let out = go1(vec![
            vec![helper(COUNTER), call_fn(1), helper(COUNTER), Insn::Exit],
            vec![helper(COUNTER), Insn::Exit],
        ]);
        assert_eq!(out.result, Ok(3));
        assert_eq!(out.helper_calls.iter().map(|c| c.ret).collect::<Vec<_>>(), vec![1, 2, 3]);
        // Each run starts afresh.
        let mut engine = Reference::new();
        let s = set(vec![vec![helper(COUNTER), Insn::Exit]], vec![]);
        assert_eq!(run_with(&mut engine, &s, Input::none()).result, Ok(1));
        assert_eq!(run_with(&mut engine, &s, Input::none()).result, Ok(1));
    }

    #[test]
    fn kfuncs_run_and_are_traced_apart_from_helpers() {
        use helpers::*;
        let kfunc = |id| Insn::Call(Call::Kfunc(id));
        let out = go1(vec![[
            vec![kfunc(KFUNC_COUNTER), helper(COUNTER)],
            args_1_to_5(),
            vec![kfunc(KFUNC_MIX), kfunc(KFUNC_COUNTER), Insn::Exit],
        ]
        .concat()]);
        let kmix = Helpers::new().call_kfunc(KFUNC_MIX, [1, 2, 3, 4, 5]).expect("kmix exists");
        let call = |id, kfunc, args: Vec<u64>, ret| HelperCall { id, kfunc, args, ret };
        // The kfunc counter counts its own calls: 1, then 2; the helper's is 1.
        assert_eq!(out.result, Ok(2));
        assert_eq!(
            out.helper_calls,
            vec![
                call(KFUNC_COUNTER, true, vec![], 1),
                call(COUNTER, false, vec![], 1),
                call(KFUNC_MIX, true, vec![1, 2, 3, 4, 5], kmix),
                call(KFUNC_COUNTER, true, vec![], 2),
            ]
        );
        // Like a helper's, a kfunc's arguments are scalars, and R1-R5 are gone after it.
        let fault = verifier(go1(vec![vec![
            mov64(Reg::R2, 2),
            mov64(Reg::R3, 3),
            mov64(Reg::R4, 4),
            mov64(Reg::R5, 5),
            Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R1, src: Operand::Reg(Reg::R10) },
            kfunc(KFUNC_MIX),
            Insn::Exit,
        ]]));
        assert!(fault.detail.contains("jitdiff_kmix: R1 is an address"), "{}", fault.detail);
        // The kernel's kfuncs return nothing: traced with 0, R0 undefined after them.
        let out = go1(vec![vec![
            kfunc(KFUNC_PREEMPT_DISABLE),
            kfunc(KFUNC_PREEMPT_ENABLE),
            mov64(Reg::R0, 3),
            Insn::Exit,
        ]]);
        assert_eq!(out.result, Ok(3));
        assert_eq!(
            out.helper_calls,
            vec![call(KFUNC_PREEMPT_DISABLE, true, vec![], 0), call(KFUNC_PREEMPT_ENABLE, true, vec![], 0)]
        );
        let fault =
            verifier(go1(vec![vec![kfunc(KFUNC_RCU_READ_LOCK), kfunc(KFUNC_RCU_READ_UNLOCK), Insn::Exit]]));
        assert!(
            fault.detail.contains("R0 is undefined: the function called at pc 1 returns nothing"),
            "{}",
            fault.detail
        );
    }

    #[test]
    fn helper_arguments_are_checked() {
        use helpers::{COUNTER, MIX};
        // An address where jitdiff_mix expects a scalar: the stack, the context, a map.
        let fault =
            verifier(go1(vec![vec![movx(Reg::R1, Reg::R10), mov64(Reg::R2, 0), helper(MIX), Insn::Exit]]));
        assert_eq!(
            (fault.pc, fault.detail.as_str()),
            (Some(2), "helper jitdiff_mix: R1 is an address, a scalar is expected")
        );
        let s = set(vec![vec![mov64(Reg::R2, 0), helper(MIX), Insn::Exit]], vec![]);
        let fault = verifier(run_with(&mut Reference::new(), &s, Input::with_ctx(vec![0; 4])));
        assert_eq!(
            (fault.pc, fault.detail.as_str()),
            (Some(1), "helper jitdiff_mix: R1 is an address, a scalar is expected")
        );
        let s =
            set(vec![vec![mov64(Reg::R1, 0), ld_map(Reg::R2, 0), helper(MIX), Insn::Exit]], vec![vec![None]]);
        assert_eq!(verifier(go(&s)).detail, "helper jitdiff_mix: R2 is an address, a scalar is expected");
        // Arguments a call clobbered.
        let fault = verifier(go1(vec![vec![helper(COUNTER), helper(MIX), Insn::Exit]]));
        assert_eq!(
            (fault.pc, fault.detail.as_str()),
            (Some(1), "helper jitdiff_mix: R1 is undefined: R1-R5 are clobbered by the call at pc 0")
        );
        // jitdiff_mix reads all five: R5 too.
        let fault = verifier(go1(vec![vec![
            helper(COUNTER),
            mov64(Reg::R1, 1),
            mov64(Reg::R2, 2),
            mov64(Reg::R3, 3),
            mov64(Reg::R4, 4),
            helper(MIX),
            Insn::Exit,
        ]]));
        assert_eq!(
            (fault.pc, fault.detail.as_str()),
            (Some(5), "helper jitdiff_mix: R5 is undefined: R1-R5 are clobbered by the call at pc 0")
        );
        // Registers past the prototype's arguments are not read: jitdiff_counter takes none.
        assert_eq!(go1(vec![vec![helper(COUNTER), helper(COUNTER), Insn::Exit]]).result, Ok(2));
        // Unknown helpers.
        let fault = verifier(go1(vec![vec![helper(99), Insn::Exit]]));
        assert_eq!((fault.pc, fault.detail.as_str()), (Some(0), "unknown helper 99"));
    }

    // ---- maps and tail calls ----

    #[test]
    fn lddw_of_a_map_loads_its_address() {
        let s = set(vec![vec![ld_map(Reg::R0, 1), Insn::Exit]], vec![vec![None], vec![None]]);
        let out = go(&s);
        assert_eq!((out.result, out.r0_is_address), (Ok(map_addr(1)), true));
        // A set that skipped the check: the map does not exist.
        let prog = Program::new(vec![ld_map(Reg::R0, 0), Insn::Exit]).expect("valid");
        let fault = verifier(go(&ProgramSet::single(prog)));
        assert_eq!(
            (fault.pc, fault.detail.as_str()),
            (Some(0), "lddw names map 0, which the program set does not have")
        );
    }

    /// `r2 = map0; r3 = index; <tail call>; <after>; exit` against map0 = [leaf, empty]
    /// where leaf returns 42.
    fn tail_call_then(index: Insn, tail_insn: Insn, after: Insn) -> Outcome {
        go(&set(
            vec![
                vec![ld_map(Reg::R2, 0), index, tail_insn, after, Insn::Exit],
                vec![mov64(Reg::R0, 42), Insn::Exit],
            ],
            vec![vec![Some(1), None]],
        ))
    }

    /// [`tail_call_then`] with `r0 = 99` after the tail call.
    fn tail_call_with(index: Insn, tail_insn: Insn) -> Outcome {
        tail_call_then(index, tail_insn, mov64(Reg::R0, 99))
    }

    #[test]
    fn a_tail_call_jumps_to_its_target_or_falls_through() {
        let result = |index: Insn| {
            let out = tail_call_with(index, tail());
            (out.result.expect("runs"), out.tail_calls)
        };
        assert_eq!(result(mov64(Reg::R3, 0)), (42, 1));
        assert_eq!(result(mov64(Reg::R3, 1)), (99, 0), "empty slot");
        assert_eq!(result(mov64(Reg::R3, 2)), (99, 0), "index >= max_entries");
        assert_eq!(result(lddw(Reg::R3, 0x1_0000_0000)), (42, 1), "the index is 32 bits: 0");
        assert_eq!(result(lddw(Reg::R3, 0x1_0000_0001)), (99, 0), "the index is 32 bits: 1");
        assert_eq!(result(mov64(Reg::R3, -1)), (99, 0), "0xffffffff");
        // The kernel-internal instruction is the same tail call.
        let out = tail_call_with(mov64(Reg::R3, 0), Insn::TailCall);
        assert_eq!((out.result, out.tail_calls), (Ok(42), 1));
    }

    #[test]
    fn a_failed_tail_call_clobbers_r0_to_r5() {
        for r in 0..=5u8 {
            let reg = Reg::new(r).expect("a register");
            let out = tail_call_then(mov64(Reg::R3, 1), tail(), movx(Reg::R0, reg));
            let fault = verifier(out);
            // r2 = map (slots 0-1), r3 = 1 (slot 2), the tail call (slot 3), the read (slot 4).
            assert_eq!(fault.pc, Some(4));
            assert_eq!(
                fault.detail,
                format!("R{r} is undefined: R0-R5 are clobbered by the tail call at pc 3, which failed")
            );
        }
    }

    #[test]
    fn a_tail_call_target_starts_with_r1_and_r10() {
        let with = |leaf: Vec<Insn>, input: Input| {
            let s = set(
                vec![
                    vec![ld_map(Reg::R2, 0), mov64(Reg::R3, 0), tail(), mov64(Reg::R0, 99), Insn::Exit],
                    leaf,
                ],
                vec![vec![Some(1)]],
            );
            run_with(&mut Reference::new(), &s, input)
        };
        let out = with(vec![movx(Reg::R0, Reg::R1), Insn::Exit], Input::with_ctx(vec![0; 4]));
        assert_eq!((out.result, out.r0_is_address), (Ok(CTX_ADDR), true));
        let out = with(vec![movx(Reg::R0, Reg::R10), Insn::Exit], Input::none());
        assert_eq!(out.result, Ok(frame_top(1)), "a fresh frame at a new address");
        for r in [Reg::R0, Reg::R2, Reg::R5, Reg::R6, Reg::R9] {
            let fault = verifier(with(vec![movx(Reg::R0, r), Insn::Exit], Input::none()));
            assert_eq!(fault.pc, Some(0));
            assert_eq!(
                fault.detail,
                format!(
                    "in program leaf (#1): R{} is undefined: a tail-call target starts with only R1 and \
                     R10 defined (this one was entered by the tail call at pc 3 of program entry)",
                    r.num()
                )
            );
        }
        // Faults in another program than the entry say which.
        let out = with(vec![mov64(Reg::R2, 0), st(Size::B, Reg::R2, 0, 1), Insn::Exit], Input::none());
        let fault = out.result.expect_err("null store");
        assert_eq!((fault.kind, fault.pc), (FaultKind::MemoryAccess, Some(1)));
        assert_eq!(
            fault.detail,
            "in program leaf (#1): 1-byte store to 0x0 is outside the stack (the program has no stack) \
             and there is no context"
        );
    }

    #[test]
    fn tail_call_operands_are_checked() {
        let with = |r2: Insn, r3: Insn| {
            go(&set(
                vec![
                    vec![r2, r3, tail(), mov64(Reg::R0, 99), Insn::Exit],
                    vec![mov64(Reg::R0, 42), Insn::Exit],
                ],
                vec![vec![Some(1)]],
            ))
        };
        let not_a_map = "tail call: R2 is not a map (it must hold what an `lddw rN, map` loaded)";
        // The right value, but a plain constant.
        let fault = verifier(with(lddw(Reg::R2, map_addr(0)), mov64(Reg::R3, 0)));
        assert_eq!((fault.pc, fault.detail.as_str()), (Some(3), not_a_map));
        // A map address moved on to a map that does not exist.
        let s = set(
            vec![vec![
                ld_map(Reg::R2, 0),
                alu64(AluOp::Add, Reg::R2, MAP_STRIDE as i32),
                mov64(Reg::R3, 0),
                tail(),
                mov64(Reg::R0, 99),
                Insn::Exit,
            ]],
            vec![vec![Some(0)]],
        );
        assert_eq!(verifier(go(&s)).detail, not_a_map);
        // The index must be a scalar.
        let fault = verifier(with(ld_map(Reg::R2, 0), movx(Reg::R3, Reg::R10)));
        assert_eq!(fault.detail, "tail call: R3 (the index) is an address, a scalar is expected");
        // R1 (the context) must be defined: here a helper call clobbered it.
        let s = set(
            vec![vec![helper(helpers::COUNTER), ld_map(Reg::R2, 0), mov64(Reg::R3, 0), tail(), Insn::Exit]],
            vec![vec![Some(0)]],
        );
        let fault = verifier(go(&s));
        assert_eq!(
            (fault.pc, fault.detail.as_str()),
            (Some(4), "tail call: R1 is undefined: R1-R5 are clobbered by the call at pc 0")
        );
    }

    /// The loop `do { r1 = r7; r2 = map0; r3 = index; tail call } while (--counter != 0)`
    /// (7 slots; `r7` holds the context), repeated `times` times.
    fn tail_call_loop(counter: Reg, times: i32, index: i32) -> Vec<Insn> {
        vec![
            mov64(counter, times),
            movx(Reg::R1, Reg::R7),
            ld_map(Reg::R2, 0),
            mov64(Reg::R3, index),
            tail(),
            alu64(AluOp::Sub, counter, 1),
            jne(counter, 0, -7),
        ]
    }

    /// `r7 = r1; <times> tail calls to `index`; then a tail call to slot 0 (the leaf,
    /// returning 42); r0 = 99`. map0 = [leaf, empty]. Run on `engine`.
    fn after_tail_calls_on(engine: &mut Reference, times: i32, index: i32) -> Outcome {
        let mut entry = vec![movx(Reg::R7, Reg::R1)];
        entry.extend(tail_call_loop(Reg::R6, times, index));
        entry.extend([
            movx(Reg::R1, Reg::R7),
            ld_map(Reg::R2, 0),
            mov64(Reg::R3, 0),
            tail(),
            mov64(Reg::R0, 99),
            Insn::Exit,
        ]);
        let s = set(vec![entry, vec![mov64(Reg::R0, 42), Insn::Exit]], vec![vec![Some(1), None]]);
        run_with(engine, &s, Input::none())
    }

    #[test]
    fn an_empty_slot_counts_only_under_the_6_12_rule_and_an_index_out_of_range_never() {
        let counted = || Reference::new().with_empty_slot(EmptySlotRule::Counted);
        // 6.12: 32 failed tail calls to the empty slot leave one: the 33rd succeeds.
        let out = after_tail_calls_on(&mut counted(), 32, 1);
        assert_eq!((out.result, out.tail_calls), (Ok(42), 1));
        // After 33 the count is spent: the valid slot fails too.
        let out = after_tail_calls_on(&mut counted(), 33, 1);
        assert_eq!((out.result, out.tail_calls), (Ok(99), 0));
        // Today's rule: a tail call that finds no program costs nothing, so after 33 (or
        // 100) of them the valid slot still succeeds.
        for n in [33, 100] {
            let out = after_tail_calls_on(&mut Reference::new(), n, 1);
            assert_eq!((out.result, out.tail_calls), (Ok(42), 1), "{n} empty-slot tail calls");
        }
        // An index out of range fails before the count under both rules: 100 cost nothing.
        for mut engine in [counted(), Reference::new()] {
            let out = after_tail_calls_on(&mut engine, 100, 2);
            assert_eq!((out.result, out.tail_calls), (Ok(42), 1), "{:?}", engine.empty_slot());
        }
    }

    /// A program that adds 1 to the u32 at ctx[0] and tail-calls slot 0 of map0 (itself),
    /// then returns 1.
    fn self_tail_call() -> Vec<Insn> {
        vec![
            ldx(Size::W, Reg::R2, Reg::R1, 0),
            alu64(AluOp::Add, Reg::R2, 1),
            stx(Size::W, Reg::R1, Reg::R2, 0),
            ld_map(Reg::R2, 0),
            mov64(Reg::R3, 0),
            tail(),
            mov64(Reg::R0, 1),
            Insn::Exit,
        ]
    }

    #[test]
    fn a_self_tail_call_runs_34_times() {
        // The entry run plus 33 targets each count once; the 34th tail call fails.
        for semantics in [Global, PerFrame] {
            let s = set(vec![self_tail_call()], vec![vec![Some(0)]]);
            let out = run_with(&mut Reference::with_semantics(semantics), &s, Input::with_ctx(vec![0; 4]));
            assert_eq!(out.result, Ok(1), "{semantics:?}");
            assert_eq!(out.ctx, vec![34, 0, 0, 0], "{semantics:?}");
            assert_eq!(out.tail_calls, 33, "{semantics:?}");
        }
    }

    #[test]
    fn a_tail_call_from_a_subprogram_returns_to_its_caller() {
        // main: r6 = 1000; r0 = sub(); r0 += r6. sub tail-calls the leaf, which returns 5
        // (after calling its own subprogram, which returns 4): 5 + 1000.
        let entry = link(vec![
            vec![mov64(Reg::R6, 1000), call_fn(1), addx(Reg::R0, Reg::R6), Insn::Exit],
            vec![ld_map(Reg::R2, 0), mov64(Reg::R3, 0), tail(), mov64(Reg::R0, 7), Insn::Exit],
        ]);
        let leaf = link(vec![
            vec![call_fn(1), alu64(AluOp::Add, Reg::R0, 1), Insn::Exit],
            vec![mov64(Reg::R0, 4), Insn::Exit],
        ]);
        let out = go(&set(vec![entry, leaf], vec![vec![Some(1)]]));
        assert_eq!((out.result, out.tail_calls), (Ok(1005), 1));
    }

    #[test]
    fn per_frame_counts_give_a_callee_a_copy() {
        // main: call sub (20 failed tail calls to the empty slot), then 13 more, then one to
        // the leaf. Global: 20 + 13 = 33 spent, the last fails (99). PerFrame: the
        // subprogram spent its copy; main has 13, the last succeeds (42).
        let mut main = vec![movx(Reg::R7, Reg::R1), call_fn(1)];
        main.extend(tail_call_loop(Reg::R6, 13, 1));
        main.extend([
            movx(Reg::R1, Reg::R7),
            ld_map(Reg::R2, 0),
            mov64(Reg::R3, 0),
            tail(),
            mov64(Reg::R0, 99),
            Insn::Exit,
        ]);
        let mut sub = vec![movx(Reg::R7, Reg::R1)];
        sub.extend(tail_call_loop(Reg::R6, 20, 1));
        sub.extend([mov64(Reg::R0, 0), Insn::Exit]);
        let s =
            set(vec![link(vec![main, sub]), vec![mov64(Reg::R0, 42), Insn::Exit]], vec![vec![Some(1), None]]);
        // The empty slot spends counts under 6.12's rule only.
        let engine = |semantics| Reference::with_semantics(semantics).with_empty_slot(EmptySlotRule::Counted);
        let out = run_with(&mut engine(Global), &s, Input::none());
        assert_eq!((out.result, out.tail_calls), (Ok(99), 0));
        let out = run_with(&mut engine(PerFrame), &s, Input::none());
        assert_eq!((out.result, out.tail_calls), (Ok(42), 1));
        // Today's rule: nothing was spent, the last tail call succeeds under both.
        for semantics in [Global, PerFrame] {
            let out = run_with(&mut Reference::with_semantics(semantics), &s, Input::none());
            assert_eq!((out.result, out.tail_calls), (Ok(42), 1), "{semantics:?}");
        }
    }

    /// The "tailcall hierarchy" program: `entry { ctx[0] += 1; sub(); sub(); return 1 }`
    /// with `sub { tail_call(map0, slot) ; return 0 }`.
    fn hierarchy(slot: i32) -> Vec<Insn> {
        link(vec![
            vec![
                movx(Reg::R6, Reg::R1),
                ldx(Size::W, Reg::R2, Reg::R6, 0),
                alu64(AluOp::Add, Reg::R2, 1),
                stx(Size::W, Reg::R6, Reg::R2, 0),
                movx(Reg::R1, Reg::R6),
                call_fn(1),
                movx(Reg::R1, Reg::R6),
                call_fn(1),
                mov64(Reg::R0, 1),
                Insn::Exit,
            ],
            vec![ld_map(Reg::R2, 0), mov64(Reg::R3, slot), tail(), mov64(Reg::R0, 0), Insn::Exit],
        ])
    }

    #[test]
    fn tailcall_hierarchy() {
        // sub tail-calls the entry (slot 0 = program 0).
        let s = set(vec![hierarchy(0)], vec![vec![Some(0)]]);
        // Global: one count. Each entry instance's first sub() tail-calls a new instance
        // while the count lasts: 33 succeed, so 34 instances bump the counter; every other
        // sub() fails and returns 0, and each instance returns 1 to the sub() call it
        // replaced, the first to the end of the run.
        let out = run_with(
            &mut Reference::with_budget_and_semantics(100_000, Global),
            &s,
            Input::with_ctx(vec![0; 4]),
        );
        assert_eq!((out.result, out.tail_calls, out.ctx), (Ok(1), 33, vec![34, 0, 0, 0]));
        // PerFrame: both sub() calls of an instance start from the instance's own count c, so
        // an instance starting at c runs N(c) = 1 + 2 N(c + 1) instances, N(33) = 1: N(0) =
        // 2^34 - 1, far beyond any budget.
        let out = run_with(
            &mut Reference::with_budget_and_semantics(100_000, PerFrame),
            &s,
            Input::with_ctx(vec![0; 4]),
        );
        assert_eq!(out.result.expect_err("explodes").kind, FaultKind::Budget);
    }

    #[test]
    fn tailcall_hierarchy_from_a_count_of_31() {
        // A starter spends 30 on the empty slot 1, then tail-calls the hierarchy program
        // (slot 0; count 31), whose sub() tail-calls it again.
        let mut starter = vec![movx(Reg::R7, Reg::R1)];
        starter.extend(tail_call_loop(Reg::R6, 30, 1));
        starter.extend([
            movx(Reg::R1, Reg::R7),
            ld_map(Reg::R2, 0),
            mov64(Reg::R3, 0),
            tail(),
            mov64(Reg::R0, 99),
            Insn::Exit,
        ]);
        let s = set(vec![starter, hierarchy(0)], vec![vec![Some(1), None]]);
        let ctx = || Input::with_ctx(vec![0; 4]);
        // The empty slot spends counts under 6.12's rule.
        let engine = |semantics| Reference::with_semantics(semantics).with_empty_slot(EmptySlotRule::Counted);
        // Global: instances at counts 31, 32, 33 (two more successful tail calls), then
        // every tail call fails: 3 instances, 1 + 2 successful tail calls.
        let out = run_with(&mut engine(Global), &s, ctx());
        assert_eq!((out.result, out.tail_calls, out.ctx), (Ok(1), 3, vec![3, 0, 0, 0]));
        // PerFrame: N(33) = 1, N(32) = 3, N(31) = 7 instances; 1 + 6 successful tail calls.
        let out = run_with(&mut engine(PerFrame), &s, ctx());
        assert_eq!((out.result, out.tail_calls, out.ctx), (Ok(1), 7, vec![7, 0, 0, 0]));
    }

    #[test]
    fn the_engine_is_reusable_after_calls() {
        let mut engine = Reference::with_semantics(PerFrame);
        assert_eq!(engine.semantics(), PerFrame);
        let s = set(vec![self_tail_call()], vec![vec![Some(0)]]);
        let first = run_with(&mut engine, &s, Input::with_ctx(vec![0; 4]));
        assert_eq!(run_with(&mut engine, &s, Input::with_ctx(vec![0; 4])), first);
        let single = set(vec![vec![ldx(Size::DW, Reg::R0, Reg::R10, -8), Insn::Exit]], vec![]);
        assert_eq!(run_with(&mut engine, &single, Input::none()).result, Ok(0), "one zeroed frame again");
        assert_eq!(Reference::default().semantics(), Global);
    }

    // ---- array maps and bpf_map_lookup_elem ----

    /// An array map whose bytes count 0, 1, 2, ... (`value_size * entries` of them).
    fn counting(name: &str, value_size: u32, entries: u32) -> ArrayMap {
        ArrayMap {
            name: name.into(),
            value_size,
            values: (0..value_size * entries).map(|b| b as u8).collect(),
        }
    }

    /// `*(u32 *)(r10 - 4) = key; r1 = map; r2 = r10 - 4; call bpf_map_lookup_elem`: slots
    /// 0 to 5 (the `lddw` takes two), so what follows starts at slot 6.
    fn lookup(map: u64, key: i32) -> Vec<Insn> {
        vec![
            st(Size::W, Reg::R10, -4, key),
            ld_map(Reg::R1, map),
            movx(Reg::R2, Reg::R10),
            alu64(AluOp::Add, Reg::R2, -4),
            helper(helpers::MAP_LOOKUP_ELEM),
        ]
    }

    /// `first` followed by `rest`.
    fn then(first: Vec<Insn>, rest: impl IntoIterator<Item = Insn>) -> Vec<Insn> {
        first.into_iter().chain(rest).collect()
    }

    /// The trace entry of a lookup in array `array` (its index among the array maps).
    fn traced(array: u64, key: u64, found: bool) -> HelperCall {
        HelperCall { id: helpers::MAP_LOOKUP_ELEM, kfunc: false, args: vec![array, key], ret: found as u64 }
    }

    #[test]
    fn a_lookup_finds_the_value_or_returns_null() {
        // Map 0 is a prog array, map 1 the array (8-byte values, 4 of them, bytes 0..32):
        // its values start at map_addr(1) + 8 = 0x08010008, so value 2 is at 0x08010018.
        let with = |body: Vec<Insn>| go(&set_with(vec![body], vec![vec![None]], vec![counting("arr", 8, 4)]));
        let out = with(then(lookup(1, 2), [Insn::Exit]));
        assert_eq!((out.result, out.r0_is_address), (Ok(0x0801_0018), true));
        assert_eq!(map_addr(1), 0x0801_0000);
        assert_eq!(out.helper_calls, vec![traced(0, 2, true)], "array 0 of the array maps");
        assert_eq!(out.helper_calls[0].to_string(), "map_lookup_elem(0x0, 0x2) = 0x1");
        // Through the pointer: value 2 holds bytes 16..24.
        let out = with(then(lookup(1, 2), [ldx(Size::DW, Reg::R0, Reg::R0, 0), Insn::Exit]));
        assert_eq!((out.result, out.r0_is_address), (Ok(0x1716_1514_1312_1110), false));
        // key == max_entries, and 0xffffffff: NULL, a plain 0.
        let out = with(then(lookup(1, 4), [Insn::Exit]));
        assert_eq!((out.result, out.r0_is_address), (Ok(0), false));
        assert_eq!(out.helper_calls, vec![traced(0, 4, false)]);
        let out = with(then(lookup(1, -1), [Insn::Exit]));
        assert_eq!((out.result, out.helper_calls), (Ok(0), vec![traced(0, 0xffff_ffff, false)]));
        // The key is the 4 bytes R2 points to: 03 00 00 00 (then 01 00 00 00, not read).
        let out = with(vec![
            lddw(Reg::R3, 0x1_0000_0003),
            stx(Size::DW, Reg::R10, Reg::R3, -8),
            ld_map(Reg::R1, 1),
            movx(Reg::R2, Reg::R10),
            alu64(AluOp::Add, Reg::R2, -8),
            helper(helpers::MAP_LOOKUP_ELEM),
            ldx(Size::DW, Reg::R0, Reg::R0, 0),
            Insn::Exit,
        ]);
        assert_eq!(out.result, Ok(0x1f1e_1d1c_1b1a_1918));
        assert_eq!(out.helper_calls, vec![traced(0, 3, true)]);
        // R1-R5 are undefined after the call.
        let fault = verifier(with(then(lookup(1, 0), [movx(Reg::R0, Reg::R2), Insn::Exit])));
        assert_eq!(
            (fault.pc, fault.detail.as_str()),
            (Some(6), "R2 is undefined: R1-R5 are clobbered by the call at pc 5")
        );
        // The array map's own lddw loads its address, marked as a map.
        let out = with(vec![ld_map(Reg::R0, 1), Insn::Exit]);
        assert_eq!((out.result, out.r0_is_address), (Ok(0x0801_0000), true));
    }

    #[test]
    fn lookups_are_traced_in_order_with_the_array_index() {
        // Maps: 0 the prog array, 1 array a (4-byte values, 2), 2 array b (8-byte values, 3).
        let s = set_with(
            vec![[
                vec![helper(helpers::COUNTER)],
                lookup(2, 2),
                vec![movx(Reg::R6, Reg::R0)],
                lookup(1, 2),
                vec![movx(Reg::R0, Reg::R6), Insn::Exit],
            ]
            .concat()],
            vec![vec![None]],
            vec![ArrayMap::zeroed("a", 4, 2), ArrayMap::zeroed("b", 8, 3)],
        );
        let out = go(&s);
        // b's values start at map_addr(2) + 8 = 0x08020008; value 2 is 16 bytes further.
        assert_eq!((out.result, out.r0_is_address), (Ok(0x0802_0018), true));
        assert_eq!(
            out.helper_calls,
            vec![
                HelperCall { id: helpers::COUNTER, kfunc: false, args: vec![], ret: 1 },
                traced(1, 2, true),
                traced(0, 2, false),
            ]
        );
        assert_eq!(out.arrays, vec![vec![0; 8], vec![0; 24]], "every array, in the set's order");
    }

    #[test]
    fn map_values_are_read_and_written_and_end_up_in_the_outcome() {
        // One array of three 4-byte values holding 1..=12; value 1 is 05 06 07 08.
        let arr = ArrayMap { name: "arr".into(), value_size: 4, values: (1..=12).collect() };
        let s = set_with(
            vec![then(
                lookup(0, 1),
                [
                    movx(Reg::R6, Reg::R0),
                    ldx(Size::W, Reg::R1, Reg::R6, 0), // 0x08070605
                    alu64(AluOp::Add, Reg::R1, 1),     // 0x08070606
                    stx(Size::W, Reg::R6, Reg::R1, 0), // 06 06 07 08
                    st(Size::H, Reg::R6, 2, 0x0a0b),   // 06 06 0b 0a
                    mov64(Reg::R2, 0x10),
                    Insn::Atomic { size: Size::W, op: AtomicOp::Add, dst: Reg::R6, src: Reg::R2, off: 0 },
                    ldx(Size::W, Reg::R0, Reg::R6, 0), // 0x0a0b0606 + 0x10
                    Insn::Exit,
                ],
            )],
            vec![],
            vec![arr],
        );
        let mut engine = Reference::new();
        let out = run_with(&mut engine, &s, Input::none());
        assert_eq!((out.result.clone(), out.r0_is_address), (Ok(0x0a0b_0616), false));
        assert_eq!(out.arrays, vec![vec![1, 2, 3, 4, 0x16, 0x06, 0x0b, 0x0a, 9, 10, 11, 12]]);
        // Every run starts from the initial values.
        assert_eq!(run_with(&mut engine, &s, Input::none()), out);
        // A fault keeps what was stored before it: value 2 (bytes 9..=12) gets 0x63, then a
        // load just past the last value.
        let s = set_with(
            vec![then(
                lookup(0, 2),
                [st(Size::B, Reg::R0, 0, 0x63), ldx(Size::W, Reg::R0, Reg::R0, 4), Insn::Exit],
            )],
            vec![],
            vec![ArrayMap { name: "arr".into(), value_size: 4, values: (1..=12).collect() }],
        );
        let out = go(&s);
        let fault = out.result.expect_err("past the values");
        assert_eq!((fault.kind, fault.pc), (FaultKind::MemoryAccess, Some(7)));
        assert_eq!(
            fault.detail,
            "4-byte load from 0x8000014 is outside the stack [0x20000000, 0x20000200) and there is no \
             context, and outside the values of array map arr [0x8000008, 0x8000014)"
        );
        assert_eq!(out.arrays, vec![vec![1, 2, 3, 4, 5, 6, 7, 8, 0x63, 10, 11, 12]]);
    }

    #[test]
    fn an_access_through_a_map_value_stays_inside_that_value() {
        // 8-byte values from 0x08000008: value 1 is [0x08000010, 0x08000018).
        let with = |key: i32, access: Insn| {
            let s = set_with(
                vec![then(lookup(0, key), [access, mov64(Reg::R0, 0), Insn::Exit])],
                vec![],
                vec![counting("arr", 8, 4)],
            );
            go(&s).result
        };
        assert_eq!(with(1, ldx(Size::DW, Reg::R1, Reg::R0, 0)), Ok(0));
        assert_eq!(with(1, ldx(Size::B, Reg::R1, Reg::R0, 7)), Ok(0));
        assert_eq!(with(1, st(Size::W, Reg::R0, 4, 1)), Ok(0));
        let fault = |key, access| {
            let fault = with(key, access).expect_err("out of the value");
            assert_eq!((fault.kind, fault.pc), (FaultKind::MemoryAccess, Some(6)));
            fault.detail
        };
        let rule = "the verifier allows an access through a pointer to a map value only inside that value";
        assert_eq!(
            fault(1, ldx(Size::DW, Reg::R1, Reg::R0, 4)),
            format!("8-byte load from 0x8000014 crosses the end of value 1 [0x8000010, 0x8000018) of array map arr: {rule}")
        );
        assert_eq!(
            fault(1, st(Size::W, Reg::R0, 6, 1)),
            format!("4-byte store to 0x8000016 crosses the end of value 1 [0x8000010, 0x8000018) of array map arr: {rule}")
        );
        assert_eq!(
            fault(3, ldx(Size::B, Reg::R1, Reg::R0, 8)),
            "1-byte load from 0x8000028 is outside the stack [0x20000000, 0x20000200) and there is no \
             context, and outside the values of array map arr [0x8000008, 0x8000028)"
        );
        assert_eq!(
            fault(0, ldx(Size::DW, Reg::R1, Reg::R0, -4)),
            "8-byte load from 0x8000004 is outside the stack [0x20000000, 0x20000200) and there is no \
             context, and outside the values of array map arr [0x8000008, 0x8000028) (it crosses an edge \
             of the values of array map arr)"
        );
        // An atomic that crosses the end of a 12-byte value (aligned in both senses).
        let s = set_with(
            vec![then(
                lookup(0, 0),
                [
                    mov64(Reg::R1, 1),
                    Insn::Atomic { size: Size::DW, op: AtomicOp::Add, dst: Reg::R0, src: Reg::R1, off: 8 },
                    Insn::Exit,
                ],
            )],
            vec![],
            vec![ArrayMap::zeroed("arr", 12, 2)],
        );
        let fault = go(&s).result.expect_err("crosses");
        assert_eq!((fault.kind, fault.pc), (FaultKind::MemoryAccess, Some(7)));
        assert_eq!(
            fault.detail,
            format!("8-byte atomic add on 0x8000010 crosses the end of value 0 [0x8000008, 0x8000014) of array map arr: {rule}")
        );
    }

    #[test]
    fn a_null_pointer_from_a_failed_lookup_reaches_nothing() {
        let with = |access: Insn| {
            let s = set_with(
                vec![then(lookup(0, 4), [access, mov64(Reg::R0, 0), Insn::Exit])],
                vec![],
                vec![counting("arr", 8, 4)],
            );
            let out = go(&s);
            assert_eq!(out.helper_calls, vec![traced(0, 4, false)]);
            let fault = out.result.expect_err("NULL");
            assert_eq!((fault.kind, fault.pc), (FaultKind::MemoryAccess, Some(6)));
            fault.detail
        };
        assert_eq!(
            with(ldx(Size::DW, Reg::R0, Reg::R0, 0)),
            "8-byte load from 0x0 is outside the stack [0x20000000, 0x20000200) and there is no context"
        );
        assert_eq!(
            with(st(Size::W, Reg::R0, 8, 1)),
            "4-byte store to 0x8 is outside the stack [0x20000000, 0x20000200) and there is no context"
        );
    }

    #[test]
    fn lookup_operands_are_checked() {
        // Map 0 is a prog array, map 1 an array of 4-byte values.
        let with = |body: Vec<Insn>| {
            let out = go(&set_with(vec![body], vec![vec![None]], vec![counting("arr", 4, 2)]));
            let lookups = out.helper_calls.iter().filter(|c| c.id == helpers::MAP_LOOKUP_ELEM).count();
            assert_eq!(lookups, 0, "a rejected lookup is not traced");
            verifier(out)
        };
        let lookup_with = |r1: Insn, r2: Vec<Insn>| {
            with(
                [
                    vec![st(Size::W, Reg::R10, -4, 0), r1],
                    r2,
                    vec![helper(helpers::MAP_LOOKUP_ELEM), Insn::Exit],
                ]
                .concat(),
            )
        };
        let key_ptr = || vec![movx(Reg::R2, Reg::R10), alu64(AluOp::Add, Reg::R2, -4)];
        let fault = with(then(lookup(0, 0), [Insn::Exit]));
        assert_eq!(
            (fault.pc, fault.detail.as_str()),
            (Some(5), "helper map_lookup_elem: R1 is prog array map0; the verifier allows a prog array only in tail calls")
        );
        // R1: the map's address as a plain constant is not a map.
        let fault = lookup_with(lddw(Reg::R1, map_addr(1)), key_ptr());
        assert_eq!(
            (fault.pc, fault.detail.as_str()),
            (Some(5), "helper map_lookup_elem: R1 is not a map (it must hold what an `lddw rN, map` loaded)")
        );
        // R2: a scalar (even with the right value), a map, a pointer past the stack.
        let expected =
            "a pointer to the 4-byte key (on the stack, in the context or in a map value) is expected";
        let fault = lookup_with(ld_map(Reg::R1, 1), vec![lddw(Reg::R2, 0x2000_01fc)]);
        assert_eq!(fault.detail, format!("helper map_lookup_elem: R2 is a scalar; {expected}"));
        let fault = lookup_with(ld_map(Reg::R1, 1), vec![ld_map(Reg::R2, 1)]);
        assert_eq!(fault.detail, format!("helper map_lookup_elem: R2 is a map; {expected}"));
        let fault =
            lookup_with(ld_map(Reg::R1, 1), vec![movx(Reg::R2, Reg::R10), alu64(AluOp::Add, Reg::R2, -2)]);
        assert_eq!(
            fault.detail,
            "helper map_lookup_elem: R2 does not point to 4 readable bytes: 4-byte key read from 0x200001fe \
             is outside the stack [0x20000000, 0x20000200) and there is no context (it crosses an edge of \
             the stack)"
        );
        // The key's bytes hold an address (R10 stored at r10 - 8).
        let fault = with(vec![
            stx(Size::DW, Reg::R10, Reg::R10, -8),
            ld_map(Reg::R1, 1),
            movx(Reg::R2, Reg::R10),
            alu64(AluOp::Add, Reg::R2, -8),
            helper(helpers::MAP_LOOKUP_ELEM),
            Insn::Exit,
        ]);
        assert_eq!(
            (fault.pc, fault.detail.as_str()),
            (Some(5), "helper map_lookup_elem: the 4-byte key at 0x200001f8 holds (part of) an address, a scalar is expected")
        );
        // Undefined R1 and R2 (a helper call clobbered them).
        let fault = with(vec![
            helper(helpers::COUNTER),
            movx(Reg::R2, Reg::R10),
            alu64(AluOp::Add, Reg::R2, -4),
            helper(helpers::MAP_LOOKUP_ELEM),
            Insn::Exit,
        ]);
        assert_eq!(
            (fault.pc, fault.detail.as_str()),
            (Some(3), "helper map_lookup_elem: R1 is undefined: R1-R5 are clobbered by the call at pc 0")
        );
        let fault = with(vec![
            helper(helpers::COUNTER),
            ld_map(Reg::R1, 1),
            helper(helpers::MAP_LOOKUP_ELEM),
            Insn::Exit,
        ]);
        assert_eq!(
            (fault.pc, fault.detail.as_str()),
            (Some(3), "helper map_lookup_elem: R2 is undefined: R1-R5 are clobbered by the call at pc 0")
        );
    }

    #[test]
    fn the_key_must_be_initialized() {
        // A subprogram's stack starts uninitialized: its r10 - 4 was never written.
        let s = set_with(
            vec![link(vec![
                vec![call_fn(1), Insn::Exit],
                vec![
                    ld_map(Reg::R1, 0),
                    movx(Reg::R2, Reg::R10),
                    alu64(AluOp::Add, Reg::R2, -4),
                    helper(helpers::MAP_LOOKUP_ELEM),
                    Insn::Exit,
                ],
            ])],
            vec![],
            vec![counting("arr", 4, 2)],
        );
        let out = go(&s);
        assert_eq!(out.helper_calls, vec![]);
        let fault = verifier(out);
        assert_eq!(
            (fault.pc, fault.detail.as_str()),
            (
                Some(6),
                "helper map_lookup_elem: the 4-byte key at 0x200101fc includes stack bytes nothing wrote \
                 (the stack of a subprogram or a tail-call target starts uninitialized)"
            )
        );
        // Three of its bytes written are not enough.
        let s = set_with(
            vec![link(vec![
                vec![call_fn(1), Insn::Exit],
                then(
                    vec![st(Size::H, Reg::R10, -4, 0), st(Size::B, Reg::R10, -2, 0)],
                    lookup(0, 0).split_off(1),
                )
                .into_iter()
                .chain([Insn::Exit])
                .collect(),
            ])],
            vec![],
            vec![counting("arr", 4, 2)],
        );
        assert!(verifier(go(&s)).detail.contains("includes stack bytes nothing wrote"));
    }

    #[test]
    fn keys_may_come_from_the_context_and_from_map_values() {
        // Value 0 holds 2; value 2 holds 7.
        let arr = || ArrayMap {
            name: "arr".into(),
            value_size: 4,
            values: vec![2, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0],
        };
        // The key is the context's first 4 bytes: 2.
        let s = set_with(
            vec![vec![
                movx(Reg::R2, Reg::R1),
                ld_map(Reg::R1, 0),
                helper(helpers::MAP_LOOKUP_ELEM),
                ldx(Size::W, Reg::R0, Reg::R0, 0),
                Insn::Exit,
            ]],
            vec![],
            vec![arr()],
        );
        let out = run_with(&mut Reference::new(), &s, Input::with_ctx(vec![2, 0, 0, 0, 9, 9, 9, 9]));
        assert_eq!((out.result, out.helper_calls), (Ok(7), vec![traced(0, 2, true)]));
        // The key is value 0 (2).
        let s = set_with(
            vec![then(
                lookup(0, 0),
                [
                    movx(Reg::R2, Reg::R0),
                    ld_map(Reg::R1, 0),
                    helper(helpers::MAP_LOOKUP_ELEM),
                    ldx(Size::W, Reg::R0, Reg::R0, 0),
                    Insn::Exit,
                ],
            )],
            vec![],
            vec![arr()],
        );
        let out = go(&s);
        assert_eq!((out.result, out.helper_calls), (Ok(7), vec![traced(0, 0, true), traced(0, 2, true)]));
    }

    #[test]
    fn only_a_pointer_to_a_map_value_reaches_the_values() {
        let with = |body: Vec<Insn>| go(&set_with(vec![body], vec![], vec![counting("arr", 8, 1)]));
        let not_through_a_value = "8-byte load from 0x8000008 is outside the stack (the program has no stack) and \
                                   there is no context (it reaches into the values of array map arr, which only a \
                                   pointer bpf_map_lookup_elem returned may access)";
        // The map's address plus 8 (ARRAY_VALUES_OFFSET): the verifier forbids arithmetic on it.
        let out = with(vec![ld_map(Reg::R1, 0), ldx(Size::DW, Reg::R0, Reg::R1, 8), Insn::Exit]);
        let fault = out.result.expect_err("a map pointer");
        assert_eq!(
            (fault.kind, fault.pc, fault.detail.as_str()),
            (FaultKind::MemoryAccess, Some(2), not_through_a_value)
        );
        // The right address as a scalar.
        let out = with(vec![lddw(Reg::R1, 0x0800_0008), ldx(Size::DW, Reg::R0, Reg::R1, 0), Insn::Exit]);
        assert_eq!(out.result.expect_err("a scalar").detail, not_through_a_value);
        // A pointer to a map value is an address where a helper expects a scalar.
        let fault = verifier(with(then(
            lookup(0, 0),
            [
                movx(Reg::R1, Reg::R0),
                mov64(Reg::R2, 0),
                mov64(Reg::R3, 0),
                mov64(Reg::R4, 0),
                mov64(Reg::R5, 0),
                helper(helpers::MIX),
                Insn::Exit,
            ],
        )));
        assert_eq!(
            (fault.pc, fault.detail.as_str()),
            (Some(11), "helper jitdiff_mix: R1 is an address, a scalar is expected")
        );
    }

    /// Value 0 (16 bytes at 0x08000008) gets r10 and then the value's own address; r7
    /// reloads the latter, stores 0x55 through it, r0 reads the first back, and `last` runs
    /// before `exit`.
    fn stored_addresses(last: Insn) -> (RunResult, Vec<u8>) {
        let s = set_with(
            vec![then(
                lookup(0, 0),
                [
                    movx(Reg::R6, Reg::R0),
                    stx(Size::DW, Reg::R6, Reg::R10, 0),
                    stx(Size::DW, Reg::R6, Reg::R6, 8),
                    ldx(Size::DW, Reg::R7, Reg::R6, 8),
                    st(Size::B, Reg::R7, 20, 0x55),
                    ldx(Size::DW, Reg::R0, Reg::R7, 0),
                    last,
                    Insn::Exit,
                ],
            )],
            vec![],
            vec![ArrayMap::zeroed("arr", 16, 2)],
        );
        let mut engine = Reference::new();
        let result = engine.run_set(&s, &Input::none());
        (result, engine.buffers.memory.array_shadow(0).to_vec())
    }

    #[test]
    fn addresses_stored_in_map_values_keep_their_marks() {
        // Overwritten in full before exit: r0 (r10, reloaded from the value) is a marked
        // address, the value's own address stays (the same in every engine).
        let (result, shadow) = stored_addresses(st(Size::DW, Reg::R6, 0, 1));
        let RunResult::Ran(out) = result else { panic!("{result:?}") };
        assert_eq!((out.result, out.r0_is_address), (Ok(0x2000_0200), true));
        let mut bytes = vec![0u8; 32];
        bytes[0] = 1;
        bytes[8..16].copy_from_slice(&0x0800_0008u64.to_le_bytes());
        bytes[20] = 0x55;
        assert_eq!(out.arrays, vec![bytes]);
        assert_eq!(&shadow[..8], &[0; 8], "overwritten by a constant");
        assert_eq!(&shadow[8..16], &[MARK_VALUE; 8], "a map value's address");
        assert!(shadow[16..].iter().all(|&m| m == 0));
    }

    #[test]
    fn a_stack_address_left_in_a_map_value_cannot_be_compared() {
        // r10 is still in value 0 at exit: its bytes differ between engines.
        let (result, shadow) = stored_addresses(Insn::Ja { off: 0 });
        let RunResult::CannotJudge(why) = result else { panic!("{result:?}") };
        assert_eq!(
            why,
            "at exit, byte 0 of array map arr holds (part of) a stack or context address: engines place \
             the stack and the context differently, so the array maps' bytes cannot be compared"
        );
        assert_eq!(&shadow[..8], &[MARK_ADDR; 8], "the stack address");
        // Half of it overwritten: the upper half still is.
        let (result, shadow) = stored_addresses(st(Size::W, Reg::R6, 0, 1));
        let RunResult::CannotJudge(why) = result else { panic!("{result:?}") };
        assert!(why.starts_with("at exit, byte 4 of array map arr holds"), "{why}");
        assert_eq!(&shadow[..8], &[0, 0, 0, 0, MARK_ADDR, MARK_ADDR, MARK_ADDR, MARK_ADDR]);
        // A fault is reported as it is (the program is invalid either way).
        let (result, _) = stored_addresses(ldx(Size::DW, Reg::R0, Reg::R6, 12));
        let RunResult::Ran(out) = result else { panic!("{result:?}") };
        assert_eq!(out.result.expect_err("past value 0").kind, FaultKind::MemoryAccess);
    }

    #[test]
    fn atomics_on_map_values_are_aligned_within_the_value() {
        // 12-byte values from 0x08000008: value 0 at 0x08000008, value 1 at 0x08000014.
        let with = |key: i32, ops: Vec<Insn>| {
            let s = set_with(
                vec![then(
                    lookup(0, key),
                    [vec![movx(Reg::R6, Reg::R0), mov64(Reg::R1, 5)], ops, vec![Insn::Exit]].concat(),
                )],
                vec![],
                vec![ArrayMap::zeroed("arr", 12, 2)],
            );
            go(&s)
        };
        let atomic = |size, op, off| Insn::Atomic { size, op, dst: Reg::R6, src: Reg::R1, off };
        // Value 0: add 5, fetch_add 7 (r1 = 5, memory 12); a 4-byte add of 7 at offset 8.
        let out = with(
            0,
            vec![
                atomic(Size::DW, AtomicOp::Add, 0),
                mov64(Reg::R1, 7),
                atomic(Size::DW, AtomicOp::FetchAdd, 0),
                mov64(Reg::R2, 7),
                Insn::Atomic { size: Size::W, op: AtomicOp::Add, dst: Reg::R6, src: Reg::R2, off: 8 },
                movx(Reg::R0, Reg::R1),
            ],
        );
        assert_eq!(out.result, Ok(5));
        let mut bytes = vec![0u8; 24];
        bytes[0] = 12;
        bytes[8] = 7;
        assert_eq!(out.arrays, vec![bytes]);
        // Value 1: a 4-byte atomic at offset 0 (0x08000014) is aligned both ways.
        let out = with(1, vec![atomic(Size::W, AtomicOp::Add, 0), mov64(Reg::R0, 0)]);
        assert_eq!(out.result, Ok(0));
        assert_eq!(out.arrays[0][12], 5);
        // 8 bytes at offset 4 of value 1: the address 0x08000018 is aligned, but the
        // verifier checks the offset within the value.
        let fault = with(1, vec![atomic(Size::DW, AtomicOp::Add, 4)]).result.expect_err("misaligned");
        assert_eq!((fault.kind, fault.pc), (FaultKind::MisalignedAtomic, Some(8)));
        assert_eq!(
            fault.detail,
            "8-byte atomic add on 0x8000018 is at offset 4 of value 1 of array map arr, which is not aligned to 8 bytes"
        );
        // 8 bytes at offset 0 of value 1: aligned within the value (the kernel pads values to
        // 8 bytes) but not in this layout, where values follow each other: a fault, so that no
        // engine is compared on an access the layout misaligns.
        let fault = with(1, vec![atomic(Size::DW, AtomicOp::Add, 0)]).result.expect_err("misaligned");
        assert_eq!(
            (fault.kind, fault.detail.as_str()),
            (FaultKind::MisalignedAtomic, "8-byte atomic add on 0x8000014 is not aligned to 8 bytes")
        );
    }

    #[test]
    fn map_values_are_shared_by_every_frame_and_program() {
        // A subprogram writes through the pointer its caller passes.
        let s = set_with(
            vec![link(vec![
                then(
                    lookup(0, 1),
                    [
                        movx(Reg::R6, Reg::R0),
                        movx(Reg::R1, Reg::R6),
                        call_fn(1),
                        ldx(Size::W, Reg::R0, Reg::R6, 0),
                        Insn::Exit,
                    ],
                ),
                vec![st(Size::W, Reg::R1, 0, 42), mov64(Reg::R0, 0), Insn::Exit],
            ])],
            vec![],
            vec![ArrayMap::zeroed("arr", 4, 2)],
        );
        let out = go(&s);
        assert_eq!((out.result, out.arrays), (Ok(42), vec![vec![0, 0, 0, 0, 42, 0, 0, 0]]));
        // A tail-call target looks the value up itself (map 1: the array after the prog array).
        let s = set_with(
            vec![
                vec![ld_map(Reg::R2, 0), mov64(Reg::R3, 0), tail(), mov64(Reg::R0, 99), Insn::Exit],
                then(lookup(1, 0), [st(Size::W, Reg::R0, 0, 42), mov64(Reg::R0, 1), Insn::Exit]),
            ],
            vec![vec![Some(1)]],
            vec![ArrayMap::zeroed("arr", 4, 2)],
        );
        let out = go(&s);
        assert_eq!((out.result, out.tail_calls), (Ok(1), 1));
        assert_eq!(out.arrays, vec![vec![42, 0, 0, 0, 0, 0, 0, 0]]);
        // A tail call needs a prog array, not an array map.
        let s = set_with(
            vec![vec![ld_map(Reg::R2, 1), mov64(Reg::R3, 0), tail(), Insn::Exit]],
            vec![vec![Some(0)]],
            vec![ArrayMap::zeroed("arr", 4, 2)],
        );
        let fault = verifier(go(&s));
        assert_eq!(
            (fault.pc, fault.detail.as_str()),
            (Some(3), "tail call: R2 is array map arr, a prog array is expected")
        );
    }

    // ---- traces ----

    #[test]
    fn a_trace_records_each_instruction_with_the_registers_before_it() {
        // entry: r6 = 5; call sub; r0 += r6; exit.   sub: r0 = 2; exit.
        let set = set(
            vec![link(vec![
                vec![mov64(Reg::R6, 5), call_fn(1), addx(Reg::R0, Reg::R6), Insn::Exit],
                vec![mov64(Reg::R0, 2), Insn::Exit],
            ])],
            vec![],
        );
        let mut engine = Reference::new();
        let (result, trace) = engine.trace_set(&set, &Input::with_ctx(vec![0; 8]));
        let RunResult::Ran(out) = result else { panic!("cannot judge") };
        assert_eq!(out.result, Ok(7));
        // The same outcome as an untraced run.
        assert_eq!(engine.run_set(&set, &Input::with_ctx(vec![0; 8])), RunResult::Ran(out));
        let at: Vec<usize> = trace.steps.iter().map(|s| s.index).collect();
        assert_eq!(at, [0, 1, 4, 5, 2, 3]);
        assert!(!trace.cut);
        let first = trace.steps[0];
        // R1 (the context) and R10 (the stack) are addresses; every other register is 0.
        assert_eq!(first.regs[6], 0);
        assert_eq!(first.regs[1], CTX_ADDR);
        assert_eq!(first.comparable, bpf::trace::Step::ALL_COMPARABLE & !(1 << 1) & !(1 << 10));
        // In the subprogram R0 and R6-R9 start undefined; R1 is still the context.
        let sub = trace.steps[2];
        assert_eq!(sub.comparable & (1 << 0 | 1 << 6), 0);
        // Back in the caller: R0 = 2 from the callee, R6 = 5 restored, R1-R5 undefined.
        let after = trace.steps[4];
        assert_eq!((after.regs[0], after.regs[6]), (2, 5));
        assert_eq!(after.comparable & 0b11_1110, 0);
        assert!(after.is_comparable(0) && after.is_comparable(6));
    }

    #[test]
    fn a_traced_run_keeps_its_budget() {
        let set = set(vec![vec![Insn::Ja { off: -1 }, Insn::Exit]], vec![]);
        let (result, trace) = Reference::with_budget(10).trace_set(&set, &Input::none());
        let RunResult::Ran(out) = result else { panic!("cannot judge") };
        let fault = out.result.unwrap_err();
        assert_eq!(fault.kind, FaultKind::Budget);
        assert_eq!(fault.detail, "the budget of 10 executed instructions ran out");
        assert_eq!(trace.steps.len(), 10);
    }
}
