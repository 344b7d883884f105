//! `rprop-lab verify`: the GPU kernels against the CPU reference, step by step.
//!
//! Rprop only looks at gradient signs, so a 1-ulp difference can flip a sign and the two
//! trajectories then drift apart for good. Comparing two free-running trainings would thus
//! test the drift, not the kernels. Instead, before each step the CPU is re-synced to the
//! GPU's current weights and optimizer state, and each step compares every intermediate of
//! the GPU step with the CPU's computed from the same inputs:
//!
//! * forward/backward tensors: max absolute difference, and the max relative difference
//!   normalized by the tensor's largest CPU magnitude (`max|g - c| / max|c|`), which stays
//!   meaningful where individual entries cross zero; PASS if the latter is within the
//!   tensor's tolerance ([`tolerance`]);
//! * the Rprop update (weights, step sizes, previous gradients and changes, E_{t-1}):
//!   cpu::optimizer applied to the GPU's gradients and loss must match bit for bit.
//!
//! [`compare`] holds the comparisons, [`run`] the per-step run, [`lbfgs`] the run for
//! L-BFGS, whose step makes several evaluations.

mod compare;
mod lbfgs;
mod run;

pub use self::compare::{
    check_step, diff, exact, tolerance, Diff, Tally, VerifyFailed, UPDATE_TOL,
};
pub use self::run::run;
