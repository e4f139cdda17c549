//! Instruction forms: the opcode-and-operand-form pairs of the ISA, for measuring how
//! much of it a generator reaches.

use bpf::insn::{AluOp, AtomicOp, ByteOrder, Call, Cond, Insn, Operand, Reg, Size, SxBits, Width};

/// A form: the first slot's opcode byte, plus the field that selects the operation when
/// the opcode alone does not (sdiv/smod and movsx `off`, atomic `imm`, END width, call
/// kind, `lddw` source).
pub type Form = (u8, i64);

/// The form of an instruction.
pub fn form_of(insn: &Insn) -> Form {
    let raw = insn.encode()[0];
    let extra = match insn {
        Insn::Alu { op: AluOp::Sdiv | AluOp::Smod, .. } => 1,
        Insn::MovSx { from, .. } => from.bits() as i64,
        Insn::Atomic { .. } => raw.imm as i64,
        Insn::End { bits, .. } => *bits as i64,
        Insn::LdImm64 { pseudo, .. } => *pseudo as i64,
        Insn::Call(c) => match c {
            Call::Helper(_) => 0,
            Call::Local(_) => 1,
            Call::Kfunc(_) => 2,
        },
        _ => 0,
    };
    (raw.code, extra)
}

/// Every form jitdiff's ISA has (kfunc calls and the kernel-internal tail-call opcode
/// excluded: the generator never makes them).
pub fn all_forms() -> Vec<Form> {
    let (r, imm) = (Reg::R1, Operand::Imm(1));
    let reg = Operand::Reg(Reg::R2);
    let mut v = Vec::new();
    for width in [Width::W32, Width::W64] {
        for op in AluOp::ALL {
            for src in [imm, reg] {
                v.push(Insn::Alu { width, op, dst: r, src });
            }
        }
        v.push(Insn::Neg { width, dst: r });
        for cond in Cond::ALL {
            for src in [imm, reg] {
                v.push(Insn::Jmp { width, cond, dst: r, src, off: 0 });
            }
        }
        let sx: &[SxBits] = if width == Width::W64 {
            &[SxBits::S8, SxBits::S16, SxBits::S32]
        } else {
            &[SxBits::S8, SxBits::S16]
        };
        for &from in sx {
            v.push(Insn::MovSx { width, from, dst: r, src: Reg::R2 });
        }
    }
    for order in [ByteOrder::Le, ByteOrder::Be, ByteOrder::Swap] {
        for bits in [16, 32, 64] {
            v.push(Insn::End { order, bits, dst: r });
        }
    }
    for size in Size::ALL {
        v.push(Insn::Load { size, signed: false, dst: r, src: Reg::R10, off: -8 });
        if size != Size::DW {
            v.push(Insn::Load { size, signed: true, dst: r, src: Reg::R10, off: -8 });
        }
        v.push(Insn::StoreImm { size, dst: Reg::R10, off: -8, imm: 1 });
        v.push(Insn::Store { size, dst: Reg::R10, src: r, off: -8 });
    }
    // legacy packet loads (tc and socket-filter sets)
    for size in [Size::B, Size::H, Size::W] {
        v.push(Insn::LoadPacket { size, index: None, imm: 0 });
        v.push(Insn::LoadPacket { size, index: Some(Reg::R2), imm: 0 });
    }
    for size in [Size::W, Size::DW] {
        for op in AtomicOp::ALL {
            v.push(Insn::Atomic { size, op, dst: Reg::R10, src: r, off: -8 });
        }
    }
    v.extend([
        Insn::Ja { off: 0 },
        Insn::JaLong { off: 0 },
        Insn::LdImm64 { dst: r, pseudo: 0, imm: 1 },
        Insn::LdImm64 { dst: r, pseudo: bpf::PSEUDO_MAP_FD, imm: 0 },
        Insn::Call(Call::Helper(1)),
        Insn::Call(Call::Local(0)),
        Insn::Exit,
    ]);
    let mut forms: Vec<Form> = v.iter().map(form_of).collect();
    forms.sort_unstable();
    forms.dedup();
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_distinct_per_operation() {
        let all = all_forms();
        // 2 widths x (14 ops x 2 + neg + 11 conds x 2) + movsx 5 + end 9 + memory 4x3+3
        // + legacy packet loads 3 sizes x (abs, ind) + atomics 20 + ja, gotol, two lddw,
        // helper and local call, exit.
        assert_eq!(all.len(), 2 * (28 + 1 + 22) + 5 + 9 + 15 + 6 + 20 + 7);
        assert_ne!(
            form_of(&Insn::Alu { width: Width::W64, op: AluOp::Div, dst: Reg::R1, src: Operand::Imm(1) }),
            form_of(&Insn::Alu { width: Width::W64, op: AluOp::Sdiv, dst: Reg::R1, src: Operand::Imm(1) })
        );
    }
}
