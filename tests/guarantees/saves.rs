//! Saves: one commit point (a fault at any filesystem step leaves a resumable run), no temp
//! file left, never through a planted link, outputs are never inputs.

use crate::capped::{
    self, copy_run, ok, refused, resume, run, snapshot, temps, tiny_data, tiny_train, trained,
};
use crate::common;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

// An output that is an input, not a PNG, or a folder is refused, and the refused command
// writes nothing (a save that fails removes its temp file).
#[test]
fn outputs_that_are_inputs_or_not_png_are_refused_writing_nothing() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "A");
    let before = snapshot(d.path());
    let w = "A/best.safetensors";
    let samples = |out: &str| {
        run(
            d.path(),
            &[
                "samples",
                "--weights",
                w,
                "--data-dir",
                data.to_str().unwrap(),
                "--out",
                out,
            ],
        )
    };
    refused(&samples(w), "PNG");
    let train_into_a_file = tiny_train("rprop-plus", &data, 1, &["--out", w]);
    refused(&run(d.path(), &train_into_a_file), "not a folder");
    refused(
        &run(
            d.path(),
            &["plot", "A/metrics.json", "--out", "A/metrics.json"],
        ),
        "PNG",
    );
    refused(
        &run(d.path(), &["plot", "A/metrics.json", "--out", "x.jpg"]),
        ".png",
    );
    // A metrics file named .png is still an input.
    std::fs::copy(d.path().join("A/metrics.json"), d.path().join("m.png")).unwrap();
    refused(
        &run(d.path(), &["plot", "m.png", "--out", "./m.png"]),
        "is also an input",
    );
    std::fs::remove_file(d.path().join("m.png")).unwrap();
    // A save that fails (the target is a folder) removes its temp file.
    std::fs::create_dir(d.path().join("dir.png")).unwrap();
    refused(
        &run(d.path(), &["plot", "A/metrics.json", "--out", "dir.png"]),
        "cannot write",
    );
    std::fs::remove_dir(d.path().join("dir.png")).unwrap();
    assert!(
        snapshot(d.path()) == before,
        "a refused command wrote a file"
    );
}

// Two identical runs save identical bytes.
#[test]
fn identical_runs_save_identical_bytes() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "A");
    trained(d.path(), &data, "B");
    for f in [
        "best.safetensors",
        "last.safetensors",
        "optimizer.safetensors",
    ] {
        let (a, b) = (
            std::fs::read(d.path().join("A").join(f)).unwrap(),
            std::fs::read(d.path().join("B").join(f)).unwrap(),
        );
        assert!(a == b, "{f}: identical runs gave different bytes");
    }
}

// A save that fails midway (here: the file size limit, as a full disk would)
// leaves the previous last weights and optimizer state, still a resumable pair.
#[test]
fn a_failed_save_keeps_the_previous_pair_resumable() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "V");
    let v = d.path().join("V");
    let pair = |v: &Path| {
        ["last.safetensors", "optimizer.safetensors"].map(|f| std::fs::read(v.join(f)).unwrap())
    };
    let before = pair(&v);
    // last.safetensors (0.4 MB) fits, optimizer.safetensors (1.2 MB) does not.
    let mut cmd = capped::command(d.path(), &["train", "--resume", "V", "--epochs", "3", "-q"]);
    // SAFETY: setrlimit and signal are async-signal-safe; nothing else runs before exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 800_000,
                rlim_max: 800_000,
            };
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = capped::wait(cmd.spawn().unwrap(), "resume under a file size limit");
    refused(&out, "optimizer.safetensors: cannot write");
    assert!(pair(&v) == before, "the saved pair changed");
    let names: Vec<String> = std::fs::read_dir(&v)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    ok(&run(
        d.path(),
        &["train", "--resume", "V", "--epochs", "3", "-q"],
    ));
}

// A resumed run stopped at its Nth filesystem step, for every N (its config, metrics and the
// save of best, last weights and optimizer state), resumes to the very weights of a run
// never stopped.
#[test]
fn a_resume_stopped_at_any_filesystem_step_resumes_to_the_same_weights() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "base");
    copy_run(&d.path().join("base"), &d.path().join("ref"));
    ok(&resume(d.path(), "ref", 4, None));
    let mut n = 1;
    loop {
        let name = format!("r{n}");
        copy_run(&d.path().join("base"), &d.path().join(&name));
        let o = resume(d.path(), &name, 3, Some(n));
        if o.status.success() {
            break;
        }
        assert_eq!(
            o.status.code(),
            Some(86),
            "step {n}: {}",
            capped::stderr(&o)
        );
        let o = resume(d.path(), &name, 4, None);
        ok(&o);
        common::assert_same_checkpoints(&d.path().join(&name), &d.path().join("ref"));
        assert!(
            temps(&d.path().join(&name)).is_empty(),
            "step {n}: temps left"
        );
        n += 1;
        assert!(n < 200, "the run never got past its fault points");
    }
    assert!(n > 8, "only {n} steps: the hook counts too few");
}

// A `--force` run over an old one stopped at its Nth filesystem step, for every N, leaves
// the old run or the new one, either resumable.
#[test]
fn a_force_run_stopped_at_any_filesystem_step_leaves_a_resumable_run() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "base");
    let before = snapshot(&d.path().join("base"));
    let force = tiny_train("irprop-plus", &data, 2, &["--force", "--out"]);
    let mut n = 1;
    loop {
        let name = format!("f{n}");
        copy_run(&d.path().join("base"), &d.path().join(&name));
        let mut args = force.clone();
        args.insert(5, name.clone());
        let mut c = capped::fault_command(d.path(), &args, n);
        let o = capped::wait(c.spawn().unwrap(), "force");
        if o.status.success() {
            break;
        }
        assert_eq!(
            o.status.code(),
            Some(86),
            "step {n}: {}",
            capped::stderr(&o)
        );
        let dir = d.path().join(&name);
        if snapshot(&dir) != before {
            let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
            assert!(config.contains("irprop-plus"), "step {n}: a mixed run");
        }
        ok(&resume(d.path(), &name, 3, None));
        n += 1;
        assert!(n < 200, "the run never got past its fault points");
    }
}

/// Runs `script` in `sh` in `cwd` with `$B` the binary, under the test timeout.
fn sh(cwd: &Path, script: &str) -> std::process::Output {
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(cwd)
        .env("B", env!("CARGO_BIN_EXE_rprop-lab"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    capped::wait(child, script)
}

// Temp files are created new and never through a link (here planted at every name a writer
// of that PID could pick), by a resumed run and by `plot`.
#[test]
fn writes_never_follow_a_planted_link() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "R");
    let plant = |dir: &str, target: &str| {
        let mut s = String::new();
        for n in 0..40 {
            s += &format!("ln -s {target} {dir}/.rl-tmp-$$-{n}; ");
        }
        for f in ["last.safetensors", "optimizer.safetensors", "p.png"] {
            s += &format!("ln -s {target} {dir}/.{f}.$$.tmp; ");
        }
        s
    };
    let o = sh(
        d.path(),
        &format!(
            "{} exec $B train --resume R --epochs 3 -q --no-test",
            plant("R", "../victim")
        ),
    );
    ok(&o);
    assert!(!d.path().join("victim").exists(), "written through a link");
    let meta = std::fs::symlink_metadata(d.path().join("R/last.safetensors")).unwrap();
    assert!(meta.file_type().is_file(), "last.safetensors is a link");
    assert!(
        temps(&d.path().join("R")).is_empty(),
        "{:?}",
        temps(&d.path().join("R"))
    );
    let o = sh(
        d.path(),
        &format!(
            "{} exec $B plot R/metrics.json --out p.png",
            plant(".", "victim2")
        ),
    );
    ok(&o);
    assert!(
        !d.path().join("victim2").exists(),
        "plot wrote through a link"
    );
    assert!(std::fs::symlink_metadata(d.path().join("p.png"))
        .unwrap()
        .file_type()
        .is_file());
}
