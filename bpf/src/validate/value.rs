//! What the validator knows about a register: a scalar's unsigned range or a pointer's kind
//! and offset range, joined where paths meet and widened where a loop keeps changing it;
//! and ALU operations and jump conditions folded over those ranges, in the kernel's
//! semantics (a division by zero gives 0, a modulo by zero keeps the dividend, shift
//! counts are masked, 32-bit results are zero-extended).

use std::fmt;

use crate::insn::{AluOp, ByteOrder, Cond, SxBits, Width};

/// The unsigned range `lo..=hi` a scalar's 64-bit value lies in (never empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Bounds {
    pub lo: u64,
    pub hi: u64,
}

impl Bounds {
    /// Any value.
    pub const ANY: Bounds = Bounds { lo: 0, hi: u64::MAX };
    /// Any value of 32 bits, zero-extended.
    pub const U32: Bounds = Bounds { lo: 0, hi: u32::MAX as u64 };

    /// Exactly `v`.
    pub const fn exact(v: u64) -> Bounds {
        Bounds { lo: v, hi: v }
    }

    /// Any value of `bits` bits (1 to 64), zero-extended.
    pub const fn bits(bits: u32) -> Bounds {
        Bounds { lo: 0, hi: if bits >= 64 { u64::MAX } else { (1 << bits) - 1 } }
    }

    /// The value, when there is only one.
    pub fn konst(self) -> Option<u64> {
        (self.lo == self.hi).then_some(self.lo)
    }

    fn hull(self, o: Bounds) -> Bounds {
        Bounds { lo: self.lo.min(o.lo), hi: self.hi.max(o.hi) }
    }

    /// Interval widening with thresholds: a bound that moved goes to the next of the
    /// sorted `thresholds` past it (the constants the program compares with), or to its
    /// extreme, so that a loop counter compared with a constant keeps its range.
    fn widen(self, new: Bounds, thresholds: &[u64]) -> Bounds {
        let lo = match new.lo < self.lo {
            true => thresholds.iter().rev().find(|&&t| t <= new.lo).copied().unwrap_or(0),
            false => self.lo,
        };
        let hi = match new.hi > self.hi {
            true => thresholds.iter().find(|&&t| t >= new.hi).copied().unwrap_or(u64::MAX),
            false => self.hi,
        };
        Bounds { lo, hi }
    }

    /// The range of the low 32 bits, zero-extended.
    fn low32(self) -> Bounds {
        match self.konst() {
            Some(v) => Bounds::exact(v as u32 as u64),
            None if self.hi <= u32::MAX as u64 => self,
            None => Bounds::U32,
        }
    }

    /// Whether every value is non-negative read as signed at `width`.
    fn non_negative(self, width: Width) -> bool {
        self.hi <= if width == Width::W64 { i64::MAX as u64 } else { i32::MAX as u64 }
    }

    fn new(lo: u64, hi: u64) -> Option<Bounds> {
        (lo <= hi).then_some(Bounds { lo, hi })
    }
}

impl fmt::Display for Bounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.konst() {
            Some(v) => write!(f, "{}", v as i64),
            None if *self == Bounds::ANY => f.write_str("any value"),
            None => write!(f, "{} to {}", self.lo, self.hi),
        }
    }
}

/// The signed range `lo..=hi` of a pointer's offset from where it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Off {
    pub lo: i64,
    pub hi: i64,
}

/// How far a widened pointer offset may lie: past anything an access can reach.
const FAR: i64 = 1 << 40;

impl Off {
    /// Exactly `k`.
    pub const fn at(k: i64) -> Off {
        Off { lo: k, hi: k }
    }

    /// The offset, when there is only one.
    pub fn konst(self) -> Option<i64> {
        (self.lo == self.hi).then_some(self.lo)
    }

    /// The offset moved by a value in `by` (added, or subtracted when `minus`).
    pub fn moved(self, by: Off, minus: bool) -> Off {
        let (lo, hi) = if minus { (by.hi.saturating_neg(), by.lo.saturating_neg()) } else { (by.lo, by.hi) };
        Off {
            lo: self.lo.saturating_add(lo).clamp(-FAR, FAR),
            hi: self.hi.saturating_add(hi).clamp(-FAR, FAR),
        }
    }

    fn hull(self, o: Off) -> Off {
        Off { lo: self.lo.min(o.lo), hi: self.hi.max(o.hi) }
    }

    fn inside(self, o: Off) -> bool {
        o.lo <= self.lo && self.hi <= o.hi
    }

    fn widen(self, new: Off) -> Off {
        Off {
            lo: if new.lo < self.lo { -FAR } else { self.lo },
            hi: if new.hi > self.hi { FAR } else { self.hi },
        }
    }
}

impl fmt::Display for Off {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.konst() {
            Some(0) => Ok(()),
            Some(k) => write!(f, " {} {}", if k < 0 { '-' } else { '+' }, k.unsigned_abs()),
            None => write!(f, " + ({} to {})", self.lo, self.hi),
        }
    }
}

/// Why a register is undefined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Why {
    Entry,
    SubprogEntry,
    /// Not defined at the call at this pc.
    NotPassed(usize),
    Clobbered(usize),
    ReturnsNothing(usize),
    /// The subprogram called at this pc can exit with R0 undefined.
    SubprogReturnsUndefined(usize),
    TailCall(usize),
    /// No path reads it again before writing it (forgotten, never reported).
    Dead,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Entry => write!(f, "only r1 and r10 are defined at a program's entry"),
            Why::SubprogEntry => write!(f, "a subprogram starts with r0 and r6-r9 undefined"),
            Why::NotPassed(pc) => write!(f, "the call at pc {pc} does not define it"),
            Why::Clobbered(pc) => write!(f, "R1-R5 are clobbered by the call at pc {pc}"),
            Why::ReturnsNothing(pc) => write!(f, "the function called at pc {pc} returns nothing"),
            Why::SubprogReturnsUndefined(pc) => {
                write!(f, "the subprogram called at pc {pc} can exit with r0 undefined")
            }
            Why::TailCall(pc) => write!(f, "R0-R5 are clobbered by the tail call at pc {pc}"),
            Why::Dead => write!(f, "no path reads it again"),
        }
    }
}

/// What a register holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Val {
    Undef(Why),
    Scalar(Bounds),
    Ctx(Off),
    /// A pointer into the stack of call frame `frame` (0: the program's main function).
    Stack {
        frame: u8,
        off: Off,
    },
    /// `lddw rN, map` of some prog array (any one: tail calls need no more).
    ProgArray,
    /// `lddw rN, map` of array map `a` (its index among the array maps).
    ArrayRef(usize),
    /// A pointer into a value of array map `array` (its index among the array maps).
    Value {
        array: usize,
        off: Off,
    },
    /// The result of the lookup at instruction `id`, not yet NULL-checked.
    ValueOrNull {
        array: usize,
        id: usize,
    },
    /// A pointer into a `__sk_buff`'s packet, `off` bytes past its start (the verifier's
    /// `PTR_TO_PACKET` in Linux 7.3's terms: the offset range is absolute). Pointers with
    /// the same `id` moved apart by constants only, so a comparison with the packet's end
    /// that proves bytes safe for one proves them for all; `[0, range)`, less how far the
    /// pointer's own offset may reach, is safe to access. `id` is [`Val::LONE`] for a
    /// pointer whose paths disagree, which shares its range with no other.
    Packet {
        off: Off,
        id: u32,
        range: i64,
    },
    /// The packet's end (`data_end`: `PTR_TO_PACKET_END`).
    PacketEnd,
    /// Different kinds of values on different paths.
    Mixed,
}

impl Val {
    /// Any scalar.
    pub const SCALAR: Val = Val::Scalar(Bounds::ANY);

    /// The packet pointer id of a pointer that shares its range with no other.
    pub const LONE: u32 = u32::MAX;

    /// Exactly the scalar `v`.
    pub const fn konst(v: u64) -> Val {
        Val::Scalar(Bounds::exact(v))
    }

    /// What the register holds on either path.
    pub fn join(self, o: Val) -> Val {
        match (self, o) {
            _ if self == o => self,
            (Val::Undef(_), _) => self,
            (_, Val::Undef(_)) => o,
            (Val::Scalar(a), Val::Scalar(b)) => Val::Scalar(a.hull(b)),
            (Val::Ctx(a), Val::Ctx(b)) => Val::Ctx(a.hull(b)),
            (Val::Stack { frame, off: a }, Val::Stack { frame: g, off: b }) if frame == g => {
                Val::Stack { frame, off: a.hull(b) }
            }
            (Val::Value { array, off: a }, Val::Value { array: b_array, off: b }) if array == b_array => {
                Val::Value { array, off: a.hull(b) }
            }
            (Val::Packet { off: a, id, range: r }, Val::Packet { off: b, id: j, range: q }) => {
                Val::Packet { off: a.hull(b), id: if id == j { id } else { Val::LONE }, range: r.min(q) }
            }
            _ => Val::Mixed,
        }
    }

    /// [`Val::join`], but a scalar range that grew goes to the next threshold (see
    /// [`Bounds`]' widening) and a pointer offset range to its extreme, so loops reach a
    /// fixpoint.
    pub fn widen(self, new: Val, thresholds: &[u64]) -> Val {
        match (self, self.join(new)) {
            (Val::Scalar(a), Val::Scalar(b)) => Val::Scalar(a.widen(b, thresholds)),
            (Val::Ctx(a), Val::Ctx(b)) => Val::Ctx(a.widen(b)),
            (Val::Stack { off: a, .. }, Val::Stack { frame, off: b }) => {
                Val::Stack { frame, off: a.widen(b) }
            }
            (Val::Value { off: a, .. }, Val::Value { array, off: b }) => {
                Val::Value { array, off: a.widen(b) }
            }
            (Val::Packet { off: a, .. }, Val::Packet { off: b, id, range }) => {
                Val::Packet { off: a.widen(b), id, range }
            }
            (_, j) => j,
        }
    }

    /// Whether every use a path can make of `o` it can make of this value too: `o` is
    /// undefined (no path reads it), values of several kinds (no path uses it but to move
    /// it), or the same kind with this value's range or offsets inside `o`'s.
    pub fn within(self, o: Val) -> bool {
        match (self, o) {
            _ if self == o => true,
            (_, Val::Undef(_)) => true,
            (Val::Undef(_), _) => false,
            (_, Val::Mixed) => true,
            (Val::Scalar(a), Val::Scalar(b)) => b.lo <= a.lo && a.hi <= b.hi,
            (Val::Ctx(a), Val::Ctx(b)) => a.inside(b),
            (Val::Stack { frame, off: a }, Val::Stack { frame: g, off: b }) => frame == g && a.inside(b),
            (Val::Value { array, off: a }, Val::Value { array: x, off: b }) => array == x && a.inside(b),
            (Val::Packet { off: a, id, range: r }, Val::Packet { off: b, id: j, range: q }) => {
                (id == j || j == Val::LONE) && a.inside(b) && r >= q
            }
            _ => false,
        }
    }

    /// Whether this is a pointer (of any kind, or NULL-or-pointer).
    pub fn is_pointer(self) -> bool {
        matches!(
            self,
            Val::Ctx(_)
                | Val::Stack { .. }
                | Val::Value { .. }
                | Val::ValueOrNull { .. }
                | Val::Packet { .. }
                | Val::PacketEnd
        )
    }

    /// The value for messages.
    pub fn describe(self, frame: usize) -> String {
        match self {
            Val::Undef(_) => "nothing defined".into(),
            Val::Scalar(b) if b == Bounds::ANY => "a scalar".into(),
            Val::Scalar(b) => format!("the scalar {b}"),
            Val::Ctx(o) => format!("the context pointer{o}"),
            Val::Stack { frame: f, off } if f as usize == frame => format!("a stack pointer (r10{off})"),
            Val::Stack { frame: f, off } => {
                format!("a pointer into the stack of call frame {f} (its r10{off})")
            }
            Val::ProgArray => "a prog array reference".into(),
            Val::ArrayRef(a) => format!("a reference to array map {a}"),
            Val::Value { array, off } => format!("a pointer into a value of array map {array}{off}"),
            Val::ValueOrNull { .. } => "a map value pointer or NULL".into(),
            Val::Packet { off, range, .. } => {
                format!("a packet pointer (data{off}, the first {range} bytes known to be in the packet)")
            }
            Val::PacketEnd => "the packet's end (data_end)".into(),
            Val::Mixed => "values of different kinds on different paths".into(),
        }
    }
}

/// Bytes written in one frame's stack: bit `i` = byte `r10 - 512 + i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub(super) struct Written([u64; 8]);

impl Written {
    fn bytes(off: i64, len: i64) -> impl Iterator<Item = usize> {
        (off..off + len).map(|b| (512 + b) as usize)
    }

    /// Whether `len` bytes from `r10 + off` (within the 512 below r10) are all written.
    pub fn all(&self, off: i64, len: i64) -> bool {
        Written::bytes(off, len).all(|b| self.0[b / 64] >> (b % 64) & 1 == 1)
    }

    /// Marks `len` bytes from `r10 + off` written.
    pub fn set(&mut self, off: i64, len: i64) {
        for b in Written::bytes(off, len) {
            self.0[b / 64] |= 1 << (b % 64);
        }
    }

    /// Bytes written on both paths.
    pub fn meet(self, o: Written) -> Written {
        Written(std::array::from_fn(|k| self.0[k] & o.0[k]))
    }

    /// Per frame, the bytes written on both paths.
    pub fn meet_all(a: &[Written], b: &[Written]) -> Vec<Written> {
        a.iter().zip(b).map(|(x, y)| x.meet(*y)).collect()
    }

    /// Whether every byte written in `o` is written here too.
    fn covers(&self, o: &Written) -> bool {
        self.0.iter().zip(&o.0).all(|(a, b)| a & b == *b)
    }
}

/// The abstract state before one instruction: the registers, and the bytes written in the
/// stack of every frame of the call chain (the running function's last).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct State {
    pub regs: [Val; 11],
    pub stacks: Vec<Written>,
}

impl State {
    /// What holds on either path.
    pub fn join(&self, o: &State) -> State {
        State {
            regs: std::array::from_fn(|r| self.regs[r].join(o.regs[r])),
            stacks: Written::meet_all(&self.stacks, &o.stacks),
        }
    }

    /// [`State::join`] with ranges widened.
    pub fn widen(&self, new: &State, thresholds: &[u64]) -> State {
        State {
            regs: std::array::from_fn(|r| self.regs[r].widen(new.regs[r], thresholds)),
            stacks: Written::meet_all(&self.stacks, &new.stacks),
        }
    }

    /// Whether everything the analysis of `o` allows holds for this state too: every
    /// register [`Val::within`] `o`'s, every byte `o` has written written here.
    pub fn within(&self, o: &State) -> bool {
        self.stacks.len() == o.stacks.len()
            && self.regs.iter().zip(&o.regs).all(|(a, b)| a.within(*b))
            && self.stacks.iter().zip(&o.stacks).all(|(a, b)| a.covers(b))
    }

    /// Forgets the registers no path reads again (`live`: bit `r` for a live register).
    pub fn forget_dead(&mut self, live: u16) {
        for (r, v) in self.regs.iter_mut().enumerate() {
            if live >> r & 1 == 0 {
                *v = Val::Undef(Why::Dead);
            }
        }
    }

    /// Makes `regs` undefined because of `why`.
    pub fn clobber(&mut self, regs: std::ops::Range<usize>, why: Why) {
        for r in regs {
            self.regs[r] = Val::Undef(why);
        }
    }
}

/// `a op b` on exact values, as the kernel computes it.
fn fold(op: AluOp, width: Width, a: u64, b: u64) -> u64 {
    if width == Width::W32 {
        let (x, y) = (a as u32, b as u32);
        let (sx, sy) = (x as i32, y as i32);
        let r = match op {
            AluOp::Add => x.wrapping_add(y),
            AluOp::Sub => x.wrapping_sub(y),
            AluOp::Mul => x.wrapping_mul(y),
            AluOp::Div => x.checked_div(y).unwrap_or(0),
            AluOp::Sdiv => {
                if y == 0 {
                    0
                } else {
                    sx.wrapping_div(sy) as u32
                }
            }
            AluOp::Mod => {
                if y == 0 {
                    x
                } else {
                    x % y
                }
            }
            AluOp::Smod => {
                if y == 0 {
                    x
                } else {
                    sx.wrapping_rem(sy) as u32
                }
            }
            AluOp::Or => x | y,
            AluOp::And => x & y,
            AluOp::Xor => x ^ y,
            AluOp::Lsh => x << (y & 31),
            AluOp::Rsh => x >> (y & 31),
            AluOp::Arsh => (sx >> (y & 31)) as u32,
            AluOp::Mov => y,
        };
        return r as u64;
    }
    let (sa, sb) = (a as i64, b as i64);
    match op {
        AluOp::Add => a.wrapping_add(b),
        AluOp::Sub => a.wrapping_sub(b),
        AluOp::Mul => a.wrapping_mul(b),
        AluOp::Div => a.checked_div(b).unwrap_or(0),
        AluOp::Sdiv => {
            if b == 0 {
                0
            } else {
                sa.wrapping_div(sb) as u64
            }
        }
        AluOp::Mod => {
            if b == 0 {
                a
            } else {
                a % b
            }
        }
        AluOp::Smod => {
            if b == 0 {
                a
            } else {
                sa.wrapping_rem(sb) as u64
            }
        }
        AluOp::Or => a | b,
        AluOp::And => a & b,
        AluOp::Xor => a ^ b,
        AluOp::Lsh => a << (b & 63),
        AluOp::Rsh => a >> (b & 63),
        AluOp::Arsh => (sa >> (b & 63)) as u64,
        AluOp::Mov => b,
    }
}

/// The range of `a op b` at `width`, operands already reduced to the width.
pub(super) fn alu(op: AluOp, width: Width, a: Bounds, b: Bounds) -> Bounds {
    let (a, b) = if width == Width::W32 { (a.low32(), b.low32()) } else { (a, b) };
    if let (Some(x), Some(y)) = (a.konst(), b.konst()) {
        return Bounds::exact(fold(op, width, x, y));
    }
    let signed_as_unsigned = a.non_negative(width) && b.non_negative(width);
    let r = match op {
        AluOp::Mov => Some(b),
        AluOp::Add => a.lo.checked_add(b.lo).zip(a.hi.checked_add(b.hi)).map(|(lo, hi)| Bounds { lo, hi }),
        AluOp::Sub if a.lo >= b.hi => Some(Bounds { lo: a.lo - b.hi, hi: a.hi - b.lo }),
        AluOp::Mul => a.hi.checked_mul(b.hi).map(|hi| Bounds { lo: a.lo * b.lo, hi }),
        AluOp::Div | AluOp::Sdiv if op == AluOp::Div || signed_as_unsigned => Some(match b.lo {
            0 => Bounds { lo: 0, hi: a.hi },
            lo => Bounds { lo: a.lo / b.hi, hi: a.hi / lo },
        }),
        AluOp::Mod | AluOp::Smod if op == AluOp::Mod || signed_as_unsigned => Some(match b.lo {
            0 => Bounds { lo: 0, hi: a.hi },
            _ => Bounds { lo: 0, hi: a.hi.min(b.hi - 1) },
        }),
        AluOp::And => Some(Bounds { lo: 0, hi: a.hi.min(b.hi) }),
        AluOp::Or | AluOp::Xor => Some(Bounds::bits(64 - a.hi.max(b.hi).leading_zeros())),
        AluOp::Rsh | AluOp::Arsh if op == AluOp::Rsh || a.non_negative(width) => Some(match b.konst() {
            Some(k) => {
                let k = k & if width == Width::W64 { 63 } else { 31 };
                Bounds { lo: a.lo >> k, hi: a.hi >> k }
            }
            None => Bounds { lo: 0, hi: a.hi },
        }),
        AluOp::Lsh => b.konst().and_then(|k| {
            let k = k & if width == Width::W64 { 63 } else { 31 };
            (a.hi.leading_zeros() as u64 >= k).then(|| Bounds { lo: a.lo << k, hi: a.hi << k })
        }),
        _ => None,
    };
    match (r, width) {
        (Some(r), Width::W64) => r,
        (Some(r), Width::W32) if r.hi <= u32::MAX as u64 => r,
        (_, Width::W64) => Bounds::ANY,
        (_, Width::W32) => Bounds::U32,
    }
}

/// The range of `-a` at `width`.
pub(super) fn neg(width: Width, a: Bounds) -> Bounds {
    alu(AluOp::Sub, width, Bounds::exact(0), a)
}

/// The range of a byte-order conversion of `a` to `bits`.
pub(super) fn end(order: ByteOrder, bits: u8, a: Bounds) -> Bounds {
    let Some(v) = a.konst() else {
        return Bounds::bits(bits as u32);
    };
    let t = if bits >= 64 { v } else { v & ((1 << bits) - 1) };
    Bounds::exact(match (order, bits) {
        (ByteOrder::Le, _) => t,
        (_, 16) => (t as u16).swap_bytes() as u64,
        (_, 32) => (t as u32).swap_bytes() as u64,
        _ => t.swap_bytes(),
    })
}

/// The range of a sign extension of `a` from `from` bits, at `width`.
pub(super) fn sign_extend(width: Width, from: SxBits, a: Bounds) -> Bounds {
    let any = if width == Width::W64 { Bounds::ANY } else { Bounds::U32 };
    let Some(v) = a.konst() else { return any };
    let x = match from {
        SxBits::S8 => v as i8 as i64,
        SxBits::S16 => v as i16 as i64,
        SxBits::S32 => v as i32 as i64,
    } as u64;
    Bounds::exact(if width == Width::W64 { x } else { x as u32 as u64 })
}

/// The condition as an unsigned one over the operands' ranges (reduced to `width`), when
/// their signs cannot differ from their unsigned reading.
fn unsigned(cond: Cond, width: Width, a: Bounds, b: Bounds) -> Option<(Cond, Bounds, Bounds)> {
    let (a, b) = if width == Width::W32 { (a.low32(), b.low32()) } else { (a, b) };
    let both = a.non_negative(width) && b.non_negative(width);
    let c = match cond {
        Cond::Sgt if both => Cond::Gt,
        Cond::Sge if both => Cond::Ge,
        Cond::Slt if both => Cond::Lt,
        Cond::Sle if both => Cond::Le,
        Cond::Sgt | Cond::Sge | Cond::Slt | Cond::Sle => return None,
        c => c,
    };
    Some((c, a, b))
}

/// Whether `a cond b` always (`Some(true)`) or never (`Some(false)`) holds, at `width`.
pub(super) fn decide(cond: Cond, width: Width, a: Bounds, b: Bounds) -> Option<bool> {
    let w32 = width == Width::W32;
    if let (Some(x), Some(y)) = (a.konst(), b.konst()) {
        let (x, y) = if w32 { (x as u32 as u64, y as u32 as u64) } else { (x, y) };
        return Some(cond.holds(x, y, w32));
    }
    let (c, a, b) = unsigned(cond, width, a, b)?;
    match c {
        Cond::Eq | Cond::Ne if a.hi < b.lo || b.hi < a.lo => Some(c == Cond::Ne),
        Cond::Gt | Cond::Le if a.lo > b.hi || a.hi <= b.lo => Some((a.lo > b.hi) == (c == Cond::Gt)),
        Cond::Ge | Cond::Lt if a.lo >= b.hi || a.hi < b.lo => Some((a.lo >= b.hi) == (c == Cond::Ge)),
        Cond::Set if a.hi == 0 || b.hi == 0 => Some(false),
        _ => None,
    }
}

/// The ranges of `a` and `b` on the path where `a cond b` is `holds`, at `width`: `None`
/// when no values are left (the path is impossible). Only ranges whose 32-bit reading is
/// their whole value are narrowed by 32-bit jumps.
pub(super) fn refine(
    cond: Cond,
    width: Width,
    holds: bool,
    a: Bounds,
    b: Bounds,
) -> Option<(Bounds, Bounds)> {
    let fits = |x: Bounds| width == Width::W64 || x.hi <= u32::MAX as u64;
    if !fits(a) || !fits(b) {
        return Some((a, b));
    }
    let Some((c, _, _)) = unsigned(cond, width, a, b) else {
        return Some((a, b));
    };
    let c = match (c, holds) {
        (c, true) => c,
        (Cond::Eq, false) => Cond::Ne,
        (Cond::Ne, false) => Cond::Eq,
        (Cond::Gt, false) => Cond::Le,
        (Cond::Ge, false) => Cond::Lt,
        (Cond::Lt, false) => Cond::Ge,
        (Cond::Le, false) => Cond::Gt,
        _ => return Some((a, b)),
    };
    let ne = |x: Bounds, k: Option<u64>| match k {
        Some(k) if x.lo == k => Bounds::new(x.lo.checked_add(1)?, x.hi),
        Some(k) if x.hi == k => Bounds::new(x.lo, x.hi.checked_sub(1)?),
        _ => Some(x),
    };
    match c {
        Cond::Eq => {
            let both = Bounds::new(a.lo.max(b.lo), a.hi.min(b.hi))?;
            Some((both, both))
        }
        Cond::Ne => Some((ne(a, b.konst())?, ne(b, a.konst())?)),
        // a > b: a above b's least, b below a's greatest.
        Cond::Gt => Some((
            Bounds::new(a.lo.max(b.lo.checked_add(1)?), a.hi)?,
            Bounds::new(b.lo, b.hi.min(a.hi.checked_sub(1)?))?,
        )),
        Cond::Ge => Some((Bounds::new(a.lo.max(b.lo), a.hi)?, Bounds::new(b.lo, b.hi.min(a.hi))?)),
        Cond::Lt => refine(Cond::Gt, width, true, b, a).map(|(b, a)| (a, b)),
        Cond::Le => refine(Cond::Ge, width, true, b, a).map(|(b, a)| (a, b)),
        _ => Some((a, b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn b(lo: u64, hi: u64) -> Bounds {
        Bounds { lo, hi }
    }

    #[test]
    fn folding_follows_the_kernel() {
        let k = |op, w, x, y| alu(op, w, Bounds::exact(x), Bounds::exact(y)).konst().unwrap();
        assert_eq!(k(AluOp::Div, Width::W64, 7, 0), 0);
        assert_eq!(k(AluOp::Mod, Width::W64, 7, 0), 7);
        assert_eq!(k(AluOp::Mod, Width::W32, u64::MAX, 0), u32::MAX as u64);
        assert_eq!(k(AluOp::Sdiv, Width::W64, i64::MIN as u64, u64::MAX), i64::MIN as u64);
        assert_eq!(k(AluOp::Smod, Width::W64, -7i64 as u64, 2), -1i64 as u64);
        assert_eq!(k(AluOp::Lsh, Width::W64, 1, 65), 2);
        assert_eq!(k(AluOp::Arsh, Width::W32, 0x8000_0000, 31), u32::MAX as u64);
        assert_eq!(k(AluOp::Add, Width::W32, u32::MAX as u64, 1), 0);
        assert_eq!(k(AluOp::Sub, Width::W64, 0, 1), u64::MAX);
    }

    #[test]
    fn ranges_stay_sound() {
        assert_eq!(alu(AluOp::And, Width::W64, Bounds::ANY, Bounds::exact(7)), b(0, 7));
        assert_eq!(alu(AluOp::Add, Width::W64, b(0, 7), Bounds::exact(8)), b(8, 15));
        assert_eq!(alu(AluOp::Sub, Width::W64, b(0, 7), Bounds::exact(1)), Bounds::ANY);
        assert_eq!(alu(AluOp::Lsh, Width::W64, b(0, 15), Bounds::exact(2)), b(0, 60));
        assert_eq!(alu(AluOp::Mod, Width::W64, Bounds::ANY, Bounds::exact(10)), b(0, 9));
        assert_eq!(alu(AluOp::Mul, Width::W32, b(0, 1 << 20), Bounds::exact(1 << 12)), Bounds::U32);
        assert_eq!(alu(AluOp::Rsh, Width::W64, Bounds::ANY, Bounds::exact(60)), b(0, 15));
        assert_eq!(end(ByteOrder::Be, 16, Bounds::exact(0x1234)), Bounds::exact(0x3412));
        assert_eq!(sign_extend(Width::W32, SxBits::S8, Bounds::exact(0x80)), Bounds::exact(0xffff_ff80));
    }

    #[test]
    fn conditions_decide_and_narrow() {
        assert_eq!(decide(Cond::Gt, Width::W64, b(0, 7), Bounds::exact(7)), Some(false));
        assert_eq!(decide(Cond::Lt, Width::W64, b(0, 7), Bounds::exact(8)), Some(true));
        assert_eq!(decide(Cond::Ne, Width::W64, b(1, 7), Bounds::exact(0)), Some(true));
        assert_eq!(decide(Cond::Sgt, Width::W64, Bounds::ANY, Bounds::exact(0)), None);
        assert_eq!(decide(Cond::Eq, Width::W32, Bounds::exact(1 << 32), Bounds::exact(0)), Some(true));
        let k = Bounds::exact(10);
        assert_eq!(refine(Cond::Lt, Width::W64, true, Bounds::ANY, k), Some((b(0, 9), k)));
        assert_eq!(refine(Cond::Lt, Width::W64, false, Bounds::ANY, k), Some((b(10, u64::MAX), k)));
        assert_eq!(refine(Cond::Ne, Width::W64, true, b(0, 5), Bounds::exact(0)), Some((b(1, 5), b(0, 0))));
        assert_eq!(refine(Cond::Eq, Width::W64, true, b(0, 5), Bounds::exact(9)), None);
        // A 32-bit jump narrows only values that fit in 32 bits.
        assert_eq!(refine(Cond::Lt, Width::W32, true, Bounds::ANY, k), Some((Bounds::ANY, k)));
        assert_eq!(refine(Cond::Slt, Width::W32, true, Bounds::U32, k), Some((Bounds::U32, k)));
        assert_eq!(refine(Cond::Slt, Width::W32, true, b(0, 100), k), Some((b(0, 9), k)));
    }

    #[test]
    fn pointer_offsets_saturate() {
        let far = Off::at(0).moved(Off::at(i64::MAX), false);
        assert_eq!(far, Off { lo: FAR, hi: FAR });
        assert_eq!(Off::at(-8).moved(Off::at(i64::MIN), true), Off { lo: FAR, hi: FAR });
    }

    #[test]
    fn widening_moves_only_the_bounds_that_moved() {
        let v = Val::Scalar(b(0, 3)).widen(Val::Scalar(b(0, 4)), &[]);
        assert_eq!(v, Val::Scalar(b(0, u64::MAX)));
        // To the next constant the program compares with.
        let v = Val::Scalar(b(2, 3)).widen(Val::Scalar(b(1, 4)), &[0, 1, 15, 16, 17]);
        assert_eq!(v, Val::Scalar(b(1, 15)));
        let p =
            Val::Stack { frame: 0, off: Off::at(-16) }.widen(Val::Stack { frame: 0, off: Off::at(-8) }, &[]);
        assert_eq!(p, Val::Stack { frame: 0, off: Off { lo: -16, hi: FAR } });
        assert_eq!(Val::Scalar(b(0, 3)).join(Val::Ctx(Off::at(0))), Val::Mixed);
    }
}
