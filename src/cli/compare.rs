//! `compare` (train every config, test, tabulate, draw) and `plot`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::train::make_backend;
use super::{CompareArgs, PanelArg, PlotArgs};
use crate::backend::Backend;
use crate::compare;
use crate::data::{self, Part, CLASSES};
use crate::model::Params;
use crate::optim::{RpropState, Variant};
use crate::plot::{self, ChartOptions, Panel};
use crate::trainer::{self, RunOptions, Start};

/// What decides whether two runs of a comparison can share a backend: train set size,
/// eval set size, batch size, and the shuffle seed (mini-batches only).
type BatchPlan = (usize, usize, usize, u64);

pub(super) fn compare(args: CompareArgs) -> Result<()> {
    if args.overrides.optimizer.is_some() {
        bail!("--optimizer cannot be used with compare: each config names its optimizer");
    }
    if args.seeds.is_some() && args.overrides.seed.is_some() {
        bail!("--seed and --seeds cannot both be given: --seeds sets each run's seed");
    }
    let paths = if args.configs.is_empty() {
        Variant::RPROP
            .iter()
            .map(|v| {
                let rel = PathBuf::from("configs").join(format!("{}.json", v.name()));
                super::data_dir::bundled_file(&rel)
            })
            .collect()
    } else {
        args.configs.clone()
    };
    let configs = paths
        .iter()
        .map(|p| Ok((p.clone(), args.overrides.resolve(Some(p))?)))
        .collect::<Result<Vec<_>>>()?;
    let jobs = compare::plan(configs, &args.out, args.seeds.as_ref().map(|s| &s.0[..]))?;
    for job in &jobs {
        trainer::prepare_out_dir(&job.dir, args.force)?;
    }
    let data_dir = args.data.dir()?;
    let learn = data::load(&data_dir, Part::Learn)?;
    let test = data::load(&data_dir, Part::Test)?;
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
                data_dir: Some(data_dir.clone()),
                save_every: None,
            },
            Start::default(),
        )?;
        let ev = compare::test_run(&job.dir, &test)?;
        let mut metrics = run.metrics.clone();
        metrics.test = Some(crate::metrics::TestRecord {
            loss: ev.stats.loss,
            accuracy: ev.stats.accuracy(),
            correct: ev.stats.correct,
            samples: ev.stats.samples,
            epoch: run.best.epoch,
            data_dir: data_dir.clone(),
        });
        metrics.save(&job.dir)?;
        let name = match &args.seeds {
            Some(_) => format!("{}/seed-{}", job.group, cfg.seed),
            None => job.group.clone(),
        };
        rows.push(compare::ResultRow {
            name,
            group: job.group.clone(),
            optimizer: cfg.optimizer,
            seed: cfg.seed,
            best_epoch: run.best.epoch,
            eval_acc: run.best.eval_acc,
            test_acc: ev.stats.accuracy(),
            test_loss: ev.stats.loss,
            seconds: run.seconds,
            // Beside the report's numbers only what the report ran: its settings, on MNIST.
            report: compare::report_numbers(cfg.optimizer)
                .filter(|_| mnist && compare::is_report_settings(cfg)),
        });
        runs.push((job.group.clone(), metrics));
    }
    bar.finish_and_clear();
    let note = format!(
        "Data: {}. Backend: {backend_name}. Eval accuracy at the best (lowest eval loss) epoch; test accuracy and loss of that epoch's weights on {} test images; seconds for the whole run. {}",
        data_dir.display(),
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
    if let Some(seeds) = &args.seeds {
        println!("({} seeds per config: {:?})", seeds.0.len(), seeds.0);
    }
    let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    println!("wrote {}", names.join(", "));
    Ok(())
}

pub(super) fn plot(args: PlotArgs) -> Result<()> {
    let runs = compare::load_metrics(&args.metrics)?;
    let groups = plot::group_runs(&runs);
    let opts = ChartOptions {
        log_loss: !args.linear_loss,
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
