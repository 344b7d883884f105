//! Probe for a `sparse` GPU matmul strategy: Z1 = X·W1ᵀ + b1 (and dW1 = dZ1ᵀ·X with
//! block_dw1) on 50,000 MNIST images from the nonzero u8 pixels (shaders/sparse_first.wgsl, W1ᵀ from a storage buffer or a
//! texture), timed in the same run against the backend's own Z1 stage (its dense strategy,
//! timed and cached per adapter, or `--matmul-kernel`-style as the first argument), and
//! checked against the CPU twin.
//!
//! ```text
//! cargo run --release --features probes --example gpu_sparse_z1 -- [tiled|register|texture] [reps]
//! ```

use std::time::Instant;

use anyhow::Result;
use rprop_lab::backend::Backend;
use rprop_lab::cpu::sparse::{self, SparseImages};
use rprop_lab::data::{self, Part};
use rprop_lab::gpu::kernels::Stage;
use rprop_lab::gpu::ops::sparse_probes::{BlockDw1Probe, SparseKernel, SparseZ1Probe};
use rprop_lab::gpu::{GpuBackend, GpuContext, GpuOptions, Needs};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, Variant};
use rprop_lab::rng::Rng;

/// FLOPs of Z1 (and of dW1) on 50,000 images.
const FLOPS: f64 = 2.0 * 50_000.0 * 784.0 * 128.0;

/// The largest difference from `want`, relative to its largest value.
fn max_rel(got: &[f32], want: &[f32]) -> f32 {
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = got
        .iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    d / scale
}

/// One line per kernel: time, GFLOP/s, against the first (the backend's stage), and each
/// probe's difference from the CPU twin.
fn print_rows(names: &[&str], best: &[f64], diffs: &[f32]) {
    for (i, (name, s)) in names.iter().zip(best).enumerate() {
        let check = match i {
            0 => String::new(),
            _ => format!("  vs CPU twin {:.1e}", diffs[i - 1]),
        };
        println!(
            "{name:<32} {:8.1} ms  {:6.1} GFLOP/s(-equivalent)  {:.2}x dense{check}",
            s * 1e3,
            FLOPS / s / 1e9,
            s / best[0]
        );
    }
}

/// Z1: the backend's stage against the three sparse kernels, taking turns; each figure is
/// the best of 3 rounds.
fn z1(
    g: &mut GpuBackend,
    ctx: &mut GpuContext,
    u: &SparseImages,
    p: &Params,
    reps: usize,
) -> Result<()> {
    let (w1, b1) = p.layer(0);
    let probe = SparseZ1Probe::new(ctx, u, w1, b1)?;
    let kinds = [
        SparseKernel::Buffer,
        SparseKernel::Texture,
        SparseKernel::Block,
    ];
    g.run_stages(&[Stage::Z1], 1)?;
    for k in kinds {
        probe.run(ctx, k, 1)?;
    }
    let mut best = [f64::INFINITY; 4];
    let mut diffs = [0f32; 3];
    let (wt, c) = sparse::first_layer_consts(w1, b1, 784);
    let mut want = vec![0f32; 50_000 * 128];
    sparse::forward_rows(u, 0, &wt, &c, &mut want);
    for round in 0..3 {
        let t = Instant::now();
        g.run_stages(&[Stage::Z1], reps)?;
        best[0] = best[0].min(t.elapsed().as_secs_f64() / reps as f64);
        for (i, &k) in kinds.iter().enumerate() {
            let t = Instant::now();
            probe.run(ctx, k, reps)?;
            best[i + 1] = best[i + 1].min(t.elapsed().as_secs_f64() / reps as f64);
            if round == 0 {
                diffs[i] = max_rel(&probe.read_z(ctx)?, &want);
            }
        }
    }
    let names = [
        "dense (backend Z1 stage, +relu)",
        "sparse_z1 (W1ᵀ buffer)",
        "sparse_z1_tex (W1ᵀ texture)",
        "block_z1 (zero words skipped)",
    ];
    print_rows(&names, &best, &diffs);
    Ok(())
}

/// dW1 = dZ1ᵀ·X: the backend's DW1 stage against block_dw1 (+ final sum) on a random dZ1.
fn dw1(g: &mut GpuBackend, ctx: &mut GpuContext, u: &SparseImages, reps: usize) -> Result<()> {
    let mut r = Rng::new(1);
    let dz: Vec<f32> = (0..50_000 * 128).map(|_| r.unit() - 0.5).collect();
    let db: Vec<f32> = (0..128)
        .map(|j| (0..50_000).map(|n| dz[n * 128 + j] as f64).sum::<f64>() as f32)
        .collect();
    let probes = [
        BlockDw1Probe::new(ctx, u, (&dz, &db), 8, false)?,
        BlockDw1Probe::new(ctx, u, (&dz, &db), 8, true)?,
    ];
    g.run_stages(&[Stage::DW1], 1)?;
    let mut s = vec![0f32; 784 * 128];
    sparse::grad_rows(u, 0, &dz, 128, &mut s);
    let mut want = vec![0f32; 128 * 784];
    sparse::finish_grad(&s, &db, &mut want);
    let mut diffs = [0f32; 2];
    for (p, d) in probes.iter().zip(diffs.iter_mut()) {
        p.run(ctx, 1)?;
        *d = max_rel(&p.read_dw(ctx)?, &want);
    }
    let mut best = [f64::INFINITY; 3];
    for _ in 0..3 {
        let t = Instant::now();
        g.run_stages(&[Stage::DW1], reps)?;
        best[0] = best[0].min(t.elapsed().as_secs_f64() / reps as f64);
        for (i, p) in probes.iter().enumerate() {
            let t = Instant::now();
            p.run(ctx, reps)?;
            best[i + 1] = best[i + 1].min(t.elapsed().as_secs_f64() / reps as f64);
        }
    }
    let names = [
        "dense (backend DW1 stage)",
        "block_dw1 + final (8 parts)",
        "block_dw1_16 + final (8 parts)",
    ];
    print_rows(&names, &best, &diffs);
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let kernel = args
        .get(1)
        .map(|s| s.parse())
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let reps: usize = args.get(2).map_or(Ok(5), |s| s.parse())?;
    let learn = data::load(std::path::Path::new("data/mnist"), Part::Learn)?;
    let (train, eval) = data::split(&learn, 50_000, 10_000).map_err(anyhow::Error::msg)?;
    let p = Params::init(Layout::MNIST, 0);
    let u = SparseImages::from_pixels(&train.images, 784).expect("784 columns");
    let opts = GpuOptions {
        matmul_kernel: kernel,
        ..Default::default()
    };
    let (v, h) = (Variant::IrpropPlus, Hyper::default());
    let mut g = GpuBackend::new(&train, &eval, p.clone(), v, h, &opts)?;
    let needs = Needs {
        binding: 64 << 20,
        buffer: 64 << 20,
    };
    let mut ctx = GpuContext::new(None, needs)?;
    println!(
        "{}; density {:.3}; {reps} reps each, taking turns",
        g.name(),
        u.density()
    );
    z1(&mut g, &mut ctx, &u, &p, reps)?;
    dw1(&mut g, &mut ctx, &u, reps)
}
