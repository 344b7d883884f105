//! Where the CPU backend's epoch goes: one criterion group per stage of the report's epoch
//! (one full-batch step on 50,000 MNIST images + the 10,000-image eval pass), each stage
//! timed as the readable reference runs it (`cpu::forward` / `cpu::backward` pieces, all
//! cores) and, for the first layer, as the sparse strategy runs it; then the fused passes and
//! the whole epoch through the backend, dense and sparse.
//!
//! Throughputs are set to each stage's FLOP count (2·m·k·n for a product, the dense
//! product's count for the sparse kernels so the figures compare), so criterion's
//! "thrpt … elem/s" reads as FLOP/s; element-wise stages count elements.
//!
//! `cargo bench --bench cpu_step` (all, ~2 min), or one group, e.g.
//! `cargo bench --bench cpu_step -- fwd_z1`.

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use rayon::prelude::*;
use rprop_lab::backend::Backend;
use rprop_lab::cpu::fused::{self, CpuMatmul, Input};
use rprop_lab::cpu::sparse::{self, SparseImages};
use rprop_lab::cpu::{self, CpuBackend, View, Workspace};
use rprop_lab::data::{self, Dataset, Part};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, OptimState, Variant};

const N: usize = 50_000;
const I: usize = 784;
const H: usize = 128;
const C: usize = 10;

fn sets() -> (Dataset, Dataset) {
    let learn = data::load(std::path::Path::new("data/mnist"), Part::Learn).expect("bundled MNIST");
    data::split(&learn, N, 10_000).expect("split")
}

/// 2·m·k·n: the FLOPs of an m x k by k x n product.
fn flops(m: usize, k: usize, n: usize) -> Throughput {
    Throughput::Elements(2 * (m * k * n) as u64)
}

/// A group with a moderate runtime: 10 samples over ~3 s each.
fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g
}

/// The reference's intermediates at N = 50,000 after one forward + backward.
struct State {
    x: Vec<f32>,
    y: Vec<u8>,
    u: SparseImages,
    p: Params,
    ws: Workspace,
}

fn state() -> State {
    let (train, _) = sets();
    let x = cpu::normalize_images(&train);
    let p = Params::init(Layout::MNIST, 0);
    let mut ws = Workspace::new(p.layout, N);
    cpu::forward(&p, &x, &train.labels, &mut ws);
    cpu::backward(&p, &x, &mut ws);
    let u = SparseImages::from_normalized(&x, I).expect("u8 pixels");
    State {
        x,
        y: train.labels,
        u,
        p,
        ws,
    }
}

/// Rows per parallel task of the sparse kernels (as the fused pass splits them).
const ROWS: usize = N / fused::LANES;

/// The first layer's product: the GEMM against the sparse u8 kernel.
fn first_layer(c: &mut Criterion, s: &State) {
    let (w1, b1) = s.p.layer(0);
    let (wt, cc) = sparse::first_layer_consts(w1, b1, I);
    let mut z1 = vec![0f32; N * H];
    let mut g = group(c, "fwd_z1");
    g.throughput(flops(N, I, H));
    g.bench_function("dense_gemm", |bn| {
        bn.iter(|| cpu::linear(&mut z1, View::row_major(&s.x, N, I), w1, b1))
    });
    g.bench_function("sparse_u8", |bn| {
        bn.iter(|| {
            z1.par_chunks_mut(ROWS * H)
                .enumerate()
                .for_each(|(i, z)| sparse::forward_rows(&s.u, i * ROWS, &wt, &cc, z))
        })
    });
    g.finish();
}

/// ReLU, the second layer's products and ReLU's mask, softmax cross-entropy.
fn later_layers(c: &mut Criterion, s: &State) {
    let (w2, b2) = s.p.layer(1);
    let z1 = s.ws.z1().to_vec();
    let mut h = vec![0f32; N * H];
    let mut g = group(c, "bias_relu");
    g.throughput(Throughput::Elements((N * H) as u64));
    g.bench_function("relu", |bn| bn.iter(|| cpu::relu(&z1, &mut h)));
    g.finish();

    let mut z2 = vec![0f32; N * C];
    let dz2 = s.ws.dlogits.clone();
    let (mut dh, mut dz1) = (vec![0f32; N * H], vec![0f32; N * H]);
    let mut g = group(c, "small_layers");
    g.throughput(flops(N, H, C));
    g.bench_function("fwd_z2_hw2t", |bn| {
        bn.iter(|| cpu::linear(&mut z2, View::row_major(&h, N, H), w2, b2))
    });
    g.bench_function("bwd_dh_dz2_w2", |bn| {
        bn.iter(|| {
            let b = View::row_major(w2, C, H);
            cpu::matmul(&mut dh, View::row_major(&dz2, N, C), b, false)
        })
    });
    g.throughput(Throughput::Elements((N * H) as u64));
    g.bench_function("bwd_relu", |bn| {
        bn.iter(|| cpu::relu_backward(&dh, &z1, &mut dz1))
    });
    g.finish();

    let (mut loss, mut correct, mut dz2b) = (vec![0f32; N], vec![0u32; N], vec![0f32; N * C]);
    let mut g = group(c, "softmax_xent");
    g.throughput(Throughput::Elements((N * C) as u64));
    g.bench_function("softmax_xent", |bn| {
        bn.iter(|| cpu::softmax_xent(&z2, &s.y, N, &mut loss, &mut correct, &mut dz2b))
    });
    g.finish();
}

/// dW1 (the GEMM against the sparse u8 kernel's parts), dW2 and db1.
fn weight_grads(c: &mut Criterion, s: &State) {
    let dz1 = s.ws.dz1().to_vec();
    let mut dw1 = vec![0f32; H * I];
    let mut g = group(c, "bwd_dw1");
    g.throughput(flops(H, N, I));
    g.bench_function("dense_gemm", |bn| {
        bn.iter(|| {
            let a = View::row_major(&dz1, N, H).t();
            cpu::matmul(&mut dw1, a, View::row_major(&s.x, N, I), false)
        })
    });
    g.bench_function("sparse_u8", |bn| bn.iter(|| sparse_dw1(s, &dz1, &mut dw1)));
    g.finish();

    let (h, dz2) = (s.ws.h().to_vec(), s.ws.dlogits.clone());
    let (mut dw2, mut db1) = (vec![0f32; C * H], vec![0f32; H]);
    let mut g = group(c, "dw2_db");
    g.throughput(flops(C, N, H));
    g.bench_function("dw2_dz2t_h", |bn| {
        bn.iter(|| {
            let a = View::row_major(&dz2, N, C).t();
            cpu::matmul(&mut dw2, a, View::row_major(&h, N, H), false)
        })
    });
    g.throughput(Throughput::Elements((N * H) as u64));
    g.bench_function("db1_colsum", |bn| {
        bn.iter(|| cpu::reduce_cols(&dz1, H, &mut db1))
    });
    g.finish();
}

/// dW1 from the sparse u8 pixels: a part per row block, then their sum.
fn sparse_dw1(s: &State, dz1: &[f32], dw1: &mut [f32]) {
    let parts: Vec<Vec<f32>> = dz1
        .par_chunks(ROWS * H)
        .enumerate()
        .map(|(i, dz)| {
            let mut part = vec![0f32; I * H];
            sparse::grad_rows(&s.u, i * ROWS, dz, H, &mut part);
            part
        })
        .collect();
    for part in &parts {
        for (d, &v) in dw1.iter_mut().zip(part) {
            *d += v;
        }
    }
}

/// The iRprop+ update, then the step's two passes: the reference stage by stage vs fused
/// by row blocks.
fn update_and_passes(c: &mut Criterion, s: &mut State) {
    let grads = s.ws.grads.clone();
    let mut params = s.p.data.clone();
    let hy = Hyper::default();
    let mut st = OptimState::for_variant(params.len(), Variant::IrpropPlus, &hy);
    let mut g = group(c, "optimizer");
    g.throughput(Throughput::Elements(params.len() as u64));
    g.bench_function("irprop_plus", |bn| {
        bn.iter(|| cpu::optimizer(Variant::IrpropPlus, &hy, &mut params, &grads, &mut st, 1.0))
    });
    g.finish();

    let mut g = group(c, "fwd_bwd");
    g.throughput(Throughput::Elements(
        2 * N as u64 * (I * H * 2 + H * C * 3) as u64,
    ));
    g.bench_function("reference", |bn| {
        bn.iter(|| {
            cpu::forward(&s.p, &s.x, &s.y, &mut s.ws);
            cpu::backward(&s.p, &s.x, &mut s.ws)
        })
    });
    g.bench_function("fused_dense", |bn| {
        bn.iter(|| fused::train_pass(&s.p, Input::dense(&s.x), &s.y, &mut s.ws))
    });
    let input = Input {
        x: &s.x,
        sparse: Some(&s.u),
    };
    g.bench_function("fused_sparse", |bn| {
        bn.iter(|| fused::train_pass(&s.p, input, &s.y, &mut s.ws))
    });
    g.finish();
}

fn stages(c: &mut Criterion) {
    let mut s = state();
    first_layer(c, &s);
    later_layers(c, &s);
    weight_grads(c, &s);
    update_and_passes(c, &mut s);
}

/// The eval pass and the whole epoch through the backend, per strategy.
fn epoch(c: &mut Criterion) {
    let (train, eval) = sets();
    let step_flops = 2 * N as u64 * (I * H * 2 + H * C * 3) as u64;
    let eval_flops = 2 * 10_000u64 * (I * H + H * C) as u64;
    let mut backends: Vec<(String, CpuBackend)> = [CpuMatmul::Dense, CpuMatmul::Sparse]
        .into_iter()
        .map(|choice| {
            let p = Params::init(Layout::MNIST, 0);
            let b = CpuBackend::new(&train, &eval, p, Variant::IrpropPlus, Hyper::default())
                .with_matmul(choice);
            (format!("{choice:?}").to_lowercase(), b)
        })
        .collect();
    let mut g = group(c, "eval_10k");
    g.throughput(Throughput::Elements(eval_flops));
    for (name, b) in backends.iter_mut() {
        g.bench_function(name.as_str(), |bn| bn.iter(|| b.eval()));
    }
    g.finish();
    let mut g = group(c, "epoch");
    for (name, b) in backends.iter_mut() {
        g.throughput(Throughput::Elements(step_flops));
        g.bench_function(format!("{name}/train_step_50k"), |bn| bn.iter(|| b.step()));
        g.throughput(Throughput::Elements(step_flops + eval_flops));
        g.bench_function(format!("{name}/epoch"), |bn| {
            bn.iter(|| b.epoch().expect("epoch"))
        });
    }
    g.finish();
}

criterion_group!(benches, stages, epoch);
criterion_main!(benches);
