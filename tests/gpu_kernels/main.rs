//! The GPU's arithmetic against its references, in process: every kernel and the whole step
//! against the CPU twin (src/cpu), the optimizer kernel, the backend's state across epochs and
//! restarts, the sparse first layer, Rprop telemetry, L-BFGS's kernels against their CPU
//! twins and its step against torch.
//!
//! Without an adapter these tests are reported as ignored (failed when a GPU is required:
//! `RPROP_LAB_REQUIRE_GPU=1`, set by .ci/run, or CI=true; see tests/common/gpu.rs).

#[path = "../common/mod.rs"]
mod common;

mod backend;
mod harness;
mod lbfgs;
mod lbfgs_kernels;
mod optimizer;
mod sparse;
mod step;
mod support;
mod telemetry;

fn main() {
    let gpu = [
        step::TESTS,
        optimizer::TESTS,
        backend::TESTS,
        sparse::TESTS,
        &sparse::probe_tests(),
        telemetry::TESTS,
        lbfgs::TESTS,
        lbfgs_kernels::TESTS,
    ]
    .concat();
    let cpu = [sparse::CPU_TESTS, harness::CPU_TESTS].concat();
    common::gpu::main(&gpu, &cpu)
}
