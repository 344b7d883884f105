//! rprop-lab: full-batch training of an MLP on MNIST with the Rprop family of optimizers,
//! on a GPU (wgpu + WGSL) or on the CPU reference that checks it.

pub mod backend;
pub mod checkpoint;
pub mod cli;
pub mod compare;
pub mod config;
pub mod cpu;
pub mod data;
pub mod digits;
pub mod fsio;
pub mod gpu;
pub mod limits;
pub mod matmul;
pub mod matmul_kernel;
pub mod metrics;
pub mod model;
pub mod names;
pub mod optim;
pub mod pass_stats;
pub mod plot;
pub mod rng;
pub mod run_folder;
pub mod signals;
pub mod slurm;
pub mod stats;
pub mod sweep;
pub mod telemetry;
pub mod trainer;
pub mod verify;
