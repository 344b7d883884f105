//! A local sweep of six tiny trials end to end: the plan, the trial folders (ordinary run
//! folders), the progress lines, the ranking without the test set, the failed trials
//! recorded with their reasons, the report, the status, and `--force`.

use crate::capped::{ok, refused, run, tiny_data};
use crate::{space, sweep, tiny, trial_dirs, SIX};

#[test]
fn six_tiny_trials_end_to_end() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let s = space(d.path(), "six.json", SIX);
    let s = s.to_str().unwrap();
    let o = sweep(
        d.path(),
        &["--space", s, "--out", "sw", "--jobs", "2"],
        &tiny(&data, 3),
    );
    let out = ok(&o);
    let err = crate::capped::stderr(&o);
    let dir = d.path().join("sw");
    assert_eq!(
        trial_dirs(&dir),
        (1..=6).map(|i| format!("trial-00{i}")).collect::<Vec<_>>()
    );
    // Two trials diverge (learning rate 1e38): recorded with their reason; the sweep goes on.
    assert!(
        out.contains("done 4, running 0, pending 0, failed 2 (of 6)"),
        "{out}"
    );
    assert!(out.contains("best: trial-00"), "{out}");
    assert!(err.contains("[6/6]") && err.contains("best "), "{err}");
    assert!(err.contains("2 trial(s) at once"), "{err}");
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(
        md.contains("Failed (2; not ranked)") && md.contains("not finite"),
        "{md}"
    );
    assert!(md.contains("took no part in the choice"), "{md}");
    // The time line counts every ended trial, and the four that trained have an overhead.
    assert!(
        md.contains("Time: 6 trial(s) ended over") && md.contains("overhead beside its epochs"),
        "{md}"
    );
    for t in 1..=6 {
        let rec = std::fs::read_to_string(dir.join(format!("trial-00{t}/trial.json"))).unwrap();
        let rec: serde_json::Value = serde_json::from_str(&rec).unwrap();
        let run = rec["finished_unix"].as_f64().unwrap() - rec["started_unix"].as_f64().unwrap();
        match rec["start_train_seconds"].as_f64() {
            Some(t) => assert!(t > 0.0 && t <= run, "{rec}"),
            None => assert_eq!(rec["status"], "failed", "{rec}"),
        }
    }
    // Four ranked rows; only rank 1 was scored on the test set.
    let ranked: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains("| trial-"))
        .collect();
    assert_eq!(ranked.len(), 4 + 2, "{md}");
    let tested = |csv: &str| {
        csv.lines()
            .skip(1)
            .filter(|l| !l.split(',').nth(10).unwrap_or("").is_empty())
            .count()
    };
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7, "{csv}");
    assert!(csv.lines().nth(1).unwrap().starts_with("1,trial-"), "{csv}");
    assert_eq!(tested(&csv), 1, "{csv}");
    for png in ["sensitivity.png", "best_so_far.png"] {
        let b = std::fs::read(dir.join(png)).unwrap();
        assert_eq!(&b[1..4], b"PNG", "{png}");
    }
    // sweep.json records the space, the seed, the options and every trial's settings.
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(rec["trials"].as_array().unwrap().len(), 6);
    assert_eq!(rec["seed"], 0);
    assert!(rec["space"]["text"].as_str().unwrap().contains("1e38"));
    assert_eq!(rec["trials"][5]["settings"]["optimizer"], "sgd");
    let opts = rec["options"]["overrides"].to_string();
    assert!(
        opts.contains("train_set_size") && opts.contains("cpu"),
        "{opts}"
    );
    // `report` ranks again and scores more on the test set; `status` reads the folders.
    ok(&sweep(d.path(), &["report", "sw", "--test-top", "3"], &[]));
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    assert_eq!(tested(&csv), 3, "{csv}");
    // Ranked by eval loss: the first row has the lowest of the done trials.
    ok(&sweep(
        d.path(),
        &["report", "sw", "--metric", "eval-loss"],
        &[],
    ));
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    let losses: Vec<f64> = (csv.lines().skip(1))
        .filter_map(|l| l.split(',').nth(7).and_then(|x| x.parse().ok()))
        .collect();
    assert_eq!(losses.len(), 4, "{csv}");
    assert!(losses.windows(2).all(|w| w[0] <= w[1]), "{losses:?}");
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    assert!(md.contains("Ranked by eval loss"), "{md}");
    let st = ok(&sweep(d.path(), &["status", "sw"], &[]));
    assert!(
        st.contains("done 4, running 0, pending 0, failed 2 (of 6)"),
        "{st}"
    );
    assert!(
        st.contains("trial-005: failed") && st.contains("trial-006: failed"),
        "{st}"
    );
    force_keeps_other_files(d.path(), &data, s);
}

/// A second sweep into the same folder is refused; with --force it replaces the old
/// sweep, and a file of the user's there stays.
fn force_keeps_other_files(d: &std::path::Path, data: &std::path::Path, s: &str) {
    std::fs::write(d.join("sw/notes.txt"), "mine").unwrap();
    let args = ["--space", s, "--out", "sw", "--seed", "4"];
    refused(&sweep(d, &args, &tiny(data, 2)), "already holds a sweep");
    // A bad space with --force: refused before the old sweep is touched.
    let before = crate::capped::snapshot(&d.join("sw"));
    let bad = space(
        d,
        "bad.json",
        r#"{"search": "grid", "keys": {"eta_plus": {"uniform": [0.5, 2]}}}"#,
    );
    let bad_args = [
        "--space",
        bad.to_str().unwrap(),
        "--out",
        "sw",
        "--force",
        "--optimizer",
        "rprop-minus",
    ];
    refused(&sweep(d, &bad_args, &tiny(data, 2)), "key `eta_plus`");
    assert!(
        before == crate::capped::snapshot(&d.join("sw")),
        "the old sweep changed"
    );
    let more = [tiny(data, 2), vec!["--force".into(), "-q".into()]].concat();
    ok(&sweep(d, &args, &more));
    assert_eq!(
        std::fs::read_to_string(d.join("sw/notes.txt")).unwrap(),
        "mine"
    );
    let rec = std::fs::read_to_string(d.join("sw/sweep.json")).unwrap();
    assert!(rec.contains("\"seed\": 4"), "{rec}");
    assert_eq!(trial_dirs(&d.join("sw")).len(), 6);
    let leftovers: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("new-sweep"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

// A trial folder is an ordinary run: `train --config OUT/trial-NNN/config.json` reruns it
// alone to the same weights.
#[test]
fn a_trial_reruns_alone_with_train() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let s = space(d.path(), "r.json", crate::RANDOM);
    let more = [tiny(&data, 3), vec!["-q".into()]].concat();
    ok(&sweep(
        d.path(),
        &["--space", s.to_str().unwrap(), "--out", "sw"],
        &more,
    ));
    for t in ["trial-002", "trial-005"] {
        let cfg = format!("sw/{t}/config.json");
        let data_dir = data.to_str().unwrap();
        let args = [
            "train",
            "--config",
            &cfg,
            "--out",
            t,
            "--data-dir",
            data_dir,
            "-q",
        ];
        ok(&run(d.path(), &args));
        crate::common::assert_same_checkpoints(&d.path().join("sw").join(t), &d.path().join(t));
    }
}

// A sweep whose every trial diverges has nothing to rank: it still writes the report (the
// reasons), and says so with one line and exit 2, not a success.
#[test]
fn a_sweep_whose_every_trial_fails_exits_2() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let text = r#"{"base": {"optimizer": "sgd", "hidden": [8]}, "search": "grid",
        "keys": {"learning_rate": {"choice": [1e37, 1e38]}}}"#;
    let s = space(d.path(), "bad.json", text);
    let o = sweep(
        d.path(),
        &["--space", s.to_str().unwrap(), "--out", "sw", "-q"],
        &tiny(&data, 2),
    );
    refused(
        &o,
        "every trial failed (2 of 2), so there is nothing to rank",
    );
    let md = std::fs::read_to_string(d.path().join("sw/results.md")).unwrap();
    assert!(md.contains("Failed (2; not ranked)"), "{md}");
}
