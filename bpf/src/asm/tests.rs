//! Tests of the assembler and printer together.

use super::*;
use crate::insn::{AluOp, AtomicOp, ByteOrder, Call, Cond, Insn, Operand, Reg, Size, SxBits, Width};
use crate::program::ProgramError;
use crate::raw::decode;

fn one(text: &str) -> Insn {
    match parse(text) {
        Ok(v) if v.len() == 1 => v[0],
        other => panic!("{text:?} parsed to {other:?}"),
    }
}

fn error(text: &str) -> AsmError {
    match parse(text) {
        Err(e) => e,
        Ok(v) => panic!("{text:?} parsed to {v:?}, expected an error"),
    }
}

const IMMS: [i32; 9] = [0, 1, -1, 7, -5, 0x7fff, -32768, i32::MAX, i32::MIN];
const OFFS: [i16; 7] = [0, 1, -1, 3, -3, i16::MAX, i16::MIN];

/// Every instruction variant with every operand kind and edge values.
fn all_insns() -> Vec<Insn> {
    let mut v = Vec::new();
    let regs = [Reg::R0, Reg::R1, Reg::R9, Reg::R10];
    let widths = [Width::W32, Width::W64];
    for width in widths {
        for op in AluOp::ALL {
            for dst in regs {
                for src in regs {
                    v.push(Insn::Alu { width, op, dst, src: Operand::Reg(src) });
                }
                for imm in IMMS {
                    v.push(Insn::Alu { width, op, dst, src: Operand::Imm(imm) });
                }
            }
        }
        for dst in Reg::ALL {
            v.push(Insn::Neg { width, dst });
        }
        for from in [SxBits::S8, SxBits::S16, SxBits::S32] {
            if from == SxBits::S32 && width == Width::W32 {
                continue;
            }
            for dst in regs {
                for src in regs {
                    v.push(Insn::MovSx { width, from, dst, src });
                }
            }
        }
        for cond in Cond::ALL {
            for dst in regs {
                for off in OFFS {
                    v.push(Insn::Jmp { width, cond, dst, src: Operand::Reg(Reg::R2), off });
                }
                for imm in IMMS {
                    v.push(Insn::Jmp { width, cond, dst, src: Operand::Imm(imm), off: -2 });
                }
            }
        }
    }
    for order in [ByteOrder::Le, ByteOrder::Be, ByteOrder::Swap] {
        for bits in [16, 32, 64] {
            v.push(Insn::End { order, bits, dst: Reg::R4 });
        }
    }
    for off in OFFS {
        v.push(Insn::Ja { off });
    }
    for off in [0, 1, -1, 70000, -70000, i32::MAX, i32::MIN] {
        v.push(Insn::JaLong { off });
        v.push(Insn::Call(Call::Local(off)));
    }
    for size in Size::ALL {
        for off in OFFS {
            for signed in [false, true] {
                if !(signed && size == Size::DW) {
                    v.push(Insn::Load { size, signed, dst: Reg::R3, src: Reg::R10, off });
                }
            }
            v.push(Insn::Store { size, dst: Reg::R10, src: Reg::R7, off });
            v.push(Insn::StoreImm { size, dst: Reg::R1, off, imm: -3 });
        }
        for imm in IMMS {
            v.push(Insn::StoreImm { size, dst: Reg::R10, off: -8, imm });
        }
    }
    for size in [Size::W, Size::DW] {
        for op in AtomicOp::ALL {
            for off in [0, -8, 16, i16::MIN, i16::MAX] {
                v.push(Insn::Atomic { size, op, dst: Reg::R1, src: Reg::R2, off });
            }
            v.push(Insn::Atomic { size, op, dst: Reg::R10, src: Reg::R0, off: -4 });
        }
    }
    for imm in [0u64, 1, u64::MAX, 0x1_2345_6789, 1 << 63, (1 << 63) - 1, 0xffff_ffff, 0x8000_0000] {
        for pseudo in [0u8, 1, 2, 15] {
            v.push(Insn::LdImm64 { dst: Reg::R1, pseudo, imm });
        }
    }
    for id in [0, 1, 12, -1, i32::MAX, i32::MIN] {
        v.push(Insn::Call(Call::Helper(id)));
        v.push(Insn::Call(Call::Kfunc(id)));
    }
    for size in [Size::B, Size::H, Size::W] {
        for imm in [0, 14, -1, -0x10_0000, -0x20_0000 + 12, i32::MAX, i32::MIN] {
            v.push(Insn::LoadPacket { size, index: None, imm });
            v.push(Insn::LoadPacket { size, index: Some(Reg::R7), imm });
        }
    }
    v.push(Insn::TailCall);
    v.push(Insn::Exit);
    v
}

#[test]
fn every_instruction_round_trips_through_text() {
    let all = all_insns();
    assert!(all.len() > 3000, "{}", all.len());
    for insn in &all {
        // Only instructions the wire format holds are expected to parse back.
        assert_eq!(decode(&insn.encode()).as_deref(), Ok(std::slice::from_ref(insn)), "{insn:?}");
        let text = insn.to_string();
        assert!(!text.contains('\n'), "{text:?}");
        assert_eq!(parse(&text), Ok(vec![*insn]), "{text:?}");
    }
    assert_eq!(parse(&print_program(&all)), Ok(all));
}

/// Canonical text: each line prints back exactly as written.
const CANONICAL: &[&str] = &[
    "r0 = 1",
    "w0 += w1",
    "r0 = -r0",
    "w0 = -w0",
    "r1 = *(u32 *)(r10 - 4)",
    "r1 = *(s16 *)(r10 - 4)",
    "r1 = *(u8 *)(r2 + 0)",
    "r0 = *(u8 *)skb[12]",
    "r0 = *(u16 *)skb[r3]",
    "r0 = *(u32 *)skb[r3 + 4]",
    "r0 = *(u32 *)skb[r3 - 2097152]",
    "*(u64 *)(r10 - 8) = r1",
    "*(u32 *)(r10 - 8) = 5",
    "*(u64 *)(r10 + 16) = -1",
    "if r1 s> -5 goto +2",
    "if w1 & w2 goto -3",
    "if r3 <= 7 goto +0",
    "goto +3",
    "gotol +70000",
    "gotol -70000",
    "lock *(u64 *)(r1 + 0) += r2",
    "lock *(u64 *)(r1 + 0) |= r2",
    "lock *(u64 *)(r1 - 8) &= r2",
    "lock *(u64 *)(r1 + 8) ^= r2",
    "lock *(u32 *)(r1 + 0) += w2",
    "r2 = atomic_fetch_add((u64 *)(r1 + 0), r2)",
    "r2 = atomic_fetch_or((u64 *)(r1 + 0), r2)",
    "r2 = atomic_fetch_and((u64 *)(r1 + 0), r2)",
    "r2 = atomic_fetch_xor((u64 *)(r1 + 0), r2)",
    "w2 = atomic_fetch_add((u32 *)(r1 + 0), w2)",
    "r2 = xchg_64(r1 + 0, r2)",
    "w2 = xchg32_32(r1 + 0, w2)",
    "r0 = cmpxchg_64(r1 + 0, r0, r2)",
    "w0 = cmpxchg32_32(r1 + 0, w0, w2)",
    "r0 = be16 r0",
    "r0 = le64 r0",
    "r0 = bswap32 r0",
    "r0 s/= r1",
    "w0 s%= 3",
    "r0 s>>= 63",
    "r0 = (s8)r1",
    "w0 = (s16)w1",
    "r0 = (s32)r1",
    "r1 = 4886718345 ll",
    "r1 = -5 ll",
    "ld_pseudo r1, 1, 5",
    "call 2",
    "call map_lookup_elem",
    "call pc+5",
    "call pc-3",
    "call kfunc:1234",
    "tail_call",
    "exit",
];

#[test]
fn canonical_text_prints_back_unchanged() {
    for line in CANONICAL {
        assert_eq!(one(line).to_string(), *line);
    }
    let text: String = CANONICAL.iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(print_program(&parse(&text).unwrap()), text);
}

#[test]
fn syntax_examples_mean_what_they_say() {
    use Insn::*;
    let (r0, r1, r2, r10) = (Reg::R0, Reg::R1, Reg::R2, Reg::R10);
    assert_eq!(one("r0 = 1"), Alu { width: Width::W64, op: AluOp::Mov, dst: r0, src: Operand::Imm(1) });
    assert_eq!(one("w0 += w1"), Alu { width: Width::W32, op: AluOp::Add, dst: r0, src: Operand::Reg(r1) });
    assert_eq!(
        one("r1 = *(s16 *)(r10 - 4)"),
        Load { size: Size::H, signed: true, dst: r1, src: r10, off: -4 }
    );
    assert_eq!(one("*(u32 *)(r10 - 8) = 5"), StoreImm { size: Size::W, dst: r10, off: -8, imm: 5 });
    assert_eq!(
        one("if r1 s> -5 goto +2"),
        Jmp { width: Width::W64, cond: Cond::Sgt, dst: r1, src: Operand::Imm(-5), off: 2 }
    );
    assert_eq!(
        one("lock *(u32 *)(r1 + 0) += w2"),
        Atomic { size: Size::W, op: AtomicOp::Add, dst: r1, src: r2, off: 0 }
    );
    assert_eq!(
        one("r0 = cmpxchg_64(r1 + 0, r0, r2)"),
        Atomic { size: Size::DW, op: AtomicOp::Cmpxchg, dst: r1, src: r2, off: 0 }
    );
    assert_eq!(one("r1 = 0x123456789 ll"), LdImm64 { dst: r1, pseudo: 0, imm: 0x1_2345_6789 });
    assert_eq!(one("r1 = -1 ll"), LdImm64 { dst: r1, pseudo: 0, imm: u64::MAX });
    assert_eq!(one("r1 = 0xffffffffffffffff ll"), LdImm64 { dst: r1, pseudo: 0, imm: u64::MAX });
    assert_eq!(one("gotol +70000"), JaLong { off: 70000 });
    assert_eq!(one("r0 = (s32)r1"), MovSx { width: Width::W64, from: SxBits::S32, dst: r0, src: r1 });
    assert_eq!(one("r0 = bswap64 r0"), End { order: ByteOrder::Swap, bits: 64, dst: r0 });
    assert_eq!(one("call 1"), Call(crate::Call::Helper(1)));
    assert_eq!(one("call pc-2"), Call(crate::Call::Local(-2)));
    assert_eq!(one("call kfunc:77"), Call(crate::Call::Kfunc(77)));
    assert_eq!(one("tail_call"), TailCall);
}

#[test]
fn accepts_spelling_variations() {
    let same = [
        ("r0=1", "r0 = 1"),
        ("  r0   =   0x1  ", "r0 = 1"),
        ("\tr0 +=-5", "r0 += -5"),
        ("w0 = 0xffffffff", "w0 = -1"),
        ("w0 = 4294967295", "w0 = -1"),
        ("if w1 == 0x80000000 goto +1", "if w1 == -2147483648 goto +1"),
        ("r0 = -0x80000000", "r0 = -2147483648"),
        ("r1 = *(u32 *)(r10 -4)", "r1 = *(u32 *)(r10 - 4)"),
        ("r1 = *(u32 *)(r10 + -4)", "r1 = *(u32 *)(r10 - 4)"),
        ("r1 = *(u32 *)(r10)", "r1 = *(u32 *)(r10 + 0)"),
        ("r1 = *(u32 *)(r10 - 0x8)", "r1 = *(u32 *)(r10 - 8)"),
        ("w1 = *(u32 *)(r10 - 4)", "r1 = *(u32 *)(r10 - 4)"),
        ("*(u16 *)(r10 - 8) = w1", "*(u16 *)(r10 - 8) = r1"),
        ("*(u8 *)(r10 - 1) = 0xff", "*(u8 *)(r10 - 1) = 255"),
        ("*(u32 *)(r10 - 4) = 0xffffffff", "*(u32 *)(r10 - 4) = -1"),
        ("lock *(u32 *)(r1 + 0) += r2", "lock *(u32 *)(r1 + 0) += w2"),
        ("goto +0x10", "goto +16"),
        ("goto -0x10", "goto -16"),
        ("ld_pseudo r1, 0, 5", "r1 = 5 ll"),
        ("r1 = 4294967296 ll", "r1 = 4294967296 ll"),
    ];
    for (input, canonical) in same {
        match parse(input) {
            Ok(v) if v.len() == 1 => assert_eq!(v[0].to_string(), canonical, "{input:?}"),
            other => panic!("{input:?} gave {other:?}"),
        }
    }
}

#[test]
fn comments_blank_lines_directives_and_labels() {
    let text = "\
        ; a comment\n\
        # another\n\
        // and another\n\
        \n\
        \t.text\n\
        \t.globl\tf\n\
        f:                      # @f\n\
        \tr0 = 0 ; trailing comment\n\
        loop: r0 += 1\n\
        \tif r0 < 10 goto loop\n\
        \tif r0 == 10 goto done   // forward\n\
        \tr1 = 0x123456789 ll\n\
        done:\n\
        LBB0_2:\n\
        \tgotol LBB0_3\n\
        LBB0_3: exit\n";
    let insns = parse(text).unwrap();
    assert_eq!(
        print_program(&insns),
        "r0 = 0\nr0 += 1\nif r0 < 10 goto -2\nif r0 == 10 goto +2\nr1 = 4886718345 ll\ngotol +0\nexit\n"
    );
    // `goto done` skips the two slots of the lddw.
    assert_eq!(
        insns[3],
        Insn::Jmp { width: Width::W64, cond: Cond::Eq, dst: Reg::R0, src: Operand::Imm(10), off: 2 }
    );
}

#[test]
fn local_calls_by_label() {
    let text = "call sub\nexit\nsub:\nr0 = 1\ncall sub\nexit\n";
    let insns = parse(text).unwrap();
    assert_eq!(insns[0], Insn::Call(Call::Local(1)));
    assert_eq!(insns[3], Insn::Call(Call::Local(-2)));
    assert!(parse_program(text).is_ok());
}

#[test]
fn clang_dot_s_output_parses() {
    // `clang-14 -target bpf -mcpu=v3 -O2 -S` of a small function (alu32 registers).
    let text = "\
\t.text
\t.file\t\"t.c\"
\t.globl\tf                               # -- Begin function f
\t.p2align\t3
\t.type\tf,@function
f:                                      # @f
# %bb.0:
\tw0 = *(u32 *)(r1 + 0)
\tif w0 > 7 goto LBB0_2
# %bb.1:
\tw0 <<= 2
\t*(u32 *)(r10 - 4) = w0
LBB0_2:
\texit
.Lfunc_end0:
\t.size\tf, .Lfunc_end0-f
                                        # -- End function
";
    let p = parse_program(text).unwrap();
    assert_eq!(
        print_program(p.insns()),
        "r0 = *(u32 *)(r1 + 0)\nif w0 > 7 goto +2\nw0 <<= 2\n*(u32 *)(r10 - 4) = r0\nexit\n"
    );
}

#[test]
fn objdump_output_parses() {
    let text = "
c1.o:\tfile format elf64-bpf

Disassembly of section .text:

0000000000000028 <f>:
       0:\tbf 13 00 00 00 00 00 00\tr3 = r1
       1:\t6d 14 04 00 00 00 00 00\tif r4 s> r1 goto +4 <LBB1_2>
       2:\t85 10 00 00 05 00 00 00\tcall 5
       3:\t18 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00\tr2 = 0 ll
\t\t0000000000000068:  R_BPF_64_64\tglob
       5:\t85 00 00 00 0c 00 00 00\tcall 12
       6:\t85 20 00 00 ff ff ff ff\tcall -1

0000000000000090 <LBB1_2>:
       7:\t18 13 00 00 fb ff ff ff 00 00 00 00 07 00 00 00\tld_pseudo\tr3, 1, 4294967291
       9:\t62 0a f8 ff 05 00 00 00\t<unknown>
      10:\t95 00 00 00 00 00 00 00\texit
";
    let insns = parse(text).unwrap();
    assert_eq!(
        print_program(&insns),
        "r3 = r1\nif r4 s> r1 goto +4\ncall pc+5\nr2 = 0 ll\ncall bpf_tail_call\ncall kfunc:-1\n\
         ld_pseudo r3, 1, 34359738363\n*(u32 *)(r10 - 8) = 5\nexit\n"
    );
    // Without the bytes column (`--no-show-raw-insn`), `call N` is a helper.
    assert_eq!(one("       2:\tcall 5"), Insn::Call(Call::Helper(5)));
    // Lines without an address but with bytes (`--no-leading-addr`).
    assert_eq!(one("bf 13 00 00 00 00 00 00\tr3 = r1").to_string(), "r3 = r1");
}

#[test]
fn objdump_text_must_agree_with_its_bytes() {
    // llvm-objdump 14 prints the cpu v4 `r3 = (s8)r1` as `r3 = r1`.
    let e = error("      25:\tbf 13 08 00 00 00 00 00\tr3 = r1");
    assert_eq!((e.line, e.column), (1, 35));
    assert_eq!(e.message, "the text says `r3 = r1` but the bytes column encodes `r3 = (s8)r1`");
    let e = error("       0:\tb7 00 00 00 01 00 00 00\tr0 = 2");
    assert!(e.message.contains("r0 = 1"), "{e}");
    let e = error("       0:\tff 00 00 00 00 00 00 00\t<unknown>");
    assert!(e.message.starts_with("the bytes column does not decode"), "{e}");
    assert_eq!(e.column, 11);
    let e = error("       0:\t<unknown>");
    assert!(e.message.contains("no bytes column"), "{e}");
}

#[test]
fn errors_have_positions_and_messages() {
    let cases: &[(&str, usize, usize, &str)] = &[
        ("r0 = 1\nfoo r0, 1", 2, 1, "unknown mnemonic \"foo\""),
        ("  mov r0, 1", 1, 3, "unknown mnemonic \"mov\""),
        ("r0 = 0x100000000", 1, 6, "immediate 4294967296 does not fit in 32 bits"),
        ("w0 = 0x100000000", 1, 6, "immediate 4294967296 is out of range"),
        ("r0 += -2147483649", 1, 7, "immediate -2147483649 does not fit"),
        ("goto +32768", 1, 6, "jump offset 32768 is out of range"),
        ("if r1 == 0 goto -32769", 1, 17, "jump offset -32769 is out of range"),
        ("gotol +2147483648", 1, 7, "jump offset 2147483648 is out of range"),
        ("r1 = *(u32 *)(r10 - 32769)", 1, 21, "memory offset -32769 is out of range"),
        ("w0 += r1", 1, 7, "expected a 32-bit register (w0 to w10), found \"r1\""),
        ("r0 += w1", 1, 7, "expected a 64-bit register (r0 to r10), found \"w1\""),
        ("if w1 > r2 goto +1", 1, 9, "expected a 32-bit register"),
        ("w1 = 5 ll", 1, 1, "a 64-bit immediate load needs a 64-bit destination register"),
        ("*(u64 *)(r10 - 8) = w1", 1, 21, "expected a 64-bit register"),
        ("*(u64 *)(w10 - 8) = r1", 1, 10, "expected a 64-bit register"),
        ("w0 = *(u64 *)(r1 + 0)", 1, 1, "a 64-bit load needs a 64-bit destination register"),
        ("w0 = *(s8 *)(r1 + 0)", 1, 1, "a sign-extending load needs a 64-bit destination"),
        ("r0 = *(s64 *)(r1 + 0)", 1, 8, "there is no sign-extending 64-bit load"),
        ("*(s32 *)(r1 + 0) = 1", 1, 3, "a store takes an unsigned type"),
        ("w0 = (s32)w1", 1, 7, "`(s32)` sign extension needs 64-bit registers"),
        ("w0 = be16 w0", 1, 1, "`be16` takes 64-bit registers"),
        ("r0 = be16 r1", 1, 11, "the result register must be the value register"),
        ("r0 = -r1", 1, 7, "negation uses the same register on both sides"),
        (
            "r2 = atomic_fetch_add((u64 *)(r1 + 0), r3)",
            1,
            40,
            "the result register must be the value register",
        ),
        (
            "r2 = atomic_fetch_add((u32 *)(r1 + 0), r2)",
            1,
            1,
            "a 32-bit atomic operation takes 32-bit (w) registers",
        ),
        ("r2 = atomic_fetch_sub((u64 *)(r1 + 0), r2)", 1, 6, "unknown atomic operation"),
        ("lock *(u8 *)(r1 + 0) += r2", 1, 8, "atomic operations take u32 or u64"),
        ("lock *(u64 *)(r1 + 0) -= r2", 1, 23, "expected `+=`, `|=`, `&=` or `^=`"),
        ("r1 = cmpxchg_64(r1 + 0, r0, r2)", 1, 1, "`cmpxchg_64` always writes r0"),
        ("w0 = cmpxchg32_32(r1 + 0, w1, w2)", 1, 27, "`cmpxchg32_32` always compares with w0"),
        ("r2 = xchg_64(r1 + 0, r3)", 1, 22, "the result register must be the value register"),
        ("r11 = 1", 1, 1, "there is no register \"r11\" (r0 to r10)"),
        ("r0 = r12", 1, 6, "there is no register \"r12\""),
        ("goto 3", 1, 6, "a jump offset needs its sign"),
        ("goto nowhere", 1, 6, "undefined label \"nowhere\""),
        ("a:\nexit\na: exit", 3, 1, "duplicate label \"a\" (first defined on line 1)"),
        ("r0: exit", 1, 1, "\"r0\" is a register name and cannot be a label"),
        ("r1 = glob ll", 1, 6, "`glob` is a symbol"),
        ("r0 = 1 2", 1, 8, "unexpected \"2\" after the instruction"),
        ("r0 = 12abc", 1, 6, "invalid number \"12abc\""),
        ("r0 = 99999999999999999999999", 1, 6, "is too large"),
        ("r0 = €", 1, 6, "unexpected character '€'"),
        ("if r0 =< 1 goto +1", 1, 7, "expected a comparison"),
        ("r0 = *(u32 *)(r1 + 0", 1, 21, "expected `)`, found the end of the line"),
        ("call pc+2147483648", 1, 8, "call offset 2147483648 is out of range"),
        ("ld_pseudo r1, 16, 0", 1, 15, "ld_pseudo source field 16 is out of range"),
        ("+ r0", 1, 1, "expected an instruction, found \"+\""),
        ("exit:\nexit 0", 2, 6, "unexpected \"0\" after the instruction"),
        ("if r0 s> goto +1", 1, 10, "expected a register or a number, found \"goto\""),
        (
            "call",
            1,
            5,
            "expected a call target (helper id or name, `pc+N`, `kfunc:N` or a label), found the end",
        ),
    ];
    for &(text, line, column, msg) in cases {
        let e = error(text);
        assert!(e.message.contains(msg), "{text:?}: got {e:?}, expected message {msg:?}");
        assert_eq!((e.line, e.column), (line, column), "{text:?}: {e}");
    }
    assert_eq!(error("\n\n  foo").to_string(), "line 3, column 3: unknown mnemonic \"foo\"");
}

#[test]
fn label_offsets_out_of_range_are_errors() {
    let mut text = String::from("goto far\n");
    for _ in 0..32768 {
        text.push_str("r0 = 0\n");
    }
    text.push_str("far: exit\n");
    let e = error(&text);
    assert_eq!((e.line, e.column), (1, 6));
    assert!(e.message.starts_with("jump offset out of range: label \"far\" is 32768 slots away"), "{e}");
    // One fewer fits, and gotol always does.
    assert!(parse(&text.replacen("r0 = 0\n", "", 1)).is_ok());
    assert!(parse(&text.replacen("goto far", "gotol far", 1)).is_ok());
}

#[test]
fn parse_program_reports_structural_errors_at_their_line() {
    let e = parse_program("r0 = 1\n\nif r0 > 1 goto +5\nexit").unwrap_err();
    assert_eq!((e.line, e.column), (3, 1));
    assert!(e.message.contains("jump to slot 7 is out of range"), "{e}");
    let e = parse_program("if r0 > 1 goto +1\nexit\n  r0 = 1").unwrap_err();
    assert_eq!((e.line, e.column), (3, 3));
    assert_eq!(e.message, ProgramError::FallsOffEnd { pc: 2 }.to_string());
    let e = parse_program("r10 = 1\nexit").unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.message.contains("read-only frame pointer"), "{e}");
    let e = parse_program("").unwrap_err();
    assert_eq!(e.to_string(), "line 1, column 1: the program is empty");
    let p = parse_program("r0 = 2 ll\nexit").unwrap();
    assert_eq!(p.slot_len(), 3);
}

#[test]
fn never_panics_on_garbage() {
    let mut inputs: Vec<String> = Vec::new();
    let mut seeds: Vec<String> = CANONICAL.iter().map(|s| s.to_string()).collect();
    seeds.extend(all_insns().iter().step_by(37).map(|i| i.to_string()));
    seeds.extend(
        [
            "       3:\t18 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00\tr2 = 0 ll",
            "0000000000000090 <LBB1_2>:",
            "if r1 > r2 goto +1 <LBB0_1>",
            "call kfunc:12",
            "lab: lab2: r0 = 1",
            "*(u8 *)(r1 + 0) = 1",
        ]
        .map(String::from),
    );
    for s in &seeds {
        for (i, _) in s.char_indices() {
            inputs.push(s[..i].to_string());
            inputs.push(s[i..].to_string());
        }
    }
    inputs.extend(
        [
            "",
            ":",
            "::",
            "(",
            ")",
            "*",
            "*(",
            "*(u",
            "*(u64",
            "*(u64 *",
            "*(u64 *)",
            "*(u64 *)(",
            "r",
            "w",
            "r0",
            "r0 =",
            "r0 = -",
            "r0 = (",
            "r0 = (s8",
            "r0 = (s8)",
            "if",
            "if r0",
            "if r0 ==",
            "if r0 == 1",
            "if r0 == 1 goto",
            "goto",
            "goto +",
            "goto <",
            "goto +1 <",
            "goto +1 <x",
            "call",
            "call pc",
            "call pc+",
            "call kfunc",
            "call kfunc:",
            "lock",
            "lock *",
            "ld_pseudo",
            "ld_pseudo r1,",
            "ld_pseudo r1, 1,",
            "r0 = atomic_fetch_add(",
            "r0 = xchg_64(",
            "r0 = cmpxchg_64(r1 + 0,",
            "r0 = be16",
            "0:",
            "0: ",
            "00 00 00 00 00 00 00 00",
            "1: 00 00 00 00 00 00 00 00 00 00 00 00",
            "r0 = 0x",
            "r0 = -0x",
            "r0 = 18446744073709551616 ll",
            "r0 = -18446744073709551615 ll",
            "goto +99999999999999999999",
            "gotol -9223372036854775808",
            "\u{0}",
            "\u{feff}r0 = 1",
            "r0 = 1\r\nexit\r\n",
            "é",
            "é:",
            "日本: r0 = 1",
            "<unknown>",
            "< unknown >",
            "#",
            ";;",
            "//",
            "r0 = 1 ll ll",
            "r0 s",
            "r0 s>",
            "r0 s>>=",
            "-",
            "--",
            "r0 = --1",
            "r0 = +-1",
        ]
        .map(String::from),
    );
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        let len = (seed % 40) as usize;
        let s: String = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let alphabet = b"rw0123456789 =+-*/()<>&|^%sx:;#,.abcdefgilnoptuk\t\n";
                alphabet[(seed % alphabet.len() as u64) as usize] as char
            })
            .collect();
        inputs.push(s);
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    }
    for input in &inputs {
        let _ = parse(input);
        let _ = parse_program(input);
    }
}
