//! What `verify` compares and how: each tensor of a GPU step against its CPU twin
//! ([`check_step`]), within a tolerance ([`diff`]) or bit for bit ([`exact`]), and the tally
//! of a run ([`Tally`]).

use anyhow::Result;

use crate::cpu;
use crate::gpu::StepDump;
use crate::model::Params;
use crate::optim::{Hyper, OptimState, Variant};

/// The verify run found a difference beyond tolerance (main maps it to exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("verify failed: {0}")]
pub struct VerifyFailed(pub String);

/// Norm-relative tolerance of each compared tensor. Single-pass f32 kernels (Z, H, the
/// softmax, dH, dZ) differ from the CPU's gemm only by summation order and exp/ln ulps:
/// 1e-5. Gradients summed over all n samples (dW, db) accumulate more rounding in a
/// different order: 1e-4.
pub fn tolerance(name: &str) -> f64 {
    if name.starts_with("dW") || name.starts_with("db") {
        1e-4
    } else {
        1e-5
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

/// The arg-max per sample may only differ where the two largest logits are within 1e-4 of
/// each other (a near tie that float rounding may break either way).
fn correct_diff(gpu: &[u32], cpu: &[u32], logits: &[f32], classes: usize) -> Diff {
    let mut unexplained = 0u64;
    let mut differ = 0u64;
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        if g != c {
            differ += 1;
            let mut row = logits[i * classes..(i + 1) * classes].to_vec();
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
        pass: unexplained == 0 && gpu.len() == cpu.len(),
    }
}

/// Compares one GPU step (`dump`, run from `params`/`state` on the rows `x`, `labels`)
/// with the CPU reference, op by op: each op's CPU twin is fed the GPU's own inputs of
/// that op (the layer below's H, the layer above's dZ), so a near-zero Z whose sign the two
/// sides round differently is checked where it arises and does not spread to the layers
/// below. `x` is the batch's normalized images. Layers are numbered from 1 (Z1, H1, ...;
/// the output layer's Z are the logits).
pub fn check_step(
    params: &Params,
    state: &OptimState,
    dump: &StepDump,
    x: &[f32],
    labels: &[u8],
    variant: Variant,
    hyper: &Hyper,
) -> Vec<Diff> {
    let mut out = forward_diffs(params, dump, x, labels.len());
    out.extend(loss_diffs(params, dump, labels));
    out.extend(backward_diffs(params, dump, x, labels.len()));
    out.extend(update_diffs(params, state, dump, (variant, hyper)));
    out
}

/// The input of layer `i` (0-based) in the GPU's step: the images, or the layer below's H.
fn layer_input<'a>(dump: &'a StepDump, x: &'a [f32], i: usize) -> &'a [f32] {
    if i == 0 {
        x
    } else {
        &dump.h[i - 1]
    }
}

/// Each layer's Z and (below the logits) H, from the GPU's own input of the layer.
fn forward_diffs(params: &Params, dump: &StepDump, x: &[f32], n: usize) -> Vec<Diff> {
    let sizes = params.layout.layer_sizes();
    let last = sizes.len() - 1;
    let mut out = Vec::new();
    for (i, &(fan_in, width)) in sizes.iter().enumerate() {
        let (w, b) = params.layer(i);
        let mut z = vec![0.0; n * width];
        let input = cpu::View::row_major(layer_input(dump, x, i), n, fan_in);
        cpu::linear(&mut z, input, w, b);
        let name = format!("Z{}", i + 1);
        out.push(diff(&name, &dump.z[i], &z, tolerance(&name)));
        if i < last {
            let mut h = vec![0.0; n * width];
            cpu::relu(&dump.z[i], &mut h);
            let name = format!("H{}", i + 1);
            out.push(diff(&name, &dump.h[i], &h, tolerance(&name)));
        }
    }
    out
}

/// The softmax cross-entropy from the GPU's logits: per-sample loss, its mean, the correct
/// counts and the logits' gradient (the output layer's dZ).
fn loss_diffs(params: &Params, dump: &StepDump, labels: &[u8]) -> Vec<Diff> {
    let (n, c) = (labels.len(), params.layout.classes);
    let (mut loss, mut correct, mut dlogits) = (vec![0.0; n], vec![0; n], vec![0.0; n * c]);
    cpu::softmax_xent(
        dump.logits(),
        labels,
        n,
        &mut loss,
        &mut correct,
        &mut dlogits,
    );
    let stats = cpu::reduce_metrics(&loss, &correct);
    let last = params.layout.layer_sizes().len() - 1;
    let name = format!("dZ{}", last + 1);
    vec![
        diff("loss", &dump.loss, &loss, tolerance("loss")),
        diff(
            "loss mean",
            &[dump.stats.loss],
            &[stats.loss],
            tolerance("loss mean"),
        ),
        correct_diff(&dump.correct, &correct, dump.logits(), c),
        diff(&name, &dump.dz[last], &dlogits, tolerance(&name)),
    ]
}

/// Each layer's dW and db, top down, and below the output layer dH and dZ, from the GPU's
/// own dZ of the layer above.
fn backward_diffs(params: &Params, dump: &StepDump, x: &[f32], n: usize) -> Vec<Diff> {
    let sizes = params.layout.layer_sizes();
    let t = params.layout.tensors();
    let mut out = Vec::new();
    for i in (0..sizes.len()).rev() {
        let (fan_in, width) = sizes[i];
        let dz = &dump.dz[i];
        let mut dw = vec![0.0; width * fan_in];
        cpu::matmul(
            &mut dw,
            cpu::View::row_major(dz, n, width).t(),
            cpu::View::row_major(layer_input(dump, x, i), n, fan_in),
            false,
        );
        let mut db = vec![0.0; width];
        cpu::reduce_cols(dz, width, &mut db);
        for (name, k, cpu_grad) in [("dW", 2 * i, &dw), ("db", 2 * i + 1, &db)] {
            let name = format!("{name}{}", i + 1);
            out.push(diff(
                &name,
                &dump.grads[t[k].range()],
                cpu_grad,
                tolerance(&name),
            ));
        }
        if i > 0 {
            let mut dh = vec![0.0; n * fan_in];
            cpu::matmul(
                &mut dh,
                cpu::View::row_major(dz, n, width),
                cpu::View::row_major(params.layer(i).0, width, fan_in),
                false,
            );
            let name = format!("dH{i}");
            out.push(diff(&name, &dump.dh[i - 1], &dh, tolerance(&name)));
            let mut dzb = vec![0.0; n * fan_in];
            cpu::relu_backward(&dump.dh[i - 1], &dump.z[i - 1], &mut dzb);
            let name = format!("dZ{i}");
            out.push(diff(&name, &dump.dz[i - 1], &dzb, tolerance(&name)));
        }
    }
    out
}

/// The update from the GPU's own gradients and loss: bit-identical for Rprop (only
/// multiplications by the etas, min/max and signs); the other optimizers' fused
/// multiply-adds, divisions and square roots may round differently on a GPU: 1e-5.
fn update_diffs(
    params: &Params,
    state: &OptimState,
    dump: &StepDump,
    (variant, hyper): (Variant, &Hyper),
) -> Vec<Diff> {
    let same = |name: &str, g: &[f32], c: &[f32]| {
        if variant.traits().bit_exact {
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
    vec![
        same("weights", &dump.params.data, &p),
        same("step sizes", &dump.state.step, &st.step),
        same("prev grads", &dump.state.prev_grad, &st.prev_grad),
        same("prev changes", &dump.state.prev_change, &st.prev_change),
        exact("prev loss", &[dump.state.prev_loss], &[st.prev_loss]),
    ]
}

/// The failures and the worst difference of each compared tensor over a verify run.
#[derive(Default)]
pub struct Tally {
    failures: Vec<String>,
    worst: Vec<Diff>,
}

impl Tally {
    /// Prints `diffs` (of the step or evaluation `label`) and keeps their worst and failures.
    pub fn add(&mut self, label: &str, diffs: &[Diff]) {
        for d in diffs {
            println!("  {}", d.line());
            if !d.pass {
                self.failures.push(format!("{label} {}", d.name));
            }
            match self.worst.iter_mut().find(|w| w.name == d.name) {
                Some(w) => {
                    w.max_abs = w.max_abs.max(d.max_abs);
                    w.max_rel = w.max_rel.max(d.max_rel);
                    w.pass &= d.pass;
                }
                None => self.worst.push(d.clone()),
            }
        }
    }

    /// Prints the worst differences and the verdict.
    pub fn finish(self, steps: usize) -> Result<()> {
        println!("worst over {} steps:", steps);
        for d in &self.worst {
            println!("  {}", d.line());
        }
        if self.failures.is_empty() {
            println!("verify: PASS");
            Ok(())
        } else {
            Err(VerifyFailed(self.failures.join(", ")).into())
        }
    }
}
