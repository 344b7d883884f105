//! `sweep`: a hyper-parameter search (see [`crate::sweep`]) over a space file, run here by
//! the local executor or submitted to Slurm ([`super::sweep_slurm`]); `sweep --resume OUT`
//! finishes it. `run-trial`, `status` and `report` are in [`super::sweep_tools`].

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};

use super::sweep_slurm::{self, SlurmArgs};
use super::sweep_tools::{self, Inputs, MetricArg, ReportArgs, RunTrialArgs, StatusArgs};
use super::{BackendKind, GpuArgs, SweepOverrides, TrainDataArgs};
use crate::config::Config;
use crate::run_folder;
use crate::sweep::local;
use crate::sweep::plan::{Builder, SweepRecord, TrainOptions};
use crate::sweep::space::Space;
use crate::sweep::status::{self, State};
use crate::sweep::trial::Env;
use crate::sweep::{is_sweep_entry, sample, MAX_TRIALS, SWEEP_JSON};
use crate::trainer::Interrupted;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub action: Option<SweepAction>,
    #[command(flatten)]
    pub run: SweepRunArgs,
}

#[derive(Subcommand, Debug)]
pub enum SweepAction {
    /// Run one trial of the sweep in OUT, as a cluster task does: start it, resume it
    /// exactly from its saved state, or return at once when it has ended. Exit 0 once it
    /// is done (or failed, recorded); 130 when a signal stopped it (saved).
    RunTrial(RunTrialArgs),
    /// Done, running, pending and failed trials, read from the trial folders.
    Status(StatusArgs),
    /// (Re)write results.md/.csv and the charts from the trials that have ended.
    Report(ReportArgs),
}

/// Where trials run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Executor {
    /// On this machine, `--jobs` trials at once.
    Local,
    /// On a Slurm cluster: a job array with one task per trial, submitted with sbatch.
    Slurm,
}

#[derive(Args, Debug)]
pub struct SweepRunArgs {
    /// Search-space file (see sweeps/): a base config, a distribution per varied key and
    /// the search (random, grid, grid-sample).
    #[arg(long, value_name = "FILE")]
    pub space: Option<PathBuf>,
    /// Trials to run (random and grid-sample searches; 1..=10000) [default: the space's
    /// `trials`].
    #[arg(long, value_name = "N")]
    pub trials: Option<String>,
    /// Seed of the sampling: the same seed draws the same trials [default: 0]. Each
    /// trial's weight init uses its config's `seed` key.
    #[arg(long = "seed", id = "sampling_seed", value_name = "N")]
    pub seed: Option<u64>,
    /// The sweep's folder: sweep.json, trial-NNN/ run folders, results and charts
    /// [default: runs/sweep].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the sweep in DIR: resume every trial stopped part-way (exactly), run the
    /// ones not started.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Replace a sweep already in --out.
    #[arg(long)]
    pub force: bool,
    /// Where trials run [default: local; with --resume, the sweep's own].
    #[arg(long, value_enum)]
    pub executor: Option<Executor>,
    /// Trials at once (Slurm: the array's %K throttle) [default: the cores divided by each
    /// trial's threads; 1 on a GPU; on Slurm no limit].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub jobs: Option<u64>,
    /// Threads of each trial (Slurm: --cpus-per-task) [default: 1 when there are at least as
    /// many trials as cores, else the cores shared among the trials; on Slurm the CPUs the
    /// cluster gives a task].
    #[arg(long, value_name = "T", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,
    /// Rank trials by this (never by the test set) [default: eval-acc].
    #[arg(long, value_enum)]
    pub metric: Option<MetricArg>,
    /// Score the best K trials (by the ranking) on the test set [default: 1].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub test_top: Option<u64>,
    /// No progress lines.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub data: TrainDataArgs,
    /// Hardware of every trial (see train --help) [default: auto].
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// Also save each trial every N epochs (see train --help).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub save_every: Option<u64>,
    #[command(flatten)]
    pub overrides: SweepOverrides,
    #[command(flatten)]
    pub slurm: SlurmArgs,
}

pub(super) fn sweep(args: SweepArgs) -> Result<()> {
    match args.action {
        Some(SweepAction::RunTrial(a)) => sweep_tools::run_trial(a),
        Some(SweepAction::Status(a)) => sweep_tools::status(a),
        Some(SweepAction::Report(a)) => sweep_tools::report(a),
        None => match &args.run.resume {
            Some(dir) => resume(&args.run, dir),
            None => start(&args.run),
        },
    }
}

/// `--trials N`, read here so a bad count is one error line.
fn parse_trials(text: Option<&str>) -> Result<Option<usize>> {
    let Some(t) = text else { return Ok(None) };
    match t.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_TRIALS).contains(&n) => Ok(Some(n)),
        _ => bail!(
            "--trials {}: must be a whole number in 1..={MAX_TRIALS}",
            crate::config::cut(t)
        ),
    }
}

/// The backend options as the config keys config.json records, applied to every trial.
fn backend_keys(a: &SweepRunArgs) -> Vec<(String, String)> {
    let mut v = Vec::new();
    match a.backend {
        Some(BackendKind::Cpu) => v.push(("backend".into(), "cpu".into())),
        Some(BackendKind::Gpu) => v.push(("backend".into(), "gpu".into())),
        _ => {}
    }
    let g = &a.gpu;
    if let Some(x) = &g.adapter {
        v.push(("adapter".into(), x.clone()));
    }
    if let Some(x) = &g.matmul_kernel {
        v.push(("matmul_kernel".into(), x.clone()));
    }
    match g.cpu_matmul {
        Some(crate::cpu::fused::CpuMatmul::Dense) => v.push(("cpu_matmul".into(), "dense".into())),
        Some(crate::cpu::fused::CpuMatmul::Sparse) => {
            v.push(("cpu_matmul".into(), "sparse".into()))
        }
        _ => {}
    }
    v
}

/// A space file as given, else under the bundled folders (`sweeps/NAME.json` from any
/// folder).
fn find_space(path: &Path) -> PathBuf {
    if path.exists() || path.is_absolute() {
        return path.to_path_buf();
    }
    super::data_dir::bundled_file(path)
}

/// What the Slurm executor reads of the command line.
fn slurm_given(a: &SweepRunArgs) -> sweep_slurm::Given<'_> {
    sweep_slurm::Given {
        slurm: &a.slurm,
        jobs: a.jobs,
        threads: a.threads,
        quiet: a.quiet,
    }
}

/// Refuses the Slurm executor's options with the local executor.
fn check_executor(a: &SweepRunArgs, executor: Executor) -> Result<()> {
    match (executor, a.slurm.first_given()) {
        (Executor::Local, Some(flag)) => bail!("{flag} is an option of --executor slurm"),
        _ => Ok(()),
    }
}

/// A new sweep: every check (space, options, every trial's config, data, the folder; on
/// Slurm, the scripts and sbatch's own check) before anything is written; then the plan,
/// and the trials run here or submitted.
fn start(a: &SweepRunArgs) -> Result<()> {
    let executor = a.executor.unwrap_or(Executor::Local);
    check_executor(a, executor)?;
    let settings = match executor {
        Executor::Slurm => Some(sweep_slurm::given(&slurm_given(a))?),
        Executor::Local => None,
    };
    let (out, record, inputs) = check_new(a)?;
    let launch = match settings {
        Some(s) => {
            let all: Vec<usize> = (1..=record.trials.len()).collect();
            Some(sweep_slurm::prepare(
                &slurm_given(a),
                &out,
                &record,
                &all,
                s,
            )?)
        }
        None => None,
    };
    let _lock = write_new(a, &out, &record)?;
    if !a.quiet {
        eprintln!(
            "sweep: {} trials of {} ({} search, seed {}) -> {}",
            record.trials.len(),
            record.space.path.display(),
            record.search,
            record.seed,
            out.display()
        );
    }
    match launch {
        Some(l) => sweep_slurm::launch(&slurm_given(a), &out, &record, l, &inputs),
        None => execute(a, &out, &record, &inputs),
    }
}

/// Checks a new sweep: its folder (resolved), its record (every trial's config) and the
/// data, loaded; nothing is written.
fn check_new(a: &SweepRunArgs) -> Result<(PathBuf, SweepRecord, Inputs)> {
    let given = a.space.as_ref().ok_or_else(|| {
        anyhow!("--space FILE is required (see sweeps/), or --resume OUT to continue a sweep")
    })?;
    let space = Space::load(&find_space(given))?;
    let trials = parse_trials(a.trials.as_deref())?;
    let mut overrides: Vec<(String, String)> = (a.overrides.0.pairs())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    overrides.extend(backend_keys(a));
    let builder = Builder::new(&space, &overrides)?;
    let seed = a.seed.unwrap_or(0);
    let draws =
        sample::draw_all(&space, seed, trials).with_context(|| space.path.display().to_string())?;
    let configs = (draws.iter().enumerate())
        .map(|(i, d)| builder.config(i + 1, d))
        .collect::<Result<Vec<Config>>>()?;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("runs/sweep"));
    let real = run_folder::resolve(&out)?;
    check_out(&real, a.force)?;
    let data_dir = std::path::absolute(a.data.dir()?)?;
    let inputs = Inputs::load(&data_dir, &configs)?;
    let metric = crate::sweep::report::Metric::from(a.metric.unwrap_or(MetricArg::EvalAcc));
    let options = TrainOptions {
        data_dir,
        overrides,
        save_every: a.save_every,
    };
    let test_top = a.test_top.unwrap_or(1) as usize;
    let record = SweepRecord::new(&space, seed, (metric.name(), test_top), options, &configs);
    Ok((real, record, inputs))
}

/// Writes a checked sweep's plan (sweep.json and every trial's config.json) into its
/// folder, whose lock it returns held: what any executor starts from.
fn write_new(a: &SweepRunArgs, out: &Path, record: &SweepRecord) -> Result<run_folder::RunLock> {
    // Every check has passed: only now is a folder created.
    let lock = run_folder::lock_creating(out)?;
    clear_stale(out);
    check_out(out, a.force)?;
    write_plan(out, record)?;
    Ok(lock)
}

/// `--resume OUT`: the sweep's own settings, its space unchanged; runs what has not ended,
/// here or (the default for a sweep that used Slurm) on Slurm.
fn resume(a: &SweepRunArgs, dir: &Path) -> Result<()> {
    let settings = a.space.is_some()
        || a.trials.is_some()
        || a.seed.is_some()
        || a.out.is_some()
        || a.force
        || a.metric.is_some()
        || a.test_top.is_some()
        || a.data.data_dir.is_some()
        || a.backend.is_some()
        || !backend_keys(a).is_empty()
        || a.save_every.is_some()
        || a.overrides.0.pairs().next().is_some();
    if settings {
        bail!("--resume continues the sweep with its own settings; only --jobs, --threads, --quiet, --executor and the Slurm options may be given");
    }
    let real = run_folder::resolve(dir)?;
    if !real.join(SWEEP_JSON).is_file() {
        bail!(
            "--resume {}: no sweep here (no {SWEEP_JSON})",
            dir.display()
        );
    }
    let executor = match a.executor {
        Some(e) => e,
        None if real.join(crate::sweep::slurm::RECORD).exists() => Executor::Slurm,
        None => Executor::Local,
    };
    check_executor(a, executor)?;
    let _lock = run_folder::lock(&real)?;
    let record = SweepRecord::load(&real)?;
    record.check_unchanged()?;
    let configs = (1..=record.trials.len())
        .map(|i| record.config(i))
        .collect::<Result<Vec<_>>>()?;
    let inputs = Inputs::load(&record.options.data_dir, &configs)?;
    clear_stale(&real);
    record.write_trial_configs(&real)?;
    if !a.quiet {
        let states = status::all(&real, &record)?;
        eprintln!("sweep {}: {}", dir.display(), status::line(&states));
    }
    match executor {
        Executor::Local => execute(a, &real, &record, &inputs),
        Executor::Slurm => sweep_slurm::resume(&slurm_given(a), &real, &record, &inputs),
    }
}

/// Refuses an output folder that holds another sweep (without `--force`; with it, one
/// whose trials are still running), a run, or trial folders of no sweep.
fn check_out(out: &Path, force: bool) -> Result<()> {
    if out.exists() && !out.is_dir() {
        bail!("--out {}: is a file, not a folder", out.display());
    }
    if out.join(SWEEP_JSON).exists() {
        if !force {
            bail!(
                "{} already holds a sweep ({SWEEP_JSON}); pass --resume {} to continue it, --force to replace it, or --out DIR for a new folder",
                out.display(),
                out.display()
            );
        }
        let old = SweepRecord::load(out)?;
        if let Some(i) =
            (1..=old.trials.len()).find(|&i| run_folder::lock_held(&old.trial_dir(out, i)))
        {
            bail!(
                "{}: trial {i} of the sweep there is running in another process; --force replaces a sweep only when none of its trials runs",
                out.display()
            );
        }
        return check_no_arrays(out);
    }
    if let Some(f) = run_folder::RUN_FILES.iter().find(|f| out.join(f).exists()) {
        bail!(
            "--out {}: holds a run ({f}), not a sweep; choose another folder",
            out.display()
        );
    }
    let trials = std::fs::read_dir(out).ok().and_then(|entries| {
        entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with("trial-") && is_sweep_entry(n))
    });
    if let Some(t) = trials {
        bail!(
            "--out {}: holds trial folders ({t}) but no {SWEEP_JSON}; choose another folder",
            out.display()
        );
    }
    Ok(())
}

/// Refuses to replace a sweep one of whose Slurm arrays is still queued or running: its
/// tasks would run the new sweep's trials.
fn check_no_arrays(out: &Path) -> Result<()> {
    let Some(rec) = crate::sweep::slurm::Record::load(out)? else {
        return Ok(());
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    if crate::slurm::find_program("squeue", &path).is_none() {
        // Not a Slurm login node: nothing to ask.
        eprintln!(
            "note: {} used Slurm (jobs {:?}) and squeue is not found here: make sure none of its tasks still runs",
            out.display(),
            rec.job_ids()
        );
        return Ok(());
    }
    let live = crate::slurm::live_arrays(&rec.job_ids()).with_context(|| {
        format!(
            "{}: cannot tell whether the Slurm arrays of the sweep there still run",
            out.display()
        )
    })?;
    if let Some(id) = live.first() {
        bail!(
            "{}: Slurm job {id} of the sweep there still has tasks queued or running; `scancel {id}` (or wait for it) before --force replaces the sweep",
            out.display()
        );
    }
    Ok(())
}

/// Writes the plan: sweep.json, then each trial's config.json. Over an old sweep
/// (`--force`) the new plan is built beside it and takes its place in one exchange; the
/// folder's other files stay, the old sweep's go.
fn write_plan(out: &Path, record: &SweepRecord) -> Result<()> {
    if !out.join(SWEEP_JSON).exists() {
        std::fs::create_dir_all(out)
            .with_context(|| format!("{}: cannot create folder", out.display()))?;
        record.save(out)?;
        return record.write_trial_configs(out);
    }
    let new = crate::fsio::sibling(out, NEW_SWEEP);
    std::fs::create_dir_all(&new)
        .with_context(|| format!("{}: cannot create folder", new.display()))?;
    record.save(&new)?;
    record.write_trial_configs(&new)?;
    crate::fsio::exchange_dirs(&new, out)?;
    // `new` now holds the old sweep: its own entries are removed, the others move back.
    let own: Vec<String> = std::fs::read_dir(&new)
        .with_context(|| format!("{}: cannot list", new.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_sweep_entry(n))
        .collect();
    let own: Vec<&str> = own.iter().map(String::as_str).collect();
    crate::fsio::move_other_entries(&new, out, &own)?;
    std::fs::remove_dir_all(&new)
        .with_context(|| format!("{}: cannot remove the old sweep", new.display()))
}

/// Suffix of the folder a `--force` sweep's plan is built in.
const NEW_SWEEP: &str = ".new-sweep";

/// Puts back, or removes, what a `--force` killed part-way left beside `out` (under the
/// sweep's lock): the folder moved aside by a two-rename exchange (file systems without an
/// atomic one), the new plan's folder.
fn clear_stale(out: &Path) {
    let aside = crate::fsio::sibling(out, ".swap");
    if !out.exists() && aside.is_dir() {
        let _ = std::fs::rename(&aside, out);
    }
    let stale = crate::fsio::sibling(out, NEW_SWEEP);
    if stale.is_dir() {
        let _ = std::fs::remove_dir_all(&stale);
    }
}

/// Runs the trials that have not ended with the local executor, writes the report, and
/// says how the sweep ended: an error when a signal stopped it or a trial could not run.
fn execute(a: &SweepRunArgs, out: &Path, record: &SweepRecord, inputs: &Inputs) -> Result<()> {
    let states = status::all(out, record)?;
    let running: Vec<usize> = (states.iter().enumerate())
        .filter(|(_, s)| matches!(s, State::Running { .. }))
        .map(|(i, _)| i + 1)
        .collect();
    let pending: Vec<usize> = (states.iter().enumerate())
        .filter(|(_, s)| matches!(s, State::Pending { .. }))
        .map(|(i, _)| i + 1)
        .collect();
    if !running.is_empty() && !a.quiet {
        eprintln!(
            "note: {} trial(s) run in another process (their folders are locked); left to it: {:?}",
            running.len(),
            running
        );
    }
    let factory = sweep_tools::factory();
    let env = Env {
        out,
        sweep: record,
        learn: &inputs.learn,
        splits: Default::default(),
        backend: &factory,
    };
    let sizes = (pending.len(), inputs.need);
    let how = sweep_tools::split(a.jobs, a.threads, record, sizes, a.quiet)?;
    crate::trainer::install_interrupt_handler();
    let tally = local::run(&env, &pending, how)?;
    let summary = sweep_tools::write_report(out, record, &inputs.test, None)?;
    finish(out, record, &tally, &summary)
}

/// How the run ended: Ok, or the error that says what was stopped, could not run, or that
/// every trial failed.
fn finish(out: &Path, record: &SweepRecord, t: &local::Tally, summary: &str) -> Result<()> {
    let resume = format!("rprop-lab sweep --resume {}", out.display());
    if !t.stopped.is_empty() || t.not_started > 0 {
        let msg = format!(
            "interrupted: {} trial(s) stopped part-way and saved, {} not started; continue with `{resume}`{summary}",
            t.stopped.len(),
            t.not_started
        );
        let dir = out.to_path_buf();
        return Err(anyhow::Error::new(Interrupted { epoch: 0, dir }).context(msg));
    }
    if let Some((i, why)) = t.errors.first() {
        bail!(
            "{} trial(s) could not run (trial {i}: {why}); `{resume}` runs them{summary}",
            t.errors.len()
        );
    }
    // A sweep with nothing to rank has no result: say so with the exit status too.
    let states = status::all(out, record)?;
    if states.iter().all(|s| matches!(s, State::Failed(_))) {
        bail!(
            "every trial failed ({} of {}), so there is nothing to rank; their reasons are in {}",
            states.len(),
            states.len(),
            out.join("results.md").display()
        );
    }
    Ok(())
}
