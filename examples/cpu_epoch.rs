//! Times the report's epoch on the CPU backend: one full-batch step on 50,000 MNIST images
//! plus the 10,000-image eval pass, for each first-layer matmul strategy asked for.
//!
//! ```text
//! cargo run --release --example cpu_epoch -- [--epochs 20] [--matmul dense,sparse] [--json] [--lbfgs]
//! ```
//!
//! `--lbfgs` also times an `lbfgs` epoch (one torch-default step: 20 passes) with the first
//! strategy, in the same turns, and prints its time per gradient evaluation.
//!
//! The strategies take turns epoch by epoch so they see the same machine load. Per strategy
//! it prints the median wall time of an epoch and its median CPU time (all threads, from
//! /proc/self/task/*/schedstat on Linux): on a machine shared with other work the wall time
//! grows with the load while the CPU time stays close to the unloaded cost. `--json` prints
//! one JSON object per strategy (read by tools/cpu_vs_torch.py).

use std::time::Instant;

use rprop_lab::backend::Backend;
use rprop_lab::cpu::fused::CpuMatmul;
use rprop_lab::cpu::CpuBackend;
use rprop_lab::data::{self, Part};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, Variant};

/// CPU time used so far by all of this process's threads, in seconds (None off Linux).
fn cpu_seconds() -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 * 1e-9)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let (mut epochs, mut choices, mut json) = (20usize, vec![CpuMatmul::Dense], false);
    let mut with_lbfgs = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--epochs" => epochs = args.next().unwrap_or_default().parse()?,
            "--matmul" => {
                choices = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|s| s.parse().map_err(anyhow::Error::msg))
                    .collect::<anyhow::Result<_>>()?
            }
            "--json" => json = true,
            "--lbfgs" => with_lbfgs = true,
            _ => {
                anyhow::bail!("usage: cpu_epoch [--epochs N] [--matmul dense,sparse,auto] [--json]")
            }
        }
    }
    anyhow::ensure!(epochs > 0, "--epochs must be positive");
    let learn = data::load(std::path::Path::new("data/mnist"), Part::Learn)?;
    let (train, eval) = data::split(&learn, 50_000, 10_000).map_err(anyhow::Error::msg)?;
    let mut runs: Vec<(CpuMatmul, CpuBackend, Vec<f64>, Vec<f64>)> = choices
        .iter()
        .map(|&c| {
            let p = Params::init(Layout::MNIST, 0);
            let b = CpuBackend::new(&train, &eval, p, Variant::IrpropPlus, Hyper::default())
                .with_matmul(c);
            (c, b, Vec::new(), Vec::new())
        })
        .collect();
    if with_lbfgs {
        let p = Params::init(Layout::MNIST, 0);
        let v = Variant::Lbfgs;
        let b = CpuBackend::new(&train, &eval, p, v, v.defaults()).with_matmul(choices[0]);
        runs.push((choices[0], b, Vec::new(), Vec::new()));
    }
    // One warm-up epoch each (page faults, thread pool start), then the timed ones in turn.
    for (_, b, _, _) in runs.iter_mut() {
        b.epoch()?;
    }
    let mut last = Vec::new();
    for _ in 0..epochs {
        last.clear();
        for (_, b, wall, cpu) in runs.iter_mut() {
            let (t, c) = (Instant::now(), cpu_seconds());
            let s = b.epoch()?;
            wall.push(t.elapsed().as_secs_f64());
            if let (Some(c0), Some(c1)) = (c, cpu_seconds()) {
                cpu.push(c1 - c0);
            }
            last.push(s);
        }
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for ((choice, b, wall, cpu), s) in runs.iter_mut().zip(&last) {
        let (w, c) = (
            median(wall),
            if cpu.is_empty() {
                f64::NAN
            } else {
                median(cpu)
            },
        );
        let name = match b.lbfgs {
            Some(_) => format!("lbfgs ({choice:?}, {} evals/epoch)", s.grad_evals).to_lowercase(),
            None => format!("{choice:?}").to_lowercase(),
        };
        if json {
            println!(
                "{{\"matmul\":\"{name}\",\"backend\":\"{}\",\"epochs\":{epochs},\"threads\":{threads},\"wall_s\":{w:.6},\"cpu_s\":{c:.6},\"eval_acc\":{:.4}}}",
                b.name(),
                s.eval.accuracy()
            );
        } else {
            println!(
                "{name:>6}: epoch {:.1} ms median wall, {:.1} ms CPU ({threads} threads); {} ; eval acc after {} epochs {:.4}",
                w * 1e3,
                c * 1e3,
                b.name(),
                epochs + 1,
                s.eval.accuracy()
            );
        }
    }
    Ok(())
}
