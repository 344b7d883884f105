//! The CPU reference against an independent naive f64 implementation (and that against
//! finite differences), on odd shapes.

use rprop_lab::cpu::{self, Workspace};
use rprop_lab::model::{Layout, Params};
use rprop_lab::rng::Rng;

const TOL: f64 = 2e-5;

/// Naive f64 forward+backward: returns (mean loss, dW1, db1, dW2, db2) for x (n x i).
fn naive(p: &Params, x: &[f32], y: &[u8]) -> (f64, Vec<f64>) {
    let l = p.layout;
    let (n, i_, h_, c_) = (y.len(), l.inputs, l.hidden, l.classes);
    let (w1, b1, w2, b2) = (p.w1(), p.b1(), p.w2(), p.b2());
    let mut grads = vec![0f64; l.total()];
    let t = l.tensors();
    let mut loss = 0f64;
    for s in 0..n {
        let xs = &x[s * i_..(s + 1) * i_];
        let z1: Vec<f64> = (0..h_)
            .map(|j| {
                b1[j] as f64
                    + (0..i_)
                        .map(|k| xs[k] as f64 * w1[j * i_ + k] as f64)
                        .sum::<f64>()
            })
            .collect();
        let h: Vec<f64> = z1.iter().map(|&z| z.max(0.0)).collect();
        let z2: Vec<f64> = (0..c_)
            .map(|j| b2[j] as f64 + (0..h_).map(|k| h[k] * w2[j * h_ + k] as f64).sum::<f64>())
            .collect();
        let m = z2.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let se: f64 = z2.iter().map(|z| (z - m).exp()).sum();
        loss += m + se.ln() - z2[y[s] as usize];
        let dz2: Vec<f64> = (0..c_)
            .map(|j| ((z2[j] - m).exp() / se - f64::from(j == y[s] as usize)) / n as f64)
            .collect();
        for j in 0..c_ {
            grads[t[3].offset + j] += dz2[j];
            for k in 0..h_ {
                grads[t[2].offset + j * h_ + k] += dz2[j] * h[k];
            }
        }
        for k in 0..h_ {
            if z1[k] <= 0.0 {
                continue;
            }
            let dz1: f64 = (0..c_).map(|j| dz2[j] * w2[j * h_ + k] as f64).sum();
            grads[t[1].offset + k] += dz1;
            for q in 0..i_ {
                grads[t[0].offset + k * i_ + q] += dz1 * xs[q] as f64;
            }
        }
    }
    (loss / n as f64, grads)
}

fn random_case(layout: Layout, n: usize, seed: u64) -> (Params, Vec<f32>, Vec<u8>) {
    let p = Params::init(layout, seed);
    let mut r = Rng::new(seed + 1);
    let x: Vec<f32> = (0..n * layout.inputs)
        .map(|_| r.uniform(-1.0, 1.0))
        .collect();
    let y: Vec<u8> = (0..n)
        .map(|_| (r.next_u64() % layout.classes as u64) as u8)
        .collect();
    (p, x, y)
}

fn check_shape(layout: Layout, n: usize) {
    let (p, x, y) = random_case(layout, n, 3);
    let mut ws = Workspace::new(layout, n);
    let stats = cpu::forward(&p, &x, &y, &mut ws);
    cpu::backward(&p, &x, &mut ws);
    let (loss, grads) = naive(&p, &x, &y);
    assert!(
        ((stats.loss as f64) - loss).abs() <= TOL * loss.abs().max(1.0),
        "loss {} vs {loss}",
        stats.loss
    );
    let scale = grads.iter().fold(0f64, |a, g| a.max(g.abs())).max(1e-12);
    for (i, (&a, &b)) in ws.grads.iter().zip(&grads).enumerate() {
        assert!(
            ((a as f64) - b).abs() <= TOL * scale,
            "{layout:?} n={n}: grad[{i}] {a} vs {b} (scale {scale})"
        );
    }
}

#[test]
fn gradients_match_naive_f64_on_odd_shapes() {
    for (layout, n) in [
        (Layout::new(7, 5, 3), 1),
        (Layout::new(13, 9, 10), 33),
        (Layout::new(784, 128, 10), 17),
    ] {
        check_shape(layout, n);
    }
}

#[test]
fn naive_oracle_matches_finite_differences() {
    let layout = Layout::new(4, 3, 3);
    let (p, x, y) = random_case(layout, 5, 11);
    let (_, grads) = naive(&p, &x, &y);
    for t in layout.tensors() {
        for i in t.range() {
            let eps = 1e-3f32;
            let mut a = p.clone();
            a.data[i] += eps;
            let mut b = p.clone();
            b.data[i] -= eps;
            let fd = (naive(&a, &x, &y).0 - naive(&b, &x, &y).0) / (2.0 * eps as f64);
            assert!(
                (fd - grads[i]).abs() < 1e-4,
                "{}[{i}]: fd {fd} vs {}",
                t.name,
                grads[i]
            );
        }
    }
}

#[test]
fn softmax_xent_hand_computed() {
    // Two samples, three classes. Row 0: z = (0, 0, 0), y = 1: loss ln 3, p = 1/3.
    // Row 1: z = (ln 2, 0, 0) -> p = (1/2, 1/4, 1/4), y = 0: loss ln 2, correct.
    let z = [0.0, 0.0, 0.0, 2f32.ln(), 0.0, 0.0];
    let mut loss = [0f32; 2];
    let mut correct = [0u32; 2];
    let mut dz = [0f32; 6];
    cpu::softmax_xent(&z, &[1, 0], 2, &mut loss, &mut correct, &mut dz);
    assert!((loss[0] - 3f32.ln()).abs() < 1e-6);
    assert!((loss[1] - 2f32.ln()).abs() < 1e-6);
    assert_eq!(correct, [0, 1], "ties pick the first class, as argmax does");
    let want = [1.0 / 6.0, -1.0 / 3.0, 1.0 / 6.0, -0.25, 0.125, 0.125];
    for (a, b) in dz.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{dz:?}");
    }
    let s = cpu::reduce_metrics(&loss, &correct);
    assert!((s.loss - (3f32.ln() + 2f32.ln()) / 2.0).abs() < 1e-6);
    assert_eq!((s.correct, s.samples), (1, 2));
}

#[test]
fn relu_and_bias_reduction_hand_computed() {
    let z = [-1.0, 0.0, 2.5, -0.0];
    let mut h = [9.0; 4];
    cpu::relu(&z, &mut h);
    assert_eq!(h, [0.0, 0.0, 2.5, 0.0]);
    let mut d = [9.0; 4];
    cpu::relu_backward(&[1.0, 2.0, 3.0, 4.0], &z, &mut d);
    assert_eq!(d, [0.0, 0.0, 3.0, 0.0]);
    let mut out = [0.0; 2];
    cpu::reduce_cols(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, &mut out);
    assert_eq!(out, [9.0, 12.0]);
}

#[test]
fn matmul_transposes_by_strides() {
    // a = [[1,2,3],[4,5,6]] (2x3); a^T a = [[17,22,27],[22,29,36],[27,36,45]].
    let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let v = cpu::View::row_major(&a, 2, 3);
    let mut out = [0.0; 9];
    cpu::matmul(&mut out, v.t(), v, false);
    assert_eq!(out, [17.0, 22.0, 27.0, 22.0, 29.0, 36.0, 27.0, 36.0, 45.0]);
    let mut out2 = [1.0; 4];
    cpu::matmul(&mut out2, v, v.t(), true);
    assert_eq!(out2, [15.0, 33.0, 33.0, 78.0]);
}

#[test]
fn a_step_is_deterministic() {
    let layout = Layout::MNIST;
    let (p, x, y) = random_case(layout, 300, 5);
    let grads = |p: &Params| {
        let mut ws = Workspace::new(layout, 300);
        cpu::forward(p, &x, &y, &mut ws);
        cpu::backward(p, &x, &mut ws);
        ws.grads
    };
    let a = grads(&p);
    let b = grads(&p);
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
}

#[test]
fn init_is_seeded_and_bounded_like_pytorch() {
    let a = Params::init(Layout::MNIST, 1);
    let b = Params::init(Layout::MNIST, 1);
    let c = Params::init(Layout::MNIST, 2);
    assert_eq!(a, b);
    assert_ne!(a, c);
    let b1 = 1.0 / 784f32.sqrt();
    let b2 = 1.0 / 128f32.sqrt();
    assert!(a.w1().iter().chain(a.b1()).all(|v| v.abs() <= b1));
    assert!(a.w2().iter().chain(a.b2()).all(|v| v.abs() <= b2));
    // Roughly uniform: mean ~ 0, variance ~ bound^2 / 3.
    let n = a.w1().len() as f32;
    let mean: f32 = a.w1().iter().sum::<f32>() / n;
    let var: f32 = a.w1().iter().map(|v| v * v).sum::<f32>() / n;
    assert!(mean.abs() < 1e-3, "{mean}");
    assert!((var / (b1 * b1 / 3.0) - 1.0).abs() < 0.02, "{var}");
    // Padding between tensors stays zero.
    let t = Layout::MNIST.tensors();
    assert!(a.data[t[1].offset + 128..t[2].offset]
        .iter()
        .all(|&v| v == 0.0));
}

/// Naive f64 forward+backward of any MLP: (mean loss, flat gradients).
fn naive_deep(p: &Params, x: &[f32], y: &[u8]) -> (f64, Vec<f64>) {
    let l = p.layout;
    let sizes = l.layer_sizes();
    let t = l.tensors();
    let n = y.len();
    let mut grads = vec![0f64; l.total()];
    let mut loss = 0f64;
    for s in 0..n {
        // acts[k] is the input of layer k; zs[k] its pre-activation.
        let mut acts: Vec<Vec<f64>> = vec![x[s * l.inputs..(s + 1) * l.inputs]
            .iter()
            .map(|&v| v as f64)
            .collect()];
        let mut zs = Vec::new();
        for (k, &(fi, fo)) in sizes.iter().enumerate() {
            let (w, b) = p.layer(k);
            let a = &acts[k];
            let z: Vec<f64> = (0..fo)
                .map(|j| b[j] as f64 + (0..fi).map(|q| a[q] * w[j * fi + q] as f64).sum::<f64>())
                .collect();
            acts.push(z.iter().map(|&v| v.max(0.0)).collect());
            zs.push(z);
        }
        let logits = zs.last().unwrap();
        let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let se: f64 = logits.iter().map(|z| (z - m).exp()).sum();
        loss += m + se.ln() - logits[y[s] as usize];
        let mut dz: Vec<f64> = (0..l.classes)
            .map(|j| ((logits[j] - m).exp() / se - f64::from(j == y[s] as usize)) / n as f64)
            .collect();
        for k in (0..sizes.len()).rev() {
            let (fi, fo) = sizes[k];
            let (w, _) = p.layer(k);
            for j in 0..fo {
                grads[t[2 * k + 1].offset + j] += dz[j];
                for q in 0..fi {
                    grads[t[2 * k].offset + j * fi + q] += dz[j] * acts[k][q];
                }
            }
            if k > 0 {
                dz = (0..fi)
                    .map(|q| {
                        if zs[k - 1][q] <= 0.0 {
                            0.0
                        } else {
                            (0..fo).map(|j| dz[j] * w[j * fi + q] as f64).sum()
                        }
                    })
                    .collect();
            }
        }
    }
    (loss / n as f64, grads)
}

#[test]
fn deep_networks_match_naive_f64_and_finite_differences() {
    for (hidden, n) in [
        (vec![5usize, 4, 3], 9usize),
        (vec![16, 8], 31),
        (vec![6, 5, 4, 3], 1),
    ] {
        let layout = Layout::with_hidden(7, &hidden, 3).unwrap();
        let (p, x, y) = random_case(layout, n, 17);
        let mut ws = Workspace::new(layout, n);
        let stats = cpu::forward(&p, &x, &y, &mut ws);
        cpu::backward(&p, &x, &mut ws);
        let (loss, grads) = naive_deep(&p, &x, &y);
        assert!(
            (stats.loss as f64 - loss).abs() < 1e-5 * loss.max(1.0),
            "{hidden:?}"
        );
        let scale = grads.iter().fold(0f64, |a, g| a.max(g.abs())).max(1e-12);
        for (i, (&a, &b)) in ws.grads.iter().zip(&grads).enumerate() {
            assert!(
                ((a as f64) - b).abs() <= TOL * scale,
                "{hidden:?} grad[{i}] {a} vs {b}"
            );
        }
    }
    // The naive oracle itself against central differences, on a three-hidden-layer net.
    let layout = Layout::with_hidden(4, &[3, 3, 2], 3).unwrap();
    let (p, x, y) = random_case(layout, 4, 23);
    let (_, grads) = naive_deep(&p, &x, &y);
    for t in layout.tensors() {
        for i in t.range() {
            let eps = 1e-3f32;
            let (mut a, mut b) = (p.clone(), p.clone());
            a.data[i] += eps;
            b.data[i] -= eps;
            let fd = (naive_deep(&a, &x, &y).0 - naive_deep(&b, &x, &y).0) / (2.0 * eps as f64);
            assert!(
                (fd - grads[i]).abs() < 1e-4,
                "{}[{i}]: fd {fd} vs {}",
                t.name,
                grads[i]
            );
        }
    }
    // For the report's network the generic oracle agrees with the two-layer one.
    let (p, x, y) = random_case(Layout::new(13, 9, 10), 5, 29);
    let (l1, g1) = naive(&p, &x, &y);
    let (l2, g2) = naive_deep(&p, &x, &y);
    assert!((l1 - l2).abs() < 1e-12);
    assert!(g1.iter().zip(&g2).all(|(a, b)| (a - b).abs() < 1e-12));
}

#[test]
fn layouts_name_and_place_every_layer() {
    let l = Layout::with_hidden(784, &[200, 150, 100], 10).unwrap();
    let names: Vec<_> = l.tensors().iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias",
            "fc3.weight",
            "fc3.bias",
            "fc4.weight",
            "fc4.bias"
        ]
    );
    assert_eq!(l.tensors()[6].dims(), &[10, 100]);
    assert_eq!(l.describe(), "784-200-150-100-10");
    assert_eq!(
        l.count(),
        784 * 200 + 200 + 200 * 150 + 150 + 150 * 100 + 100 + 100 * 10 + 10
    );
    assert!(l.tensors().iter().all(|t| t.offset % 64 == 0));
    assert!(Layout::with_hidden(784, &[], 10).is_none());
    assert!(Layout::with_hidden(784, &[8, 0], 10).is_none());
    assert!(Layout::with_hidden(784, &[1, 2, 3, 4, 5], 10).is_none());
    assert_eq!(Layout::with_hidden(784, &[128], 10), Some(Layout::MNIST));
}
