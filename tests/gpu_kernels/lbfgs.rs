//! L-BFGS on the GPU backend: the one algorithm of `optim::lbfgs::run` on device vectors
//! and scalars (src/gpu/lbfgs.rs, shaders/lbfgs.wgsl, shaders/lbfgs_admit.wgsl). Its step
//! lands within 1e-3 (relative L2) of torch's golden trace as the CPU's does and makes
//! torch's closure calls; every step of the run reads back at most once per evaluation
//! plus two, one small ring of scalars each time, with one queue submission per read-back
//! and one to finish. (Its resume and `verify`: tests/gpu_runs.)

use rprop_lab::backend::Backend;
use rprop_lab::checkpoint;
use rprop_lab::data::{self, Part};
use rprop_lab::gpu::lbfgs::Traffic;
use rprop_lab::gpu::ops::lbfgs::Words;
use rprop_lab::gpu::{GpuBackend, GpuOptions};
use rprop_lab::optim::lbfgs::LineSearch;
use rprop_lab::optim::Variant;

use crate::common::gpu::GpuTest;

/// Bytes of one read-back: the ring of scalar words.
const RING_BYTES: u64 = Words::REPORT as u64 * 4;

pub const TESTS: &[GpuTest] = &[
    ("lbfgs::one_step_matches_torch", one_step_matches_torch),
    (
        "lbfgs::strong_wolfe_one_step_matches_torch",
        strong_wolfe_one_step_matches_torch,
    ),
    (
        "lbfgs::an_evaluation_along_a_direction_that_does_not_descend_is_withdrawn",
        an_evaluation_along_a_direction_that_does_not_descend_is_withdrawn,
    ),
];

fn check_against_torch(stem: &str, line_search: LineSearch) {
    let torch: serde_json::Value = serde_json::from_slice(
        &std::fs::read(crate::common::fixture(&format!("{stem}.json"))).unwrap(),
    )
    .unwrap();
    let n_train = torch["train"].as_u64().unwrap() as usize;
    let n_eval = torch["eval"].as_u64().unwrap() as usize;
    let learn = data::load(&crate::common::mnist_dir(), Part::Learn).unwrap();
    let (train, eval) = data::split(&learn, n_train, n_eval).unwrap();
    let init = checkpoint::load(
        &crate::common::fixture("torch_rprop-init.safetensors"),
        784,
        10,
    )
    .unwrap();
    let v = Variant::Lbfgs;
    let mut h = v.defaults();
    h.line_search = line_search;
    let mut g = GpuBackend::new(&train, &eval, init, v, h, &GpuOptions::default()).unwrap();
    let t0 = std::time::Instant::now();
    let s = g.epoch().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let tr = g.lbfgs_traffic().unwrap();
    let row = &torch["epochs"][0];
    let theirs_loss = row["train_loss"].as_f64().unwrap();
    let theirs = checkpoint::load(
        &crate::common::fixture(&format!("{stem}.safetensors")),
        784,
        10,
    )
    .unwrap();
    let rel = crate::common::rel_l2(&g.params().unwrap().data, &theirs.data);
    eprintln!(
        "{stem} on the GPU: {} evaluations (torch {}), first loss {} (torch {theirs_loss}); \
         weights after one step: rel. L2 {rel:.3e}; {} read-backs, {} submissions, {} bytes, \
         {secs:.2} s",
        s.grad_evals, row["grad_evals"], s.train.loss, tr.read_backs, tr.submissions, tr.bytes
    );
    assert_eq!(s.grad_evals as u64, row["grad_evals"].as_u64().unwrap());
    assert!((s.train.loss as f64 - theirs_loss).abs() < 1e-5 * theirs_loss);
    assert!((s.train.accuracy() - row["train_acc"].as_f64().unwrap()).abs() < 1e-6);
    assert!(rel < 1e-3, "{stem}: weights {rel:e} (rel. L2) from torch's");
    check_traffic(stem, tr);
    // The later steps (a growing history) keep to the same bound.
    for epoch in 2..=3 {
        let s = g.epoch().unwrap();
        let tr = g.lbfgs_traffic().unwrap();
        eprintln!("{stem} step {epoch}: {tr:?}");
        assert_eq!(s.grad_evals, tr.evals);
        check_traffic(stem, tr);
    }
}

/// A step's traffic: at most one read-back per evaluation plus two, each the ring of
/// scalars (nothing else read back), each its own submission, plus one to finish.
fn check_traffic(stem: &str, tr: Traffic) {
    assert!(tr.evals >= 2, "{stem}: {tr:?}");
    assert!(
        tr.read_backs <= tr.evals as u64 + 2,
        "{stem}: {} read-backs for {} evaluations",
        tr.read_backs,
        tr.evals
    );
    assert_eq!(tr.bytes, tr.read_backs * RING_BYTES, "{stem}: {tr:?}");
    assert_eq!(tr.submissions, tr.read_backs + 1, "{stem}: {tr:?}");
}

fn one_step_matches_torch() {
    check_against_torch("torch_lbfgs", LineSearch::None);
}

fn strong_wolfe_one_step_matches_torch() {
    check_against_torch("torch_lbfgs-wolfe", LineSearch::StrongWolfe);
}

/// With tolerance_change 1000 every direction fails torch's descent check (g.d > -1000), so
/// a step is its first evaluation only. The GPU evaluates the first point before it reads
/// g.d and takes that evaluation back: the step counts 1 evaluation (the CPU's count), in
/// 2 read-backs, and leaves the weights as they were, on both line searches.
fn an_evaluation_along_a_direction_that_does_not_descend_is_withdrawn() {
    let learn = data::load(&crate::common::mnist_dir(), Part::Learn).unwrap();
    let (train, eval) = data::split(&learn, 300, 100).unwrap();
    let init = rprop_lab::model::Params::init(rprop_lab::model::Layout::new(784, 16, 10), 0);
    for ls in [LineSearch::None, LineSearch::StrongWolfe] {
        let v = Variant::Lbfgs;
        let mut h = v.defaults();
        (h.line_search, h.tolerance_change) = (ls, 1000.0);
        let opts = GpuOptions::default();
        let mut g = GpuBackend::new(&train, &eval, init.clone(), v, h, &opts).unwrap();
        let mut c = rprop_lab::cpu::CpuBackend::new(&train, &eval, init.clone(), v, h);
        for _ in 0..2 {
            let (gs, cs) = (g.epoch().unwrap(), c.epoch().unwrap());
            let tr = g.lbfgs_traffic().unwrap();
            assert_eq!(
                (gs.grad_evals, cs.grad_evals, tr.evals),
                (1, 1, 1),
                "{ls:?}"
            );
            assert_eq!(tr.read_backs, 2, "{ls:?}: {tr:?}");
            assert_eq!(
                g.params().unwrap().data,
                init.data,
                "{ls:?}: the weights moved"
            );
        }
    }
}
