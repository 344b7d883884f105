//! `train` and `test`, and the backend factory they share with `compare`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{BackendKind, GpuArgs, TestArgs, TrainArgs};
use crate::backend::Backend;
use crate::checkpoint;
use crate::config::Config;
use crate::cpu::{self, CpuBackend};
use crate::data::{self, Dataset, Part, CLASSES};
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
    train: &Dataset,
    eval: &Dataset,
    params: Params,
    state: Option<OptimState>,
    cfg: &Config,
) -> Result<(Box<dyn Backend>, Option<String>)> {
    let state = state
        .unwrap_or_else(|| OptimState::for_variant(params.data.len(), cfg.optimizer, &cfg.hyper()));
    let cpu = |params, state| -> Box<dyn Backend> {
        Box::new(
            CpuBackend::with_state(train, eval, params, state, cfg.optimizer, cfg.hyper())
                .with_matmul(gpu.cpu_matmul.unwrap_or_default()),
        )
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
    let b = crate::gpu::GpuBackend::with_state(
        train,
        eval,
        params,
        state,
        cfg.optimizer,
        cfg.hyper(),
        &opts,
    );
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
    let run = crate::metrics::Metrics::load(&dir.join("metrics.json"))?;
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

/// Where a resumed run starts: its last weights and optimizer state, checked to be one
/// consistent pair (same epoch, optimizer and weights fingerprint) of the network the
/// config and the data describe.
fn resume_start(dir: &Path, cfg: &Config, layout: Layout) -> Result<(Params, OptimState, Start)> {
    let state_path = dir.join(trainer::STATE);
    let (start, state, _) = Start::resume(dir, layout.total())?;
    let (_, _, smeta, weights) = checkpoint::load_state_full(&state_path, layout.total())?;
    if let Some(recorded) = smeta.get("config") {
        let changes = run_folder::config_changes(recorded, cfg)
            .with_context(|| format!("{}", state_path.display()))?;
        if !changes.is_empty() {
            bail!(
                "{}: differs from the settings the checkpoint {} recorded: {}; a resume keeps them (only --epochs may change; start a new run with --out)",
                dir.join("config.json").display(),
                state_path.display(),
                changes.join(", ")
            );
        }
    }
    run_folder::check_state(&state, cfg).with_context(|| format!("{}", state_path.display()))?;
    if let Some(data) = weights {
        // The state file is the save's commit point and holds the weights: a crash that
        // renamed last.safetensors but not the state leaves the state's pair, still whole.
        for k in ["optimizer", "weights", "config"] {
            if !smeta.contains_key(k) {
                bail!(
                    "{}: missing metadata `{k}`; cannot check what it was saved with",
                    state_path.display()
                );
            }
        }
        if let Some(o) = smeta
            .get("optimizer")
            .filter(|o| o.as_str() != cfg.optimizer.name())
        {
            bail!(
                "{}: was saved by {} but config.json now says {}; a resumed run keeps its optimizer (start a new run with --out)",
                state_path.display(),
                crate::config::cut(o),
                cfg.optimizer.name()
            );
        }
        if smeta.get("weights") != Some(&checkpoint::fingerprint(&data)) {
            bail!(
                "{}: its weights do not match their recorded fingerprint (a damaged file)",
                state_path.display()
            );
        }
        check_steps(&state_path, cfg, &state, start.epoch)?;
        return Ok((Params { layout, data }, state, start));
    }
    let last = dir.join(trainer::LAST);
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
    let (_, _, smeta) = checkpoint::load_state_with_meta(&state_path, layout.total())?;
    let name = cfg.optimizer.name();
    for (file, m) in [(&last, &meta), (&state_path, &smeta)] {
        if let Some(o) = m.get("optimizer").filter(|o| o.as_str() != name) {
            bail!(
                "{}: was saved by {} but config.json now says {name}; a resumed run keeps its optimizer (start a new run with --out)",
                file.display(),
                crate::config::cut(o)
            );
        }
    }
    // Without these fields the files cannot be checked as a pair: refused, not trusted.
    for (file, m, keys) in [
        (&last, &meta, &["epoch", "optimizer"][..]),
        (&state_path, &smeta, &["optimizer", "weights", "t"][..]),
    ] {
        if let Some(k) = keys.iter().find(|k| !m.contains_key(**k)) {
            bail!(
                "{}: missing metadata `{k}`; cannot check that it was saved with {}",
                file.display(),
                if file == &last { &state_path } else { &last }.display()
            );
        }
    }
    check_steps(&state_path, cfg, &state, start.epoch)?;
    if let Some(e) = meta.get("epoch").filter(|e| **e != start.epoch.to_string()) {
        bail!(
            "{} is from epoch {} but {} is from epoch {}; they were not saved together (a crash between the two writes?)",
            last.display(),
            crate::config::cut(e),
            state_path.display(),
            start.epoch
        );
    }
    if let Some(w) = smeta
        .get("weights")
        .filter(|w| **w != checkpoint::fingerprint(&params.data))
    {
        bail!(
            "{} belongs to other weights (fingerprint {}) than {}; they were not saved together",
            state_path.display(),
            crate::config::cut(w),
            last.display()
        );
    }
    Ok((params, state, start))
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

pub(super) fn train(args: TrainArgs) -> Result<()> {
    let mut plan = match &args.resume {
        Some(dir) => plan_resume(&args, dir)?,
        None => {
            let cfg = args.overrides.resolve(args.config.as_deref())?;
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs").join(cfg.optimizer.name()));
            // Resolved before any check (`missing/../A` is A); locked now if its parent
            // exists, else once every check has passed and the parent is created.
            let real = run_folder::resolve(&out)?;
            let lock = run_folder::lock_early(&real)?;
            if lock.is_some() {
                run_folder::recover(&real);
            }
            // Only checks: the old run stays untouched until the new one has an epoch.
            let (new, replace) = trainer::out_dir_for(&real, args.force)?;
            Plan {
                lock,
                shown: out,
                cfg,
                data_dir: args.data.dir()?,
                backend: args.backend,
                out: new,
                replace,
                resume: None,
            }
        }
    };
    let cfg = &plan.cfg;
    let (train, eval) = load_train_eval(&plan.data_dir, cfg)?;
    // The test set is read before training too: a broken one must fail before any
    // epoch runs or `--force` replaces the old run, not at the end.
    let test_set = if args.no_test {
        None
    } else {
        let set = data::load(&plan.data_dir, Part::Test)?;
        if (set.rows, set.cols) != (train.rows, train.cols) {
            bail!(
                "{}: the test images are {}x{} but the training images are {}x{}; the model could not score them",
                plan.data_dir.display(),
                set.rows,
                set.cols,
                train.rows,
                train.cols
            );
        }
        Some(set)
    };
    cfg.check_memory(train.features(), CLASSES)?;
    let layout = cfg.layout(train.features(), CLASSES);
    // Everything is read (even `--init-weights` from the folder being replaced) before
    // anything is written.
    let (params, state, start) = match &plan.resume {
        Some(dir) => {
            let (p, s, start) = resume_start(dir, cfg, layout)?;
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
            plan.out.display(),
            start.epoch,
            start.epoch
        );
    }
    let (kind, gpu) = settled(plan.backend, &args.gpu, cfg)?;
    let (mut backend, why) = make_backend(kind, &gpu, &train, &eval, params, state, cfg)?;
    // config.json records where and how the run computes, so a rerun does the same.
    plan.cfg.run = backend.settings();
    // Every check has passed: only now is a folder created.
    let _lock = match plan.lock.take() {
        Some(l) => l,
        None => {
            let real = run_folder::resolve(&plan.shown)?;
            let l = run_folder::lock_creating(&real)?;
            run_folder::recover(&real);
            (plan.out, plan.replace) = trainer::out_dir_for(&real, args.force)?;
            l
        }
    };
    let cfg = &plan.cfg;
    let shown_out = &plan.shown;
    // Where the run ends up, as resolved (the name shown may pass through a missing folder).
    let final_dir = plan.replace.clone().unwrap_or_else(|| plan.out.clone());
    if !args.quiet {
        eprintln!(
            "training {} on {}{} ({} train / {} eval images, epochs {}..={}) -> {}",
            cfg.optimizer,
            backend.name(),
            why.map(|w| format!(" [{w}]")).unwrap_or_default(),
            train.len(),
            eval.len(),
            start.epoch + 1,
            cfg.epochs,
            shown_out.display()
        );
    }
    trainer::install_interrupt_handler();
    let first = start.epoch;
    let run = trainer::train(
        backend.as_mut(),
        cfg,
        &RunOptions {
            out_dir: plan.out.clone(),
            quiet: args.quiet,
            progress: None,
            data_dir: Some(plan.data_dir.clone()),
            save_every: args.save_every.map(|n| n as usize),
            replace: plan.replace.clone(),
            budget_evals: None,
        },
        start,
    )?;
    let per_epoch = run.seconds / (cfg.epochs - first) as f64;
    println!(
        "{}: best epoch {} (eval loss {:.4}, eval accuracy {:.4}); {:.1}s total, {:.3}s/epoch; saved {}",
        cfg.optimizer,
        run.best.epoch,
        run.best.eval_loss,
        run.best.eval_acc,
        run.seconds,
        per_epoch,
        trainer::best_path(shown_out).display()
    );
    if let Some(note) = backend.traffic_note(cfg.epochs - first) {
        println!("{note}");
    }
    if let Some(set) = test_set {
        let mut metrics = run.metrics;
        let ev = crate::compare::test_run(&final_dir, &set)?;
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
        metrics.save(&final_dir)?;
    }
    Ok(())
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
        .filter(|p| p.is_file());
    if let Some(path) = metrics {
        if let Some(d) = Metrics::load(&path)?.data_dir {
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
