//! Which registers may still be read after each instruction: a backward dataflow over the
//! program, so that the interpretation forgets what no path reads again, as the kernel's
//! verifier does, and states that differ only there are one.

use crate::insn::{AtomicOp, Call, Insn, Operand, Reg};
use crate::program::Program;

/// Bit `r` for register `r`.
const fn bit(r: Reg) -> u16 {
    1 << r.num()
}

/// R1-R5, which calls take.
const ARGS: u16 = 0b11_1110;

/// R0-R5, which calls leave undefined or set.
const CLOBBERED: u16 = 0b11_1111;

/// The registers `insn` reads and the registers it writes.
fn uses_defs(insn: &Insn) -> (u16, u16) {
    let reg = |o: Operand| match o {
        Operand::Reg(r) => bit(r),
        Operand::Imm(_) => 0,
    };
    match *insn {
        Insn::Alu { op: crate::insn::AluOp::Mov, dst, src, .. } => (reg(src), bit(dst)),
        Insn::Alu { dst, src, .. } => (bit(dst) | reg(src), bit(dst)),
        Insn::Neg { dst, .. } | Insn::End { dst, .. } => (bit(dst), bit(dst)),
        Insn::MovSx { dst, src, .. } => (bit(src), bit(dst)),
        Insn::LdImm64 { dst, .. } => (0, bit(dst)),
        Insn::Load { dst, src, .. } => (bit(src), bit(dst)),
        Insn::StoreImm { dst, .. } => (bit(dst), 0),
        Insn::Store { dst, src, .. } => (bit(dst) | bit(src), 0),
        Insn::Atomic { op: AtomicOp::Cmpxchg, dst, src, .. } => {
            (bit(dst) | bit(src) | bit(Reg::R0), bit(Reg::R0))
        }
        Insn::Atomic { dst, src, .. } => (bit(dst) | bit(src), insn.written_reg().map_or(0, bit)),
        Insn::Ja { .. } | Insn::JaLong { .. } => (0, 0),
        Insn::Jmp { dst, src, .. } => (bit(dst) | reg(src), 0),
        Insn::Call(Call::Local(_) | Call::Helper(_) | Call::Kfunc(_)) | Insn::TailCall => (ARGS, CLOBBERED),
        Insn::Exit => (bit(Reg::R0), 0),
        Insn::LoadPacket { index, .. } => (bit(Reg::R6) | index.map_or(0, bit), CLOBBERED),
    }
}

/// For each instruction of `prog`, the registers some path from it may read before
/// writing them (R10 always).
pub(super) fn live_in(prog: &Program) -> Vec<u16> {
    let insns = prog.insns();
    let n = insns.len();
    let effects: Vec<(u16, u16)> = insns.iter().map(uses_defs).collect();
    let succs: Vec<[Option<usize>; 2]> = (0..n)
        .map(|i| {
            let falls = !matches!(insns[i], Insn::Exit | Insn::Ja { .. } | Insn::JaLong { .. });
            let jumps = !matches!(insns[i], Insn::Call(_));
            [(falls && i + 1 < n).then_some(i + 1), if jumps { prog.target_of(i) } else { None }]
        })
        .collect();
    let mut live = vec![bit(Reg::R10); n];
    loop {
        let mut changed = false;
        for i in (0..n).rev() {
            let out = succs[i].iter().flatten().fold(0, |acc, &s| acc | live[s]);
            let (uses, defs) = effects[i];
            let now = uses | (out & !defs) | bit(Reg::R10);
            if now != live[i] {
                live[i] = now;
                changed = true;
            }
        }
        if !changed {
            return live;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(text: &str) -> Vec<u16> {
        live_in(&crate::asm::parse_program(text).unwrap())
    }

    #[test]
    fn registers_are_live_until_their_last_read() {
        // r1 = 1; r2 = r1; r0 = r2; exit
        let l = live("r1 = 1\nr2 = r1\nr0 = r2\nexit\n");
        let r10 = bit(Reg::R10);
        assert_eq!(l, [r10, r10 | 0b10, r10 | 0b100, r10 | 0b1]);
        // A loop keeps its counter live around the back edge; a call reads R1-R5.
        let l = live("r7 = 3\nl:\nr7 -= 1\nif r7 != 0 goto l\nr0 = 0\nexit\n");
        assert!(l[1] & bit(Reg::R7) != 0 && l[2] & bit(Reg::R7) != 0 && l[3] & bit(Reg::R7) == 0);
        let l = live("r1 = 5\ncall f\nexit\nf:\nr0 = r1\nexit\n");
        assert_eq!(l[1] & ARGS, ARGS);
        assert_eq!(l[2], r10 | 1);
    }
}
