//! RMSprop with optional momentum = `torch.optim.RMSprop` (not centered).
//! WGSL twin: `rmsprop` in shaders/optimizer.wgsl.

use super::{Elem, Hyper, Rule, Spec};

/// `sq = alpha * sq + (1 - alpha) * g * g`, `avg = sqrt(sq) + eps`; `w -= lr * g / avg`, or
/// with momentum `buf = momentum * buf + g / avg`, `w -= lr * buf`. Operations in torch's
/// order; `sq` is kept in `step`, `buf` in `prev_change`.
pub fn rmsprop(e: &mut Elem, g: f32, h: &Hyper) {
    // torch's `sq.mul_(alpha).addcmul_(g, g, value=1-alpha)`: the addcmul is a fused
    // multiply-add of (value * g) * g onto the scaled average.
    e.step = ((1.0 - h.alpha) as f32 * g).mul_add(g, e.step * h.alpha as f32);
    let avg = e.step.sqrt() + h.eps;
    if h.momentum > 0.0 {
        e.prev_change = e.prev_change * h.momentum + g / avg;
        e.w = e.prev_change.mul_add(-h.lr, e.w);
    } else {
        e.w += -h.lr * g / avg;
    }
}

pub const RMSPROP: Spec = Spec {
    slots: ["square_avg", "", "momentum_buffer"],
    keys: &["learning_rate", "alpha", "eps", "momentum", "weight_decay"],
    ..Spec::gradient(
        "rmsprop",
        "RMSprop",
        5,
        Rule::PerWeight(|e, g, h, _| rmsprop(e, g, h)),
    )
};
