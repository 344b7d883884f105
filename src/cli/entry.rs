//! The program's entry: what `main` does, in the library so that the tests' build of the
//! command line (examples/fault_inject.rs, which adds a fault hook) runs exactly the
//! shipped program's code.

use std::process::ExitCode;

use clap::Parser;

use super::{run, Cli};
use crate::trainer::Interrupted;
use crate::verify::VerifyFailed;

/// Parses the command line, runs it, and prints a failure as one line: exit 130 for an
/// interrupted run (everything saved), 1 for a `verify` mismatch, 2 for anything else.
pub fn main() -> ExitCode {
    // Before any thread exists: it may set an environment variable (see its doc).
    crate::gpu::quiet_headless_wsi();
    // Signals are handled from here on: none ends the process mid-write.
    crate::signals::install();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => {
            // Not a failure: the run stopped where asked, with everything saved.
            eprintln!("{e}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            // A verify mismatch is a result (1), not a failure to run (2).
            if e.downcast_ref::<VerifyFailed>().is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

/// The whole context chain on one line, outermost first. A cause whose text the line
/// already ends with (an error that prints its source itself) is not repeated, and
/// each part is cut to a bounded length, so a 50 MB value never reaches the terminal.
fn one_line(e: &anyhow::Error) -> String {
    const MAX_PART: usize = 400;
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        // Long paths (up to 4096 bytes) are shown by their start and end.
        let text = crate::limits::shorten_words(&text.replace(['\n', '\r'], " "));
        let text = match text.char_indices().nth(MAX_PART) {
            Some((i, _)) => format!("{}...", &text[..i]),
            None => text,
        };
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
