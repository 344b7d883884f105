//! Run configuration: the report's JSON keys, checked key by key so every error names the
//! key (and the file). Command-line overrides go through the same setter as the file.
//!
//! Every key is written once: the run's own keys in the [`run_keys!`] tables below (field,
//! type, default, help, parse and check), the optimizers' settings in
//! [`crate::optim::settings`]. The struct, `--help`, the setter, the checks and config.json
//! all read those tables.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};

pub use crate::limits::cut;
use crate::limits::{memory_limit, NoDuplicateKeys};
use crate::model::{Layout, MAX_HIDDEN};
use crate::optim::settings::setting;
use crate::optim::{Hyper, Variant, SETTINGS};

/// One run key of [`RUN_KEYS`] or [`RECORDED`].
pub struct RunKey {
    /// The config key; the command-line option is its kebab-case spelling.
    pub key: &'static str,
    /// The value's name on the command line.
    pub value: &'static str,
    /// What `--help` says of it.
    pub help: &'static str,
    /// Its value as config.json writes it (None: left out, a recorded setting not set).
    pub get: fn(&Config) -> Option<Value>,
    pub set: fn(&mut Config, &Value) -> Result<()>,
    /// Its own range check (checks across keys: [`Config::validate`]).
    pub check: fn(&Config) -> Result<(), String>,
}

/// A run key's type: read from JSON with its type checked, written back.
trait RunValue: Sized {
    fn from_json(v: &Value) -> Result<Self>;
    fn to_json(&self) -> Option<Value>;
}

impl RunValue for String {
    fn from_json(v: &Value) -> Result<String> {
        as_str(v).map(str::to_string)
    }
    fn to_json(&self) -> Option<Value> {
        Some(self.clone().into())
    }
}

impl RunValue for usize {
    fn from_json(v: &Value) -> Result<usize> {
        as_usize(v)
    }
    fn to_json(&self) -> Option<Value> {
        Some((*self).into())
    }
}

impl RunValue for u64 {
    fn from_json(v: &Value) -> Result<u64> {
        as_u64(v)
    }
    fn to_json(&self) -> Option<Value> {
        Some((*self).into())
    }
}

impl RunValue for Vec<usize> {
    fn from_json(v: &Value) -> Result<Vec<usize>> {
        v.as_array()
            .ok_or_else(|| {
                anyhow!(
                    "expected a list of layer sizes such as [128], got {}",
                    show(v)
                )
            })?
            .iter()
            .map(as_usize)
            .collect()
    }
    fn to_json(&self) -> Option<Value> {
        Some(serde_json::json!(self))
    }
}

impl RunValue for Variant {
    fn from_json(v: &Value) -> Result<Variant> {
        let name = as_str(v)?;
        name.parse::<Variant>().map_err(|e: String| {
            // The parser's message echoes the name; cut it.
            anyhow!("{}", e.replace(name, &cut(name)))
        })
    }
    fn to_json(&self) -> Option<Value> {
        Some(self.name().into())
    }
}

impl RunValue for Option<String> {
    fn from_json(v: &Value) -> Result<Option<String>> {
        as_str(v).map(|s| Some(s.to_string()))
    }
    fn to_json(&self) -> Option<Value> {
        self.clone().map(Value::String)
    }
}

/// Declares a struct of run keys and its table: per key its doc (the `--help` text), field,
/// type, default, value name on the command line, and optionally its parser (else the
/// type's) and its range check. `$at` reaches the struct from a [`Config`].
macro_rules! run_keys {
    (
        $(#[doc = $sdoc:literal])* struct $name:ident { $($extra:ident: $extra_ty:ty),* }
        table $table:ident at $at:expr, $at_mut:expr;
        $( $(#[doc = $doc:literal])+ $field:ident: $ty:ty = $default:expr, $value:literal
           $(, parse $parse:expr)? $(, check $check:expr)?; )*
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name {
            $( $(#[doc = $doc])+ pub $field: $ty, )*
            $( pub $extra: $extra_ty, )*
        }

        impl $name {
            /// Every key at its default.
            fn with_defaults($($extra: $extra_ty),*) -> $name {
                $name { $( $field: $default, )* $( $extra, )* }
            }
        }

        /// The keys of the struct, in the order config.json writes them.
        pub const $table: &[RunKey] = &[ $( RunKey {
            key: stringify!($field),
            value: $value,
            help: concat!($($doc),+),
            get: |c| RunValue::to_json(&($at)(c).$field),
            set: |c, v| {
                ($at_mut)(c).$field = run_keys!(@parse $ty $(, $parse)?)(v)?;
                Ok(())
            },
            check: |c| run_keys!(@check $ty $(, $check)?)(&($at)(c).$field),
        }, )* ];
    };
    (@parse $ty:ty) => { <$ty as RunValue>::from_json };
    (@parse $ty:ty, $parse:expr) => { $parse };
    (@check $ty:ty) => { |_: &$ty| Ok(()) };
    (@check $ty:ty, $check:expr) => { $check };
}

run_keys! {
    /// A run's settings: its own keys ([`RUN_KEYS`]), the optimizer's settings and where it
    /// ran.
    struct Config { hyper: Hyper, run: RunSettings }
    table RUN_KEYS at this, this_mut;
    /// Loss function (only "cross_entropy")
    criterion: String = "cross_entropy".into(), "NAME", check |c: &String| {
        (c == "cross_entropy")
            .then_some(())
            .ok_or_else(|| format!("{:?} is not supported (only \"cross_entropy\")", cut(c)))
    };
    /// The optimizer
    optimizer: Variant = Variant::IrpropPlus, "NAME";
    /// Number of epochs, one pass over the train set each
    epochs: usize = 50, "N", check |&n: &usize| in_range(n, 1, 1_000_000);
    /// Training images: the first N learning images
    train_set_size: usize = 50_000, "N", check |&n: &usize| in_range(n, 1, MAX_LEARN);
    /// Mini-batch size [default: = train-set-size, full batch]
    train_batch_size: usize = 50_000, "N";
    /// Eval images: the next N learning images
    eval_set_size: usize = 10_000, "N", check |&n: &usize| in_range(n, 1, MAX_LEARN);
    /// Must equal eval-set-size [default: = eval-set-size]
    eval_batch_size: usize = 10_000, "N";
    /// Seed of the weight initialization
    seed: u64 = 0, "N";
    /// Hidden layer sizes, e.g. 200,150,100
    hidden: Vec<usize> = vec![128], "SIZES", check |h: &Vec<usize>| {
        let ok = !h.is_empty() && h.len() <= MAX_HIDDEN && h.iter().all(|&x| (1..=65_536).contains(&x));
        ok.then_some(()).ok_or_else(|| format!(
            "must list 1 to {MAX_HIDDEN} layer sizes in 1..=65536, got {}",
            cut(&format!("{h:?}"))
        ))
    };
}

run_keys! {
    /// Where a run ran and which matmul strategies it used: config.json records them, so a
    /// rerun (`train --config RUN/config.json`), `--resume` and `verify` run the same
    /// arithmetic. Command-line options still win over them. None = chosen as for a new run.
    struct RunSettings {}
    table RECORDED at run_of, run_of_mut;
    /// "cpu" or "gpu"
    backend: Option<String> = None, "NAME", parse |v| one_of(v, &["cpu", "gpu"]).map(Some);
    /// The GPU adapter's name (matched as `--adapter`)
    adapter: Option<String> = None, "NAME";
    /// The GPU matmul strategy (`--matmul-kernel`)
    matmul_kernel: Option<String> = None, "NAME", parse |v| {
        let k = as_str(v)?.parse::<crate::matmul_kernel::Strategy>().map_err(anyhow::Error::msg)?;
        anyhow::Ok(Some(k.name().to_string()))
    };
    /// The CPU backend's first-layer products, "dense" or "sparse" (`--cpu-matmul`)
    cpu_matmul: Option<String> = None, "NAME", parse |v| one_of(v, &["dense", "sparse"]).map(Some);
}

impl Eq for RunSettings {}

impl Default for RunSettings {
    fn default() -> RunSettings {
        RunSettings::with_defaults()
    }
}

// Where each table's struct sits in a [`Config`] (fns: a closure cannot return a borrow of
// its argument).
fn this(c: &Config) -> &Config {
    c
}
fn this_mut(c: &mut Config) -> &mut Config {
    c
}
fn run_of(c: &Config) -> &RunSettings {
    &c.run
}
fn run_of_mut(c: &mut Config) -> &mut RunSettings {
    &mut c.run
}

/// Every key a config may hold for some optimizer (the run keys, then every optimizer's
/// settings); the command line's overrides.
pub static KEYS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    RUN_KEYS
        .iter()
        .map(|k| k.key)
        .chain(SETTINGS.iter().map(|s| s.key))
        .collect()
});

/// The keys config.json records about where and how a run ran ([`RunSettings`]).
pub static RECORDED_KEYS: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| RECORDED.iter().map(|k| k.key).collect());

/// Largest set the learning images can supply (MNIST's 60,000); checked again against the
/// real data once it is loaded.
pub const MAX_LEARN: usize = 60_000;

/// `n` in `lo..=hi`, or the error saying so.
fn in_range(n: usize, lo: usize, hi: usize) -> Result<(), String> {
    (lo..=hi)
        .contains(&n)
        .then_some(())
        .ok_or_else(|| format!("must be {lo}..={hi}, got {n}"))
}

/// The run key named `key` (a run key or a recorded one).
pub fn run_key(key: &str) -> Option<&'static RunKey> {
    RUN_KEYS.iter().chain(RECORDED).find(|k| k.key == key)
}

impl Config {
    /// The report's settings for one optimizer, with its own defaults.
    pub fn report(optimizer: Variant) -> Config {
        Config {
            optimizer,
            ..Config::with_defaults(optimizer.defaults(), RunSettings::default())
        }
    }

    /// Mini-batches (train_batch_size below the train set size)?
    pub fn minibatch(&self) -> bool {
        self.train_batch_size < self.train_set_size
    }

    pub fn hyper(&self) -> Hyper {
        self.hyper
    }

    /// Switches the optimizer; settings still at the old one's defaults take the new one's
    /// (so `--optimizer X` over a config of another optimizer runs X at its defaults).
    fn set_optimizer(&mut self, v: Variant) {
        let (old, new) = (self.optimizer.defaults(), v.defaults());
        for s in SETTINGS {
            if (s.get)(&self.hyper) == (s.get)(&old) {
                // Cannot fail: the value is the setting's own type.
                let _ = (s.set)(&mut self.hyper, &(s.get)(&new));
            }
        }
        self.optimizer = v;
    }

    /// Parses a config's JSON text. Keys left out keep the report's values, except
    /// `optimizer`, which is required.
    pub fn parse(text: &str) -> Result<Config> {
        let cfg = Config::parse_unchecked(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// [`Config::parse`] without [`Config::validate`], for settings that command-line
    /// options complete (`eval_batch_size` 500 with `--eval-set-size 500`).
    pub fn parse_unchecked(text: &str) -> Result<Config> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| anyhow!("malformed JSON: {e}"))?;
        // serde_json keeps the last of two equal keys; which one the user meant is unknown.
        serde_json::from_str::<NoDuplicateKeys>(text).map_err(|e| anyhow!("{e}"))?;
        let Value::Object(map) = value else {
            bail!("expected a JSON object of settings");
        };
        let optimizer = map
            .get("optimizer")
            .ok_or_else(|| anyhow!("missing key `optimizer`"))?;
        let mut cfg = Config::report(Variant::from_json(optimizer).context("key `optimizer`")?);
        for (k, v) in &map {
            cfg.set(k, v)?;
        }
        // A set size without a batch size means full batch, as in the report's settings.
        if !map.contains_key("train_batch_size") {
            cfg.train_batch_size = cfg.train_set_size;
        }
        if !map.contains_key("eval_batch_size") {
            cfg.eval_batch_size = cfg.eval_set_size;
        }
        Ok(cfg)
    }

    /// [`Config::load`] without [`Config::validate`] (see [`Config::parse_unchecked`]).
    pub fn load_unchecked(path: &Path) -> Result<Config> {
        let text = crate::fsio::read_text(path, "config", crate::fsio::MAX_CONFIG)?;
        Config::parse_unchecked(&text).with_context(|| format!("{}", path.display()))
    }

    /// Reads and checks a config file; errors name the file and the key.
    pub fn load(path: &Path) -> Result<Config> {
        let text = crate::fsio::read_text(path, "config", crate::fsio::MAX_CONFIG)?;
        Config::parse(&text).with_context(|| format!("{}", path.display()))
    }

    /// Sets one key from a JSON value, checking its type.
    pub fn set(&mut self, key: &str, v: &Value) -> Result<()> {
        let r = if key == "optimizer" {
            Variant::from_json(v).map(|o| self.set_optimizer(o))
        } else if let Some(k) = run_key(key) {
            (k.set)(self, v)
        } else if let Some(s) = setting(key) {
            (s.set)(&mut self.hyper, v)
        } else {
            bail!("{}", self.unknown_key(key))
        };
        r.with_context(|| format!("key `{}`", cut(key)))
    }

    /// The error for an unknown key: the key it most likely misspells, or else the keys
    /// this config's optimizer reads (every optimizer's are in `train --help`).
    fn unknown_key(&self, key: &str) -> String {
        let all: Vec<&str> = KEYS.iter().chain(RECORDED_KEYS.iter()).copied().collect();
        if let Some(k) = crate::names::closest(key, &all) {
            return format!("unknown key `{}`; did you mean `{k}`?", cut(key));
        }
        let own: Vec<&str> = RUN_KEYS
            .iter()
            .map(|k| k.key)
            .chain(self.optimizer.spec().keys.iter().copied())
            .collect();
        format!(
            "unknown key `{}`; a config of {} has the keys {} (config.json also records {}; `rprop-lab train --help` lists every optimizer's)",
            cut(key),
            self.optimizer,
            own.join(", "),
            RECORDED_KEYS.join(", ")
        )
    }

    /// Sets one key from command-line text (`--epochs 5`): numbers are read as JSON numbers,
    /// anything else as a string.
    pub fn set_str(&mut self, key: &str, text: &str) -> Result<()> {
        // A list may be written without brackets: --hidden 200,150,100.
        let list = format!("[{}]", text.trim_matches(|c| c == '[' || c == ']'));
        let v = serde_json::from_str::<Value>(text)
            .ok()
            .filter(|v| v.is_number() || v.is_boolean() || v.is_array())
            // One hidden layer may be given as one number: --hidden 128.
            .map(|v| match v {
                Value::Number(_) if key == "hidden" => Value::Array(vec![v]),
                v => v,
            })
            .or_else(|| {
                (key == "hidden")
                    .then(|| serde_json::from_str::<Value>(&list).ok())
                    .flatten()
            })
            // A decimal serde_json gives up on (100,000 digits) is still a number.
            .or_else(|| {
                text.trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
            })
            .unwrap_or_else(|| Value::String(text.to_string()));
        self.set(key, &v)
    }

    /// The network for data with `inputs` pixels and `classes` classes.
    pub fn layout(&self, inputs: usize, classes: usize) -> Layout {
        // validate() has checked the list, so this cannot fail for a checked config.
        Layout::with_hidden(inputs, &self.hidden, classes)
            .unwrap_or_else(|| Layout::new(inputs, 128, classes))
    }

    /// Checks values that are well-typed but make no sense; errors name the key.
    pub fn validate(&self) -> Result<()> {
        for k in RUN_KEYS {
            (k.check)(self).map_err(|e| anyhow!("key `{}`: {e}", k.key))?;
        }
        self.check_sets()?;
        self.hyper.validate()?;
        self.check_settings_read()
    }

    /// The checks of `key` alone: its type was checked when it was set; this is its own
    /// range (a run key's, or a setting's rule), with the other keys as they are. A sweep
    /// checks the ends of a key's range with it; the checks across keys
    /// ([`Config::validate`]) wait for a whole trial's settings.
    pub fn check_key(&self, key: &str) -> Result<()> {
        let named = |e: String| anyhow!(e).context(format!("key `{key}`"));
        if let Some(k) = RUN_KEYS.iter().find(|k| k.key == key) {
            (k.check)(self).map_err(named)?;
        }
        if let Some(s) = setting(key) {
            let shown = crate::limits::show_value(&(s.get)(&self.hyper));
            if let Some(e) = s.check.error((s.get_f64)(&self.hyper), &shown, &self.hyper) {
                return Err(named(e));
            }
        }
        Ok(())
    }

    /// The checks across the set and batch sizes.
    fn check_sets(&self) -> Result<()> {
        let (train, eval) = (self.train_set_size, self.eval_set_size);
        if train + eval > MAX_LEARN {
            bail!(
                "key `eval_set_size`: train_set_size + eval_set_size = {} exceeds the {MAX_LEARN} learning images",
                train + eval
            );
        }
        if self.train_batch_size == 0 || self.train_batch_size > train {
            bail!(
                "key `train_batch_size`: must be 1..=train_set_size ({train}), got {}",
                self.train_batch_size
            );
        }
        if self.eval_batch_size != eval {
            bail!(
                "key `eval_batch_size`: {} differs from the set size {eval}; the eval pass is one batch",
                self.eval_batch_size
            );
        }
        if self.optimizer.traits().full_batch_only && self.minibatch() {
            bail!(
                "key `train_batch_size`: {} runs full batch only; drop train_batch_size or set it to train_set_size ({train})",
                self.optimizer
            );
        }
        Ok(())
    }

    /// Refuses a setting the optimizer does not read, set away from its default: it would
    /// be ignored without a word (`weight_decay` with lbfgs, `momentum` with Rprop). A key
    /// at its default is accepted, so configs that list every key still load.
    fn check_settings_read(&self) -> Result<()> {
        let (v, defaults) = (self.optimizer, self.optimizer.defaults());
        for s in SETTINGS.iter().filter(|s| !v.spec().keys.contains(&s.key)) {
            let (x, d) = ((s.get)(&self.hyper), (s.get)(&defaults));
            if x != d {
                let users: Vec<&str> = Variant::ALL
                    .iter()
                    .filter(|u| u.spec().keys.contains(&s.key))
                    .map(|u| u.name())
                    .collect();
                bail!(
                    "key `{}`: {v} does not read it, so {} would be ignored; drop the key or leave it at {} (it is read by {})",
                    s.key,
                    show(&x),
                    show(&d),
                    users.join(", ")
                );
            }
        }
        Ok(())
    }

    /// Bytes a run of this config needs, roughly, on `inputs`-pixel data: per parameter the
    /// weights, best weights, gradient, optimizer state and device copies (8 floats), the
    /// copies a save reads back (weights and the 3-float state: 4 more; the files are
    /// written from them a block at a time, see `checkpoint::serialize_to`) and 1 to spare, per
    /// train-batch and eval row the activations, deltas and workspaces of every layer (4
    /// floats per unit), and 256 MiB for the data and the rest (measured: 784-128-10 full
    /// batch uses 0.36 GB, estimated 0.39; 784-1024-10 uses 1.18 GB, estimated 1.28).
    pub fn memory_estimate(&self, inputs: usize, classes: usize) -> u128 {
        let mut widths = vec![inputs as u128];
        widths.extend(self.hidden.iter().map(|&h| h as u128));
        widths.push(classes as u128);
        let params: u128 = widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum();
        let units: u128 = widths[1..].iter().sum();
        let rows = (self.train_batch_size + self.eval_set_size) as u128;
        // The train and eval sets: their pixels and a normalized f32 copy (5 bytes each).
        let data = 5 * (self.train_set_size + self.eval_set_size) as u128 * inputs as u128;
        // L-BFGS: its history (2 x history_size vectors), direction, last gradient and a
        // step's temporaries (line-search points, y, s, q): all of the weights' size, on
        // the host (CPU backend, or a GPU state's read-back) and on the device.
        let history = if self.optimizer.is_multi_eval() {
            4 * params * (2 * self.hyper.history_size as u128 + 10)
        } else {
            0
        };
        4 * (13 * params + 4 * rows * units) + data + history + (256 << 20)
    }

    /// Refuses, before anything is allocated, a network and batch that cannot fit in the
    /// memory this process may use (RAM, or a lower `ulimit -v`), naming the keys to change.
    pub fn check_memory(&self, inputs: usize, classes: usize) -> Result<()> {
        let need = self.memory_estimate(inputs, classes);
        let limit = memory_limit();
        if need > limit as u128 {
            // Whole MiB, need rounded up and limit down: the two never print equal.
            let mib = 1u128 << 20;
            bail!(
                "key `hidden`: a {inputs}-{}-{classes} network trained on batches of {} rows (plus {} eval rows) needs about {} MiB, more than the {} MiB this process may use; use smaller `hidden` layers or a smaller `train_batch_size`",
                self.hidden
                    .iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>()
                    .join("-"),
                self.train_batch_size,
                self.eval_set_size,
                need.div_ceil(mib),
                limit as u128 / mib
            );
        }
        Ok(())
    }

    /// The config as JSON, as config.json holds it: the run keys, the chosen optimizer's
    /// settings (not every optimizer's) and the recorded settings that are set.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for k in RUN_KEYS {
            if let Some(v) = (k.get)(self) {
                m.insert(k.key.to_string(), v);
            }
        }
        let keys = self.optimizer.spec().keys;
        for s in SETTINGS.iter().filter(|s| keys.contains(&s.key)) {
            m.insert(s.key.to_string(), (s.get)(&self.hyper));
        }
        for k in RECORDED {
            if let Some(v) = (k.get)(self) {
                m.insert(k.key.to_string(), v);
            }
        }
        Value::Object(m)
    }
}

/// A JSON value as cut text for an error line.
fn show(v: &Value) -> String {
    crate::limits::show_value(v)
}

/// A string that must be one of `allowed`.
fn one_of(v: &Value, allowed: &[&str]) -> Result<String> {
    let s = as_str(v)?;
    if !allowed.contains(&s) {
        bail!("expected one of {}, got {}", allowed.join(", "), show(v));
    }
    Ok(s.to_string())
}

fn as_str(v: &Value) -> Result<&str> {
    v.as_str()
        .ok_or_else(|| anyhow!("expected a string, got {}", show(v)))
}

fn as_u64(v: &Value) -> Result<u64> {
    v.as_u64()
        .ok_or_else(|| anyhow!("expected a non-negative integer, got {}", show(v)))
}

fn as_usize(v: &Value) -> Result<usize> {
    let x = as_u64(v)?;
    usize::try_from(x).map_err(|_| anyhow!("{x} is too large"))
}
