//! `compare`: the report's experiment (chapter 3.2) in one command: train every config, test
//! each best checkpoint, write a results table beside the report's numbers, draw the curves.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::checkpoint::{self, write_atomic};
use crate::config::Config;
use crate::cpu;
use crate::data::Dataset;
use crate::metrics::Metrics;
use crate::optim::Variant;
use crate::plot::{self, ChartOptions, Panel};

/// The report's table 3.1: (eval accuracy, test accuracy) per Rprop variant.
pub fn report_numbers(v: Variant) -> Option<(f64, f64)> {
    match v {
        Variant::RpropMinus => Some((0.958, 0.956)),
        Variant::RpropPlus => Some((0.9427, 0.9478)),
        Variant::IrpropPlus => Some((0.9554, 0.9557)),
        Variant::IrpropMinus => Some((0.955, 0.9555)),
        _ => None,
    }
}

/// A report number as a table cell ("-" where the report has none).
fn cell(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |v| format!("{v:.4}"))
}

/// One row of the results table.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultRow {
    /// Run name (the optimizer, or the config file's stem when two configs share one).
    pub name: String,
    pub optimizer: Variant,
    pub best_epoch: usize,
    pub eval_acc: f64,
    pub test_acc: f64,
    pub test_loss: f32,
    /// Whole run: every epoch's train step and eval.
    pub seconds: f64,
    /// The report's (eval, test) accuracy for this variant, when the data is MNIST.
    pub report: Option<(f64, f64)>,
}

/// Names for the runs' folders: the optimizer name, unless two configs share it.
pub fn run_names(configs: &[(PathBuf, Config)]) -> Vec<String> {
    configs
        .iter()
        .map(|(path, cfg)| {
            let shared = configs
                .iter()
                .filter(|(_, c)| c.optimizer == cfg.optimizer)
                .count()
                > 1;
            if shared {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| cfg.optimizer.name().to_string())
            } else {
                cfg.optimizer.name().to_string()
            }
        })
        .collect()
}

/// Scores a run's best checkpoint on the test set.
pub fn test_run(dir: &Path, test: &Dataset) -> Result<cpu::Evaluation> {
    let params = checkpoint::load(
        &dir.join(crate::trainer::BEST),
        test.features(),
        crate::data::CLASSES,
    )?;
    Ok(cpu::evaluate(&params, test))
}

/// The results as a Markdown table, with the report's numbers beside ours.
pub fn results_markdown(rows: &[ResultRow], note: &str) -> String {
    let mut s = String::from(
        "| run | best epoch | eval acc | test acc | test loss | seconds | report: eval acc | report: test acc |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let rep = r.report;
        s += &format!(
            "| {} | {} | {:.4} | {:.4} | {:.4} | {:.1} | {} | {} |\n",
            r.name,
            r.best_epoch,
            r.eval_acc,
            r.test_acc,
            r.test_loss,
            r.seconds,
            cell(rep.map(|x| x.0)),
            cell(rep.map(|x| x.1))
        );
    }
    if !note.is_empty() {
        s += &format!("\n{note}\n");
    }
    s
}

pub fn results_csv(rows: &[ResultRow]) -> String {
    let mut s = String::from(
        "run,optimizer,best_epoch,eval_acc,test_acc,test_loss,seconds,report_eval_acc,report_test_acc\n",
    );
    for r in rows {
        let rep = r.report;
        let num = |x: Option<f64>| x.map_or(String::new(), |v| v.to_string());
        s += &format!(
            "{},{},{},{},{},{},{:.3},{},{}\n",
            r.name,
            r.optimizer,
            r.best_epoch,
            r.eval_acc,
            r.test_acc,
            r.test_loss,
            r.seconds,
            num(rep.map(|x| x.0)),
            num(rep.map(|x| x.1))
        );
    }
    s
}

/// Writes `results.md`, `results.csv`, the four charts and the 2x2 grid into `out`.
pub fn write_outputs(
    out: &Path,
    rows: &[ResultRow],
    runs: &[Metrics],
    note: &str,
    opts: &ChartOptions,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let md = out.join("results.md");
    write_atomic(&md, results_markdown(rows, note).as_bytes())?;
    written.push(md);
    let csv = out.join("results.csv");
    write_atomic(&csv, results_csv(rows).as_bytes())?;
    written.push(csv);
    for panel in Panel::ALL {
        let p = out.join(format!("{}.png", panel.stem()));
        plot::chart(&p, runs, panel, opts)?;
        written.push(p);
    }
    let p = out.join("curves.png");
    plot::grid(&p, runs, opts)?;
    written.push(p);
    Ok(written)
}

/// A run to do: where its config came from, the config, and its output folder.
pub struct Job {
    pub config_path: PathBuf,
    pub config: Config,
    pub dir: PathBuf,
}

/// Checks a comparison can run before it starts: at least one config, distinct folders.
pub fn plan(configs: Vec<(PathBuf, Config)>, out: &Path) -> Result<Vec<Job>> {
    if configs.is_empty() {
        bail!("no configs to compare (pass --configs configs/*.json)");
    }
    let names = run_names(&configs);
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            bail!("two configs would both write to {}", out.join(n).display());
        }
    }
    Ok(configs
        .into_iter()
        .zip(names)
        .map(|((config_path, config), name)| Job {
            config_path,
            config,
            dir: out.join(name),
        })
        .collect())
}

/// Times a closure.
pub fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let t = Instant::now();
    let v = f()?;
    Ok((v, t.elapsed().as_secs_f64()))
}

/// Reads the metrics files `plot` was given; errors name the file.
pub fn load_metrics(paths: &[PathBuf]) -> Result<Vec<Metrics>> {
    if paths.is_empty() {
        bail!("no metrics files given");
    }
    paths
        .iter()
        .map(|p| {
            let m = Metrics::load(p)?;
            if m.epochs.is_empty() {
                bail!("{}: no epochs recorded", p.display());
            }
            Ok(m)
        })
        .collect::<Result<Vec<_>>>()
        .context("plot")
}
