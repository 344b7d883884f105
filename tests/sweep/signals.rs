//! Ctrl-C stops every running trial at the end of its epoch, saved, and starts no other;
//! `sweep --resume` finishes them exactly and runs the rest: every trial's weights are
//! bit-identical to those of a sweep that never stopped. An edited space is refused.

use std::time::{Duration, Instant};

use crate::capped::{self, ok, refused, tiny_data};
use crate::{assert_same_trials, space, sweep, tiny, RANDOM};

/// Trials long enough (400 epochs, a second or so) for a signal to find some part-way.
const EPOCHS: u32 = 400;

/// Whether a trial of the sweep in `out` has ended.
fn any_ended(out: &std::path::Path) -> bool {
    (1..=6).any(|i| out.join(format!("trial-00{i}/trial.json")).exists())
}

/// Whether a trial of the sweep in `out` is running with a few epochs recorded.
fn part_way(out: &std::path::Path) -> bool {
    (1..=6).any(|i| {
        let t = out.join(format!("trial-00{i}"));
        let epochs =
            std::fs::read_to_string(t.join("metrics.jsonl")).map_or(0, |m| m.lines().count());
        !t.join("trial.json").exists() && (1..EPOCHS as usize / 2).contains(&epochs)
    })
}

#[test]
fn sigint_mid_way_then_resume_equals_an_uninterrupted_sweep() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let s = space(d.path(), "r.json", RANDOM);
    let s = s.to_str().unwrap();
    let opts = [tiny(&data, EPOCHS), vec!["-q".into()]].concat();
    ok(&sweep(
        d.path(),
        &["--space", s, "--out", "whole", "--jobs", "2"],
        &opts,
    ));

    let mut args: Vec<String> = ["sweep", "--space", s, "--out", "cut", "--jobs", "2"]
        .map(String::from)
        .to_vec();
    args.extend(opts.iter().cloned());
    let child = capped::command(d.path(), &args).spawn().unwrap();
    // Once a trial has ended and another is part-way (a few epochs in), the signal.
    let cut = d.path().join("cut");
    let t0 = Instant::now();
    while !(any_ended(&cut) && part_way(&cut)) {
        assert!(t0.elapsed() < Duration::from_secs(50), "no trial part-way");
        std::thread::sleep(Duration::from_millis(5));
    }
    // `status` sees the running trials by their folders' locks (and does not stop them).
    let st = ok(&sweep(d.path(), &["status", "cut"], &[]));
    assert!(
        st.contains("running 1,") || st.contains("running 2,"),
        "{st}"
    );
    // SAFETY: signals a child of this test, by its id.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = capped::wait(child, "sweep");
    let err = capped::stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(
        err.contains("stopped part-way and saved") && err.contains("--resume"),
        "{err}"
    );
    // Some trials stopped part-way with their state saved, some never started.
    let saved_part_way = (1..=6)
        .map(|i| cut.join(format!("trial-00{i}")))
        .filter(|t| t.join("optimizer.safetensors").exists() && !t.join("trial.json").exists())
        .count();
    assert!(saved_part_way >= 1, "{err}");
    let st = ok(&sweep(d.path(), &["status", "cut"], &[]));
    assert!(st.contains("stopped part-way"), "{st}");
    assert!(!st.contains("done 6"), "{st}");
    // The resume refuses new settings, then finishes the sweep.
    refused(
        &sweep(d.path(), &["--resume", "cut", "--epochs", "9"], &[]),
        "only --jobs, --threads, --quiet, --executor and the Slurm options",
    );
    let out = ok(&sweep(
        d.path(),
        &["--resume", "cut", "-q", "--jobs", "1"],
        &[],
    ));
    assert!(
        out.contains("done 6, running 0, pending 0, failed 0 (of 6)"),
        "{out}"
    );
    assert_same_trials(&d.path().join("whole"), &cut);
    // A resume of an ended sweep has nothing left to run; an edited space is refused.
    ok(&sweep(d.path(), &["--resume", "cut", "-q"], &[]));
    let edited = RANDOM.replace("1e-4", "1e-5");
    std::fs::write(s, edited).unwrap();
    refused(
        &sweep(d.path(), &["--resume", "cut"], &[]),
        "key `keys.learning_rate` changed since the sweep began",
    );
}
