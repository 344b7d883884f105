//! Rprop telemetry on the GPU (shaders/telemetry.wgsl) against its CPU twin
//! (src/telemetry.rs, driven by the CPU backend), full batch, mini-batches, a deep net and
//! weight decay; and its read-back budget: nothing per epoch, a few bytes per layer and epoch
//! when the trainer takes the rows (at save points), the device history read early when full.

use rprop_lab::backend::{Backend, Batch, RunStart};
use rprop_lab::cpu::CpuBackend;
use rprop_lab::data::{self, Dataset, Part};
use rprop_lab::gpu::{GpuBackend, GpuOptions};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, Variant};
use rprop_lab::telemetry::LayerTelemetry;

use crate::common::gpu::GpuTest;

pub const TESTS: &[GpuTest] = &[
    (
        "telemetry::telemetry_matches_the_cpu_twin",
        telemetry_matches_the_cpu_twin,
    ),
    (
        "telemetry::telemetry_is_read_back_only_when_taken",
        telemetry_is_read_back_only_when_taken,
    ),
    (
        "telemetry::a_full_device_history_is_read_early_and_kept_in_order",
        a_full_device_history_is_read_early_and_kept_in_order,
    ),
    (
        "telemetry::train_writes_telemetry_like_a_cpu_run",
        train_writes_telemetry_like_a_cpu_run,
    ),
];

fn sets(n: usize, n_eval: usize) -> (Dataset, Dataset) {
    let learn = data::load(&crate::common::mnist_dir(), Part::Learn).unwrap();
    data::split(&learn, n, n_eval).unwrap()
}

/// Runs `epochs` epochs (mini-batches of `batch` rows, in order, when below the set) and
/// returns the telemetry rows.
fn rows(b: &mut dyn Backend, epochs: usize, batch: usize) -> Vec<Vec<LayerTelemetry>> {
    let n = b.train_len() as u32;
    let order: Vec<u32> = (0..n).collect();
    for _ in 0..epochs {
        if (batch as u32) < n {
            for r in order.chunks(batch) {
                b.train_step(Batch::Rows(r)).unwrap();
            }
        } else {
            b.train_step(Batch::Full).unwrap();
        }
        b.end_epoch().unwrap();
    }
    b.take_telemetry().unwrap()
}

/// GPU and CPU rows agree: the gradients differ by summation order only, so a weight whose
/// gradient is within rounding of zero may flip its sign test; counts within 0.2% of the
/// weights, medians within one histogram bin (a factor 1.035).
fn assert_close(gpu: &[Vec<LayerTelemetry>], cpu: &[Vec<LayerTelemetry>], what: &str) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: epochs");
    for (e, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        assert_eq!(g.len(), c.len(), "{what}: layers");
        for (l, (g, c)) in g.iter().zip(c).enumerate() {
            let at = format!(
                "{what}: epoch {} layer {}: gpu {g:?} cpu {c:?}",
                e + 1,
                l + 1
            );
            assert!((g.sign_changes - c.sign_changes).abs() <= 2e-3, "{at}");
            let tol = 2.0 + 2e-3 * c.backtracks as f64;
            assert!(
                (g.backtracks as f64 - c.backtracks as f64).abs() <= tol,
                "{at}"
            );
            assert!((g.at_min - c.at_min).abs() <= 2e-3, "{at}");
            assert!((g.at_max - c.at_max).abs() <= 2e-3, "{at}");
            let ratio = g.median_step / c.median_step;
            assert!((1.0 / 1.04..=1.04).contains(&ratio), "{at}");
        }
    }
}

fn telemetry_matches_the_cpu_twin() {
    let (train, eval) = sets(1000, 200);
    let wd = Hyper {
        weight_decay: 0.01,
        ..Hyper::default()
    };
    // Large steps so some step sizes reach step_max and shrink to step_min within a few epochs.
    let wild = Hyper {
        lr: 0.5,
        eta_minus: 0.1,
        step_max: 1.0,
        step_min: 0.01,
        ..Hyper::default()
    };
    let cases = [
        (Variant::RpropPlus, Hyper::default(), vec![128], 1000),
        (Variant::IrpropPlus, wild, vec![128], 1000),
        (Variant::RpropMinus, wd, vec![64, 32], 1000),
        (Variant::IrpropMinus, Hyper::default(), vec![128], 250),
        (Variant::IrpropPlus, Hyper::default(), vec![128], 300),
    ];
    for (v, h, hidden, batch) in cases {
        let l = Layout::with_hidden(784, &hidden, 10).unwrap();
        let p = Params::init(l, 3);
        let mut g =
            GpuBackend::new(&train, &eval, p.clone(), v, h, &GpuOptions::default()).unwrap();
        let mut c = CpuBackend::new(&train, &eval, p, v, h);
        let what = format!("{v} {hidden:?} batch {batch}");
        let (gr, cr) = (rows(&mut g, 5, batch), rows(&mut c, 5, batch));
        assert_eq!(cr.len(), 5, "{what}");
        assert_eq!(cr[0].len(), hidden.len() + 1, "{what}: a row per layer");
        assert_close(&gr, &cr, &what);
        if v == Variant::IrpropPlus && h.lr == 0.5 {
            // The wild steps do reach the bounds: the bound counts are exercised.
            assert!(cr.iter().flatten().any(|t| t.at_max > 0.0), "{cr:?}");
            assert!(cr.iter().flatten().any(|t| t.at_min > 0.0), "{cr:?}");
            // Its loss goes up, so iRprop+ backtracks.
            assert!(cr.iter().flatten().any(|t| t.backtracks > 0), "{cr:?}");
        }
        if v == Variant::RpropPlus {
            assert!(cr[1][0].backtracks > 1000, "{cr:?}");
        }
    }
}

fn telemetry_is_read_back_only_when_taken() {
    let (train, eval) = sets(300, 100);
    let (p, v, h) = (
        Params::init(Layout::MNIST, 0),
        Variant::RpropPlus,
        Hyper::default(),
    );
    let mut g = GpuBackend::new(&train, &eval, p, v, h, &GpuOptions::default()).unwrap();
    let before = g.counters().bytes_read;
    for _ in 0..5 {
        g.train_step(Batch::Full).unwrap();
        g.end_epoch().unwrap();
    }
    // Epochs read their 32 bytes of metrics and nothing more.
    assert_eq!(g.counters().bytes_read - before, 5 * 32);
    let taken = g.take_telemetry().unwrap();
    assert_eq!(taken.len(), 5);
    // 7 words per layer and epoch, once.
    assert_eq!(g.counters().bytes_read - before, 5 * 32 + 5 * 2 * 7 * 4);
    assert!(g.take_telemetry().unwrap().is_empty());
}

/// More epochs than the device history holds (256): it is read early, nothing is lost, and
/// the rows stay in order (epoch 1 of a fresh start has no previous gradient).
fn a_full_device_history_is_read_early_and_kept_in_order() {
    let (train, eval) = sets(300, 100);
    let (p, v, h) = (
        Params::init(Layout::MNIST, 0),
        Variant::RpropPlus,
        Hyper::default(),
    );
    let mut g = GpuBackend::new(&train, &eval, p.clone(), v, h, &GpuOptions::default()).unwrap();
    // From a restart after an epoch, so the history and the sign test start over.
    rows(&mut g, 1, 300);
    g.restart(RunStart::fresh(p.clone(), v, h)).unwrap();
    let mut c = CpuBackend::new(&train, &eval, p, v, h);
    let (gr, cr) = (rows(&mut g, 260, 300), rows(&mut c, 260, 300));
    assert_eq!(gr.len(), 260);
    assert_eq!(gr[0][0].sign_changes, 0.0);
    assert!(gr[1][0].sign_changes > 0.0);
    // The trajectories drift apart over 260 epochs; the first ones agree.
    assert_close(&gr[..20], &cr[..20], "260 epochs");
}

/// `train --backend gpu` writes every epoch's telemetry into metrics.json (taken at the
/// save points), matching a CPU run of the same config.
fn train_writes_telemetry_like_a_cpu_run() {
    let d = tempfile::tempdir().unwrap();
    let train = |backend: &str| {
        let out = d.path().join(backend);
        let o = crate::common::run(&[
            "train",
            "--optimizer",
            "rprop-plus",
            "--epochs",
            "5",
            "--save-every",
            "2",
            "--train-set-size",
            "1000",
            "--train-batch-size",
            "1000",
            "--eval-set-size",
            "200",
            "--eval-batch-size",
            "200",
            "--backend",
            backend,
            "-q",
            "--no-test",
            "--out",
            out.to_str().unwrap(),
        ]);
        crate::common::ok(&o);
        rprop_lab::metrics::Metrics::load(&out.join("metrics.json")).unwrap()
    };
    let (g, c) = (train("gpu"), train("cpu"));
    assert!(g.backend.starts_with("gpu"), "{}", g.backend);
    let rows = |m: &rprop_lab::metrics::Metrics| {
        m.epochs
            .iter()
            .map(|r| r.telemetry.clone())
            .collect::<Vec<_>>()
    };
    assert!(rows(&g).iter().all(|r| r.len() == 2), "{:?}", rows(&g));
    assert_close(&rows(&g), &rows(&c), "train --backend gpu vs cpu");
}
