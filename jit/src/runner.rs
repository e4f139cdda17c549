//! Executes JIT code in unicorn's RV64 emulator.
//!
//! One [`Runner`] owns one emulator instance and reuses it for every run (creating one
//! costs about 0.3 ms; running new code costs tens of microseconds). The guest memory
//! map is fixed ([`crate::guest`]). Before each run the registers are set to known
//! values and the top of the stack is cleared, so a run depends only on the code, the
//! maps and the context; after it, the callee-saved registers and `sp` are checked
//! against the RISC-V calling convention.
//!
//! Helpers are trap addresses: the code calls `HELPERS_ADDR + 4k`, where a `ret` waits;
//! a hook on that page runs the shared helper implementation, puts the result in `a0`
//! and scrambles every other caller-saved register, as a real call may. Successful tail
//! calls are counted by hooks on the addresses of the tail-call jumps only, so the code
//! under test is not changed to observe them.

use bpf::context::PACKET_ADDR;
use bpf::exec::{map_addr, ARRAY_VALUES_OFFSET, CTX_ADDR, MAPS_ADDR, MAP_PTRS_OFFSET, MAP_STRIDE};
use bpf::helpers::{HelperCall, Helpers, MAP_LOOKUP_ELEM, STRTOUL};
use bpf::ProgramSet;
use unicorn_engine::unicorn_const::{uc_error, Arch, ControlType, HookType, MemType, Mode, Prot};
use unicorn_engine::{RegisterRISCV, UcHookId, Unicorn};

use std::collections::HashMap;
use std::time::Duration;

use bpf::set::ATTACH_ARGS;
use bpf::trace::{Step, Trace};
use bpf::{AttachKind, AttachmentSeen};

use crate::compile::{map_reg, CompiledSet};
use crate::guest::{
    helper_at, kfunc_at, packet_load_at, prog_addr, CODE_ADDR, EXIT_ADDR, HELPERS_ADDR, MAX_MAPS, PROGS_ADDR,
    STACK_SIZE, STACK_TOP,
};
use crate::watchdog::Watchdog;

/// Bytes below `STACK_TOP` cleared before every run: the BPF stack (512 bytes in all)
/// and eight frames' saved registers take under 2 KiB.
const STACK_CLEAR: usize = 8 * 1024;
/// Translation blocks (straight-line runs of machine code) a run may enter, by default,
/// before it counts as not terminating: a block is at least one machine instruction,
/// and every loop iteration enters at least one, so this bounds every run. Counting
/// blocks with a block hook costs far less than unicorn's instruction count limit,
/// which instruments every instruction and doubles the cost of translating new code.
pub const BLOCK_LIMIT: usize = 100_000_000;
/// unicorn's translation cache, capped so that memory stays flat over millions of runs.
const TCG_BUFFER_SIZE: u32 = 16 << 20;
/// Wall-clock time after which a run is stopped and made again with translation blocks
/// counted. Fuzzed sets take well under a millisecond; the longest conformance programs
/// a few tens of milliseconds.
const WATCHDOG: Duration = Duration::from_millis(250);
/// Translation blocks a correct run may enter per instruction the reference interpreter
/// executed for it, generously: the most a BPF instruction compiles to is a tail call's
/// handful of branches, or a helper call's trap and return.
const HANG_BLOCKS_PER_INSN: u64 = 16;
/// Translation blocks a correct run may enter besides those: prologues, trampolines.
const HANG_SLACK_BLOCKS: u64 = 100_000;

/// The limits of a run bounded by the `work` the reference needed for it: the
/// watchdog's deadline, and the block limit of the counted rerun that decides.
fn hang_bounds(work: u64) -> (Duration, u64) {
    let deadline = Duration::from_millis(5) + Duration::from_nanos(work.saturating_mul(200));
    (deadline.min(WATCHDOG), work.saturating_mul(HANG_BLOCKS_PER_INSN).saturating_add(HANG_SLACK_BLOCKS))
}
const PAGE: u64 = 0x1000;
/// Zeros for clearing guest memory without allocating.
static ZEROS: [u8; PAGE as usize] = [0; PAGE as usize];

/// Values the callee-saved registers not mapped to BPF registers hold at entry; they
/// must hold them again at return.
const SENTINEL: u64 = 0x5a5a_0000_0000_0000;
/// What a helper call leaves in the caller-saved registers it does not return in.
const CLOBBER: u64 = 0xc10b_b3e5_0000_0000;

/// Why a run stopped before returning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// An access to an unmapped or protected address.
    Memory {
        /// The faulting data or instruction address, if the emulator reported it.
        addr: Option<u64>,
        /// Read, write or fetch.
        access: &'static str,
    },
    /// An illegal or unsupported instruction at `pc`.
    Illegal,
    /// The block limit was reached without returning.
    Limit,
    /// The run entered `blocks` translation blocks, the bound set by the `work` (in
    /// instructions) the reference needed to finish it, without returning.
    Hang {
        /// The bound.
        blocks: u64,
        /// The reference's instructions.
        work: u64,
    },
    /// Any other emulator error.
    Emulator(String),
}

/// What a run left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Native {
    /// `Ok` when the code returned to [`EXIT_ADDR`].
    pub stop: Result<(), Stop>,
    /// The guest pc at the end (where a fault happened).
    pub pc: u64,
    /// `a0` at the end: the native return value.
    pub a0: u64,
    /// `a5` at the end: BPF R0.
    pub a5: u64,
    /// Callee-saved registers (and `sp`) whose value at return differs from entry, as
    /// `(name, entry value, exit value)`. Checked only when the code returned.
    pub clobbered: Vec<(&'static str, u64, u64)>,
    /// The context buffer after the run.
    pub ctx: Vec<u8>,
    /// Tail-call jumps executed.
    pub tail_calls: u32,
    /// Helper calls serviced, in order.
    pub helper_calls: Vec<HelperCall>,
    /// Every array map's values after the run.
    pub arrays: Vec<Vec<u8>>,
    /// What each attachment's program was handed, in the set's order.
    pub attachments: Vec<AttachmentSeen>,
}

/// Where an array map lives in guest memory, for lookups.
#[derive(Clone, Copy, Debug, Default)]
struct ArrayInfo {
    addr: u64,
    max_entries: u32,
    value_size: u32,
}

/// What a traced run records: the guest address where each BPF instruction's code starts
/// (instructions that emit no code have none), and the steps so far.
#[derive(Default)]
struct Tracing {
    starts: HashMap<u64, (usize, usize)>,
    trace: Trace,
}

#[derive(Default)]
struct Data {
    fault_addr: Option<u64>,
    /// Translation blocks entered so far in this run, and the most allowed.
    blocks: u64,
    block_limit: u64,
    helpers: Helpers,
    tail_calls: u32,
    arrays: Vec<ArrayInfo>,
    /// What each attachment was handed so far.
    seen: Vec<AttachmentSeen>,
    /// Present during a traced run.
    tracing: Option<Box<Tracing>>,
    /// The program type and packet length of a `__sk_buff` run (for legacy packet loads).
    packet: Option<(bpf::ProgType, usize)>,
}

/// The kernel's `bpf_skb_load_helper_{8,16,32}_no_cache(a0 = skb, a1 = offset)` for `size`
/// bytes: the value read from the packet as it is now, or -EFAULT outside it.
fn load_packet(uc: &mut Unicorn<'_, Data>, size: usize) -> u64 {
    const EFAULT: i64 = 14;
    let offset = uc.reg_read(x(11)).unwrap_or(0) as u32 as i32;
    let Some((prog_type, len)) = uc.get_data().packet else { return (-EFAULT) as u64 };
    let packet = uc.mem_read_as_vec(PACKET_ADDR, len).unwrap_or_default();
    match prog_type.legacy_packet_load(&packet, offset, size) {
        Some(v) => u64::from(v),
        None => (-EFAULT) as u64,
    }
}

/// `bpf_strtoul(a0 = text, a1 = its length, a2 = flags, a3 = result)` (see
/// [`bpf::helpers::strtoul`]): reads the text from guest memory, writes the number, records
/// the call. The validator has checked both places.
fn strtoul(uc: &mut Unicorn<'_, Data>, args: [u64; 5]) -> u64 {
    let [text, len, flags, out, _] = args;
    let bytes = uc.mem_read_as_vec(text, len.min(512) as usize).unwrap_or_default();
    let (ret, res) = bpf::helpers::strtoul(&bytes, flags);
    let _ = uc.mem_write(out, &res.to_le_bytes());
    uc.get_data_mut().helpers.record_strtoul(len, flags, ret, res);
    ret
}

/// `bpf_map_lookup_elem(a0 = map, a1 = key pointer)`: the value's guest address or 0.
fn lookup(uc: &mut Unicorn<'_, Data>, map: u64, key_ptr: u64) -> u64 {
    let mut key = [0u8; 4];
    let readable = uc.mem_read(key_ptr, &mut key).is_ok();
    let key = u32::from_le_bytes(key);
    let Some(a) = uc.get_data().arrays.iter().position(|a| a.addr == map) else { return 0 };
    let info = uc.get_data().arrays[a];
    let found = readable && key < info.max_entries;
    uc.get_data_mut().helpers.record_lookup(a, key, found);
    if found {
        info.addr + ARRAY_VALUES_OFFSET + key as u64 * info.value_size as u64
    } else {
        0
    }
}

/// A reusable RV64 emulator set up for running JIT code.
pub struct Runner {
    /// Declared first so that it stops before the engine it watches is dropped.
    watchdog: Watchdog,
    /// The block-counting hook, while runs are counted (see [`crate::watchdog`]).
    counting: Option<UcHookId>,
    emu: Unicorn<'static, Data>,
    code_mapped: u64,
    code_len: u64,
    ctx_mapped: u64,
    /// Bytes mapped at [`PACKET_ADDR`] (0: none).
    packet_mapped: u64,
    limit: usize,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("code_mapped", &self.code_mapped).finish()
    }
}

fn x(n: u32) -> i32 {
    // unicorn numbers RISC-V registers from 1 (X0 = 1).
    RegisterRISCV::X0 as i32 + n as i32
}

/// The callee-saved registers that hold sentinels (not BPF registers): `s0`, `s6`-`s11`,
/// plus `gp` and `tp`, which no code may change.
const PRESERVED: [(u32, &str); 9] = [
    (8, "s0"),
    (22, "s6"),
    (23, "s7"),
    (24, "s8"),
    (25, "s9"),
    (26, "s10"),
    (27, "s11"),
    (3, "gp"),
    (4, "tp"),
];
/// Callee-saved registers that are BPF registers R6-R10: zero at entry, zero at return.
const BPF_SAVED: [(u32, &str); 5] = [(9, "s1"), (18, "s2"), (19, "s3"), (20, "s4"), (21, "s5")];
/// Caller-saved registers a helper call scrambles (`a0` gets the result).
const CALLER_SAVED: [u32; 14] = [5, 6, 7, 11, 12, 13, 14, 15, 16, 17, 28, 29, 30, 31];

fn err(e: uc_error) -> String {
    format!("unicorn: {e:?}")
}

impl Runner {
    /// Creates the emulator and maps the fixed regions.
    pub fn new() -> Result<Runner, String> {
        let mut emu = Unicorn::new_with_data(Arch::RISCV, Mode::RISCV64, Data::default())
            .map_err(|e| format!("cannot create the RV64 emulator: {e:?}"))?;
        // SAFETY: a valid engine handle, a control code and its single u32 argument, as
        // unicorn.h's uc_ctl_set_tcg_buffer_size documents; called before any emulation.
        let rc = unsafe {
            unicorn_engine::unicorn_const::uc_ctl(
                emu.get_handle(),
                ControlType(ControlType::TCG_BUFFER_SIZE.0 | ControlType::IO_WRITE.0 | (1 << 26)),
                TCG_BUFFER_SIZE,
            )
        };
        if rc != uc_error::OK {
            return Err(format!("cannot cap unicorn's translation buffer: {rc:?}"));
        }
        // Every region is writable: unicorn makes every write to a read-only region
        // rebuild its whole memory map (about 0.1 ms), which would dominate a run.
        emu.mem_map(EXIT_ADDR, PAGE, Prot::ALL).map_err(err)?;
        // ebreak: a backstop in case emulation ever runs past the exit address.
        emu.mem_write(EXIT_ADDR, &0x0010_0073u32.to_le_bytes()).map_err(err)?;
        emu.mem_map(HELPERS_ADDR, PAGE, Prot::ALL).map_err(err)?;
        let rets: Vec<u8> = (0..PAGE / 4).flat_map(|_| 0x0000_8067u32.to_le_bytes()).collect();
        emu.mem_write(HELPERS_ADDR, &rets).map_err(err)?;
        emu.mem_map(STACK_TOP - STACK_SIZE, STACK_SIZE, Prot::ALL).map_err(err)?;
        emu.mem_map(PROGS_ADDR, PAGE, Prot::ALL).map_err(err)?;
        emu.mem_map(MAPS_ADDR, MAX_MAPS as u64 * MAP_STRIDE, Prot::ALL).map_err(err)?;
        emu.add_mem_hook(
            HookType::MEM_UNMAPPED | HookType::MEM_PROT,
            1,
            0,
            |uc: &mut Unicorn<'_, Data>, _t: MemType, addr: u64, _size: usize, _v: i64| {
                uc.get_data_mut().fault_addr = Some(addr);
                false
            },
        )
        .map_err(err)?;
        emu.add_code_hook(HELPERS_ADDR, HELPERS_ADDR + PAGE - 1, |uc: &mut Unicorn<'_, Data>, addr, _| {
            let (helper, kfunc) = (helper_at(addr), kfunc_at(addr));
            if let Some(size) = packet_load_at(addr) {
                let ret = load_packet(uc, size);
                let _ = uc.reg_write(x(10), ret);
                for n in CALLER_SAVED {
                    let _ = uc.reg_write(x(n), CLOBBER | n as u64);
                }
                return;
            }
            if helper.is_none() && kfunc.is_none() {
                return;
            }
            let mut args = [0u64; 5];
            for (k, a) in args.iter_mut().enumerate() {
                *a = uc.reg_read(x(10 + k as u32)).unwrap_or(0);
            }
            // The compiler only calls known helpers and kfuncs, so the calls always answer.
            let ret = match (helper, kfunc) {
                (Some(MAP_LOOKUP_ELEM), _) => lookup(uc, args[0], args[1]),
                (Some(STRTOUL), _) => strtoul(uc, args),
                (Some(id), _) => uc.get_data_mut().helpers.call(id, args).unwrap_or(0),
                (None, Some(id)) => uc.get_data_mut().helpers.call_kfunc(id, args).unwrap_or(0),
                (None, None) => unreachable!("returned above"),
            };
            let _ = uc.reg_write(x(10), ret);
            for n in CALLER_SAVED {
                let _ = uc.reg_write(x(n), CLOBBER | n as u64);
            }
        })
        .map_err(err)?;
        let watchdog = Watchdog::new(emu.get_handle())?;
        Ok(Runner {
            watchdog,
            counting: None,
            emu,
            code_mapped: 0,
            code_len: 0,
            ctx_mapped: 0,
            packet_mapped: 0,
            limit: BLOCK_LIMIT,
        })
    }

    /// Sets how many translation blocks a run may enter (see [`BLOCK_LIMIT`]).
    pub fn set_block_limit(&mut self, limit: usize) {
        self.limit = limit.max(1);
    }

    /// The block limit in force.
    pub fn block_limit(&self) -> usize {
        self.limit
    }

    fn load_code(&mut self, compiled: &CompiledSet) -> Result<(), String> {
        let span = compiled.span();
        let need = span.div_ceil(0x10_0000).max(1) * 0x10_0000;
        if need > self.code_mapped {
            if self.code_mapped > 0 {
                self.emu.mem_unmap(CODE_ADDR, self.code_mapped).map_err(err)?;
            }
            self.emu.mem_map(CODE_ADDR, need, Prot::ALL).map_err(err)?;
            self.code_mapped = need;
            self.code_len = 0;
        }
        let image = &compiled.image;
        // Running the same code again (another input for the same set) needs no write and
        // keeps every translated block: the guest memory already holds exactly these
        // bytes, and any guest write to code pages invalidated its own blocks.
        let same = span == self.code_len
            && self.emu.mem_read_as_vec(CODE_ADDR, image.len()).is_ok_and(|now| now == *image);
        if same {
            return Ok(());
        }
        self.emu.mem_write(CODE_ADDR, image).map_err(err)?;
        // Writing memory does not invalidate translated blocks: drop every block that
        // covered old or new code.
        self.emu.ctl_remove_cache(CODE_ADDR, CODE_ADDR + self.code_len.max(span)).map_err(err)?;
        self.code_len = span;
        Ok(())
    }

    fn load_maps(&mut self, compiled: &CompiledSet, set: &ProgramSet) -> Result<(), String> {
        for (p, c) in compiled.progs.iter().enumerate() {
            self.emu.mem_write(prog_addr(p), &c.base.to_le_bytes()).map_err(err)?;
        }
        for (k, m) in set.maps().iter().enumerate() {
            let mut bytes = vec![0u8; MAP_PTRS_OFFSET as usize + 8 * m.slots.len()];
            bytes[..4].copy_from_slice(&m.max_entries().to_le_bytes());
            for (i, slot) in m.slots.iter().enumerate() {
                let ptr = slot.map_or(0, prog_addr);
                let at = MAP_PTRS_OFFSET as usize + 8 * i;
                bytes[at..at + 8].copy_from_slice(&ptr.to_le_bytes());
            }
            self.emu.mem_write(map_addr(k), &bytes).map_err(err)?;
        }
        let first = set.maps().len();
        for (a, arr) in set.arrays().iter().enumerate() {
            let addr = map_addr(first + a);
            let mut bytes = Vec::with_capacity(ARRAY_VALUES_OFFSET as usize + arr.values.len());
            bytes.extend_from_slice(&arr.max_entries().to_le_bytes());
            bytes.extend_from_slice(&arr.value_size.to_le_bytes());
            bytes.extend_from_slice(&arr.values);
            self.emu.mem_write(addr, &bytes).map_err(err)?;
        }
        Ok(())
    }

    fn array_infos(set: &ProgramSet) -> Vec<ArrayInfo> {
        let first = set.maps().len();
        set.arrays()
            .iter()
            .enumerate()
            .map(|(a, arr)| ArrayInfo {
                addr: map_addr(first + a),
                max_entries: arr.max_entries(),
                value_size: arr.value_size,
            })
            .collect()
    }

    /// Maps (or unmaps, when empty) a `__sk_buff` program's packet at [`PACKET_ADDR`] and
    /// copies `packet` there.
    fn load_packet(&mut self, packet: &[u8]) -> Result<(), String> {
        let need = (packet.len() as u64).div_ceil(PAGE) * PAGE;
        if need != self.packet_mapped {
            if self.packet_mapped > 0 {
                self.emu.mem_unmap(PACKET_ADDR, self.packet_mapped).map_err(err)?;
            }
            if need > 0 {
                self.emu.mem_map(PACKET_ADDR, need, Prot::READ | Prot::WRITE).map_err(err)?;
            }
            self.packet_mapped = need;
        }
        if packet.is_empty() {
            return Ok(());
        }
        self.emu.mem_write(PACKET_ADDR, packet).map_err(err)
    }

    fn load_ctx(&mut self, ctx: Option<&[u8]>) -> Result<u64, String> {
        let Some(bytes) = ctx else { return Ok(0) };
        let need = (bytes.len() as u64).div_ceil(PAGE).max(1) * PAGE;
        if need != self.ctx_mapped {
            if self.ctx_mapped > 0 {
                self.emu.mem_unmap(CTX_ADDR, self.ctx_mapped).map_err(err)?;
            }
            self.emu.mem_map(CTX_ADDR, need, Prot::READ | Prot::WRITE).map_err(err)?;
            self.ctx_mapped = need;
        }
        // The bytes, then zeros to the end of the mapping (at most a page).
        self.emu.mem_write(CTX_ADDR, bytes).map_err(err)?;
        let tail = (need - bytes.len() as u64) as usize;
        self.emu.mem_write(CTX_ADDR + bytes.len() as u64, &ZEROS[..tail.min(ZEROS.len())]).map_err(err)?;
        Ok(CTX_ADDR)
    }

    /// Starts or stops counting translation blocks. Either way every translated block is
    /// dropped, so that from now on all code is (or is no longer) instrumented.
    fn count_blocks(&mut self, on: bool) -> Result<(), String> {
        if let Some(h) = self.counting.take() {
            self.emu.remove_hook(h).map_err(err)?;
        }
        if on {
            let h = self
                .emu
                .add_block_hook(1, 0, |uc: &mut Unicorn<'_, Data>, _, _| {
                    let d = uc.get_data_mut();
                    d.blocks += 1;
                    if d.blocks > d.block_limit {
                        let _ = uc.emu_stop();
                    }
                })
                .map_err(err)?;
            self.counting = Some(h);
        }
        self.emu.ctl_flush_tb().map_err(err)
    }

    /// Runs a compiled set (entry: program 0's first byte) with `a0` pointing at a copy
    /// of `ctx` (or 0). The outcome is the one a run bounded by the block limit has: a
    /// run the watchdog stops is made again with blocks counted. With `work`, the
    /// instructions the reference interpreter executed to finish the same run, the bound
    /// is that work's: a short deadline, and a block limit of
    /// [`HANG_BLOCKS_PER_INSN`] blocks per instruction (plus [`HANG_SLACK_BLOCKS`]) that
    /// ends the run as [`Stop::Hang`].
    pub fn run(
        &mut self,
        compiled: &CompiledSet,
        set: &ProgramSet,
        ctx: Option<&[u8]>,
        work: Option<u64>,
    ) -> Result<Native, String> {
        self.load_code(compiled)?;
        let (deadline, blocks) = match work.map(hang_bounds) {
            Some((d, b)) if b < self.limit as u64 => (d, Some(b)),
            _ => (WATCHDOG, None),
        };
        let (native, stopped) = self.attempt(compiled, set, ctx, Some(deadline))?;
        if !stopped {
            return Ok(native);
        }
        self.count_blocks(true)?;
        let limit = blocks.unwrap_or(self.limit as u64);
        let counted = self.attempt_with(compiled, set, ctx, None, None, limit);
        self.count_blocks(false)?;
        let mut native = counted?.0;
        if let (Err(Stop::Limit), Some(blocks), Some(work)) = (&native.stop, blocks, work) {
            native.stop = Err(Stop::Hang { blocks, work });
        }
        Ok(native)
    }

    /// Runs a compiled set as [`Runner::run`] does, with translation blocks counted, and
    /// records the BPF registers each time execution reaches the first machine
    /// instruction of a BPF instruction's code. A run that fills the trace (see
    /// [`bpf::trace::MAX_STEPS`]) is stopped there; its trace is marked cut and its
    /// outcome is not the run's.
    pub fn run_traced(
        &mut self,
        compiled: &CompiledSet,
        set: &ProgramSet,
        ctx: Option<&[u8]>,
    ) -> Result<(Native, Trace), String> {
        self.load_code(compiled)?;
        let mut starts = HashMap::new();
        for (p, c) in compiled.progs.iter().enumerate() {
            for (i, r) in c.insn_ranges.iter().enumerate() {
                if !r.is_empty() {
                    starts.insert(c.base + r.start as u64, (p, i));
                }
            }
        }
        let regs: [i32; 11] =
            std::array::from_fn(|r| x(map_reg(bpf::Reg::new(r as u8).expect("R0 to R10 exist")).num()));
        let hook = self
            .emu
            .add_code_hook(
                CODE_ADDR,
                CODE_ADDR + compiled.span().max(1) - 1,
                move |uc: &mut Unicorn<'_, Data>, addr, _| {
                    let Some(&(prog, index)) =
                        uc.get_data().tracing.as_ref().and_then(|t| t.starts.get(&addr))
                    else {
                        return;
                    };
                    let mut values = [0u64; 11];
                    for (v, r) in values.iter_mut().zip(regs) {
                        *v = uc.reg_read(r).unwrap_or(0);
                    }
                    let step = Step { prog, index, regs: values, comparable: Step::ALL_COMPARABLE };
                    let Some(t) = uc.get_data_mut().tracing.as_mut() else { return };
                    t.trace.push(step);
                    if t.trace.cut {
                        let _ = uc.emu_stop();
                    }
                },
            )
            .map_err(err)?;
        self.count_blocks(true)?;
        let tracing = Some(Box::new(Tracing { starts, trace: Trace::default() }));
        let run = self.attempt_with(compiled, set, ctx, None, tracing, self.limit as u64);
        self.emu.remove_hook(hook).map_err(err)?;
        self.count_blocks(false)?;
        let (native, _, tracing) = run?;
        Ok((native, tracing.map(|t| t.trace).unwrap_or_default()))
    }

    /// One run of the loaded code, under the watchdog with this deadline if `watched`;
    /// also says whether the watchdog stopped it.
    fn attempt(
        &mut self,
        compiled: &CompiledSet,
        set: &ProgramSet,
        ctx: Option<&[u8]>,
        watched: Option<Duration>,
    ) -> Result<(Native, bool), String> {
        let (native, stopped, _) = self.attempt_with(compiled, set, ctx, watched, None, self.limit as u64)?;
        Ok((native, stopped))
    }

    /// [`Runner::attempt`], with `tracing` installed for the run and handed back.
    fn attempt_with(
        &mut self,
        compiled: &CompiledSet,
        set: &ProgramSet,
        ctx: Option<&[u8]>,
        watched: Option<Duration>,
        tracing: Option<Box<Tracing>>,
        block_limit: u64,
    ) -> Result<(Native, bool, Option<Box<Tracing>>), String> {
        self.load_maps(compiled, set)?;
        let prog_type = set.prog_type();
        let (ctx, packet) = prog_type.presented(ctx);
        let r1 = self.load_ctx(ctx.as_deref())?;
        self.load_packet(&packet)?;
        self.emu.mem_write(STACK_TOP - STACK_CLEAR as u64, &[0u8; STACK_CLEAR]).map_err(err)?;
        for n in 1..32u32 {
            let v = match n {
                1 => EXIT_ADDR,
                2 => STACK_TOP,
                10 => r1,
                _ if PRESERVED.iter().any(|p| p.0 == n) => SENTINEL | n as u64,
                // Temporaries and unused argument registers get a recognisable pattern,
                // BPF registers (a1-a5, s1-s5) zero, like the other engines' registers.
                5..=7 | 16 | 17 | 28..=31 => 0xdead_beef_0000_0000 | n as u64,
                _ => 0,
            };
            self.emu.reg_write(x(n), v).map_err(err)?;
        }
        *self.emu.get_data_mut() = Data {
            arrays: Runner::array_infos(set),
            seen: vec![AttachmentSeen::default(); set.attachments().len()],
            block_limit,
            tracing,
            packet: prog_type.is_skb().then_some((prog_type, packet.len())),
            ..Data::default()
        };
        let mut hooks: Vec<UcHookId> = Vec::new();
        for site in compiled.tail_call_sites() {
            let h = self
                .emu
                .add_code_hook(site, site, |uc: &mut Unicorn<'_, Data>, _, _| {
                    uc.get_data_mut().tail_calls += 1
                })
                .map_err(err)?;
            hooks.push(h);
        }
        // Each attachment's program is entered only from its trampoline, with a0 pointing
        // to the arguments and, for fexit, the return value after them.
        for (k, (c, a)) in compiled.attachments.iter().zip(set.attachments()).enumerate() {
            let fexit = a.kind == AttachKind::Fexit;
            let h = self
                .emu
                .add_code_hook(c.base, c.base, move |uc: &mut Unicorn<'_, Data>, _, _| {
                    let ret = fexit.then(|| {
                        let at = uc.reg_read(RegisterRISCV::X10).unwrap_or(0) + 8 * ATTACH_ARGS as u64;
                        uc.mem_read_as_vec(at, 8)
                            .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                    });
                    if let Some(seen) = uc.get_data_mut().seen.get_mut(k) {
                        seen.record(ret);
                    }
                })
                .map_err(err)?;
            hooks.push(h);
        }
        let entry = compiled.progs.first().map_or(CODE_ADDR, |c| c.base);
        if let Some(deadline) = watched {
            self.watchdog.arm(deadline);
        }
        let res = self.emu.emu_start(entry, EXIT_ADDR, 0, 0);
        let stopped = watched.is_some() && self.watchdog.disarm();
        for h in hooks {
            self.emu.remove_hook(h).map_err(err)?;
        }
        let pc = self.emu.pc_read().map_err(err)?;
        let fault_addr = self.emu.get_data().fault_addr;
        let stop = match res {
            Ok(()) if pc == EXIT_ADDR => Ok(()),
            Ok(()) => Err(Stop::Limit),
            Err(e) => Err(match e {
                uc_error::READ_UNMAPPED | uc_error::READ_PROT | uc_error::READ_UNALIGNED => {
                    Stop::Memory { addr: fault_addr, access: "read" }
                }
                uc_error::WRITE_UNMAPPED | uc_error::WRITE_PROT | uc_error::WRITE_UNALIGNED => {
                    Stop::Memory { addr: fault_addr, access: "write" }
                }
                uc_error::FETCH_UNMAPPED | uc_error::FETCH_PROT | uc_error::FETCH_UNALIGNED => {
                    Stop::Memory { addr: fault_addr, access: "fetch" }
                }
                uc_error::INSN_INVALID => Stop::Illegal,
                other => Stop::Emulator(format!("{other:?}")),
            }),
        };
        let reg = |emu: &Unicorn<'static, Data>, n: u32| emu.reg_read(x(n)).map_err(err);
        let mut clobbered = Vec::new();
        if stop.is_ok() {
            let sp = reg(&self.emu, 2)?;
            if sp != STACK_TOP {
                clobbered.push(("sp", STACK_TOP, sp));
            }
            for (n, name) in PRESERVED {
                let v = reg(&self.emu, n)?;
                if v != SENTINEL | n as u64 {
                    clobbered.push((name, SENTINEL | n as u64, v));
                }
            }
            for (n, name) in BPF_SAVED {
                let v = reg(&self.emu, n)?;
                if v != 0 {
                    clobbered.push((name, 0, v));
                }
            }
        }
        let ctx_after = match &ctx {
            Some(b) => {
                let ctx = self.emu.mem_read_as_vec(CTX_ADDR, b.len()).map_err(err)?;
                match prog_type.is_skb() {
                    true => {
                        let packet = self.emu.mem_read_as_vec(PACKET_ADDR, packet.len()).map_err(err)?;
                        prog_type.observed(&ctx, &packet)
                    }
                    // A buffer is compared as it is: no packet to read.
                    false => ctx,
                }
            }
            None => Vec::new(),
        };
        let data = std::mem::take(self.emu.get_data_mut());
        let mut arrays = Vec::with_capacity(set.arrays().len());
        for (info, arr) in data.arrays.iter().zip(set.arrays()) {
            arrays.push(
                self.emu.mem_read_as_vec(info.addr + ARRAY_VALUES_OFFSET, arr.values.len()).map_err(err)?,
            );
        }
        let native = Native {
            stop,
            pc,
            a0: reg(&self.emu, 10)?,
            a5: reg(&self.emu, 15)?,
            clobbered,
            ctx: ctx_after,
            tail_calls: data.tail_calls,
            helper_calls: data.helpers.trace().to_vec(),
            arrays,
            attachments: data.seen,
        };
        Ok((native, stopped, data.tracing))
    }
}
