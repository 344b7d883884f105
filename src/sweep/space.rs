//! A search-space file (`sweeps/*.json`): a base config, one distribution per key it
//! varies, and the search. Read and checked whole before anything runs; every error names
//! the file and the key.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};

use crate::config::{cut, Config};
use crate::limits::NoDuplicateKeys;
use crate::optim::Variant;

/// Largest space file read (as a config).
pub const MAX_SPACE: u64 = crate::fsio::MAX_CONFIG;
/// Most values one key may take: a `choice` list, or `values_per_key`.
pub const MAX_VALUES: usize = 10_000;

/// How one key's values are drawn.
#[derive(Clone, Debug, PartialEq)]
pub enum Dist {
    /// `{"log_uniform": [lo, hi]}`: uniform in log(x), 0 < lo < hi.
    LogUniform(f64, f64),
    /// `{"uniform": [lo, hi]}`: uniform in x.
    Uniform(f64, f64),
    /// `{"int": [lo, hi]}`: a whole number in lo..=hi, each equally likely (`hidden`: one
    /// layer of that size).
    Int(i64, i64),
    /// `{"choice": [a, b, ...]}`: one of the listed values (optimizer names, layer lists,
    /// numbers, ...), each equally likely.
    Choice(Vec<Value>),
}

/// The distributions' names in a space file.
pub const DISTS: [&str; 4] = ["log_uniform", "uniform", "int", "choice"];

/// How the trials' settings are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// Every trial draws every key afresh.
    Random,
    /// Every combination of `values_per_key` evenly spaced values per key (log-spaced for
    /// `log_uniform`; every choice).
    Grid,
    /// The report's procedure: `values_per_key` values drawn per key, then N random
    /// combinations of that grid, none repeated.
    GridSample,
}

impl Search {
    pub const NAMES: [&'static str; 3] = ["random", "grid", "grid-sample"];

    pub fn name(self) -> &'static str {
        match self {
            Search::Random => "random",
            Search::Grid => "grid",
            Search::GridSample => "grid-sample",
        }
    }

    pub fn parse(s: &str) -> Option<Search> {
        match s {
            "random" => Some(Search::Random),
            "grid" => Some(Search::Grid),
            "grid-sample" => Some(Search::GridSample),
            _ => None,
        }
    }
}

/// Where the trials' settings start from.
#[derive(Clone, Debug, PartialEq)]
pub enum Base {
    /// No base: the report's settings of the trial's optimizer.
    Report,
    /// A config file (any file `--config` accepts), a relative path taken from the space
    /// file's folder; its text is kept (sweep.json records it).
    File { path: PathBuf, text: String },
    /// A config written in the space file itself.
    Inline(Map<String, Value>),
}

/// A parsed search-space file.
#[derive(Clone, Debug)]
pub struct Space {
    /// The file as given (messages name it so).
    pub path: PathBuf,
    /// The file's text (sweep.json records it; a resume compares it).
    pub text: String,
    pub base: Base,
    pub search: Search,
    pub values_per_key: Option<usize>,
    /// The trials to run when `--trials` is not given (random, grid-sample).
    pub trials: Option<usize>,
    /// The keys varied, in name order (the sampling's order).
    pub keys: Vec<(String, Dist)>,
}

/// The fields a space file may hold.
const FIELDS: [&str; 6] = [
    "about",
    "base",
    "search",
    "values_per_key",
    "trials",
    "keys",
];

impl Space {
    /// Reads and checks a space file; errors name it (and the key).
    pub fn load(path: &Path) -> Result<Space> {
        let text = crate::fsio::read_text(path, "space", MAX_SPACE)?;
        Space::parse(path, text).with_context(|| path.display().to_string())
    }

    /// Parses a space file's text (`path` locates a relative base config).
    pub fn parse(path: &Path, text: String) -> Result<Space> {
        let value: Value =
            serde_json::from_str(&text).map_err(|e| anyhow!("malformed JSON: {e}"))?;
        serde_json::from_str::<NoDuplicateKeys>(&text).map_err(|e| anyhow!("{e}"))?;
        let Value::Object(top) = value else {
            bail!("expected a JSON object with `keys` (the distributions) and `search`");
        };
        if let Some(k) = top.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            bail!(
                "unknown key `{}` (a space file holds {})",
                cut(k),
                FIELDS.join(", ")
            );
        }
        let search = match top.get("search") {
            None => bail!("missing key `search` ({})", Search::NAMES.join(", ")),
            Some(v) => v.as_str().and_then(Search::parse).ok_or_else(|| {
                anyhow!(
                    "key `search`: expected one of {}, got {}",
                    Search::NAMES.join(", "),
                    cut(&v.to_string())
                )
            })?,
        };
        let count = |key: &str, max: usize| -> Result<Option<usize>> {
            let Some(v) = top.get(key) else {
                return Ok(None);
            };
            match v.as_u64() {
                Some(n) if n >= 1 && n <= max as u64 => Ok(Some(n as usize)),
                _ => bail!(
                    "key `{key}`: expected a whole number in 1..={max}, got {}",
                    cut(&v.to_string())
                ),
            }
        };
        let values_per_key = count("values_per_key", MAX_VALUES)?;
        let trials = count("trials", super::MAX_TRIALS)?;
        let keys = match top.get("keys") {
            Some(Value::Object(m)) if !m.is_empty() => m
                .iter()
                .map(|(k, v)| Ok((k.clone(), Dist::parse(v).with_context(|| key_of(k))?)))
                .collect::<Result<Vec<_>>>()?,
            Some(Value::Object(_)) => bail!("key `keys`: names no key to vary"),
            Some(v) => bail!(
                "key `keys`: expected an object of distributions such as {{\"learning_rate\": {{\"log_uniform\": [1e-5, 1]}}}}, got {}",
                cut(&v.to_string())
            ),
            None => bail!("missing key `keys` (the distribution of each key varied)"),
        };
        let base = Base::parse(path, top.get("base"))?;
        Ok(Space {
            path: path.to_path_buf(),
            text,
            base,
            search,
            values_per_key,
            trials,
            keys,
        })
    }

    /// Whether the space varies `key`.
    pub fn varies(&self, key: &str) -> bool {
        self.keys.iter().any(|(k, _)| k == key)
    }

    /// The base config before the trial's settings: the base file's, the inline one, or the
    /// report's for `optimizer` (the option's, else the first the space lists).
    pub fn base_config(&self, optimizer: Option<&str>) -> Result<Config> {
        let first_choice = self.keys.iter().find_map(|(k, d)| match (k.as_str(), d) {
            ("optimizer", Dist::Choice(v)) => v.first().and_then(Value::as_str),
            _ => None,
        });
        let hint = optimizer.or(first_choice);
        let named = |what: &str| -> Result<Variant> {
            let name = hint.ok_or_else(|| {
                anyhow!("no optimizer: {what} names none; set `optimizer` there, vary it in `keys`, or pass --optimizer")
            })?;
            name.parse::<Variant>()
                .map_err(|e: String| anyhow!("key `optimizer`: {}", cut(&e)))
        };
        match &self.base {
            Base::Report => Ok(Config::report(named("the space has no `base` and")?)),
            Base::File { path, text } => {
                Config::parse_unchecked(text).with_context(|| path.display().to_string())
            }
            Base::Inline(map) => {
                let mut map = map.clone();
                if !map.contains_key("optimizer") {
                    let v = named("the inline `base`")?;
                    map.insert("optimizer".into(), Value::String(v.name().into()));
                }
                Config::parse_unchecked(&Value::Object(map).to_string()).context("key `base`")
            }
        }
    }
}

/// The context of an error in key `k`'s distribution.
fn key_of(k: &str) -> String {
    format!("key `{}`", cut(k))
}

impl Base {
    fn parse(space: &Path, v: Option<&Value>) -> Result<Base> {
        match v {
            None => Ok(Base::Report),
            Some(Value::Object(m)) => Ok(Base::Inline(m.clone())),
            Some(Value::String(s)) => {
                let rel = Path::new(s);
                let path = if rel.is_absolute() {
                    rel.to_path_buf()
                } else {
                    space.parent().unwrap_or(Path::new("")).join(rel)
                };
                let text = crate::fsio::read_text(&path, "config", crate::fsio::MAX_CONFIG)
                    .context("key `base`")?;
                Ok(Base::File { path, text })
            }
            Some(v) => bail!(
                "key `base`: expected a config file's path (relative to the space file) or a config object, got {}",
                cut(&v.to_string())
            ),
        }
    }
}

/// `[lo, hi]` of a distribution: two finite numbers.
fn pair(v: &Value) -> Result<(f64, f64)> {
    let bad = || {
        anyhow!(
            "expected a range [lo, hi] of two numbers, got {}",
            cut(&v.to_string())
        )
    };
    match v.as_array().map(|a| &a[..]) {
        Some([a, b]) => Ok((a.as_f64().ok_or_else(bad)?, b.as_f64().ok_or_else(bad)?)),
        _ => Err(bad()),
    }
}

impl Dist {
    /// Parses `{"NAME": ARGS}`, checking the range or list.
    pub fn parse(v: &Value) -> Result<Dist> {
        let Some((name, args)) = v
            .as_object()
            .filter(|m| m.len() == 1)
            .and_then(|m| m.iter().next())
        else {
            bail!(
                "expected one distribution such as {{\"log_uniform\": [1e-5, 1]}} ({}), got {}",
                DISTS.join(", "),
                cut(&v.to_string())
            );
        };
        let d = match name.as_str() {
            "log_uniform" => {
                let (lo, hi) = pair(args)?;
                if lo <= 0.0 {
                    bail!("log_uniform [{lo}, {hi}]: the range must be positive (lo > 0)");
                }
                Dist::LogUniform(lo, hi)
            }
            "uniform" => {
                let (lo, hi) = pair(args)?;
                Dist::Uniform(lo, hi)
            }
            "int" => {
                let whole = |x: &Value| x.as_i64();
                match args.as_array().map(|a| &a[..]) {
                    Some([a, b]) if whole(a).is_some() && whole(b).is_some() => {
                        Dist::Int(whole(a).unwrap_or(0), whole(b).unwrap_or(0))
                    }
                    _ => bail!(
                        "int: expected a range [lo, hi] of two whole numbers, got {}",
                        cut(&args.to_string())
                    ),
                }
            }
            "choice" => Dist::Choice(choices(args)?),
            other => bail!(
                "unknown distribution `{}` (one of {})",
                cut(other),
                DISTS.join(", ")
            ),
        };
        d.check_range()?;
        Ok(d)
    }

    /// Refuses an empty or inverted range.
    fn check_range(&self) -> Result<()> {
        let (lo, hi) = match *self {
            Dist::LogUniform(lo, hi) | Dist::Uniform(lo, hi) => (lo, hi),
            Dist::Int(lo, hi) => (lo as f64, hi as f64),
            Dist::Choice(_) => return Ok(()),
        };
        if lo > hi {
            bail!("{}: the range is inverted ({lo} > {hi})", self.show());
        }
        if lo == hi {
            bail!(
                "{}: the range is empty (lo = hi); set a fixed value in `base` instead",
                self.show()
            );
        }
        Ok(())
    }

    /// The distribution's name.
    pub fn name(&self) -> &'static str {
        match self {
            Dist::LogUniform(..) => "log_uniform",
            Dist::Uniform(..) => "uniform",
            Dist::Int(..) => "int",
            Dist::Choice(_) => "choice",
        }
    }

    /// The distribution as the space file writes it.
    pub fn to_json(&self) -> Value {
        let args = match self {
            Dist::LogUniform(a, b) | Dist::Uniform(a, b) => serde_json::json!([a, b]),
            Dist::Int(a, b) => serde_json::json!([a, b]),
            Dist::Choice(v) => Value::Array(v.clone()),
        };
        serde_json::json!({ self.name(): args })
    }

    /// Short text for messages: `log_uniform [1e-7, 0.01]`.
    pub fn show(&self) -> String {
        let args = match self {
            Dist::LogUniform(a, b) | Dist::Uniform(a, b) => format!("[{a}, {b}]"),
            Dist::Int(a, b) => format!("[{a}, {b}]"),
            Dist::Choice(v) => cut(&Value::Array(v.clone()).to_string()),
        };
        format!("{} {args}", self.name())
    }

    /// The values a range check tries: both ends, or every choice.
    pub fn ends(&self) -> Vec<Value> {
        match self {
            Dist::LogUniform(a, b) | Dist::Uniform(a, b) => vec![number(*a), number(*b)],
            Dist::Int(a, b) => vec![(*a).into(), (*b).into()],
            Dist::Choice(v) => v.clone(),
        }
    }

    /// Whether the values are drawn evenly in log(x) (a chart's log axis).
    pub fn is_log(&self) -> bool {
        matches!(self, Dist::LogUniform(..))
    }

    /// Whether the values are numbers on a line (else categories: a chart's labels).
    pub fn is_numeric(&self) -> bool {
        !matches!(self, Dist::Choice(_))
    }
}

/// A `choice` list: 1 to [`MAX_VALUES`] distinct values.
fn choices(args: &Value) -> Result<Vec<Value>> {
    let Some(list) = args.as_array() else {
        bail!(
            "choice: expected a list of values, got {}",
            cut(&args.to_string())
        );
    };
    if list.is_empty() {
        bail!("choice []: the list is empty");
    }
    if list.len() > MAX_VALUES {
        bail!(
            "choice: {} values, more than the {MAX_VALUES} a key may take",
            list.len()
        );
    }
    for (i, v) in list.iter().enumerate() {
        if list[..i].contains(v) {
            bail!("choice: {} is listed twice", cut(&v.to_string()));
        }
    }
    Ok(list.clone())
}

/// A finite f64 as JSON (every number a range holds came from JSON, so it is finite).
pub fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}
