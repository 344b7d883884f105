//! Ctrl-C, SIGTERM and SIGHUP, handled from the start of the process: before training a
//! signal quits at once; during training the first one asks the run to stop after the
//! current epoch (saving everything) and a second one quits, but never in the middle of a
//! save or an atomic write ([`critical`]): that finishes first, so no temp file or
//! half-committed save is left behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Set by the first signal during training: the trainer finishes the epoch, saves, stops.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Whether a run is training (a first signal then stops it gracefully).
static TRAINING: AtomicBool = AtomicBool::new(false);
/// Open critical sections, and whether a quit waits for them to close.
static CRITICAL: Mutex<(usize, bool)> = Mutex::new((0, false));

/// Exit status of a process stopped by a signal.
pub const EXIT: i32 = 130;

/// Installs the handler; call once, first thing in `main`.
pub fn install() {
    // An error only means a handler is already installed (a second call in-process).
    let _ = ctrlc::set_handler(|| {
        if TRAINING.load(Ordering::SeqCst) && !INTERRUPTED.swap(true, Ordering::SeqCst) {
            // Also SIGTERM and SIGHUP, so the hint does not assume a Ctrl-C.
            eprintln!(
                "\ninterrupt: finishing this epoch, then saving (interrupt again to quit now)"
            );
            return;
        }
        // Held while exiting: a critical section cannot start meanwhile.
        let mut c = CRITICAL.lock().unwrap_or_else(|e| e.into_inner());
        if c.0 > 0 {
            c.1 = true;
            eprintln!("\ninterrupt: finishing the save in progress, then quitting");
            return;
        }
        eprintln!("\ninterrupted");
        std::process::exit(EXIT);
    });
}

/// Marks the span of a training loop (see the module doc).
pub fn set_training(on: bool) {
    TRAINING.store(on, Ordering::SeqCst);
}

/// A section a quitting signal waits for (a save, an atomic write); ends on drop.
#[must_use]
pub struct Critical(());

/// Opens a [`Critical`] section (they nest).
pub fn critical() -> Critical {
    CRITICAL.lock().unwrap_or_else(|e| e.into_inner()).0 += 1;
    Critical(())
}

impl Drop for Critical {
    fn drop(&mut self) {
        let mut c = CRITICAL.lock().unwrap_or_else(|e| e.into_inner());
        c.0 -= 1;
        if c.0 == 0 && c.1 {
            eprintln!("interrupted: the save finished; quitting");
            std::process::exit(EXIT);
        }
    }
}
