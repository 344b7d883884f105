//! `train` and `test` on a small subset: what a run writes, the test score of its best
//! weights, starting from saved weights, mini-batches, and deeper networks.

use std::process::Output;

use rprop_lab::metrics::Metrics;

use crate::common::{self, run, stderr};
use crate::{small_run, SMALL};

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
    // --resume of a deep run (deep GPU runs: tests/gpu_runs/resume.rs).
    let o = run(&[
        "train",
        "--resume",
        out.to_str().unwrap(),
        "--epochs",
        "16",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}
