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
use crate::stats;

/// The report's table 3.1: (eval accuracy, test accuracy) per Rprop variant.
pub fn report_numbers(v: Variant) -> Option<(f64, f64)> {
    v.spec().report
}

/// A report number as a table cell ("-" where the report has none).
fn cell(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |v| format!("{v:.4}"))
}

/// One row of the results table: one run.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultRow {
    /// Run name: the group, plus `/seed-N` when the comparison runs several seeds.
    pub name: String,
    /// The config's name (the optimizer, or the config file's stem when two configs share
    /// one); runs of one group differ only in their seed.
    pub group: String,
    pub optimizer: Variant,
    pub seed: u64,
    pub best_epoch: usize,
    pub eval_acc: f64,
    pub test_acc: f64,
    pub test_loss: f32,
    /// Whole run: every epoch's train step and eval.
    pub seconds: f64,
    /// Whole run: forward+backward passes over the train set (the epochs' `grad_evals`).
    pub grad_evals: u64,
    /// `--target-eval-loss X`: X, and the gradient evaluations the run had made at the end
    /// of its first epoch with eval loss <= X (None: never reached).
    pub target: Option<(f32, Option<u64>)>,
    /// The report's (eval, test) accuracy for this variant, only for a run of the report's
    /// own settings on MNIST.
    pub report: Option<(f64, f64)>,
}

/// Whether `cfg` is the report's experiment for its optimizer (any seed): the settings
/// its numbers belong beside.
pub fn is_report_settings(cfg: &Config) -> bool {
    let mut report = Config::report(cfg.optimizer);
    report.seed = cfg.seed;
    report.run = cfg.run.clone();
    *cfg == report
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

/// Per group of runs (a config over several seeds): test accuracy's mean ± std and its 95%
/// confidence interval (Student's t, clipped to [0, 1] and marked so where it leaves it),
/// the mean eval accuracy, and the report's number.
pub fn summary_markdown(rows: &[ResultRow]) -> String {
    let mut any_clipped = false;
    let mut s = String::from(
        "| run | seeds | test acc mean ± std | 95% interval | eval acc mean | test loss mean | report: test acc |\n|---|---|---|---|---|---|---|\n",
    );
    for (group, runs) in groups(rows) {
        let acc: Vec<f64> = runs.iter().map(|r| r.test_acc).collect();
        let t = stats::summarize(&acc);
        let eval = stats::mean_std(&runs.iter().map(|r| r.eval_acc).collect::<Vec<_>>()).0;
        let loss = stats::mean_std(&runs.iter().map(|r| r.test_loss as f64).collect::<Vec<_>>()).0;
        let interval = if t.n > 1 {
            let (lo, hi, clipped) = t.clipped(0.0, 1.0);
            any_clipped |= clipped;
            format!("[{lo:.4}, {hi:.4}]{}", if clipped { " *" } else { "" })
        } else {
            "-".to_string()
        };
        s += &format!(
            "| {group} | {} | {:.4} ± {:.4} | {interval} | {eval:.4} | {loss:.4} | {} |\n",
            t.n,
            t.mean,
            t.std,
            cell(runs[0].report.map(|x| x.1))
        );
    }
    if any_clipped {
        s += "\n\\* The t interval (mean ± t·std/√n) left [0, 1] and is clipped to it: with so few seeds it says little.\n";
    }
    s
}

/// Rows grouped by `group`, in order of first appearance.
pub fn groups(rows: &[ResultRow]) -> Vec<(String, Vec<&ResultRow>)> {
    let mut out: Vec<(String, Vec<&ResultRow>)> = Vec::new();
    for r in rows {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, v)) => v.push(r),
            None => out.push((r.group.clone(), vec![r])),
        }
    }
    out
}

/// The results as Markdown: with several seeds, the summary per config first; then one row
/// per run with the report's numbers beside those of its settings.
pub fn results_markdown(rows: &[ResultRow], note: &str) -> String {
    let mut s = String::new();
    if groups(rows).iter().any(|(_, v)| v.len() > 1) {
        s += &summary_markdown(rows);
        s += "\nEvery run:\n\n";
    }
    let target = rows.iter().find_map(|r| r.target.map(|t| t.0));
    s += "| run | best epoch | eval acc | test acc | test loss | seconds | grad evals | report: eval acc | report: test acc |";
    if let Some(x) = target {
        s += &format!(" evals to eval loss <= {x} |");
    }
    s += &format!("\n|{}\n", "---|".repeat(9 + usize::from(target.is_some())));
    for r in rows {
        let rep = r.report;
        s += &format!(
            "| {} | {} | {:.4} | {:.4} | {:.4} | {:.1} | {} | {} | {} |",
            r.name,
            r.best_epoch,
            r.eval_acc,
            r.test_acc,
            r.test_loss,
            r.seconds,
            r.grad_evals,
            cell(rep.map(|x| x.0)),
            cell(rep.map(|x| x.1))
        );
        if target.is_some() {
            let reached = r.target.and_then(|t| t.1);
            s += &format!(
                " {} |",
                reached.map_or("not reached".into(), |n| n.to_string())
            );
        }
        s.push('\n');
    }
    if !note.is_empty() {
        s += &format!("\n{note}\n");
    }
    s
}

pub fn results_csv(rows: &[ResultRow]) -> String {
    let mut s = String::from(
        "run,optimizer,seed,best_epoch,eval_acc,test_acc,test_loss,seconds,report_eval_acc,report_test_acc,grad_evals,evals_to_target\n",
    );
    for r in rows {
        let rep = r.report;
        let num = |x: Option<f64>| x.map_or(String::new(), |v| v.to_string());
        s += &format!(
            "{},{},{},{},{},{},{},{:.3},{},{},{},{}\n",
            r.name,
            r.optimizer,
            r.seed,
            r.best_epoch,
            r.eval_acc,
            r.test_acc,
            r.test_loss,
            r.seconds,
            num(rep.map(|x| x.0)),
            num(rep.map(|x| x.1)),
            r.grad_evals,
            r.target
                .and_then(|t| t.1)
                .map_or(String::new(), |n| n.to_string())
        );
    }
    s
}

/// The gradient evaluations a run had made at the end of its first epoch with eval loss
/// <= `target` (None: never).
pub fn evals_to_target(m: &Metrics, target: f32) -> Option<u64> {
    let mut used = 0;
    for r in &m.epochs {
        used += r.grad_evals;
        if r.eval_loss <= target {
            return Some(used);
        }
    }
    None
}

/// Writes `results.md`, `results.csv`, the four charts, the 2x2 grid and, when the runs
/// have Rprop telemetry, `telemetry.png` into `out`. `runs` are labelled by group: runs of
/// one label are drawn as their mean with a band.
pub fn write_outputs(
    out: &Path,
    rows: &[ResultRow],
    runs: &[(String, Metrics)],
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
    written.extend(write_charts(out, runs, opts)?);
    Ok(written)
}

/// The charts of labelled runs into `out`: one per panel, the grid, and the telemetry.
pub fn write_charts(
    out: &Path,
    runs: &[(String, Metrics)],
    opts: &ChartOptions,
) -> Result<Vec<PathBuf>> {
    let groups = plot::group_runs(runs);
    let mut written = Vec::new();
    for panel in Panel::ALL {
        let p = out.join(format!("{}.png", panel.stem()));
        plot::chart(&p, &groups, panel, opts)?;
        written.push(p);
    }
    let p = out.join("curves.png");
    plot::grid(&p, &groups, opts)?;
    written.push(p);
    if has_telemetry(runs) {
        let p = out.join("telemetry.png");
        plot::telemetry_chart(&p, &groups, opts)?;
        written.push(p);
    }
    Ok(written)
}

/// Whether any run recorded Rprop telemetry.
pub fn has_telemetry(runs: &[(String, Metrics)]) -> bool {
    runs.iter()
        .any(|(_, m)| m.epochs.iter().any(|r| !r.telemetry.is_empty()))
}

/// A run to do: where its config came from, the config (its seed set), its group's name,
/// and its output folder.
pub struct Job {
    pub config_path: PathBuf,
    pub config: Config,
    pub group: String,
    pub dir: PathBuf,
}

/// Checks a comparison can run before it starts: at least one config, distinct folders.
/// With `seeds`, every config runs once per seed, into `out/<name>/seed-<N>`.
pub fn plan(
    configs: Vec<(PathBuf, Config)>,
    out: &Path,
    seeds: Option<&[u64]>,
) -> Result<Vec<Job>> {
    if configs.is_empty() {
        bail!("no configs to compare (pass --configs configs/*.json)");
    }
    let names = run_names(&configs);
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            bail!("two configs would both write to {}", out.join(n).display());
        }
    }
    let mut jobs = Vec::new();
    for ((config_path, config), name) in configs.into_iter().zip(names) {
        match seeds {
            None => jobs.push(Job {
                config_path,
                dir: out.join(&name),
                group: name,
                config,
            }),
            Some(seeds) => {
                for &seed in seeds {
                    jobs.push(Job {
                        config_path: config_path.clone(),
                        config: Config {
                            seed,
                            ..config.clone()
                        },
                        group: name.clone(),
                        dir: out.join(&name).join(format!("seed-{seed}")),
                    });
                }
            }
        }
    }
    Ok(jobs)
}

/// The seeds of `compare --seeds` (a type of its own, so the command line takes one value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seeds(pub Vec<u64>);

impl std::str::FromStr for Seeds {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_seeds(s).map(Seeds)
    }
}

/// Parses `--seeds`: `A..B` (inclusive, as in "seeds 0..9"), `A..=B`, or a comma list.
pub fn parse_seeds(s: &str) -> Result<Vec<u64>, String> {
    let num = |t: &str| {
        t.trim().parse::<u64>().map_err(|_| {
            // `0-9` reads as a range to many: say how to write one.
            let range = t.split_once('-').filter(|(a, b)| {
                a.trim().parse::<u64>().is_ok() && b.trim().parse::<u64>().is_ok()
            });
            match range {
                Some((a, b)) => format!(
                    "{t:?} is not a seed; for the seeds {} to {} write {}..{} (or a list: 1,5,7)",
                    a.trim(),
                    b.trim(),
                    a.trim(),
                    b.trim()
                ),
                None => format!("{t:?} is not a seed (a whole number >= 0)"),
            }
        })
    };
    let seeds: Vec<u64> = if let Some((a, b)) = s.split_once("..") {
        let (a, b) = (num(a)?, num(b.trim_start_matches('='))?);
        if b < a {
            return Err(format!("{s:?}: the range is empty ({b} < {a})"));
        }
        if b - a >= 1000 {
            return Err(format!("{s:?}: at most 1000 seeds"));
        }
        (a..=b).collect()
    } else {
        s.split(',').map(num).collect::<Result<_, _>>()?
    };
    for (i, x) in seeds.iter().enumerate() {
        if seeds[..i].contains(x) {
            return Err(format!("{s:?}: seed {x} is given twice"));
        }
    }
    Ok(seeds)
}

/// Times a closure.
pub fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let t = Instant::now();
    let v = f()?;
    Ok((v, t.elapsed().as_secs_f64()))
}

/// Reads the metrics files `plot` was given, each labelled for the legend: runs in
/// `NAME/seed-N/` folders (a `compare --seeds` run) by NAME, so seeds of one config draw as
/// one line with a band; otherwise by optimizer, or by folder where two runs share an
/// optimizer. Errors name the file.
pub fn load_metrics(paths: &[PathBuf]) -> Result<Vec<(String, Metrics)>> {
    if paths.is_empty() {
        bail!("no metrics files given");
    }
    let runs = paths
        .iter()
        .map(|p| {
            let m = Metrics::load(p)?;
            if m.epochs.is_empty() {
                bail!("{}: no epochs recorded", p.display());
            }
            m.check_plausible(p)?;
            Ok(m)
        })
        .collect::<Result<Vec<_>>>()
        .context("plot")?;
    let folder = |p: &Path, up: usize| {
        p.ancestors()
            .nth(up)
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
    };
    // A metrics file may hold any text there; a legend of 50 MB would never finish.
    let cut = |s: &str| s.chars().take(40).collect::<String>();
    let labels: Vec<String> = paths
        .iter()
        .zip(&runs)
        .map(|(p, m)| {
            let parent = cut(&folder(p, 1).unwrap_or_default());
            if parent.starts_with("seed-") {
                return cut(&folder(p, 2).unwrap_or_else(|| m.optimizer.clone()));
            }
            let shared = runs.iter().filter(|o| o.optimizer == m.optimizer).count() > 1;
            if shared && !parent.is_empty() {
                format!("{} ({parent})", cut(&m.optimizer))
            } else {
                cut(&m.optimizer)
            }
        })
        .collect();
    Ok(labels.into_iter().zip(runs).collect())
}
