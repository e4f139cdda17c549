//! Programs as C arrays of the kernel's instruction macros (`include/linux/filter.h`), to
//! paste into lib/test_bpf.c or a selftest. Common instructions get their named macro;
//! the rest `BPF_RAW_INSN`, which every kernel accepts. Each line carries the
//! instruction in LLVM syntax as a comment.

use crate::insn::{AluOp, Call, Cond, Insn, Operand, Reg, Size, Width};
use crate::program::Program;
use crate::set::PSEUDO_MAP_FD;

fn reg(r: Reg) -> String {
    format!("BPF_REG_{}", r.num())
}

fn alu_op(op: AluOp) -> Option<&'static str> {
    Some(match op {
        AluOp::Add => "BPF_ADD",
        AluOp::Sub => "BPF_SUB",
        AluOp::Mul => "BPF_MUL",
        AluOp::Div => "BPF_DIV",
        AluOp::Mod => "BPF_MOD",
        AluOp::Or => "BPF_OR",
        AluOp::And => "BPF_AND",
        AluOp::Xor => "BPF_XOR",
        AluOp::Lsh => "BPF_LSH",
        AluOp::Rsh => "BPF_RSH",
        AluOp::Arsh => "BPF_ARSH",
        AluOp::Mov | AluOp::Sdiv | AluOp::Smod => return None,
    })
}

fn cond(c: Cond) -> &'static str {
    match c {
        Cond::Eq => "BPF_JEQ",
        Cond::Ne => "BPF_JNE",
        Cond::Gt => "BPF_JGT",
        Cond::Ge => "BPF_JGE",
        Cond::Lt => "BPF_JLT",
        Cond::Le => "BPF_JLE",
        Cond::Sgt => "BPF_JSGT",
        Cond::Sge => "BPF_JSGE",
        Cond::Slt => "BPF_JSLT",
        Cond::Sle => "BPF_JSLE",
        Cond::Set => "BPF_JSET",
    }
}

fn size(s: Size) -> &'static str {
    match s {
        Size::B => "BPF_B",
        Size::H => "BPF_H",
        Size::W => "BPF_W",
        Size::DW => "BPF_DW",
    }
}

/// The macro for one instruction (two slots for `lddw`).
pub fn insn_macro(insn: &Insn) -> String {
    let w = |width: Width| if width == Width::W64 { "64" } else { "32" };
    let jw = |width: Width| if width == Width::W64 { "" } else { "32" };
    match *insn {
        Insn::Alu { width, op: AluOp::Mov, dst, src: Operand::Imm(i) } => {
            format!("BPF_MOV{}_IMM({}, {i})", w(width), reg(dst))
        }
        Insn::Alu { width, op: AluOp::Mov, dst, src: Operand::Reg(s) } => {
            format!("BPF_MOV{}_REG({}, {})", w(width), reg(dst), reg(s))
        }
        Insn::Alu { width, op, dst, src } if alu_op(op).is_some() => {
            let name = alu_op(op).expect("checked");
            match src {
                Operand::Imm(i) => format!("BPF_ALU{}_IMM({name}, {}, {i})", w(width), reg(dst)),
                Operand::Reg(s) => format!("BPF_ALU{}_REG({name}, {}, {})", w(width), reg(dst), reg(s)),
            }
        }
        Insn::Ja { off } => format!("BPF_JMP_A({off})"),
        Insn::Jmp { width, cond: c, dst, src, off } => match src {
            Operand::Imm(i) => format!("BPF_JMP{}_IMM({}, {}, {i}, {off})", jw(width), cond(c), reg(dst)),
            Operand::Reg(s) => {
                format!("BPF_JMP{}_REG({}, {}, {}, {off})", jw(width), cond(c), reg(dst), reg(s))
            }
        },
        Insn::Load { size: sz, signed: false, dst, src, off } => {
            format!("BPF_LDX_MEM({}, {}, {}, {off})", size(sz), reg(dst), reg(src))
        }
        Insn::Store { size: sz, dst, src, off } => {
            format!("BPF_STX_MEM({}, {}, {}, {off})", size(sz), reg(dst), reg(src))
        }
        Insn::StoreImm { size: sz, dst, off, imm } => {
            format!("BPF_ST_MEM({}, {}, {off}, {imm})", size(sz), reg(dst))
        }
        Insn::LdImm64 { dst, pseudo: 0, imm } => format!("BPF_LD_IMM64({}, {:#x}ULL)", reg(dst), imm),
        Insn::LdImm64 { dst, pseudo: PSEUDO_MAP_FD, imm } => {
            format!("BPF_LD_MAP_FD({}, {imm} /* map fd */)", reg(dst))
        }
        Insn::Call(Call::Helper(id)) => format!("BPF_RAW_INSN(BPF_JMP | BPF_CALL, 0, 0, 0, {id})"),
        Insn::Call(Call::Local(off)) => format!("BPF_CALL_REL({off})"),
        Insn::Call(Call::Kfunc(id)) => {
            let name =
                crate::helpers::kfunc_prototype(id).map_or(String::new(), |p| format!(" /* {} */", p.name));
            format!("BPF_RAW_INSN(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_KFUNC_CALL, 0, {id}{name})")
        }
        Insn::Exit => "BPF_EXIT_INSN()".into(),
        _ => {
            let raw = insn.encode();
            let r = raw[0];
            format!("BPF_RAW_INSN({:#04x}, {}, {}, {}, {})", r.code, r.dst, r.src, r.off, r.imm)
        }
    }
}

/// A program as the body of a `struct bpf_insn` array: one macro per line, with the
/// LLVM text as a comment.
pub fn program_macros(prog: &Program) -> String {
    let mut s = String::new();
    for insn in prog.insns() {
        s += &format!("\t{},\t/* {insn} */\n", insn_macro(insn));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::parse;

    #[test]
    fn common_instructions_get_their_kernel_macros() {
        let insns = parse(
            "r0 = 1\nw1 = w2\nw0 += -1\nr3 <<= r4\nif w1 & 0x10 goto +1\nr0 = *(u32 *)(r1 + 4)\n\
             *(u64 *)(r10 - 8) = r0\n*(u8 *)(r10 - 1) = 7\nr2 = 0x100000000 ll\ncall 5\nr0 = (s8)r1\nexit\n",
        )
        .unwrap();
        let lines: Vec<String> = insns.iter().map(insn_macro).collect();
        assert_eq!(
            lines,
            [
                "BPF_MOV64_IMM(BPF_REG_0, 1)",
                "BPF_MOV32_REG(BPF_REG_1, BPF_REG_2)",
                "BPF_ALU32_IMM(BPF_ADD, BPF_REG_0, -1)",
                "BPF_ALU64_REG(BPF_LSH, BPF_REG_3, BPF_REG_4)",
                "BPF_JMP32_IMM(BPF_JSET, BPF_REG_1, 16, 1)",
                "BPF_LDX_MEM(BPF_W, BPF_REG_0, BPF_REG_1, 4)",
                "BPF_STX_MEM(BPF_DW, BPF_REG_10, BPF_REG_0, -8)",
                "BPF_ST_MEM(BPF_B, BPF_REG_10, -1, 7)",
                "BPF_LD_IMM64(BPF_REG_2, 0x100000000ULL)",
                "BPF_RAW_INSN(BPF_JMP | BPF_CALL, 0, 0, 0, 5)",
                // movsx: BPF_ALU64 | BPF_MOV | BPF_X = 0xbf, off = 8.
                "BPF_RAW_INSN(0xbf, 0, 1, 8, 0)",
                "BPF_EXIT_INSN()",
            ]
        );
        let prog = Program::new(insns).unwrap();
        assert!(program_macros(&prog).starts_with("\tBPF_MOV64_IMM(BPF_REG_0, 1),\t/* r0 = 1 */\n"));
        // A kfunc call: src_reg BPF_PSEUDO_KFUNC_CALL, the kfunc's id as imm.
        let k = parse("call kfunc:jitdiff_kcounter\ncall kfunc:7\n").unwrap();
        let lines: Vec<String> = k.iter().map(insn_macro).collect();
        assert_eq!(
            lines,
            [
                "BPF_RAW_INSN(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_KFUNC_CALL, 0, 131073 /* jitdiff_kcounter */)",
                "BPF_RAW_INSN(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_KFUNC_CALL, 0, 7)",
            ]
        );
    }
}
