//! Issue 10, as a hostile user: a saved run is never lost (`--force`, resume, signals,
//! failed saves), every bad input gets exit 2 and one line, all under a memory cap and a
//! timeout (see hostile_util). Inputs that are files: tests/hostile_inputs.rs.

mod common;
mod hostile_util;

use std::path::Path;
use std::time::{Duration, Instant};

use hostile_util::{ok, refused, run, snapshot, tiny, tiny_data, trained, with};

// 1. --force checks everything before it touches the old run.
#[test]
fn force_keeps_the_old_run_until_the_new_one_has_an_epoch() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "V");
    std::fs::write(d.path().join("V/notes.txt"), "mine").unwrap();
    let before = snapshot(d.path());
    std::fs::write(d.path().join("junk.safetensors"), b"junk").unwrap();
    let base = ["train", "--out", "V", "--force"];
    let rp = ["--optimizer", "rprop-plus"];
    let cases: [(&[&str], &str, &Path); 4] = [
        (&rp, "nowhere", Path::new("nowhere")),
        (
            &[
                "--optimizer",
                "rprop-plus",
                "--init-weights",
                "junk.safetensors",
            ],
            "junk.safetensors",
            &data,
        ),
        (
            &[
                "--optimizer",
                "rprop-plus",
                "--adapter",
                "no-such-adapter-xyz",
            ],
            "GPU",
            &data,
        ),
        // Diverges in epoch 1: fails before any epoch is written.
        (
            &["--optimizer", "sgd", "--learning-rate", "1e38"],
            "is kept as it was",
            &data,
        ),
    ];
    for (extra, needle, data) in cases {
        let mut t = tiny(data, 2);
        if needle == "GPU" {
            for a in t.iter_mut().filter(|a| *a == "cpu") {
                *a = "gpu".into();
            }
        }
        let mut args = with(&base, &t);
        args.extend(extra.iter().map(|s| s.to_string()));
        refused(&run(d.path(), &args), needle);
        let mut now = snapshot(d.path());
        now.remove(Path::new("junk.safetensors"));
        assert!(now == before, "{extra:?} changed the old run");
    }
    // A run killed before its first epoch left its folder (SIGKILL): cleared next time.
    let stale = d.path().join(".V.new-run");
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("config.json"), "{}").unwrap();
    // Reading the weights of the run being replaced works: they are read first.
    let out = ok(&run(
        d.path(),
        &with(
            &[
                "train",
                "--optimizer",
                "rprop-plus",
                "--out",
                "V",
                "--force",
                "--init-weights",
                "V/best.safetensors",
            ],
            &tiny(&data, 2),
        ),
    ));
    assert!(out.contains("saved V/best.safetensors"), "{out}");
    let after = snapshot(d.path());
    assert_ne!(
        after[Path::new("V/best.safetensors")],
        before[Path::new("V/best.safetensors")]
    );
    // The user's file followed the run; no temp folder is left.
    assert_eq!(after[Path::new("V/notes.txt")], b"mine");
    let names: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

#[test]
fn compare_force_keeps_every_old_run_on_a_bad_input() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let args = |data: &str| {
        let mut v: Vec<String> = [
            "compare",
            "--configs",
            "a.json",
            "b.json",
            "--out",
            "cmp",
            "--force",
        ]
        .map(String::from)
        .to_vec();
        let mut t = tiny(Path::new(data), 2);
        t.retain(|s| s != "--optimizer");
        v.extend(t);
        v
    };
    for (f, o) in [("a.json", "rprop-plus"), ("b.json", "irprop-plus")] {
        std::fs::write(d.path().join(f), format!("{{\"optimizer\": \"{o}\"}}")).unwrap();
    }
    let good = args(data.to_str().unwrap());
    ok(&run(d.path(), &good));
    let before = snapshot(&d.path().join("cmp"));
    assert!(before.contains_key(Path::new("rprop-plus/best.safetensors")));
    let bad = args("nowhere");
    refused(&run(d.path(), &bad), "nowhere");
    assert!(snapshot(&d.path().join("cmp")) == before);
}

// 3. Resume: one consistent pair of files, every size checked, no 28x28 assumption.
#[test]
fn resume_refuses_mismatched_files_and_works_on_other_image_sizes() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "A");
    // B: a 784-64-10 network; its last weights put into A (state and config say 128).
    ok(&run(
        d.path(),
        &with(
            &[
                "train",
                "--optimizer",
                "rprop-plus",
                "--out",
                "B",
                "--hidden",
                "64",
            ],
            &tiny(&data, 3),
        ),
    ));
    let resume = ["train", "--resume", "A", "--epochs", "4"];
    let a = d.path().join("A");
    let keep = std::fs::read(a.join("last.safetensors")).unwrap();
    // The optimizer state holds the weights (the save's commit point): a last.safetensors
    // of another network or epoch (a crash between the renames) is not what resumes.
    std::fs::copy(
        d.path().join("B/last.safetensors"),
        a.join("last.safetensors"),
    )
    .unwrap();
    let before = snapshot(&a);
    // A changed optimizer in the run's config.
    std::fs::write(a.join("last.safetensors"), &keep).unwrap();
    let cfg = std::fs::read_to_string(a.join("config.json")).unwrap();
    std::fs::write(
        a.join("config.json"),
        cfg.replace("\"rprop-plus\"", "\"irprop-plus\""),
    )
    .unwrap();
    refused(&run(d.path(), &resume), "recorded: optimizer");
    std::fs::write(a.join("config.json"), &cfg).unwrap();
    let mut now = snapshot(&a);
    now.insert(
        "last.safetensors".into(),
        std::fs::read(d.path().join("B/last.safetensors")).unwrap(),
    );
    assert!(now == before, "a refused resume changed the run");
    std::fs::copy(
        d.path().join("B/last.safetensors"),
        a.join("last.safetensors"),
    )
    .unwrap();
    ok(&run(d.path(), &resume));
    let w = std::fs::read(a.join("last.safetensors")).unwrap();
    assert!(w.len() == keep.len(), "the resumed run is not 784-128-10");

    // 8x8 images: resume sizes come from the data, not 28x28.
    let small = d.path().join("small");
    common::write_dataset(&small, 300, 50, 8);
    trained(d.path(), &small, "S");
    let out = ok(&run(d.path(), &["train", "--resume", "S", "--epochs", "3"]));
    assert!(out.contains("best epoch"), "{out}");
    let m = std::fs::read_to_string(d.path().join("S/metrics.json")).unwrap();
    assert_eq!(m.matches("\"epoch\"").count(), 3);
}

// 6. Files: no temp file left, outputs are not inputs, PNG only, identical runs give
// identical bytes.
#[test]
fn saves_leave_no_temp_and_never_overwrite_inputs() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "A");
    let before = snapshot(d.path());
    let w = "A/best.safetensors";
    let samples = |out: &str| {
        run(
            d.path(),
            &[
                "samples",
                "--weights",
                w,
                "--data-dir",
                data.to_str().unwrap(),
                "--out",
                out,
            ],
        )
    };
    refused(&samples(w), "PNG");
    let train_into_a_file = with(
        &["train", "--optimizer", "rprop-plus", "--out", w],
        &tiny(&data, 1),
    );
    refused(&run(d.path(), &train_into_a_file), "not a folder");
    refused(
        &run(
            d.path(),
            &["plot", "A/metrics.json", "--out", "A/metrics.json"],
        ),
        "PNG",
    );
    refused(
        &run(d.path(), &["plot", "A/metrics.json", "--out", "x.jpg"]),
        ".png",
    );
    // A metrics file named .png is still an input.
    std::fs::copy(d.path().join("A/metrics.json"), d.path().join("m.png")).unwrap();
    refused(
        &run(d.path(), &["plot", "m.png", "--out", "./m.png"]),
        "is also an input",
    );
    std::fs::remove_file(d.path().join("m.png")).unwrap();
    // A save that fails (the target is a folder) removes its temp file.
    std::fs::create_dir(d.path().join("dir.png")).unwrap();
    refused(
        &run(d.path(), &["plot", "A/metrics.json", "--out", "dir.png"]),
        "cannot write",
    );
    std::fs::remove_dir(d.path().join("dir.png")).unwrap();
    assert!(
        snapshot(d.path()) == before,
        "a refused command wrote a file"
    );

    trained(d.path(), &data, "B");
    for f in [
        "best.safetensors",
        "last.safetensors",
        "optimizer.safetensors",
    ] {
        let (a, b) = (
            std::fs::read(d.path().join("A").join(f)).unwrap(),
            std::fs::read(d.path().join("B").join(f)).unwrap(),
        );
        assert!(a == b, "{f}: identical runs gave different bytes");
    }
}

/// Waits until `dir/metrics.jsonl` records an epoch (appended as each one ends).
fn wait_first_epoch(dir: &Path) {
    let t0 = Instant::now();
    while !std::fs::read_to_string(dir.join("metrics.jsonl")).is_ok_and(|m| m.contains("\"epoch\""))
    {
        assert!(t0.elapsed() < Duration::from_secs(30), "no epoch ran");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// 7. SIGTERM and SIGHUP stop like Ctrl-C: saved and resumable.
#[test]
fn sigterm_and_sighup_save_and_resume() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let t = tiny(&data, 100_000);
    for (sig, name) in [(libc::SIGTERM, "T"), (libc::SIGHUP, "H")] {
        let args = with(&["train", "--optimizer", "rprop-plus", "--out", name], &t);
        let child = hostile_util::command(d.path(), &args).spawn().unwrap();
        wait_first_epoch(&d.path().join(name));
        // SAFETY: signals a child of this test, by its id.
        unsafe { libc::kill(child.id() as i32, sig) };
        let o = hostile_util::wait(child, "train");
        let err = hostile_util::stderr(&o);
        assert_eq!(o.status.code(), Some(130), "{err}");
        assert!(err.contains("interrupted after epoch"), "{err}");
        // The hint fits a signal too (review 9).
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

// 7. compare: a failing config names itself and keeps the others' table; Ctrl-C (here
// SIGTERM) stops it saying what was saved, and no further run starts.
#[test]
fn compare_keeps_finished_runs_on_a_failure_and_on_a_signal() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    std::fs::write(d.path().join("good.json"), r#"{"optimizer": "rprop-plus"}"#).unwrap();
    // Diverges in its first epoch.
    std::fs::write(
        d.path().join("bad.json"),
        r#"{"optimizer": "sgd", "learning_rate": 1e38}"#,
    )
    .unwrap();
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

    let t = tiny(&data, 100_000);
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
    let child = hostile_util::command(d.path(), &args).spawn().unwrap();
    wait_first_epoch(&d.path().join("cmp2/rprop-plus"));
    // SAFETY: signals a child of this test, by its id.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = hostile_util::wait(child, "compare");
    let err = hostile_util::stderr(&o);
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

// 1. SIGKILL at any moment of a `--force` run leaves a whole run in the folder: the old
// one byte-identical, or the new one with its first epoch saved (weights and optimizer
// state); the next run clears leftovers.
#[test]
fn sigkill_during_force_never_leaves_a_broken_run() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "V");
    let before = snapshot(&d.path().join("V"));
    let t = tiny(&data, 100_000);
    let args = with(
        &[
            "train",
            "--optimizer",
            "irprop-plus",
            "--out",
            "V",
            "--force",
        ],
        &t,
    );
    for delay_ms in [0, 5, 30, 200] {
        let mut child = hostile_util::command(d.path(), &args).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        let now = snapshot(&d.path().join("V"));
        let new_run = std::fs::read_to_string(d.path().join("V/config.json"))
            .is_ok_and(|c| c.contains("irprop-plus"))
            && std::fs::read_to_string(d.path().join("V/metrics.json"))
                .is_ok_and(|m| m.contains("\"epoch\""))
            && d.path().join("V/optimizer.safetensors").is_file();
        assert!(
            now == before || new_run,
            "killed after {delay_ms} ms: a broken run"
        );
    }
    let force = with(
        &[
            "train",
            "--optimizer",
            "rprop-plus",
            "--out",
            "V",
            "--force",
        ],
        &tiny(&data, 1),
    );
    ok(&run(d.path(), &force));
    assert!(!d.path().join(".V.new-run").exists());
}
