//! Helpers shared by the guest tests: one guest booted for all tests of a test binary, and a
//! tiny eBPF instruction encoder (written from the ISA: opcode, dst | src << 4, off, imm).
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard, OnceLock};

use kernel::{BufferMode, Guest, Input, Job, JobResult, KernelImage, Map, RunOutput, Slot};

/// The image these tests boot: `$JITDIFF_KERNEL_DIR` when set, else Linux 6.12's (the
/// kernel whose facts `kernel/PROTOCOL.md` records), built by `kernel/build.sh --kernel 6.12`.
pub fn image() -> Result<KernelImage, kernel::GuestError> {
    match std::env::var_os("JITDIFF_KERNEL_DIR") {
        Some(d) if !d.is_empty() => KernelImage::in_dir(std::path::Path::new(&d)),
        _ => KernelImage::cached("6.12"),
    }
}

/// The shared guest, or `None` (after printing "skipped: no kernel image") when no image
/// has been built. Tests hold the lock for their whole exchange with the guest.
pub fn guest() -> Option<MutexGuard<'static, Option<Guest>>> {
    static GUEST: OnceLock<Option<Mutex<Option<Guest>>>> = OnceLock::new();
    let cell = GUEST.get_or_init(|| image().ok().map(|_| Mutex::new(None)));
    let Some(mutex) = cell else {
        println!("skipped: no kernel image");
        return None;
    };
    let mut g = mutex.lock().unwrap_or_else(|e| e.into_inner());
    if !g.as_ref().is_some_and(Guest::is_alive) {
        let image = image().expect("kernel image vanished");
        *g = Some(Guest::boot(&image).expect("booting the guest"));
    }
    Some(g)
}

/// Runs `jobs` on the shared guest; `None` when skipped.
pub fn run(jobs: &[Job]) -> Option<Vec<JobResult>> {
    let mut g = guest()?;
    Some(g.as_mut().unwrap().run(jobs).expect("guest run"))
}

/// The runs of a job that must have loaded.
pub fn ran(r: &JobResult) -> &[RunOutput] {
    match r {
        JobResult::Ran { runs, .. } => runs,
        other => panic!("job did not run: {other:#?}"),
    }
}

pub type Insn = [u8; 8];

pub fn insn(op: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    let o = off.to_le_bytes();
    let i = imm.to_le_bytes();
    [op, dst | (src << 4), o[0], o[1], i[0], i[1], i[2], i[3]]
}

// ALU64
pub fn mov_imm(dst: u8, imm: i32) -> Insn {
    insn(0xb7, dst, 0, 0, imm)
}
pub fn mov_reg(dst: u8, src: u8) -> Insn {
    insn(0xbf, dst, src, 0, 0)
}
pub fn add_imm(dst: u8, imm: i32) -> Insn {
    insn(0x07, dst, 0, 0, imm)
}
pub fn add_reg(dst: u8, src: u8) -> Insn {
    insn(0x0f, dst, src, 0, 0)
}
pub fn exit() -> Insn {
    insn(0x95, 0, 0, 0, 0)
}
/// A helper call.
pub fn call(helper: i32) -> Insn {
    insn(0x85, 0, 0, 0, helper)
}
/// A bpf2bpf call to the instruction `rel + 1` after this one.
pub fn call_local(rel: i32) -> Insn {
    insn(0x85, 0, 1, 0, rel)
}
pub fn ja(off: i16) -> Insn {
    insn(0x05, 0, 0, off, 0)
}
pub fn jeq_imm(dst: u8, imm: i32, off: i16) -> Insn {
    insn(0x15, dst, 0, off, imm)
}
pub fn jne_imm(dst: u8, imm: i32, off: i16) -> Insn {
    insn(0x55, dst, 0, off, imm)
}
/// `if dst > src goto +off` (unsigned)
pub fn jgt_reg(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x2d, dst, src, off, 0)
}
/// `if dst <= src goto +off` (unsigned)
pub fn jle_reg(dst: u8, src: u8, off: i16) -> Insn {
    insn(0xbd, dst, src, off, 0)
}

/// Size field of loads and stores, in bytes (1, 2, 4, 8).
fn size_bits(size: u8) -> u8 {
    match size {
        4 => 0x00,
        2 => 0x08,
        1 => 0x10,
        8 => 0x18,
        _ => panic!("bad size {size}"),
    }
}
/// `dst = *(size *)(src + off)`
pub fn ldx(size: u8, dst: u8, src: u8, off: i16) -> Insn {
    insn(0x61 | size_bits(size), dst, src, off, 0)
}
/// `*(size *)(dst + off) = src`
pub fn stx(size: u8, dst: u8, src: u8, off: i16) -> Insn {
    insn(0x63 | size_bits(size), dst, src, off, 0)
}
/// `*(size *)(dst + off) = imm`
pub fn st_imm(size: u8, dst: u8, off: i16, imm: i32) -> Insn {
    insn(0x62 | size_bits(size), dst, 0, off, imm)
}
/// An atomic operation on `*(size *)(dst + off)` with `src` (size 4 or 8); `op` is the
/// imm field: 0x00 add, 0x01 fetch add, 0xe1 xchg, 0xf1 cmpxchg (compares with r0).
pub fn atomic(size: u8, dst: u8, src: u8, off: i16, op: i32) -> Insn {
    insn(0xc3 | size_bits(size), dst, src, off, op)
}
/// `dst = <map index>` as `lddw` with src_reg 1 (the agent puts the map's fd in).
pub fn ld_map(dst: u8, map: u32) -> [Insn; 2] {
    [insn(0x18, dst, 1, 0, map as i32), insn(0, 0, 0, 0, 0)]
}
/// `dst = &value of map index + off` as `lddw` with src_reg 2 (direct value access).
pub fn ld_map_value(dst: u8, map: u32, off: i32) -> [Insn; 2] {
    [insn(0x18, dst, 2, 0, map as i32), insn(0, 0, 0, 0, off)]
}
/// `dst = imm64`
pub fn ld_imm64(dst: u8, imm: u64) -> [Insn; 2] {
    [insn(0x18, dst, 0, 0, imm as u32 as i32), insn(0, 0, 0, 0, (imm >> 32) as u32 as i32)]
}

pub const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
pub const HELPER_TAIL_CALL: i32 = 12;
pub const HELPER_GET_NUMA_NODE_ID: i32 = 42;

/// Flattens pieces of a program.
pub fn prog(parts: &[&[Insn]]) -> Vec<Insn> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

/// A job of `prog_type` with the given programs (entry 0) and inputs, no maps.
pub fn job(jit: bool, prog_type: u32, progs: Vec<Vec<Insn>>, inputs: Vec<Vec<u8>>) -> Job {
    Job {
        jit,
        prog_type,
        buffer_mode: BufferMode::Data,
        progs,
        inputs: inputs.into_iter().map(Input::from).collect(),
        ..Job::default()
    }
}

pub fn prog_array(max_entries: u32) -> Map {
    Map::ProgArray { max_entries }
}

pub fn array(value_size: u32, max_entries: u32, initial: Vec<u8>) -> Map {
    Map::Array { value_size, max_entries, initial }
}

pub fn slot(map: u32, key: u32, prog: u32) -> Slot {
    Slot { map, key, prog }
}
