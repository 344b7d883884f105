//! What the batch script does with each signal, without Slurm: bash runs the rendered
//! script as a task would (the array variables set, a fake `scontrol` on PATH that records
//! its arguments) over the stand-in trial, and the test sends what Slurm would: USR1 to the
//! batch shell alone (`--signal=B:USR1@LEAD`), or TERM to every process of the job (a
//! requeue, preemption or scancel). The same paths on the real daemons: tests/slurm/cluster.rs.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rprop_lab::slurm::render;

use super::support::{array, options, trial, wait_for, write_out, write_standin, AWKWARD};

pub const TESTS: &[(&str, fn())] = &[
    (
        "script_logic::a_finished_trial_exits_0",
        a_finished_trial_exits_0,
    ),
    (
        "script_logic::usr1_stops_the_trial_once_and_requeues_the_task",
        usr1_stops_the_trial_once_and_requeues_the_task,
    ),
    (
        "script_logic::term_from_slurm_is_not_passed_on_nor_requeued",
        term_from_slurm_is_not_passed_on_nor_requeued,
    ),
    (
        "script_logic::a_failed_trial_is_not_requeued",
        a_failed_trial_is_not_requeued,
    ),
    (
        "script_logic::a_failed_requeue_says_so",
        a_failed_requeue_says_so,
    ),
];

/// Task 3 of array 7 (its own job id 9) running a trial of `steps` steps.
struct Task {
    child: Child,
    out: PathBuf,
    calls: PathBuf,
    _dir: tempfile::TempDir,
}

fn start(steps: u32, fail_at: Option<u32>, scontrol_exit: i32) -> Task {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join(AWKWARD);
    let standin = write_standin(&base.join("bin"));
    let out = base.join("out");
    write_out(&out, &[(3, steps)]);
    if let Some(k) = fail_at {
        std::fs::write(out.join("fail-3"), k.to_string()).unwrap();
    }
    let fake = base.join("fake bin");
    std::fs::create_dir_all(&fake).unwrap();
    let scontrol = format!("#!/bin/sh\necho \"$@\" >>\"$SCONTROL_CALLS\"\nexit {scontrol_exit}\n");
    std::fs::write(fake.join("scontrol"), scontrol).unwrap();
    chmod_x(&fake.join("scontrol"));
    let script = render(&options(&base.join("logs")), &array(&standin, &out, &[3])).unwrap();
    let path = base.join("sweep.sbatch");
    std::fs::write(&path, script).unwrap();
    let calls = base.join("scontrol calls");
    let search = format!(
        "{}:{}",
        fake.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let child = Command::new("bash")
        .arg(&path)
        .env("PATH", search)
        .env("SLURM_ARRAY_JOB_ID", "7")
        .env("SLURM_ARRAY_TASK_ID", "3")
        .env("SLURM_JOB_ID", "9")
        .env_remove("SLURM_RESTART_COUNT")
        .env("SCONTROL_CALLS", &calls)
        // Its own process group, which stands for the job's processes.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Task {
        child,
        out,
        calls,
        _dir: dir,
    }
}

fn chmod_x(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl Task {
    /// Waits until the trial has counted `n` steps.
    fn counted(&self, n: u32) {
        wait_for("the trial to count", 20, || {
            trial(&self.out, 3).0 >= Some(n)
        });
    }

    /// Signals the batch shell alone (pid) or the whole job (the process group).
    fn signal(&self, sig: i32, whole_job: bool) {
        let pid = self.child.id() as i32;
        let target = if whole_job { -pid } else { pid };
        assert_eq!(unsafe { libc::kill(target, sig) }, 0);
    }

    /// The script's exit status, its output, and the `scontrol` calls it made.
    fn finish(&mut self) -> (i32, String, String) {
        let end = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!("the batch script did not end within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut said = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut said)
            .unwrap();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut said)
            .unwrap();
        let calls = std::fs::read_to_string(&self.calls).unwrap_or_default();
        (status.code().expect("an exit status"), said, calls)
    }
}

fn a_finished_trial_exits_0() {
    let mut task = start(3, None, 0);
    let out = task.out.clone();
    let (code, said, calls) = task.finish();
    assert_eq!(code, 0, "{said}");
    assert_eq!(calls, "");
    let (count, starts) = trial(&out, 3);
    assert_eq!(count, Some(3));
    assert_eq!(starts, ["start restart=0 count=0", "finished at 3"]);
    assert!(said.contains("task 7_3: trial 3 on "), "{said}");
    assert!(said.contains("task 7_3: trial exit status 0"), "{said}");
}

fn usr1_stops_the_trial_once_and_requeues_the_task() {
    let mut task = start(200, None, 0);
    task.counted(2);
    task.signal(libc::SIGUSR1, false);
    // A second USR1 while the trial finishes its step is not passed on.
    std::thread::sleep(Duration::from_millis(30));
    task.signal(libc::SIGUSR1, false);
    let out = task.out.clone();
    let (code, said, calls) = task.finish();
    assert_eq!(code, 130, "{said}");
    // The task itself, not SLURM_JOB_ID (which may be the whole array's id).
    assert_eq!(calls, "requeue 7_3\n");
    let (count, starts) = trial(&out, 3);
    let n = count.unwrap();
    assert!((2..200).contains(&n), "{n}");
    assert_eq!(
        starts,
        [
            "start restart=0 count=0".to_string(),
            "got TERM".into(),
            format!("stopped at {n}")
        ]
    );
    assert!(
        said.contains("time limit near: stopping the trial"),
        "{said}"
    );
    assert!(said.contains("trial saved; requeueing the task"), "{said}");
}

fn term_from_slurm_is_not_passed_on_nor_requeued() {
    let mut task = start(200, None, 0);
    task.counted(2);
    task.signal(libc::SIGTERM, true);
    // The time limit near while the trial saves: nothing more is passed on.
    std::thread::sleep(Duration::from_millis(30));
    task.signal(libc::SIGUSR1, false);
    let out = task.out.clone();
    let (code, said, calls) = task.finish();
    assert_eq!(code, 130, "{said}");
    assert_eq!(calls, "", "requeued after a TERM from Slurm");
    let (count, starts) = trial(&out, 3);
    let n = count.unwrap();
    // One TERM reached the trial: the script passed none on.
    assert_eq!(
        starts,
        [
            "start restart=0 count=0".to_string(),
            "got TERM".into(),
            format!("stopped at {n}")
        ]
    );
    assert!(said.contains("TERM from Slurm"), "{said}");
    assert!(said.contains("trial exit status 130"), "{said}");
}

fn a_failed_trial_is_not_requeued() {
    let mut task = start(200, Some(2), 0);
    let out = task.out.clone();
    let (code, said, calls) = task.finish();
    assert_eq!(code, 3, "{said}");
    assert_eq!(calls, "");
    assert_eq!(trial(&out, 3).0, Some(2));
    assert!(said.contains("trial exit status 3"), "{said}");
}

fn a_failed_requeue_says_so() {
    let mut task = start(200, None, 1);
    task.counted(1);
    task.signal(libc::SIGUSR1, false);
    let (code, said, calls) = task.finish();
    assert_eq!(code, 130, "{said}");
    assert_eq!(calls, "requeue 7_3\n");
    assert!(
        said.contains("scontrol requeue failed: the trial stays saved"),
        "{said}"
    );
}
