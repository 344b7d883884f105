//! `--resume`: the run's files are one consistent pair, every size and recorded setting is
//! checked, and a refused resume changes nothing.

use crate::capped::{copy_run, ok, refused, resume, run, snapshot, tiny_data, tiny_train, trained};
use crate::common;
use std::path::Path;

// A resume reads the weights from the optimizer state (the save's commit point), so a
// last.safetensors of another network or epoch (a crash between the renames) does not
// resume; a changed optimizer in the run's config is refused and changes nothing.
#[test]
fn resume_refuses_a_changed_optimizer_and_takes_the_weights_from_the_state() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "A");
    // B: a 784-64-10 network; its last weights put into A (state and config say 128).
    ok(&run(
        d.path(),
        &tiny_train("rprop-plus", &data, 3, &["--out", "B", "--hidden", "64"]),
    ));
    let resume = ["train", "--resume", "A", "--epochs", "4"];
    let a = d.path().join("A");
    let keep = std::fs::read(a.join("last.safetensors")).unwrap();
    std::fs::copy(
        d.path().join("B/last.safetensors"),
        a.join("last.safetensors"),
    )
    .unwrap();
    let before = snapshot(&a);
    // A changed optimizer in the run's config.
    std::fs::write(a.join("last.safetensors"), &keep).unwrap();
    let cfg = std::fs::read_to_string(a.join("config.json")).unwrap();
    std::fs::write(
        a.join("config.json"),
        cfg.replace("\"rprop-plus\"", "\"irprop-plus\""),
    )
    .unwrap();
    refused(&run(d.path(), &resume), "recorded: optimizer");
    std::fs::write(a.join("config.json"), &cfg).unwrap();
    let mut now = snapshot(&a);
    now.insert(
        "last.safetensors".into(),
        std::fs::read(d.path().join("B/last.safetensors")).unwrap(),
    );
    assert!(now == before, "a refused resume changed the run");
    std::fs::copy(
        d.path().join("B/last.safetensors"),
        a.join("last.safetensors"),
    )
    .unwrap();
    ok(&run(d.path(), &resume));
    let w = std::fs::read(a.join("last.safetensors")).unwrap();
    assert!(w.len() == keep.len(), "the resumed run is not 784-128-10");
}

// 8x8 images: the sizes a resume checks come from the data, not 28x28.
#[test]
fn resume_works_on_images_other_than_28x28() {
    let d = tempfile::tempdir().unwrap();
    let small = d.path().join("small");
    common::write_dataset(&small, 300, 50, 8);
    trained(d.path(), &small, "S");
    let out = ok(&run(d.path(), &["train", "--resume", "S", "--epochs", "3"]));
    assert!(out.contains("best epoch"), "{out}");
    let m = std::fs::read_to_string(d.path().join("S/metrics.json")).unwrap();
    assert_eq!(m.matches("\"epoch\"").count(), 3);
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

// A resume checks the pair even when fields are missing or absurd, the
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
        copy_run(&d.path().join("base"), &v);
        edit(&v);
        refused(&resume(d.path(), &name, 3, None), needle);
    }
    // The twice-named tensor is refused by every reader of weights.
    let dd = data.to_str().unwrap();
    let o = run(
        d.path(),
        &["test", "--weights", "r5/last.safetensors", "--data-dir", dd],
    );
    refused(&o, "appears twice");
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

// A resume compares config.json with the config the checkpoint recorded and refuses naming
// the keys that differ; only --epochs may change.
#[test]
fn resume_refuses_an_edited_config_naming_the_keys() {
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
    // Only --epochs changed: resumed.
    ok(&resume(d.path(), "base", 3, None));
}

// A resume refuses non-finite optimizer state and step sizes outside their bounds.
#[test]
fn resume_refuses_non_finite_state_or_steps_out_of_bounds() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "base");
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
}

// A resume to no more epochs than ran says how many ran and what to pass.
#[test]
fn resume_to_no_more_epochs_than_ran_says_how_many_ran() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "V");
    let o = run(d.path(), &["train", "--resume", "V", "--epochs", "1", "-q"]);
    refused(&o, "already ran 2 epochs; pass --epochs N (> 2)");
}
