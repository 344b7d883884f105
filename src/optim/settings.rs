//! The optimizers' settings, each written once: its field, type, default, valid range, config
//! key and help text. The config's keys, checks and JSON, the command line's overrides and
//! the defaults `--help` shows all read [`SETTINGS`]; an optimizer that wants another default
//! for a shared key says so in its registry entry ([`super::Spec::defaults`]).

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use super::lbfgs::LineSearch;

/// A setting's type: read from JSON (with its type checked), written back, and seen as an
/// f64 by the range checks.
pub trait Typed: Copy {
    fn from_json(v: &Value) -> Result<Self>;
    fn to_json(self) -> Value;
    fn as_f64(self) -> f64;
}

fn show(v: &Value) -> String {
    crate::limits::show_value(v)
}

impl Typed for f32 {
    fn from_json(v: &Value) -> Result<f32> {
        let x = v
            .as_f64()
            .ok_or_else(|| anyhow!("expected a number, got {}", show(v)))?;
        // Rounded as the value is stored: 3.4028235e38 (f32::MAX as config.json writes it)
        // is in range, and every accepted number reads back as the same f32.
        let y = x as f32;
        if !y.is_finite() {
            bail!("{} is out of range for f32", crate::limits::num(x));
        }
        if y == 0.0 && x != 0.0 {
            bail!("{x:e} is too small for f32 (it would be stored as 0; the smallest is 1e-45)");
        }
        Ok(y)
    }
    /// The shortest decimal that reads back as the same f32 (0.001, not the f64 widening
    /// 0.0010000000474974513), so config.json says what the user wrote.
    fn to_json(self) -> Value {
        format!("{self}")
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number)
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Typed for f64 {
    fn from_json(v: &Value) -> Result<f64> {
        v.as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| anyhow!("expected a number, got {}", show(v)))
    }
    fn to_json(self) -> Value {
        serde_json::json!(self)
    }
    fn as_f64(self) -> f64 {
        self
    }
}

impl Typed for bool {
    fn from_json(v: &Value) -> Result<bool> {
        v.as_bool()
            .ok_or_else(|| anyhow!("expected true or false, got {}", show(v)))
    }
    fn to_json(self) -> Value {
        Value::Bool(self)
    }
    fn as_f64(self) -> f64 {
        f64::from(u8::from(self))
    }
}

impl Typed for u32 {
    fn from_json(v: &Value) -> Result<u32> {
        let x = v
            .as_u64()
            .ok_or_else(|| anyhow!("expected a non-negative integer, got {}", show(v)))?;
        u32::try_from(x).map_err(|_| anyhow!("{x} is too large"))
    }
    fn to_json(self) -> Value {
        serde_json::json!(self)
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Typed for LineSearch {
    fn from_json(v: &Value) -> Result<LineSearch> {
        v.as_str().and_then(LineSearch::parse).ok_or_else(|| {
            anyhow!(
                "expected one of {}, got {}",
                LineSearch::NAMES.join(", "),
                show(v)
            )
        })
    }
    fn to_json(self) -> Value {
        Value::String(self.name().into())
    }
    fn as_f64(self) -> f64 {
        f64::from(u8::from(self == LineSearch::StrongWolfe))
    }
}

/// A setting's valid values.
#[derive(Clone, Copy, Debug)]
pub enum Check {
    /// A finite number > 0.
    Positive,
    /// A finite number >= 0.
    NonNegative,
    /// In the open interval (0, 1).
    Open01,
    /// In [0, 1).
    Unit,
    /// A finite number > 1.
    AboveOne,
    /// A finite number >= the named setting.
    AtLeast(&'static str),
    /// true only when the named setting is > 0.
    Needs(&'static str),
    /// Any value of the type.
    Any,
}

impl Check {
    /// The error for `x` (the setting's value, `shown` as config.json writes it: `-0.1`,
    /// not the f32's f64 widening) in `h`, or `None` when it is valid.
    pub fn error(self, x: f64, shown: &str, h: &Hyper) -> Option<String> {
        let bad = |range: &str| Some(format!("must be {range}, got {shown}"));
        match self {
            Check::Positive if !(x > 0.0 && x.is_finite()) => bad("a positive number"),
            Check::NonNegative if !(x >= 0.0 && x.is_finite()) => bad(">= 0"),
            Check::Open01 if !(x > 0.0 && x < 1.0) => bad("in (0, 1)"),
            Check::Unit if !(0.0..1.0).contains(&x) => bad("in [0, 1)"),
            Check::AboveOne if !(x > 1.0 && x.is_finite()) => bad("a finite number > 1"),
            Check::AtLeast(other) => {
                let o = h.get_f64(other);
                let o_shown = setting(other)
                    .map_or(String::new(), |s| crate::limits::show_value(&(s.get)(h)));
                (!(x >= o && x.is_finite()))
                    .then(|| format!("must be a finite number >= {other} ({o_shown}), got {shown}"))
            }
            Check::Needs(other) if x != 0.0 && h.get_f64(other) <= 0.0 => {
                Some(format!("needs {other} > 0"))
            }
            _ => None,
        }
    }
}

/// One setting of [`SETTINGS`].
pub struct Setting {
    /// The config key; the command-line option is its kebab-case spelling.
    pub key: &'static str,
    /// What `--help` says of it.
    pub help: &'static str,
    pub check: Check,
    pub get: fn(&Hyper) -> Value,
    pub set: fn(&mut Hyper, &Value) -> Result<()>,
    pub get_f64: fn(&Hyper) -> f64,
}

macro_rules! settings {
    ($( $(#[doc = $doc:literal])+ $field:ident: $ty:ty = $default:expr, $key:literal, $check:expr; )*) => {
        /// Hyper-parameters of the optimizers (PyTorch names in brackets).
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct Hyper {
            $( $(#[doc = $doc])+ pub $field: $ty, )*
        }

        impl Hyper {
            /// Every setting at its default, before an optimizer's own defaults.
            pub const BASE: Hyper = Hyper { $( $field: $default, )* };
        }

        /// Every optimizer setting, in the order a config is written back.
        pub const SETTINGS: &[Setting] = &[ $( Setting {
            key: $key,
            help: concat!($($doc),+),
            check: $check,
            get: |h| Typed::to_json(h.$field),
            set: |h, v| {
                h.$field = <$ty as Typed>::from_json(v)?;
                Ok(())
            },
            get_f64: |h| Typed::as_f64(h.$field),
        }, )* ];
    };
}

settings! {
    /// Learning rate; for Rprop the initial step size (PyTorch's lr).
    lr: f32 = 1e-3, "learning_rate", Check::Positive;
    /// Step shrink factor on a sign change (etas[0]).
    eta_minus: f32 = 0.5, "eta_minus", Check::Open01;
    /// Step growth factor on equal signs (etas[1]).
    eta_plus: f32 = 1.2, "eta_plus", Check::AboveOne;
    /// Smallest step size (step_sizes[0]).
    step_min: f32 = 1e-6, "step_min", Check::Positive;
    /// Largest step size (step_sizes[1]).
    step_max: f32 = 50.0, "step_max", Check::AtLeast("step_min");
    /// L2 penalty added to the gradient, g + weight_decay * w.
    weight_decay: f32 = 0.0, "weight_decay", Check::NonNegative;
    /// SGD / RMSprop momentum (0 = none).
    momentum: f32 = 0.0, "momentum", Check::Unit;
    /// Nesterov momentum for SGD (true/false).
    nesterov: bool = false, "nesterov", Check::Needs("momentum");
    /// RMSprop smoothing constant.
    // f64, like torch's Python float: torch forms 1 - alpha in f64 before rounding to f32.
    alpha: f64 = 0.99, "alpha", Check::Unit;
    /// RMSprop / Adam denominator term.
    eps: f32 = 1e-8, "eps", Check::Positive;
    /// Adam first-moment decay (betas[0]).
    beta1: f64 = 0.9, "beta1", Check::Unit;
    /// Adam second-moment decay (betas[1]).
    beta2: f64 = 0.999, "beta2", Check::Unit;
    /// Quickprop maximum growth factor of a step over the previous one.
    mu: f32 = 1.75, "mu", Check::Positive;
    /// GRprop's delta, the descent the chosen weight's step must add.
    grprop_delta: f32 = 1e-6, "grprop_delta", Check::Positive;
    /// L-BFGS iterations per step (one step per epoch).
    max_iter: u32 = 20, "max_iter", Check::Positive;
    /// L-BFGS evaluations per step (0: max_iter * 5 / 4, torch's default).
    max_eval: u32 = 0, "max_eval", Check::NonNegative;
    /// L-BFGS stops a step once max |g| is at most this.
    tolerance_grad: f64 = 1e-7, "tolerance_grad", Check::NonNegative;
    /// L-BFGS stops a step once the loss or weight change is below this.
    tolerance_change: f64 = 1e-9, "tolerance_change", Check::NonNegative;
    /// L-BFGS (y, s) pairs kept.
    history_size: u32 = 100, "history_size", Check::Positive;
    /// L-BFGS step rule: none or strong-wolfe.
    line_search: LineSearch = LineSearch::None, "line_search", Check::Any;
}

impl Default for Hyper {
    /// The report's values.
    fn default() -> Self {
        Hyper::BASE
    }
}

/// The setting named `key`.
pub fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

impl Hyper {
    /// Setting `key` as an f64 (0 for an unknown key).
    pub fn get_f64(&self, key: &str) -> f64 {
        setting(key).map_or(0.0, |s| (s.get_f64)(self))
    }

    /// Checks every setting's range; the error names the key.
    pub fn validate(&self) -> Result<()> {
        for s in SETTINGS {
            let shown = crate::limits::show_value(&(s.get)(self));
            if let Some(e) = s.check.error((s.get_f64)(self), &shown, self) {
                bail!("key `{}`: {e}", s.key);
            }
        }
        Ok(())
    }
}
