//! Encoder tests, one table row per instruction form: the typed instruction, its
//! assembly in the RISC-V manual's syntax (no aliases), and the machine word LLVM's
//! assembler (`llvm-mc -triple=riscv64 -mattr=+m,+a -show-encoding`) produces for that
//! text. Each row checks our encoding against LLVM's word, and our printed text against
//! Capstone's disassembly of the word: two independent tools, neither of them ours.

use capstone::arch::riscv::ArchMode;
use capstone::prelude::*;

use super::*;

fn i12(v: i64) -> Imm12 {
    Imm12::new(v).expect("test immediate fits")
}

fn capstone() -> Capstone {
    Capstone::new().riscv().mode(ArchMode::RiscV64).build().expect("capstone builds")
}

fn capstone_text(cs: &Capstone, word: u32) -> String {
    let insns = cs.disasm_all(&word.to_le_bytes(), 0).expect("capstone runs");
    assert_eq!(insns.len(), 1, "capstone could not decode {word:#010x}");
    let i = &insns.as_ref()[0];
    format!("{} {}", i.mnemonic().unwrap_or(""), i.op_str().unwrap_or("")).trim().to_string()
}

#[rustfmt::skip]
fn table() -> Vec<(Inst, &'static str, u32)> {
    vec![
        (Inst::R { op: ROp::Add, rd: XReg::A0, rs1: XReg::A1, rs2: XReg::A2 }, "add a0, a1, a2", 0x00c58533),
        (Inst::R { op: ROp::Sub, rd: XReg::S1, rs1: XReg::S2, rs2: XReg::S3 }, "sub s1, s2, s3", 0x413904b3),
        (Inst::R { op: ROp::Sll, rd: XReg::T1, rs1: XReg::T2, rs2: XReg::T3 }, "sll t1, t2, t3", 0x01c39333),
        (Inst::R { op: ROp::Slt, rd: XReg::A0, rs1: XReg::A1, rs2: XReg::A2 }, "slt a0, a1, a2", 0x00c5a533),
        (Inst::R { op: ROp::Sltu, rd: XReg::A0, rs1: XReg::A1, rs2: XReg::A2 }, "sltu a0, a1, a2", 0x00c5b533),
        (Inst::R { op: ROp::Xor, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "xor a5, a5, t1", 0x0067c7b3),
        (Inst::R { op: ROp::Srl, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "srl a5, a5, t1", 0x0067d7b3),
        (Inst::R { op: ROp::Sra, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "sra a5, a5, t1", 0x4067d7b3),
        (Inst::R { op: ROp::Or, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "or a5, a5, t1", 0x0067e7b3),
        (Inst::R { op: ROp::And, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "and a5, a5, t1", 0x0067f7b3),
        (Inst::R { op: ROp::Mul, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "mul a5, a5, t1", 0x026787b3),
        (Inst::R { op: ROp::Div, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "div a5, a5, t1", 0x0267c7b3),
        (Inst::R { op: ROp::Divu, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "divu a5, a5, t1", 0x0267d7b3),
        (Inst::R { op: ROp::Rem, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "rem a5, a5, t1", 0x0267e7b3),
        (Inst::R { op: ROp::Remu, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "remu a5, a5, t1", 0x0267f7b3),
        (Inst::R { op: ROp::Addw, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "addw a5, a5, t1", 0x006787bb),
        (Inst::R { op: ROp::Subw, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "subw a5, a5, t1", 0x406787bb),
        (Inst::R { op: ROp::Sllw, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "sllw a5, a5, t1", 0x006797bb),
        (Inst::R { op: ROp::Srlw, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "srlw a5, a5, t1", 0x0067d7bb),
        (Inst::R { op: ROp::Sraw, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "sraw a5, a5, t1", 0x4067d7bb),
        (Inst::R { op: ROp::Mulw, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "mulw a5, a5, t1", 0x026787bb),
        (Inst::R { op: ROp::Divw, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "divw a5, a5, t1", 0x0267c7bb),
        (Inst::R { op: ROp::Divuw, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "divuw a5, a5, t1", 0x0267d7bb),
        (Inst::R { op: ROp::Remw, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "remw a5, a5, t1", 0x0267e7bb),
        (Inst::R { op: ROp::Remuw, rd: XReg::A5, rs1: XReg::A5, rs2: XReg::T1 }, "remuw a5, a5, t1", 0x0267f7bb),
        (Inst::I { op: IOp::Addi, rd: XReg::A0, rs1: XReg::A1, imm: i12(-2048) }, "addi a0, a1, -2048", 0x80058513),
        (Inst::I { op: IOp::Addi, rd: XReg::A0, rs1: XReg::A1, imm: i12(2047) }, "addi a0, a1, 2047", 0x7ff58513),
        (Inst::I { op: IOp::Slti, rd: XReg::A0, rs1: XReg::A1, imm: i12(-1) }, "slti a0, a1, -1", 0xfff5a513),
        (Inst::I { op: IOp::Sltiu, rd: XReg::A0, rs1: XReg::A1, imm: i12(1) }, "sltiu a0, a1, 1", 0x0015b513),
        (Inst::I { op: IOp::Xori, rd: XReg::A0, rs1: XReg::A1, imm: i12(-1) }, "xori a0, a1, -1", 0xfff5c513),
        (Inst::I { op: IOp::Ori, rd: XReg::A0, rs1: XReg::A1, imm: i12(2047) }, "ori a0, a1, 2047", 0x7ff5e513),
        (Inst::I { op: IOp::Andi, rd: XReg::A0, rs1: XReg::A1, imm: i12(255) }, "andi a0, a1, 255", 0x0ff5f513),
        (Inst::I { op: IOp::Addiw, rd: XReg::A0, rs1: XReg::A1, imm: i12(-1) }, "addiw a0, a1, -1", 0xfff5851b),
        (Inst::Shift { op: ShiftOp::Slli, rd: XReg::A5, rs1: XReg::A5, shamt: 63 }, "slli a5, a5, 63", 0x03f79793),
        (Inst::Shift { op: ShiftOp::Srli, rd: XReg::A5, rs1: XReg::A5, shamt: 32 }, "srli a5, a5, 32", 0x0207d793),
        (Inst::Shift { op: ShiftOp::Srai, rd: XReg::A5, rs1: XReg::A5, shamt: 1 }, "srai a5, a5, 1", 0x4017d793),
        (Inst::Shift { op: ShiftOp::Slliw, rd: XReg::A5, rs1: XReg::A5, shamt: 31 }, "slliw a5, a5, 31", 0x01f7979b),
        (Inst::Shift { op: ShiftOp::Srliw, rd: XReg::A5, rs1: XReg::A5, shamt: 0 }, "srliw a5, a5, 0", 0x0007d79b),
        (Inst::Shift { op: ShiftOp::Sraiw, rd: XReg::A5, rs1: XReg::A5, shamt: 17 }, "sraiw a5, a5, 17", 0x4117d79b),
        (Inst::Load { op: LoadOp::Lb, rd: XReg::A0, rs1: XReg::A1, imm: i12(-1) }, "lb a0, -1(a1)", 0xfff58503),
        (Inst::Load { op: LoadOp::Lh, rd: XReg::A0, rs1: XReg::A1, imm: i12(2) }, "lh a0, 2(a1)", 0x00259503),
        (Inst::Load { op: LoadOp::Lw, rd: XReg::A0, rs1: XReg::A1, imm: i12(-2048) }, "lw a0, -2048(a1)", 0x8005a503),
        (Inst::Load { op: LoadOp::Ld, rd: XReg::A0, rs1: XReg::SP, imm: i12(2047) }, "ld a0, 2047(sp)", 0x7ff13503),
        (Inst::Load { op: LoadOp::Lbu, rd: XReg::A0, rs1: XReg::A1, imm: i12(0) }, "lbu a0, 0(a1)", 0x0005c503),
        (Inst::Load { op: LoadOp::Lhu, rd: XReg::A0, rs1: XReg::A1, imm: i12(6) }, "lhu a0, 6(a1)", 0x0065d503),
        (Inst::Load { op: LoadOp::Lwu, rd: XReg::A0, rs1: XReg::A1, imm: i12(12) }, "lwu a0, 12(a1)", 0x00c5e503),
        (Inst::Store { op: StoreOp::Sb, rs2: XReg::A0, rs1: XReg::A1, imm: i12(-1) }, "sb a0, -1(a1)", 0xfea58fa3),
        (Inst::Store { op: StoreOp::Sh, rs2: XReg::A0, rs1: XReg::A1, imm: i12(2) }, "sh a0, 2(a1)", 0x00a59123),
        (Inst::Store { op: StoreOp::Sw, rs2: XReg::A0, rs1: XReg::A1, imm: i12(-2048) }, "sw a0, -2048(a1)", 0x80a5a023),
        (Inst::Store { op: StoreOp::Sd, rs2: XReg::RA, rs1: XReg::SP, imm: i12(2040) }, "sd ra, 2040(sp)", 0x7e113c23),
        (Inst::Branch { op: BranchOp::Beq, rs1: XReg::A0, rs2: XReg::A1, off: Imm13::new(-4096).unwrap() }, "beq a0, a1, -4096", 0x80b50063),
        (Inst::Branch { op: BranchOp::Bne, rs1: XReg::A0, rs2: XReg::ZERO, off: Imm13::new(4094).unwrap() }, "bne a0, zero, 4094", 0x7e051fe3),
        (Inst::Branch { op: BranchOp::Blt, rs1: XReg::T1, rs2: XReg::T2, off: Imm13::new(8).unwrap() }, "blt t1, t2, 8", 0x00734463),
        (Inst::Branch { op: BranchOp::Bge, rs1: XReg::T1, rs2: XReg::T2, off: Imm13::new(-8).unwrap() }, "bge t1, t2, -8", 0xfe735ce3),
        (Inst::Branch { op: BranchOp::Bltu, rs1: XReg::A2, rs2: XReg::T1, off: Imm13::new(12).unwrap() }, "bltu a2, t1, 12", 0x00666663),
        (Inst::Branch { op: BranchOp::Bgeu, rs1: XReg::A2, rs2: XReg::T1, off: Imm13::new(2048).unwrap() }, "bgeu a2, t1, 2048", 0x006670e3),
        (Inst::Lui { rd: XReg::A0, imm: Imm20::new(-1).unwrap() }, "lui a0, 1048575", 0xfffff537),
        (Inst::Lui { rd: XReg::T1, imm: Imm20::new(-524288).unwrap() }, "lui t1, 524288", 0x80000337),
        (Inst::Lui { rd: XReg::T1, imm: Imm20::new(524287).unwrap() }, "lui t1, 524287", 0x7ffff337),
        (Inst::Auipc { rd: XReg::T1, imm: Imm20::new(74565).unwrap() }, "auipc t1, 74565", 0x12345317),
        (Inst::Jal { rd: XReg::ZERO, off: Imm21::new(-1048576).unwrap() }, "jal zero, -1048576", 0x8000006f),
        (Inst::Jal { rd: XReg::RA, off: Imm21::new(1048574).unwrap() }, "jal ra, 1048574", 0x7ffff0ef),
        (Inst::Jalr { rd: XReg::ZERO, rs1: XReg::T1, imm: i12(0) }, "jalr zero, 0(t1)", 0x00030067),
        (Inst::Jalr { rd: XReg::RA, rs1: XReg::T3, imm: i12(-2048) }, "jalr ra, -2048(t3)", 0x800e00e7),
        (Inst::Amo { op: AmoOp::Add, width: AmoWidth::W, aqrl: false, rd: XReg::A0, rs1: XReg::T1, rs2: XReg::A1 }, "amoadd.w a0, a1, (t1)", 0x00b3252f),
        (Inst::Amo { op: AmoOp::Swap, width: AmoWidth::D, aqrl: true, rd: XReg::A0, rs1: XReg::T1, rs2: XReg::A1 }, "amoswap.d.aqrl a0, a1, (t1)", 0x0eb3352f),
        (Inst::Amo { op: AmoOp::Xor, width: AmoWidth::W, aqrl: true, rd: XReg::A0, rs1: XReg::T1, rs2: XReg::ZERO }, "amoxor.w.aqrl a0, zero, (t1)", 0x2603252f),
        (Inst::Amo { op: AmoOp::And, width: AmoWidth::D, aqrl: false, rd: XReg::A5, rs1: XReg::T1, rs2: XReg::A5 }, "amoand.d a5, a5, (t1)", 0x60f337af),
        (Inst::Amo { op: AmoOp::Or, width: AmoWidth::W, aqrl: true, rd: XReg::S1, rs1: XReg::T1, rs2: XReg::S1 }, "amoor.w.aqrl s1, s1, (t1)", 0x469324af),
        (Inst::Lr { width: AmoWidth::W, rd: XReg::T3, rs1: XReg::T1 }, "lr.w.aqrl t3, (t1)", 0x16032e2f),
        (Inst::Lr { width: AmoWidth::D, rd: XReg::T3, rs1: XReg::T1 }, "lr.d.aqrl t3, (t1)", 0x16033e2f),
        (Inst::Sc { width: AmoWidth::W, rd: XReg::T0, rs1: XReg::T1, rs2: XReg::A1 }, "sc.w.aqrl t0, a1, (t1)", 0x1eb322af),
        (Inst::Sc { width: AmoWidth::D, rd: XReg::T0, rs1: XReg::T1, rs2: XReg::A1 }, "sc.d.aqrl t0, a1, (t1)", 0x1eb332af),
        (Inst::Ebreak, "ebreak", 0x00100073),
        (Inst::R { op: ROp::Sub, rd: XReg::A5, rs1: XReg::ZERO, rs2: XReg::A5 }, "sub a5, zero, a5", 0x40f007b3),
        (Inst::R { op: ROp::Subw, rd: XReg::A5, rs1: XReg::ZERO, rs2: XReg::A5 }, "subw a5, zero, a5", 0x40f007bb),
        (Inst::R { op: ROp::Sltu, rd: XReg::A0, rs1: XReg::ZERO, rs2: XReg::A1 }, "sltu a0, zero, a1", 0x00b03533),
        (Inst::Branch { op: BranchOp::Beq, rs1: XReg::A0, rs2: XReg::ZERO, off: Imm13::new(16).unwrap() }, "beq a0, zero, 16", 0x00050863),
        (Inst::Branch { op: BranchOp::Blt, rs1: XReg::A0, rs2: XReg::ZERO, off: Imm13::new(16).unwrap() }, "blt a0, zero, 16", 0x00054863),
        (Inst::Branch { op: BranchOp::Bge, rs1: XReg::A0, rs2: XReg::ZERO, off: Imm13::new(16).unwrap() }, "bge a0, zero, 16", 0x00055863),
        (Inst::Branch { op: BranchOp::Bge, rs1: XReg::ZERO, rs2: XReg::A0, off: Imm13::new(16).unwrap() }, "bge zero, a0, 16", 0x00a05863),
        (Inst::Branch { op: BranchOp::Blt, rs1: XReg::ZERO, rs2: XReg::A0, off: Imm13::new(16).unwrap() }, "blt zero, a0, 16", 0x00a04863),
        (Inst::Jalr { rd: XReg::RA, rs1: XReg::T3, imm: i12(0) }, "jalr ra, 0(t3)", 0x000e00e7),
        (Inst::I { op: IOp::Addi, rd: XReg::A0, rs1: XReg::ZERO, imm: i12(-5) }, "addi a0, zero, -5", 0xffb00513),
        (Inst::I { op: IOp::Addiw, rd: XReg::A0, rs1: XReg::A0, imm: i12(0) }, "addiw a0, a0, 0", 0x0005051b),
        (Inst::Jal { rd: XReg::ZERO, off: Imm21::new(64).unwrap() }, "jal zero, 64", 0x0400006f),
        (Inst::Jalr { rd: XReg::ZERO, rs1: XReg::RA, imm: i12(0) }, "jalr zero, 0(ra)", 0x00008067),
        (Inst::I { op: IOp::Addi, rd: XReg::ZERO, rs1: XReg::ZERO, imm: i12(0) }, "addi zero, zero, 0", 0x00000013),
        (Inst::I { op: IOp::Addi, rd: XReg::A0, rs1: XReg::A1, imm: i12(0) }, "addi a0, a1, 0", 0x00058513),
    ]
}

#[test]
fn every_form_encodes_as_llvm_assembles_it() {
    for (inst, asm, word) in table() {
        assert_eq!(inst.encode(), word, "{asm}: ours {:#010x}, llvm-mc {word:#010x}", inst.encode());
    }
}

#[test]
fn printed_text_matches_capstone() {
    let cs = capstone();
    for (inst, asm, word) in table() {
        assert_eq!(inst.to_string(), capstone_text(&cs, word), "row {asm}");
    }
}

#[test]
fn table_covers_every_operation() {
    let t = table();
    let has = |f: &dyn Fn(&Inst) -> bool| t.iter().any(|(i, _, _)| f(i));
    for op in [
        ROp::Add,
        ROp::Sub,
        ROp::Sll,
        ROp::Slt,
        ROp::Sltu,
        ROp::Xor,
        ROp::Srl,
        ROp::Sra,
        ROp::Or,
        ROp::And,
        ROp::Mul,
        ROp::Div,
        ROp::Divu,
        ROp::Rem,
        ROp::Remu,
        ROp::Addw,
        ROp::Subw,
        ROp::Sllw,
        ROp::Srlw,
        ROp::Sraw,
        ROp::Mulw,
        ROp::Divw,
        ROp::Divuw,
        ROp::Remw,
        ROp::Remuw,
    ] {
        assert!(has(&|i| matches!(i, Inst::R { op: o, .. } if *o == op)), "{op:?}");
    }
    for op in [BranchOp::Beq, BranchOp::Bne, BranchOp::Blt, BranchOp::Bge, BranchOp::Bltu, BranchOp::Bgeu] {
        assert!(has(&|i| matches!(i, Inst::Branch { op: o, .. } if *o == op)), "{op:?}");
    }
    for op in [LoadOp::Lb, LoadOp::Lh, LoadOp::Lw, LoadOp::Ld, LoadOp::Lbu, LoadOp::Lhu, LoadOp::Lwu] {
        assert!(has(&|i| matches!(i, Inst::Load { op: o, .. } if *o == op)), "{op:?}");
    }
    for op in [AmoOp::Add, AmoOp::Swap, AmoOp::Xor, AmoOp::And, AmoOp::Or] {
        assert!(has(&|i| matches!(i, Inst::Amo { op: o, .. } if *o == op)), "{op:?}");
    }
}
