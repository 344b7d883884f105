//! A soak test in its own test binary, so no other test's allocations move the RSS it reads:
//! 200 small epochs (with every checkpoint and metrics write) and memory does not grow.

#[path = "../common/mod.rs"]
mod common;

use rprop_lab::config::Config;
use rprop_lab::cpu::CpuBackend;
use rprop_lab::data::{self, Part};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::Variant;
use rprop_lab::trainer::{self, Start};

fn small_sets() -> (data::Dataset, data::Dataset) {
    let learn = data::load(&common::mnist_dir(), Part::Learn).unwrap();
    data::split(&learn, 500, 200).unwrap()
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

#[test]
fn soak_200_epochs_memory_does_not_grow() {
    let (train, eval) = small_sets();
    let mut cfg = Config::report(Variant::IrpropPlus);
    let d = tempfile::tempdir().unwrap();
    let opts = common::quiet_run(d.path().to_path_buf());
    // Warm up (allocator pools, first files), then 200 epochs with all their file writes.
    cfg.epochs = 20;
    let mut b = CpuBackend::new(
        &train,
        &eval,
        Params::init(Layout::MNIST, 0),
        cfg.optimizer,
        cfg.hyper(),
    );
    trainer::train(&mut b, &cfg, &opts, Start::default()).unwrap();
    let before = rss_kib();
    cfg.epochs = 220;
    let (start, _, _) = Start::resume(d.path(), Layout::MNIST.total()).unwrap();
    let run = trainer::train(&mut b, &cfg, &opts, start).unwrap();
    assert_eq!(run.metrics.epochs.len(), 220);
    let after = rss_kib();
    eprintln!("RSS before {before} KiB, after 200 more epochs {after} KiB");
    assert!(
        after < before + 4096,
        "memory grew from {before} KiB to {after} KiB"
    );
}
