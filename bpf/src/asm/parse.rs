//! Parsing LLVM-syntax BPF assembly (see [`crate::asm`] for the accepted syntax): the
//! instructions of one program. Files, directives and program sets are read by
//! `super::set`, which hands every instruction line to a [`Code`].

use std::collections::HashMap;

use super::lex::{lex, Kind, Token};
use super::print::helper_id;
use super::AsmError;
use crate::insn::{AluOp, AtomicOp, ByteOrder, Call, Cond, Insn, Operand, Reg, Size, SxBits, Width};
use crate::program::{Program, ProgramError};
use crate::raw::decode_bytes;
use crate::set::{map_value_imm, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE};

/// jitdiff's own directives; every other line starting with `.` is an assembler
/// directive (`.text`, `.globl f`, ...) and is ignored.
pub(super) const DIRECTIVES: [&str; 9] =
    [".progtype", ".ctx", ".map", ".array", ".slot", ".prog", ".fentry", ".fexit", ".stack"];

/// The maps a program set declares, for `rN = NAME ll`.
pub(super) struct Maps {
    /// Names in declaration order (the map index).
    pub names: Vec<String>,
    /// Name → index.
    pub index: HashMap<String, usize>,
}

/// How far a label reference may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    /// `goto` and `if ... goto`: 16-bit `off`.
    Short,
    /// `gotol` and local `call`: 32-bit `imm`.
    Long,
}

/// A jump or call target as written.
enum Target<'a> {
    /// An offset and the column where it is written.
    Offset(i64, usize),
    Label(&'a str, usize),
}

/// A label reference to patch once every label is known.
struct Fixup {
    insn: usize,
    label: String,
    line: usize,
    col: usize,
    reach: Reach,
}

/// A pasted `llvm-objdump` line's bytes column, checked after labels are resolved.
struct BytesCheck {
    insn: usize,
    decoded: Insn,
    line: usize,
    col: usize,
}

/// A `.stack` directive: the depth of the function starting at instruction `insn`.
#[derive(Clone, Copy, Debug)]
pub(super) struct StackDecl {
    /// Index of the instruction that follows the directive.
    pub insn: usize,
    /// The declared depth in bytes.
    pub depth: u32,
    /// Line and column of the directive.
    pub line: usize,
    pub col: usize,
}

/// The instructions of one program as they are read, line by line.
pub(super) struct Code {
    /// The program's name (`entry` when the text has no `.prog`).
    pub name: String,
    /// Line and column where the program starts (its `.prog`, or its first line).
    pub line: usize,
    pub col: usize,
    pub insns: Vec<Insn>,
    /// (line, column) of each instruction.
    at: Vec<(usize, usize)>,
    slots: usize,
    /// Label name → (slot, line of definition).
    labels: HashMap<String, (usize, usize)>,
    fixups: Vec<Fixup>,
    checks: Vec<BytesCheck>,
    /// `.stack` directives, in order.
    pub stacks: Vec<StackDecl>,
    /// A `.stack` still waiting for its instruction: (depth, line, column).
    pending_stack: Option<(u32, usize, usize)>,
}

pub(super) fn err(line: usize, column: usize, message: impl Into<String>) -> AsmError {
    AsmError { line, column, message: message.into() }
}

/// The line without its comment (`;`, `#` or `//` to the end).
pub(super) fn strip_comment(line: &str) -> &str {
    let cut = [line.find(';'), line.find('#'), line.find("//")].into_iter().flatten().min();
    match cut {
        Some(i) => &line[..i],
        None => line,
    }
}

fn is_hex_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `llvm-objdump` lines that carry no instruction: the file-format line, section
/// headers, function headers (`0000000000000000 <f>:`) and relocations (`-r`).
pub(super) fn is_objdump_noise(trimmed: &str) -> bool {
    if trimmed.starts_with("Disassembly of section") || trimmed.contains("file format") {
        return true;
    }
    let mut words = trimmed.split_whitespace();
    let first = words.next().unwrap_or("");
    if trimmed.ends_with(">:")
        && (first.starts_with('<')
            || (is_hex_word(first) && trimmed[first.len()..].trim_start().starts_with('<')))
    {
        return true;
    }
    // Relocation: `0000000000000068:  R_BPF_64_64  glob`.
    first.strip_suffix(':').is_some_and(is_hex_word) && words.next().is_some_and(|w| w.starts_with("R_"))
}

/// Whether `b[i]` is whitespace or past the end.
fn space_or_end(b: &[u8], i: usize) -> bool {
    match b.get(i) {
        Some(c) => c.is_ascii_whitespace(),
        None => true,
    }
}

/// Skips an `llvm-objdump` slot number (`  12:`) and hex bytes column (8 or 16 bytes) at
/// the start of a line. Returns the byte index where the text continues and the bytes,
/// with the column of the first byte.
fn objdump_prefix(line: &str) -> (usize, Option<(Vec<u8>, usize)>) {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    let mut j = i;
    while j < b.len() && b[j].is_ascii_digit() {
        j += 1;
    }
    if j > i && j < b.len() && b[j] == b':' && space_or_end(b, j + 1) {
        i = j + 1;
    }
    let after_addr = i;
    let mut bytes = Vec::new();
    let mut first_col = None;
    loop {
        let mut k = i;
        while k < b.len() && b[k].is_ascii_whitespace() {
            k += 1;
        }
        let pair = k + 2 <= b.len()
            && b[k].is_ascii_hexdigit()
            && b[k + 1].is_ascii_hexdigit()
            && space_or_end(b, k + 2);
        if !pair || bytes.len() == 16 {
            break;
        }
        // Both characters are ASCII hex digits, so this slice is on character boundaries.
        let Ok(v) = u8::from_str_radix(&line[k..k + 2], 16) else { break };
        first_col.get_or_insert(k);
        bytes.push(v);
        i = k + 2;
    }
    match first_col {
        Some(k) if bytes.len() == 8 || bytes.len() == 16 => {
            let col = line[..k].chars().count() + 1;
            (i, Some((bytes, col)))
        }
        _ => (after_addr, None),
    }
}

pub(super) fn is_register_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some('r' | 'w')) && s.len() > 1 && c.all(|d| d.is_ascii_digit())
}

impl Code {
    /// An empty program named `name` that starts at `line`, `col`.
    pub(super) fn new(name: String, line: usize, col: usize) -> Code {
        Code {
            name,
            line,
            col,
            insns: Vec::new(),
            at: Vec::new(),
            slots: 0,
            labels: HashMap::new(),
            fixups: Vec::new(),
            checks: Vec::new(),
            stacks: Vec::new(),
            pending_stack: None,
        }
    }

    /// Records a `.stack` directive for the function that starts at the next instruction.
    pub(super) fn declare_stack(&mut self, depth: u32, line: usize, col: usize) -> Result<(), AsmError> {
        if let Some((_, first, _)) = self.pending_stack {
            return Err(err(
                line,
                col,
                format!("a second `.stack` for the same function (the first is on line {first})"),
            ));
        }
        self.pending_stack = Some((depth, line, col));
        Ok(())
    }

    /// Assembles one line, without its comment, that is not a directive: labels and at
    /// most one instruction. `maps` are the maps of a program set (`None` outside one).
    pub(super) fn line(&mut self, lineno: usize, line: &str, maps: Option<&Maps>) -> Result<(), AsmError> {
        let (start, bytes) = objdump_prefix(line);
        let toks = lex(line, start).map_err(|(col, msg)| err(lineno, col, msg))?;
        let mut i = 0;
        while i + 1 < toks.len() && toks[i].kind == Kind::Ident && toks[i + 1].text == ":" {
            self.define_label(lineno, &toks[i])?;
            i += 2;
        }
        let toks = &toks[i..];
        if let Some(t) = toks.first().filter(|t| t.kind == Kind::Ident && t.text.starts_with('.')) {
            if DIRECTIVES.contains(&t.text) {
                return Err(err(lineno, t.col, format!("`{}` must start its line", t.text)));
            }
            return Ok(()); // an assembler directive
        }
        let unknown =
            toks.len() == 3 && toks[0].text == "<" && toks[1].text == "unknown" && toks[2].text == ">";
        if toks.is_empty() || unknown {
            let Some((bytes, col)) = bytes else {
                return if unknown {
                    Err(err(lineno, toks[0].col, "`<unknown>`: llvm-objdump could not print this instruction, and there is no bytes column to read it from"))
                } else {
                    Ok(())
                };
            };
            let insn = decode_column(&bytes).map_err(|m| err(lineno, col, m))?;
            self.push(insn, lineno, col);
            return Ok(());
        }
        let mut p = Parser { toks, i: 0, line: lineno, end_col: line.chars().count() + 1, maps };
        let first_col = toks[0].col;
        let (insn, target) = p.insn()?;
        if let Some((label, col, reach)) = target {
            self.fixups.push(Fixup {
                insn: self.insns.len(),
                label: label.to_string(),
                line: lineno,
                col,
                reach,
            });
        }
        if let Some((bytes, col)) = bytes {
            let decoded = decode_column(&bytes).map_err(|m| err(lineno, col, m))?;
            self.checks.push(BytesCheck { insn: self.insns.len(), decoded, line: lineno, col: first_col });
        }
        self.push(insn, lineno, first_col);
        Ok(())
    }

    fn push(&mut self, insn: Insn, line: usize, col: usize) {
        if let Some((depth, line, col)) = self.pending_stack.take() {
            self.stacks.push(StackDecl { insn: self.insns.len(), depth, line, col });
        }
        self.slots += insn.slots();
        self.insns.push(insn);
        self.at.push((line, col));
    }

    fn define_label(&mut self, line: usize, tok: &Token<'_>) -> Result<(), AsmError> {
        if is_register_name(tok.text) {
            return Err(err(
                line,
                tok.col,
                format!("{:?} is a register name and cannot be a label", tok.text),
            ));
        }
        if helper_id(tok.text).is_some() {
            return Err(err(
                line,
                tok.col,
                format!(
                    "{:?} is a helper name (`call {}` calls the helper) and cannot be a label",
                    tok.text, tok.text
                ),
            ));
        }
        if let Some(&(_, first)) = self.labels.get(tok.text) {
            return Err(err(
                line,
                tok.col,
                format!("duplicate label {:?} (first defined on line {first})", tok.text),
            ));
        }
        self.labels.insert(tok.text.to_string(), (self.slots, line));
        Ok(())
    }

    /// Resolves labels and checks pasted bytes columns, once every line is read.
    pub(super) fn finish(&mut self) -> Result<(), AsmError> {
        if let Some((_, line, col)) = self.pending_stack {
            return Err(err(
                line,
                col,
                "`.stack` must be followed by an instruction: it sets the stack depth of the function that starts there",
            ));
        }
        self.resolve()?;
        self.check_bytes()
    }

    fn resolve(&mut self) -> Result<(), AsmError> {
        let mut slot_of = Vec::with_capacity(self.insns.len());
        let mut s = 0usize;
        for insn in &self.insns {
            slot_of.push(s);
            s += insn.slots();
        }
        for fx in &self.fixups {
            let Some(&(target, _)) = self.labels.get(&fx.label) else {
                return Err(err(fx.line, fx.col, format!("undefined label {:?}", fx.label)));
            };
            let off = target as i64 - (slot_of[fx.insn] as i64 + 1);
            let fits = match fx.reach {
                Reach::Short => i16::try_from(off).is_ok(),
                Reach::Long => i32::try_from(off).is_ok(),
            };
            if !fits {
                let hint = if fx.reach == Reach::Short { " (16 bits; `gotol` reaches 32 bits)" } else { "" };
                return Err(err(
                    fx.line,
                    fx.col,
                    format!("jump offset out of range: label {:?} is {off} slots away{hint}", fx.label),
                ));
            }
            let insn = &mut self.insns[fx.insn];
            match insn {
                Insn::Ja { off: o } | Insn::Jmp { off: o, .. } => *o = off as i16,
                Insn::JaLong { off: o } | Insn::Call(Call::Local(o)) => *o = off as i32,
                _ => {}
            }
        }
        Ok(())
    }

    /// Reconciles pasted `llvm-objdump` text with its bytes column.
    fn check_bytes(&mut self) -> Result<(), AsmError> {
        for c in &self.checks {
            let text = self.insns[c.insn];
            let fill_in = match (text, c.decoded) {
                // LLVM prints helper, local and kfunc calls all as `call N`.
                (Insn::Call(Call::Helper(n)), Insn::Call(Call::Local(m) | Call::Kfunc(m))) => n == m,
                // LLVM prints only the low half of an `ld_pseudo`'s immediate.
                (Insn::LdImm64 { dst, pseudo, imm }, Insn::LdImm64 { dst: d2, pseudo: p2, imm: i2 }) => {
                    pseudo != 0 && dst == d2 && pseudo == p2 && imm == i2 & 0xffff_ffff
                }
                _ => false,
            };
            if fill_in {
                self.insns[c.insn] = c.decoded;
            } else if text != c.decoded {
                return Err(err(
                    c.line,
                    c.col,
                    format!("the text says `{text}` but the bytes column encodes `{}`", c.decoded),
                ));
            }
        }
        Ok(())
    }

    /// The (line, column) of the instruction at slot `pc`, if there is one.
    pub(super) fn at_pc(&self, pc: usize) -> Option<(usize, usize)> {
        let mut slot = 0;
        for (i, insn) in self.insns.iter().enumerate() {
            if slot == pc {
                return self.at.get(i).copied();
            }
            slot += insn.slots();
        }
        None
    }

    /// Checks the finished instructions as a program, with the declared stack depths.
    /// Problems are reported at the offending instruction or directive.
    pub(super) fn program(self) -> Result<Program, AsmError> {
        if self.insns.is_empty() {
            return Err(err(self.line, self.col, ProgramError::Empty.to_string()));
        }
        let mut program = Program::new(self.insns.clone()).map_err(|e| {
            let pc = match e {
                ProgramError::JumpOutOfRange { pc, .. }
                | ProgramError::FallsOffEnd { pc }
                | ProgramError::WritesFramePointer { pc }
                | ProgramError::JumpAcrossFunctions { pc, .. } => Some(pc),
                _ => None,
            };
            let (line, column) = pc.and_then(|pc| self.at_pc(pc)).unwrap_or((self.line, self.col));
            err(line, column, e.to_string())
        })?;
        if self.stacks.is_empty() {
            return Ok(program);
        }
        let starts = program.function_starts();
        let mut depths: Vec<u32> = (0..starts.len()).map(|f| program.function_stack_depth(f)).collect();
        for s in &self.stacks {
            let Some(f) = starts.iter().position(|&i| i == s.insn) else {
                let (line, _) = self.at[s.insn];
                return Err(err(
                    s.line,
                    s.col,
                    format!(
                        "`.stack` sets the depth of the function that starts at the next instruction, but the instruction on line {line} does not start a function (functions start at a program's first instruction and at every bpf2bpf call target)"
                    ),
                ));
            };
            depths[f] = s.depth;
        }
        program.set_stack_depths(depths).map_err(|e| err(self.line, self.col, e.to_string()))?;
        Ok(program)
    }
}

/// Decodes an `llvm-objdump` bytes column: exactly one instruction.
fn decode_column(bytes: &[u8]) -> Result<Insn, String> {
    let insns =
        decode_bytes(bytes).map_err(|e| format!("the bytes column does not decode: {}", e.problem))?;
    match insns.as_slice() {
        [one] if one.slots() * 8 == bytes.len() => Ok(*one),
        _ => Err(format!("the bytes column holds {} bytes, which is not one instruction", bytes.len())),
    }
}

fn alu_op(s: &str) -> Option<AluOp> {
    Some(match s {
        "+=" => AluOp::Add,
        "-=" => AluOp::Sub,
        "*=" => AluOp::Mul,
        "/=" => AluOp::Div,
        "s/=" => AluOp::Sdiv,
        "%=" => AluOp::Mod,
        "s%=" => AluOp::Smod,
        "|=" => AluOp::Or,
        "&=" => AluOp::And,
        "^=" => AluOp::Xor,
        "<<=" => AluOp::Lsh,
        ">>=" => AluOp::Rsh,
        "s>>=" => AluOp::Arsh,
        _ => return None,
    })
}

fn cond_of(s: &str) -> Option<Cond> {
    Cond::ALL.into_iter().find(|c| c.symbol() == s)
}

fn size_of_bits(bits: &str) -> Option<Size> {
    Some(match bits {
        "8" => Size::B,
        "16" => Size::H,
        "32" => Size::W,
        "64" => Size::DW,
        _ => return None,
    })
}

const I32: (i128, i128) = (i32::MIN as i128, i32::MAX as i128);
/// 32-bit immediates of 32-bit operations: signed or unsigned spelling of the same bits.
const B32: (i128, i128) = (i32::MIN as i128, u32::MAX as i128);

/// A label reference produced by one instruction: (label, column, reach).
type LabelRef<'a> = Option<(&'a str, usize, Reach)>;

struct Parser<'t, 'a> {
    toks: &'t [Token<'a>],
    i: usize,
    line: usize,
    end_col: usize,
    /// The maps of the program set being read (`None` outside a set).
    maps: Option<&'t Maps>,
}

impl<'a> Parser<'_, 'a> {
    fn err(&self, col: usize, msg: impl Into<String>) -> AsmError {
        err(self.line, col, msg)
    }

    fn peek(&self) -> Option<Token<'a>> {
        self.toks.get(self.i).copied()
    }

    fn peek_text(&self) -> &'a str {
        self.peek().map_or("", |t| t.text)
    }

    /// Column of the next token, or just past the end of the line.
    fn col(&self) -> usize {
        self.peek().map_or(self.end_col, |t| t.col)
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(t) => format!("found {:?}", t.text),
            None => "found the end of the line".to_string(),
        }
    }

    fn eat(&mut self, text: &str) -> bool {
        if self.peek_text() == text && self.peek().is_some() {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, text: &str) -> Result<(), AsmError> {
        if self.eat(text) {
            Ok(())
        } else {
            Err(self.err(self.col(), format!("expected `{text}`, {}", self.found())))
        }
    }

    fn end(&self) -> Result<(), AsmError> {
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(self.err(t.col, format!("unexpected {:?} after the instruction", t.text))),
        }
    }

    fn at_register(&self) -> bool {
        self.peek().is_some_and(|t| t.kind == Kind::Ident && is_register_name(t.text))
    }

    /// Any register: (register, is it a `w` register, column).
    fn reg_any(&mut self) -> Result<(Reg, bool, usize), AsmError> {
        let col = self.col();
        match self.peek() {
            Some(t) if t.kind == Kind::Ident && is_register_name(t.text) => {
                let n = t.text[1..].parse::<u8>().ok().and_then(Reg::new);
                let Some(r) = n else {
                    return Err(self.err(col, format!("there is no register {:?} (r0 to r10)", t.text)));
                };
                self.i += 1;
                Ok((r, t.text.starts_with('w'), col))
            }
            _ => Err(self.err(col, format!("expected a register, {}", self.found()))),
        }
    }

    /// A register of the given width (`w` for 32 bits, `r` for 64).
    fn reg(&mut self, w32: bool) -> Result<Reg, AsmError> {
        let (r, w, col) = self.reg_any()?;
        if w != w32 {
            let (want, found) = if w32 {
                ("a 32-bit register (w0 to w10)", 'r')
            } else {
                ("a 64-bit register (r0 to r10)", 'w')
            };
            return Err(self.err(col, format!("expected {want}, found \"{found}{}\"", r.num())));
        }
        Ok(r)
    }

    /// A number with optional sign: (value, column).
    fn number(&mut self) -> Result<(i128, usize), AsmError> {
        let col = self.col();
        let neg = if self.eat("-") {
            true
        } else {
            self.eat("+");
            false
        };
        let Some(t) = self.peek().filter(|t| t.kind == Kind::Num) else {
            return Err(self.err(self.col(), format!("expected a number, {}", self.found())));
        };
        let (digits, radix) = match t.text.strip_prefix("0x").or_else(|| t.text.strip_prefix("0X")) {
            Some(h) => (h, 16),
            None => (t.text, 10),
        };
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return Err(self.err(t.col, format!("invalid number {:?}", t.text)));
        }
        let v = u128::from_str_radix(digits, radix)
            .ok()
            .filter(|&v| v <= u64::MAX as u128)
            .ok_or_else(|| self.err(t.col, format!("number {:?} is too large", t.text)))?;
        self.i += 1;
        let v = v as i128;
        Ok((if neg { -v } else { v }, col))
    }

    fn in_range(
        &self,
        (v, col): (i128, usize),
        (lo, hi): (i128, i128),
        what: &str,
    ) -> Result<i128, AsmError> {
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(self.err(col, format!("{what} {v} is out of range ({lo} to {hi})")))
        }
    }

    /// A 32-bit immediate: sign-extended for 64-bit operations, either spelling for 32-bit ones.
    fn imm32(&mut self, w32: bool) -> Result<i32, AsmError> {
        let n = self.number()?;
        self.imm32_of(n, w32)
    }

    fn imm32_of(&self, n: (i128, usize), w32: bool) -> Result<i32, AsmError> {
        if w32 {
            Ok(self.in_range(n, B32, "immediate")? as u32 as i32)
        } else if (I32.0..=I32.1).contains(&n.0) {
            Ok(n.0 as i32)
        } else {
            Err(self.err(
                n.1,
                format!(
                    "immediate {} does not fit in 32 bits (64-bit operations sign-extend a 32-bit immediate; a 64-bit constant needs `rN = {} ll`)",
                    n.0, n.0
                ),
            ))
        }
    }

    fn operand(&mut self, w32: bool) -> Result<Operand, AsmError> {
        if self.at_register() {
            Ok(Operand::Reg(self.reg(w32)?))
        } else if self.peek().is_some_and(|t| t.kind == Kind::Num || matches!(t.text, "-" | "+")) {
            Ok(Operand::Imm(self.imm32(w32)?))
        } else {
            Err(self.err(self.col(), format!("expected a register or a number, {}", self.found())))
        }
    }

    /// An instruction and the label it refers to, if any.
    fn insn(&mut self) -> Result<(Insn, LabelRef<'a>), AsmError> {
        let Some(first) = self.peek() else {
            return Err(self.err(self.end_col, "expected an instruction"));
        };
        let r = match first.text {
            "exit" if first.kind == Kind::Ident => {
                self.i += 1;
                (Insn::Exit, None)
            }
            "tail_call" => {
                self.i += 1;
                (Insn::TailCall, None)
            }
            "goto" | "gotol" => {
                self.i += 1;
                let long = first.text == "gotol";
                match self.target()? {
                    Target::Offset(o, c) if long => (Insn::JaLong { off: self.offset32(o, c)? }, None),
                    Target::Offset(o, c) => (Insn::Ja { off: self.offset16(o, c)? }, None),
                    Target::Label(l, col) if long => (Insn::JaLong { off: 0 }, Some((l, col, Reach::Long))),
                    Target::Label(l, col) => (Insn::Ja { off: 0 }, Some((l, col, Reach::Short))),
                }
            }
            "if" => {
                self.i += 1;
                self.cond_jump()?
            }
            "call" => {
                self.i += 1;
                self.call()?
            }
            "lock" => {
                self.i += 1;
                (self.lock()?, None)
            }
            "ld_pseudo" => {
                self.i += 1;
                (self.ld_pseudo()?, None)
            }
            "*" => (self.store()?, None),
            _ if self.at_register() => (self.assignment()?, None),
            _ if first.kind == Kind::Ident => {
                return Err(self.err(first.col, format!("unknown mnemonic {:?}", first.text)));
            }
            _ => return Err(self.err(first.col, format!("expected an instruction, found {:?}", first.text))),
        };
        self.end()?;
        Ok(r)
    }

    /// `+N`, `-N` or a label, optionally followed by llvm-objdump's `<LBB0_2>` annotation.
    fn target(&mut self) -> Result<Target<'a>, AsmError> {
        let col = self.col();
        let t = match self.peek() {
            Some(t) if t.text == "+" || t.text == "-" => {
                let (v, _) = self.number()?;
                // Magnitudes beyond i64 are out of range for any offset field anyway.
                Target::Offset(i64::try_from(v).unwrap_or(i64::MAX), col)
            }
            Some(t) if t.kind == Kind::Ident && !is_register_name(t.text) => {
                self.i += 1;
                Target::Label(t.text, col)
            }
            Some(t) if t.kind == Kind::Num => {
                return Err(
                    self.err(col, format!("a jump offset needs its sign: write `+{0}` or `-{0}`", t.text))
                );
            }
            _ => {
                return Err(self
                    .err(col, format!("expected a jump target (`+N`, `-N` or a label), {}", self.found())))
            }
        };
        if self.eat("<") {
            while self.toks.len() - self.i > 1 {
                self.i += 1;
            }
            if !self.eat(">") {
                return Err(self.err(self.col(), "unterminated `<...>` annotation"));
            }
        }
        Ok(t)
    }

    fn offset16(&self, o: i64, col: usize) -> Result<i16, AsmError> {
        i16::try_from(o).map_err(|_| {
            self.err(
                col,
                format!(
                    "jump offset {o} is out of range (16 bits: -32768 to +32767; `gotol` reaches 32 bits)"
                ),
            )
        })
    }

    fn offset32(&self, o: i64, col: usize) -> Result<i32, AsmError> {
        i32::try_from(o).map_err(|_| self.err(col, format!("jump offset {o} is out of range (32 bits)")))
    }

    fn cond_jump(&mut self) -> Result<(Insn, LabelRef<'a>), AsmError> {
        let (dst, w32, _) = self.reg_any()?;
        let col = self.col();
        let Some(cond) = self.peek().and_then(|t| cond_of(t.text)) else {
            return Err(self.err(
                col,
                format!(
                    "expected a comparison (==, !=, >, >=, <, <=, s>, s>=, s<, s<=, &), {}",
                    self.found()
                ),
            ));
        };
        self.i += 1;
        let src = self.operand(w32)?;
        self.expect("goto")?;
        let width = if w32 { Width::W32 } else { Width::W64 };
        Ok(match self.target()? {
            Target::Offset(o, c) => (Insn::Jmp { width, cond, dst, src, off: self.offset16(o, c)? }, None),
            Target::Label(l, c) => (Insn::Jmp { width, cond, dst, src, off: 0 }, Some((l, c, Reach::Short))),
        })
    }

    fn call(&mut self) -> Result<(Insn, LabelRef<'a>), AsmError> {
        let next = self.toks.get(self.i + 1).map(|t| t.text);
        match self.peek() {
            Some(t) if t.text == "pc" && matches!(next, Some("+" | "-")) => {
                self.i += 1;
                let n = self.number()?;
                Ok((Insn::Call(Call::Local(self.in_range(n, I32, "call offset")? as i32)), None))
            }
            Some(t) if t.text == "kfunc" && next == Some(":") => {
                self.i += 2;
                if let Some(id) = self
                    .peek()
                    .filter(|t| t.kind == Kind::Ident)
                    .and_then(|t| crate::helpers::kfunc_named(t.text))
                {
                    self.i += 1;
                    return Ok((Insn::Call(Call::Kfunc(id)), None));
                }
                let n = self.number()?;
                Ok((Insn::Call(Call::Kfunc(self.in_range(n, I32, "kfunc id")? as i32)), None))
            }
            Some(t) if t.kind == Kind::Ident => {
                if let Some(id) = helper_id(t.text) {
                    self.i += 1;
                    return Ok((Insn::Call(Call::Helper(id)), None));
                }
                match self.target()? {
                    Target::Label(l, col) => Ok((Insn::Call(Call::Local(0)), Some((l, col, Reach::Long)))),
                    Target::Offset(..) => Err(self.err(t.col, "expected a call target")),
                }
            }
            Some(t) if t.kind == Kind::Num || matches!(t.text, "-" | "+") => {
                let n = self.number()?;
                Ok((Insn::Call(Call::Helper(self.in_range(n, I32, "helper id")? as i32)), None))
            }
            _ => Err(self.err(
                self.col(),
                format!(
                    "expected a call target (helper id or name, `pc+N`, `kfunc:N` or a label), {}",
                    self.found()
                ),
            )),
        }
    }

    /// `(uN *)` or `(sN *)` after the opening `*` or `(`: (size, signed).
    fn mem_type(&mut self) -> Result<(Size, bool, usize), AsmError> {
        let col = self.col();
        let t = self.peek().map_or("", |t| t.text);
        let parsed = match t.split_at_checked(1) {
            Some(("u", bits)) => size_of_bits(bits).map(|s| (s, false)),
            Some(("s", bits)) => size_of_bits(bits).map(|s| (s, true)),
            _ => None,
        };
        let Some((size, signed)) = parsed else {
            return Err(
                self.err(col, format!("expected a type (u8, u16, u32, u64, s8, s16, s32), {}", self.found()))
            );
        };
        self.i += 1;
        self.expect("*")?;
        self.expect(")")?;
        Ok((size, signed, col))
    }

    /// `rN + off` / `rN - off` (the inside of a memory operand).
    fn mem_inner(&mut self) -> Result<(Reg, i16), AsmError> {
        let base = self.reg(false)?;
        let neg = if self.eat("-") {
            true
        } else if self.eat("+") {
            false
        } else {
            return Ok((base, 0));
        };
        let (v, col) = self.number()?;
        let v = if neg { -v } else { v };
        let off = self.in_range((v, col), (i16::MIN as i128, i16::MAX as i128), "memory offset")?;
        Ok((base, off as i16))
    }

    fn mem(&mut self) -> Result<(Reg, i16), AsmError> {
        self.expect("(")?;
        let m = self.mem_inner()?;
        self.expect(")")?;
        Ok(m)
    }

    /// The value register of a narrow load or store may be `r` or `w`; of a 64-bit one, `r`.
    fn value_reg(&mut self, size: Size) -> Result<Reg, AsmError> {
        if size == Size::DW {
            self.reg(false)
        } else {
            Ok(self.reg_any()?.0)
        }
    }

    fn store(&mut self) -> Result<Insn, AsmError> {
        self.expect("*")?;
        self.expect("(")?;
        let (size, signed, col) = self.mem_type()?;
        if signed {
            return Err(self.err(col, "a store takes an unsigned type (u8, u16, u32 or u64)"));
        }
        let (dst, off) = self.mem()?;
        self.expect("=")?;
        if self.at_register() {
            let src = self.value_reg(size)?;
            Ok(Insn::Store { size, dst, src, off })
        } else {
            // A 64-bit store sign-extends its 32-bit immediate; narrower ones truncate it.
            let imm = self.imm32(size != Size::DW)?;
            Ok(Insn::StoreImm { size, dst, off, imm })
        }
    }

    /// The rest of a legacy packet load after `r0 = *(u8 *)`: `skb[OFFSET]` (`LD_ABS`),
    /// `skb[rN]` or `skb[rN + OFFSET]` (`LD_IND`).
    fn packet_load(
        &mut self,
        dst: Reg,
        w32: bool,
        dst_col: usize,
        size: Size,
        signed: bool,
        tcol: usize,
    ) -> Result<Insn, AsmError> {
        if dst != Reg::R0 || w32 {
            return Err(self.err(dst_col, "a legacy packet load (skb[...]) always loads into r0"));
        }
        if signed || size == Size::DW {
            return Err(self.err(tcol, "a legacy packet load reads u8, u16 or u32"));
        }
        self.i += 1;
        self.expect("[")?;
        let index = if self.at_register() { Some(self.reg(false)?) } else { None };
        // `skb[N]`, `skb[rN]`, or `skb[rN + N]` / `skb[rN - N]`
        let imm =
            if index.is_none() || matches!(self.peek_text(), "+" | "-") { self.imm32(false)? } else { 0 };
        self.expect("]")?;
        Ok(Insn::LoadPacket { size, index, imm })
    }

    fn atomic_size(&self, size: Size, col: usize) -> Result<Size, AsmError> {
        match size {
            Size::W | Size::DW => Ok(size),
            _ => Err(self.err(col, "atomic operations take u32 or u64")),
        }
    }

    fn lock(&mut self) -> Result<Insn, AsmError> {
        self.expect("*")?;
        self.expect("(")?;
        let (size, signed, col) = self.mem_type()?;
        if signed {
            return Err(self.err(col, "atomic operations take u32 or u64"));
        }
        let size = self.atomic_size(size, col)?;
        let (dst, off) = self.mem()?;
        let col = self.col();
        let op = match self.peek_text() {
            "+=" => AtomicOp::Add,
            "|=" => AtomicOp::Or,
            "&=" => AtomicOp::And,
            "^=" => AtomicOp::Xor,
            _ => return Err(self.err(col, format!("expected `+=`, `|=`, `&=` or `^=`, {}", self.found()))),
        };
        self.i += 1;
        let src = self.value_reg(size)?;
        Ok(Insn::Atomic { size, op, dst, src, off })
    }

    fn ld_pseudo(&mut self) -> Result<Insn, AsmError> {
        let dst = self.reg(false)?;
        self.expect(",")?;
        let n = self.number()?;
        let pseudo = self.in_range(n, (0, 15), "ld_pseudo source field")? as u8;
        self.expect(",")?;
        let n = self.number()?;
        let imm = self.in_range(n, (i64::MIN as i128, u64::MAX as i128), "64-bit immediate")? as u64;
        Ok(Insn::LdImm64 { dst, pseudo, imm })
    }

    /// Everything that starts with a register: `rN op= x` and `rN = ...`.
    fn assignment(&mut self) -> Result<Insn, AsmError> {
        let (dst, w32, dst_col) = self.reg_any()?;
        let width = if w32 { Width::W32 } else { Width::W64 };
        let op_col = self.col();
        if let Some(op) = alu_op(self.peek_text()) {
            self.i += 1;
            let src = self.operand(w32)?;
            return Ok(Insn::Alu { width, op, dst, src });
        }
        if !self.eat("=") {
            return Err(
                self.err(op_col, format!("expected `=` or an operator such as `+=`, {}", self.found()))
            );
        }
        let need_r = |p: &Self, what: &str| -> Result<(), AsmError> {
            if w32 {
                Err(p.err(
                    dst_col,
                    format!("{what} needs a 64-bit destination register, found \"w{}\"", dst.num()),
                ))
            } else {
                Ok(())
            }
        };
        let col = self.col();
        let Some(t) = self.peek() else {
            return Err(self.err(col, "expected a value after `=`"));
        };
        let next = self.toks.get(self.i + 1).copied();
        match (t.kind, t.text) {
            // `rN = -rN`
            (Kind::Punct, "-") if next.is_some_and(|n| n.kind == Kind::Ident) => {
                self.i += 1;
                let src_col = self.col();
                let src = self.reg(w32)?;
                if src != dst {
                    return Err(
                        self.err(src_col, "negation uses the same register on both sides (`r0 = -r0`)")
                    );
                }
                Ok(Insn::Neg { width, dst })
            }
            (Kind::Punct, "-" | "+") | (Kind::Num, _) => {
                let n = self.number()?;
                if self.eat("ll") {
                    need_r(self, "a 64-bit immediate load")?;
                    let imm = self.in_range(n, (i64::MIN as i128, u64::MAX as i128), "64-bit immediate")?;
                    Ok(Insn::LdImm64 { dst, pseudo: 0, imm: imm as u64 })
                } else {
                    Ok(Insn::Alu { width, op: AluOp::Mov, dst, src: Operand::Imm(self.imm32_of(n, w32)?) })
                }
            }
            (Kind::Ident, _) if is_register_name(t.text) => {
                Ok(Insn::Alu { width, op: AluOp::Mov, dst, src: Operand::Reg(self.reg(w32)?) })
            }
            (Kind::Punct, "(") => {
                self.i += 1;
                let tcol = self.col();
                let from = match self.peek_text() {
                    "s8" => SxBits::S8,
                    "s16" => SxBits::S16,
                    "s32" if !w32 => SxBits::S32,
                    "s32" => return Err(self.err(tcol, "`(s32)` sign extension needs 64-bit registers")),
                    _ => {
                        return Err(self.err(tcol, format!("expected `s8`, `s16` or `s32`, {}", self.found())))
                    }
                };
                self.i += 1;
                self.expect(")")?;
                let src = self.reg(w32)?;
                Ok(Insn::MovSx { width, from, dst, src })
            }
            (Kind::Punct, "*") => {
                self.i += 1;
                self.expect("(")?;
                let (size, signed, tcol) = self.mem_type()?;
                if self.peek_text() == "skb" {
                    return self.packet_load(dst, w32, dst_col, size, signed, tcol);
                }
                let (src, off) = self.mem()?;
                if signed && size == Size::DW {
                    return Err(self.err(tcol, "there is no sign-extending 64-bit load; use u64"));
                }
                if w32 && (signed || size == Size::DW) {
                    let what = if signed { "a sign-extending load" } else { "a 64-bit load" };
                    need_r(self, what)?;
                }
                Ok(Insn::Load { size, signed, dst, src, off })
            }
            (Kind::Ident, name) if next.is_some_and(|n| n.text == "ll") => {
                self.i += 2;
                need_r(self, "a map reference")?;
                self.map_ref(name, col, dst)
            }
            // `rN = &NAME + OFF ll`: the address of an array map's value plus OFF.
            (Kind::Punct, "&") if next.is_some_and(|n| n.kind == Kind::Ident) => {
                self.i += 1;
                let name_col = self.col();
                let name = self.peek_text();
                self.i += 1;
                let off = if self.eat("+") {
                    let n = self.number()?;
                    self.in_range(n, (0, u32::MAX as i128), "offset into a map value")? as u32
                } else {
                    0
                };
                self.expect("ll")?;
                need_r(self, "a map value's address")?;
                match self.map_ref(name, name_col, dst)? {
                    Insn::LdImm64 { dst, imm, .. } => Ok(Insn::LdImm64 {
                        dst,
                        pseudo: PSEUDO_MAP_VALUE,
                        imm: map_value_imm(imm as u32, off),
                    }),
                    other => Ok(other),
                }
            }
            (Kind::Ident, name) => {
                self.i += 1;
                self.named_rhs(name, col, dst, w32, dst_col)
            }
            _ => Err(self.err(col, format!("expected a value after `=`, {}", self.found()))),
        }
    }

    /// `rN = NAME ll`: a reference to the declared map `NAME` (`lddw` with `src` = 1).
    fn map_ref(&self, name: &str, col: usize, dst: Reg) -> Result<Insn, AsmError> {
        let Some(maps) = self.maps else {
            return Err(self.err(
                col,
                format!("`{name}` is a symbol: only the maps of a program set (`.map {name} N`, read by parse_set) can be named here (llvm-objdump shows an unrelocated load as `0 ll`)"),
            ));
        };
        match maps.index.get(name) {
            Some(&i) => Ok(Insn::LdImm64 { dst, pseudo: PSEUDO_MAP_FD, imm: i as u64 }),
            None if maps.names.is_empty() => Err(self.err(
                col,
                format!("unknown map `{name}`: the set declares no maps (declare it with `.map {name} N` before the first program)"),
            )),
            None => Err(self.err(
                col,
                format!("unknown map `{name}` (declared maps: {})", maps.names.join(", ")),
            )),
        }
    }

    /// `rN = be16 rN`, `rN = atomic_fetch_add(...)`, `rN = xchg_64(...)`, `rN = cmpxchg_64(...)`.
    fn named_rhs(
        &mut self,
        name: &'a str,
        col: usize,
        dst: Reg,
        w32: bool,
        dst_col: usize,
    ) -> Result<Insn, AsmError> {
        let same_reg = |p: &Self, r: Reg, rcol: usize, form: &str| -> Result<(), AsmError> {
            if r == dst {
                Ok(())
            } else {
                Err(p.err(rcol, format!("the result register must be the value register (`{form}`)")))
            }
        };
        let width_err = |p: &Self, size: Size| {
            let want = if size == Size::DW { "64-bit (r)" } else { "32-bit (w)" };
            p.err(dst_col, format!("a {}-bit atomic operation takes {want} registers", size.bits()))
        };
        let end = [("be", ByteOrder::Be), ("le", ByteOrder::Le), ("bswap", ByteOrder::Swap)]
            .into_iter()
            .find_map(|(p, o)| name.strip_prefix(p).map(|bits| (o, bits)));
        if let Some((order, bits @ ("16" | "32" | "64"))) = end {
            if w32 {
                return Err(
                    self.err(dst_col, format!("`{name}` takes 64-bit registers, found \"w{}\"", dst.num()))
                );
            }
            let rcol = self.col();
            let r = self.reg(false)?;
            same_reg(self, r, rcol, &format!("r0 = {name} r0"))?;
            return Ok(Insn::End { order, bits: bits.parse().unwrap_or(64), dst });
        }
        if let Some(opname) = name.strip_prefix("atomic_fetch_") {
            let op = match opname {
                "add" => AtomicOp::FetchAdd,
                "or" => AtomicOp::FetchOr,
                "and" => AtomicOp::FetchAnd,
                "xor" => AtomicOp::FetchXor,
                _ => return Err(self.err(col, format!("unknown atomic operation {name:?}"))),
            };
            self.expect("(")?;
            self.expect("(")?;
            let (size, signed, tcol) = self.mem_type()?;
            if signed {
                return Err(self.err(tcol, "atomic operations take u32 or u64"));
            }
            let size = self.atomic_size(size, tcol)?;
            if w32 != (size == Size::W) {
                return Err(width_err(self, size));
            }
            let (base, off) = self.mem()?;
            self.expect(",")?;
            let rcol = self.col();
            let src = self.reg(w32)?;
            self.expect(")")?;
            same_reg(self, src, rcol, &format!("r2 = {name}((u64 *)(r1 + 0), r2)"))?;
            return Ok(Insn::Atomic { size, op, dst: base, src, off });
        }
        let (op, size) = match name {
            "xchg_64" => (AtomicOp::Xchg, Size::DW),
            "xchg32_32" => (AtomicOp::Xchg, Size::W),
            "cmpxchg_64" => (AtomicOp::Cmpxchg, Size::DW),
            "cmpxchg32_32" => (AtomicOp::Cmpxchg, Size::W),
            _ => return Err(self.err(col, format!("expected a value after `=`, found {name:?}"))),
        };
        if w32 != (size == Size::W) {
            return Err(width_err(self, size));
        }
        self.expect("(")?;
        let (base, off) = self.mem_inner()?;
        self.expect(",")?;
        if op == AtomicOp::Cmpxchg {
            let r0 = if w32 { "w0" } else { "r0" };
            if dst != Reg::R0 {
                return Err(self.err(dst_col, format!("`{name}` always writes {r0}")));
            }
            let rcol = self.col();
            if self.reg(w32)? != Reg::R0 {
                return Err(self.err(rcol, format!("`{name}` always compares with {r0}")));
            }
            self.expect(",")?;
        }
        let rcol = self.col();
        let src = self.reg(w32)?;
        self.expect(")")?;
        if op == AtomicOp::Xchg {
            same_reg(self, src, rcol, &format!("r2 = {name}(r1 + 0, r2)"))?;
        }
        Ok(Insn::Atomic { size, op, dst: base, src, off })
    }
}
