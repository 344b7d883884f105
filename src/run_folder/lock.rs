//! One writer per run folder. The lock is an advisory `flock` on the file `.NAME.lock`
//! beside the folder (it exists before the folder or its `.NAME.new-run` sibling does, and
//! it holds its holder's PID), backed by a `flock` on each folder the writer writes: the
//! run folder and its `.NAME.new-run` sibling where they exist when the lock is taken, and
//! the folder a run creates, from its creation ([`hold`]). A lock file removed or replaced
//! under a live writer therefore never lets a second writer in: that writer finds the
//! folders held. The kernel drops every lock when its holder dies. Readers take none.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

use crate::fsio;

/// The advisory lock of one run folder, held while the value lives. Dropping it releases
/// the folders it holds and removes the lock file, if the name still leads to its own.
#[derive(Debug)]
pub struct RunLock {
    file: fs::File,
    /// The lock file's name, removed on drop (None: not ours to remove).
    path: Option<PathBuf>,
    /// This lock's entry in [`HELD`].
    id: u64,
}

/// The folders each live [`RunLock`] of this process holds: (lock id, run folder, the
/// held folders' open files). A `flock` belongs to its open file, so one process taking a
/// folder twice would refuse itself; [`hold`] looks here first.
static HELD: Mutex<Vec<(u64, PathBuf, Vec<fs::File>)>> = Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<(u64, PathBuf, Vec<fs::File>)>> {
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for RunLock {
    /// Releases the folders, then removes the lock file, but only while its name leads to
    /// the file this lock holds (a file put there by anyone else is left alone), then (on
    /// close) releases the lock. A process that opened the file before the removal finds,
    /// once it holds the lock, that the name no longer leads to its file, and starts over
    /// ([`lock`]). A killed holder leaves the file.
    fn drop(&mut self) {
        held().retain(|(id, _, _)| *id != self.id);
        if let Some(p) = &self.path {
            if same_file(p, &self.file) {
                let _ = fs::remove_file(p);
            }
        }
    }
}

/// Whether the name `path` (not followed if a link) leads to the open file `file`.
fn same_file(path: &Path, file: &fs::File) -> bool {
    fs::symlink_metadata(path)
        .ok()
        .zip(file.metadata().ok())
        .is_some_and(|(a, b)| a.ino() == b.ino() && a.dev() == b.dev())
}

/// Takes `dir`'s lock, or refuses at once naming the process that holds it. `dir`'s
/// parent folder must exist (see [`lock_creating`]).
pub fn lock(dir: &Path) -> Result<RunLock> {
    static IDS: AtomicU64 = AtomicU64::new(0);
    fsio::check_not_reserved(dir)?;
    let path = fsio::sibling(dir, ".lock");
    for _ in 0..100 {
        let mut lock = lock_file(dir, &path)?;
        // Held; but a holder that just ended may have removed this file's name.
        if !same_file(&path, &lock.file) {
            // Not ours to remove: released (on drop) without removing the name.
            lock.path = None;
            continue;
        }
        lock.file
            .set_len(0)
            .and_then(|_| (&lock.file).write_all(std::process::id().to_string().as_bytes()))
            .with_context(|| format!("{}: cannot write", path.display()))?;
        lock.id = IDS.fetch_add(1, Ordering::Relaxed) + 1;
        held().push((lock.id, dir.to_path_buf(), Vec::new()));
        // The folders a live writer holds: taken, or refused if a writer whose lock file
        // was removed holds them (this lock, dropped, removes its own file only).
        for d in [dir.to_path_buf(), fsio::sibling(dir, fsio::NEW_RUN)] {
            if fs::symlink_metadata(&d).is_ok_and(|m| m.is_dir()) {
                hold(&d)?;
            }
        }
        return Ok(lock);
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
    if try_flock(&file).with_context(|| format!("{}: cannot lock", path.display()))? {
        return Ok(RunLock {
            file,
            path: Some(path.to_path_buf()),
            id: 0,
        });
    }
    // The holder writes its PID right after taking the lock.
    let mut text = String::new();
    for _ in 0..20 {
        text.clear();
        let _ = (&mut file).take(64).read_to_string(&mut text);
        let _ = std::io::Seek::rewind(&mut file);
        if !text.trim().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Only digits are shown: the file's bytes are anyone's, escape sequences included.
    let pid = text
        .trim()
        .parse::<u32>()
        .ok()
        .or_else(|| holder_pid(&file));
    bail!(
        "{}: another rprop-lab process (PID {}) is writing this run; wait for it to end or stop it (lock {})",
        dir.display(),
        pid.map_or("unknown".into(), |p| p.to_string()),
        path.display()
    )
}

/// Takes `file`'s exclusive lock without waiting: false when another open file holds it.
fn try_flock(file: &fs::File) -> std::io::Result<bool> {
    // SAFETY: flock on a file descriptor the caller owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        true => Ok(false),
        false => Err(err),
    }
}

/// The PID the kernel lists (`/proc/locks`) as holding a `flock` on `file`.
fn holder_pid(file: &fs::File) -> Option<u32> {
    let m = file.metadata().ok()?;
    let (major, minor) = (libc::major(m.dev()), libc::minor(m.dev()));
    let id = format!("{major:02x}:{minor:02x}:{}", m.ino());
    let locks = fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"
        (f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&id.as_str()))
            .then(|| f.get(4)?.parse().ok())
            .flatten()
    })
}

/// Holds a `flock` on the folder `dir` for the writer of the run it belongs to: under the
/// [`RunLock`] of this process whose run folder is `dir` or whose `.NAME.new-run` sibling
/// it is (held until that lock drops; `None` is returned), or else for the caller, who
/// keeps the returned file as long as it writes there (a run started without a lock, as
/// in-process tests start them). Refused, naming the folder, when another process holds
/// it: a second writer whose lock file was removed from under the first.
pub fn hold(dir: &Path) -> Result<Option<fs::File>> {
    // By its real path: `--resume LINK` holds the folder the link leads to.
    let real = super::resolve(dir)?;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&real)
        .with_context(|| format!("{}: cannot open the run folder", dir.display()))?;
    let meta = file.metadata()?;
    let mut all = held();
    let owner = all
        .iter_mut()
        .find(|(_, run, _)| *run == real || fsio::sibling(run, fsio::NEW_RUN) == real);
    if let Some((_, _, dirs)) = &owner {
        let same = |f: &fs::File| {
            f.metadata()
                .is_ok_and(|m| m.ino() == meta.ino() && m.dev() == meta.dev())
        };
        if dirs.iter().any(same) {
            return Ok(None);
        }
    }
    if !try_flock(&file).with_context(|| format!("{}: cannot lock", dir.display()))? {
        bail!(
            "{}: another rprop-lab process (PID {}) is writing this folder (its lock file {} was removed or replaced); wait for it to end or stop it",
            dir.display(),
            holder_pid(&file).map_or("unknown".into(), |p| p.to_string()),
            fsio::sibling(&real, ".lock").display()
        );
    }
    match owner {
        Some((_, _, dirs)) => {
            dirs.push(file);
            Ok(None)
        }
        None => Ok(Some(file)),
    }
}

/// Whether a live process holds `dir`'s lock (a killed holder's leftover file is not held).
/// For readers that report on runs (`sweep status`): it asks the kernel's lock table
/// (`/proc/locks`) and takes no lock itself, so a writer starting at the same instant is
/// never refused because of it.
pub fn lock_held(dir: &Path) -> bool {
    let path = fsio::sibling(dir, ".lock");
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(&path)
        .ok()
        .and_then(|f| holder_pid(&f))
        .is_some()
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
