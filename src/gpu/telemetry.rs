//! The GPU backend's side of Rprop telemetry: the end-of-epoch dispatches, and reading the
//! device-side history back (only at save points or when the history is full; see
//! `ops::telemetry`).

use anyhow::Result;

use super::backend::GpuBackend;
use super::ops::telemetry::{self as ops, CAPACITY, ROW, STRIDE};
use super::ops::{Dispatch, Plan};
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

impl GpuBackend {
    /// Records the end-of-epoch telemetry dispatches for the current variant.
    pub(super) fn record_telemetry(&mut self) {
        self.tele.plan = if self.variant().is_sign_based() {
            let mut p = Plan::new(&self.ctx.device);
            let (s, k, h) = (&self.s, &self.kernels, self.hyper);
            ops::close_epoch(&mut p, k, s, &s.tele, self.layout, (self.variant(), &h));
            p.list
        } else {
            Vec::new()
        };
    }

    /// Zeroes the device counts and history counter and drops every row (a new run).
    pub(super) fn reset_telemetry(&mut self) {
        let words = self.layout.depth() * STRIDE + 1;
        let zeros = vec![0u8; words * 4];
        let counts = self.s.tele.counts.clone();
        self.ctx.write(&counts, 0, &zeros);
        self.tele.on_device = 0;
        self.tele.host.clear();
    }

    /// Encodes the epoch's closing dispatches into `enc` (reading the history back first
    /// when it is full).
    pub(super) fn close_telemetry(&mut self, enc: &mut wgpu::CommandEncoder) -> Result<()> {
        if self.tele.plan.is_empty() {
            return Ok(());
        }
        super::ops::encode_all(enc, self.tele.plan.iter());
        self.tele.on_device += 1;
        Ok(())
    }

    /// Reads the device history back into the host rows and restarts it.
    pub(super) fn pull_telemetry(&mut self) -> Result<()> {
        let rows = self.tele.on_device;
        if rows == 0 {
            return Ok(());
        }
        let layers = self.layout.depth();
        let hist = self.s.tele.history.clone();
        let words = self.read_u32(&hist, rows * layers * ROW)?;
        self.tele
            .host
            .extend(ops::rows(&words, layers, &self.hyper));
        let counts = self.s.tele.counts.clone();
        self.ctx
            .write(&counts, (layers * STRIDE * 4) as u64, &0u32.to_le_bytes());
        self.tele.on_device = 0;
        Ok(())
    }

    /// Whether the device history is full, so the next epoch's row needs a read first.
    pub(super) fn telemetry_full(&self) -> bool {
        self.tele.on_device >= CAPACITY
    }

    /// The rows since the last call (a read-back of ~28 bytes per layer and epoch).
    pub(super) fn take_telemetry_rows(&mut self) -> Result<Vec<Vec<LayerTelemetry>>> {
        self.pull_telemetry()?;
        Ok(std::mem::take(&mut self.tele.host))
    }

    fn read_u32(&mut self, buf: &wgpu::Buffer, len: usize) -> Result<Vec<u32>> {
        self.flush();
        Ok(bytemuck::pod_collect_to_vec(&self.ctx.read_buffer(
            buf,
            0,
            (len * 4) as u64,
        )?))
    }
}
