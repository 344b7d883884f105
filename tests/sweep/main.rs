//! `sweep`: the space files and their errors, the sampling, one trial alone against the
//! local executor, a sweep stopped by SIGINT and resumed, the report and the status, on tiny
//! trials (a few hundred images, a few epochs) through the binary under a memory cap.

#[path = "../guarantees/capped.rs"]
mod capped;
#[path = "../common/mod.rs"]
mod common;

mod errors;
mod local;
mod run_trial;
mod sampling;
mod signals;
mod spaces;
mod threads;

use std::path::{Path, PathBuf};

// clap's own checks of the command line (conflicting names, the sweep's subcommands beside
// its options), which a release build does not run by itself.
#[test]
fn the_command_line_is_well_formed() {
    use clap::CommandFactory;
    rprop_lab::cli::Cli::command().debug_assert();
}

/// The options of every tiny sweep: 200 train and 100 eval images of the dataset in
/// `data`, `epochs` epochs, the CPU backend.
pub fn tiny(data: &Path, epochs: u32) -> Vec<String> {
    [
        "--train-set-size",
        "200",
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

/// Writes `text` as the space file `dir/name`; returns its path.
pub fn space(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Six trials: Adam and SGD at three learning rates, one of them (1e38) so large that both
/// diverge in their first epoch.
pub const SIX: &str = r#"{
  "base": {"optimizer": "irprop-plus", "hidden": [16]},
  "search": "grid",
  "keys": {
    "optimizer": {"choice": ["adam", "sgd"]},
    "learning_rate": {"choice": [0.001, 0.01, 1e38]}
  }
}"#;

/// Six trials drawn at random: two optimizers, a log-uniform learning rate, two networks.
pub const RANDOM: &str = r#"{
  "search": "random",
  "trials": 6,
  "keys": {
    "optimizer": {"choice": ["irprop-plus", "adam"]},
    "learning_rate": {"log_uniform": [1e-4, 1e-2]},
    "hidden": {"choice": [[16], [12, 8]]}
  }
}"#;

/// `sweep` with `args` then `more`, in `cwd`, capped; returns what it did.
pub fn sweep(cwd: &Path, args: &[&str], more: &[String]) -> std::process::Output {
    let mut v: Vec<String> = std::iter::once("sweep")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    v.extend(more.iter().cloned());
    capped::run(cwd, &v)
}

/// The trial folders' names in `out`, sorted.
pub fn trial_dirs(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("trial-"))
        .collect();
    v.sort();
    v
}

/// Asserts two sweeps' trials ended with the same weights and optimizer state, bit for bit.
pub fn assert_same_trials(a: &Path, b: &Path) {
    let names = trial_dirs(a);
    assert_eq!(names, trial_dirs(b));
    for n in &names {
        let (x, y) = (a.join(n), b.join(n));
        let done = x.join("optimizer.safetensors").exists();
        assert_eq!(done, y.join("optimizer.safetensors").exists(), "{n}");
        if done {
            common::assert_same_checkpoints(&x, &y);
        }
        let status = |d: &Path| {
            let t = std::fs::read_to_string(d.join("trial.json")).unwrap();
            t.contains("\"done\"")
        };
        assert_eq!(status(&x), status(&y), "{n}");
    }
}
