//! On the real daemons (`tools/slurm-local up`): a rendered array over the stand-in trial,
//! in a folder whose name needs quoting, with one task requeued (`scontrol requeue`), one
//! told its time limit is near (USR1 to its batch shell, as `--signal=B:USR1@LEAD` sends),
//! one cancelled, one failing, one left alone, and one index not in the array (a resume).
//! And sbatch's own refusal, on one line.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use rprop_lab::slurm::{submit, write_script, SbatchOptions};

use super::support::{array, options, trial, wait_for, write_out, write_standin, AWKWARD};

pub const TESTS: &[(&str, fn())] = &[
    (
        "cluster::requeued_and_signalled_tasks_resume_their_trials",
        requeued_and_signalled_tasks_resume_their_trials,
    ),
    (
        "cluster::sbatch_refusal_is_one_line",
        sbatch_refusal_is_one_line,
    ),
];

/// A task's record in `scontrol show job`: state, restarts, exit code, throttle.
#[derive(Debug, Default)]
struct Record {
    state: String,
    restarts: u32,
    exit: String,
    throttle: String,
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every task of array `id` by its index, from `scontrol show job` (no accounting needed).
fn records(id: u64) -> BTreeMap<usize, Record> {
    let text = run("scontrol", &["show", "job", "-o", &id.to_string()]);
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k).map(str::to_string))
                .unwrap_or_default()
        };
        // A pending remainder of the array is one record ("2-5%2"): counted as not done.
        let Ok(task) = field("ArrayTaskId=").parse::<usize>() else {
            out.insert(
                0,
                Record {
                    state: "PENDING".into(),
                    ..Record::default()
                },
            );
            continue;
        };
        let record = Record {
            state: field("JobState="),
            restarts: field("Restarts=").parse().unwrap(),
            exit: field("ExitCode="),
            throttle: field("ArrayTaskThrottle="),
        };
        out.insert(task, record);
    }
    out
}

/// The pid of a running task's batch shell on this node: local id 0 of its batch step.
fn batch_shell(job: &str) -> i32 {
    let text = run("scontrol", &["listpids", job.trim()]);
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && f[2] == "batch" && f[3] == "0")
        .map(|f| f[0].parse().unwrap())
        .unwrap_or_else(|| panic!("no batch shell in scontrol listpids {job}:\n{text}"))
}

fn state(id: u64, task: usize) -> String {
    records(id)
        .get(&task)
        .map(|r| r.state.clone())
        .unwrap_or_default()
}

fn done(records: &BTreeMap<usize, Record>) -> bool {
    records
        .values()
        .all(|r| matches!(r.state.as_str(), "COMPLETED" | "FAILED" | "CANCELLED"))
}

fn requeued_and_signalled_tasks_resume_their_trials() {
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join(AWKWARD);
    let standin = write_standin(&base.join("bin"));
    let out = base.join("out");
    // Trials 1, 2 and 4 run long enough to be caught running; 5 fails at step 2.
    let steps = [(1, 60), (2, 60), (4, 100), (5, 30), (6, 10)];
    write_out(&out, &steps);
    std::fs::write(out.join("fail-5"), "2").unwrap();
    let logs = base.join("logs");
    let script = base.join("sweep.sbatch");
    let indices = [1, 2, 4, 5, 6];
    write_script(&options(&logs), &array(&standin, &out, &indices), &script).unwrap();
    let id = submit(&script).unwrap();
    let running = |t: usize| state(id, t) == "RUNNING" && trial(&out, t).0 >= Some(10);
    wait_for("trials 1 and 2 to run", 60, || running(1) && running(2));
    // What `--signal=B:USR1@LEAD` sends before the time limit: USR1 to the batch shell
    // alone. Not with `scancel --batch --signal=USR1`: on a task that stops and requeues
    // itself at once, its request "can not be altered now" and scancel retries for 18 s,
    // signalling the task's next start too.
    let shell = batch_shell(&run(
        "squeue",
        &["-h", "-r", "-j", &format!("{id}_2"), "-o", "%A"],
    ));
    assert_eq!(unsafe { libc::kill(shell, libc::SIGUSR1) }, 0);
    run("scontrol", &["requeue", &format!("{id}_1")]);
    wait_for("trial 4 to run", 60, || running(4));
    run("scancel", &[&format!("{id}_4")]);
    // A requeued task waits the cluster's cred_expire + 1 s (11 s on tools/slurm-local).
    wait_for("the array to end", 120, || done(&records(id)));
    let recs = records(id);
    let logs_of =
        |t: usize| std::fs::read_to_string(logs.join(format!("trial-{t:03}.log"))).unwrap();
    for t in [1, 2] {
        let (count, starts) = trial(&out, t);
        assert_eq!(count, Some(60), "trial {t}: {starts:?}");
        // Stopped once, at a step end, and resumed from there on the task's second start.
        assert_eq!(starts.len(), 5, "trial {t}: {starts:?}");
        assert_eq!(
            (starts[0].as_str(), starts[1].as_str()),
            ("start restart=0 count=0", "got TERM")
        );
        let at: u32 = starts[2]
            .strip_prefix("stopped at ")
            .unwrap()
            .parse()
            .unwrap();
        assert!((10..60).contains(&at), "trial {t}: {starts:?}");
        assert_eq!(starts[3], format!("start restart=1 count={at}"));
        assert_eq!(starts[4], "finished at 60");
        let r = &recs[&t];
        assert_eq!(
            (r.state.as_str(), r.restarts, r.exit.as_str()),
            ("COMPLETED", 1, "0:0")
        );
        // The log holds both starts (--open-mode=append).
        let log = logs_of(t);
        assert!(
            log.contains(", restart 0\n") && log.contains(", restart 1\n"),
            "{log}"
        );
    }
    assert!(logs_of(2).contains("time limit near: stopping the trial"));
    assert!(logs_of(2).contains("trial saved; requeueing the task"));
    assert!(logs_of(1).contains("TERM from Slurm"));
    // Cancelled: stopped and saved, not requeued.
    let (count, starts) = trial(&out, 4);
    assert!(count.unwrap() < 100 && starts.len() == 3, "{starts:?}");
    assert_eq!(
        (recs[&4].state.as_str(), recs[&4].restarts),
        ("CANCELLED", 0)
    );
    // Failed: not requeued, its exit code kept.
    assert_eq!(trial(&out, 5).0, Some(2));
    assert_eq!(
        (
            recs[&5].state.as_str(),
            recs[&5].restarts,
            recs[&5].exit.as_str()
        ),
        ("FAILED", 0, "3:0")
    );
    assert_eq!(
        trial(&out, 6),
        (
            Some(10),
            vec!["start restart=0 count=0".into(), "finished at 10".into()]
        )
    );
    assert_eq!(
        (recs[&6].state.as_str(), recs[&6].restarts),
        ("COMPLETED", 0)
    );
    // Index 3 was not in the array.
    assert!(!out.join("trial-3").exists() && !recs.contains_key(&3));
    assert_eq!(recs.keys().copied().collect::<Vec<_>>(), indices);
    assert!(recs.values().all(|r| r.throttle == "2"), "{recs:?}");
}

fn sbatch_refusal_is_one_line() {
    let d = tempfile::tempdir().unwrap();
    let script = d.path().join("sweep.sbatch");
    let opts = SbatchOptions {
        partition: Some("no-such-partition".into()),
        ..options(&d.path().join("logs"))
    };
    let bin = Path::new("/bin/true");
    write_script(&opts, &array(bin, d.path(), &[1]), &script).unwrap();
    let err = submit(&script).unwrap_err().to_string();
    assert!(
        err.starts_with("sbatch failed (exit status: 1) on "),
        "{err}"
    );
    assert!(
        err.contains("invalid partition specified: no-such-partition"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
}
