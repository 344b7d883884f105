//! File input and output that a hostile path cannot turn into a hang, a runaway
//! allocation or a lost file: bounded reads of regular files only, atomic writes that
//! leave no temp file behind, outputs that may not be inputs, and run folders replaced
//! only once the new run has something to show.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context, Result};

/// Size caps per kind of input file (a bigger file is refused before it is read).
pub const MAX_CONFIG: u64 = 1 << 20;
/// Every metrics file (metrics.json, .jsonl, .csv): above what any run writes (a
/// 1,000,000-epoch run of the deepest network, 5 layers of telemetry, writes about 1.5 GB
/// of metrics.json), so a run's own files are always read. Readers stream them with
/// bounded memory (see `metrics`), so the cap bounds the time a read takes, not memory.
pub const MAX_METRICS: u64 = 2 << 30;
/// A picture for `predict`.
pub const MAX_IMAGE: u64 = 64 << 20;
/// Weights of any network the memory estimate lets through, plus the header.
pub const MAX_WEIGHTS: u64 = 1 << 30;

/// Opens a regular file of at most `max` bytes for reading; returns it with its size. It is
/// opened without blocking (a FIFO opened for reading would wait for a writer forever) and
/// checked on the open file, so a FIFO, device or folder is refused even if it replaced a
/// regular file after a look at its name. `what` names the kind of file in errors
/// ("config", "weights", ...).
pub fn open_capped(path: &Path, what: &str, max: u64) -> Result<(fs::File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| cannot_read(path, what))?;
    let meta = file.metadata().with_context(|| cannot_read(path, what))?;
    if !meta.is_file() {
        bail!(
            "{}: cannot read {what}: not a regular file{}",
            path.display(),
            if meta.is_dir() { " (a folder)" } else { "" }
        );
    }
    if meta.len() > max {
        bail!(
            "{}: {what} file is {} bytes, more than the {max} a {what} file may have",
            path.display(),
            meta.len()
        );
    }
    Ok((file, meta.len()))
}

/// Reads a whole regular file of at most `max` bytes (see [`open_capped`]: FIFOs, devices
/// and folders are refused, a FIFO without blocking, `/dev/zero` before it is read); the
/// read stops at `max + 1` bytes even if the file grows meanwhile.
pub fn read_capped(path: &Path, what: &str, max: u64) -> Result<Vec<u8>> {
    let (file, len) = open_capped(path, what, max)?;
    let mut out = Vec::new();
    // A file the memory cannot hold is an error, not an abort.
    out.try_reserve_exact(len as usize).map_err(|_| {
        anyhow::anyhow!(
            "{}: {what} file of {len} bytes does not fit in memory",
            path.display()
        )
    })?;
    file.take(max + 1)
        .read_to_end(&mut out)
        .with_context(|| cannot_read(path, what))?;
    if out.len() as u64 > max {
        bail!("{}: {what} file grew past {max} bytes", path.display());
    }
    Ok(out)
}

/// [`read_capped`] as UTF-8 text.
pub fn read_text(path: &Path, what: &str, max: u64) -> Result<String> {
    String::from_utf8(read_capped(path, what, max)?)
        .map_err(|_| anyhow::anyhow!("{}: {what} file is not UTF-8 text", path.display()))
}

fn cannot_read(path: &Path, what: &str) -> String {
    format!("{}: cannot read {what}", path.display())
}

/// Prefix of every temp file: short (a temp name never overflows NAME_MAX, whatever the
/// target's name) and recognizable, so a run folder's leftovers can be cleared under its lock.
pub const TMP_PREFIX: &str = ".rl-tmp-";

/// A temporary name in `path`'s folder (same folder, so the rename is atomic), unique to
/// this process and call. The name is only a candidate: [`write_tmp`] creates it
/// exclusively and picks another if it is taken.
pub fn tmp_path(path: &Path) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!("{TMP_PREFIX}{}-{n}", std::process::id()))
}

/// Creates a new file at a fresh temp name beside `path`: exclusively and without following
/// links (`O_CREAT|O_EXCL|O_NOFOLLOW`), so a planted file or link is never written through.
fn create_tmp(path: &Path) -> std::io::Result<(PathBuf, fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut last = None;
    for _ in 0..64 {
        let tmp = tmp_path(path);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(0o644)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temp name")))
}

/// Opens `path` for appending without following a link (a planted link is refused, not
/// written through), creating it if missing.
pub fn open_append(path: &Path) -> Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fault_point();
    fs::OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o644)
        .open(path)
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// Appends `bytes` to `path` (see [`open_append`]) and flushes them to disk.
pub fn append(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = open_append(path)?;
    f.write_all(bytes)
        .and_then(|_| f.sync_data())
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// Removes the temp files ([`TMP_PREFIX`]) that writers no longer alive left in `dir`. A
/// temp's name holds its writer's PID: one of another live process (a `plot --out
/// DIR/x.png` in progress) is left alone; one of this process is not its own (its writes
/// end before they return), so it is a leftover, or planted. Only called by the holder of
/// the folder's run lock.
pub fn clear_tmps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(TMP_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<i32>().ok())
            .filter(|&p| p > 0);
        let own = std::process::id() as i32;
        if pid.is_some_and(|p| p == own || !alive(p)) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Whether process `pid` exists (signal 0 checks without sending; EPERM: it exists, as
/// another user's).
fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 sends nothing.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The function called at each filesystem step (see [`fault_point`]); none unless a
/// program registers one ([`set_fault_hook`]).
static FAULT_HOOK: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Registers `hook`, called at every filesystem step the crash-safety tests stop at:
/// creating and filling a temp, each rename, each append, each folder created, moved or
/// removed. The shipped binary registers none, so nothing in its environment can stop
/// it there; the tests' own build of the command line (examples/fault_inject.rs) registers
/// one that dies, as by SIGKILL, at a chosen step. Returns false if a hook was already set.
pub fn set_fault_hook(hook: fn()) -> bool {
    FAULT_HOOK.set(hook).is_ok()
}

/// A filesystem step: calls the registered hook, if any (unset, it costs one load).
pub fn fault_point() {
    if let Some(hook) = FAULT_HOOK.get() {
        hook();
    }
}

/// Writes `bytes` to `path` atomically: into a temp sibling first, flushed to disk, then
/// renamed over `path`, so a crash leaves either the old file or the new one, never half
/// of one. On any failure the temp file is removed (a full disk does not stay full).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// [`write_atomic`] of what `fill` writes (through a buffer, so no full copy of a large
/// file is built in memory first).
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let _write = crate::signals::critical();
    let tmp = write_tmp(path, fill)?;
    commit_tmps(&[(tmp, path.to_path_buf())])
}

/// Writes what `fill` writes into the temp sibling of `path` ([`tmp_path`]), flushed to
/// disk, and returns the temp's path; on failure the temp is removed and the error names
/// `path`. [`commit_tmps`] then renames it into place.
pub fn write_tmp(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<PathBuf> {
    fault_point();
    let (tmp, file) =
        create_tmp(path).with_context(|| format!("{}: cannot write", path.display()))?;
    let result = (|| -> std::io::Result<()> {
        let mut f = std::io::BufWriter::with_capacity(1 << 16, file);
        fill(&mut f)?;
        f.into_inner().map_err(|e| e.into_error())?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(tmp)
}

/// Renames temps written by [`write_tmp`] onto their targets, in order. Every byte is on
/// disk before the first rename, so files saved together (last weights and optimizer
/// state) are replaced together: a full disk fails before any of them changes. On a
/// failure the temps not yet renamed are removed.
pub fn commit_tmps(pairs: &[(PathBuf, PathBuf)]) -> Result<()> {
    let _save = crate::signals::critical();
    for (i, (tmp, path)) in pairs.iter().enumerate() {
        fault_point();
        if let Err(e) = fs::rename(tmp, path) {
            for (t, _) in &pairs[i..] {
                let _ = fs::remove_file(t);
            }
            return Err(e).with_context(|| format!("{}: cannot write", path.display()));
        }
    }
    // The renames reach the disk with the folder's entries (best effort: not every file
    // system lets a folder be synced).
    for (_, path) in pairs {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = fs::File::open(dir).and_then(|d| d.sync_all());
        }
    }
    Ok(())
}

/// Removes temps written by [`write_tmp`] (a save of several files that failed midway).
pub fn discard_tmps(tmps: &[PathBuf]) {
    for t in tmps {
        let _ = fs::remove_file(t);
    }
}

/// The absolute, symlink-free form of a path that may not exist yet (its folder must).
fn resolved(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(parent.canonicalize().ok()?.join(path.file_name()?))
}

/// Refuses an output path that is one of the command's input files (writing it would
/// destroy the input before, or instead of, reading it).
pub fn check_not_input(out: &Path, inputs: &[&Path]) -> Result<()> {
    let Some(o) = resolved(out) else {
        return Ok(());
    };
    for input in inputs {
        if resolved(input).is_some_and(|i| i == o) {
            bail!(
                "--out {}: is also an input ({}); choose another output file",
                out.display(),
                input.display()
            );
        }
    }
    Ok(())
}

/// Refuses a picture output whose extension is not `.png` (the only format written), so
/// `--out x.jpg` never holds PNG bytes and `--out run/best.safetensors` is not clobbered.
pub fn check_png_out(out: &Path) -> Result<()> {
    if out.file_name().is_some_and(is_reserved) {
        check_not_reserved(out).with_context(|| "--out".to_string())?;
    }
    let ext = out.extension().map(|e| e.to_string_lossy().to_lowercase());
    if ext.as_deref() != Some("png") {
        bail!(
            "--out {}: charts and digit grids are written as PNG; give a file name ending in .png",
            out.display()
        );
    }
    Ok(())
}

/// A hidden sibling of `dir` named after it with `suffix` (same file system, so renames
/// between them are atomic).
/// A name too long for NAME_MAX with the dot and suffix is cut and given a hash of the
/// whole name, so a legal-length folder name always has its siblings.
pub fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    const NAME_MAX: usize = 255;
    let base = dir.file_name().unwrap_or_default().as_bytes();
    let mut name = b".".to_vec();
    if 1 + base.len() + suffix.len() <= NAME_MAX {
        name.extend(base);
    } else {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in base {
            h = (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        let tag = format!("~{h:016x}");
        name.extend(&base[..NAME_MAX - 1 - suffix.len() - tag.len()]);
        name.extend(tag.as_bytes());
    }
    name.extend(suffix.as_bytes());
    dir.with_file_name(std::ffi::OsString::from_vec(name))
}

/// Suffix of the folder a `--force` run writes into until it replaces the old run.
pub const NEW_RUN: &str = ".new-run";

/// Swaps two folders atomically (Linux `renameat2(RENAME_EXCHANGE)`): there is no moment
/// at which either path is missing, so a SIGKILL cannot lose the old run. Falls back to
/// two renames where the file system lacks the call.
pub fn exchange_dirs(a: &Path, b: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let ca = CString::new(a.as_os_str().as_bytes())?;
        let cb = CString::new(b.as_os_str().as_bytes())?;
        // SAFETY: two valid NUL-terminated paths; the call only reads them.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                ca.as_ptr(),
                libc::AT_FDCWD,
                cb.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
    }
    // Not atomic: a kill between the renames leaves `b`'s folder aside, which
    // [`recover_dir`] puts back. The marker names that folder (device and inode), so a
    // folder of the user's that happens to bear the aside name is never moved.
    let aside = sibling(b, SWAP);
    let marker = sibling(b, SWAP_MARKER);
    let id = fs::symlink_metadata(b)
        .map(|m| dir_id(&m))
        .with_context(|| format!("{}: cannot move aside", b.display()))?;
    write_atomic(&marker, id.as_bytes())?;
    fs::rename(b, &aside).with_context(|| format!("{}: cannot move aside", b.display()))?;
    fs::rename(a, b).with_context(|| format!("{}: cannot move into place", b.display()))?;
    fs::rename(&aside, a).with_context(|| format!("{}: cannot move", a.display()))?;
    let _ = fs::remove_file(&marker);
    Ok(())
}

/// Suffix of the folder [`exchange_dirs`]'s fallback moves aside, and of its marker.
const SWAP: &str = ".swap";
const SWAP_MARKER: &str = ".swapping";

/// A folder's identity for the swap marker: "DEV INO".
fn dir_id(m: &fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("{} {}", m.dev(), m.ino())
}

/// Puts a run folder back after a crash in the middle of [`exchange_dirs`]'s fallback
/// (only the folder its marker names), and clears a `--force` run's leftover folder: its
/// run files and temp files (only this tool writes there), then the folder if that
/// emptied it. A file of the user's there is never deleted; [`crate::run_folder::out_dir_for`]
/// then refuses to write there, naming it.
pub fn recover_dir(dir: &Path, run_files: &[&str]) {
    let aside = sibling(dir, SWAP);
    let marker = sibling(dir, SWAP_MARKER);
    // The marker is a device and inode number: a few bytes, read without blocking.
    let marked = read_text(&marker, "swap marker", 4096).ok();
    if let Some(id) = marked {
        let ours = fs::symlink_metadata(&aside).is_ok_and(|m| m.is_dir() && dir_id(&m) == id);
        if !dir.exists() && ours {
            let _ = fs::rename(&aside, dir);
        }
        if !aside.exists() || dir.exists() {
            let _ = fs::remove_file(&marker);
        }
    }
    let stale = sibling(dir, NEW_RUN);
    if fs::symlink_metadata(&stale).is_ok_and(|m| m.is_dir()) {
        if let Ok(entries) = fs::read_dir(&stale) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        for f in run_files {
            let _ = fs::remove_file(stale.join(f));
        }
        let _ = fs::remove_dir(&stale);
    }
}

/// The entries of `dir` that are neither run files (`run_files`) nor temp files: what a
/// user put there.
pub fn foreign_entries(dir: &Path, run_files: &[&str]) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(TMP_PREFIX) && !run_files.contains(&n.as_str()))
        .collect();
    out.sort();
    out
}

/// Whether a folder name is one of this tool's own: a run's lock file, `--force` folder,
/// swap folder or marker (`.NAME.lock`, `.NAME.new-run`, `.NAME.swap`, `.NAME.swapping`),
/// or a temp file. A run of NAME clears or moves these, so no run may be named so.
pub fn is_reserved(name: &std::ffi::OsStr) -> bool {
    let n = name.to_string_lossy();
    let sibling =
        |suffix: &str| n.len() > suffix.len() + 1 && n.starts_with('.') && n.ends_with(suffix);
    n.starts_with(TMP_PREFIX)
        || [".lock", NEW_RUN, SWAP, SWAP_MARKER]
            .into_iter()
            .any(sibling)
}

/// Refuses a run folder `dir` whose name is reserved ([`is_reserved`]).
pub fn check_not_reserved(dir: &Path) -> Result<()> {
    if let Some(name) = dir.file_name().filter(|n| is_reserved(n)) {
        bail!(
            "{}: `{}` has the form of this tool's own files (`.NAME.lock`, `.NAME.new-run`, `.NAME.swap`, `.NAME.swapping`, `.rl-tmp-*`), which a run of NAME clears or moves; choose another name",
            dir.display(),
            crate::limits::cut(&name.to_string_lossy())
        );
    }
    Ok(())
}

/// Removes a folder's run files, then the folder if that left it empty.
pub fn remove_run_dir(dir: &Path, run_files: &[&str]) {
    for f in run_files {
        let _ = fs::remove_file(dir.join(f));
    }
    if fs::remove_dir(dir).is_err() && dir.exists() {
        eprintln!(
            "warning: {} holds files other than a run's; left in place",
            dir.display()
        );
    }
}

/// Moves the entries of `from` other than `skip` (a run's files) that `to` lacks into
/// `to`: a replaced run folder's other files (notes, charts) follow the new run.
pub fn move_other_entries(from: &Path, to: &Path, skip: &[&str]) -> Result<()> {
    for entry in fs::read_dir(from).with_context(|| format!("{}: cannot list", from.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let target = to.join(&name);
        if !skip.iter().any(|s| name == *s) && !target.exists() {
            fs::rename(entry.path(), &target)
                .with_context(|| format!("{}: cannot move", entry.path().display()))?;
        }
    }
    Ok(())
}
