//! Text assembly in LLVM's BPF syntax: a parser ([`parse`], [`parse_program`]) and a
//! printer (`impl Display for Insn`, [`print_program`]), and a text format for program
//! sets built on it ([`parse_set`], [`print_set`], see [Program sets](#program-sets)).
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
//! | map value address (a global variable, in a set) | `r1 = &bss + 8 ll` (`src` = 2, `BPF_PSEUDO_MAP_VALUE`: the value of array map `bss`, which has one, plus 8) |
//! | load | `r1 = *(u32 *)(r10 - 4)`; sign-extending (v4): `r1 = *(s16 *)(r10 - 4)` |
//! | store | `*(u64 *)(r10 - 8) = r1`, immediate: `*(u32 *)(r10 - 8) = 5` |
//! | legacy packet load (socket filters, tc) | `r0 = *(u16 *)skb[12]` (`LD_ABS`), `r0 = *(u8 *)skb[r3]`, `r0 = *(u32 *)skb[r3 + 4]` (`LD_IND`): big-endian, from the socket buffer's data, R6 the context |
//! | atomics | `lock *(u64 *)(r1 + 0) += r2` (also `\|=`, `&=`, `^=`; `u32` forms use `w` registers), `r2 = atomic_fetch_add((u64 *)(r1 + 0), r2)` (`_or`, `_and`, `_xor`), `r2 = xchg_64(r1 + 0, r2)`, `w2 = xchg32_32(r1 + 0, w2)`, `r0 = cmpxchg_64(r1 + 0, r0, r2)`, `w0 = cmpxchg32_32(r1 + 0, w0, w2)` |
//! | jumps | `goto +3`, `gotol +70000` (v4), `if r1 s> -5 goto +2`, `if w1 & w2 goto -3` |
//! | calls | helper `call 1` or by name `call bpf_tail_call`, `call jitdiff_mix`; local (bpf2bpf) `call pc+5` / `call pc-3` / `call label`; kfunc `call kfunc:1234` |
//! | map reference (sets only) | `r2 = jmp_table ll` (`lddw` with `src` = 1 and the map's index) |
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
//! * **Helper names.** `call NAME` calls a helper by its name in [`crate::helpers`]
//!   (`ktime_get_ns`, `get_numa_node_id`, `jiffies64`, `ktime_get_boot_ns`,
//!   `ktime_get_coarse_ns`, `bpf_test_func`, `jitdiff_mix`, `jitdiff_counter`) or
//!   `bpf_tail_call` (id 12); the kernel's spelling with a `bpf_` prefix is accepted too
//!   (`bpf_ktime_get_ns`), and so is the verifier log's `call bpf_tail_call#12` (`#`
//!   starts a comment). Known helpers are printed by name, others as `call N`. Helper
//!   names cannot be labels.
//! * **`tail_call`** is jitdiff's own mnemonic for the kernel-internal `BPF_TAIL_CALL`
//!   opcode `0xf5` ([`crate::Insn::TailCall`]), which LLVM never emits and cannot print.
//! * **`lddw`** is printed as LLVM 14 prints it, `rN = <signed decimal> ll`. An
//!   `lddw` with a relocation shows up in `llvm-objdump -d` as `r1 = 0 ll` (the
//!   relocation line `-r` adds below it is skipped) and loads as the constant 0. Clang's
//!   `.s` spelling with a symbol (`r1 = map ll`) names a map declared by `.map` in a
//!   program set; anywhere else, or for an undeclared name, it is an error, because there
//!   is no value to load. Other `lddw`s with a non-zero `src` field are printed and
//!   parsed as LLVM's `ld_pseudo rN, SRC, IMM` (in a set, `ld_pseudo rN, 1, I` is a
//!   reference to map `I` and prints by name, and `ld_pseudo rN, 2, I | OFF << 32` the
//!   address of the value of map `I` (an array of one value) plus `OFF`, printed `rN = &NAME + OFF ll`).
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
//! directives (lines starting with `.text`, `.globl`, ...), which are ignored, except
//! jitdiff's own (`.ctx`, `.map`, `.slot`, `.prog`, `.stack`, see below; a near miss such
//! as `.slots` is an error); and
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
//!
//! # Program sets
//!
//! A [`crate::ProgramSet`] (programs that tail-call each other through prog-array maps)
//! and the context of its run are written as assembly with five directives. A text
//! without them is a set of one program named `entry`, so every single-program file is
//! also a set file. [`parse_set`] reads the format, [`print_set`] writes it, and
//! `parse_set(&print_set(&set, ctx))` gives back `set` and `ctx`.
//!
//! ```text
//! ; a program that tail-calls itself until the kernel's limit stops it
//! .ctx 8                        ; the run's context: 8 zero bytes
//! .map jmp_table 4              ; a prog array with max_entries 4
//! .slot jmp_table 0 entry       ; slot 0 holds program `entry`; other slots are empty
//!
//! .prog entry                   ; a program; the first one is the entry
//! .stack 16                     ; the stack depth of the function that follows
//!     r6 = r1
//!     r1 = *(u32 *)(r6 + 0)
//!     r1 += 1
//!     *(u32 *)(r6 + 0) = r1
//!     r1 = r6
//!     r2 = jmp_table ll         ; a map reference: lddw r2 with src = 1, imm = 0
//!     r3 = 0
//!     call bpf_tail_call        ; helpers by name or number (`call 12`)
//!     call count                ; a bpf2bpf call to a subprogram of this program
//!     exit
//! count:
//! .stack 8
//!     *(u64 *)(r10 - 8) = 1
//!     r0 = *(u64 *)(r10 - 8)
//!     exit
//!
//! .prog other                   ; labels are local to their program
//!     r0 = 2
//!     exit
//! ```
//!
//! | Directive | Meaning |
//! |---|---|
//! | `.progtype tc`, `.progtype socket` | every program of the set is a tc (`BPF_PROG_TYPE_SCHED_CLS`) or socket-filter program: R1 points to a `struct __sk_buff` over the packet `.ctx` gives ([`crate::context`]); without `.progtype` (or with `.progtype buffer`) R1 points to the `.ctx` bytes themselves |
//! | `.ctx SIZE` | the run's context is `SIZE` zero bytes (0 to [`MAX_CTX_SIZE`]) |
//! | `.ctx hex BYTES` | the context is these bytes: hex, two digits a byte, in words separated by spaces (`.ctx hex 01000000 ff`) |
//! | `.ctx SIZE hex BYTES` | `SIZE` bytes that start with `BYTES`, the rest zero |
//! | `.ctx none` | no context (R1 = 0 at entry) |
//! | `.map NAME MAX_ENTRIES` | a `BPF_MAP_TYPE_PROG_ARRAY` with 1 to [`crate::exec::MAX_MAP_ENTRIES`] slots; maps are numbered in declaration order |
//! | `.slot MAP INDEX PROG` | slot `INDEX` of `MAP` holds program `PROG` (which may be declared later); slots without `.slot` are empty |
//! | `.prog NAME` | starts a program; programs are numbered in order, the first is the entry |
//! | `.stack DEPTH` | the stack depth (0 to 512 bytes) of the function that starts at the next instruction; without it, the depth the kernel's verifier computes ([`crate::validate::stack_depths`]: the deepest byte any pointer into the frame reaches), or [`crate::Program::new`]'s estimate where the validator cannot follow the program |
//!
//! The rules:
//!
//! * `.progtype`, `.ctx`, `.map` and `.slot` form a header: they come before the first
//!   program, and `.map` before the `.slot`s of its map. Each of `.progtype`, `.ctx` and the
//!   names comes at most once.
//! * Instructions before the first `.prog` (or a `.stack` there) form a program named
//!   [`DEFAULT_PROG_NAME`] (`entry`); more programs may follow with `.prog`.
//! * `.stack` must be followed by the first instruction of a function: the program's
//!   first instruction or the target of a bpf2bpf call (labels may come in between).
//! * Names of programs and maps are letters, digits, `_` and `.`, start with a letter or
//!   `_`, and are not register names. Programs and maps have separate namespaces, labels
//!   one per program.
//! * `rN = NAME ll` names a declared map; `call NAME` with a label `NAME` of the same
//!   program is a bpf2bpf call (a program cannot call into another: programs meet only
//!   through tail calls).
//! * A directive starts its line (indentation is fine); every argument is one word;
//!   comments may follow.
//!
//! [`parse_program`] accepts `.stack` and rejects the other four directives (a file with
//! them is a set: read it with [`parse_set`] or [`crate::load::load_set_file`]); [`parse`]
//! rejects all five.
//!
//! ```
//! use bpf::asm::{parse_set, print_set};
//! let text = "\
//! .ctx 4 hex 01
//! .map jmp_table 2
//! .slot jmp_table 1 second
//!
//! .prog first
//!     r2 = jmp_table ll
//!     r3 = 1
//!     call bpf_tail_call
//!     r0 = 0
//!     exit
//!
//! .prog second
//!     r0 = 7
//!     exit
//! ";
//! let file = parse_set(text).unwrap();
//! assert_eq!(file.set.progs()[1].name, "second");
//! assert_eq!(file.set.maps()[0].slots, vec![None, Some(1)]);
//! assert_eq!(file.ctx, Some(bpf::Input::with_ctx(vec![1, 0, 0, 0])));
//! assert_eq!(print_set(&file.set, file.ctx.as_ref()), text);
//! ```

pub mod kernel;
mod lex;
mod parse;
mod print;
mod read;
mod set;

pub use print::print_program;
pub use read::{parse, parse_program};
pub use set::{parse_set, print_set, SetFile, DEFAULT_PROG_NAME, MAX_CTX_SIZE};

#[cfg(test)]
mod set_tests;
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
