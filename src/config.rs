//! Run configuration: the report's JSON keys, checked key by key so every error names the
//! key (and the file). Command-line overrides go through the same setter as the file.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};

pub use crate::limits::cut;
use crate::limits::{memory_limit, NoDuplicateKeys};
use crate::model::{Layout, MAX_HIDDEN};
use crate::optim::settings::setting;
use crate::optim::{Hyper, Variant, SETTINGS};

/// The run's own keys (the optimizer's settings follow, from [`SETTINGS`]): the key, the
/// value's name on the command line, and its help text.
pub const RUN_KEYS: [(&str, &str, &str); 9] = [
    (
        "criterion",
        "NAME",
        "Loss function (only \"cross_entropy\")",
    ),
    ("optimizer", "NAME", "The optimizer"),
    (
        "epochs",
        "N",
        "Number of epochs, one pass over the train set each [report: 50]",
    ),
    (
        "train_set_size",
        "N",
        "Training images: the first N learning images [report: 50000]",
    ),
    (
        "train_batch_size",
        "N",
        "Mini-batch size [report: = train-set-size, full batch]",
    ),
    (
        "eval_set_size",
        "N",
        "Eval images: the next N learning images [report: 10000]",
    ),
    ("eval_batch_size", "N", "Must equal eval-set-size"),
    (
        "seed",
        "N",
        "Seed of the weight initialization [default: 0]",
    ),
    (
        "hidden",
        "SIZES",
        "Hidden layer sizes, e.g. 200,150,100 [default: 128]",
    ),
];

/// Every key a config may hold, in the order they are written back.
pub static KEYS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    RUN_KEYS
        .iter()
        .map(|k| k.0)
        .chain(SETTINGS.iter().map(|s| s.key))
        .collect()
});

/// The keys config.json records about where and how a run ran ([`RunSettings`]).
pub const RECORDED_KEYS: [&str; 4] = ["backend", "adapter", "matmul_kernel", "cpu_matmul"];

/// Where a run ran and which matmul strategies it used: config.json records them, so a
/// rerun (`train --config RUN/config.json`), `--resume` and `verify` run the same
/// arithmetic. Command-line options still win over them. None = chosen as for a new run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSettings {
    /// "cpu" or "gpu".
    pub backend: Option<String>,
    /// The GPU adapter's name (matched as `--adapter`).
    pub adapter: Option<String>,
    /// The GPU matmul strategy (`--matmul-kernel`).
    pub matmul_kernel: Option<String>,
    /// The CPU backend's first-layer products, "dense" or "sparse" (`--cpu-matmul`).
    pub cpu_matmul: Option<String>,
}

/// Largest set the learning images can supply (MNIST's 60,000); checked again against the
/// real data once it is loaded.
pub const MAX_LEARN: usize = 60_000;

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Only "cross_entropy" (mean softmax cross-entropy) is supported.
    pub criterion: String,
    pub optimizer: Variant,
    pub epochs: usize,
    pub train_set_size: usize,
    pub train_batch_size: usize,
    pub eval_set_size: usize,
    pub eval_batch_size: usize,
    pub seed: u64,
    /// The optimizer's settings (keys of [`SETTINGS`]).
    pub hyper: Hyper,
    /// Hidden layer sizes [128].
    pub hidden: Vec<usize>,
    /// Where and how the run ran (recorded, not a hyper-parameter).
    pub run: RunSettings,
}

impl Config {
    /// The report's settings for one optimizer, with its own defaults.
    pub fn report(optimizer: Variant) -> Config {
        Config {
            criterion: "cross_entropy".into(),
            optimizer,
            epochs: 50,
            train_set_size: 50_000,
            train_batch_size: 50_000,
            eval_set_size: 10_000,
            eval_batch_size: 10_000,
            seed: 0,
            hyper: optimizer.defaults(),
            hidden: vec![128],
            run: RunSettings::default(),
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
        let mut cfg = Config::report(parse_optimizer(optimizer).context("key `optimizer`")?);
        cfg.set_all(&map)?;
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

    fn set_all(&mut self, map: &Map<String, Value>) -> Result<()> {
        for (k, v) in map {
            self.set(k, v)?;
        }
        Ok(())
    }

    /// Sets one key from a JSON value, checking its type.
    pub fn set(&mut self, key: &str, v: &Value) -> Result<()> {
        let r = match key {
            "criterion" => as_str(v).map(|s| self.criterion = s.to_string()),
            "optimizer" => parse_optimizer(v).map(|o| self.set_optimizer(o)),
            "epochs" => as_usize(v).map(|x| self.epochs = x),
            "train_set_size" => as_usize(v).map(|x| self.train_set_size = x),
            "train_batch_size" => as_usize(v).map(|x| self.train_batch_size = x),
            "eval_set_size" => as_usize(v).map(|x| self.eval_set_size = x),
            "eval_batch_size" => as_usize(v).map(|x| self.eval_batch_size = x),
            "seed" => as_u64(v).map(|x| self.seed = x),
            "hidden" => v
                .as_array()
                .ok_or_else(|| {
                    anyhow!(
                        "expected a list of layer sizes such as [128], got {}",
                        show(v)
                    )
                })
                .and_then(|a| a.iter().map(as_usize).collect::<Result<Vec<_>>>())
                .map(|x| self.hidden = x),
            "backend" => one_of(v, &["cpu", "gpu"]).map(|s| self.run.backend = Some(s)),
            "adapter" => as_str(v).map(|s| self.run.adapter = Some(s.to_string())),
            "matmul_kernel" => as_str(v)
                .and_then(|s| {
                    s.parse::<crate::gpu::Strategy>()
                        .map_err(anyhow::Error::msg)
                })
                .map(|k| self.run.matmul_kernel = Some(k.name().to_string())),
            "cpu_matmul" => one_of(v, &["dense", "sparse"]).map(|s| self.run.cpu_matmul = Some(s)),
            _ => match setting(key) {
                Some(s) => (s.set)(&mut self.hyper, v),
                None => bail!(
                    "unknown key `{}` (known keys: {}, {})",
                    cut(key),
                    KEYS.join(", "),
                    RECORDED_KEYS.join(", ")
                ),
            },
        };
        r.with_context(|| format!("key `{}`", cut(key)))
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
        let key_err = |key: &str, msg: String| Err(anyhow!("key `{key}`: {msg}"));
        if self.criterion != "cross_entropy" {
            return key_err(
                "criterion",
                format!(
                    "{:?} is not supported (only \"cross_entropy\")",
                    cut(&self.criterion)
                ),
            );
        }
        if self.epochs == 0 || self.epochs > 1_000_000 {
            return key_err(
                "epochs",
                format!("must be 1..=1000000, got {}", self.epochs),
            );
        }
        for (key, size) in [
            ("train_set_size", self.train_set_size),
            ("eval_set_size", self.eval_set_size),
        ] {
            if size == 0 || size > MAX_LEARN {
                return key_err(key, format!("must be 1..={MAX_LEARN}, got {size}"));
            }
        }
        if self.train_set_size + self.eval_set_size > MAX_LEARN {
            return key_err(
                "eval_set_size",
                format!(
                    "train_set_size + eval_set_size = {} exceeds the {MAX_LEARN} learning images",
                    self.train_set_size + self.eval_set_size
                ),
            );
        }
        if self.train_batch_size == 0 || self.train_batch_size > self.train_set_size {
            return key_err(
                "train_batch_size",
                format!(
                    "must be 1..=train_set_size ({}), got {}",
                    self.train_set_size, self.train_batch_size
                ),
            );
        }
        if self.eval_batch_size != self.eval_set_size {
            return key_err(
                "eval_batch_size",
                format!(
                    "{} differs from the set size {}; the eval pass is one batch",
                    self.eval_batch_size, self.eval_set_size
                ),
            );
        }
        if self.hidden.is_empty()
            || self.hidden.len() > MAX_HIDDEN
            || self.hidden.iter().any(|&h| h == 0 || h > 65_536)
        {
            return key_err(
                "hidden",
                format!(
                    "must list 1 to {MAX_HIDDEN} layer sizes in 1..=65536, got {}",
                    cut(&format!("{:?}", self.hidden))
                ),
            );
        }
        if self.optimizer.traits().full_batch_only && self.minibatch() {
            return key_err(
                "train_batch_size",
                format!(
                    "{} runs full batch only; drop train_batch_size or set it to train_set_size ({})",
                    self.optimizer, self.train_set_size
                ),
            );
        }
        self.hyper.validate()?;
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

    /// The config as JSON (the same keys a config file holds), saved beside each run.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        let run: [(&str, Value); 9] = [
            ("criterion", self.criterion.clone().into()),
            ("optimizer", self.optimizer.name().into()),
            ("epochs", self.epochs.into()),
            ("train_set_size", self.train_set_size.into()),
            ("train_batch_size", self.train_batch_size.into()),
            ("eval_set_size", self.eval_set_size.into()),
            ("eval_batch_size", self.eval_batch_size.into()),
            ("seed", self.seed.into()),
            ("hidden", serde_json::json!(self.hidden)),
        ];
        for (k, v) in run {
            m.insert(k.to_string(), v);
        }
        for s in SETTINGS {
            m.insert(s.key.to_string(), (s.get)(&self.hyper));
        }
        let run = &self.run;
        let recorded = [
            ("backend", &run.backend),
            ("adapter", &run.adapter),
            ("matmul_kernel", &run.matmul_kernel),
            ("cpu_matmul", &run.cpu_matmul),
        ];
        for (key, value) in recorded {
            if let Some(s) = value {
                m.insert(key.to_string(), Value::String(s.clone()));
            }
        }
        Value::Object(m)
    }
}

fn parse_optimizer(v: &Value) -> Result<Variant> {
    let name = as_str(v)?;
    name.parse::<Variant>().map_err(|e: String| {
        // The parser's message echoes the name; cut it.
        anyhow!("{}", e.replace(name, &cut(name)))
    })
}

/// A JSON value as cut text for an error line.
fn show(v: &Value) -> String {
    cut(&v.to_string())
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
