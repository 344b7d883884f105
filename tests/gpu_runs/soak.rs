//! 200 small GPU epochs: neither host memory nor (on lavapipe, where device memory is host
//! memory) GPU memory grows. The epochs run in a process of their own (this binary run again
//! for this one test), so the RSS measured is theirs, not that of the tests beside them.

use rprop_lab::backend::Backend;
use rprop_lab::gpu::{GpuBackend, GpuOptions};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, Variant};

use crate::common::gpu::GpuTest;
use crate::support::sets;

const NAME: &str = "soak::memory_does_not_grow_over_200_epochs";

pub const TESTS: &[GpuTest] = &[(NAME, memory_does_not_grow_over_200_epochs)];

/// Set in the process that runs the epochs.
const ALONE: &str = "RPROP_LAB_TEST_SOAK_ALONE";

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    s.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4
}

fn memory_does_not_grow_over_200_epochs() {
    if std::env::var_os(ALONE).is_some() {
        return soak();
    }
    let o = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--test-threads", "1"])
        .env(ALONE, "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    eprint!("{text}");
    assert!(o.status.success(), "the soak process failed");
    assert!(text.contains("1 passed"), "the soak did not run: {text}");
}

fn soak() {
    let (train, eval) = sets(500, 200);
    let (p, v, h) = (
        Params::init(Layout::MNIST, 0),
        Variant::IrpropPlus,
        Hyper::default(),
    );
    let mut b = GpuBackend::new(&train, &eval, p, v, h, &GpuOptions::default()).unwrap();
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
