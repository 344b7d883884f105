//! Writing a run folder: creating it, the saves (best weights, then the last weights with
//! the optimizer state, whose rename is the save's one commit point) and the `--force`
//! swap. The trainer's loop calls these; see docs/guarantees.md.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{replace_run, BEST, LAST, STATE};
use crate::backend::Backend;
use crate::checkpoint;
use crate::config::Config;
use crate::fsio;
use crate::metrics::{self, Metrics};

/// The folder a run writes, and what it has yet to save there.
#[derive(Debug)]
pub struct Folder {
    /// Where the files go now (the `.NAME.new-run` sibling until a `--force` run swaps).
    pub dir: PathBuf,
    /// The run folder this one replaces after its first save (`--force`).
    replace: Option<PathBuf>,
    /// The epoch of best weights the backend keeps that best.safetensors does not hold yet.
    unsaved_best: Option<usize>,
    /// The fingerprint of the data, recorded with the state for `--resume` to compare.
    data: Option<String>,
    /// The folder's `flock`, when no run lock of this process holds it (see [`super::hold`]).
    _held: Option<std::fs::File>,
}

impl Folder {
    /// Creates `dir` with the run's config.json, its records up to `metrics.epochs` (a
    /// resume drops those past its saved state here) and, unless one is there, metrics.json.
    pub fn create(
        dir: &Path,
        replace: Option<PathBuf>,
        data: Option<String>,
        cfg: &Config,
        metrics: &Metrics,
    ) -> Result<Folder> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create output directory", dir.display()))?;
        // Held from its creation: one writer, even if the lock file is removed.
        let held = super::hold(dir)?;
        fsio::write_atomic(
            &dir.join("config.json"),
            serde_json::to_string_pretty(&cfg.to_json())?.as_bytes(),
        )?;
        metrics::write_records(dir, &metrics.epochs)?;
        // Written now so a run killed before its first save still names its data folder.
        if metrics.epochs.is_empty() || !dir.join(metrics::JSON).exists() {
            metrics.save(dir)?;
        }
        Ok(Folder {
            dir: dir.to_path_buf(),
            replace,
            unsaved_best: None,
            data,
            _held: held,
        })
    }

    /// Notes that the backend now keeps the best weights, those of `epoch`.
    pub fn best_kept(&mut self, epoch: usize) {
        self.unsaved_best = Some(epoch);
    }

    /// Whether this epoch must save: a `--force` run takes the old one's place only with
    /// weights and optimizer state saved, so a kill right after the swap leaves a
    /// resumable run.
    pub fn swap_pending(&self) -> bool {
        self.replace.is_some()
    }

    /// Writes best.safetensors if the backend keeps newer best weights than it holds.
    pub fn save_best(&mut self, backend: &mut dyn Backend, cfg: &Config) -> Result<()> {
        if let Some(epoch) = self.unsaved_best.take() {
            let params = backend.best_params()?;
            checkpoint::save(&self.dir.join(BEST), &params, &meta(cfg, epoch))?;
        }
        Ok(())
    }

    /// A save point after `epoch`: the records not yet written (`metrics`' last
    /// `unwritten`, with the telemetry read back now) appended and flushed, the best
    /// weights, the last weights and optimizer state (committed together), metrics.json,
    /// then the `--force` swap. A second signal waits for all of it.
    pub fn save(
        &mut self,
        backend: &mut dyn Backend,
        cfg: &Config,
        epoch: usize,
        metrics: &mut Metrics,
        unwritten: &mut usize,
    ) -> Result<()> {
        let _save = crate::signals::critical();
        metrics.attach_telemetry(backend.take_telemetry()?)?;
        let n = metrics.epochs.len();
        metrics::append_records(&self.dir, &metrics.epochs[n - *unwritten..], true)?;
        *unwritten = 0;
        self.save_best(backend, cfg)?;
        self.save_last(backend, cfg, epoch)?;
        metrics.save(&self.dir)?;
        if let Some(old) = self.replace.take() {
            replace_run(&self.dir, &old)?;
            self.dir = old;
        }
        Ok(())
    }

    /// The state file holds the weights, their fingerprint, the epoch, optimizer, config
    /// and data fingerprint: it is the save's one commit point (see `run_folder`). Both
    /// files are written in full before either is renamed, so a failed save (full disk)
    /// changes neither.
    fn save_last(&self, backend: &mut dyn Backend, cfg: &Config, epoch: usize) -> Result<()> {
        let (last, state) = (self.dir.join(LAST), self.dir.join(STATE));
        let params = backend.params()?;
        let last_tmp = checkpoint::save_tmp(&last, &params, &meta(cfg, epoch))?;
        let mut smeta = vec![
            ("optimizer", cfg.optimizer.name().to_string()),
            ("weights", checkpoint::fingerprint(&params.data)),
            ("config", cfg.to_json().to_string()),
        ];
        if let Some(d) = &self.data {
            smeta.push(("data", d.clone()));
        }
        let state_tmp = backend.state().and_then(|s| {
            checkpoint::save_state_tmp(&state, &s, epoch, Some(&params.data), &smeta)
        });
        match state_tmp {
            Ok(t) => fsio::commit_tmps(&[(last_tmp, last), (t, state)]),
            Err(e) => {
                fsio::discard_tmps(&[last_tmp]);
                Err(e)
            }
        }
    }
}

/// The metadata of a weights file saved after `epoch`.
fn meta(cfg: &Config, epoch: usize) -> [(&'static str, String); 3] {
    [
        ("optimizer", cfg.optimizer.name().to_string()),
        ("config", cfg.to_json().to_string()),
        ("epoch", epoch.to_string()),
    ]
}

/// A fingerprint of the sets a run trains and evaluates on (sizes and every byte), which
/// the state records so a resume on other data is refused.
pub fn data_fingerprint(sets: &[&crate::data::Dataset]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    };
    let mut sizes = Vec::new();
    for s in sets {
        eat(&(s.rows as u64).to_le_bytes());
        eat(&(s.cols as u64).to_le_bytes());
        eat(&(s.len() as u64).to_le_bytes());
        eat(&s.images);
        eat(&s.labels);
        sizes.push(format!("{}x{}x{}", s.len(), s.rows, s.cols));
    }
    format!("{} {h:016x}", sizes.join("+"))
}
