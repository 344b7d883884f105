//! One clear error line with exit code 2 for each kind of bad input: data folders and files,
//! configs, overrides, weights files.

use std::path::Path;
use std::process::Output;

use crate::common::{self, refused, run, stderr};

/// `train` of rprop-plus on `data` (a tiny subset when `small`) into `out`.
fn train_on(data: &Path, out: &Path, small: bool) -> Output {
    let mut args = vec![
        "train",
        "--optimizer",
        "rprop-plus",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    if small {
        args.extend([
            "--train-set-size",
            "40",
            "--train-batch-size",
            "40",
            "--eval-set-size",
            "10",
            "--eval-batch-size",
            "10",
        ]);
    }
    run(&args)
}

#[test]
fn a_missing_data_folder_is_named_and_nothing_is_written() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let o = train_on(Path::new("/no/such/mnist"), &out, false);
    refused(&o, "/no/such/mnist");
    assert!(!out.join("best.safetensors").exists());
}

/// A data folder whose training images are cut to a third.
fn truncated_data(d: &Path) -> std::path::PathBuf {
    let broken = d.join("broken");
    common::write_dataset(&broken, 50, 10, 28);
    let f = broken.join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 3]).unwrap();
    broken
}

#[test]
fn a_missing_weights_file_is_named() {
    let d = tempfile::tempdir().unwrap();
    let broken = truncated_data(d.path());
    // The test set is intact, so this fails on the weights, not the data.
    let o = run(&[
        "test",
        "--weights",
        "x.safetensors",
        "--data-dir",
        broken.to_str().unwrap(),
    ]);
    refused(&o, "x.safetensors");
}

#[test]
fn a_truncated_gzip_is_named() {
    let d = tempfile::tempdir().unwrap();
    let broken = truncated_data(d.path());
    let o = train_on(&broken, &d.path().join("out"), true);
    refused(&o, "train-images-idx3-ubyte.gz");
}

#[test]
fn an_idx_file_with_the_wrong_magic_is_named() {
    let d = tempfile::tempdir().unwrap();
    let wrong = d.path().join("wrong");
    common::write_dataset(&wrong, 50, 10, 28);
    std::fs::write(
        wrong.join("t10k-images-idx3-ubyte.gz"),
        common::gzip(&common::idx(0x801, &[10], &[0; 10])),
    )
    .unwrap();
    let p = rprop_lab::model::Params::init(rprop_lab::model::Layout::MNIST, 0);
    let w = d.path().join("w.safetensors");
    rprop_lab::checkpoint::save(&w, &p, &[]).unwrap();
    let o = run(&[
        "test",
        "--weights",
        w.to_str().unwrap(),
        "--data-dir",
        wrong.to_str().unwrap(),
    ]);
    refused(&o, "t10k-images-idx3-ubyte.gz");
}

/// `train --config` of a config file holding `text`.
fn train_config(d: &Path, text: &str) -> Output {
    let cfg = d.join("c.json");
    std::fs::write(&cfg, text).unwrap();
    run(&["train", "--config", cfg.to_str().unwrap()])
}

#[test]
fn a_malformed_config_is_named() {
    let d = tempfile::tempdir().unwrap();
    refused(&train_config(d.path(), "{\"optimizer\": "), "c.json");
}

#[test]
fn an_unknown_config_key_is_named_with_its_file() {
    let d = tempfile::tempdir().unwrap();
    let o = train_config(d.path(), r#"{"optimizer": "rprop-plus", "lr_decay": 0.9}"#);
    refused(&o, "unknown key `lr_decay`");
    assert!(stderr(&o).contains("c.json"), "{}", stderr(&o));
    // The known keys follow, so the user sees what to write instead.
    assert!(stderr(&o).contains("learning_rate"), "{}", stderr(&o));
}

#[test]
fn an_unknown_optimizer_is_named() {
    refused(&run(&["train", "--optimizer", "adamw"]), "adamw");
}

#[test]
fn a_non_numeric_override_names_its_key() {
    let o = run(&[
        "train",
        "--config",
        "configs/rprop-plus.json",
        "--epochs",
        "many",
    ]);
    refused(&o, "epochs");
}

#[test]
fn a_zero_batch_size_names_its_key() {
    let o = run(&[
        "train",
        "--config",
        "configs/rprop-plus.json",
        "--train-batch-size",
        "0",
    ]);
    refused(&o, "train_batch_size");
}

#[test]
fn a_setting_the_optimizer_ignores_is_refused_naming_it() {
    let o = run(&["train", "--optimizer", "lbfgs", "--weight-decay", "0.01"]);
    refused(&o, "key `weight_decay`: lbfgs does not read it");
    let o = run(&["train", "--optimizer", "irprop-plus", "--momentum", "0.9"]);
    refused(&o, "key `momentum`: irprop-plus does not read it");
}

#[test]
fn an_unreadable_weights_file_is_named() {
    let d = tempfile::tempdir().unwrap();
    let w = d.path().join("w.safetensors");
    std::fs::write(&w, b"\x08\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
    refused(
        &run(&["test", "--weights", w.to_str().unwrap()]),
        "w.safetensors",
    );
}

#[test]
fn weights_of_another_shape_are_named() {
    let d = tempfile::tempdir().unwrap();
    let w = d.path().join("w.safetensors");
    let small = rprop_lab::model::Params::init(rprop_lab::model::Layout::new(784, 16, 3), 0);
    rprop_lab::checkpoint::save(&w, &small, &[]).unwrap();
    refused(
        &run(&["test", "--weights", w.to_str().unwrap()]),
        "w.safetensors",
    );
}

/// The MNIST network's weights as safetensors tensors, plus `extra` (name, values).

#[test]
fn a_weights_file_with_an_orphan_bias_is_refused_naming_file_and_tensor() {
    let d = tempfile::tempdir().unwrap();
    let w = d.path().join("orphan.safetensors");
    std::fs::write(&w, common::weights_with(&[("fc3.bias", vec![0.5; 10])])).unwrap();
    let o = run(&["test", "--weights", w.to_str().unwrap()]);
    refused(
        &o,
        "orphan.safetensors: tensor `fc3.bias` has no `fc3.weight`",
    );
}

#[test]
fn a_weights_file_with_an_unknown_tensor_is_refused_naming_file_and_tensor() {
    let d = tempfile::tempdir().unwrap();
    let w = d.path().join("extra.safetensors");
    std::fs::write(&w, common::weights_with(&[("running_mean", vec![0.0; 4])])).unwrap();
    let o = run(&["test", "--weights", w.to_str().unwrap()]);
    refused(&o, "extra.safetensors: unexpected tensor `running_mean`");
}

#[test]
fn a_hidden_layer_of_width_zero_names_its_key() {
    refused(
        &run(&["train", "--optimizer", "sgd", "--hidden", "64,0"]),
        "hidden",
    );
}
