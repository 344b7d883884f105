//! `train` and `test`, and the backend factory they share with `compare`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{BackendKind, GpuArgs, TestArgs, TrainArgs};
use crate::backend::{Backend, RunStart};
use crate::checkpoint;
use crate::config::Config;
use crate::cpu::{self, SharedSets};
use crate::data::{self, Dataset, Part, CLASSES};
use crate::limits;
use crate::metrics::{Metrics, TestRecord};
use crate::model::{Layout, Params};
use crate::optim::OptimState;
use crate::run_folder;
use crate::trainer::{self, initial_params, load_train_eval, RunOptions, Start};

/// The backend and options a run uses: the command line's, else those its config records
/// (config.json of an earlier run: the same arithmetic again), else the defaults.
pub(super) fn settled(
    kind: Option<BackendKind>,
    gpu: &GpuArgs,
    cfg: &Config,
) -> Result<(BackendKind, GpuArgs)> {
    let run = &cfg.run;
    let recorded = match run.backend.as_deref() {
        Some("cpu") => Some(BackendKind::Cpu),
        Some("gpu") => Some(BackendKind::Gpu),
        _ => None,
    };
    let cpu_matmul = match (gpu.cpu_matmul, run.cpu_matmul.as_deref()) {
        (Some(m), _) => m,
        (None, Some(m)) => m
            .parse()
            .map_err(anyhow::Error::msg)
            .context("config key `cpu_matmul`")?,
        (None, None) => crate::cpu::fused::CpuMatmul::Auto,
    };
    let out = GpuArgs {
        adapter: gpu.adapter.clone().or_else(|| run.adapter.clone()),
        matmul_kernel: gpu
            .matmul_kernel
            .clone()
            .or_else(|| run.matmul_kernel.clone()),
        cpu_matmul: Some(cpu_matmul),
    };
    Ok((kind.or(recorded).unwrap_or(BackendKind::Auto), out))
}

/// What `auto` runs on, decided by the adapter's type (never by a timing), and why: a
/// hardware GPU when wgpu finds one; the CPU backend when it finds none, or only a
/// software adapter (device type Cpu, e.g. lavapipe or llvmpipe), which computes on the
/// same cores as the CPU backend but several times slower.
pub fn auto_choice(filter: Option<&str>) -> (BackendKind, String) {
    use crate::gpu::AdapterError;
    match crate::gpu::select_adapter(&crate::gpu::instance(), filter) {
        Err(AdapterError::NoAdapter) => (
            BackendKind::Cpu,
            "no GPU adapter found (install a Vulkan driver for a GPU)".into(),
        ),
        // The GPU backend then fails naming the adapters there are.
        Err(AdapterError::NoMatch { .. }) => (BackendKind::Gpu, "--adapter given".into()),
        Ok(a) => {
            let info = a.get_info();
            if info.device_type == wgpu::DeviceType::Cpu {
                (
                    BackendKind::Cpu,
                    format!(
                        "the only GPU adapter, {}, is a software renderer (device type Cpu), slower than the CPU backend; --backend gpu runs on it",
                        info.name
                    ),
                )
            } else {
                (
                    BackendKind::Gpu,
                    format!("{} is a hardware GPU ({:?})", info.name, info.device_type),
                )
            }
        }
    }
}

/// Builds the backend `kind` asks for (see [`settled`]), starting from `params` and, when
/// resuming, from a saved optimizer state; with `auto`, also says why it chose what it did.
pub(super) fn make_backend(
    kind: BackendKind,
    gpu: &GpuArgs,
    sets: &SharedSets,
    params: Params,
    state: Option<OptimState>,
    cfg: &Config,
) -> Result<(Box<dyn Backend>, Option<String>)> {
    let state = state
        .unwrap_or_else(|| OptimState::for_variant(params.data.len(), cfg.optimizer, &cfg.hyper()));
    let cpu = |params, state| -> Box<dyn Backend> {
        let start = RunStart::new(params, state, cfg.optimizer, cfg.hyper());
        Box::new(sets.backend(start, gpu.cpu_matmul.unwrap_or_default()))
    };
    if cfg.minibatch() && cfg.optimizer.traits().minibatch_warning {
        eprintln!(
            "warning: {} on mini-batches: Rprop adapts its steps to gradient signs, which batch noise flips; it is known to do badly there",
            cfg.optimizer
        );
    }
    let (kind, why) = match kind {
        BackendKind::Auto => {
            let (k, why) = auto_choice(gpu.adapter.as_deref());
            (k, Some(format!("auto: {why}")))
        }
        k => (k, None),
    };
    // Checked for every backend: a misspelt --matmul-kernel is an error, not ignored.
    let opts = gpu.options()?;
    if kind == BackendKind::Cpu {
        return Ok((cpu(params, state), why));
    }
    let start = RunStart::new(params, state, cfg.optimizer, cfg.hyper());
    let b = crate::gpu::GpuBackend::with_state(&sets.train, &sets.eval, start, &opts);
    match b {
        Ok(b) => Ok((Box::new(b), why)),
        Err(e) if cfg.run.adapter.is_some() && gpu.adapter == cfg.run.adapter => Err(e.context(
            "GPU backend (the adapter the config records; pass --adapter NAME or --backend cpu to run elsewhere)",
        )),
        Err(e) => Err(e.context("GPU backend")),
    }
}

/// What `train` needs to start: the config, initial weights and state, and where it starts.
struct Plan {
    cfg: Config,
    data_dir: PathBuf,
    /// `--backend`, or a resumed run's from its metrics.json (config.json's wins, see `settled`).
    backend: Option<BackendKind>,
    out: PathBuf,
    /// The run folder the new run replaces once it has written its first epoch (`--force`).
    replace: Option<PathBuf>,
    /// `--resume`: the run's folder.
    resume: Option<PathBuf>,
    /// The run folder as the user named it (for messages).
    shown: PathBuf,
    /// The run folder's lock, when taken before the checks (its parent folder exists).
    lock: Option<run_folder::RunLock>,
}

/// `--resume DIR`: the run's own config (only `--epochs` may change, to extend it), its
/// backend and data folder as metrics.json records them. The weights and optimizer state
/// are read (and checked against the data) in [`resume_start`].
fn plan_resume(args: &TrainArgs, dir: &Path) -> Result<Plan> {
    if args.config.is_some() || args.init_weights.is_some() || args.out.is_some() {
        bail!("--resume continues a run with its own config and weights; drop --config, --init-weights and --out");
    }
    if let Some((key, _)) = args.overrides.pairs().find(|(k, _)| *k != "epochs") {
        bail!(
            "--resume keeps the run's settings; only --epochs may be given, not {}",
            super::flag(key)
        );
    }
    if !dir.is_dir() {
        bail!("--resume {}: no such run folder", dir.display());
    }
    // The one writer of the run from here on; readers are not blocked.
    let lock = run_folder::lock(&run_folder::resolve(dir)?)?;
    run_folder::recover(dir);
    let mut cfg = Config::load(&dir.join("config.json"))?;
    let state = dir.join(trainer::STATE);
    if !state.exists() {
        bail!(
            "{}: missing; {} holds no run that can be resumed",
            state.display(),
            dir.display()
        );
    }
    let run = crate::metrics::Metrics::load_head(&dir.join("metrics.json"))?;
    // config.json records the backend (see `settled`); older runs only in metrics.json.
    let backend = args.backend.or_else(|| {
        cfg.run.backend.is_none().then(|| {
            if run.backend.starts_with("cpu") {
                BackendKind::Cpu
            } else {
                BackendKind::Gpu
            }
        })
    });
    let data_dir = match (&args.data.data_dir, &run.data_dir) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => d.clone(),
        (None, None) => super::data_dir::bundled()?,
    };
    if let Some(e) = args.overrides.get("epochs") {
        cfg.set_str("epochs", e).context("--epochs")?;
        cfg.validate()?;
    }
    Ok(Plan {
        cfg,
        data_dir,
        backend,
        out: dir.to_path_buf(),
        replace: None,
        resume: Some(dir.to_path_buf()),
        shown: dir.to_path_buf(),
        lock: Some(lock),
    })
}

/// `train` without `--resume`: the config, and the run folder resolved before any check
/// (`missing/../A` is A), locked now if its parent exists, else once every check passed
/// and the parent is created ([`Plan::lock`]).
fn plan_new(args: &TrainArgs) -> Result<Plan> {
    let cfg = args.overrides.resolve(args.config.as_deref())?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(cfg.optimizer.name()));
    let real = run_folder::resolve(&out)?;
    let lock = run_folder::lock_early(&real)?;
    if lock.is_some() {
        run_folder::recover(&real);
    }
    // Only checks: the old run stays untouched until the new one has an epoch.
    let (new, replace) = trainer::out_dir_for(&real, args.force)?;
    Ok(Plan {
        lock,
        shown: out,
        cfg,
        data_dir: args.data.dir()?,
        backend: args.backend,
        out: new,
        replace,
        resume: None,
    })
}

impl Plan {
    /// The run folder's lock, taken now if it was not before the checks: only now, every
    /// check passed, is a folder created.
    fn lock(&mut self, force: bool) -> Result<run_folder::RunLock> {
        if let Some(l) = self.lock.take() {
            return Ok(l);
        }
        let real = run_folder::resolve(&self.shown)?;
        let l = run_folder::lock_creating(&real)?;
        run_folder::recover(&real);
        (self.out, self.replace) = trainer::out_dir_for(&real, force)?;
        Ok(l)
    }

    /// The test set, read before training: a broken one must fail before any epoch runs
    /// or `--force` replaces the old run, not at the end.
    fn test_set(&self, args: &TrainArgs, train: &Dataset) -> Result<Option<Dataset>> {
        if args.no_test {
            return Ok(None);
        }
        let set = data::load(&self.data_dir, Part::Test)?;
        if (set.rows, set.cols) != (train.rows, train.cols) {
            bail!(
                "{}: the test images are {}x{} but the training images are {}x{}; the model could not score them",
                self.data_dir.display(),
                set.rows,
                set.cols,
                train.rows,
                train.cols
            );
        }
        Ok(Some(set))
    }

    /// Weights, optimizer state and first epoch: a resume's, checked (see
    /// [`run_folder::resume::start`]), or `--init-weights`' or the seeded init. Everything
    /// is read (even `--init-weights` from the folder being replaced) before anything is
    /// written.
    fn start(
        &self,
        args: &TrainArgs,
        layout: Layout,
        data: &str,
    ) -> Result<(Params, Option<OptimState>, Start)> {
        let cfg = &self.cfg;
        let (params, state, start) = match &self.resume {
            Some(dir) => {
                let (p, s, start) = run_folder::resume::start(dir, cfg, layout, data)?;
                (p, Some(s), start)
            }
            None => (
                initial_params(args.init_weights.as_deref(), layout, cfg.seed)?,
                None,
                Start::default(),
            ),
        };
        if start.epoch >= cfg.epochs {
            bail!(
                "{} already ran {} epochs; pass --epochs N (> {}) to train it further",
                self.out.display(),
                start.epoch,
                start.epoch
            );
        }
        Ok((params, state, start))
    }
}

pub(super) fn train(args: TrainArgs) -> Result<()> {
    let mut plan = match &args.resume {
        Some(dir) => plan_resume(&args, dir)?,
        None => plan_new(&args)?,
    };
    let (train, eval) = load_train_eval(&plan.data_dir, &plan.cfg)?;
    let test_set = plan.test_set(&args, &train)?;
    plan.cfg.check_memory(train.features(), CLASSES)?;
    let layout = plan.cfg.layout(train.features(), CLASSES);
    let data_hash = run_folder::data_fingerprint(&[&train, &eval]);
    let (params, state, start) = plan.start(&args, layout, &data_hash)?;
    let cfg = &plan.cfg;
    let (kind, gpu) = settled(plan.backend, &args.gpu, cfg)?;
    let sets = cpu::SharedSets::new(train, eval);
    let (mut backend, why) = make_backend(kind, &gpu, &sets, params, state, cfg)?;
    // config.json records where and how the run computes, so a rerun does the same.
    let now = backend.settings();
    if let Some(note) = (plan.resume.as_ref())
        .and_then(|_| run_folder::resume::settings_notice(&plan.cfg.run, &now))
    {
        eprintln!("{note}");
    }
    plan.cfg.run = now;
    let _lock = plan.lock(args.force)?;
    let (cfg, shown) = (&plan.cfg, &plan.shown);
    if !args.quiet {
        eprintln!(
            "training {} on {}{} ({} train / {} eval images, epochs {}..={}) -> {}",
            cfg.optimizer,
            backend.name(),
            why.map(|w| format!(" [{w}]")).unwrap_or_default(),
            sets.train.len(),
            sets.eval.len(),
            start.epoch + 1,
            cfg.epochs,
            limits::shorten(shown)
        );
    }
    trainer::install_interrupt_handler();
    let first = start.epoch;
    let opts = RunOptions {
        out_dir: plan.out.clone(),
        quiet: args.quiet,
        progress: None,
        data_dir: Some(plan.data_dir.clone()),
        save_every: args.save_every.map(|n| n as usize),
        replace: plan.replace.clone(),
        budget_evals: None,
        data_hash: Some(data_hash),
    };
    let run = trainer::train(backend.as_mut(), cfg, &opts, start)?;
    println!(
        "{}: best epoch {} (eval loss {:.4}, eval accuracy {:.4}); {:.1}s total, {:.3}s/epoch; saved {}",
        cfg.optimizer,
        run.best.epoch,
        run.best.eval_loss,
        run.best.eval_acc,
        run.seconds,
        run.seconds / (cfg.epochs - first) as f64,
        limits::shorten(&trainer::best_path(shown))
    );
    if let Some(note) = backend.traffic_note(cfg.epochs - first) {
        println!("{note}");
    }
    match test_set {
        Some(set) => record_test(&plan, run, &set),
        None => Ok(()),
    }
}

/// Scores the run's best weights on the test set and records it in metrics.json.
fn record_test(plan: &Plan, run: trainer::RunSummary, set: &Dataset) -> Result<()> {
    // Where the run ended up, as resolved (the name shown may pass through a missing folder).
    let final_dir = plan.replace.clone().unwrap_or_else(|| plan.out.clone());
    let mut metrics = run.metrics;
    let ev = crate::compare::test_run(&final_dir, set)?;
    println!(
        "test: best weights (epoch {}) on {} test images from {} (cpu): loss {:.4}, accuracy {:.4}",
        run.best.epoch,
        set.len(),
        plan.data_dir.display(),
        ev.stats.loss,
        ev.stats.accuracy()
    );
    metrics.test = Some(TestRecord {
        loss: ev.stats.loss,
        accuracy: ev.stats.accuracy(),
        correct: ev.stats.correct,
        samples: ev.stats.samples,
        best_epoch: run.best.epoch,
        data_dir: plan.data_dir.clone(),
    });
    metrics.save(&final_dir)
}

/// The data `test` scores on: `--data-dir`, else the run's own (from the metrics.json
/// beside the weights), else the bundled MNIST; with a word on where it came from.
fn test_data_dir(args: &TestArgs) -> Result<(PathBuf, &'static str)> {
    if let Some(d) = &args.data.data_dir {
        return Ok((d.clone(), "--data-dir"));
    }
    let metrics = args
        .weights
        .parent()
        .map(|p| p.join("metrics.json"))
        // A FIFO or folder there is refused by the reader, not passed over.
        .filter(|p| std::fs::metadata(p).is_ok());
    if let Some(path) = metrics {
        if let Some(d) = Metrics::load_head(&path)?.data_dir {
            return Ok((d, "the run's own data, from its metrics.json"));
        }
    }
    Ok((super::data_dir::bundled()?, "the bundled MNIST"))
}

pub(super) fn test(args: TestArgs) -> Result<()> {
    let (dir, why) = test_data_dir(&args)?;
    let set = data::load(&dir, Part::Test)?;
    let params = checkpoint::load(&args.weights, set.features(), CLASSES)?;
    let ev = cpu::evaluate(&params, &set);
    println!(
        "test: {} on {} images from {} ({why}); backend: cpu",
        args.weights.display(),
        set.len(),
        dir.display()
    );
    println!(
        "loss {:.4}  accuracy {:.4} ({}/{})",
        ev.stats.loss,
        ev.stats.accuracy(),
        ev.stats.correct,
        ev.stats.samples
    );
    let mut hits = [0u32; CLASSES];
    let mut totals = [0u32; CLASSES];
    for (&y, &p) in set.labels.iter().zip(&ev.predictions) {
        totals[y as usize] += 1;
        hits[y as usize] += u32::from(y == p);
    }
    let per_class: Vec<String> = (0..CLASSES)
        .map(|c| {
            format!(
                "{c}: {:.4}",
                if totals[c] == 0 {
                    0.0
                } else {
                    hits[c] as f64 / totals[c] as f64
                }
            )
        })
        .collect();
    println!("per class: {}", per_class.join("  "));
    Ok(())
}
