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

#[test]
fn train_writes_outputs_and_test_scores_them() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run");
    let out_s = out.to_str().unwrap();
    let mut args = vec![
        "train",
        "--config",
        "configs/irprop-plus.json",
        "--epochs",
        "12",
    ];
    args.extend(SMALL);
    args.extend(["--out", out_s, "--quiet"]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
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
    // The saved config holds the overrides.
    let cfg = rprop_lab::config::Config::load(&out.join("config.json")).unwrap();
    assert_eq!((cfg.epochs, cfg.train_set_size), (12, 1000));

    // The tester reads the best weights and agrees with the library's evaluation.
    let best_w = out.join("best.safetensors");
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

    // --init-weights continues from saved weights: the first epoch's train loss is the loss
    // of those weights, lower than the fresh init's.
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

#[test]
fn bad_inputs_give_one_clear_error_line() {
    let d = tempfile::tempdir().unwrap();
    let dp = d.path();
    let out = dp.join("out");
    let out_s = out.to_str().unwrap();

    // Missing data dir.
    let o = run(&[
        "train",
        "--optimizer",
        "rprop-plus",
        "--data-dir",
        "/no/such/mnist",
        "--out",
        out_s,
    ]);
    assert_clear_error(&o, "/no/such/mnist");

    // Truncated gzip.
    let broken = dp.join("broken");
    common::write_dataset(&broken, 50, 10, 28);
    let f = broken.join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 3]).unwrap();
    let o = run(&[
        "test",
        "--weights",
        "x.safetensors",
        "--data-dir",
        broken.to_str().unwrap(),
    ]);
    // (the test set is intact, so this fails on the weights, not the data)
    assert_clear_error(&o, "x.safetensors");
    let o = run(&[
        "train",
        "--optimizer",
        "rprop-plus",
        "--data-dir",
        broken.to_str().unwrap(),
        "--train-set-size",
        "40",
        "--train-batch-size",
        "40",
        "--eval-set-size",
        "10",
        "--eval-batch-size",
        "10",
        "--out",
        out_s,
    ]);
    assert_clear_error(&o, "train-images-idx3-ubyte.gz");

    // Wrong magic.
    let wrong = dp.join("wrong");
    common::write_dataset(&wrong, 50, 10, 28);
    std::fs::write(
        wrong.join("t10k-images-idx3-ubyte.gz"),
        common::gzip(&common::idx(0x801, &[10], &[0; 10])),
    )
    .unwrap();
    let p = rprop_lab::model::Params::init(rprop_lab::model::Layout::MNIST, 0);
    let w = dp.join("w.safetensors");
    rprop_lab::checkpoint::save(&w, &p, &[]).unwrap();
    let o = run(&[
        "test",
        "--weights",
        w.to_str().unwrap(),
        "--data-dir",
        wrong.to_str().unwrap(),
    ]);
    assert_clear_error(&o, "t10k-images-idx3-ubyte.gz");

    // Malformed config, unknown key, unknown optimizer, bad override.
    let cfg = dp.join("c.json");
    std::fs::write(&cfg, "{\"optimizer\": ").unwrap();
    assert_clear_error(
        &run(&["train", "--config", cfg.to_str().unwrap()]),
        "c.json",
    );
    std::fs::write(&cfg, r#"{"optimizer": "rprop-plus", "lr_decay": 0.9}"#).unwrap();
    assert_clear_error(
        &run(&["train", "--config", cfg.to_str().unwrap()]),
        "momentum",
    );
    assert_clear_error(&run(&["train", "--optimizer", "adamw"]), "adamw");
    assert_clear_error(
        &run(&[
            "train",
            "--config",
            "configs/rprop-plus.json",
            "--epochs",
            "many",
        ]),
        "epochs",
    );
    assert_clear_error(
        &run(&[
            "train",
            "--config",
            "configs/rprop-plus.json",
            "--train-batch-size",
            "0",
        ]),
        "train_batch_size",
    );

    // Unreadable / wrong-shaped weights.
    std::fs::write(&w, b"\x08\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
    assert_clear_error(
        &run(&["test", "--weights", w.to_str().unwrap()]),
        "w.safetensors",
    );
    let small = rprop_lab::model::Params::init(rprop_lab::model::Layout::new(784, 16, 3), 0);
    rprop_lab::checkpoint::save(&w, &small, &[]).unwrap();
    assert_clear_error(
        &run(&["test", "--weights", w.to_str().unwrap()]),
        "w.safetensors",
    );
    assert!(!Path::new(out_s).join("best.safetensors").exists());
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
    // Rprop on mini-batches is allowed, with a warning.
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
