//! Every GPU kernel against its CPU twin (src/cpu.rs), on odd shapes, both matmul
//! strategies; the fused optimizer kernel bit-identical to cpu::optimizer for Rprop; determinism.
//!
//! Without an adapter these tests are reported as ignored (failed when a GPU is required:
//! `RPROP_LAB_REQUIRE_GPU=1`, set by .ci/run, or CI=true; see tests/common/gpu.rs).

mod common;

use rprop_lab::backend::{Backend, RunStart};
use rprop_lab::config::Config;
use rprop_lab::cpu::{self, CpuBackend};
use rprop_lab::data::{normalize, Dataset};
use rprop_lab::gpu::buffers::blocks::usable;
use rprop_lab::gpu::{GpuBackend, GpuOptions, Strategy};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, OptimState, Spec, Variant};
use rprop_lab::rng::Rng;
use rprop_lab::verify::check_step;

/// MNIST-like synthetic images: ~60% zero pixels, the rest random bytes.
fn dataset(n: usize, rows: usize, cols: usize, classes: usize, seed: u64) -> Dataset {
    let mut r = Rng::new(seed);
    let images = (0..n * rows * cols)
        .map(|_| {
            if r.unit() < 0.6 {
                0
            } else {
                (r.next_u64() % 256) as u8
            }
        })
        .collect();
    let labels = (0..n)
        .map(|_| (r.next_u64() % classes as u64) as u8)
        .collect();
    Dataset {
        images,
        labels,
        rows,
        cols,
    }
}

fn lavapipe(g: &GpuBackend) -> bool {
    g.adapter_info().name.contains("llvmpipe")
}

fn opts(k: Strategy) -> GpuOptions {
    GpuOptions {
        matmul_kernel: Some(k),
        ..Default::default()
    }
}

/// Runs `steps` GPU steps on a layout and checks every intermediate against the CPU
/// computed from the GPU's state (verify's check), then the eval pass metrics.
fn check_layout(
    l: Layout,
    n: usize,
    n_eval: usize,
    variant: Variant,
    o: &GpuOptions,
    steps: usize,
) -> (usize, usize) {
    let train = dataset(n, 1, l.inputs, l.classes, 1);
    let eval = dataset(n_eval, 1, l.inputs, l.classes, 2);
    let params = Params::init(l, 7);
    let h = Hyper::default();
    let mut g = GpuBackend::new(&train, &eval, params, variant, h, o).expect("GPU backend");
    if o.matmul_kernel == Some(Strategy::Texture)
        && l.inputs.is_multiple_of(4)
        && l.hidden.is_multiple_of(4)
    {
        // lavapipe has the 8-lane subgroups the texture kernels need: make sure they ran.
        assert!(
            g.uses_textures() || !lavapipe(&g),
            "texture strategy without textures"
        );
    }
    if o.matmul_kernel == Some(Strategy::Sparse) {
        // Forced, the sparse strategy packs any set whose layout block_z1 takes.
        let one_binding = g.image_chunks().0 == 1;
        assert_eq!(
            g.uses_blocks(),
            usable(l) && one_binding,
            "{l:?}: sparse Z1"
        );
    }
    let x = cpu::normalize_images(&train);
    for step in 0..steps {
        let p = g.params().unwrap();
        let st = g.state().unwrap();
        let dump = g.debug_step().unwrap();
        let diffs = check_step(&p, &st, &dump, &x, &train.labels, variant, &h);
        let bad: Vec<String> = diffs.iter().filter(|d| !d.pass).map(|d| d.line()).collect();
        assert!(
            bad.is_empty(),
            "{l:?} n={n} {:?} step {step}:\n{}",
            o.matmul_kernel,
            bad.join("\n")
        );
    }
    // The eval pass of an epoch: same metrics as the CPU's eval from the updated weights.
    let s = g.epoch().unwrap();
    let p = g.params().unwrap();
    let st = g.state().unwrap();
    let mut c = CpuBackend::with_state(&train, &eval, RunStart::new(p, st, variant, h));
    let e = c.eval();
    assert_eq!(s.eval.samples, e.samples);
    assert!(
        (s.eval.loss - e.loss).abs() <= 1e-5 * e.loss.abs().max(1.0),
        "eval loss gpu {} cpu {}",
        s.eval.loss,
        e.loss
    );
    assert!(
        s.eval.correct.abs_diff(e.correct) <= 1,
        "eval correct gpu {} cpu {}",
        s.eval.correct,
        e.correct
    );
    g.image_chunks()
}

fn kernels_match_cpu_on_odd_shapes() {
    // 4-aligned but not multiples of any tile: the register kernels' edge handling.
    let aligned = Layout::new(20, 12, 10);
    // Not 4-aligned, 13 classes: the generic fallbacks of the register strategy.
    let ragged = Layout::new(21, 13, 13);
    // Hidden in blocks of 16, rows not: the sparse strategy's block_z1 and its edges.
    let blocky = Layout::new(24, 32, 10);
    for k in common::gpu::strategies(&Strategy::ALL) {
        let shapes = [
            (aligned, 1),
            (aligned, 37),
            (ragged, 1),
            (ragged, 67),
            (blocky, 37),
        ];
        for (l, n) in shapes {
            check_layout(l, n, 5, Variant::IrpropPlus, &opts(k), 2);
        }
    }
}

fn kernels_match_cpu_with_chunked_images() {
    // A 1 KiB cap on one image binding splits 300 images of 40 pixels into 12 bindings:
    // Z1 per chunk, dW1 summed over chunks.
    let l = Layout::new(40, 16, 10);
    for k in common::gpu::strategies(&Strategy::ALL) {
        let o = GpuOptions {
            max_binding_bytes: Some(1024),
            ..opts(k)
        };
        let chunks = check_layout(l, 300, 50, Variant::RpropPlus, &o, 2);
        assert_eq!(chunks, (12, 2), "{k}: image bindings per set");
    }
}

fn full_size_step_matches_cpu() {
    // N = 50,000 at the MNIST shape: every kernel, including the forward matmul (and, for
    // the texture strategy, images over several texture layers).
    for k in common::gpu::strategies(&[Strategy::Register, Strategy::Texture, Strategy::Sparse]) {
        check_layout(
            Layout::MNIST,
            50_000,
            1000,
            Variant::IrpropMinus,
            &opts(k),
            1,
        );
    }
}

fn normalization_is_exact() {
    // W1 = identity, b1 = 0: Z1 is the normalized pixels themselves, which must equal
    // data::normalize bit for bit for all 256 values.
    let l = Layout::new(8, 8, 10);
    let images: Vec<u8> = (0..256u32).map(|p| p as u8).collect();
    let train = Dataset {
        images,
        labels: vec![0; 32],
        rows: 1,
        cols: 8,
    };
    let mut p = Params::zeros(l);
    let w1 = l.tensors()[0].offset;
    for j in 0..8 {
        p.data[w1 + j * 8 + j] = 1.0;
    }
    for k in common::gpu::strategies(&Strategy::ALL) {
        let mut g = GpuBackend::new(
            &train,
            &train,
            p.clone(),
            Variant::RpropMinus,
            Hyper::default(),
            &opts(k),
        )
        .unwrap();
        let dump = g.debug_step().unwrap();
        for (i, (&z, &px)) in dump.z1().iter().zip(&train.images).enumerate() {
            assert_eq!(
                z.to_bits(),
                normalize(px).to_bits(),
                "{k}: pixel {px} (#{i})"
            );
        }
    }
}

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

fn bit_exact_optimizers_are_bit_identical_to_cpu() {
    let l = Layout::MNIST;
    let set = dataset(4, 28, 28, 10, 3);
    for &v in Variant::ALL.iter().filter(|v| v.traits().bit_exact) {
        let h = v.defaults();
        let mut g = GpuBackend::new(
            &set,
            &set,
            Params::zeros(l),
            v,
            h,
            &opts(Strategy::Register),
        )
        .unwrap();
        // Loss down then up (iRprop+ backtracks only when it goes up), from a finite E_{t-1}.
        for (seed, prev_loss, loss) in [
            (11, 2.0f32, 1.5f32),
            (12, 1.5, 1.75),
            (13, f32::INFINITY, 2.3),
        ] {
            let (w, mut st, mut grads) = random_state(l.total(), &h, seed);
            st.prev_loss = prev_loss;
            // Padding stays zero (as the real gradient buffer's).
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
            let params = Params { layout: l, data: w };
            g.set_state(&params, &st).unwrap();
            g.debug_rprop(&grads, loss).unwrap();
            let gp = g.params().unwrap();
            let gs = g.state().unwrap();
            let mut cp = params.data.clone();
            let mut cs = st.clone();
            cpu::optimizer(v, &h, &mut cp, &grads, &mut cs, loss);
            let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&gp.data), bits(&cp), "{v} weights (seed {seed})");
            assert_eq!(bits(&gs.step), bits(&cs.step), "{v} steps (seed {seed})");
            assert_eq!(
                bits(&gs.prev_grad),
                bits(&cs.prev_grad),
                "{v} prev_grad (seed {seed})"
            );
            assert_eq!(
                bits(&gs.prev_change),
                bits(&cs.prev_change),
                "{v} prev_change (seed {seed})"
            );
            assert_eq!(
                gs.prev_loss.to_bits(),
                cs.prev_loss.to_bits(),
                "{v} prev_loss"
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
    }
}

fn training_is_deterministic() {
    let l = Layout::new(64, 32, 10);
    let train = dataset(3000, 8, 8, 10, 5);
    let eval = dataset(500, 8, 8, 10, 6);
    for k in common::gpu::strategies(&Strategy::ALL) {
        let run = || {
            let mut g = GpuBackend::new(
                &train,
                &eval,
                Params::init(l, 3),
                Variant::IrpropPlus,
                Hyper::default(),
                &opts(k),
            )
            .unwrap();
            let stats: Vec<_> = (0..3).map(|_| g.epoch().unwrap()).collect();
            let p = g.params().unwrap();
            (
                stats,
                p.data.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
            )
        };
        let (s1, p1) = run();
        let (s2, p2) = run();
        assert_eq!(s1, s2, "{k}: metrics differ between two runs");
        assert_eq!(p1, p2, "{k}: weights differ between two runs");
        // And training did move the weights.
        let p0: Vec<u32> = Params::init(l, 3)
            .data
            .iter()
            .map(|f| f.to_bits())
            .collect();
        assert_ne!(p0, p1);
    }
}

fn restart_is_bit_identical_to_a_fresh_backend() {
    let l = Layout::new(64, 32, 10);
    let train = dataset(700, 8, 8, 10, 21);
    let eval = dataset(90, 8, 8, 10, 22);
    let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    // (stats bits, params bits, state bits) after 3 epochs.
    type Run = (Vec<[u32; 6]>, Vec<u32>, Vec<u32>);
    let run3 = |g: &mut GpuBackend| -> Run {
        let stats = (0..3)
            .map(|_| {
                let s = g.epoch().unwrap();
                [
                    s.train.loss.to_bits(),
                    s.train.correct,
                    s.train.samples,
                    s.eval.loss.to_bits(),
                    s.eval.correct,
                    s.eval.samples,
                ]
            })
            .collect();
        let p = g.params().unwrap();
        let st = g.state().unwrap();
        let mut sb = bits(&st.step);
        sb.extend(bits(&st.prev_grad));
        sb.extend(bits(&st.prev_change));
        sb.push(st.prev_loss.to_bits());
        (stats, bits(&p.data), sb)
    };
    let h2 = Hyper {
        eta_plus: 1.3,
        ..Hyper::default()
    };
    for k in common::gpu::strategies(&Strategy::ALL) {
        // A first run with another variant, hyper-parameters and seed leaves every buffer
        // dirty; the restarted run must not notice.
        let mut g = GpuBackend::new(
            &train,
            &eval,
            Params::init(l, 1),
            Variant::RpropPlus,
            Hyper::default(),
            &opts(k),
        )
        .unwrap();
        run3(&mut g);
        let p2 = Params::init(l, 2);
        let s2 = OptimState::new(p2.data.len(), &h2);
        g.restart(RunStart::new(
            p2.clone(),
            s2.clone(),
            Variant::IrpropPlus,
            h2,
        ))
        .unwrap();
        let restarted = run3(&mut g);
        assert_eq!(g.counters().submissions, 3 + 5, "{k}: counters restart");
        let start = RunStart::new(p2.clone(), s2.clone(), Variant::IrpropPlus, h2);
        let mut fresh = GpuBackend::with_state(&train, &eval, start, &opts(k)).unwrap();
        assert_eq!(g.name(), fresh.name(), "{k}: name");
        let f = run3(&mut fresh);
        assert_eq!(restarted.0, f.0, "{k}: epoch stats differ after restart");
        assert_eq!(restarted.1, f.1, "{k}: weights differ after restart");
        assert_eq!(
            restarted.2, f.2,
            "{k}: optimizer state differs after restart"
        );
        // Another layout is refused.
        let other = Params::init(Layout::new(64, 16, 10), 0);
        let so = OptimState::new(other.data.len(), &h2);
        assert!(g
            .restart(RunStart::new(other, so, Variant::IrpropPlus, h2))
            .is_err());
    }
}

fn one_submission_and_32_bytes_per_epoch() {
    let set = dataset(100, 28, 28, 10, 9);
    let mut g = GpuBackend::new(
        &set,
        &set,
        Params::init(Layout::MNIST, 0),
        Variant::RpropMinus,
        Hyper::default(),
        &opts(Strategy::Register),
    )
    .unwrap();
    let c0 = g.counters();
    for _ in 0..3 {
        g.epoch().unwrap();
    }
    let c1 = g.counters();
    assert_eq!(c1.submissions - c0.submissions, 3);
    assert_eq!(c1.bytes_read - c0.bytes_read, 3 * 32);
}

fn every_optimizer_matches_cpu() {
    let l = Layout::MNIST;
    let set = dataset(4, 28, 28, 10, 3);
    let base = Hyper::default();
    // Every registered optimizer at its bundled config's settings, and with weight decay;
    // then the settings the configs leave at their defaults. L-BFGS has no per-weight
    // update kernel (its step: tests/gpu_lbfgs.rs).
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
    cases.extend([
        (
            Variant::Sgd,
            Hyper {
                lr: 0.05,
                momentum: 0.9,
                nesterov: true,
                weight_decay: 0.01,
                ..base
            },
        ),
        (
            Variant::Rmsprop,
            Hyper {
                lr: 0.01,
                momentum: 0.9,
                alpha: 0.9,
                weight_decay: 0.01,
                ..base
            },
        ),
        (
            Variant::Adam,
            Hyper {
                lr: 0.01,
                beta1: 0.8,
                beta2: 0.99,
                eps: 1e-6,
                weight_decay: 0.01,
                ..base
            },
        ),
    ]);
    for (v, h) in cases {
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
            // |g| in [0.01, 0.1] against weight decay terms <= 1e-3: no cancellation, which a
            // GPU that does not fuse `fma` (lavapipe) would turn into large relative errors.
            let mut r = Rng::new(seed);
            let grads: Vec<f32> = (0..l.total())
                .map(|_| {
                    let m = r.uniform(0.01, 0.1);
                    if r.unit() < 0.5 {
                        -m
                    } else {
                        m
                    }
                })
                .collect();
            g.debug_rprop(&grads, 1.0).unwrap();
            cpu::optimizer(v, &h, &mut cp, &grads, &mut cs, 1.0);
        }
        let gp = g.params().unwrap();
        let gs = g.state().unwrap();
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

fn main() {
    common::gpu::main(&[
        (
            "kernels_match_cpu_on_odd_shapes",
            kernels_match_cpu_on_odd_shapes,
        ),
        (
            "kernels_match_cpu_with_chunked_images",
            kernels_match_cpu_with_chunked_images,
        ),
        ("full_size_step_matches_cpu", full_size_step_matches_cpu),
        ("normalization_is_exact", normalization_is_exact),
        (
            "bit_exact_optimizers_are_bit_identical_to_cpu",
            bit_exact_optimizers_are_bit_identical_to_cpu,
        ),
        (
            "an_unregistered_code_writes_nan",
            an_unregistered_code_writes_nan,
        ),
        ("training_is_deterministic", training_is_deterministic),
        (
            "restart_is_bit_identical_to_a_fresh_backend",
            restart_is_bit_identical_to_a_fresh_backend,
        ),
        (
            "one_submission_and_32_bytes_per_epoch",
            one_submission_and_32_bytes_per_epoch,
        ),
        ("every_optimizer_matches_cpu", every_optimizer_matches_cpu),
    ]);
}
