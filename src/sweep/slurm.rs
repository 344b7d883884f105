//! The Slurm executor: the trials to run as job arrays ([`crate::slurm`] renders their
//! batch script: one task per trial, `sweep run-trial OUT --index N`), written to
//! `OUT/sweep.sbatch`, submitted with `sbatch`, and recorded in `OUT/slurm.json` (the
//! settings, so a resume submits the same way, and each array's job id); and the wait for
//! the arrays to end. What the trials did is read from their folders ([`super::status`]),
//! never from Slurm, which forgets finished jobs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};

use super::plan::SweepRecord;
use super::status;
use crate::slurm::{self, SbatchOptions, TrialArray};

/// The record of a sweep's Slurm settings and submissions, in OUT.
pub const RECORD: &str = "slurm.json";
/// The tasks' logs (`trial-NNN.log`, appended across restarts), in OUT.
pub const LOG_DIR: &str = super::SLURM_LOG_DIR;
/// The batch script of the array of trials 1..=999 (or of every trial up to 1000).
pub const SCRIPT: &str = "sweep.sbatch";

/// What reaches sbatch, as given on the command line and recorded for the resumes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `--time`, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit_s: Option<u64>,
    /// `--gres` (`gpu:1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gres: Option<String>,
    /// The `%P` of `--array`: trials at once (`--jobs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<u32>,
    /// `--cpus-per-task` (`--threads`): each trial's threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_per_task: Option<u32>,
    /// Seconds before the time limit when a task saves and requeues itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_lead_s: Option<u32>,
}

impl Settings {
    /// These settings with each one `given` sets replaced.
    pub fn with(&self, given: &Settings) -> Settings {
        Settings {
            partition: given.partition.clone().or(self.partition.clone()),
            account: given.account.clone().or(self.account.clone()),
            time_limit_s: given.time_limit_s.or(self.time_limit_s),
            gres: given.gres.clone().or(self.gres.clone()),
            throttle: given.throttle.or(self.throttle),
            cpus_per_task: given.cpus_per_task.or(self.cpus_per_task),
            signal_lead_s: given.signal_lead_s.or(self.signal_lead_s),
        }
    }

    /// The sbatch options of the sweep in `out`. The signal lead: as given, else 5 minutes,
    /// or a quarter of a time limit under 20 minutes.
    pub fn options(&self, out: &Path) -> SbatchOptions {
        let lead = self
            .signal_lead_s
            .unwrap_or_else(|| match self.time_limit_s {
                Some(t) if t < 1200 => (t.div_ceil(60) * 60 / 4).max(1) as u32,
                _ => 300,
            });
        SbatchOptions {
            job_name: job_name(out),
            partition: self.partition.clone(),
            account: self.account.clone(),
            time_limit_s: self.time_limit_s,
            gpu_gres: self.gres.clone(),
            throttle: self.throttle,
            cpus_per_task: self.cpus_per_task,
            signal_lead_s: lead,
            log_dir: out.join(LOG_DIR),
        }
    }
}

/// `rprop-lab:NAME`, NAME the sweep folder's name with anything but letters, digits, `.`,
/// `_` and `-` as `_` (sbatch's own quoting of a job name is not worth the risk).
fn job_name(out: &Path) -> String {
    let name: String = (out
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default())
    .chars()
    .take(60)
    .map(|c| match c.is_ascii_alphanumeric() || "._-".contains(c) {
        true => c,
        false => '_',
    })
    .collect();
    format!("rprop-lab:{name}")
}

/// One array submitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub job_id: u64,
    /// Its trials, as ranges (`1-6`, `2,5`).
    pub trials: String,
    /// Its script, in OUT.
    pub script: String,
    pub submitted_unix: f64,
}

/// `OUT/slurm.json`: the settings of the latest submission, and every submission.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub settings: Settings,
    pub submissions: Vec<Submission>,
}

impl Record {
    /// The record of the sweep in `out`; None when it never used Slurm.
    pub fn load(out: &Path) -> Result<Option<Record>> {
        let path = out.join(RECORD);
        if !path.exists() {
            return Ok(None);
        }
        let text = crate::fsio::read_text(&path, "Slurm record", 64 << 20)?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| anyhow!("{}: not a Slurm record: {e}", path.display()))
    }

    /// Writes `OUT/slurm.json` atomically.
    pub fn save(&self, out: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        crate::fsio::write_atomic(&out.join(RECORD), text.as_bytes())
    }

    /// Every array's job id, in the order submitted.
    pub fn job_ids(&self) -> Vec<u64> {
        self.submissions.iter().map(|s| s.job_id).collect()
    }
}

/// One array to submit: its script (a path in OUT) and text, and its trials.
#[derive(Clone, Debug)]
pub struct Array {
    pub script: PathBuf,
    pub text: String,
    pub trials: Vec<usize>,
}

/// The batch scripts of the trials `pending` of the sweep in `out`, run by the binary
/// `binary` (absolute, on every node), rendered and checked; nothing is written.
pub fn scripts(
    out: &Path,
    sweep: &SweepRecord,
    pending: &[usize],
    settings: &Settings,
    binary: &Path,
) -> Result<Vec<Array>> {
    let opts = settings.options(out);
    let total = sweep.trials.len();
    let digits = super::trial_name(total, total).len() - "trial-".len();
    slurm::split_arrays(pending, total)
        .into_iter()
        .map(|(offset, trials)| {
            let array = TrialArray {
                rprop_lab: binary,
                out,
                indices: &trials,
                digits,
                offset,
            };
            let text = slurm::render(&opts, &array)?;
            Ok(Array {
                script: out.join(script_name(offset)),
                text,
                trials,
            })
        })
        .collect()
}

/// `sweep.sbatch` for trials 1..=999 (or a sweep's every trial up to 1000), `sweep-K.sbatch`
/// for the array of trials K000..=K999.
fn script_name(offset: usize) -> String {
    match offset / 1000 {
        0 => SCRIPT.to_string(),
        k => format!("sweep-{k}.sbatch"),
    }
}

/// Whether `name` is one of the batch scripts a sweep writes.
pub fn is_script(name: &str) -> bool {
    name == SCRIPT
        || name
            .strip_prefix("sweep-")
            .and_then(|s| s.strip_suffix(".sbatch"))
            .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
}

/// Writes the scripts (atomically) and the log folder, and removes the scripts of an
/// earlier submission that this one has no array for.
pub fn write(out: &Path, arrays: &[Array]) -> Result<()> {
    let log_dir = out.join(LOG_DIR);
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("{}: cannot create folder", log_dir.display()))?;
    let names: Vec<String> = std::fs::read_dir(out)
        .with_context(|| format!("{}: cannot list", out.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_script(n))
        .collect();
    for n in names {
        if !arrays.iter().any(|a| a.script.ends_with(&n)) {
            let _ = std::fs::remove_file(out.join(n));
        }
    }
    for a in arrays {
        crate::fsio::write_atomic(&a.script, a.text.as_bytes())?;
    }
    Ok(())
}

/// Submits `arrays` in order with `sbatch`, each after the one before when a throttle is
/// set (`--dependency=afterany`), so that it holds across them; records each job id in
/// `record` (saved in OUT) as sbatch gives it. Returns the job ids.
pub fn submit(
    out: &Path,
    arrays: &[Array],
    record: &mut Record,
    sbatch: &Path,
) -> Result<Vec<u64>> {
    let mut ids: Vec<u64> = Vec::new();
    for (i, a) in arrays.iter().enumerate() {
        let extra: Vec<String> = match ids.last() {
            Some(prev) if record.settings.throttle.is_some() => {
                vec![format!("--dependency=afterany:{prev}")]
            }
            _ => Vec::new(),
        };
        let id = slurm::submit_args(sbatch, &a.script, &extra).map_err(|e| {
            let done = match ids.is_empty() {
                true => String::new(),
                false => format!(
                    " (job(s) {ids:?} were submitted: arrays 1..={i} of {})",
                    arrays.len()
                ),
            };
            e.context(format!("submitting {}{done}", a.script.display()))
        })?;
        ids.push(id);
        record.submissions.push(Submission {
            job_id: id,
            trials: ranges(&a.trials),
            script: a
                .script
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            submitted_unix: super::now_unix(),
        });
        record.save(out)?;
    }
    Ok(ids)
}

/// `trial 7` or `trials 1-6`, `trials 2,5,7-9`.
pub fn trials_text(trials: &[usize]) -> String {
    match trials {
        [one] => format!("trial {one}"),
        _ => format!("trials {}", ranges(trials)),
    }
}

/// Trial numbers as ranges: `1-6`, `2,5,7-9`.
pub fn ranges(trials: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < trials.len() {
        let mut j = i;
        while j + 1 < trials.len() && trials[j + 1] == trials[j] + 1 {
            j += 1;
        }
        parts.push(match j > i {
            true => format!("{}-{}", trials[i], trials[j]),
            false => trials[i].to_string(),
        });
        i = j + 1;
    }
    parts.join(",")
}

/// How often the wait asks squeue: every 2 s for its first minute, then every 10 s, and
/// every 30 s after ten minutes (a cluster's controller serves every user's squeue).
fn poll_interval(waited: Duration) -> Duration {
    match waited.as_secs() {
        0..60 => Duration::from_secs(2),
        60..600 => Duration::from_secs(10),
        _ => Duration::from_secs(30),
    }
}

/// Waits until none of the arrays `ids` has a task queued or running (squeue), printing the
/// trials' states as they change (unless `quiet`). A signal (Ctrl-C) ends the process, and
/// only the wait: the arrays run on.
pub fn wait(out: &Path, sweep: &SweepRecord, ids: &[u64], quiet: bool) -> Result<()> {
    let t0 = Instant::now();
    let mut shown = String::new();
    let mut failures = 0;
    loop {
        let live = match slurm::live_arrays(ids) {
            Ok(v) => {
                failures = 0;
                v
            }
            // The controller may be briefly away (a restart): not the end of the arrays.
            Err(e) if failures < 10 => {
                failures += 1;
                if !quiet {
                    eprintln!("note: {e}; trying again");
                }
                ids.to_vec()
            }
            Err(e) => return Err(e.context("waiting for the Slurm arrays")),
        };
        if !quiet {
            let line = status::line(&status::all(out, sweep)?);
            if line != shown {
                eprintln!("[{:>5.0} s] {line}", t0.elapsed().as_secs_f64());
                shown = line;
            }
        }
        if live.is_empty() {
            return Ok(());
        }
        std::thread::sleep(poll_interval(t0.elapsed()));
    }
}
