//! Injectable JIT bugs: realistic slips of the kind real JITs shipped, each selectable by
//! name, for measuring how fast the fuzzer finds them. With none selected the compiler
//! emits exactly the correct code; a selected bug changes only the emitter it names.

use std::fmt;
use std::str::FromStr;

/// One injectable bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bug {
    /// 32-bit add/sub/mul/shift/neg results left sign-extended.
    Alu32ArithNoZext,
    /// 32-bit and/or/xor results not zero-extended.
    Alu32LogicNoZext,
    /// `lui`+`addiw` constants whose bit 11 is set lose the carry into the upper part.
    ImmBit11Carry,
    /// Constants from 2^31 to 2^32-1 built with the sign-extending 32-bit sequence.
    ImmU32SignExtended,
    /// 2048 taken for a 12-bit immediate (it encodes -2048).
    Imm2048As12Bit,
    /// `r -= -2048` emitted as `addi r, r, -2048`.
    SubMinus2048,
    /// A 32-bit shift by the constant 0 emits nothing, not even the zero-extension.
    Shift32ByZeroNoZext,
    /// Division by a zero register not fixed up (RISC-V gives all ones, BPF 0).
    DivByZeroNoFixup,
    /// 32-bit division tests all 64 bits of the divisor for zero.
    Div32ChecksUpperBits,
    /// 32-bit JSET with a register tests the upper 32 bits too.
    Jmp32JsetUpperBits,
    /// JSET computes the AND into the destination register.
    JsetClobbersDst,
    /// 64-bit compares with a negative immediate zero-extend it.
    JmpImmZeroExtended,
    /// Sign-extending byte loads zero-extend.
    LdsxByteZeroExtended,
    /// Load and store offsets past 12 bits keep only their low 12 bits.
    LargeOffsetTruncated,
    /// A relaxed conditional branch (an inverted branch over a `jal`) lands 4 bytes past
    /// its target.
    BranchRelaxOffset,
    /// A backward conditional branch one instruction past the B-type reach is kept short;
    /// its offset wraps.
    BranchRelaxThreshold,
    /// A 32-bit conditional jump backward (a loop's condition) compares all 64 bits.
    Jmp32LoopFullWidth,
    /// 32-bit fetching atomics leave the fetched value sign-extended.
    Atomic32FetchNoZext,
    /// 32-bit compare-and-exchange leaves R0 sign-extended.
    Cmpxchg32NoZext,
    /// The return value copied into `a0` without sign-extension.
    A0NotSignExtended,
    /// The tail-call counter check fails one tail call early (32 instead of 33).
    TccOffByOne,
    /// The tail-call counter not saved across helper calls.
    TccLostAcrossHelpers,
    /// The tail-call counter saved across helper calls but not across kfunc calls.
    TccLostAcrossKfuncs,
    /// `writeback` scheme: `a6` not reloaded from the frame slot before a bpf2bpf call.
    TccNotReloadedBeforeCall,
    /// `writeback` scheme: the callee's count not written back into the caller's slot.
    TccNotWrittenBackAfterCall,
    /// The decremented tail-call counter kept before the slot is checked, so a tail call
    /// through an empty slot uses up a count (6.12's order) where today's kernel does not.
    TccKeptBeforeSlotCheck,
    /// The tail-call jump lands one instruction past the target's counter
    /// initialisation.
    TailCallSkipOffset,
    /// The tail-call index compared as a signed 32-bit value.
    TailCallIndexSigned,
    /// The tail-call index used without zero-extending it from 32 bits.
    TailCallIndexNotZext,
    /// The callee-saved registers and the stack not restored before the tail-call jump.
    TailCallNoRestore,
    /// The `stack` scheme's reload of the counter before bpf2bpf calls applied in the
    /// `register` scheme, where nothing was stored.
    StackRestoreInRegisterScheme,
    /// The trampoline does not reload the tail-call count around the programs it runs.
    TrampolineLosesTcc,
}

/// What the catalogue says about a bug.
#[derive(Clone, Copy, Debug)]
pub struct BugInfo {
    /// The bug.
    pub bug: Bug,
    /// Its name on the command line.
    pub name: &'static str,
    /// A paragraph: what the JIT does wrong and which programs show it.
    pub description: &'static str,
    /// The kernel commit whose fix it mirrors, where it is historical.
    pub commit: Option<&'static str>,
}

macro_rules! catalogue {
    ($($bug:ident, $name:literal, $commit:expr, $desc:literal;)*) => {
        /// Every bug, in catalogue order.
        pub const CATALOGUE: &[BugInfo] = &[
            $(BugInfo { bug: Bug::$bug, name: $name, description: $desc, commit: $commit },)*
        ];
    };
}

catalogue! {
    Alu32ArithNoZext, "alu32-arith-no-zext", Some("1e692f09e091"),
        "32-bit add, sub, mul, shifts and neg use RV64's `*w` instructions, which sign-extend \
         their result; the JIT forgets the zero-extension BPF requires, so `w0 = 0x7fffffff; \
         w0 += 1` leaves R0 = 0xffffffff80000000 instead of 0x80000000.";
    Alu32LogicNoZext, "alu32-logic-no-zext", Some("fe121ee531d1"),
        "32-bit and, or and xor are done with the 64-bit instructions and the upper half is \
         never cleared: `r0 = -1; w0 &= -1` leaves R0 = -1 instead of 0xffffffff.";
    ImmBit11Carry, "imm-bit11-carry", None,
        "A 32-bit constant is split into a `lui` part and a sign-extended 12-bit `addiw` part; \
         when bit 11 is set the low part is negative and the upper part must be rounded up. \
         The JIT takes the upper part as is, so 0x12345fff becomes 0x12344fff.";
    ImmU32SignExtended, "imm-u32-sign-extended", None,
        "64-bit constants from 2^31 to 2^32-1 (a 32-bit MOV's zero-extended immediate, an lddw) \
         are built with `lui`+`addiw`, which sign-extends: 0x80000000 becomes \
         0xffffffff80000000.";
    Imm2048As12Bit, "imm-2048-as-12-bit", None,
        "The range check for 12-bit immediates accepts 2048, which the instruction encodes as \
         -2048: `r1 += 2048` subtracts 2048.";
    SubMinus2048, "sub-minus-2048", None,
        "`r -= K` is emitted as `addi r, r, -K`; for K = -2048 the negation, 2048, does not fit \
         12 bits, and the JIT encodes it wrapped, subtracting 2048 where it should add it.";
    Shift32ByZeroNoZext, "shift32-by-zero-no-zext", Some("6fa632e719ee"),
        "A 32-bit shift by the constant 0 is dropped as a no-op, with the zero-extension every \
         32-bit operation needs: `w1 <<= 0` leaves R1's upper half in place.";
    DivByZeroNoFixup, "div-by-zero-no-fixup", None,
        "BPF defines x / 0 = 0; RISC-V's `divu` gives all ones. The JIT forgets the check \
         before dividing by a register.";
    Div32ChecksUpperBits, "div32-checks-upper-bits", None,
        "For 32-bit division only the divisor's low 32 bits count, but the zero check tests \
         the whole register: a divisor of 0x100000000 divides by zero unfixed.";
    Jmp32JsetUpperBits, "jmp32-jset-upper-bits", Some("80f1f8503635"),
        "A 32-bit JSET with a register operand tests all 64 bits of the AND: `if w1 & w2` with \
         both 1 << 32 jumps though the low halves share no bit.";
    JsetClobbersDst, "jset-clobbers-dst", Some("50fe7ebb6475"),
        "JSET computes `dst & src` into dst itself instead of a scratch register, so dst holds \
         the AND after the jump.";
    JmpImmZeroExtended, "jmp-imm-zero-extended", None,
        "A 64-bit compare's immediate is sign-extended in BPF; the JIT materialises it \
         zero-extended, so `if r1 == -1` compares with 0xffffffff.";
    LdsxByteZeroExtended, "ldsx-byte-zero-extended", None,
        "The sign-extending byte load (MEMSX, cpu v4) is emitted as `lbu`, which \
         zero-extends.";
    LargeOffsetTruncated, "large-offset-truncated", Some("4178417cc535"),
        "A load or store whose offset does not fit the 12-bit immediate needs the address \
         built in a register; the JIT uses the offset's low 12 bits instead, so \
         `r0 = *(u64 *)(r1 + 2064)` reads offset 16.";
    BranchRelaxOffset, "branch-relax-offset", None,
        "A conditional jump further than 4 KiB of machine code becomes an inverted branch \
         over a `jal`; the JIT computes the `jal`'s offset from the branch instead of from \
         the `jal` itself, so taken jumps land one instruction past their target.";
    BranchRelaxThreshold, "branch-relax-threshold", None,
        "The reach check of a conditional branch accepts a backward distance of 4100 bytes, \
         one instruction past the B-type format's -4096: the 13-bit offset wraps to +4092 and \
         the loop's branch jumps forward into the middle of other code. Only a backward jump \
         over exactly that much machine code shows it.";
    Jmp32LoopFullWidth, "jmp32-loop-full-width", None,
        "A 32-bit conditional jump whose target lies before it (a loop's condition) is \
         emitted like a 64-bit one, its operands not narrowed to 32 bits: `r1 = 0x100000003; \
         loop: ...; r1 -= 1; if w1 != 0 goto loop` runs 2^32 times more than the three \
         iterations it should (a hang), and a 32-bit bound compares the wrong value.";
    Atomic32FetchNoZext, "atomic32-fetch-no-zext", None,
        "32-bit fetching atomics (`amo*.w`) sign-extend the old value they return; the JIT \
         forgets to zero-extend it.";
    Cmpxchg32NoZext, "cmpxchg32-no-zext", Some("39491867ace5"),
        "32-bit compare-and-exchange returns the old value in R0 from `lr.w`, which \
         sign-extends; the JIT forgets the zero-extension.";
    A0NotSignExtended, "a0-not-sign-extended", Some("2f1b0d3d7331"),
        "The epilogue copies R0 into a0 with `mv`; the RISC-V ABI wants the 32-bit return \
         value sign-extended (`addiw a0, a5, 0`), so callers see 0x80000000 where they \
         expect 0xffffffff80000000.";
    TccOffByOne, "tcc-off-by-one", Some("745abfaa9eaf"),
        "The tail-call counter is checked after the decrement with `<= 0` instead of `< 0`: \
         only 32 tail calls succeed where the kernel allows 33.";
    TccLostAcrossHelpers, "tcc-lost-across-helpers", None,
        "The counter lives in a caller-saved register (a6); the JIT forgets to keep it in a \
         callee-saved one across helper calls, so a tail call after a helper call sees \
         whatever the helper left there.";
    TccLostAcrossKfuncs, "tcc-lost-across-kfuncs", None,
        "The JIT keeps the counter in a callee-saved register across helper calls but \
         emits kfunc calls (BPF_PSEUDO_KFUNC_CALL) by another path that forgets to, so a \
         tail call after a kfunc call sees whatever the kfunc left in a6 (the review of the \
         RV64 series asks for the same treatment of both).";
    TccNotReloadedBeforeCall, "tcc-not-reloaded-before-call", None,
        "`writeback` scheme: a bpf2bpf call passes `a6` as it is instead of reloading it from \
         the frame slot; after a helper call (which may clobber `a6`) the callee starts from a \
         wrong count.";
    TccNotWrittenBackAfterCall, "tcc-not-written-back-after-call", None,
        "`writeback` scheme: the count a subprogram returns in `a6` is not stored back into \
         the caller's slot, so the subprogram's tail calls do not use up the caller's count \
         (the per-frame count of the v1 patch, where today's kernel has one count).";
    TccKeptBeforeSlotCheck, "tcc-kept-before-slot-check", None,
        "The tail call stores the decremented counter back before it checks the prog-array \
         slot (the order of 6.12's RV64 JIT), so a tail call through an empty slot uses up one \
         of the 33 where today's kernel counts only tail calls that find a program.";
    TailCallSkipOffset, "tail-call-skip-offset", Some("30a59cc79754"),
        "A tail call jumps into its target past the counter initialisation; the JIT's skip \
         offset is one instruction too long and also skips the target's stack adjustment.";
    TailCallIndexSigned, "tail-call-index-signed", None,
        "The index is compared with max_entries as a signed 32-bit value: index 0xffffffff \
         (-1) passes the check and the slot before the array is read.";
    TailCallIndexNotZext, "tail-call-index-not-zext", None,
        "The index register is compared without truncating it to 32 bits, so an index with \
         upper bits set fails where the kernel uses its low 32 bits.";
    TailCallNoRestore, "tail-call-no-restore", None,
        "The tail-call jump leaves without restoring the callee-saved registers and the stack \
         pointer of the frame it replaces.";
    StackRestoreInRegisterScheme, "stack-restore-in-register-scheme", None,
        "The `stack` scheme reloads the counter from its stack slot before every bpf2bpf call; \
         applied in the `register` scheme, which never stores it there, the counter becomes \
         whatever the slot holds (zero) and tail calls after a call fail.";
    TrampolineLosesTcc, "trampoline-loses-tcc", None,
        "An fentry/fexit trampoline saves the tail-call count (a6) on entry but does not \
         reload it before it calls the traced function or before it returns, so the traced \
         function starts from, and its caller goes on with, whatever the tracing programs left \
         in a6 (their own fresh count): the count must survive trampolines \
         (BPF_TRAMP_F_TAIL_CALL_CTX).";
}

impl Bug {
    /// The bug's catalogue entry.
    pub fn info(self) -> &'static BugInfo {
        CATALOGUE.iter().find(|i| i.bug == self).expect("every bug is catalogued")
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The tail-call-counter scheme whose code the slip is in (the others' code never has
    /// it); `None` when any scheme's can.
    pub fn scheme(self) -> Option<crate::Scheme> {
        match self {
            Bug::TccLostAcrossHelpers | Bug::TccLostAcrossKfuncs | Bug::StackRestoreInRegisterScheme => {
                Some(crate::Scheme::Register)
            }
            Bug::TccNotReloadedBeforeCall | Bug::TccNotWrittenBackAfterCall => Some(crate::Scheme::Writeback),
            _ => None,
        }
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bug {
    type Err = String;

    fn from_str(s: &str) -> Result<Bug, String> {
        CATALOGUE
            .iter()
            .find(|i| i.name == s)
            .map(|i| i.bug)
            .ok_or_else(|| format!("unknown bug {s:?} (`jitdiff bugs` lists them)"))
    }
}

/// A set of injected bugs; empty by default. Testing membership is one bit test, so the
/// correct JIT pays nothing for the catalogue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Bugs(u64);

impl Bugs {
    /// No bug.
    pub const NONE: Bugs = Bugs(0);

    /// These bugs plus `bug`.
    pub const fn with(self, bug: Bug) -> Bugs {
        Bugs(self.0 | 1 << bug as u32)
    }

    /// Whether `bug` is injected.
    pub const fn has(self, bug: Bug) -> bool {
        self.0 & (1 << bug as u32) != 0
    }

    /// Whether no bug is injected.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The injected bugs, in catalogue order.
    pub fn list(self) -> Vec<Bug> {
        CATALOGUE.iter().map(|i| i.bug).filter(|b| self.has(*b)).collect()
    }
}

impl FromIterator<Bug> for Bugs {
    fn from_iter<I: IntoIterator<Item = Bug>>(iter: I) -> Bugs {
        iter.into_iter().fold(Bugs::NONE, Bugs::with)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        assert!(CATALOGUE.len() >= 20);
        for (k, i) in CATALOGUE.iter().enumerate() {
            assert_eq!(i.bug as usize, k, "catalogue order is enum order");
            assert_eq!(i.name.parse::<Bug>(), Ok(i.bug));
            assert!(i.description.len() > 60, "{}", i.name);
        }
        assert!("no-such-bug".parse::<Bug>().unwrap_err().contains("jitdiff bugs"));
    }

    #[test]
    fn sets_hold_what_was_put_in() {
        let b: Bugs = [Bug::TccOffByOne, Bug::ImmBit11Carry].into_iter().collect();
        assert!(b.has(Bug::TccOffByOne) && b.has(Bug::ImmBit11Carry) && !b.has(Bug::A0NotSignExtended));
        assert_eq!(b.list(), vec![Bug::ImmBit11Carry, Bug::TccOffByOne]);
        assert!(Bugs::NONE.is_empty() && !b.is_empty());
    }
}
