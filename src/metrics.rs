//! Per-epoch metrics of a run, written as `metrics.json` and `metrics.csv` after every epoch
//! (atomically), so an interrupted run keeps every finished epoch.

use std::path::Path;

use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};

use crate::checkpoint::write_atomic;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f32,
    pub train_acc: f64,
    pub eval_loss: f32,
    pub eval_acc: f64,
    /// Wall-clock seconds of the epoch (train step + eval).
    pub seconds: f64,
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
}

impl Metrics {
    pub fn to_csv(&self) -> String {
        let mut s = String::from("epoch,train_loss,train_acc,eval_loss,eval_acc,seconds\n");
        for r in &self.epochs {
            s += &format!(
                "{},{},{},{},{},{:.6}\n",
                r.epoch, r.train_loss, r.train_acc, r.eval_loss, r.eval_acc, r.seconds
            );
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
