//! Atomic read-modify-write semantics as a pure function of the old memory value and the
//! registers; the executor does the memory access and the provenance bookkeeping.

use bpf::AtomicOp;

/// What an atomic instruction writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Effect {
    /// The new memory value (the store keeps its low 4 or 8 bytes), if memory is written.
    pub store: Option<u64>,
    /// The new value of the `src` register, if it is written.
    pub src: Option<u64>,
    /// The new value of R0, if it is written.
    pub r0: Option<u64>,
}

/// The effect of `op` on a 4-byte (`wide == false`) or 8-byte cell holding `old`
/// (zero-extended), with the instruction's `src` register and R0 holding `src` and `r0`.
///
/// Fetching forms and XCHG put the old value into `src`, CMPXCHG puts it into R0 whether or
/// not it stores (it stores `src` when the old value equals R0, for 4 bytes the low 32 bits
/// of R0). Register results are zero-extended from the access width.
pub(super) fn apply(op: AtomicOp, wide: bool, old: u64, src: u64, r0: u64) -> Effect {
    let none = Effect { store: None, src: None, r0: None };
    let fetch = |new: u64| Effect { store: Some(new), src: Some(old), r0: None };
    match op {
        AtomicOp::Add => Effect { store: Some(old.wrapping_add(src)), ..none },
        AtomicOp::Or => Effect { store: Some(old | src), ..none },
        AtomicOp::And => Effect { store: Some(old & src), ..none },
        AtomicOp::Xor => Effect { store: Some(old ^ src), ..none },
        AtomicOp::FetchAdd => fetch(old.wrapping_add(src)),
        AtomicOp::FetchOr => fetch(old | src),
        AtomicOp::FetchAnd => fetch(old & src),
        AtomicOp::FetchXor => fetch(old ^ src),
        AtomicOp::Xchg => fetch(src),
        AtomicOp::Cmpxchg => {
            let expected = if wide { r0 } else { r0 as u32 as u64 };
            Effect { store: (old == expected).then_some(src), src: None, r0: Some(old) }
        }
    }
}

/// The provenance mark of the memory value written by `op`, given the marks of the old
/// value and of `src`: arithmetic mixes both, XCHG and CMPXCHG store `src` alone.
pub(super) fn store_mark(op: AtomicOp, old_mark: u8, src_mark: u8) -> u8 {
    match op {
        AtomicOp::Xchg | AtomicOp::Cmpxchg => src_mark,
        _ => old_mark | src_mark,
    }
}

/// The operation as the fault text names it ("atomic fetch_add on").
pub(super) fn access_name(op: AtomicOp) -> &'static str {
    match op {
        AtomicOp::Add => "atomic add on",
        AtomicOp::Or => "atomic or on",
        AtomicOp::And => "atomic and on",
        AtomicOp::Xor => "atomic xor on",
        AtomicOp::FetchAdd => "atomic fetch_add on",
        AtomicOp::FetchOr => "atomic fetch_or on",
        AtomicOp::FetchAnd => "atomic fetch_and on",
        AtomicOp::FetchXor => "atomic fetch_xor on",
        AtomicOp::Xchg => "atomic xchg on",
        AtomicOp::Cmpxchg => "atomic cmpxchg on",
    }
}

#[cfg(test)]
mod tests {
    //! Whole programs on the stack and the context; expected values worked out by hand.

    use super::super::layout::STACK_TOP;
    use super::super::testutil::*;
    use bpf::{AtomicOp, FaultKind, Input, Insn, Reg, Size};

    fn atomic(size: Size, op: AtomicOp, off: i16) -> Insn {
        Insn::Atomic { size, op, dst: Reg::R10, src: Reg::R1, off }
    }

    fn ld_dw(dst: Reg, off: i16) -> Insn {
        Insn::Load { size: Size::DW, signed: false, dst, src: Reg::R10, off }
    }

    /// `*(u64 *)(r10 - 8) = mem; r1 = src; r0 = r0_in; <op>;` then returns
    /// (memory after, r1 after, r0 after) through three runs.
    fn rmw(size: Size, op: AtomicOp, mem: u64, src: u64, r0_in: u64) -> (u64, u64, u64) {
        let body = |tail: Insn| {
            vec![
                lddw(Reg::R2, mem),
                Insn::Store { size: Size::DW, dst: Reg::R10, src: Reg::R2, off: -8 },
                lddw(Reg::R1, src),
                lddw(Reg::R0, r0_in),
                atomic(size, op, -8),
                tail,
                Insn::Exit,
            ]
        };
        let mem_after = r0_of(body(ld_dw(Reg::R0, -8)));
        let r1_after = r0_of(body(movx(Reg::R0, Reg::R1)));
        let r0_after = r0_of(body(Insn::Ja { off: 0 }));
        (mem_after, r1_after, r0_after)
    }

    #[test]
    fn add_or_and_xor_without_fetch() {
        use AtomicOp::*;
        // Memory 12 (0b1100), src 10 (0b1010); r1 and r0 are left alone.
        assert_eq!(rmw(Size::DW, Add, 12, 10, 99), (22, 10, 99));
        assert_eq!(rmw(Size::DW, Or, 12, 10, 99), (14, 10, 99));
        assert_eq!(rmw(Size::DW, And, 12, 10, 99), (8, 10, 99));
        assert_eq!(rmw(Size::DW, Xor, 12, 10, 99), (6, 10, 99));
        // 4-byte forms touch only the low word, and use only the low half of src.
        assert_eq!(
            rmw(Size::W, Add, 0xaaaa_aaaa_ffff_ffff, 0x7777_7777_0000_0001, 99),
            (0xaaaa_aaaa_0000_0000, 0x7777_7777_0000_0001, 99)
        );
        assert_eq!(
            rmw(Size::W, Or, 0x1_0000_000c, 0xffff_ffff_0000_000a, 0),
            (0x1_0000_000e, 0xffff_ffff_0000_000a, 0)
        );
        assert_eq!(rmw(Size::W, And, 0x1_0000_000c, 0xa, 0), (0x1_0000_0008, 0xa, 0));
        assert_eq!(rmw(Size::W, Xor, 0x1_0000_000c, 0xa, 0), (0x1_0000_0006, 0xa, 0));
        // 64-bit add carries across the words.
        assert_eq!(rmw(Size::DW, Add, 0xffff_ffff, 1, 0), (0x1_0000_0000, 1, 0));
    }

    #[test]
    fn fetch_forms_return_the_old_value() {
        use AtomicOp::*;
        assert_eq!(rmw(Size::DW, FetchAdd, 10, 5, 0), (15, 10, 0));
        assert_eq!(rmw(Size::DW, FetchOr, 12, 10, 0), (14, 12, 0));
        assert_eq!(rmw(Size::DW, FetchAnd, 12, 10, 0), (8, 12, 0));
        assert_eq!(rmw(Size::DW, FetchXor, 12, 10, 0), (6, 12, 0));
        // W: the old value is zero-extended into src; the upper memory word is untouched.
        assert_eq!(
            rmw(Size::W, FetchAdd, 0xffff_ffff_ffff_ffff, 0xffff_ffff_0000_0001, 0),
            (0xffff_ffff_0000_0000, 0x0000_0000_ffff_ffff, 0)
        );
        assert_eq!(
            rmw(Size::W, FetchXor, 0x5555_5555_8000_0000, 0xffff_ffff_8000_0001, 0),
            (0x5555_5555_0000_0001, 0x0000_0000_8000_0000, 0)
        );
    }

    #[test]
    fn xchg() {
        assert_eq!(rmw(Size::DW, AtomicOp::Xchg, 7, 9, 0), (9, 7, 0));
        assert_eq!(
            rmw(Size::W, AtomicOp::Xchg, 0x1111_1111_8000_0000, 0x2222_2222_3333_3333, 0),
            (0x1111_1111_3333_3333, 0x0000_0000_8000_0000, 0)
        );
    }

    #[test]
    fn cmpxchg() {
        use AtomicOp::Cmpxchg;
        // Success: stores src, R0 gets the old value.
        assert_eq!(rmw(Size::DW, Cmpxchg, 5, 9, 5), (9, 9, 5));
        // Failure: memory unchanged, R0 still gets the old value.
        assert_eq!(rmw(Size::DW, Cmpxchg, 5, 9, 6), (5, 9, 5));
        // 64-bit compares all 64 bits.
        assert_eq!(rmw(Size::DW, Cmpxchg, 5, 9, 0x1_0000_0005), (5, 9, 5));
        // cmpxchg32 on 0x80000000: compares the low half of R0, R0 is zero-extended.
        assert_eq!(
            rmw(Size::W, Cmpxchg, 0x8000_0000, 0x1234, 0xffff_ffff_8000_0000),
            (0x1234, 0x1234, 0x0000_0000_8000_0000)
        );
        assert_eq!(
            rmw(Size::W, Cmpxchg, 0x8000_0000, 0x1234, 0),
            (0x8000_0000, 0x1234, 0x0000_0000_8000_0000)
        );
        // The upper word is not part of a 4-byte compare or store.
        assert_eq!(
            rmw(Size::W, Cmpxchg, 0x9999_9999_0000_0007, 0xaaaa_aaaa_bbbb_bbbb, 7),
            (0x9999_9999_bbbb_bbbb, 0xaaaa_aaaa_bbbb_bbbb, 7)
        );
        // src = R0, compare fails: memory keeps 3 and R0 becomes 3 (not 4): 3 + 3.
        let got = r0_of(vec![
            Insn::StoreImm { size: Size::DW, dst: Reg::R10, off: -8, imm: 3 },
            mov64(Reg::R0, 4),
            Insn::Atomic { size: Size::DW, op: Cmpxchg, dst: Reg::R10, src: Reg::R0, off: -8 },
            ld_dw(Reg::R1, -8),
            alux(bpf::Width::W64, bpf::AluOp::Add, Reg::R0, Reg::R1),
            Insn::Exit,
        ]);
        assert_eq!(got, 6);
    }

    #[test]
    fn atomics_on_the_context() {
        let out = run_on(
            vec![
                mov64(Reg::R2, 0x01),
                Insn::Atomic { size: Size::W, op: AtomicOp::FetchAdd, dst: Reg::R1, src: Reg::R2, off: 4 },
                movx(Reg::R0, Reg::R2),
                Insn::Exit,
            ],
            Input::with_ctx(vec![1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff]),
        );
        assert_eq!(out.result, Ok(0xffff_ffff));
        assert_eq!(out.ctx, vec![1, 2, 3, 4, 0, 0, 0, 0]);
    }

    #[test]
    fn misaligned_atomics_fault() {
        for (size, off) in [(Size::DW, -4), (Size::DW, -12), (Size::W, -6), (Size::W, -1)] {
            let out =
                run(vec![mov64(Reg::R1, 1), atomic(size, AtomicOp::Add, off), mov64(Reg::R0, 0), Insn::Exit]);
            let fault = out.result.expect_err("misaligned");
            assert_eq!((fault.kind, fault.pc), (FaultKind::MisalignedAtomic, Some(1)), "{size:?} at {off}");
            let addr = STACK_TOP - off.unsigned_abs() as u64;
            assert!(fault.detail.contains(&format!("{addr:#x}")), "{}", fault.detail);
        }
        // 4-byte atomics need only 4-byte alignment.
        let ok =
            run(vec![mov64(Reg::R1, 1), atomic(Size::W, AtomicOp::Add, -4), mov64(Reg::R0, 0), Insn::Exit]);
        assert_eq!(ok.result, Ok(0));
    }

    #[test]
    fn out_of_bounds_atomics_fault() {
        let out = run512(vec![atomic(Size::DW, AtomicOp::Xchg, 0), Insn::Exit]);
        let fault = out.result.expect_err("out of bounds");
        assert_eq!((fault.kind, fault.pc), (FaultKind::MemoryAccess, Some(0)));
        assert_eq!(
            fault.detail,
            "8-byte atomic xchg on 0x20000200 is outside the stack [0x20000000, 0x20000200) and there is no context"
        );
    }
}
