//! Submitting: `sbatch` missing from PATH, failing (its message on one line), succeeding
//! (the job id it prints, `ID` or `ID;CLUSTER`), with stand-in sbatch programs.

use std::path::Path;

use rprop_lab::slurm::{find_program, parse_job_id, submit_on_path};

pub const TESTS: &[(&str, fn())] = &[
    (
        "submit::sbatch_missing_is_one_line",
        sbatch_missing_is_one_line,
    ),
    (
        "submit::sbatch_failing_shows_its_message",
        sbatch_failing_shows_its_message,
    ),
    (
        "submit::the_job_id_comes_from_parsable_output",
        the_job_id_comes_from_parsable_output,
    ),
];

/// A program `name` in `dir` running `body` (sh).
fn program(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn sbatch_missing_is_one_line() {
    let d = tempfile::tempdir().unwrap();
    // A file named sbatch that is not executable does not count.
    std::fs::write(d.path().join("sbatch"), "").unwrap();
    let path = std::env::join_paths([d.path(), Path::new("/nonexistent")]).unwrap();
    assert_eq!(find_program("sbatch", &path), None);
    let err = submit_on_path(Path::new("/x/sweep.sbatch"), &path)
        .unwrap_err()
        .to_string();
    let want = format!(
        "sbatch not found on PATH: {}:/nonexistent (",
        d.path().display()
    );
    assert!(err.starts_with(&want), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

fn sbatch_failing_shows_its_message() {
    let d = tempfile::tempdir().unwrap();
    program(
        d.path(),
        "sbatch",
        "echo 'sbatch: error: invalid partition specified: nope' >&2\n\
         echo 'sbatch: error: Batch job submission failed: Invalid partition name specified' >&2\n\
         exit 1",
    );
    let err = submit_on_path(Path::new("/x/sweep.sbatch"), d.path().as_os_str())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "sbatch failed (exit status: 1) on /x/sweep.sbatch: sbatch: error: invalid partition specified: nope; \
         sbatch: error: Batch job submission failed: Invalid partition name specified"
    );
    // Nothing said: the line says so.
    program(d.path(), "sbatch", "exit 255");
    let err = submit_on_path(Path::new("/x/s"), d.path().as_os_str())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "sbatch failed (exit status: 255) on /x/s: it printed nothing"
    );
}

fn the_job_id_comes_from_parsable_output() {
    let d = tempfile::tempdir().unwrap();
    let args = d.path().join("args");
    program(
        d.path(),
        "sbatch",
        &format!(
            "printf '%s|' \"$@\" >'{}'\necho '4242;cluster7'",
            args.display()
        ),
    );
    let script = Path::new("/x/a b/sweep.sbatch");
    assert_eq!(submit_on_path(script, d.path().as_os_str()).unwrap(), 4242);
    assert_eq!(
        std::fs::read_to_string(&args).unwrap(),
        "--parsable|/x/a b/sweep.sbatch|"
    );
    assert_eq!(parse_job_id("17\n").unwrap(), 17);
    for bad in ["", "\n", "Submitted batch job 17\n", "x;y", "-3"] {
        let err = parse_job_id(bad).unwrap_err().to_string();
        assert!(
            err.starts_with("sbatch printed no job id: "),
            "{bad:?}: {err}"
        );
    }
}
