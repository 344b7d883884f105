//! L-BFGS on the GPU: the one algorithm of `optim::lbfgs::run`, driven by [`Ops`], whose
//! vectors are device buffers (one per vector: the direction, the last gradient and each
//! (y, s) pair of the history) and whose scalars are words of one device buffer
//! (`gpu::ops::lbfgs::Words`): the dot products, norms, the history test and the two-loop
//! recursion write and read them there (shaders/lbfgs.wgsl, shaders/lbfgs_admit.wgsl), and
//! the objective is the backend's forward+backward pass over the train set.
//!
//! Everything is queued into one command encoder until the algorithm reads a scalar; then
//! the queue is submitted with a copy of the words written since the last read (a ring of
//! [`Words::REPORT`]) and read back in one piece. The algorithm reads once per evaluation
//! (its loss, the checks on it, and the next direction's), as torch's host loop does, so a
//! step reads back about as many times as it evaluates (a test counts it). The history
//! stays on the device; it is read back only when the run saves its state.

use anyhow::{anyhow, Result};

use super::buffers::{self, f32s, Pass, Shared};
use super::mlp::{self, Net};
use super::ops::lbfgs::{self as rec, Admit, LbfgsKernels, Op, Vecs, Words, NONE};
use super::ops::{encode_all, Dispatch, Plan};
use super::GpuContext;
use crate::optim::lbfgs::{self, Candidate, Dir, Hist, Pair, Settings, VecOps};

/// Bytes of the pass metrics' train slot, kept from a step's first evaluation.
const SLOT_BYTES: u64 = 16;

/// A scalar of the GPU's L-BFGS: a word of the scalar buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    /// A word kept across steps: H_diag, or a pair's rho.
    Kept(u32),
    /// The step's n-th scalar to read back (word `RING + n % REPORT`).
    Temp(u32),
}

impl Scalar {
    fn word(self) -> u32 {
        match self {
            Scalar::Kept(w) => w,
            Scalar::Temp(n) => Words::RING + n % Words::REPORT,
        }
    }

    /// The pair slot of a pair's rho.
    fn slot(self) -> u32 {
        (self.word() - Words::PAIRS) / 4
    }
}

/// One objective evaluation as `verify` reads it back: the weights, loss and gradient.
#[derive(Clone, Debug)]
pub struct TracedEval {
    pub w: Vec<f32>,
    pub loss: f32,
    pub g: Vec<f32>,
}

/// What one step cost in traffic: queue submissions, read-backs and bytes read back, and
/// the evaluations it made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub submissions: u64,
    pub read_backs: u64,
    pub bytes: u64,
    pub evals: u32,
}

/// L-BFGS's GPU state: settings, pipelines, the history and its scalars on the device,
/// scratch.
pub struct GpuLbfgs {
    pub cfg: Settings,
    k: LbfgsKernels,
    /// None only while a step runs (it is lent to [`lbfgs::run`]).
    hist: Option<Hist<wgpu::Buffer, Scalar>>,
    /// Vectors handed back, for reuse.
    pool: Vec<wgpu::Buffer>,
    /// Two buffers of block sums (2 per block).
    parts: [wgpu::Buffer; 2],
    /// The scalar words ([`Words`]) with `slots` pair slots, `free` of them unused.
    words: wgpu::Buffer,
    slots: u32,
    free: Vec<u32>,
    /// Where the ring of words is read back.
    staging: wgpu::Buffer,
    /// The train slot of the metrics after the step's first evaluation.
    first: wgpu::Buffer,
    /// Forward+backward over the train set, no update.
    eval_plan: Vec<Dispatch>,
    /// Evaluations since the epoch began (the epoch's `grad_evals`).
    pub evals: u32,
    /// The last step's traffic.
    pub last_step: Traffic,
    /// When set, every evaluation is read back into it (`verify`).
    pub trace: Option<Vec<TracedEval>>,
}

/// The step's scalars to read back: `next` allocated, the first `vals.len()` read.
#[derive(Default)]
struct Temps {
    next: u32,
    vals: Vec<f32>,
}

/// The GPU's [`VecOps`]: work queued in `enc` (dispatches gathered in `list` and encoded
/// as one compute pass before the next copy), submitted when a scalar is read.
struct Ops<'a> {
    ctx: &'a mut GpuContext,
    s: &'a Shared,
    lb: &'a mut GpuLbfgs,
    n: usize,
    enc: Option<wgpu::CommandEncoder>,
    list: Vec<Dispatch>,
    temps: Temps,
    first_done: bool,
}

impl Ops<'_> {
    /// Records dispatches with `f` (given the plan and the vector kernels' operands).
    fn record(&mut self, f: impl FnOnce(&mut Plan, Vecs)) {
        let mut plan = Plan {
            device: &self.ctx.device,
            list: std::mem::take(&mut self.list),
        };
        let v = Vecs {
            k: &self.lb.k,
            sc: &self.lb.words,
            parts: [&self.lb.parts[0], &self.lb.parts[1]],
            n: self.n,
        };
        f(&mut plan, v);
        self.list = plan.list;
    }

    /// The encoder, with the gathered dispatches encoded into it (before a copy).
    fn enc(&mut self) -> &mut wgpu::CommandEncoder {
        let d = &self.ctx.device;
        let enc = self
            .enc
            .get_or_insert_with(|| d.create_command_encoder(&Default::default()));
        if !self.list.is_empty() {
            encode_all(enc, self.list.iter());
            self.list.clear();
        }
        enc
    }

    /// Submits everything queued.
    fn submit(&mut self) {
        self.enc();
        if let Some(enc) = self.enc.take() {
            self.ctx.submit(enc.finish());
        }
    }

    /// A new scalar to read back and its word; reads the ring first if it is full.
    fn temp(&mut self) -> (Scalar, u32) {
        if self.temps.next - self.temps.vals.len() as u32 >= Words::REPORT {
            self.sync();
        }
        let s = Scalar::Temp(self.temps.next);
        self.temps.next += 1;
        (s, s.word())
    }

    /// Submits what is queued with a copy of the ring, and reads the ring back.
    fn sync(&mut self) {
        let bytes = (Words::REPORT * 4) as u64;
        let (words, staging) = (self.lb.words.clone(), self.lb.staging.clone());
        let at = (Words::RING * 4) as u64;
        self.enc()
            .copy_buffer_to_buffer(&words, at, &staging, 0, bytes);
        self.submit();
        // A failed read-back (a lost device) reads as NaN: the step then stops, and the
        // backend's next check reports the error.
        let ring = self
            .ctx
            .map_read(&staging, bytes)
            .map(|b| f32s(&b))
            .unwrap_or_else(|_| vec![f32::NAN; Words::REPORT as usize]);
        for n in self.temps.vals.len() as u32..self.temps.next {
            let w = Scalar::Temp(n).word() - Words::RING;
            self.temps.vals.push(ring[w as usize]);
        }
    }

    /// A free pair slot, the scalar buffer grown (its words copied) when none is left.
    fn slot(&mut self) -> u32 {
        if let Some(s) = self.lb.free.pop() {
            return s;
        }
        let (old, slots) = (self.lb.words.clone(), self.lb.slots);
        let more = (slots * 2).max(8);
        self.lb.words = words_buffer(&self.ctx.device, more);
        let bytes = (Words::len(slots) * 4) as u64;
        let new = self.lb.words.clone();
        self.enc().copy_buffer_to_buffer(&old, 0, &new, 0, bytes);
        self.lb.free.extend((slots + 1..more).rev());
        self.lb.slots = more;
        slots
    }

    fn reduce(&mut self, op: Op, a: &wgpu::Buffer, b: &wgpu::Buffer) -> Scalar {
        let (s, word) = self.temp();
        self.record(|p, v| rec::reduce(p, v, (op, a, b), word));
        s
    }

    /// The two-loop recursion over `list` from `g` into a new vector, with g . d and
    /// max |d|.
    fn two_loop(&mut self, g: &wgpu::Buffer, list: &[rec::Slotted]) -> Dir<wgpu::Buffer, Scalar> {
        let q = self.alloc();
        let ((gtd, gw), (d_max, dw)) = (self.temp(), self.temp());
        self.record(|p, v| rec::two_loop(p, v, (&q, g), list, (gw, dw)));
        Dir {
            d: q,
            ro: None,
            gtd,
            d_max,
        }
    }

    fn read_vec(&mut self, v: &wgpu::Buffer) -> Vec<f32> {
        self.submit();
        self.ctx
            .read_buffer(v, 0, (self.n * 4) as u64)
            .map(|b| f32s(&b))
            .unwrap_or_default()
    }
}

/// A buffer of the scalar words with `slots` pair slots.
fn words_buffer(d: &wgpu::Device, slots: u32) -> wgpu::Buffer {
    buffers::storage(d, "lbfgs scalars", Words::len(slots) as usize * 4)
}

impl VecOps for Ops<'_> {
    type V = wgpu::Buffer;
    type S = Scalar;
    fn alloc(&mut self) -> wgpu::Buffer {
        self.lb
            .pool
            .pop()
            .unwrap_or_else(|| buffers::storage(&self.ctx.device, "lbfgs vector", self.n * 4))
    }
    fn recycle(&mut self, v: wgpu::Buffer) {
        self.lb.pool.push(v);
    }
    fn release(&mut self, s: Scalar) {
        if let Scalar::Kept(w) = s {
            if w >= Words::PAIRS {
                self.lb.free.push(s.slot());
            }
        }
    }
    fn value(&mut self, s: Scalar) -> f32 {
        match s {
            Scalar::Temp(n) => {
                if n as usize >= self.temps.vals.len() {
                    self.sync();
                }
                self.temps.vals.get(n as usize).copied().unwrap_or(f32::NAN)
            }
            // Not read by the algorithm (the kept words are read back with the history).
            Scalar::Kept(w) => {
                self.submit();
                let words = self.lb.words.clone();
                let b = self.ctx.read_buffer(&words, w as u64 * 4, 4);
                b.map_or(f32::NAN, |b| f32s(&b)[0])
            }
        }
    }
    fn dot(&mut self, a: &wgpu::Buffer, b: &wgpu::Buffer) -> Scalar {
        self.reduce(Op::Dot, a, b)
    }
    fn abs_sum(&mut self, a: &wgpu::Buffer) -> Scalar {
        self.reduce(Op::AbsSum, a, a)
    }
    fn abs_max(&mut self, a: &wgpu::Buffer) -> Scalar {
        self.reduce(Op::AbsMax, a, a)
    }
    fn axpy(&mut self, y: &mut wgpu::Buffer, alpha: f32, x: &wgpu::Buffer) {
        self.record(|p, v| rec::axpy(p, v, (y, x), alpha));
    }
    fn scale(&mut self, y: &mut wgpu::Buffer, a: f32) {
        self.record(|p, v| rec::scale(p, v, y, a));
    }
    fn candidate(
        &mut self,
        g: &wgpu::Buffer,
        prev: &wgpu::Buffer,
        d: &wgpu::Buffer,
        t: f32,
    ) -> Candidate<wgpu::Buffer, Scalar> {
        let (y, s) = (self.alloc(), self.alloc());
        let ((ys, yw), (yy, yyw)) = (self.temp(), self.temp());
        self.record(|p, v| rec::pair(p, v, (g, prev, d), (&y, &s, t), (yw, yyw)));
        Candidate { y, s, ys, yy }
    }
    fn copy(&mut self, dst: &mut wgpu::Buffer, src: &wgpu::Buffer) {
        let bytes = (self.n * 4) as u64;
        self.enc().copy_buffer_to_buffer(src, 0, dst, 0, bytes);
    }
    fn eval(&mut self, w: &wgpu::Buffer, g: &mut wgpu::Buffer) -> Scalar {
        let (loss, word) = self.temp();
        let (s, bytes) = (self.s, (self.n * 4) as u64);
        let first = (!self.first_done).then(|| self.lb.first.clone());
        let plan = std::mem::take(&mut self.lb.eval_plan);
        let words = self.lb.words.clone();
        let enc = self.enc();
        enc.copy_buffer_to_buffer(w, 0, &s.params, 0, bytes);
        if first.is_some() {
            enc.clear_buffer(&s.metrics, 0, Some(SLOT_BYTES));
        }
        encode_all(enc, plan.iter());
        enc.copy_buffer_to_buffer(&s.grads, 0, g, 0, bytes);
        enc.copy_buffer_to_buffer(&s.lossbuf, 0, &words, word as u64 * 4, 4);
        if let Some(f) = &first {
            enc.copy_buffer_to_buffer(&s.metrics, 0, f, 0, SLOT_BYTES);
        }
        self.lb.eval_plan = plan;
        self.first_done = true;
        if self.lb.trace.is_some() {
            let l = self.value(loss);
            let (wv, gv) = (self.read_vec(w), self.read_vec(g));
            let t = TracedEval {
                w: wv,
                loss: l,
                g: gv,
            };
            self.lb.trace.get_or_insert_with(Vec::new).push(t);
        }
        loss
    }
    fn eval_if_descent(
        &mut self,
        _gtd: Scalar,
        _limit: f32,
        w: &wgpu::Buffer,
        g: &mut wgpu::Buffer,
    ) -> Option<Scalar> {
        // Evaluated at once, with the direction's scalars still on the device.
        Some(self.eval(w, g))
    }
    fn withdraw(&mut self) {
        if let Some(t) = &mut self.lb.trace {
            t.pop();
        }
    }
    fn first_direction(
        &mut self,
        h_diag: &mut Scalar,
        g: &wgpu::Buffer,
    ) -> Dir<wgpu::Buffer, Scalar> {
        *h_diag = Scalar::Kept(Words::H_DIAG);
        let reset = Admit {
            ys: NONE,
            yy: NONE,
            h_diag: Words::H_DIAG,
            rho: NONE,
            act: NONE,
            first_act: NONE,
            reset: 1,
            _pad: 0,
        };
        self.record(|p, v| rec::admit(p, v, reset));
        // -g, times H_diag = 1.
        self.two_loop(g, &[])
    }
    fn direction(
        &mut self,
        pairs: &[Pair<wgpu::Buffer, Scalar>],
        cand: Option<&Candidate<wgpu::Buffer, Scalar>>,
        full: bool,
        h_diag: &mut Scalar,
        g: &wgpu::Buffer,
    ) -> Dir<wgpu::Buffer, Scalar> {
        *h_diag = Scalar::Kept(Words::H_DIAG);
        let slot = cand.map(|_| self.slot());
        if let (Some(c), Some(slot)) = (cand, slot) {
            let oldest = pairs.first().filter(|_| full);
            let a = Admit {
                ys: c.ys.word(),
                yy: c.yy.word(),
                h_diag: Words::H_DIAG,
                rho: Words::rho(slot),
                act: Words::act(slot),
                first_act: oldest.map_or(NONE, |p| Words::act(p.ro.slot())),
                reset: 0,
                _pad: 0,
            };
            self.record(|p, v| rec::admit(p, v, a));
        }
        let mut list: Vec<rec::Slotted> = pairs.iter().map(|p| (&p.y, &p.s, p.ro.slot())).collect();
        if let (Some(c), Some(slot)) = (cand, slot) {
            list.push((&c.y, &c.s, slot));
        }
        let dir = self.two_loop(g, &list);
        Dir {
            ro: slot.map(|s| Scalar::Kept(Words::rho(s))),
            ..dir
        }
    }
}

impl GpuLbfgs {
    /// The pipelines, the scratch and the evaluation: forward+backward over `train`.
    pub fn new(ctx: &GpuContext, net: Net, train: &Pass, cfg: Settings) -> Result<GpuLbfgs> {
        let d = &ctx.device;
        // The kernels read vectors as vec4s.
        anyhow::ensure!(
            net.l.total().is_multiple_of(4),
            "L-BFGS needs a layout of whole vec4s"
        );
        let blocks = net.l.total().div_ceil(crate::cpu::lbfgs::BLOCK);
        let part = || buffers::storage(d, "lbfgs block sums", 2 * blocks * 4);
        let staging = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("lbfgs read-back"),
            size: (Words::REPORT * 4) as u64,
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
            k: LbfgsKernels::new(ctx)?,
            hist: None,
            pool: Vec::new(),
            parts: [part(), part()],
            words: words_buffer(d, 0),
            slots: 0,
            free: Vec::new(),
            staging,
            first: buffers::storage(d, "lbfgs first metrics", SLOT_BYTES as usize),
            eval_plan,
            evals: 0,
            last_step: Traffic::default(),
            trace: None,
        })
    }

    /// Every vector of the history handed back to the pool, every pair slot freed.
    fn clear(&mut self) {
        if let Some(h) = self.hist.take() {
            let vecs = h.pairs.into_iter().flat_map(|p| [p.y, p.s]);
            self.pool.extend(vecs.chain(h.d).chain(h.prev_flat_grad));
        }
        self.free = (0..self.slots).rev().collect();
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
        let pairs = st.ro.len() as u32;
        if self.slots < pairs + 1 {
            self.slots = (pairs + 1).max(8);
            self.words = words_buffer(&ctx.device, self.slots);
        }
        let mut words = vec![0f32; Words::len(self.slots) as usize];
        words[Words::H_DIAG as usize] = st.h_diag;
        for (slot, &ro) in st.ro.iter().enumerate() {
            words[Words::rho(slot as u32) as usize] = ro;
            words[Words::act(slot as u32) as usize] = 1.0;
        }
        ctx.write(&self.words, 0, bytemuck::cast_slice(&words));
        self.free = (pairs..self.slots).rev().collect();
        let pool = &mut self.pool;
        let mut hist = Hist::from_state(
            st,
            |v| {
                let b = pool
                    .pop()
                    .unwrap_or_else(|| buffers::storage(&ctx.device, "lbfgs vector", n * 4));
                ctx.write(&b, 0, bytemuck::cast_slice(&v));
                b
            },
            |_| Scalar::Kept(Words::H_DIAG),
        );
        for (slot, p) in hist.pairs.iter_mut().enumerate() {
            p.ro = Scalar::Kept(Words::rho(slot as u32));
        }
        self.hist = Some(hist);
        Ok(())
    }

    /// One step (`lbfgs::run`) from the `n` weights in `s.params`, written back there; the
    /// train slot of `s.metrics` gets the first evaluation's stats. Submits what it queues.
    pub fn step(&mut self, ctx: &mut GpuContext, s: &Shared, n: usize) -> Result<()> {
        let mut hist = self
            .hist
            .take()
            .ok_or_else(|| anyhow!("no L-BFGS history"))?;
        let before = ctx.counters;
        let cfg = self.cfg;
        let mut ops = Ops {
            ctx,
            s,
            lb: self,
            n,
            enc: None,
            list: Vec::new(),
            temps: Temps::default(),
            first_done: false,
        };
        let mut w = ops.alloc();
        ops.copy(&mut w, &s.params);
        let out = lbfgs::run(&mut ops, &cfg, &mut hist, &mut w);
        let first = ops.lb.first.clone();
        let enc = ops.enc();
        enc.copy_buffer_to_buffer(&w, 0, &s.params, 0, (n * 4) as u64);
        enc.copy_buffer_to_buffer(&first, 0, &s.metrics, 0, SLOT_BYTES);
        ops.submit();
        ops.recycle(w);
        let after = ctx.counters;
        self.last_step = Traffic {
            submissions: after.submissions - before.submissions,
            read_backs: after.read_backs - before.read_backs,
            bytes: after.bytes_read - before.bytes_read,
            evals: out.evals,
        };
        self.evals += out.evals;
        self.hist = Some(hist);
        Ok(())
    }

    /// The history of `n`-float vectors read back (None before [`GpuLbfgs::load`]).
    pub fn state(&self, ctx: &mut GpuContext, n: usize) -> Result<Option<lbfgs::State>> {
        let Some(h) = self.hist.as_ref() else {
            return Ok(None);
        };
        let bytes = Words::len(self.slots) as u64 * 4;
        let words = f32s(&ctx.read_buffer(&self.words, 0, bytes)?);
        let word = |s: &Scalar| words.get(s.word() as usize).copied().unwrap_or(f32::NAN);
        h.to_state(
            |b| ctx.read_buffer(b, 0, (n * 4) as u64).map(|x| f32s(&x)),
            word,
        )
        .map(Some)
    }
}
