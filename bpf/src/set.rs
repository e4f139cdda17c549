//! Program sets: what actually runs. An entry program, the other programs its tail calls
//! can reach, and the prog-array maps that hold them.
//!
//! Each program is one instruction stream whose subprograms are reached by bpf2bpf calls
//! (`call pc+N`, as in the kernel). A program refers to a map with
//! `lddw rN, map` (`LdImm64` with `pseudo` = [`PSEUDO_MAP_FD`] and the map's index as
//! the immediate).

use crate::insn::Insn;
use crate::program::Program;

/// The `src` field of an `lddw` that loads a map reference (`BPF_PSEUDO_MAP_FD`).
pub const PSEUDO_MAP_FD: u8 = 1;

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
    #[error("array map {0}: value size {1} and {2} bytes of values (value size 1 to 4096, a whole number of values, at most {max} bytes)", max = crate::exec::MAX_ARRAY_BYTES)]
    ArrayShape(String, u32, usize),
    /// A prog array with no slots (the kernel requires `max_entries` > 0), or more than
    /// [`crate::exec::MAX_MAP_ENTRIES`].
    #[error("map {0} has {1} slots (1 to {max} allowed)", max = crate::exec::MAX_MAP_ENTRIES)]
    SlotCount(String, usize),
}

/// A consistent program set: every map reference names a map, every slot a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramSet {
    progs: Vec<SetProgram>,
    maps: Vec<ProgArray>,
    arrays: Vec<ArrayMap>,
}

impl ProgramSet {
    /// A set of one program and no maps.
    pub fn single(prog: Program) -> ProgramSet {
        ProgramSet {
            progs: vec![SetProgram { name: "entry".into(), prog }],
            maps: Vec::new(),
            arrays: Vec::new(),
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
                || a.values.len() > crate::exec::MAX_ARRAY_BYTES
            {
                return Err(SetError::ArrayShape(a.name.clone(), a.value_size, a.values.len()));
            }
        }
        let map_count = maps.len() + arrays.len();
        if progs.is_empty() {
            return Err(SetError::Empty);
        }
        for m in &maps {
            if m.slots.is_empty() || m.slots.len() > crate::exec::MAX_MAP_ENTRIES as usize {
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
            for (i, insn) in p.prog.insns().iter().enumerate() {
                if let Insn::LdImm64 { pseudo: PSEUDO_MAP_FD, imm, .. } = *insn {
                    if imm >= map_count as u64 {
                        return Err(SetError::NoSuchMap {
                            prog: p.name.clone(),
                            pc: p.prog.pc_of(i),
                            map: imm,
                            count: map_count,
                        });
                    }
                }
            }
        }
        Ok(ProgramSet { progs, maps, arrays })
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

    /// Whether this is one program without maps.
    pub fn is_single(&self) -> bool {
        self.progs.len() == 1 && self.maps.is_empty() && self.arrays.is_empty()
    }
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
