//! A run folder's life: its path resolved before anything else, an advisory lock held by
//! its one writer for the whole run, a `--force` run built beside it and swapped in, saves
//! with one commit point, and the checks a resume makes of what the checkpoint recorded.
//! See docs/guarantees.md.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::Config;
use crate::fsio;
use crate::optim::OptimState;

pub mod resume;
mod save;
mod state_check;
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

/// The advisory lock of one run folder, held while the value lives (the kernel drops it
/// when the process dies). It is the file `.NAME.lock` beside the folder, so it exists
/// before the folder or its `.NAME.new-run` sibling does and survives their swap; it
/// holds the holder's PID, which flock cannot report. Readers take no lock.
#[derive(Debug)]
pub struct RunLock {
    file: fs::File,
    /// The lock file's name, removed on drop (None: not ours to remove).
    path: Option<PathBuf>,
}

impl Drop for RunLock {
    /// Removes the lock file, then (on close) releases the lock. A process that opened
    /// the file before the removal finds, once it holds the lock, that the name no longer
    /// leads to its file, and starts over ([`lock`]). A killed holder leaves the file.
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = fs::remove_file(p);
        }
    }
}

/// Takes `dir`'s lock, or refuses at once naming the process that holds it. `dir`'s
/// parent folder must exist (see [`lock_creating`]).
pub fn lock(dir: &Path) -> Result<RunLock> {
    use std::os::unix::fs::MetadataExt;
    let path = fsio::sibling(dir, ".lock");
    for _ in 0..100 {
        let lock = lock_file(dir, &path)?;
        // Held; but a holder that just ended may have removed this file's name.
        let same = fs::symlink_metadata(&path)
            .ok()
            .zip(lock.file.metadata().ok())
            .is_some_and(|(a, b)| a.ino() == b.ino() && a.dev() == b.dev());
        if same {
            lock.file
                .set_len(0)
                .and_then(|_| (&lock.file).write_all(std::process::id().to_string().as_bytes()))
                .with_context(|| format!("{}: cannot write", path.display()))?;
            return Ok(lock);
        }
        // Not ours to remove: released (on drop) without removing the name.
        let mut lock = lock;
        lock.path = None;
    }
    bail!(
        "{}: cannot take the lock (it keeps changing)",
        path.display()
    )
}

/// Opens (creating) the lock file `path` of `dir` and takes its lock, or refuses naming
/// the holder.
fn lock_file(dir: &Path, path: &Path) -> Result<RunLock> {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o644)
        .open(path)
        .with_context(|| format!("{}: cannot create the run's lock file", path.display()))?;
    // SAFETY: flock on a file descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(err).with_context(|| format!("{}: cannot lock", path.display()));
        }
        // The holder writes its PID right after taking the lock.
        let mut pid = String::new();
        for _ in 0..20 {
            pid.clear();
            let _ = (&file).read_to_string(&mut pid);
            let _ = std::io::Seek::rewind(&mut file);
            if !pid.trim().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let pid = pid.trim();
        bail!(
            "{}: another rprop-lab process (PID {}) is writing this run; wait for it to end or stop it (lock {})",
            dir.display(),
            if pid.is_empty() || pid.len() > 12 { "unknown" } else { pid },
            path.display()
        );
    }
    Ok(RunLock {
        file,
        path: Some(path.to_path_buf()),
    })
}

/// Whether a live process holds `dir`'s lock (a killed holder's leftover file is not held).
/// For readers that report on runs (`sweep status`): the probe holds a shared lock for an
/// instant, which a writer starting at that instant would find taken.
pub fn lock_held(dir: &Path) -> bool {
    let path = fsio::sibling(dir, ".lock");
    let Ok(file) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
    else {
        return false;
    };
    // SAFETY: flock on a file descriptor this function owns; closing it releases the lock.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
}

/// [`lock`], creating `dir`'s parent folders first (call only once every check passed).
pub fn lock_creating(dir: &Path) -> Result<RunLock> {
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("{}: cannot create folder", parent.display()))?;
    }
    lock(dir)
}

/// [`lock`] if `dir`'s parent exists now (no folder is created before the checks); None
/// when it does not, and then no run can be there yet.
pub fn lock_early(dir: &Path) -> Result<Option<RunLock>> {
    match dir.parent() {
        Some(p) if p.is_dir() => lock(dir).map(Some),
        _ => Ok(None),
    }
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
    Ok((new, Some(dir)))
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
