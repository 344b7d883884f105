//! One trial, as every executor runs it: in its folder `OUT/trial-NNN/`, under that run
//! folder's lock, trained by the trainer `train` uses. It starts fresh, resumes exactly
//! from its saved state, or returns at once when `trial.json` says it has ended. Its end
//! (done with its best epoch's numbers, or failed with the reason) is `trial.json`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};

use super::plan::SweepRecord;
use super::TRIAL_JSON;
use crate::backend::Backend;
use crate::config::Config;
use crate::cpu::SharedSets;
use crate::data::{self, Dataset, CLASSES};
use crate::metrics::EpochRecord;
use crate::model::Params;
use crate::optim::OptimState;
use crate::run_folder::{self, Start, STATE};
use crate::trainer::{self, Interrupted, RunOptions};

/// Builds the backend a trial's config asks for (the command line's factory, which `train`
/// uses too), from its sets, initial weights and, when resuming, its optimizer state.
pub type BackendFactory<'a> = dyn Fn(&Config, &SharedSets, Params, Option<OptimState>) -> Result<Box<dyn Backend>>
    + Sync
    + 'a;

/// What a trial runs with: the sweep's folder and record, the learning images (loaded
/// once, shared by every trial), their splits and the backend factory.
pub struct Env<'a> {
    pub out: &'a Path,
    pub sweep: &'a SweepRecord,
    pub learn: &'a Dataset,
    pub splits: Splits,
    pub backend: &'a BackendFactory<'a>,
}

/// The train/eval splits of the learning images that trials train on, each made once, with
/// its fingerprint and the CPU backend's copies of its sets (see [`SharedSets`]), and shared
/// by the trials that use it: a trial's start then costs milliseconds, not the half second
/// that normalizing 50,000 images takes. A few are kept (a sweep may vary the set sizes).
#[derive(Default)]
pub struct Splits(Mutex<Vec<Arc<Split>>>);

/// One split: its sizes, the sets, and their fingerprint.
pub struct Split {
    sizes: (usize, usize),
    pub sets: SharedSets,
    pub fingerprint: String,
}

impl Splits {
    const KEEP: usize = 4;

    /// The split of `learn` into `train` and `eval` images, made now if no trial made it.
    pub fn get(&self, learn: &Dataset, train: usize, eval: usize) -> Result<Arc<Split>> {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = kept.iter().find(|s| s.sizes == (train, eval)) {
            return Ok(s.clone());
        }
        let (t, e) = data::split(learn, train, eval).map_err(anyhow::Error::msg)?;
        let fingerprint = run_folder::data_fingerprint(&[&t, &e]);
        let split = Arc::new(Split {
            sizes: (train, eval),
            sets: SharedSets::new(t, e),
            fingerprint,
        });
        if kept.len() == Self::KEEP {
            kept.remove(0);
        }
        kept.push(split.clone());
        Ok(split)
    }
}

/// How a trial ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ended {
    Done,
    Failed,
}

/// `trial.json`: how a trial ended and, when done, the numbers of its best epoch (lowest
/// eval loss: the weights `best.safetensors` holds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: Ended,
    /// Why it failed (the error, on one line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its loss stopped being finite (a kind of failure).
    #[serde(default)]
    pub diverged: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<EpochRecord>,
    /// Epochs trained in all (over every start).
    pub epochs: usize,
    /// Seconds of training, summed over its epochs (over every start).
    pub train_seconds: f64,
    /// When its last start began and when it ended (seconds since the Unix epoch).
    pub started_unix: f64,
    pub finished_unix: f64,
    /// Seconds of training in its last start (the rest of that start's time is its
    /// overhead: setting up, the data, saves); absent for a failed trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_train_seconds: Option<f64>,
    /// What it computed on (`cpu (2 threads)`, a GPU's name).
    #[serde(default)]
    pub backend: String,
}

impl Outcome {
    /// The trial's `trial.json`, if it has ended.
    pub fn load(dir: &Path) -> Result<Option<Outcome>> {
        let path = dir.join(TRIAL_JSON);
        if !path.exists() {
            return Ok(None);
        }
        let text = crate::fsio::read_text(&path, "trial record", crate::fsio::MAX_CONFIG)?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| anyhow!("{}: not a trial record: {e}", path.display()))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        crate::fsio::write_atomic(&dir.join(TRIAL_JSON), text.as_bytes())
    }

    /// The ranking numbers: eval accuracy and loss of the best epoch (done trials only).
    pub fn scores(&self) -> Option<(f64, f32)> {
        match (self.status, &self.best) {
            (Ended::Done, Some(b)) => Some((b.eval_acc, b.eval_loss)),
            _ => None,
        }
    }
}

/// A trial's records summed up: the best epoch (the first with the lowest eval loss, as the
/// trainer keeps it), the epochs and their seconds.
fn summary(records: &[EpochRecord]) -> (Option<EpochRecord>, usize, f64) {
    let best = records
        .iter()
        .min_by(|a, b| a.eval_loss.total_cmp(&b.eval_loss))
        .map(|r| EpochRecord {
            telemetry: Vec::new(),
            ..r.clone()
        });
    let seconds = records.iter().map(|r| r.seconds).sum();
    (best, records.len(), seconds)
}

/// Runs trial `index` of the sweep (see the module doc) and returns how it ended. An error
/// is returned, and nothing recorded, only when the trial's folder is another process's
/// (its lock is held) or the run was interrupted (saved, to be resumed); any other failure
/// is the trial's, recorded in its `trial.json`.
pub fn run(env: &Env, index: usize) -> Result<Outcome> {
    let dir = env.sweep.trial_dir(env.out, index);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("{}: cannot create folder", dir.display()))?;
    let _lock = run_folder::lock(&dir)?;
    run_folder::recover(&dir);
    if let Some(o) = Outcome::load(&dir)? {
        return Ok(o);
    }
    let started = super::now_unix();
    let outcome = match train(env, index, &dir) {
        Ok((records, backend, first)) => {
            let (best, epochs, train_seconds) = summary(&records);
            let this_start = records.iter().filter(|r| r.epoch > first);
            Outcome {
                start_train_seconds: Some(this_start.map(|r| r.seconds).sum()),
                status: Ended::Done,
                reason: None,
                diverged: false,
                best,
                epochs,
                train_seconds,
                started_unix: started,
                finished_unix: super::now_unix(),
                backend,
            }
        }
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => return Err(e),
        Err(e) => failed(&dir, &e, started),
    };
    outcome.save(&dir)?;
    Ok(outcome)
}

/// The record of a failed trial: the reason, and what its folder holds of its epochs.
fn failed(dir: &Path, e: &anyhow::Error, started: f64) -> Outcome {
    let reason = e
        .chain()
        .map(|c| c.to_string().replace(['\n', '\r'], " "))
        .collect::<Vec<_>>()
        .join(": ");
    let records = crate::metrics::Metrics::load(&dir.join(crate::metrics::JSON))
        .map(|m| m.epochs)
        .unwrap_or_default();
    let (_, epochs, train_seconds) = summary(&records);
    Outcome {
        status: Ended::Failed,
        diverged: reason.contains("loss is not finite"),
        reason: Some(clip(&reason, 500)),
        best: None,
        epochs,
        train_seconds,
        started_unix: started,
        finished_unix: super::now_unix(),
        start_train_seconds: None,
        backend: String::new(),
    }
}

/// `text` cut to `n` characters, marked `...` where cut.
pub fn clip(text: &str, n: usize) -> String {
    match text.char_indices().nth(n) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

/// Trains the trial in `dir`: resumed from its saved state, or fresh from its recorded
/// config. Returns its epoch records, the backend's name and the last epoch trained
/// before this start.
fn train(env: &Env, index: usize, dir: &Path) -> Result<(Vec<EpochRecord>, String, usize)> {
    let planned = env.sweep.config(index)?;
    let split = (env.splits).get(env.learn, planned.train_set_size, planned.eval_set_size)?;
    let train = &split.sets.train;
    planned.check_memory(train.features(), CLASSES)?;
    let layout = planned.layout(train.features(), CLASSES);
    let data_hash = split.fingerprint.clone();
    let (mut cfg, params, state, start) = if dir.join(STATE).exists() {
        // config.json holds what the trial's first start chose (backend, strategies).
        let cfg = Config::load(&dir.join("config.json"))?;
        same_settings(&cfg, &planned, dir)?;
        let (p, s, start) = run_folder::resume::start(dir, &cfg, layout, &data_hash)?;
        if start.epoch >= cfg.epochs {
            // Trained to the end; only its trial.json was missing (a kill just before).
            let m = crate::metrics::Metrics::load(&dir.join(crate::metrics::JSON))?;
            return Ok((start.epochs, m.backend, start.epoch));
        }
        (cfg, p, Some(s), start)
    } else {
        let params = Params::init(layout, planned.seed);
        (planned, params, None, Start::default())
    };
    let mut backend = (env.backend)(&cfg, &split.sets, params, state)?;
    // config.json records where and how the trial computes, so a rerun does the same.
    cfg.run = backend.settings();
    let opts = RunOptions {
        out_dir: dir.to_path_buf(),
        quiet: true,
        progress: None,
        data_dir: Some(env.sweep.options.data_dir.clone()),
        save_every: env.sweep.options.save_every.map(|n| n as usize),
        replace: None,
        budget_evals: None,
        data_hash: Some(data_hash),
    };
    let first = start.epoch;
    let run = trainer::train(backend.as_mut(), &cfg, &opts, start)?;
    Ok((run.metrics.epochs, backend.name(), first))
}

/// A trial's config.json must be the config sweep.json records for it (where and how it
/// computes aside, which its first start settles).
fn same_settings(now: &Config, planned: &Config, dir: &Path) -> Result<()> {
    let plain = |c: &Config| Config {
        run: Default::default(),
        ..c.clone()
    };
    let changes = run_folder::config_changes(&plain(planned).to_json().to_string(), &plain(now))?;
    let epochs = now.epochs != planned.epochs;
    if !changes.is_empty() || epochs {
        let mut all = changes;
        if epochs {
            all.push(format!(
                "epochs ({} now, {} recorded)",
                now.epochs, planned.epochs
            ));
        }
        anyhow::bail!(
            "{}: differs from the trial's settings in {}: {}",
            dir.join("config.json").display(),
            super::SWEEP_JSON,
            all.join(", ")
        );
    }
    Ok(())
}
