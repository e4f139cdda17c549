//! Program sets from files: the set text format, and clang objects with several program
//! sections and prog-array maps.
//!
//! `fixtures/tailcalls.c`, `fixtures/global.c` and `fixtures/kfuncs.c` were compiled once
//! with clang 14 (the
//! commands are in the files); the objects are checked in, so nothing is compiled at
//! test time.

use std::path::{Path, PathBuf};

use bpf::asm::{parse_set, print_set, SetFile};
use bpf::elf::{load_elf, load_elf_set, ElfError};
use bpf::load::{load_bytes, load_file, load_set_bytes, load_set_file, load_set_text};
use bpf::{AttachKind, Call, Input, Insn, ProgramSet, Reg, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

/// What `tailcalls.o` is, written in the set text format.
const TAILCALLS: &str = "\
.map jmp_table 4
.slot jmp_table 2 second
.map legacy_table 2

.prog entry
    r6 = r1
    call pc+7
    r1 = r6
    r2 = jmp_table ll
    r3 = 2
    call bpf_tail_call
    r0 = 1
    exit
    r0 = *(u32 *)(r1 + 0)
    r0 += 1
    *(u32 *)(r1 + 0) = r0
    exit

.prog second
    r6 = r1
    r2 = legacy_table ll
    r3 = 0
    call bpf_tail_call
    r1 = r6
    call pc+3
    r1 = r0
    call pc+5
    exit
    r0 = *(u32 *)(r1 + 0)
    r0 += 1
    *(u32 *)(r1 + 0) = r0
    exit
    *(u32 *)(r10 - 4) = r1
    r1 = r10
    r1 += -4
    call pc-8
    r0 <<= 1
    exit

.prog third
    r0 = 3
    exit
";

#[test]
fn a_clang_object_with_program_sections_is_a_set() {
    let f = load_set_file(&fixture("tailcalls.o")).unwrap();
    assert_eq!(f.ctx, None);
    let set = &f.set;
    // `entry` comes first although clang emitted `second` before it.
    let names: Vec<&str> = set.progs().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["entry", "second", "third"]);
    let maps: Vec<(&str, &[Option<usize>])> =
        set.maps().iter().map(|m| (m.name.as_str(), m.slots.as_slice())).collect();
    assert_eq!(
        maps,
        [("jmp_table", &[None, None, Some(1), None][..]), ("legacy_table", &[None, None][..])],
        "the static initializer `[2] = &second` fills slot 2"
    );
    // Map references: the `lddw`s relocated against the maps.
    let entry = set.entry().prog.insns();
    assert_eq!(entry[3], Insn::LdImm64 { dst: Reg::R2, pseudo: PSEUDO_MAP_FD, imm: 0 });
    let second = &set.progs()[1].prog;
    assert_eq!(second.insns()[1], Insn::LdImm64 { dst: Reg::R2, pseudo: PSEUDO_MAP_FD, imm: 1 });
    // bpf2bpf calls into `.text`: each program gets the functions it reaches appended,
    // `bump` once although `second` reaches it directly and through `twice`.
    assert_eq!(set.entry().prog.functions().len(), 2);
    assert_eq!(second.functions().len(), 3);
    assert_eq!(second.function_stack_depth(1), 0);
    assert_eq!(second.function_stack_depth(2), 8, "`twice` passes r10 - 4 on: the verifier counts 4 bytes");
    assert_eq!(entry[1], Insn::Call(Call::Local(7)));
    assert_eq!(print_set(set, None), TAILCALLS);
    // The text form reads back to the same set.
    assert_eq!(parse_set(TAILCALLS).unwrap(), SetFile { set: set.clone(), ctx: None });
    // The single-program reading of the same object is still its `.text`.
    let text = load_file(&fixture("tailcalls.o")).unwrap();
    assert_eq!(text.insns(), load_elf(&read("tailcalls.o")).unwrap());
    assert_eq!(text.insns().len(), 10);
}

#[test]
fn an_object_without_program_sections_is_a_single_program() {
    let bytes = read("sample.o");
    assert_eq!(load_elf_set(&bytes), Ok(None));
    let want = ProgramSet::single(load_file(&fixture("sample.o")).unwrap());
    for name in ["sample.o", "sample.bin", "sample.objdump.txt"] {
        let f = load_set_file(&fixture(name)).unwrap();
        assert_eq!(f, SetFile { set: want.clone(), ctx: None }, "{name}");
    }
}

#[test]
fn a_program_section_without_function_symbols_is_one_program() {
    // `third`'s symbol (GLOBAL FUNC in section 5, value 0, size 16) made NOTYPE.
    let good = read("tailcalls.o");
    let at = find(&good, &[0x12, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0]);
    let mut b = good.clone();
    b[at] = 0x10;
    let set = load_elf_set(&b).unwrap().unwrap();
    let names: Vec<&str> = set.progs().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["entry", "second", "xdp"]);
    assert_eq!(set.progs()[2].prog, load_elf_set(&good).unwrap().unwrap().progs()[2].prog);
}

#[test]
fn globals_become_single_value_array_maps() {
    // `long counter;` in .bss, read and written by `return ++counter;`.
    let set = load_elf_set(&read("global.o")).unwrap().unwrap();
    assert_eq!(set.arrays().len(), 1);
    let bss = &set.arrays()[0];
    assert_eq!((bss.name.as_str(), bss.value_size, bss.values.as_slice()), ("bss", 8, &[0u8; 8][..]));
    assert_eq!(
        set.entry().prog.insns()[0],
        Insn::LdImm64 { dst: Reg::R1, pseudo: PSEUDO_MAP_VALUE, imm: bpf::set::map_value_imm(0, 0) }
    );
    // Too many globals for one value: the error names the section.
    let msg = load_set_bytes("global_big.o", &read("global_big.o")).unwrap_err().to_string();
    assert_eq!(
        msg,
        "global_big.o: map .bss: 5000 bytes of global variables: libbpf makes them one array value, and \
         jitdiff's array values are at most 4096 bytes"
    );
}

#[test]
fn the_tailcall3_selftest_shape_with_every_kind_of_data() {
    let set = load_elf_set(&read("globals.o")).unwrap().unwrap();
    let names: Vec<&str> = set.progs().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["entry", "classifier_0"]);
    // jmp_table's slot 0 holds classifier_0 (its static initializer).
    assert_eq!(set.maps()[0].slots, [Some(1)]);
    // The `.maps` array first, then .bss, .data and .rodata, each one value of its
    // section's bytes.
    let arrays: Vec<(&str, u32, &[u8])> =
        set.arrays().iter().map(|a| (a.name.as_str(), a.value_size, a.values.as_slice())).collect();
    assert_eq!(
        arrays,
        [
            ("hits", 8, &[0u8; 16][..]),
            ("bss", 4, &[0, 0, 0, 0][..]),
            ("data", 4, &[7, 0, 0, 0][..]),
            ("rodata", 4, &[1, 0, 0, 0][..]),
        ]
    );
    // `start += 1` in entry: `r2 = &data ll` (map 3: one prog array, then hits and bss).
    assert_eq!(
        set.entry().prog.insns()[0],
        Insn::LdImm64 { dst: Reg::R2, pseudo: PSEUDO_MAP_VALUE, imm: bpf::set::map_value_imm(3, 0) }
    );
    // The text form reads back to the same set.
    let text = print_set(&set, None);
    assert!(text.contains("r2 = &data ll"), "{text}");
    assert_eq!(parse_set(&text).unwrap().set, set);
    assert_eq!(bpf::validate::validate(&set, Some(64)), Ok(()));
}

#[test]
fn externs_that_are_jitdiff_kfuncs_become_kfunc_calls() {
    // clang emits `call -1` (src_reg 1) relocated against the undefined symbol; the loader
    // names the kfunc as libbpf would resolve a kernel's, by name.
    let set = load_elf_set(&read("kfuncs.o")).unwrap().unwrap();
    let calls: Vec<Call> = set.progs()[0]
        .prog
        .insns()
        .iter()
        .filter_map(|i| match i {
            Insn::Call(c) => Some(*c),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        [Call::Kfunc(bpf::helpers::KFUNC_COUNTER), Call::Kfunc(bpf::helpers::KFUNC_MIX), Call::Helper(12)]
    );
    // The same object calling an extern that is not one of jitdiff's kfuncs (renamed
    // wherever the name occurs: symbol table, BTF and debug strings).
    let mut b = read("kfuncs.o");
    let name = b"jitdiff_kmix\0";
    for at in 0..b.len() - name.len() {
        if &b[at..at + name.len()] == name {
            b[at + 11] = b'y';
        }
    }
    let msg = load_set_bytes("kfuncs.o", &b).unwrap_err().to_string();
    assert!(
        msg.contains(
            "call to `jitdiff_kmiy`, which is not defined here and is not one of the kfuncs jitdiff models \
             (jitdiff_kmix, jitdiff_kcounter, bpf_rcu_read_lock, bpf_rcu_read_unlock, bpf_preempt_disable, \
             bpf_preempt_enable)"
        ),
        "{msg}"
    );
}

/// The index of the only occurrence of `pattern` in `bytes`.
fn find(bytes: &[u8], pattern: &[u8]) -> usize {
    let at: Vec<usize> =
        bytes.windows(pattern.len()).enumerate().filter(|(_, w)| *w == pattern).map(|(i, _)| i).collect();
    assert_eq!(at.len(), 1, "{pattern:?} occurs {} times", at.len());
    at[0]
}

#[test]
fn damaged_objects_give_clear_errors() {
    let good = read("tailcalls.o");
    // The legacy map's `struct bpf_map_def`: type 3, key 4, value 4, max_entries 2.
    let def = [3, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
    let at = find(&good, &def);
    let mut hash = good.clone();
    hash[at] = 1;
    let msg = load_set_bytes("t.o", &hash).unwrap_err().to_string();
    assert_eq!(
        msg,
        "t.o: map legacy_table: type 1 is neither BPF_MAP_TYPE_PROG_ARRAY (3) nor BPF_MAP_TYPE_ARRAY (2): \
         program sets hold only those"
    );
    // An array whose key is not a u32.
    let mut wide_key = good.clone();
    wide_key[at] = 2;
    wide_key[at + 4] = 8;
    let msg = load_set_bytes("t.o", &wide_key).unwrap_err().to_string();
    assert_eq!(msg, "t.o: map legacy_table: an array's key must be 4 bytes (a u32), not 8");
    let mut empty = good.clone();
    empty[at + 12] = 0;
    let msg = load_set_bytes("t.o", &empty).unwrap_err().to_string();
    assert_eq!(msg, "t.o: map legacy_table: max_entries 0 is out of range (1 to 8191)");
    // Without `.BTF`, a `.maps` map has no type.
    let mut no_btf = good.clone();
    let names = find(&good, b".BTF.ext\0");
    for i in good.windows(5).enumerate().filter(|(_, w)| *w == b".BTF\0").map(|(i, _)| i) {
        no_btf[i + 3] = b'X';
    }
    no_btf[names + 3] = b'F';
    let err = load_elf_set(&no_btf).unwrap_err();
    assert!(matches!(err, ElfError::Btf(ref m) if m.starts_with("missing")), "{err}");
    // A call relocated to a function of a program section (not `.text`) is refused.
    // `call -1` against `twice`, retargeted at the symbol `third` (index 20 -> in xdp).
    let rel = find(&good, &[0x40, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0, 0, 0, 17, 0, 0, 0]);
    let mut into_xdp = good.clone();
    into_xdp[rel + 12] = 20;
    let msg = load_set_bytes("t.o", &into_xdp).unwrap_err().to_string();
    assert!(
        msg.starts_with("t.o: section buffer, offset 0x40 (slot 8): call to section xdp, offset 0x0"),
        "{msg}"
    );
}

#[test]
fn damaged_objects_never_panic() {
    let good = read("tailcalls.o");
    for n in (0..good.len()).step_by(7) {
        assert!(load_elf_set(&good[..n]).is_err(), "{n} bytes loaded");
    }
    let mut seed = 0x1234_5678u32;
    for i in 0..good.len() {
        let mut b = good.clone();
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        b[i] ^= (seed >> 24) as u8 | 1;
        if let Ok(Some(set)) = load_elf_set(&b) {
            // Whatever loads is a consistent set that prints and reads back (names that
            // are not valid in text are replaced).
            let text = print_set(&set, None);
            let back = parse_set(&text).unwrap_or_else(|e| panic!("{e}\n{text}")).set;
            assert_eq!(print_set(&back, None), text);
            let progs = |s: &ProgramSet| s.progs().iter().map(|p| p.prog.clone()).collect::<Vec<_>>();
            assert_eq!(progs(&back), progs(&set));
        }
        let _ = load_set_bytes("x.o", &b);
    }
}

#[test]
fn set_text_files_load_and_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("jitdiff-bpf-sets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("loop.s");
    let text = ".ctx 4\n.map t 1\n.slot t 0 entry\nr2 = t ll\nr3 = 0\ncall bpf_tail_call\nexit\n";
    std::fs::write(&path, text).unwrap();
    let f = load_set_file(&path).unwrap();
    assert_eq!(f.ctx, Some(Input::with_ctx(vec![0; 4])));
    assert_eq!(f.set.maps()[0].slots, vec![Some(0)]);
    assert_eq!(load_set_text("loop.s", text).unwrap(), f);
    // The single-program loader says what to use instead.
    let msg = load_file(&path).unwrap_err().to_string();
    assert_eq!(
        msg,
        format!(
            "{}: line 1, column 1: `.ctx` is program-set syntax: read this text with parse_set (bpf::load::load_set_file)",
            path.display()
        )
    );
    let bad = dir.join("bad.s");
    std::fs::write(&bad, ".map t 1\n.slot t 1 entry\nexit\n").unwrap();
    let msg = load_set_file(&bad).unwrap_err().to_string();
    assert_eq!(
        msg,
        format!(
            "{}: line 2, column 9: slot index 1 is out of range: map `t` has max_entries 1 (slots 0 to 0)",
            bad.display()
        )
    );
    let missing = dir.join("missing.s");
    let msg = load_set_file(&missing).unwrap_err().to_string();
    assert_eq!(msg, format!("{}: cannot read: No such file or directory", missing.display()));
    let _ = std::fs::remove_dir_all(dir);
    // Bytecode and non-UTF-8 text behave as with load_bytes.
    let bin = bpf::encode_bytes(&[Insn::Exit]);
    assert_eq!(
        load_set_bytes("x.bin", &bin).unwrap().set,
        ProgramSet::single(load_bytes("x.bin", &bin).unwrap())
    );
    let msg = load_set_bytes("x.s", b"r0 = \xff\nexit\n").unwrap_err().to_string();
    assert_eq!(msg, "x.s: not UTF-8 text (invalid byte at offset 5); binary bytecode needs a .bin name");
}

#[test]
fn fentry_and_fexit_sections_become_attachments() {
    // fentry.o: `entry` calls the .text function `subprog_tail`; `fentry/subprog_tail` and
    // `fexit/entry` hold tracing programs.
    let set = load_elf_set(&read("fentry.o")).unwrap().unwrap();
    assert_eq!(set.progs().iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["entry"]);
    let a = set.attachments();
    assert_eq!(a.len(), 2);
    assert_eq!(
        (a[0].kind, a[0].target.prog, a[0].target.func, a[0].program.name.as_str()),
        (AttachKind::Fentry, 0, 1, "before")
    );
    assert_eq!(
        (a[1].kind, a[1].target.prog, a[1].target.func, a[1].program.name.as_str()),
        (AttachKind::Fexit, 0, 0, "after")
    );
    assert_eq!(a[0].program.prog.insns()[0], Insn::Call(Call::Kfunc(bpf::helpers::KFUNC_COUNTER)));
    // A tracing section naming a function the object does not have.
    let msg = load_set_bytes("fentry_missing.o", &read("fentry_missing.o")).unwrap_err().to_string();
    assert!(msg.contains("section fentry/nowhere: the set has no function `nowhere` to attach to"), "{msg}");
}

#[test]
fn section_names_give_the_program_type() {
    // globals.o is the tailcall3 selftest shape, in SEC("tc") like the kernel's.
    let set = load_set_file(&fixture("globals.o")).unwrap().set;
    assert_eq!(set.prog_type(), bpf::ProgType::Tc);
    // Sections libbpf does not give a modelled type keep jitdiff's buffer.
    assert_eq!(load_set_file(&fixture("tailcalls.o")).unwrap().set.prog_type(), bpf::ProgType::Buffer);
    assert_eq!(load_set_file(&fixture("kfuncs.o")).unwrap().set.prog_type(), bpf::ProgType::Buffer);
}
