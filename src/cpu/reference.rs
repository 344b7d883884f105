//! The CPU reference: plain, readable Rust for every kernel of a training step, and the
//! oracle the GPU kernels are checked against. Each function here is the twin of the WGSL
//! kernel of the same name in `shaders/` (`matmul`, `relu`, `softmax_xent`, `reduce`,
//! `optimizer`). The three matrix products go through the `gemm` crate (a real GEMM); the
//! element-wise parts are plain loops.

use crate::data::{normalize_table, Dataset};
use crate::model::{Layout, Params};
use crate::optim::{self, Hyper, OptimState, StepScalars, Variant};
use crate::pass_stats::PassStats;

// The matrix products live in `matmul.rs` (shared with the fused pass in `cpu/fused.rs`).
pub use crate::matmul::{matmul, View};

/// `out[n][j] = bias[j] + sum_k x[n][k] * w[j][k]`: a linear layer, `w` in PyTorch's
/// [out, in] layout (transposed by indexing).
pub fn linear(out: &mut [f32], x: View, w: &[f32], bias: &[f32]) {
    let outs = bias.len();
    for row in out.chunks_exact_mut(outs) {
        row.copy_from_slice(bias);
    }
    matmul(out, x, View::row_major(w, outs, x.cols).t(), true);
}

/// `h = max(z, 0)`. Twin of `relu.wgsl`'s forward entry point.
pub fn relu(z: &[f32], h: &mut [f32]) {
    for (h, &z) in h.iter_mut().zip(z) {
        *h = if z > 0.0 { z } else { 0.0 };
    }
}

/// `dz = dh * (z > 0)`. Twin of `relu.wgsl`'s backward entry point.
pub fn relu_backward(dh: &[f32], z: &[f32], dz: &mut [f32]) {
    for ((d, &g), &z) in dz.iter_mut().zip(dh).zip(z) {
        *d = if z > 0.0 { g } else { 0.0 };
    }
}

/// Per sample `n` of logits `z` (rows of `classes`): loss = logsumexp(z) - z[y],
/// correct = (first arg-max == y), and dz = (softmax(z) - onehot(y)) / total, the gradient
/// of the mean loss over `total` samples. Twin of `softmax_xent.wgsl`.
pub fn softmax_xent(
    z: &[f32],
    labels: &[u8],
    total: usize,
    loss: &mut [f32],
    correct: &mut [u32],
    dz: &mut [f32],
) {
    let classes = z.len() / labels.len().max(1);
    let scale = total as f32;
    for (n, &y) in labels.iter().enumerate() {
        let row = &z[n * classes..(n + 1) * classes];
        let mut arg = 0;
        for j in 1..classes {
            if row[j] > row[arg] {
                arg = j;
            }
        }
        let m = row[arg];
        let s: f32 = row.iter().map(|&v| (v - m).exp()).sum();
        loss[n] = m + s.ln() - row[y as usize];
        correct[n] = u32::from(arg == y as usize);
        for (j, d) in dz[n * classes..(n + 1) * classes].iter_mut().enumerate() {
            let p = (row[j] - m).exp() / s;
            let onehot = if j == y as usize { 1.0 } else { 0.0 };
            *d = (p - onehot) / scale;
        }
    }
}

/// Column sums of a row-major `rows x cols` matrix into `out` (the bias gradients).
/// Twin of `reduce.wgsl`'s column reduction. Accumulates in f64: the reference is exact-ish.
pub fn reduce_cols(m: &[f32], cols: usize, out: &mut [f32]) {
    let mut acc = vec![0f64; cols];
    for row in m.chunks_exact(cols) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += v as f64;
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o = a as f32;
    }
}

/// Mean loss and number correct over a pass. Twin of `reduce.wgsl`'s metrics reduction.
pub fn reduce_metrics(loss: &[f32], correct: &[u32]) -> PassStats {
    let sum: f64 = loss.iter().map(|&l| l as f64).sum();
    PassStats {
        loss: if loss.is_empty() {
            0.0
        } else {
            (sum / loss.len() as f64) as f32
        },
        correct: correct.iter().sum(),
        samples: loss.len() as u32,
    }
}

/// One fused optimizer step over every weight (any variant), given the step's loss E_t.
/// Twin of `optimizer.wgsl`.
pub fn optimizer(
    variant: Variant,
    h: &Hyper,
    params: &mut [f32],
    grads: &[f32],
    state: &mut OptimState,
    loss: f32,
) {
    state.t += 1;
    let sc = StepScalars::new(h, state.t, loss, state.prev_loss);
    optim::step(variant, h, params, grads, state, &sc);
    state.prev_loss = loss;
}

/// Images as the normalized f32 matrix the first layer reads (n x features).
pub fn normalize_images(set: &Dataset) -> Vec<f32> {
    let table = normalize_table();
    set.images.iter().map(|&p| table[p as usize]).collect()
}

/// The intermediates of one hidden layer.
#[derive(Clone, Debug, Default)]
pub struct HiddenLayer {
    /// Pre-activation Z = A W^T + b.
    pub z: Vec<f32>,
    /// Activation H = relu(Z).
    pub h: Vec<f32>,
    /// dLoss/dH.
    pub dh: Vec<f32>,
    /// dLoss/dZ = dH * relu'(Z); dH is kept separately for comparison.
    pub dz: Vec<f32>,
}

/// Every intermediate of a forward/backward pass over `n` samples, kept so `verify` can
/// compare each one with the GPU's.
#[derive(Clone, Debug)]
pub struct Workspace {
    pub n: usize,
    /// The hidden layers, first to last.
    pub hidden: Vec<HiddenLayer>,
    /// Logits (the output layer's Z).
    pub logits: Vec<f32>,
    pub loss: Vec<f32>,
    pub correct: Vec<u32>,
    /// dLoss/dlogits.
    pub dlogits: Vec<f32>,
    /// Gradients in the flat parameter layout.
    pub grads: Vec<f32>,
}

impl Workspace {
    pub fn new(layout: Layout, n: usize) -> Workspace {
        let c = layout.classes;
        Workspace {
            n,
            hidden: layout
                .hidden_sizes()
                .into_iter()
                .map(|h| HiddenLayer {
                    z: vec![0.0; n * h],
                    h: vec![0.0; n * h],
                    ..HiddenLayer::default()
                })
                .collect(),
            logits: vec![0.0; n * c],
            loss: vec![0.0; n],
            correct: vec![0; n],
            dlogits: vec![0.0; n * c],
            grads: Vec::new(),
        }
    }

    /// The first hidden layer's Z, H, dH and dZ (the report's network's only one).
    pub fn z1(&self) -> &[f32] {
        &self.hidden[0].z
    }
    pub fn h(&self) -> &[f32] {
        &self.hidden[0].h
    }
    pub fn dh(&self) -> &[f32] {
        &self.hidden[0].dh
    }
    pub fn dz1(&self) -> &[f32] {
        &self.hidden[0].dz
    }
}

/// Forward pass of `x` (n x inputs, normalized) with its labels: every hidden layer's Z and
/// H, the logits, per-sample loss and correctness, and dlogits. Returns the pass's mean loss
/// and accuracy.
pub fn forward(p: &Params, x: &[f32], labels: &[u8], ws: &mut Workspace) -> PassStats {
    let sizes = p.layout.layer_sizes();
    let out = sizes.len() - 1;
    let n = labels.len();
    assert_eq!(ws.n, n, "workspace sized for another batch");
    for (k, &(fan_in, _)) in sizes[..out].iter().enumerate() {
        let (w, b) = p.layer(k);
        let (before, rest) = ws.hidden.split_at_mut(k);
        let input = if k == 0 { x } else { &before[k - 1].h };
        let layer = &mut rest[0];
        linear(&mut layer.z, View::row_major(input, n, fan_in), w, b);
        relu(&layer.z, &mut layer.h);
    }
    let (w, b) = p.layer(out);
    let last = &ws.hidden[out - 1].h;
    linear(&mut ws.logits, View::row_major(last, n, sizes[out].0), w, b);
    softmax_xent(
        &ws.logits,
        labels,
        n,
        &mut ws.loss,
        &mut ws.correct,
        &mut ws.dlogits,
    );
    reduce_metrics(&ws.loss, &ws.correct)
}

/// Backward pass after [`forward`]: fills `ws.grads` (flat layout) with every layer's dW and
/// db, from the output layer down: dW = dZ^T A_in, db = column sums of dZ, and for the layer
/// below dH = dZ W, dZ = dH * relu'(Z).
pub fn backward(p: &Params, x: &[f32], ws: &mut Workspace) {
    let l = p.layout;
    let sizes = l.layer_sizes();
    let out = sizes.len() - 1;
    let n = ws.n;
    let t = l.tensors();
    ws.grads.resize(l.total(), 0.0);
    for k in (0..=out).rev() {
        let (fan_in, width) = sizes[k];
        if k < out {
            // dH_k = dZ_{k+1} W_{k+1}, dZ_k = dH_k * relu'(Z_k)
            let (below, above) = ws.hidden.split_at_mut(k + 1);
            let dz_next: &[f32] = if k + 1 == out {
                &ws.dlogits
            } else {
                &above[0].dz
            };
            let layer = &mut below[k];
            layer.dh.resize(n * width, 0.0);
            layer.dz.resize(n * width, 0.0);
            let next = sizes[k + 1].1;
            matmul(
                &mut layer.dh,
                View::row_major(dz_next, n, next),
                View::row_major(p.layer(k + 1).0, next, width),
                false,
            );
            relu_backward(&layer.dh, &layer.z, &mut layer.dz);
        }
        let dz: &[f32] = if k == out {
            &ws.dlogits
        } else {
            &ws.hidden[k].dz
        };
        let input = if k == 0 { x } else { &ws.hidden[k - 1].h };
        matmul(
            &mut ws.grads[t[2 * k].range()],
            View::row_major(dz, n, width).t(),
            View::row_major(input, n, fan_in),
            false,
        );
        reduce_cols(dz, width, &mut ws.grads[t[2 * k + 1].range()]);
    }
}

/// The result of scoring a model on a set.
#[derive(Clone, Debug)]
pub struct Evaluation {
    pub stats: PassStats,
    /// Predicted class per sample.
    pub predictions: Vec<u8>,
    /// Softmax probabilities, `classes` per sample.
    pub probabilities: Vec<f32>,
}

/// Scores `params` on a whole set (the report's tester), in chunks to bound memory.
pub fn evaluate(params: &Params, set: &Dataset) -> Evaluation {
    let c = params.layout.classes;
    // 10,000 rows at a time, fewer for wide networks: a chunk's activations stay under
    // ~64 MB whatever network a weights file describes.
    let units = params.layout.hidden_sizes().iter().sum::<usize>() + c;
    let chunk = ((64 << 20) / (12 * units).max(1)).clamp(1, 10_000);
    let mut loss_sum = 0f64;
    let mut correct = 0u32;
    let mut predictions = Vec::with_capacity(set.len());
    let mut probabilities = Vec::with_capacity(set.len() * c);
    for start in (0..set.len()).step_by(chunk) {
        let part = set.slice(start, chunk.min(set.len() - start));
        let x = normalize_images(&part);
        let mut ws = Workspace::new(params.layout, part.len());
        let s = forward(params, &x, &part.labels, &mut ws);
        loss_sum += s.loss as f64 * part.len() as f64;
        correct += s.correct;
        for row in ws.logits.chunks_exact(c) {
            let (arg, m) =
                row.iter()
                    .enumerate()
                    .fold(
                        (0, f32::NEG_INFINITY),
                        |(a, m), (j, &v)| {
                            if v > m {
                                (j, v)
                            } else {
                                (a, m)
                            }
                        },
                    );
            predictions.push(arg as u8);
            let s: f32 = row.iter().map(|&v| (v - m).exp()).sum();
            probabilities.extend(row.iter().map(|&v| (v - m).exp() / s));
        }
    }
    Evaluation {
        stats: PassStats {
            loss: if set.is_empty() {
                0.0
            } else {
                (loss_sum / set.len() as f64) as f32
            },
            correct,
            samples: set.len() as u32,
        },
        predictions,
        probabilities,
    }
}
