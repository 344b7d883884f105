//! Signals: SIGTERM, SIGHUP and Ctrl-C stop a run saved and resumable, a second one during a
//! save lets it finish, and `compare` stops without starting the next run.

use crate::capped::{
    self, lines, ok, refused, run, temps, tiny, tiny_data, tiny_train, wait_first_epoch, with,
};
use std::path::Path;
use std::time::Duration;

// SIGTERM and SIGHUP stop like Ctrl-C: saved and resumable.
#[test]
fn sigterm_and_sighup_save_and_resume() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    for (sig, name) in [(libc::SIGTERM, "T"), (libc::SIGHUP, "H")] {
        let args = tiny_train("rprop-plus", &data, 100_000, &["--out", name]);
        let child = capped::command(d.path(), &args).spawn().unwrap();
        wait_first_epoch(&d.path().join(name));
        // SAFETY: signals a child of this test, by its id.
        unsafe { libc::kill(child.id() as i32, sig) };
        let o = capped::wait(child, "train");
        let err = capped::stderr(&o);
        assert_eq!(o.status.code(), Some(130), "{err}");
        assert!(err.contains("interrupted after epoch"), "{err}");
        // The hint fits a signal too.
        assert!(err.contains("interrupt again to quit now"), "{err}");
        assert!(!err.contains("Ctrl-C"), "{err}");
        assert!(d.path().join(name).join("optimizer.safetensors").exists());
        let epoch: usize = err
            .split("interrupted after epoch ")
            .nth(1)
            .and_then(|t| t.split(';').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{err}"));
        let more = (epoch + 1).to_string();
        let out = ok(&run(
            d.path(),
            &["train", "--resume", name, "--epochs", &more],
        ));
        assert!(out.contains("best epoch"), "{out}");
    }
}

/// Writes good.json (rprop-plus) and bad.json (sgd that diverges in its first epoch) in `dir`.
fn good_and_bad_configs(dir: &Path) {
    std::fs::write(dir.join("good.json"), r#"{"optimizer": "rprop-plus"}"#).unwrap();
    std::fs::write(
        dir.join("bad.json"),
        r#"{"optimizer": "sgd", "learning_rate": 1e38}"#,
    )
    .unwrap();
}

// A failing config of `compare` names itself, and the others' table and chart are kept.
#[test]
fn compare_keeps_finished_runs_when_one_config_fails() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    good_and_bad_configs(d.path());
    let mut t = tiny(&data, 2);
    t.retain(|s| s != "--optimizer");
    let args = with(
        &[
            "compare",
            "--configs",
            "bad.json",
            "good.json",
            "--out",
            "cmp",
        ],
        &t,
    );
    let line = refused(&run(d.path(), &args), "bad.json");
    assert!(line.contains("1 of 2 runs failed"), "{line}");
    let md = std::fs::read_to_string(d.path().join("cmp/results.md")).unwrap();
    assert!(
        md.contains("| rprop-plus |") && !md.contains("| sgd |"),
        "{md}"
    );
    assert!(d.path().join("cmp/curves.png").exists());
}

// Ctrl-C (here SIGTERM) stops `compare` saying what was saved, and no further run starts.
#[test]
fn compare_stopped_by_a_signal_saves_its_run_and_starts_no_other() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    good_and_bad_configs(d.path());
    let mut t = tiny(&data, 100_000);
    t.retain(|s| s != "--optimizer");
    let args = with(
        &[
            "compare",
            "--configs",
            "good.json",
            "bad.json",
            "--out",
            "cmp2",
        ],
        &t,
    );
    let child = capped::command(d.path(), &args).spawn().unwrap();
    wait_first_epoch(&d.path().join("cmp2/rprop-plus"));
    // SAFETY: signals a child of this test, by its id.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = capped::wait(child, "compare");
    let err = capped::stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted run rprop-plus after epoch") && err.contains("not run: sgd"),
        "{err}"
    );
    assert!(!d.path().join("cmp2/sgd").exists(), "the next run started");
    assert!(d
        .path()
        .join("cmp2/rprop-plus/optimizer.safetensors")
        .exists());
}

// A second Ctrl-C during a save: the save finishes first, no temp file is left, and
// the run resumes.
#[test]
fn second_ctrl_c_during_a_save_finishes_it() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let mut landed = false;
    for attempt in 0..12 {
        let name = format!("S{attempt}");
        let args = tiny_train(
            "rprop-plus",
            &data,
            10_000,
            &["--out", &name, "--hidden", "1500", "--save-every", "1"],
        );
        let child = capped::command(d.path(), &args).spawn().unwrap();
        let pid = child.id() as i32;
        let dir = d.path().join(&name);
        let t0 = std::time::Instant::now();
        while !dir.join("optimizer.safetensors").exists() {
            assert!(t0.elapsed() < Duration::from_secs(30), "no save");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Somewhere in a later epoch or its save.
        std::thread::sleep(Duration::from_millis(100 + 37 * attempt as u64));
        // SAFETY: signals to the child this test started.
        unsafe { libc::kill(pid, libc::SIGINT) };
        std::thread::sleep(Duration::from_millis(2));
        unsafe { libc::kill(pid, libc::SIGINT) };
        let o = capped::wait(child, "train");
        let err = capped::stderr(&o);
        assert_eq!(o.status.code(), Some(130), "{err}");
        let temps: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".rl-tmp-"))
            .collect();
        assert!(temps.is_empty(), "temp files left: {temps:?}");
        if err.contains("finishing the save in progress") {
            assert!(err.contains("the save finished; quitting"), "{err}");
            // The save is whole: the run resumes for one more epoch.
            let done = lines(&dir.join("metrics.jsonl")).len();
            let more = (done + 1).to_string();
            let args = [
                "train",
                "--resume",
                &name,
                "--epochs",
                &more,
                "-q",
                "--no-test",
            ];
            ok(&run(d.path(), &args));
            assert_eq!(lines(&dir.join("metrics.jsonl")).len(), done + 1);
            landed = true;
            break;
        }
    }
    assert!(
        landed,
        "no second signal came during a save; the test proves nothing"
    );
}

// A signal right after start (before or during the first epoch) ends the process with 130,
// saying so, and leaves no temp file.
#[test]
fn a_signal_right_after_start_ends_with_130() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    for delay in [80, 250] {
        let args = tiny_train("rprop-plus", &data, 100_000, &["--out", "S"]);
        let child = capped::command(d.path(), &args).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        // SAFETY: signals a child of this test, by its id.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let o = capped::wait(child, "train");
        let err = capped::stderr(&o);
        assert_eq!(o.status.code(), Some(130), "after {delay} ms: {err}");
        assert!(err.contains("interrupted"), "{err}");
        if d.path().join("S").exists() {
            assert!(temps(&d.path().join("S")).is_empty());
            std::fs::remove_dir_all(d.path().join("S")).unwrap();
        }
    }
}
