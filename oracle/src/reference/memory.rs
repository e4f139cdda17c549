//! The guest memory: the stack and the context buffer, each with a per-byte shadow that
//! records which bytes were stored from an address-marked register.
//!
//! Every access must lie entirely inside one region; anything else is a miss, which the
//! executor turns into a `MemoryAccess` fault with [`Memory::miss_detail`]. Values are
//! little-endian.

use std::ops::Range;

use super::layout::{CTX_ADDR, STACK_TOP};

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
    /// Prepares a run: a zeroed stack of `stack_depth` bytes below [`STACK_TOP`] and a copy
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
        let mut s = format!(
            "{n}-byte {what} {addr:#x} is outside the stack [{:#x}, {:#x})",
            stack.start, stack.end
        );
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
