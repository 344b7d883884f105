//! The fused optimizer kernel against `cpu::optimizer`: bit for bit for the Rprop family,
//! within 1e-5 for every other per-weight optimizer; an unregistered code writes NaN.

use rprop_lab::backend::Backend;
use rprop_lab::config::Config;
use rprop_lab::cpu;
use rprop_lab::gpu::{GpuBackend, Strategy};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, OptimState, Spec, Variant};
use rprop_lab::rng::Rng;

use crate::common::gpu::GpuTest;
use crate::support::{bits, dataset, opts};

pub const TESTS: &[GpuTest] = &[
    (
        "optimizer::rprop_family_is_bit_identical_to_the_cpu",
        rprop_family_is_bit_identical_to_the_cpu,
    ),
    (
        "optimizer::every_per_weight_optimizer_matches_the_cpu",
        every_per_weight_optimizer_matches_the_cpu,
    ),
    (
        "optimizer::an_unregistered_code_writes_nan",
        an_unregistered_code_writes_nan,
    ),
];

/// Random state with every case of the rules: zero / equal / opposite signs, zero
/// gradients, steps near the clamps.
fn random_state(len: usize, h: &Hyper, seed: u64) -> (Vec<f32>, OptimState, Vec<f32>) {
    let mut r = Rng::new(seed);
    let mut pick = |zero: f32| {
        let u = r.unit();
        if u < zero {
            0.0
        } else {
            r.uniform(-1e-3, 1e-3)
        }
    };
    let w: Vec<f32> = (0..len).map(|_| pick(0.05) * 100.0).collect();
    let mut st = OptimState::new(len, h);
    st.prev_grad = (0..len).map(|_| pick(0.3)).collect();
    st.prev_change = (0..len).map(|_| pick(0.2) * 10.0).collect();
    let g: Vec<f32> = (0..len).map(|_| pick(0.1)).collect();
    let mut r2 = Rng::new(seed + 1);
    st.step = (0..len)
        .map(|i| match i % 5 {
            0 => h.step_min,
            1 => h.step_max,
            2 => h.step_max / 1.1,
            _ => r2.uniform(1e-6, 1e-1),
        })
        .collect();
    (w, st, g)
}

/// Zeroes the gradient's padding between tensors (as the real gradient buffer's stays).
fn zero_padding(l: Layout, grads: &mut [f32]) {
    for t in l.tensors() {
        let end = t.offset + t.len();
        let next = l
            .tensors()
            .iter()
            .map(|u| u.offset)
            .find(|&o| o > t.offset)
            .unwrap_or(l.total());
        grads[end..next].fill(0.0);
    }
}

/// One optimizer step on the GPU and on the CPU from the same state: every buffer bit for bit.
fn assert_bit_identical_step(
    g: &mut GpuBackend,
    v: Variant,
    h: &Hyper,
    seed: u64,
    prev_loss: f32,
    loss: f32,
) {
    let l = Layout::MNIST;
    let (w, mut st, mut grads) = random_state(l.total(), h, seed);
    st.prev_loss = prev_loss;
    zero_padding(l, &mut grads);
    let params = Params { layout: l, data: w };
    g.set_state(&params, &st).unwrap();
    g.debug_rprop(&grads, loss).unwrap();
    let (gp, gs) = (g.params().unwrap(), g.state().unwrap());
    let mut cp = params.data.clone();
    let mut cs = st.clone();
    cpu::optimizer(v, h, &mut cp, &grads, &mut cs, loss);
    assert_eq!(bits(&gp.data), bits(&cp), "{v} weights (seed {seed})");
    assert_eq!(bits(&gs.step), bits(&cs.step), "{v} steps (seed {seed})");
    let what = format!("{v} (seed {seed})");
    assert_eq!(bits(&gs.prev_grad), bits(&cs.prev_grad), "{what} prev_grad");
    assert_eq!(
        bits(&gs.prev_change),
        bits(&cs.prev_change),
        "{what} prev_change"
    );
    assert_eq!(
        gs.prev_loss.to_bits(),
        cs.prev_loss.to_bits(),
        "{what} prev_loss"
    );
    // The case mix really exercised both branches of the sign test.
    let flips = (0..l.total())
        .filter(|&i| grads[i] * st.prev_grad[i] < 0.0)
        .count();
    assert!(
        flips > 1000,
        "too few sign changes in the test data: {flips}"
    );
}

fn rprop_family_is_bit_identical_to_the_cpu() {
    let set = dataset(4, 28, 28, 10, 3);
    for &v in Variant::ALL.iter().filter(|v| v.traits().bit_exact) {
        let h = v.defaults();
        let p = Params::zeros(Layout::MNIST);
        let mut g = GpuBackend::new(&set, &set, p, v, h, &opts(Strategy::Register)).unwrap();
        // Loss down then up (iRprop+ backtracks only when it goes up), from a finite E_{t-1}.
        for (seed, prev_loss, loss) in [
            (11, 2.0f32, 1.5f32),
            (12, 1.5, 1.75),
            (13, f32::INFINITY, 2.3),
        ] {
            assert_bit_identical_step(&mut g, v, &h, seed, prev_loss, loss);
        }
    }
}

/// Every registered optimizer at its bundled config's settings, and with weight decay; then
/// the settings the configs leave at their defaults. L-BFGS has no per-weight update kernel
/// (its step: lbfgs.rs).
fn optimizer_cases() -> Vec<(Variant, Hyper)> {
    let base = Hyper::default();
    let mut cases: Vec<(Variant, Hyper)> = Vec::new();
    for &v in Variant::ALL.iter().filter(|v| !v.is_multi_eval()) {
        let path = format!("{}/configs/{v}.json", env!("CARGO_MANIFEST_DIR"));
        let h = Config::load(std::path::Path::new(&path)).unwrap().hyper;
        cases.push((v, h));
        cases.push((
            v,
            Hyper {
                weight_decay: 0.01,
                ..h
            },
        ));
    }
    let sgd = Hyper {
        lr: 0.05,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 0.01,
        ..base
    };
    let rmsprop = Hyper {
        lr: 0.01,
        momentum: 0.9,
        alpha: 0.9,
        weight_decay: 0.01,
        ..base
    };
    let adam = Hyper {
        lr: 0.01,
        beta1: 0.8,
        beta2: 0.99,
        eps: 1e-6,
        weight_decay: 0.01,
        ..base
    };
    cases.extend([
        (Variant::Sgd, sgd),
        (Variant::Rmsprop, rmsprop),
        (Variant::Adam, adam),
    ]);
    cases
}

/// |g| in [0.01, 0.1] against weight decay terms <= 1e-3: no cancellation, which a GPU that
/// does not fuse `fma` (lavapipe) would turn into large relative errors.
fn random_grads(len: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..len)
        .map(|_| {
            let m = r.uniform(0.01, 0.1);
            if r.unit() < 0.5 {
                -m
            } else {
                m
            }
        })
        .collect()
}

/// Three steps of optimizer `v` on the GPU and the CPU from the same weights.
fn assert_optimizer_matches(v: Variant, h: Hyper) {
    let l = Layout::MNIST;
    let set = dataset(4, 28, 28, 10, 3);
    let mut g = GpuBackend::new(
        &set,
        &set,
        Params::zeros(l),
        v,
        h,
        &opts(Strategy::Register),
    )
    .unwrap();
    let (w, _, _) = random_state(l.total(), &h, 21);
    let params = Params { layout: l, data: w };
    let mut cp = params.data.clone();
    let mut cs = OptimState::for_variant(l.total(), v, &h);
    g.set_state(&params, &cs).unwrap();
    // Three steps, so momentum buffers, moments and Quickprop's parabola all engage.
    for seed in [31u64, 32, 33] {
        let grads = random_grads(l.total(), seed);
        g.debug_rprop(&grads, 1.0).unwrap();
        cpu::optimizer(v, &h, &mut cp, &grads, &mut cs, 1.0);
    }
    let (gp, gs) = (g.params().unwrap(), g.state().unwrap());
    assert_eq!(gs.t, 3);
    let (mut same, mut worst) = (0, 0f32);
    for (a, b) in gp.data.iter().zip(&cp) {
        same += usize::from(a.to_bits() == b.to_bits());
        // Relative, but absolute near zero: a step that brings a weight near zero keeps
        // the step's rounding.
        worst = worst.max((a - b).abs() / (b.abs() + 1e-2));
    }
    eprintln!(
        "{v}: {same}/{} weights bit-identical, worst diff {worst:e}",
        cp.len()
    );
    // The same f32 operations, but a GPU compiler may fuse a multiply-add (or not) and
    // round a division or square root its own way: 1e-5 relative.
    assert!(worst <= 1e-5, "{v}: worst difference {worst:e}");
    if v.traits().bit_exact {
        assert_eq!(
            same,
            cp.len(),
            "{v}: Rprop stays bit-identical with weight decay"
        );
    }
    for (a, b) in gs.step.iter().zip(&cs.step) {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1e-12),
            "{v} state: {a} vs {b}"
        );
    }
}

fn every_per_weight_optimizer_matches_the_cpu() {
    for (v, h) in optimizer_cases() {
        assert_optimizer_matches(v, h);
    }
}

/// A code with no case in the dispatch writes NaN, so a forgotten case cannot run another
/// optimizer unnoticed.
fn an_unregistered_code_writes_nan() {
    const UNREGISTERED: Spec = Spec {
        name: "unregistered",
        wgsl_case: 999,
        ..rprop_lab::optim::sgd::SGD
    };
    let l = Layout::MNIST;
    let set = dataset(4, 28, 28, 10, 3);
    let v = Variant(&UNREGISTERED);
    let h = Hyper::default();
    let mut g = GpuBackend::new(
        &set,
        &set,
        Params::zeros(l),
        v,
        h,
        &opts(Strategy::Register),
    )
    .unwrap();
    let (w, st, grads) = random_state(l.total(), &h, 5);
    g.set_state(&Params { layout: l, data: w }, &st).unwrap();
    g.debug_rprop(&grads, 1.0).unwrap();
    let p = g.params().unwrap();
    assert!(p.data.iter().all(|x| x.is_nan()), "weights not NaN");
    assert!(g.state().unwrap().step.iter().all(|x| x.is_nan()));
}
