//! Issue 10, second review: saves that run out of memory or disk, large weights files,
//! `--force` and a broken test set never abort or leave an unresumable run. Under the
//! memory cap and timeout of hostile_util.

mod common;
mod hostile_util;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use hostile_util::{ok, refused, run, snapshot, tiny, tiny_data, trained, with};

// Review 1: the estimate counts the copies a save makes: a network that trains in the
// memory but whose save would not fit is refused up front, not aborted after training.
#[test]
fn a_network_whose_save_cannot_fit_is_refused_up_front() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    // 784-4500-4500-10: 23.8 M parameters, 1.45 GB with its save, over the 1.2 GB the
    // 1.5 GiB cap leaves (the old estimate, 1.07 GB, let it train and abort in the save).
    let mut args = with(
        &["train", "--optimizer", "rprop-plus", "--out", "H"],
        &tiny(&data, 1),
    );
    args.extend(["--hidden", "4500,4500", "--no-test"].map(String::from));
    let line = refused(&run(d.path(), &args), "key `hidden`");
    assert!(!d.path().join("H").exists());
    // Review 9: the two sizes never print equal (they are whole MiB, need rounded up).
    let mib: Vec<u64> = line
        .split(" MiB")
        .filter_map(|t| t.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(mib.len() == 2 && mib[0] > mib[1], "{line}");
}

/// A valid safetensors file of a 784-65536-3000-10 network of zeros (0.99 GB, sparse on
/// disk, so it costs no time to write).
fn big_weights(path: &Path) {
    let dims: [(&str, Vec<u64>); 6] = [
        ("fc1.weight", vec![65536, 784]),
        ("fc1.bias", vec![65536]),
        ("fc2.weight", vec![3000, 65536]),
        ("fc2.bias", vec![3000]),
        ("fc3.weight", vec![10, 3000]),
        ("fc3.bias", vec![10]),
    ];
    let mut off = 0u64;
    let mut parts = Vec::new();
    for (name, shape) in &dims {
        let end = off + 4 * shape.iter().product::<u64>();
        parts.push(format!(
            "\"{name}\":{{\"dtype\":\"F32\",\"shape\":{shape:?},\"data_offsets\":[{off},{end}]}}"
        ));
        off = end;
    }
    let mut header = format!("{{{}}}", parts.join(",")).into_bytes();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut head = (header.len() as u64).to_le_bytes().to_vec();
    head.extend(&header);
    std::fs::write(path, &head).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(head.len() as u64 + off).unwrap();
    assert!(f.metadata().unwrap().len() > 900_000_000);
}

// Review 2: a valid weights file too large to load in the memory is an error naming it.
#[test]
fn weights_too_large_for_memory_are_refused_not_aborted() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    big_weights(&d.path().join("big.safetensors"));
    let data_dir = data.to_str().unwrap();
    for cmd in ["test", "samples"] {
        let mut args = vec![cmd, "--weights", "big.safetensors", "--data-dir", data_dir];
        if cmd == "samples" {
            args.extend(["--out", "s.png"]);
        }
        refused(&run(d.path(), &args), "big.safetensors");
    }
    assert!(!d.path().join("s.png").exists());
}

// Review 3: a save that fails midway (here: the file size limit, as a full disk would)
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
    let mut cmd =
        hostile_util::command(d.path(), &["train", "--resume", "V", "--epochs", "3", "-q"]);
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
    let out = hostile_util::wait(cmd.spawn().unwrap(), "resume under a file size limit");
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

// Review 4: SIGKILL at any moment of a `--force` run leaves the old run byte-identical or
// a new one that can be resumed (weights and optimizer state saved before the swap).
#[test]
fn sigkill_during_force_leaves_the_old_run_or_a_resumable_one() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "V");
    let v = d.path().join("V");
    let before = snapshot(&v);
    let args = with(
        &[
            "train",
            "--optimizer",
            "irprop-plus",
            "--out",
            "V",
            "--force",
        ],
        &tiny(&data, 100_000),
    );
    let mut swapped = false;
    for delay_ms in [0, 5, 30, 200, 400] {
        let mut child = hostile_util::command(d.path(), &args).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        if snapshot(&v) == before {
            continue;
        }
        swapped = true;
        let config = std::fs::read_to_string(v.join("config.json")).unwrap();
        assert!(config.contains("irprop-plus"), "killed after {delay_ms} ms");
        for f in [
            "last.safetensors",
            "optimizer.safetensors",
            "best.safetensors",
        ] {
            assert!(v.join(f).is_file(), "killed after {delay_ms} ms: no {f}");
        }
    }
    assert!(
        swapped,
        "no kill came after the swap; the test proves nothing"
    );
    // The new run resumes (a few epochs more than it has, so this ends quickly).
    let m = std::fs::read_to_string(v.join("metrics.json")).unwrap();
    let done = m.matches("\"eval_loss\"").count();
    let more = (done + 2).to_string();
    ok(&run(
        d.path(),
        &["train", "--resume", "V", "--epochs", &more, "-q"],
    ));
}

// Review 5: a broken test set is found before training, so `--force` keeps the old run.
#[test]
fn a_broken_test_set_fails_before_force_replaces_the_run() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "V");
    let before = snapshot(&d.path().join("V"));
    for file in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        let broken = d.path().join("broken");
        common::write_dataset(&broken, 300, 50, 28);
        let bytes = std::fs::read(broken.join(file)).unwrap();
        std::fs::write(broken.join(file), &bytes[..bytes.len() / 2]).unwrap();
        let args = with(
            &[
                "train",
                "--optimizer",
                "rprop-plus",
                "--out",
                "V",
                "--force",
            ],
            &tiny(&broken, 2),
        );
        refused(&run(d.path(), &args), file);
        assert!(snapshot(&d.path().join("V")) == before, "{file}: V changed");
    }
}

// Review 9: messages say what happened.
#[test]
fn messages_name_the_right_numbers() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "V");
    let o = run(d.path(), &["train", "--resume", "V", "--epochs", "1", "-q"]);
    refused(&o, "already ran 2 epochs; pass --epochs N (> 2)");
    // A decimal too long for the JSON parser is still read as the number it is.
    let nines = format!("0.{}", "9".repeat(100_000));
    let o = run(
        d.path(),
        &["train", "--optimizer", "rprop-plus", "--eta-minus", &nines],
    );
    refused(&o, "key `eta_minus`: must be in (0, 1), got 1");
}

// Review 10: a full batch follows a smaller set size; a config file's settings are checked
// once the command-line options have completed them.
#[test]
fn set_sizes_carry_the_full_batch_along() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let dd = data.to_str().unwrap();
    let common = ["--backend", "cpu", "-q", "--epochs", "1", "--no-test"];
    std::fs::write(
        d.path().join("a.json"),
        r#"{"optimizer":"rprop-plus","eval_batch_size":100}"#,
    )
    .unwrap();
    std::fs::write(
        d.path().join("b.json"),
        r#"{"optimizer":"rprop-plus","train_set_size":200,"eval_set_size":100}"#,
    )
    .unwrap();
    let cases: [(&str, &[&str]); 3] = [
        (
            "A",
            &[
                "--optimizer",
                "rprop-plus",
                "--train-set-size",
                "200",
                "--eval-set-size",
                "100",
            ],
        ),
        (
            "B",
            &[
                "--config",
                "a.json",
                "--train-set-size",
                "200",
                "--eval-set-size",
                "100",
            ],
        ),
        ("C", &["--config", "b.json"]),
    ];
    for (out, extra) in cases {
        let mut args = vec!["train", "--out", out, "--data-dir", dd];
        args.extend(common);
        args.extend(extra);
        ok(&run(d.path(), &args));
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.path().join(out).join("config.json")).unwrap())
                .unwrap();
        assert_eq!(cfg["train_batch_size"], 200, "{out}");
        assert_eq!(cfg["eval_batch_size"], 100, "{out}");
    }
}

/// `path`'s safetensors header as text and its data.
fn split_header(path: &Path) -> (String, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
    (header.trim_end().to_string(), bytes[8 + n..].to_vec())
}

/// Writes a safetensors file of `header` (padded) and `data`.
fn join_header(path: &Path, header: &str, data: &[u8]) {
    let mut h = header.as_bytes().to_vec();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    std::fs::write(path, out).unwrap();
}

/// Changes `key` of `file`'s metadata in run `dir` (None: removes it).
fn set_meta(dir: &Path, file: &str, key: &str, value: Option<&str>) {
    let (header, data) = split_header(&dir.join(file));
    let mut v: serde_json::Value = serde_json::from_str(&header).unwrap();
    let meta = v["__metadata__"].as_object_mut().unwrap();
    assert!(meta.contains_key(key), "{file} has no {key}");
    match value {
        Some(x) => meta.insert(key.into(), x.into()),
        None => meta.remove(key),
    };
    join_header(&dir.join(file), &v.to_string(), &data);
}

/// Changes metrics.json of run `dir` by `edit`.
fn edit_metrics(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("metrics.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
}

// Review 6-8: a resume checks the pair even when fields are missing or absurd, the
// metrics it continues, and headers naming a tensor twice.
#[test]
fn resume_refuses_unverifiable_or_inconsistent_runs() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "base");
    type Edit = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "missing metadata `weights`",
            Box::new(|v| set_meta(v, "optimizer.safetensors", "weights", None)),
        ),
        (
            "missing metadata `epoch`",
            Box::new(|v| set_meta(v, "optimizer.safetensors", "epoch", None)),
        ),
        (
            "records 99999999999 optimizer steps",
            Box::new(|v| set_meta(v, "optimizer.safetensors", "t", Some("99999999999"))),
        ),
        (
            "is of epoch 30, expected 2",
            Box::new(|v| {
                // The records a resume continues are those of metrics.jsonl.
                let p = v.join("metrics.jsonl");
                let text = std::fs::read_to_string(&p).unwrap();
                let second = text.lines().nth(1).unwrap();
                let edited = second.replace("\"epoch\":2,", "\"epoch\":30,");
                std::fs::write(&p, text.replace(second, &edited)).unwrap();
            }),
        ),
        (
            "best_epoch 99999999999",
            Box::new(|v| edit_metrics(v, |m| m["best_epoch"] = 99_999_999_999u64.into())),
        ),
        (
            "appears twice",
            Box::new(|v| {
                // In both files: the resume reads the state, `test` below the weights.
                for (file, name) in [
                    ("last.safetensors", "\"fc1.bias\":{"),
                    ("optimizer.safetensors", "\"step\":{"),
                ] {
                    let p = v.join(file);
                    let (h, data) = split_header(&p);
                    let at = h.find(name).unwrap();
                    let entry = &h[at..at + h[at..].find('}').unwrap() + 1];
                    let twice = format!("{},{entry}}}", &h[..h.len() - 1]);
                    join_header(&p, &twice, &data);
                }
            }),
        ),
    ];
    for (i, (needle, edit)) in cases.iter().enumerate() {
        let name = format!("r{i}");
        let v = d.path().join(&name);
        std::fs::create_dir(&v).unwrap();
        for e in std::fs::read_dir(d.path().join("base")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), v.join(e.file_name())).unwrap();
        }
        edit(&v);
        let o = run(
            d.path(),
            &["train", "--resume", &name, "--epochs", "3", "-q"],
        );
        refused(&o, needle);
    }
    // The twice-named tensor is refused by every reader of weights.
    let dd = data.to_str().unwrap();
    let o = run(
        d.path(),
        &["test", "--weights", "r5/last.safetensors", "--data-dir", dd],
    );
    refused(&o, "appears twice");
}
