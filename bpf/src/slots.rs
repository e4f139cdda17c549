//! Prog-array slots as a user fills them before a run, the way a selftest's user space
//! calls `bpf_map_update_elem` and `bpf_map_delete_elem` on a prog array: `MAP:INDEX=PROG`
//! puts the program named `PROG` into slot `INDEX` of the prog array named `MAP`, and
//! `MAP:INDEX=` empties it. Given on the command line (`jitdiff run --slot`) or in a file
//! of such lines (`--slots FILE`; blank lines and `#` comments are skipped).
//!
//! ```
//! use bpf::slots::{apply, SlotSetting};
//! let file = bpf::asm::parse_set(
//!     ".map jmp_table 2\n.prog entry\nr0 = 0\nexit\n.prog classifier_0\nr0 = 7\nexit\n",
//! )
//! .unwrap();
//! let setting: SlotSetting = "jmp_table:1=classifier_0".parse().unwrap();
//! let set = apply(file.set, &[setting]).unwrap();
//! assert_eq!(set.maps()[0].slots, vec![None, Some(1)]);
//! ```

use std::path::Path;
use std::str::FromStr;

use crate::set::ProgramSet;

/// One slot setting: slot `index` of prog array `map` holds program `prog`, or is empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotSetting {
    /// The prog array's name (as the object's `.maps` or the text's `.map` names it).
    pub map: String,
    /// The slot.
    pub index: u32,
    /// The program's name, or `None` for an empty slot.
    pub prog: Option<String>,
}

impl FromStr for SlotSetting {
    type Err = String;

    /// Reads `MAP:INDEX=PROG` or `MAP:INDEX=`; `Err` says what is wrong with `text`.
    fn from_str(text: &str) -> Result<SlotSetting, String> {
        let form = "the form is MAP:INDEX=PROG, or MAP:INDEX= for an empty slot";
        let (target, prog) = text.split_once('=').ok_or_else(|| format!("{text:?}: no '=' ({form})"))?;
        let (map, index) = target.split_once(':').ok_or_else(|| format!("{text:?}: no ':' ({form})"))?;
        let (map, index, prog) = (map.trim(), index.trim(), prog.trim());
        if map.is_empty() {
            return Err(format!("{text:?}: no map name ({form})"));
        }
        let index =
            index.parse::<u32>().map_err(|_| format!("{text:?}: {index:?} is not a slot number ({form})"))?;
        let prog = (!prog.is_empty()).then(|| prog.to_string());
        Ok(SlotSetting { map: map.to_string(), index, prog })
    }
}

/// The settings in file `path`, one per line; blank lines and lines starting with `#` are
/// skipped. `Err` names the file and the line.
pub fn read_slot_file(path: &Path) -> Result<Vec<SlotSetting>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(n, line)| (n, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(n, line)| line.parse().map_err(|e| format!("{}:{}: {e}", path.display(), n + 1)))
        .collect()
}

/// `set` with `settings` applied in order (a later setting of the same slot wins). `Err`
/// names a prog array, slot or program that does not exist, and what does.
pub fn apply(mut set: ProgramSet, settings: &[SlotSetting]) -> Result<ProgramSet, String> {
    for s in settings {
        let names = |it: &mut dyn Iterator<Item = &str>| it.collect::<Vec<_>>().join(", ");
        let Some(map) = set.maps().iter().position(|m| m.name == s.map) else {
            let have = names(&mut set.maps().iter().map(|m| m.name.as_str()));
            let have = if have.is_empty() { "none".to_string() } else { have };
            return Err(format!("--slot {}: no prog array named {} (prog arrays: {have})", show(s), s.map));
        };
        let prog = match &s.prog {
            None => None,
            Some(name) => Some(set.progs().iter().position(|p| p.name == *name).ok_or_else(|| {
                let have = names(&mut set.progs().iter().map(|p| p.name.as_str()));
                format!("--slot {}: no program named {name} (programs: {have})", show(s))
            })?),
        };
        let slots = set.maps()[map].max_entries();
        set = set.with_slot(map, s.index, prog).map_err(|_| {
            format!("--slot {}: {} has {slots} slots, 0 to {}", show(s), s.map, slots.saturating_sub(1))
        })?;
    }
    Ok(set)
}

/// `s` as it was written.
fn show(s: &SlotSetting) -> String {
    format!("{}:{}={}", s.map, s.index, s.prog.as_deref().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> ProgramSet {
        let text = ".map jmp_table 3\n.map other 1\n.slot jmp_table 0 entry\n\
                    .prog entry\nr0 = 0\nexit\n.prog classifier_0\nr0 = 7\nexit\n";
        crate::asm::parse_set(text).unwrap().set
    }

    #[test]
    fn settings_fill_and_empty_slots_in_order() {
        let s = |t: &str| t.parse::<SlotSetting>().unwrap();
        let set =
            apply(set(), &[s("jmp_table:2=classifier_0"), s("jmp_table:0="), s("other:0=entry")]).unwrap();
        assert_eq!(set.maps()[0].slots, vec![None, None, Some(1)]);
        assert_eq!(set.maps()[1].slots, vec![Some(0)]);
        // the same slot twice: the last wins
        let set = apply(set, &[s("jmp_table:2=entry"), s("jmp_table:2=classifier_0")]).unwrap();
        assert_eq!(set.maps()[0].slots, vec![None, None, Some(1)]);
    }

    #[test]
    fn malformed_settings_say_what_is_wrong() {
        for (text, says) in [
            ("jmp_table0=entry", "no ':'"),
            ("jmp_table:0", "no '='"),
            (":0=entry", "no map name"),
            ("jmp_table:x=entry", "\"x\" is not a slot number"),
            ("jmp_table:-1=entry", "is not a slot number"),
        ] {
            let e = text.parse::<SlotSetting>().unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn names_that_do_not_exist_are_errors_naming_what_does() {
        let s = |t: &str| t.parse::<SlotSetting>().unwrap();
        let e = apply(set(), &[s("jmp:0=entry")]).unwrap_err();
        assert!(e.contains("no prog array named jmp (prog arrays: jmp_table, other)"), "{e}");
        let e = apply(set(), &[s("jmp_table:3=entry")]).unwrap_err();
        assert!(e.contains("jmp_table has 3 slots, 0 to 2"), "{e}");
        let e = apply(set(), &[s("jmp_table:0=classifier_9")]).unwrap_err();
        assert!(e.contains("no program named classifier_9 (programs: entry, classifier_0)"), "{e}");
    }

    #[test]
    fn a_file_holds_one_setting_a_line() {
        let dir = std::env::temp_dir().join(format!("jitdiff-slots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("slots");
        std::fs::write(&path, "# tailcall_1, step 1\njmp_table:0=classifier_0\n\n  jmp_table:1=  \n")
            .unwrap();
        let settings = read_slot_file(&path).unwrap();
        assert_eq!(
            settings,
            vec![
                SlotSetting { map: "jmp_table".into(), index: 0, prog: Some("classifier_0".into()) },
                SlotSetting { map: "jmp_table".into(), index: 1, prog: None },
            ]
        );
        std::fs::write(&path, "jmp_table:0=classifier_0\njmp_table 1 entry\n").unwrap();
        let e = read_slot_file(&path).unwrap_err();
        assert!(e.starts_with(&format!("{}:2: ", path.display())), "{e}");
        let e = read_slot_file(&dir.join("missing")).unwrap_err();
        assert!(e.contains("missing"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
