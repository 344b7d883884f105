//! The report's `traineval`: per epoch one full-batch step and an eval pass; keeps the
//! weights of the epoch with the lowest eval loss. Backend-agnostic.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::backend::Backend;
use crate::checkpoint::{self, write_atomic};
use crate::config::Config;
use crate::metrics::{EpochRecord, Metrics};

/// Where a run writes and how it reports.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub out_dir: PathBuf,
    /// No progress bar or per-epoch lines.
    pub quiet: bool,
    /// A bar owned by the caller (e.g. one across a whole comparison) to advance per epoch
    /// instead of a bar of the run's own.
    pub progress: Option<ProgressBar>,
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub metrics: Metrics,
    pub best: EpochRecord,
    pub seconds: f64,
}

pub const BEST: &str = "best.safetensors";
pub const LAST: &str = "last.safetensors";

/// A progress bar over `epochs` epochs on stderr; hidden when quiet or not a terminal.
pub fn progress(epochs: usize, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(epochs as u64),
        if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:25.cyan/blue}] {pos}/{len} epochs {elapsed}<{eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// Runs `cfg.epochs` epochs on `backend`, writing into `opts.out_dir`: `config.json`,
/// `best.safetensors` (whenever the eval loss improves), `metrics.json`/`.csv` (every epoch)
/// and `last.safetensors` (at the end).
pub fn train(backend: &mut dyn Backend, cfg: &Config, opts: &RunOptions) -> Result<RunSummary> {
    let dir = &opts.out_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create output directory", dir.display()))?;
    write_atomic(
        &dir.join("config.json"),
        serde_json::to_string_pretty(&cfg.to_json())?.as_bytes(),
    )?;
    let meta = [
        ("optimizer", cfg.optimizer.name().to_string()),
        ("config", cfg.to_json().to_string()),
    ];
    let mut metrics = Metrics {
        optimizer: cfg.optimizer.name().to_string(),
        backend: backend.name(),
        best_epoch: 0,
        epochs: Vec::with_capacity(cfg.epochs),
    };
    let own_bar = opts.progress.is_none();
    let bar = opts
        .progress
        .clone()
        .unwrap_or_else(|| progress(cfg.epochs, opts.quiet));
    bar.set_prefix(cfg.optimizer.name());
    let lines = !opts.quiet && bar.is_hidden();
    let start = Instant::now();
    let mut best: Option<EpochRecord> = None;
    for epoch in 1..=cfg.epochs {
        let t0 = Instant::now();
        let s = backend.epoch()?;
        let rec = EpochRecord {
            epoch,
            train_loss: s.train.loss,
            train_acc: s.train.accuracy(),
            eval_loss: s.eval.loss,
            eval_acc: s.eval.accuracy(),
            seconds: t0.elapsed().as_secs_f64(),
        };
        if !(rec.train_loss.is_finite() && rec.eval_loss.is_finite()) {
            bar.abandon();
            bail!(
                "epoch {epoch}: loss is not finite (train {}, eval {}); stopped, the best checkpoint so far is kept in {}",
                rec.train_loss,
                rec.eval_loss,
                dir.display()
            );
        }
        if best.as_ref().is_none_or(|b| rec.eval_loss < b.eval_loss) {
            let params = backend.params()?;
            checkpoint::save(&dir.join(BEST), &params, &meta)?;
            metrics.best_epoch = epoch;
            best = Some(rec.clone());
        }
        let msg = format!(
            "train {:.4} {:.2}% | eval {:.4} {:.2}% | {:.2}s",
            rec.train_loss,
            100.0 * rec.train_acc,
            rec.eval_loss,
            100.0 * rec.eval_acc,
            rec.seconds
        );
        if lines {
            println!("{} epoch {epoch:>3}/{}: {msg}", cfg.optimizer, cfg.epochs);
        }
        bar.set_message(msg);
        bar.inc(1);
        metrics.epochs.push(rec);
        metrics.save(dir)?;
    }
    if own_bar {
        bar.finish_and_clear();
    }
    let params = backend.params()?;
    checkpoint::save(&dir.join(LAST), &params, &meta)?;
    let best = best.context("no epoch ran")?;
    Ok(RunSummary {
        metrics,
        best,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Path of a run's best checkpoint.
pub fn best_path(dir: &Path) -> PathBuf {
    dir.join(BEST)
}
