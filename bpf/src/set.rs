//! Program sets: what actually runs. An entry program, the other programs its tail calls
//! can reach, and the prog-array maps that hold them.
//!
//! Each program is one instruction stream whose subprograms are reached by bpf2bpf calls
//! (`call pc+N`, as in the kernel). A program refers to a map with
//! `lddw rN, map` (`LdImm64` with `pseudo` = [`PSEUDO_MAP_FD`] and the map's index as
//! the immediate), and to an array map of one value, as libbpf makes global variables,
//! with `lddw rN, &map + off` ([`PSEUDO_MAP_VALUE`]).

use crate::context::ProgType;
use crate::insn::Insn;
use crate::program::Program;

/// The `src` field of an `lddw` that loads a map reference (`BPF_PSEUDO_MAP_FD`).
pub const PSEUDO_MAP_FD: u8 = 1;

/// The `src` field of an `lddw` that loads the address of an array map's value plus an
/// offset (`BPF_PSEUDO_MAP_VALUE`): the immediate's low 32 bits are the map's index, its
/// high 32 bits (the second slot's immediate) the offset, which must lie inside the value;
/// the map must have exactly one value, as the kernel requires. This is how libbpf turns global variables (`.bss`, `.data`, `.rodata`) into
/// single-value array maps.
pub const PSEUDO_MAP_VALUE: u8 = 2;

/// The map index and offset a [`PSEUDO_MAP_VALUE`] immediate names.
pub const fn map_value_parts(imm: u64) -> (u64, u32) {
    (imm & 0xffff_ffff, (imm >> 32) as u32)
}

/// The [`PSEUDO_MAP_VALUE`] immediate for offset `off` into the value of map `map`.
pub const fn map_value_imm(map: u32, off: u32) -> u64 {
    map as u64 | (off as u64) << 32
}

/// A `BPF_MAP_TYPE_PROG_ARRAY`: `max_entries` slots, each empty or holding a program of
/// the set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgArray {
    /// The map's name in text form.
    pub name: String,
    /// Slots: `slots.len()` is `max_entries`; `Some(i)` holds program `i` of the set.
    pub slots: Vec<Option<usize>>,
}

impl ProgArray {
    /// The number of slots.
    pub fn max_entries(&self) -> u32 {
        self.slots.len() as u32
    }
}

/// A `BPF_MAP_TYPE_ARRAY`: `max_entries` values of `value_size` bytes, keyed by a u32
/// index, found with `bpf_map_lookup_elem` (helper 1). Its contents after a run are part
/// of every outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArrayMap {
    /// The map's name in text form.
    pub name: String,
    /// Bytes per value.
    pub value_size: u32,
    /// The initial contents: `max_entries * value_size` bytes.
    pub values: Vec<u8>,
}

impl ArrayMap {
    /// A zero-filled array of `max_entries` values of `value_size` bytes.
    pub fn zeroed(name: &str, value_size: u32, max_entries: u32) -> ArrayMap {
        ArrayMap { name: name.into(), value_size, values: vec![0; (value_size * max_entries) as usize] }
    }

    /// The number of values.
    pub fn max_entries(&self) -> u32 {
        self.values.len() as u32 / self.value_size.max(1)
    }

    /// Byte offset of the value for `key`, or `None` when `key >= max_entries` (the
    /// lookup returns NULL).
    pub fn value_offset(&self, key: u32) -> Option<u64> {
        (key < self.max_entries()).then(|| key as u64 * self.value_size as u64)
    }
}

/// What a map index (the immediate of `lddw rN, map`) refers to: prog arrays come first,
/// then array maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapRef<'a> {
    /// A prog array.
    ProgArray(&'a ProgArray),
    /// An array map, with its index among the array maps.
    Array(usize, &'a ArrayMap),
}

/// A named program of a set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetProgram {
    /// The program's name in text form.
    pub name: String,
    /// Its instructions, subprograms included.
    pub prog: Program,
}

/// When a tracing program runs around the function it is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttachKind {
    /// Before the function's body (`BPF_TRACE_FENTRY`): sees its arguments.
    Fentry,
    /// After the function returns (`BPF_TRACE_FEXIT`): sees its arguments and its return
    /// value.
    Fexit,
}

impl AttachKind {
    /// The kind's name, as in the text directive (`fentry`, `fexit`).
    pub const fn name(self) -> &'static str {
        match self {
            AttachKind::Fentry => "fentry",
            AttachKind::Fexit => "fexit",
        }
    }

    /// Bytes of the tracing program's context: [`ATTACH_ARGS`] u64 arguments, and the
    /// return value after them for fexit.
    pub const fn ctx_size(self) -> usize {
        match self {
            AttachKind::Fentry => 8 * ATTACH_ARGS,
            AttachKind::Fexit => 8 * (ATTACH_ARGS + 1),
        }
    }
}

/// How many arguments a trampoline saves for a BPF function: R1-R5, as u64. This is the
/// kernel's model of a function whose BTF prototype it cannot trust (a subprogram called
/// with values its prototype does not describe, a main program whose prototype is not
/// `int (ctx *)`): `MAX_BPF_FUNC_REG_ARGS` u64 arguments, all saved and restored.
pub const ATTACH_ARGS: usize = 5;

/// The most tracing programs a set may attach.
pub const MAX_ATTACHMENTS: usize = 8;

/// The function an attachment traces: function `func` (0 = the main function, then the
/// subprograms in the order they start) of program `prog` of the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttachTarget {
    /// Index of the program in the set.
    pub prog: usize,
    /// Index of the function in that program.
    pub func: usize,
}

/// A tracing program (fentry or fexit) attached to a function of the set, as the kernel
/// runs it through a BPF trampoline: every time the function is entered by a call (a
/// bpf2bpf call, or the run of the entry program itself; a tail call enters past the
/// trampoline's patch site, so it never triggers one), each fentry runs with R1 pointing to
/// the function's arguments, then the function, then each fexit with the arguments and the
/// return value (R0's low 32 bits, sign-extended, as the JIT hands it over in `a0`). The
/// tail-call count passes through the trampoline unchanged.
///
/// Its program is one function: no bpf2bpf calls and no tail calls; it may call helpers and
/// kfuncs and use the set's array maps. Its return value is ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// fentry or fexit.
    pub kind: AttachKind,
    /// The traced function.
    pub target: AttachTarget,
    /// The tracing program, with its name.
    pub program: SetProgram,
}

/// Why a program set is inconsistent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// A set needs at least its entry program.
    #[error("a program set needs at least one program")]
    Empty,
    /// An `lddw` names a map that does not exist.
    #[error("program {prog}, pc {pc}: map {map} does not exist (the set has {count} maps)")]
    NoSuchMap {
        /// Program name.
        prog: String,
        /// Slot of the `lddw`.
        pc: usize,
        /// The map index it names.
        map: u64,
        /// How many maps exist.
        count: usize,
    },
    /// A prog array index past the set's prog arrays.
    #[error("prog array {0} does not exist (the set has {1})")]
    NoSuchProgArray(usize, usize),
    /// A slot past a prog array's end.
    #[error("map {map}: slot {slot} does not exist (it has {slots} slots)")]
    NoSuchSlot {
        /// Map name.
        map: String,
        /// The slot asked for.
        slot: u32,
        /// How many slots it has.
        slots: usize,
    },
    /// A slot names a program that does not exist.
    #[error("map {map}, slot {slot}: program {prog} does not exist (the set has {count} programs)")]
    NoSuchProgram {
        /// Map name.
        map: String,
        /// Slot index.
        slot: usize,
        /// The program index it names.
        prog: usize,
        /// How many programs exist.
        count: usize,
    },
    /// An array map whose value size or size is out of range.
    #[error("array map {0}: value size {1} and {2} bytes of values (value size 1 to 4096, a whole number of values, at most {max} bytes)", max = crate::layout::MAX_ARRAY_BYTES)]
    ArrayShape(String, u32, usize),
    /// A prog array with no slots (the kernel requires `max_entries` > 0), or more than
    /// [`crate::layout::MAX_MAP_ENTRIES`].
    #[error("map {0} has {1} slots (1 to {max} allowed)", max = crate::layout::MAX_MAP_ENTRIES)]
    SlotCount(String, usize),
    /// An attachment names a program or function that does not exist.
    #[error("{kind} {name}: program {prog} has no function {func}")]
    NoSuchTarget {
        /// fentry or fexit.
        kind: &'static str,
        /// The attachment's name.
        name: String,
        /// The program index it names.
        prog: usize,
        /// The function index it names.
        func: usize,
    },
    /// An attachment's program is not one function without bpf2bpf calls and tail calls.
    #[error("{0} {1}: a tracing program is one function without bpf2bpf calls or tail calls")]
    AttachmentShape(&'static str, String),
    /// More attachments than [`MAX_ATTACHMENTS`].
    #[error("{0} attachments (at most {MAX_ATTACHMENTS})")]
    TooManyAttachments(usize),
    /// fentry/fexit attachments on programs whose context is a `struct __sk_buff`.
    #[error("fentry and fexit attachments on {0} programs are not modelled")]
    TracedSkb(&'static str),
    /// An `lddw rN, &map + off` ([`PSEUDO_MAP_VALUE`]) that names no array map, or an
    /// offset outside its value.
    #[error("program {prog}, pc {pc}: {detail}")]
    BadMapValue {
        /// Program name.
        prog: String,
        /// Slot of the `lddw`.
        pc: usize,
        /// What is wrong.
        detail: String,
    },
}

/// A consistent program set: every map reference names a map, every slot a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramSet {
    progs: Vec<SetProgram>,
    maps: Vec<ProgArray>,
    arrays: Vec<ArrayMap>,
    attachments: Vec<Attachment>,
    prog_type: ProgType,
}

impl ProgramSet {
    /// A set of one program and no maps.
    pub fn single(prog: Program) -> ProgramSet {
        ProgramSet {
            progs: vec![SetProgram { name: "entry".into(), prog }],
            maps: Vec::new(),
            arrays: Vec::new(),
            attachments: Vec::new(),
            prog_type: ProgType::Buffer,
        }
    }

    /// Checks and wraps programs (the first is the entry) and prog arrays.
    pub fn new(progs: Vec<SetProgram>, maps: Vec<ProgArray>) -> Result<ProgramSet, SetError> {
        ProgramSet::with_arrays(progs, maps, Vec::new())
    }

    /// Checks and wraps programs, prog arrays, and array maps. Map references number
    /// the prog arrays first (0, 1, ...), then the array maps.
    pub fn with_arrays(
        progs: Vec<SetProgram>,
        maps: Vec<ProgArray>,
        arrays: Vec<ArrayMap>,
    ) -> Result<ProgramSet, SetError> {
        for a in &arrays {
            if a.value_size == 0
                || a.value_size > 4096
                || a.values.is_empty()
                || a.values.len() % a.value_size as usize != 0
                || a.values.len() > crate::layout::MAX_ARRAY_BYTES
            {
                return Err(SetError::ArrayShape(a.name.clone(), a.value_size, a.values.len()));
            }
        }
        if progs.is_empty() {
            return Err(SetError::Empty);
        }
        for m in &maps {
            if m.slots.is_empty() || m.slots.len() > crate::layout::MAX_MAP_ENTRIES as usize {
                return Err(SetError::SlotCount(m.name.clone(), m.slots.len()));
            }
            for (slot, p) in m.slots.iter().enumerate() {
                if let Some(p) = *p {
                    if p >= progs.len() {
                        return Err(SetError::NoSuchProgram {
                            map: m.name.clone(),
                            slot,
                            prog: p,
                            count: progs.len(),
                        });
                    }
                }
            }
        }
        for p in &progs {
            check_map_refs(p, maps.len(), &arrays)?;
        }
        Ok(ProgramSet { progs, maps, arrays, attachments: Vec::new(), prog_type: ProgType::Buffer })
    }

    /// The set with `attachments` instead of its own: each must trace a function of the
    /// set, be one function without bpf2bpf calls or tail calls, and name only existing
    /// maps; at most [`MAX_ATTACHMENTS`].
    pub fn with_attachments(mut self, attachments: Vec<Attachment>) -> Result<ProgramSet, SetError> {
        if self.prog_type.is_skb() && !attachments.is_empty() {
            return Err(SetError::TracedSkb(self.prog_type.name()));
        }
        if attachments.len() > MAX_ATTACHMENTS {
            return Err(SetError::TooManyAttachments(attachments.len()));
        }
        for a in &attachments {
            let AttachTarget { prog, func } = a.target;
            let kind = a.kind.name();
            if self.progs.get(prog).is_none_or(|p| func >= p.prog.function_starts().len()) {
                return Err(SetError::NoSuchTarget { kind, name: a.program.name.clone(), prog, func });
            }
            let code = &a.program.prog;
            if code.function_starts().len() != 1 || code.insns().iter().any(|i| i.is_tail_call()) {
                return Err(SetError::AttachmentShape(kind, a.program.name.clone()));
            }
            check_map_refs(&a.program, self.maps.len(), &self.arrays)?;
        }
        self.attachments = attachments;
        Ok(self)
    }

    /// The set with every program of type `prog_type` (a set's programs share one type,
    /// as the kernel wants of a prog array's programs). A `__sk_buff` type refuses a set
    /// with attachments.
    pub fn with_prog_type(mut self, prog_type: ProgType) -> Result<ProgramSet, SetError> {
        if prog_type.is_skb() && !self.attachments.is_empty() {
            return Err(SetError::TracedSkb(prog_type.name()));
        }
        self.prog_type = prog_type;
        Ok(self)
    }

    /// The set with slot `slot` of prog array `map` holding program `prog` (`None`: empty).
    /// `Err` when the map, the slot or the program does not exist.
    pub fn with_slot(mut self, map: usize, slot: u32, prog: Option<usize>) -> Result<ProgramSet, SetError> {
        let count = self.progs.len();
        let Some(m) = self.maps.get_mut(map) else {
            return Err(SetError::NoSuchProgArray(map, self.maps.len()));
        };
        if let Some(p) = prog.filter(|&p| p >= count) {
            return Err(SetError::NoSuchProgram { map: m.name.clone(), slot: slot as usize, prog: p, count });
        }
        let slots = m.slots.len();
        let Some(s) = m.slots.get_mut(slot as usize) else {
            return Err(SetError::NoSuchSlot { map: m.name.clone(), slot, slots });
        };
        *s = prog;
        Ok(self)
    }

    /// The type of every program of the set, which decides what R1 points to.
    pub fn prog_type(&self) -> ProgType {
        self.prog_type
    }

    /// Every attachment, in the order they run at the same function.
    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    /// The indexes of the attachments of `kind` that trace `target`, in order.
    pub fn attached(&self, target: AttachTarget, kind: AttachKind) -> impl Iterator<Item = usize> + '_ {
        self.attachments
            .iter()
            .enumerate()
            .filter(move |(_, a)| a.target == target && a.kind == kind)
            .map(|(i, _)| i)
    }

    /// BPF instructions in all the programs (a `lddw` counts once).
    pub fn insn_count(&self) -> usize {
        self.progs.iter().map(|p| p.prog.insns().len()).sum()
    }

    /// The entry program.
    pub fn entry(&self) -> &SetProgram {
        &self.progs[0]
    }

    /// Every program; index 0 is the entry.
    pub fn progs(&self) -> &[SetProgram] {
        &self.progs
    }

    /// Sets the stack depth of every function of program `prog` (see
    /// [`Program::set_stack_depths`]); an error leaves the set as it was.
    pub fn set_stack_depths(
        &mut self,
        prog: usize,
        depths: Vec<u32>,
    ) -> Result<(), crate::program::ProgramError> {
        match self.progs.get_mut(prog) {
            Some(p) => p.prog.set_stack_depths(depths),
            None => Err(crate::program::ProgramError::StackDepthCount { functions: 0, depths: depths.len() }),
        }
    }

    /// Every prog-array map.
    pub fn maps(&self) -> &[ProgArray] {
        &self.maps
    }

    /// Every array map.
    pub fn arrays(&self) -> &[ArrayMap] {
        &self.arrays
    }

    /// What map index `k` refers to.
    pub fn map(&self, k: u64) -> Option<MapRef<'_>> {
        let k = usize::try_from(k).ok()?;
        match self.maps.get(k) {
            Some(m) => Some(MapRef::ProgArray(m)),
            None => {
                let a = k.checked_sub(self.maps.len())?;
                self.arrays.get(a).map(|m| MapRef::Array(a, m))
            }
        }
    }

    /// Whether this is one program without maps or attachments.
    pub fn is_single(&self) -> bool {
        self.progs.len() == 1 && self.maps.is_empty() && self.arrays.is_empty() && self.attachments.is_empty()
    }
}

/// Checks that every `lddw rN, map` of `p` names one of the maps (`prog_arrays` prog
/// arrays, then `arrays`), and every `lddw rN, &map + off` an array map and an offset
/// inside its value.
fn check_map_refs(p: &SetProgram, prog_arrays: usize, arrays: &[ArrayMap]) -> Result<(), SetError> {
    let map_count = prog_arrays + arrays.len();
    for (i, insn) in p.prog.insns().iter().enumerate() {
        let pc = p.prog.pc_of(i);
        match *insn {
            Insn::LdImm64 { pseudo: PSEUDO_MAP_FD, imm, .. } if imm >= map_count as u64 => {
                return Err(SetError::NoSuchMap { prog: p.name.clone(), pc, map: imm, count: map_count });
            }
            Insn::LdImm64 { pseudo: PSEUDO_MAP_VALUE, imm, .. } => {
                let (map, off) = map_value_parts(imm);
                let bad = |detail: String| SetError::BadMapValue { prog: p.name.clone(), pc, detail };
                let array = (map as usize).checked_sub(prog_arrays).and_then(|a| arrays.get(a));
                match array {
                    None if map < map_count as u64 => {
                        return Err(bad(format!(
                            "map {map} is a prog array: only an array map has a value to point to"
                        )))
                    }
                    None => {
                        return Err(bad(format!("map {map} does not exist (the set has {map_count} maps)")));
                    }
                    Some(a) if off >= a.value_size => {
                        return Err(bad(format!(
                            "offset {off} is outside the {}-byte value of array map {}",
                            a.value_size, a.name
                        )))
                    }
                    // The kernel gives an array's value an address only when it has one
                    // (array_map_direct_value_addr: -ENOTSUPP otherwise).
                    Some(a) if a.max_entries() != 1 => {
                        return Err(bad(format!(
                            "array map {} has {} values: only a map of one value has an address to load \
                             (the kernel refuses the others: \"invalid access to map value pointer\")",
                            a.name,
                            a.max_entries()
                        )))
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::Reg;

    fn prog(insns: Vec<Insn>) -> SetProgram {
        SetProgram { name: "p".into(), prog: Program::new(insns).unwrap() }
    }

    #[test]
    fn references_are_checked() {
        let lddw = Insn::LdImm64 { dst: Reg::R2, pseudo: PSEUDO_MAP_FD, imm: 1 };
        let err = ProgramSet::new(vec![prog(vec![lddw, Insn::Exit])], vec![]).unwrap_err();
        assert!(matches!(err, SetError::NoSuchMap { map: 1, count: 0, .. }));
        let bad_slot = ProgArray { name: "m".into(), slots: vec![None, Some(3)] };
        let err = ProgramSet::new(vec![prog(vec![Insn::Exit])], vec![bad_slot]).unwrap_err();
        assert!(matches!(err, SetError::NoSuchProgram { slot: 1, prog: 3, .. }));
        let empty = ProgArray { name: "m".into(), slots: vec![] };
        assert!(ProgramSet::new(vec![prog(vec![Insn::Exit])], vec![empty]).is_err());
        let ok = ProgArray { name: "m".into(), slots: vec![Some(0), None] };
        let lddw0 = Insn::LdImm64 { dst: Reg::R2, pseudo: PSEUDO_MAP_FD, imm: 0 };
        let set = ProgramSet::new(vec![prog(vec![lddw0, Insn::Exit])], vec![ok]).unwrap();
        assert_eq!(set.maps()[0].max_entries(), 2);
        assert!(!set.is_single());
    }

    #[test]
    fn array_maps_follow_prog_arrays_in_the_index_space() {
        let pa = ProgArray { name: "pa".into(), slots: vec![None] };
        let arr = ArrayMap::zeroed("arr", 8, 4);
        let lddw1 = Insn::LdImm64 { dst: Reg::R1, pseudo: PSEUDO_MAP_FD, imm: 1 };
        let set = ProgramSet::with_arrays(vec![prog(vec![lddw1, Insn::Exit])], vec![pa], vec![arr]).unwrap();
        assert!(matches!(set.map(0), Some(MapRef::ProgArray(_))));
        assert!(matches!(set.map(1), Some(MapRef::Array(0, a)) if a.max_entries() == 4));
        assert_eq!(set.map(2), None);
        assert_eq!(set.arrays()[0].value_offset(3), Some(24));
        assert_eq!(set.arrays()[0].value_offset(4), None);
        let bad = ArrayMap { name: "b".into(), value_size: 3, values: vec![0; 4] };
        assert!(ProgramSet::with_arrays(vec![prog(vec![Insn::Exit])], vec![], vec![bad]).is_err());
    }
}
