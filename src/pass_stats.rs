//! What one pass over a set gathers: loss, correct, samples (filled by every pass, CPU and
//! GPU; a leaf module, so the passes need not import the backend).

/// Sums gathered over one pass over a set (the report's `gather_metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PassStats {
    /// Mean cross-entropy over the set.
    pub loss: f32,
    /// Number of samples whose arg-max logit is the label.
    pub correct: u32,
    /// Number of samples.
    pub samples: u32,
}

impl PassStats {
    pub fn accuracy(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.correct as f64 / self.samples as f64
        }
    }
}
