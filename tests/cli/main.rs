//! The command line end to end on small subsets (CPU backend): `train`, `test`, `compare`,
//! `plot`, `predict`, `samples`, `--help`, and one clear error line for each bad input.

#[path = "../common/mod.rs"]
mod common;

mod compare;
mod errors;
mod help;
mod lab;
mod newcomer;
mod predict;
mod train;

use std::path::{Path, PathBuf};

pub const SMALL: [&str; 10] = [
    "--train-set-size",
    "1000",
    "--train-batch-size",
    "1000",
    "--eval-set-size",
    "400",
    "--eval-batch-size",
    "400",
    "--backend",
    "cpu",
];

/// Trains irprop-plus for 12 epochs on 1000 images into `d/run`; returns the folder.
pub fn small_run(d: &Path) -> PathBuf {
    let out = d.join("run");
    let mut args = vec![
        "train",
        "--config",
        "configs/irprop-plus.json",
        "--epochs",
        "12",
    ];
    args.extend(SMALL);
    args.extend(["--out", out.to_str().unwrap(), "--quiet"]);
    common::ok(&common::run(&args));
    out
}
