//! The Rprop family of the report: Rprop-, Rprop+, iRprop+ and iRprop- (= `torch.optim.Rprop`).
//!
//! Notation (per weight): `g` the current gradient, `prev_grad` the stored previous gradient,
//! `step` the step size, `prev_change` the last weight change. Step sizes follow PyTorch:
//! `step = clamp(step * f, step_min, step_max)` in f32 with f in {eta+, eta-, 1}, where the
//! sign test is on the f32 product `g * prev_grad` (as `torch.optim.Rprop` does, so an
//! underflowing product counts as zero there and here). WGSL twins: `rprop_minus`,
//! `rprop_plus`, `irprop_plus`, `irprop_minus` in shaders/optimizer.wgsl.

use super::{Backtrack, Elem, Hyper, Rule, Spec, StepScalars, Traits, RPROP_SLOTS};

/// Sign of the f32 product g*prev_grad as -1, 0 or 1 (NaN counts as 0, as in PyTorch's
/// `sign`-then-compare).
pub fn product_sign(g: f32, prev_grad: f32) -> i32 {
    let p = g * prev_grad;
    if p > 0.0 {
        1
    } else if p < 0.0 {
        -1
    } else {
        0
    }
}

/// `step = clamp(step * f, min, max)` with f chosen by the sign of g*prev_grad.
pub fn adapt_step(step: f32, sign: i32, h: &Hyper) -> f32 {
    let f = match sign {
        1 => h.eta_plus,
        -1 => h.eta_minus,
        _ => 1.0,
    };
    (step * f).max(h.step_min).min(h.step_max)
}

/// sign(g) as f32, with sign(0) = 0 so a zero gradient never moves a weight.
pub fn sign(g: f32) -> f32 {
    if g > 0.0 {
        1.0
    } else if g < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Moves the weight by `-sign(g) * step` and remembers `g`.
pub fn descend(e: &mut Elem, g: f32) {
    let dw = -sign(g) * e.step;
    e.w += dw;
    e.prev_change = dw;
    e.prev_grad = g;
}

/// Undo the last change (weight-backtracking) and forget the gradient.
fn backtrack(e: &mut Elem) {
    let dw = -e.prev_change;
    e.w += dw;
    e.prev_change = dw;
    e.prev_grad = 0.0;
}

/// Rprop- (report algorithm 6).
pub fn rprop_minus(e: &mut Elem, g: f32, h: &Hyper) {
    let s = product_sign(g, e.prev_grad);
    e.step = adapt_step(e.step, s, h);
    descend(e, g);
}

/// Rprop+ (report algorithm 7).
pub fn rprop_plus(e: &mut Elem, g: f32, h: &Hyper) {
    let s = product_sign(g, e.prev_grad);
    e.step = adapt_step(e.step, s, h);
    if s < 0 {
        backtrack(e);
    } else {
        descend(e, g);
    }
}

/// iRprop+ (report algorithm 8): `loss_up` is E_t > E_{t-1}.
pub fn irprop_plus(e: &mut Elem, g: f32, h: &Hyper, loss_up: bool) {
    let s = product_sign(g, e.prev_grad);
    e.step = adapt_step(e.step, s, h);
    if s < 0 {
        if loss_up {
            backtrack(e);
        } else {
            e.prev_change = 0.0;
            e.prev_grad = 0.0;
        }
    } else {
        descend(e, g);
    }
}

/// iRprop-: exactly `torch.optim.Rprop.step()`.
pub fn irprop_minus(e: &mut Elem, g: f32, h: &Hyper) {
    let s = product_sign(g, e.prev_grad);
    e.step = adapt_step(e.step, s, h);
    let g = if s < 0 { 0.0 } else { g };
    descend(e, g);
}

/// What the four share: sign-based, bit-exact on the GPU, the report's compare set.
const fn rprop_traits(backtracks: Backtrack) -> Traits {
    Traits {
        sign_based: true,
        bit_exact: true,
        compare_default: true,
        minibatch_warning: true,
        full_batch_only: false,
        backtracks,
        steps_start_at_lr: true,
    }
}

/// The settings every Rprop variant reads (GRprop adds its own to these).
pub const RPROP_KEYS: [&str; 6] = [
    "learning_rate",
    "eta_minus",
    "eta_plus",
    "step_min",
    "step_max",
    "weight_decay",
];

/// A Rprop variant's entry: the settings the four read, the checkpoint's slot names, no
/// defaults of their own, no GPU dispatch after their case; each names its rule and the
/// report's accuracies over this.
const fn rprop(name: &'static str, label: &'static str, wgsl_case: u32, bt: Backtrack) -> Spec {
    Spec {
        name,
        label,
        wgsl_case,
        traits: rprop_traits(bt),
        slots: RPROP_SLOTS,
        keys: &RPROP_KEYS,
        defaults: |_| {},
        rule: Rule::MultiEval,
        global_pass: None,
        report: None,
    }
}

pub const RPROP_MINUS: Spec = Spec {
    rule: Rule::PerWeight(|e, g, h, _| rprop_minus(e, g, h)),
    report: Some((0.958, 0.956)),
    ..rprop("rprop-minus", "Rprop-", 0, Backtrack::Never)
};

pub const RPROP_PLUS: Spec = Spec {
    rule: Rule::PerWeight(|e, g, h, _| rprop_plus(e, g, h)),
    report: Some((0.9427, 0.9478)),
    ..rprop("rprop-plus", "Rprop+", 1, Backtrack::Always)
};

pub const IRPROP_PLUS: Spec = Spec {
    rule: Rule::PerWeight(|e, g, h, sc: &StepScalars| irprop_plus(e, g, h, sc.loss_up)),
    report: Some((0.9554, 0.9557)),
    ..rprop("irprop-plus", "iRprop+", 2, Backtrack::IfLossUp)
};

pub const IRPROP_MINUS: Spec = Spec {
    rule: Rule::PerWeight(|e, g, h, _| irprop_minus(e, g, h)),
    report: Some((0.955, 0.9555)),
    ..rprop(
        "irprop-minus",
        "iRprop- (PyTorch Rprop)",
        3,
        Backtrack::Never,
    )
};
