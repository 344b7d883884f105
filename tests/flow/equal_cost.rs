//! Comparing at equal cost: `grad_evals` per epoch in the metrics, `compare --budget-evals`
//! and `--target-eval-loss`, and `plot`/`compare --x evals|seconds` (CPU backend, small
//! subsets).

use crate::common::{ok, run};

use rprop_lab::metrics::Metrics;

const SMALL_RUN: [&str; 12] = [
    "--epochs",
    "10",
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

fn args<'a>(head: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(&SMALL_RUN).copied().collect()
}

#[test]
fn compare_stops_runs_at_the_budget_and_counts_evaluations_to_the_target() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("cmp");
    ok(&run(&args(&[
        "compare",
        "--configs",
        "configs/rprop-minus.json",
        "configs/adam.json",
        "--out",
        out.to_str().unwrap(),
        "--budget-evals",
        "3",
        "--target-eval-loss",
        "1.9",
        "--x",
        "evals",
        "-q",
    ])));
    for name in ["rprop-minus", "adam"] {
        let m = Metrics::load(&out.join(name).join("metrics.json")).unwrap();
        // One gradient evaluation per full-batch epoch: 3 epochs of the 10.
        assert_eq!(m.epochs.len(), 3, "{name}");
        assert!(m.epochs.iter().all(|r| r.grad_evals == 1));
        let csv = std::fs::read_to_string(out.join(name).join("metrics.csv")).unwrap();
        let head: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        assert_eq!(head[5..7], ["seconds", "grad_evals"]);
        assert_eq!(csv.lines().nth(3).unwrap().split(',').nth(6), Some("1"));
    }
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |k: &str| header.iter().position(|h| *h == k).unwrap();
    for line in csv.lines().skip(1) {
        let r: Vec<&str> = line.split(',').collect();
        assert_eq!(r[col("grad_evals")], "3");
        // The evaluations at the first epoch with eval loss <= 1.9, from the run's metrics.
        let m = Metrics::load(&out.join(r[0]).join("metrics.json")).unwrap();
        let want = m
            .epochs
            .iter()
            .position(|e| e.eval_loss <= 1.9)
            .map_or(String::new(), |i| (i + 1).to_string());
        assert_eq!(r[col("evals_to_target")], want, "{line}");
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("| grad evals |") && md.contains("evals to eval loss <= 1.9 |"));
    assert!(out.join("curves.png").exists());
}

#[test]
fn plot_reads_runs_without_grad_evals_as_one_per_epoch() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("run");
    ok(&run(&args(&[
        "train",
        "--config",
        "configs/rprop-minus.json",
        "--out",
        dir.to_str().unwrap(),
        "-q",
    ])));
    // A metrics file written before the field existed.
    let path = dir.join("metrics.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for e in v["epochs"].as_array_mut().unwrap() {
        assert_eq!(e["grad_evals"], 1);
        e.as_object_mut().unwrap().remove("grad_evals");
    }
    let old = d.path().join("old.json");
    std::fs::write(&old, serde_json::to_vec(&v).unwrap()).unwrap();
    let m = Metrics::load(&old).unwrap();
    assert_eq!(m.epochs.len(), 10);
    assert!(m.epochs.iter().all(|r| r.grad_evals == 1));
    for x in ["evals", "seconds", "epochs"] {
        let chart = d.path().join(format!("{x}.png"));
        ok(&run(&[
            "plot",
            old.to_str().unwrap(),
            path.to_str().unwrap(),
            "--x",
            x,
            "--out",
            chart.to_str().unwrap(),
        ]));
        let img = image::open(&chart).unwrap();
        assert_eq!((img.width(), img.height()), (1800, 1200));
    }
    let bad = run(&["plot", path.to_str().unwrap(), "--x", "hours"]);
    assert!(!bad.status.success());
}
