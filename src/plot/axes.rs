//! The charts' axes: where an accuracy panel's zoom starts (never after a line's best
//! epoch), the key points of a log loss axis (one near the lowest loss, so the end of the
//! curves can be read off), tick labels, and the light grid they share.

use anyhow::Result;
use plotters::prelude::*;

use super::{plot_err, FAMILY};

/// The first epoch an accuracy panel shows: a fifth into the run, where the early climb
/// (from 10% to 80%) is over and the variants' differences of a fraction of a percent show.
pub fn zoom_start(max_epoch: usize) -> usize {
    (max_epoch / 5).max(1)
}

/// The first epoch a line is drawn from on a panel that starts at `first`: earlier for a
/// line whose best epoch (lowest eval loss, whose weights are tested) comes before it, so
/// the zoom never hides the epoch a run is scored at.
pub fn line_start(first: usize, best_epoch: usize) -> usize {
    if best_epoch == 0 {
        first
    } else {
        first.min(best_epoch)
    }
}

/// Key points of a log axis over [lo, hi]: 1-2-3-5 of each decade, or, where that gives
/// fewer than three (a short run's loss spans less than a decade), 1 to 9.5 in halves,
/// or, failing that, four points evenly spaced on the log axis, rounded to 3 digits. A
/// point is added near `lo` when the lowest one is far above it (final losses of 0.12 to
/// 0.17 under a lowest point of 0.2), so the lines' ends can be read off the axis.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = decade_ticks(lo, hi);
    if let Some(&low) = ticks.first() {
        // A fifth of a decade between the axis' foot and the lowest point is a gap (on an
        // axis of a few decades; over many, a point per decade or two is the scale).
        if low > lo * 10f64.powf(0.2) && hi / lo < 1e4 {
            let near = nice_above(lo);
            if near < low && near <= hi {
                ticks.insert(0, near);
            }
        }
    }
    ticks
}

/// The smallest of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8 (times a power of ten) at or
/// above `x`.
fn nice_above(x: f64) -> f64 {
    let p = 10f64.powi(x.log10().floor() as i32);
    [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0]
        .iter()
        .map(|m| round_sig(m * p, 3))
        .find(|&t| t >= x)
        .unwrap_or(10.0 * p)
}

/// `v` rounded to `sig` significant digits (a tick of 3 * 0.1 is 0.3, not 0.30000000000000004).
fn round_sig(v: f64, sig: i32) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(sig - 1 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

/// [`log_ticks`] before the point near the foot.
fn decade_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = lo.log10().floor() as i32..=hi.log10().ceil() as i32;
    let within = |mantissas: &[f64]| -> Vec<f64> {
        decades
            .clone()
            .flat_map(|d| {
                mantissas
                    .iter()
                    .map(move |m| round_sig(m * 10f64.powi(d), 3))
            })
            .filter(|t| (lo..=hi).contains(t))
            .collect()
    };
    // Over many decades (a loss run down to 1e-10), one point per decade, or per few.
    let span = decades.end() - decades.start();
    if span > 4 {
        let every = (span + 7) / 8;
        return decades
            .clone()
            .filter(|d| d % every == 0)
            .map(|d| 10f64.powi(d))
            .filter(|t| (lo..=hi).contains(t))
            .collect();
    }
    let coarse = within(&[1.0, 2.0, 3.0, 5.0]);
    if coarse.len() >= 3 {
        return coarse;
    }
    let halves: Vec<f64> = (2..20).map(|i| i as f64 / 2.0).collect();
    let fine = within(&halves);
    if fine.len() >= 3 {
        return fine;
    }
    // Rounded to the spacing's decade: distinct, and short.
    let scale = 10f64.powi(((hi - lo) / 5.0).log10().floor() as i32);
    let mut even: Vec<f64> = (1..=4)
        .map(|i| (lo * (hi / lo).powf(i as f64 / 5.0) / scale).round() * scale)
        .filter(|t| (lo..=hi).contains(t))
        .collect();
    even.dedup();
    even
}

/// The fewest significant digits that label `ticks` with distinct text, each reading back
/// as its tick (0.12 is never labelled 0.1).
pub fn label_digits(ticks: &[f64]) -> i32 {
    (1..=8)
        .find(|&d| {
            let mut l: Vec<String> = ticks.iter().map(|v| sig_digits(*v, d)).collect();
            let exact = ticks.iter().zip(&l).all(|(v, t)| {
                t.parse::<f64>()
                    .is_ok_and(|x| (x - v).abs() <= 1e-9 * v.abs())
            });
            l.sort();
            l.dedup();
            exact && l.len() == ticks.len()
        })
        .unwrap_or(8)
}

/// A tick's label: the fewest significant digits (at most `max`, see [`label_digits`]) that
/// read back as the tick (`0.15`, `0.2`, `1`; not `0.20`, `1.0`).
pub fn tick_label(v: f64, max: i32) -> String {
    (1..max)
        .map(|d| sig_digits(v, d))
        .find(|t| {
            t.parse::<f64>()
                .is_ok_and(|x| (x - v).abs() <= 1e-9 * v.abs())
        })
        .unwrap_or_else(|| sig_digits(v, max))
}

/// A number with `sig` significant digits, without an exponent for ordinary magnitudes
/// (an exponent below 1e-4 or from 1e6: `1e-9`, not ten zeros).
pub fn sig_digits(v: f64, sig: i32) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    if !(1e-4..1e6).contains(&v.abs()) {
        let p = (sig - 1).max(0) as usize;
        return format!("{v:.p$e}");
    }
    let decimals = (sig - 1 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.decimals$}")
}

/// Axes with a light major grid only (no minor lines: they crowd the curves).
pub(super) fn mesh<'a, DB, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    (x_desc, y_desc): (&str, &str),
    fmt_y: &dyn Fn(&f64) -> String,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    Y: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let xt = x_ticks(chart.x_range());
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .axis_desc_style((FAMILY, 18))
        .label_style((FAMILY, 15))
        // Whole epochs only: a short run's axis would otherwise tick every half epoch.
        .x_labels(xt)
        .y_labels(8)
        .x_label_formatter(&|v| {
            if (v - v.round()).abs() < 1e-6 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        })
        .y_label_formatter(fmt_y)
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(220, 220, 220))
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// How many epoch labels an axis over `x` asks for: one per epoch up to 10.
fn x_ticks(x: std::ops::Range<f64>) -> usize {
    ((x.end - x.start).round() as usize + 1).clamp(2, 10)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_loss_over_many_decades_gets_a_few_ticks_labelled_with_exponents() {
        let t = super::log_ticks(3e-12, 2.5);
        assert!((3..=9).contains(&t.len()), "{t:?}");
        assert!(t
            .iter()
            .all(|v| (v.log10().round() - v.log10()).abs() < 1e-9));
        let d = super::label_digits(&t);
        let labels: Vec<String> = t.iter().map(|v| super::sig_digits(*v, d)).collect();
        assert!(labels.iter().all(|l| l.len() <= 6), "{labels:?}");
        assert!(labels.contains(&"1e-10".to_string()), "{labels:?}");
        assert_eq!(super::sig_digits(0.05, 1), "0.05");
    }
}
