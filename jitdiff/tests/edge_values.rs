//! Edge values through every instruction class, on every engine.
//!
//! The table is generated: ALU ops × widths × operand forms × edge values, every jump
//! condition, loads and stores through the stack and the context, `lddw`, and every
//! atomic. Each case returns R0 (all 64 bits), and its expected value comes from the small
//! specification functions below, written from the kernel's documented rules
//! (instruction-set.rst / RFC 9669) and independent of jitdiff's own code. One test runs
//! the whole table and reports every failure at once.

mod common;

use bpf::Input;
use common::{all_engines, asm, check_r0};

// ---------------------------------------------------------------------------------------
// Edge values
// ---------------------------------------------------------------------------------------

/// Register values: 0, 1, -1, i32::MIN (sign-extended), i32::MAX (= 0x7fffffff), i64::MIN,
/// i64::MAX, 0x80000000, 0xffffffff, 0x800, 0x7ffff800, -2048, 2047, 2^32.
const EDGES: [u64; 14] = [
    0,
    1,
    u64::MAX,
    i32::MIN as i64 as u64,
    i32::MAX as u64,
    i64::MIN as u64,
    i64::MAX as u64,
    0x8000_0000,
    0xffff_ffff,
    0x800,
    0x7fff_f800,
    -2048i64 as u64,
    2047,
    0x1_0000_0000,
];

/// 32-bit immediates: the edge values that fit the field. 0x80000000 and 0xffffffff are
/// the same bits as i32::MIN and -1.
const IMMS: [i32; 9] = [0, 1, -1, i32::MIN, i32::MAX, 0x800, 0x7fff_f800, -2048, 2047];

/// Shift counts.
const SHIFTS: [u64; 5] = [0, 1, 31, 32, 63];

/// Byte-distinct patterns, so that byte swaps and partial stores show which bytes moved.
const PATTERNS: [u64; 3] = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210, 0x8001_7ffe_80ff_017f];

/// What a stack slot holds before a narrower store or atomic changes part of it.
const PAT: u64 = 0xf1e2_d3c4_b5a6_9788;

// ---------------------------------------------------------------------------------------
// The specification
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Sdiv,
    Mod,
    Smod,
    Or,
    And,
    Xor,
    Lsh,
    Rsh,
    Arsh,
}

/// Every binary ALU op: (op, name, assembler operator).
const OPS: [(Op, &str, &str); 13] = [
    (Op::Add, "add", "+="),
    (Op::Sub, "sub", "-="),
    (Op::Mul, "mul", "*="),
    (Op::Div, "div", "/="),
    (Op::Sdiv, "sdiv", "s/="),
    (Op::Mod, "mod", "%="),
    (Op::Smod, "smod", "s%="),
    (Op::Or, "or", "|="),
    (Op::And, "and", "&="),
    (Op::Xor, "xor", "^="),
    (Op::Lsh, "lsh", "<<="),
    (Op::Rsh, "rsh", ">>="),
    (Op::Arsh, "arsh", "s>>="),
];

fn is_shift(op: Op) -> bool {
    matches!(op, Op::Lsh | Op::Rsh | Op::Arsh)
}

fn is_div_or_mod(op: Op) -> bool {
    matches!(op, Op::Div | Op::Sdiv | Op::Mod | Op::Smod)
}

/// ALU64 `a op b` (a K immediate arrives here already sign-extended to 64 bits).
/// - division by 0 gives 0; modulo by 0 leaves the dividend;
/// - signed division and modulo truncate toward zero (the remainder takes the dividend's
///   sign); INT_MIN s/ -1 = INT_MIN (it is negation); x s% -1 = 0;
/// - shift counts are masked to 63.
fn alu64(op: Op, a: u64, b: u64) -> u64 {
    let (sa, sb) = (a as i64, b as i64);
    match op {
        Op::Add => a.wrapping_add(b),
        Op::Sub => a.wrapping_sub(b),
        Op::Mul => a.wrapping_mul(b),
        Op::Div if b == 0 => 0,
        Op::Div => a / b,
        Op::Mod if b == 0 => a,
        Op::Mod => a % b,
        Op::Sdiv if sb == 0 => 0,
        Op::Sdiv if sb == -1 => sa.wrapping_neg() as u64,
        Op::Sdiv => (sa / sb) as u64,
        Op::Smod if sb == 0 => a,
        Op::Smod if sb == -1 => 0,
        Op::Smod => (sa % sb) as u64,
        Op::Or => a | b,
        Op::And => a & b,
        Op::Xor => a ^ b,
        Op::Lsh => a << (b & 63),
        Op::Rsh => a >> (b & 63),
        Op::Arsh => (sa >> (b & 63)) as u64,
    }
}

/// ALU32 `a op b` on the low 32 bits; the same rules with 32-bit values and shift counts
/// masked to 31. The caller zero-extends the result into the 64-bit register (so modulo by
/// 0 keeps dst's low 32 bits and clears the upper 32).
///
/// Signed division and modulo are the mathematical ones (truncating) for every dividend,
/// S32_MIN included: S32_MIN s/ 2 = -2^30 = 0xc0000000. (The kernel's interpreter used
/// `abs()` on S32_MIN and got such cases wrong until upstream c77b30bd1dcb "bpf: Fix
/// undefined behavior in interpreter sdiv/smod for INT_MIN"; the documented semantics and
/// the fixed interpreter agree with this function.)
fn alu32(op: Op, a: u32, b: u32) -> u32 {
    let (sa, sb) = (a as i32, b as i32);
    match op {
        Op::Add => a.wrapping_add(b),
        Op::Sub => a.wrapping_sub(b),
        Op::Mul => a.wrapping_mul(b),
        Op::Div if b == 0 => 0,
        Op::Div => a / b,
        Op::Mod if b == 0 => a,
        Op::Mod => a % b,
        Op::Sdiv if sb == 0 => 0,
        Op::Sdiv if sb == -1 => sa.wrapping_neg() as u32,
        Op::Sdiv => (sa / sb) as u32,
        Op::Smod if sb == 0 => a,
        Op::Smod if sb == -1 => 0,
        Op::Smod => (sa % sb) as u32,
        Op::Or => a | b,
        Op::And => a & b,
        Op::Xor => a ^ b,
        Op::Lsh => a << (b & 31),
        Op::Rsh => a >> (b & 31),
        Op::Arsh => (sa >> (b & 31)) as u32,
    }
}

/// The result register after `dst op= src` at the given width: ALU32 results are
/// zero-extended.
fn alu(op: Op, w32: bool, a: u64, b: u64) -> u64 {
    if w32 {
        alu32(op, a as u32, b as u32) as u64
    } else {
        alu64(op, a, b)
    }
}

/// Every jump condition: (name, assembler operator).
const CONDS: [(&str, &str); 11] = [
    ("jeq", "=="),
    ("jne", "!="),
    ("jgt", ">"),
    ("jge", ">="),
    ("jlt", "<"),
    ("jle", "<="),
    ("jsgt", "s>"),
    ("jsge", "s>="),
    ("jslt", "s<"),
    ("jsle", "s<="),
    ("jset", "&"),
];

/// Whether `if a op b goto` jumps. JMP compares all 64 bits; JMP32 compares the low 32
/// bits (as s32 for signed conditions). `b` of a K form is the immediate sign-extended to
/// 64 bits (JMP32 only looks at its low 32 bits, the immediate itself).
fn taken(sym: &str, a: u64, b: u64, w32: bool) -> bool {
    let (ua, ub) = if w32 { (a & 0xffff_ffff, b & 0xffff_ffff) } else { (a, b) };
    let (sa, sb) = if w32 { (a as u32 as i32 as i64, b as u32 as i32 as i64) } else { (a as i64, b as i64) };
    match sym {
        "==" => ua == ub,
        "!=" => ua != ub,
        ">" => ua > ub,
        ">=" => ua >= ub,
        "<" => ua < ub,
        "<=" => ua <= ub,
        "s>" => sa > sb,
        "s>=" => sa >= sb,
        "s<" => sa < sb,
        "s<=" => sa <= sb,
        "&" => ua & ub != 0,
        _ => unreachable!("{sym}"),
    }
}

/// Sign-extends the low `bits` bits of `v`.
fn sext(v: u64, bits: u32) -> u64 {
    match bits {
        8 => v as u8 as i8 as i64 as u64,
        16 => v as u16 as i16 as i64 as u64,
        32 => v as u32 as i32 as i64 as u64,
        _ => v,
    }
}

/// Keeps the low `bytes` bytes of `v`.
fn trunc(v: u64, bytes: usize) -> u64 {
    if bytes == 8 {
        v
    } else {
        v & ((1u64 << (8 * bytes)) - 1)
    }
}

/// `v` with its low `bytes` bytes written little-endian over `slot` at byte `pos`.
fn overwrite(slot: u64, pos: usize, bytes: usize, v: u64) -> u64 {
    let mut b = slot.to_le_bytes();
    b[pos..pos + bytes].copy_from_slice(&v.to_le_bytes()[..bytes]);
    u64::from_le_bytes(b)
}

/// Reads `bytes` bytes little-endian at `off`.
fn read_le(mem: &[u8], off: usize, bytes: usize) -> u64 {
    let mut b = [0u8; 8];
    b[..bytes].copy_from_slice(&mem[off..off + bytes]);
    u64::from_le_bytes(b)
}

/// The result of `dst = le16/le32/le64/be../bswap.. dst` on little-endian: `le`
/// truncates (a no-op for 64), `be` and `bswap` reverse the low bytes (zero-extended).
fn end(order: &str, bits: u32, a: u64) -> u64 {
    let bytes = (bits / 8) as usize;
    let low = trunc(a, bytes);
    if order == "le" {
        return low;
    }
    // The low `bytes` bytes, most significant first, become the new least significant.
    let mut b = [0u8; 8];
    b[..bytes].copy_from_slice(&low.to_be_bytes()[8 - bytes..]);
    u64::from_le_bytes(b)
}

/// Atomic read-modify-write ops with their `lock` operator and fetch name.
const ATOMICS: [(&str, &str); 4] = [("add", "+="), ("or", "|="), ("and", "&="), ("xor", "^=")];

fn atomic_op(name: &str, m: u64, s: u64) -> u64 {
    match name {
        "add" => m.wrapping_add(s),
        "or" => m | s,
        "and" => m & s,
        "xor" => m ^ s,
        _ => unreachable!("{name}"),
    }
}

/// The context every context case runs on: bytes with and without bit 7 set.
fn ctx_bytes() -> Vec<u8> {
    let base = [0x00u8, 0x7f, 0x80, 0xff, 0x01, 0xfe, 0x55, 0xaa];
    (0..64).map(|i| base[i % 8] ^ ((i / 8) as u8).wrapping_mul(0x11)).collect()
}

// ---------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------

struct Case {
    name: String,
    text: String,
    input: Input,
    expected: u64,
}

#[derive(Default)]
struct Table(Vec<Case>);

impl Table {
    fn add(&mut self, name: String, text: String, expected: u64) {
        self.0.push(Case { name, text, input: Input::none(), expected });
    }

    fn add_ctx(&mut self, name: String, text: String, expected: u64) {
        self.0.push(Case { name, text, input: Input::with_ctx(ctx_bytes()), expected });
    }
}

/// Two different registers among r0-r9 for case number `i`, so that many register
/// mappings are exercised.
fn regs(i: usize) -> (u8, u8) {
    let d = (i % 10) as u8;
    let s = ((i * 7 + 3) % 10) as u8;
    if s == d {
        (d, (d + 1) % 10)
    } else {
        (d, s)
    }
}

fn width(w32: bool) -> (&'static str, char) {
    if w32 {
        ("alu32", 'w')
    } else {
        ("alu64", 'r')
    }
}

fn alu_cases(t: &mut Table) {
    let mut i = 0;
    for w32 in [true, false] {
        let (wn, w) = width(w32);
        for (op, name, sym) in OPS {
            // X form: dst and src registers loaded with 64-bit constants (an ALU32 op must
            // ignore their upper halves).
            let srcs: Vec<u64> = if is_shift(op) {
                SHIFTS.iter().chain(EDGES.iter()).copied().collect()
            } else {
                EDGES.to_vec()
            };
            for a in EDGES {
                for &b in &srcs {
                    i += 1;
                    let (d, s) = regs(i);
                    let text =
                        format!("r{d} = {a:#x} ll\nr{s} = {b:#x} ll\n{w}{d} {sym} {w}{s}\nr0 = r{d}\nexit");
                    t.add(
                        format!("{wn} {name} X {a:#x} {sym} {b:#x} (r{d}, r{s})"),
                        text,
                        alu(op, w32, a, b),
                    );
                }
            }
            // K form. The verifier rejects a division or modulo by an immediate 0 and a
            // shift by an immediate outside 0..width, so those are not programs.
            let imms: Vec<i32> = if is_shift(op) {
                SHIFTS.iter().filter(|&&c| c < if w32 { 32 } else { 64 }).map(|&c| c as i32).collect()
            } else {
                IMMS.iter().copied().filter(|&k| !(is_div_or_mod(op) && k == 0)).collect()
            };
            for a in EDGES {
                for &k in &imms {
                    i += 1;
                    let d = regs(i).0;
                    let text = format!("r{d} = {a:#x} ll\n{w}{d} {sym} {k}\nr0 = r{d}\nexit");
                    // ALU64 sign-extends the immediate; ALU32 uses its 32 bits.
                    let b = k as i64 as u64;
                    t.add(format!("{wn} {name} K {a:#x} {sym} {k} (r{d})"), text, alu(op, w32, a, b));
                }
            }
            // X form with the same register on both sides: `a op a`.
            for a in EDGES {
                i += 1;
                let d = regs(i).0;
                let text = format!("r{d} = {a:#x} ll\n{w}{d} {sym} {w}{d}\nr0 = r{d}\nexit");
                t.add(format!("{wn} {name} X same {a:#x} {sym} itself (r{d})"), text, alu(op, w32, a, a));
            }
        }
    }
}

fn mov_neg_movsx_end_cases(t: &mut Table) {
    let mut i = 0;
    // dst is preloaded with something else, so that a move must overwrite all 64 bits.
    let junk = 0xdead_beef_cafe_babe_u64;
    for w32 in [true, false] {
        let (wn, w) = width(w32);
        for b in EDGES.iter().chain(PATTERNS.iter()).copied() {
            i += 1;
            let (d, s) = regs(i);
            let text = format!("r{d} = {junk:#x} ll\nr{s} = {b:#x} ll\n{w}{d} = {w}{s}\nr0 = r{d}\nexit");
            // MOV32 zero-extends the low 32 bits of src.
            let expected = if w32 { b & 0xffff_ffff } else { b };
            t.add(format!("{wn} mov X {b:#x} (r{d} = r{s})"), text, expected);
        }
        for k in IMMS {
            i += 1;
            let d = regs(i).0;
            let text = format!("r{d} = {junk:#x} ll\n{w}{d} = {k}\nr0 = r{d}\nexit");
            // MOV64 K sign-extends the immediate; MOV32 K zero-extends it.
            let expected = if w32 { k as u32 as u64 } else { k as i64 as u64 };
            t.add(format!("{wn} mov K {k} (r{d})"), text, expected);
        }
        for a in EDGES.iter().chain(PATTERNS.iter()).copied() {
            i += 1;
            let d = regs(i).0;
            let text = format!("r{d} = {a:#x} ll\n{w}{d} = -{w}{d}\nr0 = r{d}\nexit");
            let expected = if w32 { (a as u32).wrapping_neg() as u64 } else { a.wrapping_neg() };
            t.add(format!("{wn} neg {a:#x} (r{d})"), text, expected);
        }
        let froms: &[u32] = if w32 { &[8, 16] } else { &[8, 16, 32] };
        for &bits in froms {
            for b in EDGES.iter().chain(PATTERNS.iter()).copied() {
                i += 1;
                let (d, s) = regs(i);
                let text = format!(
                    "r{d} = {junk:#x} ll\nr{s} = {b:#x} ll\n{w}{d} = (s{bits}){w}{s}\nr0 = r{d}\nexit"
                );
                // MOVSX sign-extends the low `bits` of src; the 32-bit form then
                // zero-extends its 32-bit result.
                let v = sext(b, bits);
                let expected = if w32 { v & 0xffff_ffff } else { v };
                t.add(format!("{wn} movsx{bits} {b:#x} (r{d} = r{s})"), text, expected);
            }
        }
    }
    // mov of the unsigned spellings of 32-bit immediates (the same bits as i32::MIN and -1).
    for (k, v) in [("0x80000000", 0x8000_0000u64), ("0xffffffff", 0xffff_ffff), ("0x7ffff800", 0x7fff_f800)] {
        let text = format!("r0 = {junk:#x} ll\nw0 = {k}\nexit");
        t.add(format!("alu32 mov K {k} (unsigned spelling)"), text, v);
    }
    // Byte order: `le` truncates on little-endian, `be` and `bswap` reverse the bytes.
    for order in ["le", "be", "bswap"] {
        for bits in [16, 32, 64] {
            for a in EDGES.iter().chain(PATTERNS.iter()).copied() {
                i += 1;
                let d = regs(i).0;
                let text = format!("r{d} = {a:#x} ll\nr{d} = {order}{bits} r{d}\nr0 = r{d}\nexit");
                t.add(format!("end {order}{bits} {a:#x} (r{d})"), text, end(order, bits, a));
            }
        }
    }
}

fn jump_cases(t: &mut Table) {
    let mut i = 0;
    for w32 in [true, false] {
        let (wn, w) = if w32 { ("jmp32", 'w') } else { ("jmp", 'r') };
        for (name, sym) in CONDS {
            // X form; registers r1-r9 (r0 holds the answer).
            for a in EDGES {
                for b in EDGES {
                    i += 1;
                    let (d, s) = regs(i);
                    let (d, s) = (d % 9 + 1, s % 9 + 1);
                    let s = if s == d { d % 9 + 1 } else { s };
                    let text = format!(
                        "r{d} = {a:#x} ll\nr{s} = {b:#x} ll\nr0 = 1\nif {w}{d} {sym} {w}{s} goto +1\nr0 = 0\nexit"
                    );
                    t.add(
                        format!("{wn} {name} X {a:#x} {sym} {b:#x} (r{d}, r{s})"),
                        text,
                        taken(sym, a, b, w32) as u64,
                    );
                }
            }
            // K form: JMP sign-extends the immediate to 64 bits; JMP32 compares with its
            // 32 bits.
            for a in EDGES {
                for k in IMMS {
                    i += 1;
                    let d = regs(i).0 % 9 + 1;
                    let text = format!("r{d} = {a:#x} ll\nr0 = 1\nif {w}{d} {sym} {k} goto +1\nr0 = 0\nexit");
                    t.add(
                        format!("{wn} {name} K {a:#x} {sym} {k} (r{d})"),
                        text,
                        taken(sym, a, k as i64 as u64, w32) as u64,
                    );
                }
            }
        }
    }
}

const TYPES: [(&str, &str, usize); 4] =
    [("u8", "s8", 1), ("u16", "s16", 2), ("u32", "s32", 4), ("u64", "", 8)];

fn memory_cases(t: &mut Table) {
    // Stack slots (8-aligned, from the top of the stack to its bottom at r10 - 512).
    let slots: [i32; 5] = [-8, -16, -24, -256, -512];
    let mut i = 0;
    for (ty, sty, n) in TYPES {
        let bits = 8 * n as u32;
        for v in EDGES.iter().chain(PATTERNS.iter()).copied() {
            i += 1;
            let slot = slots[i % slots.len()];
            let pos = (i * n) % 8;
            let off = slot + pos as i32;
            // A store writes exactly its own bytes: the rest of the slot keeps PAT.
            let text = format!(
                "r1 = {PAT:#x} ll\n*(u64 *)(r10 {slot}) = r1\nr2 = {v:#x} ll\n*({ty} *)(r10 {off}) = r2\nr0 = *(u64 *)(r10 {slot})\nexit"
            );
            t.add(format!("stx {ty} {v:#x} at r10{off}, slot read back"), text, overwrite(PAT, pos, n, v));
            // Load of the same size: zero-extended; MEMSX: sign-extended.
            let text = format!("r2 = {v:#x} ll\n*({ty} *)(r10 {off}) = r2\nr0 = *({ty} *)(r10 {off})\nexit");
            t.add(format!("stx/ldx {ty} {v:#x} at r10{off}"), text, trunc(v, n));
            if !sty.is_empty() {
                let text =
                    format!("r2 = {v:#x} ll\n*({ty} *)(r10 {off}) = r2\nr0 = *({sty} *)(r10 {off})\nexit");
                t.add(format!("stx {ty}/ldsx {sty} {v:#x} at r10{off}"), text, sext(v, bits));
            }
        }
        // Store immediate, negative ones included: the immediate is truncated to the size,
        // and a DW store sign-extends it to 64 bits.
        for k in IMMS.iter().copied().chain([-2, -128, -129, -32768]) {
            i += 1;
            let slot = slots[i % slots.len()];
            let pos = (i * n) % 8;
            let off = slot + pos as i32;
            let text = format!(
                "r1 = {PAT:#x} ll\n*(u64 *)(r10 {slot}) = r1\n*({ty} *)(r10 {off}) = {k}\nr0 = *(u64 *)(r10 {slot})\nexit"
            );
            t.add(format!("st {ty} imm {k} at r10{off}"), text, overwrite(PAT, pos, n, k as i64 as u64));
        }
    }

    // The context: loads of every size and signedness at aligned offsets, read from the
    // input bytes little-endian.
    let ctx = ctx_bytes();
    for (ty, sty, n) in TYPES {
        let bits = 8 * n as u32;
        for k in 0..8 {
            let off = k * 8 + (k % (8 / n)) * n;
            // Sometimes through a copy of r1, so another base register is used.
            let (setup, base) = if k % 2 == 0 { ("", 1) } else { ("r6 = r1\n", 6) };
            let text = format!("{setup}r0 = *({ty} *)(r{base} + {off})\nexit");
            t.add_ctx(format!("ldx {ty} ctx+{off} (r{base})"), text, read_le(&ctx, off, n));
            if !sty.is_empty() {
                let text = format!("{setup}r0 = *({sty} *)(r{base} + {off})\nexit");
                t.add_ctx(format!("ldsx {sty} ctx+{off} (r{base})"), text, sext(read_le(&ctx, off, n), bits));
            }
        }
        // Stores into the context: the 8 bytes around the store are read back.
        for (j, v) in EDGES.iter().chain(PATTERNS.iter()).copied().enumerate() {
            let off = (j * 8 + (j * n) % 8) % 64;
            let slot = off / 8 * 8;
            let mut after = ctx.clone();
            after[off..off + n].copy_from_slice(&v.to_le_bytes()[..n]);
            let text =
                format!("r2 = {v:#x} ll\n*({ty} *)(r1 + {off}) = r2\nr0 = *(u64 *)(r1 + {slot})\nexit");
            t.add_ctx(format!("stx {ty} {v:#x} ctx+{off}"), text, read_le(&after, slot, 8));
        }
        for (j, k) in [-1, -2048, i32::MIN, 0x7fff_f800, 0x800].into_iter().enumerate() {
            let off = (j * 16 + n) / n * n % 64;
            let slot = off / 8 * 8;
            let mut after = ctx.clone();
            after[off..off + n].copy_from_slice(&(k as i64 as u64).to_le_bytes()[..n]);
            let text = format!("*({ty} *)(r1 + {off}) = {k}\nr0 = *(u64 *)(r1 + {slot})\nexit");
            t.add_ctx(format!("st {ty} imm {k} ctx+{off}"), text, read_le(&after, slot, 8));
        }
    }
}

fn ld_imm64_cases(t: &mut Table) {
    let extra =
        [0xffff_ffff_0000_0000u64, 0x0000_0001_ffff_ffff, 0x8000_0000_0000_0001, 0x0000_0800_0000_0800];
    for (i, v) in EDGES.iter().chain(PATTERNS.iter()).chain(extra.iter()).copied().enumerate() {
        let d = regs(i).0;
        t.add(format!("lddw {v:#x} (r{d})"), format!("r{d} = {v:#x} ll\nr0 = r{d}\nexit"), v);
        // The same constant written in signed decimal.
        let dec = v as i64;
        t.add(format!("lddw {dec} decimal (r{d})"), format!("r{d} = {dec} ll\nr0 = r{d}\nexit"), v);
    }
}

fn atomic_cases(t: &mut Table) {
    let vals = [0u64, 1, u64::MAX, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, i64::MIN as u64, 0x1_0000_0001];
    let mut i = 0;
    for m in vals {
        for s in vals {
            i += 1;
            // DW: the slot at r10 - 8 starts as m; r1 = s.
            let setup = format!("r1 = {m:#x} ll\n*(u64 *)(r10 - 8) = r1\nr1 = {s:#x} ll\n");
            let mem = "r0 = *(u64 *)(r10 - 8)\nexit";
            // W: at r10 - 8 (the slot's low half) or r10 - 4 (its high half); the other half
            // must stay as it was. The operand is the low 32 bits of r1.
            let woff: usize = if i % 2 == 0 { 0 } else { 4 };
            let wat = -8 + woff as i32;
            let old32 = read_le(&m.to_le_bytes(), woff, 4);
            let wmem = |new32: u64| overwrite(m, woff, 4, new32);
            for (name, sym) in ATOMICS {
                let new = atomic_op(name, m, s);
                let new32 = atomic_op(name, old32, s) & 0xffff_ffff;
                t.add(
                    format!("atomic DW {name} mem {m:#x}, src {s:#x}: memory"),
                    format!("{setup}lock *(u64 *)(r10 - 8) {sym} r1\n{mem}"),
                    new,
                );
                t.add(
                    format!("atomic W {name} mem {m:#x} at r10{wat}, src {s:#x}: memory"),
                    format!("{setup}lock *(u32 *)(r10 {wat}) {sym} w1\n{mem}"),
                    wmem(new32),
                );
                // With FETCH the old value goes into src (zero-extended for W).
                let fetch = format!("{setup}r1 = atomic_fetch_{name}((u64 *)(r10 - 8), r1)\n");
                t.add(
                    format!("atomic DW fetch_{name} mem {m:#x}, src {s:#x}: src"),
                    format!("{fetch}r0 = r1\nexit"),
                    m,
                );
                t.add(
                    format!("atomic DW fetch_{name} mem {m:#x}, src {s:#x}: memory"),
                    format!("{fetch}{mem}"),
                    new,
                );
                let fetch = format!("{setup}w1 = atomic_fetch_{name}((u32 *)(r10 {wat}), w1)\n");
                t.add(
                    format!("atomic W fetch_{name} mem {m:#x} at r10{wat}, src {s:#x}: src"),
                    format!("{fetch}r0 = r1\nexit"),
                    old32,
                );
                t.add(
                    format!("atomic W fetch_{name} mem {m:#x} at r10{wat}, src {s:#x}: memory"),
                    format!("{fetch}{mem}"),
                    wmem(new32),
                );
            }
            // XCHG: memory takes src; src takes the old value (zero-extended for W).
            let x = format!("{setup}r1 = xchg_64(r10 - 8, r1)\n");
            t.add(format!("atomic DW xchg mem {m:#x}, src {s:#x}: src"), format!("{x}r0 = r1\nexit"), m);
            t.add(format!("atomic DW xchg mem {m:#x}, src {s:#x}: memory"), format!("{x}{mem}"), s);
            let x = format!("{setup}w1 = xchg32_32(r10 {wat}, w1)\n");
            t.add(
                format!("atomic W xchg mem {m:#x} at r10{wat}, src {s:#x}: src"),
                format!("{x}r0 = r1\nexit"),
                old32,
            );
            t.add(
                format!("atomic W xchg mem {m:#x} at r10{wat}, src {s:#x}: memory"),
                format!("{x}{mem}"),
                wmem(s & 0xffff_ffff),
            );
            // CMPXCHG: compare memory with R0 (its low 32 bits for W); if equal store src.
            // R0 always gets the old value, zero-extended for W.
            for success in [true, false] {
                let what = if success { "success" } else { "failure" };
                let r0 = if success { m } else { m ^ 1 };
                let c = format!("{setup}r0 = {r0:#x} ll\nr0 = cmpxchg_64(r10 - 8, r0, r1)\n");
                t.add(format!("atomic DW cmpxchg {what} mem {m:#x}, src {s:#x}: r0"), format!("{c}exit"), m);
                t.add(
                    format!("atomic DW cmpxchg {what} mem {m:#x}, src {s:#x}: memory"),
                    format!("{c}{mem}"),
                    if success { s } else { m },
                );
                // The upper half of R0 is junk that the 32-bit compare must ignore.
                let r0 = 0xdead_beef_0000_0000 | if success { old32 } else { old32 ^ 1 };
                let c = format!("{setup}r0 = {r0:#x} ll\nw0 = cmpxchg32_32(r10 {wat}, w0, w1)\n");
                t.add(
                    format!("atomic W cmpxchg {what} mem {m:#x} at r10{wat}, src {s:#x}: r0"),
                    format!("{c}exit"),
                    old32,
                );
                t.add(
                    format!("atomic W cmpxchg {what} mem {m:#x} at r10{wat}, src {s:#x}: memory"),
                    format!("{c}{mem}"),
                    if success { wmem(s & 0xffff_ffff) } else { m },
                );
            }
        }
    }
    // Atomics on the context, through r1 and a copy of it.
    let ctx = ctx_bytes();
    for (j, off) in [8usize, 16, 20, 40].into_iter().enumerate() {
        let s = EDGES[j * 3 % EDGES.len()] | 0x0100_0000;
        let (n, ty, w) = if off % 8 == 0 { (8, "u64", 'r') } else { (4, "u32", 'w') };
        let old = read_le(&ctx, off, n);
        let new = trunc(old.wrapping_add(s), n);
        let slot = off / 8 * 8;
        let mut after = ctx.clone();
        after[off..off + n].copy_from_slice(&new.to_le_bytes()[..n]);
        let text = format!(
            "r6 = r1\nr2 = {s:#x} ll\n{w}2 = atomic_fetch_add(({ty} *)(r6 + {off}), {w}2)\nr0 = r2\nexit"
        );
        t.add_ctx(format!("atomic {ty} fetch_add ctx+{off}: src"), text, old);
        let text =
            format!("r2 = {s:#x} ll\nlock *({ty} *)(r1 + {off}) += {w}2\nr0 = *(u64 *)(r1 + {slot})\nexit");
        t.add_ctx(format!("atomic {ty} add ctx+{off}: memory"), text, read_le(&after, slot, 8));
    }
}

fn table() -> Vec<Case> {
    let mut t = Table::default();
    alu_cases(&mut t);
    mov_neg_movsx_end_cases(&mut t);
    jump_cases(&mut t);
    memory_cases(&mut t);
    ld_imm64_cases(&mut t);
    atomic_cases(&mut t);
    t.0
}

/// A few expectations of the specification functions, checked by hand, so that a slip in
/// the specification shows up here rather than as a bogus engine failure.
#[test]
fn the_specification_says_what_the_kernel_says() {
    assert_eq!(alu(Op::Add, true, 0x7fff_ffff, 1), 0x8000_0000);
    assert_eq!(alu(Op::Sub, true, 0x8000_0000, -1i64 as u64), 0x8000_0001);
    assert_eq!(alu(Op::Sdiv, false, i64::MIN as u64, u64::MAX), i64::MIN as u64);
    assert_eq!(alu(Op::Sdiv, true, 0x8000_0000, u64::MAX), 0x8000_0000);
    assert_eq!(alu(Op::Sdiv, true, 0x8000_0000, 2), 0xc000_0000);
    assert_eq!(alu(Op::Smod, false, -7i64 as u64, 2), u64::MAX); // -7 = -3 * 2 - 1
    assert_eq!(alu(Op::Smod, true, 7, -2i64 as u64), 1); // 7 = -3 * -2 + 1
    assert_eq!(alu(Op::Smod, false, i64::MIN as u64, u64::MAX), 0);
    assert_eq!(alu(Op::Mod, true, 0xdead_beef_8000_0001, 0), 0x8000_0001);
    assert_eq!(alu(Op::Mod, false, 0xdead_beef_8000_0001, 0), 0xdead_beef_8000_0001);
    assert_eq!(alu(Op::Div, true, 5, 0x1_0000_0000), 0); // the divisor's low 32 bits are 0
    assert_eq!(alu(Op::Lsh, false, 1, 64 + 3), 8);
    assert_eq!(alu(Op::Arsh, true, 0x8000_0000, 31), 0xffff_ffff);
    assert_eq!(alu(Op::Arsh, false, 0x8000_0000, 31), 1);
    assert!(taken(">", u64::MAX, -2i64 as u64, true));
    assert!(!taken("s>", 0x8000_0000, 1, true));
    assert!(taken("s>", 0x8000_0000, 1, false));
    assert!(!taken("&", 0x1_0000_0000, 0x1_0000_0000, true));
    assert_eq!(end("be", 16, 0x1234_5678), 0x7856);
    assert_eq!(end("le", 32, 0x1_2345_6789), 0x2345_6789);
    assert_eq!(end("bswap", 64, 0x0123_4567_89ab_cdef), 0xefcd_ab89_6745_2301);
    assert_eq!(overwrite(0x8877_6655_4433_2211, 2, 2, 0xbbaa), 0x8877_6655_bbaa_2211);
    assert_eq!(sext(0x80, 8), 0xffff_ffff_ffff_ff80);
}

#[test]
fn edge_values_on_every_engine() {
    let cases = table();
    assert_eq!(cases.len(), 18772, "the table's size changed");
    let mut engines = all_engines();
    let mut failures = Vec::new();
    for c in &cases {
        let prog = asm(&c.name, &c.text);
        for f in check_r0(&mut engines, &c.name, &prog, &c.input, c.expected) {
            failures.push(format!("{f}\n    program: {}", c.text.replace('\n', "; ")));
        }
    }
    eprintln!("edge values: {} cases, {} failures", cases.len(), failures.len());
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}
