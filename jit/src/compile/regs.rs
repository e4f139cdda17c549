//! The BPF-to-RV64 register assignment, the kernel RV64 JIT's.

use bpf::Reg;

use crate::rv64::XReg;

/// The RV64 register holding BPF register `r`:
/// R0 = a5, R1-R5 = a0-a4, R6-R9 = s1-s4, R10 = s5.
pub const fn map(r: Reg) -> XReg {
    match r.num() {
        0 => XReg::A5,
        1 => XReg::A0,
        2 => XReg::A1,
        3 => XReg::A2,
        4 => XReg::A3,
        5 => XReg::A4,
        6 => XReg::S1,
        7 => XReg::S2,
        8 => XReg::S3,
        9 => XReg::S4,
        _ => XReg::S5,
    }
}

/// Scratch registers, free between BPF instructions.
pub const TMP1: XReg = XReg::T1;
/// Second scratch register.
pub const TMP2: XReg = XReg::T2;
/// Third scratch register.
pub const TMP3: XReg = XReg::T3;
/// Status register of `sc` in compare-and-exchange loops (the kernel's AX).
pub const TMP_SC: XReg = XReg::T0;
/// The tail-call counter (or, in the pointer scheme, its address).
pub const TCC: XReg = XReg::A6;
/// Where the counter waits while a helper runs.
pub const TCC_SAVED: XReg = XReg::S6;

/// The callee-saved register behind a BPF register, if it is one (R6-R10).
pub fn callee_saved(r: Reg) -> Option<XReg> {
    (r.num() >= 6).then(|| map(r))
}
