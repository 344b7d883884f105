//! `sweep`: a hyper-parameter search in one command. A space file ([`space`]) names a base
//! config, a distribution per varied key and the search; [`sample`] draws every trial's
//! settings from `--seed`; [`plan`] builds and checks each trial's config and writes
//! `OUT/sweep.json`; [`trial`] runs one trial in its run folder `OUT/trial-NNN/` with the
//! trainer `train` uses; [`local`] runs many at once on this machine, [`slurm`] submits
//! them to a Slurm cluster as job arrays; [`status`] and [`report`] (with [`charts`]) read
//! what the folders hold, whatever ran them. See docs/sweep.md.

pub mod charts;
pub mod local;
pub mod plan;
pub mod report;
pub mod sample;
pub mod slurm;
pub mod space;
pub mod status;
pub mod trial;

/// The sweep's record, in OUT.
pub const SWEEP_JSON: &str = "sweep.json";
/// How a trial ended, in its folder.
pub const TRIAL_JSON: &str = "trial.json";
/// The Slurm tasks' logs (`trial-NNN.log`), in OUT: written by [`slurm`], read by
/// [`status`].
pub const SLURM_LOG_DIR: &str = "slurm-logs";
/// Most trials a sweep runs (a grid's combinations included).
pub const MAX_TRIALS: usize = 10_000;

/// Trial `index`'s folder name among `total`: `trial-007`, numbered from 1, zero-padded to
/// 3 digits (more when there are more than 999 trials).
pub fn trial_name(index: usize, total: usize) -> String {
    let width = total.max(1).to_string().len().max(3);
    format!("trial-{index:0width$}")
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Whether a folder entry's name is one of a sweep's own: its record, results and charts,
/// its trial folders and their hidden lock files, its Slurm scripts, record and logs.
pub fn is_sweep_entry(name: &str) -> bool {
    const OWN: [&str; 7] = [
        SWEEP_JSON,
        "results.md",
        "results.csv",
        "sensitivity.png",
        "best_so_far.png",
        slurm::RECORD,
        SLURM_LOG_DIR,
    ];
    let trial = |s: &str| {
        s.strip_prefix("trial-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    OWN.contains(&name)
        || slurm::is_script(name)
        || trial(name)
        || name
            .strip_prefix('.')
            .and_then(|s| s.strip_suffix(".lock"))
            .is_some_and(trial)
}
