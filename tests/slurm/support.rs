//! A stand-in for `rprop-lab sweep run-trial OUT --index N`, and reading what it left.

use std::path::{Path, PathBuf};

use rprop_lab::slurm::{SbatchOptions, TrialArray};

/// Counts to the number in `OUT/steps-N`, a tenth of a second a step, saving the count in
/// `OUT/trial-N/count` after each step and resuming from it. TERM or INT stop it at a step
/// end (exit 130, as `run-trial`); `OUT/fail-N` holding K makes it fail at step K (exit 3).
/// Each start, signal and end is a line of `OUT/trial-N/starts`.
const STANDIN: &str = r#"#!/bin/bash
set -u
[ "$1 $2 $4" = "sweep run-trial --index" ] || { echo "stand-in: unexpected arguments: $*" >&2; exit 2; }
out=$3 index=$5
dir="$out/trial-$index"
mkdir -p "$dir"
steps=$(cat "$out/steps-$index")
fail_at=$(cat "$out/fail-$index" 2>/dev/null || echo 0)
count=0
[ -s "$dir/count" ] && count=$(cat "$dir/count")
echo "start restart=${SLURM_RESTART_COUNT:-0} count=$count" >>"$dir/starts"
stop=0
trap 'stop=1; echo "got TERM" >>"$dir/starts"' TERM INT
while [ "$count" -lt "$steps" ]; do
  sleep 0.1
  count=$((count + 1))
  echo "$count" >"$dir/count.tmp" && mv "$dir/count.tmp" "$dir/count"
  if [ "$count" = "$fail_at" ]; then echo "failed at $count" >>"$dir/starts"; exit 3; fi
  if [ "$stop" = 1 ]; then echo "stopped at $count" >>"$dir/starts"; exit 130; fi
done
echo "finished at $count" >>"$dir/starts"
"#;

/// A folder name that needs quoting everywhere: spaces, both quotes, `$`, `#`, `%`.
pub const AWKWARD: &str = "a sweep \"q\" $HOME #1 it's 100%";

/// Writes the stand-in into `dir` (created), executable; returns its path.
pub fn write_standin(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    // No space in the file name: Slurm's proctrack/linuxproc does not see a process whose
    // name holds one as the job's, so would never signal it (tools/slurm-local uses it).
    let path = dir.join("stand-in");
    std::fs::write(&path, STANDIN).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A sweep folder for the stand-in: trial `i` of `steps` counts to `steps[i]`.
pub fn write_out(out: &Path, steps: &[(usize, u32)]) {
    std::fs::create_dir_all(out).unwrap();
    for (i, n) in steps {
        std::fs::write(out.join(format!("steps-{i}")), n.to_string()).unwrap();
    }
}

/// What trial `index` left in `out`: its count (None: never ran) and its `starts` lines.
pub fn trial(out: &Path, index: usize) -> (Option<u32>, Vec<String>) {
    let dir = out.join(format!("trial-{index}"));
    let count = std::fs::read_to_string(dir.join("count"))
        .ok()
        .map(|s| s.trim().parse().unwrap());
    let starts = std::fs::read_to_string(dir.join("starts"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    (count, starts)
}

/// Options for tests: a throttle of 2, logs in `log_dir`.
pub fn options(log_dir: &Path) -> SbatchOptions {
    SbatchOptions {
        job_name: "rprop-lab test".into(),
        throttle: Some(2),
        ..SbatchOptions::new(log_dir.to_path_buf())
    }
}

/// The array of `indices` running the stand-in at `standin` on `out`.
pub fn array<'a>(standin: &'a Path, out: &'a Path, indices: &'a [usize]) -> TrialArray<'a> {
    TrialArray {
        rprop_lab: standin,
        out,
        indices,
        digits: 3,
        offset: 0,
    }
}

/// Waits up to `secs` for `ok`, polling every 50 ms; panics naming `what` on time out.
pub fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !ok() {
        assert!(
            std::time::Instant::now() < end,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Six trials that all train (no divergence): two optimizers at three learning rates.
pub const SIX: &str = r#"{
  "base": {"optimizer": "irprop-plus", "hidden": [16]},
  "search": "grid",
  "keys": {
    "optimizer": {"choice": ["irprop-plus", "adam"]},
    "learning_rate": {"choice": [0.001, 0.003, 0.01]}
  }
}"#;

/// The options of every test sweep: `epochs` epochs of 300 train and 100 eval images of the
/// bundled MNIST on the CPU.
pub fn tiny(epochs: u32) -> Vec<String> {
    let data = crate::common::mnist_dir();
    [
        "--train-set-size",
        "300",
        "--eval-set-size",
        "100",
        "--epochs",
        &epochs.to_string(),
        "--backend",
        "cpu",
        "--data-dir",
        data.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

/// The rprop-lab binary with `args`, in `cwd`, its PATH `path` when given.
pub fn rprop_lab<S: AsRef<std::ffi::OsStr>>(
    cwd: &Path,
    args: &[S],
    path: Option<&std::ffi::OsStr>,
) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_rprop-lab"));
    c.current_dir(cwd)
        .args(args)
        .stdin(std::process::Stdio::null());
    if let Some(p) = path {
        c.env("PATH", p);
    }
    c
}

/// Runs `c`; its stdout and stderr, and its exit code.
pub fn output(c: &mut std::process::Command) -> (String, String, Option<i32>) {
    let o = c.output().unwrap();
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code(),
    )
}

/// Runs `c`, asserting it succeeds; its stdout.
pub fn ok(c: &mut std::process::Command) -> String {
    let (out, err, code) = output(c);
    assert_eq!(code, Some(0), "{c:?}:\n{out}\n{err}");
    out
}

/// Runs `c`, asserting it fails with exit 2 and one error line holding `want`.
pub fn refused(c: &mut std::process::Command, want: &str) -> String {
    let (out, err, code) = output(c);
    assert_eq!(code, Some(2), "{c:?}:\n{out}\n{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(want), "want {want:?} in {err}");
    assert!(!err.contains("panicked"), "{err}");
    lines[0].to_string()
}
