//! L-BFGS on the GPU backend: the one algorithm of `optim::lbfgs::run` on device vectors
//! (src/gpu/lbfgs.rs, shaders/lbfgs.wgsl). Its step lands within 1e-3 (relative L2) of
//! torch's golden trace as the CPU's does, makes torch's closure calls, resumes bit for bit,
//! and passes `verify` with both line searches. Its traffic (a few bytes per reduction) is
//! printed; L-BFGS is exempt from the one-submission-per-epoch rule.

mod common;

use std::path::Path;

use rprop_lab::backend::Backend;
use rprop_lab::checkpoint;
use rprop_lab::data::{self, Part};
use rprop_lab::gpu::{GpuBackend, GpuOptions};
use rprop_lab::optim::lbfgs::LineSearch;
use rprop_lab::optim::Variant;

fn check_against_torch(stem: &str, line_search: LineSearch) {
    let torch: serde_json::Value =
        serde_json::from_slice(&std::fs::read(common::fixture(&format!("{stem}.json"))).unwrap())
            .unwrap();
    let n_train = torch["train"].as_u64().unwrap() as usize;
    let n_eval = torch["eval"].as_u64().unwrap() as usize;
    let learn = data::load(&common::mnist_dir(), Part::Learn).unwrap();
    let (train, eval) = data::split(&learn, n_train, n_eval).unwrap();
    let init = checkpoint::load(&common::fixture("torch_rprop-init.safetensors"), 784, 10).unwrap();
    let v = Variant::Lbfgs;
    let mut h = v.defaults();
    h.line_search = line_search;
    let mut g = GpuBackend::new(&train, &eval, init, v, h, &GpuOptions::default()).unwrap();
    let t0 = std::time::Instant::now();
    let s = g.epoch().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let (reads, bytes) = g.lbfgs_traffic().unwrap();
    let row = &torch["epochs"][0];
    let theirs_loss = row["train_loss"].as_f64().unwrap();
    let theirs =
        checkpoint::load(&common::fixture(&format!("{stem}.safetensors")), 784, 10).unwrap();
    let rel = common::rel_l2(&g.params().unwrap().data, &theirs.data);
    eprintln!(
        "{stem} on the GPU: {} evaluations (torch {}), first loss {} (torch {theirs_loss}); \
         weights after one step: rel. L2 {rel:.3e}; {reads} read-backs, {bytes} bytes, {secs:.2} s",
        s.grad_evals, row["grad_evals"], s.train.loss
    );
    assert_eq!(s.grad_evals as u64, row["grad_evals"].as_u64().unwrap());
    assert!((s.train.loss as f64 - theirs_loss).abs() < 1e-5 * theirs_loss);
    assert!((s.train.accuracy() - row["train_acc"].as_f64().unwrap()).abs() < 1e-6);
    assert!(rel < 1e-3, "{stem}: weights {rel:e} (rel. L2) from torch's");
    // 4 bytes per reduction and per evaluation, nothing else.
    assert_eq!(bytes, 4 * reads);
}

fn gpu_lbfgs_one_step_matches_torch() {
    check_against_torch("torch_lbfgs", LineSearch::None);
}

fn gpu_lbfgs_strong_wolfe_one_step_matches_torch() {
    check_against_torch("torch_lbfgs-wolfe", LineSearch::StrongWolfe);
}

/// 4 epochs, and 2 then 2 more after `--resume`, end in the same files.
fn gpu_lbfgs_resumes_bit_identically() {
    let d = tempfile::tempdir().unwrap();
    for name in ["lbfgs", "lbfgs-wolfe"] {
        let (a, b) = (
            d.path().join(format!("{name}-a")),
            d.path().join(format!("{name}-b")),
        );
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("configs/{name}.json"));
        let train = |out: &Path, epochs: &str| {
            common::ok(&common::run(&[
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
                "--epochs",
                epochs,
                "--out",
                out.to_str().unwrap(),
            ]));
        };
        train(&a, "4");
        train(&b, "2");
        common::ok(&common::run(&[
            "train",
            "--resume",
            b.to_str().unwrap(),
            "--epochs",
            "4",
            "-q",
            "--no-test",
        ]));
        let cfg = std::fs::read_to_string(a.join("config.json")).unwrap();
        assert!(cfg.contains("\"gpu\""), "{name}: not a GPU run: {cfg}");
        common::assert_same_checkpoints(&a, &b);
    }
}

/// `verify` for a multi-evaluation step: each evaluation op by op, then the update from the
/// GPU's gradients and history; two steps, so the second starts from a history.
fn verify_passes_for_lbfgs_with_both_line_searches() {
    for ls in ["none", "strong-wolfe"] {
        let o = common::run(&[
            "verify",
            "--optimizer",
            "lbfgs",
            "--line-search",
            ls,
            "--max-iter",
            "6",
            "--hidden",
            "32,16",
            "--steps",
            "2",
            "--train-set-size",
            "600",
            "--eval-set-size",
            "100",
            "--eval-batch-size",
            "100",
        ]);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{ls}: {text}{}",
            common::stderr(&o)
        );
        assert!(!text.contains("FAIL"), "{ls}: {text}");
        for t in [
            "dW1",
            "eval grads",
            "eval points",
            "new weights",
            "history y",
            "rho",
        ] {
            assert!(text.contains(&format!("  {t} ")), "{ls}: no {t}:\n{text}");
        }
        assert!(text.trim_end().ends_with("verify: PASS"), "{ls}: {text}");
    }
}

fn main() {
    common::gpu::main(&[
        (
            "gpu_lbfgs_one_step_matches_torch",
            gpu_lbfgs_one_step_matches_torch,
        ),
        (
            "gpu_lbfgs_strong_wolfe_one_step_matches_torch",
            gpu_lbfgs_strong_wolfe_one_step_matches_torch,
        ),
        (
            "gpu_lbfgs_resumes_bit_identically",
            gpu_lbfgs_resumes_bit_identically,
        ),
        (
            "verify_passes_for_lbfgs_with_both_line_searches",
            verify_passes_for_lbfgs_with_both_line_searches,
        ),
    ]);
}
