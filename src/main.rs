use std::process::ExitCode;

use clap::Parser;
use rprop_lab::cli::{run, Cli};
use rprop_lab::trainer::Interrupted;
use rprop_lab::verify::VerifyFailed;

fn main() -> ExitCode {
    // Before any thread exists: it may set an environment variable (see its doc).
    rprop_lab::gpu::quiet_headless_wsi();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => {
            // Not a failure: the run stopped where asked, with everything saved.
            eprintln!("{e}");
            ExitCode::from(130)
        }
        Err(e) => {
            // One line: the whole context chain, outermost first.
            eprintln!("error: {e:#}");
            // A verify mismatch is a result (1), not a failure to run (2).
            if e.downcast_ref::<VerifyFailed>().is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}
