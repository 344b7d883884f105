//! What earlier runs left behind (issue 25, items 7 and 11): a killed run's `.N.new-run`
//! with a temp file is cleared, never swapped into the new run; a user's file there stops
//! the run instead; a live writer's temp in a run folder survives a writer's start-up
//! clean-up; `--force` over a run in a read-only folder is refused before anything.

use std::os::unix::process::CommandExt;
use std::path::Path;

use crate::capped::{
    self, ok, refused, run, snapshot, temps, tiny_data, tiny_train, trained, wait,
};

/// A PID no process has (above the kernel's largest, 2^22).
const DEAD_PID: u32 = 4_194_305;

// A run killed during its first save leaves `.N.new-run/.rl-tmp-PID-0` (here 1 MiB of
// junk, with a junk config.json): the next run of N clears both and writes N afresh.
#[test]
fn a_stale_new_run_temp_is_cleared_not_reused() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let stale = d.path().join(".N.new-run");
    std::fs::create_dir(&stale).unwrap();
    let junk = vec![0x5au8; 1 << 20];
    std::fs::write(stale.join(format!(".rl-tmp-{DEAD_PID}-0")), &junk).unwrap();
    std::fs::write(stale.join("config.json"), "junk").unwrap();
    let args = tiny_train("rprop-plus", &data, 2, &["--out", "N"]);
    let o = run(d.path(), &args);
    ok(&o);
    assert!(
        !capped::stderr(&o).contains("warning"),
        "{}",
        capped::stderr(&o)
    );
    assert!(!stale.exists(), ".N.new-run is still there");
    let n = d.path().join("N");
    assert!(temps(&n).is_empty(), "{:?}", temps(&n));
    for (name, bytes) in snapshot(&n) {
        assert!(
            bytes != junk && bytes != b"junk",
            "{name:?} holds the stale bytes"
        );
    }
}

// A file of the user's in `.N.new-run` is not deleted, nor carried into N: the run is
// refused in one line naming it, and nothing changes.
#[test]
fn a_users_file_in_a_stale_new_run_stops_the_run() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let stale = d.path().join(".N.new-run");
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("notes.txt"), "mine").unwrap();
    let before = snapshot(d.path());
    let args = tiny_train("rprop-plus", &data, 2, &["--out", "N"]);
    refused(&run(d.path(), &args), "notes.txt");
    assert!(snapshot(d.path()) == before, "something changed");
    assert!(!d.path().join("N").exists());
}

// `plot --out RUN/chart.png` in progress (its temp, named by a live PID) while a writer of
// RUN starts: the writer's clean-up removes a dead writer's temp only.
#[test]
fn a_live_writers_temp_survives_a_runs_start_up_clean_up() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "R");
    let live = format!(".rl-tmp-{}-0", std::process::id());
    let dead = format!(".rl-tmp-{DEAD_PID}-0");
    for t in [&live, &dead] {
        std::fs::write(d.path().join("R").join(t), "chart in progress").unwrap();
    }
    let resume = ["train", "--resume", "R", "--epochs", "3", "-q", "--no-test"];
    ok(&run(d.path(), &resume));
    assert_eq!(temps(&d.path().join("R")), [live]);
}

/// `args` run as an unprivileged user (nobody) when the tests run as root, who may write
/// any folder; else as the current user.
fn run_unprivileged(cwd: &Path, args: &[String]) -> std::process::Output {
    let mut c = capped::command(cwd, args);
    // SAFETY: setgroups/setgid/setuid are async-signal-safe; nothing else runs before exec.
    unsafe {
        c.pre_exec(|| {
            if libc::geteuid() == 0
                && (libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(65534) != 0
                    || libc::setuid(65534) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    wait(c.spawn().unwrap(), "unprivileged run")
}

// `--force` over a run in a folder its user cannot write (mode 555): refused before
// anything, the old run intact where it was, no `.r.new-run` left.
#[test]
fn force_over_a_read_only_run_folder_is_refused_before_anything() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let set = |p: &Path, mode| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
    set(d.path(), 0o777).unwrap();
    let data = tiny_data(d.path());
    ok(&run_unprivileged(
        d.path(),
        &tiny_train("rprop-plus", &data, 2, &["--out", "r"]),
    ));
    let r = d.path().join("r");
    set(&r, 0o555).unwrap();
    let before = snapshot(d.path());
    let args = tiny_train("irprop-plus", &data, 2, &["--out", "r", "--force"]);
    refused(&run_unprivileged(d.path(), &args), "not writable");
    assert!(snapshot(d.path()) == before, "something changed");
    assert!(!d.path().join(".r.new-run").exists());
    set(&r, 0o755).unwrap();
}
