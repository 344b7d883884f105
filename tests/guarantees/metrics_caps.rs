//! Metrics files as hostile input: a FIFO at any of them never blocks a reader (`plot`,
//! `test`, `train --resume`), every one of them (json, jsonl, csv) has one size cap and one
//! error line, and what is read is held in bounded memory (no string past 64 KiB, at most 5
//! layers of telemetry a record, the records of all files within the process's memory).

use crate::capped::{self, copy_run, ok, refused, run, tiny_data, trained, wait};
use rprop_lab::fsio::MAX_METRICS;
use rprop_lab::metrics::{EpochRecord, Metrics};
use rprop_lab::telemetry::LayerTelemetry;
use std::path::Path;

/// Replaces `path` with a FIFO.
fn fifo_at(path: &Path) {
    std::fs::remove_file(path).unwrap();
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Replaces `path` with a sparse file of `len` bytes (no disk used).
fn sparse_at(path: &Path, len: u64) {
    std::fs::remove_file(path).unwrap();
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// The readers of run `R`'s metrics, each with whether it reads the file `name`: `plot`
/// (metrics.json, and metrics.jsonl beside it), `test` (metrics.json: the run's data
/// folder) and `train --resume` (all three).
fn readers(name: &str) -> Vec<Vec<&'static str>> {
    let mut v = vec![vec!["train", "--resume", "R", "--epochs", "3", "-q"]];
    if name != "metrics.csv" {
        v.push(vec!["plot", "R/metrics.json", "--out", "p.png"]);
        v.push(vec!["plot", "R/metrics.jsonl", "--out", "p.png"]);
    }
    if name == "metrics.json" {
        v.push(vec!["test", "--weights", "R/best.safetensors"]);
    }
    v
}

/// Runs every reader of `name` in run `R` of `dir` (damaged by `damage`) and asserts each
/// is refused with `needle` naming the file, in bounded time (a FIFO must not block) and
/// memory, changing nothing.
fn all_refuse(dir: &Path, name: &str, damage: fn(&Path), needle: &str) {
    let r = dir.join("R");
    copy_run(&dir.join("base"), &r);
    damage(&r.join(name));
    // The damaged file by its type, size and time (not read: a FIFO, or 2 GiB), the
    // others by their bytes.
    let state = || {
        let mut files = std::collections::BTreeMap::new();
        for e in std::fs::read_dir(&r).unwrap() {
            let (n, p) = (e.as_ref().unwrap().file_name(), e.unwrap().path());
            if n != name {
                files.insert(n, std::fs::read(p).unwrap());
            }
        }
        let m = std::fs::symlink_metadata(r.join(name)).unwrap();
        (files, m.file_type(), m.len(), m.modified().unwrap())
    };
    let before = state();
    for args in readers(name) {
        let line = refused(&run(dir, &args), needle);
        assert!(line.contains(&format!("R/{name}")), "{line}");
        assert!(state() == before, "{args:?} changed the run");
        assert!(!dir.join("p.png").exists());
    }
    std::fs::remove_dir_all(&r).unwrap();
}

// A FIFO at metrics.json (beside a normal metrics.jsonl), at metrics.jsonl, or at
// metrics.csv: every reader refuses it at once, naming it; `test`, which needs only
// metrics.json, still runs beside a FIFO metrics.jsonl.
#[test]
fn a_fifo_at_any_metrics_file_is_refused_without_blocking() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "base");
    for name in ["metrics.json", "metrics.jsonl", "metrics.csv"] {
        all_refuse(d.path(), name, fifo_at, "not a regular file");
    }
    copy_run(&d.path().join("base"), &d.path().join("R"));
    fifo_at(&d.path().join("R/metrics.jsonl"));
    ok(&run(d.path(), &["test", "--weights", "R/best.safetensors"]));
}

// One cap for every metrics file: one byte over it, json, jsonl or csv, is refused by
// every reader with one line naming the file, before a byte is read.
#[test]
fn every_metrics_file_has_one_size_cap() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "base");
    let needle = format!(
        "metrics file is {} bytes, more than the {MAX_METRICS} a metrics file may have",
        MAX_METRICS + 1
    );
    for name in ["metrics.json", "metrics.jsonl", "metrics.csv"] {
        all_refuse(d.path(), name, |p| sparse_at(p, MAX_METRICS + 1), &needle);
    }
}

/// The longest record a run writes: the last epoch, the deepest network's 5 layers of
/// telemetry, each value as long as it can print (CSV prints floats in full: a loss or
/// step size as small as f32 goes, fractions of a count as small as 1 in 1e15 updates,
/// accuracies of 1 in 60,000 images, counts of 20 digits).
fn longest_record() -> EpochRecord {
    let tiny32 = 1.1754942e-38f32;
    let fraction = 1.2345678901234567e-15;
    EpochRecord {
        epoch: 1_000_000,
        train_loss: tiny32,
        train_acc: 1.6666666666666667e-5,
        eval_loss: tiny32,
        eval_acc: 1.6666666666666667e-5,
        seconds: 123456.78901234567,
        grad_evals: u64::MAX,
        telemetry: vec![
            LayerTelemetry {
                sign_changes: fraction,
                backtracks: u64::MAX,
                at_min: fraction,
                at_max: fraction,
                median_step: tiny32,
            };
            5
        ],
    }
}

// The cap is above what any run writes: 1,000,000 epochs (the config's limit) of the
// longest record, in metrics.json (indented), metrics.jsonl and metrics.csv.
#[test]
fn the_metrics_cap_holds_the_longest_run() {
    let run = |n: usize| Metrics {
        optimizer: "grprop-slr".into(),
        backend: "gpu (a long adapter name, driver and version)".into(),
        best_epoch: 1_000_000,
        data_dir: Some("d".repeat(4096).into()),
        epochs: vec![longest_record(); n],
        test: None,
    };
    let json = |m: &Metrics| serde_json::to_vec_pretty(m).unwrap().len() as u64;
    let per_record = json(&run(2)) - json(&run(1));
    let jsonl = serde_json::to_vec(&longest_record()).unwrap().len() as u64 + 1;
    let csv = (run(2).to_csv().len() - run(1).to_csv().len()) as u64;
    eprintln!("bytes a record: metrics.json {per_record}, .jsonl {jsonl}, .csv {csv}");
    for (file, bytes) in [("json", per_record), ("jsonl", jsonl), ("csv", csv)] {
        let whole = json(&run(0)) + 1_000_000 * bytes;
        assert!(
            whole < MAX_METRICS,
            "a 1,000,000-epoch metrics.{file} holds {whole} bytes"
        );
    }
}

/// The shipped binary.
fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_rprop-lab"))
}

/// Writes run `R`'s metrics.json as `text`.
fn write_json(dir: &Path, text: &[u8]) {
    std::fs::write(dir.join("R/metrics.json"), text).unwrap();
}

// What a metrics file holds is read in bounded memory: a 150 MB string in metrics.json
// (once read whole: more than twice its size) is refused under a 128 MiB address-space
// cap, by plot, test and resume alike, as is a record with more layers of telemetry than a
// network has.
#[test]
fn a_metrics_file_is_read_in_bounded_memory() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "base");
    copy_run(&d.path().join("base"), &d.path().join("R"));
    let mut text = br#"{"optimizer": ""#.to_vec();
    text.resize(text.len() + (150 << 20), b'a');
    text.extend(br#"", "backend": "cpu", "best_epoch": 1, "epochs": []}"#);
    write_json(d.path(), &text);
    drop(text);
    for args in readers("metrics.json") {
        let mut c = capped::command_of(bin(), d.path(), &args, 128 << 20);
        let o = wait(c.spawn().unwrap(), &args.join(" "));
        refused(&o, "holds a string longer than 65536 bytes");
    }
    // Six layers of telemetry in a record of metrics.jsonl.
    copy_run(&d.path().join("base"), &d.path().join("T"));
    let p = d.path().join("T/metrics.jsonl");
    let first = std::fs::read_to_string(&p).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    v["telemetry"] = serde_json::Value::Array(vec![v["telemetry"][0].clone(); 6]);
    std::fs::write(&p, format!("{v}\n")).unwrap();
    let o = run(d.path(), &["plot", "T/metrics.json", "--out", "t.png"]);
    refused(
        &o,
        "line 1 is not an epoch record: more than 5 layers of telemetry",
    );
}

// The records of every file one command reads count against its memory: `plot` of a long
// run given eight times under a 160 MiB address-space cap is refused with one line (each
// copy would fit alone), not killed by the allocator.
#[test]
fn records_of_many_files_are_held_within_the_memory_limit() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "R");
    let p = d.path().join("R/metrics.jsonl");
    let mut text = String::new();
    for e in 1..=120_000 {
        text += &format!(
            "{{\"epoch\":{e},\"train_loss\":1,\"train_acc\":0.5,\"eval_loss\":1,\"eval_acc\":0.5,\"seconds\":0}}\n"
        );
    }
    std::fs::write(&p, text).unwrap();
    let args: Vec<&str> = ["plot"]
        .into_iter()
        .chain(std::iter::repeat_n("R/metrics.json", 8))
        .chain(["--out", "p.png"])
        .collect();
    let mut c = capped::command_of(bin(), d.path(), &args, 160 << 20);
    let o = wait(c.spawn().unwrap(), "plot x8");
    refused(&o, "the epoch records read so far need more than");
    // One copy is drawn.
    ok(&run(
        d.path(),
        &["plot", "R/metrics.json", "--out", "one.png"],
    ));
}

// The string limit follows JSON's escapes: a 60 KiB name made of escaped quotes and
// backslashes reads back whole; a key, or a value skipped unread, past 64 KiB is refused.
#[test]
fn the_string_limit_reads_escapes_and_counts_every_string() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("m.json");
    let head = |name: &str, extra: &str| {
        format!(
            r#"{{"optimizer": "{name}", "backend": "cpu", "best_epoch": 0, {extra}"epochs": []}}"#
        )
    };
    let name = r#"\"\\"#.repeat(15 << 10);
    std::fs::write(&p, head(&name, "")).unwrap();
    let m = Metrics::load(&p).unwrap();
    assert_eq!(m.optimizer, "\"\\".repeat(15 << 10));
    for extra in [
        format!(r#""{}": 1, "#, "k".repeat(65 << 10)),
        format!(r#""note": "{}", "#, "v".repeat(65 << 10)),
        format!(r#""note": ["{}"], "#, "v".repeat(65 << 10)),
    ] {
        std::fs::write(&p, head("x", &extra)).unwrap();
        let e = Metrics::load(&p).unwrap_err().to_string();
        assert!(e.contains("holds a string longer than 65536 bytes"), "{e}");
    }
}
