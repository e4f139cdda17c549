//! The three input formats agree on one real program.
//!
//! `fixtures/sample.c` was compiled once with clang 14 (the commands are in the file);
//! the object, its `llvm-objdump -d` listing and its raw `.text` bytes are checked in, so
//! nothing is compiled at test time.

use std::path::{Path, PathBuf};

use bpf::elf::{load_elf, ElfError};
use bpf::load::{load_bytes, load_file};
use bpf::{AluOp, Cond, Insn, Operand, Reg, Size, Width};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

#[test]
fn object_listing_and_bytecode_load_to_the_same_program() {
    let from_elf = load_file(&fixture("sample.o")).unwrap();
    let from_bin = load_file(&fixture("sample.bin")).unwrap();
    let from_text = load_file(&fixture("sample.objdump.txt")).unwrap();
    assert_eq!(from_elf, from_bin);
    assert_eq!(from_elf, from_text);
    assert_eq!(load_elf(&read("sample.o")).unwrap(), from_elf.insns());
    assert_eq!(from_elf.to_bytes(), read("sample.bin"));

    // The listing without its bytes column parses to the same instructions.
    let text = String::from_utf8(read("sample.objdump.txt")).unwrap();
    let stripped: String = text
        .lines()
        .map(|l| match l.split('\t').collect::<Vec<_>>().as_slice() {
            [addr, _bytes, insn] => format!("{addr}\t{insn}\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    assert_ne!(stripped, text);
    assert_eq!(load_bytes("stripped.txt", stripped.as_bytes()).unwrap(), from_elf);

    // And our own printing of it reads back too.
    let printed = bpf::asm::print_program(from_elf.insns());
    assert_eq!(bpf::asm::parse_program(&printed).unwrap(), from_elf);
}

#[test]
fn instructions_match_the_c_source() {
    let p = load_file(&fixture("sample.o")).unwrap();
    let i = p.insns();
    let (r0, r1, r2, r10) = (Reg::R0, Reg::R1, Reg::R2, Reg::R10);
    let alu = |op, dst, src| Insn::Alu { width: Width::W64, op, dst, src };
    // `volatile long slot = a * 3;`: a (r1) times 3, stored to the stack...
    assert_eq!(i[0], alu(AluOp::Mul, r1, Operand::Imm(3)));
    assert_eq!(i[1], Insn::Store { size: Size::DW, dst: r10, src: r1, off: -8 });
    // ... and `slot + b` loads it back and adds b (r2).
    assert_eq!(i[2], Insn::Load { size: Size::DW, signed: false, dst: r1, src: r10, off: -8 });
    assert_eq!(i[3], alu(AluOp::Add, r1, Operand::Reg(r2)));
    // clang folds `(x - 7) << 2` into `(x + K) << 2` with 4 * K == -28 (mod 2^64).
    let Insn::LdImm64 { dst, pseudo: 0, imm } = i[4] else { panic!("{:?}", i[4]) };
    assert_eq!(dst, r2);
    assert_eq!(imm.wrapping_mul(4), (-28i64) as u64);
    // `if (x > 100)` on a signed long: skip the else branch to the shared shift.
    assert_eq!(
        i[7],
        Insn::Jmp { width: Width::W64, cond: Cond::Sgt, dst: r1, src: Operand::Imm(100), off: 2 }
    );
    assert_eq!(p.target_of(7), Some(10));
    // `x ^= 0x55`, then `return x << 2`.
    assert_eq!(i[8], alu(AluOp::Xor, r1, Operand::Imm(0x55)));
    assert_eq!(i[10], alu(AluOp::Lsh, r0, Operand::Imm(2)));
    assert_eq!(i[11], Insn::Exit);
    assert_eq!(i.len(), 12);
    assert_eq!(p.slot_len(), 13);
}

#[test]
fn damaged_objects_give_clear_errors() {
    let good = read("sample.o");
    // A non-BPF machine, named.
    let mut x86 = good.clone();
    x86[18..20].copy_from_slice(&62u16.to_le_bytes());
    assert_eq!(load_elf(&x86), Err(ElfError::WrongMachine { machine: 62 }));
    let msg = load_bytes("a.o", &x86).unwrap_err().to_string();
    assert_eq!(msg, "a.o: not a BPF ELF object (e_machine 62, x86-64)");
    // Big-endian.
    let mut be = good.clone();
    be[5] = 2;
    be[18..20].copy_from_slice(&247u16.to_be_bytes());
    assert_eq!(load_elf(&be), Err(ElfError::BigEndian));
    // No `.text` (renamed in the string table): the executable sections are listed.
    let at = good.windows(6).position(|w| w == b".text\0").unwrap();
    let mut renamed = good.clone();
    renamed[at + 4] = b'x';
    let err = load_elf(&renamed).unwrap_err();
    assert_eq!(err.to_string(), "no .text section (executable sections: .texx)");
    // Undecodable `.text`: the slot is named.
    let text_at = good.windows(8).position(|w| w == [0x27, 0x01, 0, 0, 3, 0, 0, 0]).unwrap();
    let mut bad = good.clone();
    bad[text_at + 3 * 8] = 0xff;
    let msg = load_bytes("bad.o", &bad).unwrap_err().to_string();
    assert!(msg.starts_with("bad.o: .text: slot 3: "), "{msg}");
    // Structurally unsound `.text`: the program check names the file too.
    let mut jump = good.clone();
    jump[text_at + 8 * 8 + 2] = 0x40; // slot 8: `if r1 s> 100 goto +64`
    let msg = load_bytes("jump.o", &jump).unwrap_err().to_string();
    assert!(msg.starts_with("jump.o: pc 8: jump to slot 73 is out of range"), "{msg}");
}

#[test]
fn truncated_objects_never_panic() {
    let good = read("sample.o");
    for n in 0..good.len() {
        let r = load_elf(&good[..n]);
        assert!(r.is_err(), "{n} bytes loaded: {r:?}");
    }
    let mut seed = 0x1234_5678u32;
    for i in 0..good.len() {
        let mut b = good.clone();
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        b[i] ^= (seed >> 24) as u8 | 1;
        let _ = load_elf(&b);
        let _ = load_bytes("x.o", &b);
    }
}
