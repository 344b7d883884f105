//! `--resume` of a GPU run ends bit-identical to the same run straight through: through the
//! binary (full batch, deep mini-batches, L-BFGS with both line searches) and, in process, for
//! every per-weight optimizer's state.

use std::path::Path;

use rprop_lab::backend::{Backend, RunStart};
use rprop_lab::checkpoint;
use rprop_lab::config::Config;
use rprop_lab::gpu::GpuBackend;
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{OptimState, Variant};
use rprop_lab::trainer::{self, Start};

use crate::common;
use crate::common::gpu::GpuTest;
use crate::support::{run_options, sets};

pub const TESTS: &[GpuTest] = &[
    (
        "resume::full_batch_irprop_plus_resumes_bit_identically",
        full_batch_irprop_plus_resumes_bit_identically,
    ),
    (
        "resume::deep_mini_batch_run_resumes_bit_identically",
        deep_mini_batch_run_resumes_bit_identically,
    ),
    (
        "resume::every_per_weight_optimizer_resumes_bit_identically",
        every_per_weight_optimizer_resumes_bit_identically,
    ),
    (
        "resume::lbfgs_resumes_bit_identically",
        lbfgs_resumes_bit_identically,
    ),
    (
        "resume::lbfgs_strong_wolfe_resumes_bit_identically",
        lbfgs_strong_wolfe_resumes_bit_identically,
    ),
];

/// Trains `base` for `all` epochs into `a`, for `first` into `b`, resumes `b` to `all` (with
/// `resume_extra`), and asserts both end in the same files.
fn check_cli_resume(
    base: &[&str],
    (first, all): (&str, &str),
    resume_extra: &[&str],
) -> (std::path::PathBuf, tempfile::TempDir) {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    for (out, epochs) in [(&a, all), (&b, first)] {
        let tail = ["--epochs", epochs, "--out", out.to_str().unwrap()];
        common::ok(&common::run(&[base, &tail[..]].concat()));
    }
    let resume = [
        "train",
        "--resume",
        b.to_str().unwrap(),
        "--epochs",
        all,
        "-q",
    ];
    common::ok(&common::run(&[&resume[..], resume_extra].concat()));
    common::assert_same_checkpoints(&a, &b);
    (b, d)
}

/// Through the binary, for the report's iRprop+: the run's own backend (gpu) is taken from its
/// metrics.
fn full_batch_irprop_plus_resumes_bit_identically() {
    let base = [
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
    let (b, _d) = check_cli_resume(&base, ("5", "12"), &[]);
    let m = rprop_lab::metrics::Metrics::load(&b.join("metrics.json")).unwrap();
    assert!(m.backend.starts_with("gpu"), "{}", m.backend);
    assert_eq!(m.epochs.len(), 12);
}

fn deep_mini_batch_run_resumes_bit_identically() {
    let base = [
        "train",
        "--optimizer",
        "rprop-minus",
        "--hidden",
        "32,16",
        "--train-set-size",
        "1200",
        "--train-batch-size",
        "400",
        "--eval-set-size",
        "200",
        "--eval-batch-size",
        "200",
        "--backend",
        "gpu",
        "-q",
    ];
    check_cli_resume(&base, ("3", "6"), &[]);
}

/// 4 epochs, and 2 then 2 more after `--resume`, end in the same files (L-BFGS's steps take
/// seconds each on a software adapter, hence the small net).
fn check_lbfgs_resume(name: &str) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("configs/{name}.json"));
    let base = [
        "train",
        "--config",
        config.to_str().unwrap(),
        "--train-set-size",
        "400",
        "--eval-set-size",
        "100",
        "--hidden",
        "16",
        "--backend",
        "gpu",
        "-q",
        "--no-test",
    ];
    let (b, _d) = check_cli_resume(&base, ("2", "4"), &["--no-test"]);
    let cfg = std::fs::read_to_string(b.join("config.json")).unwrap();
    assert!(cfg.contains("\"gpu\""), "{name}: not a GPU run: {cfg}");
}

fn lbfgs_resumes_bit_identically() {
    check_lbfgs_resume("lbfgs");
}

fn lbfgs_strong_wolfe_resumes_bit_identically() {
    check_lbfgs_resume("lbfgs-wolfe");
}

/// Optimizer `v` at its bundled config on `b`: a run stopped at epoch 3, saved, read back from
/// its files and resumed ends bit-identical to one run straight through to epoch 6.
fn check_in_process_resume(b: &mut GpuBackend, v: Variant, mut cfg: Config, dir: &Path) {
    let layout = Layout::new(784, 32, 10);
    let fresh = || {
        let p = Params::init(layout, cfg.seed);
        (OptimState::for_variant(p.data.len(), v, &cfg.hyper), p)
    };
    let (a, bdir) = (dir.join(format!("{v}-a")), dir.join(format!("{v}-b")));
    cfg.epochs = 6;
    trainer::train(b, &cfg, &run_options(&a), Start::default()).unwrap();
    let (s, p) = fresh();
    b.restart(RunStart::new(p, s, v, cfg.hyper)).unwrap();
    cfg.epochs = 3;
    trainer::train(b, &cfg, &run_options(&bdir), Start::default()).unwrap();
    // What `--resume` reads: the state file (with the weights) and the metrics.
    let (start, state, _) = Start::resume(&bdir, layout.total()).unwrap();
    let file = checkpoint::load_state_full(&bdir.join(trainer::STATE), layout.total());
    let data = file.unwrap().3.expect("the state file holds the weights");
    b.restart(RunStart::new(Params { layout, data }, state, v, cfg.hyper))
        .unwrap();
    cfg.epochs = 6;
    trainer::train(b, &cfg, &run_options(&bdir), start).unwrap();
    // Names the optimizer whose check follows (the check's panic does not).
    eprintln!("resumed {v} on the GPU");
    common::assert_same_checkpoints(&a, &bdir);
}

/// Every registered per-weight optimizer (L-BFGS above, through the binary). In process, on
/// one backend (`restart`), so the loop costs one GPU set-up rather than three per optimizer.
fn every_per_weight_optimizer_resumes_bit_identically() {
    let (train, eval) = sets(600, 200);
    let on_gpu: Vec<Variant> = Variant::ALL
        .iter()
        .copied()
        .filter(|v| !v.is_multi_eval())
        .collect();
    assert!(
        on_gpu.len() >= 10,
        "the GPU runs every per-weight optimizer"
    );
    let d = tempfile::tempdir().unwrap();
    let mut backend: Option<GpuBackend> = None;
    for v in on_gpu {
        let path = format!("{}/configs/{v}.json", env!("CARGO_MANIFEST_DIR"));
        let mut cfg = Config::load(Path::new(&path)).unwrap();
        (cfg.train_set_size, cfg.train_batch_size) = (600, 600);
        (cfg.eval_set_size, cfg.eval_batch_size, cfg.hidden) = (200, 200, vec![32]);
        let p = Params::init(Layout::new(784, 32, 10), cfg.seed);
        let s = OptimState::for_variant(p.data.len(), v, &cfg.hyper);
        let b = match backend.as_mut() {
            Some(b) => {
                b.restart(RunStart::new(p, s, v, cfg.hyper)).unwrap();
                b
            }
            None => backend.insert(
                GpuBackend::with_state(
                    &train,
                    &eval,
                    RunStart::new(p, s, v, cfg.hyper),
                    &Default::default(),
                )
                .unwrap(),
            ),
        };
        check_in_process_resume(b, v, cfg, d.path());
    }
}
