//! Text assembly in LLVM's BPF syntax: a parser ([`parse`], [`parse_program`]) and a
//! printer (`impl Display for Insn`, [`print_program`]).
//!
//! The syntax is the one `llvm-objdump -d` prints and clang's `.s` output uses, so
//! disassembly can be pasted in unchanged. Where LLVM 14 has no spelling (cpu v4), the
//! spelling of LLVM 17 and later is used.
//!
//! # Instructions
//!
//! | Instruction | Text |
//! |---|---|
//! | ALU, register or immediate | `r0 += r1`, `w0 -= 5`, `r0 s/= r1`, `w0 s%= 3`, `r0 s>>= 7`, `r0 = r1`, `w0 = -5` |
//! | negation | `r0 = -r0`, `w0 = -w0` |
//! | sign-extending move (v4) | `r0 = (s8)r1`, `r0 = (s16)r1`, `r0 = (s32)r1`, `w0 = (s8)w1`, `w0 = (s16)w1` |
//! | byte order | `r0 = be16 r0`, `r0 = le64 r0`, `r0 = bswap32 r0` (v4) |
//! | 64-bit immediate | `r1 = 4886718345 ll` (decimal or hex, negative allowed), `ld_pseudo r1, 1, 5` (`src` = 1) |
//! | load | `r1 = *(u32 *)(r10 - 4)`; sign-extending (v4): `r1 = *(s16 *)(r10 - 4)` |
//! | store | `*(u64 *)(r10 - 8) = r1`, immediate: `*(u32 *)(r10 - 8) = 5` |
//! | atomics | `lock *(u64 *)(r1 + 0) += r2` (also `\|=`, `&=`, `^=`; `u32` forms use `w` registers), `r2 = atomic_fetch_add((u64 *)(r1 + 0), r2)` (`_or`, `_and`, `_xor`), `r2 = xchg_64(r1 + 0, r2)`, `w2 = xchg32_32(r1 + 0, w2)`, `r0 = cmpxchg_64(r1 + 0, r0, r2)`, `w0 = cmpxchg32_32(r1 + 0, w0, w2)` |
//! | jumps | `goto +3`, `gotol +70000` (v4), `if r1 s> -5 goto +2`, `if w1 & w2 goto -3` |
//! | calls | helper `call 1`; local (bpf2bpf) `call pc+5` / `call pc-3` / `call label`; kfunc `call kfunc:1234` |
//! | other | `exit`, `tail_call` |
//!
//! Notes on the choices that LLVM does not settle:
//!
//! * **Local calls.** LLVM prints helper, local and kfunc calls alike as `call N` (in an
//!   object file a local call shows its slot offset, e.g. `call 11`, and clang's `.s`
//!   output names the function, `call sub`). `call N` therefore means a helper; local
//!   calls are written `call pc+N` (the kernel verifier log's spelling, offset from the
//!   next instruction, in slots) or `call label`, and kfunc calls `call kfunc:N` (BTF id).
//!   When a line pasted from `llvm-objdump -d` carries its hex bytes, the `src` field in
//!   the bytes decides which kind of call `call N` is.
//! * **`tail_call`** is jitdiff's own mnemonic for the kernel-internal `BPF_TAIL_CALL`
//!   opcode `0xf5` ([`crate::Insn::TailCall`]), which LLVM never emits and cannot print.
//! * **`lddw`** is printed as LLVM 14 prints it, `rN = <signed decimal> ll`. An
//!   `lddw` with a relocation shows up in `llvm-objdump -d` as `r1 = 0 ll` (the
//!   relocation line `-r` adds below it is skipped) and loads as the constant 0; clang's
//!   `.s` spelling with a symbol (`r1 = map ll`) is rejected because there is no value to
//!   load. `lddw` with a non-zero `src` field (map references) is printed and parsed as
//!   LLVM's `ld_pseudo rN, SRC, IMM`.
//! * Loads and stores narrower than 64 bits accept `w` as well as `r` value registers
//!   (clang with `-mcpu=v3` writes `w1 = *(u32 *)(r10 - 4)`), and `lock *(u32 *)...`
//!   accepts both; everything else requires the register width the operation has.
//!
//! Immediates are printed in decimal; jump and call offsets with an explicit sign.
//!
//! # Input format
//!
//! One instruction per line. Accepted besides instructions: blank lines; comments
//! starting with `;`, `#` or `//`; labels (`name:`, alone or before an instruction, e.g.
//! `LBB0_2:`) usable as targets of `goto`, `gotol`, `if ... goto` and `call`; assembler
//! directives (lines starting with `.text`, `.globl`, ...), which are ignored; and
//! `llvm-objdump -d` output: the `file format` line, `Disassembly of section` lines,
//! `<func>:` headers, relocation lines, the leading `12:` slot number, the `<LBB0_2>`
//! annotation after a jump and the hex bytes column are skipped. When the bytes column is
//! present it is checked against the text (an error if they disagree), and it supplies
//! what LLVM's text leaves out: the kind of a call, the high half of an `ld_pseudo`, and
//! instructions printed as `<unknown>` by an `llvm-objdump` too old to know them.
//!
//! Numbers are decimal or `0x` hex with an optional sign. An immediate that does not fit
//! its field is an error, never truncated: 64-bit operations take `-2^31..2^31-1` (the
//! value is sign-extended), 32-bit operations and narrow immediate stores also take
//! `2^31..2^32-1` (written as the same 32 bits), memory offsets `-32768..32767`, `goto`
//! and `if` offsets 16 bits, `gotol` and call offsets 32 bits.
//!
//! # Example
//! ```
//! let insns = bpf::asm::parse("r0 = 1\nif r1 s> -5 goto +1\nr0 = 2\nexit").unwrap();
//! assert_eq!(bpf::asm::print_program(&insns), "r0 = 1\nif r1 s> -5 goto +1\nr0 = 2\nexit\n");
//! ```

mod lex;
mod parse;
mod print;

pub use parse::{parse, parse_program};
pub use print::print_program;

#[cfg(test)]
mod tests;

/// Why a text does not assemble: the 1-based line and column of the problem, and what it is.
///
/// Displays as `line 3, column 5: unknown mnemonic "foo"`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct AsmError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}
