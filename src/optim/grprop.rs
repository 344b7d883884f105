//! GRprop, globally convergent Rprop (Anastasiadis, Magoulas & Vrahatis 2005), as the R
//! package neuralnet defines it (`grprop-slr`, `grprop-sag`), in PyTorch's parameter order.
//!
//! One step: every step size adapts as in Rprop- (times eta+ on equal signs, eta- on a sign
//! change, clamped to [step_min, step_max]). Then among the weights with g != 0 one weight i
//! is picked: for slr the one with the smallest step, for sag the one with the smallest |g|,
//! ties to the lowest index. Its step becomes
//! `clamp(-(sum_{j != i, g_j != 0} step_j * g_j + delta) / g_i, step_min, step_max)` and is
//! kept like every other step. Every weight then moves by `-sign(g) * step`; g_prev = g.
//!
//! The sum is f32 in one fixed order, the GPU's reduction tree: [`BLOCK`] consecutive terms
//! summed in index order (`s += step_j * g_j`, product rounded then added), then the partial
//! sums [`BLOCK`] at a time in order, until one is left. The pick is a minimum of (key bits,
//! index), the same in any order. Not a fused multiply-add: lavapipe does not fuse WGSL's
//! `fma`, so only the unfused form is the same on both there; a GPU compiler that contracts
//! the multiply-add, or rounds the chosen step's division its own way (WGSL allows 2.5 ulp),
//! differs from the CPU in the chosen weight's step, which `verify` allows (1e-5).
//! WGSL twins: case 8/9 of shaders/optimizer.wgsl (the adaptation) and `grprop_pick`,
//! `grprop_sum`, `grprop_move` of shaders/grprop.wgsl.

use super::rprop::{adapt_step, descend, product_sign, RPROP_KEYS};
use super::{decayed, Backtrack, GlobalPass, Hyper, OptimState, Rule, Spec, StepScalars, Traits};

/// Terms summed in order by one GPU invocation, at every level of the tree.
pub const BLOCK: usize = 256;

/// Which weight a GRprop step recomputes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// Smallest learning rate (step size).
    Slr,
    /// Smallest absolute gradient.
    Sag,
}

/// The outputs of each level of the reduction tree over `len` items: `len / BLOCK` rounded
/// up, again and again, down to 1.
pub fn tree(len: usize) -> Vec<usize> {
    let mut out = vec![len.div_ceil(BLOCK).max(1)];
    while out[out.len() - 1] > 1 {
        out.push(out[out.len() - 1].div_ceil(BLOCK));
    }
    out
}

/// The pick's key as ordered bits: the non-negative f32's bits order as its value (NaN
/// above infinity); `None` for a weight with g == 0, which is not a candidate.
pub fn pick_key(pick: Pick, step: f32, g: f32) -> Option<u32> {
    (g != 0.0).then(|| match pick {
        Pick::Slr => step.to_bits(),
        Pick::Sag => g.abs().to_bits(),
    })
}

/// The weight i: the smallest (key, index) among the candidates.
pub fn grprop_pick(pick: Pick, step: &[f32], g: &[f32]) -> Option<usize> {
    (0..g.len())
        .filter_map(|j| pick_key(pick, step[j], g[j]).map(|k| (k, j)))
        .min()
        .map(|(_, j)| j)
}

/// `sum_{j != i, g_j != 0} step_j * g_j` in the tree's order.
pub fn grprop_sum(step: &[f32], g: &[f32], i: usize) -> f32 {
    let mut partial: Vec<f32> = (0..g.len().div_ceil(BLOCK).max(1))
        .map(|b| {
            let mut s = 0.0f32;
            for j in b * BLOCK..g.len().min((b + 1) * BLOCK) {
                if j != i && g[j] != 0.0 {
                    s += step[j] * g[j];
                }
            }
            s
        })
        .collect();
    while partial.len() > 1 {
        partial = partial
            .chunks(BLOCK)
            .map(|c| c.iter().fold(0.0f32, |s, &x| s + x))
            .collect();
    }
    partial[0]
}

/// The chosen weight's new step.
pub fn chosen_step(sum: f32, g_i: f32, h: &Hyper) -> f32 {
    (-(sum + h.grprop_delta) / g_i)
        .max(h.step_min)
        .min(h.step_max)
}

/// One GRprop step over every weight.
pub fn grprop(pick: Pick, params: &mut [f32], grads: &[f32], st: &mut OptimState, h: &Hyper) {
    let g: Vec<f32> = (0..params.len())
        .map(|j| decayed(params[j], grads[j], h))
        .collect();
    for ((step, &gj), &pg) in st.step.iter_mut().zip(&g).zip(&st.prev_grad) {
        *step = adapt_step(*step, product_sign(gj, pg), h);
    }
    if let Some(i) = grprop_pick(pick, &st.step, &g) {
        st.step[i] = chosen_step(grprop_sum(&st.step, &g, i), g[i], h);
    }
    // `descend` leaves the step sizes as adapted above.
    st.each_elem(params, |j, e| descend(e, g[j]));
}

const GRPROP_TRAITS: Traits = Traits {
    sign_based: true,
    // The chosen step is a division, which WGSL lets a GPU round within 2.5 ulp.
    bit_exact: false,
    compare_default: false,
    minibatch_warning: true,
    full_batch_only: false,
    backtracks: Backtrack::Never,
    steps_start_at_lr: true,
};

/// Rprop's settings and `grprop_delta`, before `weight_decay` as `train --help` lists them.
const GRPROP_KEYS: [&str; 7] = {
    let k = RPROP_KEYS;
    [k[0], k[1], k[2], k[3], k[4], "grprop_delta", k[5]]
};

pub const GRPROP_SLR: Spec = Spec {
    name: "grprop-slr",
    label: "GRprop (slr)",
    wgsl_case: 8,
    traits: GRPROP_TRAITS,
    slots: super::RPROP_SLOTS,
    keys: &GRPROP_KEYS,
    defaults: |_| {},
    rule: Rule::Global(|p, g, st, h, _: &StepScalars| grprop(Pick::Slr, p, g, st, h)),
    global_pass: Some(GlobalPass::Grprop(Pick::Slr)),
    report: None,
};

pub const GRPROP_SAG: Spec = Spec {
    name: "grprop-sag",
    label: "GRprop (sag)",
    wgsl_case: 9,
    rule: Rule::Global(|p, g, st, h, _: &StepScalars| grprop(Pick::Sag, p, g, st, h)),
    global_pass: Some(GlobalPass::Grprop(Pick::Sag)),
    ..GRPROP_SLR
};
