//! The command line: its arguments (here) and one module per group of subcommands:
//! `train` (train, test), `compare` (compare, plot), `digits` (predict, samples), `sweep`
//! (with `sweep_tools`: run-trial, status, report; `sweep_slurm`: the Slurm executor).

mod compare;
mod data_dir;
mod digits;
mod entry;
mod sweep;
mod sweep_slurm;
mod sweep_tools;
mod train;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Config, RunKey, KEYS, RUN_KEYS};
use crate::optim::{Hyper, Setting, Variant, SETTINGS};
pub use data_dir::{
    bundled_candidates, find_config, find_configs, DataArgs, TestDataArgs, TrainDataArgs,
    DEFAULT_DATA_DIR,
};
pub use entry::main;

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
    /// Train every config (by default the four Rprop configs in configs/, the report's
    /// settings), test each best checkpoint, write a results table and charts.
    #[command(
        long_about = "Trains every config, tests each run's best weights on the test images, and writes results.md/.csv and the charts (curves, and Rprop telemetry) into --out.\n\nBy default it runs the four Rprop configs in configs/ (rprop-minus, rprop-plus, irprop-plus, irprop-minus: the report's settings, 50 full-batch epochs on the bundled MNIST), once each with the config's seed (0); --seeds 0..9 runs each config over ten seeds and reports mean ± std and a 95% interval."
    )]
    Compare(Box<CompareArgs>),
    /// Draw loss/accuracy curves from existing runs' metrics.json files.
    Plot(PlotArgs),
    /// Classify a digit in any PNG/JPEG picture.
    Predict(PredictArgs),
    /// Draw a grid of the test digits a model gets wrong.
    Samples(SamplesArgs),
    /// Run K training steps on both backends and compare every tensor (exit 1 on failure).
    Verify(Box<VerifyArgs>),
    /// Hyper-parameter search: train one run per trial of a space file (sweeps/), rank the
    /// trials by eval accuracy, score only the best on the test set, draw the charts.
    #[command(
        long_about = "Hyper-parameter search over a space file (see sweeps/ and docs/sweep.md): draws each trial's settings from --seed, writes OUT/sweep.json and one run folder per trial (OUT/trial-NNN/, each an ordinary run: `train --config OUT/trial-NNN/config.json` reruns it), trains them --jobs at a time (or, with --executor slurm, submits them to a Slurm cluster as a job array), ranks them by eval accuracy (--metric eval-loss), scores only the best (--test-top K) on the test set, and writes results.md/.csv, sensitivity.png and best_so_far.png.\n\nAny train option (--epochs 10, --train-set-size 2000, --backend cpu, --data-dir DIR, ...) applies to every trial, except for a key the space varies. Ctrl-C stops every trial at the end of its epoch, saved; `sweep --resume OUT` finishes them exactly and runs the rest."
    )]
    Sweep(Box<sweep::SweepArgs>),
    /// List the GPU adapters wgpu finds (name, backend, device type, key limits).
    Devices,
}

/// Which hardware runs the training step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// The GPU when a hardware adapter is found; else (no adapter, or only a software one
    /// such as lavapipe) the CPU, saying why.
    Auto,
    /// wgpu + WGSL kernels; fails when no adapter is found.
    Gpu,
    /// The CPU reference (gemm + plain Rust).
    Cpu,
}

/// Overrides for any config key, by its name in kebab case: the options are built from
/// [`KEYS`] and the optimizer registry, so a new setting is an option with no edit here.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// The keys given, with their text, in [`KEYS`] order.
    given: Vec<(&'static str, String)>,
}

/// `--key-name` for config key `key_name`.
pub fn flag(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

/// A setting's help: its text, its default, each optimizer's own default where it differs,
/// and the optimizers that read it.
fn setting_help(s: &Setting) -> String {
    let base = (s.get)(&Hyper::BASE);
    let own: Vec<String> = Variant::ALL
        .iter()
        .filter_map(|v| {
            let x = (s.get)(&v.defaults());
            (x != base).then(|| format!("{v}: {x}"))
        })
        .collect();
    let users: Vec<&str> = Variant::ALL
        .iter()
        .filter(|v| v.spec().keys.contains(&s.key))
        .map(|v| v.name())
        .collect();
    let mut text = format!("{} [default: {base}", s.help.trim());
    for o in own {
        text += &format!("; {o}");
    }
    text += "]";
    match users.len() {
        0 => {}
        n if n == Variant::ALL.len() => {}
        _ => text += &format!(" ({})", users.join(", ")),
    }
    text
}

/// A run key's help: its text and its default, the report's value (unless the text says
/// what the default follows).
fn run_key_help(k: &RunKey) -> String {
    let help = k.help.trim();
    if help.contains("[default") {
        return help.to_string();
    }
    let shown = match (k.get)(&Config::report(Variant::IrpropPlus)) {
        Some(serde_json::Value::Array(a)) => {
            let items: Vec<String> = a.iter().map(|x| x.to_string()).collect();
            items.join(",")
        }
        Some(serde_json::Value::String(s)) => s,
        Some(v) => v.to_string(),
        None => return help.to_string(),
    };
    format!("{help} [default: {shown}]")
}

/// Adds one option per config key (but those in `skip`) to `cmd`.
fn override_args(cmd: clap::Command, skip: &[&str]) -> clap::Command {
    let mut cmd = cmd.next_help_heading("Config overrides (any key of the config file)");
    let names: Vec<&str> = Variant::ALL.iter().map(|v| v.name()).collect();
    let run = RUN_KEYS.iter().map(|k| {
        let help = match k.key {
            "optimizer" => names.join(", "),
            _ => run_key_help(k),
        };
        (k.key, k.value, help)
    });
    let settings = SETTINGS.iter().map(|s| {
        let value = if matches!((s.get)(&Hyper::BASE), serde_json::Value::Bool(_)) {
            "BOOL"
        } else {
            "X"
        };
        (s.key, value, setting_help(s))
    });
    for (key, value, help) in run.chain(settings).filter(|(k, _, _)| !skip.contains(k)) {
        // clap keeps option names for the life of the program; built once per run.
        let long: &'static str = Box::leak(key.replace('_', "-").into_boxed_str());
        cmd = cmd.arg(
            clap::Arg::new(key)
                .long(long)
                .value_name(value)
                .help(help)
                .allow_hyphen_values(true)
                .action(clap::ArgAction::Set),
        );
    }
    cmd
}

/// The config keys given on the command line, in [`KEYS`] order (a key with no option of
/// its own, see [`override_args`], reads as not given).
fn given_overrides(m: &clap::ArgMatches) -> Vec<(&'static str, String)> {
    KEYS.iter()
        .filter_map(|&k| {
            let v = m.try_get_one::<String>(k).ok().flatten();
            v.map(|v| (k, v.clone()))
        })
        .collect()
}

impl clap::Args for Overrides {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        override_args(cmd, &[])
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for Overrides {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut o = Overrides::default();
        clap::FromArgMatches::update_from_arg_matches(&mut o, m)?;
        Ok(o)
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.given = given_overrides(m);
        Ok(())
    }
}

/// The config overrides of `sweep`: every key but `seed`, whose option there is the
/// sampling's seed (a trial's weight-init seed comes from its config, or the space).
#[derive(Debug, Clone, Default)]
pub struct SweepOverrides(pub Overrides);

impl clap::Args for SweepOverrides {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        override_args(cmd, &["seed"])
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for SweepOverrides {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(SweepOverrides(Overrides {
            given: given_overrides(m),
        }))
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.given = given_overrides(m);
        Ok(())
    }
}

impl Overrides {
    /// The overrides given, in [`KEYS`] order.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.given.iter().map(|(k, v)| (*k, v.as_str()))
    }

    /// The text given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Sets `key` as if given on the command line (tests, and callers building runs).
    pub fn with(mut self, key: &'static str, value: &str) -> Overrides {
        self.given.retain(|(k, _)| *k != key);
        self.given.push((key, value.to_string()));
        self
    }

    /// The config file (or the report's settings) with these overrides applied and checked.
    pub fn resolve(&self, config: Option<&Path>) -> Result<Config> {
        let found = config.map(data_dir::find_config).transpose()?;
        let config = found.as_deref();
        let mut cfg = match (config, self.get("optimizer")) {
            (Some(path), _) => Config::load_unchecked(path)?,
            (None, Some(name)) => Config::report(
                name.parse::<Variant>()
                    .map_err(anyhow::Error::msg)
                    .context("--optimizer")?,
            ),
            (None, None) => {
                bail!("no optimizer: pass --config FILE (see configs/) or --optimizer NAME")
            }
        };
        // A full batch stays full when only the set size is given (the report's 50000
        // batch follows --train-set-size 2000, as --help says).
        let full_train = cfg.train_batch_size == cfg.train_set_size;
        let full_eval = cfg.eval_batch_size == cfg.eval_set_size;
        for (key, v) in self.pairs() {
            cfg.set_str(key, v).with_context(|| flag(key))?;
        }
        if full_train && self.get("train_batch_size").is_none() {
            cfg.train_batch_size = cfg.train_set_size;
        }
        if full_eval && self.get("eval_batch_size").is_none() {
            cfg.eval_batch_size = cfg.eval_set_size;
        }
        // Checked once the options are applied: they may complete the file's settings.
        match config {
            Some(path) => cfg
                .validate()
                .with_context(|| format!("{}", path.display()))?,
            None => cfg.validate()?,
        }
        Ok(cfg)
    }
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// JSON config (see configs/); keys left out keep the report's values.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub data: TrainDataArgs,
    /// Output folder [default: runs/<optimizer>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Start from these weights (safetensors, PyTorch names) instead of the seeded init.
    #[arg(long, value_name = "FILE")]
    pub init_weights: Option<PathBuf>,
    /// Hardware: auto is the GPU unless the only adapter is a software one (device type Cpu,
    /// e.g. lavapipe), which the CPU backend outruns [default: the run's recorded one (with
    /// --resume or a run's config.json), else auto].
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
    /// Also save the best and last weights and the optimizer state every N epochs (a crash
    /// then loses at most N epochs; on a GPU each save is a read-back) [default: only at the
    /// end and on Ctrl-C].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub save_every: Option<u64>,
    /// Skip testing the best weights on the test images at the end (recorded in
    /// metrics.json otherwise).
    #[arg(long)]
    pub no_test: bool,
    #[command(flatten)]
    pub overrides: Overrides,
}

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Weights to score (e.g. runs/irprop-plus/best.safetensors).
    #[arg(long, value_name = "FILE")]
    pub weights: PathBuf,
    #[command(flatten)]
    pub data: TestDataArgs,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Configs to run, e.g. `configs/*.json` [default: configs/rprop-minus.json,
    /// configs/rprop-plus.json, configs/irprop-plus.json, configs/irprop-minus.json].
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub configs: Vec<PathBuf>,
    /// Run every config once per seed (`0..9`: seeds 0 to 9; or `1,5,7`), into
    /// OUT/NAME/seed-N; results.md then gives each config's mean ± std and 95% interval
    /// [default: once, with the config's seed].
    #[arg(long, value_name = "SEEDS")]
    pub seeds: Option<crate::compare::Seeds>,
    /// Output folder: one sub-folder per run, results.md/.csv and the charts.
    #[arg(long, value_name = "DIR", default_value = "runs/compare")]
    pub out: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Hardware [default: a config's recorded one, else auto (see train --help)].
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
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
    /// The charts' x axis.
    #[arg(long, value_enum, default_value_t = XArg::Epochs)]
    pub x: XArg,
    /// Stop each run at the end of the epoch that brings its gradient evaluations
    /// (forward+backward passes over the train set; an L-BFGS epoch makes several) to N.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub budget_evals: Option<u64>,
    /// Add to the table the gradient evaluations each run needed to reach this eval loss.
    #[arg(long, value_name = "X", value_parser = positive_loss)]
    pub target_eval_loss: Option<f32>,
    #[command(flatten)]
    pub overrides: Overrides,
}

/// What a chart's x axis counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum XArg {
    Epochs,
    /// Gradient evaluations (forward+backward passes over the train set), summed.
    Evals,
    /// Wall-clock seconds, summed.
    Seconds,
}

impl From<XArg> for crate::plot::XAxis {
    fn from(x: XArg) -> Self {
        match x {
            XArg::Epochs => crate::plot::XAxis::Epochs,
            XArg::Evals => crate::plot::XAxis::Evals,
            XArg::Seconds => crate::plot::XAxis::Seconds,
        }
    }
}

fn positive_loss(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("{s:?} is not a positive loss")),
    }
}

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// metrics.json files of the runs to draw (one line each).
    #[arg(required = true, value_name = "METRICS_JSON")]
    pub metrics: Vec<PathBuf>,
    /// Output PNG.
    #[arg(long, value_name = "FILE", default_value = "chart.png")]
    pub out: PathBuf,
    /// Draw one quantity (or the telemetry chart) instead of all four in a 2x2 grid.
    #[arg(long, value_enum)]
    pub panel: Option<PanelArg>,
    /// Plot loss on a linear axis (default: log scale).
    #[arg(long)]
    pub linear_loss: bool,
    /// The x axis.
    #[arg(long, value_enum, default_value_t = XArg::Epochs)]
    pub x: XArg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PanelArg {
    TrainLoss,
    EvalLoss,
    TrainAcc,
    EvalAcc,
    /// The Rprop telemetry chart (sign changes, backtracks, step sizes).
    Telemetry,
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

/// GPU selection options (used by `--backend gpu` and `auto`).
#[derive(Args, Debug, Clone, Default)]
pub struct GpuArgs {
    /// Use the first GPU adapter whose name contains this (see `rprop-lab devices`).
    #[arg(long, value_name = "NAME")]
    pub adapter: Option<String>,
    /// Force a matmul strategy: tiled (workgroup memory), register (big register blocks),
    /// texture (register blocks fed from textures with 8-lane subgroup broadcasts) or sparse
    /// (texture, with the first layer skipping zero pixels; other rounding) [default: the
    /// run's recorded one; else sparse on a software adapter with a sparse set of >= 10,000
    /// images, else the fastest of the others, which give identical numbers (timed once per
    /// adapter and cached)].
    #[arg(long, value_name = "NAME")]
    pub matmul_kernel: Option<String>,
    /// CPU backend: the first layer's products dense (the exact reference, torch's
    /// arithmetic), sparse (from the nonzero u8 pixels, equal up to f32 rounding) or auto
    /// (sparse when the train set has >= 10,000 images of pixel density < 0.5) [default: the
    /// run's recorded one, else auto].
    #[arg(long, value_enum)]
    pub cpu_matmul: Option<crate::cpu::fused::CpuMatmul>,
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

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// JSON config (see configs/).
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Number of training steps to compare.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Start from these weights instead of the seeded init.
    #[arg(long, value_name = "FILE")]
    pub init_weights: Option<PathBuf>,
    #[command(flatten)]
    pub gpu: GpuArgs,
    #[command(flatten)]
    pub overrides: Overrides,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => train::train(*a),
        Command::Test(a) => train::test(a),
        Command::Compare(a) => compare::compare(*a),
        Command::Plot(a) => compare::plot(a),
        Command::Predict(a) => digits::predict(a),
        Command::Samples(a) => digits::samples(a),
        Command::Verify(a) => {
            let cfg = a.overrides.resolve(a.config.as_deref())?;
            // A run's config.json: the adapter and matmul strategy it recorded.
            let (_, gpu) = train::settled(None, &a.gpu, &cfg)?;
            crate::verify::run(
                &cfg,
                &a.data.dir()?,
                a.init_weights.as_deref(),
                a.steps,
                &gpu.options()?,
            )
        }
        Command::Sweep(a) => sweep::sweep(*a),
        Command::Devices => crate::gpu::devices(),
    }
}
