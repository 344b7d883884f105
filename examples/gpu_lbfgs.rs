//! The GPU L-BFGS epoch beside the GPU iRprop+ epoch on the same data, in one run: the
//! L-BFGS epoch (one torch-default step) against its grad_evals x the iRprop+ epoch (one
//! forward+backward+update and the eval pass), the bound docs/performance.md states.
//! `--backend cpu` runs the same comparison on the CPU backend.
//!
//! ```text
//! cargo run --release --example gpu_lbfgs -- [--train 2000] [--eval 500] [--epochs 2]
//!     [--rounds 3] [--irprop 5] [--history-size 100] [--line-search none|strong-wolfe]
//!     [--backend gpu|cpu]
//! ```
//!
//! Each round starts both runs from the same initial weights. Before each L-BFGS epoch the
//! iRprop+ backend runs `--irprop` epochs, and the median of those is the epoch compared
//! against, so both see the same machine load. Per epoch it prints the wall time and the
//! CPU time of all threads (lavapipe's included: on a shared machine the wall time grows
//! with the load, the CPU time much less), the ratio of each, and the step's read-backs;
//! then the median and the spread of the ratio over the rounds.

use std::time::Instant;

use anyhow::{anyhow, Result};
use rprop_lab::backend::{Backend, RunStart};
use rprop_lab::cpu::CpuBackend;
use rprop_lab::data::{self, Dataset, Part};
use rprop_lab::gpu::{GpuBackend, GpuOptions};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::lbfgs::LineSearch;
use rprop_lab::optim::{Hyper, Variant};

/// CPU time used so far by all of this process's threads, in seconds (0 off Linux).
fn cpu_seconds() -> f64 {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").into_iter().flatten() {
        let Ok(task) = task else { continue };
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        ns += stat
            .split_whitespace()
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
    }
    ns as f64 * 1e-9
}

fn load_average() -> String {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The command line.
struct Args {
    train: usize,
    eval: usize,
    epochs: usize,
    rounds: usize,
    irprop: usize,
    history_size: u32,
    line_search: LineSearch,
    cpu: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        train: 2000,
        eval: 500,
        epochs: 2,
        rounds: 3,
        irprop: 5,
        history_size: 100,
        line_search: LineSearch::None,
        cpu: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v = pair
            .get(1)
            .ok_or_else(|| anyhow!("{} needs a value", pair[0]))?;
        match pair[0].as_str() {
            "--train" => a.train = v.parse()?,
            "--eval" => a.eval = v.parse()?,
            "--epochs" => a.epochs = v.parse()?,
            "--rounds" => a.rounds = v.parse()?,
            "--irprop" => a.irprop = v.parse::<usize>()?.max(1),
            "--history-size" => a.history_size = v.parse()?,
            "--backend" => a.cpu = v == "cpu",
            "--line-search" => {
                a.line_search = LineSearch::parse(v).ok_or_else(|| anyhow!("bad {v}"))?
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

/// Wall and CPU seconds of `f`.
fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64, f64)> {
    let (t, c) = (Instant::now(), cpu_seconds());
    let out = f()?;
    Ok((out, t.elapsed().as_secs_f64(), cpu_seconds() - c))
}

/// A backend whose L-BFGS step's read-backs (if it has any) the lines show.
trait Timed: Backend {
    fn reads(&self) -> String;
}

impl Timed for GpuBackend {
    fn reads(&self) -> String {
        self.lbfgs_traffic()
            .map_or(String::new(), |t| format!(", {} read-backs", t.read_backs))
    }
}

impl Timed for CpuBackend {
    fn reads(&self) -> String {
        String::new()
    }
}

/// One L-BFGS epoch against the median of `n` iRprop+ epochs: (wall ratio, CPU ratio).
fn epoch<B: Timed>(lb: &mut B, ir: &mut B, n: usize, label: &str) -> Result<(f64, f64)> {
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let (_, w, c) = timed(|| ir.epoch())?;
        wall.push(w);
        cpu.push(c);
    }
    let (ir_wall, ir_cpu) = (median(wall), median(cpu));
    let (s, w, c) = timed(|| lb.epoch())?;
    let evals = s.grad_evals as f64;
    let (rw, rc) = (w / (evals * ir_wall), c / (evals * ir_cpu));
    println!(
        "{label}: lbfgs {w:6.3} s wall {c:6.3} s cpu, {} evals{} | irprop-plus \
         {ir_wall:6.4} s wall {ir_cpu:6.4} s cpu | ratio {rw:5.2} wall {rc:5.2} cpu",
        s.grad_evals,
        lb.reads()
    );
    Ok((rw, rc))
}

/// The sets and the initial weights.
fn setup(a: &Args) -> Result<(Dataset, Dataset, Params)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let learn = data::load(&dir, Part::Learn)?;
    let (train, eval) = data::split(&learn, a.train, a.eval).map_err(anyhow::Error::msg)?;
    Ok((train, eval, Params::init(Layout::MNIST, 0)))
}

/// The runs' settings: L-BFGS's from the command line, iRprop+'s defaults.
fn settings(a: &Args) -> (Hyper, Hyper) {
    let mut h = Variant::Lbfgs.defaults();
    (h.line_search, h.history_size) = (a.line_search, a.history_size);
    (h, Variant::IrpropPlus.defaults())
}

/// Every round from `init`: each epoch's (wall, CPU) ratios.
fn rounds<B: Timed>(
    lb: &mut B,
    ir: &mut B,
    a: &Args,
    init: &Params,
) -> Result<Vec<Vec<(f64, f64)>>> {
    let (h, ir_h) = settings(a);
    println!(
        "{} | {} train / {} eval images, line search {}, load average {}",
        lb.name(),
        a.train,
        a.eval,
        a.line_search.name(),
        load_average()
    );
    let mut ratios = vec![Vec::new(); a.epochs];
    for round in 1..=a.rounds {
        lb.restart(RunStart::fresh(init.clone(), Variant::Lbfgs, h))?;
        ir.restart(RunStart::fresh(init.clone(), Variant::IrpropPlus, ir_h))?;
        for (e, r) in ratios.iter_mut().enumerate() {
            let label = format!("round {round} epoch {}", e + 1);
            r.push(epoch(lb, ir, a.irprop, &label)?);
        }
    }
    Ok(ratios)
}

/// Per epoch: the median ratio and its spread over the rounds.
fn summary(ratios: &[Vec<(f64, f64)>]) {
    let span = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::MAX, f64::min);
        (lo, v.iter().copied().fold(0.0, f64::max))
    };
    for (e, r) in ratios.iter().enumerate() {
        let wall: Vec<f64> = r.iter().map(|x| x.0).collect();
        let cpu: Vec<f64> = r.iter().map(|x| x.1).collect();
        let ((wl, wh), (cl, ch)) = (span(&wall), span(&cpu));
        println!(
            "epoch {}: lbfgs / (grad_evals x irprop-plus epoch): wall median {:.2} (spread \
             {wl:.2}..{wh:.2}), cpu median {:.2} (spread {cl:.2}..{ch:.2}) over {} rounds",
            e + 1,
            median(wall.clone()),
            median(cpu.clone()),
            r.len()
        );
    }
}

fn main() -> Result<()> {
    let a = args()?;
    let (train, eval, p) = setup(&a)?;
    let (h, ir_h) = settings(&a);
    let (l, i) = (Variant::Lbfgs, Variant::IrpropPlus);
    let ratios = if a.cpu {
        let mut lb = CpuBackend::new(&train, &eval, p.clone(), l, h);
        let mut ir = CpuBackend::new(&train, &eval, p.clone(), i, ir_h);
        rounds(&mut lb, &mut ir, &a, &p)?
    } else {
        let o = GpuOptions::default();
        let mut lb = GpuBackend::new(&train, &eval, p.clone(), l, h, &o)?;
        let mut ir = GpuBackend::new(&train, &eval, p.clone(), i, ir_h, &o)?;
        rounds(&mut lb, &mut ir, &a, &p)?
    };
    summary(&ratios);
    println!("load average at the end {}", load_average());
    Ok(())
}
