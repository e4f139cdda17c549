//! The `jitdiff` command.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // Neither stream is locked for the whole run: fuzzing threads report on stderr too.
    let code = jitdiff::cli::main(&args, &mut std::io::stdout(), &mut std::io::stderr());
    ExitCode::from(code)
}
