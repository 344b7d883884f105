//! The harness of the Slurm test binary (`harness = false`, libtest-mimic): the tests on the
//! real daemons run where `sbatch` is on PATH and a controller answers; elsewhere they are
//! reported as ignored, with the reason (never a silent `ok`), unless Slurm is required
//! (`RPROP_LAB_REQUIRE_SLURM=1`): then each fails with that reason.

use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};

/// A test: its name and body (which panics on failure).
pub type SlurmTest = (&'static str, fn());

/// Whether a missing cluster must fail the tests rather than skip them.
pub fn slurm_required() -> bool {
    std::env::var("RPROP_LAB_REQUIRE_SLURM").is_ok_and(|v| v == "1" || v == "true")
}

/// Why the tests on the real daemons cannot run here, or None when they can.
pub fn missing_cluster() -> Option<String> {
    // RPROP_LAB_TEST_NO_SLURM=1 hides the cluster, so what a machine without one reports
    // can be seen on one that has it.
    if std::env::var("RPROP_LAB_TEST_NO_SLURM").is_ok_and(|v| v == "1") {
        return Some("sbatch hidden by RPROP_LAB_TEST_NO_SLURM=1".into());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if rprop_lab::slurm::find_program("sbatch", &path).is_none() {
        return Some("sbatch not found on PATH".into());
    }
    match Command::new("sinfo").args(["-h", "-o", "%a"]).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "sbatch found, but no Slurm controller answers (sinfo: {})",
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .replace('\n', "; ")
        )),
        Err(e) => Some(format!("sbatch found, but sinfo cannot run ({e})")),
    }
}

/// Held by the test on the daemons that runs.
static ON_THE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `cluster_tests` as a test binary's main: each is a trial, ignored where no cluster
/// answers (failed instead when Slurm is required); `tests` in the same binary always run.
pub fn main(cluster_tests: &[SlurmTest], tests: &[SlurmTest]) -> ! {
    let args = Arguments::from_args();
    let missing = missing_cluster();
    let required = slurm_required();
    if let Some(why) = &missing {
        if !required {
            eprintln!(
                "notice: {why}; the tests on the Slurm daemons are ignored (start a one-node cluster with `tools/slurm-local up`, as root)"
            );
        }
    }
    let trials = cluster_tests
        .iter()
        .map(|&(name, body)| {
            let why_missing = missing.clone();
            Trial::test(name, move || {
                if let Some(why) = why_missing {
                    return Err(Failed::from(format!(
                        "{why}, and RPROP_LAB_REQUIRE_SLURM requires a cluster (start one with `tools/slurm-local up`)"
                    )));
                }
                // One at a time: they share the cluster's few CPUs, and each waits for its
                // own tasks with a time limit.
                let _one = ON_THE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
                body();
                Ok(())
            })
            .with_ignored_flag(missing.is_some() && !required)
        })
        .chain(tests.iter().map(|&(name, body)| {
            Trial::test(name, move || {
                body();
                Ok(())
            })
        }))
        .collect();
    libtest_mimic::run(&args, trials).exit()
}
