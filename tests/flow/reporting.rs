//! What a run or a comparison reports: seed statistics and their intervals, the report's
//! numbers beside its settings only, chart styles, axes, legends and labels, and the history
//! lines of a terminal run.

use rprop_lab::compare::{self, parse_seeds};
use rprop_lab::config::Config;
use rprop_lab::metrics::Metrics;
use rprop_lab::optim::Variant;
use rprop_lab::plot::{style_of, LineKind, PALETTE};
use rprop_lab::stats;

#[test]
fn seed_statistics_give_mean_std_and_t_intervals() {
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
}

#[test]
fn seed_lists_parse_ranges_and_lists_up_to_1000() {
    assert_eq!(parse_seeds("0..9").unwrap(), (0..=9).collect::<Vec<u64>>());
    assert_eq!(parse_seeds("2..=4").unwrap(), vec![2, 3, 4]);
    assert_eq!(parse_seeds("7, 1,3").unwrap(), vec![7, 1, 3]);
    assert!(parse_seeds("0..5000").unwrap_err().contains("at most 1000"));
}

#[test]
fn seed_intervals_of_accuracies_stay_inside_0_1() {
    let row = |seed: u64, acc: f64| rprop_lab::compare::ResultRow {
        name: format!("sgd/seed-{seed}"),
        group: "sgd".into(),
        optimizer: rprop_lab::optim::Variant::Sgd,
        seed,
        best_epoch: 1,
        eval_acc: acc,
        test_acc: acc,
        test_loss: 1.0,
        seconds: 1.0,
        report: None,
        grad_evals: 1,
        target: None,
    };
    // Two seeds far apart: mean ± 12.706 * sd / sqrt(2) leaves [0, 1] on both sides.
    let md = rprop_lab::compare::summary_markdown(&[row(0, 0.21), row(1, 0.99)]);
    assert!(md.contains("| [0.0000, 1.0000] * |"), "{md}");
    assert!(md.contains("clipped to it"), "{md}");
    let md = rprop_lab::compare::summary_markdown(&[row(0, 0.95), row(1, 0.951)]);
    assert!(!md.contains('*'), "{md}");
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
fn log_axes_have_three_distinct_labels_even_within_a_decade() {
    // A 5-epoch run's loss spans less than a decade: still three distinct labels.
    for (lo, hi) in [(0.9, 2.5), (1.2, 1.9), (0.141, 0.1425), (1e-3, 1.0)] {
        let t = rprop_lab::plot::log_ticks(lo, hi);
        let digits = rprop_lab::plot::label_digits(&t);
        let labels: std::collections::BTreeSet<String> = t
            .iter()
            .map(|v| rprop_lab::plot::sig_digits(*v, digits))
            .collect();
        assert!(t.len() >= 3 && labels.len() == t.len(), "{lo}..{hi}: {t:?}");
        assert!(t.iter().all(|v| (lo..=hi).contains(v)), "{t:?}");
    }
}

#[test]
fn legends_go_to_the_emptiest_corner() {
    use plotters::prelude::SeriesLabelPosition as P;
    // An accuracy curve (up, then flat at the top): the lower right is empty.
    let rising: Vec<(f64, f64)> = (0..=20)
        .map(|i| (i as f64 / 20.0, (i as f64 / 20.0).sqrt()))
        .collect();
    let corner = |pts: &[(f64, f64)]| rprop_lab::plot::emptiest_corner(pts, (0.4, 0.2));
    assert_eq!(corner(&rising), P::LowerRight);
    // A flat line low, and a point high on the right: only the upper left is empty.
    let mut pts: Vec<(f64, f64)> = (0..=20).map(|i| (i as f64 / 20.0, 0.1)).collect();
    pts.push((0.9, 0.9));
    assert_eq!(corner(&pts), P::UpperLeft);
    assert_eq!(
        rprop_lab::plot::emptiest_corner(&[], (0.4, 0.2)),
        P::UpperRight
    );
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
