//! L-BFGS's vector work with its scalars on the device (shaders/lbfgs.wgsl; CPU twins
//! `cpu::lbfgs::{dot, abs_sum, abs_max, axpy}`), the history test
//! (shaders/lbfgs_admit.wgsl; twin `cpu::lbfgs::lbfgs_admit`), the candidate pair, and the
//! two-loop recursion as a chain of `lbfgs_link` dispatches (twin `cpu::lbfgs::two_loop`).
//! The scalars are words of one buffer laid out by [`Words`].

use anyhow::Result;
use bytemuck::{Pod, Zeroable};

use super::{grid, Plan, Res, Stage};
use crate::cpu::lbfgs::BLOCK;
use crate::gpu::GpuContext;

pub const LBFGS_WGSL: &str = include_str!("../../../shaders/lbfgs.wgsl");
pub const LBFGS_ADMIT_WGSL: &str = include_str!("../../../shaders/lbfgs_admit.wgsl");

/// No word: a coefficient's `alpha` (or 0), no gate, no factor, no second result.
pub const NONE: u32 = u32::MAX;
/// The value the link just finished, as a coefficient's term.
pub const LOCAL: u32 = u32::MAX - 1;
/// Invocations per workgroup of the block kernels (`flat` in lbfgs.wgsl).
const BLOCK_GROUP: usize = 16;

super::bindings! {
    /// Bindings of lbfgs.wgsl.
    pub mod bind { X, Y, Z, W, S, PART, PIN, SC, HYP }
}

super::bindings! {
    /// Bindings of lbfgs_admit.wgsl.
    pub mod admit_bind { SC, A }
}

/// `struct LHyp` of lbfgs.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct LHyp {
    pub n: u32,
    pub blocks: u32,
    pub op: u32,
    pub op2: u32,
    pub alpha: f32,
    pub fin: u32,
    pub mul: u32,
    pub dst: u32,
    pub dst2: u32,
    pub upd: u32,
    pub ca: u32,
    pub cb: u32,
    pub neg: u32,
    pub gate: u32,
    pub scale: u32,
    pub nxt: u32,
}

/// `struct Admit` of lbfgs_admit.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Admit {
    pub ys: u32,
    pub yy: u32,
    pub h_diag: u32,
    pub rho: u32,
    pub act: u32,
    /// [`NONE`] unless the history is full.
    pub first_act: u32,
    pub reset: u32,
    pub _pad: u32,
}

/// The reductions of lbfgs.wgsl (`LHyp::op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Dot = 0,
    AbsSum = 1,
    AbsMax = 2,
}

/// The layout of the scalar words: H_diag, a ring of [`Words::REPORT`] words that the host
/// reads back in one piece, then four words per pair slot: rho, alpha (the two-loop's),
/// and `act` (1.0 while the pair is in the history; it gates the pair's links).
pub struct Words;

impl Words {
    pub const H_DIAG: u32 = 0;
    /// First word of the read-back ring.
    pub const RING: u32 = 4;
    /// Words of the ring: more than one read-back's scalars (an iteration makes about 8).
    pub const REPORT: u32 = 60;
    /// First word of pair slot 0.
    pub const PAIRS: u32 = Words::RING + Words::REPORT;

    pub fn rho(slot: u32) -> u32 {
        Words::PAIRS + 4 * slot
    }
    pub fn alpha(slot: u32) -> u32 {
        Words::rho(slot) + 1
    }
    pub fn act(slot: u32) -> u32 {
        Words::rho(slot) + 2
    }
    /// Words of a buffer with `slots` pair slots.
    pub fn len(slots: u32) -> u32 {
        Words::rho(slots)
    }
}

/// The pipelines of lbfgs.wgsl and lbfgs_admit.wgsl.
pub struct LbfgsKernels {
    pub axpy: wgpu::ComputePipeline,
    pub scale: wgpu::ComputePipeline,
    pub blocks: wgpu::ComputePipeline,
    pub total: wgpu::ComputePipeline,
    pub pair: wgpu::ComputePipeline,
    pub link: wgpu::ComputePipeline,
    pub admit: wgpu::ComputePipeline,
}

impl LbfgsKernels {
    pub fn new(ctx: &GpuContext) -> Result<LbfgsKernels> {
        use crate::gpu::kernels::{module, pipeline};
        let m = module(ctx, "lbfgs.wgsl", LBFGS_WGSL, false)?;
        let a = module(ctx, "lbfgs_admit.wgsl", LBFGS_ADMIT_WGSL, false)?;
        Ok(LbfgsKernels {
            axpy: pipeline(ctx, &m, "lbfgs_axpy")?,
            scale: pipeline(ctx, &m, "lbfgs_scale")?,
            blocks: pipeline(ctx, &m, "lbfgs_blocks")?,
            total: pipeline(ctx, &m, "lbfgs_total")?,
            pair: pipeline(ctx, &m, "lbfgs_pair")?,
            link: pipeline(ctx, &m, "lbfgs_link")?,
            admit: pipeline(ctx, &a, "lbfgs_admit")?,
        })
    }
}

/// What the kernels share: pipelines, the scalar words, two buffers of block sums (a link
/// reads one and writes the other), the vectors' length.
#[derive(Clone, Copy)]
pub struct Vecs<'a> {
    pub k: &'a LbfgsKernels,
    pub sc: &'a wgpu::Buffer,
    pub parts: [&'a wgpu::Buffer; 2],
    pub n: usize,
}

impl Vecs<'_> {
    fn hyp(&self) -> LHyp {
        LHyp {
            n: self.n as u32,
            blocks: self.blocks() as u32,
            op: 0,
            op2: 0,
            alpha: 0.0,
            fin: 0,
            mul: NONE,
            dst: NONE,
            dst2: NONE,
            upd: 0,
            ca: NONE,
            cb: NONE,
            neg: 0,
            gate: NONE,
            scale: NONE,
            nxt: 0,
        }
    }

    pub fn blocks(&self) -> usize {
        self.n.div_ceil(BLOCK)
    }

    /// The grid of the element-wise kernels (each invocation loops over vec4s with the
    /// grid's stride) and of the block kernels (one invocation per block, in workgroups of
    /// [`BLOCK_GROUP`]).
    fn grids(&self) -> ([u32; 3], [u32; 3]) {
        let elements = [self.n.div_ceil(4096).clamp(1, 65_535) as u32, 1, 1];
        (elements, grid(self.blocks().div_ceil(BLOCK_GROUP)))
    }
}

/// y = fma(x, alpha, y).
pub fn axpy(plan: &mut Plan, v: Vecs, (y, x): (&wgpu::Buffer, &wgpu::Buffer), alpha: f32) {
    let h = LHyp { alpha, ..v.hyp() };
    let res = [(bind::X, Res::Buf(x)), (bind::Y, Res::Buf(y))];
    plan.push(
        Stage::Optimizer,
        &v.k.axpy,
        (bind::HYP, &h),
        &res,
        v.grids().0,
    );
}

/// y = y * alpha.
pub fn scale(plan: &mut Plan, v: Vecs, y: &wgpu::Buffer, alpha: f32) {
    let h = LHyp { alpha, ..v.hyp() };
    let res = [(bind::Y, Res::Buf(y))];
    plan.push(
        Stage::Optimizer,
        &v.k.scale,
        (bind::HYP, &h),
        &res,
        v.grids().0,
    );
}

/// sc[dst] = the reduction `op` of (a, b) (b is read by [`Op::Dot`] only).
pub fn reduce(plan: &mut Plan, v: Vecs, (op, a, b): (Op, &wgpu::Buffer, &wgpu::Buffer), dst: u32) {
    let h = LHyp {
        op: op as u32,
        ..v.hyp()
    };
    let part = v.parts[0];
    let res = [
        (bind::X, Res::Buf(a)),
        (bind::Z, Res::Buf(b)),
        (bind::PART, Res::Buf(part)),
    ];
    plan.push(
        Stage::Optimizer,
        &v.k.blocks,
        (bind::HYP, &h),
        &res,
        v.grids().1,
    );
    total(plan, v, part, (op, dst), None);
}

/// sc[dst] = `op` over the block sums in `part`, and sc[dst2] = `op2` over the second
/// set of them.
pub fn total(
    plan: &mut Plan,
    v: Vecs,
    part: &wgpu::Buffer,
    (op, dst): (Op, u32),
    second: Option<(Op, u32)>,
) {
    let (op2, dst2) = second.unwrap_or((Op::Dot, NONE));
    let h = LHyp {
        op: op as u32,
        op2: op2 as u32,
        dst,
        dst2,
        ..v.hyp()
    };
    let res = [(bind::PART, Res::Buf(part)), (bind::SC, Res::Buf(v.sc))];
    plan.push(
        Stage::Optimizer,
        &v.k.total,
        (bind::HYP, &h),
        &res,
        [1, 1, 1],
    );
}

/// The candidate pair y = g - prev, s = t d into `y`, `s`; y . s and y . y into the
/// words `ys`, `yy`.
pub fn pair(
    plan: &mut Plan,
    v: Vecs,
    (g, prev, d): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
    (y, s, t): (&wgpu::Buffer, &wgpu::Buffer, f32),
    (ys, yy): (u32, u32),
) {
    let h = LHyp {
        alpha: t,
        ..v.hyp()
    };
    let part = v.parts[0];
    let res = [
        (bind::X, Res::Buf(g)),
        (bind::Z, Res::Buf(prev)),
        (bind::W, Res::Buf(d)),
        (bind::Y, Res::Buf(y)),
        (bind::S, Res::Buf(s)),
        (bind::PART, Res::Buf(part)),
    ];
    plan.push(
        Stage::Optimizer,
        &v.k.pair,
        (bind::HYP, &h),
        &res,
        v.grids().1,
    );
    total(plan, v, part, (Op::Dot, ys), Some((Op::Dot, yy)));
}

/// The history test of lbfgs_admit.wgsl with the words in `a`.
pub fn admit(plan: &mut Plan, v: Vecs, a: Admit) {
    let res = [(admit_bind::SC, Res::Buf(v.sc))];
    plan.push(
        Stage::Optimizer,
        &v.k.admit,
        (admit_bind::A, &a),
        &res,
        [1, 1, 1],
    );
}

/// One `lbfgs_link`: `h` (from [`link_hyp`]) over `x` (the update's vector), `q`, `z`
/// (the next dot's other vector), reading block sums from `parts[from]` and writing the
/// other.
fn link(
    plan: &mut Plan,
    v: Vecs,
    h: LHyp,
    (x, q, z): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
    from: usize,
) {
    let res = [
        (bind::X, Res::Buf(x)),
        (bind::Y, Res::Buf(q)),
        (bind::Z, Res::Buf(z)),
        (bind::PIN, Res::Buf(v.parts[from])),
        (bind::PART, Res::Buf(v.parts[1 - from])),
        (bind::SC, Res::Buf(v.sc)),
    ];
    plan.push(
        Stage::Optimizer,
        &v.k.link,
        (bind::HYP, &h),
        &res,
        v.grids().1,
    );
}

/// A vector pair of the history with the slot of its scalars.
pub type Slotted<'a> = (&'a wgpu::Buffer, &'a wgpu::Buffer, u32);

/// torch's two-loop recursion q = -H g into `q` over `pairs` (y, s, slot; oldest first),
/// each pair's update gated by its `act` word, with sc[H_DIAG] between the loops; then
/// g . q and max |q| into the words `out`. One link per pair and loop: each finishes the
/// last dot product, updates q, and starts the next dot product.
pub fn two_loop(
    plan: &mut Plan,
    v: Vecs,
    (q, g): (&wgpu::Buffer, &wgpu::Buffer),
    pairs: &[Slotted],
    out: (u32, u32),
) {
    let k = pairs.len();
    let base = v.hyp();
    // q = -g, and the first dot's blocks (or, with no pairs, the scale and the end).
    let first = LHyp {
        upd: 2,
        alpha: -1.0,
        scale: if k == 0 { Words::H_DIAG } else { NONE },
        nxt: if k == 0 { 2 } else { 1 },
        ..base
    };
    let z0 = pairs.last().map_or(g, |p| p.1);
    link(plan, v, first, (g, q, z0), 1);
    let mut from = 1;
    for i in (0..k).rev() {
        let (y, _, slot) = pairs[i];
        // alpha_i = rho_i s_i.q; q += -alpha_i y_i; the next: s_{i-1}.q, or y_0.q.
        let h = LHyp {
            fin: 1,
            mul: Words::rho(slot),
            dst: Words::alpha(slot),
            upd: 1,
            ca: LOCAL,
            neg: 1,
            gate: Words::act(slot),
            scale: if i == 0 { Words::H_DIAG } else { NONE },
            nxt: 1,
            ..base
        };
        let z = if i > 0 { pairs[i - 1].1 } else { pairs[0].0 };
        from = 1 - from;
        link(plan, v, h, (y, q, z), from);
    }
    for i in 0..k {
        let (_, s, slot) = pairs[i];
        // beta_i = rho_i y_i.q; q += (alpha_i - beta_i) s_i; the next: y_{i+1}.q, or g.q.
        let h = LHyp {
            fin: 1,
            mul: Words::rho(slot),
            upd: 1,
            ca: Words::alpha(slot),
            cb: LOCAL,
            gate: Words::act(slot),
            nxt: if i + 1 < k { 1 } else { 2 },
            ..base
        };
        let z = pairs.get(i + 1).map_or(g, |p| p.0);
        from = 1 - from;
        link(plan, v, h, (s, q, z), from);
    }
    total(
        plan,
        v,
        v.parts[1 - from],
        (Op::Dot, out.0),
        Some((Op::AbsMax, out.1)),
    );
}
