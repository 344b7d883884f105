//! The command line: `train`, `test` (and more subcommands as they land).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::backend::Backend;
use crate::checkpoint;
use crate::compare;
use crate::config::Config;
use crate::cpu::{self, CpuBackend};
use crate::data::{self, Dataset, Part, CLASSES};
use crate::digits;
use crate::model::{Layout, Params};
use crate::optim::{RpropState, Variant};
use crate::plot::{self, ChartOptions, Panel};
use crate::trainer::{self, RunOptions, Start};

#[derive(Parser, Debug)]
#[command(
    name = "rprop-lab",
    version,
    about = "Full-batch MLP training on MNIST with the Rprop family of optimizers, on any GPU (wgpu) or the CPU reference",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train an MLP (the report's 784-128-10 by default) with one optimizer (the report's traineval flow).
    Train(Box<TrainArgs>),
    /// Score saved weights on the 10,000 test images.
    Test(TestArgs),
    /// Train every config, test each best checkpoint, write a results table and charts.
    Compare(Box<CompareArgs>),
    /// Draw loss/accuracy curves from existing runs' metrics.json files.
    Plot(PlotArgs),
    /// Classify a digit in any PNG/JPEG picture.
    Predict(PredictArgs),
    /// Draw a grid of the test digits a model gets wrong.
    Samples(SamplesArgs),
    /// Run K training steps on both backends and compare every tensor (exit 1 on failure).
    Verify(Box<crate::verify::VerifyArgs>),
    /// List the GPU adapters wgpu finds (name, backend, device type, key limits).
    Devices,
}

/// Which hardware runs the training step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// The GPU when one is found, else the CPU (with a notice).
    Auto,
    /// wgpu + WGSL kernels; fails when no adapter is found.
    Gpu,
    /// The CPU reference (gemm + plain Rust).
    Cpu,
}

/// The bundled MNIST.
pub const DEFAULT_DATA_DIR: &str = "data/mnist";

#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Folder with the four MNIST-shaped IDX .gz files (MNIST, Fashion-MNIST, ...)
    /// [default: data/mnist; with --resume, the run's own].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DataArgs {
    pub fn dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }
}

/// Overrides for any config key, by its name in kebab case.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Config overrides (any key of the config file)")]
pub struct Overrides {
    /// Loss function (only "cross_entropy").
    #[arg(long, value_name = "NAME")]
    pub criterion: Option<String>,
    /// rprop-minus, rprop-plus, irprop-plus, irprop-minus, sgd, rmsprop, adam or quickprop.
    #[arg(long, value_name = "NAME")]
    pub optimizer: Option<String>,
    /// Learning rate; for Rprop the initial step size (PyTorch's lr) [report: 0.001].
    #[arg(long, value_name = "X")]
    pub learning_rate: Option<String>,
    /// Number of epochs, one pass over the train set each [report: 50].
    #[arg(long, value_name = "N")]
    pub epochs: Option<String>,
    /// Training images: the first N learning images [report: 50000].
    #[arg(long, value_name = "N")]
    pub train_set_size: Option<String>,
    /// Mini-batch size [report: = train-set-size, full batch].
    #[arg(long, value_name = "N")]
    pub train_batch_size: Option<String>,
    /// Eval images: the next N learning images [report: 10000].
    #[arg(long, value_name = "N")]
    pub eval_set_size: Option<String>,
    /// Must equal eval-set-size.
    #[arg(long, value_name = "N")]
    pub eval_batch_size: Option<String>,
    /// Step shrink factor on a sign change [report: 0.5].
    #[arg(long, value_name = "X")]
    pub eta_minus: Option<String>,
    /// Step growth factor [report: 1.2].
    #[arg(long, value_name = "X")]
    pub eta_plus: Option<String>,
    /// Smallest step size [report: 1e-6].
    #[arg(long, value_name = "X")]
    pub step_min: Option<String>,
    /// Largest step size [report: 50].
    #[arg(long, value_name = "X")]
    pub step_max: Option<String>,
    /// Seed of the weight initialization [default: 0].
    #[arg(long, value_name = "N")]
    pub seed: Option<String>,
    /// L2 penalty added to the gradient, every optimizer [default: 0].
    #[arg(long, value_name = "X")]
    pub weight_decay: Option<String>,
    /// SGD / RMSprop momentum [default: 0].
    #[arg(long, value_name = "X")]
    pub momentum: Option<String>,
    /// Nesterov momentum for SGD (true/false) [default: false].
    #[arg(long, value_name = "BOOL")]
    pub nesterov: Option<String>,
    /// RMSprop smoothing constant [default: 0.99].
    #[arg(long, value_name = "X")]
    pub alpha: Option<String>,
    /// RMSprop / Adam denominator term [default: 1e-8].
    #[arg(long, value_name = "X")]
    pub eps: Option<String>,
    /// Adam first-moment decay [default: 0.9].
    #[arg(long, value_name = "X")]
    pub beta1: Option<String>,
    /// Adam second-moment decay [default: 0.999].
    #[arg(long, value_name = "X")]
    pub beta2: Option<String>,
    /// Quickprop maximum growth factor [default: 1.75].
    #[arg(long, value_name = "X")]
    pub mu: Option<String>,
    /// Hidden layer sizes, e.g. 200,150,100 [default: 128].
    #[arg(long, value_name = "SIZES")]
    pub hidden: Option<String>,
}

impl Overrides {
    pub fn pairs(&self) -> [(&'static str, &Option<String>); 22] {
        [
            ("criterion", &self.criterion),
            ("optimizer", &self.optimizer),
            ("learning_rate", &self.learning_rate),
            ("epochs", &self.epochs),
            ("train_set_size", &self.train_set_size),
            ("train_batch_size", &self.train_batch_size),
            ("eval_set_size", &self.eval_set_size),
            ("eval_batch_size", &self.eval_batch_size),
            ("eta_minus", &self.eta_minus),
            ("eta_plus", &self.eta_plus),
            ("step_min", &self.step_min),
            ("step_max", &self.step_max),
            ("seed", &self.seed),
            ("weight_decay", &self.weight_decay),
            ("momentum", &self.momentum),
            ("nesterov", &self.nesterov),
            ("alpha", &self.alpha),
            ("eps", &self.eps),
            ("beta1", &self.beta1),
            ("beta2", &self.beta2),
            ("mu", &self.mu),
            ("hidden", &self.hidden),
        ]
    }

    /// The config file (or the report's settings) with these overrides applied and checked.
    pub fn resolve(&self, config: Option<&Path>) -> Result<Config> {
        let mut cfg = match (config, &self.optimizer) {
            (Some(path), _) => Config::load(path)?,
            (None, Some(name)) => Config::report(
                name.parse::<Variant>()
                    .map_err(anyhow::Error::msg)
                    .context("--optimizer")?,
            ),
            (None, None) => {
                bail!("no optimizer: pass --config FILE (see configs/) or --optimizer NAME")
            }
        };
        for (key, value) in self.pairs() {
            if let Some(v) = value {
                cfg.set_str(key, v)
                    .with_context(|| format!("--{}", key.replace('_', "-")))?;
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// JSON config (see configs/); keys left out keep the report's values.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Output folder [default: runs/<optimizer>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Start from these weights (safetensors, PyTorch names) instead of the seeded init.
    #[arg(long, value_name = "FILE")]
    pub init_weights: Option<PathBuf>,
    /// Hardware [default: auto; with --resume, the run's own, so it ends bit-identical].
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// No progress bar or per-epoch lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// Continue the run in DIR (after Ctrl-C, or to extend it with --epochs N) with its
    /// saved weights and optimizer state; ends bit-identical to an uninterrupted run.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Overwrite a run already in the output folder.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub overrides: Overrides,
}

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Weights to score (e.g. runs/irprop-plus/best.safetensors).
    #[arg(long, value_name = "FILE")]
    pub weights: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Configs to run, e.g. `configs/*.json` [default: the four Rprop configs in configs/].
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub configs: Vec<PathBuf>,
    /// Output folder: one sub-folder per run, results.md/.csv and the charts.
    #[arg(long, value_name = "DIR", default_value = "runs/compare")]
    pub out: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    pub backend: BackendKind,
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// Plot loss on a linear axis (default: log scale).
    #[arg(long)]
    pub linear_loss: bool,
    /// No progress bar or per-epoch lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// Overwrite runs already in the output folder.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub overrides: Overrides,
}

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// metrics.json files of the runs to draw (one line each).
    #[arg(required = true, value_name = "METRICS_JSON")]
    pub metrics: Vec<PathBuf>,
    /// Output PNG.
    #[arg(long, value_name = "FILE", default_value = "chart.png")]
    pub out: PathBuf,
    /// Draw one quantity instead of all four in a 2x2 grid.
    #[arg(long, value_enum)]
    pub panel: Option<PanelArg>,
    /// Plot loss on a linear axis (default: log scale).
    #[arg(long)]
    pub linear_loss: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PanelArg {
    TrainLoss,
    EvalLoss,
    TrainAcc,
    EvalAcc,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Weights (safetensors) of a trained model.
    #[arg(long, value_name = "FILE")]
    pub weights: PathBuf,
    /// A picture of one digit (PNG, JPEG); dark-on-light pictures are inverted.
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
}

#[derive(Args, Debug)]
pub struct SamplesArgs {
    /// Weights (safetensors) of a trained model.
    #[arg(long, value_name = "FILE")]
    pub weights: PathBuf,
    /// Output PNG.
    #[arg(long, value_name = "FILE", default_value = "wrong.png")]
    pub out: PathBuf,
    /// Most digits to draw.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max: usize,
    #[command(flatten)]
    pub data: DataArgs,
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
        Some(path) => checkpoint::load(path, layout.inputs, layout.classes),
        None => Ok(Params::init(layout, seed)),
    }
}

/// GPU selection options (used by `--backend gpu` and `auto`).
#[derive(Args, Debug, Clone, Default)]
pub struct GpuArgs {
    /// Use the first GPU adapter whose name contains this (see `rprop-lab devices`).
    #[arg(long, value_name = "NAME")]
    pub adapter: Option<String>,
    /// Force a matmul strategy: tiled (workgroup memory), register (big register
    /// blocks) or texture (register blocks fed from textures with 8-lane subgroup
    /// broadcasts; lavapipe); default: timed once per adapter and cached.
    #[arg(long, value_name = "NAME")]
    pub matmul_kernel: Option<String>,
}

impl GpuArgs {
    pub fn options(&self) -> Result<crate::gpu::GpuOptions> {
        let matmul_kernel = match &self.matmul_kernel {
            Some(k) => Some(
                k.parse::<crate::gpu::Strategy>()
                    .map_err(anyhow::Error::msg)
                    .context("--matmul-kernel")?,
            ),
            None => None,
        };
        Ok(crate::gpu::GpuOptions {
            adapter: self.adapter.clone(),
            matmul_kernel,
            max_binding_bytes: None,
            verbose: true,
        })
    }
}

/// Builds the backend `kind` asks for, starting from `params` and, when resuming, from a
/// saved optimizer state. `auto` falls back to the CPU (with a notice) only when wgpu finds
/// no adapter at all; any other GPU failure is an error.
pub fn make_backend(
    kind: BackendKind,
    gpu: &GpuArgs,
    train: &Dataset,
    eval: &Dataset,
    params: Params,
    state: Option<RpropState>,
    cfg: &Config,
) -> Result<Box<dyn Backend>> {
    let state = state
        .unwrap_or_else(|| RpropState::for_variant(params.data.len(), cfg.optimizer, &cfg.hyper()));
    let cpu = |params, state| -> Box<dyn Backend> {
        Box::new(
            CpuBackend::with_state(train, eval, params, state, cfg.optimizer, cfg.hyper())
                .with_batches(cfg.train_batch_size, cfg.seed),
        )
    };
    if cfg.minibatch() && cfg.optimizer.is_rprop() {
        eprintln!(
            "warning: {} on mini-batches: Rprop adapts its steps to gradient signs, which batch noise flips; it is known to do badly there",
            cfg.optimizer
        );
    }
    if kind == BackendKind::Cpu {
        return Ok(cpu(params, state));
    }
    // The GPU backend's recorded plan is one full-batch step per epoch of a one-hidden-layer
    // network.
    let cpu_only = if cfg.minibatch() {
        Some("mini-batch training (train_batch_size < train_set_size)")
    } else if !params.layout.is_single_hidden() {
        Some("more than one hidden layer")
    } else {
        None
    };
    if let Some(what) = cpu_only {
        if kind == BackendKind::Gpu {
            bail!("{what} runs on the CPU backend only for now; use --backend cpu");
        }
        eprintln!("notice: {what} runs on the CPU backend for now");
        return Ok(cpu(params, state));
    }
    let opts = gpu.options()?;
    match crate::gpu::GpuBackend::with_state(
        train,
        eval,
        params.clone(),
        state.clone(),
        cfg.optimizer,
        cfg.hyper(),
        &opts,
    ) {
        Ok(b) => Ok(Box::new(b)),
        Err(e)
            if kind == BackendKind::Auto
                && matches!(
                    e.downcast_ref::<crate::gpu::AdapterError>(),
                    Some(crate::gpu::AdapterError::NoAdapter)
                ) =>
        {
            eprintln!("notice: no GPU adapter found (install mesa-vulkan-drivers for lavapipe); training on the CPU");
            Ok(cpu(params, state))
        }
        Err(e) => Err(e.context("GPU backend")),
    }
}

/// What `train` needs to start: the config, initial weights and state, and where it starts.
struct Plan {
    cfg: Config,
    data_dir: PathBuf,
    backend: BackendKind,
    out: PathBuf,
    params_from: Option<PathBuf>,
    state: Option<RpropState>,
    start: Start,
}

/// `--resume DIR`: the run's own config (only `--epochs` may change, to extend it), its
/// last weights and optimizer state, and its metrics so far.
fn plan_resume(args: &TrainArgs, dir: &Path) -> Result<Plan> {
    if args.config.is_some() || args.init_weights.is_some() || args.out.is_some() {
        bail!("--resume continues a run with its own config and weights; drop --config, --init-weights and --out");
    }
    if let Some((key, _)) = args
        .overrides
        .pairs()
        .into_iter()
        .find(|(k, v)| v.is_some() && *k != "epochs")
    {
        bail!(
            "--resume keeps the run's settings; only --epochs may be given, not --{}",
            key.replace('_', "-")
        );
    }
    let mut cfg = Config::load(&dir.join("config.json"))?;
    let (start, state, run) = Start::resume(dir, cfg.layout(28 * 28, CLASSES).total())?;
    let backend = args.backend.unwrap_or(if run.backend.starts_with("cpu") {
        BackendKind::Cpu
    } else {
        BackendKind::Gpu
    });
    let data_dir = match (&args.data.data_dir, &run.data_dir) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => d.clone(),
        (None, None) => PathBuf::from(DEFAULT_DATA_DIR),
    };
    if let Some(e) = &args.overrides.epochs {
        cfg.set_str("epochs", e).context("--epochs")?;
        cfg.validate()?;
    }
    if start.epoch >= cfg.epochs {
        bail!(
            "{} already finished its {} epochs; pass --epochs N (> {}) to train it further",
            dir.display(),
            cfg.epochs,
            start.epoch
        );
    }
    Ok(Plan {
        cfg,
        data_dir,
        backend,
        out: dir.to_path_buf(),
        params_from: Some(dir.join(trainer::LAST)),
        state: Some(state),
        start,
    })
}

fn train(args: TrainArgs) -> Result<()> {
    let plan = match &args.resume {
        Some(dir) => plan_resume(&args, dir)?,
        None => {
            let cfg = args.overrides.resolve(args.config.as_deref())?;
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs").join(cfg.optimizer.name()));
            trainer::prepare_out_dir(&out, args.force)?;
            Plan {
                cfg,
                data_dir: args.data.dir(),
                backend: args.backend.unwrap_or(BackendKind::Auto),
                out,
                params_from: args.init_weights.clone(),
                state: None,
                start: Start::default(),
            }
        }
    };
    let cfg = &plan.cfg;
    let (train, eval) = load_train_eval(&plan.data_dir, cfg)?;
    let layout = cfg.layout(train.features(), CLASSES);
    let params = initial_params(plan.params_from.as_deref(), layout, cfg.seed)?;
    let mut backend = make_backend(
        plan.backend,
        &args.gpu,
        &train,
        &eval,
        params,
        plan.state,
        cfg,
    )?;
    if !args.quiet {
        eprintln!(
            "training {} on {} ({} train / {} eval images, epochs {}..={}) -> {}",
            cfg.optimizer,
            backend.name(),
            train.len(),
            eval.len(),
            plan.start.epoch + 1,
            cfg.epochs,
            plan.out.display()
        );
    }
    trainer::install_interrupt_handler();
    let first = plan.start.epoch;
    let run = trainer::train(
        backend.as_mut(),
        cfg,
        &RunOptions {
            out_dir: plan.out.clone(),
            quiet: args.quiet,
            progress: None,
            data_dir: Some(plan.data_dir.clone()),
        },
        plan.start,
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
        trainer::best_path(&plan.out).display()
    );
    if let Some(note) = backend.traffic_note(cfg.epochs - first) {
        println!("{note}");
    }
    Ok(())
}

fn test(args: TestArgs) -> Result<()> {
    let set = data::load(&args.data.dir(), Part::Test)?;
    let params = checkpoint::load(&args.weights, set.features(), CLASSES)?;
    let ev = cpu::evaluate(&params, &set);
    println!(
        "test: {} images from {}",
        set.len(),
        args.data.dir().display()
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

/// What decides whether two runs of a comparison can share a backend: train set size,
/// eval set size, batch size, and the shuffle seed (mini-batches only).
type BatchPlan = (usize, usize, usize, u64);

fn compare(args: CompareArgs) -> Result<()> {
    if args.overrides.optimizer.is_some() {
        bail!("--optimizer cannot be used with compare: each config names its optimizer");
    }
    let paths = if args.configs.is_empty() {
        Variant::RPROP
            .iter()
            .map(|v| PathBuf::from("configs").join(format!("{}.json", v.name())))
            .collect()
    } else {
        args.configs.clone()
    };
    let configs = paths
        .iter()
        .map(|p| Ok((p.clone(), args.overrides.resolve(Some(p))?)))
        .collect::<Result<Vec<_>>>()?;
    let jobs = compare::plan(configs, &args.out)?;
    for job in &jobs {
        trainer::prepare_out_dir(&job.dir, args.force)?;
    }
    let learn = data::load(&args.data.dir(), Part::Learn)?;
    let test = data::load(&args.data.dir(), Part::Test)?;
    let mnist = data::is_mnist(&learn);
    let total = jobs.iter().map(|j| j.config.epochs).sum();
    let bar = trainer::progress(total, args.quiet);
    let mut rows = Vec::new();
    let mut runs = Vec::new();
    let mut backend_name = String::new();
    // One backend for consecutive runs on the same sets: the data is uploaded (and the GPU
    // pipelines built) once.
    let mut shared: Option<(BatchPlan, Box<dyn Backend>)> = None;
    for job in &jobs {
        let cfg = &job.config;
        // Runs share a backend when they train on the same batches of the same sets.
        let sizes = (
            cfg.train_set_size,
            cfg.eval_set_size,
            cfg.train_batch_size,
            if cfg.minibatch() { cfg.seed } else { 0 },
        );
        let layout = cfg.layout(learn.features(), CLASSES);
        let params = Params::init(layout, cfg.seed);
        let state = RpropState::for_variant(params.data.len(), cfg.optimizer, &cfg.hyper());
        match &mut shared {
            Some((s, b)) if *s == sizes => b.restart(params, state, cfg.optimizer, cfg.hyper())?,
            _ => {
                let (train, eval) = data::split(&learn, cfg.train_set_size, cfg.eval_set_size)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| job.config_path.display().to_string())?;
                let b = make_backend(
                    args.backend,
                    &args.gpu,
                    &train,
                    &eval,
                    params,
                    Some(state),
                    cfg,
                )?;
                shared = Some((sizes, b));
            }
        }
        let Some((_, backend)) = &mut shared else {
            unreachable!("a backend was just made or reused");
        };
        backend_name = backend.name();
        let run = trainer::train(
            backend.as_mut(),
            cfg,
            &RunOptions {
                out_dir: job.dir.clone(),
                quiet: args.quiet,
                progress: Some(bar.clone()),
                data_dir: Some(args.data.dir()),
            },
            Start::default(),
        )?;
        let ev = compare::test_run(&job.dir, &test)?;
        rows.push(compare::ResultRow {
            name: job
                .dir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            optimizer: cfg.optimizer,
            best_epoch: run.best.epoch,
            eval_acc: run.best.eval_acc,
            test_acc: ev.stats.accuracy(),
            test_loss: ev.stats.loss,
            seconds: run.seconds,
            // Beside the report's numbers only what the report ran: its network, on MNIST,
            // full batch.
            report: compare::report_numbers(cfg.optimizer)
                .filter(|_| mnist && cfg.hidden == [128] && !cfg.minibatch()),
        });
        runs.push(run.metrics);
    }
    bar.finish_and_clear();
    let note = format!(
        "Data: {}. Backend: {backend_name}. Eval accuracy at the best (lowest eval loss) epoch; test accuracy and loss of that epoch's weights on {} test images; seconds for the whole run. {}",
        args.data.dir().display(),
        test.len(),
        if mnist {
            "Report: the PyTorch study's table 3.1 (MNIST)."
        } else {
            "No report numbers: the report studied MNIST only."
        }
    );
    let written = compare::write_outputs(
        &args.out,
        &rows,
        &runs,
        &note,
        &ChartOptions {
            log_loss: !args.linear_loss,
            ..ChartOptions::default()
        },
    )?;
    println!("{}", compare::results_markdown(&rows, ""));
    let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    println!("wrote {}", names.join(", "));
    Ok(())
}

fn plot(args: PlotArgs) -> Result<()> {
    let runs = compare::load_metrics(&args.metrics)?;
    let opts = ChartOptions {
        log_loss: !args.linear_loss,
        ..ChartOptions::default()
    };
    match args.panel {
        None => plot::grid(&args.out, &runs, &opts)?,
        Some(p) => {
            let panel = match p {
                PanelArg::TrainLoss => Panel::TrainLoss,
                PanelArg::EvalLoss => Panel::EvalLoss,
                PanelArg::TrainAcc => Panel::TrainAcc,
                PanelArg::EvalAcc => Panel::EvalAcc,
            };
            plot::chart(&args.out, &runs, panel, &opts)?
        }
    }
    println!("wrote {}", args.out.display());
    Ok(())
}

fn predict(args: PredictArgs) -> Result<()> {
    let params = checkpoint::load(
        &args.weights,
        (digits::SIDE * digits::SIDE) as usize,
        CLASSES,
    )?;
    let pixels = digits::load_digit(&args.image)?;
    let (digit, probs) = digits::predict(&params, &pixels);
    println!("digit: {digit}");
    for (c, p) in probs.iter().enumerate() {
        println!("  {c}: {p:.4}");
    }
    Ok(())
}

fn samples(args: SamplesArgs) -> Result<()> {
    let set = data::load(&args.data.dir(), Part::Test)?;
    let params = checkpoint::load(&args.weights, set.features(), CLASSES)?;
    let ev = cpu::evaluate(&params, &set);
    let wrong = digits::misclassified_grid(&args.out, &set, &ev.predictions, args.max)?;
    println!(
        "{wrong} of {} test digits misclassified; drew {} in {}",
        set.len(),
        wrong.min(args.max),
        args.out.display()
    );
    Ok(())
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => train(*a),
        Command::Test(a) => test(a),
        Command::Compare(a) => compare(*a),
        Command::Plot(a) => plot(a),
        Command::Predict(a) => predict(a),
        Command::Samples(a) => samples(a),
        Command::Verify(a) => crate::verify::run(*a),
        Command::Devices => crate::gpu::devices(),
    }
}
