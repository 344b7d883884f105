//! Rprop telemetry on the GPU (shaders/telemetry.wgsl) against its CPU twin
//! (src/telemetry.rs, driven by the CPU backend), full batch, mini-batches, a deep net and
//! weight decay; and its read-back budget: nothing per epoch, a few bytes per layer and epoch
//! when the trainer takes the rows (at save points), the device history read early when full.
//!
//! Without an adapter these tests are reported as ignored (failed when a GPU is required:
//! `RPROP_LAB_REQUIRE_GPU=1`, set by .ci/run, or CI=true; see tests/common/gpu.rs).

mod common;

use rprop_lab::backend::{Backend, Batch, RunStart};
use rprop_lab::cpu::CpuBackend;
use rprop_lab::data::{self, Dataset, Part};
use rprop_lab::gpu::{GpuBackend, GpuOptions};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, Variant};
use rprop_lab::telemetry::LayerTelemetry;

fn sets(n: usize, n_eval: usize) -> (Dataset, Dataset) {
    let learn = data::load(&common::mnist_dir(), Part::Learn).unwrap();
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

fn gpu_telemetry_matches_cpu() {
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
    let l = Layout::MNIST;
    let mut g = GpuBackend::new(
        &train,
        &eval,
        Params::init(l, 0),
        Variant::RpropPlus,
        Hyper::default(),
        &GpuOptions::default(),
    )
    .unwrap();
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
    // More epochs than the device history holds (256): it is read early, nothing is lost,
    // and the rows stay in order (epoch 1 of a fresh start has no previous gradient).
    let start = RunStart::fresh(Params::init(l, 0), Variant::RpropPlus, Hyper::default());
    g.restart(start).unwrap();
    let mut c = CpuBackend::new(
        &train,
        &eval,
        Params::init(l, 0),
        Variant::RpropPlus,
        Hyper::default(),
    );
    let (gr, cr) = (rows(&mut g, 260, 300), rows(&mut c, 260, 300));
    assert_eq!(gr.len(), 260);
    assert_eq!(gr[0][0].sign_changes, 0.0);
    assert!(gr[1][0].sign_changes > 0.0);
    // The trajectories drift apart over 260 epochs; the first ones agree.
    assert_close(&gr[..20], &cr[..20], "260 epochs");
}

/// `train --backend gpu` writes every epoch's telemetry into metrics.json (taken at the
/// save points), matching a CPU run of the same config.
fn gpu_train_writes_telemetry_like_the_cpu() {
    let d = tempfile::tempdir().unwrap();
    let train = |backend: &str| {
        let out = d.path().join(backend);
        let o = common::run(&[
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
        common::ok(&o);
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

/// This binary run again with no adapter: its GPU tests are reported as ignored, or, when a
/// GPU is required (as .ci/run requires), as failed with the reason.
fn without_an_adapter_gpu_tests_are_ignored_or_fail_when_required() {
    let run = |required: bool| {
        let mut c = std::process::Command::new(std::env::current_exe().unwrap());
        c.args([
            "--exact",
            "gpu_telemetry_matches_cpu",
            "--test-threads",
            "1",
        ])
        .env("RPROP_LAB_TEST_NO_GPU", "1")
        .env_remove("CI")
        .env_remove("RPROP_LAB_REQUIRE_GPU");
        if required {
            c.env("RPROP_LAB_REQUIRE_GPU", "1");
        }
        let o = c.output().unwrap();
        let text =
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        (o.status.success(), text)
    };
    let (ok, text) = run(false);
    assert!(ok, "{text}");
    assert!(
        text.contains("test gpu_telemetry_matches_cpu ... ignored"),
        "{text}"
    );
    assert!(text.contains("1 ignored"), "{text}");
    assert!(text.contains("notice: no GPU adapter found"), "{text}");
    let (ok, text) = run(true);
    assert!(!ok, "{text}");
    assert!(
        text.contains("test gpu_telemetry_matches_cpu ... FAILED"),
        "{text}"
    );
    assert!(
        text.contains("RPROP_LAB_REQUIRE_GPU or CI requires one"),
        "{text}"
    );
}

fn main() {
    common::gpu::main_with(
        &[
            ("gpu_telemetry_matches_cpu", gpu_telemetry_matches_cpu),
            (
                "telemetry_is_read_back_only_when_taken",
                telemetry_is_read_back_only_when_taken,
            ),
            (
                "gpu_train_writes_telemetry_like_the_cpu",
                gpu_train_writes_telemetry_like_the_cpu,
            ),
        ],
        &[(
            "without_an_adapter_gpu_tests_are_ignored_or_fail_when_required",
            without_an_adapter_gpu_tests_are_ignored_or_fail_when_required,
        )],
    );
}
