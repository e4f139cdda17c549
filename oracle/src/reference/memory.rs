//! The guest memory: the stack and the context buffer, each with a per-byte shadow that
//! records which bytes were stored from an address-marked register.
//!
//! Every access must lie entirely inside one region; anything else is a miss, which the
//! executor turns into a `MemoryAccess` fault with [`Memory::miss_detail`]. Values are
//! little-endian.

use std::ops::Range;

use super::layout::CTX_ADDR;

/// One contiguous range of guest memory starting at `lo`.
#[derive(Clone, Debug, Default)]
pub(super) struct Region {
    lo: u64,
    bytes: Vec<u8>,
    /// Non-zero where the byte came from an address-marked value.
    shadow: Vec<u8>,
}

impl Region {
    /// The byte range of `[addr, addr + n)` inside this region, if it lies entirely inside.
    #[inline(always)]
    fn find(&self, addr: u64, n: usize) -> Option<Range<usize>> {
        let o = addr.wrapping_sub(self.lo);
        let len = self.bytes.len();
        if o <= len as u64 && n <= len - o as usize {
            Some(o as usize..o as usize + n)
        } else {
            None
        }
    }

    /// The guest addresses this region covers.
    fn span(&self) -> Range<u64> {
        self.lo..self.lo + self.bytes.len() as u64
    }

    /// Whether `[addr, addr + n)` overlaps the region without lying inside it.
    fn straddles(&self, addr: u64, n: usize) -> bool {
        let span = self.span();
        let end = addr.saturating_add(n as u64);
        addr < span.end && end > span.start && self.find(addr, n).is_none()
    }

    /// Refills the region with `bytes` at `lo`, all unmarked, reusing the allocations.
    fn reset(&mut self, lo: u64, fill: impl FnOnce(&mut Vec<u8>)) {
        self.lo = lo;
        self.bytes.clear();
        fill(&mut self.bytes);
        self.shadow.clear();
        self.shadow.resize(self.bytes.len(), 0);
    }
}

/// The stack and the context of one run.
#[derive(Clone, Debug, Default)]
pub(super) struct Memory {
    stack: Region,
    ctx: Region,
    has_ctx: bool,
}

/// The bytes and shadow of one access, for read-modify-write.
pub(super) struct Cell<'a> {
    pub bytes: &'a mut [u8],
    pub shadow: &'a mut [u8],
}

impl Cell<'_> {
    /// The little-endian value of the cell (zero-extended) and whether any byte is marked.
    pub(super) fn get(&self) -> (u64, bool) {
        let mut buf = [0u8; 8];
        let n = self.bytes.len().min(8);
        buf[..n].copy_from_slice(&self.bytes[..n]);
        (u64::from_le_bytes(buf), self.shadow.iter().any(|&m| m != 0))
    }

    /// Stores the low bytes of `value` and marks them all as `marked`.
    pub(super) fn set(&mut self, value: u64, marked: bool) {
        let n = self.bytes.len().min(8);
        self.bytes[..n].copy_from_slice(&value.to_le_bytes()[..n]);
        self.shadow.fill(marked as u8);
    }
}

impl Memory {
    /// Prepares a run: a zeroed stack of `stack_depth` bytes below
    /// [`STACK_TOP`](super::layout::STACK_TOP) and a copy
    /// of `ctx` at [`CTX_ADDR`]; nothing is marked.
    pub(super) fn reset(&mut self, stack_depth: u32, ctx: Option<&[u8]>) {
        let depth = super::layout::stack_range(stack_depth);
        let len = (depth.end - depth.start) as usize;
        self.stack.reset(depth.start, |b| b.resize(len, 0));
        self.ctx.reset(CTX_ADDR, |b| b.extend_from_slice(ctx.unwrap_or_default()));
        self.has_ctx = ctx.is_some();
    }

    /// The context bytes as they are now (empty without a context).
    pub(super) fn ctx_bytes(&self) -> &[u8] {
        &self.ctx.bytes
    }

    /// Which context bytes hold (part of) an address.
    #[cfg(test)]
    pub(super) fn ctx_shadow(&self) -> &[u8] {
        &self.ctx.shadow
    }

    /// Reads `N` bytes at `addr`, zero-extended, and whether any of them is marked;
    /// `None` when the access is not entirely inside the stack or the context.
    #[inline(always)]
    pub(super) fn load<const N: usize>(&self, addr: u64) -> Option<(u64, bool)> {
        let region = if let Some(r) = self.stack.find(addr, N) {
            (&self.stack, r)
        } else {
            (&self.ctx, self.ctx.find(addr, N)?)
        };
        let (reg, range) = region;
        let bytes = reg.bytes.get(range.clone())?;
        let shadow = reg.shadow.get(range)?;
        let mut buf = [0u8; 8];
        buf.get_mut(..N)?.copy_from_slice(bytes);
        Some((u64::from_le_bytes(buf), shadow.iter().any(|&m| m != 0)))
    }

    /// Writes the low `N` bytes of `value` at `addr`, marked or not; `false` (nothing
    /// written) when the access is not entirely inside the stack or the context.
    #[inline(always)]
    pub(super) fn store<const N: usize>(&mut self, addr: u64, value: u64, marked: bool) -> bool {
        match self.cell(addr, N) {
            Some(mut cell) => {
                cell.set(value, marked);
                true
            }
            None => false,
        }
    }

    /// The `n` bytes at `addr` for reading and writing, if they lie entirely inside the
    /// stack or the context.
    #[inline(always)]
    pub(super) fn cell(&mut self, addr: u64, n: usize) -> Option<Cell<'_>> {
        let (reg, range) = match self.stack.find(addr, n) {
            Some(range) => (&mut self.stack, range),
            None => {
                let range = self.ctx.find(addr, n)?;
                (&mut self.ctx, range)
            }
        };
        Some(Cell { bytes: reg.bytes.get_mut(range.clone())?, shadow: reg.shadow.get_mut(range)? })
    }

    /// The account of a missed access: `what` is e.g. "load from", "store to",
    /// "atomic add on". Example: `8-byte store to 0x200001e8 is outside the stack
    /// [0x200001f0, 0x20000200) and the context [0x10000000, 0x10000008)`.
    #[cold]
    pub(super) fn miss_detail(&self, addr: u64, n: usize, what: &str) -> String {
        let stack = self.stack.span();
        let mut s =
            format!("{n}-byte {what} {addr:#x} is outside the stack [{:#x}, {:#x})", stack.start, stack.end);
        if self.has_ctx {
            let ctx = self.ctx.span();
            s += &format!(" and the context [{:#x}, {:#x})", ctx.start, ctx.end);
        } else {
            s += " and there is no context";
        }
        if self.stack.straddles(addr, n) {
            s += " (it crosses an edge of the stack)";
        } else if self.has_ctx && self.ctx.straddles(addr, n) {
            s += " (it crosses an edge of the context)";
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::layout::STACK_TOP;
    use super::*;

    fn mem(depth: u32, ctx: Option<&[u8]>) -> Memory {
        let mut m = Memory::default();
        m.reset(depth, ctx);
        m
    }

    #[test]
    fn bounds_are_exact() {
        let mut m = mem(16, Some(&[1, 2, 3, 4]));
        assert!(m.store::<8>(STACK_TOP - 16, 0x0102_0304_0506_0708, false));
        assert!(m.store::<8>(STACK_TOP - 8, 0, false));
        assert!(!m.store::<8>(STACK_TOP - 4, 0, false), "crosses the top");
        assert!(!m.store::<1>(STACK_TOP, 0, false), "r10 itself is past the end");
        assert!(!m.store::<1>(STACK_TOP - 17, 0, false), "below the declared depth");
        assert_eq!(m.load::<4>(STACK_TOP - 16), Some((0x0506_0708, false)));
        assert_eq!(m.load::<4>(CTX_ADDR), Some((0x0403_0201, false)));
        assert_eq!(m.load::<1>(CTX_ADDR + 3), Some((4, false)));
        assert_eq!(m.load::<2>(CTX_ADDR + 3), None);
        assert_eq!(m.load::<1>(CTX_ADDR.wrapping_sub(1)), None);
        assert_eq!(m.load::<8>(u64::MAX - 3), None, "address wrap-around");
        assert_eq!(m.load::<1>(0), None);
    }

    #[test]
    fn shadow_follows_stores() {
        let mut m = mem(512, None);
        assert!(m.store::<8>(STACK_TOP - 8, 1, true));
        assert_eq!(m.load::<1>(STACK_TOP - 1), Some((0, true)));
        assert!(m.store::<4>(STACK_TOP - 8, 7, false));
        assert_eq!(m.load::<4>(STACK_TOP - 8), Some((7, false)));
        assert_eq!(m.load::<8>(STACK_TOP - 8), Some((7, true)), "the upper half is still marked");
    }

    #[test]
    fn miss_details() {
        let m = mem(16, Some(&[0; 8]));
        assert_eq!(
            m.miss_detail(STACK_TOP - 24, 8, "store to"),
            "8-byte store to 0x200001e8 is outside the stack [0x200001f0, 0x20000200) \
             and the context [0x10000000, 0x10000008)"
        );
        assert_eq!(
            m.miss_detail(CTX_ADDR + 6, 4, "load from"),
            "4-byte load from 0x10000006 is outside the stack [0x200001f0, 0x20000200) \
             and the context [0x10000000, 0x10000008) (it crosses an edge of the context)"
        );
        let none = mem(512, None);
        assert_eq!(
            none.miss_detail(0, 1, "load from"),
            "1-byte load from 0x0 is outside the stack [0x20000000, 0x20000200) and there is no context"
        );
    }
}

#[cfg(test)]
mod program_tests {
    //! Loads and stores as whole programs; expected values worked out by hand.

    use super::super::layout::CTX_ADDR;
    use super::super::testutil::*;
    use bpf::{FaultKind, Input, Insn, Program, Reg, Size};

    fn ld(size: Size, signed: bool, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::Load { size, signed, dst, src, off }
    }

    fn stx(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::Store { size, dst, src, off }
    }

    fn st(size: Size, dst: Reg, off: i16, imm: i32) -> Insn {
        Insn::StoreImm { size, dst, off, imm }
    }

    #[test]
    fn little_endian_loads_zero_extend() {
        // Bytes at r10-8 .. r10-1: 08 07 06 05 04 03 02 01.
        let with = |load: Insn| {
            r0_of(vec![
                lddw(Reg::R1, 0x0102_0304_0506_0708),
                stx(Size::DW, Reg::R10, Reg::R1, -8),
                mov64(Reg::R0, -1),
                load,
                Insn::Exit,
            ])
        };
        assert_eq!(with(ld(Size::B, false, Reg::R0, Reg::R10, -8)), 0x08);
        assert_eq!(with(ld(Size::B, false, Reg::R0, Reg::R10, -1)), 0x01);
        assert_eq!(with(ld(Size::H, false, Reg::R0, Reg::R10, -8)), 0x0708);
        assert_eq!(with(ld(Size::W, false, Reg::R0, Reg::R10, -6)), 0x0304_0506);
        assert_eq!(with(ld(Size::DW, false, Reg::R0, Reg::R10, -8)), 0x0102_0304_0506_0708);
        // Partial stores write only their bytes.
        let partial = |size| {
            r0_of(vec![
                lddw(Reg::R1, 0x1111_1111_1111_1111),
                stx(Size::DW, Reg::R10, Reg::R1, -8),
                lddw(Reg::R1, 0xaaaa_aaaa_aaaa_aaaa),
                stx(size, Reg::R10, Reg::R1, -8),
                ld(Size::DW, false, Reg::R0, Reg::R10, -8),
                Insn::Exit,
            ])
        };
        assert_eq!(partial(Size::B), 0x1111_1111_1111_11aa);
        assert_eq!(partial(Size::H), 0x1111_1111_1111_aaaa);
        assert_eq!(partial(Size::W), 0x1111_1111_aaaa_aaaa);
    }

    #[test]
    fn sign_extending_loads() {
        let with = |value: u64, size| {
            r0_of(vec![
                lddw(Reg::R1, value),
                stx(Size::DW, Reg::R10, Reg::R1, -8),
                ld(size, true, Reg::R0, Reg::R10, -8),
                Insn::Exit,
            ])
        };
        assert_eq!(with(0x80, Size::B), 0xffff_ffff_ffff_ff80);
        assert_eq!(with(0x7f, Size::B), 0x7f);
        assert_eq!(with(0x8000, Size::H), 0xffff_ffff_ffff_8000);
        assert_eq!(with(0xffff_7fff, Size::H), 0x7fff);
        assert_eq!(with(0x8000_0000, Size::W), 0xffff_ffff_8000_0000);
        assert_eq!(with(0x1_7fff_ffff, Size::W), 0x7fff_ffff);
    }

    #[test]
    fn immediate_stores_truncate_or_sign_extend() {
        let with = |size, imm| {
            r0_of(vec![st(size, Reg::R10, -8, imm), ld(Size::DW, false, Reg::R0, Reg::R10, -8), Insn::Exit])
        };
        assert_eq!(with(Size::DW, -2), 0xffff_ffff_ffff_fffe);
        assert_eq!(with(Size::W, -2), 0x0000_0000_ffff_fffe);
        assert_eq!(with(Size::H, 0x12345), 0x2345);
        assert_eq!(with(Size::B, 0x1ff), 0xff);
    }

    #[test]
    fn stack_starts_zeroed_and_spans_the_declared_depth() {
        assert_eq!(r0_of(vec![ld(Size::DW, false, Reg::R0, Reg::R10, -512), Insn::Exit]), 0);
        let small = |off| {
            let prog = Program::with_stack_depth(
                vec![st(Size::DW, Reg::R10, off, 1), mov64(Reg::R0, 0), Insn::Exit],
                16,
            )
            .expect("valid");
            run_prog(&prog, &Input::with_ctx(vec![0; 8])).result
        };
        assert_eq!(small(-16), Ok(0));
        let fault = small(-24).expect_err("below the declared depth");
        assert_eq!(fault.kind, FaultKind::MemoryAccess);
        assert_eq!(fault.pc, Some(0));
        assert_eq!(
            fault.detail,
            "8-byte store to 0x200001e8 is outside the stack [0x200001f0, 0x20000200) \
             and the context [0x10000000, 0x10000008)"
        );
    }

    #[test]
    fn out_of_bounds_accesses_fault_at_their_slot() {
        // After an lddw, the faulting load is at slot 2.
        let out = run(vec![lddw(Reg::R2, 0x1234), ld(Size::DW, false, Reg::R0, Reg::R10, 0), Insn::Exit]);
        let fault = out.result.expect_err("r10 + 0 is past the stack");
        assert_eq!((fault.kind, fault.pc), (FaultKind::MemoryAccess, Some(2)));
        assert_eq!(
            fault.detail,
            "8-byte load from 0x20000200 is outside the stack [0x20000000, 0x20000200) and there is no context"
        );
        // Straddling the top of the stack.
        let out = run(vec![ld(Size::DW, false, Reg::R0, Reg::R10, -4), Insn::Exit]);
        let fault = out.result.expect_err("crosses the top");
        assert!(fault.detail.ends_with("(it crosses an edge of the stack)"), "{}", fault.detail);
        // No context: r1 = 0 is not an address.
        let out = run(vec![st(Size::B, Reg::R1, 0, 1), Insn::Exit]);
        assert_eq!(
            out.result.expect_err("null").detail,
            "1-byte store to 0x0 is outside the stack [0x20000000, 0x20000200) and there is no context"
        );
        // Below the stack base.
        let out = run(vec![ld(Size::B, false, Reg::R0, Reg::R10, -513), Insn::Exit]);
        assert_eq!(out.result.expect_err("below").kind, FaultKind::MemoryAccess);
    }

    #[test]
    fn context_reads_writes_and_survives_faults() {
        let out = run_on(
            vec![ld(Size::W, false, Reg::R0, Reg::R1, 4), Insn::Exit],
            Input::with_ctx(vec![1, 2, 3, 4, 5, 6, 7, 8]),
        );
        assert_eq!(out.result, Ok(0x0807_0605));
        assert_eq!(out.ctx, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        // A store, then an out-of-bounds load: the fault keeps the stored bytes.
        let out = run_on(
            vec![st(Size::H, Reg::R1, 0, 0xbeef), ld(Size::B, false, Reg::R0, Reg::R1, 8), Insn::Exit],
            Input::with_ctx(vec![1, 2, 3, 4, 5, 6, 7, 8]),
        );
        let fault = out.result.expect_err("past the context");
        assert_eq!((fault.kind, fault.pc), (FaultKind::MemoryAccess, Some(1)));
        assert_eq!(
            fault.detail,
            "1-byte load from 0x10000008 is outside the stack [0x20000000, 0x20000200) \
             and the context [0x10000000, 0x10000008)"
        );
        assert_eq!(out.ctx, vec![0xef, 0xbe, 3, 4, 5, 6, 7, 8]);
        // An empty context exists but holds nothing.
        let out = run_on(vec![ld(Size::B, false, Reg::R0, Reg::R1, 0), Insn::Exit], Input::with_ctx(vec![]));
        assert_eq!(out.result.expect_err("empty").kind, FaultKind::MemoryAccess);
        assert_eq!(out.ctx, Vec::<u8>::new());
        assert_eq!(CTX_ADDR, 0x1000_0000);
    }

    #[test]
    fn engine_is_reusable_between_runs() {
        use bpf::{Engine, RunResult};
        let mut engine = super::super::Reference::new();
        let write = Program::new(vec![
            st(Size::DW, Reg::R10, -8, 7),
            st(Size::B, Reg::R1, 0, 9),
            mov64(Reg::R0, 0),
            Insn::Exit,
        ])
        .expect("valid");
        let read = Program::new(vec![ld(Size::DW, false, Reg::R0, Reg::R10, -8), Insn::Exit]).expect("valid");
        assert!(matches!(engine.run(&write, &Input::with_ctx(vec![0; 4])), RunResult::Ran(_)));
        let RunResult::Ran(out) = engine.run(&read, &Input::with_ctx(vec![0; 2])) else { panic!() };
        assert_eq!((out.result, out.ctx), (Ok(0), vec![0, 0]), "a fresh stack and context every run");
        assert!(engine.memory.ctx_shadow().iter().all(|&m| m == 0));
    }
}
