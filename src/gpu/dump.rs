//! The GPU backend's debug and bench entry points: [`GpuBackend::debug_step`] (one training
//! step with every intermediate of every layer read back, for `verify` and the kernel
//! tests), the optimizer kernel alone, and chosen stages run in a loop (benches).

use anyhow::{ensure, Result};

use super::backend::GpuBackend;
use super::buffers::{f32s, slot_stats};
use super::ops::{encode_all, Stage};
use crate::backend::{Backend, Batch, PassStats};
use crate::model::Params;
use crate::optim::{OptimState, StepScalars};

/// Every intermediate of one training step, per layer (input layer first).
#[derive(Clone, Debug)]
pub struct StepDump {
    /// Each layer's pre-activation Z (the last one: the logits).
    pub z: Vec<Vec<f32>>,
    /// Each hidden layer's H = relu(Z).
    pub h: Vec<Vec<f32>>,
    /// Each hidden layer's dLoss/dH.
    pub dh: Vec<Vec<f32>>,
    /// Each layer's dLoss/dZ (the last one: dlogits).
    pub dz: Vec<Vec<f32>>,
    pub loss: Vec<f32>,
    pub correct: Vec<u32>,
    /// Gradients in the flat layout.
    pub grads: Vec<f32>,
    /// Mean loss and correct count of the step's batch, as the GPU reduced them.
    pub stats: PassStats,
    /// Sum of the per-sample losses, as the GPU reduced it.
    pub loss_sum: f32,
    /// Weights and optimizer state after the update.
    pub params: Params,
    pub state: OptimState,
}

impl StepDump {
    /// The first layer's Z (the images' product).
    pub fn z1(&self) -> &[f32] {
        &self.z[0]
    }
    /// The logits.
    pub fn logits(&self) -> &[f32] {
        &self.z[self.z.len() - 1]
    }
}

impl GpuBackend {
    /// True when every mini-batch pass built so far runs its first layer from the images'
    /// texture (gathered on the device by `gather_tex`), as the full train set does.
    pub fn mini_batches_use_textures(&self) -> bool {
        !self.batches.is_empty()
            && self.batches.iter().all(|b| {
                super::ops::input::tex_kernels(&self.kernels, self.layout, &self.s, &b.pass)
                    .is_some()
            })
    }

    /// One training step on `batch` (no eval pass), then every intermediate read back.
    pub fn debug_step_on(&mut self, batch: Batch) -> Result<StepDump> {
        self.flush();
        // The train slot then holds this step's sums alone.
        self.ctx.write(&self.s.metrics, 0, &[0u8; 16]);
        let plan = self.queue_step(batch)?;
        self.flush();
        self.ctx.wait()?;
        let pass = match plan {
            None => &self.train,
            Some(i) => &self.batches[i].pass,
        };
        let n = pass.n;
        let widths: Vec<usize> = self.layout.layer_sizes().iter().map(|s| s.1).collect();
        let mut bufs = Vec::new();
        for (lb, &w) in pass.layers.iter().zip(&widths) {
            bufs.push((lb.z.clone(), lb.h.clone(), lb.dh.clone(), lb.dz.clone(), w));
        }
        let (lossb, correctb) = (pass.loss.clone(), pass.correct.clone());
        let mut d = StepDump {
            z: Vec::new(),
            h: Vec::new(),
            dh: Vec::new(),
            dz: Vec::new(),
            loss: self.read_f32(&lossb, n)?,
            correct: bytemuck::pod_collect_to_vec(&self.ctx.read_buffer(
                &correctb,
                0,
                (n * 4) as u64,
            )?),
            grads: Vec::new(),
            stats: PassStats::default(),
            loss_sum: 0.0,
            params: self.params()?,
            state: self.state()?,
        };
        for (z, h, dh, dz, w) in bufs {
            d.z.push(self.read_f32(&z, n * w)?);
            if let Some(h) = h {
                d.h.push(self.read_f32(&h, n * w)?);
            }
            if let Some(dh) = dh {
                d.dh.push(self.read_f32(&dh, n * w)?);
            }
            if let Some(dz) = dz {
                d.dz.push(self.read_f32(&dz, n * w)?);
            }
        }
        let grads = self.s.grads.clone();
        d.grads = self.read_f32(&grads, self.layout.total())?;
        let metrics = self.s.metrics.clone();
        let m = f32s(&self.ctx.read_buffer(&metrics, 0, 16)?);
        d.stats = PassStats {
            loss: m[1],
            ..slot_stats(&m)
        };
        d.loss_sum = m[0];
        Ok(d)
    }

    /// Runs only the fused rprop kernel (and its loss bookkeeping) with the given gradients
    /// and current loss E_t: the bit-exactness test of the optimizer.
    pub fn debug_rprop(&mut self, grads: &[f32], loss: f32) -> Result<()> {
        ensure!(grads.len() == self.layout.total(), "gradient length");
        self.flush();
        self.ctx
            .write(&self.s.grads, 0, bytemuck::cast_slice(grads));
        self.ctx
            .write(&self.s.lossbuf, 0, bytemuck::cast_slice(&[loss]));
        let sc = StepScalars::new(&self.hyper, self.t + 1, 0.0, 0.0);
        self.ctx.write(
            &self.s.lossbuf,
            8,
            bytemuck::cast_slice(&[sc.adam_step_size, sc.adam_bc2_sqrt]),
        );
        self.run_stages(&[Stage::Optimizer], 1)?;
        self.t += 1;
        Ok(())
    }

    /// Runs the dispatches of `stages` (full-batch train plan) `reps` times in one
    /// submission and waits. For benches: the inputs are whatever the buffers hold.
    pub fn run_stages(&mut self, stages: &[Stage], reps: usize) -> Result<()> {
        self.flush();
        let mut enc = self.encoder();
        for _ in 0..reps {
            encode_all(
                &mut enc,
                self.train_plan.iter().filter(|d| stages.contains(&d.stage)),
            );
        }
        self.ctx.submit(enc.finish());
        self.ctx.wait()
    }

    /// Runs the eval forward pass `reps` times in one submission (benches).
    pub fn run_eval(&mut self, reps: usize) -> Result<()> {
        self.flush();
        let mut enc = self.encoder();
        for _ in 0..reps {
            encode_all(&mut enc, self.eval_plan.iter());
        }
        self.ctx.submit(enc.finish());
        self.ctx.wait()
    }

    /// One full-batch training step with every intermediate read back.
    pub fn debug_step(&mut self) -> Result<StepDump> {
        self.debug_step_on(Batch::Full)
    }
}
