//! The guest memory: the stack frames, the context buffer and the values of the array
//! maps, each with a per-byte shadow that records the provenance mark of the value each
//! byte was stored from, and whether the byte was ever written.
//!
//! The current frame's stack is checked first, then the context, then the stacks of the
//! frames below it (the callers, reached through pointers they passed down), then, only
//! for an access through a pointer to a map value (a base register marked
//! [`MARK_VALUE`]), the array maps' values. Every access must
//! lie entirely inside one region, and an access to an array map inside one value (the
//! verifier's bound for a pointer to a map value); anything else is a miss, which the
//! executor turns into a `MemoryAccess` fault with [`Memory::miss_detail`]. Values are
//! little-endian.

use std::ops::Range;

use bpf::context::PACKET_ADDR;
use bpf::exec::{map_addr, ARRAY_VALUES_OFFSET};
use bpf::ArrayMap;

use super::layout::CTX_ADDR;

/// Provenance mark: the value is derived from a stack or context address (which engines
/// place differently).
pub(super) const MARK_ADDR: u8 = 1;
/// Provenance mark: the value is derived from a map address (the same in every engine).
pub(super) const MARK_MAP: u8 = 2;
/// Provenance mark: the value is derived from a pointer to an array map's value, which
/// `bpf_map_lookup_elem` returned (the same in engines that use the JIT's map layout).
/// Only an access through a register with this mark reaches the array maps' values.
pub(super) const MARK_VALUE: u8 = 4;

/// Shadow bit of a byte nobody wrote yet in a frame that starts uninitialized (a subprogram's
/// or a tail-call target's). Provenance marks use the low bits
/// ([`MARK_ADDR`], [`MARK_MAP`],
/// [`MARK_VALUE`]).
pub(super) const UNINIT: u8 = 0x80;

/// One contiguous range of guest memory starting at `lo`.
#[derive(Clone, Debug, Default)]
pub(super) struct Region {
    lo: u64,
    bytes: Vec<u8>,
    /// Per byte: the provenance mark of the value it came from, or [`UNINIT`].
    shadow: Vec<u8>,
    /// What owns a stack region, for fault texts: "program" or "subprogram".
    owner: &'static str,
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
        self.lo..self.lo.wrapping_add(self.bytes.len() as u64)
    }

    /// Whether `[addr, addr + n)` overlaps the region without lying inside it.
    fn straddles(&self, addr: u64, n: usize) -> bool {
        let span = self.span();
        let end = addr.saturating_add(n as u64);
        addr < span.end && end > span.start && self.find(addr, n).is_none()
    }

    /// Refills the region at `lo` with `len` zero bytes whose shadow is `shadow`, reusing
    /// the allocations.
    fn reset(&mut self, lo: u64, len: usize, shadow: u8) {
        self.lo = lo;
        self.bytes.clear();
        self.bytes.resize(len, 0);
        self.shadow.clear();
        self.shadow.resize(len, shadow);
    }
}

/// The values of one array map: `max_entries` values of `value_size` bytes from
/// `map_addr(k) + ARRAY_VALUES_OFFSET` on (the JIT's layout, so that value addresses are
/// the same in both).
#[derive(Clone, Debug, Default)]
struct Values {
    region: Region,
    /// Bytes per value (at least 1).
    value_size: u64,
    /// The map's name, for fault texts.
    name: String,
}

impl Values {
    /// The byte range of `[addr, addr + n)` if it lies entirely inside one value.
    #[inline(always)]
    fn find(&self, addr: u64, n: usize) -> Option<Range<usize>> {
        let r = self.region.find(addr, n)?;
        let vs = self.value_size.max(1) as usize;
        (r.start / vs == r.end.saturating_sub(1).max(r.start) / vs).then_some(r)
    }

    /// Whether `addr` is one of the value bytes.
    fn contains(&self, addr: u64) -> bool {
        self.region.span().contains(&addr)
    }

    /// The index and the address range of the value `addr` lies in (`addr` must be
    /// [`Values::contains`]).
    fn value_at(&self, addr: u64) -> (u64, Range<u64>) {
        let vs = self.value_size.max(1);
        let i = addr.wrapping_sub(self.region.lo) / vs;
        let start = self.region.lo + i * vs;
        (i, start..start + vs)
    }

    /// `NAME [lo, hi)`.
    fn describe(&self) -> String {
        let span = self.region.span();
        format!("{} [{:#x}, {:#x})", self.name, span.start, span.end)
    }
}

/// The stack frames, the context and the array maps' values of one run.
#[derive(Clone, Debug, Default)]
pub(super) struct Memory {
    /// The stack of the running frame.
    stack: Region,
    ctx: Region,
    has_ctx: bool,
    /// The packet of a `__sk_buff` context, at [`PACKET_ADDR`] (empty otherwise).
    packet: Region,
    /// The stacks of the frames below the running one, outermost first.
    parked: Vec<Region>,
    /// Released regions, kept for their allocations.
    pool: Vec<Region>,
    /// The values of every array map of the set, in the set's order.
    arrays: Vec<Values>,
}

/// The bytes and shadow of one access, for read-modify-write.
pub(super) struct Cell<'a> {
    pub bytes: &'a mut [u8],
    pub shadow: &'a mut [u8],
}

/// The OR of the shadow bytes of an access: its provenance mark, plus [`UNINIT`] when any
/// byte was never written.
#[inline(always)]
fn fold(shadow: &[u8]) -> u8 {
    shadow.iter().fold(0, |a, &m| a | m)
}

impl Cell<'_> {
    /// The little-endian value of the cell (zero-extended) and the OR of its shadow bytes.
    pub(super) fn get(&self) -> (u64, u8) {
        let mut buf = [0u8; 8];
        let n = self.bytes.len().min(8);
        buf[..n].copy_from_slice(&self.bytes[..n]);
        (u64::from_le_bytes(buf), fold(self.shadow))
    }

    /// Stores the low bytes of `value` and gives them all the provenance mark `mark`.
    pub(super) fn set(&mut self, value: u64, mark: u8) {
        let n = self.bytes.len().min(8);
        self.bytes[..n].copy_from_slice(&value.to_le_bytes()[..n]);
        self.shadow.fill(mark);
    }
}

/// Which region an access falls in.
#[derive(Clone, Copy)]
enum Place {
    Stack,
    Ctx,
    Packet,
    Parked(usize),
    Array(usize),
}

impl Memory {
    /// Prepares a run: one frame, a zeroed (and initialized) stack of `stack_depth` bytes
    /// below [`STACK_TOP`](super::layout::STACK_TOP), a copy of `ctx` at [`CTX_ADDR`], a copy
    /// of `packet` at [`PACKET_ADDR`], and
    /// a copy of the initial values of every array map, array `a` being map
    /// `first_array + a` (prog arrays come first) with its values at
    /// `map_addr(first_array + a) + ARRAY_VALUES_OFFSET`; nothing is marked.
    pub(super) fn reset(
        &mut self,
        stack_depth: u32,
        ctx: Option<&[u8]>,
        packet: &[u8],
        first_array: usize,
        arrays: &[ArrayMap],
    ) {
        self.pool.append(&mut self.parked);
        let depth = super::layout::stack_range(stack_depth);
        self.stack.reset(depth.start, (depth.end - depth.start) as usize, 0);
        self.stack.owner = "program";
        let ctx_bytes = ctx.unwrap_or_default();
        self.ctx.reset(CTX_ADDR, ctx_bytes.len(), 0);
        self.ctx.bytes.copy_from_slice(ctx_bytes);
        self.has_ctx = ctx.is_some();
        self.packet.reset(PACKET_ADDR, packet.len(), 0);
        self.packet.bytes.copy_from_slice(packet);
        self.packet.owner = "packet";
        self.arrays.truncate(arrays.len());
        self.arrays.resize_with(arrays.len(), Values::default);
        for (a, (v, map)) in self.arrays.iter_mut().zip(arrays).enumerate() {
            let lo = map_addr(first_array + a).wrapping_add(ARRAY_VALUES_OFFSET);
            v.region.reset(lo, map.values.len(), 0);
            v.region.bytes.copy_from_slice(&map.values);
            v.region.owner = "array map";
            v.value_size = u64::from(map.value_size.max(1));
            v.name.clear();
            v.name.push_str(&map.name);
        }
    }

    /// Every array map's values as they are now, in the set's order.
    pub(super) fn array_bytes(&self) -> Vec<Vec<u8>> {
        self.arrays.iter().map(|v| v.region.bytes.clone()).collect()
    }

    /// The first byte of an array map's values that holds (part of) an address whose
    /// value depends on the engine (a stack or context address, [`MARK_ADDR`]): the map's
    /// name and the byte's offset.
    pub(super) fn engine_dependent_array_byte(&self) -> Option<(&str, usize)> {
        self.arrays.iter().find_map(|v| {
            let i = v.region.shadow.iter().position(|&m| m & MARK_ADDR != 0)?;
            Some((v.name.as_str(), i))
        })
    }

    /// The first context byte that holds (part of) a stack or context address
    /// ([`MARK_ADDR`]), whose value depends on the engine.
    pub(super) fn engine_dependent_ctx_byte(&self) -> Option<usize> {
        self.ctx.shadow.iter().position(|&m| m & MARK_ADDR != 0)
    }

    /// For an access at `addr` through a pointer to a map value (`values`): the offset of
    /// `addr` within the value it lies in, with the value's index and the map's name;
    /// `None` when `values` is false or `addr` is not in an array map's values.
    pub(super) fn value_offset(&self, addr: u64, values: bool) -> Option<(u64, u64, &str)> {
        if !values {
            return None;
        }
        let v = self.arrays.iter().find(|v| v.contains(addr))?;
        let (i, r) = v.value_at(addr);
        Some((addr - r.start, i, &v.name))
    }

    /// Makes `region` a fresh, uninitialized stack `[top - depth, top)` owned by `owner`.
    fn fresh(region: &mut Region, top: u64, depth: u32, owner: &'static str) {
        let len = depth.min(bpf::MAX_STACK) as usize;
        region.reset(top.wrapping_sub(len as u64), len, UNINIT);
        region.owner = owner;
    }

    /// A bpf-to-bpf call: the running stack stays valid below a new, uninitialized stack
    /// `[top - depth, top)` of a subprogram.
    pub(super) fn push_frame(&mut self, top: u64, depth: u32) {
        let mut region = self.pool.pop().unwrap_or_default();
        Memory::fresh(&mut region, top, depth, "subprogram");
        let caller = std::mem::replace(&mut self.stack, region);
        self.parked.push(caller);
    }

    /// A return: the running stack is gone, the caller's runs again. `false` (nothing
    /// changed) when there is no caller.
    pub(super) fn pop_frame(&mut self) -> bool {
        let Some(caller) = self.parked.pop() else { return false };
        let callee = std::mem::replace(&mut self.stack, caller);
        self.pool.push(callee);
        true
    }

    /// A tail call: the running stack is replaced by a new, uninitialized stack
    /// `[top - depth, top)` of a program's main function.
    pub(super) fn replace_frame(&mut self, top: u64, depth: u32) {
        Memory::fresh(&mut self.stack, top, depth, "program");
    }

    /// The context bytes as they are now (empty without a context).
    pub(super) fn ctx_bytes(&self) -> &[u8] {
        &self.ctx.bytes
    }

    /// The packet's bytes as they are now (empty without one).
    pub(super) fn packet_bytes(&self) -> &[u8] {
        &self.packet.bytes
    }

    /// Which context bytes hold (part of) an address.
    #[cfg(test)]
    pub(super) fn ctx_shadow(&self) -> &[u8] {
        &self.ctx.shadow
    }

    /// Which bytes of array map `a`'s values hold (part of) an address.
    #[cfg(test)]
    pub(super) fn array_shadow(&self, a: usize) -> &[u8] {
        self.arrays.get(a).map_or(&[], |v| &v.region.shadow)
    }

    /// Where `[addr, addr + n)` lies: the running stack, the context, a caller's stack, or
    /// (only when `values`: the access goes through a pointer to a map value) one value of
    /// an array map.
    #[inline(always)]
    fn place(&self, addr: u64, n: usize, values: bool) -> Option<(Place, Range<usize>)> {
        if let Some(r) = self.stack.find(addr, n) {
            return Some((Place::Stack, r));
        }
        if let Some(r) = self.ctx.find(addr, n) {
            return Some((Place::Ctx, r));
        }
        self.place_other(addr, n, values)
    }

    #[cold]
    #[inline(never)]
    fn place_other(&self, addr: u64, n: usize, values: bool) -> Option<(Place, Range<usize>)> {
        let parked = self
            .parked
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, r)| Some((Place::Parked(i), r.find(addr, n)?)));
        if parked.is_some() {
            return parked;
        }
        if let Some(r) = self.packet.find(addr, n) {
            return Some((Place::Packet, r));
        }
        if !values {
            return None;
        }
        self.arrays.iter().enumerate().find_map(|(a, v)| Some((Place::Array(a), v.find(addr, n)?)))
    }

    fn region(&self, place: Place) -> Option<&Region> {
        match place {
            Place::Stack => Some(&self.stack),
            Place::Ctx => Some(&self.ctx),
            Place::Packet => Some(&self.packet),
            Place::Parked(i) => self.parked.get(i),
            Place::Array(a) => self.arrays.get(a).map(|v| &v.region),
        }
    }

    /// Reads `N` bytes at `addr`, zero-extended, and the OR of their shadow bytes (the
    /// provenance mark, with [`UNINIT`] when a byte was never written); `None` when the
    /// access is not entirely inside a stack, the context or (when `values`: through a
    /// pointer to a map value) one value of an array map.
    #[inline(always)]
    pub(super) fn load<const N: usize>(&self, addr: u64, values: bool) -> Option<(u64, u8)> {
        let (place, range) = self.place(addr, N, values)?;
        let reg = self.region(place)?;
        let bytes = reg.bytes.get(range.clone())?;
        let shadow = reg.shadow.get(range)?;
        let mut buf = [0u8; 8];
        buf.get_mut(..N)?.copy_from_slice(bytes);
        Some((u64::from_le_bytes(buf), fold(shadow)))
    }

    /// Writes the low `N` bytes of `value` at `addr` with provenance mark `mark`; `false`
    /// (nothing written) when the access is not entirely inside a stack, the context or
    /// (when `values`) one value of an array map.
    #[inline(always)]
    pub(super) fn store<const N: usize>(&mut self, addr: u64, value: u64, mark: u8, values: bool) -> bool {
        match self.cell(addr, N, values) {
            Some(mut cell) => {
                cell.set(value, mark);
                true
            }
            None => false,
        }
    }

    /// The `n` bytes at `addr` for reading and writing, if they lie entirely inside a
    /// stack, the context or (when `values`) one value of an array map.
    #[inline(always)]
    pub(super) fn cell(&mut self, addr: u64, n: usize, values: bool) -> Option<Cell<'_>> {
        let (place, range) = self.place(addr, n, values)?;
        let reg = match place {
            Place::Stack => &mut self.stack,
            Place::Ctx => &mut self.ctx,
            Place::Packet => &mut self.packet,
            Place::Parked(i) => self.parked.get_mut(i)?,
            Place::Array(a) => &mut self.arrays.get_mut(a)?.region,
        };
        Some(Cell { bytes: reg.bytes.get_mut(range.clone())?, shadow: reg.shadow.get_mut(range)? })
    }

    /// The account of a missed access (`values`: through a pointer to a map value): `what`
    /// is e.g. "load from", "store to", "atomic add on". Example: `8-byte store to
    /// 0x200001e8 is outside the stack [0x200001f0, 0x20000200) and the context
    /// [0x10000000, 0x10000008)`.
    #[cold]
    pub(super) fn miss_detail(&self, addr: u64, n: usize, what: &str, values: bool) -> String {
        if values {
            if let Some(v) = self.arrays.iter().find(|v| v.contains(addr)) {
                let (i, r) = v.value_at(addr);
                return format!(
                    "{n}-byte {what} {addr:#x} crosses the end of value {i} [{:#x}, {:#x}) of array map {}: \
                     the verifier allows an access through a pointer to a map value only inside that value",
                    r.start, r.end, v.name
                );
            }
        }
        let stack = self.stack.span();
        let mut s = if stack.is_empty() {
            format!("{n}-byte {what} {addr:#x} is outside the stack (the {} has no stack)", self.stack.owner)
        } else {
            format!("{n}-byte {what} {addr:#x} is outside the stack [{:#x}, {:#x})", stack.start, stack.end)
        };
        let callers: Vec<String> = self
            .parked
            .iter()
            .rev()
            .map(Region::span)
            .filter(|r| !r.is_empty())
            .map(|r| format!("[{:#x}, {:#x})", r.start, r.end))
            .collect();
        if !callers.is_empty() {
            s += &format!(", the stacks of the calling frames {}", callers.join(", "));
        }
        if self.has_ctx {
            let ctx = self.ctx.span();
            s += &format!(" and the context [{:#x}, {:#x})", ctx.start, ctx.end);
        } else {
            s += " and there is no context";
        }
        if !self.packet.bytes.is_empty() {
            let packet = self.packet.span();
            s += &format!(", the packet [{:#x}, {:#x})", packet.start, packet.end);
        }
        if values && !self.arrays.is_empty() {
            let arrays: Vec<String> = self.arrays.iter().map(Values::describe).collect();
            let maps = if arrays.len() == 1 { "map" } else { "maps" };
            s += &format!(", and outside the values of array {maps} {}", arrays.join(", "));
        }
        if self.stack.straddles(addr, n) || self.parked.iter().any(|r| r.straddles(addr, n)) {
            s += " (it crosses an edge of the stack)";
        } else if self.has_ctx && self.ctx.straddles(addr, n) {
            s += " (it crosses an edge of the context)";
        } else if let Some(v) = self.arrays.iter().find(|v| v.contains(addr) || v.region.straddles(addr, n)) {
            if values {
                s += &format!(" (it crosses an edge of the values of array map {})", v.name);
            } else {
                s += &format!(
                    " (it reaches into the values of array map {}, which only a pointer \
                     bpf_map_lookup_elem returned may access)",
                    v.name
                );
            }
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
        m.reset(depth, ctx, &[], 0, &[]);
        m
    }

    #[test]
    fn bounds_are_exact() {
        let mut m = mem(16, Some(&[1, 2, 3, 4]));
        assert!(m.store::<8>(STACK_TOP - 16, 0x0102_0304_0506_0708, 0, false));
        assert!(m.store::<8>(STACK_TOP - 8, 0, 0, false));
        assert!(!m.store::<8>(STACK_TOP - 4, 0, 0, false), "crosses the top");
        assert!(!m.store::<1>(STACK_TOP, 0, 0, false), "r10 itself is past the end");
        assert!(!m.store::<1>(STACK_TOP - 17, 0, 0, false), "below the declared depth");
        assert_eq!(m.load::<4>(STACK_TOP - 16, false), Some((0x0506_0708, 0)));
        assert_eq!(m.load::<4>(CTX_ADDR, false), Some((0x0403_0201, 0)));
        assert_eq!(m.load::<1>(CTX_ADDR + 3, false), Some((4, 0)));
        assert_eq!(m.load::<2>(CTX_ADDR + 3, false), None);
        assert_eq!(m.load::<1>(CTX_ADDR.wrapping_sub(1), false), None);
        assert_eq!(m.load::<8>(u64::MAX - 3, false), None, "address wrap-around");
        assert_eq!(m.load::<1>(0, false), None);
    }

    #[test]
    fn shadow_follows_stores() {
        let mut m = mem(512, None);
        assert!(m.store::<8>(STACK_TOP - 8, 1, 1, false));
        assert_eq!(m.load::<1>(STACK_TOP - 1, false), Some((0, 1)));
        assert!(m.store::<4>(STACK_TOP - 8, 7, 0, false));
        assert_eq!(m.load::<4>(STACK_TOP - 8, false), Some((7, 0)));
        assert_eq!(m.load::<8>(STACK_TOP - 8, false), Some((7, 1)), "the upper half is still marked");
        assert!(m.store::<4>(STACK_TOP - 16, 7, 2, false));
        assert_eq!(m.load::<8>(STACK_TOP - 16, false), Some((7, 2)), "marks are kept as they are");
    }

    #[test]
    fn frames_stack_up_and_start_uninitialized() {
        let mut m = mem(16, None);
        assert!(m.store::<8>(STACK_TOP - 8, 5, 0, false));
        let top = 0x3000_0000;
        m.push_frame(top, 8);
        assert_eq!(m.load::<8>(top - 8, false), Some((0, UNINIT)), "a new frame is uninitialized");
        assert!(m.store::<4>(top - 8, 9, 0, false));
        assert_eq!(m.load::<4>(top - 8, false), Some((9, 0)));
        assert_eq!(m.load::<8>(top - 8, false), Some((9, UNINIT)), "half of it still is");
        assert_eq!(m.load::<8>(STACK_TOP - 8, false), Some((5, 0)), "the caller's stack stays valid");
        assert!(m.store::<8>(STACK_TOP - 16, 6, 0, false));
        assert_eq!(m.load::<1>(top, false), None);
        assert_eq!(
            m.miss_detail(top, 1, "load from", false),
            "1-byte load from 0x30000000 is outside the stack [0x2ffffff8, 0x30000000), \
             the stacks of the calling frames [0x200001f0, 0x20000200) and there is no context"
        );
        m.replace_frame(0x4000_0000, 0);
        assert_eq!(m.load::<1>(top - 8, false), None, "a replaced frame is gone");
        assert_eq!(
            m.miss_detail(0x3fff_fff8, 8, "store to", false),
            "8-byte store to 0x3ffffff8 is outside the stack (the program has no stack), \
             the stacks of the calling frames [0x200001f0, 0x20000200) and there is no context"
        );
        assert!(m.pop_frame());
        assert_eq!(m.load::<8>(STACK_TOP - 16, false), Some((6, 0)));
        assert!(!m.pop_frame(), "no caller left");
        m.push_frame(top, 8);
        m.reset(16, None, &[], 0, &[]);
        assert_eq!(m.load::<8>(STACK_TOP - 8, false), Some((0, 0)), "a new run has one zeroed frame");
        assert_eq!(m.load::<8>(top - 8, false), None);
    }

    #[test]
    fn miss_details() {
        let m = mem(16, Some(&[0; 8]));
        assert_eq!(
            m.miss_detail(STACK_TOP - 24, 8, "store to", false),
            "8-byte store to 0x200001e8 is outside the stack [0x200001f0, 0x20000200) \
             and the context [0x10000000, 0x10000008)"
        );
        assert_eq!(
            m.miss_detail(CTX_ADDR + 6, 4, "load from", false),
            "4-byte load from 0x10000006 is outside the stack [0x200001f0, 0x20000200) \
             and the context [0x10000000, 0x10000008) (it crosses an edge of the context)"
        );
        let none = mem(512, None);
        assert_eq!(
            none.miss_detail(0, 1, "load from", false),
            "1-byte load from 0x0 is outside the stack [0x20000000, 0x20000200) and there is no context"
        );
        assert_eq!(
            mem(0, None).miss_detail(STACK_TOP - 8, 8, "load from", false),
            "8-byte load from 0x200001f8 is outside the stack (the program has no stack) and there is no context"
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
        let out = run512(vec![lddw(Reg::R2, 0x1234), ld(Size::DW, false, Reg::R0, Reg::R10, 0), Insn::Exit]);
        let fault = out.result.expect_err("r10 + 0 is past the stack");
        assert_eq!((fault.kind, fault.pc), (FaultKind::MemoryAccess, Some(2)));
        assert_eq!(
            fault.detail,
            "8-byte load from 0x20000200 is outside the stack [0x20000000, 0x20000200) and there is no context"
        );
        // Straddling the top of the stack.
        let out = run512(vec![ld(Size::DW, false, Reg::R0, Reg::R10, -4), Insn::Exit]);
        let fault = out.result.expect_err("crosses the top");
        assert!(fault.detail.ends_with("(it crosses an edge of the stack)"), "{}", fault.detail);
        // No context: r1 = 0 is not an address.
        let out = run512(vec![st(Size::B, Reg::R1, 0, 1), Insn::Exit]);
        assert_eq!(
            out.result.expect_err("null").detail,
            "1-byte store to 0x0 is outside the stack [0x20000000, 0x20000200) and there is no context"
        );
        // A program that never uses r10 as a memory base has no stack at all.
        let out = run(vec![st(Size::B, Reg::R1, 0, 1), Insn::Exit]);
        assert_eq!(
            out.result.expect_err("null").detail,
            "1-byte store to 0x0 is outside the stack (the program has no stack) and there is no context"
        );
        // Below the stack base.
        let out = run512(vec![ld(Size::B, false, Reg::R0, Reg::R10, -513), Insn::Exit]);
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
        let out = run512_on(
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
        assert!(engine.buffers.memory.ctx_shadow().iter().all(|&m| m == 0));
    }
}
