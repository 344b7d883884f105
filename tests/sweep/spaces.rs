//! The bundled space files: every trial's config built and checked, as `sweep` builds them.

use std::path::Path;

use rprop_lab::config::Config;
use rprop_lab::optim::Variant;
use rprop_lab::sweep::plan::Builder;
use rprop_lab::sweep::sample::draw_all;
use rprop_lab::sweep::space::Space;

fn bundled(name: &str) -> Space {
    Space::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("sweeps")
            .join(name),
    )
    .unwrap()
}

fn configs(s: &Space, overrides: &[(String, String)]) -> Vec<Config> {
    let b = Builder::new(s, overrides).unwrap();
    let draws = draw_all(s, 0, None).unwrap();
    (draws.iter().enumerate())
        .map(|(i, d)| b.config(i + 1, d).unwrap())
        .collect()
}

// The report's space: plain SGD (no momentum), lr and L2 in 1e-7..1e-2, one hidden layer of
// 32..400, 100..500 epochs, full batch on the report's sets.
#[test]
fn sgd_l2_is_the_reports_space() {
    let s = bundled("sgd-l2.json");
    let all = configs(&s, &[]);
    assert_eq!(all.len(), 100);
    for c in &all {
        assert_eq!(c.optimizer, Variant::Sgd);
        assert_eq!(c.hyper.momentum, 0.0);
        let lr = c.hyper.lr as f64;
        assert!((0.99e-7..=1.01e-2).contains(&lr), "{lr}");
        let wd = c.hyper.weight_decay as f64;
        assert!((0.99e-7..=1.01e-2).contains(&wd), "{wd}");
        assert_eq!(c.hidden.len(), 1);
        assert!((32..=400).contains(&c.hidden[0]));
        assert!((100..=500).contains(&c.epochs));
        assert_eq!((c.train_set_size, c.train_batch_size), (50_000, 50_000));
    }
    // Options apply to every trial, and a full batch stays full.
    let small = configs(
        &s,
        &[
            ("train_set_size".into(), "2000".into()),
            ("backend".into(), "cpu".into()),
        ],
    );
    assert!(small
        .iter()
        .all(|c| c.train_batch_size == 2000 && c.run.backend.as_deref() == Some("cpu")));
}

// The study's version of the report's space (docs/sweep.md): the same keys and ranges but
// 10..50 epochs of mini-batches of 100 images.
#[test]
fn sgd_l2_short_is_the_reports_space_on_mini_batches() {
    let s = bundled("sgd-l2-short.json");
    let all = configs(&s, &[]);
    assert_eq!(all.len(), 100);
    for c in &all {
        assert_eq!((c.optimizer, c.hyper.momentum), (Variant::Sgd, 0.0));
        for x in [c.hyper.lr as f64, c.hyper.weight_decay as f64] {
            assert!((0.99e-7..=1.01e-2).contains(&x), "{x}");
        }
        assert!(c.hidden.len() == 1 && (32..=400).contains(&c.hidden[0]));
        assert!((10..=50).contains(&c.epochs));
        assert_eq!((c.train_set_size, c.train_batch_size), (50_000, 100));
    }
}

// The timed sweep of docs/performance.md: 20 report-sized trials of 10..30 full-batch epochs.
#[test]
fn throughput_is_twenty_report_sized_trials() {
    let all = configs(&bundled("throughput.json"), &[]);
    assert_eq!(all.len(), 20);
    for c in &all {
        assert!((10..=30).contains(&c.epochs), "{}", c.epochs);
        assert_eq!((c.train_set_size, c.eval_set_size), (50_000, 10_000));
        assert_eq!(
            (c.hidden.as_slice(), c.train_batch_size),
            (&[128][..], 50_000)
        );
        assert!((1e-4..=1e-2).contains(&c.hyper.lr));
    }
}

// The robustness space: one key, learning_rate, is the Rprop variants' initial step and
// Adam's and SGD's learning rate; each trial has its optimizer's own other settings.
#[test]
fn initial_step_varies_the_first_step_of_each_optimizer() {
    let s = bundled("initial-step.json");
    let all = configs(&s, &[]);
    assert_eq!(all.len(), 160);
    for c in &all {
        let mut report = Config::report(c.optimizer);
        report.hyper.lr = c.hyper.lr;
        assert_eq!(*c, report, "{:?}", c.optimizer);
        assert!((1e-5..=1.0).contains(&c.hyper.lr));
    }
    for v in [
        Variant::IrpropPlus,
        Variant::RpropMinus,
        Variant::Adam,
        Variant::Sgd,
    ] {
        assert_eq!(all.iter().filter(|c| c.optimizer == v).count(), 40, "{v}");
    }
}

// A base config file is read from the space file's folder.
#[test]
fn a_base_file_is_found_beside_the_space() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("cfg")).unwrap();
    std::fs::write(
        d.path().join("cfg/base.json"),
        r#"{"optimizer": "rprop-plus", "eta_plus": 1.3, "epochs": 7}"#,
    )
    .unwrap();
    let p = crate::space(
        d.path(),
        "s.json",
        r#"{"base": "cfg/base.json", "search": "random", "trials": 3,
            "keys": {"eta_minus": {"uniform": [0.3, 0.6]}}}"#,
    );
    let s = Space::load(&p).unwrap();
    for c in configs(&s, &[]) {
        assert_eq!(
            (c.optimizer, c.hyper.eta_plus, c.epochs),
            (Variant::RpropPlus, 1.3, 7)
        );
        assert!((0.3..=0.6).contains(&c.hyper.eta_minus));
    }
}
