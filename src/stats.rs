//! Summary statistics over seeds: mean, sample standard deviation, and the 95% confidence
//! interval of the mean from Student's t distribution.

/// Mean and sample standard deviation (n - 1 in the denominator; 0 for a single value).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, var.sqrt())
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (two-sided 95%): the
/// table's values up to 30, then the normal approximation with a 1/df correction (within
/// 0.002 of the exact value for df > 30).
pub fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => T[df - 1],
        _ => 1.96 + 2.4 / df as f64,
    }
}

/// A summary of values over seeds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub std: f64,
    /// The 95% confidence interval of the mean, `mean ± t975(n-1) * std / sqrt(n)`
    /// (NaN bounds for a single value).
    pub lo: f64,
    pub hi: f64,
}

pub fn summarize(v: &[f64]) -> Summary {
    let (mean, std) = mean_std(v);
    let half = t975(v.len().saturating_sub(1)) * std / (v.len() as f64).sqrt();
    Summary {
        n: v.len(),
        mean,
        std,
        lo: mean - half,
        hi: mean + half,
    }
}

impl Summary {
    /// The interval clipped to `[lo, hi]` (an accuracy's [0, 1]: the t interval is
    /// symmetric and, with few seeds and a wide spread, can leave it), and whether it was.
    pub fn clipped(&self, lo: f64, hi: f64) -> (f64, f64, bool) {
        let (a, b) = (self.lo.max(lo), self.hi.min(hi));
        (a, b, a != self.lo || b != self.hi)
    }
}
