//! Helpers of the hostile-input tests: the binary run under a memory cap and a timeout,
//! the "one clear line, exit 2" check, and byte snapshots of folders.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Address space the binary may use: a runaway allocation fails the test, not the box.
pub const MEMORY_CAP: u64 = 1536 << 20;
/// Longest any one command may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The binary with `args`, run in `cwd` under [`MEMORY_CAP`] (RLIMIT_AS).
pub fn command<S: AsRef<str>>(cwd: &Path, args: &[S]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rprop-lab"));
    c.current_dir(cwd)
        .args(args.iter().map(|a| a.as_ref()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: MEMORY_CAP,
                rlim_max: MEMORY_CAP,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c
}

/// Waits for a child, killing it (and failing the test) past [`TIMEOUT`].
pub fn wait(mut child: std::process::Child, what: &str) -> Output {
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if t0.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the binary capped (memory and time) and returns what it did.
pub fn run<S: AsRef<str>>(cwd: &Path, args: &[S]) -> Output {
    let shown: Vec<&str> = args.iter().map(|a| a.as_ref()).take(12).collect();
    wait(
        command(cwd, args).spawn().unwrap(),
        &format!("rprop-lab {}", shown.join(" ")),
    )
}

// The same success check and stderr text as the other CLI tests.
pub use super::common::{ok, stderr};

/// Asserts exit 2 and exactly one line on stderr, `error: ...` containing `needle`.
pub fn refused(o: &Output, needle: &str) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "expected exit 2, stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(needle), "missing {needle:?} in: {err}");
    assert!(
        lines[0].len() < 1200,
        "error line of {} bytes",
        lines[0].len()
    );
    lines[0].to_string()
}

/// Every file under `dir` (hidden ones too) with its bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.is_file() {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// Flags of a tiny CPU run on the dataset in `data` (see [`tiny_data`]).
pub fn tiny(data: &Path, epochs: u32) -> Vec<String> {
    [
        "--train-set-size",
        "200",
        "--train-batch-size",
        "200",
        "--eval-set-size",
        "100",
        "--eval-batch-size",
        "100",
        "--backend",
        "cpu",
        "-q",
        "--epochs",
        &epochs.to_string(),
        "--data-dir",
        data.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

/// A 28x28 dataset of 300 learning and 50 test images in `dir/data`.
pub fn tiny_data(dir: &Path) -> PathBuf {
    let d = dir.join("data");
    crate::common::write_dataset(&d, 300, 50, 28);
    d
}

/// `args` followed by `more`.
pub fn with(args: &[&str], more: &[String]) -> Vec<String> {
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    v.extend(more.iter().cloned());
    v
}

/// A finished 2-epoch rprop-plus run in `dir/name`.
pub fn trained(dir: &Path, data: &Path, name: &str) {
    ok(&run(
        dir,
        &with(
            &["train", "--optimizer", "rprop-plus", "--out", name],
            &tiny(data, 2),
        ),
    ));
}
