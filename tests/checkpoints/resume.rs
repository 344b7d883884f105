//! `--resume` through the binary: after Ctrl-C (full batch and mini-batches) a resumed run
//! ends bit-identical to one never stopped; a folder without a run is a clear error.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rprop_lab::checkpoint;
use rprop_lab::metrics::Metrics;
use rprop_lab::model::Layout;

use crate::common::{self, bin, ok, run, stderr};

const RUN: [&str; 14] = [
    "train",
    "--config",
    "configs/irprop-plus.json",
    "--epochs",
    "150",
    "--train-set-size",
    "4000",
    "--train-batch-size",
    "4000",
    "--eval-set-size",
    "500",
    "--eval-batch-size",
    "500",
    "-q",
];

fn epochs_done(dir: &Path) -> usize {
    Metrics::load(&dir.join("metrics.json")).map_or(0, |m| m.epochs.len())
}

/// Starts [`RUN`] into `b`, sends it SIGINT after its third epoch, and checks it stopped
/// saved and resumable, saying so; returns the epochs it ran.
fn interrupted_run(b: &Path) -> usize {
    let child = bin()
        .args(RUN)
        .args(["--backend", "cpu", "--out", b.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while epochs_done(b) < 3 {
        assert!(t0.elapsed() < Duration::from_secs(60), "run did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{e}");
    let stopped = epochs_done(b);
    assert!(
        (3..150).contains(&stopped),
        "stopped after {stopped} epochs"
    );
    assert!(
        e.contains(&format!("interrupted after epoch {stopped}")),
        "{e}"
    );
    assert!(e.contains("--resume"), "{e}");
    for f in [
        "last.safetensors",
        "optimizer.safetensors",
        "best.safetensors",
    ] {
        assert!(b.join(f).exists(), "{f}");
    }
    assert!(!b.join("last.safetensors.tmp").exists());
    stopped
}

/// Asserts runs `a` and `b` recorded the same epochs, bit for bit, and the same best one.
fn assert_same_metrics(a: &Path, b: &Path) {
    let (ma, mb) = (
        Metrics::load(&a.join("metrics.json")).unwrap(),
        Metrics::load(&b.join("metrics.json")).unwrap(),
    );
    assert_eq!(ma.epochs.len(), mb.epochs.len());
    assert_eq!(ma.best_epoch, mb.best_epoch);
    let key = |x: &rprop_lab::metrics::EpochRecord| {
        (
            x.epoch,
            x.train_loss.to_bits(),
            x.eval_loss.to_bits(),
            x.eval_acc,
        )
    };
    for (x, y) in ma.epochs.iter().zip(&mb.epochs) {
        assert_eq!(key(x), key(y));
    }
}

// Ctrl-C then `--resume` (the run's own backend and data folder; only --epochs may change)
// ends bit-identical to a run never stopped; the finished run is extended only on request.
#[test]
fn ctrl_c_then_resume_is_bit_identical_to_an_uninterrupted_run() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    let o = bin()
        .args(RUN)
        .args(["--backend", "cpu", "--out", a.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    interrupted_run(&b);
    let b_str = b.to_str().unwrap();
    let o = run(&["train", "--resume", b_str, "--eta-plus", "1.3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--eta-plus"), "{}", stderr(&o));
    ok(&run(&["train", "--resume", b_str, "-q"]));
    common::assert_same_checkpoints(&a, &b);
    assert_eq!(epochs_done(&a), 150);
    assert_same_metrics(&a, &b);
    // A finished run can be extended, and not resumed past its end by accident.
    let o = run(&["train", "--resume", b_str]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("already ran 150 epochs"),
        "{}",
        stderr(&o)
    );
    ok(&run(&["train", "--resume", b_str, "--epochs", "152", "-q"]));
    assert_eq!(epochs_done(&b), 152);
}

#[test]
fn mini_batch_resume_is_bit_identical() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    let args = |epochs: &'static str, out: &Path| -> Vec<String> {
        [
            "train",
            "--config",
            "configs/adam.json",
            "--train-set-size",
            "2000",
            "--train-batch-size",
            "300",
            "--eval-set-size",
            "200",
            "--eval-batch-size",
            "200",
            "--backend",
            "cpu",
            "-q",
            "--epochs",
            epochs,
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.to_str().unwrap().to_string()])
        .collect()
    };
    for (e, out) in [("6", &a), ("3", &b)] {
        let o = bin().args(args(e, out)).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = bin()
        .args([
            "train",
            "--resume",
            b.to_str().unwrap(),
            "--epochs",
            "6",
            "-q",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    common::assert_same_checkpoints(&a, &b);
    let (_, t) = checkpoint::load_state(&b.join("optimizer.safetensors"), Layout::MNIST.total())
        .map(|(s, e)| (e, s.t))
        .unwrap();
    assert_eq!(t, 6 * 7, "7 batches of at most 300 per epoch, 6 epochs");
}

#[test]
fn resume_of_a_folder_without_a_run_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("config.json"),
        r#"{"optimizer": "rprop-plus"}"#,
    )
    .unwrap();
    let o = bin()
        .args(["train", "--resume", d.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.starts_with("error: ") && e.contains("optimizer.safetensors"),
        "{e}"
    );
    std::fs::write(d.path().join("optimizer.safetensors"), b"junk").unwrap();
    std::fs::write(
        d.path().join("metrics.json"),
        r#"{"optimizer":"rprop-plus","backend":"cpu","best_epoch":0,"epochs":[]}"#,
    )
    .unwrap();
    let o = bin()
        .args(["train", "--resume", d.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("optimizer.safetensors"),
        "{}",
        stderr(&o)
    );
}
