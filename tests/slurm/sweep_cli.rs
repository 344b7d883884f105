//! `sweep --executor slurm` without a cluster: `--dry-run`; sbatch missing, refusing the
//! options (`--test-only`) or failing to submit, each one error line with nothing lost;
//! submission, the resume of what has not ended and the refusals while an array is queued,
//! with stand-in `sbatch` and `squeue` programs; a sweep of more than 1000 trials as
//! several arrays; and `sweep status` of a trial running on another node, by its task's log.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::support::{ok, output, refused, rprop_lab, tiny, SIX};

pub const TESTS: &[(&str, fn())] = &[
    (
        "sweep_cli::dry_run_writes_the_plan_and_scripts_and_submits_nothing",
        dry_run_writes_the_plan_and_scripts_and_submits_nothing,
    ),
    (
        "sweep_cli::sbatch_missing_refusing_or_failing_loses_nothing",
        sbatch_missing_refusing_or_failing_loses_nothing,
    ),
    (
        "sweep_cli::a_resume_submits_what_has_not_ended",
        a_resume_submits_what_has_not_ended,
    ),
    (
        "sweep_cli::more_than_1000_trials_are_several_arrays",
        more_than_1000_trials_are_several_arrays,
    ),
    (
        "sweep_cli::status_sees_a_trial_on_another_node_by_its_log",
        status_sees_a_trial_on_another_node_by_its_log,
    ),
    (
        "sweep_cli::wait_names_the_trials_that_did_not_end",
        wait_names_the_trials_that_did_not_end,
    ),
];

/// Stand-ins for sbatch and squeue in `dir/fake`: sbatch records its arguments in
/// `dir/fake/calls`, refuses `--test-only` when `fail-test` exists and a submission when
/// `fail-submit` does, else prints job ids 42, 43, ...; squeue prints `dir/fake/queue`.
/// Returns a PATH with them first.
fn fakes(dir: &Path) -> OsString {
    use std::os::unix::fs::PermissionsExt;
    let fake = dir.join("fake");
    std::fs::create_dir_all(&fake).unwrap();
    let sbatch = r#"#!/bin/sh
d=$(dirname "$0")
echo "$*" >>"$d/calls"
if [ "$1" = --test-only ]; then
  cat >"$d/tested"
  [ -e "$d/fail-test" ] && { echo "sbatch: error: invalid partition specified: nope" >&2; exit 1; }
  echo "sbatch: Job 3 to start at 2026-01-01T00:00:00 using 1 processors" >&2
  exit 0
fi
[ -e "$d/fail-submit" ] && { echo "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified" >&2; exit 1; }
n=$(cat "$d/counter" 2>/dev/null || echo 41)
n=$((n + 1))
echo "$n" >"$d/counter"
echo "$n;cluster"
"#;
    let squeue = "#!/bin/sh\ncat \"$(dirname \"$0\")/queue\" 2>/dev/null\nexit 0\n";
    for (name, text) in [("sbatch", sbatch), ("squeue", squeue)] {
        std::fs::write(fake.join(name), text).unwrap();
        std::fs::set_permissions(fake.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::env::join_paths([fake, PathBuf::from("/usr/bin"), PathBuf::from("/bin")]).unwrap()
}

/// An empty folder as PATH: no sbatch, no squeue.
fn no_slurm(dir: &Path) -> OsString {
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    empty.into_os_string()
}

/// `sweep --space SIX --out OUT` with the tiny options and `more`.
fn sweep_args(dir: &Path, out: &str, more: &[&str]) -> Vec<String> {
    let space = dir.join("six.json");
    std::fs::write(&space, SIX).unwrap();
    let mut v: Vec<String> = ["sweep", "--space", space.to_str().unwrap(), "--out", out]
        .iter()
        .chain(more)
        .map(|s| s.to_string())
        .collect();
    v.extend(tiny(2));
    v
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The value of the script's `#SBATCH --NAME=` line.
fn sbatch_line(script: &str, name: &str) -> String {
    let key = format!("#SBATCH --{name}=");
    script
        .lines()
        .find_map(|l| l.strip_prefix(key.as_str()))
        .unwrap_or_else(|| panic!("no {key} in:\n{script}"))
        .to_string()
}

fn dry_run_writes_the_plan_and_scripts_and_submits_nothing() {
    let d = tempfile::tempdir().unwrap();
    let path = no_slurm(d.path());
    let run = |out: &str, more: &[&str]| {
        rprop_lab(d.path(), &sweep_args(d.path(), out, more), Some(&path))
    };
    // The Slurm options belong to the Slurm executor; a bad one writes nothing.
    refused(
        &mut run("x", &["--slurm-partition", "gpu"]),
        "--slurm-partition is an option of --executor slurm",
    );
    refused(
        &mut run("x", &["--dry-run"]),
        "--dry-run is an option of --executor slurm",
    );
    refused(
        &mut run(
            "x",
            &[
                "--executor",
                "slurm",
                "--dry-run",
                "--slurm-time",
                "1:2:3:4",
            ],
        ),
        "--slurm-time: time limit: \"1:2:3:4\"",
    );
    refused(
        &mut run(
            "x",
            &[
                "--executor",
                "slurm",
                "--dry-run",
                "--slurm-partition",
                "a b",
            ],
        ),
        "partition: \"a b\" holds white space",
    );
    assert!(!d.path().join("x").exists());
    let more = [
        "--executor",
        "slurm",
        "--dry-run",
        "--jobs",
        "3",
        "--threads",
        "2",
        "--slurm-partition",
        "gpu",
        "--slurm-account",
        "lab",
        "--slurm-time",
        "10",
        "--slurm-gres",
        "gpu:1",
    ];
    let said = ok(&mut run("sw", &more));
    let out = d.path().join("sw");
    let script = read(&out.join("sweep.sbatch"));
    assert!(
        said.contains(&format!(
            "submit it with: sbatch {}",
            out.join("sweep.sbatch").display()
        )),
        "{said}"
    );
    assert_eq!(sbatch_line(&script, "array"), "1-6%3");
    assert_eq!(sbatch_line(&script, "partition"), "\"gpu\"");
    assert_eq!(sbatch_line(&script, "account"), "\"lab\"");
    assert_eq!(sbatch_line(&script, "gres"), "\"gpu:1\"");
    assert_eq!(sbatch_line(&script, "time"), "0:10:00");
    assert_eq!(sbatch_line(&script, "cpus-per-task"), "2");
    // A quarter of a 10-minute limit.
    assert_eq!(sbatch_line(&script, "signal"), "B:USR1@150");
    assert_eq!(
        sbatch_line(&script, "output"),
        format!("\"{}/slurm-logs/trial-%3a.log\"", out.display())
    );
    assert!(script.contains(&format!("RPROP_LAB='{}'", env!("CARGO_BIN_EXE_rprop-lab"))));
    // The plan, as a local sweep writes it before running; the log folder; nothing ran.
    assert!(out.join("sweep.json").is_file() && out.join("slurm-logs").is_dir());
    for i in 1..=6 {
        let t = out.join(format!("trial-00{i}"));
        assert!(t.join("config.json").is_file() && !t.join("metrics.jsonl").exists());
    }
    let rec: serde_json::Value = serde_json::from_str(&read(&out.join("slurm.json"))).unwrap();
    assert_eq!(rec["submissions"], serde_json::json!([]));
    assert_eq!(rec["settings"]["partition"], "gpu");
    assert_eq!(rec["settings"]["time_limit_s"], 600);
    // The task's run-trial works on this plan: trial 4 alone (its folder's config).
    let one = ok(&mut rprop_lab(
        d.path(),
        &["sweep", "run-trial", "sw", "--index", "4"],
        Some(&path),
    ));
    assert!(
        one.contains("trial-004: starts") && one.contains("trial-004: done"),
        "{one}"
    );
}

fn sbatch_missing_refusing_or_failing_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let none = no_slurm(d.path());
    let slurm = ["--executor", "slurm"];
    let err = refused(
        &mut rprop_lab(d.path(), &sweep_args(d.path(), "sw", &slurm), Some(&none)),
        "sbatch not found on PATH",
    );
    assert!(err.contains("--dry-run"), "{err}");
    assert!(!d.path().join("sw").exists());
    let path = fakes(d.path());
    let fake = d.path().join("fake");
    // The controller refuses the options: sbatch's own message; nothing is written.
    std::fs::write(fake.join("fail-test"), "").unwrap();
    refused(
        &mut rprop_lab(d.path(), &sweep_args(d.path(), "sw", &slurm), Some(&path)),
        "sbatch refused the sweep's batch script (sbatch --test-only, exit status: 1): sbatch: error: invalid partition specified: nope",
    );
    assert!(!d.path().join("sw").exists());
    assert!(
        read(&fake.join("tested")).starts_with("#!/bin/bash\n#SBATCH --job-name=\"rprop-lab:sw\"")
    );
    // The submission fails: its message; the plan and script stay, to be submitted again.
    std::fs::remove_file(fake.join("fail-test")).unwrap();
    std::fs::write(fake.join("fail-submit"), "").unwrap();
    let err = refused(
        &mut rprop_lab(d.path(), &sweep_args(d.path(), "sw", &slurm), Some(&path)),
        "Batch job submission failed: Invalid account",
    );
    assert!(err.contains("sweep --resume"), "{err}");
    let out = d.path().join("sw");
    assert!(out.join("sweep.json").is_file() && out.join("sweep.sbatch").is_file());
    assert_eq!(trial_count(&out), 6);
    let rec: serde_json::Value = serde_json::from_str(&read(&out.join("slurm.json"))).unwrap();
    assert_eq!(rec["submissions"], serde_json::json!([]));
    // sbatch back: the resume (Slurm, the sweep's executor) submits every trial.
    std::fs::remove_file(fake.join("fail-submit")).unwrap();
    let said = ok(&mut rprop_lab(
        d.path(),
        &["sweep", "--resume", "sw"],
        Some(&path),
    ));
    assert!(
        said.contains("submitted: Slurm job 42, trials 1-6"),
        "{said}"
    );
}

/// The trial folders of a sweep folder.
pub fn trial_count(out: &Path) -> usize {
    std::fs::read_dir(out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("trial-")
        })
        .count()
}

fn a_resume_submits_what_has_not_ended() {
    let d = tempfile::tempdir().unwrap();
    let path = fakes(d.path());
    let fake = d.path().join("fake");
    let more = [
        "--executor",
        "slurm",
        "--jobs",
        "2",
        "--slurm-partition",
        "debug",
        "-q",
    ];
    let said = ok(&mut rprop_lab(
        d.path(),
        &sweep_args(d.path(), "sw", &more),
        Some(&path),
    ));
    assert_eq!(
        said.trim(),
        format!(
            "submitted: Slurm job 42, trials 1-6 ({})",
            d.path().join("sw/sweep.sbatch").display()
        )
    );
    // While job 42 is queued: no resume, no --force.
    std::fs::write(fake.join("queue"), "42\n").unwrap();
    refused(
        &mut rprop_lab(d.path(), &["sweep", "--resume", "sw"], Some(&path)),
        "Slurm job(s) 42 of this sweep still have tasks queued or running",
    );
    refused(
        &mut rprop_lab(
            d.path(),
            &sweep_args(d.path(), "sw", &["--force", "--executor", "slurm"]),
            Some(&path),
        ),
        "Slurm job 42 of the sweep there still has tasks queued or running; `scancel 42`",
    );
    // Job 42 gone, trial 2 done (here): the resume submits 1 and 3-6, with the recorded
    // partition and throttle.
    std::fs::write(fake.join("queue"), "7\n").unwrap();
    ok(&mut rprop_lab(
        d.path(),
        &["sweep", "run-trial", "sw", "--index", "2", "-q"],
        Some(&path),
    ));
    let said = ok(&mut rprop_lab(
        d.path(),
        &["sweep", "--resume", "sw", "--slurm-time", "1:00:00"],
        Some(&path),
    ));
    assert!(
        said.contains("submitted: Slurm job 43, trials 1,3-6"),
        "{said}"
    );
    let script = read(&d.path().join("sw/sweep.sbatch"));
    assert_eq!(sbatch_line(&script, "array"), "1,3-6%2");
    assert_eq!(sbatch_line(&script, "partition"), "\"debug\"");
    assert_eq!(sbatch_line(&script, "time"), "1:00:00");
    let calls = read(&fake.join("calls"));
    assert_eq!(calls.matches("--test-only").count(), 2, "{calls}");
    assert_eq!(calls.matches("--parsable").count(), 2, "{calls}");
    let st = ok(&mut rprop_lab(
        d.path(),
        &["sweep", "status", "sw"],
        Some(&path),
    ));
    assert!(
        st.contains("slurm: job 42 (trials 1-6)") && st.contains("slurm: job 43 (trials 1,3-6)"),
        "{st}"
    );
    assert!(
        st.contains("done 1, running 0, pending 5, failed 0 (of 6)"),
        "{st}"
    );
    // The local executor is still there for the asking.
    let (_, err, code) = output(&mut rprop_lab(
        d.path(),
        &[
            "sweep",
            "--resume",
            "sw",
            "--executor",
            "local",
            "--jobs",
            "2",
            "-q",
            "--slurm-account",
            "x",
        ],
        Some(&path),
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--slurm-account is an option of --executor slurm"),
        "{err}"
    );
}

fn more_than_1000_trials_are_several_arrays() {
    let d = tempfile::tempdir().unwrap();
    let path = fakes(d.path());
    let space = d.path().join("many.json");
    std::fs::write(
        &space,
        r#"{"base": {"optimizer": "adam", "hidden": [8]}, "search": "random",
            "keys": {"learning_rate": {"log_uniform": [1e-4, 1e-2]}}}"#,
    )
    .unwrap();
    let mut args: Vec<String> = [
        "sweep",
        "--space",
        space.to_str().unwrap(),
        "--out",
        "many",
        "--trials",
        "1002",
        "--executor",
        "slurm",
        "--jobs",
        "4",
        "-q",
    ]
    .map(String::from)
    .to_vec();
    args.extend(tiny(1));
    let said = ok(&mut rprop_lab(d.path(), &args, Some(&path)));
    let out = d.path().join("many");
    // Trials 1..=999 as tasks 1..=999; 1000..=1002 as tasks 0..=2 of an array offset by
    // 1000, after the first (the throttle holds across both).
    assert!(
        said.contains("submitted: Slurm job 42, trials 1-999")
            && said.contains("submitted: Slurm job 43, trials 1000-1002"),
        "{said}"
    );
    let first = read(&out.join("sweep.sbatch"));
    assert_eq!(sbatch_line(&first, "array"), "1-999%4");
    assert!(sbatch_line(&first, "output").ends_with("/slurm-logs/trial-%4a.log\""));
    assert!(first.contains("trial=$((SLURM_ARRAY_TASK_ID + 0))"));
    let second = read(&out.join("sweep-1.sbatch"));
    assert_eq!(sbatch_line(&second, "array"), "0-2%4");
    assert!(sbatch_line(&second, "output").ends_with("/slurm-logs/trial-1%3a.log\""));
    assert!(second.contains("trial=$((SLURM_ARRAY_TASK_ID + 1000))"));
    let calls = read(&d.path().join("fake/calls"));
    let submits: Vec<&str> = calls
        .lines()
        .filter(|l| l.starts_with("--parsable"))
        .collect();
    assert_eq!(submits.len(), 2, "{calls}");
    assert!(
        !submits[0].contains("--dependency")
            && submits[1].starts_with("--parsable --dependency=afterany:42 "),
        "{calls}"
    );
    assert!(out.join("trial-1002/config.json").is_file());
}

fn status_sees_a_trial_on_another_node_by_its_log() {
    let d = tempfile::tempdir().unwrap();
    let path = no_slurm(d.path());
    ok(&mut rprop_lab(
        d.path(),
        &sweep_args(d.path(), "sw", &["--executor", "slurm", "--dry-run"]),
        Some(&path),
    ));
    let out = d.path().join("sw");
    let log = out.join("slurm-logs/trial-002.log");
    let start =
        "[2026-01-01 10:00:00] task 5_2: trial 2 on node-b7, restart 1\ntrial-002: starts\n";
    std::fs::write(&log, start).unwrap();
    let status = || {
        ok(&mut rprop_lab(
            d.path(),
            &["sweep", "status", "sw"],
            Some(&path),
        ))
    };
    let st = status();
    assert!(
        st.contains("done 0, running 1, pending 5, failed 0 (of 6)"),
        "{st}"
    );
    assert!(
        st.contains("trial-002: running on node-b7 (by its Slurm log"),
        "{st}"
    );
    // Silent for longer than the limit (10 minutes here): lost, to be resumed.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    for p in [log.clone(), out.join("trial-002")] {
        std::fs::File::open(&p).unwrap().set_modified(old).unwrap();
    }
    let st = status();
    assert!(
        st.contains("done 0, running 0, pending 6, failed 0 (of 6)"),
        "{st}"
    );
    assert!(st.contains("trial-002: pending: started on node-b7 but silent for 2.0 h (killed, or its node failed)"), "{st}");
    // Its run ended (the script's last line): pending, with nothing to say.
    std::fs::write(
        &log,
        format!("{start}[2026-01-01 10:00:09] task 5_2: trial exit status 2\n"),
    )
    .unwrap();
    let st = status();
    assert!(
        st.contains("pending 6") && !st.contains("trial-002"),
        "{st}"
    );
    // A run on this machine: the lock decides (none is held).
    let here = rprop_lab::slurm::hostname();
    std::fs::write(
        &log,
        format!("[2026-01-01 10:00:00] task 5_2: trial 2 on {here}, restart 0\n"),
    )
    .unwrap();
    assert!(status().contains("pending 6"));
}

/// `--wait` on arrays that end with trials not done (here: a stand-in sbatch that runs
/// nothing): the report of what ended, then one error line naming them, exit 2.
fn wait_names_the_trials_that_did_not_end() {
    let d = tempfile::tempdir().unwrap();
    let path = fakes(d.path());
    let more = ["--executor", "slurm", "--wait"];
    let mut c = rprop_lab(d.path(), &sweep_args(d.path(), "sw", &more), Some(&path));
    let (out, err, code) = output(&mut c);
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(out.contains("submitted: Slurm job 42, trials 1-6"), "{out}");
    assert!(
        out.contains("done 0, running 0, pending 6, failed 0 (of 6)"),
        "{out}"
    );
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(
        line.contains("the Slurm arrays ended with 6 trial(s) not done (trial-001, trial-002, trial-003, trial-004, trial-005, ...)")
            && line.contains("sweep --resume"),
        "{err}"
    );
    assert!(d.path().join("sw/results.md").is_file());
}
