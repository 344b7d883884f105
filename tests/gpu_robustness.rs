//! The GPU backend's part of robustness: every optimizer's state survives a save and a
//! `--resume` exactly (bit-identical to an uninterrupted GPU run).
//!
//! Without an adapter these are reported as ignored (failed when a GPU is required:
//! `RPROP_LAB_REQUIRE_GPU=1`, set by .ci/run, or CI=true; see tests/common/gpu.rs).

mod common;

use rprop_lab::backend::{Backend, RunStart};
use rprop_lab::optim::Variant;

/// Through the binary, for the report's iRprop+: `--resume` of a GPU run.
fn gpu_resume_is_bit_identical() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    let base = [
        "train",
        "--config",
        "configs/irprop-plus.json",
        "--train-set-size",
        "1500",
        "--train-batch-size",
        "1500",
        "--eval-set-size",
        "300",
        "--eval-batch-size",
        "300",
        "--backend",
        "gpu",
        "-q",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let args = with(&["--epochs", "12", "--out", a.to_str().unwrap()]);
    common::ok(&common::run(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let args = with(&["--epochs", "5", "--out", b.to_str().unwrap()]);
    common::ok(&common::run(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    // The run's own backend (gpu) is taken from its metrics.
    common::ok(&common::run(&[
        "train",
        "--resume",
        b.to_str().unwrap(),
        "--epochs",
        "12",
        "-q",
    ]));
    common::assert_same_checkpoints(&a, &b);
    let m = rprop_lab::metrics::Metrics::load(&b.join("metrics.json")).unwrap();
    assert!(m.backend.starts_with("gpu"), "{}", m.backend);
    assert_eq!(m.epochs.len(), 12);
}

/// Every registered per-weight optimizer (multi-evaluation steps resume in tests/gpu_lbfgs.rs,
/// whose steps take seconds each on a software adapter): a run stopped at
/// epoch 3, saved, read back from its files and resumed ends bit-identical to one run
/// straight through. In process, on one backend (`restart`), so the loop costs one GPU
/// set-up rather than three per optimizer.
fn every_gpu_optimizer_resumes_bit_identically() {
    use rprop_lab::checkpoint;
    use rprop_lab::model::{Layout, Params};
    use rprop_lab::optim::OptimState;
    use rprop_lab::trainer::{self, RunOptions, Start};
    let learn = rprop_lab::data::load(&common::mnist_dir(), rprop_lab::data::Part::Learn).unwrap();
    let (train, eval) = rprop_lab::data::split(&learn, 600, 200).unwrap();
    let layout = Layout::new(784, 32, 10);
    let fresh = |v: Variant, cfg: &rprop_lab::config::Config| {
        let p = Params::init(layout, cfg.seed);
        let s = OptimState::for_variant(p.data.len(), v, &cfg.hyper);
        (p, s)
    };
    let mut backend: Option<rprop_lab::gpu::GpuBackend> = None;
    let d = tempfile::tempdir().unwrap();
    let on_gpu: Vec<Variant> = Variant::ALL
        .iter()
        .copied()
        .filter(|v| !v.is_multi_eval())
        .collect();
    assert!(
        on_gpu.len() >= 10,
        "the GPU runs every per-weight optimizer"
    );
    for v in on_gpu {
        let path = format!("{}/configs/{v}.json", env!("CARGO_MANIFEST_DIR"));
        let mut cfg = rprop_lab::config::Config::load(std::path::Path::new(&path)).unwrap();
        (cfg.train_set_size, cfg.train_batch_size) = (600, 600);
        (cfg.eval_set_size, cfg.eval_batch_size, cfg.hidden) = (200, 200, vec![32]);
        let (p, s) = fresh(v, &cfg);
        let b = match backend.as_mut() {
            Some(b) => {
                b.restart(RunStart::new(p, s, v, cfg.hyper)).unwrap();
                b
            }
            None => backend.insert(
                rprop_lab::gpu::GpuBackend::with_state(
                    &train,
                    &eval,
                    RunStart::new(p, s, v, cfg.hyper),
                    &Default::default(),
                )
                .unwrap(),
            ),
        };
        let opts = |dir: &std::path::Path| RunOptions {
            out_dir: dir.to_path_buf(),
            quiet: true,
            progress: None,
            data_dir: None,
            save_every: None,
            replace: None,
            budget_evals: None,
            data_hash: None,
        };
        let (a, bdir) = (
            d.path().join(format!("{v}-a")),
            d.path().join(format!("{v}-b")),
        );
        cfg.epochs = 6;
        trainer::train(b, &cfg, &opts(&a), Start::default()).unwrap();
        let (p, s) = fresh(v, &cfg);
        b.restart(RunStart::new(p, s, v, cfg.hyper)).unwrap();
        cfg.epochs = 3;
        trainer::train(b, &cfg, &opts(&bdir), Start::default()).unwrap();
        // What `--resume` reads: the state file (with the weights) and the metrics.
        let (start, state, _) = Start::resume(&bdir, layout.total()).unwrap();
        let file = checkpoint::load_state_full(&bdir.join(trainer::STATE), layout.total());
        let data = file.unwrap().3.expect("the state file holds the weights");
        b.restart(RunStart::new(Params { layout, data }, state, v, cfg.hyper))
            .unwrap();
        cfg.epochs = 6;
        trainer::train(b, &cfg, &opts(&bdir), start).unwrap();
        // Names the optimizer whose check follows (the check's panic does not).
        eprintln!("resumed {v} on the GPU");
        common::assert_same_checkpoints(&a, &bdir);
    }
}

fn verify_prints_every_tensor_and_passes() {
    for config in ["configs/irprop-plus.json", "configs/quickprop.json"] {
        let o = common::run(&[
            "verify",
            "--config",
            config,
            "--steps",
            "2",
            "--train-set-size",
            "700",
            "--train-batch-size",
            "700",
            "--eval-set-size",
            "100",
            "--eval-batch-size",
            "100",
        ]);
        let text = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{text}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        for t in [
            "Z1",
            "H1",
            "Z2",
            "loss",
            "dZ2",
            "dW2",
            "db2",
            "dH",
            "dW1",
            "db1",
            "weights",
            "step sizes",
            "prev grads",
            "prev changes",
        ] {
            assert!(
                text.contains(&format!("  {t}")),
                "{config}: no line for {t}:\n{text}"
            );
        }
        assert!(!text.contains("FAIL"), "{text}");
        assert!(text.trim_end().ends_with("verify: PASS"), "{text}");
    }
}

fn verify_diff_flags_a_mismatch() {
    use rprop_lab::verify::{diff, exact};
    assert!(diff("x", &[1.0, 2.0], &[1.0, 2.0], 1e-5).pass);
    assert!(!diff("x", &[1.0, 2.001], &[1.0, 2.0], 1e-5).pass);
    assert!(!diff("x", &[f32::NAN], &[1.0], 1e-5).pass);
    assert!(!exact("w", &[1.0], &[f32::from_bits(1.0f32.to_bits() + 1)]).pass);
    assert!(exact("w", &[-0.0, 3.0], &[-0.0, 3.0]).pass);
    assert!(!exact("w", &[0.0], &[-0.0]).pass, "signed zeros count");
}

fn devices_lists_adapters_and_a_missing_one_is_named() {
    let o = common::run(&["devices"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(
        text.starts_with("[0] ") && text.contains("max_storage_buffer_binding_size"),
        "{text}"
    );
    let o = common::run(&[
        "train",
        "--optimizer",
        "rprop-plus",
        "--backend",
        "gpu",
        "--adapter",
        "no-such-gpu",
        "--epochs",
        "1",
        "--train-set-size",
        "100",
        "--train-batch-size",
        "100",
        "--eval-set-size",
        "10",
        "--eval-batch-size",
        "10",
        "--out",
        "/nonexistent/never",
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("no-such-gpu") && e.starts_with("error: "), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
}

fn lost_device_is_a_clear_error_and_keeps_saved_files() {
    use rprop_lab::backend::Backend;
    use rprop_lab::trainer::{self, RunOptions, Start};
    let learn = rprop_lab::data::load(&common::mnist_dir(), rprop_lab::data::Part::Learn).unwrap();
    let (train, eval) = rprop_lab::data::split(&learn, 400, 100).unwrap();
    let mut cfg = rprop_lab::config::Config::report(rprop_lab::optim::Variant::RpropPlus);
    cfg.epochs = 2;
    let mut b = rprop_lab::gpu::GpuBackend::new(
        &train,
        &eval,
        rprop_lab::model::Params::init(rprop_lab::model::Layout::MNIST, 0),
        cfg.optimizer,
        cfg.hyper(),
        &Default::default(),
    )
    .unwrap();
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
    let best = std::fs::read(d.path().join("best.safetensors")).unwrap();
    let metrics = std::fs::read(d.path().join("metrics.json")).unwrap();

    b.destroy_device();
    cfg.epochs = 4;
    let start = Start {
        epoch: 2,
        epochs: run.metrics.epochs.clone(),
    };
    let e = format!(
        "{:#}",
        trainer::train(&mut b, &cfg, &opts, start).unwrap_err()
    );
    assert!(
        e.to_lowercase().contains("device") || e.contains("GPU"),
        "{e}"
    );
    assert!(b.params().is_err(), "no read-back from a lost device");
    // What was saved before the fault is intact.
    assert_eq!(
        std::fs::read(d.path().join("best.safetensors")).unwrap(),
        best
    );
    assert_eq!(
        std::fs::read(d.path().join("metrics.json")).unwrap(),
        metrics
    );
}

/// `--adapter` naming no adapter of the machine: an error that names it (no fallback).
fn unknown_adapter_is_a_clear_error() {
    use rprop_lab::gpu::{GpuBackend, GpuOptions};
    use rprop_lab::model::{Layout, Params};
    use rprop_lab::optim::Hyper;
    let set = rprop_lab::data::Dataset {
        images: (0..10 * 784).map(|i| (i % 251) as u8).collect(),
        labels: (0..10).map(|i| i as u8).collect(),
        rows: 28,
        cols: 28,
    };
    let o = GpuOptions {
        adapter: Some("no-such-adapter-xyz".into()),
        ..Default::default()
    };
    let e = GpuBackend::new(
        &set,
        &set,
        Params::init(Layout::MNIST, 0),
        Variant::RpropMinus,
        Hyper::default(),
        &o,
    )
    .err()
    .expect("must fail");
    assert!(format!("{e:#}").contains("no-such-adapter-xyz"), "{e:#}");
}

fn main() {
    common::gpu::main_with(
        &[
            ("gpu_resume_is_bit_identical", gpu_resume_is_bit_identical),
            (
                "every_gpu_optimizer_resumes_bit_identically",
                every_gpu_optimizer_resumes_bit_identically,
            ),
            (
                "verify_prints_every_tensor_and_passes",
                verify_prints_every_tensor_and_passes,
            ),
            (
                "devices_lists_adapters_and_a_missing_one_is_named",
                devices_lists_adapters_and_a_missing_one_is_named,
            ),
            (
                "lost_device_is_a_clear_error_and_keeps_saved_files",
                lost_device_is_a_clear_error_and_keeps_saved_files,
            ),
            (
                "unknown_adapter_is_a_clear_error",
                unknown_adapter_is_a_clear_error,
            ),
        ],
        &[("verify_diff_flags_a_mismatch", verify_diff_flags_a_mismatch)],
    );
}
