//! The smallest BTF that lets the kernel's verifier see a program's functions: the kernel
//! refuses a tail call in a subprogram unless the program comes with BTF `func_info` ("tail_call
//! is not allowed in subprogs without BTF"), wants each such function to return `int`, and
//! attaches fentry/fexit programs only to functions its BTF names.
//!
//! The types are `int` (id 1), `long` (id 2), `int (long a1, ..., long a5)` (id 3; a function's
//! parameters must be named) and
//! one static `FUNC` of that prototype per function (`f0`, `f1`, ... from id 4), in the format
//! of the kernel's `Documentation/bpf/btf.rst`: a 24-byte header, the type section, the
//! string section.
//!
//! Five `long` parameters make a trampoline save and restore all of R1-R5, whatever a
//! function uses: where the prototype does not describe a call (a pointer passed, a register
//! left unset, a main function whose argument is the context), the kernel marks the function's
//! BTF unreliable and falls back to five u64 arguments, the same.

use crate::{FuncInfo, ProgBtf};

/// `BTF_MAGIC`, stored little-endian.
const MAGIC: u16 = 0xeb9f;
/// The header's size: magic, version, flags, then five `u32`s.
const HEADER_LEN: u32 = 24;
/// `BTF_KIND_INT`, `BTF_KIND_FUNC`, `BTF_KIND_FUNC_PROTO`.
const KIND_INT: u32 = 1;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
/// `BTF_INT_SIGNED`, in the encoding bits (24..28) of an `int`'s extra word.
const INT_SIGNED: u32 = 1 << 24;
/// The parameters of every prototype (`MAX_BPF_FUNC_REG_ARGS`).
const PARAMS: u32 = 5;

/// The type id of function `f`'s `FUNC`: what an fentry/fexit program attached to it names
/// as its `attach_btf_id`.
pub const fn func_type_id(f: usize) -> u32 {
    4 + f as u32
}

/// BTF and `func_info` for a program whose functions start at the instruction slots
/// `starts` (the first at 0, increasing), every one a static function returning `int`.
pub fn for_functions(starts: &[u32]) -> ProgBtf {
    let mut strings = b"\0int\0long\0a1\0a2\0a3\0a4\0a5\0".to_vec();
    let mut types = Vec::new();
    let mut put = |v: u32| types.extend_from_slice(&v.to_le_bytes());
    // [1] int: name, info (kind), size 4, then encoding | offset 0 | 32 bits.
    put(1);
    put(KIND_INT << 24);
    put(4);
    put(INT_SIGNED | 32);
    // [2] long: 8 bytes, signed, 64 bits.
    put(5);
    put(KIND_INT << 24);
    put(8);
    put(INT_SIGNED | 64);
    // [3] int (long a1, ..., long a5): anonymous, vlen 5, returns [1]; each parameter is
    // (name "aK", type [2]).
    put(0);
    put(KIND_FUNC_PROTO << 24 | PARAMS);
    put(1);
    for k in 0..PARAMS {
        put(10 + 3 * k);
        put(2);
    }
    // [4..] static int fN(long, ...): linkage 0 (static) in vlen.
    for f in 0..starts.len() {
        let name = strings.len() as u32;
        strings.extend_from_slice(format!("f{f}\0").as_bytes());
        put(name);
        put(KIND_FUNC << 24);
        put(3);
    }
    let mut btf = Vec::with_capacity(HEADER_LEN as usize + types.len() + strings.len());
    btf.extend_from_slice(&MAGIC.to_le_bytes());
    btf.extend_from_slice(&[1, 0]); // version 1, no flags
    for v in [HEADER_LEN, 0, types.len() as u32, types.len() as u32, strings.len() as u32] {
        btf.extend_from_slice(&v.to_le_bytes());
    }
    btf.extend_from_slice(&types);
    btf.extend_from_slice(&strings);
    let func_info = starts
        .iter()
        .enumerate()
        .map(|(f, &at)| FuncInfo { insn_off: at, type_id: func_type_id(f) })
        .collect();
    ProgBtf { btf, func_info }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn two_functions_as_btf_rst_lays_them_out() {
        let ProgBtf { btf, func_info } = for_functions(&[0, 9]);
        // struct btf_header: magic 0xeB9F, version 1, flags 0, hdr_len 24, then type_off,
        // type_len, str_off, str_len (offsets after the header).
        assert_eq!(&btf[..4], &[0x9f, 0xeb, 1, 0]);
        assert_eq!(word(&btf, 4), 24);
        let (type_len, str_off, str_len) = (word(&btf, 12), word(&btf, 16), word(&btf, 20));
        assert_eq!(word(&btf, 8), 0);
        // Two INTs (16 bytes each), FUNC_PROTO with 5 parameters (12 + 5 * 8), two FUNCs (12 each).
        assert_eq!(type_len, 32 + 52 + 24);
        assert_eq!(str_off, type_len);
        assert_eq!(&btf[24 + str_off as usize..], b"\0int\0long\0a1\0a2\0a3\0a4\0a5\0f0\0f1\0");
        assert_eq!(str_len, 31);
        let t = &btf[24..];
        // [1] INT "int": name_off 1, kind 1, size 4, signed 32-bit.
        assert_eq!((word(t, 0), word(t, 4), word(t, 8), word(t, 12)), (1, 1 << 24, 4, 0x0100_0020));
        // [2] INT "long": name_off 5, size 8, signed 64-bit.
        assert_eq!((word(t, 16), word(t, 20), word(t, 24), word(t, 28)), (5, 1 << 24, 8, 0x0100_0040));
        // [3] FUNC_PROTO: anonymous, kind 13, vlen 5, returns [1]; parameters "a1" to "a5"
        // (names at 10, 13, ...), of type [2].
        assert_eq!((word(t, 32), word(t, 36), word(t, 40)), (0, 13 << 24 | 5, 1));
        for k in 0..5 {
            assert_eq!((word(t, 44 + 8 * k), word(t, 48 + 8 * k)), (10 + 3 * k as u32, 2), "parameter {k}");
        }
        // [4] FUNC "f0" and [5] FUNC "f1": kind 12, linkage static (0), type [3].
        assert_eq!((word(t, 84), word(t, 88), word(t, 92)), (25, 12 << 24, 3));
        assert_eq!((word(t, 96), word(t, 100), word(t, 104)), (28, 12 << 24, 3));
        assert_eq!(
            func_info,
            vec![FuncInfo { insn_off: 0, type_id: 4 }, FuncInfo { insn_off: 9, type_id: 5 }]
        );
    }
}
