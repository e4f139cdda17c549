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
//! - `bpf_tail_call` needs the real context in R1: a program that makes tail calls first
//!   stores R1 at `r10 - 512`, and every tail call is preceded by reloading it. Such a
//!   program's main function must leave those 8 bytes alone (at most 504 bytes of stack).
//! - Jumps and calls are moved so that each reaches the same instruction (a jump to a tail
//!   call reaches its reload); a jump to the first instruction does not re-run the
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
    helpers, Call, Engine, Input as BpfInput, Insn, Observes, Outcome, ProgramSet, Reg, RunResult, Size,
};

use crate::{BufferMode, Guest, GuestError, Input, Job, JobResult, KernelImage, Map, Slot};

/// `BPF_F_ANY_ALIGNMENT`.
const ANY_ALIGNMENT: u32 = 2;
/// `BPF_PSEUDO_MAP_VALUE`: an `lddw` of a map value's address.
const PSEUDO_MAP_VALUE: u8 = 2;
/// Where a program that makes tail calls keeps the real context.
const CTX_SLOT: i16 = -512;
/// The packet XDP runs on (the kernel wants at least an Ethernet header).
const PACKET: [u8; 14] = [0; 14];
/// The most bytes a context buffer may have (the kernel's largest map value we use).
pub const MAX_CTX: usize = 4096;

/// Why a set cannot be run on the kernel, or `None` when it can.
pub fn unsupported(set: &ProgramSet, input: &BpfInput) -> Option<String> {
    if input.ctx.as_ref().is_some_and(|c| c.len() > MAX_CTX) {
        return Some(format!("a context of more than {MAX_CTX} bytes"));
    }
    for p in set.progs() {
        for insn in p.prog.insns() {
            match *insn {
                Insn::Call(Call::Helper(id))
                    if !insn.is_tail_call()
                        && id != helpers::MAP_LOOKUP_ELEM
                        && id != helpers::GET_NUMA_NODE_ID =>
                {
                    let name = helpers::prototype(id).map_or("an unknown helper", |p| p.name);
                    return Some(format!(
                        "program {} calls {name} (helper {id}), which the kernel lacks or which is not \
                         deterministic there",
                        p.name
                    ));
                }
                Insn::Call(Call::Kfunc(_)) => return Some(format!("program {} calls a kfunc", p.name)),
                _ => {}
            }
        }
        let tail_calls = p.prog.insns().iter().any(Insn::is_tail_call);
        if tail_calls && p.prog.function_stack_depth(0) > (-(CTX_SLOT as i32) - 8) as u32 {
            return Some(format!(
                "program {} makes tail calls and its main function uses more than 504 bytes of stack, \
                 where the kernel engine keeps the context",
                p.name
            ));
        }
    }
    None
}

/// `insns` with `prologue` in front and `before(insn)` in front of each instruction, every
/// jump and call moved to reach the same instruction (or what was put in front of it;
/// never the prologue). `None` when an offset no longer fits.
pub fn insert(insns: &[Insn], prologue: &[Insn], before: impl Fn(&Insn) -> Vec<Insn>) -> Option<Vec<Insn>> {
    let slots = |v: &[Insn]| v.iter().map(Insn::slots).sum::<usize>() as i64;
    let mut group = Vec::with_capacity(insns.len() + 1); // new slot of each group's start
    let mut at_insn = Vec::with_capacity(insns.len()); // new slot of each old instruction
    let mut old_slot = Vec::with_capacity(insns.len() + 1);
    let (mut new, mut old) = (slots(prologue), 0i64);
    let befores: Vec<Vec<Insn>> = insns.iter().map(&before).collect();
    for (insn, pre) in insns.iter().zip(&befores) {
        group.push(new);
        old_slot.push(old);
        new += slots(pre);
        at_insn.push(new);
        new += insn.slots() as i64;
        old += insn.slots() as i64;
    }
    old_slot.push(old);
    group.push(new);
    let index_at = |s: i64| old_slot.binary_search(&s).ok();
    let mut out = prologue.to_vec();
    for (i, (insn, pre)) in insns.iter().zip(&befores).enumerate() {
        out.extend_from_slice(pre);
        let retarget = |off: i64| -> Option<i64> {
            let target = index_at(old_slot[i] + 1 + off)?;
            Some(group[target] - at_insn[i] - 1)
        };
        out.push(match *insn {
            Insn::Ja { off } => Insn::Ja { off: i16::try_from(retarget(off as i64)?).ok()? },
            Insn::JaLong { off } => Insn::JaLong { off: i32::try_from(retarget(off as i64)?).ok()? },
            Insn::Jmp { width, cond, dst, src, off } => {
                Insn::Jmp { width, cond, dst, src, off: i16::try_from(retarget(off as i64)?).ok()? }
            }
            Insn::Call(Call::Local(off)) => {
                Insn::Call(Call::Local(i32::try_from(retarget(off as i64)?).ok()?))
            }
            other => other,
        });
    }
    Some(out)
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
    let ctx = first.ctx.as_deref();
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
    let save = Insn::Store { size: Size::DW, dst: Reg::R10, src: Reg::R1, off: CTX_SLOT };
    let reload = Insn::Load { size: Size::DW, signed: false, dst: Reg::R1, src: Reg::R10, off: CTX_SLOT };
    let mut progs = Vec::with_capacity(set.progs().len());
    for p in set.progs() {
        let insns = p.prog.insns();
        let lowered = if insns.iter().any(Insn::is_tail_call) {
            insert(insns, &[save, set_r1], |i| if i.is_tail_call() { vec![reload] } else { vec![] })
        } else {
            insert(insns, &[set_r1], |_| vec![])
        }
        .ok_or_else(|| {
            format!("program {}: a jump no longer reaches after the kernel engine's additions", p.name)
        })?;
        progs.push(
            bpf::encode_bytes(&lowered).chunks_exact(8).map(|c| c.try_into().expect("8 bytes")).collect(),
        );
    }
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
    Ok(Job {
        jit,
        prog_type: crate::prog_type::XDP,
        prog_flags: ANY_ALIGNMENT,
        buffer_mode: BufferMode::Data,
        maps,
        progs,
        slots,
        entry: 0,
        input_map: ctx.map(|_| buffer as u32),
        inputs: inputs.iter().map(job_input).collect(),
        ..Job::default()
    })
}

/// One input of a job: the dummy packet, and the context as the buffer map's overlay.
fn job_input(input: &BpfInput) -> Input {
    Input { data: PACKET.to_vec(), map_overlay: input.ctx.clone().unwrap_or_default() }
}

/// What `job`'s result says about the runs of `set` on `inputs` (one result per input).
pub fn outcomes(set: &ProgramSet, inputs: &[BpfInput], jit: bool, result: JobResult) -> Vec<RunResult> {
    let all = |r: RunResult| vec![r; inputs.len()];
    let (entry, runs) = match result {
        JobResult::Ran { entry, runs } => (entry, runs),
        JobResult::Rejected { prog, errno, log } => {
            let name = set.progs().get(prog as usize).map_or("?", |p| p.name.as_str());
            return all(RunResult::Rejected(format!("program {name}: errno {errno}\n{log}")));
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
        arrays,
        observes: Observes { r0_bits: 32, tail_calls: counted.is_some(), helper_calls: false },
    })
}

/// Whether every program of `set` starts with the generator's entry counter
/// (`bpf::gen::Config::count_entries`): `r0 = *(u64 *)(r1 + 0); r0 += 1;
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
    prepared: Option<(ProgramSet, Vec<(BpfInput, RunResult)>)>,
}

impl KernelEngine {
    /// The engine `kernel-jit` (`jit`) or `kernel-interp` on the default kernel (see
    /// [`KernelImage::for_kernel`]); the image is located (or built) now and the guest
    /// booted on first use. `Err` when there is no image and it cannot be built.
    pub fn new(jit: bool) -> Result<KernelEngine, GuestError> {
        KernelEngine::named(jit, None, engine_name(jit, None))
    }

    /// The engine `kernel-jit` or `kernel-interp` on `kernel` (a Debian version or a
    /// path; `None`: the default), reporting itself as `name` (see [`engine_name`]).
    pub fn named(jit: bool, kernel: Option<&str>, name: &'static str) -> Result<KernelEngine, GuestError> {
        let image = KernelImage::for_kernel(kernel)?;
        Ok(KernelEngine { jit, name, guest: None, image: Some(image), prepared: None })
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
            self.guest = Some(Guest::boot(image)?);
        }
        Ok(self.guest.as_mut().expect("booted above"))
    }
}

impl Engine for KernelEngine {
    fn name(&self) -> &'static str {
        self.name
    }

    fn prepare(&mut self, set: &ProgramSet, inputs: &[BpfInput]) {
        self.prepared = None;
        let Ok(job) = lower_all(set, inputs, self.jit) else { return };
        let results = self.exchange(set, inputs, job);
        self.prepared = Some((set.clone(), inputs.iter().cloned().zip(results).collect()));
    }

    fn native_listing(&mut self, set: &ProgramSet, input: &BpfInput) -> Option<Result<String, String>> {
        self.jit.then(|| self.jited_listing(set, input))
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
        match self.run_job(&job)? {
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

    /// Runs `job` alone in the guest: its result, or why there is none. A dead or hung
    /// guest is dropped here and booted again for the next job.
    fn run_job(&mut self, job: &Job) -> Result<JobResult, String> {
        match self.guest().and_then(|g| g.run(std::slice::from_ref(job))) {
            Ok(mut results) if results.len() == 1 => Ok(results.pop().expect("one result")),
            Ok(results) => Err(format!("the guest answered {} results for 1 job", results.len())),
            Err(e) => {
                self.guest = None;
                Err(format!("the guest failed: {e}"))
            }
        }
    }

    /// Runs `job` (for `set` on `inputs`) in the guest: one result per input.
    fn exchange(&mut self, set: &ProgramSet, inputs: &[BpfInput], job: Job) -> Vec<RunResult> {
        match self.run_job(&job) {
            Ok(result) => outcomes(set, inputs, self.jit, result),
            Err(why) => vec![RunResult::CannotJudge(why); inputs.len()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpf::asm::parse_set;

    /// An instruction to insert, recognisable in the output.
    const MARK: Insn =
        Insn::Alu { width: bpf::Width::W64, op: bpf::AluOp::Mov, dst: Reg::R9, src: bpf::Operand::Imm(9) };

    #[test]
    fn insertions_keep_every_jump_on_its_instruction() {
        let set =
            parse_set("r0 = 0\nif r0 == 0 goto +1\ncall bpf_tail_call\nr0 = 1\ngoto -5\nexit\n").unwrap().set;
        let insns = set.entry().prog.insns();
        let out =
            insert(insns, &[MARK, MARK], |i| if i.is_tail_call() { vec![MARK] } else { vec![] }).unwrap();
        // prologue(2) r0=0 if mark tail r0=1 goto exit
        assert_eq!(out.len(), 9);
        // `if r0 == 0 goto +1` skipped the tail call; now it skips the reload and the call.
        assert_eq!(out[3].jump_offset(), Some(2));
        // `goto -5` went to `r0 = 0`; it still does (slot 2), not to the prologue.
        assert_eq!(out[7].jump_offset(), Some(-6));
    }

    #[test]
    fn jumps_to_a_tail_call_reach_its_reload() {
        let set = parse_set("if r0 == 0 goto +0\ncall bpf_tail_call\nexit\n").unwrap().set;
        let out =
            insert(set.entry().prog.insns(), &[], |i| if i.is_tail_call() { vec![MARK] } else { vec![] });
        assert_eq!(out.unwrap()[0].jump_offset(), Some(0));
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
    }
}
