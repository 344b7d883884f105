//! Faults and long runs: Ctrl-C then --resume ends bit-identical, --force, a diverging run
//! keeps its best checkpoint, interrupted writes leave the old file, memory stays flat.

mod common;

use common::{bin, stderr};

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;
use rprop_lab::backend::{Backend, Batch, EpochStats, RunStart};
use rprop_lab::checkpoint;
use rprop_lab::config::Config;
use rprop_lab::cpu::CpuBackend;
use rprop_lab::data::{self, Part};
use rprop_lab::metrics::Metrics;
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{OptimState, Variant};
use rprop_lab::trainer::{self, RunOptions, Start};

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

    let child = bin()
        .args(RUN)
        .args(["--backend", "cpu", "--out", b.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while epochs_done(&b) < 3 {
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
    let stopped = epochs_done(&b);
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

    // Resuming takes the run's own backend and data folder, and only --epochs may change.
    let o = bin()
        .args([
            "train",
            "--resume",
            b.to_str().unwrap(),
            "--eta-plus",
            "1.3",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--eta-plus"), "{}", stderr(&o));
    let o = bin()
        .args(["train", "--resume", b.to_str().unwrap(), "-q"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    common::assert_same_checkpoints(&a, &b);
    let (ma, mb) = (
        Metrics::load(&a.join("metrics.json")).unwrap(),
        Metrics::load(&b.join("metrics.json")).unwrap(),
    );
    assert_eq!(ma.epochs.len(), 150);
    assert_eq!(ma.best_epoch, mb.best_epoch);
    for (x, y) in ma.epochs.iter().zip(&mb.epochs) {
        assert_eq!(
            (
                x.epoch,
                x.train_loss.to_bits(),
                x.eval_loss.to_bits(),
                x.eval_acc
            ),
            (
                y.epoch,
                y.train_loss.to_bits(),
                y.eval_loss.to_bits(),
                y.eval_acc
            )
        );
    }

    // A finished run can be extended, and not resumed past its end by accident.
    let o = bin()
        .args(["train", "--resume", b.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("already ran 150 epochs"),
        "{}",
        stderr(&o)
    );
    let o = bin()
        .args([
            "train",
            "--resume",
            b.to_str().unwrap(),
            "--epochs",
            "152",
            "-q",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(epochs_done(&b), 152);
}

#[test]
fn existing_run_needs_force() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("r");
    let args = [
        "train",
        "--optimizer",
        "rprop-minus",
        "--epochs",
        "2",
        "--train-set-size",
        "300",
        "--train-batch-size",
        "300",
        "--eval-set-size",
        "100",
        "--eval-batch-size",
        "100",
        "--backend",
        "cpu",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ];
    assert!(bin().args(args).output().unwrap().status.success());
    let before = std::fs::read(out.join("best.safetensors")).unwrap();
    let o = bin().args(args).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("already holds a run") && e.contains("--force"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(out.join("best.safetensors")).unwrap(),
        before,
        "untouched"
    );
    let o = bin()
        .args(args)
        .args(["--force", "--seed", "5"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(std::fs::read(out.join("best.safetensors")).unwrap(), before);
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

/// A backend whose loss turns NaN at a chosen epoch (as a diverging run's would).
struct Diverging {
    inner: CpuBackend,
    epoch: usize,
    nan_at: usize,
}

impl Backend for Diverging {
    fn name(&self) -> String {
        "diverging".into()
    }
    fn train_len(&self) -> usize {
        self.inner.train_len()
    }
    fn train_step(&mut self, batch: Batch) -> Result<()> {
        self.inner.train_step(batch)
    }
    fn end_epoch(&mut self) -> Result<EpochStats> {
        self.epoch += 1;
        let mut s = self.inner.end_epoch()?;
        if self.epoch >= self.nan_at {
            self.inner.params.data[0] = f32::NAN;
            s.train.loss = f32::NAN;
        }
        Ok(s)
    }
    fn keep_best(&mut self) -> Result<()> {
        self.inner.keep_best()
    }
    fn best_params(&mut self) -> Result<Params> {
        self.inner.best_params()
    }
    fn params(&mut self) -> Result<Params> {
        self.inner.params()
    }
    fn state(&mut self) -> Result<OptimState> {
        self.inner.state()
    }
    fn restart(&mut self, start: RunStart) -> Result<()> {
        self.epoch = 0;
        self.inner.restart(start)
    }
}

fn small_sets() -> (data::Dataset, data::Dataset) {
    let learn = data::load(&common::mnist_dir(), Part::Learn).unwrap();
    data::split(&learn, 500, 200).unwrap()
}

#[test]
fn non_finite_loss_stops_naming_the_epoch_and_keeps_the_best() {
    let (train, eval) = small_sets();
    let mut cfg = Config::report(Variant::RpropPlus);
    cfg.epochs = 10;
    let d = tempfile::tempdir().unwrap();
    let mut b = Diverging {
        inner: CpuBackend::new(
            &train,
            &eval,
            Params::init(Layout::MNIST, 0),
            cfg.optimizer,
            cfg.hyper(),
        ),
        epoch: 0,
        nan_at: 4,
    };
    let opts = RunOptions {
        out_dir: d.path().to_path_buf(),
        quiet: true,
        progress: None,
        data_dir: None,
        save_every: None,
        replace: None,
        budget_evals: None,
        data_hash: None,
    };
    let e = format!(
        "{:#}",
        trainer::train(&mut b, &cfg, &opts, Start::default()).unwrap_err()
    );
    assert!(e.contains("epoch 4") && e.contains("not finite"), "{e}");
    assert!(
        e.contains("epoch 3") && e.contains("best.safetensors"),
        "{e}"
    );
    let best = checkpoint::load(&d.path().join("best.safetensors"), 784, 10).unwrap();
    assert!(best.data.iter().all(|v| v.is_finite()));
    let m = Metrics::load(&d.path().join("metrics.json")).unwrap();
    assert_eq!((m.epochs.len(), m.best_epoch), (3, 3));
    assert!(
        !d.path().join("last.safetensors").exists(),
        "no diverged weights saved"
    );
}

#[test]
fn interrupted_write_leaves_the_old_file() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("best.safetensors");
    let old = Params::init(Layout::MNIST, 1);
    checkpoint::save(&path, &old, &[]).unwrap();
    // A write that dies before its rename: the temp file is left, the old file is intact.
    let tmp = checkpoint::tmp_path(&path);
    std::fs::write(&tmp, b"half a safetens").unwrap();
    assert_eq!(checkpoint::load(&path, 784, 10).unwrap(), old);
    // A write that cannot complete (here the target is a folder) fails with an error
    // naming the file and leaves no temp file of its own.
    std::fs::remove_file(&tmp).unwrap();
    let folder = d.path().join("x.safetensors");
    std::fs::create_dir(&folder).unwrap();
    let new = Params::init(Layout::MNIST, 2);
    let e = format!("{:#}", checkpoint::save(&folder, &new, &[]).unwrap_err());
    assert!(e.contains("x.safetensors"), "{e}");
    // A taken temp name (planted) is passed over, never written through.
    let planted = checkpoint::tmp_path(&path);
    std::fs::write(&planted, b"stale").unwrap();
    checkpoint::save(&path, &new, &[]).unwrap();
    assert_eq!(checkpoint::load(&path, 784, 10).unwrap(), new);
    assert_eq!(std::fs::read(&planted).unwrap(), b"stale");
    std::fs::remove_file(&planted).unwrap();
    let left: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".rl-tmp-"))
        .collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
}

#[test]
fn optimizer_state_round_trips_exactly() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("optimizer.safetensors");
    let mut s = OptimState::new(7, &rprop_lab::optim::Hyper::default());
    s.step[3] = 0.25;
    s.prev_grad[1] = -1e-30;
    s.prev_change[6] = f32::from_bits(1);
    s.prev_loss = 0.123_456_79;
    checkpoint::save_state(&p, &s, 42).unwrap();
    let (t, epoch) = checkpoint::load_state(&p, 7).unwrap();
    assert_eq!((t, epoch), (s, 42));
    assert!(checkpoint::load_state(&p, 8).is_err(), "wrong model size");
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
