//! The metrics a run appends: constant I/O per epoch, a resume continues them from its saved
//! state, `plot` refuses records no run writes, and a resume on other data is refused.

use crate::capped::{self, copy_run, lines, ok, refused, run, tiny_data, tiny_train, trained};
use crate::common;
use rprop_lab::config::Config;
use rprop_lab::cpu::CpuBackend;
use rprop_lab::metrics::Metrics;
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::Variant;
use rprop_lab::trainer::{self, Start};
use std::path::Path;

/// Bytes this thread has passed to write(2) so far.
fn written() -> u64 {
    let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
    let line = io.lines().find(|l| l.starts_with("wchar:")).unwrap();
    line[6..].trim().parse().unwrap()
}

/// Bytes a CPU run of `epochs` epochs on a tiny network writes into a fresh folder.
fn bytes_of_run(epochs: usize) -> u64 {
    let learn = rprop_lab::data::Dataset {
        images: (0..64 * 16).map(|i| (i * 37 % 251) as u8).collect(),
        labels: (0..64).map(|i| (i % 10) as u8).collect(),
        rows: 4,
        cols: 4,
    };
    let mut cfg = Config::report(Variant::IrpropPlus);
    cfg.epochs = epochs;
    cfg.hidden = vec![4];
    let layout = Layout::new(16, 4, 10);
    let mut b = CpuBackend::new(
        &learn,
        &learn,
        Params::init(layout, 0),
        cfg.optimizer,
        cfg.hyper(),
    );
    let d = tempfile::tempdir().unwrap();
    let opts = common::quiet_run(d.path().join("r"));
    let before = written();
    let run = trainer::train(&mut b, &cfg, &opts, Start::default()).unwrap();
    let bytes = written() - before;
    assert_eq!(run.metrics.epochs.len(), epochs);
    let m = Metrics::load(&d.path().join("r/metrics.json")).unwrap();
    assert_eq!(m.epochs.len(), epochs);
    for (a, b) in m.epochs.iter().zip(&run.metrics.epochs) {
        // f64 fields read back to within an ulp (serde_json's parser), f32 ones exactly.
        let key = |r: &rprop_lab::metrics::EpochRecord| (r.epoch, r.train_loss, r.eval_loss);
        assert_eq!(key(a), key(b), "metrics.jsonl holds every record as it ran");
        assert_eq!(a.telemetry.len(), b.telemetry.len());
    }
    bytes
}

// metrics.json and metrics.csv were once rewritten every epoch (1,000 epochs wrote
// 103 MB, 2,000 wrote 410 MB). Records are now appended: ten times the epochs, at most
// about ten times the bytes.
#[test]
fn metrics_bytes_per_epoch_stay_constant() {
    let small = bytes_of_run(200);
    let large = bytes_of_run(2000);
    eprintln!("200 epochs: {small} bytes, 2000 epochs: {large} bytes");
    assert!(
        large < 12 * small,
        "2000 epochs wrote {large} bytes, 200 wrote {small}: not constant per epoch"
    );
    assert!(large / 2000 < 4096, "{} bytes an epoch", large / 2000);
}

// A crash after records were appended but before the save committed them: the resume
// drops the records past the saved state (and a half-written line) and runs them again.
#[test]
fn resume_drops_records_past_the_saved_state() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "R");
    let jsonl = d.path().join("R/metrics.jsonl");
    let recs = lines(&jsonl);
    assert_eq!(recs.len(), 2);
    assert_eq!(lines(&d.path().join("R/metrics.csv")).len(), 3);
    let ghost = recs[1].replace("\"epoch\":2", "\"epoch\":3");
    let mut text = std::fs::read_to_string(&jsonl).unwrap();
    text += &format!("{ghost}\n{{\"epoch\":4,\"train_lo");
    std::fs::write(&jsonl, text).unwrap();
    ok(&run(
        d.path(),
        &["train", "--resume", "R", "--epochs", "4", "-q", "--no-test"],
    ));
    let recs = lines(&jsonl);
    let epochs: Vec<usize> = recs
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap() as usize
        })
        .collect();
    assert_eq!(epochs, [1, 2, 3, 4]);
    assert_ne!(recs[2], ghost, "epoch 3 was run again, not kept");
    let csv = lines(&d.path().join("R/metrics.csv"));
    assert_eq!(csv.len(), 5, "{csv:?}");
    assert!(csv[4].starts_with("4,"));
    let m = Metrics::load(&d.path().join("R/metrics.json")).unwrap();
    assert_eq!(m.epochs.len(), 4);
    // metrics.json itself holds every record at the end, for readers of older versions.
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("R/metrics.json")).unwrap()).unwrap();
    assert_eq!(v["epochs"].as_array().unwrap().len(), 4);
}

/// An edit of record `i` (its JSON).
type Edit = Box<dyn Fn(usize, &mut serde_json::Value)>;

/// Rewrites run `dir`'s records with `edit` applied to each (as JSON).
fn edit_records(dir: &Path, edit: impl Fn(usize, &mut serde_json::Value)) {
    let p = dir.join("metrics.jsonl");
    let mut out = String::new();
    for (i, l) in lines(&p).iter().enumerate() {
        let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
        edit(i, &mut v);
        out += &format!("{v}\n");
    }
    std::fs::write(p, out).unwrap();
}

// `plot` reads a run's metrics.json, the records file named directly, and the metrics.json
// of older runs, which holds every record itself.
#[test]
fn plot_reads_metrics_json_jsonl_and_an_older_runs_json() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    ok(&run(
        d.path(),
        &tiny_train("rprop-plus", &data, 3, &["--out", "A"]),
    ));
    for input in ["A/metrics.json", "A/metrics.jsonl"] {
        ok(&run(d.path(), &["plot", input, "--out", "a.png"]));
    }
    // An older run: metrics.json alone holds the records.
    copy_run(&d.path().join("A"), &d.path().join("Old"));
    std::fs::remove_file(d.path().join("Old/metrics.jsonl")).unwrap();
    ok(&run(
        d.path(),
        &["plot", "Old/metrics.json", "--out", "o.png"],
    ));
}

// `plot` refuses records no run writes (values out of range, epochs repeated or out of
// order), naming the file, and draws nothing.
#[test]
fn plot_refuses_records_no_run_writes() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    ok(&run(
        d.path(),
        &tiny_train("rprop-plus", &data, 3, &["--out", "A"]),
    ));
    let cases: [(&str, Edit, &str); 5] = [
        (
            "huge",
            Box::new(|_, v| v["eval_acc"] = 1.7e308.into()),
            "epoch 1: eval_acc is 1.7e308, outside 0..=1",
        ),
        (
            "acc",
            Box::new(|i, v| {
                if i == 1 {
                    v["eval_acc"] = 7.0.into()
                }
            }),
            "epoch 2: eval_acc is 7, outside 0..=1",
        ),
        (
            "neg",
            Box::new(|i, v| {
                if i == 2 {
                    v["train_acc"] = (-3.0).into()
                }
            }),
            "epoch 3: train_acc is -3",
        ),
        (
            "dup",
            Box::new(|i, v| {
                if i == 2 {
                    v["epoch"] = 2.into()
                }
            }),
            "epoch 2 follows epoch 2",
        ),
        (
            "order",
            Box::new(|i, v| {
                if i == 0 {
                    v["epoch"] = 5.into()
                }
            }),
            "epoch 2 follows epoch 5",
        ),
    ];
    for (name, edit, needle) in cases {
        copy_run(&d.path().join("A"), &d.path().join(name));
        edit_records(&d.path().join(name), edit);
        let input = format!("{name}/metrics.json");
        let o = run(d.path(), &["plot", &input, "--out", "bad.png"]);
        let line = refused(&o, needle);
        assert!(line.contains(&input), "{line}");
        assert!(!d.path().join("bad.png").exists());
    }
}

/// A 2-epoch run in `dir/R` on the dense CPU matmul.
fn trained_dense(dir: &Path, data: &Path) {
    let args = ["--out", "R", "--cpu-matmul", "dense"];
    ok(&run(dir, &tiny_train("rprop-plus", data, 2, &args)));
}

// A resume on other data (same images, other labels) is refused naming the key.
#[test]
fn resume_on_other_data_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained_dense(d.path(), &data);
    let other = d.path().join("other");
    common::write_dataset(&other, 300, 50, 28);
    // The same images, other labels.
    let labels: Vec<u8> = (0..300).map(|i| ((i + 1) % 10) as u8).collect();
    std::fs::write(
        other.join("train-labels-idx1-ubyte.gz"),
        common::gzip(&common::idx(0x801, &[300], &labels)),
    )
    .unwrap();
    let dd = other.to_str().unwrap();
    let o = run(
        d.path(),
        &[
            "train",
            "--resume",
            "R",
            "--epochs",
            "3",
            "--data-dir",
            dd,
            "-q",
        ],
    );
    refused(&o, "key `data` differs");
}

// A resume on another CPU matmul strategy runs, with a one-line notice; on the recorded one,
// without.
#[test]
fn resume_on_another_matmul_runs_with_one_notice() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained_dense(d.path(), &data);
    let o = run(
        d.path(),
        &[
            "train",
            "--resume",
            "R",
            "--epochs",
            "3",
            "--cpu-matmul",
            "sparse",
            "-q",
            "--no-test",
        ],
    );
    ok(&o);
    let err = capped::stderr(&o);
    let notes: Vec<&str> = err.lines().filter(|l| l.starts_with("note:")).collect();
    assert_eq!(notes.len(), 1, "{err}");
    assert!(
        notes[0].contains("dense") && notes[0].contains("sparse"),
        "{err}"
    );
    // Resumed on the recorded strategy: no notice.
    let o = run(
        d.path(),
        &["train", "--resume", "R", "--epochs", "4", "-q", "--no-test"],
    );
    assert!(!capped::stderr(&ok_and(o)).contains("note:"));
}

fn ok_and(o: std::process::Output) -> std::process::Output {
    ok(&o);
    o
}
