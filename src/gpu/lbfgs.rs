//! L-BFGS on the GPU: the one algorithm of `optim::lbfgs::run`, driven by [`Ops`], whose
//! vectors are device buffers (one per vector: the direction, the last gradient and each
//! (y, s) pair of the history), whose dot products, |.|_1 and max |.| run as fixed-order
//! reductions (shaders/lbfgs.wgsl) with the 4-byte result read back, and whose objective is
//! the backend's forward+backward pass over the train set (4 bytes of loss read back).
//! Element-wise work is queued and submitted with the next read-back.

use anyhow::{anyhow, Result};
use bytemuck::{Pod, Zeroable};

use super::buffers::{self, f32s, Pass, Shared};
use super::mlp::{self, Net};
use super::ops::{encode_all, grid, Dispatch, Plan, Res, Stage};
use super::GpuContext;
use crate::optim::lbfgs::{self, Hist, Settings, VecOps, BLOCK};

pub const LBFGS_WGSL: &str = include_str!("../../shaders/lbfgs.wgsl");

super::ops::bindings! {
    /// Bindings of lbfgs.wgsl.
    pub mod bind { X, Y, Z, PART, OUT, HYP }
}

/// `struct LHyp` of lbfgs.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct LHyp {
    pub n: u32,
    pub blocks: u32,
    pub op: u32,
    pub alpha: f32,
}

/// The reductions of lbfgs.wgsl (`LHyp::op`).
#[derive(Clone, Copy)]
enum Op {
    Dot = 0,
    AbsSum = 1,
    AbsMax = 2,
}

/// Bytes of the pass metrics' train slot, kept from a step's first evaluation.
const SLOT_BYTES: u64 = 16;

/// The pipelines of lbfgs.wgsl.
struct Kernels {
    axpy: wgpu::ComputePipeline,
    scale: wgpu::ComputePipeline,
    blocks: wgpu::ComputePipeline,
    total: wgpu::ComputePipeline,
}

impl Kernels {
    fn new(ctx: &GpuContext) -> Result<Kernels> {
        let m = super::kernels::module(ctx, "lbfgs.wgsl", LBFGS_WGSL, false)?;
        let p = |entry: &str| super::kernels::pipeline(ctx, &m, entry);
        Ok(Kernels {
            axpy: p("lbfgs_axpy")?,
            scale: p("lbfgs_scale")?,
            blocks: p("lbfgs_blocks")?,
            total: p("lbfgs_total")?,
        })
    }
}

/// One objective evaluation as `verify` reads it back: the weights, loss and gradient.
#[derive(Clone, Debug)]
pub struct TracedEval {
    pub w: Vec<f32>,
    pub loss: f32,
    pub g: Vec<f32>,
}

/// L-BFGS's GPU state: settings, pipelines, the history on the device, scratch.
pub struct GpuLbfgs {
    pub cfg: Settings,
    k: Kernels,
    /// None only while a step runs (it is lent to [`lbfgs::run`]).
    hist: Option<Hist<wgpu::Buffer>>,
    /// Vectors handed back, for reuse.
    pool: Vec<wgpu::Buffer>,
    part: wgpu::Buffer,
    out: wgpu::Buffer,
    staging: wgpu::Buffer,
    /// The train slot of the metrics after the step's first evaluation.
    first: wgpu::Buffer,
    /// Forward+backward over the train set, no update.
    eval_plan: Vec<Dispatch>,
    /// Evaluations since the epoch began (the epoch's `grad_evals`).
    pub evals: u32,
    /// Read-backs and bytes read back by the last step.
    pub last_step: (u64, u64),
    /// When set, every evaluation is read back into it (`verify`).
    pub trace: Option<Vec<TracedEval>>,
}

/// The GPU's [`VecOps`]: element-wise work queued in `enc`, each reduction and evaluation
/// submitted with what is queued and its result read back.
struct Ops<'a> {
    ctx: &'a mut GpuContext,
    s: &'a Shared,
    lb: &'a mut GpuLbfgs,
    n: usize,
    enc: Option<wgpu::CommandEncoder>,
    first_done: bool,
}

impl Ops<'_> {
    fn enc(&mut self) -> &mut wgpu::CommandEncoder {
        let d = &self.ctx.device;
        self.enc
            .get_or_insert_with(|| d.create_command_encoder(&Default::default()))
    }

    fn dispatch(&mut self, pipe: &wgpu::ComputePipeline, h: LHyp, res: &[(u32, Res)], g: usize) {
        let mut plan = Plan::new(&self.ctx.device);
        plan.push(Stage::Optimizer, pipe, (bind::HYP, &h), res, grid(g));
        let list = plan.list;
        encode_all(self.enc(), list.iter());
    }

    fn hyp(&self, op: u32, alpha: f32) -> LHyp {
        LHyp {
            n: self.n as u32,
            blocks: self.n.div_ceil(BLOCK) as u32,
            op,
            alpha,
        }
    }

    /// Submits what is queued with a copy of 4 bytes of `src` at `offset`; returns them.
    fn read_scalar(&mut self, src: &wgpu::Buffer, offset: u64) -> f32 {
        let staging = self.lb.staging.clone();
        self.enc()
            .copy_buffer_to_buffer(src, offset, &staging, 0, 4);
        let Some(enc) = self.enc.take() else {
            return f32::NAN;
        };
        self.ctx.submit(enc.finish());
        self.lb.last_step.0 += 1;
        // A failed read-back (a lost device) reads as NaN: the step then stops, and the
        // backend's next check reports the error.
        self.ctx
            .map_read(&staging, 4)
            .map(|b| f32s(&b)[0])
            .unwrap_or(f32::NAN)
    }

    fn reduce(&mut self, op: Op, a: &wgpu::Buffer, b: &wgpu::Buffer) -> f32 {
        let h = self.hyp(op as u32, 0.0);
        let (part, out) = (self.lb.part.clone(), self.lb.out.clone());
        let (k_blocks, k_total) = (self.lb.k.blocks.clone(), self.lb.k.total.clone());
        let res = [
            (bind::X, Res::Buf(a)),
            (bind::Z, Res::Buf(b)),
            (bind::PART, Res::Buf(&part)),
        ];
        self.dispatch(&k_blocks, h, &res, h.blocks as usize);
        let res = [(bind::PART, Res::Buf(&part)), (bind::OUT, Res::Buf(&out))];
        self.dispatch(&k_total, h, &res, 1);
        self.read_scalar(&out, 0)
    }

    fn read_vec(&mut self, v: &wgpu::Buffer) -> Vec<f32> {
        if let Some(enc) = self.enc.take() {
            self.ctx.submit(enc.finish());
        }
        self.ctx
            .read_buffer(v, 0, (self.n * 4) as u64)
            .map(|b| f32s(&b))
            .unwrap_or_default()
    }
}

impl VecOps for Ops<'_> {
    type V = wgpu::Buffer;
    fn alloc(&mut self) -> wgpu::Buffer {
        self.lb
            .pool
            .pop()
            .unwrap_or_else(|| buffers::storage(&self.ctx.device, "lbfgs vector", self.n * 4))
    }
    fn recycle(&mut self, v: wgpu::Buffer) {
        self.lb.pool.push(v);
    }
    fn dot(&mut self, a: &wgpu::Buffer, b: &wgpu::Buffer) -> f32 {
        self.reduce(Op::Dot, a, b)
    }
    fn abs_sum(&mut self, a: &wgpu::Buffer) -> f32 {
        self.reduce(Op::AbsSum, a, a)
    }
    fn abs_max(&mut self, a: &wgpu::Buffer) -> f32 {
        self.reduce(Op::AbsMax, a, a)
    }
    fn axpy(&mut self, y: &mut wgpu::Buffer, alpha: f32, x: &wgpu::Buffer) {
        let (h, k) = (self.hyp(0, alpha), self.lb.k.axpy.clone());
        let res = [(bind::X, Res::Buf(x)), (bind::Y, Res::Buf(y))];
        self.dispatch(&k, h, &res, self.n.div_ceil(BLOCK));
    }
    fn scale(&mut self, y: &mut wgpu::Buffer, a: f32) {
        let (h, k) = (self.hyp(0, a), self.lb.k.scale.clone());
        self.dispatch(&k, h, &[(bind::Y, Res::Buf(y))], self.n.div_ceil(BLOCK));
    }
    fn copy(&mut self, dst: &mut wgpu::Buffer, src: &wgpu::Buffer) {
        let bytes = (self.n * 4) as u64;
        self.enc().copy_buffer_to_buffer(src, 0, dst, 0, bytes);
    }
    fn eval(&mut self, w: &wgpu::Buffer, g: &mut wgpu::Buffer) -> f32 {
        let (s, bytes) = (self.s, (self.n * 4) as u64);
        let first = (!self.first_done).then(|| self.lb.first.clone());
        let plan = std::mem::take(&mut self.lb.eval_plan);
        let enc = self.enc();
        enc.copy_buffer_to_buffer(w, 0, &s.params, 0, bytes);
        if first.is_some() {
            enc.clear_buffer(&s.metrics, 0, Some(SLOT_BYTES));
        }
        encode_all(enc, plan.iter());
        enc.copy_buffer_to_buffer(&s.grads, 0, g, 0, bytes);
        if let Some(f) = &first {
            enc.copy_buffer_to_buffer(&s.metrics, 0, f, 0, SLOT_BYTES);
        }
        self.lb.eval_plan = plan;
        self.first_done = true;
        self.lb.evals += 1;
        let loss = self.read_scalar(&s.lossbuf, 0);
        if self.lb.trace.is_some() {
            let (wv, gv) = (self.read_vec(w), self.read_vec(g));
            let t = TracedEval { w: wv, loss, g: gv };
            self.lb.trace.get_or_insert_with(Vec::new).push(t);
        }
        loss
    }
}

impl GpuLbfgs {
    /// The pipelines, the scratch and the evaluation: forward+backward over `train`.
    pub fn new(ctx: &GpuContext, net: Net, train: &Pass, cfg: Settings) -> Result<GpuLbfgs> {
        let d = &ctx.device;
        let blocks = net.l.total().div_ceil(BLOCK);
        let staging = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("lbfgs read-back"),
            size: 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let eval_plan = ctx.scoped("recording the L-BFGS evaluation", || {
            let mut plan = Plan::new(d);
            mlp::forward(&mut plan, net, train, usize::MAX);
            mlp::backward(&mut plan, net, train);
            plan.list
        })?;
        Ok(GpuLbfgs {
            cfg,
            k: Kernels::new(ctx)?,
            hist: None,
            pool: Vec::new(),
            part: buffers::storage(d, "lbfgs partial sums", blocks * 4),
            out: buffers::storage(d, "lbfgs scalar", 16),
            staging,
            first: buffers::storage(d, "lbfgs first metrics", SLOT_BYTES as usize),
            eval_plan,
            evals: 0,
            last_step: (0, 0),
            trace: None,
        })
    }

    /// Every vector of the history, handed back to the pool.
    fn clear(&mut self) {
        if let Some(h) = self.hist.take() {
            let vecs = h.old_dirs.into_iter().chain(h.old_stps);
            self.pool.extend(vecs.chain(h.d).chain(h.prev_flat_grad));
        }
    }

    /// Starts over with settings `cfg` and the history of `st` uploaded (each of its vectors
    /// empty or of the `n` parameters' length).
    pub fn load(
        &mut self,
        ctx: &mut GpuContext,
        cfg: Settings,
        st: lbfgs::State,
        n: usize,
    ) -> Result<()> {
        (self.cfg, self.evals) = (cfg, 0);
        self.clear();
        let lens = [&st.d, &st.prev_flat_grad]
            .into_iter()
            .chain(&st.old_dirs)
            .chain(&st.old_stps);
        for v in lens {
            anyhow::ensure!(
                v.is_empty() || v.len() == n,
                "L-BFGS state of another layout"
            );
        }
        let pool = &mut self.pool;
        self.hist = Some(Hist::from_state(st, |v| {
            let b = pool
                .pop()
                .unwrap_or_else(|| buffers::storage(&ctx.device, "lbfgs vector", n * 4));
            ctx.write(&b, 0, bytemuck::cast_slice(&v));
            b
        }));
        Ok(())
    }

    /// One step (`lbfgs::run`) from the `n` weights in `s.params`, written back there; the
    /// train slot of `s.metrics` gets the first evaluation's stats. Submits what it queues.
    pub fn step(&mut self, ctx: &mut GpuContext, s: &Shared, n: usize) -> Result<()> {
        let mut hist = self
            .hist
            .take()
            .ok_or_else(|| anyhow!("no L-BFGS history"))?;
        let before = ctx.counters.bytes_read;
        self.last_step = (0, 0);
        let cfg = self.cfg;
        let mut ops = Ops {
            ctx,
            s,
            lb: self,
            n,
            enc: None,
            first_done: false,
        };
        let mut w = ops.alloc();
        ops.copy(&mut w, &s.params);
        lbfgs::run(&mut ops, &cfg, &mut hist, &mut w);
        let first = ops.lb.first.clone();
        let enc = ops.enc();
        enc.copy_buffer_to_buffer(&w, 0, &s.params, 0, (n * 4) as u64);
        enc.copy_buffer_to_buffer(&first, 0, &s.metrics, 0, SLOT_BYTES);
        if let Some(enc) = ops.enc.take() {
            ops.ctx.submit(enc.finish());
        }
        ops.recycle(w);
        self.last_step.1 = ctx.counters.bytes_read - before;
        self.hist = Some(hist);
        Ok(())
    }

    /// The history of `n`-float vectors read back (None before [`GpuLbfgs::load`]).
    pub fn state(&self, ctx: &mut GpuContext, n: usize) -> Result<Option<lbfgs::State>> {
        let Some(h) = self.hist.as_ref() else {
            return Ok(None);
        };
        h.to_state(|b| ctx.read_buffer(b, 0, (n * 4) as u64).map(|x| f32s(&x)))
            .map(Some)
    }
}
