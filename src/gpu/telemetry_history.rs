//! The GPU backend's side of Rprop telemetry: the end-of-epoch dispatches, and reading the
//! device-side history back (only at save points or when the history is full; see
//! `ops::telemetry_counts`).

use anyhow::Result;

use super::buffers::Shared;
use super::kernels::Kernels;
use super::ops::telemetry_counts::{self as ops, CAPACITY, ROW, STRIDE};
use super::ops::{Dispatch, Plan};
use super::GpuContext;
use crate::model::Layout;
use crate::optim::{Hyper, Variant};
use crate::telemetry::LayerTelemetry;

/// Telemetry rows on the device and on the host, not yet taken by the trainer.
#[derive(Default)]
pub struct TeleState {
    /// Dispatches closing an epoch's row (empty for non-Rprop optimizers).
    pub plan: Vec<Dispatch>,
    /// Rows written to the device history since it was last read.
    pub on_device: usize,
    /// Rows read back but not yet taken.
    pub host: Vec<Vec<LayerTelemetry>>,
}

impl TeleState {
    /// Records the end-of-epoch telemetry dispatches for the variant.
    pub fn record(
        &mut self,
        d: &wgpu::Device,
        k: &Kernels,
        s: &Shared,
        l: Layout,
        vh: (Variant, &Hyper),
    ) {
        self.plan = if vh.0.is_sign_based() {
            let mut p = Plan::new(d);
            ops::close_epoch(&mut p, k, s, l, vh);
            p.list
        } else {
            Vec::new()
        };
    }

    /// Zeroes the device counts and history counter and drops every row (a new run).
    pub fn reset(&mut self, ctx: &mut GpuContext, s: &Shared, l: Layout) {
        let words = l.depth() * STRIDE + 1;
        ctx.write(&s.tele.counts, 0, &vec![0u8; words * 4]);
        self.on_device = 0;
        self.host.clear();
    }

    /// Encodes the epoch's closing dispatches into `enc`.
    pub fn close(&mut self, enc: &mut wgpu::CommandEncoder) {
        if self.plan.is_empty() {
            return;
        }
        super::ops::encode_all(enc, self.plan.iter());
        self.on_device += 1;
    }

    /// Reads the device history back into the host rows and restarts it (the caller has
    /// submitted the steps that wrote it).
    pub fn pull(&mut self, ctx: &mut GpuContext, s: &Shared, l: Layout, h: &Hyper) -> Result<()> {
        let rows = self.on_device;
        if rows == 0 {
            return Ok(());
        }
        let layers = l.depth();
        let bytes = ctx.read_buffer(&s.tele.history, 0, (rows * layers * ROW * 4) as u64)?;
        let words: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes);
        self.host.extend(ops::rows(&words, layers, h));
        ctx.write(
            &s.tele.counts,
            (layers * STRIDE * 4) as u64,
            &0u32.to_le_bytes(),
        );
        self.on_device = 0;
        Ok(())
    }

    /// Whether the device history is full, so the next epoch's row needs a read first.
    pub fn full(&self) -> bool {
        self.on_device >= CAPACITY
    }
}
