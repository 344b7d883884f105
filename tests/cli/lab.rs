//! The lab a student expects, through the binary: `train` ends with a test score, `test`
//! scores on the run's own data and says which data and backend, the bundled data and
//! configs are found from any folder, and `compare --seeds` summarizes over seeds.

use std::path::Path;

use rprop_lab::metrics::Metrics;

use crate::common::{self, ok, run, stderr};
use crate::SMALL;

fn train(extra: &[&str]) -> std::process::Output {
    let mut args = vec!["train"];
    args.extend(SMALL);
    args.extend(extra);
    run(&args)
}

#[test]
fn train_ends_with_the_best_weights_test_score_and_no_test_skips_it() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run");
    let o = train(&[
        "--optimizer",
        "irprop-plus",
        "--epochs",
        "4",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    let text = ok(&o);
    let m = Metrics::load(&out.join("metrics.json")).unwrap();
    let t = m.test.clone().expect("metrics.json records the test score");
    // The score is the best checkpoint's on the bundled test set.
    let p = rprop_lab::checkpoint::load(&out.join("best.safetensors"), 784, 10).unwrap();
    let set = rprop_lab::data::load(&common::mnist_dir(), rprop_lab::data::Part::Test).unwrap();
    let ev = rprop_lab::cpu::evaluate(&p, &set);
    assert_eq!((t.correct, t.samples), (ev.stats.correct, 10_000));
    assert_eq!(t.accuracy, ev.stats.accuracy());
    assert_eq!(t.best_epoch, m.best_epoch);
    assert_eq!(
        t.data_dir.canonicalize().unwrap(),
        common::mnist_dir().canonicalize().unwrap()
    );
    let line = text.lines().find(|l| l.starts_with("test: ")).unwrap();
    assert_eq!(
        line,
        format!(
            "test: best weights (epoch {}) on 10000 test images from {} (cpu): loss {:.4}, accuracy {:.4}",
            m.best_epoch,
            t.data_dir.display(),
            ev.stats.loss,
            ev.stats.accuracy()
        )
    );

    let out2 = d.path().join("no-test");
    let o = train(&[
        "--optimizer",
        "irprop-plus",
        "--epochs",
        "2",
        "-q",
        "--no-test",
        "--out",
        out2.to_str().unwrap(),
    ]);
    let text = ok(&o);
    assert!(!text.contains("test:"), "{text}");
    assert!(Metrics::load(&out2.join("metrics.json"))
        .unwrap()
        .test
        .is_none());
    // config.json says what the user wrote: shortest decimals, not f32 widened to f64.
    let cfg = std::fs::read_to_string(out2.join("config.json")).unwrap();
    assert!(cfg.contains("\"learning_rate\": 0.001,"), "{cfg}");
    assert!(cfg.contains("\"eta_plus\": 1.2,"), "{cfg}");
    assert!(cfg.contains("\"step_min\": 1e-6,"), "{cfg}");
    assert!(!cfg.contains("0.0010000000474974513"), "{cfg}");
}

#[test]
fn test_scores_on_the_runs_own_data_and_says_which() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("other-data");
    common::write_dataset(&data, 1400, 60, 28);
    let out = d.path().join("run");
    ok(&train(&[
        "--optimizer",
        "rprop-minus",
        "--epochs",
        "2",
        "-q",
        "--no-test",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    let w = out.join("best.safetensors");
    let text = ok(&run(&["test", "--weights", w.to_str().unwrap()]));
    assert!(
        text.starts_with(&format!(
            "test: {} on 60 images from {} (the run's own data, from its metrics.json); backend: cpu\n",
            w.display(),
            data.display()
        )),
        "{text}"
    );
    assert!(text.contains("/60)"), "{text}");
    // --data-dir wins, and says so.
    let mnist = common::mnist_dir();
    let text = ok(&run(&[
        "test",
        "--weights",
        w.to_str().unwrap(),
        "--data-dir",
        mnist.to_str().unwrap(),
    ]));
    assert!(
        text.contains(&format!(
            "on 10000 images from {} (--data-dir)",
            mnist.display()
        )),
        "{text}"
    );
    // Weights with no run beside them: the bundled MNIST, named.
    let lone = d.path().join("lone.safetensors");
    std::fs::copy(&w, &lone).unwrap();
    let text = ok(&run(&["test", "--weights", lone.to_str().unwrap()]));
    assert!(
        text.contains("on 10000 images from ") && text.contains("(the bundled MNIST)"),
        "{text}"
    );
}

#[test]
fn bundled_data_and_configs_are_found_from_any_folder() {
    let d = tempfile::tempdir().unwrap();
    let bin = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_rprop-lab"))
            .current_dir(d.path())
            .args(args)
            .output()
            .unwrap()
    };
    let mut args = vec!["train", "--optimizer", "rprop-minus", "--epochs", "1", "-q"];
    args.extend(SMALL);
    args.extend(["--out", "run"]);
    let text = ok(&bin(&args));
    assert!(text.contains("data/mnist (cpu)"), "{text}");
    assert!(d.path().join("run/best.safetensors").is_file());
    // compare's default configs too.
    let mut args = vec!["compare", "--epochs", "1", "-q", "--out", "cmp"];
    args.extend(SMALL);
    let text = ok(&bin(&args));
    assert!(text.contains("| irprop-minus | 1 |"), "{text}");
    let m = Metrics::load(&d.path().join("cmp/rprop-plus/metrics.json")).unwrap();
    assert_eq!(m.optimizer, "rprop-plus");
    // A folder that has no data: the error says where it looked.
    let o = bin(&[
        "test",
        "--weights",
        "run/best.safetensors",
        "--data-dir",
        "nowhere",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("nowhere"), "{}", stderr(&o));
    let looked = rprop_lab::cli::bundled_candidates();
    assert_eq!(looked[0], Path::new("data/mnist"));
    assert!(
        looked.iter().any(|p| p == &common::mnist_dir()),
        "{looked:?}"
    );
}

#[test]
fn compare_seeds_summarizes_each_config() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("cmp");
    let mut args = vec![
        "compare",
        "--configs",
        "configs/rprop-plus.json",
        "configs/irprop-plus.json",
        "--seeds",
        "0..2",
        "--epochs",
        "3",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(SMALL);
    let text = ok(&run(&args));
    assert!(text.contains("(3 seeds per config: [0, 1, 2])"), "{text}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[4][0], "irprop-plus/seed-1");
    assert_eq!(rows[4][2], "1");
    // The report's numbers sit only beside its own settings (not 3 epochs on 1000 images).
    assert!(rows.iter().all(|r| r[9].is_empty()), "{csv}");
    for (i, seed) in [0, 1, 2].iter().enumerate() {
        let dir = out.join("rprop-plus").join(format!("seed-{seed}"));
        let cfg = rprop_lab::config::Config::load(&dir.join("config.json")).unwrap();
        assert_eq!(cfg.seed, *seed);
        let m = Metrics::load(&dir.join("metrics.json")).unwrap();
        assert_eq!(format!("{}", m.test.unwrap().accuracy), rows[i][5]);
    }
    // Mean ± sample std and the t interval (t_0.975 with 2 degrees of freedom: 4.303).
    let acc: Vec<f64> = rows[..3].iter().map(|r| r[5].parse().unwrap()).collect();
    let mean = acc.iter().sum::<f64>() / 3.0;
    let sd = (acc.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    let half = 4.303 * sd / 3f64.sqrt();
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.starts_with("| run | seeds | test acc mean ± std | 95% interval |"),
        "{md}"
    );
    let line = format!(
        "| rprop-plus | 3 | {mean:.4} ± {sd:.4} | [{:.4}, {:.4}] |",
        mean - half,
        mean + half
    );
    assert!(md.contains(&line), "{line}\n{md}");
    assert!(md.contains("| rprop-plus/seed-2 | "), "{md}");
    for f in ["curves.png", "eval_acc.png", "telemetry.png"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // plot draws a run folder's seeds as one line, and the telemetry chart.
    let tele = d.path().join("tele.png");
    let metrics: Vec<String> = (0..3)
        .map(|s| {
            out.join(format!("irprop-plus/seed-{s}/metrics.json"))
                .display()
                .to_string()
        })
        .collect();
    let mut args = vec![
        "plot",
        "--panel",
        "telemetry",
        "--out",
        tele.to_str().unwrap(),
    ];
    args.extend(metrics.iter().map(String::as_str));
    ok(&run(&args));
    assert!(image::open(&tele).unwrap().height() > 1000);
}

#[test]
fn seeds_and_telemetry_inputs_give_one_clear_error_line() {
    let d = tempfile::tempdir().unwrap();
    for (seeds, what) in [
        ("5..2", "the range is empty"),
        ("0..x", "\"x\" is not a seed"),
        ("1,1", "seed 1 is given twice"),
    ] {
        let o = run(&["compare", "--seeds", seeds, "--out", "/nonexistent"]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{e}");
        assert!(e.contains("--seeds") && e.contains(what), "{e}");
    }
    let o = run(&["compare", "--seeds", "0..1", "--seed", "3"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert_eq!(
        e.trim(),
        "error: --seed and --seeds cannot both be given: --seeds sets each run's seed"
    );
    // plot --panel telemetry of a run without telemetry (SGD) says so.
    let out = d.path().join("sgd");
    ok(&train(&[
        "--optimizer",
        "sgd",
        "--epochs",
        "1",
        "-q",
        "--no-test",
        "--out",
        out.to_str().unwrap(),
    ]));
    let m = out.join("metrics.json");
    let png = d.path().join("t.png");
    let o = run(&[
        "plot",
        m.to_str().unwrap(),
        "--panel",
        "telemetry",
        "--out",
        png.to_str().unwrap(),
    ]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("no Rprop telemetry"), "{e}");
}
