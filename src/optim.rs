//! The Rprop family: per-weight rules, written once as plain functions.
//!
//! Notation (per weight): `g` the current gradient, `prev_grad` the stored previous gradient,
//! `step` the step size, `prev_change` the last weight change. Step sizes follow PyTorch:
//! `step = clamp(step * f, step_min, step_max)` in f32 with f in {eta+, eta-, 1}, where the
//! sign test is on the f32 product `g * prev_grad` (as `torch.optim.Rprop` does, so an
//! underflowing product counts as zero there and here). These functions are the spec; the CPU
//! backend applies them in a loop and `shaders/optimizer.wgsl` is their GPU twin.

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
    /// Gradient descent with optional (Nesterov) momentum = `torch.optim.SGD`.
    Sgd,
    /// RMSprop with optional momentum = `torch.optim.RMSprop` (not centered).
    Rmsprop,
    /// Adam = `torch.optim.Adam` (not AMSGrad; weight decay as an L2 term).
    Adam,
    /// Fahlman's Quickprop with maximum growth factor `mu`.
    Quickprop,
}

impl Variant {
    /// The four Rprop variants of the report.
    pub const RPROP: [Variant; 4] = [
        Variant::RpropMinus,
        Variant::RpropPlus,
        Variant::IrpropPlus,
        Variant::IrpropMinus,
    ];

    /// Every optimizer.
    pub const ALL: [Variant; 8] = [
        Variant::RpropMinus,
        Variant::RpropPlus,
        Variant::IrpropPlus,
        Variant::IrpropMinus,
        Variant::Sgd,
        Variant::Rmsprop,
        Variant::Adam,
        Variant::Quickprop,
    ];

    pub fn is_rprop(self) -> bool {
        Variant::RPROP.contains(&self)
    }

    pub fn name(self) -> &'static str {
        match self {
            Variant::RpropMinus => "rprop-minus",
            Variant::RpropPlus => "rprop-plus",
            Variant::IrpropPlus => "irprop-plus",
            Variant::IrpropMinus => "irprop-minus",
            Variant::Sgd => "sgd",
            Variant::Rmsprop => "rmsprop",
            Variant::Adam => "adam",
            Variant::Quickprop => "quickprop",
        }
    }

    /// The label the report uses.
    pub fn label(self) -> &'static str {
        match self {
            Variant::RpropMinus => "Rprop-",
            Variant::RpropPlus => "Rprop+",
            Variant::IrpropPlus => "iRprop+",
            Variant::IrpropMinus => "iRprop- (PyTorch Rprop)",
            Variant::Sgd => "SGD",
            Variant::Rmsprop => "RMSprop",
            Variant::Adam => "Adam",
            Variant::Quickprop => "Quickprop",
        }
    }

    /// The code the GPU kernel switches on.
    pub fn code(self) -> u32 {
        match self {
            Variant::RpropMinus => 0,
            Variant::RpropPlus => 1,
            Variant::IrpropPlus => 2,
            Variant::IrpropMinus => 3,
            Variant::Sgd => 4,
            Variant::Rmsprop => 5,
            Variant::Adam => 6,
            Variant::Quickprop => 7,
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

/// Hyper-parameters of the optimizers (PyTorch names in brackets).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hyper {
    /// Learning rate (`lr`); for Rprop the initial step size.
    pub lr: f32,
    /// Shrink factor on a sign change (`etas[0]`), in (0, 1).
    pub eta_minus: f32,
    /// Growth factor on equal signs (`etas[1]`), > 1.
    pub eta_plus: f32,
    /// Smallest step (`step_sizes[0]`).
    pub step_min: f32,
    /// Largest step (`step_sizes[1]`).
    pub step_max: f32,
    /// L2 penalty added to the gradient, `g + weight_decay * w`, for every optimizer.
    pub weight_decay: f32,
    /// Momentum of SGD and RMSprop (0 = none).
    pub momentum: f32,
    /// Nesterov momentum for SGD.
    pub nesterov: bool,
    /// RMSprop's smoothing constant. f64, like torch's Python float, because torch forms
    /// `1 - alpha` in f64 before rounding it to f32 (and so does [`rmsprop`]).
    pub alpha: f64,
    /// RMSprop's and Adam's term added to the denominator.
    pub eps: f32,
    /// Adam's decay rates of the gradient's first and second moments (`betas`); f64 for the
    /// same reason as `alpha`, and for the bias corrections.
    pub beta1: f64,
    pub beta2: f64,
    /// Quickprop's maximum growth factor of a step over the previous one.
    pub mu: f32,
}

impl Default for Hyper {
    /// The report's values.
    fn default() -> Self {
        Hyper {
            lr: 1e-3,
            eta_minus: 0.5,
            eta_plus: 1.2,
            step_min: 1e-6,
            step_max: 50.0,
            weight_decay: 0.0,
            momentum: 0.0,
            nesterov: false,
            alpha: 0.99,
            eps: 1e-8,
            beta1: 0.9,
            beta2: 0.999,
            mu: 1.75,
        }
    }
}

/// The optimizer state of one weight, and the weight itself. The three state slots are named
/// for Rprop; the other optimizers keep their own per-weight state in them:
///
/// | optimizer | `step` | `prev_grad` | `prev_change` |
/// |---|---|---|---|
/// | Rprop family | step size | previous gradient | previous weight change |
/// | SGD | - | - | momentum buffer |
/// | RMSprop | running mean of g^2 (`square_avg`) | - | momentum buffer |
/// | Adam | second moment (`exp_avg_sq`) | first moment (`exp_avg`) | - |
/// | Quickprop | - | previous gradient | previous weight change |
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
            step: h.lr,
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

/// SGD (`torch.optim.SGD`, no dampening): with momentum, `buf = momentum * buf + g` and the
/// step follows `buf` (Nesterov: `g + momentum * buf`); `w -= lr * d`.
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

/// RMSprop (`torch.optim.RMSprop`, not centered): `sq = alpha * sq + (1 - alpha) * g * g`,
/// `avg = sqrt(sq) + eps`; `w -= lr * g / avg`, or with momentum
/// `buf = momentum * buf + g / avg`, `w -= lr * buf`. Operations in torch's order.
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

/// Adam (`torch.optim.Adam`): `m = lerp(m, g, 1 - beta1)`,
/// `v = beta2 * v + (1 - beta2) * g * g`, `w -= step_size * m / (sqrt(v) / bc2_sqrt + eps)`
/// with the step's bias corrections from [`StepScalars`].
pub fn adam(e: &mut Elem, g: f32, h: &Hyper, sc: &StepScalars) {
    // torch's lerp with a weight below 0.5: m + w * (g - m).
    e.prev_grad += (1.0 - h.beta1) as f32 * (g - e.prev_grad);
    e.step = ((1.0 - h.beta2) as f32 * g).mul_add(g, e.step * h.beta2 as f32);
    let denom = e.step.sqrt() / sc.adam_bc2_sqrt + h.eps;
    e.w += -sc.adam_step_size * e.prev_grad / denom;
}

/// Quickprop (Fahlman 1988), in terms of the slope `s = -g`: with no previous change, a
/// gradient step `lr * s`; otherwise the jump to the minimum of the parabola through the two
/// slopes, `prev_change * s / (s_prev - s)`, at most `mu` times the previous change, plus
/// the gradient step while the slope still points the same way.
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

/// What every weight of one step shares: whether the loss went up (iRprop+), and Adam's
/// bias-corrected step size and sqrt of the second-moment correction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepScalars {
    pub loss_up: bool,
    pub adam_step_size: f32,
    pub adam_bc2_sqrt: f32,
}

impl StepScalars {
    /// For step number `t` (1-based) with losses E_t and E_{t-1}. The bias corrections are
    /// computed in f64 and rounded once, as torch does with its Python floats.
    pub fn new(h: &Hyper, t: u64, loss: f32, prev_loss: f32) -> StepScalars {
        let t = t.max(1) as i32;
        let bc1 = 1.0 - h.beta1.powi(t);
        let bc2 = 1.0 - h.beta2.powi(t);
        StepScalars {
            loss_up: loss > prev_loss,
            adam_step_size: (h.lr as f64 / bc1) as f32,
            adam_bc2_sqrt: bc2.sqrt() as f32,
        }
    }
}

/// Applies `variant`'s rule to one weight, with the L2 penalty (`g + weight_decay * w`, as
/// torch's `grad.add(param, alpha=weight_decay)`) added first.
pub fn update(variant: Variant, e: &mut Elem, g: f32, h: &Hyper, sc: &StepScalars) {
    // torch's `grad.add(param, alpha=weight_decay)`: a fused multiply-add.
    let g = if h.weight_decay != 0.0 {
        e.w.mul_add(h.weight_decay, g)
    } else {
        g
    };
    match variant {
        Variant::RpropMinus => rprop_minus(e, g, h),
        Variant::RpropPlus => rprop_plus(e, g, h),
        Variant::IrpropPlus => irprop_plus(e, g, h, sc.loss_up),
        Variant::IrpropMinus => irprop_minus(e, g, h),
        Variant::Sgd => sgd(e, g, h),
        Variant::Rmsprop => rmsprop(e, g, h),
        Variant::Adam => adam(e, g, h, sc),
        Variant::Quickprop => quickprop(e, g, h),
    }
}

/// Applies a Rprop variant's rule to one weight (`loss_up`: E_t > E_{t-1}).
pub fn apply(variant: Variant, e: &mut Elem, g: f32, h: &Hyper, loss_up: bool) {
    let sc = StepScalars {
        loss_up,
        ..StepScalars::new(h, 1, 0.0, 0.0)
    };
    update(variant, e, g, h, &sc);
}

/// Optimizer state of a whole model (flat, in the parameter layout).
#[derive(Clone, Debug, PartialEq)]
pub struct RpropState {
    /// Per weight, the three slots of [`Elem`] (named for Rprop; see its table).
    pub step: Vec<f32>,
    pub prev_grad: Vec<f32>,
    pub prev_change: Vec<f32>,
    /// Loss of the previous step (E_{t-1}); +inf before the first step.
    pub prev_loss: f32,
    /// Steps taken so far (Adam's bias correction uses the next one).
    pub t: u64,
}

impl RpropState {
    /// The state before the first step of a Rprop variant: every step size at `lr`.
    pub fn new(len: usize, h: &Hyper) -> RpropState {
        RpropState {
            step: vec![h.lr; len],
            prev_grad: vec![0.0; len],
            prev_change: vec![0.0; len],
            prev_loss: f32::INFINITY,
            t: 0,
        }
    }

    /// The state before the first step of `variant`: Rprop's step sizes start at `lr`,
    /// every other optimizer's accumulators at zero.
    pub fn for_variant(len: usize, variant: Variant, h: &Hyper) -> RpropState {
        let mut s = RpropState::new(len, h);
        if !variant.is_rprop() {
            s.step.fill(0.0);
        }
        s
    }
}
