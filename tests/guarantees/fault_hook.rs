//! No fault injection in the shipped binary: `RPROP_LAB_FAULT_AT` in a user's environment
//! changes nothing (train, resume, plot and samples run to the same files), and the name is
//! not even in the binary. Fault injection lives in the tests' own build of the command
//! line (examples/fault_inject.rs), which does stop where told.

use crate::capped::{self, command, copy_run, ok, run, temps, tiny_data, tiny_train, wait};
use crate::common;
use std::path::Path;

/// Whether `needle` occurs in the file at `path`.
fn file_holds(path: &Path, needle: &[u8]) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.windows(needle.len()).any(|w| w == needle)
}

// The shipped binary reads no such variable: its name is nowhere in it (the fault
// injecting build, which reads it, holds it).
#[test]
fn the_shipped_binary_holds_no_fault_hook() {
    let name = b"RPROP_LAB_FAULT_AT";
    assert!(
        file_holds(capped::fault_binary(), name),
        "the search finds it where it is"
    );
    assert!(
        !file_holds(Path::new(env!("CARGO_BIN_EXE_rprop-lab")), name),
        "the shipped binary reads RPROP_LAB_FAULT_AT"
    );
}

/// The binary with `args` in `cwd`, with `RPROP_LAB_FAULT_AT=step` in its environment.
fn with_fault_env(cwd: &Path, args: &[&str], step: usize) -> std::process::Output {
    let mut c = command(cwd, args);
    c.env("RPROP_LAB_FAULT_AT", step.to_string());
    wait(c.spawn().unwrap(), &args.join(" "))
}

// With RPROP_LAB_FAULT_AT set to the values that stopped it (1, 2, 5: a run's first
// filesystem steps; 40: an epoch's save), train, resume, plot and samples all run, to the
// very files a run without it writes, and leave no temp file.
#[test]
fn fault_variable_in_the_environment_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let dd = data.to_str().unwrap();
    let train =
        |out: &str| tiny_train("rprop-plus", &data, 4, &["--out", out, "--save-every", "1"]);
    ok(&run(d.path(), &train("ref")));
    copy_run(&d.path().join("ref"), &d.path().join("ref5"));
    ok(&run(
        d.path(),
        &["train", "--resume", "ref5", "--epochs", "5", "-q"],
    ));
    for step in [1, 2, 5, 40] {
        let out = format!("t{step}");
        let args = train(&out);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&with_fault_env(d.path(), &args, step));
        common::assert_same_checkpoints(&d.path().join(&out), &d.path().join("ref"));
        let resume = ["train", "--resume", &out, "--epochs", "5", "-q"];
        ok(&with_fault_env(d.path(), &resume, step));
        common::assert_same_checkpoints(&d.path().join(&out), &d.path().join("ref5"));
        let metrics = format!("{out}/metrics.json");
        let png = format!("{out}.png");
        ok(&with_fault_env(
            d.path(),
            &["plot", &metrics, "--out", &png],
            step,
        ));
        let weights = format!("{out}/best.safetensors");
        let grid = format!("{out}-wrong.png");
        let samples = [
            "samples",
            "--weights",
            &weights,
            "--data-dir",
            dd,
            "--out",
            &grid,
        ];
        ok(&with_fault_env(d.path(), &samples, step));
        for f in [&png, &grid] {
            assert!(d.path().join(f).is_file(), "{f} not written");
        }
        assert!(temps(d.path()).is_empty() && temps(&d.path().join(&out)).is_empty());
    }
}

// The tests' build does stop at the step it is told, as by SIGKILL (exit 86, no output),
// and runs like the shipped one without the variable.
#[test]
fn the_fault_injecting_build_stops_where_told() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let args = tiny_train("rprop-plus", &data, 2, &["--out", "f"]);
    let o = wait(
        capped::fault_command(d.path(), &args, 1).spawn().unwrap(),
        "fault",
    );
    assert_eq!(o.status.code(), Some(86), "{}", capped::stderr(&o));
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    let args = tiny_train("rprop-plus", &data, 2, &["--out", "h"]);
    let mut c = capped::command_of(capped::fault_binary(), d.path(), &args, capped::MEMORY_CAP);
    ok(&wait(c.spawn().unwrap(), "no fault"));
    ok(&run(
        d.path(),
        &tiny_train("rprop-plus", &data, 2, &["--out", "g"]),
    ));
    common::assert_same_checkpoints(&d.path().join("h"), &d.path().join("g"));
}
