//! `sweep run-trial`, `sweep status` and `sweep report`, and what `sweep` shares with
//! them: the data loaded once, the backend factory, the split of the cores, the report.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use super::{BackendKind, GpuArgs};
use crate::backend::Backend;
use crate::config::Config;
use crate::cpu::SharedSets;
use crate::data::{self, Dataset, Part, CLASSES};
use crate::model::Params;
use crate::optim::OptimState;
use crate::sweep::local::{self, Local};
use crate::sweep::plan::SweepRecord;
use crate::sweep::report::{self, Metric, Notes};
use crate::sweep::status::{self, State};
use crate::sweep::trial::{self, Ended, Env, Outcome};
use crate::sweep::trial_name;
use crate::trainer::Interrupted;

/// What trials are ranked by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MetricArg {
    /// Eval accuracy of each trial's best epoch, highest first.
    EvalAcc,
    /// Eval loss of each trial's best epoch, lowest first.
    EvalLoss,
}

impl From<MetricArg> for crate::sweep::report::Metric {
    fn from(m: MetricArg) -> Self {
        match m {
            MetricArg::EvalAcc => crate::sweep::report::Metric::EvalAcc,
            MetricArg::EvalLoss => crate::sweep::report::Metric::EvalLoss,
        }
    }
}

#[derive(Args, Debug)]
pub struct RunTrialArgs {
    /// The sweep's folder (its sweep.json and trial-NNN/ folders).
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// The trial's number (1-based: trial-001 is 1).
    #[arg(long, value_name = "N")]
    pub index: usize,
    /// Threads of the trial [default: the CPUs of its Slurm task (SLURM_CPUS_PER_TASK, else
    /// SLURM_JOB_CPUS_PER_NODE) when run by one, else every core].
    #[arg(long, value_name = "T", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,
    /// No line at the end.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The sweep's folder.
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// One line per trial.
    #[arg(long, short)]
    pub verbose: bool,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The sweep's folder.
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// Rank by this [default: the sweep's own, from its sweep.json].
    #[arg(long, value_enum)]
    pub metric: Option<MetricArg>,
    /// Score the best K on the test set [default: the sweep's own].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub test_top: Option<u64>,
}

/// The data every trial of a sweep reads, loaded (and decompressed) once: the learning
/// images each trial splits into its train and eval sets, and the test images.
pub(super) struct Inputs {
    pub learn: Dataset,
    pub test: Dataset,
    /// The most memory one trial needs (see [`Config::memory_estimate`]).
    pub need: u128,
}

impl Inputs {
    /// Loads the data in `dir` and checks that it fits every trial's sets and memory.
    pub fn load(dir: &Path, configs: &[Config]) -> Result<Inputs> {
        let learn = data::load(dir, Part::Learn)?;
        let test = data::load(dir, Part::Test)?;
        if (test.rows, test.cols) != (learn.rows, learn.cols) {
            bail!(
                "{}: the test images are {}x{} but the training images are {}x{}",
                dir.display(),
                test.rows,
                test.cols,
                learn.rows,
                learn.cols
            );
        }
        let mut need = 0;
        for (i, cfg) in configs.iter().enumerate() {
            let ctx = || format!("trial {}", i + 1);
            data::split(&learn, cfg.train_set_size, cfg.eval_set_size)
                .map_err(anyhow::Error::msg)
                .with_context(|| dir.display().to_string())
                .with_context(ctx)?;
            cfg.check_memory(learn.features(), CLASSES)
                .with_context(ctx)?;
            need = need.max(cfg.memory_estimate(learn.features(), CLASSES));
        }
        Ok(Inputs { learn, test, need })
    }
}

/// The backend factory of every trial: the backend and strategies its config records
/// (else `auto`), built as `train` builds them.
pub(super) fn factory(
) -> impl Fn(&Config, &SharedSets, Params, Option<OptimState>) -> Result<Box<dyn Backend>> + Sync {
    |cfg, sets, params, state| {
        let (kind, gpu) = super::train::settled(None, &GpuArgs::default(), cfg)?;
        let (b, _) = super::train::make_backend(kind, &gpu, sets, params, state, cfg)?;
        Ok(b)
    }
}

/// How the local executor splits the cores: `--jobs`/`--threads`, else every core busy
/// (one trial at a time on a GPU); fewer trials at once when that many would not fit in
/// memory.
pub(super) fn split(
    jobs: Option<u64>,
    threads: Option<u64>,
    record: &SweepRecord,
    (trials, need): (usize, u128),
    quiet: bool,
) -> Result<Local> {
    let configs = (1..=record.trials.len())
        .map(|i| record.config(i))
        .collect::<Result<Vec<_>>>()?;
    let backends: Vec<Option<&str>> = configs.iter().map(|c| c.run.backend.as_deref()).collect();
    let auto_gpu = || {
        let adapter = configs.iter().find_map(|c| c.run.adapter.as_deref());
        super::train::auto_choice(adapter).0 == BackendKind::Gpu
    };
    let gpu = backends.contains(&Some("gpu")) || (backends.contains(&None) && auto_gpu());
    let mut how = local_split(jobs, threads, trials, gpu);
    how.quiet = quiet;
    let need = need.max(1);
    let fit = (crate::limits::memory_limit() as u128 / need).max(1) as usize;
    if how.jobs > fit {
        if !quiet {
            eprintln!(
                "note: {} trials at once would need about {} MiB; running {fit} at once",
                how.jobs,
                (need * how.jobs as u128) >> 20
            );
        }
        how.jobs = fit;
    }
    if !quiet {
        eprintln!(
            "local executor: {} trial(s) at once, {} thread(s) each",
            how.jobs, how.threads
        );
    }
    Ok(how)
}

/// Ranks what has ended, scores the top K on the test set, writes results.md/.csv and
/// the charts, prints the counts and the best (on stdout, `--quiet` or not); returns the
/// note that says where the results are.
pub(super) fn write_report(
    out: &Path,
    record: &SweepRecord,
    test: &Dataset,
    given: Option<(Metric, usize)>,
) -> Result<String> {
    let (metric, k) = match given {
        Some(g) => g,
        None => (Metric::parse(&record.metric)?, record.test_top),
    };
    let states = status::all(out, record)?;
    let mut rows = report::rows(record, states);
    let ranked = report::ranked(&rows, metric);
    report::score_top(out, &mut rows, &ranked, k, test);
    let notes = Notes {
        metric,
        test_top: k,
        test_len: test.len(),
        data_dir: &record.options.data_dir,
    };
    let mut written = report::write(out, record, &rows, &ranked, &notes)?;
    if !ranked.is_empty() {
        written.extend(crate::sweep::charts::write(out, record, &rows, &ranked)?);
    }
    let md = out.join("results.md");
    let states: Vec<State> = rows.iter().map(|r| r.state.clone()).collect();
    println!("{}", status::line(&states));
    if let Some(&b) = ranked.first() {
        println!("{}", best_line(record, &rows[b]));
    }
    let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    println!("wrote {}", names.join(", "));
    Ok(format!("; the results so far are in {}", md.display()))
}

/// `best: trial-007 (learning_rate 0.002, ...): eval acc 0.9612, eval loss 0.1301, test acc
/// 0.9600` (the test score only where it was scored).
fn best_line(record: &SweepRecord, r: &report::Row) -> String {
    let settings: Vec<String> = (record.keys.iter().zip(&r.settings))
        .map(|(k, v)| format!("{} {}", k.key, report::cell(v)))
        .collect();
    let (acc, loss) = r.scores().unwrap_or((0.0, f32::NAN));
    let test = r
        .test
        .map_or(String::new(), |(a, _)| format!(", test acc {a:.4}"));
    format!(
        "best: {} ({}): eval acc {acc:.4}, eval loss {loss:.4}{test}",
        r.name,
        settings.join(", ")
    )
}

/// `sweep run-trial OUT --index N`.
pub(super) fn run_trial(a: RunTrialArgs) -> Result<()> {
    let record = crate::sweep::plan::SweepRecord::load(&a.out)?;
    record.trial(a.index)?;
    let name = trial_name(a.index, record.trials.len());
    let say = |o: &Outcome| {
        if a.quiet {
            return;
        }
        match (o.status, o.scores()) {
            (Ended::Done, Some((acc, loss))) => {
                println!("{name}: done, eval acc {acc:.4}, eval loss {loss:.4}")
            }
            _ => println!(
                "{name}: failed: {}",
                o.reason.as_deref().unwrap_or("no reason recorded")
            ),
        }
    };
    if let Some(o) = Outcome::load(&record.trial_dir(&a.out, a.index))? {
        say(&o);
        return Ok(());
    }
    if !a.quiet {
        // Where it starts from (the trial's lock, taken next, makes it so).
        match status::of(&a.out, &record, a.index)? {
            State::Pending {
                saved: true,
                epochs,
                ..
            } => println!("{name}: resumes from its save ({epochs} epoch(s) recorded)"),
            State::Pending { .. } => println!("{name}: starts"),
            // Another process holds it: the lock, taken next, says so.
            _ => {}
        }
    }
    let learn = data::load(&record.options.data_dir, Part::Learn)?;
    let factory = factory();
    let env = Env {
        out: &a.out,
        sweep: &record,
        learn: &learn,
        splits: Default::default(),
        backend: &factory,
    };
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(t) = a
        .threads
        .map(|t| t as usize)
        .or_else(crate::slurm::allocated_cpus)
    {
        pool = pool.num_threads(t);
    }
    let pool = pool.build()?;
    crate::trainer::install_interrupt_handler();
    match pool.install(|| trial::run(&env, a.index)) {
        Ok(o) => {
            say(&o);
            Ok(())
        }
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => Err(e.context(format!(
            "{name}: stopped at the end of an epoch, saved; `rprop-lab sweep run-trial {} --index {}` resumes it",
            a.out.display(),
            a.index
        ))),
        Err(e) => Err(e),
    }
}

/// `sweep status OUT`.
pub(super) fn status(a: StatusArgs) -> Result<()> {
    let record = SweepRecord::load(&a.out)?;
    let states = status::all(&a.out, &record)?;
    println!(
        "sweep {}: {} trials ({} search, seed {}, space {})",
        a.out.display(),
        record.trials.len(),
        record.search,
        record.seed,
        record.space.path.display()
    );
    if let Some(rec) = crate::sweep::slurm::Record::load(&a.out)? {
        for s in &rec.submissions {
            println!(
                "slurm: job {} (trials {}) submitted {} ago",
                s.job_id,
                s.trials,
                status::ago(crate::sweep::now_unix() - s.submitted_unix)
            );
        }
    }
    println!("{}", status::line(&states));
    let rows = report::rows(&record, states);
    let ranked = report::ranked(&rows, Metric::parse(&record.metric)?);
    if let Some(&b) = ranked.first() {
        println!("{}", best_line(&record, &rows[b]));
    }
    for r in &rows {
        if let Some(line) = state_line(&r.state, a.verbose) {
            println!("{}: {line}", r.name);
        }
    }
    Ok(())
}

/// A trial's line in `sweep status` (None: not shown without `-v`).
fn state_line(state: &State, verbose: bool) -> Option<String> {
    let since = |t: f64| status::ago(crate::sweep::now_unix() - t);
    Some(match state {
        State::Done(o) if verbose => {
            let (acc, loss) = o.scores().unwrap_or((0.0, f32::NAN));
            format!("done, eval acc {acc:.4}, eval loss {loss:.4}")
        }
        State::Failed(o) => format!("failed: {}", o.reason.as_deref().unwrap_or("")),
        State::Running {
            epochs,
            elsewhere: None,
        } => format!("running, {epochs} epoch(s) recorded"),
        State::Running {
            epochs,
            elsewhere: Some(e),
        } => format!(
            "running on {} (by its Slurm log: its lock is held there, where this machine cannot see it), {epochs} epoch(s) recorded, last wrote {} ago",
            e.node,
            since(e.last_write_unix)
        ),
        State::Pending {
            epochs,
            lost: Some(e),
            saved,
        } => format!(
            "pending: started on {} but silent for {} (killed, or its node failed), {epochs} epoch(s) recorded, resumes{}",
            e.node,
            since(e.last_write_unix),
            if *saved { " from its save" } else { "" }
        ),
        State::Pending {
            saved: true,
            epochs,
            ..
        } => format!("pending, stopped part-way ({epochs} epoch(s) recorded), resumes"),
        State::Pending { .. } if verbose => "pending, not started".to_string(),
        _ => return None,
    })
}

/// `sweep report OUT`.
pub(super) fn report(a: ReportArgs) -> Result<()> {
    let real = crate::run_folder::resolve(&a.out)?;
    let record = SweepRecord::load(&real)?;
    // One writer of the sweep's files: not while `sweep` itself runs there.
    let _lock = crate::run_folder::lock(&real)?;
    let test = data::load(&record.options.data_dir, Part::Test)?;
    let metric = match a.metric {
        Some(m) => m.into(),
        None => Metric::parse(&record.metric)?,
    };
    let k = a.test_top.map_or(record.test_top, |k| k as usize);
    write_report(&real, &record, &test, Some((metric, k)))?;
    Ok(())
}

/// The split of the cores before the memory check (see [`split`]).
fn local_split(jobs: Option<u64>, threads: Option<u64>, trials: usize, gpu: bool) -> Local {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = threads.map(|t| t as usize);
    let (jobs, threads) = match (jobs, gpu) {
        (Some(j), _) => (j as usize, threads.unwrap_or((cores / j as usize).max(1))),
        (None, true) => (1, threads.unwrap_or(cores)),
        (None, false) => local::default_split(cores, trials, threads),
    };
    Local {
        jobs,
        threads,
        quiet: false,
    }
}
