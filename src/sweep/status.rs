//! Where each trial of a sweep stands, read from sweep.json and the trial folders only
//! (never from an executor), so it holds for trials run here or on a cluster's nodes.

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
    /// A live process holds its folder's lock; the epochs its records hold so far.
    Running { epochs: usize },
    /// Not started, or stopped part-way with its state saved (`saved`), to be resumed.
    Pending { saved: bool, epochs: usize },
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
/// a kill is not one).
fn epochs_recorded(dir: &Path) -> usize {
    std::fs::read(dir.join(crate::metrics::JSONL)).map_or(0, |b| {
        b.split_inclusive(|&c| c == b'\n')
            .filter(|l| l.ends_with(b"\n"))
            .count()
    })
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
    let epochs = epochs_recorded(&dir);
    if lock_held(&dir) {
        return Ok(State::Running { epochs });
    }
    Ok(State::Pending {
        saved: dir.join(STATE).exists(),
        epochs,
    })
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
