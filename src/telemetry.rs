//! Rprop telemetry: per epoch and per layer, what the optimizer did to the weights; this is
//! what explains *why* one variant trails another.
//!
//! Per layer (a layer's weight and bias together), over the epoch's steps:
//! - `sign_changes`: fraction of weight updates whose gradient changed sign
//!   (`g * prev_grad < 0` in f32, the test the rules make; `g` with the L2 term added);
//! - `backtracks`: number of weights moved back (Rprop+: every sign change; iRprop+: sign
//!   changes in a step whose loss went up; 0 for the others);
//! - `at_min` / `at_max`: fraction of step sizes equal to `step_min` / `step_max` after the
//!   epoch's last step;
//! - `median_step`: the median of those step sizes, from a histogram of [`STEP_BINS`]
//!   log-spaced bins over `[step_min, step_max]`: the geometric centre of the bin holding the
//!   lower median. With the report's range (1e-6..50) a bin spans a factor of
//!   (5e7)^(1/512) = 1.035, so the value is within 1.8% of the exact median.
//!
//! [`signs`] and [`steps`] are the CPU twins of `shaders/telemetry.wgsl`'s two entry points
//! (before and after the optimizer update); the GPU accumulates the same counts on the device.

use serde::{Deserialize, Serialize};

use crate::model::Layout;
use crate::optim::{Backtrack, Hyper, Variant};

/// Bins of the step-size histogram (log-spaced over `[step_min, step_max]`).
pub const STEP_BINS: usize = 512;

/// One layer's telemetry for one epoch, as metrics.json stores it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerTelemetry {
    pub sign_changes: f64,
    pub backtracks: u64,
    pub at_min: f64,
    pub at_max: f64,
    pub median_step: f32,
}

/// Raw counts of one layer, as the device accumulates them.
#[derive(Clone, Debug, PartialEq)]
pub struct Counts {
    /// Weight updates seen by [`signs`] (weights x steps).
    pub updates: u64,
    pub sign_changes: u64,
    pub backtracks: u64,
    /// Step sizes seen by [`steps`] (the layer's weights).
    pub weights: u64,
    pub at_min: u64,
    pub at_max: u64,
    pub hist: Vec<u32>,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            updates: 0,
            sign_changes: 0,
            backtracks: 0,
            weights: 0,
            at_min: 0,
            at_max: 0,
            hist: vec![0; STEP_BINS],
        }
    }
}

/// The flat ranges of each layer's weight and bias.
pub fn layer_ranges(layout: Layout) -> Vec<[std::ops::Range<usize>; 2]> {
    let t = layout.tensors();
    t.chunks(2).map(|c| [c[0].range(), c[1].range()]).collect()
}

/// The histogram bin of step size `s` (f32 math, as the shader does it).
pub fn step_bin(s: f32, h: &Hyper) -> usize {
    let lo = h.step_min.ln();
    let span = h.step_max.ln() - lo;
    let x = (s.ln() - lo) / span * STEP_BINS as f32;
    if x.is_nan() || x < 0.0 {
        0
    } else {
        (x as usize).min(STEP_BINS - 1)
    }
}

/// The value a bin stands for: its geometric centre.
pub fn bin_value(bin: usize, h: &Hyper) -> f32 {
    let lo = (h.step_min as f64).ln();
    let span = (h.step_max as f64).ln() - lo;
    (lo + (bin as f64 + 0.5) / STEP_BINS as f64 * span).exp() as f32
}

/// Whether a step's sign changes backtrack under `variant`.
pub fn backtracks(variant: Variant, loss_up: bool) -> bool {
    match variant.traits().backtracks {
        Backtrack::Never => false,
        Backtrack::Always => true,
        Backtrack::IfLossUp => loss_up,
    }
}

/// Before the update: counts sign changes and backtracks of one step into `counts` (one per
/// layer), from the weights, the step's gradient and the stored previous gradient.
pub fn signs(
    layout: Layout,
    variant: Variant,
    h: &Hyper,
    loss_up: bool,
    (w, g, prev_grad): (&[f32], &[f32], &[f32]),
    counts: &mut [Counts],
) {
    let back = backtracks(variant, loss_up);
    for (c, ranges) in counts.iter_mut().zip(layer_ranges(layout)) {
        for r in ranges {
            for i in r {
                // The gradient the rule sees (optim::update adds the L2 term the same way).
                let gi = if h.weight_decay != 0.0 {
                    w[i].mul_add(h.weight_decay, g[i])
                } else {
                    g[i]
                };
                let changed = gi * prev_grad[i] < 0.0;
                c.updates += 1;
                c.sign_changes += u64::from(changed);
                c.backtracks += u64::from(changed && back);
            }
        }
    }
}

/// After the update: step sizes at the bounds and their histogram, into fresh per-layer
/// counts (only the epoch's last step counts: its step sizes are the epoch's).
pub fn steps(layout: Layout, h: &Hyper, step: &[f32], counts: &mut [Counts]) {
    for (c, ranges) in counts.iter_mut().zip(layout_ranges_flat(layout)) {
        c.weights = 0;
        c.at_min = 0;
        c.at_max = 0;
        c.hist.iter_mut().for_each(|b| *b = 0);
        for i in ranges {
            let s = step[i];
            c.weights += 1;
            c.at_min += u64::from(s <= h.step_min);
            c.at_max += u64::from(s >= h.step_max);
            c.hist[step_bin(s, h)] += 1;
        }
    }
}

fn layout_ranges_flat(layout: Layout) -> Vec<impl Iterator<Item = usize>> {
    layer_ranges(layout)
        .into_iter()
        .map(|[a, b]| a.chain(b))
        .collect()
}

impl Counts {
    /// The epoch's row for this layer.
    pub fn finish(&self, h: &Hyper) -> LayerTelemetry {
        let frac = |k: u64, n: u64| if n == 0 { 0.0 } else { k as f64 / n as f64 };
        LayerTelemetry {
            sign_changes: frac(self.sign_changes, self.updates),
            backtracks: self.backtracks,
            at_min: frac(self.at_min, self.weights),
            at_max: frac(self.at_max, self.weights),
            median_step: median(&self.hist, self.weights, h),
        }
    }
}

/// The lower median of `n` values binned in `hist`, as its bin's centre.
pub fn median(hist: &[u32], n: u64, h: &Hyper) -> f32 {
    if n == 0 {
        return 0.0;
    }
    let rank = (n - 1) / 2;
    let mut seen = 0u64;
    for (b, &k) in hist.iter().enumerate() {
        seen += k as u64;
        if seen > rank {
            return bin_value(b, h);
        }
    }
    bin_value(hist.len() - 1, h)
}
