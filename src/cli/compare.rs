//! `compare` (train every config, test, tabulate, draw) and `plot`.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::{bail, Context, Result};

use super::train::make_backend;
use super::{CompareArgs, PanelArg, PlotArgs};
use crate::backend::{Backend, RunStart};
use crate::compare;
use crate::config::Config;
use crate::data::{self, Part, CLASSES};
use crate::model::Params;
use crate::optim::{OptimState, Variant};
use crate::plot::{self, ChartOptions, Panel};
use crate::trainer::{self, Interrupted, RunOptions, Start};

/// What decides whether two runs of a comparison can share a backend: the batches they
/// train on (train set size, eval set size, batch size, the shuffle seed of mini-batches),
/// the network they build (its hidden layers), and where and how they compute (the
/// backend and its options as each config settles them, see [`super::train::settled`]).
/// A run reuses the previous run's backend only when all of it is equal, so every config
/// runs where it says, as it would alone.
#[derive(Clone, Debug, PartialEq)]
struct BatchPlan {
    sets: (usize, usize, usize, u64),
    hidden: Vec<usize>,
    backend: super::BackendKind,
    options: (
        Option<String>,
        Option<String>,
        Option<crate::cpu::fused::CpuMatmul>,
    ),
}

impl BatchPlan {
    /// `cfg`'s plan, with the backend and options it settles on (see `settled`).
    fn of(
        args: &CompareArgs,
        cfg: &Config,
    ) -> Result<(BatchPlan, super::BackendKind, super::GpuArgs)> {
        let (kind, gpu) = super::train::settled(args.backend, &args.gpu, cfg)?;
        let plan = BatchPlan {
            sets: (
                cfg.train_set_size,
                cfg.eval_set_size,
                cfg.train_batch_size,
                if cfg.minibatch() { cfg.seed } else { 0 },
            ),
            hidden: cfg.hidden.clone(),
            backend: kind,
            options: (
                gpu.adapter.clone(),
                gpu.matmul_kernel.clone(),
                gpu.cpu_matmul,
            ),
        };
        Ok((plan, kind, gpu))
    }
}

/// What the runs of a comparison share: the data they train, eval and test on.
struct Inputs {
    data_dir: PathBuf,
    learn: data::Dataset,
    test: data::Dataset,
    mnist: bool,
}

/// How the runs went: their rows and metrics, the failed ones, and why the comparison
/// stopped early (Ctrl-C), if it did.
#[derive(Default)]
struct Outcome {
    rows: Vec<compare::ResultRow>,
    runs: Vec<(String, crate::metrics::Metrics)>,
    failed: Vec<String>,
    stopped: Option<String>,
    /// The backends the runs used, each named once, in order of first use.
    backend_names: Vec<String>,
}

pub(super) fn compare(args: CompareArgs) -> Result<()> {
    if args.overrides.get("optimizer").is_some() {
        bail!("--optimizer cannot be used with compare: each config names its optimizer");
    }
    if args.seeds.is_some() && args.overrides.get("seed").is_some() {
        bail!("--seed and --seeds cannot both be given: --seeds sets each run's seed");
    }
    let configs = config_paths(&args)?
        .iter()
        .map(|p| Ok((p.clone(), args.overrides.resolve(Some(p))?)))
        .collect::<Result<Vec<_>>>()?;
    let jobs = compare::plan(configs, &args.out, args.seeds.as_ref().map(|s| &s.0[..]))?;
    // Checks only: every old run stays untouched until its new run has an epoch.
    for job in &jobs {
        trainer::out_dir_for(&crate::run_folder::resolve(&job.dir)?, args.force)?;
    }
    let data_dir = args.data.dir()?;
    let learn = data::load(&data_dir, Part::Learn)?;
    let test = data::load(&data_dir, Part::Test)?;
    for job in &jobs {
        job.config
            .check_memory(learn.features(), CLASSES)
            .with_context(|| job.config_path.display().to_string())?;
    }
    // Every check has passed: the comparison's folder and each run's are locked (one
    // writer each) and only then created.
    let _locks = std::iter::once(&args.out)
        .chain(jobs.iter().map(|j| &j.dir))
        .map(|d| {
            let real = crate::run_folder::resolve(d)?;
            let lock = crate::run_folder::lock_creating(&real)?;
            crate::run_folder::recover(&real);
            Ok(lock)
        })
        .collect::<Result<Vec<_>>>()?;
    let mnist = data::is_mnist(&learn);
    let inputs = Inputs {
        data_dir,
        learn,
        test,
        mnist,
    };
    let outcome = run_all(&args, &jobs, &inputs)?;
    finish(&args, &inputs, jobs.len(), outcome)
}

/// The configs to compare: those given (from any folder, and `configs/*.json` when the
/// shell left it unexpanded), or the bundled configs of the report's four.
fn config_paths(args: &CompareArgs) -> Result<Vec<PathBuf>> {
    if !args.configs.is_empty() {
        return super::data_dir::find_configs(&args.configs);
    }
    Ok(Variant::report_set()
        .iter()
        .map(|v| {
            let rel = PathBuf::from("configs").join(format!("{}.json", v.name()));
            super::data_dir::bundled_file(&rel)
        })
        .collect())
}

/// The names of the runs from the `k`-th on, for the line that says what was not run.
fn not_run(jobs: &[compare::Job], k: usize, seeds: bool) -> String {
    match jobs.get(k..).filter(|rest| !rest.is_empty()) {
        Some(rest) => rest
            .iter()
            .map(|j| run_name(j, seeds))
            .collect::<Vec<_>>()
            .join(", "),
        None => "none".into(),
    }
}

/// Runs every job in turn, each into its folder; stops at Ctrl-C, goes on past a failure.
fn run_all(args: &CompareArgs, jobs: &[compare::Job], inputs: &Inputs) -> Result<Outcome> {
    let outs = jobs
        .iter()
        .map(|job| trainer::out_dir_for(&crate::run_folder::resolve(&job.dir)?, args.force))
        .collect::<Result<Vec<_>>>()?;
    let total = jobs.iter().map(|j| j.config.epochs).sum();
    let bar = trainer::progress(total, args.quiet);
    trainer::install_interrupt_handler();
    let seeds = args.seeds.is_some();
    let mut o = Outcome::default();
    // One backend for consecutive runs on the same sets: the data is uploaded (and the GPU
    // pipelines built) once.
    let mut shared: Option<(BatchPlan, Box<dyn Backend>)> = None;
    for (k, (job, (out_dir, replace))) in jobs.iter().zip(outs).enumerate() {
        let name = run_name(job, seeds);
        // Ctrl-C between runs stops before the next one starts.
        if trainer::INTERRUPTED.load(Ordering::SeqCst) {
            let rest = not_run(jobs, k, seeds);
            o.stopped = Some(format!("interrupted before run {name}; not run: {rest}"));
            break;
        }
        let opts = RunOptions {
            out_dir,
            quiet: args.quiet,
            progress: Some(bar.clone()),
            data_dir: Some(inputs.data_dir.clone()),
            save_every: None,
            replace,
            budget_evals: args.budget_evals,
            data_hash: None,
        };
        match run_job(args, inputs, &job.config, &opts, &mut shared) {
            Ok((row, metrics, backend)) => {
                if !o.backend_names.contains(&backend) {
                    o.backend_names.push(backend);
                }
                let group = job.group.clone();
                o.rows.push(compare::ResultRow { name, group, ..row });
                o.runs.push((job.group.clone(), metrics));
            }
            Err(e) => match e.downcast_ref::<Interrupted>() {
                Some(i) => {
                    o.stopped = Some(format!(
                        "interrupted run {name} after epoch {}, saved in {} (continue it with `rprop-lab train --resume {}`); not run: {}",
                        i.epoch,
                        i.dir.display(),
                        i.dir.display(),
                        not_run(jobs, k + 1, seeds)
                    ));
                    break;
                }
                None => {
                    // The backend may be half-way through a run: the next run makes its own.
                    shared = None;
                    o.failed
                        .push(format!("{}: {e:#}", job.config_path.display()));
                }
            },
        }
    }
    bar.finish_and_clear();
    Ok(o)
}

/// Writes the table and charts of the finished runs and says how the comparison ended:
/// an error when it was interrupted or a run failed.
fn finish(args: &CompareArgs, inputs: &Inputs, jobs: usize, o: Outcome) -> Result<()> {
    let summary = match o.rows.is_empty() {
        true => String::new(),
        false => write_results(args, inputs, &o)?,
    };
    if let Some(msg) = o.stopped {
        let (epoch, dir) = (0, args.out.clone());
        return Err(
            anyhow::Error::new(Interrupted { epoch, dir }).context(format!("{msg}{summary}"))
        );
    }
    if !o.failed.is_empty() {
        bail!(
            "{} of {jobs} runs failed: {}{summary}",
            o.failed.len(),
            o.failed.join("; ")
        );
    }
    Ok(())
}

/// Writes results.md/.csv and the charts, prints the table; returns the note that says
/// where they are.
fn write_results(args: &CompareArgs, inputs: &Inputs, o: &Outcome) -> Result<String> {
    let note = format!(
        "Data: {}. {}: {}. Eval accuracy at the best (lowest eval loss) epoch; test accuracy and loss of that epoch's weights on {} test images; seconds for the whole run. {}",
        inputs.data_dir.display(),
        if o.backend_names.len() > 1 {
            "Backends"
        } else {
            "Backend"
        },
        o.backend_names.join("; "),
        inputs.test.len(),
        if inputs.mnist {
            "Report: the PyTorch study's table 3.1 (MNIST)."
        } else {
            "No report numbers: the report studied MNIST only."
        }
    );
    let written = compare::write_outputs(
        &args.out,
        &o.rows,
        &o.runs,
        &note,
        &ChartOptions {
            log_loss: !args.linear_loss,
            x: args.x.into(),
            ..ChartOptions::default()
        },
    )?;
    println!("{}", compare::results_markdown(&o.rows, ""));
    if let Some(seeds) = &args.seeds {
        println!("({} seeds per config: {:?})", seeds.0.len(), seeds.0);
    }
    let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    println!("wrote {}", names.join(", "));
    Ok(format!(
        "; the {} finished run(s) are in {}",
        o.rows.len(),
        args.out.join("results.md").display()
    ))
}

/// A run's name in the table: its config's, plus `/seed-N` when the comparison runs seeds.
fn run_name(job: &compare::Job, seeds: bool) -> String {
    if seeds {
        format!("{}/seed-{}", job.group, job.config.seed)
    } else {
        job.group.clone()
    }
}

/// One run of a comparison: trains (on the shared backend when the batches allow),
/// tests its best checkpoint. Returns its row (name left to the caller), its metrics and
/// the backend's name.
fn run_job(
    args: &CompareArgs,
    inputs: &Inputs,
    cfg: &Config,
    opts: &RunOptions,
    shared: &mut Option<(BatchPlan, Box<dyn Backend>)>,
) -> Result<(compare::ResultRow, crate::metrics::Metrics, String)> {
    let (plan, kind, gpu) = BatchPlan::of(args, cfg)?;
    let layout = cfg.layout(inputs.learn.features(), CLASSES);
    let params = Params::init(layout, cfg.seed);
    let state = OptimState::for_variant(params.data.len(), cfg.optimizer, &cfg.hyper());
    match shared {
        Some((s, b)) if *s == plan => {
            b.restart(RunStart::new(params, state, cfg.optimizer, cfg.hyper()))?
        }
        _ => {
            *shared = None;
            let (train, eval) = data::split(&inputs.learn, cfg.train_set_size, cfg.eval_set_size)
                .map_err(anyhow::Error::msg)?;
            let sets = crate::cpu::SharedSets::new(train, eval);
            let (b, why) = make_backend(kind, &gpu, &sets, params, Some(state), cfg)?;
            if let (Some(why), false) = (why, args.quiet) {
                eprintln!("backend: {} [{why}]", b.name());
            }
            *shared = Some((plan, b));
        }
    }
    let Some((_, backend)) = shared else {
        unreachable!("a backend was just made or reused");
    };
    // config.json records where and how the run computes, so a rerun does the same.
    let cfg = &Config {
        run: backend.settings(),
        ..cfg.clone()
    };
    let run = trainer::train(backend.as_mut(), cfg, opts, Start::default())?;
    let dir = opts.replace.as_ref().unwrap_or(&opts.out_dir);
    let ev = compare::test_run(dir, &inputs.test)?;
    let mut metrics = run.metrics;
    metrics.test = Some(crate::metrics::TestRecord {
        loss: ev.stats.loss,
        accuracy: ev.stats.accuracy(),
        correct: ev.stats.correct,
        samples: ev.stats.samples,
        best_epoch: run.best.epoch,
        data_dir: opts.data_dir.clone().unwrap_or_default(),
    });
    metrics.save(dir)?;
    let row = compare::ResultRow {
        name: String::new(),
        group: String::new(),
        optimizer: cfg.optimizer,
        seed: cfg.seed,
        best_epoch: run.best.epoch,
        eval_acc: run.best.eval_acc,
        test_acc: ev.stats.accuracy(),
        test_loss: ev.stats.loss,
        seconds: run.seconds,
        grad_evals: metrics.epochs.iter().map(|r| r.grad_evals).sum(),
        target: args
            .target_eval_loss
            .map(|x| (x, compare::evals_to_target(&metrics, x))),
        // Beside the report's numbers only what the report ran: its settings, on MNIST.
        report: compare::report_numbers(cfg.optimizer)
            .filter(|_| inputs.mnist && compare::is_report_settings(cfg)),
    };
    Ok((row, metrics, backend.name()))
}

pub(super) fn plot(args: PlotArgs) -> Result<()> {
    crate::fsio::check_png_out(&args.out)?;
    let inputs: Vec<&std::path::Path> = args.metrics.iter().map(|p| p.as_path()).collect();
    crate::fsio::check_not_input(&args.out, &inputs)?;
    let runs = compare::load_metrics(&args.metrics)?;
    let groups = plot::group_runs(&runs);
    let opts = ChartOptions {
        log_loss: !args.linear_loss,
        x: args.x.into(),
        ..ChartOptions::default()
    };
    let panel = |p| match p {
        PanelArg::TrainLoss => Panel::TrainLoss,
        PanelArg::EvalLoss => Panel::EvalLoss,
        PanelArg::TrainAcc => Panel::TrainAcc,
        _ => Panel::EvalAcc,
    };
    match args.panel {
        None => plot::grid(&args.out, &groups, &opts)?,
        Some(PanelArg::Telemetry) => {
            if !compare::has_telemetry(&runs) {
                bail!("no Rprop telemetry in these metrics files (runs of other optimizers, or from before telemetry was recorded)");
            }
            plot::telemetry_chart(&args.out, &groups, &opts)?
        }
        Some(p) => plot::chart(&args.out, &groups, panel(p), &opts)?,
    }
    println!("wrote {}", args.out.display());
    Ok(())
}
