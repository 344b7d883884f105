//! GPU errors are clear and lose nothing: `devices` lists the adapters, an adapter that does
//! not exist is named (no fallback), and a lost device fails the run with the files saved
//! before it intact.

use rprop_lab::backend::Backend;
use rprop_lab::config::Config;
use rprop_lab::data::Dataset;
use rprop_lab::gpu::{GpuBackend, GpuOptions};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, Variant};
use rprop_lab::trainer::{self, Start};

use crate::common;
use crate::common::gpu::GpuTest;
use crate::support::{run_options, sets};

pub const TESTS: &[GpuTest] = &[
    (
        "errors::devices_lists_every_adapter_with_its_limits",
        devices_lists_every_adapter_with_its_limits,
    ),
    (
        "errors::train_with_an_unknown_adapter_exits_2_naming_it",
        train_with_an_unknown_adapter_exits_2_naming_it,
    ),
    (
        "errors::backend_on_an_unknown_adapter_is_an_error_naming_it",
        backend_on_an_unknown_adapter_is_an_error_naming_it,
    ),
    (
        "errors::lost_device_is_a_clear_error_and_keeps_saved_files",
        lost_device_is_a_clear_error_and_keeps_saved_files,
    ),
];

fn devices_lists_every_adapter_with_its_limits() {
    let o = common::run(&["devices"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(
        text.starts_with("[0] ") && text.contains("max_storage_buffer_binding_size"),
        "{text}"
    );
}

fn train_with_an_unknown_adapter_exits_2_naming_it() {
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

/// `GpuOptions::adapter` naming no adapter of the machine: the library's error names it.
fn backend_on_an_unknown_adapter_is_an_error_naming_it() {
    let set = Dataset {
        images: (0..10 * 784).map(|i| (i % 251) as u8).collect(),
        labels: (0..10).map(|i| i as u8).collect(),
        rows: 28,
        cols: 28,
    };
    let o = GpuOptions {
        adapter: Some("no-such-adapter-xyz".into()),
        ..Default::default()
    };
    let (p, v, h) = (
        Params::init(Layout::MNIST, 0),
        Variant::RpropMinus,
        Hyper::default(),
    );
    let e = GpuBackend::new(&set, &set, p, v, h, &o)
        .err()
        .expect("must fail");
    assert!(format!("{e:#}").contains("no-such-adapter-xyz"), "{e:#}");
}

fn lost_device_is_a_clear_error_and_keeps_saved_files() {
    let (train, eval) = sets(400, 100);
    let mut cfg = Config::report(Variant::RpropPlus);
    cfg.epochs = 2;
    let p = Params::init(Layout::MNIST, 0);
    let o = GpuOptions::default();
    let mut b = GpuBackend::new(&train, &eval, p, cfg.optimizer, cfg.hyper(), &o).unwrap();
    let d = tempfile::tempdir().unwrap();
    let opts = run_options(d.path());
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
    let saved = |f: &str| std::fs::read(d.path().join(f)).unwrap();
    assert_eq!(saved("best.safetensors"), best);
    assert_eq!(saved("metrics.json"), metrics);
}
