//! One writer per run even when its lock file is removed (issue 25, item 9): the writer
//! also holds its folder, so a second writer is refused; a holder removes only its own
//! lock file; the refusal never prints the lock file's bytes (item 11).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::capped::{self, ok, refused, run, tiny_data, tiny_train, wait_first_epoch};

/// A live writer: a child process, killed if the test ends (or fails) while it runs.
struct Live(Option<std::process::Child>);

impl Live {
    fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, |c| c.id())
    }

    /// Ends it as a user would (SIGTERM: it saves and exits 130, its lock dropped in order).
    fn stop(mut self) {
        let child = self.0.take().unwrap();
        // SAFETY: signals a child of this process that has not been waited for.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let o = capped::wait(child, "stopped writer");
        assert_eq!(o.status.code(), Some(130), "{}", capped::stderr(&o));
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A run of many epochs in `d/X`, started and past its first epoch.
fn live_writer(d: &Path, data: &Path) -> Live {
    let args = tiny_train("rprop-plus", data, 100_000, &["--out", "X", "--no-test"]);
    let live = Live(Some(capped::command(d, &args).spawn().unwrap()));
    wait_first_epoch(&d.join("X"));
    live
}

// `rm .X.lock` beside a live run (the step the docs once called harmless), then a resume,
// a `--force` run and a new run into X: each refused at once naming the writer's PID, and
// X keeps being written by its one writer. Once it is stopped, the resume runs.
#[test]
fn a_removed_lock_file_lets_no_second_writer_in() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let child = live_writer(d.path(), &data);
    let pid = format!("PID {}", child.id());
    std::fs::remove_file(d.path().join(".X.lock")).unwrap();
    let t0 = Instant::now();
    let resume = ["train", "--resume", "X", "--epochs", "200000", "-q"];
    refused(&run(d.path(), &resume), &pid);
    let force = tiny_train("sgd", &data, 2, &["--out", "X", "--force"]);
    refused(&run(d.path(), &force), &pid);
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "not refused at once"
    );
    // The refused writers removed only the lock files they had made.
    assert!(!d.path().join(".X.lock").exists());
    let config = std::fs::read_to_string(d.path().join("X/config.json")).unwrap();
    assert!(config.contains("rprop-plus"), "{config}");
    child.stop();
    let n = epochs_past(&d.path().join("X"));
    let resume = ["train", "--resume", "X", "--epochs", &n, "-q", "--no-test"];
    ok(&run(d.path(), &resume));
}

/// One more epoch than the run in `dir` has done (for a resume that ends at once).
fn epochs_past(dir: &Path) -> String {
    let lines = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    (lines.lines().count() + 1).to_string()
}

// A lock file put in place of the holder's (removed) one is not the holder's to remove:
// it is still there, as written, when the holder ends.
#[test]
fn a_holder_removes_only_its_own_lock_file() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let child = live_writer(d.path(), &data);
    let lock = d.path().join(".X.lock");
    std::fs::remove_file(&lock).unwrap();
    std::fs::write(&lock, "someone else's").unwrap();
    child.stop();
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), "someone else's");
    // A finished run's lock file is gone (it was its own).
    let args = tiny_train("rprop-plus", &data, 2, &["--out", "Y", "--no-test"]);
    ok(&run(d.path(), &args));
    assert!(!d.path().join(".Y.lock").exists());
}

// Escape sequences written into a live lock file never reach the terminal: the refusal
// names the PID the kernel reports as holding the lock.
#[test]
fn the_refusal_prints_no_bytes_of_the_lock_file() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let child = live_writer(d.path(), &data);
    // Same file (the lock stays held), new bytes.
    std::fs::write(d.path().join(".X.lock"), "\x1b[2J\x1b[31m66").unwrap();
    let o = run(d.path(), &["train", "--resume", "X", "--epochs", "9", "-q"]);
    let line = refused(&o, &format!("PID {}", child.id()));
    assert!(!line.contains('\x1b'), "{line:?}");
    child.stop();
}
