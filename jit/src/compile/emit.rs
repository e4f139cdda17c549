//! One emitter per BPF idea: immediates, 32-bit zero-extension, ALU operations, division
//! fix-ups, byte swaps, jumps, memory access and atomics.
//!
//! Every emitter leaves BPF registers exactly as the kernel's semantics require and may
//! clobber only the scratch registers of [`super::regs`].

use bpf::{AluOp, AtomicOp, ByteOrder, Cond, Operand, Reg, Size, SxBits, Width};

use crate::rv64::{
    AmoOp, AmoWidth, BranchOp, IOp, Imm12, Imm13, Imm20, Inst, LoadOp, ROp, ShiftOp, StoreOp, XReg,
};

use super::layout::{Label, Layout};
use super::regs::{map, TMP1, TMP2, TMP3, TMP_SC};
use crate::bugs::Bug;

fn i12(v: i64) -> Imm12 {
    Imm12::new(v).expect("caller checked the range")
}

fn sext12(v: i64) -> i64 {
    ((v & 0xfff) ^ 0x800) - 0x800
}

/// `rd = val`, in as few instructions as the kernel's scheme needs: `addi`, `lui`+`addiw`
/// for 32-bit signed values, and for wider values the upper part built recursively, then
/// shifted, then the low 12 bits added. Arithmetic is modulo 2^64, which is what makes
/// the recursion exact for every value, `i64::MAX` and `i64::MIN` included.
pub fn emit_imm(l: &mut Layout, rd: XReg, val: i64) {
    if let Some(i) = Imm12::new(val) {
        l.push(Inst::I { op: IOp::Addi, rd, rs1: XReg::ZERO, imm: i });
        return;
    }
    if val == 2048 && l.bugs.has(Bug::Imm2048As12Bit) {
        l.push(Inst::I { op: IOp::Addi, rd, rs1: XReg::ZERO, imm: i12(-2048) });
        return;
    }
    let u32_bug = l.bugs.has(Bug::ImmU32SignExtended) && (0x8000_0000..=0xffff_ffff).contains(&val);
    if val == val as i32 as i64 || u32_bug {
        // lui's result is sign-extended from bit 31 and addiw wraps at 32 bits, so this is
        // exact even when rounding the upper part overflows (0x7ffff800 and the like).
        let lo = sext12(val);
        let carry = if l.bugs.has(Bug::ImmBit11Carry) { 0 } else { lo };
        let hi = ((val - carry) >> 12) as i32;
        let hi = ((hi << 12) >> 12) as i64;
        l.push(Inst::Lui { rd, imm: Imm20::new(hi).expect("20-bit upper part") });
        if lo != 0 {
            l.push(Inst::I { op: IOp::Addiw, rd, rs1: rd, imm: i12(lo) });
        }
        return;
    }
    let lo = sext12(val);
    let upper = val.wrapping_sub(lo) >> 12;
    let shift = upper.trailing_zeros();
    emit_imm(l, rd, upper >> shift);
    l.push(Inst::Shift { op: ShiftOp::Slli, rd, rs1: rd, shamt: (shift + 12) as u8 });
    if lo != 0 {
        l.push(Inst::I { op: IOp::Addi, rd, rs1: rd, imm: i12(lo) });
    }
}

/// `rd = rs & 0xffff_ffff`.
pub fn emit_zext32(l: &mut Layout, rd: XReg, rs: XReg) {
    l.push(Inst::Shift { op: ShiftOp::Slli, rd, rs1: rs, shamt: 32 });
    l.push(Inst::Shift { op: ShiftOp::Srli, rd, rs1: rd, shamt: 32 });
}

/// `rd = (i32) rs` sign-extended to 64 bits.
pub fn emit_sext32(l: &mut Layout, rd: XReg, rs: XReg) {
    l.push(Inst::I { op: IOp::Addiw, rd, rs1: rs, imm: Imm12::ZERO });
}

fn r(l: &mut Layout, op: ROp, rd: XReg, rs1: XReg, rs2: XReg) {
    l.push(Inst::R { op, rd, rs1, rs2 });
}

/// The register-register RV64 operation for a BPF ALU operation at a width (`Mov` maps
/// to `add`, which callers never emit for it).
fn alu_rop(op: AluOp, width: Width) -> ROp {
    let w64 = width == Width::W64;
    match op {
        AluOp::Add => pick(w64, ROp::Add, ROp::Addw),
        AluOp::Sub => pick(w64, ROp::Sub, ROp::Subw),
        AluOp::Mul => pick(w64, ROp::Mul, ROp::Mulw),
        AluOp::Div => pick(w64, ROp::Divu, ROp::Divuw),
        AluOp::Sdiv => pick(w64, ROp::Div, ROp::Divw),
        AluOp::Mod => pick(w64, ROp::Remu, ROp::Remuw),
        AluOp::Smod => pick(w64, ROp::Rem, ROp::Remw),
        AluOp::Or => ROp::Or,
        AluOp::And => ROp::And,
        AluOp::Xor => ROp::Xor,
        AluOp::Lsh => pick(w64, ROp::Sll, ROp::Sllw),
        AluOp::Rsh => pick(w64, ROp::Srl, ROp::Srlw),
        AluOp::Arsh => pick(w64, ROp::Sra, ROp::Sraw),
        AluOp::Mov => ROp::Add,
    }
}

fn pick<T>(w64: bool, a: T, b: T) -> T {
    if w64 {
        a
    } else {
        b
    }
}

/// `dst op= src` for every binary ALU operation, both widths and both operand forms.
/// 32-bit results are zero-extended.
pub fn emit_alu(l: &mut Layout, width: Width, op: AluOp, dst: Reg, src: Operand) {
    let rd = map(dst);
    let w64 = width == Width::W64;
    let arith = matches!(op, AluOp::Add | AluOp::Sub | AluOp::Mul | AluOp::Lsh | AluOp::Rsh | AluOp::Arsh);
    let logic = matches!(op, AluOp::And | AluOp::Or | AluOp::Xor);
    let shift = matches!(op, AluOp::Lsh | AluOp::Rsh | AluOp::Arsh);
    if !w64 && shift && src == Operand::Imm(0) && l.bugs.has(Bug::Shift32ByZeroNoZext) {
        return;
    }
    match src {
        Operand::Reg(s) => emit_alu_reg(l, width, op, rd, map(s)),
        Operand::Imm(imm) => emit_alu_imm(l, width, op, rd, imm as i64),
    }
    let skip = (arith && l.bugs.has(Bug::Alu32ArithNoZext)) || (logic && l.bugs.has(Bug::Alu32LogicNoZext));
    if !w64 && !skip {
        emit_zext32(l, rd, rd);
    }
}

fn emit_alu_reg(l: &mut Layout, width: Width, op: AluOp, rd: XReg, rs: XReg) {
    match op {
        AluOp::Mov => {
            if rd != rs {
                l.push(Inst::mv(rd, rs));
            }
        }
        AluOp::Div | AluOp::Sdiv => emit_div_checked(l, width, op, rd, rs),
        _ => r(l, alu_rop(op, width), rd, rd, rs),
    }
}

/// Division by a register with the BPF rule "x / 0 = 0" (RISC-V gives all ones). For
/// 32-bit division only the low 32 bits of the divisor count. The remainder needs no
/// fix-up: RISC-V's `x % 0 = x` is BPF's rule for 64 bits, and for 32 bits the caller's
/// zero-extension gives BPF's "low 32 bits kept, upper zeroed".
fn emit_div_checked(l: &mut Layout, width: Width, op: AluOp, rd: XReg, rs: XReg) {
    if l.bugs.has(Bug::DivByZeroNoFixup) {
        return r(l, alu_rop(op, width), rd, rd, rs);
    }
    let test = if width == Width::W64 || l.bugs.has(Bug::Div32ChecksUpperBits) {
        rs
    } else {
        l.push(Inst::Shift { op: ShiftOp::Slli, rd: TMP1, rs1: rs, shamt: 32 });
        TMP1
    };
    // bnez test, +12; li rd, 0; j +8; div rd, rd, rs
    let b = |off| Imm13::new(off).expect("small");
    l.push(Inst::Branch { op: BranchOp::Bne, rs1: test, rs2: XReg::ZERO, off: b(12) });
    l.push(Inst::mv(rd, XReg::ZERO));
    l.push(Inst::Jal { rd: XReg::ZERO, off: crate::rv64::Imm21::new(8).expect("small") });
    r(l, alu_rop(op, width), rd, rd, rs);
}

fn emit_alu_imm(l: &mut Layout, width: Width, op: AluOp, rd: XReg, imm: i64) {
    let w64 = width == Width::W64;
    let iop = |l: &mut Layout, iop: IOp, v: i64, rop: ROp| {
        if let Some(i) = Imm12::new(v) {
            l.push(Inst::I { op: iop, rd, rs1: rd, imm: i });
        } else {
            emit_imm(l, TMP1, imm);
            r(l, rop, rd, rd, TMP1);
        }
    };
    match op {
        AluOp::Mov => emit_imm(l, rd, if w64 { imm } else { imm as u32 as i64 }),
        AluOp::Add => iop(l, pick(w64, IOp::Addi, IOp::Addiw), imm, alu_rop(op, width)),
        // Subtracting -2048 cannot be an addi of +2048: that takes the register path.
        AluOp::Sub if imm == -2048 && l.bugs.has(Bug::SubMinus2048) => {
            l.push(Inst::I { op: pick(w64, IOp::Addi, IOp::Addiw), rd, rs1: rd, imm: i12(-2048) })
        }
        AluOp::Sub => iop(l, pick(w64, IOp::Addi, IOp::Addiw), -imm, alu_rop(op, width)),
        AluOp::And => iop(l, IOp::Andi, imm, ROp::And),
        AluOp::Or => iop(l, IOp::Ori, imm, ROp::Or),
        AluOp::Xor => iop(l, IOp::Xori, imm, ROp::Xor),
        AluOp::Lsh | AluOp::Rsh | AluOp::Arsh => {
            let sop = match (op, w64) {
                (AluOp::Lsh, true) => ShiftOp::Slli,
                (AluOp::Rsh, true) => ShiftOp::Srli,
                (_, true) => ShiftOp::Srai,
                (AluOp::Lsh, false) => ShiftOp::Slliw,
                (AluOp::Rsh, false) => ShiftOp::Srliw,
                (_, false) => ShiftOp::Sraiw,
            };
            let shamt = (imm & if w64 { 63 } else { 31 }) as u8;
            l.push(Inst::Shift { op: sop, rd, rs1: rd, shamt });
        }
        AluOp::Div | AluOp::Sdiv if imm == 0 => l.push(Inst::mv(rd, XReg::ZERO)),
        // x % 0 = x: nothing to do (the caller zero-extends 32-bit results).
        AluOp::Mod | AluOp::Smod if imm == 0 => {}
        AluOp::Mul | AluOp::Div | AluOp::Sdiv | AluOp::Mod | AluOp::Smod => {
            emit_imm(l, TMP1, imm);
            r(l, alu_rop(op, width), rd, rd, TMP1);
        }
    }
}

/// `dst = -dst`.
pub fn emit_neg(l: &mut Layout, width: Width, dst: Reg) {
    let rd = map(dst);
    if width == Width::W64 {
        r(l, ROp::Sub, rd, XReg::ZERO, rd);
    } else {
        r(l, ROp::Subw, rd, XReg::ZERO, rd);
        if !l.bugs.has(Bug::Alu32ArithNoZext) {
            emit_zext32(l, rd, rd);
        }
    }
}

/// `dst = (sN) src`, zero-extended afterwards for the 32-bit form.
pub fn emit_movsx(l: &mut Layout, width: Width, from: SxBits, dst: Reg, src: Reg) {
    let (rd, rs) = (map(dst), map(src));
    match from {
        SxBits::S32 => emit_sext32(l, rd, rs),
        _ => {
            let sh = (64 - from.bits()) as u8;
            l.push(Inst::Shift { op: ShiftOp::Slli, rd, rs1: rs, shamt: sh });
            l.push(Inst::Shift { op: ShiftOp::Srai, rd, rs1: rd, shamt: sh });
        }
    }
    if width == Width::W32 {
        emit_zext32(l, rd, rd);
    }
}

/// Byte-order conversion. `le` truncates (a no-op for 64 bits); `be` and `bswap` reverse
/// the low `bits / 8` bytes into a zero-extended result, without Zbb.
pub fn emit_end(l: &mut Layout, order: ByteOrder, bits: u8, dst: Reg) {
    let rd = map(dst);
    if order == ByteOrder::Le {
        match bits {
            16 => {
                l.push(Inst::Shift { op: ShiftOp::Slli, rd, rs1: rd, shamt: 48 });
                l.push(Inst::Shift { op: ShiftOp::Srli, rd, rs1: rd, shamt: 48 });
            }
            32 => emit_zext32(l, rd, rd),
            _ => {}
        }
        return;
    }
    // TMP1 accumulates; each step moves the lowest remaining byte of rd into it.
    let bytes = bits / 8;
    for k in 0..bytes {
        l.push(Inst::I { op: IOp::Andi, rd: TMP2, rs1: rd, imm: i12(0xff) });
        if k == 0 {
            l.push(Inst::mv(TMP1, TMP2));
        } else {
            l.push(Inst::Shift { op: ShiftOp::Slli, rd: TMP1, rs1: TMP1, shamt: 8 });
            r(l, ROp::Or, TMP1, TMP1, TMP2);
        }
        if k + 1 < bytes {
            l.push(Inst::Shift { op: ShiftOp::Srli, rd, rs1: rd, shamt: 8 });
        }
    }
    l.push(Inst::mv(rd, TMP1));
}

/// `if dst cond src goto target`. 32-bit compares work on copies zero-extended (unsigned
/// conditions, equality, bit test) or sign-extended (signed conditions); `dst` and `src`
/// are never modified.
pub fn emit_cond_jump(l: &mut Layout, width: Width, cond: Cond, dst: Reg, src: Operand, target: Label) {
    let signed = matches!(cond, Cond::Sgt | Cond::Sge | Cond::Slt | Cond::Sle);
    let w32 = width == Width::W32;
    let mut a = map(dst);
    let mut b = match src {
        Operand::Reg(s) => map(s),
        Operand::Imm(0) => XReg::ZERO,
        Operand::Imm(imm) => {
            let zext = (w32 && !signed) || (!w32 && l.bugs.has(Bug::JmpImmZeroExtended));
            let v = if zext { imm as u32 as i64 } else { imm as i64 };
            emit_imm(l, TMP1, v);
            TMP1
        }
    };
    if w32 {
        if signed {
            emit_sext32(l, TMP2, a);
            if let Operand::Reg(_) = src {
                emit_sext32(l, TMP1, b);
                b = TMP1;
            }
        } else if cond != Cond::Set {
            emit_zext32(l, TMP2, a);
            if let Operand::Reg(_) = src {
                emit_zext32(l, TMP1, b);
                b = TMP1;
            }
        }
        if cond != Cond::Set {
            a = TMP2;
        }
    }
    let (op, x, y) = match cond {
        Cond::Eq => (BranchOp::Beq, a, b),
        Cond::Ne => (BranchOp::Bne, a, b),
        Cond::Gt => (BranchOp::Bltu, b, a),
        Cond::Ge => (BranchOp::Bgeu, a, b),
        Cond::Lt => (BranchOp::Bltu, a, b),
        Cond::Le => (BranchOp::Bgeu, b, a),
        Cond::Sgt => (BranchOp::Blt, b, a),
        Cond::Sge => (BranchOp::Bge, a, b),
        Cond::Slt => (BranchOp::Blt, a, b),
        Cond::Sle => (BranchOp::Bge, b, a),
        Cond::Set => {
            let t = if l.bugs.has(Bug::JsetClobbersDst) { a } else { TMP1 };
            r(l, ROp::And, t, a, b);
            let reg = matches!(src, Operand::Reg(_));
            if w32 && !(reg && l.bugs.has(Bug::Jmp32JsetUpperBits)) {
                l.push(Inst::Shift { op: ShiftOp::Slli, rd: t, rs1: t, shamt: 32 });
            }
            (BranchOp::Bne, t, XReg::ZERO)
        }
    };
    l.branch(op, x, y, target);
}

/// The register and 12-bit offset addressing `base + off`, materialising the address in
/// TMP1 when the offset does not fit.
fn address(l: &mut Layout, base: Reg, off: i16) -> (XReg, Imm12) {
    let rb = map(base);
    match Imm12::new(off as i64) {
        Some(i) => (rb, i),
        None if l.bugs.has(Bug::LargeOffsetTruncated) => (rb, i12(sext12(off as i64))),
        None => {
            emit_imm(l, TMP1, off as i64);
            r(l, ROp::Add, TMP1, TMP1, rb);
            (TMP1, Imm12::ZERO)
        }
    }
}

/// `dst = *(size *)(src + off)`, zero- or (`signed`) sign-extending.
pub fn emit_load(l: &mut Layout, size: Size, signed: bool, dst: Reg, src: Reg, off: i16) {
    let (base, imm) = address(l, src, off);
    let op = match (size, signed) {
        (Size::B, false) => LoadOp::Lbu,
        (Size::H, false) => LoadOp::Lhu,
        (Size::W, false) => LoadOp::Lwu,
        (Size::B, true) if l.bugs.has(Bug::LdsxByteZeroExtended) => LoadOp::Lbu,
        (Size::B, true) => LoadOp::Lb,
        (Size::H, true) => LoadOp::Lh,
        (Size::W, true) => LoadOp::Lw,
        (Size::DW, _) => LoadOp::Ld,
    };
    l.push(Inst::Load { op, rd: map(dst), rs1: base, imm });
}

fn store_op(size: Size) -> StoreOp {
    match size {
        Size::B => StoreOp::Sb,
        Size::H => StoreOp::Sh,
        Size::W => StoreOp::Sw,
        Size::DW => StoreOp::Sd,
    }
}

/// `*(size *)(dst + off) = src`.
pub fn emit_store(l: &mut Layout, size: Size, dst: Reg, src: Reg, off: i16) {
    let (base, imm) = address(l, dst, off);
    l.push(Inst::Store { op: store_op(size), rs2: map(src), rs1: base, imm });
}

/// `*(size *)(dst + off) = imm` (the immediate sign-extended, then truncated to `size`).
pub fn emit_store_imm(l: &mut Layout, size: Size, dst: Reg, off: i16, imm: i32) {
    let val = if imm == 0 {
        XReg::ZERO
    } else {
        emit_imm(l, TMP2, imm as i64);
        TMP2
    };
    let (base, i) = address(l, dst, off);
    l.push(Inst::Store { op: store_op(size), rs2: val, rs1: base, imm: i });
}

/// Atomic read-modify-write on `*(size *)(dst + off)`. Fetched 32-bit values are
/// zero-extended (RISC-V's `.w` forms sign-extend them).
pub fn emit_atomic(l: &mut Layout, size: Size, op: AtomicOp, dst: Reg, src: Reg, off: i16) {
    let width = if size == Size::W { AmoWidth::W } else { AmoWidth::D };
    let addr = if off == 0 {
        map(dst)
    } else {
        let (base, imm) = address(l, dst, off);
        l.push(Inst::I { op: IOp::Addi, rd: TMP1, rs1: base, imm });
        TMP1
    };
    let rs = map(src);
    let (amo, fetch) = match op {
        AtomicOp::Add => (AmoOp::Add, false),
        AtomicOp::Or => (AmoOp::Or, false),
        AtomicOp::And => (AmoOp::And, false),
        AtomicOp::Xor => (AmoOp::Xor, false),
        AtomicOp::FetchAdd => (AmoOp::Add, true),
        AtomicOp::FetchOr => (AmoOp::Or, true),
        AtomicOp::FetchAnd => (AmoOp::And, true),
        AtomicOp::FetchXor => (AmoOp::Xor, true),
        AtomicOp::Xchg => (AmoOp::Swap, true),
        AtomicOp::Cmpxchg => return emit_cmpxchg(l, width, addr, rs),
    };
    let rd = if fetch { rs } else { XReg::ZERO };
    l.push(Inst::Amo { op: amo, width, aqrl: fetch, rd, rs1: addr, rs2: rs });
    if fetch && width == AmoWidth::W && !l.bugs.has(Bug::Atomic32FetchNoZext) {
        emit_zext32(l, rs, rs);
    }
}

/// `r0 = cmpxchg(addr, r0, src)` as an `lr`/`sc` loop; for 32 bits the comparison uses
/// R0's low 32 bits and the old value returned in R0 is zero-extended.
fn emit_cmpxchg(l: &mut Layout, width: AmoWidth, addr: XReg, rs: XReg) {
    let r0 = map(Reg::R0);
    if width == AmoWidth::W {
        emit_sext32(l, TMP2, r0);
    } else {
        l.push(Inst::mv(TMP2, r0));
    }
    let b = |off| Imm13::new(off).expect("small");
    l.push(Inst::Lr { width, rd: TMP3, rs1: addr });
    l.push(Inst::Branch { op: BranchOp::Bne, rs1: TMP3, rs2: TMP2, off: b(12) });
    l.push(Inst::Sc { width, rd: TMP_SC, rs1: addr, rs2: rs });
    l.push(Inst::Branch { op: BranchOp::Bne, rs1: TMP_SC, rs2: XReg::ZERO, off: b(-12) });
    if width == AmoWidth::W && !l.bugs.has(Bug::Cmpxchg32NoZext) {
        emit_zext32(l, r0, TMP3);
    } else {
        l.push(Inst::mv(r0, TMP3));
    }
}
