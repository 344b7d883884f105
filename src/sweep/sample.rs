//! The trials' settings, drawn from a [`Space`] with the project's portable generator
//! ([`crate::rng::Rng`]): the same seed gives the same trials.

use std::collections::HashSet;

use anyhow::{bail, Result};
use serde_json::Value;

use super::space::{number, Dist, Search, Space, MAX_VALUES};
use super::MAX_TRIALS;
use crate::rng::Rng;

/// One trial's values, one per key of the space, in the space's key order.
pub type Draw = Vec<Value>;

/// The settings of every trial of `space` under `seed`: `trials` (the command line's, else
/// the space's) for random and grid-sample, every combination for grid. Errors say which
/// count is wrong.
pub fn draw_all(space: &Space, seed: u64, trials: Option<usize>) -> Result<Vec<Draw>> {
    let mut rng = Rng::new(seed);
    match space.search {
        Search::Random => {
            let n = count(space, trials)?;
            Ok((0..n)
                .map(|_| space.keys.iter().map(|(_, d)| draw(d, &mut rng)).collect())
                .collect())
        }
        Search::Grid => {
            if let Some(n) = trials {
                bail!(
                    "--trials {n}: a grid search runs every combination of its values; use `\"search\": \"grid-sample\"` for a subset"
                );
            }
            if let Some(n) = space.trials {
                bail!(
                    "key `trials`: {n}: a grid search runs every combination of its values; drop the key or use grid-sample"
                );
            }
            let k = per_key(space)?;
            let values: Vec<Vec<Value>> = space.keys.iter().map(|(_, d)| grid(d, k)).collect();
            let total = combinations(space, &values)?;
            if total > MAX_TRIALS as u128 {
                bail!(
                    "key `values_per_key`: the grid has {total} combinations, more than the {MAX_TRIALS} trials a sweep may run; use fewer values or grid-sample"
                );
            }
            Ok((0..total).map(|i| decode(i, &values)).collect())
        }
        Search::GridSample => {
            let n = count(space, trials)?;
            let k = per_key(space)?;
            let values: Vec<Vec<Value>> = (space.keys.iter())
                .map(|(_, d)| drawn_values(d, k, &mut rng))
                .collect();
            let total = combinations(space, &values)?;
            if n as u128 > total {
                bail!(
                    "--trials {n}: the grid of {k} values per key has only {total} combinations; ask for at most {total}"
                );
            }
            let picks = distinct(n, total, &mut rng);
            Ok(picks.into_iter().map(|i| decode(i, &values)).collect())
        }
    }
}

/// The trials to run: `--trials`, else the space's `trials`, in 1..=[`MAX_TRIALS`].
fn count(space: &Space, trials: Option<usize>) -> Result<usize> {
    match trials.or(space.trials) {
        None => bail!(
            "how many trials? pass --trials N or set `trials` in the space file ({} search)",
            space.search.name()
        ),
        Some(n) if (1..=MAX_TRIALS).contains(&n) => Ok(n),
        Some(n) => bail!("--trials {n}: must be 1..={MAX_TRIALS}"),
    }
}

/// `values_per_key`, which grid and grid-sample need for any key that is not a choice.
fn per_key(space: &Space) -> Result<usize> {
    match space.values_per_key {
        Some(k) if k >= 2 => Ok(k),
        Some(k) => bail!("key `values_per_key`: {k}: a grid needs at least 2 values per key"),
        None if space.keys.iter().all(|(_, d)| matches!(d, Dist::Choice(_))) => Ok(2),
        None => bail!(
            "missing key `values_per_key` (the values per key of a {} search)",
            space.search.name()
        ),
    }
}

/// How many combinations the per-key values make; an error past 2^128.
fn combinations(space: &Space, values: &[Vec<Value>]) -> Result<u128> {
    let mut total: u128 = 1;
    for v in values {
        total = match total.checked_mul(v.len() as u128) {
            Some(t) => t,
            None => bail!(
                "the grid of {} keys has more than 2^128 combinations",
                space.keys.len()
            ),
        };
    }
    Ok(total)
}

/// Combination `i` of the per-key values (the last key varies fastest).
fn decode(mut i: u128, values: &[Vec<Value>]) -> Draw {
    let mut out = vec![Value::Null; values.len()];
    for (slot, v) in out.iter_mut().zip(values).rev() {
        let n = v.len() as u128;
        *slot = v[(i % n) as usize].clone();
        i /= n;
    }
    out
}

/// `n` distinct numbers of `0..total`, in random order (Floyd's sampling, then a shuffle):
/// O(n) whatever the grid's size.
fn distinct(n: usize, total: u128, rng: &mut Rng) -> Vec<u128> {
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    for j in total - n as u128..total {
        let t = rng.below(j + 1);
        let pick = if seen.contains(&t) { j } else { t };
        seen.insert(pick);
        out.push(pick);
    }
    for i in (1..out.len()).rev() {
        let j = rng.below(i as u128 + 1) as usize;
        out.swap(i, j);
    }
    out
}

/// One value of `d`.
pub fn draw(d: &Dist, rng: &mut Rng) -> Value {
    match *d {
        Dist::LogUniform(lo, hi) => {
            let (a, b) = (lo.ln(), hi.ln());
            number((a + (b - a) * rng.unit_f64()).exp().clamp(lo, hi))
        }
        Dist::Uniform(lo, hi) => number((lo + (hi - lo) * rng.unit_f64()).clamp(lo, hi)),
        Dist::Int(lo, hi) => {
            let span = (hi as i128 - lo as i128 + 1) as u128;
            Value::from((lo as i128 + rng.below(span) as i128) as i64)
        }
        Dist::Choice(ref v) => v[rng.below(v.len() as u128) as usize].clone(),
    }
}

/// `k` evenly spaced values of `d` from one end to the other (log-spaced for log_uniform,
/// rounded and without repeats for int; every choice).
pub fn grid(d: &Dist, k: usize) -> Vec<Value> {
    let at = |i: usize| i as f64 / (k - 1) as f64;
    match *d {
        Dist::LogUniform(lo, hi) => (0..k)
            .map(|i| match i {
                0 => number(lo),
                _ if i == k - 1 => number(hi),
                _ => number((lo.ln() + (hi.ln() - lo.ln()) * at(i)).exp()),
            })
            .collect(),
        Dist::Uniform(lo, hi) => (0..k).map(|i| number(lo + (hi - lo) * at(i))).collect(),
        Dist::Int(lo, hi) => {
            let span = hi as i128 - lo as i128;
            let mut v: Vec<i64> = (0..k)
                .map(|i| (lo as i128 + (span as f64 * at(i)).round() as i128) as i64)
                .collect();
            v.dedup();
            v.into_iter().map(Value::from).collect()
        }
        Dist::Choice(ref v) => v.clone(),
    }
}

/// `k` values drawn from `d` (the report's "20 values drawn per hyper-parameter"), sorted,
/// none repeated: every whole number of an int range with at most `k` of them; every choice.
pub fn drawn_values(d: &Dist, k: usize, rng: &mut Rng) -> Vec<Value> {
    let k = k.min(MAX_VALUES);
    match *d {
        Dist::Choice(ref v) => v.clone(),
        Dist::Int(lo, hi) if ((hi as i128 - lo as i128 + 1) as u128) <= k as u128 => {
            (lo..=hi).map(Value::from).collect()
        }
        Dist::Int(..) => {
            let mut seen = HashSet::new();
            while seen.len() < k {
                seen.insert(draw(d, rng).as_i64().unwrap_or(0));
            }
            let mut v: Vec<i64> = seen.into_iter().collect();
            v.sort_unstable();
            v.into_iter().map(Value::from).collect()
        }
        _ => {
            let mut v: Vec<f64> = (0..k)
                .map(|_| draw(d, rng).as_f64().unwrap_or(0.0))
                .collect();
            v.sort_by(f64::total_cmp);
            v.dedup();
            v.into_iter().map(number).collect()
        }
    }
}
