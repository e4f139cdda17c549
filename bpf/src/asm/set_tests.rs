//! Tests of the program-set text format: [`parse_set`] and [`print_set`].

use super::*;
use crate::exec::{Input, MAX_MAP_ENTRIES};
use crate::helpers;
use crate::insn::{AluOp, Call, Insn, Operand, Reg, Size, Width};
use crate::program::Program;
use crate::set::{AttachKind, ProgArray, ProgramSet, SetProgram, PSEUDO_MAP_FD};

fn mov(dst: Reg, imm: i32) -> Insn {
    Insn::Alu { width: Width::W64, op: AluOp::Mov, dst, src: Operand::Imm(imm) }
}

fn map_ref(dst: Reg, map: u64) -> Insn {
    Insn::LdImm64 { dst, pseudo: PSEUDO_MAP_FD, imm: map }
}

fn prog(name: &str, insns: Vec<Insn>) -> SetProgram {
    SetProgram { name: name.into(), prog: Program::new(insns).unwrap() }
}

fn set_error(text: &str) -> AsmError {
    match parse_set(text) {
        Err(e) => e,
        Ok(f) => panic!("{text:?} parsed to {f:?}, expected an error"),
    }
}

/// Prints, parses back, and checks that nothing changed; returns the text.
fn round_trip(set: &ProgramSet, ctx: Option<&Input>) -> String {
    let text = print_set(set, ctx);
    let back = parse_set(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back.set, *set, "{text}");
    assert_eq!(back.ctx.as_ref(), ctx, "{text}");
    assert_eq!(print_set(&back.set, back.ctx.as_ref()), text);
    text
}

/// The example of the module documentation.
const DOC_EXAMPLE: &str = "\
; a program that tail-calls itself until the kernel's limit stops it
.ctx 8                        ; the run's context: 8 zero bytes
.map jmp_table 4              ; a prog array with max_entries 4
.slot jmp_table 0 entry       ; slot 0 holds program `entry`; other slots are empty

.prog entry                   ; a program; the first one is the entry
.stack 16                     ; the stack depth of the function that follows
    r6 = r1
    r1 = *(u32 *)(r6 + 0)
    r1 += 1
    *(u32 *)(r6 + 0) = r1
    r1 = r6
    r2 = jmp_table ll         ; a map reference: lddw r2 with src = 1, imm = 0
    r3 = 0
    call bpf_tail_call        ; helpers by name or number (`call 12`)
    call count                ; a bpf2bpf call to a subprogram of this program
    exit
count:
.stack 8
    *(u64 *)(r10 - 8) = 1
    r0 = *(u64 *)(r10 - 8)
    exit

.prog other                   ; labels are local to their program
    r0 = 2
    exit
";

#[test]
fn the_documented_example_is_this_one() {
    let docs = include_str!("mod.rs");
    let start = docs.find("//! ```text\n").unwrap() + "//! ```text\n".len();
    let len = docs[start..].find("//! ```\n").unwrap();
    let example: String = docs[start..start + len]
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("//! ").unwrap_or(l.trim_start_matches("//!"))))
        .collect();
    assert_eq!(example, DOC_EXAMPLE);
}

#[test]
fn the_documented_example_means_what_it_says() {
    let f = parse_set(DOC_EXAMPLE).unwrap();
    assert_eq!(f.ctx, Some(Input::with_ctx(vec![0; 8])));
    let progs = f.set.progs();
    assert_eq!(progs.len(), 2);
    assert_eq!((progs[0].name.as_str(), progs[1].name.as_str()), ("entry", "other"));
    assert_eq!(
        f.set.maps(),
        &[ProgArray { name: "jmp_table".into(), slots: vec![Some(0), None, None, None] }]
    );
    let entry = &progs[0].prog;
    assert_eq!(entry.insns()[5], map_ref(Reg::R2, 0));
    assert_eq!(entry.insns()[7], Insn::Call(Call::Helper(helpers::TAIL_CALL)));
    assert_eq!(entry.insns()[8], Insn::Call(Call::Local(1)));
    assert_eq!(entry.functions(), vec![0..10, 10..13]);
    assert_eq!(entry.function_stack_depth(0), 16, "declared (inferred: 0)");
    assert_eq!(entry.function_stack_depth(1), 8, "declared, the same as inferred");
    assert_eq!(progs[1].prog.insns(), &[mov(Reg::R0, 2), Insn::Exit]);
    // Printing keeps only the `.stack` that differs from the inferred depth.
    let text = round_trip(&f.set, f.ctx.as_ref());
    assert_eq!(text.matches(".stack").count(), 1, "{text}");
    assert!(text.contains(".prog entry\n.stack 16\n    r6 = r1\n"), "{text}");
    assert!(
        text.contains("    r2 = jmp_table ll\n    r3 = 0\n    call bpf_tail_call\n    call pc+1\n"),
        "{text}"
    );
}

#[test]
fn text_without_directives_is_a_single_program() {
    let text = "r0 = 1\nif r1 s> -5 goto +1\nr0 = 2\nexit\n";
    let f = parse_set(text).unwrap();
    assert_eq!(f.set, ProgramSet::single(parse_program(text).unwrap()));
    assert_eq!(f.set.entry().name, DEFAULT_PROG_NAME);
    assert_eq!(f.ctx, None);
    assert!(f.set.is_single());
    // ... and prints as print_program does.
    assert_eq!(print_set(&f.set, None), text);
    assert_eq!(print_set(&f.set, None), print_program(f.set.entry().prog.insns()));
    // clang `.s` and llvm-objdump texts keep working.
    let objdump = "\
c1.o:\tfile format elf64-bpf

Disassembly of section .text:

0000000000000000 <f>:
       0:\tb7 00 00 00 05 00 00 00\tr0 = 5
       1:\t95 00 00 00 00 00 00 00\texit
";
    let f = parse_set(objdump).unwrap();
    assert_eq!(f.set.entry().prog.insns(), &[mov(Reg::R0, 5), Insn::Exit]);
    let dot_s = "\t.text\n\t.globl\tf\n\t.p2align\t3\nf:\n\tr0 = 5\n\texit\n.Lfunc_end0:\n\t.size\tf, .Lfunc_end0-f\n";
    assert_eq!(parse_set(dot_s).unwrap().set.entry().prog.insns(), &[mov(Reg::R0, 5), Insn::Exit]);
}

#[test]
fn sets_round_trip() {
    let st = |off| Insn::StoreImm { size: Size::DW, dst: Reg::R10, off, imm: 0 };
    // Several programs with subprograms, several maps, empty and shared slots.
    let entry = prog(
        "entry",
        vec![
            st(-8),
            map_ref(Reg::R2, 1),
            mov(Reg::R3, 2),
            Insn::Call(Call::Helper(helpers::TAIL_CALL)),
            Insn::Call(Call::Local(2)),
            Insn::Call(Call::Helper(helpers::MIX)),
            Insn::Exit,
            st(-40),
            Insn::Call(Call::Local(1)),
            Insn::Exit,
            mov(Reg::R0, 3),
            Insn::Call(Call::Helper(99)),
            Insn::Exit,
        ],
    );
    let second = prog("second", vec![map_ref(Reg::R2, 0), mov(Reg::R0, 0), Insn::Exit]);
    let third = prog("t.3", vec![Insn::LdImm64 { dst: Reg::R0, pseudo: 0, imm: 1 << 40 }, Insn::Exit]);
    let maps = vec![
        ProgArray { name: "a".into(), slots: vec![None, Some(2), None, Some(1)] },
        ProgArray { name: "table_b".into(), slots: vec![Some(0)] },
        ProgArray { name: "empty".into(), slots: vec![None; MAX_MAP_ENTRIES as usize] },
    ];
    let set = ProgramSet::new(vec![entry.clone(), second.clone(), third.clone()], maps.clone()).unwrap();
    let text = round_trip(&set, None);
    assert!(text.starts_with(".map a 4\n.slot a 1 t.3\n.slot a 3 second\n.map table_b 1\n"), "{text}");
    assert!(text.contains("\n\n.prog second\n    r2 = a ll\n"), "{text}");
    assert!(text.contains("call jitdiff_mix\n"), "{text}");
    assert!(text.contains("call 99\n"), "{text}");
    assert!(!text.contains(".stack"), "all depths are the inferred ones: {text}");

    // Declared stack depths, on the main function and on subprograms.
    let mut deep = entry.clone();
    deep.prog.set_stack_depths(vec![512, 48, 16]).unwrap();
    let mut shallow = second.clone();
    shallow.prog.set_stack_depths(vec![24]).unwrap();
    let set = ProgramSet::new(vec![deep, shallow, third.clone()], maps.clone()).unwrap();
    let text = round_trip(&set, None);
    assert_eq!(text.matches(".stack").count(), 4, "{text}");
    assert!(text.contains(".prog entry\n.stack 512\n"), "{text}");
    assert!(text.contains("    exit\n.stack 48\n    *(u64 *)(r10 - 40) = 0\n"), "{text}");
    assert!(text.contains("    exit\n.stack 16\n    r0 = 3\n"), "{text}");
    assert!(text.contains(".prog second\n.stack 24\n"), "{text}");

    // Every kind of context.
    for ctx in [
        Input::none(),
        Input::with_ctx(vec![]),
        Input::with_ctx(vec![0; 64]),
        Input::with_ctx((1..=20).collect()),
        Input::with_ctx([vec![5, 0, 0, 0, 0, 0, 0, 0, 7], vec![0; 55]].concat()),
        Input::with_ctx(vec![0xff; MAX_CTX_SIZE]),
    ] {
        round_trip(&set, Some(&ctx));
    }
    let text =
        print_set(&set, Some(&Input::with_ctx([vec![5, 0, 0, 0, 0, 0, 0, 0, 7], vec![0; 55]].concat())));
    assert!(text.starts_with(".ctx 64 hex 0500000000000000 07\n"), "{text}");
    assert!(print_set(&set, Some(&Input::none())).starts_with(".ctx none\n"));
    assert!(print_set(&set, Some(&Input::with_ctx(vec![0; 8]))).starts_with(".ctx 8\n"));

    // One program with a name other than `entry` needs its `.prog`; one named `entry`
    // with a map does not.
    let single = ProgramSet::new(vec![prog("main", vec![mov(Reg::R0, 1), Insn::Exit])], vec![]).unwrap();
    assert_eq!(round_trip(&single, None), ".prog main\n    r0 = 1\n    exit\n");
    let with_map = ProgramSet::new(
        vec![prog("entry", vec![map_ref(Reg::R1, 0), Insn::Exit])],
        vec![ProgArray { name: "m".into(), slots: vec![Some(0), None] }],
    )
    .unwrap();
    assert_eq!(
        round_trip(&with_map, Some(&Input::with_ctx(vec![1]))),
        ".ctx hex 01\n.map m 2\n.slot m 0 entry\n\nr1 = m ll\nexit\n"
    );
    // Declared depth on a single program without `.prog`.
    let mut p = Program::new(vec![mov(Reg::R0, 1), Insn::Exit]).unwrap();
    p.set_stack_depths(vec![64]).unwrap();
    let text = round_trip(&ProgramSet::single(p.clone()), None);
    assert_eq!(text, ".stack 64\nr0 = 1\nexit\n");
    assert_eq!(parse_program(&text).unwrap(), p);
}

#[test]
fn names_that_cannot_be_printed_are_replaced() {
    let p = |name: &str| prog(name, vec![Insn::Exit]);
    let set = ProgramSet::new(
        vec![p("has space"), p("ok"), p("ok"), p("r1"), p("prog0")],
        vec![
            ProgArray { name: "".into(), slots: vec![Some(2)] },
            ProgArray { name: "map1".into(), slots: vec![None] },
            ProgArray { name: "map1".into(), slots: vec![None] },
        ],
    )
    .unwrap();
    let text = print_set(&set, None);
    let back = parse_set(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let names: Vec<&str> = back.set.progs().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["prog0_", "ok", "prog2", "prog3", "prog0"]);
    let maps: Vec<&str> = back.set.maps().iter().map(|m| m.name.as_str()).collect();
    assert_eq!(maps, ["map0", "map1", "map2"]);
    assert_eq!(back.set.maps()[0].slots, vec![Some(2)]);
}

#[test]
fn kfuncs_by_name_and_by_id() {
    let k = |id| vec![Insn::Call(Call::Kfunc(id))];
    assert_eq!(parse("call kfunc:jitdiff_kmix").unwrap(), k(helpers::KFUNC_MIX));
    assert_eq!(parse("call kfunc:jitdiff_kcounter").unwrap(), k(helpers::KFUNC_COUNTER));
    assert_eq!(parse("call kfunc:131072").unwrap(), k(helpers::KFUNC_MIX));
    assert_eq!(parse("call kfunc:77").unwrap(), k(77));
    assert_eq!(Insn::Call(Call::Kfunc(helpers::KFUNC_MIX)).to_string(), "call kfunc:jitdiff_kmix");
    assert_eq!(Insn::Call(Call::Kfunc(77)).to_string(), "call kfunc:77");
    // The raw form: src_reg 2 (BPF_PSEUDO_KFUNC_CALL), imm the id.
    let raw = crate::encode_bytes(&k(helpers::KFUNC_COUNTER));
    assert_eq!(raw, [0x85, 0x20, 0, 0, 0x01, 0, 0x02, 0]);
}

#[test]
fn helpers_by_name() {
    let cases = [
        ("call bpf_tail_call", helpers::TAIL_CALL),
        ("call 12", helpers::TAIL_CALL),
        ("call bpf_tail_call#12", helpers::TAIL_CALL),
        ("call jitdiff_mix", helpers::MIX),
        ("call jitdiff_counter", helpers::COUNTER),
        ("call ktime_get_ns", helpers::KTIME_GET_NS),
        ("call bpf_ktime_get_ns", helpers::KTIME_GET_NS),
        ("call bpf_jiffies64", helpers::JIFFIES64),
        ("call bpf_test_func", helpers::TEST_FUNC),
        ("call 65536", helpers::MIX),
    ];
    for (text, id) in cases {
        assert_eq!(parse(text).unwrap(), vec![Insn::Call(Call::Helper(id))], "{text}");
    }
    for id in helpers::ALL.into_iter().chain([helpers::TAIL_CALL]) {
        let insn = Insn::Call(Call::Helper(id));
        let text = insn.to_string();
        assert!(!text.trim_start_matches("call ").starts_with(|c: char| c.is_ascii_digit()), "{text}");
        assert_eq!(parse(&text).unwrap(), vec![insn]);
    }
    assert_eq!(Insn::Call(Call::Helper(2)).to_string(), "call 2");
    assert_eq!(Insn::Call(Call::Helper(1)).to_string(), "call map_lookup_elem");
    assert_eq!(Insn::Call(Call::Helper(helpers::MIX)).to_string(), "call jitdiff_mix");
    // A label cannot take a helper's name, so `call NAME` is never ambiguous.
    let e = parse("jitdiff_mix:\nexit").unwrap_err();
    assert_eq!((e.line, e.column), (1, 1));
    assert!(e.message.contains("is a helper name"), "{e}");
    // Unknown names are still labels.
    let e = parse("call bpf_nothing").unwrap_err();
    assert_eq!(e.message, "undefined label \"bpf_nothing\"");
}

#[test]
fn labels_belong_to_their_program() {
    let text =
        ".prog a\n    call sub\n    exit\nsub:\n    r0 = 1\n    exit\n.prog b\n    call sub\n    exit\n";
    let e = set_error(text);
    assert_eq!((e.line, e.column), (8, 10));
    assert_eq!(e.message, "undefined label \"sub\"");
    // The same label in two programs is fine.
    let text = ".prog a\nl: r0 = 1\n    exit\n.prog b\nl: r0 = 2\n    goto l\n";
    let f = parse_set(text).unwrap();
    assert_eq!(f.set.progs()[1].prog.insns()[1], Insn::Ja { off: -2 });
}

#[test]
fn errors_have_positions() {
    let cases: &[(&str, usize, usize, &str)] = &[
        // Unknown names.
        (".map m 2\nr2 = n ll\nexit", 2, 6, "unknown map `n` (declared maps: m)"),
        ("r2 = n ll\nexit", 1, 6, "unknown map `n`: the set declares no maps"),
        (".map m 2\n.slot m 0 nobody\nexit", 2, 11, "unknown program `nobody` (the set's programs: entry)"),
        (".slot m 0 entry\n.map m 2\nexit", 1, 7, "`.slot` names map `m`, which is not declared (yet)"),
        // Slots.
        (
            ".map m 2\n.slot m 2 entry\nexit",
            2,
            9,
            "slot index 2 is out of range: map `m` has max_entries 2 (slots 0 to 1)",
        ),
        (
            ".map m 2\n.slot m 0 entry\n.slot m 0 entry\nexit",
            3,
            9,
            "slot 0 of map `m` is already set on line 2",
        ),
        (".map m 2\n.slot m x entry\nexit", 2, 9, "slot index \"x\" is not a number"),
        (".map m 2\n.slot m 0 9lives\nexit", 2, 11, "invalid program name \"9lives\""),
        // Duplicates.
        (".map m 2\n.map m 3\nexit", 2, 6, "duplicate map `m` (first declared on line 1)"),
        (".prog a\nexit\n.prog a\nexit", 3, 7, "duplicate program `a` (first on line 1)"),
        (
            "exit\n.prog entry\nexit",
            2,
            7,
            "the instructions before the first `.prog` form the program `entry`",
        ),
        (".ctx 4\n.ctx 4\nexit", 2, 1, "duplicate `.ctx` (the first is on line 1)"),
        // max_entries.
        (".map m 0\nexit", 1, 8, "max_entries 0 is out of range (1 to 8191)"),
        (".map m 8192\nexit", 1, 8, "max_entries 8192 is out of range"),
        (
            ".map m 99999999999999999999999\nexit",
            1,
            8,
            "max_entries \"99999999999999999999999\" is not a number",
        ),
        // Malformed directives.
        (".map m\nexit", 1, 1, "malformed `.map`: expected `.map NAME MAX_ENTRIES`"),
        (".map m 2 3\nexit", 1, 1, "malformed `.map`"),
        (".map r1 2\nexit", 1, 6, "invalid map name \"r1\""),
        (".map 1m 2\nexit", 1, 6, "invalid map name \"1m\""),
        (".map m -2\nexit", 1, 8, "max_entries \"-2\" is not a number"),
        (".slot m 0\nexit", 1, 1, "malformed `.slot`: expected `.slot MAP INDEX PROGRAM`"),
        (".prog\nexit", 1, 1, "malformed `.prog`: expected `.prog NAME`"),
        (".prog a b\nexit", 1, 1, "malformed `.prog`"),
        (".prog a-b\nexit", 1, 7, "invalid program name \"a-b\""),
        (".stack\nexit", 1, 1, "malformed `.stack`: expected `.stack DEPTH`"),
        (".stack 520\nexit", 1, 8, "stack depth 520 is out of range (0 to 512)"),
        (".stack -8\nexit", 1, 8, "depth \"-8\" is not a number"),
        (".ctx\nexit", 1, 1, "malformed `.ctx`"),
        (".ctx 8 9\nexit", 1, 1, "malformed `.ctx`"),
        (".ctx many\nexit", 1, 6, "malformed `.ctx`"),
        (".ctx hex\nexit", 1, 1, "`.ctx hex` needs the bytes"),
        (".ctx hex 012\nexit", 1, 10, "\"012\" is not hex bytes"),
        (".ctx hex 0g\nexit", 1, 10, "\"0g\" is not hex bytes"),
        (".ctx 2 hex 010203\nexit", 1, 6, "the context has size 2 but 3 bytes are given"),
        (".ctx 65537\nexit", 1, 6, "context size 65537 is too large (at most 65536 bytes)"),
        (".slots m 0 entry\nexit", 1, 1, "unknown directive `.slots` (did you mean `.slot`?)"),
        (".Prog a\nexit", 1, 1, "unknown directive `.Prog` (did you mean `.prog`?)"),
        (".context 8\nexit", 1, 1, "unknown directive `.context` (did you mean `.ctx`?)"),
        // Directives where they make no sense.
        (
            "exit\n.map m 2",
            2,
            1,
            "`.map` must come before the first program (program `entry` starts on line 1)",
        ),
        (
            ".prog a\nexit\n  .ctx 8",
            3,
            3,
            "`.ctx` must come before the first program (program `a` starts on line 1)",
        ),
        (".map m 1\n.prog a\nexit\n.slot m 0 a", 4, 1, "`.slot` must come before the first program"),
        ("r0 = 1\n.stack 8\nexit", 2, 1, "does not start a function"),
        (".prog a\nexit\n.stack 8\n.prog b\nexit", 3, 1, "`.stack` must be followed by an instruction"),
        ("exit\n.stack 8", 2, 1, "`.stack` must be followed by an instruction"),
        (
            ".stack 8\n.stack 16\nexit",
            2,
            1,
            "a second `.stack` for the same function (the first is on line 1)",
        ),
        ("l: .prog a\nexit", 1, 4, "`.prog` must start its line"),
        // Programs.
        (".prog a\n.prog b\nexit", 1, 1, "program `a` has no instructions"),
        (".map m 1\n", 1, 1, "the program is empty"),
        ("", 1, 1, "the program is empty"),
        (".map m 1\nld_pseudo r1, 1, 1\nexit", 2, 1, "map index 1 does not exist (the set declares 1 map)"),
        (".prog a\nexit\n.prog b\nr0 = 1\n  goto +3\nexit", 5, 3, "jump to slot 5 is out of range"),
        (".prog a\nexit\n.prog b\ncall pc+1\ngoto +1\nexit\nexit", 5, 1, "leaves its function"),
        (".prog a\nr0 = 1", 2, 1, "execution can run past the end"),
        (".map m 1\nw2 = m ll\nexit", 2, 1, "a map reference needs a 64-bit destination register"),
        (".map m 1\nr2 = m ll 5\nexit", 2, 11, "unexpected \"5\" after the instruction"),
    ];
    for &(text, line, column, msg) in cases {
        let e = set_error(text);
        assert!(e.message.contains(msg), "{text:?}: got {e:?}, expected message {msg:?}");
        assert_eq!((e.line, e.column), (line, column), "{text:?}: {e}");
    }
}

#[test]
fn single_program_parsers_refuse_set_directives() {
    for d in [".ctx 8", ".map m 1", ".slot m 0 entry", ".prog a"] {
        let text = format!("{d}\nexit\n");
        for e in [parse(&text).unwrap_err(), parse_program(&text).unwrap_err()] {
            assert_eq!((e.line, e.column), (1, 1), "{d}");
            assert!(e.message.contains("is program-set syntax: read this text with parse_set"), "{e}");
        }
    }
    // `.stack` is a property of a program: parse_program takes it, parse does not.
    let p = parse_program(".stack 32\nr0 = 1\nexit").unwrap();
    assert_eq!(p.stack_depth(), 32);
    let e = parse(".stack 32\nr0 = 1\nexit").unwrap_err();
    assert!(
        e.message.contains("use parse_program or parse_set") || e.message.contains("parse_program"),
        "{e}"
    );
    // A map reference needs a set.
    let e = parse_program("r1 = glob ll\nexit").unwrap_err();
    assert_eq!((e.line, e.column), (1, 6));
    assert!(e.message.starts_with("`glob` is a symbol: only the maps of a program set"), "{e}");
    // Ignored assembler directives stay ignored, jitdiff's near misses are errors everywhere.
    assert_eq!(parse(".text\n.globl f\n.section socket\nexit").unwrap(), vec![Insn::Exit]);
    assert!(parse(".maps x\nexit").unwrap_err().message.contains("did you mean `.map`?"));
}

#[test]
fn map_references_in_sets() {
    let text = ".map a 1\n.map b 1\nr1 = b ll\nr2 = a ll\nld_pseudo r3, 1, 1\nr4 = 5 ll\nexit\n";
    let f = parse_set(text).unwrap();
    assert_eq!(
        f.set.entry().prog.insns(),
        &[
            map_ref(Reg::R1, 1),
            map_ref(Reg::R2, 0),
            map_ref(Reg::R3, 1),
            Insn::LdImm64 { dst: Reg::R4, pseudo: 0, imm: 5 },
            Insn::Exit
        ]
    );
    assert_eq!(
        print_set(&f.set, None),
        ".map a 1\n.map b 1\n\nr1 = b ll\nr2 = a ll\nr3 = b ll\nr4 = 5 ll\nexit\n"
    );
    // Map names do not clash with mnemonics or labels: they appear only before `ll`.
    let text = ".map be16 1\n.map exit 1\nr1 = be16 ll\nr2 = exit ll\nexit: exit\n";
    let f = parse_set(text).unwrap();
    assert_eq!(f.set.entry().prog.insns()[..2], [map_ref(Reg::R1, 0), map_ref(Reg::R2, 1)]);
    round_trip(&f.set, None);
    // Other pseudo sources stay `ld_pseudo`.
    let f = parse_set(".map m 1\nld_pseudo r1, 3, 7\nexit").unwrap();
    assert_eq!(print_set(&f.set, None), ".map m 1\n\nld_pseudo r1, 3, 7\nexit\n");
}

#[test]
fn ctx_forms() {
    let ctx = |text: &str| parse_set(&format!("{text}\nexit")).unwrap().ctx;
    assert_eq!(ctx(".ctx none"), Some(Input::none()));
    assert_eq!(ctx(".ctx 0"), Some(Input::with_ctx(vec![])));
    assert_eq!(ctx(".ctx 0x10"), Some(Input::with_ctx(vec![0; 16])));
    assert_eq!(ctx(".ctx hex 0100 FF"), Some(Input::with_ctx(vec![1, 0, 0xff])));
    assert_eq!(ctx(".ctx 6 hex 0102 ; comment"), Some(Input::with_ctx(vec![1, 2, 0, 0, 0, 0])));
    assert_eq!(ctx(".ctx 65536").map(|i| i.ctx.map(|c| c.len())), Some(Some(65536)));
    assert_eq!(ctx("; no ctx"), None);
}

#[test]
fn slots_may_name_programs_declared_later_and_the_implicit_entry() {
    let text = ".map m 3\n.slot m 2 later\n.slot m 0 entry\nr0 = 0\nexit\n.prog later\nr0 = 1\nexit\n";
    let f = parse_set(text).unwrap();
    assert_eq!(f.set.maps()[0].slots, vec![Some(0), None, Some(1)]);
    assert_eq!(f.set.progs()[0].name, "entry");
    let printed = round_trip(&f.set, None);
    assert!(printed.contains(".prog entry\n"), "two programs print every `.prog`: {printed}");
}

#[test]
fn never_panics_on_garbage() {
    let mut seeds: Vec<String> = DOC_EXAMPLE.lines().map(String::from).collect();
    seeds.extend(
        [
            ".ctx 8 hex 0102",
            ".ctx hex ff",
            ".ctx none",
            ".map m 4",
            ".slot m 3 entry",
            ".prog p",
            ".stack 512",
            "r2 = m ll",
            "call jitdiff_mix",
        ]
        .map(String::from),
    );
    let mut inputs: Vec<String> = Vec::new();
    for s in &seeds {
        for (i, _) in s.char_indices() {
            inputs.push(format!(".map m 4\n{}\nexit", &s[..i]));
            inputs.push(format!("{}\nexit", &s[i..]));
        }
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let lines: Vec<&str> = DOC_EXAMPLE.lines().chain(seeds.iter().map(String::as_str)).collect();
    for _ in 0..3000 {
        let n = (seed % 12) as usize;
        let mut text = String::new();
        for _ in 0..n {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            text.push_str(lines[(seed % lines.len() as u64) as usize]);
            text.push('\n');
        }
        inputs.push(text);
    }
    for input in &inputs {
        if let Ok(f) = parse_set(input) {
            round_trip(&f.set, f.ctx.as_ref());
        }
        let _ = parse_program(input);
    }
}

#[test]
fn array_maps_parse_print_and_number_after_prog_arrays() {
    let text = ".map pa 2\n.array vals 8 4 hex 0102\n.prog entry\n    r1 = vals ll\n    r2 = pa ll\n    r0 = 0\n    exit\n";
    let f = parse_set(text).unwrap();
    let a = &f.set.arrays()[0];
    assert_eq!((a.value_size, a.max_entries()), (8, 4));
    assert_eq!(&a.values[..3], &[1, 2, 0]);
    // Prog arrays are numbered first: `vals` is map 1.
    assert_eq!(
        f.set.progs()[0].prog.insns()[0],
        Insn::LdImm64 { dst: Reg::R1, pseudo: PSEUDO_MAP_FD, imm: 1 }
    );
    assert_eq!(parse_set(&print_set(&f.set, None)).unwrap().set, f.set);
    let after = parse_set(".array a 8 1\n.map pa 1\nr0 = 0\nexit\n").unwrap_err();
    assert!(after.message.contains("must come before every `.array`"), "{after}");
    let slot = parse_set(".array a 8 1\n.slot a 0 entry\nr0 = 0\nexit\n").unwrap_err();
    assert!(slot.message.contains("only prog arrays have slots"), "{slot}");
    let big = parse_set(".array a 4096 100\nr0 = 0\nexit\n").unwrap_err();
    assert!(big.message.contains("max_entries"), "{big}");
}

const TRACED: &str = "
.array counts 8 1
.prog entry
    r1 = 1
    call sub
    exit
sub:
    r0 = r1
    exit
.fentry seen_entry entry
    r0 = 0
    exit
.fexit seen_sub entry:1
    r2 = *(u64 *)(r1 + 40)
    r0 = 0
    exit
";

#[test]
fn attachments_are_read_and_printed_back() {
    let f = parse_set(TRACED).unwrap();
    let a = f.set.attachments();
    assert_eq!(a.len(), 2);
    assert_eq!((a[0].kind, a[0].target.prog, a[0].target.func), (AttachKind::Fentry, 0, 0));
    assert_eq!((a[1].kind, a[1].target.prog, a[1].target.func), (AttachKind::Fexit, 0, 1));
    assert_eq!((a[0].program.name.as_str(), a[1].program.name.as_str()), ("seen_entry", "seen_sub"));
    assert_eq!(f.set.progs().len(), 1, "attachments are not programs of the set");
    let text = round_trip(&f.set, None);
    assert!(
        text.contains(".fentry seen_entry entry\n") && text.contains(".fexit seen_sub entry:1\n"),
        "{text}"
    );
    assert!(!f.set.is_single());
}

#[test]
fn bad_attachments_are_named() {
    let e = set_error(".fentry f entry\n r0 = 0\n exit\n");
    assert!(e.message.contains("cannot start a set"), "{e}");
    let e = set_error(&TRACED.replace("seen_sub entry:1", "seen_sub nothing:1"));
    assert!(e.message.contains("unknown program `nothing`"), "{e}");
    let e = set_error(&TRACED.replace("seen_sub entry:1", "seen_sub entry:2"));
    assert!(e.message.contains("has 2 function(s)") && e.message.contains("no function 2"), "{e}");
    let e = set_error(&TRACED.replace("seen_sub entry:1", "seen_sub entry:x"));
    assert!(e.message.contains("PROG:FUNCTION"), "{e}");
    let e = set_error(
        &TRACED.replace("    r2 = *(u64 *)(r1 + 40)\n", "    call inner\n    r0 = 0\n    exit\ninner:\n"),
    );
    assert!(e.message.contains("one function without bpf2bpf calls or tail calls"), "{e}");
    let e = set_error(&TRACED.replace("seen_sub entry:1", "entry entry:1"));
    assert!(e.message.contains("duplicate program `entry`"), "{e}");
}

#[test]
fn a_tracing_program_only_reads_its_arguments_whole() {
    let check = |line: &str| {
        let set = parse_set(&TRACED.replace("    r2 = *(u64 *)(r1 + 40)\n", line)).unwrap().set;
        crate::validate::validate(&set, Some(8))
    };
    assert_eq!(check("    r2 = *(u64 *)(r1 + 40)\n"), Ok(()));
    for bad in ["    r2 = *(u32 *)(r1 + 0)\n", "    *(u64 *)(r1 + 0) = 1\n", "    r2 = *(u64 *)(r1 + 48)\n"] {
        let e = check(bad).unwrap_err();
        assert_eq!((e.prog.as_str(), e.rule), ("seen_sub", crate::validate::Rule::CtxBounds), "{bad}: {e}");
    }
    let fentry_reads_return = TRACED
        .replace("    r0 = 0\n    exit\n.fexit", "    r2 = *(u64 *)(r1 + 40)\n    r0 = 0\n    exit\n.fexit");
    let set = parse_set(&fentry_reads_return).unwrap().set;
    let e = crate::validate::validate(&set, Some(8)).unwrap_err();
    assert_eq!(
        (e.prog.as_str(), e.rule),
        ("seen_entry", crate::validate::Rule::CtxBounds),
        "an fentry has no return value: {e}"
    );
}

#[test]
fn the_kernels_kfuncs_return_nothing() {
    // bpf_preempt_disable returns void: the verifier leaves R0 unreadable after it.
    let set = parse_set("call kfunc:bpf_preempt_disable\ncall kfunc:bpf_preempt_enable\nexit\n").unwrap().set;
    let e = crate::validate::validate(&set, Some(0)).unwrap_err();
    assert_eq!(e.rule, crate::validate::Rule::UninitRegister, "{e}");
    assert!(e.detail.contains("returns nothing"), "{e}");
    let ok = parse_set("call kfunc:bpf_rcu_read_lock\ncall kfunc:bpf_rcu_read_unlock\nr0 = 0\nexit\n")
        .unwrap()
        .set;
    assert_eq!(crate::validate::validate(&ok, Some(0)), Ok(()));
    assert_eq!(
        ok.entry().prog.insns()[0],
        Insn::Call(Call::Kfunc(helpers::KFUNC_RCU_READ_LOCK)),
        "the kernel's name reads as the kfunc"
    );
}

#[test]
fn map_value_addresses_read_and_print_by_name() {
    // `rN = &NAME + OFF ll` is `lddw` with src 2 (BPF_PSEUDO_MAP_VALUE): the map's index in
    // the immediate's low half, the offset in its high half.
    let text = ".array g 16 1\n.array h 8 1\n    r1 = &g ll\n    r2 = &h + 4 ll\n    r0 = 0\n    exit\n";
    let f = parse_set(text).unwrap();
    let insns = f.set.entry().prog.insns();
    assert_eq!(insns[0], Insn::LdImm64 { dst: Reg::R1, pseudo: 2, imm: 0 });
    assert_eq!(insns[1], Insn::LdImm64 { dst: Reg::R2, pseudo: 2, imm: 4 << 32 | 1 });
    // Offset 8 lies past h's 8-byte value, and an array of two values has no address
    // (the kernel's rule): the set is refused.
    let msg = parse_set(&text.replace("&h + 4", "&h + 8")).unwrap_err().to_string();
    assert!(msg.contains("offset 8 is outside the 8-byte value of array map h"), "{msg}");
    let msg = parse_set(&text.replace(".array h 8 1", ".array h 8 2")).unwrap_err().to_string();
    assert!(msg.contains("array map h has 2 values: only a map of one value has an address"), "{msg}");
    let ok = parse_set(".array g 16 1\n    r1 = &g + 8 ll\n    r0 = *(u64 *)(r1 + 0)\n    exit\n").unwrap();
    let printed = round_trip(&ok.set, None);
    assert!(printed.contains("r1 = &g + 8 ll"), "{printed}");
    // Only a 64-bit register, and only a declared map.
    assert!(parse_set(".array g 16 1\n    w1 = &g ll\n    exit\n").is_err());
    assert!(parse_set(".array g 16 1\n    r1 = &nope ll\n    exit\n").is_err());
}

#[test]
fn functions_without_stack_get_the_verifiers_depth() {
    // main passes &r10[-8] to f, which writes through it and uses 264 bytes of its own:
    // the verifier counts 8 bytes for main (Program::new would take all 512, and the
    // chain would be too deep) and 264 for f; a declared `.stack` stays as declared.
    let text =
        "r1 = r10\nr1 += -8\ncall f\nr0 = 0\nexit\nf:\n*(u64 *)(r1 + 0) = 1\n*(u64 *)(r10 - 264) = 0\nexit\n";
    let set = parse_set(text).unwrap().set;
    let depths =
        |s: &ProgramSet| (s.entry().prog.function_stack_depth(0), s.entry().prog.function_stack_depth(1));
    assert_eq!(depths(&set), (8, 264));
    assert_eq!(crate::validate::validate(&set, None), Ok(()));
    assert!(!round_trip(&set, None).contains(".stack"));
    let declared = parse_set(&format!(".stack 32\n{text}")).unwrap().set;
    assert_eq!(depths(&declared), (32, 264));
    assert!(round_trip(&declared, None).starts_with(".stack 32\n"));
}
