//! 200 small GPU epochs (in a test binary of its own, so the RSS it reads is its own):
//! neither host memory nor (on lavapipe, where device memory is host memory) GPU memory
//! grows. Without an adapter: reported as ignored (failed when a GPU is required, see
//! tests/common/gpu.rs).

mod common;

use rprop_lab::backend::Backend;
use rprop_lab::data::{self, Part};
use rprop_lab::gpu::{GpuBackend, GpuOptions};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, Variant};

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    s.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4
}

fn gpu_soak_200_epochs_memory_does_not_grow() {
    let learn = data::load(&common::mnist_dir(), Part::Learn).unwrap();
    let (train, eval) = data::split(&learn, 500, 200).unwrap();
    drop(learn);
    let mut b = GpuBackend::new(
        &train,
        &eval,
        Params::init(Layout::MNIST, 0),
        Variant::IrpropPlus,
        Hyper::default(),
        &GpuOptions::default(),
    )
    .unwrap();
    // Warm-up, including a weights read-back as the trainer does on a new best.
    for _ in 0..20 {
        b.epoch().unwrap();
        b.params().unwrap();
    }
    let before = rss_kib();
    for _ in 0..200 {
        let s = b.epoch().unwrap();
        assert!(s.train.loss.is_finite());
        b.params().unwrap();
    }
    let after = rss_kib();
    eprintln!("RSS before {before} KiB, after 200 GPU epochs {after} KiB");
    assert!(
        after < before + 8192,
        "memory grew from {before} KiB to {after} KiB"
    );
}

fn main() {
    common::gpu::main(&[(
        "gpu_soak_200_epochs_memory_does_not_grow",
        gpu_soak_200_epochs_memory_does_not_grow,
    )]);
}
