//! `compare` and `plot` end to end (CPU backend, small subsets): the results table, the runs
//! it holds, the charts.

use crate::common;

use crate::common::{ok, run};

use std::path::{Path, PathBuf};

use rprop_lab::data::{self, Part};
use rprop_lab::metrics::Metrics;

/// 4 epochs on 600 train / 200 eval images on the CPU: the runs compared alone and in
/// `compare` must see the same settings.
const SMALL_RUN: [&str; 12] = [
    "--epochs",
    "4",
    "--train-set-size",
    "600",
    "--train-batch-size",
    "600",
    "--eval-set-size",
    "200",
    "--eval-batch-size",
    "200",
    "--backend",
    "cpu",
];

fn png_size(path: &std::path::Path) -> (u32, u32) {
    let img = image::open(path).unwrap();
    (img.width(), img.height())
}

/// `compare` of rprop-minus, irprop-plus and rprop-plus ([`SMALL_RUN`]) into `dir/cmp`;
/// returns the folder and what it printed.
fn compared(dir: &Path) -> (PathBuf, String) {
    let out = dir.join("cmp");
    let text = ok(&run(&[
        "compare",
        "--configs",
        "configs/rprop-minus.json",
        "configs/irprop-plus.json",
        "configs/rprop-plus.json",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]
    .iter()
    .chain(&SMALL_RUN)
    .copied()
    .collect::<Vec<_>>()));
    (out, text)
}

// results.csv holds a row per config, in order; its test accuracy is that of the run's best
// checkpoint and its eval accuracy the one its metrics recorded at the best epoch.
#[test]
fn compare_results_hold_each_runs_best_checkpoint_scores() {
    let d = tempfile::tempdir().unwrap();
    let (out, text) = compared(d.path());
    assert!(text.contains("| rprop-minus | "), "{text}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows.iter().map(|r| r[0]).collect::<Vec<_>>(),
        ["rprop-minus", "irprop-plus", "rprop-plus"]
    );
    let set = data::load(&common::mnist_dir(), Part::Test).unwrap();
    for r in &rows {
        let best: usize = r[3].parse().unwrap();
        assert!((1..=4).contains(&best));
        let test_acc: f64 = r[5].parse().unwrap();
        assert!(test_acc > 0.2 && test_acc <= 1.0, "{r:?}");
        let p =
            rprop_lab::checkpoint::load(&out.join(r[0]).join("best.safetensors"), 784, 10).unwrap();
        let ev = rprop_lab::cpu::evaluate(&p, &set);
        assert_eq!(format!("{}", ev.stats.accuracy()), r[5]);
        let m = Metrics::load(&out.join(r[0]).join("metrics.json")).unwrap();
        assert_eq!(m.epochs.len(), 4);
        assert_eq!(format!("{}", m.epochs[best - 1].eval_acc), r[4]);
    }
}

// Runs after the first reuse its backend (data uploaded once): each still equals a run of
// its own, bit for bit.
#[test]
fn compare_runs_equal_runs_of_their_own() {
    let d = tempfile::tempdir().unwrap();
    let (out, _) = compared(d.path());
    let alone = d.path().join("alone");
    ok(&run(&[
        "train",
        "--config",
        "configs/rprop-plus.json",
        "--out",
        alone.to_str().unwrap(),
        "-q",
    ]
    .iter()
    .chain(&SMALL_RUN)
    .copied()
    .collect::<Vec<_>>()));
    let (a, b) = (
        Metrics::load(&alone.join("metrics.json")).unwrap(),
        Metrics::load(&out.join("rprop-plus/metrics.json")).unwrap(),
    );
    assert_eq!(a.epochs.len(), b.epochs.len());
    for (x, y) in a.epochs.iter().zip(&b.epochs) {
        assert_eq!(x.train_loss.to_bits(), y.train_loss.to_bits());
        assert_eq!(x.eval_loss.to_bits(), y.eval_loss.to_bits());
    }
}

// The report's numbers sit beside its own settings only, not beside 4-epoch runs.
#[test]
fn compare_table_shows_the_report_numbers_only_for_the_report_settings() {
    let d = tempfile::tempdir().unwrap();
    let (out, _) = compared(d.path());
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.contains("| irprop-plus | ") && !md.contains("0.9557"),
        "{md}"
    );
    assert!(md
        .lines()
        .all(|l| !l.starts_with("| irprop-plus") || l.ends_with("| - | - |")));
}

// `compare` draws its charts at their sizes, and `plot` redraws them from the runs' metrics,
// all panels or one.
#[test]
fn compare_draws_its_charts_and_plot_redraws_them() {
    let d = tempfile::tempdir().unwrap();
    let (out, _) = compared(d.path());
    assert_eq!(png_size(&out.join("telemetry.png")), (1800, 1800));
    for f in ["train_loss", "eval_loss", "train_acc", "eval_acc"] {
        assert_eq!(png_size(&out.join(format!("{f}.png"))), (900, 600));
    }
    assert_eq!(png_size(&out.join("curves.png")), (1800, 1200));
    let chart = d.path().join("chart.png");
    let m1 = out.join("rprop-minus/metrics.json");
    let m2 = out.join("rprop-plus/metrics.json");
    ok(&run(&[
        "plot",
        m1.to_str().unwrap(),
        m2.to_str().unwrap(),
        "--out",
        chart.to_str().unwrap(),
    ]));
    assert_eq!(png_size(&chart), (1800, 1200));
    ok(&run(&[
        "plot",
        m1.to_str().unwrap(),
        "--out",
        chart.to_str().unwrap(),
        "--panel",
        "eval-acc",
        "--linear-loss",
    ]));
    assert_eq!(png_size(&chart), (900, 600));
}

#[test]
fn plot_rejects_malformed_metrics() {
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("metrics.json");
    for text in [
        "{\"optimizer\": 3}",
        "not json",
        "{\"optimizer\":\"x\",\"backend\":\"cpu\",\"best_epoch\":0,\"epochs\":[]}",
    ] {
        std::fs::write(&bad, text).unwrap();
        let o = run(&[
            "plot",
            bad.to_str().unwrap(),
            "--out",
            d.path().join("c.png").to_str().unwrap(),
        ]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{e}");
        assert!(
            e.starts_with("error: ") && e.contains("metrics.json"),
            "{e}"
        );
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert!(!d.path().join("c.png").exists());
    }
}
