//! Adam = `torch.optim.Adam` (not AMSGrad; weight decay as an L2 term).
//! WGSL twin: `adam` in shaders/optimizer.wgsl.

use super::{Elem, Hyper, Rule, Spec, StepScalars};

/// `m = lerp(m, g, 1 - beta1)`, `v = beta2 * v + (1 - beta2) * g * g`,
/// `w -= step_size * m / (sqrt(v) / bc2_sqrt + eps)` with the step's bias corrections from
/// [`StepScalars`]; `m` is kept in `prev_grad`, `v` in `step`.
pub fn adam(e: &mut Elem, g: f32, h: &Hyper, sc: &StepScalars) {
    // torch's lerp with a weight below 0.5: m + w * (g - m).
    e.prev_grad += (1.0 - h.beta1) as f32 * (g - e.prev_grad);
    e.step = ((1.0 - h.beta2) as f32 * g).mul_add(g, e.step * h.beta2 as f32);
    let denom = e.step.sqrt() / sc.adam_bc2_sqrt + h.eps;
    e.w += -sc.adam_step_size * e.prev_grad / denom;
}

pub const ADAM: Spec = Spec {
    slots: ["exp_avg_sq", "exp_avg", ""],
    keys: &["learning_rate", "beta1", "beta2", "eps", "weight_decay"],
    ..Spec::gradient("adam", "Adam", 6, Rule::PerWeight(adam))
};
