use std::process::ExitCode;

use clap::Parser;
use rprop_lab::cli::{run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the whole context chain, outermost first.
            eprintln!("error: {e:#}");
            // A verify mismatch is a result (1), not a failure to run (2).
            if e.downcast_ref::<rprop_lab::verify::VerifyFailed>()
                .is_some()
            {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}
