//! The seam between the trainer and the hardware: a backend owns the data, the parameters,
//! and the optimizer state, and runs optimizer steps and eval passes; the trainer runs the epochs
//! ([`crate::cpu::CpuBackend`], [`crate::gpu::GpuBackend`]) and does not know which it drives.

use anyhow::Result;

use crate::model::{Layout, Params};
// PassStats lives in a leaf module so the passes that fill it need not import the backend.
use crate::optim::{Hyper, OptimState, Variant};
pub use crate::pass_stats::PassStats;
use crate::telemetry::LayerTelemetry;

/// What one epoch reports: the train pass (the forward pass of the step, before the update)
/// and the eval pass (after the update).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpochStats {
    pub train: PassStats,
    pub eval: PassStats,
    /// Forward+backward passes over the train set the epoch made (1 but for L-BFGS).
    pub grad_evals: u32,
}

/// The train rows one optimizer step sees.
#[derive(Clone, Copy, Debug)]
pub enum Batch<'a> {
    /// The whole train set, in order (full-batch training).
    Full,
    /// These rows of the train set, in this order (a mini-batch of a shuffled epoch).
    Rows(&'a [u32]),
}

/// Where a run starts: the parameters, the optimizer state (fresh or resumed), the optimizer
/// and its settings. Both backends are built from one (`with_state`) and restarted with one.
#[derive(Clone, Debug)]
pub struct RunStart {
    pub params: Params,
    pub state: OptimState,
    pub variant: Variant,
    pub hyper: Hyper,
}

impl RunStart {
    pub fn new(params: Params, state: OptimState, variant: Variant, hyper: Hyper) -> RunStart {
        RunStart {
            params,
            state,
            variant,
            hyper,
        }
    }

    /// A start with a fresh optimizer state for `params`.
    pub fn fresh(params: Params, variant: Variant, hyper: Hyper) -> RunStart {
        let state = OptimState::for_variant(params.data.len(), variant, &hyper);
        RunStart::new(params, state, variant, hyper)
    }

    /// Fails unless the parameters have layout `built`, the one the backend was built for.
    pub fn check_layout(&self, built: Layout) -> Result<()> {
        anyhow::ensure!(
            self.params.layout == built,
            "restart with the network {} but the backend was built for {}",
            self.params.layout.describe(),
            built.describe()
        );
        Ok(())
    }
}

/// A backend at step level: it holds the uploaded sets, the parameters, the optimizer state
/// and a copy of the best parameters; the trainer drives epochs, shuffles and checkpoints.
/// A GPU backend may queue steps and run them with the eval pass of [`Backend::end_epoch`]
/// (one submission, a few bytes read back per epoch).
pub trait Backend {
    /// A short description, e.g. "cpu (2 threads)" or "gpu: llvmpipe (Vulkan)".
    fn name(&self) -> String;
    /// Number of train samples (the rows a [`Batch::Rows`] indexes).
    fn train_len(&self) -> usize;
    /// One optimizer step on `batch`: forward, loss, gradient, update. Its loss and correct
    /// count (at the weights before the update) add to the epoch's train stats.
    fn train_step(&mut self, batch: Batch) -> Result<()>;
    /// Ends an epoch: a forward pass over the eval set with the current weights; returns it
    /// with the train stats gathered since the last call (sample-weighted mean loss).
    fn end_epoch(&mut self) -> Result<EpochStats>;
    /// Keeps a copy of the current parameters as the best ones (on the device for a GPU).
    fn keep_best(&mut self) -> Result<()>;
    /// The parameters last kept by [`Backend::keep_best`] (a read-back on a GPU).
    fn best_params(&mut self) -> Result<Params>;
    /// Current parameters (a read-back on a GPU).
    fn params(&mut self) -> Result<Params>;
    /// Current optimizer state (a read-back on a GPU).
    fn state(&mut self) -> Result<OptimState>;
    /// Starts a new run on the same data: fresh parameters, optimizer state and variant,
    /// keeping what is costly to rebuild (a GPU's device, pipelines and uploaded images).
    /// Ends bit-identical to a run on a newly built backend.
    fn restart(&mut self, start: RunStart) -> Result<()>;
    /// Rprop telemetry rows (one per layer) of the epochs ended since the last call, oldest
    /// first; empty for other optimizers. A GPU keeps them on the device until this call,
    /// which the trainer makes only where it reads weights back anyway.
    fn take_telemetry(&mut self) -> Result<Vec<Vec<LayerTelemetry>>> {
        Ok(Vec::new())
    }
    /// Where and how it computes (backend, adapter, matmul strategies), for config.json.
    fn settings(&self) -> crate::config::RunSettings {
        crate::config::RunSettings::default()
    }
    /// Host/device traffic over a run of `epochs` epochs, for the closing note (GPU only).
    fn traffic_note(&self, _epochs: usize) -> Option<String> {
        None
    }
    /// One full-batch epoch: a step on the whole train set, then the eval pass (tests and
    /// benches; the trainer drives mini-batches itself).
    fn epoch(&mut self) -> Result<EpochStats> {
        self.train_step(Batch::Full)?;
        self.end_epoch()
    }
}

/// The order of the train rows in mini-batch epoch `epoch` (1-based): a Fisher-Yates shuffle
/// with the portable generator, seeded from `seed` and the epoch, so a resumed run sees the
/// same batches. One shuffle for every backend.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut rng = crate::rng::Rng::new(seed ^ epoch.wrapping_mul(0x9E37_79B9));
    for i in (1..n).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    order
}
