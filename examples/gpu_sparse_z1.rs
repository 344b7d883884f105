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
    let (w1, b1) = p.layer(0);
    let u = SparseImages::from_pixels(&train.images, 784).expect("784 columns");
    let flops = 2.0 * 50_000.0 * 784.0 * 128.0;

    let opts = GpuOptions {
        matmul_kernel: kernel,
        ..Default::default()
    };
    let mut g = GpuBackend::new(
        &train,
        &eval,
        p.clone(),
        Variant::IrpropPlus,
        Hyper::default(),
        &opts,
    )?;
    let mut ctx = GpuContext::new(
        None,
        Needs {
            binding: 64 << 20,
            buffer: 64 << 20,
        },
    )?;
    let probe = SparseZ1Probe::new(&ctx, &u, w1, b1)?;
    println!(
        "{}; density {:.3}; {reps} reps each, taking turns",
        g.name(),
        u.density()
    );
    // Warm-up, then all take turns; each figure is the best of 3 rounds.
    let kinds = [
        SparseKernel::Buffer,
        SparseKernel::Texture,
        SparseKernel::Block,
    ];
    g.run_stages(&[Stage::Z1], 1)?;
    for k in kinds {
        probe.run(&mut ctx, k, 1)?;
    }
    let mut best = [f64::INFINITY; 4];
    let mut diffs = [0f32; 3];
    let (wt, c) = sparse::first_layer_consts(w1, b1, 784);
    let mut want = vec![0f32; 50_000 * 128];
    sparse::forward_rows(&u, 0, &wt, &c, &mut want);
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for round in 0..3 {
        let t = Instant::now();
        g.run_stages(&[Stage::Z1], reps)?;
        best[0] = best[0].min(t.elapsed().as_secs_f64() / reps as f64);
        for (i, &k) in kinds.iter().enumerate() {
            let t = Instant::now();
            probe.run(&mut ctx, k, reps)?;
            best[i + 1] = best[i + 1].min(t.elapsed().as_secs_f64() / reps as f64);
            if round == 0 {
                let z = probe.read_z(&mut ctx)?;
                let d = z
                    .iter()
                    .zip(&want)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                diffs[i] = d / scale;
            }
        }
    }
    let names = [
        "dense (backend Z1 stage, +relu)",
        "sparse_z1 (W1ᵀ buffer)",
        "sparse_z1_tex (W1ᵀ texture)",
        "block_z1 (zero words skipped)",
    ];
    for (i, (name, s)) in names.iter().zip(best).enumerate() {
        let check = match i {
            0 => String::new(),
            _ => format!("  vs CPU twin {:.1e}", diffs[i - 1]),
        };
        println!(
            "{name:<32} {:8.1} ms  {:6.1} GFLOP/s(-equivalent)  {:.2}x dense{check}",
            s * 1e3,
            flops / s / 1e9,
            s / best[0]
        );
    }
    // dW1 = dZ1ᵀ·X: the backend's DW1 stage vs block_dw1 (+ final sum) on a random dZ1.
    let mut r = Rng::new(1);
    let dz: Vec<f32> = (0..50_000 * 128).map(|_| r.unit() - 0.5).collect();
    let db: Vec<f32> = (0..128)
        .map(|j| (0..50_000).map(|n| dz[n * 128 + j] as f64).sum::<f64>() as f32)
        .collect();
    let probes = [
        BlockDw1Probe::new(&ctx, &u, (&dz, &db), 8, false)?,
        BlockDw1Probe::new(&ctx, &u, (&dz, &db), 8, true)?,
    ];
    g.run_stages(&[Stage::DW1], 1)?;
    let mut s = vec![0f32; 784 * 128];
    sparse::grad_rows(&u, 0, &dz, 128, &mut s);
    let mut want = vec![0f32; 128 * 784];
    sparse::finish_grad(&s, &db, &mut want);
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mut diffs = [0f32; 2];
    for (p, d) in probes.iter().zip(diffs.iter_mut()) {
        p.run(&mut ctx, 1)?;
        let got = p.read_dw(&mut ctx)?;
        *d = got
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
            / scale;
    }
    let mut best = [f64::INFINITY; 3];
    for _ in 0..3 {
        let t = Instant::now();
        g.run_stages(&[Stage::DW1], reps)?;
        best[0] = best[0].min(t.elapsed().as_secs_f64() / reps as f64);
        for (i, p) in probes.iter().enumerate() {
            let t = Instant::now();
            p.run(&mut ctx, reps)?;
            best[i + 1] = best[i + 1].min(t.elapsed().as_secs_f64() / reps as f64);
        }
    }
    let names = [
        "dense (backend DW1 stage)",
        "block_dw1 + final (8 parts)",
        "block_dw1_16 + final (8 parts)",
    ];
    for (i, (name, s)) in names.iter().zip(best).enumerate() {
        let check = match i {
            0 => String::new(),
            _ => format!("  vs CPU twin {:.1e}", diffs[i - 1]),
        };
        println!(
            "{name:<32} {:8.1} ms  {:6.1} GFLOP/s(-equivalent)  {:.2}x dense{check}",
            s * 1e3,
            flops / s / 1e9,
            s / best[0]
        );
    }
    Ok(())
}
