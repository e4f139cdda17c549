//! The machine state and the execution loop.
//!
//! [`Machine`] is the state of the running frame: the register file with its provenance
//! marks and the set of undefined registers, the pc (an instruction index), the remaining
//! budget and the memory. The loop copies the hot parts into locals, runs one `match` per
//! instruction and writes them back when it stops. Calls, tail calls and `exit` stop the
//! loop; the frame logic (`calls`) handles them and resumes it.
//!
//! Undefined registers (left by calls) are checked only while there are any: the loop
//! tests one local per instruction, and a run without calls never leaves that fast path.

use bpf::{Cond, FaultKind};

use super::alu;
use super::atomic;
use super::decode::{self, code, Op, NO_REG};
use super::memory::{Memory, MARK_ADDR, MARK_MAP, MARK_VALUE, UNINIT};

/// The register file: values and, per register, the provenance mark of the value: which
/// kinds of address ([`MARK_ADDR`], [`MARK_MAP`], [`MARK_VALUE`]) it is derived from, 0 for
/// none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Regs {
    /// R0 to R10 (indexes 11 to 15 are never used; 16 entries make `r & 15` a safe index).
    pub val: [u64; 16],
    /// The marks. One byte per register, so that marks depend on each other only where the
    /// values do.
    pub mark: [u8; 16],
}

/// A safe register index: register numbers are at most 10, and `& 15` keeps any `u8`
/// inside the 16-entry file without a bounds check.
#[inline(always)]
const fn ix(r: u8) -> usize {
    (r & 15) as usize
}

impl Regs {
    /// The entry state: `val` for R0 to R10, with `marked` registers marked [`MARK_ADDR`].
    pub(super) fn new(val: [u64; 11], marked: &[u8]) -> Regs {
        let mut regs = Regs { val: [0; 16], mark: [0; 16] };
        regs.val[..11].copy_from_slice(&val);
        for &r in marked {
            regs.mark[ix(r)] = MARK_ADDR;
        }
        regs
    }

    /// The value of register `r`.
    #[inline(always)]
    pub(super) fn get(&self, r: u8) -> u64 {
        self.val[ix(r)]
    }

    /// Whether register `r` is derived from any address.
    #[inline(always)]
    pub(super) fn marked(&self, r: u8) -> bool {
        self.mark[ix(r)] != 0
    }

    /// The provenance mark of register `r`.
    #[inline(always)]
    pub(super) fn mark_of(&self, r: u8) -> u8 {
        self.mark[ix(r)]
    }

    /// Writes `v` into `r` and sets its mark to `m`.
    #[inline(always)]
    pub(super) fn set(&mut self, r: u8, v: u64, m: u8) {
        let i = ix(r);
        self.val[i] = v;
        self.mark[i] = m;
    }

    /// `dst = f(dst, imm)`: the mark of `dst` stays as it is (an address plus or minus a
    /// scalar is an address; anything else computed from an address is still derived from it).
    #[inline(always)]
    fn k(&mut self, f: fn(u64, u64) -> u64, d: u8, k: u64) {
        let i = ix(d);
        self.val[i] = f(self.val[i], k);
    }

    /// `dst = f(dst, src)`: `dst` becomes marked if `src` is.
    #[inline(always)]
    fn x(&mut self, f: fn(u64, u64) -> u64, d: u8, s: u8) {
        let (i, j) = (ix(d), ix(s));
        self.val[i] = f(self.val[i], self.val[j]);
        self.mark[i] |= self.mark[j];
    }

    /// `dst = f(dst)`: the mark stays.
    #[inline(always)]
    fn unary(&mut self, f: fn(u64) -> u64, d: u8) {
        let i = ix(d);
        self.val[i] = f(self.val[i]);
    }

    /// `dst = f(src)` (moves and sign extensions): `dst` takes `src`'s mark.
    #[inline(always)]
    fn mov(&mut self, f: fn(u64) -> u64, d: u8, s: u8) {
        let v = f(self.get(s));
        let m = self.mark_of(s);
        self.set(d, v, m);
    }
}

/// The bit of register `r` in a register mask.
#[inline(always)]
pub(super) const fn bit(r: u8) -> u16 {
    1 << (r & 15)
}

/// Why a run stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// `exit` with this R0.
    Exit {
        /// The full R0.
        r0: u64,
        /// R0's provenance mark.
        r0_mark: u8,
    },
    /// A bpf-to-bpf call at `index` to instruction `target`.
    Call {
        /// The instruction index of the call.
        index: usize,
        /// The instruction index it calls.
        target: usize,
    },
    /// A helper or kfunc call at `index`.
    Helper {
        /// The instruction index of the call.
        index: usize,
        /// The helper id, or the kfunc id when `kfunc`.
        id: i32,
        /// A kfunc call (`call kfunc:N`).
        kfunc: bool,
    },
    /// A legacy packet load at `index` of `size` bytes at `offset` (the offset plus the
    /// index register, as the kernel's helper takes it: the low 32 bits, signed).
    PacketLoad {
        /// The instruction index.
        index: usize,
        /// Where to read.
        offset: i32,
        /// 1, 2 or 4 bytes.
        size: usize,
        /// The index register of `LD_IND`.
        reg: Option<u8>,
    },
    /// A tail call at `index` (`call 12` or `BPF_TAIL_CALL`).
    TailCall {
        /// The instruction index of the call.
        index: usize,
    },
    /// The instruction at `index` reads register `reg`, which is undefined.
    Undefined {
        /// The instruction index.
        index: usize,
        /// The register read.
        reg: u8,
    },
    /// A fault at instruction `index`.
    Fault {
        /// The class.
        kind: FaultKind,
        /// The instruction index (not the slot pc).
        index: usize,
        /// The account.
        detail: String,
    },
    /// Execution reached an unsupported instruction (`code::UNSUPPORTED`) at `index`.
    Unsupported {
        /// The instruction index.
        index: usize,
    },
}

/// The state of the running frame.
#[derive(Debug)]
pub(super) struct Machine<'m> {
    /// Registers and their marks.
    pub regs: Regs,
    /// Bit `r` set: register `r` is undefined (a call clobbered it); reading it is a
    /// verifier fault. 0 at entry: every register counts as defined.
    pub undef: u16,
    /// The next instruction's index.
    pub pc: usize,
    /// Instructions that may still execute.
    pub remaining: u64,
    /// The budget the run started with (for the fault text).
    pub budget: u64,
    /// The stack and the context.
    pub mem: &'m mut Memory,
}

#[cold]
#[inline(never)]
fn access_fault(mem: &Memory, index: usize, addr: u64, n: usize, what: &str, values: bool) -> Stop {
    Stop::Fault { kind: FaultKind::MemoryAccess, index, detail: mem.miss_detail(addr, n, what, values) }
}

/// Whether an access with base register mark `mark` goes through a pointer to a map value
/// (and so may reach the array maps' values).
#[inline(always)]
const fn via_value(mark: u8) -> bool {
    mark & MARK_VALUE != 0
}

#[cold]
#[inline(never)]
fn uninit_fault(index: usize, addr: u64, n: usize, what: &str) -> Stop {
    let detail = format!(
        "{n}-byte {what} {addr:#x} reads stack bytes nothing wrote: the stack of a subprogram or a \
         tail-call target starts uninitialized (the verifier rejects such reads from unprivileged \
         programs, and engines would see different leftovers)"
    );
    Stop::Fault { kind: FaultKind::Verifier, index, detail }
}

/// The first register `op` reads that is undefined, in the verifier's order; otherwise
/// clears the registers it writes from `undef`.
#[cold]
#[inline(never)]
fn check_undefined(op: &Op, undef: &mut u16) -> Option<u8> {
    let uses = decode::reg_use(op);
    if let Some(&r) = uses.reads.iter().find(|&&r| r != NO_REG && *undef & bit(r) != 0) {
        return Some(r);
    }
    *undef &= !uses.writes;
    None
}

#[cold]
#[inline(never)]
fn no_map(index: usize, map: u64) -> Stop {
    let detail = format!("lddw names map {map}, which the program set does not have");
    Stop::Fault { kind: FaultKind::Verifier, index, detail }
}

#[cold]
#[inline(never)]
fn past_the_end(index: usize) -> Stop {
    let detail = format!("execution reached instruction {index}, past the end of the program");
    Stop::Fault { kind: FaultKind::Host, index, detail }
}

#[cold]
#[inline(never)]
fn out_of_budget(index: usize, budget: u64) -> Stop {
    let detail = format!("the budget of {budget} executed instructions ran out");
    Stop::Fault { kind: FaultKind::Budget, index, detail }
}

/// The address `base + off`, wrapping like the hardware.
#[inline(always)]
fn ea(base: u64, off: i16) -> u64 {
    base.wrapping_add(off as i64 as u64)
}

/// Executes one `N`-byte (4 or 8) atomic at instruction `at`; `Some(stop)` when it faults.
#[inline(never)]
fn exec_atomic<const N: usize>(mem: &mut Memory, regs: &mut Regs, at: usize, ins: &Op) -> Option<Stop> {
    let (d, s) = (ins.dst, ins.src);
    let Some(op) = decode::atomic_op(ins) else {
        return Some(Stop::Unsupported { index: at });
    };
    let a = ea(regs.get(d), ins.off());
    let what = atomic::access_name(op);
    let values = via_value(regs.mark_of(d));
    const { assert!(N == 4 || N == 8) };
    if a & (N as u64 - 1) != 0 {
        let detail = format!("{N}-byte {what} {a:#x} is not aligned to {N} bytes");
        return Some(Stop::Fault { kind: FaultKind::MisalignedAtomic, index: at, detail });
    }
    // The verifier checks an atomic's alignment within the map value (the kernel's values
    // are 8-byte aligned); the address check above covers this layout, where values follow
    // each other without padding.
    if let Some((o, i, name)) = mem.value_offset(a, values) {
        if o & (N as u64 - 1) != 0 {
            let detail = format!(
                "{N}-byte {what} {a:#x} is at offset {o} of value {i} of array map {name}, \
                 which is not aligned to {N} bytes"
            );
            return Some(Stop::Fault { kind: FaultKind::MisalignedAtomic, index: at, detail });
        }
    }
    let Some(mut cell) = mem.cell(a, N, values) else {
        return Some(access_fault(mem, at, a, N, what, values));
    };
    let (old, old_mark) = cell.get();
    if old_mark & UNINIT != 0 {
        return Some(uninit_fault(at, a, N, what));
    }
    let src_mark = regs.mark_of(s);
    let effect = atomic::apply(op, N == 8, old, regs.get(s), regs.get(0));
    if let Some(v) = effect.store {
        cell.set(v, atomic::store_mark(op, old_mark, src_mark));
    }
    if let Some(v) = effect.src {
        regs.set(s, v, old_mark);
    }
    if let Some(v) = effect.r0 {
        regs.set(0, v, old_mark);
    }
    None
}

impl Machine<'_> {
    /// Runs `ops` from the current pc until `exit`, a call, a fault, the end of the budget
    /// or an unsupported instruction.
    pub(super) fn run(&mut self, ops: &[Op]) -> Stop {
        let mut r = self.regs;
        let mut undef = self.undef;
        let mut pc = self.pc;
        let mut remaining = self.remaining;
        let mem = &mut *self.mem;

        // Loads: `dst = ext(*(N bytes *)(src + off))`, the mark from the loaded bytes.
        macro_rules! load {
            ($n:literal, $ext:expr, $d:expr, $s:expr, $off:expr, $at:expr) => {{
                let a = ea(r.get($s), $off);
                let values = via_value(r.mark_of($s));
                match mem.load::<$n>(a, values) {
                    Some((v, m)) if m & UNINIT == 0 => r.set($d, $ext(v), m),
                    Some(_) => break uninit_fault($at, a, $n, "load from"),
                    None => break access_fault(mem, $at, a, $n, "load from", values),
                }
            }};
        }
        // Stores of a value with a mark.
        macro_rules! store {
            ($n:literal, $d:expr, $off:expr, $v:expr, $m:expr, $at:expr) => {{
                let a = ea(r.get($d), $off);
                let values = via_value(r.mark_of($d));
                if !mem.store::<$n>(a, $v, $m, values) {
                    break access_fault(mem, $at, a, $n, "store to", values);
                }
            }};
        }
        // Conditional jumps: 64-bit, or on the low 32 bits.
        macro_rules! j64 {
            ($c:expr, $a:expr, $b:expr, $t:expr) => {
                if $c.holds($a, $b, false) {
                    pc = $t as usize;
                }
            };
        }
        macro_rules! j32 {
            ($c:expr, $a:expr, $b:expr, $t:expr) => {
                if $c.holds($a as u32 as u64, $b as u32 as u64, true) {
                    pc = $t as usize;
                }
            };
        }

        let stop = loop {
            let Some(&op) = ops.get(pc) else {
                break past_the_end(pc);
            };
            if remaining == 0 {
                break out_of_budget(pc, self.budget);
            }
            remaining -= 1;
            let at = pc;
            pc += 1;
            if undef != 0 {
                if let Some(reg) = check_undefined(&op, &mut undef) {
                    break Stop::Undefined { index: at, reg };
                }
            }
            let (d, s, k) = (op.dst, op.src, op.imm);
            match op.code {
                code::ADD64K => r.k(alu::add64, d, k),
                code::ADD64X => r.x(alu::add64, d, s),
                code::SUB64K => r.k(alu::sub64, d, k),
                code::SUB64X => r.x(alu::sub64, d, s),
                code::MUL64K => r.k(alu::mul64, d, k),
                code::MUL64X => r.x(alu::mul64, d, s),
                code::DIV64K => r.k(alu::div64, d, k),
                code::DIV64X => r.x(alu::div64, d, s),
                code::SDIV64K => r.k(alu::sdiv64, d, k),
                code::SDIV64X => r.x(alu::sdiv64, d, s),
                code::MOD64K => r.k(alu::mod64, d, k),
                code::MOD64X => r.x(alu::mod64, d, s),
                code::SMOD64K => r.k(alu::smod64, d, k),
                code::SMOD64X => r.x(alu::smod64, d, s),
                code::OR64K => r.k(alu::or64, d, k),
                code::OR64X => r.x(alu::or64, d, s),
                code::AND64K => r.k(alu::and64, d, k),
                code::AND64X => r.x(alu::and64, d, s),
                code::XOR64K => r.k(alu::xor64, d, k),
                code::XOR64X => r.x(alu::xor64, d, s),
                code::LSH64K => r.k(alu::lsh64, d, k),
                code::LSH64X => r.x(alu::lsh64, d, s),
                code::RSH64K => r.k(alu::rsh64, d, k),
                code::RSH64X => r.x(alu::rsh64, d, s),
                code::ARSH64K => r.k(alu::arsh64, d, k),
                code::ARSH64X => r.x(alu::arsh64, d, s),
                code::MOV64K => r.set(d, k, 0),
                code::MOV64X => r.mov(|v| v, d, s),
                code::ADD32K => r.k(alu::add32, d, k),
                code::ADD32X => r.x(alu::add32, d, s),
                code::SUB32K => r.k(alu::sub32, d, k),
                code::SUB32X => r.x(alu::sub32, d, s),
                code::MUL32K => r.k(alu::mul32, d, k),
                code::MUL32X => r.x(alu::mul32, d, s),
                code::DIV32K => r.k(alu::div32, d, k),
                code::DIV32X => r.x(alu::div32, d, s),
                code::SDIV32K => r.k(alu::sdiv32, d, k),
                code::SDIV32X => r.x(alu::sdiv32, d, s),
                code::MOD32K => r.k(alu::mod32, d, k),
                code::MOD32X => r.x(alu::mod32, d, s),
                code::SMOD32K => r.k(alu::smod32, d, k),
                code::SMOD32X => r.x(alu::smod32, d, s),
                code::OR32K => r.k(alu::or32, d, k),
                code::OR32X => r.x(alu::or32, d, s),
                code::AND32K => r.k(alu::and32, d, k),
                code::AND32X => r.x(alu::and32, d, s),
                code::XOR32K => r.k(alu::xor32, d, k),
                code::XOR32X => r.x(alu::xor32, d, s),
                code::LSH32K => r.k(alu::lsh32, d, k),
                code::LSH32X => r.x(alu::lsh32, d, s),
                code::RSH32K => r.k(alu::rsh32, d, k),
                code::RSH32X => r.x(alu::rsh32, d, s),
                code::ARSH32K => r.k(alu::arsh32, d, k),
                code::ARSH32X => r.x(alu::arsh32, d, s),
                code::MOV32K => r.set(d, k, 0),
                code::MOV32X => r.mov(alu::trunc32, d, s),
                code::NEG64 => r.unary(alu::neg64, d),
                code::NEG32 => r.unary(alu::neg32, d),
                code::SX8_64 => r.mov(alu::sx8_64, d, s),
                code::SX16_64 => r.mov(alu::sx16_64, d, s),
                code::SX32_64 => r.mov(alu::sx32_64, d, s),
                code::SX8_32 => r.mov(alu::sx8_32, d, s),
                code::SX16_32 => r.mov(alu::sx16_32, d, s),
                code::TRUNC16 => r.unary(alu::trunc16, d),
                code::TRUNC32 => r.unary(alu::trunc32, d),
                code::SWAP16 => r.unary(alu::swap16, d),
                code::SWAP32 => r.unary(alu::swap32, d),
                code::SWAP64 => r.unary(alu::swap64, d),
                code::NOP => {}
                code::JA => pc = op.aux as usize,
                code::JEQ64K => j64!(Cond::Eq, r.get(d), k, op.aux),
                code::JEQ64X => j64!(Cond::Eq, r.get(d), r.get(s), op.aux),
                code::JNE64K => j64!(Cond::Ne, r.get(d), k, op.aux),
                code::JNE64X => j64!(Cond::Ne, r.get(d), r.get(s), op.aux),
                code::JGT64K => j64!(Cond::Gt, r.get(d), k, op.aux),
                code::JGT64X => j64!(Cond::Gt, r.get(d), r.get(s), op.aux),
                code::JGE64K => j64!(Cond::Ge, r.get(d), k, op.aux),
                code::JGE64X => j64!(Cond::Ge, r.get(d), r.get(s), op.aux),
                code::JLT64K => j64!(Cond::Lt, r.get(d), k, op.aux),
                code::JLT64X => j64!(Cond::Lt, r.get(d), r.get(s), op.aux),
                code::JLE64K => j64!(Cond::Le, r.get(d), k, op.aux),
                code::JLE64X => j64!(Cond::Le, r.get(d), r.get(s), op.aux),
                code::JSGT64K => j64!(Cond::Sgt, r.get(d), k, op.aux),
                code::JSGT64X => j64!(Cond::Sgt, r.get(d), r.get(s), op.aux),
                code::JSGE64K => j64!(Cond::Sge, r.get(d), k, op.aux),
                code::JSGE64X => j64!(Cond::Sge, r.get(d), r.get(s), op.aux),
                code::JSLT64K => j64!(Cond::Slt, r.get(d), k, op.aux),
                code::JSLT64X => j64!(Cond::Slt, r.get(d), r.get(s), op.aux),
                code::JSLE64K => j64!(Cond::Sle, r.get(d), k, op.aux),
                code::JSLE64X => j64!(Cond::Sle, r.get(d), r.get(s), op.aux),
                code::JSET64K => j64!(Cond::Set, r.get(d), k, op.aux),
                code::JSET64X => j64!(Cond::Set, r.get(d), r.get(s), op.aux),
                code::JEQ32K => j32!(Cond::Eq, r.get(d), k, op.aux),
                code::JEQ32X => j32!(Cond::Eq, r.get(d), r.get(s), op.aux),
                code::JNE32K => j32!(Cond::Ne, r.get(d), k, op.aux),
                code::JNE32X => j32!(Cond::Ne, r.get(d), r.get(s), op.aux),
                code::JGT32K => j32!(Cond::Gt, r.get(d), k, op.aux),
                code::JGT32X => j32!(Cond::Gt, r.get(d), r.get(s), op.aux),
                code::JGE32K => j32!(Cond::Ge, r.get(d), k, op.aux),
                code::JGE32X => j32!(Cond::Ge, r.get(d), r.get(s), op.aux),
                code::JLT32K => j32!(Cond::Lt, r.get(d), k, op.aux),
                code::JLT32X => j32!(Cond::Lt, r.get(d), r.get(s), op.aux),
                code::JLE32K => j32!(Cond::Le, r.get(d), k, op.aux),
                code::JLE32X => j32!(Cond::Le, r.get(d), r.get(s), op.aux),
                code::JSGT32K => j32!(Cond::Sgt, r.get(d), k, op.aux),
                code::JSGT32X => j32!(Cond::Sgt, r.get(d), r.get(s), op.aux),
                code::JSGE32K => j32!(Cond::Sge, r.get(d), k, op.aux),
                code::JSGE32X => j32!(Cond::Sge, r.get(d), r.get(s), op.aux),
                code::JSLT32K => j32!(Cond::Slt, r.get(d), k, op.aux),
                code::JSLT32X => j32!(Cond::Slt, r.get(d), r.get(s), op.aux),
                code::JSLE32K => j32!(Cond::Sle, r.get(d), k, op.aux),
                code::JSLE32X => j32!(Cond::Sle, r.get(d), r.get(s), op.aux),
                code::JSET32K => j32!(Cond::Set, r.get(d), k, op.aux),
                code::JSET32X => j32!(Cond::Set, r.get(d), r.get(s), op.aux),
                code::LDX_B => load!(1, |v| v, d, s, op.off(), at),
                code::LDX_H => load!(2, |v| v, d, s, op.off(), at),
                code::LDX_W => load!(4, |v| v, d, s, op.off(), at),
                code::LDX_DW => load!(8, |v| v, d, s, op.off(), at),
                code::LDXS_B => load!(1, alu::sx8_64, d, s, op.off(), at),
                code::LDXS_H => load!(2, alu::sx16_64, d, s, op.off(), at),
                code::LDXS_W => load!(4, alu::sx32_64, d, s, op.off(), at),
                code::ST_B => store!(1, d, op.off(), k, 0, at),
                code::ST_H => store!(2, d, op.off(), k, 0, at),
                code::ST_W => store!(4, d, op.off(), k, 0, at),
                code::ST_DW => store!(8, d, op.off(), k, 0, at),
                code::STX_B => store!(1, d, op.off(), r.get(s), r.mark_of(s), at),
                code::STX_H => store!(2, d, op.off(), r.get(s), r.mark_of(s), at),
                code::STX_W => store!(4, d, op.off(), r.get(s), r.mark_of(s), at),
                code::STX_DW => store!(8, d, op.off(), r.get(s), r.mark_of(s), at),
                code::ATOMIC_W => {
                    if let Some(stop) = exec_atomic::<4>(mem, &mut r, at, &op) {
                        break stop;
                    }
                }
                code::ATOMIC_DW => {
                    if let Some(stop) = exec_atomic::<8>(mem, &mut r, at, &op) {
                        break stop;
                    }
                }
                code::ZERO => r.set(d, 0, 0),
                code::LD_MAP => r.set(d, k, MARK_MAP),
                code::LD_VALUE => r.set(d, k, MARK_VALUE),
                code::NO_MAP => break no_map(at, k),
                code::EXIT => break Stop::Exit { r0: r.get(0), r0_mark: r.mark_of(0) },
                code::CALL => break Stop::Call { index: at, target: op.aux as usize },
                code::HELPER => break Stop::Helper { index: at, id: k as i32, kfunc: false },
                code::KFUNC => break Stop::Helper { index: at, id: k as i32, kfunc: true },
                code::TAIL_CALL => break Stop::TailCall { index: at },
                code::PACKET_LOAD => {
                    let index = if s == NO_REG { 0 } else { r.get(s) };
                    let offset = index.wrapping_add(k) as u32 as i32;
                    let reg = (s != NO_REG).then_some(s);
                    break Stop::PacketLoad { index: at, offset, size: op.aux as usize, reg };
                }
                // UNSUPPORTED, and any code without an arm.
                _ => break Stop::Unsupported { index: at },
            }
        };
        self.regs = r;
        self.undef = undef;
        self.pc = pc;
        self.remaining = remaining;
        stop
    }
}

#[cfg(test)]
mod tests {
    //! Jumps, the budget, provenance and "cannot judge", as whole programs; every expected
    //! value is worked out by hand from the kernel's rules.

    use super::super::layout::{CTX_ADDR, STACK_TOP};
    use super::super::testutil::*;
    use super::super::Reference;
    use bpf::{
        AluOp, AtomicOp, Call, Cond, Engine, FaultKind, Input, Insn, Operand, Program, Reg, RunResult,
    };
    use bpf::{Size, SxBits, Width};

    /// `r1 = a; r2 = b; r0 = 1; if r1 cond src goto +1; r0 = 0; exit`: 1 when taken.
    fn taken(width: Width, cond: Cond, a: u64, src: Operand, b: u64) -> bool {
        let r0 = r0_of(vec![
            lddw(Reg::R1, a),
            lddw(Reg::R2, b),
            mov64(Reg::R0, 1),
            Insn::Jmp { width, cond, dst: Reg::R1, src, off: 1 },
            mov64(Reg::R0, 0),
            Insn::Exit,
        ]);
        r0 == 1
    }

    #[test]
    fn conditional_jumps_with_immediates() {
        use Cond::*;
        use Width::{W32, W64};
        const MIN64: u64 = 0x8000_0000_0000_0000;
        // (width, condition, dst value, immediate, taken)
        let rows: &[(Width, Cond, u64, i32, bool)] = &[
            // 64-bit: the immediate is sign-extended to 64 bits.
            (W64, Eq, u64::MAX, -1, true),
            (W64, Eq, 0xffff_ffff, -1, false),
            (W64, Ne, 1, 1, false),
            (W64, Ne, 1, 2, true),
            (W64, Gt, 0xffff_ffff_ffff_fffe, -1, false),
            (W64, Gt, u64::MAX, -2, true),
            (W64, Ge, 5, 5, true),
            (W64, Ge, 4, 5, false),
            (W64, Lt, 0, -1, true),
            (W64, Lt, MIN64, 0x7fff_ffff, false),
            (W64, Le, 5, 5, true),
            (W64, Le, 6, 5, false),
            (W64, Sgt, 0, -1, true),
            (W64, Sgt, 0xffff_ffff_ffff_fffe, -1, false),
            (W64, Sge, u64::MAX, -1, true),
            (W64, Sge, MIN64, 0, false),
            (W64, Slt, MIN64, i32::MIN, true),
            (W64, Slt, 0x8000_0000, i32::MIN, false),
            (W64, Sle, 0xffff_ffff_ffff_fffb, -5, true),
            (W64, Sle, 0, -5, false),
            (W64, Set, 0x1_0000_0000, -1, true),
            (W64, Set, 0x1_0000_0000, 0x7fff_ffff, false),
            // 32-bit: the low half of dst; the immediate as u32 (unsigned) or s32 (signed).
            (W32, Eq, 0x1234_5678_ffff_ffff, -1, true),
            (W32, Eq, 0x1_0000_0000, 0, true),
            (W32, Ne, 0x1_0000_0000, 0, false),
            (W32, Gt, 0xffff_ffff, 0x7fff_ffff, true),
            (W32, Gt, 0xffff_ffff_0000_0001, 1, false),
            (W32, Ge, 0x1_0000_0000, 0, true),
            (W32, Ge, 0x1_0000_0000, 1, false),
            (W32, Lt, 0xffff_ffff_0000_0000, 1, true),
            (W32, Lt, 0x8000_0000, 0x7fff_ffff, false),
            (W32, Le, 0xffff_ffff, -1, true),
            (W32, Le, 0xffff_ffff, 0x7fff_ffff, false),
            (W32, Sgt, 0xffff_ffff, -2, true),
            (W32, Sgt, 0x8000_0000, 0, false),
            (W32, Sge, 0x1_0000_0000, 0, true),
            (W32, Sge, 0xffff_ffff, 0, false),
            (W32, Slt, 0x8000_0000, 0, true),
            (W32, Slt, 0xffff_ffff_7fff_ffff, 0, false),
            (W32, Sle, u64::MAX, -1, true),
            (W32, Sle, 1, 0, false),
            (W32, Set, 0x1_0000_0000, -1, false),
            (W32, Set, 0x1_0000_0001, 1, true),
        ];
        for &(width, cond, a, imm, want) in rows {
            assert_eq!(taken(width, cond, a, Operand::Imm(imm), 0), want, "{width:?} {a:#x} {cond:?} {imm}");
        }
    }

    #[test]
    fn conditional_jumps_with_registers() {
        use Cond::*;
        use Width::{W32, W64};
        // (width, condition, dst value, src value, taken)
        let rows: &[(Width, Cond, u64, u64, bool)] = &[
            (W64, Eq, 0x1_0000_0005, 0x2_0000_0005, false),
            (W32, Eq, 0x1_0000_0005, 0x2_0000_0005, true),
            (W64, Ne, 0x1_0000_0005, 0x2_0000_0005, true),
            (W32, Ne, 0x1_0000_0005, 0x2_0000_0005, false),
            (W64, Gt, 1, u64::MAX, false),
            (W64, Sgt, 1, u64::MAX, true),
            (W32, Gt, 0x1_0000_0001, 0xffff_ffff_0000_0002, false),
            (W32, Sgt, 0x1, 0xffff_ffff, true),
            (W64, Ge, 7, 7, true),
            (W32, Ge, 0x7, 0x1_0000_0008, false),
            (W64, Lt, 0xffff_ffff, 0x1_0000_0000, true),
            (W32, Lt, 0xffff_ffff, 0x1_0000_0000, false),
            (W64, Le, 3, 2, false),
            (W32, Le, 0x5_0000_0002, 0x2, true),
            (W64, Slt, 0xffff_ffff, 0xffff_ffff_0000_0000, false),
            (W32, Slt, 0xffff_ffff, 0xffff_ffff_0000_0000, true),
            (W64, Sge, 0x8000_0000_0000_0000, 0, false),
            (W32, Sge, 0x8000_0000_0000_0000, 0, true),
            (W64, Sle, 0xffff_ffff_ffff_fffe, 0xffff_ffff_ffff_ffff, true),
            (W32, Sle, 0x7fff_ffff, 0x8000_0000, false),
            // JMP32 JSET must not look at the upper halves (kernel commit 80f1f8503635).
            (W64, Set, 0x1_0000_0000, 0x1_0000_0000, true),
            (W32, Set, 0x1_0000_0000, 0x1_0000_0000, false),
        ];
        for &(width, cond, a, b, want) in rows {
            assert_eq!(
                taken(width, cond, a, Operand::Reg(Reg::R2), b),
                want,
                "{width:?} {a:#x} {cond:?} {b:#x}"
            );
        }
    }

    #[test]
    fn jumps_count_slots_and_loops_run() {
        // goto +2 skips the two slots of an lddw.
        assert_eq!(r0_of(vec![Insn::Ja { off: 2 }, lddw(Reg::R0, 7), Insn::Exit]), 0);
        // gotol +2 from slot 0 lands on slot 3 (r0 = 2); gotol -3 from slot 4 on slot 2 (exit).
        assert_eq!(
            r0_of(vec![
                Insn::JaLong { off: 2 },
                mov64(Reg::R0, 1),
                Insn::Exit,
                mov64(Reg::R0, 2),
                Insn::JaLong { off: -3 },
            ]),
            2
        );
        // r0 = 0; r1 = 10; do { r0 += 2; r1 -= 1 } while (r1 != 0)
        assert_eq!(
            r0_of(vec![
                mov64(Reg::R0, 0),
                mov64(Reg::R1, 10),
                alu64(AluOp::Add, Reg::R0, 2),
                alu64(AluOp::Sub, Reg::R1, 1),
                Insn::Jmp { width: Width::W64, cond: Cond::Ne, dst: Reg::R1, src: Operand::Imm(0), off: -3 },
                Insn::Exit,
            ]),
            20
        );
        // goto +0 is a no-op; exit returns all 64 bits of R0.
        assert_eq!(
            r0_of(vec![lddw(Reg::R0, 0xdead_beef_0000_0001), Insn::Ja { off: 0 }, Insn::Exit]),
            0xdead_beef_0000_0001
        );
    }

    #[test]
    fn registers_start_at_zero() {
        for r in [Reg::R0, Reg::R2, Reg::R5, Reg::R9] {
            assert_eq!(r0_of(vec![movx(Reg::R0, r), Insn::Exit]), 0, "{r}");
        }
        let out = run(vec![movx(Reg::R0, Reg::R1), Insn::Exit]);
        assert_eq!((out.result, out.r0_is_address), (Ok(0), false), "no context: r1 = 0, a scalar");
        let out = run_on(vec![movx(Reg::R0, Reg::R1), Insn::Exit], Input::with_ctx(vec![1]));
        assert_eq!((out.result, out.r0_is_address), (Ok(CTX_ADDR), true));
    }

    #[test]
    fn budget() {
        let three = vec![mov64(Reg::R0, 1), mov64(Reg::R0, 2), Insn::Exit];
        let prog = Program::new(three).expect("valid");
        let RunResult::Ran(out) = Reference::with_budget(3).run(&prog, &Input::none()) else { panic!() };
        assert_eq!(out.result, Ok(2));
        let RunResult::Ran(out) = Reference::with_budget(2).run(&prog, &Input::none()) else { panic!() };
        let fault = out.result.expect_err("budget");
        assert_eq!((fault.kind, fault.pc), (FaultKind::Budget, Some(2)));
        assert_eq!(fault.detail, "the budget of 2 executed instructions ran out");
        // An endless loop, behind an lddw so the pc is a slot number.
        let prog = Program::new(vec![lddw(Reg::R0, 1), Insn::Ja { off: -1 }]).expect("valid");
        let RunResult::Ran(out) = Reference::with_budget(1000).run(&prog, &Input::with_ctx(vec![9])) else {
            panic!()
        };
        assert_eq!(out.result.expect_err("budget").pc, Some(2));
        assert_eq!(out.ctx, vec![9]);
        assert_eq!(Reference::new().budget(), 100_000_000);
        assert_eq!(Reference::new().name(), "reference");
    }

    /// The CannotJudge reason when running `insns`.
    fn cannot_judge(insns: Vec<Insn>) -> String {
        let prog = Program::new(insns).expect("valid");
        match Reference::new().run(&prog, &Input::none()) {
            RunResult::CannotJudge(why) => why,
            other => panic!("expected cannot-judge, got: {other:?}"),
        }
    }

    #[test]
    fn kernel_kfuncs_and_unmodelled_instructions_cannot_be_judged() {
        let why = cannot_judge(vec![Insn::Call(Call::Kfunc(3)), Insn::Exit]);
        assert_eq!(why, "pc 0: call of kfunc 3: only jitdiff's own kfuncs are modelled, not a kernel's");
        // BPF_PSEUDO_BTF_ID (a kernel variable's address).
        let why = cannot_judge(vec![Insn::LdImm64 { dst: Reg::R1, pseudo: 3, imm: 0 }, Insn::Exit]);
        assert!(why.starts_with("pc 0: lddw with pseudo source 3: only plain constants"), "{why}");
        // Insn values the wire format cannot express.
        let odd = [
            Insn::End { order: bpf::ByteOrder::Be, bits: 8, dst: Reg::R0 },
            Insn::MovSx { width: Width::W32, from: SxBits::S32, dst: Reg::R0, src: Reg::R1 },
            Insn::Load { size: Size::DW, signed: true, dst: Reg::R0, src: Reg::R10, off: -8 },
            Insn::Atomic { size: Size::H, op: AtomicOp::Add, dst: Reg::R10, src: Reg::R1, off: -8 },
        ];
        for insn in odd {
            let why = cannot_judge(vec![insn, Insn::Exit]);
            assert!(why.starts_with("pc 0: "), "{why}");
        }
        // Never reached: the program runs.
        assert_eq!(
            r0_of(vec![mov64(Reg::R0, 3), Insn::Ja { off: 1 }, Insn::Call(Call::Helper(1)), Insn::Exit]),
            3
        );
    }

    /// R0 and its mark after `insns` (512-byte stack, an 8-byte context).
    fn provenance(insns: Vec<Insn>) -> (u64, bool) {
        let out = run_on(insns, Input::with_ctx(vec![0; 8]));
        (out.result.expect("runs"), out.r0_is_address)
    }

    #[test]
    fn provenance_of_registers() {
        let w64 = Width::W64;
        assert_eq!(provenance(vec![movx(Reg::R0, Reg::R10), Insn::Exit]), (STACK_TOP, true));
        assert_eq!(
            provenance(vec![movx(Reg::R0, Reg::R10), alu64(AluOp::Add, Reg::R0, -8), Insn::Exit]),
            (STACK_TOP - 8, true)
        );
        assert_eq!(
            provenance(vec![movx(Reg::R0, Reg::R10), alu64(AluOp::Mul, Reg::R0, 3), Insn::Exit]),
            (STACK_TOP * 3, true)
        );
        assert_eq!(
            provenance(vec![mov64(Reg::R0, 1), alux(w64, AluOp::Add, Reg::R0, Reg::R10), Insn::Exit]),
            (STACK_TOP + 1, true)
        );
        assert_eq!(
            provenance(vec![alux(Width::W32, AluOp::Mov, Reg::R0, Reg::R1), Insn::Exit]),
            (CTX_ADDR, true)
        );
        assert_eq!(
            provenance(vec![
                Insn::MovSx { width: w64, from: SxBits::S8, dst: Reg::R0, src: Reg::R10 },
                Insn::Exit
            ]),
            (0, true)
        );
        assert_eq!(
            provenance(vec![movx(Reg::R0, Reg::R10), Insn::Neg { width: w64, dst: Reg::R0 }, Insn::Exit]),
            (STACK_TOP.wrapping_neg(), true)
        );
        // Overwritten by a constant: a scalar again.
        assert_eq!(provenance(vec![movx(Reg::R0, Reg::R10), mov64(Reg::R0, 5), Insn::Exit]), (5, false));
        assert_eq!(provenance(vec![movx(Reg::R0, Reg::R10), lddw(Reg::R0, 5), Insn::Exit]), (5, false));
        // x ^ x and x - x are 0 in every engine.
        assert_eq!(
            provenance(vec![movx(Reg::R0, Reg::R10), alux(w64, AluOp::Xor, Reg::R0, Reg::R0), Insn::Exit]),
            (0, false)
        );
        assert_eq!(
            provenance(vec![
                movx(Reg::R0, Reg::R1),
                alux(Width::W32, AluOp::Sub, Reg::R0, Reg::R0),
                Insn::Exit
            ]),
            (0, false)
        );
        // A scalar operand does not mark; a marked source does.
        assert_eq!(
            provenance(vec![mov64(Reg::R0, 4), alux(w64, AluOp::Add, Reg::R0, Reg::R2), Insn::Exit]),
            (4, false)
        );
    }

    #[test]
    fn provenance_through_memory() {
        let st = |dst, src, off| Insn::Store { size: Size::DW, dst, src, off };
        let ld = |size, dst, src, off| Insn::Load { size, signed: false, dst, src, off };
        // Stored to the stack and loaded back, whole or in part.
        assert_eq!(
            provenance(vec![st(Reg::R10, Reg::R10, -8), ld(Size::DW, Reg::R0, Reg::R10, -8), Insn::Exit]),
            (STACK_TOP, true)
        );
        assert_eq!(
            provenance(vec![st(Reg::R10, Reg::R10, -8), ld(Size::B, Reg::R0, Reg::R10, -7), Insn::Exit]),
            (0x02, true)
        );
        // An immediate store over it clears the mark; a neighbour is never marked.
        assert_eq!(
            provenance(vec![
                st(Reg::R10, Reg::R10, -8),
                Insn::StoreImm { size: Size::DW, dst: Reg::R10, off: -8, imm: 1 },
                ld(Size::DW, Reg::R0, Reg::R10, -8),
                Insn::Exit,
            ]),
            (1, false)
        );
        assert_eq!(
            provenance(vec![st(Reg::R10, Reg::R10, -8), ld(Size::DW, Reg::R0, Reg::R10, -16), Insn::Exit]),
            (0, false)
        );
        // Through the context (cleared again before exit: an address left in the
        // context makes the run one the reference cannot judge).
        assert_eq!(
            provenance(vec![
                st(Reg::R1, Reg::R10, 0),
                ld(Size::W, Reg::R0, Reg::R1, 0),
                Insn::StoreImm { size: Size::DW, dst: Reg::R1, off: 0, imm: 0 },
                Insn::Exit,
            ]),
            (0x2000_0200, true)
        );
        // Atomics: xchg hands the stored address back; fetch_add of a scalar into an
        // address-marked cell yields a marked old value.
        assert_eq!(
            provenance(vec![
                st(Reg::R10, Reg::R10, -8),
                mov64(Reg::R3, 1),
                Insn::Atomic { size: Size::DW, op: AtomicOp::Xchg, dst: Reg::R10, src: Reg::R3, off: -8 },
                movx(Reg::R0, Reg::R3),
                Insn::Exit,
            ]),
            (STACK_TOP, true)
        );
        assert_eq!(
            provenance(vec![
                st(Reg::R10, Reg::R10, -8),
                mov64(Reg::R3, 1),
                Insn::Atomic { size: Size::DW, op: AtomicOp::Xchg, dst: Reg::R10, src: Reg::R3, off: -8 },
                ld(Size::DW, Reg::R0, Reg::R10, -8),
                Insn::Exit,
            ]),
            (1, false)
        );
        assert_eq!(
            provenance(vec![
                mov64(Reg::R3, 1),
                Insn::Atomic { size: Size::DW, op: AtomicOp::Add, dst: Reg::R10, src: Reg::R10, off: -8 },
                Insn::Atomic { size: Size::DW, op: AtomicOp::FetchAdd, dst: Reg::R10, src: Reg::R3, off: -8 },
                movx(Reg::R0, Reg::R3),
                Insn::Exit,
            ]),
            (STACK_TOP, true)
        );
        // cmpxchg: R0 takes the mark of the old memory value.
        assert_eq!(
            provenance(vec![
                movx(Reg::R0, Reg::R10),
                Insn::Atomic { size: Size::DW, op: AtomicOp::Cmpxchg, dst: Reg::R10, src: Reg::R10, off: -8 },
                Insn::Exit,
            ]),
            (0, false)
        );
    }
}
