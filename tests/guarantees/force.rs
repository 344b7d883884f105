//! `--force`: everything is checked before the old run is touched, and a run killed at any
//! moment leaves the old run or a whole new one.

use crate::capped::{self, ok, refused, run, snapshot, tiny, tiny_data, tiny_train, trained};
use crate::common;
use std::path::Path;
use std::time::Duration;

// --force checks everything (data, weights, adapter, the first epoch) before it touches the
// old run.
#[test]
fn force_with_a_bad_input_leaves_the_old_run_byte_identical() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "V");
    std::fs::write(d.path().join("V/notes.txt"), "mine").unwrap();
    let before = snapshot(d.path());
    std::fs::write(d.path().join("junk.safetensors"), b"junk").unwrap();
    let force = ["--out", "V", "--force"];
    let cases: [(&str, &[&str], &str, &Path); 4] = [
        ("rprop-plus", &[], "nowhere", Path::new("nowhere")),
        (
            "rprop-plus",
            &["--init-weights", "junk.safetensors"],
            "junk.safetensors",
            &data,
        ),
        (
            "rprop-plus",
            &["--adapter", "no-such-adapter-xyz"],
            "GPU",
            &data,
        ),
        // Diverges in epoch 1: fails before any epoch is written.
        (
            "sgd",
            &["--learning-rate", "1e38"],
            "is kept as it was",
            &data,
        ),
    ];
    for (optimizer, extra, needle, data) in cases {
        let mut args = tiny_train(optimizer, data, 2, &force);
        args.extend(extra.iter().map(|s| s.to_string()));
        if needle == "GPU" {
            for a in args.iter_mut().filter(|a| *a == "cpu") {
                *a = "gpu".into();
            }
        }
        refused(&run(d.path(), &args), needle);
        let mut now = snapshot(d.path());
        now.remove(Path::new("junk.safetensors"));
        assert!(now == before, "{extra:?} changed the old run");
    }
}

// The weights of the run being replaced can start the new one (they are read first); a
// folder left by a run killed before its first epoch is cleared; the user's files follow.
#[test]
fn force_reads_the_old_weights_first_and_clears_a_killed_runs_folder() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "V");
    std::fs::write(d.path().join("V/notes.txt"), "mine").unwrap();
    let before = snapshot(d.path());
    let stale = d.path().join(".V.new-run");
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("config.json"), "{}").unwrap();
    let args = [
        "--out",
        "V",
        "--force",
        "--init-weights",
        "V/best.safetensors",
    ];
    let out = ok(&run(d.path(), &tiny_train("rprop-plus", &data, 2, &args)));
    assert!(out.contains("saved V/best.safetensors"), "{out}");
    let after = snapshot(d.path());
    assert_ne!(
        after[Path::new("V/best.safetensors")],
        before[Path::new("V/best.safetensors")]
    );
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

// SIGKILL at any moment of a `--force` run leaves the old run byte-identical or a whole new
// one (its first epoch saved: weights and optimizer state, before the swap) that resumes;
// the next `--force` clears what a kill left.
#[test]
fn sigkill_during_force_leaves_the_old_run_or_a_resumable_new_one() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "V");
    let v = d.path().join("V");
    let before = snapshot(&v);
    let args = tiny_train("irprop-plus", &data, 100_000, &["--out", "V", "--force"]);
    let mut swapped = false;
    for delay_ms in [0, 5, 30, 200, 400] {
        let mut child = capped::command(d.path(), &args).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        if snapshot(&v) == before {
            continue;
        }
        swapped = true;
        let config = std::fs::read_to_string(v.join("config.json")).unwrap();
        assert!(config.contains("irprop-plus"), "killed after {delay_ms} ms");
        let metrics = std::fs::read_to_string(v.join("metrics.json")).unwrap();
        assert!(metrics.contains("\"epoch\""), "killed after {delay_ms} ms");
        for f in [
            "last.safetensors",
            "optimizer.safetensors",
            "best.safetensors",
        ] {
            assert!(v.join(f).is_file(), "killed after {delay_ms} ms: no {f}");
        }
    }
    assert!(
        swapped,
        "no kill came after the swap; the test proves nothing"
    );
    // The new run resumes (a few epochs more than it has, so this ends quickly).
    let m = std::fs::read_to_string(v.join("metrics.json")).unwrap();
    let more = (m.matches("\"eval_loss\"").count() + 2).to_string();
    ok(&run(
        d.path(),
        &["train", "--resume", "V", "--epochs", &more, "-q"],
    ));
    let force = tiny_train("rprop-plus", &data, 1, &["--out", "V", "--force"]);
    ok(&run(d.path(), &force));
    assert!(!d.path().join(".V.new-run").exists());
}

// A broken test set is found before training, so `--force` keeps the old run.
#[test]
fn a_broken_test_set_fails_before_force_replaces_the_run() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "V");
    let before = snapshot(&d.path().join("V"));
    for file in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        let broken = d.path().join("broken");
        common::write_dataset(&broken, 300, 50, 28);
        let bytes = std::fs::read(broken.join(file)).unwrap();
        std::fs::write(broken.join(file), &bytes[..bytes.len() / 2]).unwrap();
        let args = tiny_train("rprop-plus", &broken, 2, &["--out", "V", "--force"]);
        refused(&run(d.path(), &args), file);
        assert!(snapshot(&d.path().join("V")) == before, "{file}: V changed");
    }
}

// A test set of another image size is refused before `--force` touches the run.
#[test]
fn force_checks_the_test_set_shape_before_touching_the_run() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "OLD");
    let before = snapshot(&d.path().join("OLD"));
    let small = d.path().join("small");
    common::write_dataset(&small, 300, 50, 14);
    let mixed = d.path().join("mixed");
    common::write_dataset(&mixed, 300, 50, 28);
    for f in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(small.join(f), mixed.join(f)).unwrap();
    }
    let args = tiny_train("rprop-plus", &mixed, 2, &["--out", "OLD", "--force"]);
    refused(&run(d.path(), &args), "test images are 14x14");
    assert!(snapshot(&d.path().join("OLD")) == before, "OLD changed");
    assert!(!d.path().join(".OLD.new-run").exists());
}
