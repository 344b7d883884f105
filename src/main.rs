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
            ExitCode::from(2)
        }
    }
}
