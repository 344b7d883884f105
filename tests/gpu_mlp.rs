//! The GPU backend on any network and batch size, driven by the trainer: one submission and
//! at most 64 bytes read back per epoch (full batch and mini-batches), deep nets and
//! mini-batch steps matching the CPU op by op (`verify`), reproducible runs, and a
//! mini-batch `--resume` bit-identical to an uninterrupted run.
//!
//! Without an adapter these tests are reported as ignored (failed when a GPU is required:
//! `RPROP_LAB_REQUIRE_GPU=1`, set by .ci/run, or CI=true; see tests/common/gpu.rs).

mod common;

use anyhow::Result;
use rprop_lab::backend::{Backend, Batch, EpochStats, RunStart};
use rprop_lab::config::Config;
use rprop_lab::data::{self, Part};
use rprop_lab::gpu::{Counters, GpuBackend, GpuOptions};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, OptimState, Variant};
use rprop_lab::telemetry::LayerTelemetry;
use rprop_lab::trainer::{self, RunOptions, Start};

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

fn sets(n: usize, n_eval: usize) -> (data::Dataset, data::Dataset) {
    let learn = data::load(&common::mnist_dir(), Part::Learn).unwrap();
    data::split(&learn, n, n_eval).unwrap()
}

fn trainer_epoch_is_one_submission_and_at_most_64_bytes_read() {
    let (train, eval) = sets(2000, 500);
    for (batch, hidden) in [(2000, vec![128]), (500, vec![64, 32])] {
        let mut cfg = Config::report(Variant::IrpropPlus);
        (cfg.epochs, cfg.train_set_size, cfg.eval_set_size) = (10, 2000, 500);
        cfg.eval_batch_size = 500;
        cfg.train_batch_size = batch;
        cfg.hidden = hidden;
        let l = cfg.layout(784, 10);
        let g = GpuBackend::new(
            &train,
            &eval,
            Params::init(l, 0),
            cfg.optimizer,
            cfg.hyper(),
            &GpuOptions::default(),
        )
        .unwrap();
        let mut b = Counting {
            g,
            at_epoch_end: vec![Counters::default()],
        };
        let d = tempfile::tempdir().unwrap();
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
        let run = trainer::train(&mut b, &cfg, &opts, Start::default()).unwrap();
        assert_eq!(run.metrics.epochs.len(), 10);
        // Every epoch's Rprop telemetry is recorded, one row per layer, though it is read
        // back only at the end of the run (outside the epochs counted below).
        for r in &run.metrics.epochs {
            assert_eq!(r.telemetry.len(), cfg.hidden.len() + 1, "epoch {}", r.epoch);
        }
        assert_eq!(b.at_epoch_end.len(), 11);
        for (e, w) in b.at_epoch_end.windows(2).enumerate() {
            let (subs, read) = (
                w[1].submissions - w[0].submissions,
                w[1].bytes_read - w[0].bytes_read,
            );
            assert_eq!(subs, 1, "batch {batch}, epoch {}: submissions", e + 1);
            assert!(read <= 64, "batch {batch}, epoch {}: {read} bytes", e + 1);
        }
        // The best weights kept on the device are those saved, and they score as recorded.
        let best =
            rprop_lab::checkpoint::load(&d.path().join("best.safetensors"), 784, 10).unwrap();
        let ev = rprop_lab::cpu::evaluate(&best, &eval);
        assert!(
            (ev.stats.loss - run.best.eval_loss).abs() < 1e-4,
            "best checkpoint eval loss {} vs recorded {}",
            ev.stats.loss,
            run.best.eval_loss
        );
    }
}

fn deep_mini_batch_gpu_runs_are_reproducible_and_learn() {
    let (train, eval) = sets(3000, 500);
    let l = Layout::with_hidden(784, &[64, 48, 32], 10).unwrap();
    // The trainer's loop: seeded shuffle, mini-batches of 700 (the last one 200).
    let run = |b: &mut dyn Backend| {
        let mut last = EpochStats::default();
        for epoch in 1..=4 {
            let order = rprop_lab::backend::epoch_order(train.len(), 7, epoch);
            for rows in order.chunks(700) {
                b.train_step(Batch::Rows(rows)).unwrap();
            }
            last = b.end_epoch().unwrap();
        }
        let bits: Vec<u32> = b
            .params()
            .unwrap()
            .data
            .iter()
            .map(|f| f.to_bits())
            .collect();
        (last, bits)
    };
    let gpu = || {
        GpuBackend::new(
            &train,
            &eval,
            Params::init(l, 1),
            Variant::Adam,
            Hyper::default(),
            &GpuOptions::default(),
        )
        .unwrap()
    };
    let (s1, p1) = run(&mut gpu());
    let (s2, p2) = run(&mut gpu());
    assert_eq!(s1, s2);
    assert_eq!(p1, p2, "two GPU runs gave different weights");
    assert_eq!(s1.train.samples, 3000);
    // Adam moves smoothly, so the GPU run tracks the CPU's closely.
    let mut cpu = rprop_lab::cpu::CpuBackend::new(
        &train,
        &eval,
        Params::init(l, 1),
        Variant::Adam,
        Hyper::default(),
    );
    let (c, _) = run(&mut cpu);
    for (g, c) in [(s1.train, c.train), (s1.eval, c.eval)] {
        assert!(
            (g.loss - c.loss).abs() < 1e-3 * c.loss,
            "loss gpu {} cpu {}",
            g.loss,
            c.loss
        );
        assert!(
            g.correct.abs_diff(c.correct) <= 3,
            "correct gpu {} cpu {}",
            g.correct,
            c.correct
        );
    }
    assert!(
        s1.eval.accuracy() > 0.4,
        "eval accuracy {}",
        s1.eval.accuracy()
    );
}

fn verify_passes_for_a_deep_net_and_mini_batches_with_every_optimizer() {
    // L-BFGS's multi-evaluation step has its own verify test (tests/gpu_lbfgs.rs).
    let optimizers: Vec<&str> = Variant::ALL
        .iter()
        .filter(|v| !v.is_multi_eval())
        .map(|v| v.name())
        .collect();
    // Each optimizer on a deep net, once full-batch (900 rows) and once on mini-batches of a
    // size that leaves a short last batch; the report's one-hidden-layer net too.
    for (i, optimizer) in optimizers.iter().enumerate() {
        for (hidden, batch) in [
            ("48,20,12", "900"),
            ("40,16", ["300", "250"][i % 2]),
            ("128", "400"),
        ] {
            // One hidden layer of 128 is the config's default.
            let net: &[&str] = match hidden {
                "128" => &[],
                _ => &["--hidden", hidden],
            };
            let what = format!("{optimizer}, hidden {hidden}, batch {batch}");
            let args = [&["--optimizer", *optimizer][..], net].concat();
            let text = verify_passes(&args, batch, "3", &what);
            let last = hidden.split(',').count() + 1;
            for t in [
                format!("Z{last}"),
                format!("dZ{last}"),
                format!("dW{last}"),
                "dW1".to_string(),
                "weights".to_string(),
            ] {
                assert!(text.contains(&format!("  {t} ")), "{what}: no {t}:\n{text}");
            }
        }
    }
}

/// The two commands, on a subset: a deep net and mini-batches train on the GPU itself
/// (no move to the CPU), and the run records the GPU backend.
fn deep_and_mini_batch_runs_train_on_the_gpu() {
    let d = tempfile::tempdir().unwrap();
    for (name, extra) in [
        (
            "deep",
            vec!["--hidden", "200,150,100", "--train-batch-size", "3000"],
        ),
        ("mini", vec!["--train-batch-size", "1000"]),
    ] {
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
        assert!(
            m.epochs[2].train_loss < m.epochs[0].train_loss,
            "{name}: train loss {} -> {}",
            m.epochs[0].train_loss,
            m.epochs[2].train_loss
        );
        assert!(m.backend.starts_with("gpu"), "{name}: {}", m.backend);
    }
}

fn gpu_mini_batch_resume_is_bit_identical() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    let train = |out: &std::path::Path, epochs: &str| {
        common::ok(&common::run(&[
            "train",
            "--optimizer",
            "rprop-minus",
            "--hidden",
            "32,16",
            "--train-set-size",
            "1200",
            "--train-batch-size",
            "400",
            "--eval-set-size",
            "200",
            "--eval-batch-size",
            "200",
            "--backend",
            "gpu",
            "--epochs",
            epochs,
            "-q",
            "--out",
            out.to_str().unwrap(),
        ]))
    };
    train(&a, "6");
    train(&b, "3");
    common::ok(&common::run(&[
        "train",
        "--resume",
        b.to_str().unwrap(),
        "--epochs",
        "6",
        "-q",
    ]));
    common::assert_same_checkpoints(&a, &b);
}

/// The sparse strategy's Z1 (block_z1 over the packed set) within verify's tolerances
/// (Z: norm-relative 1e-5), full batch and on gathered mini-batches (dense Z1).
fn verify_passes_with_the_sparse_matmul_kernel() {
    for batch in ["900", "300"] {
        let args = ["--optimizer", "irprop-minus", "--matmul-kernel", "sparse"];
        let text = verify_passes(&args, batch, "3", &format!("sparse, batch {batch}"));
        assert!(text.contains("matmul sparse"), "batch {batch}: {text}");
        assert!(text.contains("  Z1 "), "batch {batch}: no Z1:\n{text}");
    }
}

/// Mini-batches under the texture strategy: the batch's rows are gathered into a texture on
/// the device and the texture kernels run on them (as on the full set), matching the CPU
/// step by step (`verify`, a short last batch included).
fn mini_batches_run_the_texture_kernels_and_match_the_cpu() {
    if common::gpu::strategies(&[rprop_lab::gpu::Strategy::Texture]).is_empty() {
        return; // named as skipped on stderr
    }
    let (train, eval) = sets(900, 100);
    let o = GpuOptions {
        matmul_kernel: Some(rprop_lab::gpu::Strategy::Texture),
        ..Default::default()
    };
    let mut g = GpuBackend::new(
        &train,
        &eval,
        Params::init(Layout::MNIST, 0),
        Variant::IrpropPlus,
        Hyper::default(),
        &o,
    )
    .unwrap();
    let order = rprop_lab::backend::epoch_order(train.len(), 0, 1);
    for rows in order.chunks(250) {
        g.train_step(Batch::Rows(rows)).unwrap();
    }
    g.end_epoch().unwrap();
    assert!(g.uses_textures(), "texture strategy without textures");
    assert_eq!(g.mini_batches_use_textures(), g.uses_textures());
    let args = ["--optimizer", "irprop-plus", "--matmul-kernel", "texture"];
    verify_passes(&args, "250", "4", "texture, batch 250");
}

/// `verify` of `steps` steps on 900 train / 100 eval images in batches of `batch`, with
/// `args` (optimizer, network, strategy): asserts it passes every tensor; returns its output.
fn verify_passes(args: &[&str], batch: &str, steps: &str, what: &str) -> String {
    let sets = [
        "--steps",
        steps,
        "--train-set-size",
        "900",
        "--train-batch-size",
        batch,
        "--eval-set-size",
        "100",
        "--eval-batch-size",
        "100",
    ];
    let o = common::run(&[&["verify"][..], args, &sets].concat());
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what}: {text}{}",
        common::stderr(&o)
    );
    assert!(!text.contains("FAIL"), "{what}: {text}");
    assert!(text.trim_end().ends_with("verify: PASS"), "{what}: {text}");
    text
}

fn main() {
    common::gpu::main(&[
        (
            "verify_passes_with_the_sparse_matmul_kernel",
            verify_passes_with_the_sparse_matmul_kernel,
        ),
        (
            "trainer_epoch_is_one_submission_and_at_most_64_bytes_read",
            trainer_epoch_is_one_submission_and_at_most_64_bytes_read,
        ),
        (
            "deep_mini_batch_gpu_runs_are_reproducible_and_learn",
            deep_mini_batch_gpu_runs_are_reproducible_and_learn,
        ),
        (
            "verify_passes_for_a_deep_net_and_mini_batches_with_every_optimizer",
            verify_passes_for_a_deep_net_and_mini_batches_with_every_optimizer,
        ),
        (
            "deep_and_mini_batch_runs_train_on_the_gpu",
            deep_and_mini_batch_runs_train_on_the_gpu,
        ),
        (
            "gpu_mini_batch_resume_is_bit_identical",
            gpu_mini_batch_resume_is_bit_identical,
        ),
        (
            "mini_batches_run_the_texture_kernels_and_match_the_cpu",
            mini_batches_run_the_texture_kernels_and_match_the_cpu,
        ),
    ]);
}
