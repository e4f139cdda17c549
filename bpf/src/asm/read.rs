//! Reading a text as bare instructions or as one program: the text goes through the same
//! line reader as a program set (`super::set`), in a mode that refuses the set's
//! directives.

use super::parse::err;
use super::set::{Mode, Source};
use super::AsmError;
use crate::insn::Insn;
use crate::program::{Program, ProgramError};

/// Parses assembly text into instructions, in order.
///
/// Labels are resolved to slot offsets (an `lddw` counts as two slots). The result is not
/// checked as a program: use [`parse_program`] for that. Program-set directives
/// (`.ctx`, `.map`, `.slot`, `.prog`, `.stack`) are errors here. Never panics; any
/// problem is an [`AsmError`] naming the line and column.
pub fn parse(text: &str) -> Result<Vec<Insn>, AsmError> {
    let source = Source::run(text, Mode::Insns)?;
    Ok(source.into_codes().into_iter().next().map(|c| c.insns).unwrap_or_default())
}

/// Parses assembly text and checks it with [`Program::new`]; structural problems (a jump
/// out of the program, falling off the end, writing r10, no instructions) are reported
/// at the line of the offending instruction.
///
/// `.stack N` directives set the stack depth of the function that follows them (see
/// [`crate::asm`]); the other program-set directives are errors: a file with them is
/// read by [`super::parse_set`].
pub fn parse_program(text: &str) -> Result<Program, AsmError> {
    let source = Source::run(text, Mode::Program)?;
    match source.into_codes().into_iter().next() {
        Some(code) => code.program(),
        None => Err(err(1, 1, ProgramError::Empty.to_string())),
    }
}
