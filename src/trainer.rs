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
use crate::checkpoint;
use crate::config::Config;
use crate::data::{self, Dataset, Part};
use crate::metrics::{EpochRecord, Metrics};
use crate::model::{Layout, Params};
use crate::run_folder::Folder;

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
    /// The data's fingerprint ([`crate::run_folder::data_fingerprint`]), recorded with the
    /// optimizer state so `--resume` refuses other data; None records none.
    pub data_hash: Option<String>,
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

pub use crate::run_folder::Start;

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
    let first = start.epoch + 1;
    let mut run = Run::open(backend, cfg, opts, start)?;
    let n = backend.train_len();
    let batch = cfg.train_batch_size.clamp(1, n.max(1));
    for epoch in first..=cfg.epochs {
        let t0 = Instant::now();
        if batch < n {
            let order = epoch_order(n, cfg.seed, epoch as u64);
            for rows in order.chunks(batch) {
                backend.train_step(Batch::Rows(rows))?;
            }
        } else {
            backend.train_step(Batch::Full)?;
        }
        let rec = EpochRecord::of(epoch, &backend.end_epoch()?, t0.elapsed().as_secs_f64());
        if !(rec.train_loss.is_finite() && rec.eval_loss.is_finite()) {
            return Err(run.diverged(backend, &rec));
        }
        run.record(backend, rec)?;
        let spent = run.spent();
        let last = epoch == cfg.epochs || spent;
        let interrupted = INTERRUPTED.load(Ordering::SeqCst) && !last;
        if interrupted || last || run.save_due(epoch) {
            run.folder
                .save(backend, cfg, epoch, &mut run.metrics, &mut run.unwritten)?;
        }
        if interrupted {
            run.bar.abandon();
            let dir = run.folder.dir;
            return Err(Interrupted { epoch, dir }.into());
        }
        if spent {
            // A shared bar counts the epochs the run would have had.
            run.bar.inc((cfg.epochs - epoch) as u64);
            break;
        }
    }
    run.finish()
}

/// A run in progress: its folder, records and report.
struct Run<'a> {
    cfg: &'a Config,
    opts: &'a RunOptions,
    folder: Folder,
    metrics: Metrics,
    best: Option<EpochRecord>,
    /// The latest records not yet appended to the records files (a GPU's, until its
    /// telemetry is read back at a save point).
    unwritten: usize,
    /// Whether the backend's telemetry waits for a save point (a GPU, or any backend not
    /// known to be the CPU one: a read-back).
    defer: bool,
    bar: ProgressBar,
    own_bar: bool,
    /// One line per epoch (no bar on screen).
    lines: bool,
    t_run: Instant,
}

impl<'a> Run<'a> {
    /// Creates the run folder (see [`Folder::create`]) and the report.
    fn open(
        backend: &dyn Backend,
        cfg: &'a Config,
        opts: &'a RunOptions,
        start: Start,
    ) -> Result<Run<'a>> {
        let best = (start.epochs.iter())
            .min_by(|a, b| a.eval_loss.total_cmp(&b.eval_loss))
            .cloned();
        let metrics = Metrics {
            optimizer: cfg.optimizer.name().to_string(),
            backend: backend.name(),
            best_epoch: best.as_ref().map_or(0, |b| b.epoch),
            data_dir: opts.data_dir.clone(),
            epochs: start.epochs,
            test: None,
        };
        let (dir, replace, data) = (&opts.out_dir, opts.replace.clone(), opts.data_hash.clone());
        let folder = Folder::create(dir, replace, data, cfg, &metrics)?;
        let own_bar = opts.progress.is_none();
        let bar = (opts.progress.clone()).unwrap_or_else(|| progress(cfg.epochs, opts.quiet));
        if own_bar {
            bar.set_position(start.epoch as u64);
        }
        bar.set_prefix(cfg.optimizer.name());
        Ok(Run {
            cfg,
            opts,
            folder,
            metrics,
            best,
            unwritten: 0,
            defer: backend.settings().backend.as_deref() != Some("cpu"),
            lines: !opts.quiet && bar.is_hidden(),
            bar,
            own_bar,
            t_run: Instant::now(),
        })
    }

    /// Records a finished epoch: the best weights kept, its line shown, its record
    /// appended once complete (at once, unless its telemetry waits for a save point).
    fn record(&mut self, backend: &mut dyn Backend, rec: EpochRecord) -> Result<()> {
        if (self.best.as_ref()).is_none_or(|b| rec.eval_loss < b.eval_loss) {
            backend.keep_best()?;
            self.folder.best_kept(rec.epoch);
            self.metrics.best_epoch = rec.epoch;
            self.best = Some(rec.clone());
        }
        self.report(&rec);
        self.metrics.epochs.push(rec);
        self.unwritten += 1;
        if !self.defer {
            self.metrics.attach_telemetry(backend.take_telemetry()?)?;
            let n = self.metrics.epochs.len();
            let new = &self.metrics.epochs[n - self.unwritten..];
            crate::metrics::append_records(&self.folder.dir, new, false)?;
            self.unwritten = 0;
        }
        Ok(())
    }

    /// The epoch's line (or the bar's message).
    fn report(&self, rec: &EpochRecord) {
        let (cfg, epoch) = (self.cfg, rec.epoch);
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
        if self.lines {
            println!("{line}");
        } else if !self.opts.quiet && history_due(epoch, cfg.epochs) {
            // Above the bar, so the history stays on screen as the bar moves.
            self.bar.println(line);
        }
        self.bar.set_message(msg);
        self.bar.inc(1);
    }

    /// Whether the run's gradient evaluations reached `--budget-evals`.
    fn spent(&self) -> bool {
        let used: u64 = self.metrics.epochs.iter().map(|r| r.grad_evals).sum();
        self.opts.budget_evals.is_some_and(|b| used >= b)
    }

    /// A save point by `--save-every`, or the `--force` swap's first save.
    fn save_due(&self, epoch: usize) -> bool {
        let every = self
            .opts
            .save_every
            .is_some_and(|k| k > 0 && epoch.is_multiple_of(k));
        every || self.folder.swap_pending()
    }

    /// A non-finite loss at `rec`: the best weights so far and the records are saved, and
    /// the error names the epoch.
    fn diverged(&mut self, backend: &mut dyn Backend, rec: &EpochRecord) -> anyhow::Error {
        self.bar.abandon();
        let saved = (|| -> Result<()> {
            self.folder.save_best(backend, self.cfg)?;
            let mut rows = backend.take_telemetry()?;
            // The diverged epoch's row goes with the epoch, which is not recorded.
            rows.truncate(self.unwritten);
            self.metrics.attach_telemetry(rows)?;
            let n = self.metrics.epochs.len();
            let new = &self.metrics.epochs[n - self.unwritten..];
            crate::metrics::append_records(&self.folder.dir, new, true)?;
            self.metrics.save(&self.folder.dir)
        })();
        if let Err(e) = saved {
            return e;
        }
        anyhow::anyhow!(
            "epoch {}: the loss is not finite (train {}, eval {}), the weights have diverged; stopped. {}",
            rec.epoch,
            rec.train_loss,
            rec.eval_loss,
            match &self.best {
                Some(b) => format!(
                    "The best checkpoint so far (epoch {}) is kept in {}",
                    b.epoch,
                    self.folder.dir.join(BEST).display()
                ),
                None => "No checkpoint was saved".to_string(),
            }
        )
    }

    fn finish(self) -> Result<RunSummary> {
        if self.own_bar {
            self.bar.finish_and_clear();
        }
        Ok(RunSummary {
            metrics: self.metrics,
            best: self.best.context("no epoch ran")?,
            seconds: self.t_run.elapsed().as_secs_f64(),
        })
    }
}

/// Whether a terminal run prints epoch `epoch`'s line above its progress bar: about ten
/// lines a run (the first epoch, every tenth of the run, and the last).
pub fn history_due(epoch: usize, epochs: usize) -> bool {
    let every = epochs.div_ceil(10).max(1);
    epoch == 1 || epoch == epochs || epoch.is_multiple_of(every)
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
