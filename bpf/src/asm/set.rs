//! Program sets as text: the directives `.progtype`, `.ctx`, `.map`, `.array`, `.slot`, `.prog`, `.fentry`,
//! `.fexit` and `.stack`
//! (see [`crate::asm`] for the format), [`parse_set`] and [`print_set`].
//!
//! Every text, set or not, is read here line by line: directives are handled here and
//! every other line goes to the [`Code`] of the program it belongs to.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::parse::{err, is_objdump_noise, is_register_name, strip_comment, Code, Maps, DIRECTIVES};
use super::AsmError;
use crate::context::ProgType;
use crate::exec::{Input, MAX_ARRAY_BYTES, MAX_MAP_ENTRIES};
use crate::insn::Insn;
use crate::program::{Program, ProgramError, MAX_STACK};
use crate::set::{
    map_value_parts, ArrayMap, AttachKind, AttachTarget, Attachment, ProgArray, ProgramSet, SetProgram,
    PSEUDO_MAP_FD, PSEUDO_MAP_VALUE,
};

/// The largest context `.ctx` may declare, in bytes.
pub const MAX_CTX_SIZE: usize = 65536;

/// The name of the program made of the instructions that come before any `.prog`.
pub const DEFAULT_PROG_NAME: &str = "entry";

/// A program set read from text, with the context its `.ctx` directive declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetFile {
    /// The programs (the first is the entry) and prog-array maps.
    pub set: ProgramSet,
    /// The input of the run the text declares (`.ctx`); `None` when it has no `.ctx`.
    pub ctx: Option<Input>,
}

/// What a text is read as, which decides which directives it may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// Bare instructions ([`super::parse`]): no jitdiff directives.
    Insns,
    /// One program ([`super::parse_program`]): `.stack` only.
    Program,
    /// A program set ([`parse_set`]): every directive.
    Set,
}

/// Parses a program set (see [`crate::asm`] for the format). A text without
/// directives is a set of one program named `entry`, with no maps and `ctx` `None`.
///
/// Errors name the line and column: malformed or misplaced directives, unknown or
/// duplicate names, slot indexes out of range, and every error [`super::parse_program`]
/// reports, at the line of the offending instruction. Never panics.
pub fn parse_set(text: &str) -> Result<SetFile, AsmError> {
    Source::run(text, Mode::Set)?.into_set()
}

/// An attachment declared by `.fentry`/`.fexit`: its kind, the program it traces (name,
/// line, column), and the function's number there.
struct AttachDecl {
    kind: AttachKind,
    target: (String, usize, usize),
    func: usize,
}

/// A map declared by `.map`.
struct MapDecl {
    line: usize,
    /// For each slot, the program named by its `.slot`: (name, line, column).
    slots: Vec<Option<(String, usize, usize)>>,
}

/// A whole text as it is read.
pub(super) struct Source {
    mode: Mode,
    codes: Vec<Code>,
    maps: Maps,
    map_decls: Vec<MapDecl>,
    /// Array maps declared by `.array`: (line, value size, initial values).
    array_decls: Vec<(usize, u32, Vec<u8>)>,
    /// The `.ctx` and its line.
    ctx: Option<(Input, usize)>,
    /// The `.progtype` and its line.
    prog_type: Option<(ProgType, usize)>,
    /// Whether the first program is the implicit `entry` (instructions before any `.prog`).
    implicit_entry: bool,
    /// For each code that `.fentry`/`.fexit` started, its index and declaration.
    attach_decls: Vec<(usize, AttachDecl)>,
}

/// The words of a line with their 1-based character columns.
fn words(line: &str) -> Vec<(&str, usize)> {
    let mut out = Vec::new();
    let mut start: Option<(usize, usize)> = None;
    let mut col = 0;
    for (i, c) in line.char_indices() {
        col += 1;
        match (c.is_whitespace(), start) {
            (true, Some((s, scol))) => {
                out.push((&line[s..i], scol));
                start = None;
            }
            (false, None) => start = Some((i, col)),
            _ => {}
        }
    }
    if let Some((s, scol)) = start {
        out.push((&line[s..], scol));
    }
    out
}

/// Whether `name` can name a program or a map: letters, digits, `_` and `.`, not
/// starting with a digit or `.`, and not a register name.
pub(super) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !is_register_name(name)
}

/// A decimal or `0x` hex number without sign.
fn number(word: &str) -> Option<u64> {
    match word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        Some(h) if !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u64::from_str_radix(h, 16).ok()
        }
        Some(_) => None,
        None if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) => word.parse().ok(),
        None => None,
    }
}

/// The directive a misspelled one was probably meant to be (`.slots`, `.Prog`).
fn near_miss(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if lower == ".context" {
        return Some(".ctx");
    }
    DIRECTIVES.into_iter().find(|d| lower.starts_with(d))
}

impl Source {
    pub(super) fn run(text: &str, mode: Mode) -> Result<Source, AsmError> {
        let mut s = Source {
            mode,
            codes: Vec::new(),
            maps: Maps { names: Vec::new(), index: HashMap::new() },
            array_decls: Vec::new(),
            map_decls: Vec::new(),
            ctx: None,
            prog_type: None,
            implicit_entry: false,
            attach_decls: Vec::new(),
        };
        for (n, raw) in text.lines().enumerate() {
            s.line(n + 1, raw)?;
        }
        if let Some(code) = s.codes.last_mut() {
            code.finish()?;
        }
        Ok(s)
    }

    /// The programs read, in order, each finished (labels resolved).
    pub(super) fn into_codes(self) -> Vec<Code> {
        self.codes
    }

    fn line(&mut self, lineno: usize, raw: &str) -> Result<(), AsmError> {
        let line = strip_comment(raw);
        let trimmed = line.trim();
        if trimmed.is_empty() || is_objdump_noise(trimmed) {
            return Ok(());
        }
        // A directive, but not a label (`.Ltmp0:`).
        if trimmed.starts_with('.') && !trimmed.split_whitespace().next().unwrap_or("").contains(':') {
            return self.directive(lineno, line);
        }
        let maps = if self.mode == Mode::Set { Some(&self.maps) } else { None };
        if self.codes.is_empty() {
            let col = line.chars().take_while(|c| c.is_whitespace()).count() + 1;
            self.codes.push(Code::new(DEFAULT_PROG_NAME.to_string(), lineno, col));
            self.implicit_entry = true;
        }
        match self.codes.last_mut() {
            Some(code) => code.line(lineno, line, maps),
            None => Ok(()),
        }
    }

    fn directive(&mut self, lineno: usize, line: &str) -> Result<(), AsmError> {
        let w = words(line);
        let Some(&(name, col)) = w.first() else { return Ok(()) };
        let args = &w[1..];
        if !DIRECTIVES.contains(&name) {
            return match near_miss(name) {
                Some(d) => Err(err(lineno, col, format!("unknown directive `{name}` (did you mean `{d}`?)"))),
                None => Ok(()), // an assembler directive such as `.text`: ignored
            };
        }
        match (self.mode, name) {
            (Mode::Set, _) | (Mode::Program, ".stack") => {}
            (Mode::Insns, ".stack") => {
                return Err(err(
                    lineno,
                    col,
                    "`.stack` sets a program's stack depth: read this text with parse_program or parse_set",
                ))
            }
            _ => {
                return Err(err(
                    lineno,
                    col,
                    format!("`{name}` is program-set syntax: read this text with parse_set (bpf::load::load_set_file)"),
                ))
            }
        }
        let malformed = |usage: &str| err(lineno, col, format!("malformed `{name}`: expected `{usage}`"));
        if matches!(name, ".progtype" | ".ctx" | ".map" | ".array" | ".slot") {
            if let Some(first) = self.codes.first() {
                return Err(err(
                    lineno,
                    col,
                    format!(
                        "`{name}` must come before the first program (program `{}` starts on line {})",
                        first.name, first.line
                    ),
                ));
            }
        }
        match name {
            ".ctx" => self.ctx_directive(lineno, col, args),
            ".progtype" => {
                let [(t, tcol)] = *args else { return Err(malformed(".progtype tc|socket|buffer")) };
                if let Some((_, first)) = self.prog_type {
                    return Err(err(
                        lineno,
                        col,
                        format!("duplicate `.progtype` (the first is on line {first})"),
                    ));
                }
                let Some(t) = ProgType::from_name(t) else {
                    return Err(err(
                        lineno,
                        tcol,
                        format!("unknown program type {t:?}: expected tc, socket or buffer"),
                    ));
                };
                self.prog_type = Some((t, lineno));
                Ok(())
            }
            ".map" => {
                let [(map, mcol), (n, ncol)] = *args else {
                    return Err(malformed(".map NAME MAX_ENTRIES"));
                };
                self.check_name(lineno, mcol, map, "map")?;
                if let Some((first, _, _)) = self.array_decls.first() {
                    return Err(err(
                        lineno,
                        col,
                        format!("`.map` must come before every `.array` (prog arrays are numbered first; an `.array` is on line {first})"),
                    ));
                }
                if let Some(&i) = self.maps.index.get(map) {
                    let first = self.map_decls[i].line;
                    return Err(err(
                        lineno,
                        mcol,
                        format!("duplicate map `{map}` (first declared on line {first})"),
                    ));
                }
                let entries = number(n).ok_or_else(|| {
                    err(lineno, ncol, format!("malformed `.map`: max_entries {n:?} is not a number"))
                })?;
                if entries == 0 || entries > u64::from(MAX_MAP_ENTRIES) {
                    return Err(err(
                        lineno,
                        ncol,
                        format!("max_entries {entries} is out of range (1 to {MAX_MAP_ENTRIES})"),
                    ));
                }
                self.maps.index.insert(map.to_string(), self.maps.names.len());
                self.maps.names.push(map.to_string());
                self.map_decls.push(MapDecl { line: lineno, slots: vec![None; entries as usize] });
                Ok(())
            }
            ".array" => {
                let (&[(map, mcol), (vs, vcol), (n, ncol)], rest) = args.split_at(args.len().min(3)) else {
                    return Err(malformed(".array NAME VALUE_SIZE MAX_ENTRIES [hex BYTES...]"));
                };
                self.check_name(lineno, mcol, map, "map")?;
                if self.maps.index.contains_key(map) {
                    return Err(err(lineno, mcol, format!("duplicate map `{map}`")));
                }
                let value_size = number(vs).filter(|v| (1..=4096).contains(v)).ok_or_else(|| {
                    err(lineno, vcol, format!("value size {vs:?} is not a number from 1 to 4096"))
                })?;
                let entries = number(n)
                    .filter(|&e| e >= 1 && e * value_size <= MAX_ARRAY_BYTES as u64)
                    .ok_or_else(|| {
                        err(
                            lineno,
                            ncol,
                            format!(
                                "max_entries {n:?} is not a number from 1 to {}",
                                MAX_ARRAY_BYTES as u64 / value_size
                            ),
                        )
                    })?;
                let mut values = vec![0u8; (value_size * entries) as usize];
                match rest {
                    [] => {}
                    [("hex", _), bytes @ ..] if !bytes.is_empty() => {
                        let hex: String = bytes.iter().map(|(b, _)| *b).collect();
                        let init = parse_hex_bytes(&hex)
                            .ok_or_else(|| err(lineno, bytes[0].1, format!("{hex:?} is not hex bytes")))?;
                        if init.len() > values.len() {
                            return Err(err(
                                lineno,
                                bytes[0].1,
                                format!(
                                    "{} initial bytes do not fit the map's {} bytes",
                                    init.len(),
                                    values.len()
                                ),
                            ));
                        }
                        values[..init.len()].copy_from_slice(&init);
                    }
                    _ => return Err(malformed(".array NAME VALUE_SIZE MAX_ENTRIES [hex BYTES...]")),
                }
                self.maps.index.insert(map.to_string(), self.maps.names.len());
                self.maps.names.push(map.to_string());
                self.array_decls.push((lineno, value_size as u32, values));
                Ok(())
            }
            ".slot" => {
                let [(map, mcol), (idx, icol), (prog, pcol)] = *args else {
                    return Err(malformed(".slot MAP INDEX PROGRAM"));
                };
                if self.maps.index.get(map).is_some_and(|&m| m >= self.map_decls.len()) {
                    return Err(err(
                        lineno,
                        mcol,
                        format!("map `{map}` is an array map: only prog arrays have slots"),
                    ));
                }
                let Some(&m) = self.maps.index.get(map) else {
                    return Err(err(
                        lineno,
                        mcol,
                        format!("`.slot` names map `{map}`, which is not declared (yet): `.map {map} N` must come before its `.slot`s"),
                    ));
                };
                let slot = number(idx).ok_or_else(|| {
                    err(lineno, icol, format!("malformed `.slot`: slot index {idx:?} is not a number"))
                })?;
                let decl = &mut self.map_decls[m];
                let n = decl.slots.len();
                let Some(entry) = usize::try_from(slot).ok().and_then(|s| decl.slots.get_mut(s)) else {
                    return Err(err(
                        lineno,
                        icol,
                        format!("slot index {slot} is out of range: map `{map}` has max_entries {n} (slots 0 to {})", n - 1),
                    ));
                };
                if let Some((_, first, _)) = entry {
                    return Err(err(
                        lineno,
                        icol,
                        format!("slot {slot} of map `{map}` is already set on line {first}"),
                    ));
                }
                if !valid_name(prog) {
                    return Err(err(lineno, pcol, format!("invalid program name {prog:?}")));
                }
                *entry = Some((prog.to_string(), lineno, pcol));
                Ok(())
            }
            ".fentry" | ".fexit" => {
                let [(prog, pcol), (target, tcol)] = *args else {
                    return Err(malformed(&format!("{name} NAME PROG[:FUNCTION]")));
                };
                if self.codes.is_empty() {
                    return Err(err(
                        lineno,
                        col,
                        format!("`{name}` cannot start a set: the first program is the entry, attachments come after it"),
                    ));
                }
                let (target_prog, func) = match target.split_once(':') {
                    None => (target, 0),
                    Some((p, f)) => match f.parse::<usize>() {
                        Ok(f) => (p, f),
                        Err(_) => {
                            return Err(err(
                                lineno,
                                tcol,
                                format!("malformed `{name}` target {target:?}: expected PROG or PROG:FUNCTION (a function number, 0 = main)"),
                            ))
                        }
                    },
                };
                self.check_name(lineno, tcol, target_prog, "program")?;
                self.directive(lineno, &format!("{}.prog {prog}", " ".repeat(pcol.saturating_sub(7))))?;
                let kind = if name == ".fentry" { AttachKind::Fentry } else { AttachKind::Fexit };
                let decl = AttachDecl { kind, target: (target_prog.to_string(), lineno, tcol), func };
                self.attach_decls.push((self.codes.len() - 1, decl));
                Ok(())
            }
            ".prog" => {
                let [(prog, pcol)] = *args else {
                    return Err(malformed(".prog NAME"));
                };
                self.check_name(lineno, pcol, prog, "program")?;
                if let Some(first) = self.codes.iter().find(|c| c.name == prog) {
                    let implicit = if prog == DEFAULT_PROG_NAME && self.implicit_entry {
                        " (the instructions before the first `.prog` form the program `entry`)"
                    } else {
                        ""
                    };
                    return Err(err(
                        lineno,
                        pcol,
                        format!("duplicate program `{prog}` (first on line {}){implicit}", first.line),
                    ));
                }
                if let Some(code) = self.codes.last_mut() {
                    code.finish()?;
                }
                self.codes.push(Code::new(prog.to_string(), lineno, col));
                Ok(())
            }
            _ => {
                let [(n, ncol)] = *args else {
                    return Err(malformed(".stack DEPTH"));
                };
                let depth = number(n).ok_or_else(|| {
                    err(lineno, ncol, format!("malformed `.stack`: depth {n:?} is not a number"))
                })?;
                if depth > u64::from(MAX_STACK) {
                    return Err(err(
                        lineno,
                        ncol,
                        format!("stack depth {depth} is out of range (0 to {MAX_STACK})"),
                    ));
                }
                if self.codes.is_empty() {
                    self.codes.push(Code::new(DEFAULT_PROG_NAME.to_string(), lineno, col));
                    self.implicit_entry = true;
                }
                match self.codes.last_mut() {
                    Some(code) => code.declare_stack(depth as u32, lineno, col),
                    None => Ok(()),
                }
            }
        }
    }

    fn check_name(&self, line: usize, col: usize, name: &str, what: &str) -> Result<(), AsmError> {
        if valid_name(name) {
            return Ok(());
        }
        Err(err(
            line,
            col,
            format!("invalid {what} name {name:?}: names are letters, digits, `_` and `.`, start with a letter or `_`, and are not register names"),
        ))
    }

    fn ctx_directive(&mut self, line: usize, col: usize, args: &[(&str, usize)]) -> Result<(), AsmError> {
        if let Some((_, first)) = self.ctx {
            return Err(err(line, col, format!("duplicate `.ctx` (the first is on line {first})")));
        }
        let usage =
            "malformed `.ctx`: expected `.ctx none`, `.ctx SIZE`, `.ctx hex BYTES` or `.ctx SIZE hex BYTES`";
        let size = |(w, c): (&str, usize)| -> Result<usize, AsmError> {
            let n = number(w).ok_or_else(|| err(line, c, usage))?;
            if n > MAX_CTX_SIZE as u64 {
                return Err(err(
                    line,
                    c,
                    format!("context size {n} is too large (at most {MAX_CTX_SIZE} bytes)"),
                ));
            }
            Ok(n as usize)
        };
        let hex = |ws: &[(&str, usize)]| -> Result<Vec<u8>, AsmError> {
            let Some(&(_, after)) = ws.first() else {
                return Err(err(line, col, "`.ctx hex` needs the bytes, e.g. `.ctx hex 01000000`"));
            };
            let mut bytes = Vec::new();
            for &(w, c) in ws {
                if !w.len().is_multiple_of(2) || !w.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(err(line, c, format!("{w:?} is not hex bytes (two hex digits per byte)")));
                }
                bytes.extend(
                    (0..w.len()).step_by(2).filter_map(|i| u8::from_str_radix(&w[i..i + 2], 16).ok()),
                );
                if bytes.len() > MAX_CTX_SIZE {
                    return Err(err(
                        line,
                        after,
                        format!("the context is too large (at most {MAX_CTX_SIZE} bytes)"),
                    ));
                }
            }
            Ok(bytes)
        };
        let input = match args {
            [("none", _)] => Input::none(),
            [("hex", _), rest @ ..] => Input::with_ctx(hex(rest)?),
            [n] => Input::with_ctx(vec![0; size(*n)?]),
            [n, ("hex", _), rest @ ..] => {
                let len = size(*n)?;
                let mut bytes = hex(rest)?;
                if bytes.len() > len {
                    return Err(err(
                        line,
                        n.1,
                        format!("the context has size {len} but {} bytes are given", bytes.len()),
                    ));
                }
                bytes.resize(len, 0);
                Input::with_ctx(bytes)
            }
            _ => return Err(err(line, col, usage)),
        };
        self.ctx = Some((input, line));
        Ok(())
    }

    /// Checks and assembles the whole set.
    fn into_set(self) -> Result<SetFile, AsmError> {
        if self.codes.is_empty() {
            return Err(err(1, 1, ProgramError::Empty.to_string()));
        }
        let attached: Vec<usize> = self.attach_decls.iter().map(|(c, _)| *c).collect();
        let names: Vec<String> = self
            .codes
            .iter()
            .enumerate()
            .filter(|(i, _)| !attached.contains(i))
            .map(|(_, c)| c.name.clone())
            .collect();
        let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let mut maps = Vec::with_capacity(self.map_decls.len());
        for (decl, name) in self.map_decls.iter().zip(&self.maps.names) {
            let mut slots = Vec::with_capacity(decl.slots.len());
            for s in &decl.slots {
                slots.push(match s {
                    None => None,
                    Some((prog, line, col)) => match index.get(prog.as_str()) {
                        Some(&i) => Some(i),
                        None => {
                            return Err(err(
                                *line,
                                *col,
                                format!(
                                    "unknown program `{prog}` (the set's programs: {})",
                                    names.join(", ")
                                ),
                            ))
                        }
                    },
                });
            }
            maps.push(ProgArray { name: name.clone(), slots });
        }
        let arrays: Vec<ArrayMap> = self
            .array_decls
            .iter()
            .zip(&self.maps.names[self.map_decls.len()..])
            .map(|((_, value_size, values), name)| ArrayMap {
                name: name.clone(),
                value_size: *value_size,
                values: values.clone(),
            })
            .collect();
        let map_count = maps.len() + arrays.len();
        let mut progs = Vec::with_capacity(self.codes.len());
        // Per program, the instructions that start a function with a declared `.stack`.
        let mut declared_stacks = Vec::with_capacity(self.codes.len());
        let mut attachment_progs = Vec::new();
        for (i, code) in self.codes.into_iter().enumerate() {
            let mut pc = 0;
            for insn in &code.insns {
                if let Insn::LdImm64 { pseudo: PSEUDO_MAP_FD, imm, .. } = *insn {
                    if imm >= map_count as u64 {
                        let (line, col) = code.at_pc(pc).unwrap_or((code.line, code.col));
                        return Err(err(
                            line,
                            col,
                            format!(
                                "map index {imm} does not exist (the set declares {map_count} map{})",
                                if map_count == 1 { "" } else { "s" }
                            ),
                        ));
                    }
                }
                pc += insn.slots();
            }
            if code.insns.is_empty() {
                return Err(err(code.line, code.col, format!("program `{}` has no instructions", code.name)));
            }
            let (line, col) = (code.line, code.col);
            let declared: Vec<usize> = code.stacks.iter().map(|s| s.insn).collect();
            let program = SetProgram { name: code.name.clone(), prog: code.program()? };
            match attached.contains(&i) {
                true => attachment_progs.push((program, line, col)),
                false => {
                    progs.push(program);
                    declared_stacks.push(declared);
                }
            }
        }
        let mut attachments = Vec::with_capacity(attachment_progs.len());
        for ((program, line, col), (_, decl)) in attachment_progs.into_iter().zip(self.attach_decls) {
            let (target, tline, tcol) = decl.target;
            let Some(&prog) = index.get(target.as_str()) else {
                return Err(err(
                    tline,
                    tcol,
                    format!("unknown program `{target}` (the set's programs: {})", names.join(", ")),
                ));
            };
            let functions = progs[prog].prog.function_starts().len();
            if decl.func >= functions {
                return Err(err(
                    tline,
                    tcol,
                    format!(
                        "program `{target}` has {functions} function(s) (0 = main); there is no function {}",
                        decl.func
                    ),
                ));
            }
            let shape = Program::new(program.prog.insns().to_vec()).ok();
            if shape
                .is_none_or(|p| p.function_starts().len() != 1 || p.insns().iter().any(Insn::is_tail_call))
            {
                return Err(err(
                    line,
                    col,
                    format!(
                        "{} {}: a tracing program is one function without bpf2bpf calls or tail calls",
                        decl.kind.name(),
                        program.name
                    ),
                ));
            }
            attachments.push(Attachment {
                kind: decl.kind,
                target: AttachTarget { prog, func: decl.func },
                program,
            });
        }
        let (prog_type, type_line) = self.prog_type.unwrap_or((ProgType::Buffer, 1));
        if let Some((Some(bytes), line)) = self.ctx.as_ref().map(|(input, line)| (&input.ctx, *line)) {
            prog_type.check_input(bytes).map_err(|e| err(line, 1, e))?;
        }
        let mut set = ProgramSet::with_arrays(progs, maps, arrays)
            .and_then(|s| s.with_attachments(attachments))
            .map_err(|e| err(1, 1, e.to_string()))?
            .with_prog_type(prog_type)
            .map_err(|e| err(type_line, 1, e.to_string()))?;
        // Functions without `.stack` get the depth the kernel's verifier computes, where the
        // validator can follow the program (else [`Program::new`]'s estimate stays).
        let ctx_size = self.ctx.as_ref().map(|(input, _)| input.ctx.as_ref().map_or(0, Vec::len));
        for (p, declared) in declared_stacks.iter().enumerate() {
            let Ok(depths) = crate::validate::stack_depths(&set, p, ctx_size) else { continue };
            let prog = &set.progs()[p].prog;
            let starts = prog.function_starts();
            let merged: Vec<u32> = (0..starts.len())
                .map(|f| if declared.contains(&starts[f]) { prog.function_stack_depth(f) } else { depths[f] })
                .collect();
            // Never above MAX_STACK, one per function: this cannot fail.
            let _ = set.set_stack_depths(p, merged);
        }
        Ok(SetFile { set, ctx: self.ctx.map(|(input, _)| input) })
    }
}

/// Bytes from hex digits (an even number of them), or `None`.
fn parse_hex_bytes(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect()
}

/// Names to print: each name as it is when it is valid and not taken by an earlier one,
/// else `{prefix}{index}` (made unique with trailing `_`).
fn printable_names<'a>(names: impl Iterator<Item = &'a str>, prefix: &str) -> Vec<String> {
    let names: Vec<&str> = names.collect();
    let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut keep = vec![false; names.len()];
    for (i, n) in names.iter().enumerate() {
        if valid_name(n) && taken.insert(n.to_string()) {
            keep[i] = true;
        }
    }
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if keep[i] {
                return n.to_string();
            }
            let mut name = format!("{prefix}{i}");
            while !taken.insert(name.clone()) {
                name.push('_');
            }
            name
        })
        .collect()
}

/// The arguments of the `.ctx` directive that declares `input`.
fn ctx_args(input: &Input) -> String {
    let Some(bytes) = &input.ctx else { return "none".to_string() };
    let used = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let hex: Vec<String> = bytes[..used]
        .chunks(8)
        .map(|c| {
            c.iter().fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
        })
        .collect();
    match used {
        0 => bytes.len().to_string(),
        u if u == bytes.len() => format!("hex {}", hex.join(" ")),
        _ => format!("{} hex {}", bytes.len(), hex.join(" ")),
    }
}

/// A program set (and the context of its run, when given) as text that [`parse_set`]
/// reads back to the same set and context.
///
/// The text starts with `.ctx` (only when `ctx` is given), then one `.map` line per map
/// followed by a `.slot` line per filled slot, then every program, entry first, each
/// under its `.prog` line with its instructions indented. Map references print as
/// `rN = NAME ll`, known helpers by name. A `.stack` line precedes each function whose
/// stack depth is not the one [`Program::new`] infers. A set of one program named
/// `entry` is printed without `.prog`, so a plain program prints as
/// [`super::print_program`] prints its instructions.
///
/// The text reads back to the same set when every program and map name is valid
/// (letters, digits, `_` and `.`, starting with a letter or `_`, not a register name)
/// and unique among programs (maps); other names are printed as `prog<N>` or `map<N>`
/// (`N` its index), and a context larger than [`MAX_CTX_SIZE`] does not read back.
pub fn print_set(set: &ProgramSet, ctx: Option<&Input>) -> String {
    let all_names = printable_names(
        set.progs().iter().chain(set.attachments().iter().map(|a| &a.program)).map(|p| p.name.as_str()),
        "prog",
    );
    let (prog_names, attach_names) = all_names.split_at(set.progs().len());
    let map_names = printable_names(
        set.maps().iter().map(|m| m.name.as_str()).chain(set.arrays().iter().map(|a| a.name.as_str())),
        "map",
    );
    let mut out = String::new();
    if set.prog_type().is_skb() {
        let _ = writeln!(out, ".progtype {}", set.prog_type().name());
    }
    if let Some(input) = ctx {
        let _ = writeln!(out, ".ctx {}", ctx_args(input));
    }
    let ctx_size = ctx.map(|input| input.ctx.as_ref().map_or(0, Vec::len));
    for (m, name) in set.maps().iter().zip(&map_names) {
        let _ = writeln!(out, ".map {name} {}", m.slots.len());
        for (i, slot) in m.slots.iter().enumerate() {
            if let Some(p) = slot {
                let prog = prog_names.get(*p).map_or("?", String::as_str);
                let _ = writeln!(out, ".slot {name} {i} {prog}");
            }
        }
    }
    for (a, name) in set.arrays().iter().zip(&map_names[set.maps().len()..]) {
        let _ = write!(out, ".array {name} {} {}", a.value_size, a.max_entries());
        if let Some(last) = a.values.iter().rposition(|&b| b != 0) {
            out.push_str(" hex");
            for chunk in a.values[..=last].chunks(8) {
                out.push(' ');
                for b in chunk {
                    let _ = write!(out, "{b:02x}");
                }
            }
        }
        out.push('\n');
    }
    let explicit =
        !(set.progs().len() == 1 && prog_names[0] == DEFAULT_PROG_NAME && set.attachments().is_empty());
    let indent = if explicit { "    " } else { "" };
    let headed = set.progs().iter().zip(prog_names).map(|(p, name)| (format!(".prog {name}"), p)).chain(
        set.attachments().iter().zip(attach_names).map(|(a, name)| {
            let target = prog_names.get(a.target.prog).map_or("?", String::as_str);
            let func = if a.target.func == 0 { String::new() } else { format!(":{}", a.target.func) };
            (format!(".{} {name} {target}{func}", a.kind.name()), &a.program)
        }),
    );
    for (i, (header, p)) in headed.enumerate() {
        if i > 0 || !out.is_empty() {
            out.push('\n');
        }
        if explicit {
            let _ = writeln!(out, "{header}");
        }
        let prog = &p.prog;
        // The depths reading the text back would give a function without `.stack`: the
        // verifier's (as parse_set computes them), else the estimate of Program::new.
        let verifier =
            (i < set.progs().len()).then(|| crate::validate::stack_depths(set, i, ctx_size).ok()).flatten();
        let estimate = Program::new(prog.insns().to_vec()).ok();
        let inferred = |f: usize| match &verifier {
            Some(d) => d.get(f).copied(),
            None => estimate.as_ref().map(|q| q.function_stack_depth(f)),
        };
        let starts = prog.function_starts();
        for (j, insn) in prog.insns().iter().enumerate() {
            if let Some(f) = starts.iter().position(|&s| s == j) {
                let depth = prog.function_stack_depth(f);
                if inferred(f) != Some(depth) {
                    let _ = writeln!(out, ".stack {depth}");
                }
            }
            out.push_str(indent);
            match *insn {
                Insn::LdImm64 { dst, pseudo: PSEUDO_MAP_FD, imm } if imm < map_names.len() as u64 => {
                    let _ = write!(out, "{dst} = {} ll", map_names[imm as usize]);
                }
                Insn::LdImm64 { dst, pseudo: PSEUDO_MAP_VALUE, imm }
                    if map_value_parts(imm).0 < map_names.len() as u64 =>
                {
                    let (m, off) = map_value_parts(imm);
                    let plus = if off == 0 { String::new() } else { format!(" + {off}") };
                    let _ = write!(out, "{dst} = &{}{plus} ll", map_names[m as usize]);
                }
                other => {
                    let _ = write!(out, "{other}");
                }
            }
            out.push('\n');
        }
    }
    out
}
