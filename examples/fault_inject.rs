//! The `rprop-lab` command line with fault injection, for the crash-safety tests
//! (tests/guarantees/saves.rs): with `RPROP_LAB_FAULT_AT=N` the process dies, as by
//! SIGKILL (no cleanup, no destructors, exit status 86), at the Nth filesystem step it
//! takes (creating and filling a temp, each rename, each append, each folder created,
//! moved or removed). The shipped binary registers no such hook: the variable does
//! nothing there (tests/guarantees/fault_hook.rs).
//!
//! `cargo test` builds it with the other examples; the tests that inject faults build it
//! themselves when run alone (`cargo test --test guarantees`).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

/// Exit status of a process stopped at its fault point.
const FAULT_EXIT: i32 = 86;

/// The step to die at (0: none).
static AT: AtomicU64 = AtomicU64::new(0);
/// Steps taken so far.
static STEP: AtomicU64 = AtomicU64::new(0);

fn stop_at_nth_step() {
    let at = AT.load(Ordering::SeqCst);
    if at > 0 && STEP.fetch_add(1, Ordering::SeqCst) + 1 == at {
        // SAFETY: ends the process at once, as a kill would.
        unsafe { libc::_exit(FAULT_EXIT) };
    }
}

fn main() -> ExitCode {
    let at = std::env::var("RPROP_LAB_FAULT_AT").ok();
    if let Some(at) = at {
        let Ok(n) = at.parse::<u64>() else {
            eprintln!("error: RPROP_LAB_FAULT_AT={at}: not a step number");
            return ExitCode::from(2);
        };
        AT.store(n, Ordering::SeqCst);
        rprop_lab::fsio::set_fault_hook(stop_at_nth_step);
    }
    rprop_lab::cli::main()
}
