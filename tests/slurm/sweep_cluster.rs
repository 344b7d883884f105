//! On the real daemons (`tools/slurm-local up`): `sweep --executor slurm --wait` of six tiny
//! trials, one of them requeued mid-trial (`scontrol requeue JOB_TASK`), ends with every
//! trial's weights bit-identical to the local executor's, the requeued one stopped and
//! resumed exactly.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::support::{ok, rprop_lab, tiny, wait_for, SIX};

pub const TESTS: &[(&str, fn())] = &[(
    "sweep_cluster::a_requeued_trial_resumes_to_the_local_executors_weights",
    a_requeued_trial_resumes_to_the_local_executors_weights,
)];

/// Epochs of each trial: a few seconds, so that one is caught running (a requeue's TERM
/// reaches it a second or so after `scontrol requeue`).
const EPOCHS: usize = 3000;

/// The epochs `metrics.jsonl` of `dir` records, in order.
fn epochs(dir: &Path) -> Vec<usize> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["epoch"].as_u64().unwrap() as usize)
        .collect()
}

/// The job id `slurm.json` of `out` records first.
fn job_id(out: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(out.join("slurm.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["submissions"][0]["job_id"].as_u64()
}

fn scontrol(args: &[&str]) -> String {
    let o = Command::new("scontrol").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "scontrol {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn a_requeued_trial_resumes_to_the_local_executors_weights() {
    let d = tempfile::tempdir().unwrap();
    let space = d.path().join("six.json");
    std::fs::write(&space, SIX).unwrap();
    let space = space.to_str().unwrap();
    let opts = tiny(EPOCHS as u32);
    let args = |out: &str, more: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["sweep", "--space", space, "--out", out, "--jobs", "2"]
            .iter()
            .chain(more)
            .map(|s| s.to_string())
            .collect();
        v.extend(opts.iter().cloned());
        v
    };
    ok(&mut rprop_lab(d.path(), &args("local", &["-q"]), None));

    let t0 = Instant::now();
    let mut child = rprop_lab(
        d.path(),
        &args("slurm", &["--executor", "slurm", "--wait"]),
        None,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let out = d.path().join("slurm");
    let first = out.join("trial-001");
    // Trial 1 part-way: past its first epochs, far from its last.
    wait_for("trial 1 to run part-way", 90, || {
        (20..EPOCHS / 3).contains(&epochs(&first).len())
    });
    let id = job_id(&out).expect("slurm.json records the job");
    scontrol(&["requeue", &format!("{id}_1")]);
    let end = Instant::now() + Duration::from_secs(150);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "sweep --wait still runs after 150 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("submitted: Slurm job {id}, trials 1-6"))
            && stdout.contains("done 6, running 0, pending 0, failed 0 (of 6)"),
        "{stdout}"
    );
    eprintln!("sweep on Slurm: {:.1} s", t0.elapsed().as_secs_f64());

    // Every trial's best and last weights (and optimizer state) are the local executor's.
    for i in 1..=6 {
        let name = format!("trial-00{i}");
        crate::common::assert_same_checkpoints(
            &d.path().join("local").join(&name),
            &out.join(&name),
        );
        assert_eq!(
            epochs(&out.join(&name)),
            (1..=EPOCHS).collect::<Vec<_>>(),
            "{name}"
        );
    }
    // Trial 1 really stopped part-way and resumed from its save on its task's second run.
    let log = std::fs::read_to_string(out.join("slurm-logs/trial-001.log")).unwrap();
    assert!(
        log.contains(", restart 0\n") && log.contains(", restart 1\n"),
        "{log}"
    );
    assert!(log.contains("TERM from Slurm"), "{log}");
    let saved: usize = log
        .split("trial-001: resumes from its save (")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume in the log:\n{log}"));
    assert!((20..EPOCHS).contains(&saved), "{log}");
    let task = scontrol(&["show", "job", "-o", &format!("{id}_1")]);
    assert!(
        task.contains(" Restarts=1 ") && task.contains("JobState=COMPLETED"),
        "{task}"
    );
    for i in 2..=6 {
        let log = std::fs::read_to_string(out.join(format!("slurm-logs/trial-00{i}.log"))).unwrap();
        assert!(
            log.contains(&format!("trial-00{i}: starts")) && !log.contains("restart 1"),
            "{log}"
        );
    }
    // Nothing is left to submit; status reads the folders.
    let again = ok(&mut rprop_lab(
        d.path(),
        &["sweep", "--resume", "slurm", "-q"],
        None,
    ));
    assert!(again.contains("nothing to submit"), "{again}");
    let st = ok(&mut rprop_lab(
        d.path(),
        &["sweep", "status", "slurm"],
        None,
    ));
    assert!(
        st.contains(&format!("slurm: job {id} (trials 1-6)"))
            && st.contains("done 6, running 0, pending 0, failed 0 (of 6)"),
        "{st}"
    );
}
