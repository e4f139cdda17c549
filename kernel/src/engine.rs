//! The real kernel as a [`bpf::Engine`]: program sets lowered to [`Job`]s and run in the
//! guest through the kernel's verifier and its RV64 JIT (`kernel-jit`) or interpreter
//! (`kernel-interp`).
//!
//! # How a set becomes a job
//! - Program type XDP on a 14-byte dummy packet. The context buffer our engines hand to a
//!   program in R1 is the one value of an extra array map (`max_entries` 1, the buffer's
//!   size), written from the input before each run and read back after it; each program's
//!   main function (the entry and every tail-call target, not subprograms) starts with
//!   `r1 = buffer ll` (`lddw` of the map value). An input without a context gets `r1 = 0`.
//! - `bpf_tail_call` needs the real context in R1: each function that makes tail calls, or
//!   calls a subprogram that reaches one, keeps it in 8 bytes just below its own stack and
//!   reloads it before those calls; such subprograms take it in R1 and then point R1 at the
//!   buffer, which is what their callers passed ([`lower_program`]). A program with
//!   subprograms is loaded with BTF for its functions, which the kernel wants for tail
//!   calls in subprograms ([`crate::btf`]).
//! - A set of tc or socket-filter programs ([`bpf::ProgType`]) runs as it is, as
//!   `BPF_PROG_TYPE_SCHED_CLS` or `BPF_PROG_TYPE_SOCKET_FILTER` on the input as its packet,
//!   with the kernel's own `struct __sk_buff` in R1; the outcome's context is `ctx_out`
//!   followed by `data_out` ([`bpf::context`]).
//! - Jumps and calls are moved so that each reaches the same instruction (a jump to a tail
//!   call reaches its reload, a call reaches its callee's prologue); a jump never re-runs a
//!   prologue.
//! - Prog arrays and array maps keep their order and indexes; the buffer map comes last.
//!   `BPF_F_ANY_ALIGNMENT` is set, as our engines do not require aligned plain accesses.
//!
//! # What is observed
//! `BPF_PROG_TEST_RUN` reports R0's low 32 bits; the buffer and the array maps are read
//! back; helper traces are not observable ([`Observes`]), and tail-call counts only for
//! sets whose every program starts with the generator's entry counter ([`counts_entries`]:
//! the count is the entries minus one). Only the
//! helpers the kernel has and that are deterministic there (`map_lookup_elem`,
//! `get_numa_node_id`, tail calls) may appear; a set with others cannot be judged. A load
//! the kernel refuses is [`RunResult::Rejected`] with the verifier's log.

use bpf::{
    helpers, Call, Engine, Fault, FaultKind, Input as BpfInput, Insn, Observes, Outcome, ProgramSet, Reg,
    RunResult, Size,
};

use crate::{
    BootOptions, BufferMode, Guest, GuestError, Input, Job, JobResult, KernelImage, Map, ProgBtf, Slot,
};

/// `BPF_F_ANY_ALIGNMENT`.
const ANY_ALIGNMENT: u32 = 2;
/// `BPF_PSEUDO_MAP_VALUE`: an `lddw` of a map value's address.
const PSEUDO_MAP_VALUE: u8 = 2;
/// The packet XDP runs on (the kernel wants at least an Ethernet header).
const PACKET: [u8; 14] = [0; 14];
/// The most bytes a context buffer may have (the kernel's largest map value we use).
pub const MAX_CTX: usize = 4096;

/// Why a set cannot be run on the kernel, or `None` when it can (what [`lower_all`] may
/// still refuse is about a program's shape: see [`lower_program`]).
pub fn unsupported(set: &ProgramSet, input: &BpfInput) -> Option<String> {
    if input.ctx.as_ref().is_some_and(|c| c.len() > MAX_CTX) {
        return Some(format!("a context of more than {MAX_CTX} bytes"));
    }
    for p in set.progs().iter().chain(set.attachments().iter().map(|a| &a.program)) {
        for insn in p.prog.insns() {
            match *insn {
                Insn::Call(Call::Helper(id))
                    if !insn.is_tail_call()
                        && id != helpers::MAP_LOOKUP_ELEM
                        && id != helpers::STRTOUL
                        && id != helpers::GET_NUMA_NODE_ID =>
                {
                    let name = helpers::prototype(id).map_or("an unknown helper", |p| p.name);
                    return Some(format!(
                        "program {} calls {name} (helper {id}), which the kernel lacks or which is not \
                         deterministic there",
                        p.name
                    ));
                }
                Insn::Call(Call::Kfunc(id)) if !helpers::KERNEL_KFUNCS.contains(&id) => {
                    let name = helpers::kfunc_prototype(id).map_or(id.to_string(), |p| p.name.to_string());
                    return Some(format!(
                        "program {} calls kfunc {name}, which the kernel does not have",
                        p.name
                    ));
                }
                _ => {}
            }
        }
    }
    None
}

/// Whether a verifier log says the kernel refused the program because it does not run
/// programs that mix bpf2bpf calls and tail calls at all: its interpreter never does, and
/// neither does a JIT without tail calls in subprograms (6.12's RV64 JIT). 6.12 says "tail_calls
/// are not allowed in non-JITed programs with bpf-to-bpf calls", 7.x "mixing of tail_calls
/// and bpf-to-bpf calls is not supported" (and the former when a JIT fails).
pub fn refused_for_mixing(log: &str) -> bool {
    log.contains("tail_calls are not allowed in non-JITed programs with bpf-to-bpf calls")
        || log.contains("mixing of tail_calls and bpf-to-bpf calls is not supported")
}

/// A program with instructions put in front of some of its own (see [`insert`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    /// The new program.
    pub insns: Vec<Insn>,
    /// For each original instruction, the slot in [`Inserted::insns`] where what was put in
    /// front of it begins (a call to it lands there).
    pub starts: Vec<usize>,
}

/// `insns` with `entry(i)` and then `before(i)` put in front of each instruction `i`, every
/// jump and call moved to reach the same instruction: a call reaches what `entry` put in
/// front of it (a function's prologue), a jump what `before` put there (never the
/// prologue). The program's own entry runs `entry(0)`. `None` when an offset no longer
/// fits.
pub fn insert(
    insns: &[Insn],
    entry: impl Fn(usize) -> Vec<Insn>,
    before: impl Fn(usize) -> Vec<Insn>,
) -> Option<Inserted> {
    let slots = |v: &[Insn]| v.iter().map(Insn::slots).sum::<usize>() as i64;
    let entries: Vec<Vec<Insn>> = (0..insns.len()).map(entry).collect();
    let befores: Vec<Vec<Insn>> = (0..insns.len()).map(before).collect();
    let n = insns.len() + 1;
    // New slot of: each call target, each jump target, each old instruction; old slots.
    let (mut call_at, mut jump_at, mut at_insn, mut old_slot) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut new, mut old) = (0i64, 0i64);
    for (k, insn) in insns.iter().enumerate() {
        call_at.push(new);
        new += slots(&entries[k]);
        jump_at.push(new);
        new += slots(&befores[k]);
        at_insn.push(new);
        old_slot.push(old);
        new += insn.slots() as i64;
        old += insn.slots() as i64;
    }
    call_at.push(new);
    jump_at.push(new);
    old_slot.push(old);
    let index_at = |s: i64| old_slot.binary_search(&s).ok();
    let mut out = Vec::with_capacity(new as usize);
    for (i, insn) in insns.iter().enumerate() {
        out.extend_from_slice(&entries[i]);
        out.extend_from_slice(&befores[i]);
        let retarget = |off: i64, to: &[i64]| -> Option<i64> {
            let target = index_at(old_slot[i] + 1 + off)?;
            Some(to[target] - at_insn[i] - 1)
        };
        out.push(match *insn {
            Insn::Ja { off } => Insn::Ja { off: i16::try_from(retarget(off as i64, &jump_at)?).ok()? },
            Insn::JaLong { off } => {
                Insn::JaLong { off: i32::try_from(retarget(off as i64, &jump_at)?).ok()? }
            }
            Insn::Jmp { width, cond, dst, src, off } => {
                Insn::Jmp { width, cond, dst, src, off: i16::try_from(retarget(off as i64, &jump_at)?).ok()? }
            }
            Insn::Call(Call::Local(off)) => {
                Insn::Call(Call::Local(i32::try_from(retarget(off as i64, &call_at)?).ok()?))
            }
            other => other,
        });
    }
    let starts = call_at[..insns.len()].iter().map(|&s| s as usize).collect();
    Some(Inserted { insns: out, starts })
}

/// For each function of `prog`, whether it makes tail calls or calls a function that
/// reaches one (the kernel's "tail call reachable"): those keep the context. `calls` is
/// [`bpf::Program::calls`].
fn reaches_tail_calls(prog: &bpf::Program, calls: &[Vec<(usize, usize)>]) -> Vec<bool> {
    let insns = prog.insns();
    let mut reach: Vec<bool> =
        prog.functions().into_iter().map(|r| insns[r].iter().any(Insn::is_tail_call)).collect();
    let mut grew = true;
    while grew {
        grew = false;
        for (f, fc) in calls.iter().enumerate() {
            if !reach[f] && fc.iter().any(|&(_, g)| reach[g]) {
                reach[f] = true;
                grew = true;
            }
        }
    }
    reach
}

/// The stack of function `f` of `prog` with the context's 8-byte slot below it.
fn with_ctx_slot(prog: &bpf::Program, f: usize) -> u32 {
    prog.function_stack_depth(f).next_multiple_of(8) + 8
}

/// The stack depth of program `index`'s main function as the kernel's verifier computes
/// it for the program the kernel engine loads: for a buffer program that makes or leads to
/// tail calls, its own stack and the context's slot below it; otherwise (a `__sk_buff`
/// program is loaded as it is) the deepest byte its accesses reach, rounded up to 8, which
/// may be less than the stack the program declares.
pub fn main_stack_depth(set: &ProgramSet, index: usize) -> u32 {
    let prog = &set.progs()[index].prog;
    if !set.prog_type().is_skb() && reaches_tail_calls(prog, &prog.calls())[0] {
        return with_ctx_slot(prog, 0);
    }
    let verified = bpf::validate::stack_depths(set, index, None).ok();
    verified.and_then(|d| d.first().copied()).unwrap_or_else(|| prog.function_stack_depth(0))
}

/// Whether, as the kernel engine loads `set`, a program that the entry reaches through
/// tail calls uses more stack than the kernel's interpreter gives the entry. The
/// interpreter runs a whole tail-call chain in the entry's frame, sized by the entry's
/// stack (rounded up to 32 bytes); the verifier sets 512 bytes for every program that makes
/// tail calls, but in 6.12 and 7.3 that is overwritten at the end of its fixups with the
/// program's own depth (corpus/kernel/interp-tail-call-frame.s).
pub fn overruns_interpreter_frame(set: &ProgramSet) -> bool {
    let frame = main_stack_depth(set, 0).max(1).next_multiple_of(32);
    let targets = |p: usize| -> Vec<usize> {
        set.progs()[p]
            .prog
            .insns()
            .iter()
            .filter_map(|i| match *i {
                Insn::LdImm64 { pseudo: bpf::PSEUDO_MAP_FD, imm, .. } => match set.map(imm) {
                    Some(bpf::MapRef::ProgArray(m)) => {
                        Some(m.slots.iter().flatten().copied().collect::<Vec<_>>())
                    }
                    _ => None,
                },
                _ => None,
            })
            .flatten()
            .collect()
    };
    let mut seen = vec![false; set.progs().len()];
    let mut todo = vec![0];
    while let Some(p) = todo.pop() {
        if std::mem::replace(&mut seen[p], true) {
            continue;
        }
        if main_stack_depth(set, p) > frame {
            return true;
        }
        todo.extend(targets(p));
    }
    false
}

/// Program `index` of `set` as the kernel engine loads it, with the BTF it needs, or why it
/// cannot be loaded so. `set_r1` is the instruction that points R1 at the buffer.
///
/// Every main function starts with `set_r1`. `bpf_tail_call` wants the real context in R1,
/// so each function that makes tail calls or calls one that does (the kernel's "tail call
/// reachable") keeps the context in an 8-byte slot just below its own stack, reloads it
/// before each tail call and each call of such a function, and, if a subprogram, takes it
/// in R1, saves it and then sets R1 to the buffer. This changes nothing the program sees
/// only where R1 holds the context at each of those calls ([`bpf::validate::context_in_r1`]):
/// otherwise the program is refused. A program with subprograms is loaded with BTF for
/// them ([`crate::btf`]), as the kernel wants for tail calls in subprograms.
pub fn lower_program(
    set: &ProgramSet,
    index: usize,
    ctx_size: usize,
    set_r1: Insn,
) -> Result<(Vec<Insn>, Option<ProgBtf>), String> {
    let p = &set.progs()[index];
    let (prog, insns) = (&p.prog, p.prog.insns());
    let funcs = prog.functions();
    let func_of =
        |i: usize| funcs.iter().position(|r| r.contains(&i)).expect("every instruction is in a function");
    let calls = prog.calls();
    let callee: std::collections::HashMap<usize, usize> = calls.iter().flatten().copied().collect();
    let reach = reaches_tail_calls(prog, &calls);
    let mut slot = vec![0i16; funcs.len()];
    for f in (0..funcs.len()).filter(|&f| reach[f]) {
        let depth = with_ctx_slot(prog, f);
        if depth > bpf::MAX_STACK {
            return Err(format!(
                "program {}: function {f} makes or leads to tail calls and uses more than {} bytes of \
                 stack, where the kernel engine keeps the context",
                p.name,
                bpf::MAX_STACK - 8
            ));
        }
        slot[f] = -(depth as i16);
    }
    let gets_ctx = |i: usize| callee.get(&i).is_some_and(|&g| reach[g]);
    if (0..insns.len()).any(gets_ctx) {
        let ctx = bpf::validate::context_in_r1(set, index, Some(ctx_size)).map_err(|e| {
            format!(
                "program {}: its subprograms reach tail calls, so the kernel engine must pass them the \
                 context, and it cannot follow the context through this program: {e}",
                p.name
            )
        })?;
        if let Some(i) = (0..insns.len()).find(|&i| gets_ctx(i) && !ctx[i]) {
            return Err(format!(
                "program {}: the call at pc {} passes r1 other than the context to a subprogram that \
                 reaches tail calls; the kernel engine can only pass the context there",
                p.name,
                prog.pc_of(i)
            ));
        }
    }
    let save = |f: usize| Insn::Store { size: Size::DW, dst: Reg::R10, src: Reg::R1, off: slot[f] };
    let reload =
        |f: usize| Insn::Load { size: Size::DW, signed: false, dst: Reg::R1, src: Reg::R10, off: slot[f] };
    let entry = |i: usize| match funcs.iter().position(|r| r.start == i) {
        Some(0) if reach[0] => vec![save(0), set_r1],
        Some(0) => vec![set_r1],
        Some(f) if reach[f] => vec![save(f), set_r1],
        _ => vec![],
    };
    let before =
        |i: usize| if insns[i].is_tail_call() || gets_ctx(i) { vec![reload(func_of(i))] } else { vec![] };
    let lowered = insert(insns, entry, before).ok_or_else(|| {
        format!("program {}: a jump no longer reaches after the kernel engine's additions", p.name)
    })?;
    let traced = set.attachments().iter().any(|a| a.target.prog == index);
    let btf = (funcs.len() > 1 || traced).then(|| {
        crate::btf::for_functions(&funcs.iter().map(|r| lowered.starts[r.start] as u32).collect::<Vec<_>>())
    });
    Ok((lowered.insns, btf))
}

/// The job that runs `set` on `input` under the JIT or the interpreter; `Err` says why the
/// set cannot run on the kernel.
pub fn lower(set: &ProgramSet, input: &BpfInput, jit: bool) -> Result<Job, String> {
    lower_all(set, std::slice::from_ref(input), jit)
}

/// The job that runs `set` on every one of `inputs` (all with a context of the same size,
/// or all without one); `Err` as for [`lower`].
pub fn lower_all(set: &ProgramSet, inputs: &[BpfInput], jit: bool) -> Result<Job, String> {
    let first = inputs.first().ok_or("no inputs")?;
    let size = |i: &BpfInput| i.ctx.as_ref().map(Vec::len);
    if inputs.iter().any(|i| size(i) != size(first)) {
        return Err("inputs with contexts of different sizes".into());
    }
    if let Some(why) = unsupported(set, first) {
        return Err(why);
    }
    let calls_kfuncs =
        |p: &bpf::SetProgram| p.prog.insns().iter().any(|i| matches!(i, Insn::Call(Call::Kfunc(_))));
    if let (false, Some(p)) = (jit, set.progs().iter().find(|p| calls_kfuncs(p))) {
        return Err(format!(
            "program {} calls a kernel function, and the kernel does that only from JIT-compiled \
             programs (its verifier says \"JIT is required for calling kernel function\")",
            p.name
        ));
    }
    if let (false, Some(a)) = (jit, set.attachments().first()) {
        return Err(format!(
            "{} {} is attached to the set, and the kernel attaches tracing programs only to \
             JIT-compiled programs (its verifier says \"Can attach to only JITed progs\")",
            a.kind.name(),
            a.program.name
        ));
    }
    let skb = set.prog_type().is_skb();
    if skb {
        for input in inputs {
            set.prog_type().check(input)?;
            if input.ctx.is_none() {
                return Err(format!(
                    "a {} program run without a packet: the kernel's test run needs one",
                    set.prog_type().name()
                ));
            }
        }
    }
    let buffer = (set.maps().len() + set.arrays().len()) as u64;
    let mut maps: Vec<Map> =
        set.maps().iter().map(|m| Map::ProgArray { max_entries: m.max_entries() }).collect();
    for a in set.arrays() {
        maps.push(Map::Array {
            value_size: a.value_size,
            max_entries: a.max_entries(),
            initial: a.values.clone(),
        });
    }
    // A __sk_buff program gets the kernel's own context; others the buffer map.
    let ctx = first.ctx.as_deref().filter(|_| !skb);
    if let Some(c) = ctx {
        maps.push(Map::Array {
            value_size: c.len().max(1) as u32,
            max_entries: 1,
            initial: vec![0; c.len().max(1)],
        });
    }
    let set_r1 = match ctx {
        Some(_) => Insn::LdImm64 { dst: Reg::R1, pseudo: PSEUDO_MAP_VALUE, imm: buffer },
        None => {
            Insn::Alu { width: bpf::Width::W64, op: bpf::AluOp::Mov, dst: Reg::R1, src: bpf::Operand::Imm(0) }
        }
    };
    // Kernel functions by name; a kfunc call's imm becomes the name's index, which the
    // agent replaces with the function's BTF id in the guest kernel.
    let mut kfuncs: Vec<String> = Vec::new();
    let mut encode = |insns: &[Insn]| -> Vec<[u8; 8]> {
        let mut out: Vec<[u8; 8]> =
            bpf::encode_bytes(insns).chunks_exact(8).map(|c| c.try_into().expect("8 bytes")).collect();
        for insn in out.iter_mut().filter(|i| i[0] == 0x85 && i[1] >> 4 == 2) {
            let id = i32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]);
            let name = helpers::kfunc_prototype(id).map_or(String::new(), |p| p.name.to_string());
            let k = kfuncs.iter().position(|n| *n == name).unwrap_or_else(|| {
                kfuncs.push(name);
                kfuncs.len() - 1
            });
            insn[4..8].copy_from_slice(&(k as u32).to_le_bytes());
        }
        out
    };
    let mut progs = Vec::with_capacity(set.progs().len());
    let mut btf = Vec::with_capacity(set.progs().len());
    for k in 0..set.progs().len() {
        let (insns, b) = if skb {
            as_they_are(set, k)
        } else {
            lower_program(set, k, ctx.map_or(0, <[u8]>::len), set_r1)?
        };
        progs.push(encode(&insns));
        btf.push(b);
    }
    let attachments = set
        .attachments()
        .iter()
        .map(|a| crate::JobAttachment {
            fexit: a.kind == bpf::AttachKind::Fexit,
            target: a.target.prog as u32,
            btf_id: crate::btf::func_type_id(a.target.func),
            insns: encode(a.program.prog.insns()),
        })
        .collect();
    let slots = set
        .maps()
        .iter()
        .enumerate()
        .flat_map(|(m, a)| {
            a.slots.iter().enumerate().filter_map(move |(k, s)| {
                s.map(|prog| Slot { map: m as u32, key: k as u32, prog: prog as u32 })
            })
        })
        .collect();
    let (prog_type, buffer_mode) = match set.prog_type() {
        bpf::ProgType::Buffer => (crate::prog_type::XDP, BufferMode::Data),
        bpf::ProgType::Tc => (crate::prog_type::SCHED_CLS, BufferMode::DataAndCtx),
        bpf::ProgType::Socket => (crate::prog_type::SOCKET_FILTER, BufferMode::DataAndCtx),
    };
    Ok(Job {
        jit,
        prog_type,
        prog_flags: ANY_ALIGNMENT,
        buffer_mode,
        kfuncs,
        maps,
        progs,
        btf,
        slots,
        entry: 0,
        attachments,
        input_map: ctx.map(|_| buffer as u32),
        inputs: inputs.iter().map(|i| job_input(set, i)).collect(),
        ..Job::default()
    })
}

/// One input of a job: for a `__sk_buff` program its packet; for others the dummy packet,
/// and the context as the buffer map's overlay.
fn job_input(set: &ProgramSet, input: &BpfInput) -> Input {
    match set.prog_type().is_skb() {
        true => Input::from(input.ctx.clone().unwrap_or_default()),
        false => Input { data: PACKET.to_vec(), map_overlay: input.ctx.clone().unwrap_or_default() },
    }
}

/// Program `index` of a `__sk_buff` set as it is (R1 is the kernel's own context), with BTF
/// for its functions when it has subprograms.
fn as_they_are(set: &ProgramSet, index: usize) -> (Vec<Insn>, Option<ProgBtf>) {
    let prog = &set.progs()[index].prog;
    let starts: Vec<u32> = prog.function_starts().iter().map(|&i| prog.pc_of(i) as u32).collect();
    let btf = (starts.len() > 1).then(|| crate::btf::for_functions(&starts));
    (prog.insns().to_vec(), btf)
}

/// What `job`'s result says about the runs of `set` on `inputs` (one result per input).
pub fn outcomes(set: &ProgramSet, inputs: &[BpfInput], jit: bool, result: JobResult) -> Vec<RunResult> {
    let all = |r: RunResult| vec![r; inputs.len()];
    let (entry, runs) = match result {
        JobResult::Ran { entry, runs } => (entry, runs),
        JobResult::Rejected { prog, errno, log } => {
            let n = set.progs().len();
            let name = match (
                set.progs().get(prog as usize),
                set.attachments().get((prog as usize).wrapping_sub(n)),
            ) {
                (Some(p), _) => format!("program {}", p.name),
                (None, Some(a)) => format!("{} {}", a.kind.name(), a.program.name),
                (None, None) => "program ?".to_string(),
            };
            return all(RunResult::Rejected(format!("{name}: errno {errno}\n{log}")));
        }
        JobResult::SetupFailed { errno, message } => {
            return all(RunResult::CannotJudge(format!(
                "the guest could not set the job up: {message} (errno {errno})"
            )))
        }
    };
    if jit && !entry.jited {
        return all(RunResult::CannotJudge(
            "the kernel's JIT did not compile the entry (it runs interpreted)".into(),
        ));
    }
    if runs.len() != inputs.len() {
        return all(RunResult::CannotJudge(format!(
            "the guest reported {} runs for {} inputs",
            runs.len(),
            inputs.len()
        )));
    }
    runs.into_iter().zip(inputs).map(|(run, input)| run_outcome(set, input, run)).collect()
}

/// One run's outcome.
fn run_outcome(set: &ProgramSet, input: &BpfInput, run: crate::RunOutput) -> RunResult {
    if run.errno != 0 {
        return RunResult::CannotJudge(format!("BPF_PROG_TEST_RUN failed with errno {}", run.errno));
    }
    let arrays_at = set.maps().len();
    let arrays: Vec<Vec<u8>> = run.maps.iter().skip(arrays_at).take(set.arrays().len()).cloned().collect();
    let ctx = match &input.ctx {
        Some(c) if set.prog_type().is_skb() => {
            let want = bpf::context::SKB_SIZE + c.len();
            if run.output_kind != crate::OutputKind::CtxOutThenData || run.output.len() != want {
                return RunResult::CannotJudge(format!(
                    "the guest returned {} bytes of context and packet ({:?}), not {want}",
                    run.output.len(),
                    run.output_kind
                ));
            }
            run.output
        }
        Some(c) => match run.maps.get(arrays_at + set.arrays().len()) {
            Some(b) => b[..c.len().min(b.len())].to_vec(),
            None => return RunResult::CannotJudge("the guest did not return the context buffer".into()),
        },
        None => Vec::new(),
    };
    // With the generator's entry counter, the tail calls are the entries minus one.
    let counted = match (counts_entries(set), input.ctx.as_deref()) {
        (true, Some(before)) if before.len() >= 8 && ctx.len() >= 8 => {
            let word = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
            Some(word(&ctx).wrapping_sub(word(before)).wrapping_sub(1) as u32)
        }
        _ => None,
    };
    RunResult::Ran(Outcome {
        result: Ok(run.retval as u64),
        ctx,
        r0_is_address: false,
        tail_calls: counted.unwrap_or(0),
        helper_calls: Vec::new(),
        attachments: run
            .attachment_runs
            .iter()
            .map(|&runs| bpf::AttachmentSeen { runs, ..bpf::AttachmentSeen::default() })
            .collect(),
        arrays,
        // The kernel counts each attachment's runs; what it saw stays in the guest.
        observes: Observes {
            r0_bits: 32,
            tail_calls: counted.is_some(),
            helper_calls: false,
            attachments: true,
            attachment_returns: false,
        },
    })
}

/// Whether every program of `set` starts with the generator's entry counter
/// (`generator::Config::count_entries`): `r0 = *(u64 *)(r1 + 0); r0 += 1;
/// *(u64 *)(r1 + 0) = r0`.
pub fn counts_entries(set: &ProgramSet) -> bool {
    let counter = [
        Insn::Load { size: Size::DW, signed: false, dst: Reg::R0, src: Reg::R1, off: 0 },
        Insn::Alu { width: bpf::Width::W64, op: bpf::AluOp::Add, dst: Reg::R0, src: bpf::Operand::Imm(1) },
        Insn::Store { size: Size::DW, dst: Reg::R1, src: Reg::R0, off: 0 },
    ];
    set.progs().iter().all(|p| p.prog.insns().starts_with(&counter))
}

/// `text` kept for the life of the process, for engine names and kernel specs (engines
/// report `&'static str` names and engine options are `Copy`); each distinct text is
/// allocated once.
pub fn intern(text: &str) -> &'static str {
    static TEXTS: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut texts = TEXTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = texts.iter().find(|t| **t == text) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.to_string().into_boxed_str());
    texts.push(leaked);
    leaked
}

/// The name of a kernel engine: `kernel-jit` (`jit`) or `kernel-interp`, followed by
/// `@SPEC` when a kernel is named (`kernel-jit@7.3`, `kernel-interp@/src/linux`).
pub fn engine_name(jit: bool, kernel: Option<&str>) -> &'static str {
    let base = if jit { "kernel-jit" } else { "kernel-interp" };
    match kernel {
        Some(spec) => intern(&format!("{base}@{spec}")),
        None => base,
    }
}

/// Reads a kernel engine's name: whether it is the JIT (`kernel-jit`) or the interpreter
/// (`kernel-interp`), and the kernel after `@` if one is named. `None` for other names and
/// for an empty kernel after `@`.
pub fn parse_engine_name(name: &str) -> Option<(bool, Option<&str>)> {
    let (base, kernel) = match name.split_once('@') {
        Some((_, "")) => return None,
        Some((b, k)) => (b, Some(k)),
        None => (name, None),
    };
    match base {
        "kernel-jit" => Some((true, kernel)),
        "kernel-interp" => Some((false, kernel)),
        _ => None,
    }
}

/// A kernel engine: one booted guest, kept for every run and booted again after it dies.
/// [`Engine::prepare`] runs a set on all its inputs in one job (one load of the programs);
/// the [`Engine::run_set`] calls that follow are answered from those results.
#[derive(Debug)]
pub struct KernelEngine {
    jit: bool,
    name: &'static str,
    guest: Option<Guest>,
    image: Option<KernelImage>,
    boot: BootOptions,
    prepared: Option<(ProgramSet, Vec<(BpfInput, RunResult)>)>,
    /// Sets announced ([`Engine::announce`]) and not yet prepared, oldest first.
    announced: std::collections::VecDeque<Announced>,
    /// Guests dropped after they failed (and replaced on next use), by cause.
    restarts: std::collections::BTreeMap<&'static str, u64>,
}

/// A set announced to the engine: its job was sent to the guest (`answer` `None` while
/// the guest works on it) or has been answered.
#[derive(Debug)]
struct Announced {
    set: ProgramSet,
    inputs: Vec<BpfInput>,
    job: Job,
    answer: Option<Result<JobResult, GuestError>>,
}

impl KernelEngine {
    /// The engine `kernel-jit` (`jit`) or `kernel-interp` on the default kernel (see
    /// [`KernelImage::for_kernel`]); the image is located (or built) now and the guest
    /// booted on first use. `Err` when there is no image and it cannot be built.
    pub fn new(jit: bool) -> Result<KernelEngine, GuestError> {
        KernelEngine::named(jit, None, engine_name(jit, None))
    }

    /// The engine `kernel-jit` or `kernel-interp` on `kernel` (a Debian version or a
    /// path; `None`: the default), reporting itself as `name` (see [`engine_name`]). Its
    /// guests boot with [`BootOptions::from_env`].
    pub fn named(jit: bool, kernel: Option<&str>, name: &'static str) -> Result<KernelEngine, GuestError> {
        let boot = BootOptions::from_env().map_err(GuestError::Environment)?;
        let image = KernelImage::for_kernel(kernel)?;
        Ok(KernelEngine {
            jit,
            name,
            guest: None,
            image: Some(image),
            boot,
            prepared: None,
            announced: std::collections::VecDeque::new(),
            restarts: Default::default(),
        })
    }

    /// This engine's kernel version (see [`KernelImage::version`]).
    pub fn kernel_version(&self) -> Option<String> {
        self.image.as_ref().and_then(KernelImage::version)
    }

    /// Whether this engine's kernel counts a tail call through an empty slot (see
    /// [`KernelImage::empty_slot`]).
    pub fn empty_slot(&self) -> Option<bpf::EmptySlotRule> {
        self.image.as_ref().and_then(KernelImage::empty_slot)
    }

    fn guest(&mut self) -> Result<&mut Guest, GuestError> {
        if self.guest.as_ref().is_none_or(|g| !g.is_alive()) {
            let image = self.image.as_ref().ok_or_else(|| GuestError::NoImage("(none)".into()))?;
            self.guest = Some(Guest::boot_with(image, self.boot.clone())?);
        }
        Ok(self.guest.as_mut().expect("booted above"))
    }
}

impl Engine for KernelEngine {
    fn name(&self) -> &'static str {
        self.name
    }

    fn announce(&mut self, set: &ProgramSet, inputs: &[BpfInput]) {
        let Ok(job) = lower_all(set, inputs, self.jit) else { return };
        let sent = self.guest().and_then(|g| g.send_request(std::slice::from_ref(&job)));
        let answer = match sent {
            Ok(()) => None,
            // Answered at once: prepare() runs it again on a new guest.
            Err(e) => {
                self.lost_guest(&e);
                Some(Err(e))
            }
        };
        self.announced.push_back(Announced { set: set.clone(), inputs: inputs.to_vec(), job, answer });
    }

    fn prepare(&mut self, set: &ProgramSet, inputs: &[BpfInput]) {
        self.prepared = None;
        let results = match self.announced.iter().position(|a| a.set == *set && a.inputs == inputs) {
            Some(k) => {
                // Sets announced before it and never prepared are dropped (once answered).
                for _ in 0..k {
                    self.receive(0);
                    self.announced.pop_front();
                }
                self.receive(0);
                let a = self.announced.pop_front().expect("found above");
                match a.answer {
                    Some(Ok(result)) if removed_attachment(&a.job, &result).is_none() => {
                        outcomes(set, inputs, self.jit, result)
                    }
                    // A failed guest, or a job to run again without an attachment: one at a
                    // time, as without an announcement.
                    _ => {
                        self.receive_all();
                        self.exchange(set, inputs, a.job)
                    }
                }
            }
            None => {
                let Ok(job) = lower_all(set, inputs, self.jit) else { return };
                self.receive_all();
                self.exchange(set, inputs, job)
            }
        };
        self.prepared = Some((set.clone(), inputs.iter().cloned().zip(results).collect()));
    }

    fn native_listing(&mut self, set: &ProgramSet, input: &BpfInput) -> Option<Result<String, String>> {
        self.jit.then(|| self.jited_listing(set, input))
    }

    fn restarts(&self) -> Vec<(&'static str, u64)> {
        self.restarts.iter().map(|(c, n)| (*c, *n)).collect()
    }

    fn run_set(&mut self, set: &ProgramSet, input: &BpfInput) -> RunResult {
        if let Some((s, results)) = &mut self.prepared {
            if s == set {
                if let Some(k) = results.iter().position(|(i, _)| i == input) {
                    return results.swap_remove(k).1;
                }
            }
        }
        match lower(set, input, self.jit) {
            Ok(job) => {
                self.exchange(set, std::slice::from_ref(input), job).pop().expect("one result per input")
            }
            Err(why) => RunResult::CannotJudge(format!("the kernel engine cannot run it: {why}")),
        }
    }
}

impl KernelEngine {
    /// The kernel JIT's code for `set`'s entry program (subprograms follow it), as Capstone
    /// disassembles it, under a line saying what it is.
    fn jited_listing(&mut self, set: &ProgramSet, input: &BpfInput) -> Result<String, String> {
        let mut job = lower(set, input, true)?;
        job.want_jited_image = true;
        match self.run_job(&job).map_err(|e| format!("the guest failed: {e}"))? {
            JobResult::Ran { entry, .. } if entry.jited && !entry.jited_image.is_empty() => Ok(format!(
                "; the kernel's RV64 JIT: entry program {}, {} bytes, subprograms after it\n\
                 ; as the kernel engine loads it (its `r1 = buffer` prologue first); disassembled by \
                 Capstone\n{}",
                set.progs()[0].name,
                entry.jited_len,
                crate::disasm::rv64_listing(&entry.jited_image)?
            )),
            JobResult::Ran { entry, .. } if entry.jited => {
                Err(format!("the JITed image ({} bytes) is larger than the guest returns", entry.jited_len))
            }
            JobResult::Ran { .. } => Err("the kernel did not JIT the entry program".into()),
            JobResult::Rejected { prog, log, .. } => Err(format!(
                "the verifier refused program {prog}: {}",
                log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("(no log)")
            )),
            JobResult::SetupFailed { message, .. } => Err(message),
        }
    }

    /// Collects the guest's answer to announced set `k` if it is still working on it (the
    /// guest answers in order, so every set before `k` must have its answer). A guest that
    /// fails is dropped, and every set announced to it gets the error (prepare() runs
    /// those again).
    fn receive(&mut self, k: usize) {
        let Some(a) = self.announced.get_mut(k) else { return };
        if a.answer.is_some() {
            return;
        }
        let Some(guest) = self.guest.as_mut() else {
            a.answer = Some(Err(GuestError::Dead));
            return;
        };
        match guest.receive(std::slice::from_ref(&a.job)) {
            Ok(mut results) if results.len() == 1 => a.answer = Some(Ok(results.pop().expect("one result"))),
            Ok(results) => {
                let n = results.len();
                a.answer =
                    Some(Err(GuestError::Protocol(format!("the guest answered {n} results for 1 job"))));
            }
            Err(e) => {
                let cause = restart_cause(&e);
                a.answer = Some(Err(e));
                self.count_restart(cause);
            }
        }
    }

    /// Collects every answer the guest still owes, so that it can take a job of its own.
    fn receive_all(&mut self) {
        for k in 0..self.announced.len() {
            self.receive(k);
        }
    }

    /// Drops a guest that failed with `e`, counting the restart its replacement will be;
    /// every set announced to it and not answered gets the error.
    fn lost_guest(&mut self, e: &GuestError) {
        self.count_restart(restart_cause(e));
    }

    /// Drops the guest (if one runs), counting a restart for `cause` (if it has one); every
    /// set announced to it and not answered gets an error.
    fn count_restart(&mut self, cause: Option<&'static str>) {
        if let (Some(_), Some(cause)) = (self.guest.take(), cause) {
            *self.restarts.entry(cause).or_insert(0) += 1;
        }
        for a in self.announced.iter_mut().filter(|a| a.answer.is_none()) {
            a.answer = Some(Err(GuestError::Dead));
        }
    }

    /// Runs `job` alone in the guest. A dead or hung guest is dropped here and booted
    /// again for the next job.
    fn run_job(&mut self, job: &Job) -> Result<JobResult, GuestError> {
        match self.guest().and_then(|g| g.run(std::slice::from_ref(job))) {
            Ok(mut results) if results.len() == 1 => Ok(results.pop().expect("one result")),
            Ok(results) => {
                Err(GuestError::Protocol(format!("the guest answered {} results for 1 job", results.len())))
            }
            Err(e) => {
                self.lost_guest(&e);
                Err(e)
            }
        }
    }

    /// [`KernelEngine::run_job`], where a tracing program attached to a function the
    /// verifier removed as dead code ("Subprog fN doesn't exist": the function can never
    /// run, so neither can the program) is left out and reported with no runs.
    fn run_job_attached(&mut self, job: &Job) -> Result<JobResult, GuestError> {
        let result = self.run_job(job)?;
        let Some(k) = removed_attachment(job, &result) else { return Ok(result) };
        let mut fewer = job.clone();
        fewer.attachments.remove(k);
        let mut result = self.run_job_attached(&fewer)?;
        if let JobResult::Ran { runs, .. } = &mut result {
            for run in runs {
                run.attachment_runs.insert(k.min(run.attachment_runs.len()), 0);
            }
        }
        Ok(result)
    }

    /// Runs `job` (for `set` on `inputs`) in the guest: one result per input. When the
    /// kernel crashes, each input is run again alone to find the ones that crash it.
    fn exchange(&mut self, set: &ProgramSet, inputs: &[BpfInput], job: Job) -> Vec<RunResult> {
        match self.run_job_attached(&job) {
            Ok(result) => outcomes(set, inputs, self.jit, result),
            Err(e) => {
                let report = match &e {
                    GuestError::Died { console_tail, .. } => kernel_crash(console_tail),
                    _ => None,
                };
                match report {
                    None => vec![RunResult::CannotJudge(format!("the guest failed: {e}")); inputs.len()],
                    Some(report) if inputs.len() == 1 => vec![crashed(report)],
                    Some(_) => self.rerun_one_by_one(set, inputs),
                }
            }
        }
    }

    /// Runs `set` on each of `inputs` in a job of its own: after a kernel crash, which of
    /// them crash it.
    fn rerun_one_by_one(&mut self, set: &ProgramSet, inputs: &[BpfInput]) -> Vec<RunResult> {
        inputs
            .iter()
            .map(|input| match lower(set, input, self.jit) {
                Ok(job) => self.exchange(set, std::slice::from_ref(input), job).pop().expect("one result"),
                Err(why) => RunResult::CannotJudge(format!("the kernel engine cannot run it: {why}")),
            })
            .collect()
    }
}

/// Why a guest had to be replaced, in a word or two (the fuzz summary counts them);
/// `None` when it was not its fault (jitdiff is stopping).
fn restart_cause(e: &GuestError) -> Option<&'static str> {
    match e {
        GuestError::Interrupted => None,
        // A panic the kernel printed: the job crashed it (reported as a finding or a known
        // divergence), not a fault of the guest's.
        GuestError::Died { console_tail, .. } if kernel_crash(console_tail).is_some() => {
            Some("kernel crashed")
        }
        GuestError::Died { .. } | GuestError::Dead => Some("died"),
        GuestError::Timeout { .. } => Some("stopped answering"),
        GuestError::Protocol(_) => Some("answered garbage"),
        _ => Some("failed"),
    }
}

/// For a job the verifier refused because a tracing program is attached to a function it
/// removed as dead code ("Subprog fN doesn't exist": the function can never run, so
/// neither can the program), that attachment's index in the job.
fn removed_attachment(job: &Job, result: &JobResult) -> Option<usize> {
    match result {
        JobResult::Rejected { prog, log, .. } => {
            let k = (*prog as usize).checked_sub(job.progs.len())?;
            (k < job.attachments.len() && log.contains("doesn't exist")).then_some(k)
        }
        _ => None,
    }
}

/// The outcome of a run that crashed the kernel: a [`FaultKind::KernelCrash`] with the
/// kernel's report.
fn crashed(report: String) -> RunResult {
    RunResult::Ran(Outcome {
        result: Err(Fault { kind: FaultKind::KernelCrash, pc: None, detail: report }),
        ctx: Vec::new(),
        r0_is_address: false,
        tail_calls: 0,
        helper_calls: Vec::new(),
        arrays: Vec::new(),
        attachments: Vec::new(),
        observes: Observes {
            r0_bits: 32,
            tail_calls: false,
            helper_calls: false,
            attachments: false,
            attachment_returns: false,
        },
    })
}

/// The kernel's own crash report in the end of a dead guest's log (from its first line
/// saying so: an oops, a BUG, a paging fault, a panic), or `None` when the kernel did not
/// crash by itself: the agent dying (the kernel then panics with "Attempted to kill
/// init"), running out of memory, or qemu going away are the harness's failures, not the
/// kernel's.
pub fn kernel_crash(console: &str) -> Option<String> {
    const HARNESS: [&str; 2] = ["Attempted to kill init", "Out of memory"];
    const CRASH: [&str; 6] =
        ["Unable to handle kernel", "Oops", "kernel BUG", "BUG: ", "Kernel panic", "stack-protector"];
    if HARNESS.iter().any(|h| console.contains(h)) {
        return None;
    }
    let lines: Vec<&str> = console.lines().collect();
    let first = lines.iter().position(|l| CRASH.iter().any(|c| l.contains(c)))?;
    Some(format!("the kernel crashed: {}", lines[first..].join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpf::asm::parse_set;

    /// An instruction to insert, recognisable in the output.
    const MARK: Insn =
        Insn::Alu { width: bpf::Width::W64, op: bpf::AluOp::Mov, dst: Reg::R9, src: bpf::Operand::Imm(9) };

    /// Instruction `i` of `insns` when it is a tail call: for `insert`'s `before`.
    fn mark_tail_calls(insns: &[Insn]) -> impl Fn(usize) -> Vec<Insn> + '_ {
        move |i| if insns[i].is_tail_call() { vec![MARK] } else { vec![] }
    }

    #[test]
    fn restarts_are_counted_by_what_happened_to_the_guest() {
        let died = |console: &str| GuestError::Died {
            during: "waiting for a response",
            status: "qemu exited with exit status: 0".into(),
            console_tail: console.into(),
        };
        // a panic the kernel printed is the job's doing, a silent exit the guest's
        let oops = "Run /init as init process\nUnable to handle kernel paging request at virtual address 0\nOops [#1]";
        assert_eq!(restart_cause(&died(oops)), Some("kernel crashed"));
        assert_eq!(restart_cause(&died("Run /init as init process")), Some("died"));
        // the agent exiting is the harness's failure, not the kernel's
        assert_eq!(restart_cause(&died("Kernel panic - not syncing: Attempted to kill init!")), Some("died"));
        let timeout = GuestError::Timeout {
            during: "waiting",
            waited: std::time::Duration::from_secs(3),
            console_tail: "".into(),
        };
        assert_eq!(restart_cause(&timeout), Some("stopped answering"));
        assert_eq!(restart_cause(&GuestError::Protocol("bad magic".into())), Some("answered garbage"));
        assert_eq!(restart_cause(&GuestError::Interrupted), None);
    }

    #[test]
    fn insertions_keep_every_jump_on_its_instruction() {
        let set =
            parse_set("r0 = 0\nif r0 == 0 goto +1\ncall bpf_tail_call\nr0 = 1\ngoto -5\nexit\n").unwrap().set;
        let insns = set.entry().prog.insns();
        let prologue = |i: usize| if i == 0 { vec![MARK, MARK] } else { vec![] };
        let out = insert(insns, prologue, mark_tail_calls(insns)).unwrap();
        // prologue(2) r0=0 if mark tail r0=1 goto exit
        assert_eq!(out.insns.len(), 9);
        assert_eq!(out.starts, [0, 3, 4, 6, 7, 8]);
        // `if r0 == 0 goto +1` skipped the tail call; now it skips the reload and the call.
        assert_eq!(out.insns[3].jump_offset(), Some(2));
        // `goto -5` went to `r0 = 0`; it still does (slot 2), not to the prologue.
        assert_eq!(out.insns[7].jump_offset(), Some(-6));
    }

    #[test]
    fn jumps_to_a_tail_call_reach_its_reload() {
        let set = parse_set("if r0 == 0 goto +0\ncall bpf_tail_call\nexit\n").unwrap().set;
        let insns = set.entry().prog.insns();
        let out = insert(insns, |_| vec![], mark_tail_calls(insns)).unwrap();
        assert_eq!(out.insns[0].jump_offset(), Some(0));
    }

    #[test]
    fn calls_reach_the_prologue_and_jumps_do_not() {
        // main: call f; exit | f: r0 = 0; if r0 == 0 goto -2 (to f's first instruction); exit
        let set = parse_set("call f\nexit\nf:\nr0 = 0\nif r0 != 0 goto -2\nexit\n").unwrap().set;
        let insns = set.entry().prog.insns();
        let out = insert(insns, |i| if i == 2 { vec![MARK, MARK] } else { vec![] }, |_| vec![]).unwrap();
        // call f | exit | MARK MARK | r0 = 0 | if | exit
        assert_eq!(out.insns[0], Insn::Call(Call::Local(1)));
        assert_eq!(out.insns[5].jump_offset(), Some(-2));
        assert_eq!(out.starts[2], 2);
    }

    /// The program `text` (with one array of `ctx` bytes as context) as lowered for the
    /// kernel with `r1 = 0` standing for the buffer.
    fn lowered(text: &str) -> Result<(Vec<Insn>, Option<ProgBtf>), String> {
        let set = parse_set(text).unwrap().set;
        lower_program(&set, 0, 64, mov(Reg::R1, 0))
    }

    fn mov(dst: Reg, imm: i32) -> Insn {
        Insn::Alu { width: bpf::Width::W64, op: bpf::AluOp::Mov, dst, src: bpf::Operand::Imm(imm) }
    }

    #[test]
    fn subprograms_that_reach_tail_calls_get_the_context() {
        let set = ".map jmp 1\n.prog entry\n.stack 16\n*(u64 *)(r10 - 16) = 0\nr6 = r1\ncall mid\nr1 = r6\n\
                   call leaf\nexit\nmid:\ncall tail\nr0 = 1\nexit\ntail:\nr2 = jmp ll\nr3 = 0\n\
                   call bpf_tail_call\nr0 = 2\nexit\nleaf:\nr0 = 3\nexit\n";
        let (insns, btf) = lowered(set).unwrap();
        let st = |off| Insn::Store { size: Size::DW, dst: Reg::R10, src: Reg::R1, off };
        let ld = |off| Insn::Load { size: Size::DW, signed: false, dst: Reg::R1, src: Reg::R10, off };
        let r1 = mov(Reg::R1, 0);
        // entry (16 bytes of stack: its context at r10 - 24): saved, reloaded before the
        // call of `mid` (which reaches a tail call), not before the call of `leaf`.
        assert_eq!(&insns[..4], &[st(-24), r1, insns[2], insns[3]]);
        assert_eq!(insns[4], ld(-24));
        assert!(matches!(insns[5], Insn::Call(Call::Local(_))));
        assert!(matches!(insns[7], Insn::Call(Call::Local(_))));
        // mid (no stack of its own: r10 - 8) and tail both take the context and set r1;
        // each reloads it before the call that needs it. leaf is left alone.
        assert_eq!(&insns[9..12], &[st(-8), r1, ld(-8)]);
        assert_eq!(&insns[15..17], &[st(-8), r1]);
        assert_eq!(insns[19], ld(-8));
        assert!(insns[20].is_tail_call());
        assert_eq!(insns[23], mov(Reg::R0, 3));
        // Calls land on their callee's prologue: mid at slot 9, tail at 15, leaf at 24
        // (tail's `lddw` takes two slots); the BTF records the same starts.
        let calls: Vec<i32> = insns
            .iter()
            .filter_map(|i| match i {
                Insn::Call(Call::Local(off)) => Some(*off),
                _ => None,
            })
            .collect();
        assert_eq!(calls, [9 - 5 - 1, 24 - 7 - 1, 15 - 12 - 1]);
        let starts: Vec<u32> = btf.unwrap().func_info.iter().map(|f| f.insn_off).collect();
        assert_eq!(starts, [0, 9, 15, 24]);
    }

    #[test]
    fn a_call_that_passes_another_r1_to_a_tail_calling_subprogram_is_refused() {
        // The context reaches `tail` in r2, which the kernel engine cannot pass on.
        let set = ".map jmp 1\n.prog entry\nr2 = r1\nr1 = 1\ncall tail\nexit\ntail:\nr1 = r2\n\
                   r2 = jmp ll\nr3 = 0\ncall bpf_tail_call\nr0 = 2\nexit\n";
        let why = lowered(set).unwrap_err();
        assert!(why.contains("the call at pc 2 passes r1 other than the context"), "{why}");
    }

    #[test]
    fn programs_without_subprograms_have_no_btf() {
        let (insns, btf) =
            lowered(".map jmp 1\n.prog entry\nr2 = jmp ll\nr3 = 0\ncall bpf_tail_call\nexit\n").unwrap();
        assert_eq!(btf, None);
        // The context at r10 - 8 (no stack of its own), reloaded before the tail call.
        assert_eq!(insns[0], Insn::Store { size: Size::DW, dst: Reg::R10, src: Reg::R1, off: -8 });
    }

    #[test]
    fn crashes_of_the_kernel_are_told_from_the_harness_s() {
        let oops = "Run /init as init process\nUnable to handle kernel NULL pointer dereference at virtual \
                    address 0000000000000000\nOops [#1]\nKernel panic - not syncing: Fatal exception";
        let report = kernel_crash(oops).unwrap();
        assert!(report.starts_with("the kernel crashed: Unable to handle kernel NULL pointer"), "{report}");
        assert!(report.ends_with("Fatal exception"));
        // The agent (init) exiting panics the kernel too, but that is the harness.
        let init = "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100";
        assert_eq!(kernel_crash(init), None);
        assert_eq!(kernel_crash("Run /init as init process\nrandom: crng init done"), None);
    }

    #[test]
    fn a_tail_called_program_deeper_than_the_entry_overruns_the_interpreter_frame() {
        // The entry keeps the context at r10 - 8 (a 32-byte interpreter frame).
        let set = |target_stack: u32| {
            let text = format!(
                ".map jmp 1\n.slot jmp 0 target\n.prog entry\nr2 = jmp ll\nr3 = 0\ncall bpf_tail_call\nr0 = 1\n\
                 exit\n.prog target\n*(u64 *)(r10 - {target_stack}) = 0\nr0 = 7\nexit\n"
            );
            parse_set(&text).unwrap().set
        };
        assert_eq!(main_stack_depth(&set(8), 0), 8);
        assert!(!overruns_interpreter_frame(&set(32)));
        assert!(overruns_interpreter_frame(&set(40)));
        // A tc program is loaded as it is: the verifier sizes the entry's stack by its
        // deepest access (20 bytes: 24), not by the 40 it declares, so the interpreter gives
        // it 32 bytes, which a target using 48 overruns.
        let tc = |target_stack: u32| {
            let text = format!(
                ".progtype tc\n.map jmp 1\n.slot jmp 0 target\n.prog entry\n.stack 40\n*(u32 *)(r10 - 20) = 0\n\
                 r2 = jmp ll\nr3 = 0\ncall bpf_tail_call\nr0 = 1\nexit\n.prog target\n\
                 *(u64 *)(r10 - {target_stack}) = 0\nr0 = 7\nexit\n"
            );
            parse_set(&text).unwrap().set
        };
        assert_eq!(main_stack_depth(&tc(48), 0), 24);
        assert_eq!(main_stack_depth(&tc(48), 1), 48);
        assert!(!overruns_interpreter_frame(&tc(32)));
        assert!(overruns_interpreter_frame(&tc(48)));
    }

    #[test]
    fn engine_names_carry_their_kernel() {
        assert_eq!(engine_name(true, None), "kernel-jit");
        assert_eq!(engine_name(false, Some("7.3")), "kernel-interp@7.3");
        // The same name twice is the same allocation.
        assert!(std::ptr::eq(engine_name(true, Some("/src/linux")), engine_name(true, Some("/src/linux"))));
        assert_eq!(parse_engine_name("kernel-jit@6.12"), Some((true, Some("6.12"))));
        assert_eq!(parse_engine_name("kernel-interp"), Some((false, None)));
        assert_eq!(parse_engine_name("kernel-interp@/a@b"), Some((false, Some("/a@b"))));
        assert_eq!(parse_engine_name("kernel-jit@"), None);
        assert_eq!(parse_engine_name("jit@7.3"), None);
    }

    #[test]
    fn sets_the_kernel_cannot_run_are_named() {
        let set = parse_set("call jitdiff_mix\nexit\n").unwrap().set;
        let why = unsupported(&set, &BpfInput::none()).unwrap();
        assert!(why.contains("jitdiff_mix"), "{why}");
        let ok = parse_set("call get_numa_node_id\nexit\n").unwrap().set;
        assert_eq!(unsupported(&ok, &BpfInput::none()), None);
        let kfunc = parse_set("call kfunc:jitdiff_kcounter\nexit\n").unwrap().set;
        assert_eq!(
            unsupported(&kfunc, &BpfInput::none()).unwrap(),
            "program entry calls kfunc jitdiff_kcounter, which the kernel does not have"
        );
    }
}
