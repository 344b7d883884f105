//! SGD with optional (Nesterov) momentum = `torch.optim.SGD` (no dampening).
//! WGSL twin: `sgd` in shaders/optimizer.wgsl.

use super::{Elem, Hyper, Rule, Spec};

/// With momentum, `buf = momentum * buf + g` and the step follows `buf` (Nesterov:
/// `g + momentum * buf`); `w -= lr * d`. `buf` is kept in `prev_change`.
pub fn sgd(e: &mut Elem, g: f32, h: &Hyper) {
    let d = if h.momentum != 0.0 {
        // The buffer starts at 0, so the first step's buffer is g, as torch's clone of g.
        let buf = e.prev_change * h.momentum + g;
        e.prev_change = buf;
        if h.nesterov {
            buf.mul_add(h.momentum, g)
        } else {
            buf
        }
    } else {
        g
    };
    // torch's `param.add_(d, alpha=-lr)` is a fused multiply-add in its vector kernels.
    e.w = d.mul_add(-h.lr, e.w);
}

pub const SGD: Spec = Spec {
    slots: ["", "", "momentum_buffer"],
    keys: &["learning_rate", "momentum", "nesterov", "weight_decay"],
    ..Spec::gradient("sgd", "SGD", 4, Rule::PerWeight(|e, g, h, _| sgd(e, g, h)))
};
