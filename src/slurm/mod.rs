//! A sweep on a Slurm cluster: the batch script of a job array with one task per trial, and
//! its submission with `sbatch`.
//!
//! Task N runs `"$RPROP_LAB" sweep run-trial "$OUT" --index N` (N plus the array's offset,
//! see [`split_arrays`]), which starts trial N, resumes it exactly from its saved state, or
//! returns at once when it is finished. The tasks are requeueable. How the script meets Slurm's signals (each was seen on the real daemons):
//! - Near the time limit Slurm sends USR1 to the batch shell alone (`--signal=B:USR1@LEAD`,
//!   [`SbatchOptions::signal_lead_s`] ahead, give or take the controller's 30 s check). The
//!   script passes it on to the trial as TERM, the trial saves at its epoch end and exits
//!   with [`STOPPED_EXIT`], and the script requeues its own task
//!   (`scontrol requeue ARRAYID_TASKID`: the task's `SLURM_JOB_ID` may be the whole array's
//!   id, and requeueing that id requeues every task of the array).
//! - A requeue, preemption or `scancel` sends TERM to every process of the job, the trial
//!   included: the script passes nothing on (a second TERM makes the trial quit without
//!   saving its epoch) and requeues nothing (Slurm requeues, or the user cancelled).
//! - A trial that fails (any other non-zero exit) is not requeued.
//!
//! Each task's output is appended to `LOG_DIR/trial-NNN.log` across restarts
//! ([`last_run`] reads it back). Running `sbatch`, `squeue`: [`cmd`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

mod cmd;
pub use cmd::*;

/// Exit status of `run-trial` (as of `train`) when a signal stopped the trial at an epoch end
/// with everything saved: the script requeues the task only then.
pub const STOPPED_EXIT: i32 = crate::signals::EXIT;

/// Slurm refuses `--signal` lead times above this (seconds).
const MAX_SIGNAL_LEAD_S: u32 = 65_535;

/// Longest text value of an option (a job name, partition...).
const MAX_VALUE_CHARS: usize = 200;

/// The largest array index Slurm takes by default (`MaxArraySize` 1001): a sweep with more
/// trials is split into arrays of at most 1000 ([`split_arrays`]).
pub const MAX_ARRAY_INDEX: usize = 1000;

/// What reaches sbatch besides the array itself.
#[derive(Clone, Debug, PartialEq)]
pub struct SbatchOptions {
    /// `--job-name`.
    pub job_name: String,
    /// `--partition` (one name, or several separated by commas).
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--time`, in seconds (Slurm rounds it up to whole minutes); see [`parse_time`].
    pub time_limit_s: Option<u64>,
    /// `--gres` for the trial's GPU, as Slurm spells it: `gpu:1`, `gpu:a100:1`.
    pub gpu_gres: Option<String>,
    /// The `%P` of `--array`: at most this many tasks run at once.
    pub throttle: Option<u32>,
    /// `--cpus-per-task`.
    pub cpus_per_task: Option<u32>,
    /// Seconds before the time limit when the task is told to save and requeue itself: more
    /// than one epoch and its save, plus 30 s (the controller checks time limits every 30 s).
    pub signal_lead_s: u32,
    /// Absolute folder of the tasks' logs (`trial-NNN.log`); it must exist before a task
    /// starts (Slurm fails a task whose log it cannot open): [`write_script`] creates it.
    pub log_dir: PathBuf,
}

impl SbatchOptions {
    /// The defaults: job name `rprop-lab-sweep`, a 5-minute signal lead, logs in `log_dir`.
    pub fn new(log_dir: PathBuf) -> Self {
        SbatchOptions {
            job_name: "rprop-lab-sweep".into(),
            partition: None,
            account: None,
            time_limit_s: None,
            gpu_gres: None,
            throttle: None,
            cpus_per_task: None,
            signal_lead_s: 300,
            log_dir,
        }
    }
}

/// The trials a job array runs, and what each task runs.
#[derive(Clone, Copy, Debug)]
pub struct TrialArray<'a> {
    /// Absolute path of the rprop-lab binary (on every node).
    pub rprop_lab: &'a Path,
    /// Absolute sweep folder, on a filesystem every node sees.
    pub out: &'a Path,
    /// The trial numbers to run (1-based, as in `trial-NNN`), e.g. only the unfinished ones.
    pub indices: &'a [usize],
    /// Digits of a trial's number in its folder name (3, more past 999 trials): the logs are
    /// named the same way.
    pub digits: usize,
    /// What the array's task ids add up to the trial numbers: task N runs trial
    /// `offset + N`. 0, or a multiple of 1000 (see [`split_arrays`]).
    pub offset: usize,
}

/// The trials `trials` (1-based) of a sweep of `total` as job arrays: (offset, trials).
/// Up to [`MAX_ARRAY_INDEX`] trials, one array whose task ids are the trial numbers; past
/// it, one array per thousand (trials 1000..=1999 are tasks 0..=999 of offset 1000, and so
/// on), so that no task id passes Slurm's default limit. Arrays without a trial are left out.
pub fn split_arrays(trials: &[usize], total: usize) -> Vec<(usize, Vec<usize>)> {
    let mut sorted = trials.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if total <= MAX_ARRAY_INDEX {
        return vec![(0, sorted)];
    }
    let mut arrays: Vec<(usize, Vec<usize>)> = Vec::new();
    for t in sorted {
        let offset = t / 1000 * 1000;
        match arrays.last_mut() {
            Some((o, v)) if *o == offset => v.push(t),
            _ => arrays.push((offset, vec![t])),
        }
    }
    arrays
}

/// The batch script of `array` under `opts`, or one error line naming the bad option.
pub fn render(opts: &SbatchOptions, array: &TrialArray) -> Result<String> {
    let mut s = String::from("#!/bin/bash\n");
    for (option, value) in sbatch_lines(opts, array)? {
        match value {
            Some(v) => writeln!(s, "#SBATCH --{option}={v}"),
            None => writeln!(s, "#SBATCH --{option}"),
        }
        .expect("writing to a String");
    }
    let rprop_lab = body_path("rprop-lab binary", array.rprop_lab)?;
    check_program_name(array.rprop_lab)?;
    let out = body_path("sweep folder", array.out)?;
    let stopped = STOPPED_EXIT.to_string();
    let offset = array.offset.to_string();
    s.push_str(&fill(
        TASK_BODY,
        &[
            ("@RPROP_LAB@", &rprop_lab),
            ("@OUT@", &out),
            ("@STOPPED@", &stopped),
            ("@OFFSET@", &offset),
        ],
    ));
    Ok(s)
}

/// `template` with each marker replaced by its value, in one pass (a value that holds a
/// marker stays as it is).
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find('@') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        match values.iter().find(|(marker, _)| rest.starts_with(marker)) {
            Some((marker, value)) => {
                out.push_str(value);
                rest = &rest[marker.len()..];
            }
            None => {
                out.push('@');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The `#SBATCH` options of the script, in order, checked and quoted.
fn sbatch_lines(
    opts: &SbatchOptions,
    array: &TrialArray,
) -> Result<Vec<(&'static str, Option<String>)>> {
    let mut lines = vec![
        ("job-name", Some(quoted("job name", &opts.job_name, true)?)),
        ("array", Some(array_spec(&task_ids(array)?, opts.throttle)?)),
        ("output", Some(log_pattern(&opts.log_dir, array)?)),
        ("open-mode", Some("append".into())),
        ("requeue", None),
        ("signal", Some(format!("B:USR1@{}", signal_lead(opts)?))),
    ];
    let named = [
        ("partition", "partition", &opts.partition),
        ("account", "account", &opts.account),
        ("gres", "GPU gres", &opts.gpu_gres),
    ];
    for (option, what, value) in named {
        if let Some(v) = value {
            lines.push((option, Some(quoted(what, v, false)?)));
        }
    }
    if let Some(t) = opts.time_limit_s {
        lines.push(("time", Some(format_time(t))));
    }
    if let Some(n) = opts.cpus_per_task {
        if n == 0 {
            bail!("cpus per task: 0 (must be at least 1)");
        }
        lines.push(("cpus-per-task", Some(n.to_string())));
    }
    Ok(lines)
}

/// The signal lead, checked against Slurm's bound and the time limit.
fn signal_lead(opts: &SbatchOptions) -> Result<u32> {
    let lead = opts.signal_lead_s;
    if lead == 0 || lead > MAX_SIGNAL_LEAD_S {
        bail!("signal lead: {lead} s (must be 1 to {MAX_SIGNAL_LEAD_S} s)");
    }
    // Slurm rounds the limit up to whole minutes.
    if let Some(limit) = opts.time_limit_s {
        let minutes = limit.div_ceil(60);
        if u64::from(lead) >= minutes * 60 {
            bail!(
                "signal lead: {lead} s is not shorter than the time limit ({}): the task would be told to stop as it starts",
                format_time(limit)
            );
        }
    }
    Ok(lead)
}

/// The task ids of `array`'s trials: each trial number less the offset.
fn task_ids(array: &TrialArray) -> Result<Vec<usize>> {
    if !array.offset.is_multiple_of(1000) {
        bail!(
            "array: offset {} (must be a multiple of 1000)",
            array.offset
        );
    }
    (array.indices.iter())
        .map(|&t| {
            if t == 0 {
                bail!("array: trial index 0 (trials are numbered from 1)");
            }
            t.checked_sub(array.offset)
                .filter(|&id| id <= MAX_ARRAY_INDEX)
                .ok_or_else(|| {
                    anyhow!(
                        "array: trial {t} is not within 0..={MAX_ARRAY_INDEX} of offset {}",
                        array.offset
                    )
                })
        })
        .collect()
}

/// `--array`'s value: the task ids as runs (`1-6`, `2,5,6`, `1-3,7`) and `%P`.
fn array_spec(indices: &[usize], throttle: Option<u32>) -> Result<String> {
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.is_empty() {
        bail!("array: no trial to run");
    }
    let mut runs: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        // A run of three or more is a range; shorter ones stay as they are.
        if j >= i + 2 {
            runs.push(format!("{}-{}", sorted[i], sorted[j]));
        } else {
            runs.extend(sorted[i..=j].iter().map(usize::to_string));
        }
        i = j + 1;
    }
    let mut spec = runs.join(",");
    match throttle {
        Some(0) => bail!("throttle: 0 (at least one task must run at a time)"),
        Some(p) => write!(spec, "%{p}").expect("writing to a String"),
        None => {}
    }
    Ok(spec)
}

/// `--output`'s value: `LOG_DIR/trial-%Na.log` (past an offset, its thousands then `%3a`:
/// `trial-01%3a.log` for trials 1000..=1999 of a sweep of 5 digits), quoted, `%` of the
/// folder doubled (Slurm expands `%` patterns in it).
fn log_pattern(log_dir: &Path, array: &TrialArray) -> Result<String> {
    let dir = utf8_absolute("log folder", log_dir)?;
    // A backslash anywhere turns Slurm's pattern expansion off (and is dropped).
    if dir.contains('\\') {
        bail!(
            "log folder: {}: a backslash in it turns off Slurm's file name patterns",
            crate::limits::shorten(log_dir)
        );
    }
    let dir = dir.trim_end_matches('/').replace('%', "%%");
    let digits = array.digits.clamp(1, 9);
    let name = match array.offset / 1000 {
        0 => format!("trial-%{digits}a.log"),
        k => format!("trial-{k:0w$}%3a.log", w = digits.saturating_sub(3)),
    };
    quoted("log folder", &format!("{dir}/{name}"), true)
}

/// A value for an `#SBATCH` line, in double quotes: sbatch reads these lines with its own
/// quoting (`"` and `'` quote, `\` escapes, an unquoted `#` starts a comment). Control
/// characters (a newline ends the line), backslashes and, where `spaces` is false, white
/// space are refused, naming `what`.
fn quoted(what: &str, value: &str, spaces: bool) -> Result<String> {
    let shown = crate::limits::cut(value);
    if value.is_empty() {
        bail!("{what}: empty");
    }
    if value.chars().count() > MAX_VALUE_CHARS {
        bail!("{what}: {shown:?} is over {MAX_VALUE_CHARS} characters");
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        bail!("{what}: {shown:?} holds the control character {c:?}, which would break the batch script");
    }
    if value.contains('\\') {
        bail!("{what}: {shown:?} holds a backslash, which sbatch reads as an escape");
    }
    if !spaces && value.chars().any(char::is_whitespace) {
        bail!("{what}: {shown:?} holds white space");
    }
    Ok(format!("\"{}\"", value.replace('"', "\\\"")))
}

/// A path for the script's body, in single quotes (bash takes everything in them as it is).
fn body_path(what: &str, path: &Path) -> Result<String> {
    let p = utf8_absolute(what, path)?;
    if let Some(c) = p.chars().find(|c| c.is_control()) {
        bail!(
            "{what}: {:?} holds the control character {c:?}",
            crate::limits::cut(p)
        );
    }
    Ok(format!("'{}'", p.replace('\'', "'\\''")))
}

/// Slurm's proctrack/linuxproc finds a job's processes in /proc/PID/stat, where it misreads
/// a process name holding a space or a parenthesis: such a trial would never get Slurm's
/// signals (seen on the real daemons), nor be killed with its job.
fn check_program_name(path: &Path) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '(' || c == ')') {
        bail!(
            "rprop-lab binary: {:?}: a file name with white space or parentheses hides the trial from Slurm's process tracking",
            crate::limits::cut(&name)
        );
    }
    Ok(())
}

fn utf8_absolute<'p>(what: &str, path: &'p Path) -> Result<&'p str> {
    let p = path
        .to_str()
        .ok_or_else(|| anyhow!("{what}: {} is not UTF-8", crate::limits::shorten(path)))?;
    if !path.is_absolute() {
        bail!(
            "{what}: {} is not an absolute path (the tasks run elsewhere)",
            crate::limits::shorten(path)
        );
    }
    Ok(p)
}

/// What every task runs, after the `#SBATCH` lines (see the module doc).
const TASK_BODY: &str = r#"
# Written by rprop-lab: one array task per sweep trial (task N runs trial N); submit it with
# sbatch. A requeued task resumes its trial from its last save.
set -u
RPROP_LAB=@RPROP_LAB@
OUT=@OUT@
# run-trial's exit status when a signal stopped the trial at an epoch end, everything saved.
STOPPED=@STOPPED@
: "${SLURM_ARRAY_TASK_ID:?run this script with sbatch: it is a job array}"
task="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
# Task N runs trial N plus the array's offset (past 1000 trials, one array per thousand).
trial=$((SLURM_ARRAY_TASK_ID + @OFFSET@))
say() { echo "[$(date '+%F %T')] task $task: $*"; }
say "trial $trial on $(hostname), restart ${SLURM_RESTART_COUNT:-0}"
child='' near_limit=0 slurm_term=0 passed=0
# Passes TERM on to the trial once, and not when Slurm's own TERM reached it already: a
# second signal makes it quit without saving its epoch.
pass_term() {
  [ "$passed" = 0 ] && [ "$slurm_term" = 0 ] && [ -n "$child" ] || return 0
  passed=1
  kill -TERM "$child" 2>/dev/null
}
# USR1 comes to this shell alone, the signal lead before the time limit: the trial is told
# to stop (it saves at its epoch end), then the task is requeued (below).
trap 'near_limit=1; say "time limit near: stopping the trial"; pass_term' USR1
# A requeue, preemption or scancel sends TERM to every process of the job, the trial
# included: nothing to pass on.
trap 'slurm_term=1; say "TERM from Slurm (requeue, preemption, cancel or time limit)"' TERM
"$RPROP_LAB" sweep run-trial "$OUT" --index "$trial" &
child=$!
# A USR1 that came before the trial started.
[ "$near_limit" = 0 ] || pass_term
# A trapped signal ends `wait` early (status over 128) while the trial may still run.
while :; do
  wait "$child"
  status=$?
  [ "$status" -gt 128 ] || break
  kill -0 "$child" 2>/dev/null && continue
  # The trial ended meanwhile: wait once more for its own status (127: already given).
  wait "$child"
  again=$?
  [ "$again" = 127 ] || status=$again
  break
done
if [ "$status" = "$STOPPED" ] && [ "$near_limit" = 1 ] && [ "$slurm_term" = 0 ]; then
  say "trial saved; requeueing the task"
  scontrol requeue "$task" && exit "$status"
  say "scontrol requeue failed: the trial stays saved; run it again with sweep --resume"
fi
say "trial exit status $status"
exit "$status"
"#;

/// A task's latest run, as its log tells it (see [`last_run`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRun {
    /// The node it ran on (`hostname` there).
    pub host: String,
    /// Slurm's restart count of that run (0 on the first).
    pub restart: u32,
    /// Whether the script saw its trial end (an exit status, or a requeue after a save); a
    /// task killed by Slurm, or whose node failed, never says so.
    pub ended: bool,
}

/// The latest run a task's log (`trial-NNN.log`, appended across restarts) records: the
/// script's line `[DATE] task J_T: trial N on HOST, restart R`, and whether one of its end
/// lines follows it.
pub fn last_run(log: &str) -> Option<TaskRun> {
    let mut run: Option<TaskRun> = None;
    for line in log.lines() {
        let Some((_, said)) = line
            .split_once("] task ")
            .and_then(|(_, rest)| rest.split_once(": "))
        else {
            continue;
        };
        if said.starts_with("trial exit status ") || said.starts_with("trial saved; requeueing") {
            if let Some(r) = &mut run {
                r.ended = true;
            }
            continue;
        }
        let start = said
            .strip_prefix("trial ")
            .and_then(|s| s.split_once(" on "))
            .and_then(|(_, s)| s.rsplit_once(", restart "));
        if let Some((host, restart)) = start {
            run = Some(TaskRun {
                host: host.to_string(),
                restart: restart.trim().parse().unwrap_or(0),
                ended: false,
            });
        }
    }
    run
}

/// Writes the batch script of `array` to `path` (atomically) and creates the log folder.
pub fn write_script(opts: &SbatchOptions, array: &TrialArray, path: &Path) -> Result<()> {
    let script = render(opts, array)?;
    std::fs::create_dir_all(&opts.log_dir).with_context(|| {
        format!(
            "log folder {}: cannot create",
            crate::limits::shorten(&opts.log_dir)
        )
    })?;
    crate::fsio::write_atomic(path, script.as_bytes())
}

/// A time limit as `--time` reads it: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM` or
/// `D-HH:MM:SS`; in seconds. Zero and `UNLIMITED` are refused (leave the limit out instead).
pub fn parse_time(text: &str) -> Result<u64> {
    let bad = || {
        anyhow!(
            "time limit: {:?} is not MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS",
            crate::limits::cut(text)
        )
    };
    let num = |s: &str| -> Result<u64> {
        if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (days, rest) = match text.split_once('-') {
        Some((d, r)) => (Some(num(d)?), r),
        None => (None, text),
    };
    let parts = rest.split(':').map(num).collect::<Result<Vec<u64>>>()?;
    let secs = match (days, parts.as_slice()) {
        (None, [m]) => m * 60,
        (None, [m, s]) => m * 60 + s,
        (None, [h, m, s]) => h * 3600 + m * 60 + s,
        (Some(d), [h]) => d * 86_400 + h * 3600,
        (Some(d), [h, m]) => d * 86_400 + h * 3600 + m * 60,
        (Some(d), [h, m, s]) => d * 86_400 + h * 3600 + m * 60 + s,
        _ => return Err(bad()),
    };
    if secs == 0 {
        bail!(
            "time limit: {:?} is zero (leave the time limit out for the partition's)",
            crate::limits::cut(text)
        );
    }
    Ok(secs)
}

/// `--time`'s value for `secs`: `H:MM:SS`, or `D-HH:MM:SS` from a day on.
pub fn format_time(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match d {
        0 => format!("{h}:{m:02}:{s:02}"),
        _ => format!("{d}-{h:02}:{m:02}:{s:02}"),
    }
}
