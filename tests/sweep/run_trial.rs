//! `sweep run-trial OUT --index N`, what a cluster task runs: each trial alone in its own
//! process, from sweep.json only, ends with the weights the local executor gives it; a
//! trial that has ended returns at once; a wrong index is one error line.

use crate::capped::{ok, refused, tiny_data};
use crate::{assert_same_trials, space, sweep, tiny, RANDOM, SIX};

#[test]
fn each_trial_alone_equals_the_local_executor() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let s = space(d.path(), "r.json", RANDOM);
    let more = [tiny(&data, 4), vec!["-q".into()]].concat();
    ok(&sweep(
        d.path(),
        &["--space", s.to_str().unwrap(), "--out", "local"],
        &more,
    ));
    // The same plan, run trial by trial, each in a process of its own.
    std::fs::create_dir(d.path().join("alone")).unwrap();
    std::fs::copy(
        d.path().join("local/sweep.json"),
        d.path().join("alone/sweep.json"),
    )
    .unwrap();
    for i in 1..=6 {
        let n = i.to_string();
        let out = ok(&sweep(
            d.path(),
            &["run-trial", "alone", "--index", &n],
            &[],
        ));
        assert!(out.contains(&format!("trial-00{i}: done")), "{out}");
    }
    assert_same_trials(&d.path().join("local"), &d.path().join("alone"));
    // Ended: returns at once, changing nothing.
    let before = std::fs::read(d.path().join("alone/trial-003/last.safetensors")).unwrap();
    let out = ok(&sweep(
        d.path(),
        &["run-trial", "alone", "--index", "3"],
        &[],
    ));
    assert!(out.contains("trial-003: done"), "{out}");
    assert_eq!(
        before,
        std::fs::read(d.path().join("alone/trial-003/last.safetensors")).unwrap()
    );
    // The report of trials run anywhere reads the folders.
    let rep = ok(&sweep(d.path(), &["report", "alone"], &[]));
    assert!(rep.contains("done 6"), "{rep}");
    for bad in ["0", "7"] {
        refused(
            &sweep(d.path(), &["run-trial", "alone", "--index", bad], &[]),
            "the sweep has trials 1..=6",
        );
    }
    refused(
        &sweep(d.path(), &["run-trial", "nowhere", "--index", "1"], &[]),
        "no sweep here",
    );
}

// A trial that diverges is recorded as failed, with the reason, and exits 0: a cluster
// must not run it again.
#[test]
fn a_failed_trial_is_recorded_and_exits_0() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let s = space(d.path(), "six.json", SIX);
    let more = [tiny(&data, 2), vec!["-q".into()]].concat();
    ok(&sweep(
        d.path(),
        &["--space", s.to_str().unwrap(), "--out", "a"],
        &more,
    ));
    std::fs::create_dir(d.path().join("b")).unwrap();
    std::fs::copy(d.path().join("a/sweep.json"), d.path().join("b/sweep.json")).unwrap();
    // Trial 5: Adam at a learning rate of 1e38 (the grid's last key varies fastest).
    let out = ok(&sweep(d.path(), &["run-trial", "b", "--index", "5"], &[]));
    assert!(
        out.contains("trial-005: failed") && out.contains("not finite"),
        "{out}"
    );
    let rec = std::fs::read_to_string(d.path().join("b/trial-005/trial.json")).unwrap();
    assert!(
        rec.contains("\"failed\"") && rec.contains("\"diverged\": true"),
        "{rec}"
    );
    let st = ok(&sweep(d.path(), &["status", "b"], &[]));
    assert!(
        st.contains("done 0, running 0, pending 5, failed 1 (of 6)"),
        "{st}"
    );
}
