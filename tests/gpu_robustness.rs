//! The GPU backend's part of robustness: its optimizer state survives a save and a
//! `--resume` exactly (bit-identical to an uninterrupted GPU run).
//!
//! Without an adapter this fails when CI is set and is skipped with a notice otherwise.

mod common;

use std::process::Command;

fn run(args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_rprop-lab"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn gpu_resume_is_bit_identical() {
    if !common::have_gpu() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    let common = [
        "train",
        "--config",
        "configs/irprop-plus.json",
        "--train-set-size",
        "1500",
        "--train-batch-size",
        "1500",
        "--eval-set-size",
        "300",
        "--eval-batch-size",
        "300",
        "--backend",
        "gpu",
        "-q",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        common.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let args = with(&["--epochs", "12", "--out", a.to_str().unwrap()]);
    run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let args = with(&["--epochs", "5", "--out", b.to_str().unwrap()]);
    run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // The run's own backend (gpu) is taken from its metrics.
    run(&[
        "train",
        "--resume",
        b.to_str().unwrap(),
        "--epochs",
        "12",
        "-q",
    ]);
    for f in [
        "last.safetensors",
        "best.safetensors",
        "optimizer.safetensors",
    ] {
        assert!(
            common::tensors(&a.join(f)) == common::tensors(&b.join(f)),
            "{f} differs"
        );
    }
    let m = rprop_lab::metrics::Metrics::load(&b.join("metrics.json")).unwrap();
    assert!(m.backend.starts_with("gpu"), "{}", m.backend);
    assert_eq!(m.epochs.len(), 12);
}
