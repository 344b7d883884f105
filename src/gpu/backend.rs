//! [`GpuBackend`]: data, weights, optimizer state and activations live on the GPU; an epoch
//! is ONE queue submission (train step + eval pass) and reads back only the 32 bytes of
//! metrics.

use std::time::Instant;

use anyhow::{ensure, Context, Result};
use wgpu::util::DeviceExt;

use super::kernels::{
    bind, bind_with_texture, encode_all, grid, uniform, Dispatch, Kernels, Mm, Stage, Strategy,
};
use super::{tune, Counters, GpuContext, Needs};
use crate::backend::{Backend, EpochStats, PassStats};
use crate::data::Dataset;
use crate::model::{Layout, Params};
use crate::optim::{Hyper, RpropState, Variant};

/// How to open and drive the GPU.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Adapter name substring (`--adapter`); None = the best adapter.
    pub adapter: Option<String>,
    /// Force a matmul strategy (`--matmul-kernel`); None = the cached or timed choice.
    pub matmul_kernel: Option<Strategy>,
    /// Cap on one image binding in bytes (tests use it to force chunking); None = the
    /// adapter's max_storage_buffer_binding_size.
    pub max_binding_bytes: Option<u64>,
    /// Print the matmul choice and timing notes on stderr.
    pub verbose: bool,
}

/// Rows per first-level chunk of the deterministic reductions.
const RED_ROWS: usize = 128;
/// Metrics words: train [sum, mean, correct, -], eval [sum, mean, correct, -].
const METRIC_BYTES: u64 = 32;
/// Most k splits of one chunk of a long product (dW2, tiled dW1).
const MAX_SPLITS: usize = 32;
/// fwd_x_sg: (samples, hidden units) per invocation, invocations per workgroup.
const FWD_SG: (usize, usize, usize) = (4, 32, 32);
/// dw1_sg: (hidden units, pixels) per invocation, invocations per workgroup.
const DW1_SG: (usize, usize, usize) = (32, 16, 8);
/// Rows the strategy timing runs Z1 on.
const TUNE_ROWS: usize = 4096;

struct XChunk {
    buf: wgpu::Buffer,
    row0: usize,
    rows: usize,
}

/// A whole image set as an rgba32uint 2D array texture (texture strategy): texel (c, y) of
/// layer l = pixels 16c..16c+15 of row l * layer_rows + y (see shaders/matmul_sg.wgsl).
struct XTex {
    // Kept with its view so the texture's lifetime is explicit.
    _texture: wgpu::Texture,
    view: wgpu::TextureView,
    layer_rows: usize,
}

/// W1 as a texture: texel (c, j) = W1[j][4c..4c+3], zero past `inputs`.
struct W1Tex {
    _texture: wgpu::Texture,
    view: wgpu::TextureView,
}

/// The buffers of one set (train or eval).
struct PassBufs {
    n: usize,
    x: Vec<XChunk>,
    /// The same images as a texture, when the texture strategy may run and the set fits.
    tex: Option<XTex>,
    labels: wgpu::Buffer,
    z1: wgpu::Buffer,
    h: wgpu::Buffer,
    z2: wgpu::Buffer,
    loss: wgpu::Buffer,
    correct: wgpu::Buffer,
    dz2: wgpu::Buffer,
    /// Train only (the eval pass has no backward).
    dh: Option<wgpu::Buffer>,
    dz1: Option<wgpu::Buffer>,
    red: wgpu::Buffer,
    red_count: wgpu::Buffer,
}

/// Buffers shared by both sets.
struct Shared {
    /// W1 as an rgba32float texture, refreshed each step (texture strategy).
    w1t: Option<W1Tex>,
    params: wgpu::Buffer,
    /// The parameters of the best epoch so far (a device-side copy).
    best: wgpu::Buffer,
    grads: wgpu::Buffer,
    step: wgpu::Buffer,
    prev_grad: wgpu::Buffer,
    prev_change: wgpu::Buffer,
    /// [E_t, E_{t-1}]
    lossbuf: wgpu::Buffer,
    metrics: wgpu::Buffer,
    staging: wgpu::Buffer,
    /// Split-k partial products, summed in a fixed order.
    scratch: wgpu::Buffer,
}

/// Every intermediate of one training step, read back for `verify` and the tests.
#[derive(Clone, Debug)]
pub struct StepDump {
    pub z1: Vec<f32>,
    pub h: Vec<f32>,
    pub z2: Vec<f32>,
    pub loss: Vec<f32>,
    pub correct: Vec<u32>,
    pub dz2: Vec<f32>,
    pub dh: Vec<f32>,
    pub dz1: Vec<f32>,
    /// Gradients in the flat layout.
    pub grads: Vec<f32>,
    /// Mean loss and correct count of the train pass, as the GPU reduced them.
    pub stats: PassStats,
    /// Sum of the per-sample losses, as the GPU reduced it.
    pub loss_sum: f32,
    /// Weights and optimizer state after the update.
    pub params: Params,
    pub state: RpropState,
}

pub struct GpuBackend {
    /// Steps taken (the optimizer state's `t`), counted on the host.
    t: u64,
    ctx: GpuContext,
    kernels: Kernels,
    layout: Layout,
    variant: Variant,
    hyper: Hyper,
    s: Shared,
    train: PassBufs,
    eval: PassBufs,
    train_plan: Vec<Dispatch>,
    eval_plan: Vec<Dispatch>,
    /// [`Backend::name`], fixed at construction so every record of a run (and of runs
    /// started with [`GpuBackend::restart`]) names the backend the same way.
    name: String,
    /// Seconds spent building pipelines, timing strategies and warming up.
    pub setup_seconds: f64,
    /// Steps recorded but not submitted yet: they run with the epoch's eval pass.
    pending: Option<wgpu::CommandEncoder>,
    /// A copy of the parameters as the best ones is due before the next step.
    best_due: bool,
    /// The best-parameters buffer holds a kept copy.
    has_best: bool,
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytemuck::pod_collect_to_vec(bytes)
}

fn u32s(bytes: &[u8]) -> Vec<u32> {
    bytemuck::pod_collect_to_vec(bytes)
}

/// The specialized register kernels need 4-aligned rows (vec4 loads).
fn aligned(l: Layout) -> bool {
    l.inputs.is_multiple_of(4) && l.hidden.is_multiple_of(4) && l.hidden >= 4
}

/// `z2_reg` and `dw2_reg` hold up to 12 classes in registers.
fn small_ok(l: Layout) -> bool {
    aligned(l) && (1..=12).contains(&l.classes)
}

/// The register kernels of the three small products.
fn small(
    device: &wgpu::Device,
    stage: Stage,
    pipeline: &wgpu::ComputePipeline,
    words: [u32; 8],
    entries: &[(u32, &wgpu::Buffer)],
    groups: [u32; 3],
) -> Dispatch {
    let u = uniform(device, &words);
    let mut e = entries.to_vec();
    e.push((14, &u));
    Dispatch::new(device, stage, pipeline, &e, groups)
}

/// Bytes of one packed image row (u8 pixels, four per u32).
fn row_bytes(l: Layout) -> usize {
    l.inputs.div_ceil(4) * 4
}

/// k per split for a product of length `k` (at most MAX_SPLITS splits, at least 1024 each).
fn k_split(k: usize) -> usize {
    k.div_ceil(MAX_SPLITS).max(1024).min(k.max(1))
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
        let state = RpropState::for_variant(params.data.len(), variant, &hyper);
        GpuBackend::with_state(train, eval, params, state, variant, hyper, opts)
    }

    /// Like [`GpuBackend::new`] but continuing from a saved optimizer state.
    pub fn with_state(
        train: &Dataset,
        eval: &Dataset,
        params: Params,
        state: RpropState,
        variant: Variant,
        hyper: Hyper,
        opts: &GpuOptions,
    ) -> Result<GpuBackend> {
        let t0 = Instant::now();
        let l = params.layout;
        ensure!(
            l.is_single_hidden(),
            "the GPU backend runs networks with one hidden layer for now, not {}; use --backend cpu",
            l.describe()
        );
        ensure!(
            train.features() == l.inputs && eval.features() == l.inputs,
            "images have {} pixels but the model expects {}",
            train.features(),
            l.inputs
        );
        ensure!(
            !train.is_empty() && !eval.is_empty(),
            "the GPU backend needs at least one train and one eval image"
        );
        ensure!(
            state.step.len() == params.data.len(),
            "optimizer state does not match the parameters"
        );
        let total = l.total();
        let rb = row_bytes(l) as u64;
        // Image rows per binding: the adapter's limit, or the test cap.
        let probe = super::select_adapter(&super::instance(), opts.adapter.as_deref())?;
        let adapter_binding = probe.limits().max_storage_buffer_binding_size;
        drop(probe);
        let cap = opts
            .max_binding_bytes
            .unwrap_or(adapter_binding)
            .min(adapter_binding);
        let chunk_rows = (cap / rb).max(1) as usize;
        let n_max = train.len().max(eval.len());
        let act = (n_max * l.hidden.max(l.classes) * 4) as u64;
        let chunks_max = train.len().div_ceil(chunk_rows);
        let scratch = scratch_floats(l, train.len(), chunk_rows) as u64 * 4;
        let x_bytes = (chunk_rows.min(n_max) as u64) * rb;
        let binding = act.max(scratch).max(x_bytes).max(total as u64 * 4);
        let mut ctx = GpuContext::new(
            opts.adapter.as_deref(),
            Needs {
                binding,
                buffer: binding,
            },
        )?;
        let _ = chunks_max;

        // Textures only when the texture strategy may run (forced, cached or to be timed).
        let preset = opts
            .matmul_kernel
            .or_else(|| tune::cached(&tune::adapter_key(&ctx.info)));
        let want_tex = aligned(l)
            && super::kernels::subgroups_of_8(&ctx)
            && preset.is_none_or(|k| k == Strategy::Texture);
        let s = ctx.scoped("allocating GPU buffers", || {
            create_shared(&ctx.device, l, total, scratch, want_tex)
        })?;
        let trainb = ctx.scoped("uploading the train set", || {
            create_pass(
                &ctx.device,
                &ctx.queue,
                l,
                train,
                chunk_rows,
                true,
                want_tex,
            )
        })?;
        let evalb = ctx.scoped("uploading the eval set", || {
            create_pass(
                &ctx.device,
                &ctx.queue,
                l,
                eval,
                chunk_rows,
                false,
                want_tex,
            )
        })?;
        ctx.counters.bytes_written += (train.images.len() + eval.images.len()) as u64;

        let kernels = choose_kernels(&mut ctx, opts, l, &s, &trainb)?;
        let (train_plan, eval_plan) = ctx.scoped("recording dispatches", || {
            let mut tp = forward_plan(&ctx.device, &kernels, l, &s, &trainb, usize::MAX);
            tp.extend(backward_plan(&ctx.device, &kernels, l, &s, &trainb));
            tp.extend(rprop_plan(&ctx.device, &kernels, l, &s, variant, &hyper));
            let ep = forward_plan(&ctx.device, &kernels, l, &s, &evalb, usize::MAX);
            (tp, ep)
        })?;
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
            train_plan,
            eval_plan,
            name: String::new(),
            setup_seconds: 0.0,
            pending: None,
            best_due: false,
            has_best: false,
        };
        me.name = format!(
            "gpu: {} (matmul {})",
            me.ctx.describe(),
            me.kernels.strategy
        );
        // Warm-up: lavapipe JIT-compiles a pipeline on its first dispatch, so run one epoch
        // now (then restore the state) to keep compile time out of the epoch timings.
        me.epoch().context("GPU warm-up epoch")?;
        me.set_state(&params, &state)?;
        me.has_best = false;
        me.ctx.counters = Counters::default();
        me.setup_seconds = t0.elapsed().as_secs_f64();
        Ok(me)
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
        tex_kernels(&self.kernels, self.layout, &self.s, &self.train).is_some()
    }

    /// Replaces the weights and the optimizer state (verify re-syncs with it).
    pub fn set_state(&mut self, params: &Params, state: &RpropState) -> Result<()> {
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
        self.ctx.wait()
    }

    /// Starts a new run on the same device, pipelines and uploaded images (`compare` runs
    /// several configs this way): new weights, optimizer state (E_{t-1} included), variant
    /// and hyper-parameters, counters zeroed. Everything else an epoch reads is rewritten
    /// before it is read, so the run is bit-identical to one on a freshly built backend.
    pub fn restart(
        &mut self,
        params: Params,
        state: RpropState,
        variant: Variant,
        hyper: Hyper,
    ) -> Result<()> {
        ensure!(
            params.layout == self.layout,
            "restart with layout {:?} but the GPU backend was built for {:?}",
            params.layout,
            self.layout
        );
        // Variant and hyper-parameters live in the rprop dispatch's uniform: re-record it.
        let rp = self.ctx.scoped("recording the rprop dispatch", || {
            rprop_plan(
                &self.ctx.device,
                &self.kernels,
                self.layout,
                &self.s,
                variant,
                &hyper,
            )
        })?;
        self.train_plan.retain(|d| d.stage != Stage::Rprop);
        self.train_plan.extend(rp);
        self.variant = variant;
        self.hyper = hyper;
        self.set_state(&params, &state)?;
        (self.best_due, self.has_best) = (false, false);
        self.ctx.counters = Counters::default();
        Ok(())
    }

    /// Submits the steps recorded so far (before a read-back or a host write that must
    /// not overtake them).
    fn flush(&mut self) {
        if let Some(enc) = self.pending.take() {
            self.ctx.submit(enc.finish());
        }
    }

    /// The encoder the next dispatches go into: the pending one, or a new one that starts
    /// with the due copy of the best parameters.
    fn encoder(&mut self) -> wgpu::CommandEncoder {
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

    /// Runs only the fused rprop kernel (and its loss bookkeeping) with the given gradients
    /// and current loss E_t: the bit-exactness test of the optimizer.
    pub fn debug_rprop(&mut self, grads: &[f32], loss: f32) -> Result<()> {
        ensure!(grads.len() == self.layout.total(), "gradient length");
        self.flush();
        self.ctx
            .write(&self.s.grads, 0, bytemuck::cast_slice(grads));
        self.ctx
            .write(&self.s.lossbuf, 0, bytemuck::cast_slice(&[loss]));
        self.write_step_scalars();
        self.run_stages(&[Stage::Rprop], 1)?;
        self.t += 1;
        Ok(())
    }

    /// Adam's bias corrections for the coming step t+1, computed on the host in f64 as
    /// optim::StepScalars does; a queue write, so the step still never waits for the host.
    fn write_step_scalars(&mut self) {
        let sc = crate::optim::StepScalars::new(&self.hyper, self.t + 1, 0.0, 0.0);
        self.ctx.write(
            &self.s.lossbuf,
            8,
            bytemuck::cast_slice(&[sc.adam_step_size, sc.adam_bc2_sqrt]),
        );
    }

    /// Runs the dispatches of `stages` (train plan) `reps` times in one submission and waits.
    /// For benches: the inputs are whatever the buffers hold.
    pub fn run_stages(&mut self, stages: &[Stage], reps: usize) -> Result<()> {
        self.flush();
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
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
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        for _ in 0..reps {
            encode_all(&mut enc, self.eval_plan.iter());
        }
        self.ctx.submit(enc.finish());
        self.ctx.wait()
    }

    fn read_f32(&mut self, buf: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        self.flush();
        Ok(f32s(&self.ctx.read_buffer(buf, 0, (len * 4) as u64)?))
    }

    fn parse_metrics(&self, m: &[f32]) -> (PassStats, PassStats, f32) {
        let pass = |slot: usize, n: usize| PassStats {
            loss: m[slot + 1],
            correct: m[slot + 2].to_bits(),
            samples: n as u32,
        };
        (pass(0, self.train.n), pass(4, self.eval.n), m[0])
    }

    /// One training step (no eval pass), then every intermediate read back. Slow: debug only.
    pub fn debug_step(&mut self) -> Result<StepDump> {
        self.write_step_scalars();
        let mut enc = self.encoder();
        encode_all(&mut enc, self.train_plan.iter());
        self.ctx.submit(enc.finish());
        self.ctx.wait()?;
        self.t += 1;
        let (n, hid, c) = (self.train.n, self.layout.hidden, self.layout.classes);
        let t = &self.train;
        let (z1b, hb, z2b, lb, cb, dz2b) = (
            t.z1.clone(),
            t.h.clone(),
            t.z2.clone(),
            t.loss.clone(),
            t.correct.clone(),
            t.dz2.clone(),
        );
        let dhb = t.dh.clone().context("train pass without dH")?;
        let dz1b = t.dz1.clone().context("train pass without dZ1")?;
        let metrics = self.s.metrics.clone();
        let z1 = self.read_f32(&z1b, n * hid)?;
        let h = self.read_f32(&hb, n * hid)?;
        let z2 = self.read_f32(&z2b, n * c)?;
        let loss = self.read_f32(&lb, n)?;
        let correct = u32s(&self.ctx.read_buffer(&cb, 0, (n * 4) as u64)?);
        let dz2 = self.read_f32(&dz2b, n * c)?;
        let dh = self.read_f32(&dhb, n * hid)?;
        let dz1 = self.read_f32(&dz1b, n * hid)?;
        let grads_buf = self.s.grads.clone();
        let grads = self.read_f32(&grads_buf, self.layout.total())?;
        let m = self.read_f32(&metrics, 8)?;
        let (stats, _, loss_sum) = self.parse_metrics(&m);
        let params = self.params()?;
        let state = self.state()?;
        Ok(StepDump {
            z1,
            h,
            z2,
            loss,
            correct,
            dz2,
            dh,
            dz1,
            grads,
            stats,
            loss_sum,
            params,
            state,
        })
    }
}

impl Backend for GpuBackend {
    fn traffic_note(&self, epochs: usize) -> Option<String> {
        let c = self.ctx.counters;
        let e = epochs.max(1) as u64;
        Some(format!(
            "gpu traffic: {} queue submissions, {} bytes read back ({} submissions and {} bytes per epoch on average, checkpoints included; setup {:.1}s)",
            c.submissions,
            c.bytes_read,
            c.submissions / e,
            c.bytes_read / e,
            self.setup_seconds
        ))
    }

    fn restart(
        &mut self,
        params: Params,
        state: RpropState,
        variant: Variant,
        hyper: Hyper,
    ) -> Result<()> {
        GpuBackend::restart(self, params, state, variant, hyper)
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn train_len(&self) -> usize {
        self.train.n
    }

    fn train_step(&mut self, batch: crate::backend::Batch) -> Result<()> {
        ensure!(
            matches!(batch, crate::backend::Batch::Full),
            "the GPU backend runs full-batch steps only for now"
        );
        // Adam's scalars are a queue write, which runs before the whole submission: one
        // step per submission.
        self.flush();
        self.write_step_scalars();
        let mut enc = self.encoder();
        encode_all(&mut enc, self.train_plan.iter());
        self.pending = Some(enc);
        self.t += 1;
        Ok(())
    }

    fn end_epoch(&mut self) -> Result<EpochStats> {
        let mut enc = self.encoder();
        encode_all(&mut enc, self.eval_plan.iter());
        enc.copy_buffer_to_buffer(&self.s.metrics, 0, &self.s.staging, 0, METRIC_BYTES);
        self.ctx.submit(enc.finish());
        let staging = self.s.staging.clone();
        let m = f32s(&self.ctx.map_read(&staging, METRIC_BYTES)?);
        let (train, eval, _) = self.parse_metrics(&m);
        Ok(EpochStats { train, eval })
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

    fn state(&mut self) -> Result<RpropState> {
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
        Ok(RpropState {
            step,
            prev_grad,
            prev_change,
            prev_loss: loss[1],
            t: self.t,
        })
    }
}

// ------------------------------------------------------------------------------------------
// Buffers

const RW: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

fn storage(device: &wgpu::Device, label: &str, bytes: usize) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (bytes.max(4).div_ceil(4) * 4) as u64,
        usage: RW,
        mapped_at_creation: false,
    })
}

fn storage_init(device: &wgpu::Device, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    let mut v = bytes.to_vec();
    v.resize(bytes.len().max(4).div_ceil(4) * 4, 0);
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: &v,
        usage: RW,
    })
}

/// Floats of split-k scratch the train plan may need (upper bound over both strategies).
fn scratch_floats(l: Layout, n: usize, chunk_rows: usize) -> usize {
    let dw2 = n.div_ceil(k_split(n)) * l.classes * l.hidden;
    let slots: usize = (0..n.div_ceil(chunk_rows))
        .map(|c| {
            let rows = chunk_rows.min(n - c * chunk_rows);
            rows.div_ceil(k_split(rows))
        })
        .sum();
    dw2.max(slots * l.hidden * l.inputs)
}

fn create_shared(
    device: &wgpu::Device,
    l: Layout,
    total: usize,
    scratch: u64,
    want_tex: bool,
) -> Shared {
    let lim = device.limits();
    let width = 4 * tex_cols(l);
    let fits = width.max(l.hidden) <= lim.max_texture_dimension_2d as usize;
    let w1t = (want_tex && fits).then(|| {
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("w1 (texture)"),
            size: wgpu::Extent3d {
                width: width as u32,
                height: l.hidden as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::STORAGE_BINDING,
            view_formats: &[],
        });
        let view = texture.create_view(&Default::default());
        W1Tex {
            _texture: texture,
            view,
        }
    });
    Shared {
        w1t,
        params: storage(device, "params", total * 4),
        best: storage(device, "best params", total * 4),
        grads: storage(device, "grads", total * 4),
        step: storage(device, "step", total * 4),
        prev_grad: storage(device, "prev_grad", total * 4),
        prev_change: storage(device, "prev_change", total * 4),
        // [E_t, E_{t-1}, Adam's step size, Adam's sqrt(bias correction 2)]
        lossbuf: storage(device, "loss", 16),
        metrics: storage(device, "metrics", METRIC_BYTES as usize),
        staging: device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("metrics read-back"),
            size: METRIC_BYTES,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }),
        scratch: storage(device, "split-k scratch", scratch as usize),
    }
}

/// Texels (16 pixels each) per image row in the texture strategy.
fn tex_cols(l: Layout) -> usize {
    l.inputs.div_ceil(16)
}

/// The images of `set` as an rgba32uint 2D array texture, or None when the adapter's
/// texture limits cannot hold them (the texture strategy then uses the storage kernels).
fn create_texture(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    l: Layout,
    set: &Dataset,
) -> Option<XTex> {
    let lim = device.limits();
    let (n, f) = (set.len(), l.inputs);
    let width = tex_cols(l);
    // Rows padded with zero pixels to whole texels (W1's texture is zero there).
    let rb = width * 16;
    let max_dim = lim.max_texture_dimension_2d as usize;
    if n == 0 || width == 0 || width > max_dim {
        return None;
    }
    // Fewest layers, then rows spread evenly over them (no padding rows for 50,000).
    let layers = n.div_ceil(max_dim);
    if layers > lim.max_texture_array_layers as usize {
        return None;
    }
    let layer_rows = n.div_ceil(layers);
    let mut bytes = vec![0u8; layers * layer_rows * rb];
    for r in 0..n {
        bytes[r * rb..r * rb + f].copy_from_slice(set.image(r));
    }
    let texture = device.create_texture_with_data(
        queue,
        &wgpu::TextureDescriptor {
            label: Some("images (texture)"),
            size: wgpu::Extent3d {
                width: width as u32,
                height: layer_rows as u32,
                depth_or_array_layers: layers as u32,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Uint,
            usage: wgpu::TextureUsages::TEXTURE_BINDING,
            view_formats: &[],
        },
        wgpu::util::TextureDataOrder::LayerMajor,
        &bytes,
    );
    let view = texture.create_view(&wgpu::TextureViewDescriptor {
        dimension: Some(wgpu::TextureViewDimension::D2Array),
        ..Default::default()
    });
    Some(XTex {
        _texture: texture,
        view,
        layer_rows,
    })
}

fn create_pass(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    l: Layout,
    set: &Dataset,
    chunk_rows: usize,
    train: bool,
    want_tex: bool,
) -> PassBufs {
    let n = set.len();
    let f = l.inputs;
    let rb = row_bytes(l);
    let mut x = Vec::new();
    let mut row0 = 0;
    while row0 < n {
        let rows = chunk_rows.min(n - row0);
        let bytes = if rb == f {
            set.images[row0 * f..(row0 + rows) * f].to_vec()
        } else {
            // Pad each row to whole u32 words (the padding is never read as a pixel).
            let mut v = vec![0u8; rows * rb];
            for r in 0..rows {
                v[r * rb..r * rb + f].copy_from_slice(set.image(row0 + r));
            }
            v
        };
        x.push(XChunk {
            buf: storage_init(device, "images", &bytes),
            row0,
            rows,
        });
        row0 += rows;
    }
    let hid = n * l.hidden * 4;
    let red_chunks = n.div_ceil(RED_ROWS);
    PassBufs {
        n,
        x,
        tex: if want_tex {
            create_texture(device, queue, l, set)
        } else {
            None
        },
        labels: storage_init(device, "labels", &set.labels),
        z1: storage(device, "z1", hid),
        h: storage(device, "h", hid),
        z2: storage(device, "z2", n * l.classes * 4),
        loss: storage(device, "loss", n * 4),
        correct: storage(device, "correct", n * 4),
        dz2: storage(device, "dz2", n * l.classes * 4),
        dh: train.then(|| storage(device, "dh", hid)),
        dz1: train.then(|| storage(device, "dz1", hid)),
        red: storage(device, "reduce partials", red_chunks * l.hidden.max(1) * 4),
        red_count: storage(device, "reduce counts", red_chunks * 4),
    }
}

// ------------------------------------------------------------------------------------------
// Plans: the recorded dispatches of a step

// The operands of one recorded dispatch; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
fn generic(
    device: &wgpu::Device,
    k: &Kernels,
    stage: Stage,
    mm: Mm,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    c: &wgpu::Buffer,
    bias: &wgpu::Buffer,
) -> Dispatch {
    let u = uniform(device, &mm.words());
    Dispatch::new(
        device,
        stage,
        &k.mm,
        &[(0, a), (1, b), (2, c), (3, bias), (4, &u)],
        mm.groups(k.strategy),
    )
}

/// Sums `slots` partial products (slot-major in scratch) into `out[out_off..+len]`.
// The operands of one recorded dispatch; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
fn sum_slots(
    device: &wgpu::Device,
    k: &Kernels,
    stage: Stage,
    scratch: &wgpu::Buffer,
    out: &wgpu::Buffer,
    len: usize,
    slots: usize,
    out_off: usize,
) -> Dispatch {
    let u = uniform(
        device,
        &[0, len as u32, 0, slots as u32, out_off as u32, 0, 0, 0],
    );
    Dispatch::new(
        device,
        stage,
        &k.cols_final,
        &[(1, scratch), (2, out), (3, &u)],
        [len.div_ceil(64) as u32, 1, 1],
    )
}

/// Column sums of `m` [n, cols] into `out[out_off..]`: two fixed-order levels.
// The operands of one recorded dispatch; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
fn col_sums(
    device: &wgpu::Device,
    k: &Kernels,
    stage: Stage,
    m: &wgpu::Buffer,
    n: usize,
    cols: usize,
    p: &PassBufs,
    out: &wgpu::Buffer,
    out_off: usize,
) -> [Dispatch; 2] {
    let chunks = n.div_ceil(RED_ROWS);
    let words = [
        n as u32,
        cols as u32,
        RED_ROWS as u32,
        chunks as u32,
        out_off as u32,
        0,
        0,
        0,
    ];
    let u = uniform(device, &words);
    [
        Dispatch::new(
            device,
            stage,
            &k.cols_partial,
            &[(0, m), (1, &p.red), (3, &u)],
            [(chunks * cols).div_ceil(64) as u32, 1, 1],
        ),
        Dispatch::new(
            device,
            stage,
            &k.cols_final,
            &[(1, &p.red), (2, out), (3, &u)],
            [cols.div_ceil(64) as u32, 1, 1],
        ),
    ]
}

/// The texture strategy's pipelines (pack_w1, fwd_x_sg, dw1_sg) and textures, when this
/// strategy, layout and set can use them.
type TexKernels<'a> = (
    (
        &'a wgpu::ComputePipeline,
        &'a wgpu::ComputePipeline,
        &'a wgpu::ComputePipeline,
    ),
    &'a XTex,
    &'a W1Tex,
);

fn tex_kernels<'a>(
    k: &'a Kernels,
    l: Layout,
    s: &'a Shared,
    p: &'a PassBufs,
) -> Option<TexKernels<'a>> {
    if !aligned(l) {
        return None;
    }
    Some((
        (
            k.pack_w1.as_ref()?,
            k.fwd_tex.as_ref()?,
            k.dw1_tex.as_ref()?,
        ),
        p.tex.as_ref()?,
        s.w1t.as_ref()?,
    ))
}

/// Z1, H, Z2, per-sample loss/correct/dZ2 and the pass metrics (slot 0 train, 4 eval).
/// `cap` limits the rows of Z1 (strategy timing only); the rest is skipped when capped.
fn forward_plan(
    device: &wgpu::Device,
    k: &Kernels,
    l: Layout,
    s: &Shared,
    p: &PassBufs,
    cap: usize,
) -> Vec<Dispatch> {
    let t = l.tensors();
    let (w1, b1, w2, b2) = (t[0].offset, t[1].offset, t[2].offset, t[3].offset);
    let rb = row_bytes(l);
    let mut out = Vec::new();
    let fused = k.fwd_x.as_ref().filter(|_| aligned(l));
    let tex = tex_kernels(k, l, s, p);
    if let Some(((pack, ft, _), xt, wt)) = tex {
        // All rows from the textures in one dispatch (relu fused), after W1's refresh.
        let rows = p.n.min(cap);
        let words = [
            rows as u32,
            l.hidden as u32,
            l.inputs as u32,
            tex_cols(l) as u32,
            w1 as u32,
            b1 as u32,
            0,
            xt.layer_rows as u32,
        ];
        let u = uniform(device, &words);
        out.push(Dispatch {
            stage: Stage::Z1,
            pipeline: pack.clone(),
            bind: bind_with_texture(device, pack, &[(6, &s.params), (16, &u)], &[(18, &wt.view)]),
            groups: [(4 * tex_cols(l)).div_ceil(64) as u32, l.hidden as u32, 1],
        });
        out.push(Dispatch {
            stage: Stage::Z1,
            pipeline: ft.clone(),
            bind: bind_with_texture(
                device,
                ft,
                &[(7, &s.params), (8, &p.z1), (9, &p.h), (16, &u)],
                &[(15, &xt.view), (17, &wt.view)],
            ),
            groups: [
                rows.div_ceil(FWD_SG.0).div_ceil(FWD_SG.2) as u32,
                l.hidden.div_ceil(FWD_SG.1) as u32,
                1,
            ],
        });
    }
    let chunks: &[XChunk] = if tex.is_some() { &[] } else { &p.x };
    for ch in chunks {
        let rows = ch.rows.min(cap.saturating_sub(ch.row0));
        if rows == 0 {
            continue;
        }
        if let Some(fx) = fused {
            let words = [
                rows as u32,
                l.hidden as u32,
                l.inputs as u32,
                (rb / 4) as u32,
                w1 as u32,
                b1 as u32,
                (ch.row0 * l.hidden) as u32,
                0,
            ];
            let u = uniform(device, &words);
            out.push(Dispatch {
                stage: Stage::Z1,
                pipeline: fx.clone(),
                bind: bind(
                    device,
                    fx,
                    &[
                        (5, &ch.buf),
                        (6, &s.params),
                        (7, &s.params),
                        (8, &p.z1),
                        (9, &p.h),
                        (10, &u),
                    ],
                ),
                groups: [
                    rows.div_ceil(16).div_ceil(32) as u32,
                    l.hidden.div_ceil(16) as u32,
                    1,
                ],
            });
        } else {
            let mm = Mm {
                m: rows as u32,
                n: l.hidden as u32,
                k: l.inputs as u32,
                k_split: l.inputs as u32,
                a_rs: rb as u32,
                a_cs: 1,
                a_u8: 1,
                b_off: w1 as u32,
                b_rs: 1,
                b_cs: l.inputs as u32,
                c_off: (ch.row0 * l.hidden) as u32,
                c_rs: l.hidden as u32,
                bias: 1,
                bias_off: b1 as u32,
                ..Mm::default()
            };
            out.push(generic(
                device,
                k,
                Stage::Z1,
                mm,
                &ch.buf,
                &s.params,
                &p.z1,
                &s.params,
            ));
        }
    }
    if cap < p.n {
        return out;
    }
    let n = p.n;
    if fused.is_none() {
        let len = n * l.hidden;
        let u = uniform(device, &[len as u32]);
        out.push(Dispatch::new(
            device,
            Stage::Relu,
            &k.relu_fwd,
            &[(0, &p.z1), (1, &p.h), (2, &u)],
            grid(len.div_ceil(256)),
        ));
    }
    // Z2 = H W2^T + b2
    if let Some(z2) = k.z2.as_ref().filter(|_| small_ok(l)) {
        let words = [
            n as u32,
            l.hidden as u32,
            l.classes as u32,
            0,
            w2 as u32,
            b2 as u32,
            0,
            0,
        ];
        out.push(small(
            device,
            Stage::Z2,
            z2,
            words,
            &[(12, &p.h), (6, &s.params), (7, &s.params), (13, &p.z2)],
            [n.div_ceil(8).div_ceil(64) as u32, 1, 1],
        ));
    } else {
        let mm = Mm {
            m: n as u32,
            n: l.classes as u32,
            k: l.hidden as u32,
            k_split: l.hidden as u32,
            a_rs: l.hidden as u32,
            a_cs: 1,
            b_off: w2 as u32,
            b_rs: 1,
            b_cs: l.hidden as u32,
            c_rs: l.classes as u32,
            bias: 1,
            bias_off: b2 as u32,
            ..Mm::default()
        };
        out.push(generic(
            device,
            k,
            Stage::Z2,
            mm,
            &p.h,
            &s.params,
            &p.z2,
            &s.params,
        ));
    }
    // Per-sample loss, correctness and dZ2.
    let u = uniform(device, &[n as u32, l.classes as u32, n as u32, 0]);
    out.push(Dispatch::new(
        device,
        Stage::SoftmaxXent,
        &k.softmax_xent,
        &[
            (0, &p.z2),
            (1, &p.labels),
            (2, &p.loss),
            (3, &p.correct),
            (4, &p.dz2),
            (5, &u),
        ],
        grid(n.div_ceil(64)),
    ));
    // Metrics: loss sum/mean and correct count.
    let train = p.dh.is_some();
    let chunks = n.div_ceil(RED_ROWS);
    let words = [
        n as u32,
        1,
        RED_ROWS as u32,
        chunks as u32,
        0,
        if train { 0 } else { 4 },
        u32::from(train),
        0,
    ];
    let u = uniform(device, &words);
    out.push(Dispatch::new(
        device,
        Stage::Metrics,
        &k.metrics_partial,
        &[
            (0, &p.loss),
            (1, &p.red),
            (3, &u),
            (4, &p.correct),
            (5, &p.red_count),
        ],
        [chunks.div_ceil(64) as u32, 1, 1],
    ));
    out.push(Dispatch::new(
        device,
        Stage::Metrics,
        &k.metrics_final,
        &[
            (1, &p.red),
            (2, &s.metrics),
            (3, &u),
            (5, &p.red_count),
            (6, &s.lossbuf),
        ],
        [1, 1, 1],
    ));
    out
}

/// dW2, db2, dH, dZ1, dW1, db1 into the flat gradient buffer.
fn backward_plan(
    device: &wgpu::Device,
    k: &Kernels,
    l: Layout,
    s: &Shared,
    p: &PassBufs,
) -> Vec<Dispatch> {
    let t = l.tensors();
    let (w1, b1, w2, b2) = (t[0].offset, t[1].offset, t[2].offset, t[3].offset);
    let n = p.n;
    let (Some(dh), Some(dz1)) = (&p.dh, &p.dz1) else {
        return Vec::new();
    };
    let rb = row_bytes(l);
    let mut out = Vec::new();
    // dW2 = dZ2^T H, split over samples then summed in a fixed order.
    let ks = k_split(n);
    let slots = n.div_ceil(ks);
    let len2 = l.classes * l.hidden;
    let mm = Mm {
        m: l.classes as u32,
        n: l.hidden as u32,
        k: n as u32,
        k_split: ks as u32,
        a_rs: 1,
        a_cs: l.classes as u32,
        b_rs: l.hidden as u32,
        b_cs: 1,
        c_off: if slots == 1 { w2 as u32 } else { 0 },
        c_rs: l.hidden as u32,
        c_split: len2 as u32,
        ..Mm::default()
    };
    let target = if slots == 1 { &s.grads } else { &s.scratch };
    if let Some(dw2) = k.dw2.as_ref().filter(|_| small_ok(l)) {
        let words = [
            n as u32,
            l.hidden as u32,
            l.classes as u32,
            ks as u32,
            0,
            0,
            mm.c_off,
            len2 as u32,
        ];
        out.push(small(
            device,
            Stage::DW2,
            dw2,
            words,
            &[(11, &p.dz2), (12, &p.h), (13, target)],
            [(l.hidden / 4).div_ceil(32) as u32, slots as u32, 1],
        ));
    } else {
        out.push(generic(
            device,
            k,
            Stage::DW2,
            mm,
            &p.dz2,
            &p.h,
            target,
            &s.params,
        ));
    }
    if slots > 1 {
        out.push(sum_slots(
            device,
            k,
            Stage::DW2,
            &s.scratch,
            &s.grads,
            len2,
            slots,
            w2,
        ));
    }
    out.extend(col_sums(
        device,
        k,
        Stage::DB2,
        &p.dz2,
        n,
        l.classes,
        p,
        &s.grads,
        b2,
    ));
    // dH = dZ2 W2
    let mm = Mm {
        m: n as u32,
        n: l.hidden as u32,
        k: l.classes as u32,
        k_split: l.classes as u32,
        a_rs: l.classes as u32,
        a_cs: 1,
        b_off: w2 as u32,
        b_rs: l.hidden as u32,
        b_cs: 1,
        c_rs: l.hidden as u32,
        ..Mm::default()
    };
    if let Some(dhp) = k.dh.as_ref().filter(|_| aligned(l)) {
        // dH and the ReLU mask in one pass.
        let words = [
            n as u32,
            l.hidden as u32,
            l.classes as u32,
            0,
            w2 as u32,
            0,
            0,
            0,
        ];
        out.push(small(
            device,
            Stage::DH,
            dhp,
            words,
            &[(11, &p.dz2), (6, &s.params), (12, &p.z1), (8, dh), (9, dz1)],
            [
                n.div_ceil(4).div_ceil(64) as u32,
                l.hidden.div_ceil(16) as u32,
                1,
            ],
        ));
    } else {
        out.push(generic(
            device,
            k,
            Stage::DH,
            mm,
            &p.dz2,
            &s.params,
            dh,
            &s.params,
        ));
        // dZ1 = dH * (Z1 > 0)
        let len = n * l.hidden;
        let u = uniform(device, &[len as u32]);
        out.push(Dispatch::new(
            device,
            Stage::ReluBackward,
            &k.relu_bwd,
            &[(0, &p.z1), (1, dz1), (2, &u), (3, dh)],
            grid(len.div_ceil(256)),
        ));
    }
    // dW1 = dZ1^T X: from the texture in one dispatch straight into the gradient, or per
    // image chunk, split over samples, summed in a fixed order.
    let len1 = l.hidden * l.inputs;
    let tex = tex_kernels(k, l, s, p);
    if let Some(((_, _, dt), xt, _)) = tex {
        let words = [
            n as u32,
            l.hidden as u32,
            l.inputs as u32,
            tex_cols(l) as u32,
            0,
            0,
            w1 as u32,
            xt.layer_rows as u32,
        ];
        let u = uniform(device, &words);
        out.push(Dispatch {
            stage: Stage::DW1,
            pipeline: dt.clone(),
            bind: bind_with_texture(
                device,
                dt,
                &[(6, dz1), (8, &s.grads), (16, &u)],
                &[(15, &xt.view)],
            ),
            groups: [
                tex_cols(l).div_ceil(DW1_SG.2) as u32,
                l.hidden.div_ceil(DW1_SG.0) as u32,
                1,
            ],
        });
    }
    let chunks: &[XChunk] = if tex.is_some() { &[] } else { &p.x };
    let fused = k.dw1.as_ref().filter(|_| aligned(l));
    let slots_of = |rows: usize| {
        if fused.is_some() {
            1
        } else {
            rows.div_ceil(k_split(rows))
        }
    };
    let total_slots: usize = chunks.iter().map(|c| slots_of(c.rows)).sum();
    let direct = total_slots == 1;
    let target = if direct { &s.grads } else { &s.scratch };
    let mut slot = 0;
    for ch in chunks {
        let base = if direct { w1 } else { slot * len1 };
        if let Some(dw) = fused {
            let words = [
                ch.rows as u32,
                l.hidden as u32,
                l.inputs as u32,
                (rb / 4) as u32,
                0,
                0,
                base as u32,
                ch.row0 as u32,
            ];
            let u = uniform(device, &words);
            out.push(Dispatch {
                stage: Stage::DW1,
                pipeline: dw.clone(),
                bind: bind(device, dw, &[(5, &ch.buf), (6, dz1), (8, target), (10, &u)]),
                groups: [
                    l.inputs.div_ceil(16).div_ceil(8) as u32,
                    l.hidden.div_ceil(16) as u32,
                    1,
                ],
            });
        } else {
            let ks = k_split(ch.rows);
            let mm = Mm {
                m: l.hidden as u32,
                n: l.inputs as u32,
                k: ch.rows as u32,
                k_split: ks as u32,
                a_off: (ch.row0 * l.hidden) as u32,
                a_rs: 1,
                a_cs: l.hidden as u32,
                b_rs: rb as u32,
                b_cs: 1,
                b_u8: 1,
                c_off: base as u32,
                c_rs: l.inputs as u32,
                c_split: len1 as u32,
                ..Mm::default()
            };
            out.push(generic(
                device,
                k,
                Stage::DW1,
                mm,
                dz1,
                &ch.buf,
                target,
                &s.params,
            ));
        }
        slot += slots_of(ch.rows);
    }
    if !direct && !chunks.is_empty() {
        out.push(sum_slots(
            device,
            k,
            Stage::DW1,
            &s.scratch,
            &s.grads,
            len1,
            total_slots,
            w1,
        ));
    }
    out.extend(col_sums(
        device,
        k,
        Stage::DB1,
        dz1,
        n,
        l.hidden,
        p,
        &s.grads,
        b1,
    ));
    out
}

fn rprop_plan(
    device: &wgpu::Device,
    k: &Kernels,
    l: Layout,
    s: &Shared,
    variant: Variant,
    h: &Hyper,
) -> Vec<Dispatch> {
    let total = l.total();
    let words = [
        total as u32,
        variant.code(),
        h.eta_minus.to_bits(),
        h.eta_plus.to_bits(),
        h.step_min.to_bits(),
        h.step_max.to_bits(),
        h.lr.to_bits(),
        h.weight_decay.to_bits(),
        h.momentum.to_bits(),
        u32::from(h.nesterov),
        (h.alpha as f32).to_bits(),
        // 1 - x in f64 then rounded, as optim.rs (and torch) form it.
        ((1.0 - h.alpha) as f32).to_bits(),
        ((1.0 - h.beta1) as f32).to_bits(),
        (h.beta2 as f32).to_bits(),
        ((1.0 - h.beta2) as f32).to_bits(),
        h.eps.to_bits(),
        h.mu.to_bits(),
        0,
        0,
        0,
    ];
    let u = uniform(device, &words);
    vec![
        Dispatch::new(
            device,
            Stage::Rprop,
            &k.rprop,
            &[
                (0, &s.params),
                (1, &s.grads),
                (2, &s.step),
                (3, &s.prev_grad),
                (4, &s.prev_change),
                (5, &s.lossbuf),
                (6, &u),
            ],
            grid(total.div_ceil(256)),
        ),
        Dispatch::new(
            device,
            Stage::Rprop,
            &k.finish,
            &[(5, &s.lossbuf)],
            [1, 1, 1],
        ),
    ]
}

// ------------------------------------------------------------------------------------------
// Strategy choice

/// The forced, cached or timed matmul strategy, with its pipelines.
fn choose_kernels(
    ctx: &mut GpuContext,
    opts: &GpuOptions,
    l: Layout,
    s: &Shared,
    train: &PassBufs,
) -> Result<Kernels> {
    if let Some(k) = opts.matmul_kernel {
        return Kernels::new(ctx, k);
    }
    let key = tune::adapter_key(&ctx.info);
    if let Some(k) = tune::cached(&key) {
        if opts.verbose {
            eprintln!("matmul kernel: {k} (cached for this adapter)");
        }
        return Kernels::new(ctx, k);
    }
    let mut best: Option<(f64, Kernels)> = None;
    let mut report = Vec::new();
    for strategy in Strategy::ALL {
        if strategy == Strategy::Texture && (train.tex.is_none() || s.w1t.is_none()) {
            continue; // no subgroups of 8, layout or texture limits: it would time as register
        }
        let kernels = Kernels::new(ctx, strategy)?;
        let plan = ctx.scoped("recording the timing dispatches", || {
            forward_plan(&ctx.device, &kernels, l, s, train, TUNE_ROWS)
        })?;
        let run = |ctx: &mut GpuContext| -> Result<f64> {
            let t0 = Instant::now();
            let mut enc = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
            encode_all(&mut enc, plan.iter());
            ctx.submit(enc.finish());
            ctx.wait()?;
            Ok(t0.elapsed().as_secs_f64())
        };
        run(ctx)?; // compiles (JIT) the pipeline
        let secs = run(ctx)?.min(run(ctx)?);
        report.push(format!("{strategy} {:.1} ms", secs * 1e3));
        if best.as_ref().is_none_or(|(b, _)| secs < *b) {
            best = Some((secs, kernels));
        }
    }
    let (_, kernels) = best.context("no matmul strategy")?;
    if opts.verbose {
        eprintln!(
            "matmul kernel: {} (timed on Z1, {} rows: {})",
            kernels.strategy,
            TUNE_ROWS.min(train.n),
            report.join(", ")
        );
    }
    tune::store(&key, kernels.strategy);
    Ok(kernels)
}
