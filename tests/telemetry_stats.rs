//! Rprop telemetry's CPU twin on hand-computed cases and through the CPU backend and the
//! trainer; the seed statistics; the chart styles; the history lines of a terminal run.

mod common;

use rprop_lab::backend::Backend;
use rprop_lab::compare::{self, parse_seeds};
use rprop_lab::config::Config;
use rprop_lab::cpu::CpuBackend;
use rprop_lab::metrics::Metrics;
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, Variant};
use rprop_lab::plot::{style_of, LineKind, PALETTE};
use rprop_lab::stats;
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

#[test]
fn seed_statistics() {
    assert_eq!(stats::mean_std(&[0.95]), (0.95, 0.0));
    let (m, s) = stats::mean_std(&[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(m, 2.5);
    assert!((s - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    assert_eq!(stats::t975(1), 12.706);
    assert_eq!(stats::t975(9), 2.262);
    // Beyond the table: within 0.002 of t_0.975(40) = 2.021 and t_0.975(120) = 1.980.
    assert!((stats::t975(40) - 2.021).abs() < 2e-3);
    assert!((stats::t975(120) - 1.980).abs() < 2e-3);
    let s = stats::summarize(&[0.95, 0.96, 0.94, 0.95, 0.96, 0.95, 0.94, 0.95, 0.96, 0.94]);
    assert_eq!(s.n, 10);
    let half = 2.262 * s.std / 10f64.sqrt();
    assert!((s.hi - s.mean - half).abs() < 1e-12 && (s.mean - s.lo - half).abs() < 1e-12);
    assert!(stats::summarize(&[0.9]).lo.is_nan());
    assert_eq!(parse_seeds("0..9").unwrap(), (0..=9).collect::<Vec<u64>>());
    assert_eq!(parse_seeds("2..=4").unwrap(), vec![2, 3, 4]);
    assert_eq!(parse_seeds("7, 1,3").unwrap(), vec![7, 1, 3]);
    assert!(parse_seeds("0..5000").unwrap_err().contains("at most 1000"));
}

#[test]
fn report_numbers_belong_to_the_report_settings_only() {
    for v in Variant::report_set() {
        let mut c = Config::report(v);
        assert!(compare::is_report_settings(&c));
        c.seed = 7;
        assert!(compare::is_report_settings(&c), "any seed");
        c.epochs = 2;
        assert!(
            !compare::is_report_settings(&c),
            "2 epochs are not the report's"
        );
    }
    let mut c = Config::report(Variant::IrpropPlus);
    c.hidden = vec![200, 100];
    assert!(!compare::is_report_settings(&c));
}

#[test]
fn chart_styles_keep_one_colour_per_optimizer_and_tell_overlaps_apart() {
    for (i, v) in Variant::ALL.iter().enumerate() {
        assert_eq!(style_of(v.name(), 0).0, PALETTE[i % PALETTE.len()], "{v}");
        assert_eq!(
            style_of(v.name(), 1).0,
            PALETTE[i % PALETTE.len()],
            "{v}: same colour again"
        );
    }
    // iRprop- is drawn dashed (with markers) over iRprop+'s solid line.
    assert_eq!(style_of("irprop-plus", 0).1, LineKind::Solid);
    assert_eq!(style_of("irprop-minus", 0).1, LineKind::Dashed);
    // A second run of one optimizer takes another stroke.
    assert_ne!(style_of("irprop-plus", 1).1, style_of("irprop-plus", 0).1);
    assert_eq!(rprop_lab::plot::zoom_start(50), 10);
    assert_eq!(rprop_lab::plot::zoom_start(3), 1);
}

#[test]
fn terminal_runs_keep_about_ten_history_lines() {
    let due: Vec<usize> = (1..=50)
        .filter(|&e| rprop_lab::trainer::history_due(e, 50))
        .collect();
    assert_eq!(due, [1, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50]);
    let due: Vec<usize> = (1..=3)
        .filter(|&e| rprop_lab::trainer::history_due(e, 3))
        .collect();
    assert_eq!(due, [1, 2, 3]);
}

#[test]
fn plot_labels_group_seed_folders_and_name_shared_optimizers() {
    let d = tempfile::tempdir().unwrap();
    let m = |opt: &str| Metrics {
        optimizer: opt.into(),
        backend: "cpu".into(),
        best_epoch: 1,
        data_dir: None,
        epochs: vec![rprop_lab::metrics::EpochRecord {
            epoch: 1,
            train_loss: 1.0,
            train_acc: 0.5,
            eval_loss: 1.0,
            eval_acc: 0.5,
            seconds: 0.1,
            grad_evals: 1,
            telemetry: Vec::new(),
        }],
        test: None,
    };
    let mut paths = Vec::new();
    for (dir, opt) in [
        ("cmp/irprop-plus/seed-0", "irprop-plus"),
        ("cmp/irprop-plus/seed-1", "irprop-plus"),
        ("a", "rprop-minus"),
        ("b", "rprop-minus"),
        ("c", "sgd"),
    ] {
        let p = d.path().join(dir);
        std::fs::create_dir_all(&p).unwrap();
        m(opt).save(&p).unwrap();
        paths.push(p.join("metrics.json"));
    }
    let runs = compare::load_metrics(&paths).unwrap();
    let labels: Vec<&str> = runs.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        labels,
        [
            "irprop-plus",
            "irprop-plus",
            "rprop-minus (a)",
            "rprop-minus (b)",
            "sgd"
        ]
    );
    let groups = rprop_lab::plot::group_runs(&runs);
    assert_eq!(groups.len(), 4);
    assert_eq!(groups[0].runs.len(), 2, "two seeds, one line with a band");
}
