//! GPU runs end to end, through the trainer or the binary: training on deep nets and
//! mini-batches, `verify`, `--resume`, errors (unknown adapter, lost device), the recorded
//! settings a run's numbers follow from, and a 200-epoch soak.
//!
//! Without an adapter these tests are reported as ignored (failed when a GPU is required:
//! `RPROP_LAB_REQUIRE_GPU=1`, set by .ci/run, or CI=true; see tests/common/gpu.rs).

#[path = "../common/mod.rs"]
mod common;

mod compare_backends;
mod errors;
mod resume;
mod settings;
mod soak;
mod support;
mod training;
mod verify;

fn main() {
    let gpu = [
        training::TESTS,
        verify::TESTS,
        resume::TESTS,
        errors::TESTS,
        settings::TESTS,
        soak::TESTS,
        compare_backends::TESTS,
    ]
    .concat();
    common::gpu::main(&gpu, verify::CPU_TESTS)
}
