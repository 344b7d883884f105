//! The CPU backend on the report's epoch: one full-batch training step on 50,000 MNIST
//! images (forward, loss, gradient, Rprop update) and the 10,000-image eval pass, with the
//! dense and the sparse first-layer strategy; and a profile of the step, one criterion group
//! per stage of the readable reference (`cpu::forward` / `cpu::backward` at N = 50,000),
//! each with its FLOP count so criterion's "elem/s" reads as FLOP/s.
//!
//! `cargo bench --bench cpu_step` (all), or e.g. `cargo bench --bench cpu_step -- epoch`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rprop_lab::backend::Backend;
use rprop_lab::cpu::{self, CpuBackend, View, Workspace};
use rprop_lab::cpu_fast::{self, CpuMatmul, Input};
use rprop_lab::cpu_sparse::{self, SparseImages};
use rprop_lab::data::{self, Dataset, Part};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, RpropState, Variant};

const N: usize = 50_000;
const I: usize = 784;
const H: usize = 128;
const C: usize = 10;

fn sets() -> (Dataset, Dataset) {
    let learn = data::load(std::path::Path::new("data/mnist"), Part::Learn).expect("bundled MNIST");
    data::split(&learn, N, 10_000).expect("split")
}

/// The report's epoch through the backend, per strategy: step (50k) + eval (10k).
fn epoch(c: &mut Criterion) {
    let (train, eval) = sets();
    let step_flops = 2 * N as u64 * (I * H * 2 + H * C * 3) as u64;
    let eval_flops = 2 * 10_000u64 * (I * H + H * C) as u64;
    let mut g = c.benchmark_group("epoch");
    g.sample_size(10);
    for choice in [CpuMatmul::Dense, CpuMatmul::Sparse] {
        let p = Params::init(Layout::MNIST, 0);
        let mut b = CpuBackend::new(&train, &eval, p, Variant::IrpropPlus, Hyper::default())
            .with_matmul(choice);
        let name = format!("{choice:?}").to_lowercase();
        g.throughput(Throughput::Elements(step_flops));
        g.bench_function(format!("{name}/train_step_50k"), |bn| bn.iter(|| b.step()));
        g.throughput(Throughput::Elements(eval_flops));
        g.bench_function(format!("{name}/eval_10k"), |bn| bn.iter(|| b.eval()));
        g.throughput(Throughput::Elements(step_flops + eval_flops));
        g.bench_function(format!("{name}/epoch"), |bn| bn.iter(|| b.epoch().unwrap()));
    }
    g.finish();
}

/// Each stage of the readable reference at N = 50,000, on the state after one step.
fn stages(c: &mut Criterion) {
    let (train, _) = sets();
    let x = cpu::normalize_images(&train);
    let y = &train.labels;
    let p = Params::init(Layout::MNIST, 0);
    let mut ws = Workspace::new(p.layout, N);
    cpu::forward(&p, &x, y, &mut ws);
    cpu::backward(&p, &x, &mut ws);
    let (w1, b1) = p.layer(0);
    let (w2, b2) = p.layer(1);
    let mut g = c.benchmark_group("stage");
    g.sample_size(10);
    let mut z1 = vec![0f32; N * H];
    let mac = |m: usize, k: usize, n: usize| Throughput::Elements(2 * (m * k * n) as u64);
    g.throughput(mac(N, I, H));
    g.bench_function("fwd_z1_xw1t", |bn| {
        bn.iter(|| cpu::linear(&mut z1, View::row_major(&x, N, I), w1, b1))
    });
    let mut h = vec![0f32; N * H];
    g.throughput(Throughput::Elements((N * H) as u64));
    g.bench_function("fwd_relu", |bn| bn.iter(|| cpu::relu(&z1, &mut h)));
    let mut z2 = vec![0f32; N * C];
    g.throughput(mac(N, H, C));
    g.bench_function("fwd_z2_hw2t", |bn| {
        bn.iter(|| cpu::linear(&mut z2, View::row_major(&h, N, H), w2, b2))
    });
    let (mut loss, mut correct, mut dz2) = (vec![0f32; N], vec![0u32; N], vec![0f32; N * C]);
    g.throughput(Throughput::Elements((N * C) as u64));
    g.bench_function("softmax_xent", |bn| {
        bn.iter(|| cpu::softmax_xent(&z2, y, N, &mut loss, &mut correct, &mut dz2))
    });
    let mut dw2 = vec![0f32; C * H];
    g.throughput(mac(C, N, H));
    g.bench_function("bwd_dw2_dz2t_h", |bn| {
        bn.iter(|| {
            let a = View::row_major(&dz2, N, C).t();
            cpu::matmul(&mut dw2, a, View::row_major(&h, N, H), false)
        })
    });
    let mut dh = vec![0f32; N * H];
    g.throughput(mac(N, C, H));
    g.bench_function("bwd_dh_dz2_w2", |bn| {
        bn.iter(|| {
            let b = View::row_major(w2, C, H);
            cpu::matmul(&mut dh, View::row_major(&dz2, N, C), b, false)
        })
    });
    let mut dz1 = vec![0f32; N * H];
    g.throughput(Throughput::Elements((N * H) as u64));
    g.bench_function("bwd_relu", |bn| {
        bn.iter(|| cpu::relu_backward(&dh, &z1, &mut dz1))
    });
    let mut dw1 = vec![0f32; H * I];
    g.throughput(mac(H, N, I));
    g.bench_function("bwd_dw1_dz1t_x", |bn| {
        bn.iter(|| {
            let a = View::row_major(&dz1, N, H).t();
            cpu::matmul(&mut dw1, a, View::row_major(&x, N, I), false)
        })
    });
    let mut db1 = vec![0f32; H];
    g.throughput(Throughput::Elements((N * H) as u64));
    g.bench_function("bwd_db1_colsum", |bn| {
        bn.iter(|| cpu::reduce_cols(&dz1, H, &mut db1))
    });
    let u = SparseImages::from_normalized(&x, I).expect("u8 pixels");
    let (wt, cc) = cpu_sparse::first_layer_consts(w1, b1, I);
    // Sparse products: FLOPs counted as the dense product's, so the figure compares.
    g.throughput(mac(N, I, H));
    g.bench_function("sparse_fwd_z1_1thread", |bn| {
        bn.iter(|| cpu_sparse::forward_rows(&u, 0, &wt, &cc, &mut z1))
    });
    let mut s = vec![0f32; I * H];
    g.bench_function("sparse_bwd_dw1_1thread", |bn| {
        bn.iter(|| cpu_sparse::grad_rows(&u, 0, &dz1, H, &mut s))
    });
    let grads = ws.grads.clone();
    let mut params = p.data.clone();
    let mut st = RpropState::for_variant(params.len(), Variant::IrpropPlus, &Hyper::default());
    g.throughput(Throughput::Elements(params.len() as u64));
    g.bench_function("optimizer_irprop_plus", |bn| {
        bn.iter(|| {
            let h = Hyper::default();
            cpu::optimizer(Variant::IrpropPlus, &h, &mut params, &grads, &mut st, 1.0)
        })
    });
    // The whole step's two passes, reference vs fused.
    let step_flops = Throughput::Elements(2 * N as u64 * (I * H * 2 + H * C * 3) as u64);
    g.throughput(step_flops.clone());
    g.bench_function("fwd_bwd_reference", |bn| {
        bn.iter(|| {
            cpu::forward(&p, &x, y, &mut ws);
            cpu::backward(&p, &x, &mut ws)
        })
    });
    g.bench_function("fwd_bwd_fused_dense", |bn| {
        bn.iter(|| cpu_fast::train_pass(&p, Input::dense(&x), y, &mut ws))
    });
    g.bench_function("fwd_bwd_fused_sparse", |bn| {
        let input = Input {
            x: &x,
            sparse: Some(&u),
        };
        bn.iter(|| cpu_fast::train_pass(&p, input, y, &mut ws))
    });
    g.finish();
}

criterion_group!(benches, epoch, stages);
criterion_main!(benches);
