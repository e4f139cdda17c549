//! One test per historical bug of the kernel's RV64 JIT that a differential fuzzer must
//! catch (each test is named after the kernel commit that fixed it), plus other likely
//! slips of a JIT writer. Each trigger is written in assembly, and each expected R0 is the kernel's
//! documented result (instruction-set.rst / RFC 9669), worked out by hand: never an
//! engine's output. Every engine is checked on every program.
//!
//! The tail-call bugs (745abfaa9eaf, 30a59cc79754) need program sets and are not here yet.

mod common;

use bpf::Input;
use common::{all_engines, asm, check_r0};

/// Runs every `(name, program, expected R0)` on every engine and panics once, listing all
/// failures with their programs.
fn check<N: AsRef<str>, T: AsRef<str>>(input: &Input, cases: &[(N, T, u64)]) {
    let mut engines = all_engines();
    let mut failures = Vec::new();
    for (name, text, expected) in cases {
        let (name, text) = (name.as_ref(), text.as_ref());
        let prog = asm(name, text);
        for f in check_r0(&mut engines, name, &prog, input, *expected) {
            let mut program = text.replace('\n', "; ");
            if program.len() > 300 {
                program = format!("{}... ({} lines)", &program[..300], text.lines().count());
            }
            failures.push(format!("{f}\n    program: {program}"));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

fn check_none<N: AsRef<str>, T: AsRef<str>>(cases: &[(N, T, u64)]) {
    check(&Input::none(), cases);
}

/// 1e692f09e091 (RV64, found by Jitterbug): ALU32 add/sub/neg/lsh/rsh/arsh left their
/// result sign-extended (`addw` and friends sign-extend) instead of zero-extended. Every
/// 32-bit ALU result is zero-extended, so bit 31 set in the result must leave the upper 32
/// bits zero.
#[test]
fn r_1e692f09e091() {
    check_none(&[
        // 0x7fffffff + 1 = 0x80000000, zero-extended: the upper half is 0.
        ("add K, upper half", "r0 = 0x7fffffff ll\nw0 += 1\nr0 >>= 32\nexit", 0),
        ("add K, full", "r0 = 0x7fffffff ll\nw0 += 1\nexit", 0x8000_0000),
        ("add X, full", "r0 = 0x7fffffff ll\nr1 = 1\nw0 += w1\nexit", 0x8000_0000),
        // 0 - 1 = 0xffffffff.
        ("sub K, upper half", "r0 = 0\nw0 -= 1\nr0 >>= 32\nexit", 0),
        ("sub K, full", "r0 = 0\nw0 -= 1\nexit", 0xffff_ffff),
        ("sub X, full", "r0 = 0\nr1 = 1\nw0 -= w1\nexit", 0xffff_ffff),
        // -1 = 0xffffffff.
        ("neg, upper half", "w0 = 1\nw0 = -w0\nr0 >>= 32\nexit", 0),
        ("neg, full", "w0 = 1\nw0 = -w0\nexit", 0xffff_ffff),
        // 1 << 31 = 0x80000000.
        ("lsh K, upper half", "w0 = 1\nw0 <<= 31\nr0 >>= 32\nexit", 0),
        ("lsh K, full", "w0 = 1\nw0 <<= 31\nexit", 0x8000_0000),
        ("lsh X, full", "w0 = 1\nw1 = 31\nw0 <<= w1\nexit", 0x8000_0000),
        // A logical right shift can only leave bit 31 set when it shifts by 0 (`srlw` by 0
        // sign-extends): 0xffffffff >> 0 = 0xffffffff. The X form shifts by 32 & 31 = 0.
        ("rsh K 0, full", "r0 = -1\nw0 >>= 0\nexit", 0xffff_ffff),
        ("rsh X 32, full", "r0 = -1\nr1 = 32\nw0 >>= w1\nexit", 0xffff_ffff),
        ("rsh K 0, upper half", "r0 = -1\nw0 >>= 0\nr0 >>= 32\nexit", 0),
        // 0x80000000 s>> 1 = 0xc0000000 (as s32: -2^31 / 2 = -2^30).
        ("arsh K, full", "w0 = 0x80000000\nw0 s>>= 1\nexit", 0xc000_0000),
        ("arsh X, full", "w0 = 0x80000000\nw1 = 1\nw0 s>>= w1\nexit", 0xc000_0000),
        ("arsh K, upper half", "w0 = 0x80000000\nw0 s>>= 1\nr0 >>= 32\nexit", 0),
    ]);
}

/// fe121ee531d1 (RV64): ALU32 and/or/xor did not clear the upper 32 bits of dst (they are
/// done with 64-bit `and`/`or`/`xor`). `r0 = -1` sets all 64 bits; any 32-bit op must
/// leave only the low 32.
#[test]
fn r_fe121ee531d1() {
    check_none(&[
        ("and K, upper half", "r0 = -1\nw0 &= -1\nr0 >>= 32\nexit", 0),
        ("and K, full", "r0 = -1\nw0 &= -1\nexit", 0xffff_ffff),
        ("and X, full", "r0 = -1\nr1 = -1\nw0 &= w1\nexit", 0xffff_ffff),
        ("or K, full", "r0 = -1\nw0 |= 0\nexit", 0xffff_ffff),
        ("or X, full", "r0 = -1\nr1 = 0\nw0 |= w1\nexit", 0xffff_ffff),
        // 0xffffffff ^ 0x7fffffff = 0x80000000.
        ("xor K, full", "r0 = -1\nw0 ^= 0x7fffffff\nexit", 0x8000_0000),
        ("xor X, full", "r0 = -1\nr1 = 0\nw0 ^= w1\nexit", 0xffff_ffff),
        // src's upper half must not leak in either: (r1 = 0xffffffff00000000) | 0 -> 0.
        ("or X, src upper half", "r0 = 0\nr1 = 0xffffffff00000000 ll\nw0 |= w1\nexit", 0),
    ]);
}

/// The value most shift tests use: upper and lower halves both with bit 31 set.
const V: &str = "0x8000000080000001";

/// 6fa632e719ee (per the notes, with 68a8357ec15b: "shift by 0 mishandled"; to my
/// recollection this one is the x86-32 JIT's ALU64 LSH/RSH/ARSH **K** shift by 0): a shift
/// by 0 leaves a 64-bit value unchanged, and a 32-bit one zero-extends the low half.
#[test]
fn r_6fa632e719ee() {
    let cases: Vec<(String, String, u64)> = [("lsh", "<<="), ("rsh", ">>="), ("arsh", "s>>=")]
        .into_iter()
        .flat_map(|(name, op)| {
            [
                (format!("{name} 64 K 0"), format!("r0 = {V} ll\nr0 {op} 0\nexit"), 0x8000_0000_8000_0001),
                (
                    format!("{name} 64 K 0, in r7"),
                    format!("r7 = {V} ll\nr7 {op} 0\nr0 = r7\nexit"),
                    0x8000_0000_8000_0001,
                ),
                (format!("{name} 32 K 0"), format!("r0 = {V} ll\nw0 {op} 0\nexit"), 0x8000_0001),
            ]
        })
        .collect();
    check_none(&cases);
}

/// 68a8357ec15b (per the notes, with 6fa632e719ee: "shift by 0 mishandled"; to my
/// recollection this one is the x86-32 JIT's ALU64 LSH/RSH/ARSH **X** shift by 0): the
/// count comes from a register, masked to 63 (64-bit) or 31 (32-bit), so 0, 64 and 2^32
/// all shift a 64-bit value by 0, and 0 and 32 shift a 32-bit one by 0.
#[test]
fn r_68a8357ec15b() {
    let mut cases: Vec<(String, String, u64)> = Vec::new();
    for (name, op) in [("lsh", "<<="), ("rsh", ">>="), ("arsh", "s>>=")] {
        for count in ["0", "64", "0x100000000"] {
            cases.push((
                format!("{name} 64 X by {count}"),
                format!("r0 = {V} ll\nr1 = {count} ll\nr0 {op} r1\nexit"),
                0x8000_0000_8000_0001,
            ));
        }
        cases.push((
            format!("{name} 64 X by 0, in r8 by r9"),
            format!("r8 = {V} ll\nr9 = 0\nr8 {op} r9\nr0 = r8\nexit"),
            0x8000_0000_8000_0001,
        ));
        for count in ["0", "32", "0x100000000"] {
            cases.push((
                format!("{name} 32 X by {count}"),
                format!("r0 = {V} ll\nr1 = {count} ll\nw0 {op} w1\nexit"),
                0x8000_0001,
            ));
        }
    }
    check_none(&cases);
}

/// 80f1f8503635: JMP32 JSET X tested the upper 32 bits too. JMP32 looks at the low 32 bits
/// only: with r1 = r2 = 1 << 32 their low halves share no bit, so `if w1 & w2` must not
/// jump. Each program returns 1 if the jump is taken, 0 if not.
#[test]
fn r_80f1f8503635() {
    check_none(&[
        (
            "jset32 X, bits only above 32",
            "r1 = 0x100000000 ll\nr2 = 0x100000000 ll\nr0 = 1\nif w1 & w2 goto +1\nr0 = 0\nexit",
            0,
        ),
        (
            "jset32 X, disjoint low halves, full upper halves",
            "r1 = 0xffffffff0000ff00 ll\nr2 = 0xffffffff000000ff ll\nr0 = 1\nif w1 & w2 goto +1\nr0 = 0\nexit",
            0,
        ),
        // The same registers compared with 64-bit JSET share bit 32: taken.
        (
            "jset64 X, bit 32",
            "r1 = 0x100000000 ll\nr2 = 0x100000000 ll\nr0 = 1\nif r1 & r2 goto +1\nr0 = 0\nexit",
            1,
        ),
        // Control: a shared low bit is taken in 32-bit.
        (
            "jset32 X, bit 0",
            "r1 = 0x100000001 ll\nr2 = 0x100000001 ll\nr0 = 1\nif w1 & w2 goto +1\nr0 = 0\nexit",
            1,
        ),
        // K form: the low half of r1 is 0, so `w1 & 0xffffffff` is 0.
        ("jset32 K -1, bits only above 32", "r1 = 0x100000000 ll\nr0 = 1\nif w1 & -1 goto +1\nr0 = 0\nexit", 0),
        // 64-bit K sign-extends -1 to all ones: bit 32 is shared.
        ("jset64 K -1, bit 32", "r1 = 0x100000000 ll\nr0 = 1\nif r1 & -1 goto +1\nr0 = 0\nexit", 1),
    ]);
}

/// 50fe7ebb6475: JSET clobbered its dst register (it computed `dst & src` into dst). A
/// conditional jump writes no register: dst and src keep all 64 bits, on both paths and in
/// both widths. The not-taken path adds 1 to the returned register.
#[test]
fn r_50fe7ebb6475() {
    let v = 0xff00_ff00_ff00_ff00u64;
    check_none(&[
        // v & 0x0ff0 = 0x0f00: taken, r1 returned unchanged.
        (
            "jset64 X taken, dst",
            "r1 = 0xff00ff00ff00ff00 ll\nr2 = 0x0ff0\nif r1 & r2 goto +1\nr1 += 1\nr0 = r1\nexit",
            v,
        ),
        // v & 0x00ff = 0: not taken, r1 + 1.
        (
            "jset64 X not taken, dst",
            "r1 = 0xff00ff00ff00ff00 ll\nr2 = 0x00ff\nif r1 & r2 goto +1\nr1 += 1\nr0 = r1\nexit",
            v + 1,
        ),
        (
            "jset64 X taken, src",
            "r1 = 0xff00ff00ff00ff00 ll\nr2 = 0x0ff0\nif r1 & r2 goto +1\nr2 += 1\nr0 = r2\nexit",
            0x0ff0,
        ),
        (
            "jset64 K taken, dst",
            "r1 = 0xff00ff00ff00ff00 ll\nif r1 & 0x0ff0 goto +1\nr1 += 1\nr0 = r1\nexit",
            v,
        ),
        (
            "jset64 K not taken, dst",
            "r1 = 0xff00ff00ff00ff00 ll\nif r1 & 0x00ff goto +1\nr1 += 1\nr0 = r1\nexit",
            v + 1,
        ),
        // JMP32: dst keeps its upper half too (no zero-extension of dst).
        (
            "jset32 X taken, dst",
            "r1 = 0xff00ff00ff00ff00 ll\nr2 = 0x0ff0\nif w1 & w2 goto +1\nr1 += 1\nr0 = r1\nexit",
            v,
        ),
        (
            "jset32 X not taken, dst",
            "r1 = 0xff00ff00ff00ff00 ll\nr2 = 0x00ff\nif w1 & w2 goto +1\nr1 += 1\nr0 = r1\nexit",
            v + 1,
        ),
        (
            "jset32 X taken, src upper half",
            "r1 = 0xff00ff00ff00ff00 ll\nr2 = 0xabcd000000000ff0 ll\nif w1 & w2 goto +1\nr2 += 1\nr0 = r2\nexit",
            0xabcd_0000_0000_0ff0,
        ),
        (
            "jset32 K taken, dst",
            "r1 = 0xff00ff00ff00ff00 ll\nif w1 & 0x0ff0 goto +1\nr1 += 1\nr0 = r1\nexit",
            v,
        ),
        // The same register on both sides.
        (
            "jset64 X same register",
            "r1 = 0xff00ff00ff00ff00 ll\nif r1 & r1 goto +1\nr1 += 1\nr0 = r1\nexit",
            v,
        ),
    ]);
}

/// 4178417cc535: DW loads and stores with an offset beyond the 12-bit signed immediate of
/// RISC-V loads and stores (-2048..2047) were emitted wrongly. The stack reaches only
/// r10 - 512, so the big offsets are in a 4096-byte context (R1): +0x7f8 still fits,
/// +0x800 is the first that does not, +0x900 and +0xff8 are well beyond. Each store is
/// also read back through a pointer computed by hand, so a store and a load that are
/// wrong in the same way cannot hide each other; the context's final bytes are compared
/// across engines as well.
#[test]
fn r_4178417cc535() {
    // Stack: the whole 512 bytes are reachable with a 12-bit offset from r10, but the
    // deepest slots are the classic big offsets for it.
    check_none(&[
        (
            "stack DW at r10-0x1f8",
            "r1 = 0x0123456789abcdef ll\n*(u64 *)(r10 - 0x1f8) = r1\nr0 = *(u64 *)(r10 - 0x1f8)\nexit",
            0x0123_4567_89ab_cdef,
        ),
        (
            "stack DW at r10-0x1f8, read via r3 = r10 - 0x1f8",
            "r1 = 0x0123456789abcdef ll\n*(u64 *)(r10 - 0x1f8) = r1\nr3 = r10\nr3 += -0x1f8\nr0 = *(u64 *)(r3 + 0)\nexit",
            0x0123_4567_89ab_cdef,
        ),
        (
            "stack DW at r10-0x200, written via r3",
            "r1 = 0xfedcba9876543210 ll\nr3 = r10\nr3 += -0x200\n*(u64 *)(r3 + 0) = r1\nr0 = *(u64 *)(r10 - 0x200)\nexit",
            0xfedc_ba98_7654_3210,
        ),
        // A DW immediate store sign-extends: -2048 -> 0xfffffffffffff800.
        (
            "stack DW imm at r10-0x1f8",
            "*(u64 *)(r10 - 0x1f8) = -2048\nr0 = *(u64 *)(r10 - 0x1f8)\nexit",
            0xffff_ffff_ffff_f800,
        ),
    ]);
    // Context of 4096 bytes, all 0xa5.
    let ctx = Input::with_ctx(vec![0xa5; 4096]);
    let mut cases: Vec<(String, String, u64)> = Vec::new();
    for off in [0x7f8u32, 0x800, 0x900, 0xff8] {
        let off1 = off + 1;
        cases.push((
            format!("ctx DW store/load at r1+{off:#x}"),
            format!("r2 = 0x0123456789abcdef ll\n*(u64 *)(r1 + {off:#x}) = r2\nr0 = *(u64 *)(r1 + {off:#x})\nexit"),
            0x0123_4567_89ab_cdef,
        ));
        cases.push((
            format!("ctx DW store at r1+{off:#x}, read via r3 = r1 + {off:#x}"),
            format!(
                "r2 = 0x0123456789abcdef ll\n*(u64 *)(r1 + {off:#x}) = r2\nr3 = r1\nr3 += {off:#x}\nr0 = *(u64 *)(r3 + 0)\nexit"
            ),
            0x0123_4567_89ab_cdef,
        ));
        cases.push((
            format!("ctx DW store via r3 = r1 + {off:#x}, load at r1+{off:#x}"),
            format!(
                "r2 = 0x0123456789abcdef ll\nr3 = r1\nr3 += {off:#x}\n*(u64 *)(r3 + 0) = r2\nr0 = *(u64 *)(r1 + {off:#x})\nexit"
            ),
            0x0123_4567_89ab_cdef,
        ));
        // Untouched bytes: 8 x 0xa5.
        cases.push((
            format!("ctx DW load of untouched r1+{off:#x}"),
            format!("r0 = *(u64 *)(r1 + {off:#x})\nexit"),
            0xa5a5_a5a5_a5a5_a5a5,
        ));
        // A DW store of an immediate sign-extends it.
        cases.push((
            format!("ctx DW imm store at r1+{off:#x}"),
            format!("*(u64 *)(r1 + {off:#x}) = -2048\nr3 = r1\nr3 += {off:#x}\nr0 = *(u64 *)(r3 + 0)\nexit"),
            0xffff_ffff_ffff_f800,
        ));
        // Narrow accesses at the same offsets: a byte store at +1 changes only byte 1
        // (bytes a5 00 a5 a5 a5 a5 a5 a5, little-endian).
        cases.push((
            format!("ctx B store at r1+{off1:#x}"),
            format!("*(u8 *)(r1 + {off1:#x}) = 0\nr0 = *(u64 *)(r1 + {off:#x})\nexit"),
            0xa5a5_a5a5_a5a5_00a5,
        ));
        cases.push((
            format!("ctx W load at r1+{off:#x}"),
            format!("r0 = *(u32 *)(r1 + {off:#x})\nexit"),
            0xa5a5_a5a5,
        ));
        // 0xa5a5 as s16 is negative: sign-extended.
        cases.push((
            format!("ctx H sign-extending load at r1+{off:#x}"),
            format!("r0 = *(s16 *)(r1 + {off:#x})\nexit"),
            0xffff_ffff_ffff_a5a5,
        ));
        // An atomic at the big offset: 0xa5a5a5a5a5a5a5a5 + 0x0101010101010101.
        cases.push((
            format!("ctx DW atomic add at r1+{off:#x}"),
            format!("r2 = 0x0101010101010101 ll\nlock *(u64 *)(r1 + {off:#x}) += r2\nr0 = *(u64 *)(r1 + {off:#x})\nexit"),
            0xa6a6_a6a6_a6a6_a6a6,
        ));
    }
    // A negative offset from a pointer into the middle: (r1 + 0xff8) - 0x900 = r1 + 0x6f8.
    cases.push((
        "ctx DW store at (r1 + 0xff8) - 0x900".into(),
        "r2 = 0x1122334455667788 ll\nr3 = r1\nr3 += 0xff8\n*(u64 *)(r3 - 0x900) = r2\nr0 = *(u64 *)(r1 + 0x6f8)\nexit"
            .into(),
        0x1122_3344_5566_7788,
    ));
    check(&ctx, &cases);
}

/// 2f1b0d3d7331 (RV64): the return value was not sign-extended into a0. R0 is returned
/// whole (64 bits); the RISC-V ABI wants a0 to be its low 32 bits sign-extended, which the
/// jit engine checks separately (an `abi` fault). 0x80000000 is the value where the two
/// differ.
#[test]
fn r_2f1b0d3d7331() {
    check_none(&[
        // MOV32 zero-extends: R0 = 0x80000000, a0 must be 0xffffffff80000000.
        ("w0 = 0x80000000", "w0 = 0x80000000\nexit", 0x8000_0000),
        ("r0 = 0x80000000 ll", "r0 = 0x80000000 ll\nexit", 0x8000_0000),
        // MOV64 sign-extends its immediate.
        ("r0 = -2147483648", "r0 = -2147483648\nexit", 0xffff_ffff_8000_0000),
        ("w0 = -1", "w0 = -1\nexit", 0xffff_ffff),
        ("r0 = -1", "r0 = -1\nexit", u64::MAX),
        ("r0 = 0x180000000 ll", "r0 = 0x180000000 ll\nexit", 0x1_8000_0000),
        ("r0 = 0x7fffffff ll", "r0 = 0x7fffffff ll\nexit", 0x7fff_ffff),
        // Computed rather than loaded.
        ("w0 = 0x7fffffff; w0 += 1", "w0 = 0x7fffffff\nw0 += 1\nexit", 0x8000_0000),
    ]);
}

/// 39491867ace5: R0 was not zero-extended after a 32-bit CMPXCHG (`lr.w` sign-extends
/// what it loads). After `w0 = cmpxchg32_32(..)` R0 is the old 32-bit value
/// zero-extended, whether the exchange happened or not; the compare uses R0's low 32 bits
/// only. Other 32-bit atomics that return the old value (`amo*.w` sign-extends too) are
/// checked the same way.
#[test]
fn r_39491867ace5() {
    let mem = "r1 = 0x80000000 ll\n*(u64 *)(r10 - 8) = r1\n";
    let cases = [
        // Success: memory 0x80000000 equals w0; memory becomes 5, R0 = 0x80000000.
        (
            "cmpxchg32 success: r0",
            "w0 = 0x80000000\nw1 = 5\nw0 = cmpxchg32_32(r10 - 8, w0, w1)\nexit",
            0x8000_0000,
        ),
        (
            "cmpxchg32 success: memory",
            "w0 = 0x80000000\nw1 = 5\nw0 = cmpxchg32_32(r10 - 8, w0, w1)\nr0 = *(u64 *)(r10 - 8)\nexit",
            5,
        ),
        // R0 = 0xffffffff80000000: its low half still equals memory, so this succeeds.
        (
            "cmpxchg32 success, r0 sign-extended: r0",
            "r0 = -2147483648\nw1 = 5\nw0 = cmpxchg32_32(r10 - 8, w0, w1)\nexit",
            0x8000_0000,
        ),
        (
            "cmpxchg32 success, r0 sign-extended: memory",
            "r0 = -2147483648\nw1 = 5\nw0 = cmpxchg32_32(r10 - 8, w0, w1)\nr0 = *(u64 *)(r10 - 8)\nexit",
            5,
        ),
        // Failure: 0 differs from 0x80000000; memory unchanged, R0 = old value.
        ("cmpxchg32 failure: r0", "w0 = 0\nw1 = 5\nw0 = cmpxchg32_32(r10 - 8, w0, w1)\nexit", 0x8000_0000),
        (
            "cmpxchg32 failure: memory",
            "w0 = 0\nw1 = 5\nw0 = cmpxchg32_32(r10 - 8, w0, w1)\nr0 = *(u64 *)(r10 - 8)\nexit",
            0x8000_0000,
        ),
        // 64-bit contrast: memory 0x0000000080000000 differs from 0xffffffff80000000.
        (
            "cmpxchg64 failure: r0",
            "r0 = -2147483648\nr1 = 5\nr0 = cmpxchg_64(r10 - 8, r0, r1)\nexit",
            0x8000_0000,
        ),
        // The other fetching 32-bit atomics: old value zero-extended into src.
        (
            "fetch_add32: src",
            "w1 = 1\nw1 = atomic_fetch_add((u32 *)(r10 - 8), w1)\nr0 = r1\nexit",
            0x8000_0000,
        ),
        // memory: 0x80000000 + 1.
        (
            "fetch_add32: memory",
            "w1 = 1\nw1 = atomic_fetch_add((u32 *)(r10 - 8), w1)\nr0 = *(u64 *)(r10 - 8)\nexit",
            0x8000_0001,
        ),
        ("fetch_or32: src", "w1 = 1\nw1 = atomic_fetch_or((u32 *)(r10 - 8), w1)\nr0 = r1\nexit", 0x8000_0000),
        (
            "fetch_and32: src",
            "w1 = -1\nw1 = atomic_fetch_and((u32 *)(r10 - 8), w1)\nr0 = r1\nexit",
            0x8000_0000,
        ),
        (
            "fetch_xor32: src",
            "w1 = 0\nw1 = atomic_fetch_xor((u32 *)(r10 - 8), w1)\nr0 = r1\nexit",
            0x8000_0000,
        ),
        ("xchg32: src", "w1 = 7\nw1 = xchg32_32(r10 - 8, w1)\nr0 = r1\nexit", 0x8000_0000),
    ];
    let cases: Vec<(&str, String, u64)> =
        cases.into_iter().map(|(n, t, e)| (n, format!("{mem}{t}"), e)).collect();
    check_none(&cases);
}

/// 489553dd13a8 (RV64): `auipc`+`jalr` was used for offsets it cannot encode (near
/// ±2^31). That distance is out of reach of a test (2 GiB of code), but the same far-jump
/// machinery is exercised at reachable distances: a conditional jump over more than 4 KiB
/// (beyond a B-type branch: 1500 `r0 += 1`), a `gotol` over more than 1 MiB (beyond a
/// `jal`: 300000 `r0 += 1`, 1.2 MB in 4-byte encodings; jitdiff's JIT emits no compressed
/// forms, a JIT using RVC would need twice as many), and a conditional jump over 16001
/// `be64` (on a JIT without Zbb each byte swap is some 30 instructions, so well beyond
/// 1 MiB: beyond an inverted branch over a `jal`). Forward and backward, taken and not
/// taken.
#[test]
fn r_489553dd13a8() {
    let adds = |n: usize| "r0 += 1\n".repeat(n);
    let swaps = |n: usize| "r0 = be64 r0\n".repeat(n);
    let mut cases: Vec<(String, String, u64)> = Vec::new();
    // r1 = 0 takes every `if r1 == 0` and skips every `if r1 != 0`; r1 = 1 the opposite.
    for x in [0u64, 1] {
        let z = x == 0;
        // Forward, conditional, over 1500 adds: taken (r1 = 0) skips them.
        cases.push((
            format!("forward `if r1 == 0` over 1500 adds, r1 = {x}"),
            format!("r0 = 0\nr1 = {x}\nif r1 == 0 goto far\n{}far:\nexit", adds(1500)),
            if z { 0 } else { 1500 },
        ));
        // Backward, conditional, over 1500 adds: taken (r1 = 0) runs them; else 7.
        cases.push((
            format!("backward `if r1 == 0` over 1500 adds, r1 = {x}"),
            format!(
                "r0 = 0\nr1 = {x}\ngoto check\nback:\n{}exit\ncheck:\nif r1 == 0 goto back\nr0 = 7\nexit",
                adds(1500)
            ),
            if z { 1500 } else { 7 },
        ));
        // Forward gotol over 300000 adds, reached when r1 = 0; r1 = 1 runs the adds.
        cases.push((
            format!("forward gotol over 300000 adds, r1 = {x}"),
            format!(
                "r0 = 0\nr1 = {x}\nif r1 == 0 goto jump\ngoto near\njump:\ngotol far\nnear:\n{}far:\nexit",
                adds(300_000)
            ),
            if z { 0 } else { 300_000 },
        ));
        // Backward gotol over 300000 adds, taken when r1 = 0; r1 = 1 returns 7.
        cases.push((
            format!("backward gotol over 300000 adds, r1 = {x}"),
            format!(
                "r0 = 0\nr1 = {x}\ngotol check\nback:\n{}exit\ncheck:\nif r1 != 0 goto done\ngotol back\ndone:\nr0 = 7\nexit",
                adds(300_000)
            ),
            if z { 300_000 } else { 7 },
        ));
        // Forward, conditional, over 16001 byte swaps (an odd number: when they run, R0
        // ends up swapped once).
        cases.push((
            format!("forward `if r1 == 0` over 16001 be64, r1 = {x}"),
            format!("r0 = 0x0102030405060708 ll\nr1 = {x}\nif r1 == 0 goto far\n{}far:\nexit", swaps(16001)),
            if z { 0x0102_0304_0506_0708 } else { 0x0807_0605_0403_0201 },
        ));
        // Backward, conditional, over the same: taken (r1 = 0) swaps once; else adds 1.
        cases.push((
            format!("backward `if r1 == 0` over 16001 be64, r1 = {x}"),
            format!(
                "r0 = 0x0102030405060708 ll\nr1 = {x}\ngoto check\nback:\n{}exit\ncheck:\nif r1 == 0 goto back\nr0 += 1\nexit",
                swaps(16001)
            ),
            if z { 0x0807_0605_0403_0201 } else { 0x0102_0304_0506_0709 },
        ));
    }
    check_none(&cases);
}

/// Likely slip (notes): `emit_imm` rounding when bit 11 of a 12-bit chunk is set (`addi`
/// sign-extends its 12 bits, so `lui` must round up), and the 64-bit cases around it.
/// Each constant is loaded with `lddw` into several registers, with 32-bit `w0 = V` (its
/// low 32 bits, zero-extended) and, where it fits, 64-bit `r0 = V` (sign-extended).
#[test]
fn slip_emit_imm() {
    // (constant, its low 32 bits, as written by hand)
    let values: [(&str, u64, u64); 14] = [
        ("0x800", 0x800, 0x800),
        ("0x7ffff800", 0x7fff_f800, 0x7fff_f800),
        ("-2048", 0xffff_ffff_ffff_f800, 0xffff_f800),
        ("0x80000000", 0x8000_0000, 0x8000_0000),
        ("0xfffffffffffff800", 0xffff_ffff_ffff_f800, 0xffff_f800),
        ("0x8000000000000000", 0x8000_0000_0000_0000, 0),
        ("0x7fffffffffffffff", 0x7fff_ffff_ffff_ffff, 0xffff_ffff),
        ("0x7ff", 0x7ff, 0x7ff),
        ("0xfff", 0xfff, 0xfff),
        ("0x7fffffff", 0x7fff_ffff, 0x7fff_ffff),
        ("0xffffffff", 0xffff_ffff, 0xffff_ffff),
        ("0x80000800", 0x8000_0800, 0x8000_0800),
        ("0x7ffff8007ffff800", 0x7fff_f800_7fff_f800, 0x7fff_f800),
        ("0xfffff80000000800", 0xffff_f800_0000_0800, 0x800),
    ];
    let mut cases: Vec<(String, String, u64)> = Vec::new();
    for (text, v, low) in values {
        for r in [0, 1, 5, 6, 9] {
            cases.push((format!("r{r} = {text} ll"), format!("r{r} = {text} ll\nr0 = r{r}\nexit"), v));
        }
        // `w0 = V` takes the low 32 bits (the assembler wants them written as 32 bits).
        cases.push((format!("w0 = low 32 bits of {text}"), format!("r0 = -1\nw0 = {low:#x}\nexit"), low));
    }
    // 64-bit moves of immediates sign-extend them.
    for (k, v) in [
        ("0x800", 0x800u64),
        ("0x7ffff800", 0x7fff_f800),
        ("-2048", 0xffff_ffff_ffff_f800),
        ("-2147483648", 0xffff_ffff_8000_0000),
        ("2047", 0x7ff),
        ("-2049", 0xffff_ffff_ffff_f7ff),
    ] {
        cases.push((format!("r0 = {k}"), format!("r0 = {k}\nexit"), v));
        cases.push((format!("r7 = {k}"), format!("r7 = {k}\nr0 = r7\nexit"), v));
    }
    // ALU K forms that need the constant in a register.
    for (text, v) in [
        ("r0 = 1\nr0 += 0x7ffff800", 0x7fff_f801u64),
        ("r0 = 1\nr0 += 0x800", 0x801),
        ("r0 = 0\nr0 ^= -2048", 0xffff_ffff_ffff_f800),
        ("r0 = -1\nr0 &= 0x7ffff800", 0x7fff_f800),
        ("r0 = -1\nr0 &= -2048", 0xffff_ffff_ffff_f800),
        ("w0 = 0x7ffff800\nw0 += 0x800", 0x8000_0000),
        ("r0 = 0x7ffff800\nr0 += 0x800", 0x8000_0000),
        ("r0 = 3\nr0 *= 0x800", 0x1800),
        // 0x7ffff800 >> 11: bits 11..30 set, so twenty ones.
        ("r0 = 0x7ffff800\nr0 /= 0x800", 0xfffff),
        ("r0 = 0x7ffff801\nr0 %= 0x800", 1),
    ] {
        cases.push((text.replace('\n', "; "), format!("{text}\nexit"), v));
    }
    check_none(&cases);
}

/// Likely slip (notes): SUB K with -2048, which a JIT may turn into `addi dst, dst, 2048`
/// (out of `addi`'s range, -2048..2047), and its neighbours.
#[test]
fn slip_sub_k_minus_2048() {
    check_none(&[
        ("r0 = 5; r0 -= -2048", "r0 = 5\nr0 -= -2048\nexit", 2053),
        ("w0 = 5; w0 -= -2048", "w0 = 5\nw0 -= -2048\nexit", 2053),
        ("r0 = 0; r0 -= 2048", "r0 = 0\nr0 -= 2048\nexit", 0xffff_ffff_ffff_f800),
        ("w0 = 0; w0 -= 2048", "w0 = 0\nw0 -= 2048\nexit", 0xffff_f800),
        ("r0 = 0; r0 -= 2047", "r0 = 0\nr0 -= 2047\nexit", 0xffff_ffff_ffff_f801),
        ("r0 = 0; r0 -= -2047", "r0 = 0\nr0 -= -2047\nexit", 2047),
        ("r0 = 0; r0 -= -2049", "r0 = 0\nr0 -= -2049\nexit", 2049),
        ("r0 = 0; r0 += -2048", "r0 = 0\nr0 += -2048\nexit", 0xffff_ffff_ffff_f800),
        ("r0 = 0; r0 += 2048", "r0 = 0\nr0 += 2048\nexit", 2048),
        // 0 - (-2^31) = 2^31 in 64 bits (the immediate is sign-extended first).
        ("r0 = 0; r0 -= i32::MIN", "r0 = 0\nr0 -= -2147483648\nexit", 0x8000_0000),
        ("w0 = 0; w0 -= i32::MIN", "w0 = 0\nw0 -= -2147483648\nexit", 0x8000_0000),
        ("r7 = 5; r7 -= -2048", "r7 = 5\nr7 -= -2048\nr0 = r7\nexit", 2053),
    ]);
}

/// Likely slip (notes): a JMP32 unsigned compare with a K immediate must compare with the
/// immediate's 32 bits (zero-extended), not with the immediate sign-extended to 64 bits;
/// and dst's upper half must not matter. 1 if taken, 0 if not.
#[test]
fn slip_jmp32_unsigned_k() {
    let j = |setup: &str, cond: &str| format!("{setup}\nr0 = 1\nif {cond} goto +1\nr0 = 0\nexit");
    let cases = [
        // 0xffffffff > 0xfffffffe.
        ("w1 = -1; w1 > -2", j("w1 = -1", "w1 > -2"), 1),
        ("r1 = -1; w1 > -2", j("r1 = -1", "w1 > -2"), 1),
        // 0xfffffffe > 0xfffffffe is false, whatever the upper half.
        ("r1 = 0x1fffffffe; w1 > -2", j("r1 = 0x1fffffffe ll", "w1 > -2"), 0),
        ("r1 = 0x1fffffffe; w1 >= -2", j("r1 = 0x1fffffffe ll", "w1 >= -2"), 1),
        // 5 < 0xfffffffe.
        ("r1 = 0xffffffff00000005; w1 < -2", j("r1 = 0xffffffff00000005 ll", "w1 < -2"), 1),
        ("r1 = 0xffffffff00000005; w1 <= -2", j("r1 = 0xffffffff00000005 ll", "w1 <= -2"), 1),
        ("r1 = 5; w1 >= -2048", j("r1 = 5", "w1 >= -2048"), 0),
        ("r1 = 5; w1 > -2048", j("r1 = 5", "w1 > -2048"), 0),
        // 0xfffff800 vs -2048 = 0xfffff800 and vs 2047.
        ("w1 = -2048; w1 >= -2048", j("w1 = -2048", "w1 >= -2048"), 1),
        ("w1 = -2048; w1 > 2047", j("w1 = -2048", "w1 > 2047"), 1),
        ("w1 = -2048; w1 <= -1", j("w1 = -2048", "w1 <= -1"), 1),
        ("r1 = 0x1fffff800; w1 == -2048", j("r1 = 0x1fffff800 ll", "w1 == -2048"), 1),
        ("r1 = 0x1fffff800; w1 != -2048", j("r1 = 0x1fffff800 ll", "w1 != -2048"), 0),
        // Signed 32-bit with the same values: -2048 s< 5.
        ("w1 = -2048; w1 s< 5", j("w1 = -2048", "w1 s< 5"), 1),
        // 64-bit for contrast: the immediate is sign-extended. 0xffffffff > 0xff..fe false.
        ("r1 = 0xffffffff; r1 > -2", j("r1 = 0xffffffff ll", "r1 > -2"), 0),
        ("r1 = -1; r1 > -2", j("r1 = -1", "r1 > -2"), 1),
    ];
    check_none(&cases);
}

/// Likely slip (notes): `lw` (sign-extending) where `lwu` is needed. Loads of B/H/W
/// zero-extend; only the MEMSX forms sign-extend.
#[test]
fn slip_lw_for_lwu() {
    check_none(&[
        (
            "W load of 0x80000000",
            "r1 = 0xffffffff80000000 ll\n*(u64 *)(r10 - 8) = r1\nr0 = *(u32 *)(r10 - 8)\nexit",
            0x8000_0000,
        ),
        ("W load of -1", "*(u32 *)(r10 - 4) = -1\nr0 = *(u32 *)(r10 - 4)\nexit", 0xffff_ffff),
        ("H load of -1", "*(u16 *)(r10 - 2) = -1\nr0 = *(u16 *)(r10 - 2)\nexit", 0xffff),
        ("B load of -1", "*(u8 *)(r10 - 1) = -1\nr0 = *(u8 *)(r10 - 1)\nexit", 0xff),
        ("W sign-extending load of -1", "*(u32 *)(r10 - 4) = -1\nr0 = *(s32 *)(r10 - 4)\nexit", u64::MAX),
        // A 64-bit value built from a zero-extended W load: 0xffffffff << 32 | 0xffffffff.
        (
            "two W loads combined",
            "*(u64 *)(r10 - 8) = -1\nr0 = *(u32 *)(r10 - 8)\nr1 = *(u32 *)(r10 - 4)\nr1 <<= 32\nr0 |= r1\nexit",
            u64::MAX,
        ),
        (
            "W load of 0x80000000, upper half",
            "*(u32 *)(r10 - 4) = 0x80000000\nr0 = *(u32 *)(r10 - 4)\nr0 >>= 32\nexit",
            0,
        ),
    ]);
}

/// Likely slip (notes): a branch offset not adjusted for the instructions a JIT inserts
/// (constants that need several machine instructions, 32-bit compares that need
/// zero-extension first). Jumps forward and backward over such code must land on the
/// right BPF instruction.
#[test]
fn slip_branch_over_expanded_code() {
    // Between the jump and its target: an lddw of a full 64-bit constant (two slots,
    // several machine instructions) and K forms whose immediates need `lui`+`addi`.
    let body = "r2 = 0x123456789abcdef0 ll\nr2 += 0x7ffff800\nr2 ^= -2049\n";
    check_none(&[
        (
            "forward jump32 over expanded code, taken",
            // +5 slots: the lddw (2), two ALU ops, `r0 = 2`.
            format!("r0 = 1\nr1 = 0x100000000 ll\nif w1 == 0 goto +5\n{body}r0 = 2\nexit"),
            1,
        ),
        (
            "forward jump32 over expanded code, not taken",
            format!("r0 = 1\nr1 = 0x100000001 ll\nif w1 == 0 goto +5\n{body}r0 = 2\nexit"),
            2,
        ),
        // A loop: r0 counts 3 iterations, jumping back over the expanded code each time.
        (
            "backward loop over expanded code",
            format!("r0 = 0\nr3 = 3\nloop:\n{body}r0 += 1\nr3 -= 1\nif w3 > 0x7ffff800 goto out\nif w3 != 0 goto loop\nout:\nexit"),
            3,
        ),
    ]);
}
