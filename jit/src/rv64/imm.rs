//! Range-checked immediates of RV64 instruction formats.
//!
//! Each type's constructor returns `None` when the value does not fit, so an encoder
//! never receives a value it would silently truncate.

/// A signed 12-bit immediate (I- and S-type): -2048 ..= 2047.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Imm12(i16);

impl Imm12 {
    /// Zero.
    pub const ZERO: Imm12 = Imm12(0);

    /// The immediate, if `v` fits in 12 signed bits.
    pub fn new(v: i64) -> Option<Imm12> {
        (-2048..=2047).contains(&v).then_some(Imm12(v as i16))
    }

    /// The value.
    pub fn get(self) -> i64 {
        self.0 as i64
    }
}

/// A branch offset (B-type): even, -4096 ..= 4094.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Imm13(i16);

impl Imm13 {
    /// The offset, if `v` is even and fits in 13 signed bits.
    pub fn new(v: i64) -> Option<Imm13> {
        ((-4096..=4094).contains(&v) && v % 2 == 0).then_some(Imm13(v as i16))
    }

    /// The value.
    pub fn get(self) -> i64 {
        self.0 as i64
    }
}

/// A jump offset (J-type, `jal`): even, -1 MiB ..= 1 MiB - 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Imm21(i32);

impl Imm21 {
    /// The offset, if `v` is even and fits in 21 signed bits.
    pub fn new(v: i64) -> Option<Imm21> {
        ((-(1 << 20)..(1 << 20)).contains(&v) && v % 2 == 0).then_some(Imm21(v as i32))
    }

    /// The value.
    pub fn get(self) -> i64 {
        self.0 as i64
    }
}

/// The 20-bit upper immediate of `lui`/`auipc`, as the signed value of bits 31..12
/// (-524288 ..= 524287); the instruction places it at bit 12 and sign-extends from bit 31.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Imm20(i32);

impl Imm20 {
    /// The immediate, if `v` fits in 20 signed bits.
    pub fn new(v: i64) -> Option<Imm20> {
        (-(1 << 19)..(1 << 19)).contains(&v).then_some(Imm20(v as i32))
    }

    /// The value (bits 31..12 of the result, signed).
    pub fn get(self) -> i64 {
        self.0 as i64
    }
}

/// Splits a 32-bit signed offset into an `auipc`/`lui` upper part and a 12-bit lower part
/// such that `(hi << 12) + lo == v`, or `None` when no such pair exists (the reach of
/// `auipc` + `jalr` is -2^31 - 2048 ..= 2^31 - 2049).
pub fn split_hi_lo(v: i64) -> Option<(Imm20, Imm12)> {
    let hi = (v + 0x800) >> 12;
    let lo = v - (hi << 12);
    Some((Imm20::new(hi)?, Imm12::new(lo)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(Imm12::new(2047).is_some() && Imm12::new(2048).is_none());
        assert!(Imm12::new(-2048).is_some() && Imm12::new(-2049).is_none());
        assert!(Imm13::new(4094).is_some() && Imm13::new(4096).is_none() && Imm13::new(3).is_none());
        assert!(Imm13::new(-4096).is_some() && Imm13::new(-4098).is_none());
        assert!(Imm21::new((1 << 20) - 2).is_some() && Imm21::new(1 << 20).is_none());
        assert!(Imm20::new(0x7ffff).is_some() && Imm20::new(0x80000).is_none());
        assert!(Imm20::new(-0x80000).is_some());
    }

    #[test]
    fn hi_lo_split_reaches_exactly_the_encodable_range() {
        for v in [0i64, 1, -1, 0x7ff, 0x800, -0x800, -0x801, 0x7fff_f7ff, -(1 << 31) - 2048] {
            let (hi, lo) = split_hi_lo(v).unwrap();
            assert_eq!((hi.get() << 12) + lo.get(), v, "{v:#x}");
        }
        // 0x7fff_f800 would need hi = 0x80000, which does not fit in 20 signed bits.
        assert!(split_hi_lo(0x7fff_f800).is_none());
        assert!(split_hi_lo(-(1 << 31) - 2049).is_none());
    }
}
