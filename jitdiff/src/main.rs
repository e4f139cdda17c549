//! The `jitdiff` command.

use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // Neither stream is locked for the whole run: fuzzing threads report on stderr too.
    let terminal = std::io::stderr().is_terminal();
    let code = jitdiff::cli::main_with(&args, &mut std::io::stdout(), &mut std::io::stderr(), terminal);
    ExitCode::from(code)
}
