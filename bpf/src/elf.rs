//! Loading little-endian BPF ELF objects (`clang -target bpf -c`).
//!
//! Two readings of an object:
//!
//! * [`load_elf`]: the `.text` section alone, as one program. Relocations are not
//!   applied: an `lddw` of a map or global loads the placeholder the compiler left
//!   (usually 0), and calls keep their encoded targets.
//! * [`load_elf_set`]: a [`ProgramSet`], for objects with program sections (`SEC("xdp")`
//!   and the like: executable sections other than `.text`). It works as libbpf does:
//!   - every function symbol in a program section is a program, named after it (a
//!     program section without function symbols is one program named after the
//!     section); the programs are numbered in file order (section headers, then
//!     offsets), except that a program named `entry` comes first: it is the entry;
//!   - `.text` holds subprograms: each program gets the `.text` functions its
//!     bpf2bpf calls reach (transitively) appended after its own code, in the order
//!     they are first called, and its calls are relocated to them
//!     (`R_BPF_64_32` against the function's symbol, or against `.text` with the target
//!     in the instruction's immediate, as clang emits for static functions);
//!   - maps are the symbols of the `.maps` section (BTF-defined: `type`, `max_entries`
//!     and the key and value sizes, `key_size`/`value_size` or the size of `__type(key,
//!     T)`/`__type(value, T)`, are read from `.BTF`) and of the legacy `maps` section
//!     (`struct bpf_map_def`), in file order; each must be a `BPF_MAP_TYPE_PROG_ARRAY`
//!     with 1 to [`crate::exec::MAX_MAP_ENTRIES`] slots or a `BPF_MAP_TYPE_ARRAY` with
//!     a 4-byte key and values of 1 to 4096 bytes (zero-filled). The set numbers the prog
//!     arrays first, then the arrays. An `lddw` relocated against a map (`R_BPF_64_64`)
//!     becomes a map reference (`src` = [`crate::PSEUDO_MAP_FD`], the map's index as
//!     immediate);
//!   - global variables are as libbpf makes them: each non-empty `.bss`, `.data` and
//!     `.rodata` section (and `.data.NAME`, ...) is one more array map of one value, the
//!     section's bytes (zeros for `.bss`), named after it (`bss`, `data`, `rodata`, ...),
//!     after the `.maps` arrays; an `lddw` relocated against a variable becomes
//!     `lddw rN, &map + off` (`src` = [`crate::PSEUDO_MAP_VALUE`]), `off` being the
//!     variable's offset plus the addend in the instruction;
//!   - a `.maps` prog array's slots are filled from its static initializer, as libbpf does
//!     it (`.values = { [2] = (void *)&prog }`: relocations in `.rel.maps`); a legacy
//!     map's slots are empty.
//!
//!   - the program type is libbpf's for the section name where jitdiff models it
//!     ([`ProgType::from_section`]: `tc`, `classifier`, `socket`, ...; R1 then points to a
//!     `struct __sk_buff`), else jitdiff's context buffer; the set's programs must agree;
//!   - a program section named `fentry/NAME` or `fexit/NAME` holds a tracing program: an
//!     attachment ([`crate::set::Attachment`]) to the function NAME of the set, a program
//!     (its main function) or a `.text` function (in the first program, in set order, that
//!     calls it); libbpf would look NAME up in the kernel, jitdiff in the object;
//!   - a call relocated against an extern function (`extern ... __ksym`, as clang emits
//!     a kfunc call: `call -1` against the undefined symbol) becomes a kfunc call
//!     (`src` = 2, `BPF_PSEUDO_KFUNC_CALL`) when the extern is one of the kfuncs jitdiff models
//!     ([`crate::helpers::KFUNCS`]), found by name as libbpf finds a kernel's.
//!
//!   Anything else a loader would have to provide is an error naming the section and
//!   offset: a reference to an extern variable, a map of another type (hash maps, ...),
//!   more than 4096 bytes of globals in a section, a call that leaves its program for
//!   anything but a `.text` function.
//!   An object without program sections is not a set: [`load_elf_set`] returns `None`,
//!   and its `.text` is the program, as [`load_elf`] reads it.
//!
//! Any byte string either loads or gives an [`ElfError`]; it never panics.

use std::collections::HashMap;

use object::read::elf::ElfFile64;
use object::{LittleEndian, Object, ObjectSection, ObjectSymbol, RelocationTarget, SectionKind, SymbolKind};

use crate::context::ProgType;
use crate::exec::MAX_MAP_ENTRIES;
use crate::insn::{Call, Insn};
use crate::program::{Program, ProgramError};
use crate::raw::{decode_bytes, DecodeError};
use crate::set::{
    map_value_imm, ArrayMap, AttachKind, AttachTarget, Attachment, ProgArray, ProgramSet, SetError,
    SetProgram, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE,
};

/// `e_machine` of BPF objects (`EM_BPF`).
pub const EM_BPF: u16 = 247;

/// The map type of prog arrays (`BPF_MAP_TYPE_PROG_ARRAY`).
pub const BPF_MAP_TYPE_PROG_ARRAY: u32 = 3;

/// The map type of arrays (`BPF_MAP_TYPE_ARRAY`).
pub const BPF_MAP_TYPE_ARRAY: u32 = 2;

/// Whether a section holds global variables that libbpf turns into a single-value array
/// map: `.bss`, `.data`, `.rodata`, or one of their `.NAME` variants.
fn is_data_section(name: &str) -> bool {
    [".bss", ".data", ".rodata"]
        .iter()
        .any(|d| name == *d || name.strip_prefix(d).is_some_and(|r| r.starts_with('.')))
}

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
    /// A code section (set loading) does not decode as BPF instructions.
    #[error("section {section}: {source}")]
    SectionDecode {
        /// The section's name.
        section: String,
        /// The slot (within the section) and the problem.
        source: DecodeError,
    },
    /// A relocation or a call in code that a program set cannot express.
    #[error("section {section}, offset {offset:#x} (slot {slot}): {message}", slot = .offset / 8)]
    Relocation {
        /// The code section's name.
        section: String,
        /// Byte offset of the instruction within the section.
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// A map that cannot be part of a program set.
    #[error("map {name}: {message}")]
    Map {
        /// The map's symbol name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// `.BTF` is damaged or does not describe the `.maps` section.
    #[error(".BTF: {0}")]
    Btf(String),
    /// A program's code, with its subprograms appended, is not a sound program.
    #[error("program {name}: {source}")]
    Program {
        /// The program's name.
        name: String,
        /// The pc (in the linked program) and the problem.
        source: ProgramError,
    },
    /// The programs and maps do not form a consistent set.
    #[error(transparent)]
    Set(#[from] SetError),
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

/// Checks the header and parses a little-endian BPF ELF object.
fn open(bytes: &[u8]) -> Result<ElfFile64<'_, LittleEndian>, ElfError> {
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
    ElfFile64::<LittleEndian>::parse(bytes).map_err(|e| ElfError::Malformed(e.to_string()))
}

/// Reads the instructions of the `.text` section of a little-endian BPF ELF object
/// (`e_machine` 247). The result is exactly what `.text` decodes to, one entry per
/// instruction, unrelocated.
pub fn load_elf(bytes: &[u8]) -> Result<Vec<Insn>, ElfError> {
    let file = open(bytes)?;
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

/// A symbol as the set loader needs it.
struct Sym {
    name: String,
    /// Section index, for symbols defined in a section.
    section: Option<usize>,
    value: u64,
    size: u64,
    kind: SymbolKind,
}

/// A function: a program, or a subprogram in `.text`.
struct Unit {
    name: String,
    section: usize,
    /// Byte range within the section.
    start: u64,
    end: u64,
}

/// A code section, decoded.
struct CodeSection<'a> {
    name: &'a str,
    insns: Vec<Insn>,
    /// Instruction index starting at each slot (`usize::MAX` inside an `lddw`).
    index_at: Vec<usize>,
}

/// A map found in the object: a prog array or an array.
struct MapInfo {
    name: String,
    section: usize,
    value: u64,
    /// Byte length of its definition (for finding its slot relocations).
    end: u64,
    entries: u32,
    /// `BPF_MAP_TYPE_PROG_ARRAY` or `BPF_MAP_TYPE_ARRAY`.
    map_type: u32,
    /// Bytes per value (arrays).
    value_size: u32,
    /// Byte offset of the `values` member (BTF-defined maps).
    values_off: Option<u64>,
}

/// Everything [`load_elf_set`] reads from the object.
struct Linker<'a> {
    codes: HashMap<usize, CodeSection<'a>>,
    units: Vec<Unit>,
    text: Option<usize>,
    syms: Vec<Option<Sym>>,
    /// (section, byte offset) → symbol index, for the relocations of code sections.
    relocs: HashMap<(usize, u64), usize>,
    /// Symbol index → map index.
    map_of_sym: HashMap<usize, usize>,
    /// Section index of a section of global variables → the index of its array map.
    data_of_section: HashMap<usize, u32>,
    /// Section index → name, for messages.
    section_names: HashMap<usize, &'a str>,
}

fn malformed(e: object::Error) -> ElfError {
    ElfError::Malformed(e.to_string())
}

/// A name for a program made of a whole section: the section name with every character
/// that cannot be in a name replaced by `_`.
fn name_from_section(section: &str) -> String {
    let mut name: String = section
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '.' { c } else { '_' })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        name.insert(0, '_');
    }
    name
}

/// Reads a little-endian BPF ELF object with program sections as a program set (see the
/// [module documentation](self) for how sections, symbols and relocations map onto it).
/// Returns `None` for an object without program sections (only `.text`): read its
/// `.text` with [`load_elf`].
pub fn load_elf_set(bytes: &[u8]) -> Result<Option<ProgramSet>, ElfError> {
    let file = open(bytes)?;
    let mut codes = HashMap::new();
    let mut text = None;
    let mut prog_sections = Vec::new();
    for s in file.sections() {
        if s.kind() != SectionKind::Text {
            continue;
        }
        let name = s.name().map_err(malformed)?;
        let data = s.data().map_err(|e| ElfError::Malformed(format!("{name}: {e}")))?;
        let i = s.index().0;
        if name == ".text" {
            text = Some(i);
        } else if !data.is_empty() {
            prog_sections.push(i);
        }
        let insns = decode_bytes(data)
            .map_err(|e| ElfError::SectionDecode { section: name.to_string(), source: e })?;
        let mut index_at = Vec::with_capacity(data.len() / 8);
        for (j, insn) in insns.iter().enumerate() {
            index_at.push(j);
            if insn.slots() == 2 {
                index_at.push(usize::MAX);
            }
        }
        codes.insert(i, CodeSection { name, insns, index_at });
    }
    if prog_sections.is_empty() {
        return Ok(None);
    }
    let mut syms = Vec::new();
    for sym in file.symbols() {
        let i = sym.index().0;
        if syms.len() <= i {
            syms.resize_with(i + 1, || None);
        }
        let section = sym.section_index().map(|s| s.0);
        let name = sym.name().map_err(malformed)?.to_string();
        syms[i] = Some(Sym { name, section, value: sym.address(), size: sym.size(), kind: sym.kind() });
    }
    let units_of = |section: usize| -> Result<Vec<Unit>, ElfError> {
        let code = &codes[&section];
        let len = code.index_at.len() as u64 * 8;
        let mut funcs: Vec<&Sym> = syms
            .iter()
            .flatten()
            .filter(|s| s.section == Some(section) && s.kind == SymbolKind::Text)
            .collect();
        funcs.sort_by_key(|s| s.value);
        funcs.dedup_by_key(|s| s.value);
        if funcs.is_empty() {
            return Ok(vec![Unit { name: name_from_section(code.name), section, start: 0, end: len }]);
        }
        let mut units = Vec::new();
        for (k, f) in funcs.iter().enumerate() {
            let next = funcs.get(k + 1).map_or(len, |n| n.value);
            let end = if f.size == 0 { next } else { f.value.saturating_add(f.size) };
            let boundary =
                |o: u64| o.is_multiple_of(8) && code.index_at.get((o / 8) as usize) != Some(&usize::MAX);
            if end > len || f.value >= end || !boundary(f.value) || !(end == len || boundary(end)) {
                return Err(ElfError::Malformed(format!(
                    "function {} in section {} spans bytes {:#x}..{end:#x}, which are not whole instructions of the section's {len} bytes",
                    f.name, code.name, f.value
                )));
            }
            units.push(Unit { name: f.name.clone(), section, start: f.value, end });
        }
        Ok(units)
    };
    let mut units = Vec::new();
    for &s in &prog_sections {
        units.extend(units_of(s)?);
    }
    let prog_units = units.len();
    if let Some(t) = text {
        if !codes[&t].insns.is_empty() {
            units.extend(units_of(t)?);
        }
    }
    let mut relocs = HashMap::new();
    for s in file.sections() {
        let i = s.index().0;
        let Some(code) = codes.get(&i) else { continue };
        for (offset, r) in s.relocations() {
            let RelocationTarget::Symbol(sym) = r.target() else {
                return Err(ElfError::Relocation {
                    section: code.name.to_string(),
                    offset,
                    message: "relocation without a symbol".into(),
                });
            };
            relocs.insert((i, offset), sym.0);
        }
    }
    let maps = find_maps(&file, &syms)?;
    // The set numbers its prog arrays first, then its arrays: those of `.maps` and `maps`,
    // then one per section of global variables.
    let is_prog_array = |m: &MapInfo| m.map_type == BPF_MAP_TYPE_PROG_ARRAY;
    let prog_array_count = maps.iter().filter(|(_, m)| is_prog_array(m)).count();
    let (mut next_prog_array, mut next_array) = (0, prog_array_count);
    let index_of_map: Vec<usize> = maps
        .iter()
        .map(|(_, m)| {
            let counter = if is_prog_array(m) { &mut next_prog_array } else { &mut next_array };
            *counter += 1;
            *counter - 1
        })
        .collect();
    let map_of_sym: HashMap<usize, usize> =
        maps.iter().zip(&index_of_map).map(|((sym, _), &index)| (*sym, index)).collect();
    let mut arrays: Vec<ArrayMap> = maps
        .iter()
        .filter(|(_, m)| !is_prog_array(m))
        .map(|(_, m)| ArrayMap::zeroed(&m.name, m.value_size, m.entries))
        .collect();
    let mut data_of_section = HashMap::new();
    for s in file.sections() {
        let name = s.name().unwrap_or("");
        if !is_data_section(name) || s.size() == 0 {
            continue;
        }
        let size = s.size();
        if size > 4096 {
            return Err(ElfError::Map {
                name: name.to_string(),
                message: format!(
                    "{size} bytes of global variables: libbpf makes them one array value, and jitdiff's \
                     array values are at most 4096 bytes"
                ),
            });
        }
        let values = if s.kind() == SectionKind::UninitializedData {
            vec![0; size as usize]
        } else {
            let data = s.data().map_err(|e| ElfError::Malformed(format!("{name}: {e}")))?;
            if data.len() as u64 != size {
                return Err(ElfError::Malformed(format!("{name}: {} bytes of data for {size}", data.len())));
            }
            data.to_vec()
        };
        data_of_section.insert(s.index().0, (prog_array_count + arrays.len()) as u32);
        arrays.push(ArrayMap {
            name: name.trim_start_matches('.').replace('.', "_"),
            value_size: size as u32,
            values,
        });
    }
    let section_names = file.sections().map(|s| (s.index().0, s.name().unwrap_or("?"))).collect();
    let linker = Linker { codes, units, text, syms, relocs, map_of_sym, data_of_section, section_names };

    // Tracing programs: units of `fentry/NAME` and `fexit/NAME` sections.
    let tracing = |u: usize| -> Option<(AttachKind, &str)> {
        let section = linker.codes[&linker.units[u].section].name;
        let (kind, target) = section.split_once('/')?;
        match kind {
            "fentry" => Some((AttachKind::Fentry, target)),
            "fexit" => Some((AttachKind::Fexit, target)),
            _ => None,
        }
    };
    // Programs in file order, a program named `entry` first.
    let mut order: Vec<usize> = (0..prog_units).filter(|&u| tracing(u).is_none()).collect();
    if let Some(k) = order.iter().position(|&u| linker.units[u].name == crate::asm::DEFAULT_PROG_NAME) {
        let u = order.remove(k);
        order.insert(0, u);
    }
    let mut progs = Vec::with_capacity(order.len());
    let mut bases = Vec::with_capacity(order.len());
    for &u in &order {
        let name = linker.units[u].name.clone();
        let (prog, base) = linker.link(u)?;
        progs.push(SetProgram { name, prog });
        bases.push(base);
    }
    let mut attachments = Vec::new();
    for u in (0..prog_units).filter(|&u| tracing(u).is_some()) {
        let (kind, target) = tracing(u).expect("filtered");
        let section = linker.codes[&linker.units[u].section].name;
        // The program named so (its main function), else the first program whose code
        // has the `.text` function named so.
        let found =
            order.iter().position(|&p| linker.units[p].name == target).map(|p| (p, 0)).or_else(|| {
                let t = (prog_units..linker.units.len()).find(|&t| linker.units[t].name == target)?;
                bases.iter().enumerate().find_map(|(p, base)| {
                    let slot = *base.get(&t)?;
                    let prog = &progs[p].prog;
                    let func = prog.function_starts().iter().position(|&i| prog.pc_of(i) == slot)?;
                    Some((p, func))
                })
            });
        let Some((prog, func)) = found else {
            return Err(ElfError::Malformed(format!(
                "section {section}: the set has no function `{target}` to attach to (a program, or a .text \
                 function a program calls)"
            )));
        };
        let (program, _) = linker.link(u)?;
        let name = linker.units[u].name.clone();
        attachments.push(Attachment {
            kind,
            target: AttachTarget { prog, func },
            program: SetProgram { name, prog: program },
        });
    }
    let mut prog_arrays: Vec<ProgArray> = maps
        .iter()
        .filter(|(_, m)| is_prog_array(m))
        .map(|(_, m)| ProgArray { name: m.name.clone(), slots: vec![None; m.entries as usize] })
        .collect();
    // Static slot initializers: relocations in `.maps` against programs.
    for s in file.sections() {
        if s.name().ok() != Some(".maps") {
            continue;
        }
        let i = s.index().0;
        for (offset, r) in s.relocations() {
            let Some((m, info)) = maps.iter().enumerate().find_map(|(m, (_, info))| {
                (info.section == i && (info.value..info.end).contains(&offset)).then_some((m, info))
            }) else {
                return Err(ElfError::Malformed(format!(
                    "relocation at offset {offset:#x} of .maps is outside every map"
                )));
            };
            let map_err = |message: String| ElfError::Map { name: info.name.clone(), message };
            if !is_prog_array(info) {
                return Err(map_err("only a prog array's slots can be initialized in the object".into()));
            }
            let Some(values) = info.values_off else {
                return Err(map_err(format!(
                    "relocation at offset {:#x} of its definition, which has no `values` member",
                    offset - info.value
                )));
            };
            let rel = offset - info.value;
            if rel < values || !(rel - values).is_multiple_of(8) {
                return Err(map_err(format!(
                    "relocation at offset {rel:#x} of its definition is not a slot of `values`"
                )));
            }
            let slot = (rel - values) / 8;
            if slot >= u64::from(info.entries) {
                return Err(map_err(format!(
                    "slot {slot} is initialized but max_entries is {}",
                    info.entries
                )));
            }
            let target = match r.target() {
                RelocationTarget::Symbol(sym) => linker.syms.get(sym.0).and_then(Option::as_ref),
                _ => None,
            };
            let prog = target.and_then(|t| {
                order.iter().position(|&u| {
                    let unit = &linker.units[u];
                    t.section == Some(unit.section) && t.value == unit.start && t.kind == SymbolKind::Text
                })
            });
            let Some(p) = prog else {
                let what = target.map_or("no symbol".to_string(), |t| format!("`{}`", t.name));
                return Err(map_err(format!(
                    "slot {slot} is initialized with {what}, which is not a program of a program section"
                )));
            };
            prog_arrays[index_of_map[m]].slots[slot as usize] = Some(p);
        }
    }
    // The program type: libbpf's for each program section (jitdiff's buffer for sections
    // it does not model); all of a set's programs share one.
    let mut prog_type: Option<(ProgType, &str)> = None;
    for &u in &order {
        let section = linker.codes[&linker.units[u].section].name;
        let t = ProgType::from_section(section).unwrap_or_default();
        match prog_type {
            Some((first, other)) if first != t => {
                return Err(ElfError::Malformed(format!(
                    "section {other} holds {} programs and section {section} {} programs: a set's programs \
                     share one type",
                    first.name(),
                    t.name()
                )));
            }
            _ => prog_type = Some((t, section)),
        }
    }
    let set = ProgramSet::with_arrays(progs, prog_arrays, arrays)?
        .with_prog_type(prog_type.map_or(ProgType::Buffer, |(t, _)| t))?
        .with_attachments(attachments)?;
    Ok(Some(set))
}

impl Linker<'_> {
    /// The unit that contains byte `offset` of `section`.
    fn unit_at(&self, section: usize, offset: u64) -> Option<usize> {
        self.units.iter().position(|u| u.section == section && (u.start..u.end).contains(&offset))
    }

    /// Program `unit` with every `.text` function it calls appended, relocated, and the
    /// slot where each unit's code starts in it.
    fn link(&self, unit: usize) -> Result<(Program, HashMap<usize, usize>), ElfError> {
        let mut order = vec![unit];
        let mut base = HashMap::new();
        let mut insns = Vec::new();
        let mut slots = 0usize;
        // (instruction index, its pc, target unit, target slot within that unit)
        let mut calls = Vec::new();
        let mut k = 0;
        while k < order.len() {
            let u = &self.units[order[k]];
            base.insert(order[k], slots);
            let code = &self.codes[&u.section];
            let first = code.index_at[(u.start / 8) as usize];
            let mut off = u.start;
            for insn in &code.insns[first..] {
                if off >= u.end {
                    break;
                }
                let fail = |message: String| ElfError::Relocation {
                    section: code.name.to_string(),
                    offset: off,
                    message,
                };
                let reloc = self
                    .relocs
                    .get(&(u.section, off))
                    .map(|&s| (s, self.syms.get(s).and_then(Option::as_ref)));
                let sym_name = |s: Option<&Sym>| s.map_or("?".to_string(), |s| format!("`{}`", s.name));
                let mut insn = *insn;
                match (insn, reloc) {
                    (Insn::LdImm64 { dst, imm, .. }, Some((s, sym))) => {
                        let data = sym.and_then(|s| s.section).and_then(|i| self.data_of_section.get(&i));
                        match (self.map_of_sym.get(&s), data, sym) {
                            (Some(&m), _, _) => {
                                insn = Insn::LdImm64 { dst, pseudo: PSEUDO_MAP_FD, imm: m as u64 }
                            }
                            // A global variable: its section's value, at the symbol's offset plus
                            // the addend the instruction holds (as libbpf relocates it).
                            (None, Some(&m), Some(sym)) => {
                                let off = (imm as u32).wrapping_add(sym.value as u32);
                                insn = Insn::LdImm64 {
                                    dst,
                                    pseudo: PSEUDO_MAP_VALUE,
                                    imm: map_value_imm(m, off),
                                };
                            }
                            _ => {
                                let place = sym
                                    .and_then(|s| s.section)
                                    .and_then(|i| self.section_name(i))
                                    .map_or("no section (an extern)".to_string(), |n| format!("section {n}"));
                                return Err(fail(format!(
                                    "lddw refers to {} in {place}: only maps (prog arrays and arrays) and \
                                     global variables (.bss, .data, .rodata) can be referred to in a program set",
                                    sym_name(sym)
                                )));
                            }
                        }
                    }
                    // A call of an extern (`__ksym`): one of the kfuncs jitdiff models, by name, as
                    // libbpf resolves a kernel's.
                    (Insn::Call(Call::Local(_)), Some((_, Some(sym)))) if sym.section.is_none() => {
                        let Some(id) = crate::helpers::kfunc_named(&sym.name) else {
                            let known: Vec<&str> = crate::helpers::KFUNCS
                                .iter()
                                .filter_map(|&k| crate::helpers::kfunc_prototype(k).map(|p| p.name))
                                .collect();
                            return Err(fail(format!(
                                "call to {}, which is not defined here and is not one of the kfuncs jitdiff models ({})",
                                sym_name(Some(sym)),
                                known.join(", ")
                            )));
                        };
                        insn = Insn::Call(Call::Kfunc(id));
                    }
                    (Insn::Call(Call::Local(imm)), reloc) => {
                        let (section, target) = match reloc {
                            Some((_, Some(sym))) => match sym.section {
                                Some(sec) => (sec, sym.value as i128 + (imm as i128 + 1) * 8),
                                None => {
                                    return Err(fail(format!(
                                        "call to {}, which is not defined here",
                                        sym_name(Some(sym))
                                    )))
                                }
                            },
                            Some((_, None)) => {
                                return Err(fail(
                                    "call relocated against a symbol that does not exist".into(),
                                ))
                            }
                            None => (u.section, off as i128 + (imm as i128 + 1) * 8),
                        };
                        let to = u64::try_from(target).ok();
                        let same = to.filter(|&t| section == u.section && (u.start..u.end).contains(&t));
                        let tu = match same {
                            Some(_) => Some(order[k]),
                            None if Some(section) == self.text => to.and_then(|t| self.unit_at(section, t)),
                            None => None,
                        };
                        let (Some(tu), Some(to)) = (tu, to) else {
                            let sec = self.section_name(section).unwrap_or("?");
                            return Err(fail(format!(
                                "call to section {sec}, offset {target:#x}: calls must stay in their program or go to a .text function"
                            )));
                        };
                        if !order.contains(&tu) {
                            order.push(tu);
                        }
                        calls.push((insns.len(), slots, tu, (to - self.units[tu].start) / 8));
                    }
                    (_, Some((_, sym))) => {
                        return Err(fail(format!(
                            "relocation against {} on `{insn}`: only lddw (maps) and calls can be relocated",
                            sym_name(sym)
                        )))
                    }
                    _ => {}
                }
                slots += insn.slots();
                off += insn.slots() as u64 * 8;
                insns.push(insn);
            }
            k += 1;
        }
        let name = &self.units[unit].name;
        for (i, pc, tu, tslot) in calls {
            let off = (base[&tu] + tslot as usize) as i64 - (pc as i64 + 1);
            let Ok(off) = i32::try_from(off) else {
                return Err(ElfError::Program {
                    name: name.clone(),
                    source: ProgramError::JumpOutOfRange { pc, target: off, len: slots, inside_lddw: false },
                });
            };
            insns[i] = Insn::Call(Call::Local(off));
        }
        let prog = Program::new(insns).map_err(|e| ElfError::Program { name: name.clone(), source: e })?;
        Ok((prog, base))
    }

    fn section_name(&self, section: usize) -> Option<&str> {
        self.section_names.get(&section).copied()
    }
}

/// The prog-array and array maps of the object, in file order, with their symbol indexes.
fn find_maps(
    file: &ElfFile64<'_, LittleEndian>,
    syms: &[Option<Sym>],
) -> Result<Vec<(usize, MapInfo)>, ElfError> {
    let mut maps = Vec::new();
    let mut btf: Option<HashMap<String, btf::MapDef>> = None;
    for s in file.sections() {
        let name = s.name().unwrap_or("");
        let legacy = match name {
            "maps" => true,
            ".maps" => false,
            _ => continue,
        };
        let i = s.index().0;
        let data = s.data().map_err(|e| ElfError::Malformed(format!("{name}: {e}")))?;
        let mut in_section: Vec<(usize, &Sym)> = syms
            .iter()
            .enumerate()
            .filter_map(|(k, s)| s.as_ref().map(|s| (k, s)))
            .filter(|(_, s)| s.section == Some(i) && s.kind != SymbolKind::Section && !s.name.is_empty())
            .collect();
        in_section.sort_by_key(|(_, s)| s.value);
        for (n, &(k, sym)) in in_section.iter().enumerate() {
            let next = in_section.get(n + 1).map_or(data.len() as u64, |(_, s)| s.value);
            let end = if sym.size == 0 { next } else { sym.value.saturating_add(sym.size) };
            let map_err = |message: String| ElfError::Map { name: sym.name.clone(), message };
            let (map_type, entries, values_off, key_size, value_size) = if legacy {
                let field = |at: u64| {
                    let at = usize::try_from(sym.value.saturating_add(at)).ok()?;
                    let b = data.get(at..at.checked_add(4)?)?;
                    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                };
                match (field(0), field(4), field(8), field(12)) {
                    (Some(t), Some(k), Some(v), Some(e)) => (t, e, None, Some(k), Some(v)),
                    _ => {
                        return Err(map_err(
                            "its struct bpf_map_def runs past the end of the maps section".into(),
                        ))
                    }
                }
            } else {
                if btf.is_none() {
                    let section = file.section_by_name(".BTF").ok_or_else(|| {
                        ElfError::Btf("missing: BTF-defined maps (.maps) need it (compile with -g)".into())
                    })?;
                    let data = section.data().map_err(|e| ElfError::Btf(e.to_string()))?;
                    btf = Some(btf::maps(data).map_err(ElfError::Btf)?);
                }
                let def = btf
                    .as_ref()
                    .and_then(|b| b.get(&sym.name))
                    .ok_or_else(|| map_err("not described in the .maps section of .BTF".into()))?;
                let t = def.map_type.ok_or_else(|| map_err("its definition has no `type`".into()))?;
                let e =
                    def.max_entries.ok_or_else(|| map_err("its definition has no `max_entries`".into()))?;
                (t, e, def.values_off, def.key_size, def.value_size)
            };
            let value_size = match map_type {
                BPF_MAP_TYPE_PROG_ARRAY => {
                    if entries == 0 || entries > MAX_MAP_ENTRIES {
                        return Err(map_err(format!(
                            "max_entries {entries} is out of range (1 to {MAX_MAP_ENTRIES})"
                        )));
                    }
                    4
                }
                BPF_MAP_TYPE_ARRAY => {
                    if key_size != Some(4) {
                        return Err(map_err(format!(
                            "an array's key must be 4 bytes (a u32), not {}",
                            key_size.map_or("unknown".to_string(), |k| k.to_string())
                        )));
                    }
                    let v = value_size.ok_or_else(|| map_err("its definition gives no value size".into()))?;
                    let bytes = u64::from(v) * u64::from(entries);
                    if v == 0 || v > 4096 || entries == 0 || bytes > crate::exec::MAX_ARRAY_BYTES as u64 {
                        return Err(map_err(format!(
                            "{entries} values of {v} bytes: jitdiff's arrays hold 1 to 4096-byte values, at most {} bytes in all",
                            crate::exec::MAX_ARRAY_BYTES
                        )));
                    }
                    v
                }
                t => {
                    return Err(map_err(format!(
                        "type {t} is neither BPF_MAP_TYPE_PROG_ARRAY ({BPF_MAP_TYPE_PROG_ARRAY}) nor \
                         BPF_MAP_TYPE_ARRAY ({BPF_MAP_TYPE_ARRAY}): program sets hold only those"
                    )))
                }
            };
            maps.push((
                k,
                MapInfo {
                    name: sym.name.clone(),
                    section: i,
                    value: sym.value,
                    end,
                    entries,
                    values_off,
                    map_type,
                    value_size,
                },
            ));
        }
    }
    Ok(maps)
}

/// Just enough of BTF to read BTF-defined maps.
mod btf {
    use std::collections::HashMap;

    /// What a map's BTF definition says.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub(super) struct MapDef {
        /// `__uint(type, N)`.
        pub map_type: Option<u32>,
        /// `__uint(max_entries, N)`.
        pub max_entries: Option<u32>,
        /// Byte offset of the `values` member, if any.
        pub values_off: Option<u64>,
        /// `__uint(key_size, N)` or the size of `__type(key, T)`.
        pub key_size: Option<u32>,
        /// `__uint(value_size, N)` or the size of `__type(value, T)`.
        pub value_size: Option<u32>,
    }

    const KIND_INT: u32 = 1;
    const KIND_PTR: u32 = 2;
    const KIND_ARRAY: u32 = 3;
    const KIND_STRUCT: u32 = 4;
    const KIND_VAR: u32 = 14;
    const KIND_DATASEC: u32 = 15;

    struct Type<'a> {
        kind: u32,
        name_off: u32,
        kind_flag: bool,
        size_or_type: u32,
        extra: &'a [u8],
    }

    fn u32_at(b: &[u8], at: usize) -> Option<u32> {
        let s = b.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn range(data: &[u8], start: u64, len: u64) -> Result<&[u8], String> {
        let end = start.checked_add(len).ok_or("section offsets overflow")?;
        usize::try_from(start)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(s, e)| data.get(s..e))
            .ok_or_else(|| format!("bytes {start}..{end} are past the end ({} bytes)", data.len()))
    }

    /// Every map of the `.maps` DATASEC, by variable name.
    pub(super) fn maps(data: &[u8]) -> Result<HashMap<String, MapDef>, String> {
        match data.get(..2) {
            Some([0x9f, 0xeb]) => {}
            Some([0xeb, 0x9f]) => return Err("big-endian BTF".into()),
            _ => return Err("bad magic (not BTF)".into()),
        }
        let h = |at| u32_at(data, at).ok_or_else(|| "truncated header".to_string());
        let hdr_len = u64::from(h(4)?);
        let types = range(data, hdr_len + u64::from(h(8)?), u64::from(h(12)?))?;
        let strs = range(data, hdr_len + u64::from(h(16)?), u64::from(h(20)?))?;
        let mut all = Vec::new();
        let mut at = 0;
        while at < types.len() {
            let field = |k: usize| {
                u32_at(types, at + 4 * k).ok_or_else(|| format!("type {} is truncated", all.len() + 1))
            };
            let (name_off, info, size_or_type) = (field(0)?, field(1)?, field(2)?);
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let extra = match kind {
                KIND_INT | KIND_VAR | 17 => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | 5 | 19 | KIND_DATASEC => 12 * vlen,
                6 | 13 => 8 * vlen,
                2 | 7..=12 | 16 | 18 => 0,
                _ => return Err(format!("type {} has unknown kind {kind}", all.len() + 1)),
            };
            let extra = types
                .get(at + 12..at + 12 + extra)
                .ok_or_else(|| format!("type {} is truncated", all.len() + 1))?;
            all.push(Type { kind, name_off, kind_flag: info >> 31 == 1, size_or_type, extra });
            at += 12 + extra.len();
        }
        let name = |off: u32| -> &str {
            let tail = strs.get(off as usize..).unwrap_or(&[]);
            let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
            std::str::from_utf8(&tail[..end]).unwrap_or("")
        };
        let get = |id: u32| id.checked_sub(1).and_then(|i| all.get(i as usize));
        // Skips typedefs and qualifiers (typedef, volatile, const, restrict, type tag).
        let resolve = |mut id: u32| {
            for _ in 0..64 {
                let t = get(id)?;
                if matches!(t.kind, 8..=11 | 18) {
                    id = t.size_or_type;
                } else {
                    return Some(t);
                }
            }
            None
        };
        // `__uint(name, N)` is `int (*name)[N]`.
        let uint = |id: u32| {
            let ptr = resolve(id).filter(|t| t.kind == KIND_PTR)?;
            let arr = resolve(ptr.size_or_type).filter(|t| t.kind == KIND_ARRAY)?;
            u32_at(arr.extra, 8)
        };
        // The size of a type: what `__type(key, T)` and `__type(value, T)` point to.
        let size_of = |id: u32| -> Option<u32> {
            let mut id = id;
            let mut scale = 1u32;
            for _ in 0..64 {
                let t = resolve(id)?;
                match t.kind {
                    KIND_INT | KIND_STRUCT | 5 | 6 | 19 => return t.size_or_type.checked_mul(scale),
                    KIND_PTR => return 8u32.checked_mul(scale),
                    KIND_ARRAY => {
                        scale = scale.checked_mul(u32_at(t.extra, 8)?)?;
                        id = u32_at(t.extra, 0)?;
                    }
                    _ => return None,
                }
            }
            None
        };
        let pointee =
            |id: u32| resolve(id).filter(|t| t.kind == KIND_PTR).and_then(|p| size_of(p.size_or_type));
        let mut maps = HashMap::new();
        for sec in all.iter().filter(|t| t.kind == KIND_DATASEC && name(t.name_off) == ".maps") {
            for info in sec.extra.chunks_exact(12) {
                let var = u32_at(info, 0).and_then(get).filter(|t| t.kind == KIND_VAR);
                let Some(var) = var else { continue };
                let mut def = MapDef::default();
                if let Some(st) = resolve(var.size_or_type).filter(|t| t.kind == KIND_STRUCT) {
                    for m in st.extra.chunks_exact(12) {
                        let (Some(n), Some(ty), Some(bits)) = (u32_at(m, 0), u32_at(m, 4), u32_at(m, 8))
                        else {
                            continue;
                        };
                        let bits = if st.kind_flag { bits & 0x00ff_ffff } else { bits };
                        match name(n) {
                            "type" => def.map_type = uint(ty),
                            "max_entries" => def.max_entries = uint(ty),
                            "key_size" => def.key_size = uint(ty),
                            "value_size" => def.value_size = uint(ty),
                            "key" => def.key_size = pointee(ty),
                            "value" => def.value_size = pointee(ty),
                            "values" => def.values_off = Some(u64::from(bits / 8)),
                            _ => {}
                        }
                    }
                }
                maps.insert(name(var.name_off).to_string(), def);
            }
        }
        Ok(maps)
    }
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
            let _ = load_elf_set(&b);
            if len >= 20 {
                b[..4].copy_from_slice(b"\x7fELF");
                b[4] = 2;
                b[5] = 1;
                b[18..20].copy_from_slice(&EM_BPF.to_le_bytes());
                let _ = load_elf(&b);
                let _ = load_elf_set(&b);
            }
        }
    }

    #[test]
    fn set_loading_checks_the_header_like_load_elf() {
        assert_eq!(load_elf_set(b"r0 = 1\nexit\n"), Err(ElfError::NotElf));
        assert_eq!(
            load_elf_set(&header(1, 62u16.to_le_bytes())),
            Err(ElfError::WrongMachine { machine: 62 })
        );
        assert_eq!(load_elf_set(&header(2, EM_BPF.to_be_bytes())), Err(ElfError::BigEndian));
    }

    #[test]
    fn section_names_become_program_names() {
        assert_eq!(name_from_section("xdp"), "xdp");
        assert_eq!(name_from_section("kprobe/sys_bpf"), "kprobe_sys_bpf");
        assert_eq!(name_from_section("2nd"), "_2nd");
        assert_eq!(name_from_section(".text.hot"), "_.text.hot");
        assert!(crate::asm::parse_set(&format!(".prog {}\nexit", name_from_section("a-b/c.d"))).is_ok());
    }

    /// A BTF blob: header, then `types`, then `strs`.
    fn btf_blob(types: &[u32], strs: &[u8]) -> Vec<u8> {
        let type_len = types.len() as u32 * 4;
        let mut b = vec![0x9f, 0xeb, 1, 0];
        for v in [24, 0, type_len, type_len, strs.len() as u32] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for t in types {
            b.extend_from_slice(&t.to_le_bytes());
        }
        b.extend_from_slice(strs);
        b
    }

    #[test]
    fn btf_map_definitions() {
        // 1: int; 2: int[3]; 3: int (*)[3]; 4: int[7]; 5: int (*)[7];
        // 6: struct { type: 3 @0; max_entries: 5 @64; values @128 }; 7: const 6;
        // 8: var m: 7; 9: datasec .maps { 8 }.
        let strs = b"\0int\0type\0max_entries\0values\0m\0.maps\0";
        let s = |name: &str| {
            strs.windows(name.len() + 1)
                .position(|w| &w[..name.len()] == name.as_bytes() && w[name.len()] == 0)
                .unwrap() as u32
        };
        let kind = |k: u32, vlen: u32| (k << 24) | vlen;
        #[rustfmt::skip]
        let types = [
            s("int"), kind(1, 0), 4, 32,
            0, kind(3, 0), 0, 1, 1, 3,
            0, kind(2, 0), 2,
            0, kind(3, 0), 0, 1, 1, 7,
            0, kind(2, 0), 4,
            0, kind(4, 3), 24, s("type"), 3, 0, s("max_entries"), 5, 64, s("values"), 1, 128,
            0, kind(10, 0), 6,
            s("m"), kind(14, 0), 7, 1,
            s(".maps"), kind(15, 1), 24, 8, 0, 24,
        ];
        let maps = btf::maps(&btf_blob(&types, strs)).unwrap();
        assert_eq!(
            maps.get("m"),
            Some(&btf::MapDef {
                map_type: Some(3),
                max_entries: Some(7),
                values_off: Some(16),
                key_size: None,
                value_size: None
            })
        );
        // Truncations and garbage are errors or partial results, never panics.
        let blob = btf_blob(&types, strs);
        for n in 0..blob.len() {
            let _ = btf::maps(&blob[..n]);
            let mut b = blob.clone();
            b[n] ^= 0x5a;
            let _ = btf::maps(&b);
        }
        assert_eq!(btf::maps(b"").unwrap_err(), "bad magic (not BTF)");
        assert_eq!(btf::maps(&[0xeb, 0x9f, 1, 0]).unwrap_err(), "big-endian BTF");
        assert_eq!(btf::maps(&[0x9f, 0xeb, 1, 0]).unwrap_err(), "truncated header");
        // A cycle of qualifiers does not hang.
        #[rustfmt::skip]
        let cycle = [0, kind(10, 0), 2, 0, kind(10, 0), 1, s("m"), kind(14, 0), 1, 1, s(".maps"), kind(15, 1), 0, 3, 0, 0];
        assert_eq!(btf::maps(&btf_blob(&cycle, strs)).unwrap().get("m"), Some(&btf::MapDef::default()));
    }
}
