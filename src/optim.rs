//! The Rprop family: per-weight rules, written once as plain functions.
//!
//! Notation (per weight): `g` the current gradient, `prev_grad` the stored previous gradient,
//! `step` the step size, `prev_change` the last weight change. Step sizes follow PyTorch:
//! `step = clamp(step * f, step_min, step_max)` in f32 with f in {eta+, eta-, 1}, where the
//! sign test is on the f32 product `g * prev_grad` (as `torch.optim.Rprop` does, so an
//! underflowing product counts as zero there and here). These functions are the spec; the CPU
//! backend applies them in a loop and `shaders/rprop.wgsl` is their GPU twin.

use std::fmt;
use std::str::FromStr;

/// Which Rprop variant to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Rprop-: adapt the step, always move by -sign(g)*step; keep g.
    RpropMinus,
    /// Rprop+: on a sign change undo the last change and forget g.
    RpropPlus,
    /// iRprop+: like Rprop+, but undo only if the loss went up.
    IrpropPlus,
    /// iRprop-: on a sign change shrink the step, forget g, do not move. = `torch.optim.Rprop`.
    IrpropMinus,
}

impl Variant {
    pub const ALL: [Variant; 4] = [
        Variant::RpropMinus,
        Variant::RpropPlus,
        Variant::IrpropPlus,
        Variant::IrpropMinus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::RpropMinus => "rprop-minus",
            Variant::RpropPlus => "rprop-plus",
            Variant::IrpropPlus => "irprop-plus",
            Variant::IrpropMinus => "irprop-minus",
        }
    }

    /// The label the report uses.
    pub fn label(self) -> &'static str {
        match self {
            Variant::RpropMinus => "Rprop-",
            Variant::RpropPlus => "Rprop+",
            Variant::IrpropPlus => "iRprop+",
            Variant::IrpropMinus => "iRprop- (PyTorch Rprop)",
        }
    }

    /// The code the GPU kernel switches on.
    pub fn code(self) -> u32 {
        match self {
            Variant::RpropMinus => 0,
            Variant::RpropPlus => 1,
            Variant::IrpropPlus => 2,
            Variant::IrpropMinus => 3,
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Variant::ALL.iter().map(|v| v.name()).collect();
                format!(
                    "unknown optimizer {s:?} (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// Hyper-parameters shared by the variants (PyTorch names in brackets).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hyper {
    /// Initial step size (`lr`).
    pub initial_step: f32,
    /// Shrink factor on a sign change (`etas[0]`), in (0, 1).
    pub eta_minus: f32,
    /// Growth factor on equal signs (`etas[1]`), > 1.
    pub eta_plus: f32,
    /// Smallest step (`step_sizes[0]`).
    pub step_min: f32,
    /// Largest step (`step_sizes[1]`).
    pub step_max: f32,
}

impl Default for Hyper {
    /// The report's values.
    fn default() -> Self {
        Hyper {
            initial_step: 1e-3,
            eta_minus: 0.5,
            eta_plus: 1.2,
            step_min: 1e-6,
            step_max: 50.0,
        }
    }
}

/// The optimizer state of one weight, and the weight itself.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Elem {
    pub w: f32,
    pub step: f32,
    pub prev_grad: f32,
    pub prev_change: f32,
}

impl Elem {
    /// A weight before its first step: no previous gradient, the initial step size.
    pub fn new(w: f32, h: &Hyper) -> Elem {
        Elem {
            w,
            step: h.initial_step,
            prev_grad: 0.0,
            prev_change: 0.0,
        }
    }
}

/// Sign of the f32 product g*prev_grad as -1, 0 or 1 (NaN counts as 0, as in PyTorch's
/// `sign`-then-compare).
fn product_sign(g: f32, prev_grad: f32) -> i32 {
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
fn adapt_step(step: f32, sign: i32, h: &Hyper) -> f32 {
    let f = match sign {
        1 => h.eta_plus,
        -1 => h.eta_minus,
        _ => 1.0,
    };
    (step * f).max(h.step_min).min(h.step_max)
}

/// sign(g) as f32, with sign(0) = 0 so a zero gradient never moves a weight.
fn sign(g: f32) -> f32 {
    if g > 0.0 {
        1.0
    } else if g < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Moves the weight by `-sign(g) * step` and remembers `g`.
fn descend(e: &mut Elem, g: f32) {
    let dw = -sign(g) * e.step;
    e.w += dw;
    e.prev_change = dw;
    e.prev_grad = g;
}

/// Rprop- (report algorithm 6).
pub fn rprop_minus(e: &mut Elem, g: f32, h: &Hyper) {
    let s = product_sign(g, e.prev_grad);
    e.step = adapt_step(e.step, s, h);
    descend(e, g);
}

/// Undo the last change (weight-backtracking) and forget the gradient.
fn backtrack(e: &mut Elem) {
    let dw = -e.prev_change;
    e.w += dw;
    e.prev_change = dw;
    e.prev_grad = 0.0;
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

/// Applies `variant`'s rule to one weight.
pub fn apply(variant: Variant, e: &mut Elem, g: f32, h: &Hyper, loss_up: bool) {
    match variant {
        Variant::RpropMinus => rprop_minus(e, g, h),
        Variant::RpropPlus => rprop_plus(e, g, h),
        Variant::IrpropPlus => irprop_plus(e, g, h, loss_up),
        Variant::IrpropMinus => irprop_minus(e, g, h),
    }
}

/// Optimizer state of a whole model (flat, in the parameter layout).
#[derive(Clone, Debug, PartialEq)]
pub struct RpropState {
    pub step: Vec<f32>,
    pub prev_grad: Vec<f32>,
    pub prev_change: Vec<f32>,
    /// Loss of the previous step (E_{t-1}); +inf before the first step.
    pub prev_loss: f32,
}

impl RpropState {
    pub fn new(len: usize, h: &Hyper) -> RpropState {
        RpropState {
            step: vec![h.initial_step; len],
            prev_grad: vec![0.0; len],
            prev_change: vec![0.0; len],
            prev_loss: f32::INFINITY,
        }
    }
}
