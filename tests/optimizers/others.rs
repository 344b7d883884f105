//! The optimizers beyond Rprop: SGD, RMSprop and Adam against real torch.optim steps
//! (fixture from tools/torch_optimizers.py, torch 2.15), Quickprop and weight decay by hand.

use rprop_lab::cpu;
use rprop_lab::optim::{self, Elem, Hyper, OptimState, StepScalars, Variant};

fn f32s(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| f32::from_bits(u32::from_str_radix(h.as_str().unwrap(), 16).unwrap()))
        .collect()
}

fn hyper_of(name: &str, kw: &serde_json::Value) -> (Variant, Hyper) {
    let f = |k: &str, d: f32| kw.get(k).and_then(|v| v.as_f64()).map_or(d, |v| v as f32);
    let betas = kw.get("betas").and_then(|b| b.as_array());
    let h = Hyper {
        lr: f("lr", 1e-3),
        momentum: f("momentum", 0.0),
        nesterov: kw
            .get("nesterov")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        weight_decay: f("weight_decay", 0.0),
        alpha: kw.get("alpha").and_then(|v| v.as_f64()).unwrap_or(0.99),
        eps: f("eps", 1e-8),
        beta1: betas.map_or(0.9, |b| b[0].as_f64().unwrap()),
        beta2: betas.map_or(0.999, |b| b[1].as_f64().unwrap()),
        ..Hyper::default()
    };
    (name.parse().unwrap(), h)
}

/// Distance in units in the last place between two finite f32s.
fn ulps(a: f32, b: f32) -> u32 {
    let key = |x: f32| {
        let i = x.to_bits() as i32;
        if i < 0 {
            i32::MIN - i
        } else {
            i
        }
    };
    key(a).abs_diff(key(b))
}

#[test]
fn sgd_rmsprop_adam_match_torch() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch_optimizers.json");
    let fx: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    for case in fx["cases"].as_array().unwrap() {
        let name = case["optimizer"].as_str().unwrap();
        let (v, h) = hyper_of(name, &case["hyper"]);
        let mut w = f32s(&case["w0"]);
        let mut st = OptimState::for_variant(w.len(), v, &h);
        let (mut worst, mut same, mut total) = (0u32, 0usize, 0usize);
        for (t, (g, want)) in case["grads"]
            .as_array()
            .unwrap()
            .iter()
            .zip(case["after"].as_array().unwrap())
            .enumerate()
        {
            cpu::optimizer(v, &h, &mut w, &f32s(g), &mut st, 1.0);
            let want = f32s(want);
            for (i, (&a, &b)) in w.clone().iter().zip(&want).enumerate() {
                let d = ulps(a, b);
                worst = worst.max(d);
                same += usize::from(d == 0);
                total += 1;
                // SGD: exact. RMSprop and Adam: the same operations (torch's fused
                // multiply-adds included) leave a rare 1-element difference we could not
                // attribute; allow 1e-5 relative or 1e-7 absolute (a weight that a step
                // brings near zero keeps the step's absolute rounding).
                let close = (a - b).abs() <= 1e-5 * b.abs() + 1e-7;
                assert!(
                    d == 0 || (v != Variant::Sgd && close),
                    "{name} {}: step {} w[{i}] = {a:e}, torch {b:e} ({d} ulps)",
                    case["hyper"],
                    t + 1
                );
            }
            // Keep following torch, so one differing element does not compound.
            w = want;
        }
        eprintln!(
            "{name} {}: {same}/{total} weights bit-identical, worst {worst} ulps",
            case["hyper"]
        );
        assert!(
            same * 100 >= total * 98,
            "{name}: only {same}/{total} bit-identical"
        );
    }
}

#[test]
fn quickprop_hand_computed_on_a_parabola() {
    // E = (w - 3)^2 / 2, g = w - 3, lr = 1/2, mu = 1.75 (shrink = 7/11).
    let h = Hyper {
        lr: 0.5,
        ..Hyper::default()
    };
    let mut e = Elem {
        w: 0.0,
        step: 0.0,
        prev_grad: 0.0,
        prev_change: 0.0,
    };
    let sc = StepScalars::new(&h, 1, 0.0, 0.0);
    let step = |e: &mut Elem| {
        let g = e.w - 3.0;
        optim::update(Variant::Quickprop, e, g, &h, &sc);
    };
    // 1: no previous change: a gradient step 1/2 * 3.
    step(&mut e);
    assert_eq!((e.w, e.prev_change, e.prev_grad), (1.5, 1.5, -3.0));
    // 2: slope 1.5 still positive: gradient term 0.75; 1.5 < 7/11 * 3, so the parabola
    //    step 1.5 * 1.5 / (3 - 1.5) = 1.5: dw = 2.25.
    step(&mut e);
    assert_eq!((e.w, e.prev_change), (3.75, 2.25));
    // 3: slope -0.75 (overshot): no gradient term; parabola 2.25 * -0.75 / (1.5 + 0.75) =
    //    -0.75 lands on the minimum exactly.
    step(&mut e);
    assert_eq!((e.w, e.prev_change), (3.0, -0.75));
    // At the minimum the slope is 0: the parabola step is 0.
    step(&mut e);
    assert_eq!(e.w, 3.0);
}

#[test]
fn quickprop_growth_is_capped_at_mu() {
    // Slope growing (s >= s_prev): the step grows by the maximum factor mu, plus the
    // gradient term.
    let h = Hyper {
        lr: 0.25,
        mu: 2.0,
        ..Hyper::default()
    };
    let mut e = Elem {
        w: 0.0,
        step: 0.0,
        prev_grad: -1.0,
        prev_change: 0.5,
    };
    optim::update(
        Variant::Quickprop,
        &mut e,
        -2.0,
        &h,
        &StepScalars::new(&h, 1, 0.0, 0.0),
    );
    assert_eq!(e.prev_change, 0.25 * 2.0 + 2.0 * 0.5);
}

#[test]
fn weight_decay_is_added_to_the_gradient_for_every_optimizer() {
    // With g = 0, the effective gradient is weight_decay * w = 0.25 * 2 > 0, so every
    // optimizer moves the weight down; without decay none of them moves it.
    // L-BFGS's step is its backend's (several passes): `cpu::optimizer` leaves it alone.
    for &v in Variant::ALL.iter().filter(|v| !v.is_multi_eval()) {
        for (wd, moves) in [(0.25f32, true), (0.0, false)] {
            let h = Hyper {
                weight_decay: wd,
                ..Hyper::default()
            };
            let mut st = OptimState::for_variant(1, v, &h);
            let mut w = vec![2.0f32];
            cpu::optimizer(v, &h, &mut w, &[0.0], &mut st, 1.0);
            assert_eq!(w[0] < 2.0, moves, "{v} wd={wd}: w = {}", w[0]);
            assert!(w[0] <= 2.0);
        }
    }
    // SGD by hand: w -= lr * (g + wd * w) = 2 - 0.125 * (1 + 0.5 * 2) = 1.75.
    let h = Hyper {
        lr: 0.125,
        weight_decay: 0.5,
        ..Hyper::default()
    };
    let mut e = Elem::new(2.0, &h);
    optim::update(
        Variant::Sgd,
        &mut e,
        1.0,
        &h,
        &StepScalars::new(&h, 1, 0.0, 0.0),
    );
    assert_eq!(e.w, 2.0 - 0.125 * 2.0);
}

#[test]
fn adam_first_step_moves_by_lr() {
    // Bias correction makes Adam's first step lr * sign(g) (up to eps).
    let h = Hyper {
        lr: 0.01,
        ..Hyper::default()
    };
    let mut st = OptimState::for_variant(3, Variant::Adam, &h);
    let mut w = vec![0.0f32; 3];
    cpu::optimizer(Variant::Adam, &h, &mut w, &[3.0, -0.5, 0.0], &mut st, 1.0);
    assert!(
        (w[0] + 0.01).abs() < 1e-7 && (w[1] - 0.01).abs() < 1e-7 && w[2] == 0.0,
        "{w:?}"
    );
    assert_eq!(st.t, 1);
}
