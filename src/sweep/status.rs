//! Where each trial of a sweep stands, read from sweep.json and the sweep's folder only
//! (never from an executor), so it holds for trials run here or on a cluster's nodes.
//!
//! A trial runs here when a live process of this machine holds its folder's lock (the
//! kernel's lock table). A process on another node holds its lock there, out of this
//! machine's sight; such a trial is known by its Slurm task's log (`slurm-logs/`), whose
//! latest start names another node and has no end: it counts as running while it keeps
//! writing, and as lost (pending, to be resumed) once it has been silent for longer than
//! [`silence_limit`].

use std::path::Path;

use anyhow::Result;

use super::plan::SweepRecord;
use super::trial::{Ended, Outcome};
use crate::run_folder::{lock_held, STATE};

/// A trial's state.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// Trained to its last epoch (`trial.json`).
    Done(Outcome),
    /// Ended with an error or diverged (`trial.json`, with the reason).
    Failed(Outcome),
    /// A live process holds its folder's lock (`elsewhere`: None), or its Slurm task runs on
    /// another node, by its log; the epochs its records hold so far.
    Running {
        epochs: usize,
        elsewhere: Option<Elsewhere>,
    },
    /// Not started, or stopped part-way with its state saved (`saved`), to be resumed;
    /// `lost`: its task's log says it started on another node and never ended, but nothing
    /// was written for longer than [`silence_limit`] (killed, or its node failed).
    Pending {
        saved: bool,
        epochs: usize,
        lost: Option<Elsewhere>,
    },
}

/// A trial's task on another node, by its log: the node, and when the trial's files (or the
/// log) last changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Elsewhere {
    pub node: String,
    pub last_write_unix: f64,
}

impl State {
    pub fn word(&self) -> &'static str {
        match self {
            State::Done(_) => "done",
            State::Failed(_) => "failed",
            State::Running { .. } => "running",
            State::Pending { .. } => "pending",
        }
    }

    /// Whether the trial has ended (done or failed): nothing left to run.
    pub fn ended(&self) -> bool {
        matches!(self, State::Done(_) | State::Failed(_))
    }
}

/// The epochs a run folder's records hold (lines of `metrics.jsonl`; a line cut short by
/// a kill is not one), and the seconds of the latest.
fn epochs_recorded(dir: &Path) -> (usize, f64) {
    let Ok(b) = std::fs::read(dir.join(crate::metrics::JSONL)) else {
        return (0, 0.0);
    };
    let lines: Vec<&[u8]> = (b.split_inclusive(|&c| c == b'\n'))
        .filter(|l| l.ends_with(b"\n"))
        .collect();
    let seconds = lines
        .last()
        .and_then(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
        .and_then(|v| v["seconds"].as_f64())
        .unwrap_or(0.0);
    (lines.len(), seconds)
}

/// Trial `index`'s state.
pub fn of(out: &Path, sweep: &SweepRecord, index: usize) -> Result<State> {
    let dir = sweep.trial_dir(out, index);
    if let Some(o) = Outcome::load(&dir)? {
        return Ok(match o.status {
            Ended::Done => State::Done(o),
            Ended::Failed => State::Failed(o),
        });
    }
    let (epochs, last_epoch_s) = epochs_recorded(&dir);
    if lock_held(&dir) {
        return Ok(State::Running {
            epochs,
            elsewhere: None,
        });
    }
    let saved = dir.join(STATE).exists();
    let log = out.join(super::SLURM_LOG_DIR).join(format!(
        "{}.log",
        super::trial_name(index, sweep.trials.len())
    ));
    let Some(e) = elsewhere(&dir, &log) else {
        return Ok(State::Pending {
            saved,
            epochs,
            lost: None,
        });
    };
    let silent = super::now_unix() - e.last_write_unix;
    Ok(match silent <= silence_limit(last_epoch_s) {
        true => State::Running {
            epochs,
            elsewhere: Some(e),
        },
        false => State::Pending {
            saved,
            epochs,
            lost: Some(e),
        },
    })
}

/// How long a trial on another node may write nothing and still count as running: ten
/// minutes, or three of its latest epochs (an epoch and its save write nothing until they
/// end).
pub fn silence_limit(last_epoch_s: f64) -> f64 {
    (3.0 * last_epoch_s).max(600.0)
}

/// The trial's task on another node whose latest start has not ended, by its Slurm log
/// `log` (None: no log, its run ended, or it ran here, where the lock tells).
fn elsewhere(dir: &Path, log: &Path) -> Option<Elsewhere> {
    let text = tail(log, 64 << 10)?;
    let run = crate::slurm::last_run(&text)?;
    if run.ended || run.host == crate::slurm::hostname() {
        return None;
    }
    let modified = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64())
    };
    let files = [
        log.to_path_buf(),
        dir.to_path_buf(),
        dir.join(crate::metrics::JSONL),
        dir.join(STATE),
    ];
    let last = files.iter().map(|p| modified(p)).fold(0.0, f64::max);
    Some(Elsewhere {
        node: run.host,
        last_write_unix: last,
    })
}

/// The last `max` bytes of the file at `path` (as text), if it can be read.
fn tail(path: &Path, max: u64) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    // Not blocking on a FIFO put in its place.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let len = meta.len();
    f.seek(SeekFrom::Start(len.saturating_sub(max))).ok()?;
    let mut bytes = Vec::new();
    f.take(max).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Every trial's state, trial 1 first.
pub fn all(out: &Path, sweep: &SweepRecord) -> Result<Vec<State>> {
    (1..=sweep.trials.len())
        .map(|i| of(out, sweep, i))
        .collect()
}

/// Counts of the four states: done, running, pending, failed.
pub fn counts(states: &[State]) -> [usize; 4] {
    let mut c = [0; 4];
    for s in states {
        c[match s {
            State::Done(_) => 0,
            State::Running { .. } => 1,
            State::Pending { .. } => 2,
            State::Failed(_) => 3,
        }] += 1;
    }
    c
}

/// The summary line: `done 3, running 2, pending 1, failed 0 (of 6)`.
pub fn line(states: &[State]) -> String {
    let [d, r, p, f] = counts(states);
    format!(
        "done {d}, running {r}, pending {p}, failed {f} (of {})",
        states.len()
    )
}

/// A span of `seconds` as a person reads it: `45 s`, `12 min`, `3.5 h`, `2.0 d`.
pub fn ago(seconds: f64) -> String {
    let s = seconds.max(0.0);
    match s {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} d", s / 86_400.0),
    }
}
