//! Slurm's commands as the executor runs them: `sbatch --parsable` (submission),
//! `sbatch --test-only` (the options checked before anything is written), `squeue` (which of
//! a sweep's arrays are still queued or running), and what a task knows of its allocation.
//! Every failure is one line with the command's own message.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{anyhow, bail, Context, Result};

/// Submits the batch script at `script` with the `sbatch` found on PATH; returns the job id.
pub fn submit(script: &Path) -> Result<u64> {
    submit_on_path(script, &std::env::var_os("PATH").unwrap_or_default())
}

/// [`submit`] with the `sbatch` found in `path` (a PATH value).
pub fn submit_on_path(script: &Path, path: &OsStr) -> Result<u64> {
    submit_with(&sbatch_on(path)?, script)
}

/// The `sbatch` of `path` (a PATH value), or the one error line that says it is missing.
pub fn sbatch_on(path: &OsStr) -> Result<PathBuf> {
    find_program("sbatch", path).ok_or_else(|| {
        anyhow!(
            "sbatch not found on PATH: {} (submit from a Slurm login node, or write the script with --dry-run and submit it there)",
            crate::limits::cut(&path.to_string_lossy())
        )
    })
}

/// Submits `script` with `sbatch --parsable` run from `sbatch`; a failure is one line with
/// sbatch's own message.
pub fn submit_with(sbatch: &Path, script: &Path) -> Result<u64> {
    submit_args(sbatch, script, &[])
}

/// [`submit_with`], with `extra` options before the script (they override its `#SBATCH`
/// lines), e.g. `--dependency=afterany:ID`.
pub fn submit_args(sbatch: &Path, script: &Path, extra: &[String]) -> Result<u64> {
    let out = Command::new(sbatch)
        .arg("--parsable")
        .args(extra)
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", sbatch.display()))?;
    if !out.status.success() {
        bail!(
            "sbatch failed ({}) on {}: {}",
            out.status,
            crate::limits::shorten(script),
            said(&out)
        );
    }
    parse_job_id(&String::from_utf8_lossy(&out.stdout))
}

/// Asks the controller, with `sbatch --test-only`, whether it would take the batch script
/// `text` (its partition, account, gres, time limit and array), submitting nothing: so a
/// bad option is refused before the sweep writes anything.
pub fn test_only(sbatch: &Path, text: &str) -> Result<()> {
    let mut child = Command::new(sbatch)
        .arg("--test-only")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", sbatch.display()))?;
    // sbatch reads the script from its standard input when no file is named.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("cannot run {}", sbatch.display()))?;
    if !out.status.success() {
        bail!(
            "sbatch refused the sweep's batch script (sbatch --test-only, {}): {}",
            out.status,
            said(&out)
        );
    }
    Ok(())
}

/// Which of the job arrays `ids` still have a task queued, running or being requeued, by
/// `squeue` (found on PATH). A finished array is gone from squeue at once; an id squeue no
/// longer knows is finished too.
pub fn live_arrays(ids: &[u64]) -> Result<Vec<u64>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let squeue = find_program("squeue", &path).ok_or_else(|| {
        anyhow!(
            "squeue not found on PATH: {} (run this on a Slurm login node)",
            crate::limits::cut(&path.to_string_lossy())
        )
    })?;
    // Every job of this user, by its array's id (%F: a job that is no array gives its own);
    // asking by id fails as a whole when one id has been forgotten.
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let out = Command::new(&squeue)
        .args(["-h", "-u", &uid.to_string(), "-o", "%F"])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", squeue.display()))?;
    if !out.status.success() {
        bail!("squeue failed ({}): {}", out.status, said(&out));
    }
    let queued: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    Ok(ids.iter().copied().filter(|i| queued.contains(i)).collect())
}

/// What a command said on failure: its stderr (else its stdout) on one line.
fn said(out: &Output) -> String {
    let said = one_line(&String::from_utf8_lossy(&out.stderr));
    let said = if said.is_empty() {
        one_line(&String::from_utf8_lossy(&out.stdout))
    } else {
        said
    };
    if said.is_empty() {
        "it printed nothing".into()
    } else {
        said
    }
}

/// The job id `sbatch --parsable` printed: `ID` or `ID;CLUSTER`.
pub fn parse_job_id(stdout: &str) -> Result<u64> {
    let first = stdout.lines().next().unwrap_or("").trim();
    let id = first.split(';').next().unwrap_or("");
    id.parse().map_err(|_| {
        anyhow!(
            "sbatch printed no job id: {:?}",
            crate::limits::cut(stdout.trim())
        )
    })
}

/// Lines of `text`, trimmed and joined with "; " (sbatch's messages run over several lines).
fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let joined = lines.join("; ");
    match joined.char_indices().nth(1000) {
        Some((i, _)) => format!("{}...", &joined[..i]),
        None => joined,
    }
}

/// The first executable file `name` in the folders of `path` (a PATH value).
pub fn find_program(name: &str, path: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The CPUs Slurm gave this task on its node, from its environment: `SLURM_CPUS_PER_TASK`
/// (set with `--cpus-per-task`), else `SLURM_JOB_CPUS_PER_NODE` (`2`, or `2(x3)` over
/// nodes); None outside a Slurm job. A trial's thread count: without a cgroup or CPU
/// binding the task sees every core of the node, not its share.
pub fn allocated_cpus() -> Option<usize> {
    let read = |name: &str| {
        let v = std::env::var(name).ok()?;
        let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<usize>().ok().filter(|&n| n > 0)
    };
    read("SLURM_CPUS_PER_TASK").or_else(|| read("SLURM_JOB_CPUS_PER_NODE"))
}

/// This machine's host name, as `hostname` prints it (what a task's log names its node by).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
