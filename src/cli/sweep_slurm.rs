//! `sweep --executor slurm`: its options, the checks made before the sweep writes anything
//! (the scripts rendered, `sbatch --test-only`), the submission, what is printed after it,
//! and `--wait`. The executor itself: [`crate::sweep::slurm`].

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::sweep_tools::{self, Inputs};
use crate::slurm;
use crate::sweep::plan::SweepRecord;
use crate::sweep::slurm::{self as executor, Array, Record, Settings};
use crate::sweep::status::{self, State};
use crate::sweep::trial_name;

/// The Slurm executor's options (`--jobs` is the array's throttle, `--threads` each task's
/// CPUs).
#[derive(Args, Debug, Default)]
pub struct SlurmArgs {
    /// The partition(s) the tasks run in (sbatch --partition) [default: the cluster's].
    #[arg(long, value_name = "NAME", help_heading = "Slurm (--executor slurm)")]
    pub slurm_partition: Option<String>,
    /// The account the tasks are charged to (sbatch --account).
    #[arg(long, value_name = "NAME", help_heading = "Slurm (--executor slurm)")]
    pub slurm_account: Option<String>,
    /// Each task's time limit: MM, MM:SS, HH:MM:SS, D-HH or D-HH:MM:SS (sbatch --time). A
    /// trial that needs longer saves before it and its task is requeued to go on
    /// [default: the partition's].
    #[arg(long, value_name = "LIMIT", help_heading = "Slurm (--executor slurm)")]
    pub slurm_time: Option<String>,
    /// Each task's generic resources, e.g. gpu:1 or gpu:a100:1 (sbatch --gres).
    #[arg(long, value_name = "GRES", help_heading = "Slurm (--executor slurm)")]
    pub slurm_gres: Option<String>,
    /// Seconds before the time limit when a task saves its trial and requeues itself: more
    /// than an epoch and its save, plus 30 s [default: 300; a quarter of a time limit under
    /// 20 minutes].
    #[arg(long, value_name = "SECS", help_heading = "Slurm (--executor slurm)",
          value_parser = clap::value_parser!(u32).range(1..=65_535))]
    pub slurm_signal_lead: Option<u32>,
    /// Write OUT/sweep.sbatch (and the plan) without submitting it.
    #[arg(
        long,
        help_heading = "Slurm (--executor slurm)",
        conflicts_with = "wait"
    )]
    pub dry_run: bool,
    /// After submitting, wait until the arrays have ended, then write the report (exit 0
    /// when every trial ended).
    #[arg(long, help_heading = "Slurm (--executor slurm)")]
    pub wait: bool,
}

impl SlurmArgs {
    /// The first Slurm option given, by its flag.
    pub fn first_given(&self) -> Option<&'static str> {
        [
            (self.slurm_partition.is_some(), "--slurm-partition"),
            (self.slurm_account.is_some(), "--slurm-account"),
            (self.slurm_time.is_some(), "--slurm-time"),
            (self.slurm_gres.is_some(), "--slurm-gres"),
            (self.slurm_signal_lead.is_some(), "--slurm-signal-lead"),
            (self.dry_run, "--dry-run"),
            (self.wait, "--wait"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }
}

/// What `sweep` was given that this executor reads.
pub(super) struct Given<'a> {
    pub slurm: &'a SlurmArgs,
    pub jobs: Option<u64>,
    pub threads: Option<u64>,
    pub quiet: bool,
}

/// The settings given on the command line (each checked), `--jobs` and `--threads` with
/// them.
pub(super) fn given(a: &Given) -> Result<Settings> {
    let s = &a.slurm;
    let time_limit_s = match &s.slurm_time {
        Some(t) => Some(slurm::parse_time(t).context("--slurm-time")?),
        None => None,
    };
    // Both are at most 1024 (their parsers say so).
    let small = |v: Option<u64>| v.map(|n| n.min(u64::from(u32::MAX)) as u32);
    Ok(Settings {
        partition: s.slurm_partition.clone(),
        account: s.slurm_account.clone(),
        time_limit_s,
        gres: s.slurm_gres.clone(),
        throttle: small(a.jobs),
        cpus_per_task: small(a.threads),
        signal_lead_s: s.slurm_signal_lead,
    })
}

/// What a submission needs, all checked before the sweep writes anything: the settings,
/// the scripts, and the `sbatch` that submits them (None with `--dry-run`).
pub(super) struct Launch {
    settings: Settings,
    arrays: Vec<Array>,
    sbatch: Option<PathBuf>,
}

/// Renders the scripts of the trials `pending` and, unless `--dry-run`, finds `sbatch` and
/// has the controller check the first script (`sbatch --test-only`): a bad partition,
/// account, gres or time limit is one error line here, before anything is written.
pub(super) fn prepare(
    a: &Given,
    out: &Path,
    record: &SweepRecord,
    pending: &[usize],
    settings: Settings,
) -> Result<Launch> {
    let binary = std::env::current_exe()
        .context("cannot tell where the rprop-lab binary is (the tasks run it)")?;
    let arrays = executor::scripts(out, record, pending, &settings, &binary)?;
    let sbatch = match a.slurm.dry_run {
        true => None,
        false => Some(slurm::sbatch_on(
            &std::env::var_os("PATH").unwrap_or_default(),
        )?),
    };
    if let (Some(sbatch), Some(first)) = (&sbatch, arrays.first()) {
        slurm::test_only(sbatch, &first.text)?;
    }
    Ok(Launch {
        settings,
        arrays,
        sbatch,
    })
}

/// Writes the scripts and `slurm.json`, submits them (or, with `--dry-run`, says how), and
/// with `--wait` waits for the arrays and writes the report.
pub(super) fn launch(
    a: &Given,
    out: &Path,
    record: &SweepRecord,
    launch: Launch,
    inputs: &Inputs,
) -> Result<()> {
    executor::write(out, &launch.arrays)?;
    let mut rec = Record::load(out)?.unwrap_or_default();
    rec.settings = launch.settings;
    rec.save(out)?;
    let Some(sbatch) = &launch.sbatch else {
        for arr in &launch.arrays {
            println!(
                "wrote {} ({}); submit it with: sbatch {}",
                arr.script.display(),
                executor::trials_text(&arr.trials),
                arr.script.display()
            );
        }
        return Ok(());
    };
    let ids = executor::submit(out, &launch.arrays, &mut rec, sbatch).map_err(|e| {
        anyhow::anyhow!(
            "{e:#}; the sweep's plan stays in {}: `rprop-lab sweep --resume {}` submits what has not been",
            out.display(),
            out.display()
        )
    })?;
    for (id, arr) in ids.iter().zip(&launch.arrays) {
        println!(
            "submitted: Slurm job {id}, {} ({})",
            executor::trials_text(&arr.trials),
            arr.script.display()
        );
    }
    if !a.quiet {
        hints(out, record, &ids);
    }
    if !a.slurm.wait {
        return Ok(());
    }
    executor::wait(out, record, &ids, a.quiet)?;
    let summary = sweep_tools::write_report(out, record, &inputs.test, None)?;
    unfinished(out, record, &summary)
}

/// What to do next, after a submission.
fn hints(out: &Path, record: &SweepRecord, ids: &[u64]) {
    let total = record.trials.len();
    let o = out.display();
    let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
    let ids = ids.join(",");
    eprintln!(
        "the tasks' logs: {o}/{}/{}.log ...",
        executor::LOG_DIR,
        trial_name(1, total)
    );
    eprintln!("  rprop-lab sweep status {o}     # done, running, pending, failed");
    eprintln!("  rprop-lab sweep report {o}     # the table and charts of what has ended");
    eprintln!("  squeue -j {ids}; scancel {ids}   # Slurm's queue; cancel (the trials stay saved)");
    eprintln!(
        "  rprop-lab sweep --resume {o}   # once the arrays are gone: submit what has not ended"
    );
}

/// The end of `--wait`: Ok when every trial has ended, else the error naming those that
/// did not (cancelled, failed to start, lost with their node).
fn unfinished(out: &Path, record: &SweepRecord, summary: &str) -> Result<()> {
    let states = status::all(out, record)?;
    let left: Vec<String> = (states.iter().enumerate())
        .filter(|(_, s)| !s.ended())
        .map(|(i, _)| trial_name(i + 1, record.trials.len()))
        .collect();
    if left.is_empty() {
        return Ok(());
    }
    bail!(
        "the Slurm arrays ended with {} trial(s) not done ({}{}); their logs are in {}; `rprop-lab sweep --resume {}` submits them again{summary}",
        left.len(),
        left.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
        if left.len() > 5 { ", ..." } else { "" },
        out.join(executor::LOG_DIR).display(),
        out.display()
    )
}

/// `sweep --resume OUT` on Slurm: refused while an array of the sweep is still queued or
/// running; else the trials that have not ended (and run nowhere) are submitted, with the
/// recorded settings and those given now.
pub(super) fn resume(a: &Given, out: &Path, record: &SweepRecord, inputs: &Inputs) -> Result<()> {
    let rec = Record::load(out)?.unwrap_or_default();
    let settings = rec.settings.with(&given(a)?);
    match slurm::live_arrays(&rec.job_ids()) {
        Ok(live) if !live.is_empty() => {
            let ids: Vec<String> = live.iter().map(u64::to_string).collect();
            bail!(
                "{}: Slurm job(s) {} of this sweep still have tasks queued or running (squeue); wait for them to end, or `scancel {}`, then resume",
                out.display(),
                ids.join(", "),
                ids.join(" ")
            );
        }
        Ok(_) => {}
        Err(e) if a.slurm.dry_run => eprintln!("note: {e}: the earlier arrays are not checked"),
        Err(e) => return Err(e.context("checking the sweep's earlier Slurm arrays")),
    }
    let states = status::all(out, record)?;
    let pending: Vec<usize> = (states.iter().enumerate())
        .filter(|(_, s)| matches!(s, State::Pending { .. }))
        .map(|(i, _)| i + 1)
        .collect();
    let running = states
        .iter()
        .filter(|s| matches!(s, State::Running { .. }))
        .count();
    if running > 0 && !a.quiet {
        eprintln!(
            "note: {running} trial(s) run already (see `rprop-lab sweep status {}`): not submitted",
            out.display()
        );
    }
    if pending.is_empty() {
        println!("nothing to submit: no trial is left to run");
        sweep_tools::write_report(out, record, &inputs.test, None)?;
        return Ok(());
    }
    let launch_now = prepare(a, out, record, &pending, settings)?;
    launch(a, out, record, launch_now, inputs)
}
