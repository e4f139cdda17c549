//! ALU semantics as pure functions on register values.
//!
//! Every function takes the destination's full 64-bit value and the second operand as the
//! executor passes it (a register's full value, or an immediate already widened as the
//! instruction's width requires: sign-extended for 64-bit operations, the raw 32 bits for
//! 32-bit ones) and returns the new full 64-bit destination value.
//!
//! The `*32` functions look only at the low 32 bits of both operands and always return a
//! zero-extended result, as every `BPF_ALU` instruction does.

// ---- 64-bit (BPF_ALU64) ----

/// `dst += src`, wrapping.
#[inline(always)]
pub(super) fn add64(a: u64, b: u64) -> u64 {
    a.wrapping_add(b)
}

/// `dst -= src`, wrapping.
#[inline(always)]
pub(super) fn sub64(a: u64, b: u64) -> u64 {
    a.wrapping_sub(b)
}

/// `dst *= src`, the low 64 bits of the product.
#[inline(always)]
pub(super) fn mul64(a: u64, b: u64) -> u64 {
    a.wrapping_mul(b)
}

/// Unsigned `dst /= src`; division by zero gives 0.
#[inline(always)]
pub(super) fn div64(a: u64, b: u64) -> u64 {
    a.checked_div(b).unwrap_or(0)
}

/// Signed `dst s/= src`; division by zero gives 0, `INT64_MIN s/ -1` gives `INT64_MIN`.
#[inline(always)]
pub(super) fn sdiv64(a: u64, b: u64) -> u64 {
    if b == 0 {
        0
    } else {
        (a as i64).wrapping_div(b as i64) as u64
    }
}

/// Unsigned `dst %= src`; modulo by zero leaves `dst` unchanged.
#[inline(always)]
pub(super) fn mod64(a: u64, b: u64) -> u64 {
    a.checked_rem(b).unwrap_or(a)
}

/// Signed `dst s%= src` (the result has the dividend's sign); modulo by zero leaves
/// `dst` unchanged, modulo by -1 gives 0.
#[inline(always)]
pub(super) fn smod64(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        (a as i64).wrapping_rem(b as i64) as u64
    }
}

/// `dst |= src`.
#[inline(always)]
pub(super) fn or64(a: u64, b: u64) -> u64 {
    a | b
}

/// `dst &= src`.
#[inline(always)]
pub(super) fn and64(a: u64, b: u64) -> u64 {
    a & b
}

/// `dst ^= src`.
#[inline(always)]
pub(super) fn xor64(a: u64, b: u64) -> u64 {
    a ^ b
}

/// `dst <<= src & 63`.
#[inline(always)]
pub(super) fn lsh64(a: u64, b: u64) -> u64 {
    a << (b & 63)
}

/// Logical `dst >>= src & 63`.
#[inline(always)]
pub(super) fn rsh64(a: u64, b: u64) -> u64 {
    a >> (b & 63)
}

/// Arithmetic `dst s>>= src & 63`.
#[inline(always)]
pub(super) fn arsh64(a: u64, b: u64) -> u64 {
    ((a as i64) >> (b & 63)) as u64
}

/// `dst = -dst`, wrapping.
#[inline(always)]
pub(super) fn neg64(a: u64) -> u64 {
    a.wrapping_neg()
}

// ---- 32-bit (BPF_ALU): low 32 bits in, zero-extended result out ----

/// `wdst += wsrc`.
#[inline(always)]
pub(super) fn add32(a: u64, b: u64) -> u64 {
    (a as u32).wrapping_add(b as u32) as u64
}

/// `wdst -= wsrc`.
#[inline(always)]
pub(super) fn sub32(a: u64, b: u64) -> u64 {
    (a as u32).wrapping_sub(b as u32) as u64
}

/// `wdst *= wsrc`.
#[inline(always)]
pub(super) fn mul32(a: u64, b: u64) -> u64 {
    (a as u32).wrapping_mul(b as u32) as u64
}

/// Unsigned `wdst /= wsrc`; division by zero gives 0.
#[inline(always)]
pub(super) fn div32(a: u64, b: u64) -> u64 {
    (a as u32).checked_div(b as u32).unwrap_or(0) as u64
}

/// Signed `wdst s/= wsrc`; division by zero gives 0, `INT32_MIN s/ -1` gives `INT32_MIN`.
#[inline(always)]
pub(super) fn sdiv32(a: u64, b: u64) -> u64 {
    let (a, b) = (a as u32 as i32, b as u32 as i32);
    if b == 0 {
        0
    } else {
        a.wrapping_div(b) as u32 as u64
    }
}

/// Unsigned `wdst %= wsrc`; modulo by zero keeps the low 32 bits (upper ones cleared).
#[inline(always)]
pub(super) fn mod32(a: u64, b: u64) -> u64 {
    let (a, b) = (a as u32, b as u32);
    a.checked_rem(b).unwrap_or(a) as u64
}

/// Signed `wdst s%= wsrc`; modulo by zero keeps the low 32 bits, modulo by -1 gives 0.
#[inline(always)]
pub(super) fn smod32(a: u64, b: u64) -> u64 {
    let (a, b) = (a as u32 as i32, b as u32 as i32);
    if b == 0 {
        a as u32 as u64
    } else {
        a.wrapping_rem(b) as u32 as u64
    }
}

/// `wdst |= wsrc`.
#[inline(always)]
pub(super) fn or32(a: u64, b: u64) -> u64 {
    ((a | b) as u32) as u64
}

/// `wdst &= wsrc`.
#[inline(always)]
pub(super) fn and32(a: u64, b: u64) -> u64 {
    ((a & b) as u32) as u64
}

/// `wdst ^= wsrc`.
#[inline(always)]
pub(super) fn xor32(a: u64, b: u64) -> u64 {
    ((a ^ b) as u32) as u64
}

/// `wdst <<= wsrc & 31`.
#[inline(always)]
pub(super) fn lsh32(a: u64, b: u64) -> u64 {
    ((a as u32) << (b & 31)) as u64
}

/// Logical `wdst >>= wsrc & 31`.
#[inline(always)]
pub(super) fn rsh32(a: u64, b: u64) -> u64 {
    ((a as u32) >> (b & 31)) as u64
}

/// Arithmetic `wdst s>>= wsrc & 31`, the result zero-extended.
#[inline(always)]
pub(super) fn arsh32(a: u64, b: u64) -> u64 {
    ((a as u32 as i32) >> (b & 31)) as u32 as u64
}

/// `wdst = -wdst`, zero-extended.
#[inline(always)]
pub(super) fn neg32(a: u64) -> u64 {
    (a as u32).wrapping_neg() as u64
}

// ---- MOVSX and END ----

/// 64-bit `dst = (s8) src`.
#[inline(always)]
pub(super) fn sx8_64(a: u64) -> u64 {
    a as u8 as i8 as i64 as u64
}

/// 64-bit `dst = (s16) src`.
#[inline(always)]
pub(super) fn sx16_64(a: u64) -> u64 {
    a as u16 as i16 as i64 as u64
}

/// 64-bit `dst = (s32) src`.
#[inline(always)]
pub(super) fn sx32_64(a: u64) -> u64 {
    a as u32 as i32 as i64 as u64
}

/// 32-bit `wdst = (s8) wsrc`: sign-extended into 32 bits, then zero-extended.
#[inline(always)]
pub(super) fn sx8_32(a: u64) -> u64 {
    a as u8 as i8 as i32 as u32 as u64
}

/// 32-bit `wdst = (s16) wsrc`: sign-extended into 32 bits, then zero-extended.
#[inline(always)]
pub(super) fn sx16_32(a: u64) -> u64 {
    a as u16 as i16 as i32 as u32 as u64
}

/// `le16` on a little-endian machine: keep the low 16 bits.
#[inline(always)]
pub(super) fn trunc16(a: u64) -> u64 {
    a as u16 as u64
}

/// `le32` on a little-endian machine: keep the low 32 bits.
#[inline(always)]
pub(super) fn trunc32(a: u64) -> u64 {
    a as u32 as u64
}

/// `be16` / `bswap16`: swap the two low bytes, clear the rest.
#[inline(always)]
pub(super) fn swap16(a: u64) -> u64 {
    (a as u16).swap_bytes() as u64
}

/// `be32` / `bswap32`: swap the four low bytes, clear the rest.
#[inline(always)]
pub(super) fn swap32(a: u64) -> u64 {
    (a as u32).swap_bytes() as u64
}

/// `be64` / `bswap64`: swap all eight bytes.
#[inline(always)]
pub(super) fn swap64(a: u64) -> u64 {
    a.swap_bytes()
}

#[cfg(test)]
mod tests {
    //! Whole programs, one semantics rule each; every expected value is worked out by hand
    //! from the kernel's rules (instruction-set.rst), not taken from a run.

    use super::super::testutil::*;
    use bpf::{AluOp::*, ByteOrder, Insn, Reg, SxBits, Width};

    /// A table row: the program `r0 = init; op; exit` must return `want`.
    fn check(rows: &[(&str, u64, Insn, u64)]) {
        for &(name, init, insn, want) in rows {
            let got = r0_of(vec![lddw(Reg::R0, init), insn, Insn::Exit]);
            assert_eq!(got, want, "{name}: r0 = {init:#x}; {insn:?} gave {got:#x}, want {want:#x}");
        }
    }

    /// Like [`check`], with r1 = `src` as the second operand.
    fn check_x(rows: &[(&str, u64, Width, bpf::AluOp, u64, u64)]) {
        for &(name, init, width, op, src, want) in rows {
            let got = r0_of(vec![
                lddw(Reg::R0, init),
                lddw(Reg::R1, src),
                alux(width, op, Reg::R0, Reg::R1),
                Insn::Exit,
            ]);
            assert_eq!(
                got, want,
                "{name}: {init:#x} {op:?} {src:#x} ({width:?}) gave {got:#x}, want {want:#x}"
            );
        }
    }

    #[test]
    fn add_sub_mul() {
        check(&[
            ("add64", 0x7fff_ffff, alu64(Add, Reg::R0, 1), 0x8000_0000),
            ("add64 negative imm", 5, alu64(Add, Reg::R0, -6), 0xffff_ffff_ffff_ffff),
            ("add32 overflows into bit 31 only", 0x7fff_ffff, alu32(Add, Reg::R0, 1), 0x8000_0000),
            ("add32 wraps and clears the top", 0xffff_ffff_ffff_ffff, alu32(Add, Reg::R0, 1), 0),
            ("add32 of 0 zero-extends", 0x1_0000_0001, alu32(Add, Reg::R0, 0), 1),
            ("sub64", 0, alu64(Sub, Reg::R0, 1), 0xffff_ffff_ffff_ffff),
            ("sub32", 0, alu32(Sub, Reg::R0, 1), 0x0000_0000_ffff_ffff),
            ("sub64 imm -2048", 0, alu64(Sub, Reg::R0, -2048), 0x800),
            ("mul64", 0x1_0000_0000, alu64(Mul, Reg::R0, 0x10), 0x10_0000_0000),
            ("mul64 negative imm", 3, alu64(Mul, Reg::R0, -1), 0xffff_ffff_ffff_fffd),
            ("mul32 uses the low half", 0x1_0000_0003, alu32(Mul, Reg::R0, 3), 9),
            ("mul32 truncates", 0x8000_0000, alu32(Mul, Reg::R0, 2), 0),
        ]);
        // The famous RV64 JIT bug: r0 = 0x7fffffff; w0 += 1; r0 >>= 32 must give 0.
        let got = r0_of(vec![
            mov64(Reg::R0, 0x7fff_ffff),
            alu32(Add, Reg::R0, 1),
            alu64(Rsh, Reg::R0, 32),
            Insn::Exit,
        ]);
        assert_eq!(got, 0);
    }

    #[test]
    fn unsigned_div_mod() {
        check(&[
            ("div64", 10, alu64(Div, Reg::R0, 3), 3),
            ("div64 imm -1 is 2^64-1", 0xffff_ffff_ffff_fffe, alu64(Div, Reg::R0, -1), 0),
            ("div64 max by -1", 0xffff_ffff_ffff_ffff, alu64(Div, Reg::R0, -1), 1),
            ("div64 max by 2", 0xffff_ffff_ffff_ffff, alu64(Div, Reg::R0, 2), 0x7fff_ffff_ffff_ffff),
            ("div32 imm -1 is 0xffffffff", 0xffff_ffff, alu32(Div, Reg::R0, -1), 1),
            ("div32 smaller by -1", 0xffff_fffe, alu32(Div, Reg::R0, -1), 0),
            ("div32 low half only", 0xffff_ffff_ffff_ffff, alu32(Div, Reg::R0, 2), 0x7fff_ffff),
            ("div64 by imm 0", 5, alu64(Div, Reg::R0, 0), 0),
            ("div32 by imm 0", 5, alu32(Div, Reg::R0, 0), 0),
            ("mod64", 10, alu64(Mod, Reg::R0, 3), 1),
            ("mod64 imm -1 is 2^64-1", 5, alu64(Mod, Reg::R0, -1), 5),
            ("mod32 imm -1 is 0xffffffff", 0xffff_ffff, alu32(Mod, Reg::R0, -1), 0),
            ("mod32 low half", 0x1_0000_0007, alu32(Mod, Reg::R0, 4), 3),
            ("mod64 by imm 0", 0xffff_ffff_0000_0005, alu64(Mod, Reg::R0, 0), 0xffff_ffff_0000_0005),
            ("mod32 by imm 0", 0xffff_ffff_0000_0005, alu32(Mod, Reg::R0, 0), 5),
        ]);
        check_x(&[
            ("div64 by r 0", 5, Width::W64, Div, 0, 0),
            ("div32 by r 0", 5, Width::W32, Div, 0, 0),
            ("div32 by r with zero low half", 10, Width::W32, Div, 0x1_0000_0000, 0),
            ("div64 by r with zero low half", 0x2_0000_0000, Width::W64, Div, 0x1_0000_0000, 2),
            ("mod64 by r 0 leaves dst", 0xffff_ffff_0000_0005, Width::W64, Mod, 0, 0xffff_ffff_0000_0005),
            ("mod32 by r 0 keeps the low half", 0xffff_ffff_0000_0005, Width::W32, Mod, 0, 5),
            ("mod32 by r with zero low half", 0xffff_ffff_0000_0005, Width::W32, Mod, 0x7_0000_0000, 5),
            ("div32 uses the low half of src", 100, Width::W32, Div, 0xffff_ffff_0000_000a, 10),
        ]);
    }

    #[test]
    fn signed_div_mod() {
        const MIN64: u64 = 0x8000_0000_0000_0000;
        check(&[
            (
                "sdiv64 truncates toward zero",
                0xffff_ffff_ffff_fff9,
                alu64(Sdiv, Reg::R0, 2),
                0xffff_ffff_ffff_fffd,
            ),
            ("sdiv64 negative imm", 6, alu64(Sdiv, Reg::R0, -2), 0xffff_ffff_ffff_fffd),
            ("sdiv64 INT64_MIN by -1", MIN64, alu64(Sdiv, Reg::R0, -1), MIN64),
            ("sdiv64 by imm 0", 0xffff_ffff_ffff_fff9, alu64(Sdiv, Reg::R0, 0), 0),
            ("sdiv32 -1 by -1", 0xffff_ffff, alu32(Sdiv, Reg::R0, -1), 1),
            ("sdiv32 INT32_MIN by -1", 0x8000_0000, alu32(Sdiv, Reg::R0, -1), 0x0000_0000_8000_0000),
            (
                "sdiv32 negative result zero-extends",
                0xffff_fffa,
                alu32(Sdiv, Reg::R0, 2),
                0x0000_0000_ffff_fffd,
            ),
            ("sdiv32 low half as s32", 0x0000_0001_ffff_fffa, alu32(Sdiv, Reg::R0, 3), 0xffff_fffe),
            ("sdiv32 by imm 0", 0xffff_fffa, alu32(Sdiv, Reg::R0, 0), 0),
            (
                "smod64 sign of dividend",
                0xffff_ffff_ffff_fff9,
                alu64(Smod, Reg::R0, 2),
                0xffff_ffff_ffff_ffff,
            ),
            ("smod64 negative divisor", 7, alu64(Smod, Reg::R0, -2), 1),
            ("smod64 INT64_MIN by -1", MIN64, alu64(Smod, Reg::R0, -1), 0),
            ("smod64 by imm 0", 0xffff_ffff_ffff_fff9, alu64(Smod, Reg::R0, 0), 0xffff_ffff_ffff_fff9),
            ("smod32 sign of dividend", 0xffff_fff9, alu32(Smod, Reg::R0, 2), 0x0000_0000_ffff_ffff),
            ("smod32 INT32_MIN by -1", 0x8000_0000, alu32(Smod, Reg::R0, -1), 0),
            ("smod32 by imm 0", 0xdead_beef_ffff_fff9, alu32(Smod, Reg::R0, 0), 0xffff_fff9),
        ]);
        check_x(&[
            ("sdiv64 INT64_MIN by r -1", MIN64, Width::W64, Sdiv, u64::MAX, MIN64),
            ("smod64 INT64_MIN by r -1", MIN64, Width::W64, Smod, u64::MAX, 0),
            ("sdiv32 by r -1 (upper garbage)", 0x8000_0000, Width::W32, Sdiv, 0x5_ffff_ffff, 0x8000_0000),
            ("smod32 by r -1", 0x8000_0000, Width::W32, Smod, 0xffff_ffff, 0),
            ("sdiv64 by r 0", 7, Width::W64, Sdiv, 0, 0),
            ("smod64 by r 0", 0xffff_ffff_ffff_fff9, Width::W64, Smod, 0, 0xffff_ffff_ffff_fff9),
            ("smod32 by r 0", 0xdead_beef_ffff_fff9, Width::W32, Smod, 0, 0xffff_fff9),
            ("sdiv32 by r 0", 0xdead_beef_ffff_fff9, Width::W32, Sdiv, 0, 0),
            ("smod32 -7 by 3", 0xffff_fff9, Width::W32, Smod, 3, 0xffff_ffff),
        ]);
    }

    #[test]
    fn bitwise() {
        check(&[
            ("or64", 0xf0, alu64(Or, Reg::R0, 0x0f), 0xff),
            ("or64 negative imm", 0, alu64(Or, Reg::R0, -16), 0xffff_ffff_ffff_fff0),
            ("or32 clears the top", 0xffff_ffff_0000_0000, alu32(Or, Reg::R0, 1), 1),
            ("and64 imm -1 keeps all", 0x1234_5678_9abc_def0, alu64(And, Reg::R0, -1), 0x1234_5678_9abc_def0),
            ("and32 imm -1 clears the top", 0x1234_5678_9abc_def0, alu32(And, Reg::R0, -1), 0x9abc_def0),
            ("xor64 imm -1", 0xffff_0000_ffff_0000, alu64(Xor, Reg::R0, -1), 0x0000_ffff_0000_ffff),
            ("xor32 imm -1", 0xffff_0000_ffff_0000, alu32(Xor, Reg::R0, -1), 0x0000_ffff),
        ]);
        // The second RV64 bug: r0 = -1; w0 &= -1; r0 >>= 32 must give 0.
        let got =
            r0_of(vec![mov64(Reg::R0, -1), alu32(And, Reg::R0, -1), alu64(Rsh, Reg::R0, 32), Insn::Exit]);
        assert_eq!(got, 0);
    }

    #[test]
    fn shifts() {
        check(&[
            ("lsh64 by 63", 1, alu64(Lsh, Reg::R0, 63), 0x8000_0000_0000_0000),
            ("lsh64 by 0", 0x1234, alu64(Lsh, Reg::R0, 0), 0x1234),
            ("lsh32 by 31", 1, alu32(Lsh, Reg::R0, 31), 0x8000_0000),
            ("lsh32 drops the top", 0x1_8000_0001, alu32(Lsh, Reg::R0, 1), 2),
            ("lsh32 by 0 zero-extends", 0xffff_ffff_0000_0007, alu32(Lsh, Reg::R0, 0), 7),
            ("rsh64 by 63", 0x8000_0000_0000_0000, alu64(Rsh, Reg::R0, 63), 1),
            ("rsh32 ignores the top", 0xffff_ffff_8000_0000, alu32(Rsh, Reg::R0, 31), 1),
            ("arsh64 by 63", 0x8000_0000_0000_0000, alu64(Arsh, Reg::R0, 63), 0xffff_ffff_ffff_ffff),
            ("arsh32 sign bit 31, zero-extended", 0x8000_0000, alu32(Arsh, Reg::R0, 4), 0xf800_0000),
            ("arsh32 positive", 0xffff_ffff_7000_0000, alu32(Arsh, Reg::R0, 4), 0x0700_0000),
        ]);
        check_x(&[
            ("lsh64 count masked to 63", 1, Width::W64, Lsh, 65, 2),
            ("rsh64 count masked", 0x100, Width::W64, Rsh, 0xffff_ffff_ffff_ff44, 0x10),
            ("arsh64 count masked", 0x8000_0000_0000_0000, Width::W64, Arsh, 127, 0xffff_ffff_ffff_ffff),
            ("lsh32 count masked to 31", 1, Width::W32, Lsh, 33, 2),
            ("rsh32 count masked", 0x8000_0000, Width::W32, Rsh, 0x1_0000_003f, 1),
            ("arsh32 count masked", 0x8000_0000, Width::W32, Arsh, 36, 0xf800_0000),
        ]);
    }

    #[test]
    fn mov_and_neg() {
        check(&[
            ("mov64 negative imm sign-extends", 7, mov64(Reg::R0, -1), 0xffff_ffff_ffff_ffff),
            ("mov32 negative imm zero-extends", 7, alu32(Mov, Reg::R0, -1), 0x0000_0000_ffff_ffff),
            ("neg64", 1, Insn::Neg { width: Width::W64, dst: Reg::R0 }, 0xffff_ffff_ffff_ffff),
            (
                "neg64 INT64_MIN",
                0x8000_0000_0000_0000,
                Insn::Neg { width: Width::W64, dst: Reg::R0 },
                0x8000_0000_0000_0000,
            ),
            ("neg32", 1, Insn::Neg { width: Width::W32, dst: Reg::R0 }, 0xffff_ffff),
            ("neg32 of a zero low half", 0x5_0000_0000, Insn::Neg { width: Width::W32, dst: Reg::R0 }, 0),
        ]);
        check_x(&[
            ("mov64 reg", 0, Width::W64, Mov, 0x1234_5678_9abc_def0, 0x1234_5678_9abc_def0),
            ("mov32 reg", 0, Width::W32, Mov, 0x1234_5678_9abc_def0, 0x9abc_def0),
        ]);
        // xor/sub of a register with itself is zero, whatever the width.
        check(&[
            ("xor64 self", 0x1234, alux(Width::W64, Xor, Reg::R0, Reg::R0), 0),
            ("sub32 self", 0xffff_ffff_ffff_ffff, alux(Width::W32, Sub, Reg::R0, Reg::R0), 0),
            ("add64 self", 0x8000_0000_0000_0001, alux(Width::W64, Add, Reg::R0, Reg::R0), 2),
        ]);
    }

    #[test]
    fn movsx() {
        let sx = |width, from| Insn::MovSx { width, from, dst: Reg::R0, src: Reg::R1 };
        let rows: &[(&str, u64, Insn, u64)] = &[
            ("s8 to 64", 0x80, sx(Width::W64, SxBits::S8), 0xffff_ffff_ffff_ff80),
            ("s8 to 64 positive", 0xffff_ff7f, sx(Width::W64, SxBits::S8), 0x7f),
            ("s8 to 32", 0x80, sx(Width::W32, SxBits::S8), 0x0000_0000_ffff_ff80),
            ("s16 to 64", 0x8000, sx(Width::W64, SxBits::S16), 0xffff_ffff_ffff_8000),
            ("s16 to 32", 0x1_0000_8000, sx(Width::W32, SxBits::S16), 0xffff_8000),
            ("s32 to 64", 0x1_8000_0000, sx(Width::W64, SxBits::S32), 0xffff_ffff_8000_0000),
            ("s32 to 64 positive", 0xffff_ffff_7fff_ffff, sx(Width::W64, SxBits::S32), 0x7fff_ffff),
        ];
        for &(name, src, insn, want) in rows {
            let got = r0_of(vec![mov64(Reg::R0, -1), lddw(Reg::R1, src), insn, Insn::Exit]);
            assert_eq!(got, want, "{name}: gave {got:#x}, want {want:#x}");
        }
    }

    #[test]
    fn byte_order() {
        const V: u64 = 0x0102_0304_0506_0708;
        let end = |order, bits| Insn::End { order, bits, dst: Reg::R0 };
        check(&[
            ("le16 truncates", V, end(ByteOrder::Le, 16), 0x0708),
            ("le32 truncates", V, end(ByteOrder::Le, 32), 0x0506_0708),
            ("le64 is a no-op", V, end(ByteOrder::Le, 64), V),
            ("be16 swaps and clears", V, end(ByteOrder::Be, 16), 0x0807),
            ("be32 swaps and clears", V, end(ByteOrder::Be, 32), 0x0807_0605),
            ("be64 swaps", V, end(ByteOrder::Be, 64), 0x0807_0605_0403_0201),
            ("bswap16", V, end(ByteOrder::Swap, 16), 0x0807),
            ("bswap32", V, end(ByteOrder::Swap, 32), 0x0807_0605),
            ("bswap64", V, end(ByteOrder::Swap, 64), 0x0807_0605_0403_0201),
        ]);
    }
}
