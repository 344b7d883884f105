//! A sweep's plan: every trial's config, built from the space's base, the options given for
//! every trial and the trial's drawn settings, each checked by the config's own validation
//! before anything runs; and `OUT/sweep.json`, the record of it all that every executor
//! (and `status`, `report`, `run-trial`) reads.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::sample::Draw;
use super::space::{Base, Dist, Space};
use super::{trial_name, MAX_TRIALS, SWEEP_JSON};
use crate::config::{cut, Config};

/// Largest sweep.json read: 10,000 trials of a config each fit well within it.
pub const MAX_RECORD: u64 = 256 << 20;

/// What applies to every trial besides the space: the data, the backend and the options
/// given on the command line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// The data folder, absolute (a cluster's nodes read the same path).
    pub data_dir: PathBuf,
    /// Config keys given as options (`--epochs 10`), as text, in the order applied; the
    /// backend options are among them as the keys config.json records (`backend`,
    /// `adapter`, `matmul_kernel`, `cpu_matmul`).
    pub overrides: Vec<(String, String)>,
    /// `--save-every N` of every trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_every: Option<u64>,
}

/// A file's path and its text, as the sweep read them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: PathBuf,
    pub text: String,
}

/// One varied key and its distribution (as the space file writes it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub key: String,
    pub dist: Value,
}

/// One trial: its number, folder, drawn settings (as its config reads them back) and its
/// whole config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    pub index: usize,
    pub dir: String,
    pub settings: Map<String, Value>,
    pub config: Value,
}

/// `OUT/sweep.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepRecord {
    /// The space file as read: its path (absolute) and text; a resume compares them.
    pub space: FileRecord,
    /// The base config file, when the space names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<FileRecord>,
    /// The sampling seed (`--seed`).
    pub seed: u64,
    pub search: String,
    pub keys: Vec<KeyRecord>,
    /// How trials are ranked: `eval-acc` or `eval-loss`.
    pub metric: String,
    /// How many of the best trials are scored on the test set.
    pub test_top: usize,
    pub options: TrainOptions,
    /// When the plan was written (seconds since the Unix epoch).
    pub created_unix: f64,
    pub trials: Vec<TrialRecord>,
}

/// `--key-name` for config key `key_name` (as the command line spells it).
fn flag(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

/// Sets `key` of `cfg` to a drawn value (`hidden`: one number is one layer).
fn set_value(cfg: &mut Config, key: &str, v: &Value) -> Result<()> {
    match v {
        Value::Number(_) if key == "hidden" => cfg.set(key, &Value::Array(vec![v.clone()])),
        _ => cfg.set(key, v),
    }
}

/// The configs of a space's trials, before their settings: the base with the options.
pub struct Builder<'a> {
    space: &'a Space,
    overrides: &'a [(String, String)],
    base: Config,
}

impl<'a> Builder<'a> {
    /// Reads the base config and checks that the options leave the varied keys alone and
    /// that every end of every range (every choice) passes its key's own check.
    pub fn new(space: &'a Space, overrides: &'a [(String, String)]) -> Result<Builder<'a>> {
        let ctx = || space.path.display().to_string();
        if let Some((k, _)) = overrides.iter().find(|(k, _)| space.varies(k)) {
            bail!(
                "{}: the space {} varies `{k}`; an option cannot fix it for every trial (drop it, or remove the key from the space's `keys`)",
                flag(k),
                space.path.display()
            );
        }
        let optimizer = overrides.iter().find(|(k, _)| k == "optimizer");
        let base = space
            .base_config(optimizer.map(|(_, v)| v.as_str()))
            .with_context(ctx)?;
        let b = Builder {
            space,
            overrides,
            base,
        };
        for (key, d) in &space.keys {
            for v in d.ends() {
                b.end_check(key, d, &v).with_context(ctx)?;
            }
        }
        Ok(b)
    }

    /// One end of `key`'s range (or one choice) alone on the base: its type and own check.
    fn end_check(&self, key: &str, d: &Dist, v: &Value) -> Result<()> {
        let mut cfg = self.with_options()?;
        let what = || format!("key `{}`: {}: {}", cut(key), d.show(), cut(&v.to_string()));
        set_value(&mut cfg, key, v).map_err(|e| anyhow!("{}: {}", what(), root(&e)))?;
        cfg.check_key(key)
            .map_err(|e| anyhow!("{}: {}", what(), root(&e)))
    }

    /// The base with the options applied (not yet checked).
    fn with_options(&self) -> Result<Config> {
        let mut cfg = self.base.clone();
        // The optimizer first: switching it resets the settings still at its defaults.
        let (opt, rest): (Vec<_>, Vec<_>) =
            self.overrides.iter().partition(|(k, _)| k == "optimizer");
        for (k, v) in opt.into_iter().chain(rest) {
            cfg.set_str(k, v).with_context(|| flag(k))?;
        }
        Ok(cfg)
    }

    /// Trial `index`'s config: base, options, drawn settings, then every check.
    pub fn config(&self, index: usize, draw: &Draw) -> Result<Config> {
        let ctx = || format!("{}: trial {index}", self.space.path.display());
        let mut cfg = self.with_options().with_context(ctx)?;
        let full_train = self.base.train_batch_size == self.base.train_set_size;
        let full_eval = self.base.eval_batch_size == self.base.eval_set_size;
        let keys = &self.space.keys;
        let order = (keys.iter().zip(draw)).filter(|((k, _), _)| k == "optimizer");
        let rest = (keys.iter().zip(draw)).filter(|((k, _), _)| k != "optimizer");
        for ((k, _), v) in order.chain(rest) {
            set_value(&mut cfg, k, v).with_context(ctx)?;
        }
        // A full batch stays full when only the set size changes, as with `train`.
        let given = |k: &str| self.space.varies(k) || self.overrides.iter().any(|(o, _)| o == k);
        if full_train && !given("train_batch_size") {
            cfg.train_batch_size = cfg.train_set_size;
        }
        if full_eval && !given("eval_batch_size") {
            cfg.eval_batch_size = cfg.eval_set_size;
        }
        cfg.validate().with_context(|| {
            let settings: Vec<String> = (keys.iter().zip(draw))
                .map(|((k, _), v)| format!("{k} {}", cut(&v.to_string())))
                .collect();
            format!("{} ({})", ctx(), settings.join(", "))
        })?;
        Ok(cfg)
    }
}

/// The innermost message of an error (its key context is added again by the caller).
fn root(e: &anyhow::Error) -> String {
    e.chain().last().map(|c| c.to_string()).unwrap_or_default()
}

/// The settings a trial's config records for the varied keys (as it reads them back: a
/// learning rate drawn as an f64 is the f32 the run uses).
pub fn settings_of(space: &Space, cfg: &Config) -> Map<String, Value> {
    let json = cfg.to_json();
    space
        .keys
        .iter()
        .map(|(k, _)| (k.clone(), json.get(k).cloned().unwrap_or(Value::Null)))
        .collect()
}

impl SweepRecord {
    /// The record of a new sweep of `configs` (trial 1 first).
    pub fn new(
        space: &Space,
        seed: u64,
        (metric, test_top): (&str, usize),
        options: TrainOptions,
        configs: &[Config],
    ) -> SweepRecord {
        let n = configs.len();
        let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        SweepRecord {
            space: FileRecord {
                path: abs(&space.path),
                text: space.text.clone(),
            },
            base: match &space.base {
                Base::File { path, text } => Some(FileRecord {
                    path: abs(path),
                    text: text.clone(),
                }),
                _ => None,
            },
            seed,
            search: space.search.name().into(),
            keys: (space.keys.iter())
                .map(|(k, d)| KeyRecord {
                    key: k.clone(),
                    dist: d.to_json(),
                })
                .collect(),
            metric: metric.into(),
            test_top,
            options,
            created_unix: super::now_unix(),
            trials: (configs.iter().enumerate())
                .map(|(i, c)| TrialRecord {
                    index: i + 1,
                    dir: trial_name(i + 1, n),
                    settings: settings_of(space, c),
                    config: c.to_json(),
                })
                .collect(),
        }
    }

    /// Reads `OUT/sweep.json`, checking what the executors rely on: trials numbered from
    /// 1 in order, each in the folder its number names.
    pub fn load(out: &Path) -> Result<SweepRecord> {
        let path = out.join(SWEEP_JSON);
        if !path.exists() {
            bail!(
                "{}: no sweep here (no {SWEEP_JSON}); start one with `rprop-lab sweep --space FILE --out {}`",
                out.display(),
                out.display()
            );
        }
        let text = crate::fsio::read_text(&path, "sweep record", MAX_RECORD)?;
        let r: SweepRecord = serde_json::from_str(&text)
            .map_err(|e| anyhow!("{}: not a sweep record: {e}", path.display()))?;
        let n = r.trials.len();
        if n == 0 || n > MAX_TRIALS {
            bail!("{}: holds {n} trials (1..={MAX_TRIALS})", path.display());
        }
        for (i, t) in r.trials.iter().enumerate() {
            if t.index != i + 1 || t.dir != trial_name(i + 1, n) {
                bail!(
                    "{}: trial {} is recorded as number {} in {:?}; expected {} in {}",
                    path.display(),
                    i + 1,
                    t.index,
                    cut(&t.dir),
                    i + 1,
                    trial_name(i + 1, n)
                );
            }
        }
        Ok(r)
    }

    /// Writes `OUT/sweep.json` atomically.
    pub fn save(&self, out: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        crate::fsio::write_atomic(&out.join(SWEEP_JSON), text.as_bytes())
    }

    /// Trial `index`'s config, as recorded (checked again).
    pub fn config(&self, index: usize) -> Result<Config> {
        let t = self.trial(index)?;
        Config::parse(&t.config.to_string()).with_context(|| format!("{SWEEP_JSON}: trial {index}"))
    }

    /// Trial `index` (1-based), or an error naming the range.
    pub fn trial(&self, index: usize) -> Result<&TrialRecord> {
        index
            .checked_sub(1)
            .and_then(|i| self.trials.get(i))
            .ok_or_else(|| {
                anyhow!(
                    "--index {index}: the sweep has trials 1..={}",
                    self.trials.len()
                )
            })
    }

    /// The folder of trial `index` in `out`.
    pub fn trial_dir(&self, out: &Path, index: usize) -> PathBuf {
        out.join(trial_name(index, self.trials.len()))
    }

    /// The varied keys with their distributions.
    pub fn dists(&self) -> Vec<(String, Option<Dist>)> {
        (self.keys.iter())
            .map(|k| (k.key.clone(), Dist::parse(&k.dist).ok()))
            .collect()
    }

    /// Writes each trial's config.json where its folder has none yet (a new sweep, or one
    /// whose plan was cut short), so `train --config OUT/trial-NNN/config.json` reruns
    /// any trial alone, started or not.
    pub fn write_trial_configs(&self, out: &Path) -> Result<()> {
        for t in &self.trials {
            let dir = out.join(&t.dir);
            let path = dir.join("config.json");
            if path.exists() {
                continue;
            }
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("{}: cannot create folder", dir.display()))?;
            let text = serde_json::to_string_pretty(&t.config)?;
            crate::fsio::write_atomic(&path, text.as_bytes())?;
        }
        Ok(())
    }

    /// Refuses a resume whose space file (or base config) changed since the sweep began,
    /// naming the first key that differs. A space file gone is no change: the record
    /// holds its text.
    pub fn check_unchanged(&self) -> Result<()> {
        let path = &self.space.path;
        let Ok(now) = crate::fsio::read_text(path, "space", super::space::MAX_SPACE) else {
            return Ok(());
        };
        let parse = |t: &str| serde_json::from_str::<Value>(t).unwrap_or(Value::Null);
        if let Some(key) = first_difference(&parse(&self.space.text), &parse(&now), "") {
            bail!(
                "{}: key `{key}` changed since the sweep began; a resume keeps the sweep's space (restore the file, or start a new sweep with --out)",
                path.display()
            );
        }
        if let Some(base) = &self.base {
            let changed = crate::fsio::read_text(&base.path, "config", crate::fsio::MAX_CONFIG)
                .is_ok_and(|t| parse(&t) != parse(&base.text));
            if changed {
                bail!(
                    "{}: key `base`: the base config {} changed since the sweep began; a resume keeps the sweep's settings (restore it, or start a new sweep with --out)",
                    path.display(),
                    base.path.display()
                );
            }
        }
        Ok(())
    }
}

/// The first key path (`keys.learning_rate`) where two JSON values differ.
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    let name = |k: &str| {
        if at.is_empty() {
            k.to_string()
        } else {
            format!("{at}.{k}")
        }
    };
    match (a, b) {
        // A varied key is named whole, not by the parts of its distribution.
        _ if at.starts_with("keys.") => (a != b).then(|| cut(at)),
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => first_difference(p, q, &name(k)),
                _ => Some(cut(&name(k))),
            })
        }
        _ if a != b => Some(cut(if at.is_empty() {
            "(the whole file)"
        } else {
            at
        })),
        _ => None,
    }
}
