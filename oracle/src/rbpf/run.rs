//! Running lowered programs on rbpf: one VM per program invocation, the helpers every VM
//! registers, and the per-run state they share through a thread-local.
//!
//! rbpf's helpers are plain `fn(u64, u64, u64, u64, u64) -> u64` without access to the VM
//! or to any closure state, so everything a run shares (the [`Helpers`] and their trace,
//! the tail-call counter, the program set, where the stack and the context are) lives in
//! [`RUN`] for the duration of one [`Engine::run_set`](bpf::Engine::run_set) call. A tail
//! call runs its target in a nested VM, from inside the tail-call helper, on the same
//! thread: the nested run sees the same thread-local state, the same context bytes and
//! the same budget.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use bpf::exec::{map_addr, EmptySlotRule, MAPS_ADDR, MAP_STRIDE, MAX_TAIL_CALL_CNT};
use bpf::helpers::{Helpers, ALL};
use bpf::{Fault, FaultKind, Program, ProgramSet};

use super::lower::{lower, Lowered, MapCounts, FETCH_HELPER, PREFIX_SLOTS, TAIL_HELPER, TICK_HELPER};

thread_local! {
    /// Backward jumps the current run may still take.
    pub(crate) static TICKS_LEFT: Cell<u64> = const { Cell::new(0) };
    /// Set when the current run has spent its budget.
    pub(crate) static SPENT: Cell<bool> = const { Cell::new(false) };
    /// The state of the run in progress on this thread, if any.
    static RUN: RefCell<Option<Run>> = const { RefCell::new(None) };
    /// Cleared by the stack-usage calculator when rbpf hands it data it cannot read.
    static FRAME_SIZES_READ: Cell<bool> = const { Cell::new(true) };
}

/// The counting helper called by the budget subroutine: 0 while budget remains, then 1.
pub(crate) fn tick(_: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    let left = TICKS_LEFT.get();
    if left == 0 {
        SPENT.set(true);
        1
    } else {
        TICKS_LEFT.set(left - 1);
        0
    }
}

/// Why a run ends without a result of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The run faulted (in any of its nested VMs).
    Fault(Fault),
    /// Something on the way cannot be run with the kernel's semantics.
    CannotJudge(String),
}

/// Where a run's memory lies: offsets into one buffer that outlives the run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Memory {
    /// The buffer's first byte.
    pub(crate) base: *mut u8,
    /// The lowest stack byte any VM of the run may be given.
    pub(crate) stack_lo: usize,
    /// One past the highest stack byte (the main function's R10).
    pub(crate) stack_top: usize,
    /// The stack is zero or was written by this run from here up to `stack_top`.
    pub(crate) zeroed_from: usize,
    /// The context's first byte.
    pub(crate) ctx: usize,
    /// The context's length.
    pub(crate) ctx_len: usize,
    /// Whether there is a context (R1 = 0 at entry otherwise).
    pub(crate) has_ctx: bool,
}

impl Memory {
    /// The context as rbpf's "mem" area (empty without a context).
    ///
    /// # Safety
    /// The buffer must be alive and hold the context at `ctx..ctx + ctx_len`.
    pub(crate) unsafe fn ctx_area<'a>(&self) -> &'a [u8] {
        if self.has_ctx {
            std::slice::from_raw_parts(self.base.add(self.ctx), self.ctx_len)
        } else {
            &[]
        }
    }

    /// The stack bytes `lo..hi` as rbpf's "mbuff" area, zeroing what this run has not
    /// used yet.
    ///
    /// # Safety
    /// The buffer must be alive and `stack_lo <= lo <= hi <= stack_top`.
    pub(crate) unsafe fn stack_area<'a>(&mut self, lo: usize, hi: usize) -> &'a [u8] {
        if lo < self.zeroed_from {
            std::ptr::write_bytes(self.base.add(lo), 0, self.zeroed_from - lo);
            self.zeroed_from = lo;
        }
        std::slice::from_raw_parts(self.base.add(lo), hi - lo)
    }
}

/// The state of one run, shared by every VM of it.
struct Run {
    /// The set being run; valid for the run (see [`RunGuard`]).
    set: *const ProgramSet,
    /// Each program's lowering (done at the first tail call into it) and last VM: a tail
    /// call with the same context and frame (a tail-call loop, or the same set on another
    /// input) runs that VM again instead of building and validating a new one.
    built: Built,
    /// The program of each VM, outermost first.
    nest: Vec<usize>,
    helpers: Helpers,
    /// The kernel's tail-call counter.
    tail_call_cnt: u32,
    /// Whether a tail call through an empty slot counts.
    empty_slot: EmptySlotRule,
    /// Tail calls that jumped into their target.
    tail_calls: u32,
    /// The R0 of the last tail-call target that returned.
    fetched: u64,
    /// Set when the run must end (a nested VM faulted or cannot be judged).
    stop: Option<Stop>,
    memory: Memory,
    budget: u64,
}

/// Installs a run's state for as long as it lives and removes it when dropped, so that no
/// helper ever sees a dangling set pointer.
pub(crate) struct RunGuard(());

/// What a run leaves besides its result.
pub(crate) struct RunTotals {
    pub(crate) helpers: Helpers,
    pub(crate) tail_calls: u32,
    /// The lowerings and VMs the run had, for the next run of the same set.
    pub(crate) built: Built,
}

/// What runs of one set build and the next run of that set can use again: each program's
/// lowering and its last VM (by program index). A VM is used again only for the very bytes
/// it was made for (the same context and frame addresses patched in).
#[derive(Default)]
pub(crate) struct Built {
    pub(crate) lowered: Vec<Option<Rc<Lowered>>>,
    pub(crate) vms: Vec<Option<Rc<Vm>>>,
}

impl Built {
    /// Nothing built yet for a set of `programs` programs but its entry's lowering.
    pub(crate) fn new(programs: usize, entry: Rc<Lowered>) -> Built {
        let mut lowered = vec![None; programs];
        lowered[0] = Some(entry);
        Built { lowered, vms: vec![None; programs] }
    }

    /// Program `prog`'s VM for `bytes` (its lowering with the prefix patched): the last one
    /// if it runs exactly these bytes, else a new one, which is kept.
    pub(crate) fn vm(&mut self, prog: usize, bytes: Vec<u8>, lowered: &Lowered) -> Result<Rc<Vm>, Exec> {
        if let Some(vm) = self.vms[prog].as_ref().filter(|vm| vm.runs(&bytes)) {
            return Ok(Rc::clone(vm));
        }
        let vm = Rc::new(Vm::new(bytes, lowered)?);
        self.vms[prog] = Some(Rc::clone(&vm));
        Ok(vm)
    }
}

impl RunGuard {
    /// Starts a run of `set` with `budget` backward jumps and what earlier runs of it built
    /// (at least the entry program's lowering).
    ///
    /// The set and the buffer `memory` points into must outlive the guard.
    pub(crate) fn start(
        set: &ProgramSet,
        built: Built,
        memory: Memory,
        budget: u64,
        empty_slot: EmptySlotRule,
    ) -> RunGuard {
        TICKS_LEFT.set(budget);
        SPENT.set(false);
        RUN.set(Some(Run {
            set,
            built,
            nest: vec![0],
            helpers: Helpers::new(),
            tail_call_cnt: 0,
            empty_slot,
            tail_calls: 0,
            fetched: 0,
            stop: None,
            memory,
            budget,
        }));
        RunGuard(())
    }

    /// The pending stop of the run, if any (a budget spent anywhere comes first).
    pub(crate) fn take_stop(&self) -> Option<Stop> {
        if SPENT.get() {
            let budget = RUN.with_borrow(|r| r.as_ref().map_or(0, |r| r.budget));
            return Some(Stop::Fault(budget_fault(budget)));
        }
        RUN.with_borrow_mut(|r| r.as_mut().and_then(|r| r.stop.take()))
    }

    /// Ends the run: its helper trace and tail-call count (`None` only if the state
    /// vanished, which nothing does).
    pub(crate) fn finish(self) -> Option<RunTotals> {
        RUN.take().map(|run| RunTotals { helpers: run.helpers, tail_calls: run.tail_calls, built: run.built })
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        RUN.set(None);
    }
}

/// The fault of a run that spent its budget of backward jumps.
pub(crate) fn budget_fault(budget: u64) -> Fault {
    Fault {
        kind: FaultKind::Budget,
        pc: None,
        detail: format!(
            "more than {budget} backward jumps (rbpf has no instruction limit; the lowering counts \
             backward jumps)"
        ),
    }
}

/// Runs `f` on the current run's state. Helpers are only ever called from inside a run;
/// outside one this panics, which the enclosing `catch_unwind` turns into a host fault.
fn with_run<T>(f: impl FnOnce(&mut Run) -> T) -> T {
    RUN.with_borrow_mut(|r| f(r.as_mut().expect("an rbpf helper was called outside a run")))
}

/// The helper registered for `ALL[K]`: forwards to the run's [`Helpers`], which records
/// the call.
fn shared_helper<const K: usize>(r1: u64, r2: u64, r3: u64, r4: u64, r5: u64) -> u64 {
    let id = ALL[K];
    with_run(|run| run.helpers.call(id, [r1, r2, r3, r4, r5]))
        .unwrap_or_else(|| panic!("bpf::helpers::ALL lists helper {id}, which Helpers::call does not know"))
}

/// The helper registered for jitdiff's kfunc `ID` (the lowering calls a kfunc as the
/// rbpf helper of the same id; no helper has a kfunc's id): forwards to the run's
/// [`Helpers::call_kfunc`], which records the call as a kfunc's.
fn shared_kfunc<const ID: i32>(r1: u64, r2: u64, r3: u64, r4: u64, r5: u64) -> u64 {
    with_run(|run| run.helpers.call_kfunc(ID, [r1, r2, r3, r4, r5])).unwrap_or_else(|| {
        panic!("bpf::helpers::KFUNCS lists kfunc {ID}, which Helpers::call_kfunc does not know")
    })
}

type HelperFn = fn(u64, u64, u64, u64, u64) -> u64;

/// One forwarding function per position of [`ALL`] (rbpf's helpers cannot know their id).
const SHARED_HELPERS: [HelperFn; 16] = [
    shared_helper::<0>,
    shared_helper::<1>,
    shared_helper::<2>,
    shared_helper::<3>,
    shared_helper::<4>,
    shared_helper::<5>,
    shared_helper::<6>,
    shared_helper::<7>,
    shared_helper::<8>,
    shared_helper::<9>,
    shared_helper::<10>,
    shared_helper::<11>,
    shared_helper::<12>,
    shared_helper::<13>,
    shared_helper::<14>,
    shared_helper::<15>,
];
const _: () = assert!(ALL.len() <= SHARED_HELPERS.len(), "add forwarding functions for the new helpers");

/// rbpf's stack-usage calculator: the frame size of the function slot `pc` belongs to.
///
/// rbpf calls it for slot 0 and for the target `pc + 1 + imm` of every `call`, helper
/// calls included (their targets are meaningless); rbpf then sets the current frame's
/// size whenever it executes one of those slots. Since every slot answers the size of its
/// own function, a meaningless target inside some function changes nothing.
fn frame_size_of(_: &[u8], pc: usize, data: &mut dyn Any) -> u16 {
    // rbpf hands over its `Box<dyn Any>` itself (`&mut Box<dyn Any>` coerces to
    // `&mut dyn Any`); accept the contents directly too.
    let sizes = match data.downcast_ref::<Box<dyn Any>>() {
        Some(inner) => inner.downcast_ref::<Rc<[u16]>>(),
        None => data.downcast_ref::<Rc<[u16]>>(),
    };
    match sizes {
        Some(sizes) => sizes.get(pc).copied().unwrap_or(0),
        None => {
            FRAME_SIZES_READ.set(false);
            0
        }
    }
}

/// What rbpf did with a lowered program.
#[derive(Debug)]
pub(crate) enum Exec {
    /// The verifier refused it.
    Rejected(String),
    /// It ran: R0, or rbpf's error.
    Ran(Result<u64, String>),
    /// It panicked.
    Panicked(String),
}

/// Whether `bytes` are `lowered`'s bytes with only the prefix's immediates patched (see
/// [`patched`]).
fn is_patch_of(bytes: &[u8], lowered: &Lowered) -> bool {
    let ours = lowered.bytes();
    let prefix = PREFIX_SLOTS * 8;
    // Opcode, registers and offset: everything of a slot but its immediate.
    let head = |b: &[u8], slot: usize| [b[slot * 8], b[slot * 8 + 1], b[slot * 8 + 2], b[slot * 8 + 3]];
    bytes.len() == ours.len()
        && bytes.len() >= prefix
        && bytes[prefix..] == ours[prefix..]
        && (0..PREFIX_SLOTS).all(|slot| head(bytes, slot) == head(ours, slot))
}

/// rbpf's verifier for a program it has already accepted.
fn accept(_: &[u8]) -> Result<(), std::io::Error> {
    Ok(())
}

/// An rbpf VM with the program bytes it runs (a lowering with its prefix patched).
pub(crate) struct Vm {
    // Declared before `bytes` so that it is dropped first: it borrows them.
    vm: rbpf::EbpfVmMbuff<'static>,
    bytes: Vec<u8>,
}

impl Vm {
    /// A VM for `bytes` (the lowering `lowered` with its prefix patched) with every helper
    /// it calls registered, or what rbpf said when it refused them.
    pub(crate) fn new(bytes: Vec<u8>, lowered: &Lowered) -> Result<Vm, Exec> {
        // SAFETY: the slice lives in the Vec's heap buffer, which stays where it is when the
        // Vec moves (and, unlike a Box's, is not claimed afresh by the move), is never
        // written or resized, and is freed only after `vm` is dropped (field order); the
        // 'static reference never leaves the Vm.
        let program: &'static [u8] = unsafe { &*std::ptr::from_ref::<[u8]>(bytes.as_slice()) };
        let mut vm = rbpf::EbpfVmMbuff::new(None).map_err(|e| Exec::Rejected(e.to_string()))?;
        FRAME_SIZES_READ.set(true);
        let calculator = vm.set_stack_usage_calculator(frame_size_of, Box::new(lowered.frame_sizes()));
        // rbpf's verifier judges the program once: later runs (other inputs, tail calls into
        // it) differ only in the patched `lddw` immediates, which it does not look at.
        let known = lowered.verified() && is_patch_of(program, lowered);
        let verifier = if known { vm.set_verifier(accept) } else { Ok(()) };
        if let Err(e) = calculator.and(verifier).and_then(|()| vm.set_program(program)) {
            return Err(Exec::Rejected(e.to_string()));
        }
        lowered.set_verified();
        if !FRAME_SIZES_READ.get() {
            return Err(Exec::Ran(Err(
                "internal error: rbpf's stack-usage calculator got no frame sizes".into()
            )));
        }
        // Only the helpers the program calls (registration is a good part of a VM's cost).
        for &id in lowered.helper_ids() {
            let f: HelperFn = match id {
                TICK_HELPER => tick,
                TAIL_HELPER => tail_call,
                FETCH_HELPER => fetch,
                _ if bpf::helpers::KFUNCS.contains(&(id as i32)) => match id as i32 {
                    bpf::helpers::KFUNC_MIX => shared_kfunc::<{ bpf::helpers::KFUNC_MIX }>,
                    bpf::helpers::KFUNC_COUNTER => shared_kfunc::<{ bpf::helpers::KFUNC_COUNTER }>,
                    bpf::helpers::KFUNC_RCU_READ_LOCK => {
                        shared_kfunc::<{ bpf::helpers::KFUNC_RCU_READ_LOCK }>
                    }
                    bpf::helpers::KFUNC_RCU_READ_UNLOCK => {
                        shared_kfunc::<{ bpf::helpers::KFUNC_RCU_READ_UNLOCK }>
                    }
                    bpf::helpers::KFUNC_PREEMPT_DISABLE => {
                        shared_kfunc::<{ bpf::helpers::KFUNC_PREEMPT_DISABLE }>
                    }
                    _ => shared_kfunc::<{ bpf::helpers::KFUNC_PREEMPT_ENABLE }>,
                },
                _ => match ALL.iter().position(|&h| h as u32 == id) {
                    Some(k) => SHARED_HELPERS[k],
                    // The lowering emits no other call; rbpf would stop on it as unknown.
                    None => continue,
                },
            };
            vm.register_helper(id, f).map_err(|e| Exec::Ran(Err(e.to_string())))?;
        }
        Ok(Vm { vm, bytes })
    }

    /// Whether this VM runs exactly `bytes`.
    fn runs(&self, bytes: &[u8]) -> bool {
        self.bytes == bytes
    }

    /// Runs the program with `mem` (the context) and `mbuff` (the stack) as the areas it
    /// accepts besides its own stack. A VM may run again, also while it is running (a tail
    /// call into the program itself): rbpf keeps a run's state on the stack.
    pub(crate) fn run(&self, mem: &[u8], mbuff: &[u8]) -> Exec {
        // rbpf takes both areas as shared slices and writes through pointers it rebuilds from
        // the registers.
        match catch_unwind(AssertUnwindSafe(|| self.vm.execute_program(mem, mbuff))) {
            Ok(r) => Exec::Ran(r.map_err(|e| e.to_string())),
            Err(payload) => Exec::Panicked(
                payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_string()),
            ),
        }
    }
}

/// The slot number N in rbpf's "(insn #N)".
pub(crate) fn insn_number(msg: &str) -> Option<usize> {
    let rest = &msg[msg.find("insn #")? + "insn #".len()..];
    let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..digits].parse().ok()
}

/// The address in rbpf's "out of bounds memory" message ("addr 0x...").
pub(crate) fn fault_addr(msg: &str) -> Option<u64> {
    let rest = &msg[msg.find("addr 0x")? + "addr 0x".len()..];
    let digits = rest.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(rest.len());
    u64::from_str_radix(&rest[..digits], 16).ok()
}

/// What an [`Exec`] of program `prog` (lowered as `lowered`) means, once the run's pending
/// stops have been looked at. The set has `maps`, at [`map_addr`]; `label` prefixes the
/// details of faults and reasons ("" for the entry program).
pub(crate) fn conclude(
    exec: Exec,
    prog: &Program,
    lowered: &Lowered,
    maps: MapCounts,
    label: &str,
) -> Result<u64, Stop> {
    let pc_of_slot = |slot: usize| lowered.original_index(slot).map(|i| prog.pc_of(i));
    match exec {
        Exec::Rejected(msg) => {
            let at = insn_number(&msg).and_then(pc_of_slot);
            Err(Stop::CannotJudge(match at {
                Some(pc) => format!("{label}pc {pc}: rbpf 0.4.1 rejects the lowered program: {msg}"),
                None => format!("{label}rbpf 0.4.1 rejects the lowered program: {msg}"),
            }))
        }
        Exec::Ran(Ok(r0)) => Ok(r0),
        Exec::Ran(Err(msg)) if msg.contains("out of bounds memory") => {
            // rbpf reports the slot after the faulting one (its pc is already advanced).
            let pc = insn_number(&msg).and_then(|n| n.checked_sub(1)).and_then(pc_of_slot);
            let window = MAPS_ADDR..MAPS_ADDR + maps.total() as u64 * MAP_STRIDE;
            if fault_addr(&msg).is_some_and(|a| window.contains(&a)) {
                let at = pc.map_or(String::new(), |pc| format!("pc {pc}: "));
                return Err(Stop::CannotJudge(format!(
                    "{label}{at}an access to a map's memory: rbpf has none (maps are only known by \
                     their address): {msg}"
                )));
            }
            Err(Stop::Fault(Fault { kind: FaultKind::MemoryAccess, pc, detail: format!("{label}{msg}") }))
        }
        Exec::Ran(Err(msg)) => Err(Stop::Fault(Fault {
            kind: FaultKind::Host,
            pc: insn_number(&msg).and_then(pc_of_slot),
            detail: format!("{label}rbpf error: {msg}"),
        })),
        Exec::Panicked(msg) => Err(Stop::Fault(Fault {
            kind: FaultKind::Host,
            pc: None,
            detail: format!("{label}rbpf panicked: {msg}"),
        })),
    }
}

/// Writes `value` into the immediate of the `lddw` at `slot` (the halves are the `imm`
/// fields, bytes 4-7, of two consecutive slots).
pub(crate) fn patch_lddw(bytes: &mut [u8], slot: usize, value: u64) {
    bytes[slot * 8 + 4..slot * 8 + 8].copy_from_slice(&(value as u32).to_le_bytes());
    bytes[slot * 8 + 12..slot * 8 + 16].copy_from_slice(&((value >> 32) as u32).to_le_bytes());
}

/// The lowering's bytes with the prefix `lddw r1, r1; lddw r10, r10`.
pub(crate) fn patched(lowered: &Lowered, r1: u64, r10: u64) -> Vec<u8> {
    const { assert!(PREFIX_SLOTS == 4, "the prefix is two lddw") };
    let mut bytes = lowered.bytes().to_vec();
    patch_lddw(&mut bytes, 0, r1);
    patch_lddw(&mut bytes, 2, r10);
    bytes
}

/// A tail call that goes ahead: the target and everything its VM needs (the areas point
/// into the run's buffer).
struct Jump<'a> {
    prog: usize,
    lowered: Rc<Lowered>,
    /// The target's VM, or what rbpf said when it refused the program.
    vm: Result<Rc<Vm>, Exec>,
    ctx: &'a [u8],
    stack: &'a [u8],
    set: *const ProgramSet,
    maps: MapCounts,
    label: String,
}

/// The tail-call helper (see [`super::lower::tail_call_site`]): R1 = ctx, R2 = map,
/// R3 = index, R4 = the calling frame's R10, R5 = the site's pc. Returns 0 when the tail
/// call fails, 1 when the target ran to its `exit` (its R0 is then in `fetched`), 2 when
/// the run must stop (the reason is pending).
///
/// The kernel's order (`___bpf_prog_run`, JMP_TAIL_CALL): the index is R3's low 32 bits;
/// an index at or past `max_entries` fails; a counter at [`MAX_TAIL_CALL_CNT`] fails; an
/// empty slot fails (spending one count only under [`EmptySlotRule::Counted`]); otherwise
/// the counter goes up and the target runs with the same R1 and R10, and the calling
/// frame ends with its R0.
fn tail_call(r1: u64, r2: u64, r3: u64, r4: u64, r5: u64) -> u64 {
    let jump = with_run(|run| -> Result<Option<Jump>, Stop> {
        // SAFETY: the set outlives the run (RunGuard::start).
        let set: &ProgramSet = unsafe { &*run.set };
        let caller = *run.nest.last().unwrap_or(&0);
        let here = || format!("{}pc {r5}: tail call", label_of(set, caller));
        let maps = MapCounts::of(set);
        let Some(map) = (0..maps.prog_arrays).find(|&k| map_addr(k) == r2) else {
            return Err(Stop::CannotJudge(format!(
                "{}: r2 = {r2:#x} is not a map reference (the kernel's verifier requires one)",
                here()
            )));
        };
        let slots = &set.maps()[map].slots;
        let index = r3 as u32;
        if index >= slots.len() as u32 || run.tail_call_cnt >= MAX_TAIL_CALL_CNT {
            return Ok(None);
        }
        let Some(target) = slots[index as usize] else {
            if run.empty_slot == EmptySlotRule::Counted {
                run.tail_call_cnt += 1;
            }
            return Ok(None);
        };
        run.tail_call_cnt += 1;
        run.tail_calls += 1;
        let name = &set.progs()[target].name;
        let label = format!("program {name} (reached by tail call {}): ", run.tail_calls);
        let lowered = match &run.built.lowered[target] {
            Some(l) => Rc::clone(l),
            None => {
                let l = Rc::new(lower(&set.progs()[target].prog, maps).map_err(|why| {
                    Stop::CannotJudge(format!("{}: its target, program {name}: {why}", here()))
                })?);
                run.built.lowered[target] = Some(Rc::clone(&l));
                l
            }
        };
        // The target's frames take the place of the calling frame: its R10 is the calling
        // frame's, and its call chain extends below. Above that R10 lie exactly the frames
        // of the calling frame's callers, still live: the target may reach them through a
        // pointer in R1, as in the reference interpreter. Its area is both.
        let m = &mut run.memory;
        let top = (r4 as usize).wrapping_sub(m.base as usize);
        let extent = lowered.stack_extent() as usize;
        if top > m.stack_top || top < m.stack_lo + extent {
            return Err(Stop::Fault(Fault {
                kind: FaultKind::Host,
                pc: Some(r5 as usize),
                detail: format!("{}: internal error: R10 {r4:#x} is outside the engine's stack", here()),
            }));
        }
        // SAFETY: the buffer outlives the run, and stack_lo <= top - extent <= stack_top.
        let (ctx, stack) = unsafe { (m.ctx_area(), m.stack_area(top - extent, m.stack_top)) };
        let vm = run.built.vm(target, patched(&lowered, r1, r4), &lowered);
        run.nest.push(target);
        Ok(Some(Jump { prog: target, lowered, vm, ctx, stack, set: run.set, maps, label }))
    });
    let jump = match jump {
        Ok(Some(jump)) => jump,
        Ok(None) => return 0,
        Err(stop) => {
            with_run(|run| run.stop = Some(stop));
            return 2;
        }
    };
    let exec = match jump.vm {
        Ok(vm) => vm.run(jump.ctx, jump.stack),
        Err(refused) => refused,
    };
    with_run(|run| {
        run.nest.pop();
        if SPENT.get() || run.stop.is_some() {
            return 2;
        }
        // SAFETY: the set outlives the run.
        let prog = unsafe { &(*jump.set).progs()[jump.prog].prog };
        match conclude(exec, prog, &jump.lowered, jump.maps, &jump.label) {
            Ok(r0) => {
                run.fetched = r0;
                1
            }
            Err(stop) => {
                run.stop = Some(stop);
                2
            }
        }
    })
}

/// "program NAME: " for a program reached by tail call, "" for the entry program.
fn label_of(set: &ProgramSet, prog: usize) -> String {
    if prog == 0 {
        String::new()
    } else {
        format!("program {}: ", set.progs()[prog].name)
    }
}

/// The helper that hands over the R0 of the tail-call target that just returned.
fn fetch(_: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    with_run(|run| run.fetched)
}

#[cfg(test)]
mod patch_tests {
    use super::*;
    use bpf::{Insn, Program};

    #[test]
    fn only_patched_prefixes_count_as_the_same_program() {
        let lowered =
            crate::rbpf::lower::lower(&Program::new(vec![Insn::Exit]).unwrap(), MapCounts::default())
                .unwrap();
        assert!(is_patch_of(&patched(&lowered, 0x1000, 0x2000), &lowered));
        let mut other = patched(&lowered, 0x1000, 0x2000);
        let last = other.len() - 8;
        other[last] ^= 1;
        assert!(!is_patch_of(&other, &lowered));
        assert!(!is_patch_of(&other[..last], &lowered));
    }
}
