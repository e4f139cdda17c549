//! Loading the `.text` section of a little-endian BPF ELF object (`clang -target bpf -c`).
//!
//! Only `.text` is read, and relocations are not applied: an `lddw` of a map or global
//! loads the placeholder the compiler left (usually 0), and calls keep their encoded
//! targets. Any byte string either loads or gives an [`ElfError`]; it never panics.

use object::read::elf::ElfFile64;
use object::{LittleEndian, Object, ObjectSection, SectionKind};

use crate::insn::Insn;
use crate::raw::{decode_bytes, DecodeError};

/// `e_machine` of BPF objects (`EM_BPF`).
pub const EM_BPF: u16 = 247;

/// Why bytes are not a loadable BPF ELF object.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// The bytes do not start with the ELF magic `\x7fELF`.
    #[error("not an ELF file (no \\x7fELF magic at the start)")]
    NotElf,
    /// An ELF file for another machine.
    #[error("not a BPF ELF object (e_machine {machine}{})", machine_name(*.machine).map(|n| format!(", {n}")).unwrap_or_default())]
    WrongMachine {
        /// The file's `e_machine`.
        machine: u16,
    },
    /// A big-endian BPF object (`-target bpfeb`); only little-endian is supported.
    #[error("big-endian BPF ELF object (bpfeb): only little-endian (bpfel) objects are supported")]
    BigEndian,
    /// The ELF structure is damaged or truncated.
    #[error("malformed ELF file: {0}")]
    Malformed(String),
    /// There is no `.text` section; `executable` lists the executable sections there are.
    #[error("no .text section{}", if .executable.is_empty() { String::new() } else { format!(" (executable sections: {})", .executable.join(", ")) })]
    NoText {
        /// Names of the executable sections (e.g. `xdp` for `SEC("xdp")` programs).
        executable: Vec<String>,
    },
    /// `.text` exists but holds no instructions.
    #[error("the .text section is empty")]
    EmptyText,
    /// `.text` does not decode as BPF instructions.
    #[error(".text: {0}")]
    Decode(#[from] DecodeError),
}

/// Common `e_machine` values, for error messages.
fn machine_name(m: u16) -> Option<&'static str> {
    Some(match m {
        0 => "no machine",
        2 => "SPARC",
        3 => "x86 (i386)",
        8 => "MIPS",
        20 => "PowerPC",
        21 => "PowerPC64",
        22 => "S/390",
        40 => "ARM",
        43 => "SPARC V9",
        62 => "x86-64",
        183 => "AArch64",
        243 => "RISC-V",
        258 => "LoongArch",
        _ => return None,
    })
}

/// Reads the instructions of the `.text` section of a little-endian BPF ELF object
/// (`e_machine` 247). The result is exactly what `.text` decodes to, one entry per
/// instruction, unrelocated.
pub fn load_elf(bytes: &[u8]) -> Result<Vec<Insn>, ElfError> {
    if !bytes.starts_with(b"\x7fELF") {
        return Err(ElfError::NotElf);
    }
    // e_ident[EI_DATA] at 5, e_machine at 18 in both ELF32 and ELF64 headers.
    let (Some(&data), Some(m)) = (bytes.get(5), bytes.get(18..20)) else {
        return Err(ElfError::Malformed(format!("truncated ELF header ({} bytes)", bytes.len())));
    };
    let big = match data {
        1 => false,
        2 => true,
        d => return Err(ElfError::Malformed(format!("invalid byte order EI_DATA = {d}"))),
    };
    let machine = if big { u16::from_be_bytes([m[0], m[1]]) } else { u16::from_le_bytes([m[0], m[1]]) };
    if machine != EM_BPF {
        return Err(ElfError::WrongMachine { machine });
    }
    if big {
        return Err(ElfError::BigEndian);
    }
    let file = ElfFile64::<LittleEndian>::parse(bytes).map_err(|e| ElfError::Malformed(e.to_string()))?;
    let Some(text) = file.section_by_name(".text") else {
        let executable = file
            .sections()
            .filter(|s| s.kind() == SectionKind::Text)
            .filter_map(|s| s.name().ok().map(str::to_string))
            .collect();
        return Err(ElfError::NoText { executable });
    };
    let data = text.data().map_err(|e| ElfError::Malformed(format!(".text: {e}")))?;
    if data.is_empty() {
        return Err(ElfError::EmptyText);
    }
    Ok(decode_bytes(data)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-byte ELF64 header with nothing after it.
    fn header(data: u8, machine: [u8; 2]) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2; // ELFCLASS64
        h[5] = data;
        h[6] = 1; // EV_CURRENT
        h[16] = 1; // ET_REL
        h[18..20].copy_from_slice(&machine);
        h[20] = 1;
        h[52] = 64; // e_ehsize
        h[58] = 64; // e_shentsize
        h
    }

    #[test]
    fn rejects_non_elf() {
        assert_eq!(load_elf(b""), Err(ElfError::NotElf));
        assert_eq!(load_elf(b"r0 = 1\nexit\n"), Err(ElfError::NotElf));
        assert_eq!(load_elf(&[0x95, 0, 0, 0, 0, 0, 0, 0]), Err(ElfError::NotElf));
    }

    #[test]
    fn names_the_machine_of_a_foreign_elf() {
        let err = load_elf(&header(1, 62u16.to_le_bytes())).unwrap_err();
        assert_eq!(err, ElfError::WrongMachine { machine: 62 });
        assert_eq!(err.to_string(), "not a BPF ELF object (e_machine 62, x86-64)");
        let err = load_elf(&header(2, 21u16.to_be_bytes())).unwrap_err();
        assert_eq!(err.to_string(), "not a BPF ELF object (e_machine 21, PowerPC64)");
        let err = load_elf(&header(1, 4242u16.to_le_bytes())).unwrap_err();
        assert_eq!(err.to_string(), "not a BPF ELF object (e_machine 4242)");
    }

    #[test]
    fn names_the_machine_of_the_running_binary() {
        // A real ELF executable, when there is one (any Linux host).
        let Ok(bytes) = std::fs::read("/bin/true") else { return };
        if !bytes.starts_with(b"\x7fELF") {
            return;
        }
        let err = load_elf(&bytes).unwrap_err();
        assert!(matches!(err, ElfError::WrongMachine { .. }), "{err}");
        let head = load_elf(&bytes[..64.min(bytes.len())]).unwrap_err();
        assert_eq!(head, err);
    }

    #[test]
    fn rejects_big_endian_bpf() {
        let err = load_elf(&header(2, EM_BPF.to_be_bytes())).unwrap_err();
        assert_eq!(err, ElfError::BigEndian);
        assert!(err.to_string().contains("big-endian"), "{err}");
    }

    #[test]
    fn rejects_truncated_and_damaged_headers() {
        for n in 4..20 {
            let h = header(1, EM_BPF.to_le_bytes());
            assert!(matches!(load_elf(&h[..n]), Err(ElfError::Malformed(_))), "{n} bytes");
        }
        assert!(matches!(load_elf(&header(7, EM_BPF.to_le_bytes())), Err(ElfError::Malformed(_))));
        // A header with no section table at all.
        let err = load_elf(&header(1, EM_BPF.to_le_bytes())).unwrap_err();
        assert!(matches!(err, ElfError::NoText { .. } | ElfError::Malformed(_)), "{err}");
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for len in 0..300usize {
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = load_elf(&b);
            if len >= 20 {
                b[..4].copy_from_slice(b"\x7fELF");
                b[4] = 2;
                b[5] = 1;
                b[18..20].copy_from_slice(&EM_BPF.to_le_bytes());
                let _ = load_elf(&b);
            }
        }
    }
}
