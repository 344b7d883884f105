//! The optimizers: one module each (its rule as short functions, the CPU spec; its registry
//! entry: traits, settings it reads, state it keeps, the WGSL case of its twin in
//! shaders/optimizer.wgsl), listed once in [`registry`]. Settings are in [`settings`].

pub mod adam;
mod fingerprint;
pub mod grprop;
pub mod lbfgs;
mod lbfgs_check;
pub mod lbfgs_ops;
pub mod lbfgs_wolfe;
pub mod quickprop;
pub mod registry;
pub mod rmsprop;
pub mod rprop;
pub mod settings;
pub mod sgd;

use std::fmt;
use std::hash::{Hash, Hasher};

pub use adam::adam;
pub use quickprop::quickprop;
pub use rmsprop::rmsprop;
pub use rprop::{irprop_minus, irprop_plus, rprop_minus, rprop_plus};
pub use settings::{Hyper, Setting, SETTINGS};
pub use sgd::sgd;

/// Which weight-backtracking a sign-based optimizer does on a sign change (its telemetry
/// counts these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backtrack {
    Never,
    Always,
    /// Only when the loss went up (iRprop+).
    IfLossUp,
}

/// An optimizer's traits, each its own flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Traits {
    /// Moves by gradient signs with adapted steps: gets the sign/step telemetry.
    pub sign_based: bool,
    /// `verify` checks its update bit for bit (no fused multiply-adds, divisions or roots
    /// that a GPU may round differently); otherwise to a tolerance.
    pub bit_exact: bool,
    /// One of `compare`'s default configs (the report's four).
    pub compare_default: bool,
    /// Warned about when run on mini-batches.
    pub minibatch_warning: bool,
    /// Refused on mini-batches.
    pub full_batch_only: bool,
    /// What a sign change does to the weight (sign-based optimizers).
    pub backtracks: Backtrack,
    /// The `step` slot starts at the learning rate (Rprop's step sizes); else at 0.
    pub steps_start_at_lr: bool,
}

impl Traits {
    /// A gradient-scaled optimizer (SGD, Adam, ...): none of the Rprop traits.
    pub const GRADIENT: Traits = Traits {
        sign_based: false,
        bit_exact: false,
        compare_default: false,
        minibatch_warning: false,
        full_batch_only: false,
        backtracks: Backtrack::Never,
        steps_start_at_lr: false,
    };
}

/// A per-weight rule: the weight and its state, the gradient (L2 term already added), the
/// settings and the step's shared scalars.
pub type PerWeight = fn(&mut Elem, f32, &Hyper, &StepScalars);

/// A rule over the whole parameter vector (for optimizers that need global sums).
pub type Global = fn(&mut [f32], &[f32], &mut OptimState, &Hyper, &StepScalars);

/// A pass over the whole parameter vector that follows an optimizer's per-weight case. The
/// CPU runs it inside its [`Rule::Global`]; the GPU picks its dispatches by this name
/// (`gpu::ops::optimizer`), so the optimizers do not depend on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobalPass {
    /// GRprop's pick of one weight, the sum over the others, and the move.
    Grprop(grprop::Pick),
}

/// How the CPU applies an optimizer.
#[derive(Clone, Copy)]
pub enum Rule {
    PerWeight(PerWeight),
    Global(Global),
    /// Several forward+backward passes per step (L-BFGS): the backend runs the step with the
    /// passes as its objective; [`step`] leaves the weights alone.
    MultiEval,
}

/// One optimizer's registry entry.
pub struct Spec {
    /// Its config and command-line name.
    pub name: &'static str,
    /// The label charts and tables use.
    pub label: &'static str,
    /// The `case` of `optimizer.wgsl`'s dispatch that runs its WGSL twin.
    pub wgsl_case: u32,
    pub traits: Traits,
    /// What it keeps in each slot of [`OptimState`] (`step`, `prev_grad`, `prev_change`;
    /// "" for a slot it leaves alone).
    pub slots: [&'static str; 3],
    /// The settings it reads: `--help` and docs list them, config.json holds only these,
    /// and a config that sets another one away from its default is refused.
    pub keys: &'static [&'static str],
    /// Its defaults where they differ from [`Hyper::BASE`].
    pub defaults: fn(&mut Hyper),
    pub rule: Rule,
    /// The whole-vector pass that follows its `wgsl_case` (global sums and the like).
    pub global_pass: Option<GlobalPass>,
    /// The report's (eval, test) accuracy for it, when the report ran it.
    pub report: Option<(f64, f64)>,
}

impl Spec {
    /// A gradient-scaled optimizer's entry ([`Traits::GRADIENT`], no defaults of its own,
    /// no GPU dispatch after its case, not in the report) keeping no state and reading no
    /// settings: each entry names its `slots` and `keys` over this.
    pub const fn gradient(
        name: &'static str,
        label: &'static str,
        wgsl_case: u32,
        rule: Rule,
    ) -> Spec {
        Spec {
            name,
            label,
            wgsl_case,
            traits: Traits::GRADIENT,
            slots: ["", "", ""],
            keys: &[],
            defaults: |_| {},
            rule,
            global_pass: None,
            report: None,
        }
    }
}

/// What the three state slots are called in checkpoints (Rprop's names).
pub const RPROP_SLOTS: [&str; 3] = ["step", "prev_grad", "prev_change"];

/// An optimizer: a handle on its registry entry.
#[derive(Clone, Copy)]
pub struct Variant(pub &'static Spec);

#[allow(non_upper_case_globals)]
impl Variant {
    pub const RpropMinus: Variant = Variant(&rprop::RPROP_MINUS);
    pub const RpropPlus: Variant = Variant(&rprop::RPROP_PLUS);
    pub const IrpropPlus: Variant = Variant(&rprop::IRPROP_PLUS);
    pub const IrpropMinus: Variant = Variant(&rprop::IRPROP_MINUS);
    pub const Sgd: Variant = Variant(&sgd::SGD);
    pub const Rmsprop: Variant = Variant(&rmsprop::RMSPROP);
    pub const Adam: Variant = Variant(&adam::ADAM);
    pub const Quickprop: Variant = Variant(&quickprop::QUICKPROP);
    pub const Lbfgs: Variant = Variant(&lbfgs::LBFGS);
}

impl Variant {
    /// Every optimizer, in registry order.
    pub const ALL: &'static [Variant] = registry::ALL;

    /// `compare`'s default set: the report's four Rprop variants.
    pub fn report_set() -> Vec<Variant> {
        Variant::ALL
            .iter()
            .copied()
            .filter(|v| v.traits().compare_default)
            .collect()
    }

    pub fn spec(self) -> &'static Spec {
        self.0
    }

    pub fn traits(self) -> Traits {
        self.0.traits
    }

    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// The label the report uses.
    pub fn label(self) -> &'static str {
        self.0.label
    }

    /// The code the GPU kernel switches on.
    pub fn code(self) -> u32 {
        self.0.wgsl_case
    }

    /// Sign-based (the Rprop telemetry applies).
    pub fn is_sign_based(self) -> bool {
        self.0.traits.sign_based
    }

    /// Whether a step makes several passes ([`Rule::MultiEval`]).
    pub fn is_multi_eval(self) -> bool {
        matches!(self.0.rule, Rule::MultiEval)
    }

    /// This optimizer's settings: [`Hyper::BASE`] with its own defaults.
    pub fn defaults(self) -> Hyper {
        let mut h = Hyper::BASE;
        (self.0.defaults)(&mut h);
        h
    }
}

impl PartialEq for Variant {
    fn eq(&self, other: &Variant) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Variant {}

impl Hash for Variant {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl fmt::Debug for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

crate::names::named!(Variant, Variant::ALL, "optimizer");

/// The optimizer state of one weight, and the weight itself. The three slots are named for
/// Rprop; what each optimizer keeps in them is its registry entry's [`Spec::slots`].
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

/// The L2 penalty, `g + weight_decay * w`, added before every rule (torch's
/// `grad.add(param, alpha=weight_decay)`: a fused multiply-add).
pub fn decayed(w: f32, g: f32, h: &Hyper) -> f32 {
    if h.weight_decay != 0.0 {
        w.mul_add(h.weight_decay, g)
    } else {
        g
    }
}

/// Applies a per-weight optimizer's rule to one weight, with the L2 penalty added first.
/// Panics for an optimizer that needs the whole vector (use [`step`]).
pub fn update(variant: Variant, e: &mut Elem, g: f32, h: &Hyper, sc: &StepScalars) {
    let Rule::PerWeight(rule) = variant.0.rule else {
        panic!("{variant} is not a per-weight rule; use optim::step");
    };
    let g = decayed(e.w, g, h);
    rule(e, g, h, sc);
}

/// Applies a Rprop variant's rule to one weight (`loss_up`: E_t > E_{t-1}).
pub fn apply(variant: Variant, e: &mut Elem, g: f32, h: &Hyper, loss_up: bool) {
    let sc = StepScalars {
        loss_up,
        ..StepScalars::new(h, 1, 0.0, 0.0)
    };
    update(variant, e, g, h, &sc);
}

/// One step of `variant` over every weight (state.t already advanced, `sc` formed).
pub fn step(
    variant: Variant,
    h: &Hyper,
    params: &mut [f32],
    grads: &[f32],
    state: &mut OptimState,
    sc: &StepScalars,
) {
    match variant.0.rule {
        Rule::PerWeight(rule) => state.each_elem(params, |i, e| {
            let g = decayed(e.w, grads[i], h);
            rule(e, g, h, sc);
        }),
        Rule::Global(rule) => rule(params, grads, state, h, sc),
        Rule::MultiEval => {}
    }
}

/// Optimizer state of a whole model: per weight the three slots of [`Elem`] (flat, in the
/// parameter layout; what each optimizer keeps there is its [`Spec::slots`]), and the
/// step's history.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimState {
    pub step: Vec<f32>,
    pub prev_grad: Vec<f32>,
    pub prev_change: Vec<f32>,
    /// Loss of the previous step (E_{t-1}); +inf before the first step.
    pub prev_loss: f32,
    /// Steps taken so far (Adam's bias correction uses the next one).
    pub t: u64,
    /// L-BFGS's direction, history and scalars (None for every other optimizer).
    pub lbfgs: Option<lbfgs::State>,
}

impl OptimState {
    /// The slots' generic names (Rprop's): a checkpoint names them for what its optimizer
    /// keeps there ([`Spec::slots`]); these are read from files saved before that, or
    /// with no optimizer recorded.
    pub const SLOTS: [&'static str; 3] = RPROP_SLOTS;

    /// The state before the first step of a Rprop variant: every step size at `lr`.
    pub fn new(len: usize, h: &Hyper) -> OptimState {
        OptimState {
            step: vec![h.lr; len],
            prev_grad: vec![0.0; len],
            prev_change: vec![0.0; len],
            prev_loss: f32::INFINITY,
            t: 0,
            lbfgs: None,
        }
    }

    /// The state before the first step of `variant`: Rprop's step sizes start at `lr`,
    /// every other optimizer's accumulators at zero.
    pub fn for_variant(len: usize, variant: Variant, h: &Hyper) -> OptimState {
        let mut s = OptimState::new(len, h);
        if !variant.traits().steps_start_at_lr {
            s.step.fill(0.0);
        }
        if variant.is_multi_eval() {
            s.lbfgs = Some(lbfgs::State::default());
        }
        s
    }

    /// Runs `f` on each weight (its index and [`Elem`]: the weight of `params` and its
    /// slots here) and stores the element back.
    pub fn each_elem(&mut self, params: &mut [f32], mut f: impl FnMut(usize, &mut Elem)) {
        for (i, w) in params.iter_mut().enumerate() {
            let mut e = Elem {
                w: *w,
                step: self.step[i],
                prev_grad: self.prev_grad[i],
                prev_change: self.prev_change[i],
            };
            f(i, &mut e);
            *w = e.w;
            self.step[i] = e.step;
            self.prev_grad[i] = e.prev_grad;
            self.prev_change[i] = e.prev_change;
        }
    }
}
