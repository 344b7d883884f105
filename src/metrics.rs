//! Per-epoch metrics of a run. Each epoch's record is appended, once complete, to
//! `metrics.jsonl` (one JSON object a line) and `metrics.csv`, so an epoch costs the same
//! bytes however long the run; `metrics.json` (the run's header and every record) is
//! rewritten only at save points and at the end. Readers take the records from
//! `metrics.jsonl` where it exists (see docs/guarantees.md, "Metrics").

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::fsio::{open_capped, write_atomic, MAX_METRICS};
use crate::limits::ShortStrings;
use crate::telemetry::LayerTelemetry;

/// The run's header and every record, written at save points and at the end.
pub const JSON: &str = "metrics.json";
/// The records, one JSON object a line, appended as epochs complete.
pub const JSONL: &str = "metrics.jsonl";
/// The records as CSV, appended with [`JSONL`].
pub const CSV: &str = "metrics.csv";
/// Longest line of [`JSONL`] read (a record with telemetry of many layers is a few KiB).
const MAX_LINE: u64 = 1 << 20;
/// Most records a run has (config.json's epoch limit).
const MAX_RECORDS: usize = 1_000_000;
/// Most layers of telemetry a record has (the deepest network's).
const MAX_LAYERS: usize = crate::model::MAX_HIDDEN + 1;

/// The CSV columns of each layer's telemetry (prefixed `l1_`, `l2_`, ...).
pub const TELEMETRY_COLUMNS: [&str; 5] = [
    "sign_changes",
    "backtracks",
    "at_min",
    "at_max",
    "median_step",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f32,
    pub train_acc: f64,
    pub eval_loss: f32,
    pub eval_acc: f64,
    /// Wall-clock seconds of the epoch (train step + eval).
    pub seconds: f64,
    /// Forward+backward passes over the train set in the epoch: 1 for the per-weight
    /// optimizers (a mini-batch epoch is one pass too), the closure calls for L-BFGS. Runs
    /// recorded before this field read as 1.
    #[serde(default = "one_eval")]
    pub grad_evals: u64,
    /// Rprop telemetry, one entry per layer (input layer first); empty for other optimizers.
    /// A GPU reads it back only at save points, so it fills in there.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "layers_of_telemetry"
    )]
    pub telemetry: Vec<LayerTelemetry>,
}

fn one_eval() -> u64 {
    1
}

/// The test score of a run's best weights, recorded at the end of `train`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestRecord {
    pub loss: f32,
    pub accuracy: f64,
    pub correct: u32,
    pub samples: u32,
    /// The epoch whose weights were tested (the best one).
    pub best_epoch: usize,
    pub data_dir: std::path::PathBuf,
}

/// What `metrics.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub optimizer: String,
    pub backend: String,
    pub best_epoch: usize,
    /// The data folder the run read (for `--resume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<std::path::PathBuf>,
    #[serde(deserialize_with = "records")]
    pub epochs: Vec<EpochRecord>,
    /// The best weights' test score (absent with `--no-test` or before the run ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<TestRecord>,
}

impl EpochRecord {
    /// The record of epoch `epoch` from what the backend reported, `seconds` after it began.
    pub fn of(epoch: usize, s: &crate::backend::EpochStats, seconds: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: s.train.loss,
            train_acc: s.train.accuracy(),
            eval_loss: s.eval.loss,
            eval_acc: s.eval.accuracy(),
            seconds,
            grad_evals: s.grad_evals as u64,
            telemetry: Vec::new(),
        }
    }

    /// This record as a CSV row (no newline) with `layers` layers of telemetry columns.
    fn csv_row(&self, layers: usize) -> String {
        let mut s = format!(
            "{},{},{},{},{},{:.6},{}",
            self.epoch,
            self.train_loss,
            self.train_acc,
            self.eval_loss,
            self.eval_acc,
            self.seconds,
            self.grad_evals
        );
        for l in 0..layers {
            match self.telemetry.get(l) {
                Some(t) => {
                    s += &format!(
                        ",{},{},{},{},{}",
                        t.sign_changes, t.backtracks, t.at_min, t.at_max, t.median_step
                    )
                }
                None => s += ",,,,,",
            }
        }
        s
    }
}

/// The CSV header line (no newline) for `layers` layers of telemetry.
fn csv_header(layers: usize) -> String {
    let mut s = String::from("epoch,train_loss,train_acc,eval_loss,eval_acc,seconds,grad_evals");
    for l in 1..=layers {
        for k in TELEMETRY_COLUMNS {
            s += &format!(",l{l}_{k}");
        }
    }
    s
}

/// The CSV text of `records` (header included).
fn csv_of(records: &[EpochRecord]) -> String {
    let layers = records.iter().map(|r| r.telemetry.len()).max().unwrap_or(0);
    let mut s = csv_header(layers) + "\n";
    for r in records {
        s += &r.csv_row(layers);
        s.push('\n');
    }
    s
}

/// The [`JSONL`] text of `records`.
fn jsonl_of(records: &[EpochRecord]) -> Result<String> {
    let mut s = String::new();
    for r in records {
        s += &serde_json::to_string(r)?;
        s.push('\n');
    }
    Ok(s)
}

/// Replaces `dir`'s [`JSONL`] and [`CSV`] (atomically, each) with `records`: a fresh run's
/// empty files, or a resumed run's records up to its saved state.
pub fn write_records(dir: &Path, records: &[EpochRecord]) -> Result<()> {
    write_atomic(&dir.join(JSONL), jsonl_of(records)?.as_bytes())?;
    let csv = if records.is_empty() {
        // The header waits for the first row, which tells the telemetry columns.
        String::new()
    } else {
        csv_of(records)
    };
    write_atomic(&dir.join(CSV), csv.as_bytes())
}

/// Appends `records` to `dir`'s [`JSONL`] and [`CSV`] (a CSV header first when the file is
/// empty); with `sync`, flushed to disk (before a save commits them).
pub fn append_records(dir: &Path, records: &[EpochRecord], sync: bool) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let append = |name: &str, text: String| -> Result<()> {
        let path = dir.join(name);
        let mut f = crate::fsio::open_append(&path)?;
        f.write_all(text.as_bytes())
            .and_then(|_| if sync { f.sync_data() } else { Ok(()) })
            .with_context(|| format!("{}: cannot write", path.display()))
    };
    let csv_path = dir.join(CSV);
    let fresh = std::fs::metadata(&csv_path).map_or(true, |m| m.len() == 0);
    let layers = if fresh {
        records.iter().map(|r| r.telemetry.len()).max().unwrap_or(0)
    } else {
        csv_layers(&csv_path)?
    };
    let mut csv = if fresh {
        csv_header(layers) + "\n"
    } else {
        String::new()
    };
    for r in records {
        csv += &r.csv_row(layers);
        csv.push('\n');
    }
    append(JSONL, jsonl_of(records)?)?;
    append(CSV, csv)
}

/// The telemetry layers of an existing CSV's header.
fn csv_layers(path: &Path) -> Result<usize> {
    let (f, _) = open_capped(path, "metrics", MAX_METRICS)?;
    let mut head = String::new();
    std::io::BufReader::new(f)
        .take(MAX_LINE)
        .read_line(&mut head)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let cols = head.trim_end().split(',').count();
    Ok(cols.saturating_sub(7) / TELEMETRY_COLUMNS.len())
}

/// Reads the records of a [`JSONL`] file. A last line without its newline (a write cut
/// short by a crash) is not a record yet and is skipped; any other bad line is an error
/// naming the file and line.
pub fn read_jsonl(path: &Path) -> Result<Vec<EpochRecord>> {
    let (f, _) = open_capped(path, "metrics", MAX_METRICS)?;
    let mut r = std::io::BufReader::new(f.take(MAX_METRICS));
    let mut out = Vec::new();
    let mut line = Vec::new();
    for n in 1.. {
        line.clear();
        (&mut r)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut line)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        if line.last() != Some(&b'\n') {
            if line.len() as u64 > MAX_LINE {
                bail!(
                    "{}: line {n} is longer than {MAX_LINE} bytes",
                    path.display()
                );
            }
            break;
        }
        if out.len() >= MAX_RECORDS {
            bail!("{}: holds more than {MAX_RECORDS} records", path.display());
        }
        let rec = serde_json::from_slice(&line).map_err(|e| {
            anyhow!(
                "{}: line {n} is not an epoch record: {}",
                path.display(),
                crate::limits::cut(&e.to_string())
            )
        })?;
        take_memory(&rec).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        out.push(rec);
    }
    Ok(out)
}

/// What `metrics.json` holds but its records, read without keeping them (a long run's
/// file may be far larger than memory should hold at once).
#[derive(Deserialize)]
struct Head {
    optimizer: String,
    backend: String,
    best_epoch: usize,
    #[serde(default)]
    data_dir: Option<PathBuf>,
    #[allow(dead_code)]
    epochs: serde::de::IgnoredAny,
    #[serde(default)]
    test: Option<TestRecord>,
}

impl Metrics {
    /// Fills the telemetry the backend gathered since its last read-back into the latest
    /// records (its rows are those of the epochs ended since then, oldest first).
    pub fn attach_telemetry(&mut self, rows: Vec<Vec<LayerTelemetry>>) -> Result<()> {
        let n = self.epochs.len();
        anyhow::ensure!(
            rows.len() <= n,
            "the backend reported telemetry for {} epochs, {n} ran",
            rows.len()
        );
        for (rec, row) in self.epochs[n - rows.len()..].iter_mut().zip(rows) {
            rec.telemetry = row;
        }
        Ok(())
    }

    pub fn to_csv(&self) -> String {
        csv_of(&self.epochs)
    }

    /// Writes `metrics.json` into `dir` (the records file is appended epoch by epoch,
    /// see [`append_records`]).
    pub fn save(&self, dir: &Path) -> Result<()> {
        crate::fsio::write_atomic_with(&dir.join(JSON), |w| {
            serde_json::to_writer_pretty(w, self).map_err(std::io::Error::other)
        })
    }

    /// Reads a `metrics.json`; its records from the [`JSONL`] beside it where there is
    /// one (a run of this version), else from the file itself. Errors name the file.
    /// Every file is read streaming from a regular file within [`MAX_METRICS`], so memory
    /// holds the records only (see [`take_memory`]).
    pub fn load(path: &Path) -> Result<Metrics> {
        if path.file_name().is_some_and(|n| n == JSONL) {
            // The records file alone lacks the run's header.
            return Metrics::load(&path.with_file_name(JSON));
        }
        let jsonl = path.with_file_name(JSONL);
        if path.file_name().is_some_and(|n| n == JSON) && exists(&jsonl) {
            let head = Metrics::load_head(path)?;
            return Ok(Metrics {
                epochs: read_jsonl(&jsonl)?,
                ..head
            });
        }
        json_reader(path)
    }

    /// What `metrics.json` says of the run (optimizer, backend, best epoch, data folder,
    /// test score), its records skipped unread (`epochs` is empty).
    pub fn load_head(path: &Path) -> Result<Metrics> {
        let head: Head = json_reader(path)?;
        Ok(Metrics {
            optimizer: head.optimizer,
            backend: head.backend,
            best_epoch: head.best_epoch,
            data_dir: head.data_dir,
            epochs: Vec::new(),
            test: head.test,
        })
    }

    /// Refuses records no run writes, before they are drawn: accuracies outside 0..=1,
    /// non-finite or absurd losses and times, epochs out of order or repeated.
    pub fn check_plausible(&self, path: &Path) -> Result<()> {
        let mut prev = 0usize;
        for r in &self.epochs {
            let bad = |what: &str, v: f64, range: &str| {
                let v = if v.abs() < 1e6 {
                    v.to_string()
                } else {
                    format!("{v:e}")
                };
                anyhow!(
                    "{}: epoch {}: {what} is {v}, outside {range}; not a value a run records",
                    path.display(),
                    r.epoch
                )
            };
            if r.epoch > MAX_RECORDS {
                bail!(
                    "{}: epoch {} is past the {MAX_RECORDS} epochs a run may have; not a value a run records",
                    path.display(),
                    r.epoch
                );
            }
            if r.epoch <= prev {
                bail!(
                    "{}: epoch {} follows epoch {prev}; epochs must increase (out of order or repeated)",
                    path.display(),
                    r.epoch
                );
            }
            prev = r.epoch;
            for (what, v) in [("train_acc", r.train_acc), ("eval_acc", r.eval_acc)] {
                if !(0.0..=1.0).contains(&v) {
                    return Err(bad(what, v, "0..=1"));
                }
            }
            for (what, v) in [
                ("train_loss", r.train_loss as f64),
                ("eval_loss", r.eval_loss as f64),
                ("seconds", r.seconds),
            ] {
                if !(0.0..=1e30).contains(&v) {
                    return Err(bad(what, v, "0..=1e30"));
                }
            }
        }
        Ok(())
    }
}

/// Why `path` is not a metrics file, in words: malformed JSON by where it breaks; JSON of
/// another shape (a config given to `plot`) by what a metrics file holds; a read refused
/// on the way by its reason.
fn not_metrics(path: &Path, e: serde_json::Error) -> anyhow::Error {
    if e.classify() == serde_json::error::Category::Data {
        return anyhow!(
            "{}: not a run's metrics file: the JSON does not fit one (at line {}, column {}); a run's metrics.json (runs/NAME/metrics.json) holds `optimizer`, `backend`, `best_epoch` and the `epochs` records",
            path.display(),
            e.line(),
            e.column()
        );
    }
    if e.classify() == serde_json::error::Category::Io {
        // A read refused on the way (a string past the limit, see `ShortStrings`).
        return anyhow!(
            "{}: not a metrics file: {}",
            path.display(),
            crate::limits::cut(&e.to_string())
        );
    }
    anyhow!(
        "{}: not a metrics file: malformed JSON (line {}, column {})",
        path.display(),
        e.line(),
        e.column()
    )
}

/// Whether something is at `path` (a link to nothing is not).
fn exists(path: &Path) -> bool {
    std::fs::metadata(path).is_ok()
}

/// Parses the metrics file at `path` (a regular file within [`MAX_METRICS`]) as a `T`,
/// streaming through [`ShortStrings`], so no string in it is held past 64 KiB.
fn json_reader<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let (f, _) = open_capped(path, "metrics", MAX_METRICS)?;
    let r = std::io::BufReader::with_capacity(1 << 16, ShortStrings::new(f.take(MAX_METRICS)));
    serde_json::from_reader(r).map_err(|e| not_metrics(path, e))
}

/// Bytes of memory the records read so far by this process hold.
static RECORD_BYTES: AtomicU64 = AtomicU64::new(0);

/// Counts `rec` against the memory the records a process reads may take (half its memory
/// limit, [`crate::limits::memory_limit`]), so a command reading many long runs (`plot a b
/// c ...`) is refused with a line, not killed by the allocator.
fn take_memory(rec: &EpochRecord) -> std::result::Result<(), String> {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    let limit = *LIMIT.get_or_init(|| crate::limits::memory_limit() / 2);
    let bytes = (std::mem::size_of::<EpochRecord>()
        + rec.telemetry.len() * std::mem::size_of::<LayerTelemetry>()) as u64;
    let total = RECORD_BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
    if total > limit {
        return Err(format!(
            "the epoch records read so far need more than {limit} bytes of memory, more than this process may use (RAM or ulimit -v)"
        ));
    }
    Ok(())
}

/// Deserializes a list of at most `max` items (`what` names them), each counted by `count`.
fn bounded<'de, D, T>(
    d: D,
    max: usize,
    what: &'static str,
    count: fn(&T) -> std::result::Result<(), String>,
) -> std::result::Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Seq<T> {
        max: usize,
        what: &'static str,
        count: fn(&T) -> std::result::Result<(), String>,
    }
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Seq<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {} {}", self.max, self.what)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> std::result::Result<Vec<T>, A::Error> {
            use serde::de::Error;
            let mut out = Vec::new();
            while let Some(x) = seq.next_element()? {
                if out.len() == self.max {
                    return Err(A::Error::custom(format!(
                        "more than {} {}",
                        self.max, self.what
                    )));
                }
                (self.count)(&x).map_err(A::Error::custom)?;
                out.push(x);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Seq { max, what, count })
}

/// A record's telemetry: at most one entry per layer of the deepest network.
fn layers_of_telemetry<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<LayerTelemetry>, D::Error> {
    bounded(d, MAX_LAYERS, "layers of telemetry", |_| Ok(()))
}

/// metrics.json's records: at most [`MAX_RECORDS`], within the memory records may take.
fn records<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<EpochRecord>, D::Error> {
    bounded(d, MAX_RECORDS, "epoch records", take_memory)
}
