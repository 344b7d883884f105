//! A training step of any MLP on the GPU, recorded as a loop over the layers exactly as
//! `cpu::forward` and `cpu::backward` run it: per hidden layer Z = A W^T + b, H = relu(Z);
//! the output layer's logits, softmax cross-entropy and the pass metrics; then from the
//! output layer down dW = dZ^T A, db = column sums of dZ and, for the layer below,
//! dH = dZ W, dZ = dH * relu'(Z); then the fused optimizer step.

use super::buffers::{row_bytes, Pass, Shared};
use super::kernels::Kernels;
use super::ops::{batch, input, linear, optimizer, pointwise, reduce, Plan, Stage};
use crate::model::Layout;
use crate::optim::{Hyper, Variant};

/// What every recorder of a network reads: its pipelines, layout and shared buffers.
#[derive(Clone, Copy)]
pub struct Net<'a> {
    pub k: &'a Kernels,
    pub l: Layout,
    pub s: &'a Shared,
}

/// The forward pass of `p`: every layer's Z (and H), the per-sample loss, correct and
/// dlogits, and the pass metrics. `cap` limits the first layer to its first rows and stops
/// there (strategy timing only).
pub fn forward(plan: &mut Plan, net: Net, p: &Pass, cap: usize) {
    let (k, l, s) = (net.k, net.l, net.s);
    let sizes = l.layer_sizes();
    let last = sizes.len() - 1;
    let t = l.tensors();
    let fused = input::forward(plan, k, l, s, p, cap);
    if cap < p.n {
        return;
    }
    for (i, &(fan_in, width)) in sizes.iter().enumerate() {
        let lb = &p.layers[i];
        if i > 0 {
            let a = p.layers[i - 1].h.as_ref().unwrap_or(&p.layers[i - 1].z);
            let w = (t[2 * i].offset, t[2 * i + 1].offset);
            linear::forward(
                plan,
                k,
                &s.params,
                a,
                &lb.z,
                (p.n, fan_in, width),
                w,
                Stage::ZLater,
            );
        }
        if let (Some(h), false) = (&lb.h, i == 0 && fused) {
            pointwise::relu(plan, k, &lb.z, h, p.n * width);
        }
    }
    let out = &p.layers[last];
    let dz = out.dz.as_ref().unwrap_or(&out.z);
    pointwise::softmax_xent(
        plan,
        k,
        &out.z,
        &p.labels,
        (&p.loss, &p.correct, dz),
        p.n,
        l.classes,
    );
    reduce::metrics(plan, k, s, p);
}

/// The backward pass of train pass `p` after [`forward`]: every layer's weight and bias
/// gradients into the flat gradient buffer.
pub fn backward(plan: &mut Plan, net: Net, p: &Pass) {
    let (k, l, s) = (net.k, net.l, net.s);
    let sizes = l.layer_sizes();
    let t = l.tensors();
    for i in (0..sizes.len()).rev() {
        let (fan_in, width) = sizes[i];
        let Some(dz) = p.layers[i].dz.as_ref() else {
            return;
        };
        let (w, b) = (t[2 * i].offset, t[2 * i + 1].offset);
        if i == 0 {
            input::weight_grad(plan, k, l, s, p);
        } else {
            let below = &p.layers[i - 1];
            let a = below.h.as_ref().unwrap_or(&below.z);
            linear::weight_grad(
                plan,
                k,
                (dz, a),
                (&s.grads, &s.scratch),
                (p.n, fan_in, width),
                w,
                Stage::DWLater,
            );
        }
        let stage = if i == 0 { Stage::DB1 } else { Stage::DBLater };
        reduce::col_sums(plan, k, stage, (dz, width), p, (&s.grads, b));
        if i > 0 {
            let below = &p.layers[i - 1];
            let (Some(dh), Some(dz_below)) = (&below.dh, &below.dz) else {
                return;
            };
            linear::input_grad(
                plan,
                k,
                &s.params,
                dz,
                (&below.z, dh, dz_below),
                (p.n, fan_in, width),
                w,
            );
        }
    }
}

/// One optimizer step on train pass `p`: for a mini-batch pass, its rows gathered from
/// `full` first; then forward, backward, the update, and the cursor's advance.
pub fn step(plan: &mut Plan, net: Net, p: &Pass, full: Option<&Pass>, (v, h): (Variant, &Hyper)) {
    if let Some(src) = full {
        let tex = super::ops::input::tex_kernels(net.k, net.l, net.s, p).is_some();
        batch::gather(plan, net.k, net.s, (src, p), row_bytes(net.l) / 4, tex);
    }
    forward(plan, net, p, usize::MAX);
    backward(plan, net, p);
    // Rprop telemetry: the sign test needs the gradient and the previous one, before the
    // update overwrites it.
    if v.is_sign_based() {
        super::ops::telemetry_counts::signs(plan, net.k, net.s, net.l, (v, h));
    }
    optimizer::step(plan, net.k, net.s, net.l.total(), v, h);
    // A full-batch step leaves the batch order where it is.
    batch::advance(plan, net.k, net.s, if full.is_some() { p.n } else { 0 });
}
