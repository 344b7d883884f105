//! A run folder's life: its path resolved before anything else, an advisory lock held by
//! its one writer for the whole run, a `--force` run built beside it and swapped in, saves
//! with one commit point, and the checks a resume makes of what the checkpoint recorded.
//! See docs/guarantees.md.

use std::fs;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::Config;
use crate::fsio;
use crate::optim::OptimState;

mod lock;
pub mod resume;
mod save;
mod state_check;
pub use lock::{hold, lock, lock_creating, lock_early, lock_held, RunLock};
pub use resume::Start;
pub use save::{data_fingerprint, Folder};

pub const BEST: &str = "best.safetensors";
pub const LAST: &str = "last.safetensors";
/// The optimizer state saved with the last weights, for `--resume`: the save's commit point.
pub const STATE: &str = "optimizer.safetensors";

/// Files of a run, which `--force` clears before a new run writes there.
pub const RUN_FILES: [&str; 7] = [
    BEST,
    LAST,
    STATE,
    crate::metrics::JSON,
    crate::metrics::JSONL,
    crate::metrics::CSV,
    "config.json",
];

/// The absolute form of `path` with every `..` applied to the folder it names: the
/// longest existing prefix by its real path (links resolved, as the kernel would), the
/// rest (which does not exist, so holds no link) lexically. `missing/../A` is `A`, so
/// a check of `A` sees the run there, and nothing creates `missing/`.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let abs =
        std::path::absolute(path).with_context(|| format!("{}: cannot resolve", path.display()))?;
    let comps: Vec<Component> = abs.components().collect();
    let mut i = comps.len();
    let mut base = loop {
        let prefix: PathBuf = comps[..i].iter().collect();
        if let Ok(real) = prefix.canonicalize() {
            break real;
        }
        if i <= 1 {
            break prefix;
        }
        i -= 1;
    };
    for c in &comps[i..] {
        match c {
            Component::ParentDir => {
                base.pop();
            }
            Component::Normal(n) => base.push(n),
            _ => {}
        }
    }
    Ok(base)
}

/// Under the lock: puts back a folder a crash left mid-swap, clears a `--force` run's
/// leftover sibling and the temp files a killed writer left in the folder.
pub fn recover(dir: &Path) {
    fsio::recover_dir(dir, &RUN_FILES);
    if dir.is_dir() {
        fsio::clear_tmps(dir);
    }
}

/// Puts the new run in `new` where the old run in `old` was: the two folders are
/// exchanged atomically, the old folder's other files (not a run's) move to the new one,
/// and the old run's files are removed.
pub fn replace_run(new: &Path, old: &Path) -> Result<()> {
    fsio::fault_point();
    // A writer that runs in `old` (its lock file removed from under it) keeps its folder.
    if old.is_dir() {
        hold(old)?;
    }
    if !old.exists() {
        return fs::rename(new, old)
            .with_context(|| format!("{}: cannot move the new run into place", old.display()));
    }
    fsio::exchange_dirs(new, old)?;
    // `new` now holds the old run.
    fsio::move_other_entries(new, old, &RUN_FILES)?;
    fsio::remove_run_dir(new, &RUN_FILES);
    Ok(())
}

/// Where a new run for `dir` (resolved, see [`resolve`]) writes: a fresh hidden sibling
/// that takes `dir`'s place once the first epoch is saved (the second value, for
/// [`crate::trainer::RunOptions::replace`]), so a run failing before that leaves nothing
/// behind, and with `force`, an old run in `dir` stays as it was. Refuses a folder holding
/// a run without `force`. Nothing is written here.
pub fn out_dir_for(dir: &Path, force: bool) -> Result<(PathBuf, Option<PathBuf>)> {
    fsio::check_not_reserved(dir)?;
    if dir.exists() && !dir.is_dir() {
        bail!("--out {}: is a file, not a folder", dir.display());
    }
    if let Some(c) = dir.components().find(|c| c.as_os_str().len() > 255) {
        bail!(
            "--out {}: a name of {} bytes; a file system allows at most 255",
            dir.display(),
            c.as_os_str().len()
        );
    }
    prepare_out_dir(dir, force)?;
    let dir = resolve(dir)?;
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|c| c.canonicalize().ok());
    let holds_cwd = dir.parent().is_none() || cwd.is_some_and(|c| c.starts_with(&dir));
    if holds_cwd && !RUN_FILES.iter().any(|f| dir.join(f).exists()) {
        // Nothing to replace: write in place (`--out .` in an empty folder).
        return Ok((dir, None));
    }
    if holds_cwd {
        bail!(
            "--out {}: --force replaces the whole run folder, which cannot be the current folder or one above it; use a sub-folder",
            dir.display()
        );
    }
    let new = fsio::sibling(&dir, fsio::NEW_RUN);
    // A leftover of a killed run is cleared under the lock ([`recover`]), but what a user
    // put there is not: the new run would carry it into its folder.
    let foreign = fsio::foreign_entries(&new, &RUN_FILES);
    if !foreign.is_empty() {
        bail!(
            "{}: a folder left by an earlier run holds files that are not a run's ({}); move them out or remove it, then run again",
            new.display(),
            crate::limits::cut(&foreign.join(", "))
        );
    }
    if dir.is_dir() && !writable(&dir) {
        bail!(
            "--out {}: the folder is not writable, so a new run could not take its place and clear the old one; make it writable (chmod u+w {}) or choose another --out",
            dir.display(),
            dir.display()
        );
    }
    Ok((new, Some(dir)))
}

/// Whether this process may create and remove entries in the folder `dir`.
fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path, only read.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// Refuses to write into a folder holding another run unless `force`.
pub fn prepare_out_dir(dir: &Path, force: bool) -> Result<()> {
    let existing: Vec<&str> = RUN_FILES
        .iter()
        .copied()
        .filter(|f| dir.join(f).exists())
        .collect();
    if existing.is_empty() || force {
        return Ok(());
    }
    bail!(
        "{} already holds a run ({}); pass --force to overwrite it, --resume {} to continue it, or --out DIR for a new folder",
        dir.display(),
        existing.join(", "),
        dir.display()
    );
}

/// The keys of the config a checkpoint recorded (`recorded`, its JSON text) whose values
/// differ from `cfg`'s, other than `epochs` (which a resume may raise).
pub fn config_changes(recorded: &str, cfg: &Config) -> Result<Vec<String>> {
    let then = Config::parse_unchecked(recorded)
        .context("the config the checkpoint recorded cannot be read")?
        .to_json();
    let now = cfg.to_json();
    let (Some(then), Some(now)) = (then.as_object(), now.as_object()) else {
        bail!("a config is not a JSON object");
    };
    let mut keys: Vec<&String> = then.keys().chain(now.keys()).collect();
    keys.sort();
    keys.dedup();
    Ok(keys
        .into_iter()
        .filter(|k| *k != "epochs" && then.get(*k) != now.get(*k))
        .map(|k| {
            let show = |v: Option<&serde_json::Value>| {
                crate::config::cut(&v.map_or("nothing".into(), |v| v.to_string()))
            };
            format!(
                "{k} ({} now, {} recorded)",
                show(now.get(k)),
                show(then.get(k))
            )
        })
        .collect())
}

/// Refuses an optimizer state a run cannot continue from: non-finite values anywhere,
/// and, for the Rprop family, step sizes outside the bounds the config sets (or the
/// initial step size, which may lie outside them).
pub fn check_state(state: &OptimState, cfg: &Config) -> Result<()> {
    for (name, v) in [
        ("step", &state.step),
        ("prev_grad", &state.prev_grad),
        ("prev_change", &state.prev_change),
    ] {
        if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            bail!("tensor `{name}` holds a non-finite value ({x}) at index {i}");
        }
    }
    if state.prev_loss.is_nan() || state.prev_loss == f32::NEG_INFINITY {
        bail!("metadata `prev_loss_bits` is {}", state.prev_loss);
    }
    if cfg.optimizer.traits().sign_based {
        let h = &cfg.hyper;
        let lo = h.step_min.min(h.lr).max(0.0);
        let hi = h.step_max.max(h.lr);
        let bad = |x: f32| x < lo || x > hi || (x == 0.0 && lo > 0.0) || x < 0.0;
        if let Some((i, x)) = state.step.iter().enumerate().find(|(_, x)| bad(**x)) {
            bail!(
                "tensor `step` holds {x} at index {i}, outside the step sizes {lo}..={hi} the config allows"
            );
        }
    }
    Ok(())
}
