//! One full-batch epoch (50,000 train + 10,000 eval MNIST images) on the GPU and on the CPU
//! in the same run, a mini-batch GPU epoch (50 steps of 1,000 shuffled rows) beside the
//! full-batch one, plus the GPU time of each stage and the GFLOP/s of the matmuls.
//!
//! cargo run --release --example gpu_vs_cpu [-- DATA_DIR [EPOCHS] [tiled|register|texture|sparse]]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use rprop_lab::backend::{epoch_order, Backend, Batch};
use rprop_lab::cpu::CpuBackend;
use rprop_lab::data::{self, Part};
use rprop_lab::gpu::kernels::Stage;
use rprop_lab::gpu::{GpuBackend, GpuOptions};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, Variant};

/// User + system CPU seconds of this process (all threads, lavapipe's included).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the ")" that ends the command name: utime and stime are the 12th and
    // 13th, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Best wall time of `epochs` epochs of `b`, and the best CPU time of this process (all
/// threads, lavapipe's included): on a shared machine the second moves less with the load.
fn time(b: &mut dyn Backend, epochs: usize) -> Result<(f64, f64)> {
    let (mut best, mut best_cpu) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..epochs {
        let t = Instant::now();
        let c0 = cpu_seconds().unwrap_or(f64::NAN);
        b.epoch()?;
        best = best.min(t.elapsed().as_secs_f64());
        best_cpu = best_cpu.min(cpu_seconds().unwrap_or(f64::NAN) - c0);
    }
    Ok((best, best_cpu))
}

/// The full-batch epoch on both backends; returns the GPU's (wall, CPU) times.
fn full_batch(gpu: &mut GpuBackend, cpu: &mut CpuBackend, epochs: usize) -> Result<(f64, f64)> {
    let c0 = gpu.counters();
    let (g, g_cpu) = time(gpu, epochs)?;
    let c1 = gpu.counters();
    let (c, c_cpu) = time(cpu, epochs)?;
    println!(
        "epoch (best of {epochs}): gpu {g:.3}s  cpu {c:.3}s  ratio gpu/cpu {:.2}",
        g / c
    );
    println!(
        "epoch CPU time (all threads): gpu {g_cpu:.2}s  cpu {c_cpu:.2}s  ratio gpu/cpu {:.2}",
        g_cpu / c_cpu
    );
    let per = |n: u64| n / epochs as u64;
    let subs = per(c1.submissions - c0.submissions);
    println!(
        "gpu per epoch: {subs} submission{}, {} bytes read back",
        if subs == 1 { "" } else { "s" },
        per(c1.bytes_read - c0.bytes_read)
    );
    Ok((g, g_cpu))
}

/// A mini-batch epoch as the trainer runs it: the seeded shuffle, 50 steps of 1,000 rows
/// gathered on the device, then the eval pass; against the full-batch one (`full`).
fn mini_batch(gpu: &mut GpuBackend, epochs: usize, (g, g_cpu): (f64, f64)) -> Result<()> {
    let (mut mini, mut mini_cpu) = (f64::INFINITY, f64::INFINITY);
    for e in 1..=epochs as u64 {
        let t = Instant::now();
        let c0 = cpu_seconds().unwrap_or(f64::NAN);
        let order = epoch_order(gpu.train_len(), 0, e);
        for rows in order.chunks(1000) {
            gpu.train_step(Batch::Rows(rows))?;
        }
        gpu.end_epoch()?;
        mini = mini.min(t.elapsed().as_secs_f64());
        mini_cpu = mini_cpu.min(cpu_seconds().unwrap_or(f64::NAN) - c0);
    }
    println!(
        "gpu mini-batch epoch (50 x 1000, best of {epochs}): {mini:.3}s ({mini_cpu:.2}s CPU time)  \
         ratio to full-batch {:.2} (CPU time {:.2})",
        mini / g,
        mini_cpu / g_cpu
    );
    Ok(())
}

/// Per-stage GPU time (each stage alone, repeated in one submission), then the eval pass.
fn stages(gpu: &mut GpuBackend) -> Result<()> {
    let n = 50_000f64;
    let (i, h, k) = (784f64, 128f64, 10f64);
    let stages: [(&str, Stage, f64); 12] = [
        ("Z1 (+relu)", Stage::Z1, 2.0 * n * i * h),
        ("relu", Stage::Relu, 0.0),
        ("Z2", Stage::ZLater, 2.0 * n * h * k),
        ("softmax_xent", Stage::SoftmaxXent, 0.0),
        ("metrics", Stage::Metrics, 0.0),
        ("dW2", Stage::DWLater, 2.0 * n * h * k),
        ("db2", Stage::DBLater, 0.0),
        ("dH", Stage::DH, 2.0 * n * h * k),
        ("relu backward", Stage::ReluBackward, 0.0),
        ("dW1", Stage::DW1, 2.0 * n * i * h),
        ("db1", Stage::DB1, 0.0),
        ("rprop", Stage::Optimizer, 0.0),
    ];
    let reps = 3;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!(
        "  (cpu-time column: GFLOP/s from this process's CPU time / {cores} cores, i.e. what an \
         uncontended run would see when the machine is shared; Linux only)"
    );
    for (name, stage, flops) in stages {
        gpu.run_stages(&[stage], 1)?;
        let t = Instant::now();
        let c0 = cpu_seconds();
        gpu.run_stages(&[stage], reps)?;
        let s = t.elapsed().as_secs_f64() / reps as f64;
        let cs = cpu_seconds()
            .zip(c0)
            .map(|(b, a)| (b - a) / reps as f64 / cores);
        if flops > 0.0 {
            let by_cpu = cs.map_or(String::new(), |c| {
                format!("  cpu-time {:>6.1} GFLOP/s", flops / c.max(1e-9) / 1e9)
            });
            println!(
                "  {name:<14} {:>8.2} ms  {:>6.1} GFLOP/s{by_cpu}",
                s * 1e3,
                flops / s / 1e9
            );
        } else {
            println!("  {name:<14} {:>8.2} ms", s * 1e3);
        }
    }
    let t = Instant::now();
    gpu.run_eval(reps)?;
    println!(
        "  {:<14} {:>8.2} ms",
        "eval pass",
        t.elapsed().as_secs_f64() / reps as f64 * 1e3
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).map_or("data/mnist", String::as_str));
    let epochs: usize = args.get(2).map_or(Ok(5), |s| s.parse())?;
    let kernel = args
        .get(3)
        .map(|s| s.parse())
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let learn = data::load(&dir, Part::Learn)?;
    let (train, eval) = data::split(&learn, 50_000, 10_000).map_err(anyhow::Error::msg)?;
    let params = Params::init(Layout::MNIST, 0);
    let (v, hyper) = (Variant::IrpropPlus, Hyper::default());
    let t = Instant::now();
    let opts = GpuOptions {
        matmul_kernel: kernel,
        verbose: true,
        ..Default::default()
    };
    let mut gpu = GpuBackend::new(&train, &eval, params.clone(), v, hyper, &opts)?;
    println!(
        "gpu: {} (setup {:.2}s)",
        gpu.name(),
        t.elapsed().as_secs_f64()
    );
    let mut cpu = CpuBackend::new(&train, &eval, params, v, hyper);
    let full = full_batch(&mut gpu, &mut cpu, epochs)?;
    mini_batch(&mut gpu, epochs, full)?;
    stages(&mut gpu)
}
