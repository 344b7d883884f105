//! The errors a new user meets first (issue 25, "Newcomer polish"): each says what was
//! probably meant, in one whole line.

use std::process::Output;

use crate::common::{refused, run, stderr};

/// `train --config FILE` of a config file holding `text`, from a fresh folder.
fn train_config(text: &str) -> (tempfile::TempDir, Output) {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("c.json");
    std::fs::write(&cfg, text).unwrap();
    let o = run(&["train", "--config", cfg.to_str().unwrap(), "--epochs", "1"]);
    (d, o)
}

#[test]
fn a_misspelt_config_key_gets_a_did_you_mean() {
    let (_d, o) = train_config(r#"{"optimizer": "rprop-plus", "eta_minuss": 0.5}"#);
    let line = refused(&o, "unknown key `eta_minuss`; did you mean `eta_minus`?");
    assert!(line.ends_with('?'), "{line}");
    let (_d, o) = train_config(r#"{"optimizer": "rprop-plus", "eta-plus": 1.1}"#);
    refused(&o, "did you mean `eta_plus`?");
    // Nothing near: the keys of the config's optimizer, in full (not cut off).
    let (_d, o) = train_config(r#"{"optimizer": "adam", "lr_decay": 0.9}"#);
    let line = refused(&o, "a config of adam has the keys");
    for key in ["learning_rate", "beta2", "hidden", "cpu_matmul"] {
        assert!(line.contains(key), "{line}");
    }
    assert!(!line.ends_with("..."), "{line}");
    refused(
        &run(&["train", "--optimizer", "irprop-plu"]),
        "did you mean irprop-plus?",
    );
}

#[test]
fn a_config_is_found_by_its_bare_name() {
    // `--epochs 0` fails after the config is read: the name led to configs/irprop-plus.json.
    let d = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_rprop-lab"))
        .current_dir(d.path())
        .args(["train", "--config", "irprop-plus", "--epochs", "0"])
        .output()
        .unwrap();
    refused(&o, "key `epochs`");
    let line = refused(
        &run(&["train", "--config", "irprop_plus"]),
        "no such config file",
    );
    assert!(
        line.ends_with("did you mean configs/irprop-plus.json?"),
        "{line}"
    );
    // The places it looked are the working folder and the repository, not ~/.cargo.
    assert!(!line.contains(".cargo"), "{line}");
}

#[test]
fn a_seed_range_with_a_dash_is_told_how_to_write_it() {
    let o = run(&["compare", "--seeds", "0-9"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("for the seeds 0 to 9 write 0..9"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn verify_without_an_adapter_does_not_suggest_the_cpu_backend() {
    // WGPU_BACKEND=dx12 on Linux: wgpu finds no adapter.
    let o = crate::common::bin()
        .env("WGPU_BACKEND", "dx12")
        .args([
            "verify",
            "--config",
            "configs/irprop-plus.json",
            "--steps",
            "1",
        ])
        .output()
        .unwrap();
    let line = refused(&o, "verify compares the GPU backend with the CPU reference");
    assert!(!line.contains("--backend"), "{line}");
}

#[test]
fn json_given_as_weights_or_a_config_given_as_metrics_is_named() {
    let d = tempfile::tempdir().unwrap();
    let metrics = d.path().join("metrics.json");
    let text = r#"{"optimizer": "adam", "backend": "cpu", "best_epoch": 0, "epochs": []}"#;
    std::fs::write(&metrics, text).unwrap();
    let o = run(&["test", "--weights", metrics.to_str().unwrap()]);
    let line = refused(&o, "not a weights file: it is JSON text");
    assert!(!line.contains("header too large"), "{line}");
    let png = d.path().join("p.png");
    let o = run(&[
        "plot",
        "configs/irprop-plus.json",
        "--out",
        png.to_str().unwrap(),
    ]);
    let line = refused(&o, "not a run's metrics file");
    assert!(!line.contains("invalid type"), "{line}");
    assert!(!png.exists());
}
