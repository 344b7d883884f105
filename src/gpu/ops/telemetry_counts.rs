//! Rprop telemetry on the device (shaders/telemetry.wgsl; CPU twin `crate::telemetry`):
//! sign changes and backtracks counted per step before the update, step sizes binned once
//! per epoch, and a row per epoch appended to a device-side history that the host reads
//! only when it reads weights back anyway (save points, end of run), so an epoch still
//! reads back no more than its metrics.

use bytemuck::{Pod, Zeroable};

use super::{grid, Plan, Res, Stage};
use crate::gpu::buffers::Shared;
use crate::gpu::kernels::Kernels;
use crate::model::Layout;
use crate::optim::{Backtrack, Hyper, Variant};
use crate::telemetry::{self, LayerTelemetry, STEP_BINS};

/// Words per layer in the counts buffer: 6 counters and the step-size histogram.
pub const STRIDE: usize = 6 + STEP_BINS;
/// Words per layer in a history row.
pub const ROW: usize = 7;
/// Epoch rows the history holds before the host must read it (it does so itself when full).
pub const CAPACITY: usize = 256;

/// `struct Tele` of telemetry.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Tele {
    pub offset: u32,
    pub len: u32,
    pub layer: u32,
    /// 0: no backtracks; 1: every sign change (Rprop+); 2: when the loss went up (iRprop+).
    pub mode: u32,
    pub weight_decay: f32,
    pub step_min: f32,
    pub step_max: f32,
    pub log_min: f32,
    pub log_span: f32,
    pub layers: u32,
    pub capacity: u32,
    pub _pad: u32,
}

impl Tele {
    fn new(l: Layout, v: Variant, h: &Hyper) -> Tele {
        // Formed in f32 as telemetry::step_bin forms them.
        let log_min = h.step_min.ln();
        Tele {
            mode: match v.traits().backtracks {
                Backtrack::Never => 0,
                Backtrack::Always => 1,
                Backtrack::IfLossUp => 2,
            },
            weight_decay: h.weight_decay,
            step_min: h.step_min,
            step_max: h.step_max,
            log_min,
            log_span: h.step_max.ln() - log_min,
            layers: l.depth() as u32,
            capacity: CAPACITY as u32,
            ..Tele::default()
        }
    }
}

/// Words of the device buffers ([`crate::gpu::buffers::TeleBuffers`]): the running counts
/// plus the row counter, and the history.
pub fn words(l: Layout) -> (usize, usize) {
    (l.depth() * STRIDE + 1, CAPACITY * l.depth() * ROW)
}

/// Each tensor's (layer, offset, len).
fn tensors(l: Layout) -> Vec<(u32, u32, u32)> {
    l.tensors()
        .iter()
        .enumerate()
        .map(|(i, t)| ((i / 2) as u32, t.offset as u32, t.len() as u32))
        .collect()
}

super::bindings! {
    /// Bindings of telemetry.wgsl.
    mod bind { W, G, STEP, PREV_GRAD, LOSS, COUNTS, P, HISTORY }
}

/// Records `pipe` once per weight tensor, with the tensor's (layer, offset, len) in `base`.
fn per_tensor(
    plan: &mut Plan,
    pipe: &wgpu::ComputePipeline,
    l: Layout,
    base: Tele,
    bufs: &[(u32, Res)],
) {
    for (layer, offset, len) in tensors(l) {
        let p = Tele {
            layer,
            offset,
            len,
            ..base
        };
        plan.push(
            Stage::Optimizer,
            pipe,
            (bind::P, &p),
            bufs,
            grid((len as usize).div_ceil(256)),
        );
    }
}

/// Records the sign-change counts of a step (before the optimizer update).
pub fn signs(plan: &mut Plan, k: &Kernels, s: &Shared, l: Layout, vh: (Variant, &Hyper)) {
    let t = &s.tele;
    let bufs = [
        (bind::W, Res::Buf(&s.params)),
        (bind::G, Res::Buf(&s.grads)),
        (bind::PREV_GRAD, Res::Buf(&s.prev_grad)),
        (bind::LOSS, Res::Buf(&s.lossbuf)),
        (bind::COUNTS, Res::Buf(&t.counts)),
    ];
    per_tensor(plan, &k.tele_signs, l, Tele::new(l, vh.0, vh.1), &bufs);
}

/// Records the end of an epoch's telemetry: bin the step sizes, write the history row.
pub fn close_epoch(plan: &mut Plan, k: &Kernels, s: &Shared, l: Layout, vh: (Variant, &Hyper)) {
    let t = &s.tele;
    let base = Tele::new(l, vh.0, vh.1);
    let bufs = [
        (bind::STEP, Res::Buf(&s.step)),
        (bind::COUNTS, Res::Buf(&t.counts)),
    ];
    per_tensor(plan, &k.tele_steps, l, base, &bufs);
    let bufs = [
        (bind::COUNTS, Res::Buf(&t.counts)),
        (bind::HISTORY, Res::Buf(&t.history)),
    ];
    plan.push(
        Stage::Optimizer,
        &k.tele_close,
        (bind::P, &base),
        &bufs,
        [1, 1, 1],
    );
}

/// History words read back -> one row per epoch, one entry per layer.
pub fn rows(words: &[u32], layers: usize, h: &Hyper) -> Vec<Vec<LayerTelemetry>> {
    words
        .chunks(layers * ROW)
        .map(|row| {
            row.chunks(ROW)
                .map(|w| {
                    let c = telemetry::Counts {
                        updates: w[0] as u64,
                        sign_changes: w[1] as u64,
                        backtracks: w[2] as u64,
                        weights: w[3] as u64,
                        at_min: w[4] as u64,
                        at_max: w[5] as u64,
                        hist: Vec::new(),
                    };
                    LayerTelemetry {
                        median_step: if w[3] == 0 {
                            0.0
                        } else {
                            telemetry::bin_value(w[6] as usize, h)
                        },
                        ..c.finish(h)
                    }
                })
                .collect()
        })
        .collect()
}
