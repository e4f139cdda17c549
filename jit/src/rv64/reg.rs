//! RV64 integer registers with their ABI names.

use std::fmt;

/// An RV64 integer register, `x0` to `x31`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct XReg(u8);

const ABI_NAMES: [&str; 32] = [
    "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5", "a6",
    "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6",
];

impl XReg {
    /// Hard-wired zero.
    pub const ZERO: XReg = XReg(0);
    /// Return address.
    pub const RA: XReg = XReg(1);
    /// Stack pointer.
    pub const SP: XReg = XReg(2);
    /// Global pointer.
    pub const GP: XReg = XReg(3);
    /// Thread pointer.
    pub const TP: XReg = XReg(4);
    /// Temporary 0.
    pub const T0: XReg = XReg(5);
    /// Temporary 1.
    pub const T1: XReg = XReg(6);
    /// Temporary 2.
    pub const T2: XReg = XReg(7);
    /// Saved 0 / frame pointer.
    pub const S0: XReg = XReg(8);
    /// Saved 1.
    pub const S1: XReg = XReg(9);
    /// Argument 0 / return value.
    pub const A0: XReg = XReg(10);
    /// Argument 1.
    pub const A1: XReg = XReg(11);
    /// Argument 2.
    pub const A2: XReg = XReg(12);
    /// Argument 3.
    pub const A3: XReg = XReg(13);
    /// Argument 4.
    pub const A4: XReg = XReg(14);
    /// Argument 5.
    pub const A5: XReg = XReg(15);
    /// Argument 6.
    pub const A6: XReg = XReg(16);
    /// Argument 7.
    pub const A7: XReg = XReg(17);
    /// Saved 2.
    pub const S2: XReg = XReg(18);
    /// Saved 3.
    pub const S3: XReg = XReg(19);
    /// Saved 4.
    pub const S4: XReg = XReg(20);
    /// Saved 5.
    pub const S5: XReg = XReg(21);
    /// Saved 6.
    pub const S6: XReg = XReg(22);
    /// Saved 7.
    pub const S7: XReg = XReg(23);
    /// Saved 8.
    pub const S8: XReg = XReg(24);
    /// Saved 9.
    pub const S9: XReg = XReg(25);
    /// Saved 10.
    pub const S10: XReg = XReg(26);
    /// Saved 11.
    pub const S11: XReg = XReg(27);
    /// Temporary 3.
    pub const T3: XReg = XReg(28);
    /// Temporary 4.
    pub const T4: XReg = XReg(29);
    /// Temporary 5.
    pub const T5: XReg = XReg(30);
    /// Temporary 6.
    pub const T6: XReg = XReg(31);

    /// The register `x<n>`, if `n < 32`.
    pub const fn new(n: u8) -> Option<XReg> {
        if n < 32 {
            Some(XReg(n))
        } else {
            None
        }
    }

    /// The register number, 0 to 31.
    pub const fn num(self) -> u32 {
        self.0 as u32
    }

    /// The ABI name (`a0`, `s1`, ...).
    pub fn abi_name(self) -> &'static str {
        ABI_NAMES[self.0 as usize]
    }

    /// Every callee-saved register of the RISC-V calling convention (`sp`, `s0`-`s11`).
    pub const CALLEE_SAVED: [XReg; 13] = [
        XReg(2),
        XReg(8),
        XReg(9),
        XReg(18),
        XReg(19),
        XReg(20),
        XReg(21),
        XReg(22),
        XReg(23),
        XReg(24),
        XReg(25),
        XReg(26),
        XReg(27),
    ];
}

impl fmt::Display for XReg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.abi_name())
    }
}
