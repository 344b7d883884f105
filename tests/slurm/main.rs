//! Sweeps on Slurm (src/slurm.rs): the batch script of a trial array (its `#SBATCH` lines,
//! quoting, refused values), what the script does with each signal (run by bash with a
//! stand-in trial and a fake `scontrol`), `sbatch` missing or failing, `sweep --executor
//! slurm` with stand-in sbatch and squeue programs, and, on the real daemons, an array whose
//! tasks are requeued, signalled, cancelled and failed, and a sweep of six trials, one
//! requeued mid-trial, ending with the local executor's weights.
//!
//! Without `sbatch` or a controller the tests on the daemons are reported as ignored
//! (failed when Slurm is required: `RPROP_LAB_REQUIRE_SLURM=1`; see tests/common/slurm.rs).
//! `tools/slurm-local up` starts a one-node cluster on this machine.

#[path = "../common/mod.rs"]
mod common;

mod cluster;
mod render;
mod script_logic;
mod submit;
mod support;
mod sweep_cli;
mod sweep_cluster;

fn main() {
    let always = [
        render::TESTS,
        script_logic::TESTS,
        submit::TESTS,
        sweep_cli::TESTS,
    ]
    .concat();
    let on_the_daemons = [cluster::TESTS, sweep_cluster::TESTS].concat();
    common::slurm::main(&on_the_daemons, &always)
}
