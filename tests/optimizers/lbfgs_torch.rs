//! `lbfgs` against real `torch.optim.LBFGS` runs (torch 2.15, CPU; lr 1, max_iter 20, history
//! 100; line search none and strong Wolfe) of the report's flow from the same initial weights:
//! 2,000 train / 500 eval MNIST images, one `step()` per epoch. The fixtures were made by
//! `tools/torch_reference.py --lbfgs ...` (see its docstring).
//!
//! Both sides compute the same f32 math but sum in different orders, and L-BFGS feeds the
//! gradients' values (not only their signs) through 20 iterations, so the weights agree to a
//! relative L2 distance, not bit for bit. The target: within 1e-3 after one step.

use crate::common;

use rprop_lab::checkpoint;
use rprop_lab::cpu::fused::Input;
use rprop_lab::cpu::lbfgs::cpu_step;
use rprop_lab::cpu::{normalize_images, Workspace};
use rprop_lab::data::{self, Part};
use rprop_lab::model::Params;
use rprop_lab::optim::lbfgs::{LineSearch, Settings, State};

fn check(stem: &str, line_search: LineSearch) {
    let torch: serde_json::Value =
        serde_json::from_slice(&std::fs::read(common::fixture(&format!("{stem}.json"))).unwrap())
            .unwrap();
    let n_train = torch["train"].as_u64().unwrap() as usize;
    let n_eval = torch["eval"].as_u64().unwrap() as usize;
    let learn = data::load(&common::mnist_dir(), Part::Learn).unwrap();
    let (train, _) = data::split(&learn, n_train, n_eval).unwrap();
    let mut params =
        checkpoint::load(&common::fixture("torch_rprop-init.safetensors"), 784, 10).unwrap();
    let x = normalize_images(&train);
    let mut ws = Workspace::new(params.layout, train.len());
    let cfg = Settings {
        line_search,
        ..Settings::default()
    };
    let mut st = State::default();
    let mut step = |params: &mut Params| {
        let data = (Input::dense(&x), &train.labels[..]);
        cpu_step(&cfg, &mut st, params, data, &mut ws)
    };
    let row = &torch["epochs"][0];
    let (first, evals) = step(&mut params);
    let theirs_loss = row["train_loss"].as_f64().unwrap();
    assert!(
        (first.loss as f64 - theirs_loss).abs() < 1e-5 * theirs_loss,
        "{stem}: first loss {} vs torch {theirs_loss}",
        first.loss
    );
    assert!((first.accuracy() - row["train_acc"].as_f64().unwrap()).abs() < 1e-6);
    let theirs_evals = row["grad_evals"].as_u64().unwrap() as u32;
    let theirs =
        checkpoint::load(&common::fixture(&format!("{stem}.safetensors")), 784, 10).unwrap();
    let rel = common::rel_l2(&params.data, &theirs.data);
    eprintln!("{stem}: {evals} evaluations (torch {theirs_evals}); weights after one step: rel. L2 {rel:.3e}");
    assert_eq!(evals, theirs_evals, "{stem}: closure calls");
    assert!(rel < 1e-3, "{stem}: weights {rel:e} (rel. L2) from torch's");
    // The later steps: the same closure calls; the losses drift apart as rounding differences
    // go through 20 more iterations each (1.3-1.6% by the third step's first loss).
    for row in &torch["epochs"].as_array().unwrap()[1..] {
        let (first, evals) = step(&mut params);
        let theirs = row["train_loss"].as_f64().unwrap();
        eprintln!(
            "{stem} epoch {}: {evals} evaluations (torch {}), first loss {} (torch {theirs})",
            row["epoch"], row["grad_evals"], first.loss
        );
        assert_eq!(evals as u64, row["grad_evals"].as_u64().unwrap());
        assert!((first.loss as f64 - theirs).abs() < 3e-2 * theirs);
    }
}

#[test]
fn lbfgs_one_step_matches_torch() {
    check("torch_lbfgs", LineSearch::None);
}

#[test]
fn lbfgs_strong_wolfe_one_step_matches_torch() {
    check("torch_lbfgs-wolfe", LineSearch::StrongWolfe);
}

/// The CPU backend's L-BFGS epoch: the step of `cpu::lbfgs::cpu_step`, bit for bit, its first
/// evaluation as the epoch's train stats, and its closure calls as the epoch's grad_evals.
#[test]
fn cpu_backend_epoch_is_one_lbfgs_step() {
    use rprop_lab::backend::Backend;
    let learn = data::load(&common::mnist_dir(), Part::Learn).unwrap();
    let (train, eval) = data::split(&learn, 2000, 500).unwrap();
    let init = checkpoint::load(&common::fixture("torch_rprop-init.safetensors"), 784, 10).unwrap();
    let cfg = Settings::default();
    let v = rprop_lab::optim::Variant::Lbfgs;
    let mut b = rprop_lab::cpu::CpuBackend::new(&train, &eval, init.clone(), v, v.defaults());
    assert_eq!(b.lbfgs, Some(cfg));
    let s = b.epoch().unwrap();
    let mut params = init;
    let x = normalize_images(&train);
    let mut ws = Workspace::new(params.layout, train.len());
    let mut st = State::default();
    let data = (Input::dense(&x), &train.labels[..]);
    let (first, evals) = cpu_step(&cfg, &mut st, &mut params, data, &mut ws);
    assert_eq!((s.grad_evals, evals), (20, 20));
    assert_eq!(s.train, first);
    assert_eq!(b.params().unwrap().data, params.data);
    assert!(
        s.eval.loss < 0.6,
        "eval loss {} after one step",
        s.eval.loss
    );
}
