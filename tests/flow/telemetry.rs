//! Rprop telemetry's CPU twin on hand-computed cases and through the CPU backend and the
//! trainer (the per-layer columns of the metrics).

use crate::common;
use rprop_lab::backend::Backend;
use rprop_lab::cpu::CpuBackend;
use rprop_lab::metrics::Metrics;
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, Variant};
use rprop_lab::telemetry::{self, Counts, STEP_BINS};

#[test]
fn step_bins_and_median_follow_the_documented_definition() {
    let h = Hyper::default();
    assert_eq!(telemetry::step_bin(h.step_min, &h), 0);
    assert_eq!(telemetry::step_bin(h.step_max, &h), STEP_BINS - 1);
    assert_eq!(telemetry::step_bin(1e-9, &h), 0);
    // 1e-3 is at ln(1e-3/1e-6)/ln(5e7) = 6.9078/17.7275 = 0.38966 of the range:
    // bin floor(199.51) = 199.
    assert_eq!(telemetry::step_bin(1e-3, &h), 199);
    // A bin's value is its geometric centre: within a factor 1.0175 of anything in it.
    let v = telemetry::bin_value(199, &h) as f64;
    let width = (5e7f64).powf(1.0 / 512.0);
    assert!((width - 1.0352).abs() < 1e-4, "{width}");
    assert!(v / 1e-3 < width.sqrt() && 1e-3 / v < width.sqrt(), "{v}");
    // Lower median of 5 values: the third; of 4: the second.
    let mut hist = vec![0u32; STEP_BINS];
    hist[10] = 2;
    hist[20] = 1;
    hist[30] = 2;
    assert_eq!(
        telemetry::median(&hist, 5, &h),
        telemetry::bin_value(20, &h)
    );
    hist[30] = 1;
    assert_eq!(
        telemetry::median(&hist, 4, &h),
        telemetry::bin_value(10, &h)
    );
    assert_eq!(telemetry::median(&hist, 0, &h), 0.0);
}

#[test]
fn signs_and_steps_count_per_layer() {
    // 2-2-2: fc1.weight (4), fc1.bias (2), fc2.weight (4), fc2.bias (2), padded.
    let l = Layout::with_hidden(2, &[2], 2).unwrap();
    let ranges = telemetry::layer_ranges(l);
    let n = l.total();
    let mut g = vec![0.0f32; n];
    let mut prev = vec![0.0f32; n];
    let w = vec![1.0f32; n];
    // Layer 1: one sign change in the weights, one in the bias; a zero product is no change.
    let w1 = ranges[0][0].start;
    let b1 = ranges[0][1].start;
    (g[w1], prev[w1]) = (1.0, -2.0);
    (g[w1 + 1], prev[w1 + 1]) = (1.0, 2.0);
    (g[w1 + 2], prev[w1 + 2]) = (0.0, -2.0);
    (g[b1], prev[b1]) = (-1.0, 0.5);
    // Layer 2: one change.
    let w2 = ranges[1][0].start;
    (g[w2], prev[w2]) = (-3.0, 3.0);
    let h = Hyper::default();
    for (v, loss_up, back) in [
        (Variant::RpropPlus, false, [2, 1]),
        (Variant::IrpropPlus, false, [0, 0]),
        (Variant::IrpropPlus, true, [2, 1]),
        (Variant::RpropMinus, true, [0, 0]),
        (Variant::IrpropMinus, true, [0, 0]),
    ] {
        let mut c = vec![Counts::default(), Counts::default()];
        telemetry::signs(l, v, &h, loss_up, (&w, &g, &prev), &mut c);
        assert_eq!((c[0].updates, c[0].sign_changes), (6, 2), "{v}");
        assert_eq!((c[1].updates, c[1].sign_changes), (6, 1), "{v}");
        assert_eq!([c[0].backtracks, c[1].backtracks], back, "{v} {loss_up}");
        let t = c[0].finish(&h);
        assert!((t.sign_changes - 2.0 / 6.0).abs() < 1e-12);
    }
    // Weight decay joins the gradient first: g' = w * 0.5 + g turns -0.25 into +0.25.
    let mut g2 = vec![0.0f32; n];
    let mut p2 = vec![0.0f32; n];
    (g2[w1], p2[w1]) = (-0.25, 1.0);
    let wd = Hyper {
        weight_decay: 0.5,
        ..h
    };
    let mut c = vec![Counts::default(), Counts::default()];
    telemetry::signs(l, Variant::RpropPlus, &h, false, (&w, &g2, &p2), &mut c);
    assert_eq!(c[0].sign_changes, 1);
    let mut c = vec![Counts::default(), Counts::default()];
    telemetry::signs(l, Variant::RpropPlus, &wd, false, (&w, &g2, &p2), &mut c);
    assert_eq!(c[0].sign_changes, 0);
    // Step sizes: two at step_min, one at step_max in layer 1 (6 weights).
    let mut step = vec![1e-3f32; n];
    step[w1] = h.step_min;
    step[w1 + 3] = h.step_min;
    step[b1 + 1] = h.step_max;
    telemetry::steps(l, &h, &step, &mut c);
    let t = c[0].finish(&h);
    assert_eq!((c[0].weights, c[0].at_min, c[0].at_max), (6, 2, 1));
    assert!((t.at_min - 2.0 / 6.0).abs() < 1e-12 && (t.at_max - 1.0 / 6.0).abs() < 1e-12);
    // Sorted: min, min, 1e-3, 1e-3, 1e-3, max: the lower median is 1e-3's bin.
    assert_eq!(t.median_step, telemetry::bin_value(199, &h));
    assert_eq!(c[1].finish(&h).at_min, 0.0);
}

#[test]
fn cpu_backend_telemetry_per_epoch() {
    let learn = rprop_lab::data::load(&common::mnist_dir(), rprop_lab::data::Part::Learn).unwrap();
    let (train, eval) = rprop_lab::data::split(&learn, 1000, 200).unwrap();
    let h = Hyper::default();
    let rows = |v: Variant, epochs: usize| {
        let mut b = CpuBackend::new(&train, &eval, Params::init(Layout::MNIST, 0), v, h);
        for _ in 0..epochs {
            b.epoch().unwrap();
        }
        let r = b.take_telemetry().unwrap();
        assert!(b.take_telemetry().unwrap().is_empty(), "taken once");
        r
    };
    let plus = rows(Variant::RpropPlus, 6);
    assert_eq!(plus.len(), 6);
    assert_eq!(plus[0].len(), 2);
    // Epoch 1 has no previous gradient; every step starts at lr.
    assert_eq!(plus[0][0].sign_changes, 0.0);
    assert_eq!(
        plus[0][0].median_step,
        telemetry::bin_value(telemetry::step_bin(h.lr, &h), &h)
    );
    // Rprop+ backtracks every sign change (a full batch: one update per weight).
    let weights = (784 * 128 + 128) as f64;
    for r in &plus[1..] {
        assert!(r[0].sign_changes > 0.0);
        assert!((r[0].backtracks as f64 - r[0].sign_changes * weights).abs() < 0.5);
    }
    // iRprop-, and iRprop+ while the loss falls: no backtracks.
    for v in [
        Variant::IrpropMinus,
        Variant::IrpropPlus,
        Variant::RpropMinus,
    ] {
        assert!(
            rows(v, 6).iter().flatten().all(|t| t.backtracks == 0),
            "{v}"
        );
    }
    assert!(rows(Variant::Sgd, 2).is_empty(), "no telemetry for SGD");
}

#[test]
fn trainer_writes_telemetry_to_metrics() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run");
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
        "cpu",
        "-q",
        "--no-test",
        "--out",
        out.to_str().unwrap(),
    ]);
    common::ok(&o);
    let m = Metrics::load(&out.join("metrics.json")).unwrap();
    assert!(m.epochs.iter().all(|r| r.telemetry.len() == 2));
    assert!(m.epochs[3].telemetry[0].backtracks > 0);
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    // After the six metrics and grad_evals: l1_sign_changes, l1_backtracks.
    let row: Vec<&str> = csv.lines().nth(4).unwrap().split(',').collect();
    assert_eq!(row[8], m.epochs[3].telemetry[0].backtracks.to_string());
}
