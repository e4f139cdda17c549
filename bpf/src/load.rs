//! Loading a program, or a program set, from a file or from memory, whatever its format.
//!
//! The format is chosen from the content first, then the name:
//!
//! 1. bytes starting with the ELF magic: a BPF ELF object ([`crate::elf`]);
//! 2. a name ending in `.bin`: raw little-endian bytecode ([`Program::from_bytes`]);
//! 3. anything else: LLVM-syntax assembly text ([`crate::asm`]), which must be UTF-8.
//!
//! [`load_file`] and its kin load one program: an ELF object's `.text`, and text without
//! program-set directives (except `.stack`). [`load_set_file`] and its kin load a
//! program set ([`SetFile`]): everything [`load_file`] accepts becomes a set of one
//! program without a context, an ELF object with program sections becomes the set
//! [`crate::elf::load_elf_set`] finds in it, and text is read by
//! [`crate::asm::parse_set`], directives and all.
//!
//! Every error names the file (the `name` given) and the problem, e.g.
//! `x.s: line 2, column 1: unknown mnemonic "mvo"`.

use std::path::Path;

use crate::asm::{self, AsmError, SetFile};
use crate::elf::{load_elf, load_elf_set, ElfError};
use crate::program::{Program, ProgramError};
use crate::set::ProgramSet;

/// Why a program could not be loaded. Every variant carries the file's `name`, and its
/// message starts with it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{name}: cannot read: {}", io_message(.source))]
    Io {
        /// The file.
        name: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// An ELF file that is not a loadable BPF object.
    #[error("{name}: {source}")]
    Elf {
        /// The file.
        name: String,
        /// What is wrong with it.
        source: ElfError,
    },
    /// Assembly text that does not assemble or is not a sound program.
    #[error("{name}: {source}")]
    Asm {
        /// The file.
        name: String,
        /// The line, column and problem.
        source: AsmError,
    },
    /// Bytecode (raw or from an ELF `.text`) that does not decode or is not a sound program.
    #[error("{name}: {source}")]
    Program {
        /// The file.
        name: String,
        /// The slot or pc and the problem.
        source: ProgramError,
    },
    /// Neither ELF, nor named `.bin`, nor UTF-8 text.
    #[error("{name}: not UTF-8 text (invalid byte at offset {offset}); binary bytecode needs a .bin name")]
    NotText {
        /// The file.
        name: String,
        /// Byte offset of the first invalid UTF-8 sequence.
        offset: usize,
    },
}

impl LoadError {
    /// The name of the file the error is about.
    pub fn name(&self) -> &str {
        match self {
            LoadError::Io { name, .. }
            | LoadError::Elf { name, .. }
            | LoadError::Asm { name, .. }
            | LoadError::Program { name, .. }
            | LoadError::NotText { name, .. } => name,
        }
    }
}

/// The I/O error's message without the ` (os error N)` suffix.
fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
}

/// Reads and loads the program in `path` (ELF object, `.bin` bytecode or assembly text,
/// see the [module documentation](self)); errors name the path as given.
pub fn load_file(path: &Path) -> Result<Program, LoadError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| LoadError::Io { name: name.clone(), source: e })?;
    load_bytes(&name, &bytes)
}

/// Loads a program from memory as if it were the file `name` (whose extension matters
/// only to tell raw bytecode, `.bin`, from text).
pub fn load_bytes(name: &str, bytes: &[u8]) -> Result<Program, LoadError> {
    if bytes.starts_with(b"\x7fELF") {
        let insns = load_elf(bytes).map_err(|e| LoadError::Elf { name: name.to_string(), source: e })?;
        return Program::new(insns).map_err(|e| LoadError::Program { name: name.to_string(), source: e });
    }
    if is_bin(name) {
        return Program::from_bytes(bytes)
            .map_err(|e| LoadError::Program { name: name.to_string(), source: e });
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => load_text(name, text),
        Err(e) => Err(LoadError::NotText { name: name.to_string(), offset: e.valid_up_to() }),
    }
}

/// Assembles and checks `text` as if it were the file `name`.
pub fn load_text(name: &str, text: &str) -> Result<Program, LoadError> {
    asm::parse_program(text).map_err(|e| LoadError::Asm { name: name.to_string(), source: e })
}

/// Reads and loads the program set in `path`: an ELF object (with program sections: its
/// set; without: its `.text`), `.bin` bytecode or assembly text, with or without
/// program-set directives (see the [module documentation](self)). Errors name the path
/// as given.
pub fn load_set_file(path: &Path) -> Result<SetFile, LoadError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| LoadError::Io { name: name.clone(), source: e })?;
    load_set_bytes(&name, &bytes)
}

/// Loads a program set from memory as if it were the file `name` (whose extension
/// matters only to tell raw bytecode, `.bin`, from text).
pub fn load_set_bytes(name: &str, bytes: &[u8]) -> Result<SetFile, LoadError> {
    let single = |prog| SetFile { set: verifier_depths(ProgramSet::single(prog)), ctx: None };
    if bytes.starts_with(b"\x7fELF") {
        return match load_elf_set(bytes) {
            Ok(Some(set)) => Ok(SetFile { set: verifier_depths(set), ctx: None }),
            Ok(None) => load_bytes(name, bytes).map(single),
            Err(e) => Err(LoadError::Elf { name: name.to_string(), source: e }),
        };
    }
    match std::str::from_utf8(bytes) {
        Ok(text) if !is_bin(name) => load_set_text(name, text),
        _ => load_bytes(name, bytes).map(single),
    }
}

/// Gives every function of the programs of `set` (bytecode or an object, which declare no
/// depths) the stack depth the kernel's verifier computes for it
/// ([`crate::validate::stack_depths`]), where the validator can follow the program; the
/// others keep [`Program::new`]'s estimate.
fn verifier_depths(mut set: ProgramSet) -> ProgramSet {
    for p in 0..set.progs().len() {
        if let Ok(depths) = crate::validate::stack_depths(&set, p, None) {
            // Never above MAX_STACK, one per function: this cannot fail.
            let _ = set.set_stack_depths(p, depths);
        }
    }
    set
}

/// Assembles and checks the program set in `text` as if it were the file `name`.
pub fn load_set_text(name: &str, text: &str) -> Result<SetFile, LoadError> {
    asm::parse_set(text).map_err(|e| LoadError::Asm { name: name.to_string(), source: e })
}

fn is_bin(name: &str) -> bool {
    Path::new(name).extension().is_some_and(|e| e.eq_ignore_ascii_case("bin"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{AluOp, Insn, Operand, Reg, Width};

    fn temp_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("jitdiff-bpf-load-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn text_errors_name_the_file_and_position() {
        let err = load_text("x.s", "r0 = 1\nmvo r0, 1\nexit").unwrap_err();
        assert_eq!(err.to_string(), "x.s: line 2, column 1: unknown mnemonic \"mvo\"");
        assert_eq!(err.name(), "x.s");
    }

    #[test]
    fn jump_out_of_range_names_the_file() {
        let err = load_text("j.s", "goto +5\nexit").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("j.s: line 1, column 1: pc 0: jump to slot 6 is out of range"), "{msg}");
        let bytes = crate::raw::encode_bytes(&[Insn::Ja { off: 5 }, Insn::Exit]);
        let msg = load_bytes("j.bin", &bytes).unwrap_err().to_string();
        assert!(msg.starts_with("j.bin: pc 0: jump to slot 6 is out of range"), "{msg}");
    }

    #[test]
    fn truncated_bytecode_names_file_and_slot() {
        let mut bytes = crate::raw::encode_bytes(&[Insn::Exit, Insn::Exit, Insn::Exit]);
        bytes.extend_from_slice(&[0xb7, 0]);
        let msg = load_bytes("prog.bin", &bytes).unwrap_err().to_string();
        assert!(msg.starts_with("prog.bin: slot 3: truncated: "), "{msg}");
    }

    #[test]
    fn foreign_elf_names_file_and_machine() {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18] = 62;
        let msg = load_bytes("a.o", &h).unwrap_err().to_string();
        assert_eq!(msg, "a.o: not a BPF ELF object (e_machine 62, x86-64)");
        // The ELF magic wins over the name.
        let msg = load_bytes("a.bin", &h).unwrap_err().to_string();
        assert_eq!(msg, "a.bin: not a BPF ELF object (e_machine 62, x86-64)");
    }

    #[test]
    fn missing_file_says_cannot_read() {
        let path = temp_dir().join("missing.s");
        let msg = load_file(&path).unwrap_err().to_string();
        assert_eq!(msg, format!("{}: cannot read: No such file or directory", path.display()));
    }

    #[test]
    fn binary_without_bin_name_is_not_text() {
        let msg = load_bytes("x.s", b"r0 = \xff\nexit\n").unwrap_err().to_string();
        assert_eq!(msg, "x.s: not UTF-8 text (invalid byte at offset 5); binary bytecode needs a .bin name");
    }

    #[test]
    fn chooses_the_format() {
        let insns = vec![
            Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R0, src: Operand::Imm(7) },
            Insn::Exit,
        ];
        let want = Program::new(insns.clone()).unwrap();
        let dir = temp_dir();
        let bin = dir.join("p.BIN");
        std::fs::write(&bin, crate::raw::encode_bytes(&insns)).unwrap();
        assert_eq!(load_file(&bin).unwrap(), want);
        let s = dir.join("p.s");
        std::fs::write(&s, "r0 = 7\nexit\n").unwrap();
        assert_eq!(load_file(&s).unwrap(), want);
        // Text is text whatever the name, unless it is `.bin`.
        assert_eq!(load_bytes("p.o", b"r0 = 7\nexit\n").unwrap(), want);
        assert!(load_bytes("p.bin", b"r0 = 7\nexit\n").is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bytecode_gets_the_verifiers_stack_depths() {
        // main: r1 = r10; r1 += -16; *(u64 *)(r1 + 0) = 1; *(u64 *)(r1 + 8) = 2; call f;
        // exit. f: *(u64 *)(r10 - 264) = 0; r0 = 0; exit. Reading r10 into r1 made the
        // simple estimate take all 512 bytes for main (and the chain 512 + 272, too deep);
        // the verifier counts the 16 bytes it reaches, and 264 for f.
        let text = "r1 = r10\nr1 += -16\n*(u64 *)(r1 + 0) = 1\n*(u64 *)(r1 + 8) = 2\ncall f\nexit\n\
                    f:\n*(u64 *)(r10 - 264) = 0\nr0 = 0\nexit\n";
        let prog = crate::asm::parse_program(text).unwrap();
        assert_eq!((prog.function_stack_depth(0), prog.function_stack_depth(1)), (512, 264));
        let set = load_set_bytes("p.bin", &prog.to_bytes()).unwrap().set;
        assert_eq!(
            (set.entry().prog.function_stack_depth(0), set.entry().prog.function_stack_depth(1)),
            (16, 264)
        );
        assert_eq!(crate::validate::validate(&set, None), Ok(()));
    }

    #[test]
    fn empty_inputs_are_errors() {
        let msg = load_text("e.s", "; nothing\n").unwrap_err().to_string();
        assert_eq!(msg, "e.s: line 1, column 1: the program is empty");
        let msg = load_bytes("e.bin", &[]).unwrap_err().to_string();
        assert_eq!(msg, "e.bin: the program is empty");
    }

    #[test]
    fn sets_load_from_every_format() {
        let insns = vec![
            Insn::Alu { width: Width::W64, op: AluOp::Mov, dst: Reg::R0, src: Operand::Imm(7) },
            Insn::Exit,
        ];
        let single = SetFile { set: ProgramSet::single(Program::new(insns.clone()).unwrap()), ctx: None };
        assert_eq!(load_set_bytes("p.bin", &crate::raw::encode_bytes(&insns)).unwrap(), single);
        assert_eq!(load_set_bytes("p.s", b"r0 = 7\nexit\n").unwrap(), single);
        assert_eq!(load_set_text("p.s", "r0 = 7\nexit\n").unwrap(), single);
        // `.bin` is bytecode even when it looks like text.
        assert!(load_set_bytes("p.bin", b".ctx 4\nr0 = 7\nexit\n").is_err());
        let f = load_set_bytes("p.s", b".ctx 4\n.prog main\nr0 = 7\nexit\n").unwrap();
        assert_eq!(f.ctx, Some(crate::exec::Input::with_ctx(vec![0; 4])));
        assert_eq!(f.set.entry().name, "main");
        let dir = temp_dir();
        let path = dir.join("set.s");
        std::fs::write(&path, ".map m 1\n.slot m 0 entry\nr2 = m ll\nr3 = 0\ncall 12\nexit\n").unwrap();
        let f = load_set_file(&path).unwrap();
        assert_eq!(f.set.maps()[0].slots, vec![Some(0)]);
        assert_eq!(f.ctx, None);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn set_errors_name_the_file_and_position() {
        let err = load_set_text("s.s", ".map m 0\nexit").unwrap_err();
        assert_eq!(err.to_string(), "s.s: line 1, column 8: max_entries 0 is out of range (1 to 8191)");
        assert_eq!(err.name(), "s.s");
        let err = load_set_bytes("s.s", b"exit\n.map m 2\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "s.s: line 2, column 1: `.map` must come before the first program (program `entry` starts on line 1)"
        );
        let msg = load_set_bytes("e.s", b"").unwrap_err().to_string();
        assert_eq!(msg, "e.s: line 1, column 1: the program is empty");
        let msg = load_set_bytes("e.bin", &[]).unwrap_err().to_string();
        assert_eq!(msg, "e.bin: the program is empty");
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18] = 62;
        let msg = load_set_bytes("a.o", &h).unwrap_err().to_string();
        assert_eq!(msg, "a.o: not a BPF ELF object (e_machine 62, x86-64)");
    }
}
