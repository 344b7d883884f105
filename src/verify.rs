//! `rprop-lab verify`: the GPU kernels against the CPU reference, step by step.
//!
//! Rprop only looks at gradient signs, so a 1-ulp difference can flip a sign and the two
//! trajectories then drift apart for good. Comparing two free-running trainings would thus
//! test the drift, not the kernels. Instead, before each step the CPU is re-synced to the
//! GPU's current weights and optimizer state, and each step compares every intermediate of
//! the GPU step with the CPU's computed from the same inputs:
//!
//! * forward/backward tensors: max absolute difference, and the max relative difference
//!   normalized by the tensor's largest CPU magnitude (`max|g - c| / max|c|`), which stays
//!   meaningful where individual entries cross zero; PASS if the latter is within the
//!   tensor's tolerance ([`tolerance`]);
//! * the Rprop update (weights, step sizes, previous gradients and changes, E_{t-1}):
//!   cpu::optimizer applied to the GPU's gradients and loss must match bit for bit.

use std::path::Path;

use anyhow::{Context, Result};

use crate::backend::Backend;
use crate::config::Config;
use crate::cpu::{self, Workspace};
use crate::gpu::{GpuBackend, GpuOptions, StepDump};
use crate::model::{Layout, Params};
use crate::optim::{Hyper, RpropState, Variant};
use crate::trainer::{initial_params, load_train_eval};

/// The verify run found a difference beyond tolerance (main maps it to exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("verify failed: {0}")]
pub struct VerifyFailed(pub String);

/// Norm-relative tolerance of each compared tensor. Single-pass f32 kernels (Z1, H, Z2,
/// softmax) differ from the CPU's gemm only by summation order and exp/ln ulps: 1e-5.
/// Gradients summed over all n samples (dW1, dW2, db1, db2) accumulate more rounding in a
/// different order: 1e-4. (dZ1, dW1 and db1 are referenced to the GPU's ReLU mask, see
/// [`check_step`], so rare sign flips of Z1 ~ 0 do not count against the kernels.)
pub fn tolerance(name: &str) -> f64 {
    match name {
        "Z1" | "H" | "Z2" | "loss" | "dZ2" | "dH" | "dZ1" | "loss mean" => 1e-5,
        _ => 1e-4,
    }
}

/// Tolerance of the update of the optimizers other than Rprop (see [`check_step`]).
pub const UPDATE_TOL: f64 = 1e-5;

/// One compared tensor.
#[derive(Clone, Debug)]
pub struct Diff {
    pub name: String,
    pub max_abs: f64,
    /// `max|g - c| / max|c|`, or the number of differing bit patterns for exact checks.
    pub max_rel: f64,
    /// None for bit-exact comparisons.
    pub tol: Option<f64>,
    pub pass: bool,
}

impl Diff {
    pub fn line(&self) -> String {
        match self.tol {
            Some(t) => format!(
                "{:<14} max abs {:>10.3e}  max rel {:>10.3e}  tol {:.0e}  {}",
                self.name,
                self.max_abs,
                self.max_rel,
                t,
                if self.pass { "PASS" } else { "FAIL" }
            ),
            None => format!(
                "{:<14} max abs {:>10.3e}  {:>6} of the values differ in bits  exact  {}",
                self.name,
                self.max_abs,
                self.max_rel as u64,
                if self.pass { "PASS" } else { "FAIL" }
            ),
        }
    }
}

/// Compares `gpu` with `cpu` within `tol` (norm-relative, see the module doc).
pub fn diff(name: &str, gpu: &[f32], cpu: &[f32], tol: f64) -> Diff {
    let mut max_abs = 0f64;
    let mut scale = 0f64;
    let mut bad = gpu.len() != cpu.len();
    for (&g, &c) in gpu.iter().zip(cpu) {
        if g.is_finite() != c.is_finite() {
            bad = true;
        }
        if g.is_finite() && c.is_finite() {
            max_abs = max_abs.max((g as f64 - c as f64).abs());
            scale = scale.max((c as f64).abs());
        }
    }
    let max_rel = if scale > 0.0 {
        max_abs / scale
    } else {
        max_abs
    };
    Diff {
        name: name.to_string(),
        max_abs,
        max_rel,
        tol: Some(tol),
        pass: !bad && max_rel <= tol,
    }
}

/// Bit-exact comparison (the optimizer update).
pub fn exact(name: &str, gpu: &[f32], cpu: &[f32]) -> Diff {
    let mut max_abs = 0f64;
    let mut differ = (gpu.len() as i64 - cpu.len() as i64).unsigned_abs();
    for (&g, &c) in gpu.iter().zip(cpu) {
        if g.to_bits() != c.to_bits() {
            differ += 1;
            let d = (g as f64 - c as f64).abs();
            max_abs = max_abs.max(if d.is_nan() { f64::INFINITY } else { d });
        }
    }
    Diff {
        name: name.to_string(),
        max_abs,
        max_rel: differ as f64,
        tol: None,
        pass: differ == 0,
    }
}

/// The arg-max per sample may only differ where the CPU's two largest logits are within
/// 1e-4 of each other (a near tie that float rounding may break either way).
fn correct_diff(dump: &StepDump, ws: &Workspace, classes: usize) -> Diff {
    let mut unexplained = 0u64;
    let mut differ = 0u64;
    for (i, (&g, &c)) in dump.correct.iter().zip(&ws.correct).enumerate() {
        if g != c {
            differ += 1;
            let mut row = ws.z2[i * classes..(i + 1) * classes].to_vec();
            row.sort_by(|a, b| b.total_cmp(a));
            let gap = if classes > 1 { row[0] - row[1] } else { 0.0 };
            if gap > 1e-4 * row[0].abs().max(1.0) {
                unexplained += 1;
            }
        }
    }
    Diff {
        name: "correct".into(),
        max_abs: differ as f64,
        max_rel: unexplained as f64,
        tol: None,
        pass: unexplained == 0,
    }
}

fn grads_of(l: Layout, g: &[f32], i: usize) -> &[f32] {
    &g[l.tensors()[i].range()]
}

/// Compares one GPU step (`dump`, run from `params`/`state`) with the CPU computing the
/// same step from the same weights and state. `x` is the normalized train set.
pub fn check_step(
    params: &Params,
    state: &RpropState,
    dump: &StepDump,
    x: &[f32],
    labels: &[u8],
    variant: Variant,
    hyper: &Hyper,
) -> Vec<Diff> {
    let l = params.layout;
    let mut ws = Workspace::new(l, labels.len());
    let stats = cpu::forward(params, x, labels, &mut ws);
    cpu::backward(params, x, &mut ws);
    let mut out = vec![
        diff("Z1", &dump.z1, ws.z1(), tolerance("Z1")),
        diff("H", &dump.h, ws.h(), tolerance("H")),
        diff("Z2", &dump.z2, &ws.z2, tolerance("Z2")),
        diff("loss", &dump.loss, &ws.loss, tolerance("loss")),
        diff(
            "loss mean",
            &[dump.stats.loss],
            &[stats.loss],
            tolerance("loss mean"),
        ),
        correct_diff(dump, &ws, l.classes),
        diff("dZ2", &dump.dz2, &ws.dz2, tolerance("dZ2")),
    ];
    for (name, i) in [("dW2", 2), ("db2", 3)] {
        out.push(diff(
            name,
            grads_of(l, &dump.grads, i),
            grads_of(l, &ws.grads, i),
            tolerance(name),
        ));
    }
    out.push(diff("dH", &dump.dh, ws.dh(), tolerance("dH")));
    // dZ1's mask is Z1 > 0: where Z1 is within rounding of 0 the two sides may disagree on
    // the sign, which flips a whole entry. Mask the CPU's dH with the GPU's Z1 so this
    // checks the kernel, not the rounding of Z1 (checked above).
    let mut dz1 = vec![0.0; ws.dh().len()];
    cpu::relu_backward(ws.dh(), &dump.z1, &mut dz1);
    out.push(diff("dZ1", &dump.dz1, &dz1, tolerance("dZ1")));
    // dW1 and db1 from that same mask-aligned dZ1 (cpu::backward's own formulas).
    let n = labels.len();
    let mut dw1 = vec![0.0; l.hidden * l.inputs];
    cpu::matmul(
        &mut dw1,
        cpu::View::row_major(&dz1, n, l.hidden).t(),
        cpu::View::row_major(x, n, l.inputs),
        false,
    );
    let mut db1 = vec![0.0; l.hidden];
    cpu::reduce_cols(&dz1, l.hidden, &mut db1);
    out.push(diff(
        "dW1",
        grads_of(l, &dump.grads, 0),
        &dw1,
        tolerance("dW1"),
    ));
    out.push(diff(
        "db1",
        grads_of(l, &dump.grads, 1),
        &db1,
        tolerance("db1"),
    ));
    // The update from the GPU's own gradients and loss: bit-identical for Rprop (only
    // multiplications by the etas, min/max and signs); the other optimizers' fused
    // multiply-adds, divisions and square roots may round differently on a GPU: 1e-5.
    let same = |name: &str, g: &[f32], c: &[f32]| {
        if variant.is_rprop() {
            exact(name, g, c)
        } else {
            diff(name, g, c, UPDATE_TOL)
        }
    };
    let mut p = params.data.clone();
    let mut st = state.clone();
    cpu::optimizer(
        variant,
        hyper,
        &mut p,
        &dump.grads,
        &mut st,
        dump.stats.loss,
    );
    out.push(same("weights", &dump.params.data, &p));
    out.push(same("step sizes", &dump.state.step, &st.step));
    out.push(same("prev grads", &dump.state.prev_grad, &st.prev_grad));
    out.push(same(
        "prev changes",
        &dump.state.prev_change,
        &st.prev_change,
    ));
    out.push(exact("prev loss", &[dump.state.prev_loss], &[st.prev_loss]));
    out
}

/// Runs the `verify` subcommand: `steps` GPU steps of `cfg` on the data in `data_dir`, each
/// checked against the CPU reference.
pub fn run(
    cfg: &Config,
    data_dir: &Path,
    init_weights: Option<&Path>,
    steps: usize,
    gpu_opts: &GpuOptions,
) -> Result<()> {
    let (train, eval) = load_train_eval(data_dir, cfg)?;
    let layout = cfg.layout(train.features(), crate::data::CLASSES);
    let params = initial_params(init_weights, layout, cfg.seed)?;
    let hyper = cfg.hyper();
    let mut gpu = GpuBackend::new(&train, &eval, params, cfg.optimizer, hyper, gpu_opts)
        .context("verify needs the GPU backend")?;
    let x = cpu::normalize_images(&train);
    println!(
        "verify: {} on {}, {} train images, {} steps; CPU re-synced to the GPU state before each step",
        cfg.optimizer,
        gpu.name(),
        train.len(),
        steps
    );
    println!("tolerances: max|gpu-cpu|/max|cpu| per tensor as listed; the Rprop update must be bit-identical");
    let mut failures = Vec::new();
    let mut worst: Vec<Diff> = Vec::new();
    for step in 1..=steps {
        let p = gpu.params()?;
        let st = gpu.state()?;
        let dump = gpu.debug_step()?;
        let diffs = check_step(&p, &st, &dump, &x, &train.labels, cfg.optimizer, &hyper);
        println!(
            "step {step}: train loss {:.6} (gpu), accuracy {:.4}",
            dump.stats.loss,
            dump.stats.accuracy()
        );
        for d in &diffs {
            println!("  {}", d.line());
            if !d.pass {
                failures.push(format!("step {step} {}", d.name));
            }
            match worst.iter_mut().find(|w| w.name == d.name) {
                Some(w) => {
                    w.max_abs = w.max_abs.max(d.max_abs);
                    w.max_rel = w.max_rel.max(d.max_rel);
                    w.pass &= d.pass;
                }
                None => worst.push(d.clone()),
            }
        }
    }
    println!("worst over {} steps:", steps);
    for d in &worst {
        println!("  {}", d.line());
    }
    if failures.is_empty() {
        println!("verify: PASS");
        Ok(())
    } else {
        Err(VerifyFailed(failures.join(", ")).into())
    }
}
