//! GRprop's global dispatches (shaders/grprop.wgsl; CPU twin `optim::grprop`), recorded after
//! optimizer.wgsl's case 8/9 has adapted the steps: the pick and the sum as reduction trees
//! (one dispatch per level, the order of `optim::grprop::tree`), then the move.

use bytemuck::{Pod, Zeroable};

use super::{grid, Plan, Res, Stage};
use crate::gpu::buffers::Shared;
use crate::gpu::kernels::Kernels;
use crate::optim::grprop::{tree, Pick};
use crate::optim::Hyper;

super::bindings! {
    /// Bindings of grprop.wgsl.
    pub mod bind { W, G, STEP, PREV_GRAD, PREV_CHANGE, PICKS, SUMS, HYP }
}

/// Invocations per workgroup of grprop.wgsl's entry points.
const WORKGROUP: usize = 64;

/// `struct GHyp` of grprop.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct GHyp {
    pub len: u32,
    pub n: u32,
    pub src: u32,
    pub dst: u32,
    pub level: u32,
    pub pick: u32,
    pub pick_at: u32,
    pub sum_at: u32,
    pub step_min: f32,
    pub step_max: f32,
    pub delta: f32,
    pub weight_decay: f32,
}

/// Scratch items the trees over `len` weights need (every level's outputs).
pub fn scratch_items(len: usize) -> usize {
    tree(len).iter().sum()
}

/// Records the pick, the sum and the move of one GRprop step (picking by `pick`).
pub fn record(plan: &mut Plan, k: &Kernels, s: &Shared, len: usize, pick: Pick, h: &Hyper) {
    let levels = tree(len);
    let last = scratch_items(len) - 1;
    let base = GHyp {
        len: len as u32,
        pick: u32::from(pick == Pick::Sag),
        pick_at: last as u32,
        sum_at: last as u32,
        step_min: h.step_min,
        step_max: h.step_max,
        delta: h.grprop_delta,
        weight_decay: h.weight_decay,
        ..GHyp::default()
    };
    let weights = [
        (bind::W, Res::Buf(&s.params)),
        (bind::G, Res::Buf(&s.grads)),
        (bind::STEP, Res::Buf(&s.step)),
    ];
    // Each entry point binds what it reads at any level: the weights (level 0) and the
    // scratch; the sum also the final pick.
    let picks = (bind::PICKS, Res::Buf(&s.gr_picks));
    let sums = (bind::SUMS, Res::Buf(&s.gr_sums));
    for (pipeline, scratch) in [
        (&k.grprop_pick, vec![picks]),
        (&k.grprop_sum, vec![picks, sums]),
    ] {
        let res: Vec<(u32, Res)> = weights.iter().copied().chain(scratch).collect();
        let (mut n, mut src, mut dst) = (len, 0, 0);
        for (level, &out) in levels.iter().enumerate() {
            let p = GHyp {
                n: n as u32,
                src: src as u32,
                dst: dst as u32,
                level: level as u32,
                ..base
            };
            plan.push(
                Stage::Optimizer,
                pipeline,
                (bind::HYP, &p),
                &res,
                grid(out.div_ceil(WORKGROUP)),
            );
            (n, src, dst) = (out, dst, dst + out);
        }
    }
    plan.push(
        Stage::Optimizer,
        &k.grprop_move,
        (bind::HYP, &base),
        &[
            weights[0],
            weights[1],
            weights[2],
            (bind::PREV_GRAD, Res::Buf(&s.prev_grad)),
            (bind::PREV_CHANGE, Res::Buf(&s.prev_change)),
            picks,
            sums,
        ],
        grid(len.div_ceil(WORKGROUP)),
    );
}
