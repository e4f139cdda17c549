//! The four ways of keeping the tail-call counter (TCC) when bpf2bpf calls and tail
//! calls mix, from the bpf mailing-list thread "riscv, bpf: Mixing bpf2bpf and
//! tailcalls", and the design that landed in Linux 7.x. Each scheme decides where the count lives, what a function does with it
//! on entry, around calls, and at a tail call.
//!
//! The counter counts down from [`MAX_TAIL_CALL_CNT`]; a tail call that passes the index
//! check decrements it and fails when the result is negative, so at most 33 tail calls
//! succeed. Whether the decrement is kept when the slot turns out empty is the
//! [`bpf::EmptySlotRule`] the code is made for (kept under 6.12's rule, dropped under
//! today's).

use std::fmt;
use std::str::FromStr;

use crate::rv64::{BranchOp, IOp, Imm12, Inst, LoadOp, StoreOp, XReg};

use super::layout::{Label, Layout};
use super::regs::{TCC, TCC_SAVED};

/// The maximum number of tail calls, whose counter the prologue initialises.
pub const MAX_TAIL_CALL_CNT: i64 = 33;

/// Offset from `s0` of the frame slot reserved for the counter (stack scheme) or for the
/// counter itself (pointer scheme, in the entry program's frame).
pub const TCC_SLOT: i64 = -8;

/// A TCC scheme.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Björn Töpel's proposal: only the entry program initialises the count in `a6`;
    /// bpf2bpf calls pass `a6` through untouched, so a subprogram's tail calls consume
    /// the caller's budget; around helper calls the count waits in `s6`. Implements the
    /// `global` count semantics of today's kernel. The default.
    #[default]
    Register,
    /// The v1 patch: the count is passed in `a6` and every function stores it in its own
    /// frame slot; a caller passes its slot's value to a subprogram and, when the
    /// subprogram returns, goes on with its own slot, so the subprogram's tail calls do
    /// not count for the caller. Implements the `per-frame` semantics (the old x86-64
    /// behaviour).
    Stack,
    /// How x86-64 and arm64 fixed the "tailcall hierarchy" problem: the count lives in
    /// the entry program's frame and every function receives a pointer to it in `a6`
    /// (kept in `s6` around helper calls). Implements the `global` semantics.
    Pointer,
    /// The design that landed in Linux 7.x's RV64 JIT: the count is passed in `a6` and
    /// kept in a slot of every frame; a tail call counts in the slot, a bpf2bpf call
    /// reloads `a6` from the slot before it and writes `a6` back into the slot after it,
    /// and every epilogue reloads `a6` from the slot, so a subprogram's tail calls use up
    /// its caller's count. Helper calls may clobber `a6`: the slot is what counts.
    /// Implements the `global` semantics.
    Writeback,
}

impl Scheme {
    /// Every scheme.
    pub const ALL: [Scheme; 4] = [Scheme::Register, Scheme::Stack, Scheme::Pointer, Scheme::Writeback];

    /// The scheme's name on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Scheme::Register => "register",
            Scheme::Stack => "stack",
            Scheme::Pointer => "pointer",
            Scheme::Writeback => "writeback",
        }
    }

    /// The count semantics the scheme implements (`global` or `per-frame`).
    pub const fn semantics(self) -> &'static str {
        match self {
            Scheme::Stack => "per-frame",
            _ => "global",
        }
    }

    /// Whether `a6` must be kept in `s6` across helper calls.
    pub const fn saves_across_helpers(self) -> bool {
        matches!(self, Scheme::Register | Scheme::Pointer)
    }

    /// Whether every frame keeps the count in its slot (`s0 - 8`).
    const fn in_frame_slot(self) -> bool {
        matches!(self, Scheme::Stack | Scheme::Writeback)
    }

    fn init(self) -> Vec<Inst> {
        let i = |v| Imm12::new(v).expect("small");
        match self {
            Scheme::Register | Scheme::Stack | Scheme::Writeback => {
                vec![Inst::I { op: IOp::Addi, rd: TCC, rs1: XReg::ZERO, imm: i(MAX_TAIL_CALL_CNT) }]
            }
            // The slot is at the caller's sp - 8, which becomes s0 - 8 once the frame is
            // set up; every program's frame keeps that slot free.
            Scheme::Pointer => vec![
                Inst::I { op: IOp::Addi, rd: XReg::T1, rs1: XReg::ZERO, imm: i(MAX_TAIL_CALL_CNT) },
                Inst::Store { op: StoreOp::Sd, rs2: XReg::T1, rs1: XReg::SP, imm: i(TCC_SLOT) },
                Inst::I { op: IOp::Addi, rd: TCC, rs1: XReg::SP, imm: i(TCC_SLOT) },
            ],
        }
    }

    /// Bytes from a program's entry to where a tail call enters it: the two `nop`s of
    /// the patch site and the count initialisation.
    pub fn skip(self) -> i64 {
        8 + 4 * self.init().len() as i64
    }

    /// Emits the entry program's count initialisation (skipped by tail calls).
    pub fn emit_init(self, l: &mut Layout) {
        for inst in self.init() {
            l.push(inst);
        }
    }

    /// Emits what every function does once its frame exists.
    pub fn emit_after_frame(self, l: &mut Layout) {
        if self.in_frame_slot() {
            l.push(Inst::Store { op: StoreOp::Sd, rs2: TCC, rs1: XReg::S0, imm: slot() });
        }
    }

    /// Emits what precedes a bpf2bpf call.
    pub fn emit_before_call(self, l: &mut Layout) {
        use crate::bugs::Bug;
        let misapplied = self == Scheme::Register && l.bugs.has(Bug::StackRestoreInRegisterScheme);
        let forgotten = self == Scheme::Writeback && l.bugs.has(Bug::TccNotReloadedBeforeCall);
        if (self.in_frame_slot() && !forgotten) || misapplied {
            l.push(Inst::Load { op: LoadOp::Ld, rd: TCC, rs1: XReg::S0, imm: slot() });
        }
    }

    /// Emits what follows a bpf2bpf call: the `writeback` scheme keeps the count the
    /// callee returns in `a6`.
    pub fn emit_after_call(self, l: &mut Layout) {
        if self == Scheme::Writeback && !l.bugs.has(crate::bugs::Bug::TccNotWrittenBackAfterCall) {
            l.push(Inst::Store { op: StoreOp::Sd, rs2: TCC, rs1: XReg::S0, imm: slot() });
        }
    }

    /// Emits what precedes an epilogue (while `s0` still points at the frame): the
    /// `writeback` scheme returns its slot's count in `a6`.
    pub fn emit_before_return(self, l: &mut Layout) {
        if self == Scheme::Writeback {
            l.push(Inst::Load { op: LoadOp::Ld, rd: TCC, rs1: XReg::S0, imm: slot() });
        }
    }

    /// Emits what precedes a helper call.
    pub fn emit_before_helper(self, l: &mut Layout) {
        if self.saves_across_helpers() && !l.bugs.has(crate::bugs::Bug::TccLostAcrossHelpers) {
            l.push(Inst::mv(TCC_SAVED, TCC));
        }
    }

    /// Emits what follows a helper call.
    pub fn emit_after_helper(self, l: &mut Layout) {
        if self.saves_across_helpers() && !l.bugs.has(crate::bugs::Bug::TccLostAcrossHelpers) {
            l.push(Inst::mv(TCC, TCC_SAVED));
        }
    }

    /// Emits what precedes a kfunc call: the kernel's JITs call kfuncs as they call helpers,
    /// so the count is kept the same way.
    pub fn emit_before_kfunc(self, l: &mut Layout) {
        if !l.bugs.has(crate::bugs::Bug::TccLostAcrossKfuncs) {
            self.emit_before_helper(l);
        }
    }

    /// Emits what follows a kfunc call (see [`Scheme::emit_before_kfunc`]).
    pub fn emit_after_kfunc(self, l: &mut Layout) {
        if !l.bugs.has(crate::bugs::Bug::TccLostAcrossKfuncs) {
            self.emit_after_helper(l);
        }
    }

    /// Emits the count check of a tail call: the decremented counter into `t0`, and a jump
    /// to `out` when no tail call is left. Keeps nothing: see [`Scheme::emit_tail_count_keep`].
    pub fn emit_tail_count_check(self, l: &mut Layout, out: Label) {
        let t0 = XReg::T0;
        match self {
            Scheme::Register => l.push(Inst::mv(t0, TCC)),
            Scheme::Stack | Scheme::Writeback => {
                l.push(Inst::Load { op: LoadOp::Ld, rd: t0, rs1: XReg::S0, imm: slot() })
            }
            Scheme::Pointer => l.push(Inst::Load { op: LoadOp::Ld, rd: t0, rs1: TCC, imm: Imm12::ZERO }),
        }
        l.push(Inst::I { op: IOp::Addi, rd: t0, rs1: t0, imm: Imm12::new(-1).expect("small") });
        exhausted(l, t0, out);
    }

    /// Emits the keeping of the decremented counter in `t0` where the target expects it
    /// (`a6`, this frame's slot and `a6`, or the slot `a6` points to).
    pub fn emit_tail_count_keep(self, l: &mut Layout) {
        let t0 = XReg::T0;
        match self {
            Scheme::Register => l.push(Inst::mv(TCC, t0)),
            Scheme::Stack | Scheme::Writeback => {
                l.push(Inst::Store { op: StoreOp::Sd, rs2: t0, rs1: XReg::S0, imm: slot() });
                l.push(Inst::mv(TCC, t0));
            }
            Scheme::Pointer => l.push(Inst::Store { op: StoreOp::Sd, rs2: t0, rs1: TCC, imm: Imm12::ZERO }),
        }
    }
}

/// Leaves for `out` when the decremented counter in `r` shows the limit was passed.
fn exhausted(l: &mut Layout, r: XReg, out: Label) {
    if l.bugs.has(crate::bugs::Bug::TccOffByOne) {
        l.branch(BranchOp::Bge, XReg::ZERO, r, out);
    } else {
        l.branch(BranchOp::Blt, r, XReg::ZERO, out);
    }
}

fn slot() -> Imm12 {
    Imm12::new(TCC_SLOT).expect("small")
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheme {
    type Err = String;

    fn from_str(s: &str) -> Result<Scheme, String> {
        Scheme::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| format!("unknown TCC scheme {s:?} (known: register, stack, pointer, writeback)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_skips_cover_the_init() {
        for s in Scheme::ALL {
            assert_eq!(s.name().parse::<Scheme>(), Ok(s));
        }
        assert!("stak".parse::<Scheme>().unwrap_err().contains("unknown TCC scheme"));
        assert_eq!(Scheme::Register.skip(), 12, "two nops and addi a6, zero, 33");
        assert_eq!(Scheme::Stack.skip(), 12);
        assert_eq!(Scheme::Pointer.skip(), 20, "two nops and three instructions");
        assert_eq!(Scheme::Writeback.skip(), 12, "two nops and addi a6, zero, 33");
        assert_eq!(Scheme::Stack.semantics(), "per-frame");
        assert_eq!(Scheme::Writeback.semantics(), "global");
    }
}
