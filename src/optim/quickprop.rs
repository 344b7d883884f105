//! Fahlman's Quickprop (1988) with maximum growth factor `mu`.
//! WGSL twin: `quickprop` in shaders/optimizer.wgsl.

use super::{Elem, Hyper, Rule, Spec};

/// In terms of the slope `s = -g`: with no previous change, a gradient step `lr * s`;
/// otherwise the jump to the minimum of the parabola through the two slopes,
/// `prev_change * s / (s_prev - s)`, at most `mu` times the previous change, plus the
/// gradient step while the slope still points the same way.
pub fn quickprop(e: &mut Elem, g: f32, h: &Hyper) {
    let (s, sp, dp) = (-g, -e.prev_grad, e.prev_change);
    let shrink = h.mu / (1.0 + h.mu);
    let quad = |dp: f32| {
        let den = sp - s;
        if den == 0.0 {
            0.0
        } else {
            dp * s / den
        }
    };
    let dw = if dp > 0.0 {
        let grad = if s > 0.0 { h.lr * s } else { 0.0 };
        grad + if s > shrink * sp { h.mu * dp } else { quad(dp) }
    } else if dp < 0.0 {
        let grad = if s < 0.0 { h.lr * s } else { 0.0 };
        grad + if s < shrink * sp { h.mu * dp } else { quad(dp) }
    } else {
        h.lr * s
    };
    e.w += dw;
    e.prev_change = dw;
    e.prev_grad = g;
}

pub const QUICKPROP: Spec = Spec {
    slots: ["", "prev_grad", "prev_change"],
    keys: &["learning_rate", "mu", "weight_decay"],
    ..Spec::gradient(
        "quickprop",
        "Quickprop",
        7,
        Rule::PerWeight(|e, g, h, _| quickprop(e, g, h)),
    )
};
