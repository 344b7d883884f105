//! The checks a `--resume` makes: the last weights and optimizer state are one pair saved
//! together, of the config, network and data the run records; the records continue up to
//! the saved epoch (any past it, from a crash before the save committed, are dropped).

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{check_state, config_changes, state_check, LAST, STATE};
use crate::checkpoint;
use crate::config::{Config, RunSettings};
use crate::metrics::{EpochRecord, Metrics};
use crate::model::{Layout, Params};
use crate::optim::OptimState;

/// Where a run starts: fresh, or after the epochs of an earlier run of the same config.
#[derive(Clone, Debug, Default)]
pub struct Start {
    /// Epochs already done.
    pub epoch: usize,
    /// Their metrics (empty when fresh).
    pub epochs: Vec<EpochRecord>,
}

impl Start {
    /// Reads where the run in `dir` stopped: its optimizer state (the epoch it was saved
    /// at) and its records up to that epoch; also returns the metrics file's record of the
    /// run (backend, data folder).
    pub fn resume(dir: &Path, len: usize) -> Result<(Start, OptimState, Metrics)> {
        let (state, epoch) = checkpoint::load_state(&dir.join(STATE), len)?;
        let path = dir.join(crate::metrics::JSON);
        let mut metrics = Metrics::load(&path)?;
        let shown = if dir.join(crate::metrics::JSONL).is_file() {
            dir.join(crate::metrics::JSONL)
        } else {
            path.clone()
        };
        if metrics.epochs.len() < epoch {
            bail!(
                "{}: has {} epochs but the optimizer state is from epoch {epoch}",
                shown.display(),
                metrics.epochs.len()
            );
        }
        if let Some((i, r)) = (metrics.epochs.iter().enumerate()).find(|(i, r)| r.epoch != i + 1) {
            bail!(
                "{}: record {} is of epoch {}, expected {} (epochs must run 1, 2, 3, ...)",
                shown.display(),
                i + 1,
                r.epoch,
                i + 1
            );
        }
        if metrics.best_epoch > metrics.epochs.len() {
            bail!(
                "{}: best_epoch {} is past its {} epochs",
                path.display(),
                metrics.best_epoch,
                metrics.epochs.len()
            );
        }
        // The records shape the resumed run (its best epoch): `plot`'s checks, and more.
        metrics.check_plausible(&shown)?;
        state_check::check_records(dir, &shown, &metrics.epochs, epoch)?;
        // Epochs after the saved state (a crash before the save committed) are run again.
        let epochs = metrics.epochs.drain(..epoch).collect();
        Ok((Start { epoch, epochs }, state, metrics))
    }
}

/// Where a resumed run starts: its last weights and optimizer state, checked to be one
/// consistent pair (same epoch, optimizer and weights fingerprint) of the network the
/// config describes and of the data (`data`, see [`super::data_fingerprint`]).
pub fn start(
    dir: &Path,
    cfg: &Config,
    layout: Layout,
    data: &str,
) -> Result<(Params, OptimState, Start)> {
    let state_path = dir.join(STATE);
    let (start, state, _) = Start::resume(dir, layout.total())?;
    let (_, _, smeta, weights) = checkpoint::load_state_full(&state_path, layout.total())?;
    if let Some(recorded) = smeta.get("config") {
        let changes =
            config_changes(recorded, cfg).with_context(|| format!("{}", state_path.display()))?;
        if !changes.is_empty() {
            bail!(
                "{}: differs from the settings the checkpoint {} recorded: {}; a resume keeps them (only --epochs may change; start a new run with --out)",
                dir.join("config.json").display(),
                state_path.display(),
                changes.join(", ")
            );
        }
    }
    if let Some(d) = smeta.get("data").filter(|d| d.as_str() != data) {
        bail!(
            "{}: key `data` differs: the run trained on data {} but the data now is {}; a resume keeps its data (pass the run's --data-dir)",
            state_path.display(),
            crate::config::cut(d),
            data
        );
    }
    check_state(&state, cfg).with_context(|| format!("{}", state_path.display()))?;
    let params = match weights {
        Some(data) => pair_in_state(&state_path, cfg, &smeta, data, layout)?,
        None => pair_of_files(dir, cfg, &smeta, &start, layout)?,
    };
    check_steps(&state_path, cfg, &state, start.epoch)?;
    let at = || format!("{}", state_path.display());
    state_check::check_lbfgs(cfg, &state, layout.total(), start.epoch).with_context(at)?;
    state_check::check_fingerprint(&state, &smeta, start.epoch).with_context(at)?;
    Ok((params, state, start))
}

type Meta = std::collections::HashMap<String, String>;

/// The weights a state file holds (the save's commit point, so a crash that renamed
/// last.safetensors but not the state leaves the state's pair, still whole).
fn pair_in_state(
    state_path: &Path,
    cfg: &Config,
    smeta: &Meta,
    data: Vec<f32>,
    layout: Layout,
) -> Result<Params> {
    for k in ["optimizer", "weights", "config"] {
        if !smeta.contains_key(k) {
            bail!(
                "{}: missing metadata `{k}`; cannot check what it was saved with",
                state_path.display()
            );
        }
    }
    same_optimizer(state_path, smeta, cfg)?;
    if smeta.get("weights") != Some(&checkpoint::fingerprint(&data)) {
        bail!(
            "{}: its weights do not match their recorded fingerprint (a damaged file)",
            state_path.display()
        );
    }
    Ok(Params { layout, data })
}

/// A resumed run keeps its optimizer.
fn same_optimizer(file: &Path, meta: &Meta, cfg: &Config) -> Result<()> {
    let name = cfg.optimizer.name();
    if let Some(o) = meta.get("optimizer").filter(|o| o.as_str() != name) {
        bail!(
            "{}: was saved by {} but config.json now says {name}; a resumed run keeps its optimizer (start a new run with --out)",
            file.display(),
            crate::config::cut(o)
        );
    }
    Ok(())
}

/// The weights of last.safetensors, for a state file that does not hold them (older
/// runs): the two files must record the same epoch, optimizer and weights.
fn pair_of_files(
    dir: &Path,
    cfg: &Config,
    smeta: &Meta,
    start: &Start,
    layout: Layout,
) -> Result<Params> {
    let (last, state_path) = (dir.join(LAST), dir.join(STATE));
    let (params, meta) = checkpoint::load_with_meta(&last, layout.inputs, layout.classes)?;
    if params.layout != layout {
        bail!(
            "{}: holds a {} network but {} describes {}",
            last.display(),
            params.layout.describe(),
            dir.join("config.json").display(),
            layout.describe()
        );
    }
    same_optimizer(&last, &meta, cfg)?;
    same_optimizer(&state_path, smeta, cfg)?;
    // Without these fields the files cannot be checked as a pair: refused, not trusted.
    for (file, m, keys) in [
        (&last, &meta, &["epoch", "optimizer"][..]),
        (&state_path, smeta, &["optimizer", "weights", "t"][..]),
    ] {
        if let Some(k) = keys.iter().find(|k| !m.contains_key(**k)) {
            bail!(
                "{}: missing metadata `{k}`; cannot check that it was saved with {}",
                file.display(),
                if file == &last { &state_path } else { &last }.display()
            );
        }
    }
    if let Some(e) = meta.get("epoch").filter(|e| **e != start.epoch.to_string()) {
        bail!(
            "{} is from epoch {} but {} is from epoch {}; they were not saved together (a crash between the two writes?)",
            last.display(),
            crate::config::cut(e),
            state_path.display(),
            start.epoch
        );
    }
    if let Some(w) = (smeta.get("weights")).filter(|w| **w != checkpoint::fingerprint(&params.data))
    {
        bail!(
            "{} belongs to other weights (fingerprint {}) than {}; they were not saved together",
            state_path.display(),
            crate::config::cut(w),
            last.display()
        );
    }
    Ok(params)
}

/// One step per batch: the step count a state records is fixed by its epoch.
fn check_steps(state_path: &Path, cfg: &Config, state: &OptimState, epoch: usize) -> Result<()> {
    let batch = cfg.train_batch_size.clamp(1, cfg.train_set_size.max(1));
    let steps = (epoch as u64).saturating_mul(cfg.train_set_size.div_ceil(batch) as u64);
    if state.t != steps {
        bail!(
            "{}: records {} optimizer steps, but {} epochs of {} make {steps}",
            state_path.display(),
            state.t,
            epoch,
            if batch < cfg.train_set_size {
                format!("{} batches", cfg.train_set_size.div_ceil(batch))
            } else {
                "one full-batch step".to_string()
            }
        );
    }
    Ok(())
}

/// The one-line notice of a resume that computes elsewhere or otherwise than the run
/// did (`recorded`, from its config.json): allowed, but the results then differ in the
/// last bits from an uninterrupted run.
pub fn settings_notice(recorded: &RunSettings, now: &RunSettings) -> Option<String> {
    let show = |s: &RunSettings| {
        [
            s.backend.as_deref(),
            s.matmul_kernel.as_deref(),
            s.cpu_matmul.as_deref(),
        ]
        .iter()
        .flatten()
        .map(|x| crate::config::cut(x))
        .collect::<Vec<_>>()
        .join(", ")
    };
    let key = |s: &RunSettings| {
        (
            s.backend.clone(),
            s.matmul_kernel.clone(),
            s.cpu_matmul.clone(),
        )
    };
    (recorded.backend.is_some() && key(recorded) != key(now)).then(|| {
        format!(
            "note: this run computed on {} and resumes on {}; its results will differ in the last bits from an uninterrupted run",
            show(recorded),
            show(now)
        )
    })
}
