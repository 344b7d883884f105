//! What the run tests share: MNIST subsets and the trainer's options for a quiet run.

use std::path::Path;

use rprop_lab::data::{self, Dataset, Part};
use rprop_lab::trainer::RunOptions;

/// `n` training and `n_eval` evaluation images from MNIST's learning set.
pub fn sets(n: usize, n_eval: usize) -> (Dataset, Dataset) {
    let learn = data::load(&crate::common::mnist_dir(), Part::Learn).unwrap();
    data::split(&learn, n, n_eval).unwrap()
}

/// A quiet run into `dir` that saves only at the end.
pub fn run_options(dir: &Path) -> RunOptions {
    RunOptions {
        out_dir: dir.to_path_buf(),
        quiet: true,
        progress: None,
        data_dir: None,
        save_every: None,
        replace: None,
        budget_evals: None,
        data_hash: None,
    }
}
