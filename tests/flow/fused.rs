//! The fused CPU passes (cpu::fused) against the readable reference (cpu::forward/backward),
//! dense and sparse, on odd shapes (row counts that split unevenly into lanes and chunks,
//! hidden widths that are not a multiple of the sparse kernels' 64-column tile, deeper
//! networks) and on MNIST.
//!
//! Tolerances: the dense fused pass computes the same products as the reference, on one
//! thread per row block (gemm may split a product's sums differently then): forward outputs
//! within 1e-6 and gradients within 1e-5 relative to their largest magnitude; its eval pass
//! must give the train pass's forward outputs bit for bit. The sparse pass rebuilds X = a·U + b, whose f32
//! rounding differs from torch's normalization by an ulp, and sums in yet another order:
//! logits and gradients within 1e-4 relative to their largest magnitude.

use crate::common;

use rprop_lab::backend::Backend;
use rprop_lab::cpu::fused::{self, CpuMatmul, Input};
use rprop_lab::cpu::sparse::{self, SparseImages};
use rprop_lab::cpu::{self, CpuBackend, Workspace};
use rprop_lab::data::{self, normalize, Part};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, Variant};
use rprop_lab::rng::Rng;

/// u8 pixels with about 80% zeros, their normalized images and labels.
fn case(n: usize, inputs: usize, classes: u64, seed: u64) -> (Vec<u8>, Vec<f32>, Vec<u8>) {
    let mut r = Rng::new(seed);
    let pixels: Vec<u8> = (0..n * inputs)
        .map(|_| {
            if r.unit() < 0.8 {
                0
            } else {
                (r.next_u64() % 256) as u8
            }
        })
        .collect();
    let x = pixels.iter().map(|&p| normalize(p)).collect();
    let y = (0..n).map(|_| (r.next_u64() % classes) as u8).collect();
    (pixels, x, y)
}

/// Largest |a - b| over the largest |b|.
fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, &v| m.max(v.abs())) as f64;
    let diff = a
        .iter()
        .zip(b)
        .fold(0f32, |m, (&x, &y)| m.max((x - y).abs())) as f64;
    diff / scale.max(1e-30)
}

fn reference(p: &Params, x: &[f32], y: &[u8]) -> (Workspace, f32) {
    let mut ws = Workspace::new(p.layout, y.len());
    let s = cpu::forward(p, x, y, &mut ws);
    cpu::backward(p, x, &mut ws);
    (ws, s.loss)
}

fn check(layout: Layout, n: usize, seed: u64) {
    let p = Params::init(layout, seed);
    let (pixels, x, y) = case(n, layout.inputs, layout.classes as u64, seed + 1);
    let (want, loss) = reference(&p, &x, &y);

    let mut ws = Workspace::new(layout, n);
    let s = fused::train_pass(&p, Input::dense(&x), &y, &mut ws);
    let (s_dense, dense_logits) = (s, ws.logits.clone());
    assert!(
        ((s.loss - loss) / loss).abs() < 1e-6,
        "{layout:?} n={n}: dense loss"
    );
    for (a, b) in ws.hidden.iter().zip(&want.hidden) {
        assert!(rel_diff(&a.z, &b.z) < 1e-6, "{layout:?} n={n}: dense Z");
        assert!(rel_diff(&a.h, &b.h) < 1e-6, "{layout:?} n={n}: dense H");
        assert!(rel_diff(&a.dz, &b.dz) < 1e-5, "{layout:?} n={n}: dense dZ");
    }
    assert!(
        rel_diff(&ws.logits, &want.logits) < 1e-6,
        "{layout:?} n={n}: dense logits"
    );
    let d = rel_diff(&ws.grads, &want.grads);
    assert!(
        d < 1e-5,
        "{layout:?} n={n}: dense gradients differ by {d:e}"
    );

    let u = SparseImages::from_pixels(&pixels, layout.inputs).unwrap();
    let mut ws = Workspace::new(layout, n);
    let input = Input {
        x: &x,
        sparse: Some(&u),
    };
    let s = fused::train_pass(&p, input, &y, &mut ws);
    assert!(
        ((s.loss - loss) / loss).abs() < 1e-5,
        "{layout:?} n={n}: sparse loss {} vs {loss}",
        s.loss
    );
    let dz = rel_diff(&ws.hidden[0].z, &want.hidden[0].z);
    assert!(dz < 1e-4, "{layout:?} n={n}: sparse Z1 differs by {dz:e}");
    let d = rel_diff(&ws.grads, &want.grads);
    assert!(
        d < 1e-4,
        "{layout:?} n={n}: sparse gradients differ by {d:e}"
    );

    // The eval pass is the train pass's forward half.
    let mut ev = Workspace::new(layout, n);
    let e = fused::eval_pass(&p, Input::dense(&x), &y, &mut ev);
    assert_eq!(e.loss.to_bits(), s_dense.loss.to_bits());
    assert_eq!(ev.logits, dense_logits);
}

#[test]
fn fused_passes_match_the_reference_on_odd_shapes() {
    check(Layout::new(37, 70, 3), 1, 1);
    check(Layout::new(37, 70, 3), 9, 2);
    check(Layout::new(50, 64, 10), 1029, 3);
    check(Layout::new(20, 130, 4), 300, 4);
    check(Layout::with_hidden(30, &[65, 7, 12], 5).unwrap(), 517, 5);
}

#[test]
fn fused_pass_on_no_rows_gives_zero_gradients() {
    let p = Params::init(Layout::new(5, 4, 3), 0);
    let mut ws = Workspace::new(p.layout, 0);
    let s = fused::train_pass(&p, Input::dense(&[]), &[], &mut ws);
    assert_eq!((s.samples, s.correct), (0, 0));
    assert!(ws.grads.iter().all(|&g| g == 0.0));
}

#[test]
fn sparse_images_recover_the_pixels_and_refuse_other_values() {
    let (pixels, x, _) = case(40, 33, 10, 7);
    let a = SparseImages::from_pixels(&pixels, 33).unwrap();
    let b = SparseImages::from_normalized(&x, 33).unwrap();
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    let zeros = pixels.iter().filter(|&&p| p == 0).count();
    let want = 1.0 - zeros as f64 / pixels.len() as f64;
    assert!((a.density() - want).abs() < 1e-12);
    let mut bad = x.clone();
    bad[5] = 0.123;
    assert!(SparseImages::from_normalized(&bad, 33).is_none());
    assert!(SparseImages::from_pixels(&pixels, 70_000).is_none());
    assert_eq!("auto".parse::<CpuMatmul>(), Ok(CpuMatmul::Auto));
    assert!("fast".parse::<CpuMatmul>().is_err());
}

/// The sparse gradient kernel on any row range (starting on a column-sorted block or not,
/// ending mid-block or not) equals dZᵀ·U summed in f64, within 1e-5 relative; hidden width
/// 150 exercises its 128-, 16- and 1-column paths.
#[test]
fn sparse_gradient_matches_on_any_row_range() {
    let (n, inputs, h) = (300, 37, 150);
    let (pixels, _, _) = case(n, inputs, 10, 11);
    let u = SparseImages::from_pixels(&pixels, inputs).unwrap();
    let mut r = Rng::new(3);
    let dz: Vec<f32> = (0..n * h).map(|_| r.unit() - 0.5).collect();
    for (start, count) in [(0, 300), (5, 250), (128, 60), (100, 28), (130, 170), (7, 0)] {
        let mut s = vec![0f32; inputs * h];
        sparse::grad_rows(&u, start, &dz[start * h..(start + count) * h], h, &mut s);
        let mut want = vec![0f64; inputs * h];
        for i in start..start + count {
            for k in 0..inputs {
                let p = pixels[i * inputs + k] as f64;
                for j in 0..h {
                    want[k * h + j] += p * dz[i * h + j] as f64;
                }
            }
        }
        let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        let d = rel_diff(&s, &want);
        assert!(
            d < 1e-5,
            "rows {start}+{count}: sparse dZᵀU differs by {d:e}"
        );
        if count > 0 {
            assert!(want.iter().any(|&v| v != 0.0));
        }
    }
}

/// Both strategies train the report's network on 2,000 MNIST images to the same place:
/// per-epoch losses within 1e-3 relative and accuracies within 1%.
#[test]
fn sparse_strategy_trains_like_dense_on_mnist() {
    let learn = data::load(&common::mnist_dir(), Part::Learn).unwrap();
    let (train, eval) = data::split(&learn, 2000, 500).unwrap();
    let run = |choice| {
        let p = Params::init(Layout::MNIST, 3);
        let mut b = CpuBackend::new(&train, &eval, p, Variant::IrpropPlus, Hyper::default())
            .with_matmul(choice);
        let name = b.name();
        let epochs: Vec<_> = (0..8).map(|_| b.epoch().unwrap()).collect();
        (name, epochs)
    };
    let (dense_name, dense) = run(CpuMatmul::Dense);
    let (sparse_name, sparse) = run(CpuMatmul::Sparse);
    assert!(!dense_name.contains("sparse"), "{dense_name}");
    assert!(
        sparse_name.contains("sparse matmul (density 0.1"),
        "{sparse_name}"
    );
    for (i, (d, s)) in dense.iter().zip(&sparse).enumerate() {
        for (a, b) in [(d.train, s.train), (d.eval, s.eval)] {
            assert!(
                ((a.loss - b.loss) / a.loss).abs() < 1e-3,
                "epoch {i}: {a:?} vs {b:?}"
            );
            assert!((a.accuracy() - b.accuracy()).abs() < 0.01, "epoch {i}");
        }
    }
    assert!(
        dense[7].eval.loss < 0.8 * dense[0].eval.loss,
        "training made progress"
    );
}
