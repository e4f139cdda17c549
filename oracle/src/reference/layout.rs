//! Where things live in the reference's address space: public so that other engines can
//! mirror the layout and tests can compute addresses.
//!
//! ```text
//! MAPS_ADDR  = 0x0800_0000  map k at bpf::exec::map_addr(k)                  `lddw rN, map`
//!                           (prog arrays first, then array maps; an array map's values
//!                           from map_addr(k) + ARRAY_VALUES_OFFSET, value after value)
//! CTX_ADDR   = 0x1000_0000  context bytes [CTX_ADDR, CTX_ADDR + ctx.len())    R1 at entry
//! STACK_BASE = 0x2000_0000  lowest stack byte the entry frame may use
//! STACK_TOP  = 0x2000_0200  R10 at entry; the valid stack is [STACK_TOP - depth, STACK_TOP)
//! frame_top(n) = STACK_TOP + n * FRAME_STRIDE   R10 of the n-th frame made in a run
//! ```
//!
//! Every frame a run makes (a bpf-to-bpf callee, a tail-call target) gets a stack at an
//! address no other frame of the run had, so a pointer into a frame that is gone never
//! reaches a live one; frames are [`FRAME_STRIDE`] apart, so no `r10 + off` (a 16-bit
//! offset) from one frame reaches another.
//!
//! Both regions start 8-byte aligned, so an access is naturally aligned exactly when its
//! offset into the region is: alignment faults are the same in every engine that uses
//! 8-byte-aligned regions, whatever their addresses.

use std::ops::Range;

use bpf::{Input, MAX_STACK};

/// Guest address of the context buffer's first byte (R1 at entry when there is a context);
/// the same value as [`bpf::exec::CTX_ADDR`].
pub const CTX_ADDR: u64 = bpf::exec::CTX_ADDR;

/// The value of R10 at entry: one past the highest stack byte.
pub const STACK_TOP: u64 = 0x2000_0200;

/// The largest stack any program may use, in bytes (`MAX_BPF_STACK`).
pub const STACK_SIZE: u64 = MAX_STACK as u64;

/// The lowest address a stack access may ever touch (`STACK_TOP - STACK_SIZE`).
pub const STACK_BASE: u64 = STACK_TOP - STACK_SIZE;

/// The distance between the stack tops of consecutive frames of a run: more than twice the
/// reach of a 16-bit offset, plus a whole stack.
pub const FRAME_STRIDE: u64 = 0x1_0000;

/// R10 of the `n`-th frame a run makes (`n` = 0: the entry frame, R10 = [`STACK_TOP`]). The
/// frame's stack is `[frame_top(n) - depth, frame_top(n))`.
pub fn frame_top(n: u64) -> u64 {
    STACK_TOP.wrapping_add(n.wrapping_mul(FRAME_STRIDE))
}

/// The instruction budget of [`Reference::new`](super::Reference::new): executed
/// instructions (an `lddw` counts once) before a run stops with a `Budget` fault.
pub const DEFAULT_BUDGET: u64 = 100_000_000;

/// The addresses a program with this declared stack depth may access on the entry frame's
/// stack: `[STACK_TOP - depth, STACK_TOP)`. Depths above [`STACK_SIZE`] are clamped to it.
pub fn stack_range(stack_depth: u32) -> Range<u64> {
    STACK_TOP - u64::from(stack_depth).min(STACK_SIZE)..STACK_TOP
}

/// The addresses of the context buffer of `input` (`[CTX_ADDR, CTX_ADDR + len)`), or
/// `None` when the input has no context.
pub fn ctx_range(input: &Input) -> Option<Range<u64>> {
    input.ctx.as_ref().map(|c| CTX_ADDR..CTX_ADDR + c.len() as u64)
}

/// The registers at entry, R0 to R10: R1 = [`CTX_ADDR`] with a context (0 without one),
/// R10 = [`STACK_TOP`], every other register 0.
pub fn entry_registers(input: &Input) -> [u64; 11] {
    let mut regs = [0u64; 11];
    if input.ctx.is_some() {
        regs[1] = CTX_ADDR;
    }
    regs[10] = STACK_TOP;
    regs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_values() {
        assert_eq!(STACK_BASE, 0x2000_0000);
        assert_eq!(stack_range(512), 0x2000_0000..0x2000_0200);
        assert_eq!(stack_range(16), 0x2000_01f0..0x2000_0200);
        assert_eq!(stack_range(0), 0x2000_0200..0x2000_0200);
        assert_eq!(ctx_range(&Input::with_ctx(vec![0; 8])), Some(0x1000_0000..0x1000_0008));
        assert_eq!(ctx_range(&Input::none()), None);
        let r = entry_registers(&Input::with_ctx(vec![]));
        assert_eq!((r[0], r[1], r[10]), (0, 0x1000_0000, 0x2000_0200));
        assert_eq!(entry_registers(&Input::none())[1], 0);
        assert_eq!((frame_top(0), frame_top(1), frame_top(2)), (STACK_TOP, 0x2001_0200, 0x2002_0200));
    }
}
