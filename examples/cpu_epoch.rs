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

use rprop_lab::backend::{Backend, EpochStats};
use rprop_lab::cpu::fused::CpuMatmul;
use rprop_lab::cpu::CpuBackend;
use rprop_lab::data::{self, Dataset, Part};
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

/// The command line: epochs, strategies, JSON output, and whether to time L-BFGS too.
struct Args {
    epochs: usize,
    choices: Vec<CpuMatmul>,
    json: bool,
    with_lbfgs: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        epochs: 20,
        choices: vec![CpuMatmul::Dense],
        json: false,
        with_lbfgs: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--epochs" => a.epochs = args.next().unwrap_or_default().parse()?,
            "--matmul" => {
                a.choices = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|s| s.parse().map_err(anyhow::Error::msg))
                    .collect::<anyhow::Result<_>>()?
            }
            "--json" => a.json = true,
            "--lbfgs" => a.with_lbfgs = true,
            _ => {
                anyhow::bail!("usage: cpu_epoch [--epochs N] [--matmul dense,sparse,auto] [--json]")
            }
        }
    }
    anyhow::ensure!(a.epochs > 0, "--epochs must be positive");
    Ok(a)
}

/// One timed configuration: its strategy, backend, and epoch wall and CPU times.
struct Run {
    choice: CpuMatmul,
    b: CpuBackend,
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

/// A backend per strategy (iRprop+), and an L-BFGS one with the first when asked.
fn runs(a: &Args, train: &Dataset, eval: &Dataset) -> Vec<Run> {
    let run = |choice: CpuMatmul, v: Variant, h: Hyper| Run {
        choice,
        b: CpuBackend::new(train, eval, Params::init(Layout::MNIST, 0), v, h).with_matmul(choice),
        wall: Vec::new(),
        cpu: Vec::new(),
    };
    let mut out: Vec<Run> = a
        .choices
        .iter()
        .map(|&c| run(c, Variant::IrpropPlus, Hyper::default()))
        .collect();
    if a.with_lbfgs {
        let v = Variant::Lbfgs;
        out.push(run(a.choices[0], v, v.defaults()));
    }
    out
}

/// One warm-up epoch each (page faults, thread pool start), then `epochs` timed ones in
/// turn; the last epoch's stats of each.
fn time_runs(runs: &mut [Run], epochs: usize) -> anyhow::Result<Vec<EpochStats>> {
    for r in runs.iter_mut() {
        r.b.epoch()?;
    }
    let mut last = Vec::new();
    for _ in 0..epochs {
        last.clear();
        for r in runs.iter_mut() {
            let (t, c) = (Instant::now(), cpu_seconds());
            let s = r.b.epoch()?;
            r.wall.push(t.elapsed().as_secs_f64());
            if let (Some(c0), Some(c1)) = (c, cpu_seconds()) {
                r.cpu.push(c1 - c0);
            }
            last.push(s);
        }
    }
    Ok(last)
}

/// One line (or JSON object) per run.
fn report(runs: &mut [Run], last: &[EpochStats], a: &Args) {
    let (epochs, threads) = (
        a.epochs,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    for (r, s) in runs.iter_mut().zip(last) {
        let w = median(&mut r.wall);
        let c = if r.cpu.is_empty() {
            f64::NAN
        } else {
            median(&mut r.cpu)
        };
        let (choice, b) = (r.choice, &r.b);
        let name = match b.lbfgs {
            Some(_) => format!("lbfgs ({choice:?}, {} evals/epoch)", s.grad_evals).to_lowercase(),
            None => format!("{choice:?}").to_lowercase(),
        };
        if a.json {
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
}

fn main() -> anyhow::Result<()> {
    let a = parse_args()?;
    let learn = data::load(std::path::Path::new("data/mnist"), Part::Learn)?;
    let (train, eval) = data::split(&learn, 50_000, 10_000).map_err(anyhow::Error::msg)?;
    let mut runs = runs(&a, &train, &eval);
    let last = time_runs(&mut runs, a.epochs)?;
    report(&mut runs, &last, &a);
    Ok(())
}
