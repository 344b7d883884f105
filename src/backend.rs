//! The seam between the trainer and the hardware: a backend owns the data, the parameters
//! and the optimizer state, and runs whole epochs. CPU now ([`crate::cpu::CpuBackend`]),
//! GPU ([`crate::gpu`]) next; the trainer does not know which it drives.

use anyhow::Result;

use crate::model::Params;
use crate::optim::{Hyper, RpropState, Variant};

/// Sums gathered over one pass over a set (the report's `gather_metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PassStats {
    /// Mean cross-entropy over the set.
    pub loss: f32,
    /// Number of samples whose arg-max logit is the label.
    pub correct: u32,
    /// Number of samples.
    pub samples: u32,
}

impl PassStats {
    pub fn accuracy(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.correct as f64 / self.samples as f64
        }
    }
}

/// What one epoch reports: the train pass (the forward pass of the step, before the update)
/// and the eval pass (after the update).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpochStats {
    pub train: PassStats,
    pub eval: PassStats,
}

pub trait Backend {
    /// A short description, e.g. "cpu (gemm, 2 threads)" or "gpu: llvmpipe (Vulkan)".
    fn name(&self) -> String;
    /// One epoch: one full-batch optimizer step on the train set, then a forward pass over
    /// the eval set with the updated weights.
    fn epoch(&mut self) -> Result<EpochStats>;
    /// Current parameters (a read-back on a GPU).
    fn params(&mut self) -> Result<Params>;
    /// Current optimizer state (a read-back on a GPU).
    fn state(&mut self) -> Result<RpropState>;
    /// Starts a new run on the same data: fresh parameters, optimizer state and variant,
    /// keeping what is costly to rebuild (a GPU's device, pipelines and uploaded images).
    /// Ends bit-identical to a run on a newly built backend.
    fn restart(
        &mut self,
        params: Params,
        state: RpropState,
        variant: Variant,
        hyper: Hyper,
    ) -> Result<()>;
    /// Host/device traffic over a run of `epochs` epochs, for the closing note (GPU only).
    fn traffic_note(&self, _epochs: usize) -> Option<String> {
        None
    }
}
