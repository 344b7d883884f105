//! Per-epoch metrics of a run, written as `metrics.json` and `metrics.csv` after every epoch
//! (atomically), so an interrupted run keeps every finished epoch.

use std::path::Path;

use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};

use crate::checkpoint::write_atomic;
use crate::telemetry::LayerTelemetry;

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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
    pub epochs: Vec<EpochRecord>,
    /// The best weights' test score (absent with `--no-test` or before the run ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<TestRecord>,
}

impl Metrics {
    pub fn to_csv(&self) -> String {
        let layers = self.epochs.iter().map(|r| r.telemetry.len()).max();
        let layers = layers.unwrap_or(0);
        let mut s =
            String::from("epoch,train_loss,train_acc,eval_loss,eval_acc,seconds,grad_evals");
        for l in 1..=layers {
            for k in TELEMETRY_COLUMNS {
                s += &format!(",l{l}_{k}");
            }
        }
        s.push('\n');
        for r in &self.epochs {
            s += &format!(
                "{},{},{},{},{},{:.6},{}",
                r.epoch,
                r.train_loss,
                r.train_acc,
                r.eval_loss,
                r.eval_acc,
                r.seconds,
                r.grad_evals
            );
            for l in 0..layers {
                match r.telemetry.get(l) {
                    Some(t) => {
                        s += &format!(
                            ",{},{},{},{},{}",
                            t.sign_changes, t.backtracks, t.at_min, t.at_max, t.median_step
                        )
                    }
                    // Not read back yet (a GPU between save points).
                    None => s += ",,,,,",
                }
            }
            s.push('\n');
        }
        s
    }

    /// Writes `metrics.json` and `metrics.csv` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        write_atomic(&dir.join("metrics.json"), &json)?;
        write_atomic(&dir.join("metrics.csv"), self.to_csv().as_bytes())
    }

    /// Reads a `metrics.json`; errors name the file.
    pub fn load(path: &Path) -> Result<Metrics> {
        let text = crate::fsio::read_text(path, "metrics", crate::fsio::MAX_METRICS)?;
        serde_json::from_str(&text).map_err(|e| {
            anyhow!(
                "{}: not a metrics file: {}",
                path.display(),
                crate::limits::cut(&e.to_string())
            )
        })
    }
}
