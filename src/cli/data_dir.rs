//! Where the data comes from: `--data-dir`, or the bundled MNIST found from any folder.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;

/// The bundled MNIST, relative to the repository.
pub const DEFAULT_DATA_DIR: &str = "data/mnist";

#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Folder with the four MNIST-shaped IDX .gz files (MNIST, Fashion-MNIST, ...)
    /// [default: the bundled MNIST, data/mnist].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DataArgs {
    pub fn dir(&self) -> Result<PathBuf> {
        given_or_bundled(&self.data_dir)
    }
}

#[derive(Args, Debug, Clone)]
pub struct TrainDataArgs {
    /// Folder with the four MNIST-shaped IDX .gz files (MNIST, Fashion-MNIST, ...)
    /// [default: the bundled MNIST, data/mnist; with --resume, the run's own].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl TrainDataArgs {
    pub fn dir(&self) -> Result<PathBuf> {
        given_or_bundled(&self.data_dir)
    }
}

#[derive(Args, Debug, Clone)]
pub struct TestDataArgs {
    /// Folder with the four MNIST-shaped IDX .gz files [default: the run's own, from the
    /// metrics.json beside the weights; else the bundled MNIST, data/mnist].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

fn given_or_bundled(dir: &Option<PathBuf>) -> Result<PathBuf> {
    match dir {
        Some(d) => Ok(d.clone()),
        None => bundled(),
    }
}

/// Whether `dir` holds the learning images (the bundled data's first file).
fn has_data(dir: &Path) -> bool {
    dir.join("train-images-idx3-ubyte.gz").is_file()
}

/// Where the repository's bundled files may be, in order: the current folder, the binary's
/// repository (`target/release/..`) and the source checkout it was built from, so the
/// binary finds them from any folder.
fn roots() -> Vec<PathBuf> {
    let mut c = vec![PathBuf::new()];
    if let Ok(exe) = std::env::current_exe() {
        // target/release/rprop-lab -> the repository root two folders up.
        c.extend(exe.ancestors().skip(1).take(3).map(Path::to_path_buf));
    }
    c.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    c
}

/// Where the bundled MNIST may be (see [`roots`]).
pub fn bundled_candidates() -> Vec<PathBuf> {
    roots().iter().map(|r| r.join(DEFAULT_DATA_DIR)).collect()
}

/// A bundled file (e.g. `configs/irprop-plus.json`) from the first root holding it; the
/// path as given when none does (so the error names it).
pub fn bundled_file(rel: &Path) -> PathBuf {
    roots()
        .iter()
        .map(|r| r.join(rel))
        .find(|p| p.is_file())
        .unwrap_or_else(|| rel.to_path_buf())
}

/// The bundled MNIST's folder, or an error saying where it looked.
pub fn bundled() -> Result<PathBuf> {
    let candidates = bundled_candidates();
    if let Some(d) = candidates.iter().find(|d| has_data(d)) {
        return Ok(d.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
    bail!(
        "the bundled MNIST was not found (looked in {}); pass --data-dir DIR",
        looked.join(", ")
    )
}
