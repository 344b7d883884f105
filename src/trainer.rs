//! The report's `traineval`: per epoch one pass of optimizer steps over the train set (one
//! full-batch step, or mini-batches) and an eval pass; keeps the weights of the epoch with
//! the lowest eval loss. Backend-agnostic.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::backend::{epoch_order, Backend, Batch};
use crate::checkpoint::{self, write_atomic};
use crate::config::Config;
use crate::data::{self, Dataset, Part};
use crate::metrics::{EpochRecord, Metrics};
use crate::model::{Layout, Params};
use crate::optim::OptimState;
use crate::telemetry::LayerTelemetry;

/// Where a run writes and how it reports.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub out_dir: PathBuf,
    /// No progress bar or per-epoch lines.
    pub quiet: bool,
    /// A bar owned by the caller (e.g. one across a whole comparison) to advance per epoch
    /// instead of a bar of the run's own.
    pub progress: Option<ProgressBar>,
    /// The data folder, recorded in metrics.json so `--resume` finds it again.
    pub data_dir: Option<PathBuf>,
    /// Also write the best and last weights and the optimizer state every N epochs (a GPU
    /// reads them back then); None: only at the end and when interrupted.
    pub save_every: Option<usize>,
    /// `--force` over an existing run: `out_dir` is a fresh sibling folder, and this run
    /// folder is replaced by it (atomically) once the first epoch's files, weights and
    /// optimizer state included, are written. A
    /// failure before that leaves the old run as it was.
    pub replace: Option<PathBuf>,
    /// Stop at the end of the first epoch that brings the run's gradient evaluations (its
    /// `grad_evals`, summed) to at least this many (`compare --budget-evals`).
    pub budget_evals: Option<u64>,
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub metrics: Metrics,
    pub best: EpochRecord,
    pub seconds: f64,
}

pub use crate::run_folder::{BEST, LAST, STATE};

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

pub use crate::signals::INTERRUPTED;

/// Marks the start of training: from here a first Ctrl-C (or SIGTERM, SIGHUP) asks the
/// run to stop after the current epoch, saving everything (see [`crate::signals`]).
pub fn install_interrupt_handler() {
    crate::signals::set_training(true);
}

/// A run stopped by Ctrl-C after `epoch`, with everything saved in `dir`.
#[derive(Debug)]
pub struct Interrupted {
    pub epoch: usize,
    pub dir: PathBuf,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interrupted after epoch {}; saved {}/{{last.safetensors, {STATE}, metrics.json}}; continue with `rprop-lab train --resume {}`",
            self.epoch,
            self.dir.display(),
            self.dir.display()
        )
    }
}

impl std::error::Error for Interrupted {}

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
    /// at) and its metrics up to that epoch; also returns the metrics file's record of the
    /// run (backend, data folder).
    pub fn resume(dir: &Path, len: usize) -> Result<(Start, OptimState, Metrics)> {
        let (state, epoch) = checkpoint::load_state(&dir.join(STATE), len)?;
        let metrics = Metrics::load(&dir.join("metrics.json"))?;
        if metrics.epochs.len() < epoch {
            bail!(
                "{}: has {} epochs but the optimizer state is from epoch {epoch}",
                dir.join("metrics.json").display(),
                metrics.epochs.len()
            );
        }
        let metrics_path = dir.join("metrics.json");
        if let Some((i, r)) = metrics
            .epochs
            .iter()
            .enumerate()
            .find(|(i, r)| r.epoch != i + 1)
        {
            bail!(
                "{}: record {} is of epoch {}, expected {} (epochs must run 1, 2, 3, ...)",
                metrics_path.display(),
                i + 1,
                r.epoch,
                i + 1
            );
        }
        if metrics.best_epoch > metrics.epochs.len() {
            bail!(
                "{}: best_epoch {} is past its {} epochs",
                metrics_path.display(),
                metrics.best_epoch,
                metrics.epochs.len()
            );
        }
        let mut metrics = metrics;
        // Epochs after the saved state (a crash between the two writes) are run again.
        let epochs = metrics.epochs.drain(..epoch).collect();
        Ok((Start { epoch, epochs }, state, metrics))
    }
}

/// Runs epochs `start.epoch + 1 ..= cfg.epochs` on `backend`, writing into
/// `opts.out_dir`: `config.json`, `metrics.json`/`.csv` (every epoch), and, every
/// `opts.save_every` epochs, at the end and when interrupted, `best.safetensors` (the
/// weights of the epoch with the lowest eval loss, kept by the backend meanwhile, on the
/// device for a GPU) and `last.safetensors` with the optimizer state
/// (`optimizer.safetensors`). Reading weights back only then keeps a GPU epoch at one
/// submission and a few bytes read. Each epoch is one full-batch step or, when
/// `train_batch_size` is below the train set, mini-batches of rows shuffled by
/// [`epoch_order`]. A non-finite loss stops the run with an error naming the epoch, after
/// writing the best weights so far.
pub fn train(
    backend: &mut dyn Backend,
    cfg: &Config,
    opts: &RunOptions,
    start: Start,
) -> Result<RunSummary> {
    let result = train_in(backend, cfg, opts, start);
    if let (Err(e), Some(old)) = (&result, &opts.replace) {
        if opts.out_dir.exists() {
            // Failed before taking the folder's place: drop the new folder; an old run
            // there is untouched.
            crate::fsio::remove_run_dir(&opts.out_dir, &RUN_FILES);
            if RUN_FILES.iter().any(|f| old.join(f).exists()) {
                return Err(anyhow::anyhow!(
                    "{e:#} (the run in {} is kept as it was)",
                    old.display()
                ));
            }
        }
    }
    result
}

fn train_in(
    backend: &mut dyn Backend,
    cfg: &Config,
    opts: &RunOptions,
    start: Start,
) -> Result<RunSummary> {
    let mut dir = opts.out_dir.clone();
    let mut pending_replace = opts.replace.clone();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("{}: cannot create output directory", dir.display()))?;
    write_atomic(
        &dir.join("config.json"),
        serde_json::to_string_pretty(&cfg.to_json())?.as_bytes(),
    )?;
    let meta = |epoch: usize| {
        [
            ("optimizer", cfg.optimizer.name().to_string()),
            ("config", cfg.to_json().to_string()),
            ("epoch", epoch.to_string()),
        ]
    };
    let mut best: Option<EpochRecord> = start
        .epochs
        .iter()
        .min_by(|a, b| a.eval_loss.total_cmp(&b.eval_loss))
        .cloned();
    let mut metrics = Metrics {
        optimizer: cfg.optimizer.name().to_string(),
        backend: backend.name(),
        best_epoch: best.as_ref().map_or(0, |b| b.epoch),
        data_dir: opts.data_dir.clone(),
        epochs: start.epochs,
        test: None,
    };
    let own_bar = opts.progress.is_none();
    let bar = opts
        .progress
        .clone()
        .unwrap_or_else(|| progress(cfg.epochs, opts.quiet));
    if own_bar {
        bar.set_position(start.epoch as u64);
    }
    bar.set_prefix(cfg.optimizer.name());
    let lines = !opts.quiet && bar.is_hidden();
    let t_run = Instant::now();
    // The epoch of best weights the backend keeps that best.safetensors does not hold yet.
    let mut unsaved_best: Option<usize> = None;
    let save_best =
        |backend: &mut dyn Backend, dir: &Path, unsaved: &mut Option<usize>| -> Result<()> {
            if let Some(epoch) = unsaved.take() {
                checkpoint::save(&dir.join(BEST), &backend.best_params()?, &meta(epoch))?;
            }
            Ok(())
        };
    // The state file holds the weights, their fingerprint, the epoch, optimizer and config:
    // it is the save's one commit point (see `run_folder`). Both files are written in full
    // before either is renamed, so a failed save (full disk) changes neither.
    let save_last = |backend: &mut dyn Backend, dir: &Path, epoch: usize| -> Result<()> {
        let (last, state) = (dir.join(LAST), dir.join(STATE));
        let params = backend.params()?;
        let last_tmp = checkpoint::save_tmp(&last, &params, &meta(epoch))?;
        let state_tmp = backend.state().and_then(|s| {
            checkpoint::save_state_tmp(
                &state,
                &s,
                epoch,
                Some(&params.data),
                &[
                    ("optimizer", cfg.optimizer.name().to_string()),
                    ("weights", checkpoint::fingerprint(&params.data)),
                    ("config", cfg.to_json().to_string()),
                ],
            )
        });
        match state_tmp {
            Ok(t) => crate::fsio::commit_tmps(&[(last_tmp, last), (t, state)]),
            Err(e) => {
                crate::fsio::discard_tmps(&[last_tmp]);
                Err(e)
            }
        }
    };
    let n = backend.train_len();
    let batch = cfg.train_batch_size.clamp(1, n.max(1));
    for epoch in start.epoch + 1..=cfg.epochs {
        let t0 = Instant::now();
        if batch < n {
            let order = epoch_order(n, cfg.seed, epoch as u64);
            for rows in order.chunks(batch) {
                backend.train_step(Batch::Rows(rows))?;
            }
        } else {
            backend.train_step(Batch::Full)?;
        }
        let s = backend.end_epoch()?;
        let rec = EpochRecord {
            epoch,
            train_loss: s.train.loss,
            train_acc: s.train.accuracy(),
            eval_loss: s.eval.loss,
            eval_acc: s.eval.accuracy(),
            seconds: t0.elapsed().as_secs_f64(),
            grad_evals: s.grad_evals as u64,
            telemetry: Vec::new(),
        };
        if !(rec.train_loss.is_finite() && rec.eval_loss.is_finite()) {
            bar.abandon();
            save_best(backend, &dir, &mut unsaved_best)?;
            let mut rows = backend.take_telemetry()?;
            // The diverged epoch's row goes with the epoch, which is not recorded.
            rows.pop();
            attach_telemetry(rows, &mut metrics)?;
            metrics.save(&dir)?;
            bail!(
                "epoch {epoch}: the loss is not finite (train {}, eval {}), the weights have diverged; stopped. {}",
                rec.train_loss,
                rec.eval_loss,
                match &best {
                    Some(b) => format!(
                        "The best checkpoint so far (epoch {}) is kept in {}",
                        b.epoch,
                        dir.join(BEST).display()
                    ),
                    None => "No checkpoint was saved".to_string(),
                }
            );
        }
        if best.as_ref().is_none_or(|b| rec.eval_loss < b.eval_loss) {
            backend.keep_best()?;
            unsaved_best = Some(epoch);
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
        // The seed names the run among a comparison's (`compare --seeds`).
        let line = format!(
            "{} seed {} epoch {epoch:>3}/{}: {msg}",
            cfg.optimizer, cfg.seed, cfg.epochs
        );
        if lines {
            println!("{line}");
        } else if !opts.quiet && history_due(epoch, cfg.epochs) {
            // Above the bar, so the history stays on screen as the bar moves.
            bar.println(line);
        }
        bar.set_message(msg);
        bar.inc(1);
        metrics.epochs.push(rec);
        metrics.save(&dir)?;
        let used: u64 = metrics.epochs.iter().map(|r| r.grad_evals).sum();
        let spent = opts.budget_evals.is_some_and(|b| used >= b);
        let last = epoch == cfg.epochs || spent;
        let interrupted = INTERRUPTED.load(Ordering::SeqCst) && !last;
        let due = opts.save_every.is_some_and(|k| k > 0 && epoch % k == 0);
        // The new run replaces an old one (`--force`) only with weights and optimizer
        // state saved: a kill right after the swap still leaves a resumable run.
        let swap = pending_replace.is_some();
        if interrupted || due || swap || last {
            // A second signal waits for the save (and the swap) to finish.
            let _save = crate::signals::critical();
            save_best(backend, &dir, &mut unsaved_best)?;
            save_last(backend, &dir, epoch)?;
            attach_telemetry(backend.take_telemetry()?, &mut metrics)?;
            metrics.save(&dir)?;
        }
        if let Some(old) = pending_replace.take() {
            replace_run(&dir, &old)?;
            dir = old;
        }
        if interrupted {
            bar.abandon();
            return Err(Interrupted {
                epoch,
                dir: dir.clone(),
            }
            .into());
        }
        if spent {
            // A shared bar counts the epochs the run would have had.
            bar.inc((cfg.epochs - epoch) as u64);
            break;
        }
    }
    if own_bar {
        bar.finish_and_clear();
    }
    let best = best.context("no epoch ran")?;
    Ok(RunSummary {
        metrics,
        best,
        seconds: t_run.elapsed().as_secs_f64(),
    })
}

/// Whether a terminal run prints epoch `epoch`'s line above its progress bar: about ten
/// lines a run (the first epoch, every tenth of the run, and the last).
pub fn history_due(epoch: usize, epochs: usize) -> bool {
    let every = epochs.div_ceil(10).max(1);
    epoch == 1 || epoch == epochs || epoch.is_multiple_of(every)
}

/// Fills the telemetry the backend gathered since the last call into the latest epochs'
/// records (the backend's rows are those of the epochs ended since then, oldest first).
fn attach_telemetry(rows: Vec<Vec<LayerTelemetry>>, metrics: &mut Metrics) -> Result<()> {
    let n = metrics.epochs.len();
    anyhow::ensure!(
        rows.len() <= n,
        "the backend reported telemetry for {} epochs, {n} ran",
        rows.len()
    );
    for (rec, row) in metrics.epochs[n - rows.len()..].iter_mut().zip(rows) {
        rec.telemetry = row;
    }
    Ok(())
}

pub use crate::run_folder::{out_dir_for, prepare_out_dir, replace_run, RUN_FILES};

/// Path of a run's best checkpoint.
pub fn best_path(dir: &Path) -> PathBuf {
    dir.join(BEST)
}

/// Train and eval sets of a config, from the learning images in `dir`.
pub fn load_train_eval(dir: &Path, cfg: &Config) -> Result<(Dataset, Dataset)> {
    let learn = data::load(dir, Part::Learn)?;
    data::split(&learn, cfg.train_set_size, cfg.eval_set_size)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("{}", dir.display()))
}

/// The initial parameters of a run: `--init-weights` or the seeded init.
pub fn initial_params(init: Option<&Path>, layout: Layout, seed: u64) -> Result<Params> {
    match init {
        Some(path) => {
            let p = checkpoint::load(path, layout.inputs, layout.classes)?;
            // config.json would otherwise record a network the weights are not.
            if p.layout != layout {
                bail!(
                    "{}: holds a {} network but the config asks for {}; pass --hidden {} to match the weights",
                    path.display(),
                    p.layout.describe(),
                    layout.describe(),
                    p.layout
                        .hidden_sizes()
                        .iter()
                        .map(|h| h.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
            Ok(p)
        }
        None => Ok(Params::init(layout, seed)),
    }
}
