//! Issue 17: one writer per run folder, no write through a link, one commit point per
//! save (fault injection at every filesystem step), resume exact or refused. Under the
//! memory cap and timeout of hostile_util.

mod common;
mod hostile_util;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hostile_util::{ok, refused, run, snapshot, tiny, tiny_data, trained, with};

/// Copies run folder `from` (its files) to a new folder `to`.
fn copy_run(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Names in `dir` that are temp files.
fn temps(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".rl-tmp-"))
        .collect()
}

// Defect 1 and `--out missing/..`: the path is resolved before any check, so a path
// through a missing folder cannot bypass "already holds a run", and nothing is created.
#[test]
fn out_through_a_missing_folder_never_bypasses_the_run_check() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "A");
    let before = snapshot(&d.path().join("A"));
    let args = with(
        &[
            "train",
            "--optimizer",
            "irprop-plus",
            "--out",
            "missing/../A",
        ],
        &tiny(&data, 2),
    );
    refused(&run(d.path(), &args), "already holds a run");
    assert!(snapshot(&d.path().join("A")) == before, "A changed");
    assert!(!d.path().join("missing").exists(), "missing/ was created");
    // `missing/..` is the current folder, which holds no run: the run is written there.
    let w = d.path().join("w");
    std::fs::create_dir(&w).unwrap();
    let args = with(
        &["train", "--optimizer", "irprop-plus", "--out", "missing/.."],
        &tiny(&data, 1),
    );
    ok(&run(&w, &args));
    assert!(w.join("optimizer.safetensors").is_file());
    assert!(!w.join("missing").exists(), "missing/ was created");
}

// Defect 2: a test set of another image size is refused before `--force` touches the run.
#[test]
fn force_checks_the_test_set_shape_before_touching_the_run() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "OLD");
    let before = snapshot(&d.path().join("OLD"));
    let small = d.path().join("small");
    common::write_dataset(&small, 300, 50, 14);
    let mixed = d.path().join("mixed");
    common::write_dataset(&mixed, 300, 50, 28);
    for f in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(small.join(f), mixed.join(f)).unwrap();
    }
    let args = with(
        &[
            "train",
            "--optimizer",
            "rprop-plus",
            "--out",
            "OLD",
            "--force",
        ],
        &tiny(&mixed, 2),
    );
    refused(&run(d.path(), &args), "test images are 14x14");
    assert!(snapshot(&d.path().join("OLD")) == before, "OLD changed");
    assert!(!d.path().join(".OLD.new-run").exists());
}

/// Waits until `dir/metrics.jsonl` records an epoch (appended as each one ends).
fn wait_first_epoch(dir: &Path) {
    let t0 = Instant::now();
    while !std::fs::read_to_string(dir.join("metrics.jsonl")).is_ok_and(|m| m.contains("\"epoch\""))
    {
        assert!(t0.elapsed() < Duration::from_secs(30), "no epoch ran");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// Defect 3: a second writer (a `--force` run, a resume, a compare) is refused at once,
// naming the PID that holds the run; a reader is not blocked; the kernel frees the lock
// when the holder dies.
#[test]
fn a_second_writer_is_refused_at_once_naming_the_holder() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let args = with(
        &["train", "--optimizer", "rprop-plus", "--out", "X"],
        &tiny(&data, 100_000),
    );
    let mut child = hostile_util::command(d.path(), &args).spawn().unwrap();
    wait_first_epoch(&d.path().join("X"));
    let pid = format!("PID {}", child.id());
    let force = with(
        &[
            "train",
            "--optimizer",
            "irprop-plus",
            "--out",
            "X",
            "--force",
        ],
        &tiny(&data, 2),
    );
    let t0 = Instant::now();
    refused(&run(d.path(), &force), &pid);
    let resume = ["train", "--resume", "X", "--epochs", "5", "-q"];
    refused(&run(d.path(), &resume), &pid);
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "not refused at once"
    );
    // A reader of the run is not blocked.
    ok(&run(
        d.path(),
        &["plot", "X/metrics.json", "--out", "p.png"],
    ));
    child.kill().unwrap();
    child.wait().unwrap();
    ok(&run(d.path(), &force));
    let config = std::fs::read_to_string(d.path().join("X/config.json")).unwrap();
    assert!(config.contains("irprop-plus"), "{config}");
    // Two comparisons into one folder: the second is refused while the first runs.
    std::fs::write(d.path().join("c.json"), r#"{"optimizer": "rprop-plus"}"#).unwrap();
    let cmp = with(
        &["compare", "--configs", "c.json", "--out", "C"],
        &tiny(&data, 100_000),
    );
    let mut first = hostile_util::command(d.path(), &cmp).spawn().unwrap();
    wait_first_epoch(&d.path().join("C/rprop-plus"));
    let second = with(
        &["compare", "--configs", "c.json", "--out", "C", "--force"],
        &tiny(&data, 2),
    );
    refused(&run(d.path(), &second), &format!("PID {}", first.id()));
    first.kill().unwrap();
    first.wait().unwrap();
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
    hostile_util::wait(child, script)
}

// Defect 6 and the long names: temp files are created new and never through a link
// (here planted at every name a writer of that PID could pick), and a legal-length name
// has its temp, lock and `--force` names.
#[test]
fn writes_never_follow_a_planted_link_and_long_names_work() {
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
    // A 250-byte folder name: trained, replaced with --force, resumed; a 252-byte chart.
    let long = "n".repeat(250);
    for extra in [&[][..], &["--force"][..]] {
        let mut args = with(
            &["train", "--optimizer", "rprop-plus", "--out", &long],
            &tiny(&data, 2),
        );
        args.extend(extra.iter().map(|s| s.to_string()));
        ok(&run(d.path(), &args));
    }
    ok(&run(
        d.path(),
        &[
            "train",
            "--resume",
            &long,
            "--epochs",
            "3",
            "-q",
            "--no-test",
        ],
    ));
    let png = format!("{}.png", "p".repeat(248));
    ok(&run(
        d.path(),
        &["plot", &format!("{long}/metrics.json"), "--out", &png],
    ));
    assert!(d.path().join(&png).is_file());
}

/// `train --resume DIR --epochs N` on the CPU, with `fault` as RPROP_LAB_FAULT_AT.
fn resume(cwd: &Path, dir: &str, epochs: u32, fault: Option<usize>) -> std::process::Output {
    let n = epochs.to_string();
    let mut c = hostile_util::command(cwd, &["train", "--resume", dir, "--epochs", &n, "-q"]);
    if let Some(f) = fault {
        c.env("RPROP_LAB_FAULT_AT", f.to_string());
    }
    hostile_util::wait(c.spawn().unwrap(), "resume")
}

// Defect 4: a process stopped at the Nth filesystem step, for every N of a resumed run
// (its config, metrics and the save of best, last weights and optimizer state), and of a
// `--force` run over an old one, leaves a run that resumes to the very weights of a run
// never stopped.
#[test]
fn every_fault_point_of_a_save_leaves_a_resumable_run() {
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
            hostile_util::stderr(&o)
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
    // --force over an old run: the old run or the new one, either resumable.
    let before = snapshot(&d.path().join("base"));
    let force = with(
        &["train", "--optimizer", "irprop-plus", "--force", "--out"],
        &tiny(&data, 2),
    );
    let mut n = 1;
    loop {
        let name = format!("f{n}");
        copy_run(&d.path().join("base"), &d.path().join(&name));
        let mut args = force.clone();
        args.insert(5, name.clone());
        let mut c = hostile_util::command(d.path(), &args);
        c.env("RPROP_LAB_FAULT_AT", n.to_string());
        let o = hostile_util::wait(c.spawn().unwrap(), "force");
        if o.status.success() {
            break;
        }
        assert_eq!(
            o.status.code(),
            Some(86),
            "step {n}: {}",
            hostile_util::stderr(&o)
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

/// Sets element 0 of tensor `name` in safetensors file `path` to `x`.
fn poke(path: &Path, name: &str, x: f32) {
    let mut bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let at = 8 + n + header[name]["data_offsets"][0].as_u64().unwrap() as usize;
    bytes[at..at + 4].copy_from_slice(&x.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

// Defects 9 and 10: a resume compares config.json with the config the checkpoint recorded
// and refuses naming the keys that differ; it refuses non-finite state and step sizes
// outside their bounds.
#[test]
fn resume_refuses_an_edited_config_or_a_broken_state() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "base");
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("base/config.json")).unwrap()).unwrap();
    let edits: [(&[(&str, serde_json::Value)], &str); 6] = [
        (&[("eta_plus", 1.3.into())], "eta_plus"),
        (&[("eta_minus", 0.25.into())], "eta_minus"),
        (&[("step_max", 40.into())], "step_max"),
        (&[("weight_decay", 0.01.into())], "weight_decay"),
        (&[("seed", 3.into())], "seed"),
        (
            &[
                ("train_set_size", 150.into()),
                ("train_batch_size", 150.into()),
            ],
            "train_set_size",
        ),
    ];
    for (i, (keys, needle)) in edits.iter().enumerate() {
        let name = format!("c{i}");
        copy_run(&d.path().join("base"), &d.path().join(&name));
        let mut c = cfg.clone();
        for (k, v) in keys.iter() {
            c[*k] = v.clone();
        }
        std::fs::write(d.path().join(&name).join("config.json"), c.to_string()).unwrap();
        let line = refused(&resume(d.path(), &name, 3, None), needle);
        assert!(line.contains("recorded"), "{line}");
    }
    let states = [
        ("step", f32::NAN, "non-finite"),
        ("step", f32::INFINITY, "non-finite"),
        ("step", 0.0, "outside the step sizes"),
        ("step", -1.0, "outside the step sizes"),
        ("step", 1e9, "outside the step sizes"),
        ("prev_grad", f32::NAN, "non-finite"),
        ("prev_change", f32::NEG_INFINITY, "non-finite"),
    ];
    for (i, (tensor, x, needle)) in states.iter().enumerate() {
        let name = format!("s{i}");
        copy_run(&d.path().join("base"), &d.path().join(&name));
        poke(
            &d.path().join(&name).join("optimizer.safetensors"),
            tensor,
            *x,
        );
        refused(&resume(d.path(), &name, 3, None), needle);
    }
    // Only --epochs changed: resumed.
    ok(&resume(d.path(), "base", 3, None));
}

// Defect 5 and the smaller number cases: a value at the f32 limit reads back and
// resumes; negative values are the key's error, not clap's; underflow says so.
#[test]
fn numbers_read_back_identically_and_bad_ones_are_one_line() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let args = with(
        &[
            "train",
            "--optimizer",
            "irprop-plus",
            "--step-max",
            "3.40282346e38",
            "--out",
            "M",
        ],
        &tiny(&data, 2),
    );
    ok(&run(d.path(), &args));
    ok(&resume(d.path(), "M", 3, None));
    for (flag, value, needle) in [
        ("--seed", "-1", "key `seed`"),
        ("--learning-rate", "-1", "learning_rate"),
        ("--learning-rate", "1e-46", "too small for f32"),
        ("--eta-plus", "1e39", "out of range"),
    ] {
        let args = with(
            &[
                "train",
                "--optimizer",
                "rprop-plus",
                flag,
                value,
                "--out",
                "Z",
            ],
            &tiny(&data, 1),
        );
        refused(&run(d.path(), &args), needle);
    }
    assert!(!d.path().join("Z").exists());
}

// Defect 7: a data set that is valid but cannot fit beside the run under the address
// space cap is one clear line, not an allocation abort.
#[test]
fn data_too_large_for_memory_is_one_line() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    // A header claiming 60000 images of 130x130 (1.01 GB), then a little of the data.
    let head = common::idx(0x803, &[60_000, 130, 130], &[0u8; 4096]);
    std::fs::write(data.join("train-images-idx3-ubyte.gz"), common::gzip(&head)).unwrap();
    let args = with(
        &["train", "--optimizer", "rprop-plus", "--out", "B"],
        &tiny(&data, 1),
    );
    let mut c = hostile_util::command(d.path(), &args);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs before exec.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = hostile_util::wait(c.spawn().unwrap(), "train on big data");
    refused(&o, "train-images-idx3-ubyte.gz");
    assert!(hostile_util::stderr(&o).contains("MiB this process may use"));
    assert!(!d.path().join("B").exists());
}

// The smaller cases: options that were ignored are checked, a zero-step verify is
// refused, and a signal right after start ends the process with 130, saying so.
#[test]
fn smaller_cases_are_one_line_and_signals_count_from_the_start() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let args = with(
        &[
            "train",
            "--optimizer",
            "rprop-plus",
            "--matmul-kernel",
            "bogus",
            "--out",
            "K",
        ],
        &tiny(&data, 1),
    );
    refused(&run(d.path(), &args), "--matmul-kernel");
    assert!(!d.path().join("K").exists());
    let dd = data.to_str().unwrap();
    let o = run(
        d.path(),
        &[
            "verify",
            "--optimizer",
            "rprop-plus",
            "--steps",
            "0",
            "--data-dir",
            dd,
        ],
    );
    refused(&o, "--steps 0");
    for delay in [80, 250] {
        let args = with(
            &["train", "--optimizer", "rprop-plus", "--out", "S"],
            &tiny(&data, 100_000),
        );
        let child = hostile_util::command(d.path(), &args).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        // SAFETY: signals a child of this test, by its id.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let o = hostile_util::wait(child, "train");
        let err = hostile_util::stderr(&o);
        assert_eq!(o.status.code(), Some(130), "after {delay} ms: {err}");
        assert!(err.contains("interrupted"), "{err}");
        if d.path().join("S").exists() {
            assert!(temps(&d.path().join("S")).is_empty());
            std::fs::remove_dir_all(d.path().join("S")).unwrap();
        }
    }
}
