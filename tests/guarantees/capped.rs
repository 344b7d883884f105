//! Helpers of the guarantee tests: the binary run under a memory cap and a timeout, the "one
//! clear line, exit 2" check, byte snapshots of folders, and the tiny runs they start from.
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
    command_of(
        Path::new(env!("CARGO_BIN_EXE_rprop-lab")),
        cwd,
        args,
        MEMORY_CAP,
    )
}

/// The tests' build of the command line with fault injection (examples/fault_inject.rs)
/// with `args`, capped like [`command`], dying (exit 86, as by SIGKILL) at its `step`th
/// filesystem step. The shipped binary has no such hook.
pub fn fault_command<S: AsRef<str>>(cwd: &Path, args: &[S], step: usize) -> Command {
    let mut c = command_of(fault_binary(), cwd, args, MEMORY_CAP);
    c.env("RPROP_LAB_FAULT_AT", step.to_string());
    c
}

/// The fault-injecting build of the command line: `cargo test` builds it with the other
/// examples; when this binary runs alone it is built here, once, by the cargo that built
/// the tests, with the same profile (a no-op when it is up to date).
pub fn fault_binary() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        // target/PROFILE/deps/guarantees-HASH: the profile's folder names the profile.
        let exe = std::env::current_exe().unwrap();
        let profile = exe.ancestors().nth(2).and_then(|p| p.file_name()).unwrap();
        let profile = match profile.to_str().unwrap() {
            "debug" => "dev",
            p => p,
        };
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let out = Command::new(env!("CARGO"))
            .args([
                "build",
                "--offline",
                "--message-format=json-render-diagnostics",
            ])
            .args(["--example", "fault_inject", "--profile", profile])
            .args(["--manifest-path", manifest])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "building examples/fault_inject.rs: {err}"
        );
        let exe = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"]["name"] == "fault_inject")
            .find_map(|v| v["executable"].as_str().map(PathBuf::from));
        exe.unwrap_or_else(|| panic!("cargo built no fault_inject example: {err}"))
    })
}

/// `bin` with `args`, run in `cwd` under an address-space cap of `cap` bytes.
pub fn command_of<S: AsRef<str>>(bin: &Path, cwd: &Path, args: &[S], cap: u64) -> Command {
    let mut c = Command::new(bin);
    c.current_dir(cwd)
        .args(args.iter().map(|a| a.as_ref()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        c.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: cap,
                rlim_max: cap,
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

// The same checks and stderr text as the other CLI tests.
pub use crate::common::{ok, refused, stderr};

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

/// `train --optimizer OPTIMIZER` on the tiny CPU setup of `data` (see [`tiny`]), then `extra`.
pub fn tiny_train(optimizer: &str, data: &Path, epochs: u32, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["train", "--optimizer", optimizer]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
    v.extend(tiny(data, epochs));
    v
}

/// A finished 2-epoch rprop-plus run in `dir/name`.
pub fn trained(dir: &Path, data: &Path, name: &str) {
    ok(&run(
        dir,
        &tiny_train("rprop-plus", data, 2, &["--out", name]),
    ));
}

/// Waits until `dir/metrics.jsonl` records an epoch (appended as each one ends).
pub fn wait_first_epoch(dir: &Path) {
    let t0 = Instant::now();
    while !std::fs::read_to_string(dir.join("metrics.jsonl")).is_ok_and(|m| m.contains("\"epoch\""))
    {
        assert!(t0.elapsed() < Duration::from_secs(30), "no epoch ran");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Copies run folder `from` (its files) to a new folder `to`.
pub fn copy_run(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Names in `dir` that are temp files.
pub fn temps(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".rl-tmp-"))
        .collect()
}

/// `train --resume DIR --epochs N` on the CPU; with `fault`, by the fault-injecting build
/// stopped at that step (see [`fault_command`]).
pub fn resume(cwd: &Path, dir: &str, epochs: u32, fault: Option<usize>) -> std::process::Output {
    let n = epochs.to_string();
    let args = ["train", "--resume", dir, "--epochs", &n, "-q"];
    let mut c = match fault {
        Some(f) => fault_command(cwd, &args, f),
        None => command(cwd, &args),
    };
    wait(c.spawn().unwrap(), "resume")
}

/// Lines of `path`.
pub fn lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().map(String::from).collect()
}
