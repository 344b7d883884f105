//! Training on the GPU through the trainer and the binary: one submission and at most 64 bytes
//! read back per epoch (full batch and mini-batches), deep nets and mini-batches train on the
//! GPU itself, reproducibly and close to the CPU.

use anyhow::Result;
use rprop_lab::backend::{Backend, Batch, EpochStats, RunStart};
use rprop_lab::config::Config;
use rprop_lab::gpu::{Counters, GpuBackend, GpuOptions, Strategy};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, OptimState, Variant};
use rprop_lab::telemetry::LayerTelemetry;
use rprop_lab::trainer::{self, Start};

use crate::common;
use crate::common::gpu::{strategies, GpuTest};
use crate::support::{run_options, sets};

pub const TESTS: &[GpuTest] = &[
    (
        "training::full_batch_epoch_is_one_submission_and_at_most_64_bytes_read",
        full_batch_epoch_is_one_submission_and_at_most_64_bytes_read,
    ),
    (
        "training::deep_mini_batch_epoch_is_one_submission_and_at_most_64_bytes_read",
        deep_mini_batch_epoch_is_one_submission_and_at_most_64_bytes_read,
    ),
    (
        "training::deep_mini_batch_runs_are_reproducible_and_track_the_cpu",
        deep_mini_batch_runs_are_reproducible_and_track_the_cpu,
    ),
    (
        "training::train_runs_a_deep_net_on_the_gpu",
        train_runs_a_deep_net_on_the_gpu,
    ),
    (
        "training::train_runs_mini_batches_on_the_gpu",
        train_runs_mini_batches_on_the_gpu,
    ),
    (
        "training::texture_strategy_gathers_mini_batches_into_textures",
        texture_strategy_gathers_mini_batches_into_textures,
    ),
];

/// A GPU backend that records its traffic counters at the end of every epoch.
struct Counting {
    g: GpuBackend,
    at_epoch_end: Vec<Counters>,
}

impl Backend for Counting {
    fn name(&self) -> String {
        self.g.name()
    }
    fn train_len(&self) -> usize {
        self.g.train_len()
    }
    fn train_step(&mut self, batch: Batch) -> Result<()> {
        self.g.train_step(batch)
    }
    fn end_epoch(&mut self) -> Result<EpochStats> {
        let s = self.g.end_epoch()?;
        self.at_epoch_end.push(self.g.counters());
        Ok(s)
    }
    fn keep_best(&mut self) -> Result<()> {
        self.g.keep_best()
    }
    fn best_params(&mut self) -> Result<Params> {
        self.g.best_params()
    }
    fn params(&mut self) -> Result<Params> {
        self.g.params()
    }
    fn state(&mut self) -> Result<OptimState> {
        self.g.state()
    }
    fn restart(&mut self, start: RunStart) -> Result<()> {
        self.g.restart(start)
    }
    fn take_telemetry(&mut self) -> Result<Vec<Vec<LayerTelemetry>>> {
        self.g.take_telemetry()
    }
}

/// Ten epochs of the trainer on 2,000 images in batches of `batch`, counting the traffic of
/// each; the telemetry rows and the best checkpoint as the run records them.
fn check_trainer_traffic(batch: usize, hidden: Vec<usize>) {
    let (train, eval) = sets(2000, 500);
    let mut cfg = Config::report(Variant::IrpropPlus);
    (cfg.epochs, cfg.train_set_size, cfg.eval_set_size) = (10, 2000, 500);
    (cfg.eval_batch_size, cfg.train_batch_size, cfg.hidden) = (500, batch, hidden);
    let p = Params::init(cfg.layout(784, 10), 0);
    let o = GpuOptions::default();
    let g = GpuBackend::new(&train, &eval, p, cfg.optimizer, cfg.hyper(), &o).unwrap();
    let at_epoch_end = vec![Counters::default()];
    let mut b = Counting { g, at_epoch_end };
    let d = tempfile::tempdir().unwrap();
    let run = trainer::train(&mut b, &cfg, &run_options(d.path()), Start::default()).unwrap();
    assert_eq!(run.metrics.epochs.len(), 10);
    // Every epoch's Rprop telemetry is recorded, one row per layer, though it is read
    // back only at the end of the run (outside the epochs counted below).
    for r in &run.metrics.epochs {
        assert_eq!(r.telemetry.len(), cfg.hidden.len() + 1, "epoch {}", r.epoch);
    }
    assert_eq!(b.at_epoch_end.len(), 11);
    for (e, w) in b.at_epoch_end.windows(2).enumerate() {
        let subs = w[1].submissions - w[0].submissions;
        let read = w[1].bytes_read - w[0].bytes_read;
        assert_eq!(subs, 1, "batch {batch}, epoch {}: submissions", e + 1);
        assert!(read <= 64, "batch {batch}, epoch {}: {read} bytes", e + 1);
    }
    // The best weights kept on the device are those saved, and they score as recorded.
    let best = rprop_lab::checkpoint::load(&d.path().join("best.safetensors"), 784, 10).unwrap();
    let ev = rprop_lab::cpu::evaluate(&best, &eval);
    assert!(
        (ev.stats.loss - run.best.eval_loss).abs() < 1e-4,
        "best checkpoint eval loss {} vs recorded {}",
        ev.stats.loss,
        run.best.eval_loss
    );
}

fn full_batch_epoch_is_one_submission_and_at_most_64_bytes_read() {
    check_trainer_traffic(2000, vec![128]);
}

fn deep_mini_batch_epoch_is_one_submission_and_at_most_64_bytes_read() {
    check_trainer_traffic(500, vec![64, 32]);
}

/// The trainer's loop: seeded shuffle, 4 epochs of mini-batches of 700 (the last one short);
/// the last epoch's stats and the weights' bits.
fn four_mini_batch_epochs(b: &mut dyn Backend) -> (EpochStats, Vec<u32>) {
    let n = b.train_len();
    let mut last = EpochStats::default();
    for epoch in 1..=4 {
        let order = rprop_lab::backend::epoch_order(n, 7, epoch);
        for rows in order.chunks(700) {
            b.train_step(Batch::Rows(rows)).unwrap();
        }
        last = b.end_epoch().unwrap();
    }
    let p = b.params().unwrap();
    (last, p.data.iter().map(|f| f.to_bits()).collect())
}

fn deep_mini_batch_runs_are_reproducible_and_track_the_cpu() {
    let (train, eval) = sets(3000, 500);
    let l = Layout::with_hidden(784, &[64, 48, 32], 10).unwrap();
    let (v, h) = (Variant::Adam, Hyper::default());
    let gpu = || {
        GpuBackend::new(
            &train,
            &eval,
            Params::init(l, 1),
            v,
            h,
            &GpuOptions::default(),
        )
        .unwrap()
    };
    let (s1, p1) = four_mini_batch_epochs(&mut gpu());
    let (s2, p2) = four_mini_batch_epochs(&mut gpu());
    assert_eq!(s1, s2);
    assert_eq!(p1, p2, "two GPU runs gave different weights");
    assert_eq!(s1.train.samples, 3000);
    // Adam moves smoothly, so the GPU run tracks the CPU's closely.
    let mut cpu = rprop_lab::cpu::CpuBackend::new(&train, &eval, Params::init(l, 1), v, h);
    let (c, _) = four_mini_batch_epochs(&mut cpu);
    for (g, c) in [(s1.train, c.train), (s1.eval, c.eval)] {
        let (gl, cl) = (g.loss, c.loss);
        assert!((gl - cl).abs() < 1e-3 * cl, "loss gpu {gl} cpu {cl}");
        let (gc, cc) = (g.correct, c.correct);
        assert!(gc.abs_diff(cc) <= 3, "correct gpu {gc} cpu {cc}");
    }
    let acc = s1.eval.accuracy();
    assert!(acc > 0.4, "eval accuracy {acc}");
}

/// `train --backend gpu` with `extra` on a subset trains on the GPU itself (no move to the
/// CPU): 3 epochs, the loss goes down, and the run records the GPU backend.
fn check_trains_on_the_gpu(name: &str, extra: &[&str]) {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join(name);
    let mut args = vec![
        "train",
        "--config",
        "configs/irprop-plus.json",
        "--backend",
        "gpu",
        "--epochs",
        "3",
        "--train-set-size",
        "3000",
        "--eval-set-size",
        "500",
        "--eval-batch-size",
        "500",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    let o = common::run(&args);
    let err = common::stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{name}: {err}");
    assert!(!err.to_lowercase().contains("cpu"), "{name}: {err}");
    let m = rprop_lab::metrics::Metrics::load(&out.join("metrics.json")).unwrap();
    assert_eq!(m.epochs.len(), 3, "{name}");
    let (first, last) = (m.epochs[0].train_loss, m.epochs[2].train_loss);
    assert!(last < first, "{name}: train loss {first} -> {last}");
    assert!(m.backend.starts_with("gpu"), "{name}: {}", m.backend);
}

fn train_runs_a_deep_net_on_the_gpu() {
    let extra = ["--hidden", "200,150,100", "--train-batch-size", "3000"];
    check_trains_on_the_gpu("deep", &extra);
}

fn train_runs_mini_batches_on_the_gpu() {
    check_trains_on_the_gpu("mini", &["--train-batch-size", "1000"]);
}

/// Mini-batches under the texture strategy: the batch's rows are gathered into a texture on
/// the device and the texture kernels run on them, as on the full set (their numbers:
/// verify::texture_mini_batches_match_the_cpu).
fn texture_strategy_gathers_mini_batches_into_textures() {
    if strategies(&[Strategy::Texture]).is_empty() {
        return; // named as skipped on stderr
    }
    let (train, eval) = sets(900, 100);
    let o = GpuOptions {
        matmul_kernel: Some(Strategy::Texture),
        ..Default::default()
    };
    let (p, v, h) = (
        Params::init(Layout::MNIST, 0),
        Variant::IrpropPlus,
        Hyper::default(),
    );
    let mut g = GpuBackend::new(&train, &eval, p, v, h, &o).unwrap();
    let order = rprop_lab::backend::epoch_order(train.len(), 0, 1);
    for rows in order.chunks(250) {
        g.train_step(Batch::Rows(rows)).unwrap();
    }
    g.end_epoch().unwrap();
    assert!(g.uses_textures(), "texture strategy without textures");
    assert_eq!(g.mini_batches_use_textures(), g.uses_textures());
}
