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
        // target/release/rprop-lab -> the repository root two folders up; only a folder
        // holding the bundled files counts (an installed binary's ~/.cargo does not).
        c.extend(
            exe.ancestors()
                .skip(1)
                .take(3)
                .filter(|d| d.join("configs").is_dir() || d.join(DEFAULT_DATA_DIR).is_dir())
                .map(Path::to_path_buf),
        );
    }
    c.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    // The binary may sit in the checkout it was built from: each folder once.
    let mut seen = Vec::new();
    c.retain(|p| {
        let new = !seen.contains(p);
        seen.push(p.clone());
        new
    });
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

/// A config file as given: the path itself when it exists (or is absolute), else the same
/// relative path under the bundled roots (`configs/irprop-plus.json` from any folder);
/// an error lists every place it looked.
pub fn find_config(path: &Path) -> Result<PathBuf> {
    if path.exists() || path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let mut tried: Vec<PathBuf> = roots().iter().map(|r| r.join(path)).collect();
    // A bare name (`irprop-plus`) is a bundled config's: configs/irprop-plus.json.
    let name = bare_name(path);
    if let Some(n) = &name {
        let rel = Path::new("configs").join(format!("{n}.json"));
        tried.extend(roots().iter().map(|r| r.join(&rel)));
    }
    if let Some(p) = tried.iter().find(|p| p.is_file()) {
        return Ok(p.clone());
    }
    let looked: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    let stem = name.or_else(|| {
        let s = path.file_stem()?.to_str()?;
        Some(s.to_string())
    });
    let hint = stem
        .and_then(|s| {
            let names = bundled_config_names();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            crate::names::closest(&s, &names).map(|c| format!("; did you mean configs/{c}.json?"))
        })
        .unwrap_or_default();
    bail!(
        "{}: no such config file (looked in {}){hint}",
        path.display(),
        looked.join(", ")
    )
}

/// The name a path is when it is one plain word without an extension (`irprop-plus`).
fn bare_name(path: &Path) -> Option<String> {
    let mut comps = path.components();
    let only = comps.next().filter(|_| comps.next().is_none())?;
    let s = only.as_os_str().to_str()?;
    (path.extension().is_none() && !s.starts_with('.')).then(|| s.to_string())
}

/// The names of the bundled configs (`irprop-plus`, ...), from the first root holding them.
fn bundled_config_names() -> Vec<String> {
    let dir = roots()
        .iter()
        .map(|r| r.join("configs"))
        .find(|d| d.is_dir());
    let Some(entries) = dir.and_then(|d| std::fs::read_dir(d).ok()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.to_string();
            n.strip_suffix(".json").map(String::from)
        })
        .collect();
    names.sort();
    names
}

/// Config paths as given, each found as [`find_config`] does; a pattern the shell left
/// unexpanded (`configs/*.json`: a `*` in the file name) is expanded here, in the first
/// folder where it matches, sorted.
pub fn find_configs(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(pattern) = name.filter(|n| n.contains('*') && !path.exists()) else {
            out.push(find_config(path)?);
            continue;
        };
        let parent = path.parent().unwrap_or(Path::new(""));
        let dirs: Vec<PathBuf> = if parent.is_absolute() {
            vec![parent.to_path_buf()]
        } else {
            roots().iter().map(|r| r.join(parent)).collect()
        };
        let found = dirs.iter().find_map(|d| {
            let mut m: Vec<PathBuf> = std::fs::read_dir(d)
                .ok()?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.file_name()
                            .is_some_and(|n| glob_match(&pattern, &n.to_string_lossy()))
                })
                .collect();
            m.sort();
            (!m.is_empty()).then_some(m)
        });
        match found {
            Some(m) => out.extend(m),
            None => {
                let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                bail!(
                    "{}: no config file matches (looked in {})",
                    path.display(),
                    looked.join(", ")
                )
            }
        }
    }
    Ok(out)
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return name == pattern;
    }
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
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
