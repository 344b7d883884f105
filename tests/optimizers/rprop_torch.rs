//! `irprop-minus` against a real `torch.optim.Rprop` run (torch 2.15, CPU) of the same flow
//! from the same initial weights: 2,000 train / 500 eval MNIST images, 10 full-batch epochs.
//! The fixture was made by `tools/torch_reference.py` (see its docstring).
//!
//! Both sides compute the same f32 math but sum in different orders (gemm vs MKL), so the
//! gradients differ in the last bits; Rprop only reads their signs, so nearly every weight
//! must come out bit-identical and the losses must agree to float rounding.

use crate::common;

use rprop_lab::backend::Backend;
use rprop_lab::checkpoint;
use rprop_lab::config::Config;
use rprop_lab::cpu::CpuBackend;
use rprop_lab::data::{self, Part};
use rprop_lab::optim::Variant;

#[test]
fn irprop_minus_matches_torch_rprop_step_for_step() {
    let torch: serde_json::Value =
        serde_json::from_slice(&std::fs::read(common::fixture("torch_rprop.json")).unwrap())
            .unwrap();
    let (n_train, n_eval) = (
        torch["train"].as_u64().unwrap() as usize,
        torch["eval"].as_u64().unwrap() as usize,
    );
    let learn = data::load(&common::mnist_dir(), Part::Learn).unwrap();
    let (train, eval) = data::split(&learn, n_train, n_eval).unwrap();
    let init = checkpoint::load(&common::fixture("torch_rprop-init.safetensors"), 784, 10).unwrap();
    let cfg = Config::report(Variant::IrpropMinus);
    let mut b = CpuBackend::new(&train, &eval, init, cfg.optimizer, cfg.hyper());
    for row in torch["epochs"].as_array().unwrap() {
        let s = b.epoch().unwrap();
        let epoch = row["epoch"].as_u64().unwrap();
        for (ours, key) in [(s.train.loss, "train_loss"), (s.eval.loss, "eval_loss")] {
            let theirs = row[key].as_f64().unwrap();
            let rel = (ours as f64 - theirs).abs() / theirs;
            assert!(rel < 1e-4, "epoch {epoch} {key}: {ours} vs torch {theirs}");
        }
        for (ours, key) in [
            (s.train.accuracy(), "train_acc"),
            (s.eval.accuracy(), "eval_acc"),
        ] {
            let theirs = row[key].as_f64().unwrap();
            assert!(
                (ours - theirs).abs() < 2e-3,
                "epoch {epoch} {key}: {ours} vs {theirs}"
            );
        }
    }
    let ours = b.params().unwrap();
    let theirs = checkpoint::load(&common::fixture("torch_rprop.safetensors"), 784, 10).unwrap();
    let n = ours.layout.count();
    let same = ours
        .data
        .iter()
        .zip(&theirs.data)
        .filter(|(a, b)| a.to_bits() == b.to_bits())
        .count()
        - (ours.data.len() - n); // padding is zero on both sides
    let max_diff = ours
        .data
        .iter()
        .zip(&theirs.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("bit-identical weights after 10 steps: {same}/{n}; max |diff| {max_diff:e}");
    assert!(
        same as f64 >= 0.999 * n as f64,
        "only {same}/{n} weights bit-identical"
    );
    assert!(max_diff < 0.05, "max diff {max_diff}");
}
