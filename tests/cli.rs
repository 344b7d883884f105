//! The binary end to end on small subsets (CPU backend): outputs, the tester, and one clear
//! error line with exit code 2 for each kind of bad input.

mod common;

use common::{run, stderr};

use std::path::Path;
use std::process::Output;

use rprop_lab::metrics::Metrics;

/// A bad input: exit 2, one line on stderr starting with "error:", naming `what`.
fn assert_clear_error(o: &Output, what: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {e}");
    assert!(!e.contains("panicked") && !e.contains("backtrace"), "{e}");
    let lines: Vec<_> = e.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {e}");
    assert!(lines[0].starts_with("error: "), "{e}");
    assert!(lines[0].contains(what), "error should name {what:?}: {e}");
}

const SMALL: [&str; 10] = [
    "--train-set-size",
    "1000",
    "--train-batch-size",
    "1000",
    "--eval-set-size",
    "400",
    "--eval-batch-size",
    "400",
    "--backend",
    "cpu",
];

/// Trains irprop-plus for 12 epochs on 1000 images into `d/run`; returns the folder.
fn small_run(d: &Path) -> std::path::PathBuf {
    let out = d.join("run");
    let mut args = vec![
        "train",
        "--config",
        "configs/irprop-plus.json",
        "--epochs",
        "12",
    ];
    args.extend(SMALL);
    args.extend(["--out", out.to_str().unwrap(), "--quiet"]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

#[test]
fn train_writes_checkpoints_metrics_and_its_config() {
    let d = tempfile::tempdir().unwrap();
    let out = small_run(d.path());
    for f in [
        "best.safetensors",
        "last.safetensors",
        "metrics.json",
        "metrics.csv",
        "config.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let m = Metrics::load(&out.join("metrics.json")).unwrap();
    assert_eq!(m.epochs.len(), 12);
    assert_eq!(m.optimizer, "irprop-plus");
    let best = m
        .epochs
        .iter()
        .min_by(|a, b| a.eval_loss.total_cmp(&b.eval_loss))
        .unwrap();
    assert_eq!(m.best_epoch, best.epoch, "best = lowest eval loss");
    assert!(
        m.epochs[11].train_loss < m.epochs[0].train_loss,
        "loss goes down"
    );
    // The saved config holds the overrides.
    let cfg = rprop_lab::config::Config::load(&out.join("config.json")).unwrap();
    assert_eq!((cfg.epochs, cfg.train_set_size), (12, 1000));
}

#[test]
fn metrics_csv_has_the_metrics_then_telemetry_per_layer() {
    let d = tempfile::tempdir().unwrap();
    let out = small_run(d.path());
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 13);
    // The metrics, the gradient evaluations, then five telemetry columns per layer.
    let header = csv.lines().next().unwrap();
    assert!(
        header.starts_with(
            "epoch,train_loss,train_acc,eval_loss,eval_acc,seconds,grad_evals,l1_sign_changes,l1_backtracks,l1_at_min,l1_at_max,l1_median_step,l2_sign_changes,"
        ),
        "{header}"
    );
    assert_eq!(header.split(',').count(), 7 + 2 * 5);
}

#[test]
fn test_scores_the_best_weights_as_the_library_does() {
    let d = tempfile::tempdir().unwrap();
    let best_w = small_run(d.path()).join("best.safetensors");
    let o = run(&["test", "--weights", best_w.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let params = rprop_lab::checkpoint::load(&best_w, 784, 10).unwrap();
    let set = rprop_lab::data::load(&common::mnist_dir(), rprop_lab::data::Part::Test).unwrap();
    let ev = rprop_lab::cpu::evaluate(&params, &set);
    assert!(
        text.contains(&format!(
            "accuracy {:.4} ({}/10000)",
            ev.stats.accuracy(),
            ev.stats.correct
        )),
        "{text}"
    );
    assert!(text.contains("per class: 0: "), "{text}");
    assert!(
        ev.stats.accuracy() > 0.6,
        "12 epochs on 1000 images learn something"
    );
}

#[test]
fn init_weights_continue_from_saved_weights() {
    let d = tempfile::tempdir().unwrap();
    let first = small_run(d.path());
    let m = Metrics::load(&first.join("metrics.json")).unwrap();
    // The first epoch's train loss is the loss of those weights, lower than the fresh
    // init's.
    let best_w = first.join("best.safetensors");
    let out2 = d.path().join("run2");
    let mut args = vec!["train", "--optimizer", "rprop-minus", "--epochs", "1"];
    args.extend(SMALL);
    args.extend([
        "--out",
        out2.to_str().unwrap(),
        "-q",
        "--init-weights",
        best_w.to_str().unwrap(),
    ]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let m2 = Metrics::load(&out2.join("metrics.json")).unwrap();
    assert!(m2.epochs[0].train_loss < m.epochs[0].train_loss * 0.5);
}

#[test]
fn every_variant_learns_on_a_subset() {
    let learn = rprop_lab::data::load(&common::mnist_dir(), rprop_lab::data::Part::Learn).unwrap();
    let (train, eval) = rprop_lab::data::split(&learn, 2000, 500).unwrap();
    for v in rprop_lab::optim::Variant::report_set() {
        let cfg = rprop_lab::config::Config::report(v);
        let p = rprop_lab::model::Params::init(rprop_lab::model::Layout::MNIST, 0);
        let mut b = rprop_lab::cpu::CpuBackend::new(&train, &eval, p, v, cfg.hyper());
        let mut last = Default::default();
        for _ in 0..25 {
            last = rprop_lab::backend::Backend::epoch(&mut b).unwrap();
        }
        let s: rprop_lab::backend::EpochStats = last;
        assert!(
            s.eval.accuracy() > 0.8,
            "{v}: eval accuracy {}",
            s.eval.accuracy()
        );
        assert!(s.train.loss < 0.7, "{v}: train loss {}", s.train.loss);
    }
}

#[test]
fn help_lists_commands_and_overrides() {
    let o = run(&["--help"]);
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("train") && t.contains("test"), "{t}");
    let o = run(&["train", "--help"]);
    let t = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--config",
        "--epochs",
        "--train-set-size",
        "--eta-minus",
        "--backend",
        "--out",
        "--init-weights",
    ] {
        assert!(t.contains(flag), "train --help lacks {flag}");
    }
}

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
    assert_clear_error(&o, "/no/such/mnist");
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
    assert_clear_error(&o, "x.safetensors");
}

#[test]
fn a_truncated_gzip_is_named() {
    let d = tempfile::tempdir().unwrap();
    let broken = truncated_data(d.path());
    let o = train_on(&broken, &d.path().join("out"), true);
    assert_clear_error(&o, "train-images-idx3-ubyte.gz");
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
    assert_clear_error(&o, "t10k-images-idx3-ubyte.gz");
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
    assert_clear_error(&train_config(d.path(), "{\"optimizer\": "), "c.json");
}

#[test]
fn an_unknown_config_key_is_named_with_its_file() {
    let d = tempfile::tempdir().unwrap();
    let o = train_config(d.path(), r#"{"optimizer": "rprop-plus", "lr_decay": 0.9}"#);
    assert_clear_error(&o, "unknown key `lr_decay`");
    assert!(stderr(&o).contains("c.json"), "{}", stderr(&o));
    // The known keys follow, so the user sees what to write instead.
    assert!(stderr(&o).contains("learning_rate"), "{}", stderr(&o));
}

#[test]
fn an_unknown_optimizer_is_named() {
    assert_clear_error(&run(&["train", "--optimizer", "adamw"]), "adamw");
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
    assert_clear_error(&o, "epochs");
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
    assert_clear_error(&o, "train_batch_size");
}

#[test]
fn a_setting_the_optimizer_ignores_is_refused_naming_it() {
    let o = run(&["train", "--optimizer", "lbfgs", "--weight-decay", "0.01"]);
    assert_clear_error(&o, "key `weight_decay`: lbfgs does not read it");
    let o = run(&["train", "--optimizer", "irprop-plus", "--momentum", "0.9"]);
    assert_clear_error(&o, "key `momentum`: irprop-plus does not read it");
}

#[test]
fn an_unreadable_weights_file_is_named() {
    let d = tempfile::tempdir().unwrap();
    let w = d.path().join("w.safetensors");
    std::fs::write(&w, b"\x08\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
    assert_clear_error(
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
    assert_clear_error(
        &run(&["test", "--weights", w.to_str().unwrap()]),
        "w.safetensors",
    );
}

/// The MNIST network's weights as safetensors tensors, plus `extra` (name, values).
fn weights_with(extra: &[(&str, Vec<f32>)]) -> Vec<u8> {
    let p = rprop_lab::model::Params::init(rprop_lab::model::Layout::MNIST, 0);
    let mut tensors: Vec<(&str, Vec<usize>, &[f32])> = p
        .layout
        .tensors()
        .iter()
        .map(|t| (t.name, t.dims().to_vec(), &p.data[t.range()]))
        .collect();
    tensors.extend(extra.iter().map(|(n, v)| (*n, vec![v.len()], &v[..])));
    rprop_lab::checkpoint::serialize(&tensors, &[])
}

#[test]
fn a_weights_file_with_an_orphan_bias_is_refused_naming_file_and_tensor() {
    let d = tempfile::tempdir().unwrap();
    let w = d.path().join("orphan.safetensors");
    std::fs::write(&w, weights_with(&[("fc3.bias", vec![0.5; 10])])).unwrap();
    let o = run(&["test", "--weights", w.to_str().unwrap()]);
    assert_clear_error(
        &o,
        "orphan.safetensors: tensor `fc3.bias` has no `fc3.weight`",
    );
}

#[test]
fn a_weights_file_with_an_unknown_tensor_is_refused_naming_file_and_tensor() {
    let d = tempfile::tempdir().unwrap();
    let w = d.path().join("extra.safetensors");
    std::fs::write(&w, weights_with(&[("running_mean", vec![0.0; 4])])).unwrap();
    let o = run(&["test", "--weights", w.to_str().unwrap()]);
    assert_clear_error(&o, "extra.safetensors: unexpected tensor `running_mean`");
}

#[test]
fn mini_batches_train_reproducibly_on_the_cpu() {
    let d = tempfile::tempdir().unwrap();
    let run_to = |name: &str, extra: &[&str]| -> Output {
        let out = d.path().join(name);
        let batch = if name == "c" { "1000" } else { "100" };
        let mut args = vec![
            "train",
            "--config",
            "configs/sgd.json",
            "--epochs",
            "3",
            "--train-set-size",
            "1000",
            "--train-batch-size",
            batch,
            "--eval-set-size",
            "200",
            "--eval-batch-size",
            "200",
            "-q",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        run(&args)
    };
    let a = run_to("a", &["--backend", "cpu"]);
    assert!(a.status.success(), "{}", stderr(&a));
    let b = run_to("b", &["--backend", "cpu"]);
    assert!(b.status.success(), "{}", stderr(&b));
    let m = |n: &str| Metrics::load(&d.path().join(n).join("metrics.json")).unwrap();
    let (ma, mb) = (m("a"), m("b"));
    assert_eq!(ma.epochs.len(), 3);
    for (x, y) in ma.epochs.iter().zip(&mb.epochs) {
        assert_eq!(
            x.train_loss.to_bits(),
            y.train_loss.to_bits(),
            "same seed, same batches"
        );
    }
    // Ten SGD steps an epoch learn much faster than one full-batch step.
    let c = run_to("c", &["--backend", "cpu"]);
    assert!(c.status.success(), "{}", stderr(&c));
    assert!(ma.epochs[2].eval_loss < m("c").epochs[2].eval_loss);
    // Another seed shuffles differently.
    let e = run_to(
        "e",
        &[
            "--backend",
            "cpu",
            "--seed",
            "1",
            "--init-weights",
            d.path().join("a/last.safetensors").to_str().unwrap(),
        ],
    );
    assert!(e.status.success(), "{}", stderr(&e));
}

#[test]
fn rprop_on_mini_batches_runs_with_a_warning() {
    let d = tempfile::tempdir().unwrap();
    let r = run(&[
        "train",
        "--optimizer",
        "irprop-minus",
        "--epochs",
        "1",
        "--train-set-size",
        "300",
        "--train-batch-size",
        "100",
        "--eval-set-size",
        "50",
        "--eval-batch-size",
        "50",
        "--backend",
        "cpu",
        "-q",
        "--out",
        d.path().join("r").to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("warning: irprop-minus on mini-batches"),
        "{}",
        stderr(&r)
    );
}

#[test]
fn deeper_networks_train_save_pytorch_names_and_test() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("deep");
    let o = run(&[
        "train",
        "--config",
        "configs/irprop-minus.json",
        "--hidden",
        "64,32,16",
        "--epochs",
        "15",
        "--train-set-size",
        "2000",
        "--train-batch-size",
        "2000",
        "--eval-set-size",
        "300",
        "--eval-batch-size",
        "300",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(out.join("best.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (name, shape) in [
        ("fc1.weight", vec![64, 784]),
        ("fc2.weight", vec![32, 64]),
        ("fc3.bias", vec![16]),
        ("fc4.weight", vec![10, 16]),
    ] {
        assert_eq!(st.tensor(name).unwrap().shape(), shape.as_slice(), "{name}");
    }
    let cfg = rprop_lab::config::Config::load(&out.join("config.json")).unwrap();
    assert_eq!(cfg.hidden, vec![64, 32, 16]);
    let m = Metrics::load(&out.join("metrics.json")).unwrap();
    assert!(
        m.epochs[14].eval_acc > 0.6,
        "a deep net learns too: {}",
        m.epochs[14].eval_acc
    );
    // The tester reads the deep checkpoint as it is.
    let o = run(&[
        "test",
        "--weights",
        out.join("best.safetensors").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("accuracy 0."));
    // --resume of a deep run (deep GPU runs: tests/gpu_robustness.rs).
    let o = run(&[
        "train",
        "--resume",
        out.to_str().unwrap(),
        "--epochs",
        "16",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_clear_error(
        &run(&["train", "--optimizer", "sgd", "--hidden", "64,0"]),
        "hidden",
    );
}
