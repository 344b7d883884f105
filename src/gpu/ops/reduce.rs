//! Deterministic reductions (shaders/reduce.wgsl; CPU twins `cpu::reduce_cols`,
//! `cpu::reduce_metrics`): column sums (bias gradients), sums of split-k slots, and a pass's
//! loss and correct count. Two fixed-order levels, no atomics.

use bytemuck::{Pod, Zeroable};

use super::{Plan, Res, Stage};
use crate::gpu::buffers::{Pass, Shared, RED_ROWS};
use crate::gpu::kernels::Kernels;

/// `struct Red` of reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Red {
    pub n: u32,
    pub cols: u32,
    pub rows_per_chunk: u32,
    pub chunks: u32,
    pub out_off: u32,
    /// First metrics word of the pass (0 train, 4 eval).
    pub slot: u32,
    /// 1 for a train pass: accumulate, and write E_t.
    pub train: u32,
    pub _pad: u32,
}

super::bindings! {
    /// Bindings of reduce.wgsl.
    mod bind { M, PARTIAL, OUT, P, MCOUNT, PCOUNT, LOSSBUF }
}

/// Sums `slots` partial products (slot-major in `scratch`) into `out[out_off..+len]`.
#[allow(clippy::too_many_arguments)] // the operands of one reduction
pub fn sum_slots(
    plan: &mut Plan,
    k: &Kernels,
    stage: Stage,
    scratch: &wgpu::Buffer,
    out: &wgpu::Buffer,
    len: usize,
    slots: usize,
    out_off: usize,
) {
    let u = Red {
        cols: len as u32,
        chunks: slots as u32,
        out_off: out_off as u32,
        ..Red::default()
    };
    let bufs = [
        (bind::PARTIAL, Res::Buf(scratch)),
        (bind::OUT, Res::Buf(out)),
    ];
    let groups = [len.div_ceil(64) as u32, 1, 1];
    plan.push(stage, &k.cols_final, (bind::P, &u), &bufs, groups);
}

/// Column sums of `m` [p.n, cols] into `out[out_off..]` (a bias gradient).
pub fn col_sums(
    plan: &mut Plan,
    k: &Kernels,
    stage: Stage,
    (m, cols): (&wgpu::Buffer, usize),
    p: &Pass,
    (out, out_off): (&wgpu::Buffer, usize),
) {
    let chunks = p.n.div_ceil(RED_ROWS);
    let u = Red {
        n: p.n as u32,
        cols: cols as u32,
        rows_per_chunk: RED_ROWS as u32,
        chunks: chunks as u32,
        out_off: out_off as u32,
        ..Red::default()
    };
    plan.push(
        stage,
        &k.cols_partial,
        (bind::P, &u),
        &[(bind::M, Res::Buf(m)), (bind::PARTIAL, Res::Buf(&p.red))],
        [(chunks * cols).div_ceil(64) as u32, 1, 1],
    );
    sum_slots(plan, k, stage, &p.red, out, cols, chunks, out_off);
}

/// The pass's loss sum, mean and correct count into the metrics (train slot 0, summed over
/// an epoch's steps, with E_t for the optimizer; eval slot 4).
pub fn metrics(plan: &mut Plan, k: &Kernels, s: &Shared, p: &Pass) {
    let chunks = p.n.div_ceil(RED_ROWS);
    let u = Red {
        n: p.n as u32,
        cols: 1,
        rows_per_chunk: RED_ROWS as u32,
        chunks: chunks as u32,
        out_off: 0,
        slot: if p.train { 0 } else { 4 },
        train: u32::from(p.train),
        _pad: 0,
    };
    let bufs = [
        (bind::M, Res::Buf(&p.loss)),
        (bind::PARTIAL, Res::Buf(&p.red)),
        (bind::MCOUNT, Res::Buf(&p.correct)),
        (bind::PCOUNT, Res::Buf(&p.red_count)),
    ];
    let groups = [chunks.div_ceil(64) as u32, 1, 1];
    plan.push(
        Stage::Metrics,
        &k.metrics_partial,
        (bind::P, &u),
        &bufs,
        groups,
    );
    let bufs = [
        (bind::PARTIAL, Res::Buf(&p.red)),
        (bind::OUT, Res::Buf(&s.metrics)),
        (bind::PCOUNT, Res::Buf(&p.red_count)),
        (bind::LOSSBUF, Res::Buf(&s.lossbuf)),
    ];
    plan.push(
        Stage::Metrics,
        &k.metrics_final,
        (bind::P, &u),
        &bufs,
        [1, 1, 1],
    );
}
