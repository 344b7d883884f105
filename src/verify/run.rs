//! The per-step `verify` run: GPU steps of a config (full batch or the first epoch's
//! mini-batches), each checked against the CPU reference ([`check_step`]); L-BFGS goes to
//! [`super::lbfgs`].

use std::path::Path;

use anyhow::Result;

use super::compare::{check_step, Tally};
use crate::backend::{epoch_order, Backend, Batch};
use crate::config::Config;
use crate::cpu;
use crate::gpu::{GpuBackend, GpuOptions};
use crate::trainer::{initial_params, load_train_eval};

/// The GPU backend `verify` checks; without an adapter, an error that says verify needs
/// one (the adapter error's hint, `--backend cpu`, is for train: verify has no CPU run).
fn open_gpu(
    train: &crate::data::Dataset,
    eval: &crate::data::Dataset,
    params: crate::model::Params,
    cfg: &Config,
    gpu_opts: &GpuOptions,
) -> Result<GpuBackend> {
    GpuBackend::new(train, eval, params, cfg.optimizer, cfg.hyper(), gpu_opts).map_err(|e| {
        let none = e.chain().any(|c| {
            matches!(
                c.downcast_ref::<crate::gpu::AdapterError>(),
                Some(crate::gpu::AdapterError::NoAdapter)
            )
        });
        match none {
            true => anyhow::anyhow!(
                "verify compares the GPU backend with the CPU reference, so it needs a GPU adapter, and wgpu found none; install a Vulkan driver (without a GPU, Mesa's software one: `apt-get install mesa-vulkan-drivers`)"
            ),
            false => e.context("verify needs the GPU backend"),
        }
    })
}

/// Runs the `verify` subcommand: `steps` GPU steps of `cfg` on the data in `data_dir`, each
/// checked against the CPU reference.
pub fn run(
    cfg: &Config,
    data_dir: &Path,
    init_weights: Option<&Path>,
    steps: usize,
    gpu_opts: &GpuOptions,
) -> Result<()> {
    if steps == 0 {
        // Zero steps would compare nothing and pass.
        anyhow::bail!("--steps 0: verify compares at least one step; give --steps 1 or more");
    }
    let (train, eval) = load_train_eval(data_dir, cfg)?;
    // Refused up front, as `train` does.
    cfg.check_memory(train.features(), crate::data::CLASSES)?;
    let layout = cfg.layout(train.features(), crate::data::CLASSES);
    let params = initial_params(init_weights, layout, cfg.seed)?;
    let hyper = cfg.hyper();
    let mut gpu = open_gpu(&train, &eval, params, cfg, gpu_opts)?;
    let x = cpu::normalize_images(&train);
    // Mini-batch configs check the first epoch's batches, in the trainer's order.
    let n = train.len();
    let order = epoch_order(n, cfg.seed, 1);
    let batches: Vec<&[u32]> = if cfg.minibatch() {
        order.chunks(cfg.train_batch_size.max(1)).collect()
    } else {
        Vec::new()
    };
    println!(
        "verify: {} ({}) on {}, {} train images{}, {} steps; CPU re-synced to the GPU state before each step",
        cfg.optimizer,
        layout.describe(),
        gpu.name(),
        n,
        if batches.is_empty() {
            String::new()
        } else {
            format!(" in mini-batches of {}", cfg.train_batch_size)
        },
        steps
    );
    println!("tolerances: max|gpu-cpu|/max|cpu| per tensor as listed; the Rprop update must be bit-identical");
    if cfg.optimizer.is_multi_eval() {
        return super::lbfgs::run(&mut gpu, (&x, &train.labels), &hyper, steps);
    }
    let mut tally = Tally::default();
    for step in 1..=steps {
        let p = gpu.params()?;
        let st = gpu.state()?;
        let diffs = if batches.is_empty() {
            let dump = gpu.debug_step()?;
            let d = check_step(&p, &st, &dump, &x, &train.labels, cfg.optimizer, &hyper);
            (d, dump.stats)
        } else {
            let rows = batches[(step - 1) % batches.len()];
            let f = layout.inputs;
            let xb: Vec<f32> = rows
                .iter()
                .flat_map(|&r| &x[r as usize * f..(r as usize + 1) * f])
                .copied()
                .collect();
            let yb: Vec<u8> = rows.iter().map(|&r| train.labels[r as usize]).collect();
            let dump = gpu.debug_step_on(Batch::Rows(rows))?;
            let d = check_step(&p, &st, &dump, &xb, &yb, cfg.optimizer, &hyper);
            (d, dump.stats)
        };
        let (diffs, stats) = diffs;
        println!(
            "step {step}: train loss {:.6} (gpu), accuracy {:.4}",
            stats.loss,
            stats.accuracy()
        );
        tally.add(&format!("step {step}"), &diffs);
    }
    tally.finish(steps)
}
