//! The fused optimizer step over every weight (shaders/optimizer.wgsl; CPU twin
//! `cpu::optimizer`), one kernel whose dispatch runs each optimizer's case, then whatever
//! global dispatches the optimizer's registry entry records.

use bytemuck::{Pod, Zeroable};

use super::{grid, Plan, Res, Stage};
use crate::gpu::buffers::Shared;
use crate::gpu::kernels::Kernels;
use crate::optim::{GlobalPass, Hyper, Variant};

super::bindings! {
    /// The bindings of shaders/optimizer.wgsl.
    pub mod bind { W, G, STEP, PREV_GRAD, PREV_CHANGE, LOSS, HYP }
}

/// `struct Hyp` of optimizer.wgsl: the variant and its hyper-parameters, with the
/// `1 - x` terms formed in f64 then rounded, as optim.rs (and torch) form them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Hyp {
    pub len: u32,
    pub variant: u32,
    pub eta_minus: f32,
    pub eta_plus: f32,
    pub step_min: f32,
    pub step_max: f32,
    pub lr: f32,
    pub weight_decay: f32,
    pub momentum: f32,
    pub nesterov: u32,
    pub alpha: f32,
    pub one_minus_alpha: f32,
    pub one_minus_beta1: f32,
    pub beta2: f32,
    pub one_minus_beta2: f32,
    pub eps: f32,
    pub mu: f32,
    pub _pad: [u32; 3],
}

impl Hyp {
    pub fn new(len: usize, variant: Variant, h: &Hyper) -> Hyp {
        Hyp {
            len: len as u32,
            variant: variant.code(),
            eta_minus: h.eta_minus,
            eta_plus: h.eta_plus,
            step_min: h.step_min,
            step_max: h.step_max,
            lr: h.lr,
            weight_decay: h.weight_decay,
            momentum: h.momentum,
            nesterov: u32::from(h.nesterov),
            alpha: h.alpha as f32,
            one_minus_alpha: (1.0 - h.alpha) as f32,
            one_minus_beta1: (1.0 - h.beta1) as f32,
            beta2: h.beta2 as f32,
            one_minus_beta2: (1.0 - h.beta2) as f32,
            eps: h.eps,
            mu: h.mu,
            _pad: [0; 3],
        }
    }
}

/// The update of every weight from the gradients and E_t, then E_{t-1} = E_t.
pub fn step(plan: &mut Plan, k: &Kernels, s: &Shared, len: usize, variant: Variant, h: &Hyper) {
    plan.push(
        Stage::Optimizer,
        &k.optimizer,
        (bind::HYP, &Hyp::new(len, variant, h)),
        &[
            (bind::W, Res::Buf(&s.params)),
            (bind::G, Res::Buf(&s.grads)),
            (bind::STEP, Res::Buf(&s.step)),
            (bind::PREV_GRAD, Res::Buf(&s.prev_grad)),
            (bind::PREV_CHANGE, Res::Buf(&s.prev_change)),
            (bind::LOSS, Res::Buf(&s.lossbuf)),
        ],
        grid(len.div_ceil(256)),
    );
    // An optimizer that needs global sums records them after its per-weight case.
    if let Some(GlobalPass::Grprop(pick)) = variant.spec().global_pass {
        super::grprop::record(plan, k, s, len, pick, h);
    }
    // `finish` has no parameters; the plan binds a dummy uniform it does not declare.
    finish(plan, k, s);
}

fn finish(plan: &mut Plan, k: &Kernels, s: &Shared) {
    let bind = plan.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &k.finish.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry {
            binding: bind::LOSS,
            resource: s.lossbuf.as_entire_binding(),
        }],
    });
    plan.list.push(super::Dispatch {
        stage: Stage::Optimizer,
        pipeline: k.finish.clone(),
        bind,
        groups: [1, 1, 1],
    });
}
