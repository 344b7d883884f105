//! What a fault leaves: an existing run is kept unless `--force`, a diverging run stops
//! naming the epoch and keeps its best checkpoint, an interrupted write leaves the old file.

use anyhow::Result;
use rprop_lab::backend::{Backend, Batch, EpochStats, RunStart};
use rprop_lab::checkpoint;
use rprop_lab::config::Config;
use rprop_lab::cpu::CpuBackend;
use rprop_lab::data::{self, Part};
use rprop_lab::metrics::Metrics;
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{OptimState, Variant};
use rprop_lab::trainer::{self, Start};

use crate::common::{self, bin, stderr};

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
    let opts = common::quiet_run(d.path().to_path_buf());
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
