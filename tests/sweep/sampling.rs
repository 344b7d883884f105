//! Sampling: deterministic from the seed, in range, log-uniform shown to be log-uniform by
//! the share of draws per decade, grids, and grid-sample's combinations without repeats.

use std::collections::HashSet;
use std::path::Path;

use rprop_lab::rng::Rng;
use rprop_lab::sweep::sample::{draw, draw_all, drawn_values, grid};
use rprop_lab::sweep::space::{Dist, Space};
use serde_json::{json, Value};

fn parse(text: &str) -> Space {
    Space::parse(Path::new("space.json"), text.to_string()).unwrap()
}

#[test]
fn the_same_seed_draws_the_same_trials_and_another_seed_others() {
    let s = parse(crate::RANDOM);
    let a = draw_all(&s, 7, None).unwrap();
    assert_eq!(a.len(), 6);
    assert_eq!(a, draw_all(&s, 7, None).unwrap());
    assert_ne!(a, draw_all(&s, 8, None).unwrap());
    // --trials wins over the file's count, and a longer run starts with the same trials.
    let b = draw_all(&s, 7, Some(9)).unwrap();
    assert_eq!(&b[..6], &a[..]);
}

#[test]
fn every_draw_is_in_its_range_and_of_its_kind() {
    let mut rng = Rng::new(1);
    for _ in 0..5000 {
        let x = draw(&Dist::LogUniform(1e-7, 1e-2), &mut rng)
            .as_f64()
            .unwrap();
        assert!((1e-7..=1e-2).contains(&x), "{x}");
        let u = draw(&Dist::Uniform(-2.0, 3.0), &mut rng).as_f64().unwrap();
        assert!((-2.0..=3.0).contains(&u), "{u}");
        let i = draw(&Dist::Int(32, 400), &mut rng);
        assert!(
            i.is_i64() && (32..=400).contains(&i.as_i64().unwrap()),
            "{i}"
        );
        let c = draw(
            &Dist::Choice(vec![json!([128]), json!([200, 100])]),
            &mut rng,
        );
        assert!(c == json!([128]) || c == json!([200, 100]), "{c}");
    }
    // Both ends of an int range are drawn.
    let ints: HashSet<i64> = (0..2000)
        .map(|_| draw(&Dist::Int(1, 4), &mut rng).as_i64().unwrap())
        .collect();
    assert_eq!(ints, HashSet::from([1, 2, 3, 4]));
}

// 20,000 draws over 1e-7..1e-2: each of the five decades holds a fifth of them (log-uniform),
// where a uniform draw would put 90% in the last decade.
#[test]
fn log_uniform_puts_the_same_share_in_every_decade() {
    let mut rng = Rng::new(3);
    let n = 20_000;
    let mut per_decade = [0usize; 5];
    for _ in 0..n {
        let x = draw(&Dist::LogUniform(1e-7, 1e-2), &mut rng)
            .as_f64()
            .unwrap();
        per_decade[((x.log10() + 7.0).floor() as usize).min(4)] += 1;
    }
    // Chi-square with 4 degrees of freedom: 18.5 is its 0.999 quantile.
    let expected = n as f64 / 5.0;
    let chi2: f64 = per_decade
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum();
    assert!(chi2 < 18.5, "{per_decade:?}: chi-square {chi2}");
    // The uniform distribution over the same range fails the same check.
    let mut uniform = [0usize; 5];
    for _ in 0..n {
        let x = draw(&Dist::Uniform(1e-7, 1e-2), &mut rng).as_f64().unwrap();
        uniform[((x.log10() + 7.0).floor().max(0.0) as usize).min(4)] += 1;
    }
    assert!(uniform[4] > n * 85 / 100, "{uniform:?}");
}

#[test]
fn a_grid_spans_each_range_end_to_end() {
    let g = grid(&Dist::LogUniform(1e-5, 1.0), 6);
    let x: Vec<f64> = g.iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(x[0], 1e-5);
    assert_eq!(x[5], 1.0);
    for w in x.windows(2) {
        assert!((w[1] / w[0] - 10.0).abs() < 1e-9, "{x:?}");
    }
    let ints = grid(&Dist::Int(1, 3), 10);
    assert_eq!(ints, vec![json!(1), json!(2), json!(3)]);
    let u = grid(&Dist::Uniform(0.0, 1.0), 5);
    assert_eq!(u[2], json!(0.5));
}

// The bundled initial-step space: 40 learning rates per optimizer, the same for each.
#[test]
fn a_grid_search_runs_every_combination_once() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/initial-step.json");
    let s = Space::load(&path).unwrap();
    let trials = draw_all(&s, 0, None).unwrap();
    assert_eq!(trials.len(), 160);
    let distinct: HashSet<String> = trials.iter().map(|t| format!("{t:?}")).collect();
    assert_eq!(distinct.len(), 160);
    let opt = s.keys.iter().position(|(k, _)| k == "optimizer").unwrap();
    let lr = s
        .keys
        .iter()
        .position(|(k, _)| k == "learning_rate")
        .unwrap();
    for name in ["irprop-plus", "rprop-minus", "adam", "sgd"] {
        let mut rates: Vec<f64> = (trials.iter())
            .filter(|t| t[opt] == json!(name))
            .map(|t| t[lr].as_f64().unwrap())
            .collect();
        rates.sort_by(f64::total_cmp);
        assert_eq!(rates.len(), 40, "{name}");
        assert_eq!((rates[0], rates[39]), (1e-5, 1.0), "{name}");
    }
    // A grid takes no trial count.
    let e = draw_all(&s, 0, Some(10)).unwrap_err().to_string();
    assert!(e.contains("every combination"), "{e}");
}

// The report's procedure: 20 values per key drawn, 100 distinct combinations of the grid.
#[test]
fn grid_sample_draws_k_values_per_key_and_distinct_combinations() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/sgd-l2.json");
    let s = Space::load(&path).unwrap();
    let trials = draw_all(&s, 0, None).unwrap();
    assert_eq!(trials.len(), 100);
    let distinct: HashSet<String> = trials.iter().map(|t| format!("{t:?}")).collect();
    assert_eq!(distinct.len(), 100, "a combination repeats");
    for (k, (name, d)) in s.keys.iter().enumerate() {
        let values: HashSet<String> = trials.iter().map(|t| t[k].to_string()).collect();
        // At most the 20 drawn values, nearly all of them used by 100 trials.
        assert!(
            (12..=20).contains(&values.len()),
            "{name}: {}",
            values.len()
        );
        for v in trials.iter().map(|t| &t[k]) {
            let x = v.as_f64().unwrap();
            let ok = match d {
                Dist::LogUniform(lo, hi) => (*lo..=*hi).contains(&x),
                Dist::Int(lo, hi) => v.is_i64() && (*lo as f64..=*hi as f64).contains(&x),
                _ => false,
            };
            assert!(ok, "{name}: {v}");
        }
    }
    // The same drawn values feed every trial: a key's values are its k draws.
    let mut rng = Rng::new(5);
    let v = drawn_values(&Dist::Int(32, 400), 20, &mut rng);
    assert_eq!(v.len(), 20);
    assert!(v.windows(2).all(|w| w[0].as_i64() < w[1].as_i64()), "{v:?}");
}

// A grid of 10^16 combinations: 10,000 distinct ones picked in bounded time and memory.
#[test]
fn grid_sample_of_a_huge_grid_stays_cheap() {
    let keys: Vec<String> = ["learning_rate", "eta_minus", "eta_plus", "step_min"]
        .iter()
        .map(|k| {
            let d = match *k {
                "eta_minus" => json!({"uniform": [0.1, 0.9]}),
                "eta_plus" => json!({"uniform": [1.1, 2.0]}),
                _ => json!({"log_uniform": [1e-6, 1e-2]}),
            };
            format!("\"{k}\": {d}")
        })
        .collect();
    let text = format!(
        r#"{{"base": {{"optimizer": "rprop-minus"}}, "search": "grid-sample", "values_per_key": 10000, "keys": {{{}}}}}"#,
        keys.join(", ")
    );
    let s = parse(&text);
    let t0 = std::time::Instant::now();
    let trials = draw_all(&s, 1, Some(10_000)).unwrap();
    assert_eq!(trials.len(), 10_000);
    let distinct: HashSet<String> = trials.iter().map(|t| format!("{t:?}")).collect();
    assert_eq!(distinct.len(), 10_000);
    assert!(t0.elapsed().as_secs() < 20, "{:?}", t0.elapsed());
    // More trials than a small grid holds is an error, not an endless search.
    let small = parse(
        r#"{"search": "grid-sample", "values_per_key": 3, "keys": {"optimizer": {"choice": ["sgd", "adam"]}, "learning_rate": {"log_uniform": [1e-3, 1]}}}"#,
    );
    let e = draw_all(&small, 0, Some(7)).unwrap_err().to_string();
    assert!(e.contains("only 6 combinations"), "{e}");
    assert_eq!(draw_all(&small, 0, Some(6)).unwrap().len(), 6);
}

// `choice` of optimizers and of layer lists builds each trial's config.
#[test]
fn choice_works_for_the_optimizer_and_the_hidden_layers() {
    use rprop_lab::sweep::plan::Builder;
    let s = parse(crate::RANDOM);
    let overrides = vec![("epochs".to_string(), "3".to_string())];
    let b = Builder::new(&s, &overrides).unwrap();
    let trials = draw_all(&s, 0, Some(40)).unwrap();
    let mut seen = HashSet::new();
    for (i, t) in trials.iter().enumerate() {
        let cfg = b.config(i + 1, t).unwrap();
        assert_eq!(cfg.epochs, 3);
        seen.insert((cfg.optimizer.name(), cfg.hidden.clone()));
        let v: Value = cfg.to_json();
        // Each optimizer keeps its own defaults for what the space does not vary.
        if cfg.optimizer.name() == "adam" {
            assert!(
                v.get("beta1").is_some() && v.get("eta_minus").is_none(),
                "{v}"
            );
        }
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
}
