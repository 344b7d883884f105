//! The smaller defects of issue 25, item 11: numbers echoed as typed, not at full f64
//! length; `plot` refuses an epoch no run reaches; counts read "1 submission". (The lock
//! message is in `lock`, the plot temp and read-only `--force` in `stale_runs`, `.U.swap`
//! in `reserved_names`.)

use crate::capped::{refused, run, tiny_data, tiny_train};

// `-0.1` is echoed as `-0.1` (not -0.10000000149011612), 3e38 and 1e39 as written (not as
// 39 digits), whether they come from the command line or a config file.
#[test]
fn numbers_are_echoed_as_typed() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let cases: [(&[&str], &str); 3] = [
        (&["--learning-rate", "-0.1"], "got -0.1"),
        (&["--step-max", "1e39"], "1e39 is out of range"),
        (&["--step-min", "3e38"], "(3e38), got 50"),
    ];
    for (extra, needle) in cases {
        let line = refused(
            &run(d.path(), &tiny_train("rprop-plus", &data, 2, extra)),
            needle,
        );
        assert!(!line.contains("0000000"), "{line}");
    }
    std::fs::write(
        d.path().join("c.json"),
        r#"{"optimizer": "sgd", "learning_rate": -0.1, "momentum": 3e38}"#,
    )
    .unwrap();
    let line = refused(&run(d.path(), &["train", "--config", "c.json"]), "got -0.1");
    assert!(!line.contains("0000000"), "{line}");
}

// A metrics file whose one record is of epoch 18446744073709551615 (no run has more than
// 1,000,000) is refused by plot, naming the file and the epoch.
#[test]
fn plot_refuses_an_epoch_past_any_run() {
    let d = tempfile::tempdir().unwrap();
    let rec = r#"{"epoch": 18446744073709551615, "train_loss": 1.0, "train_acc": 0.5, "eval_loss": 1.0, "eval_acc": 0.5, "seconds": 0.1}"#;
    let text = format!(
        r#"{{"optimizer": "rprop-plus", "backend": "cpu", "best_epoch": 1, "epochs": [{rec}]}}"#
    );
    std::fs::write(d.path().join("metrics.json"), text).unwrap();
    let o = run(d.path(), &["plot", "metrics.json", "--out", "p.png"]);
    refused(&o, "epoch 18446744073709551615");
    assert!(!d.path().join("p.png").exists());
}

// One of a thing is not "1 submissions".
#[test]
fn counts_of_one_are_singular() {
    let one = rprop_lab::gpu::backend::traffic_line(1, 1, 1, 0.25);
    assert!(
        one.contains("1 queue submission, 1 byte read back"),
        "{one}"
    );
    assert!(one.contains("(1 submission and 1 byte per epoch"), "{one}");
    let many = rprop_lab::gpu::backend::traffic_line(20, 640, 10, 0.25);
    assert!(
        many.contains("20 queue submissions, 640 bytes read back"),
        "{many}"
    );
    assert!(
        many.contains("(2 submissions and 64 bytes per epoch"),
        "{many}"
    );
}
