//! [`GpuBackend`]: data, weights, optimizer state, activations and a copy of the best
//! weights live on the GPU. The trainer's steps are recorded into one command encoder and
//! submitted with the epoch's eval pass: ONE queue submission and 32 bytes of metrics read
//! back per epoch, full batch or mini-batches (gathered on the device by index).

use std::time::Instant;

use anyhow::{anyhow, ensure, Context, Result};

use super::buffers::{self, f32s, slot_stats, storage, Pass, Shared, METRIC_BYTES};
use super::kernels::{Kernels, Strategy};
use super::lbfgs::{GpuLbfgs, TracedEval, Traffic};
use super::mlp::{self, Net};
use super::ops::{encode_all, Dispatch, Plan};
use super::setup::{self, Opened};
use super::telemetry_history::TeleState;
use super::{Counters, GpuContext, GpuOptions};
use crate::backend::{Backend, Batch, EpochStats, RunStart};
use crate::data::Dataset;
use crate::model::{Layout, Params};
use crate::optim::lbfgs::{self, Settings};
use crate::optim::{Hyper, OptimState, StepScalars, Variant};

/// A mini-batch size's pass (its gathered rows and activations) and recorded step.
pub(super) struct BatchPlan {
    pub pass: Pass,
    pub plan: Vec<Dispatch>,
}

/// The steps recorded into the pending encoder: their batch rows and first step number.
#[derive(Default)]
struct Queued {
    order: Vec<u32>,
    steps: usize,
    t0: u64,
}

pub struct GpuBackend {
    /// Steps taken (the optimizer state's `t`), counted on the host.
    pub(super) t: u64,
    pub(super) ctx: GpuContext,
    pub(super) kernels: Kernels,
    pub(super) layout: Layout,
    variant: Variant,
    pub(super) hyper: Hyper,
    pub(super) s: Shared,
    pub(super) train: Pass,
    eval: Pass,
    pub(super) train_plan: Vec<Dispatch>,
    pub(super) eval_plan: Vec<Dispatch>,
    pub(super) batches: Vec<BatchPlan>,
    /// Image rows per binding.
    chunk_rows: usize,
    /// [`Backend::name`], fixed at construction so every record of a run (and of runs
    /// started with [`Backend::restart`]) names the backend the same way.
    name: String,
    /// Seconds spent building pipelines, timing strategies and warming up.
    pub setup_seconds: f64,
    /// Steps recorded but not submitted yet: they run with the epoch's eval pass.
    pub(super) pending: Option<wgpu::CommandEncoder>,
    queued: Queued,
    /// A copy of the parameters as the best ones is due before the next step.
    best_due: bool,
    /// The best-parameters buffer holds a kept copy.
    has_best: bool,
    /// Rprop telemetry (gpu/telemetry_history.rs).
    pub(super) tele: TeleState,
    /// L-BFGS's history and pipelines (gpu/lbfgs.rs), when it is the optimizer.
    pub(super) lbfgs: Option<Box<GpuLbfgs>>,
}

impl GpuBackend {
    /// A fresh optimizer state on the GPU.
    pub fn new(
        train: &Dataset,
        eval: &Dataset,
        params: Params,
        variant: Variant,
        hyper: Hyper,
        opts: &GpuOptions,
    ) -> Result<GpuBackend> {
        GpuBackend::with_state(train, eval, RunStart::fresh(params, variant, hyper), opts)
    }

    /// Like [`GpuBackend::new`] but from `start` (a saved optimizer state, say).
    pub fn with_state(
        train: &Dataset,
        eval: &Dataset,
        start: RunStart,
        opts: &GpuOptions,
    ) -> Result<GpuBackend> {
        let (params, state) = (start.params, start.state);
        let (variant, hyper) = (start.variant, start.hyper);
        let t0 = Instant::now();
        let l = params.layout;
        setup::check_inputs((train, eval), &params, &state)?;
        let Opened {
            ctx,
            kernels,
            s,
            train: trainb,
            eval: evalb,
            chunk_rows,
        } = setup::open(train, eval, l, opts)?;
        let mut me = GpuBackend {
            t: state.t,
            ctx,
            kernels,
            layout: l,
            variant,
            hyper,
            s,
            train: trainb,
            eval: evalb,
            train_plan: Vec::new(),
            eval_plan: Vec::new(),
            batches: Vec::new(),
            chunk_rows,
            name: String::new(),
            setup_seconds: 0.0,
            pending: None,
            queued: Queued::default(),
            best_due: false,
            has_best: false,
            tele: Default::default(),
            lbfgs: None,
        };
        me.record()?;
        me.name = format!(
            "gpu: {} (matmul {})",
            me.ctx.describe(),
            me.kernels.strategy
        );
        // Warm-up: lavapipe JIT-compiles a pipeline on its first dispatch, so run one epoch
        // now (then restore the state) to keep compile time out of the epoch timings.
        me.epoch().context("GPU warm-up epoch")?;
        me.set_state(&params, &state)?;
        me.ctx.counters = Counters::default();
        me.setup_seconds = t0.elapsed().as_secs_f64();
        Ok(me)
    }

    /// (Re-)records the full-batch step, the eval pass and every mini-batch step with the
    /// current variant and hyper-parameters.
    fn record(&mut self) -> Result<()> {
        let net = Net {
            k: &self.kernels,
            l: self.layout,
            s: &self.s,
        };
        let vh = (self.variant, &self.hyper);
        let (train, eval, batches) = (&self.train, &self.eval, &mut self.batches);
        let device = &self.ctx.device;
        let (tp, ep) = self.ctx.scoped("recording dispatches", || {
            let mut tp = Plan::new(device);
            mlp::step(&mut tp, net, train, None, vh);
            let mut ep = Plan::new(device);
            mlp::forward(&mut ep, net, eval, usize::MAX);
            for b in batches.iter_mut() {
                let mut bp = Plan::new(device);
                mlp::step(&mut bp, net, &b.pass, Some(train), vh);
                b.plan = bp.list;
            }
            (tp.list, ep.list)
        })?;
        (self.train_plan, self.eval_plan) = (tp, ep);
        let d = &self.ctx.device;
        self.tele.record(d, &self.kernels, &self.s, self.layout, vh);
        Ok(())
    }

    /// The index of the recorded step for mini-batches of `rows` rows, recorded on first use.
    fn batch_plan(&mut self, rows: usize) -> Result<usize> {
        if let Some(i) = self.batches.iter().position(|b| b.pass.n == rows) {
            return Ok(i);
        }
        let (l, d) = (self.layout, &self.ctx.device);
        let chunk_rows = self.chunk_rows;
        let with_tex = self.train.tex.is_some();
        let pass = self.ctx.scoped("allocating mini-batch buffers", || {
            let x = buffers::image_chunks(d, l, None, rows, chunk_rows);
            let tex = with_tex
                .then(|| buffers::create_batch_texture(d, l, rows))
                .flatten();
            let labels = storage(d, "batch labels", rows);
            buffers::create_pass(d, l, rows, (x, tex, labels), true)
        })?;
        let net = Net {
            k: &self.kernels,
            l,
            s: &self.s,
        };
        let vh = (self.variant, &self.hyper);
        let train = &self.train;
        let plan = self.ctx.scoped("recording a mini-batch step", || {
            let mut bp = Plan::new(d);
            mlp::step(&mut bp, net, &pass, Some(train), vh);
            bp.list
        })?;
        self.batches.push(BatchPlan { pass, plan });
        Ok(self.batches.len() - 1)
    }

    pub fn variant(&self) -> Variant {
        self.variant
    }

    pub fn hyper(&self) -> Hyper {
        self.hyper
    }

    pub fn strategy(&self) -> Strategy {
        self.kernels.strategy
    }

    pub fn counters(&self) -> Counters {
        self.ctx.counters
    }

    /// Destroys the device, as a driver reset or an unplugged GPU would: every later call
    /// must fail with a clear error. For fault tests.
    pub fn destroy_device(&self) {
        self.ctx.device.destroy();
    }

    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.ctx.info
    }

    /// Number of image bindings per set (train, eval): more than one when a set exceeds
    /// max_storage_buffer_binding_size.
    pub fn image_chunks(&self) -> (usize, usize) {
        (self.train.x.len(), self.eval.x.len())
    }

    /// True when Z1 and dW1 of the train set run from textures (texture strategy, aligned
    /// layout, subgroups of 8 and texture limits permitting).
    pub fn uses_textures(&self) -> bool {
        super::ops::input::tex_kernels(&self.kernels, self.layout, &self.s, &self.train).is_some()
    }

    /// True when Z1 of the train set runs `block_z1` (sparse strategy, layout permitting).
    pub fn uses_blocks(&self) -> bool {
        self.kernels.block_z1.is_some() && self.train.blocks.is_some()
    }

    /// Replaces the weights and the optimizer state (verify re-syncs with it).
    pub fn set_state(&mut self, params: &Params, state: &OptimState) -> Result<()> {
        ensure!(
            params.layout == self.layout
                && [&state.step, &state.prev_grad, &state.prev_change]
                    .iter()
                    .all(|v| v.len() == params.data.len()),
            "parameters or state of another layout"
        );
        self.flush();
        self.t = state.t;
        let s = &self.s;
        for (buf, data) in [
            (&s.params, &params.data),
            (&s.step, &state.step),
            (&s.prev_grad, &state.prev_grad),
            (&s.prev_change, &state.prev_change),
        ] {
            self.ctx.write(buf, 0, bytemuck::cast_slice(data));
        }
        // E_t is recomputed every step; E_{t-1} is the state's.
        self.ctx.write(
            &s.lossbuf,
            0,
            bytemuck::cast_slice(&[0.0f32, state.prev_loss]),
        );
        self.ctx.write(&s.metrics, 0, &[0u8; METRIC_BYTES as usize]);
        (self.best_due, self.has_best) = (false, false);
        self.tele.reset(&mut self.ctx, &self.s, self.layout);
        self.load_lbfgs(state)
    }

    /// Submits the steps recorded so far, after the queue writes they read: the batches'
    /// row order, the cursor, and each step's Adam scalars (computed on the host in f64 as
    /// optim::StepScalars does).
    pub(super) fn flush(&mut self) {
        let Some(enc) = self.pending.take() else {
            return;
        };
        let q = std::mem::take(&mut self.queued);
        if q.steps > 0 {
            if !q.order.is_empty() {
                self.ctx
                    .write(&self.s.order, 0, bytemuck::cast_slice(&q.order));
            }
            self.ctx.write(&self.s.cursor, 0, &[0u8; 16]);
            let table: Vec<f32> = (0..=q.steps as u64)
                .flat_map(|i| {
                    let sc = StepScalars::new(&self.hyper, q.t0 + i + 1, 0.0, 0.0);
                    [sc.adam_step_size, sc.adam_bc2_sqrt]
                })
                .collect();
            self.ctx
                .write(&self.s.table, 0, bytemuck::cast_slice(&table));
            self.ctx
                .write(&self.s.lossbuf, 8, bytemuck::cast_slice(&table[..2]));
        }
        self.ctx.submit(enc.finish());
    }

    /// The encoder the next dispatches go into: the pending one, or a new one that starts
    /// with the due copy of the best parameters.
    pub(super) fn encoder(&mut self) -> wgpu::CommandEncoder {
        let mut enc = self.pending.take().unwrap_or_else(|| {
            self.ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("epoch"),
                })
        });
        if std::mem::take(&mut self.best_due) {
            let bytes = (self.layout.total() * 4) as u64;
            enc.copy_buffer_to_buffer(&self.s.params, 0, &self.s.best, 0, bytes);
            self.has_best = true;
        }
        enc
    }

    /// Records one step on `batch` into the pending encoder. Returns the pass it ran on
    /// (None: the full train set; Some(i): mini-batch plan i).
    pub(super) fn queue_step(&mut self, batch: Batch) -> Result<Option<usize>> {
        let n = self.train.n;
        let rows = match batch {
            Batch::Full => None,
            Batch::Rows(idx) => {
                ensure!(
                    !idx.is_empty() && idx.len() <= n && idx.iter().all(|&i| (i as usize) < n),
                    "a mini-batch of {} rows out of the {n} train rows",
                    idx.len()
                );
                Some(idx)
            }
        };
        let plan = rows.map(|r| self.batch_plan(r.len())).transpose()?;
        let more = rows.map_or(0, |r| r.len());
        if self.queued.steps + 1 > self.s.capacity
            || self.queued.order.len() + more > self.s.capacity
        {
            self.flush();
        }
        let mut enc = self.encoder();
        if self.queued.steps == 0 {
            self.queued.t0 = self.t;
        }
        let list = match plan {
            None => &self.train_plan,
            Some(i) => &self.batches[i].plan,
        };
        encode_all(&mut enc, list.iter());
        if let Some(r) = rows {
            self.queued.order.extend_from_slice(r);
        }
        self.queued.steps += 1;
        self.pending = Some(enc);
        self.t += 1;
        Ok(plan)
    }

    /// Reads the device telemetry history back, after the steps that wrote it.
    fn pull_telemetry(&mut self) -> Result<()> {
        if self.tele.on_device > 0 {
            self.flush();
        }
        self.tele
            .pull(&mut self.ctx, &self.s, self.layout, &self.hyper)
    }

    /// Builds (or drops) the L-BFGS state for the current variant and uploads the history
    /// of `state` (empty when it has none).
    fn load_lbfgs(&mut self, state: &OptimState) -> Result<()> {
        if !self.variant.is_multi_eval() {
            self.lbfgs = None;
            return self.ctx.wait();
        }
        let cfg = Settings::from_hyper(&self.hyper);
        let mut lb = match self.lbfgs.take() {
            Some(lb) => lb,
            None => {
                let net = Net {
                    k: &self.kernels,
                    l: self.layout,
                    s: &self.s,
                };
                Box::new(GpuLbfgs::new(&self.ctx, net, &self.train, cfg)?)
            }
        };
        let st = state.lbfgs.clone().unwrap_or_default();
        lb.load(&mut self.ctx, cfg, st, self.layout.total())?;
        self.lbfgs = Some(lb);
        self.ctx.wait()
    }

    /// One L-BFGS step (an epoch's train step) from the current weights; the epoch's train
    /// stats are the first evaluation's.
    fn lbfgs_step(&mut self) -> Result<()> {
        // The due copy of the best weights, and anything queued, go first.
        let enc = self.encoder();
        self.pending = Some(enc);
        self.flush();
        let lb = self
            .lbfgs
            .as_mut()
            .ok_or_else(|| anyhow!("no L-BFGS state"))?;
        lb.step(&mut self.ctx, &self.s, self.layout.total())?;
        self.t += 1;
        self.ctx.wait()
    }

    /// The L-BFGS history read back (None for the other optimizers).
    fn lbfgs_state(&mut self) -> Result<Option<lbfgs::State>> {
        self.flush();
        match &self.lbfgs {
            Some(lb) => lb.state(&mut self.ctx, self.layout.total()),
            None => Ok(None),
        }
    }

    /// One L-BFGS step with every evaluation's weights, loss and gradient read back
    /// (`verify`).
    pub fn lbfgs_traced_step(&mut self) -> Result<Vec<TracedEval>> {
        let lb = self
            .lbfgs
            .as_mut()
            .ok_or_else(|| anyhow!("the optimizer is not lbfgs"))?;
        lb.trace = Some(Vec::new());
        self.lbfgs_step()?;
        let trace = self.lbfgs.as_mut().and_then(|l| l.trace.take());
        Ok(trace.unwrap_or_default())
    }

    /// The last L-BFGS step's traffic (None for other optimizers).
    pub fn lbfgs_traffic(&self) -> Option<Traffic> {
        self.lbfgs.as_ref().map(|l| l.last_step)
    }

    pub(super) fn read_f32(&mut self, buf: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        self.flush();
        Ok(f32s(&self.ctx.read_buffer(buf, 0, (len * 4) as u64)?))
    }
}

/// The closing note on host/device traffic over a run of `epochs` epochs.
pub fn traffic_line(submissions: u64, bytes: u64, epochs: usize, setup_seconds: f64) -> String {
    let e = epochs.max(1) as u64;
    let n = |k: u64, word: &str| format!("{k} {word}{}", if k == 1 { "" } else { "s" });
    format!(
        "gpu traffic: {}, {} read back ({} and {} per epoch on average, checkpoints included; setup {setup_seconds:.1}s)",
        n(submissions, "queue submission"),
        n(bytes, "byte"),
        n(submissions / e, "submission"),
        n(bytes / e, "byte"),
    )
}

impl Backend for GpuBackend {
    fn traffic_note(&self, epochs: usize) -> Option<String> {
        let c = self.ctx.counters;
        Some(traffic_line(
            c.submissions,
            c.bytes_read,
            epochs,
            self.setup_seconds,
        ))
    }

    /// The same device, pipelines and uploaded images (`compare` runs several configs this
    /// way), with counters zeroed. Everything else an epoch reads is rewritten before it is
    /// read, so the run is bit-identical to one on a freshly built backend.
    fn restart(&mut self, start: RunStart) -> Result<()> {
        start.check_layout(self.layout)?;
        self.flush();
        (self.variant, self.hyper) = (start.variant, start.hyper);
        self.record()?;
        self.set_state(&start.params, &start.state)?;
        self.ctx.counters = Counters::default();
        Ok(())
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn settings(&self) -> crate::config::RunSettings {
        crate::config::RunSettings {
            backend: Some("gpu".into()),
            adapter: Some(self.ctx.info.name.clone()),
            matmul_kernel: Some(self.kernels.strategy.name().into()),
            cpu_matmul: None,
        }
    }

    fn train_len(&self) -> usize {
        self.train.n
    }

    fn train_step(&mut self, batch: Batch) -> Result<()> {
        if self.lbfgs.is_some() {
            ensure!(matches!(batch, Batch::Full), "lbfgs is full-batch only");
            return self.lbfgs_step();
        }
        self.queue_step(batch).map(|_| ())
    }

    fn end_epoch(&mut self) -> Result<EpochStats> {
        if self.tele.full() {
            self.pull_telemetry()?;
        }
        let mut enc = self.encoder();
        self.tele.close(&mut enc);
        encode_all(&mut enc, self.eval_plan.iter());
        enc.copy_buffer_to_buffer(&self.s.metrics, 0, &self.s.staging, 0, METRIC_BYTES);
        // The next epoch's train stats start from zero.
        enc.clear_buffer(&self.s.metrics, 0, Some(16));
        self.pending = Some(enc);
        self.flush();
        let staging = self.s.staging.clone();
        let m = f32s(&self.ctx.map_read(&staging, METRIC_BYTES)?);
        Ok(EpochStats {
            train: slot_stats(&m[..4]),
            eval: slot_stats(&m[4..]),
            grad_evals: self
                .lbfgs
                .as_mut()
                .map_or(1, |l| std::mem::take(&mut l.evals)),
        })
    }

    fn take_telemetry(&mut self) -> Result<Vec<Vec<crate::telemetry::LayerTelemetry>>> {
        self.pull_telemetry()?;
        Ok(std::mem::take(&mut self.tele.host))
    }

    fn keep_best(&mut self) -> Result<()> {
        // Copied on the device at the start of the next submission, before any update.
        self.best_due = true;
        Ok(())
    }

    fn best_params(&mut self) -> Result<Params> {
        let buf = if self.best_due {
            self.s.params.clone()
        } else {
            ensure!(self.has_best, "no best parameters kept yet");
            self.s.best.clone()
        };
        let data = self.read_f32(&buf, self.layout.total())?;
        Ok(Params {
            layout: self.layout,
            data,
        })
    }

    fn params(&mut self) -> Result<Params> {
        let buf = self.s.params.clone();
        let data = self.read_f32(&buf, self.layout.total())?;
        Ok(Params {
            layout: self.layout,
            data,
        })
    }

    fn state(&mut self) -> Result<OptimState> {
        let total = self.layout.total();
        let (a, b, c, d) = (
            self.s.step.clone(),
            self.s.prev_grad.clone(),
            self.s.prev_change.clone(),
            self.s.lossbuf.clone(),
        );
        let step = self.read_f32(&a, total)?;
        let prev_grad = self.read_f32(&b, total)?;
        let prev_change = self.read_f32(&c, total)?;
        let loss = self.read_f32(&d, 2)?;
        Ok(OptimState {
            step,
            prev_grad,
            prev_change,
            prev_loss: loss[1],
            t: self.t,
            lbfgs: self.lbfgs_state()?,
        })
    }
}
