//! The Rprop telemetry chart: per epoch, for each group of runs and each layer, the fraction
//! of weights whose gradient changed sign, the backtracks, the step sizes at the bounds and
//! the median step size (see `crate::telemetry`).

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use super::curves::{legend, mesh};
use super::series::{draw_band, draw_line, mean_band, Group};
use super::{plot_err, render_png, ChartOptions, FAMILY};
use crate::telemetry::LayerTelemetry;

/// A quantity of the telemetry chart: title, axis, value, and how to label the axis.
struct Quantity {
    title: &'static str,
    axis: &'static str,
    value: fn(&LayerTelemetry) -> f64,
    fmt: fn(&f64) -> String,
}

fn pct(v: &f64) -> String {
    format!("{:.1}%", v * 100.0)
}

const QUANTITIES: [Quantity; 5] = [
    Quantity {
        title: "Weights whose gradient changed sign",
        axis: "fraction of updates",
        value: |t| t.sign_changes,
        fmt: pct,
    },
    Quantity {
        title: "Backtracks (weights moved back)",
        axis: "weights per epoch",
        value: |t| t.backtracks as f64,
        fmt: |v| format!("{v:.0}"),
    },
    Quantity {
        title: "Step sizes at step_min",
        axis: "fraction of weights",
        value: |t| t.at_min,
        fmt: pct,
    },
    Quantity {
        title: "Step sizes at step_max",
        axis: "fraction of weights",
        value: |t| t.at_max,
        fmt: pct,
    },
    Quantity {
        title: "Median step size",
        axis: "step size (log10 axis)",
        value: |t| (t.median_step as f64).max(1e-12).log10(),
        fmt: |v| format!("{:.0e}", 10f64.powf(*v)),
    },
];

/// Layer 2 and deeper: the group's colour lightened, so layers of one optimizer pair up.
fn lighter(c: RGBColor, layer: usize) -> RGBColor {
    let t = 1.0 - 0.55f64.powi(layer as i32);
    let mix = |x: u8| (x as f64 + (255.0 - x as f64) * t * 0.8) as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

fn draw_quantity<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    groups: &[Group],
    q: &Quantity,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let layers = groups
        .iter()
        .flat_map(|g| g.runs.iter().flat_map(|m| m.epochs.iter()))
        .map(|r| r.telemetry.len())
        .max()
        .unwrap_or(0);
    let mut lines = Vec::new();
    for g in groups {
        for l in 0..layers {
            let pts = mean_band(g, |r| r.telemetry.get(l).map(q.value));
            if !pts.is_empty() {
                lines.push((g, l, pts));
            }
        }
    }
    let (mut lo, mut hi) = lines
        .iter()
        .flat_map(|(_, _, p)| p)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1 - p.2), hi.max(p.1 + p.2))
        });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    // At least a percent either side, so a flat line at 0 gets readable ticks.
    let pad = ((hi - lo) * 0.05).max(1e-2);
    let max_epoch = lines
        .iter()
        .flat_map(|(_, _, p)| p.last().map(|x| x.0))
        .fold(2.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(q.title, (FAMILY, 24))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(1.0..max_epoch, lo - pad..hi + pad)
        .map_err(plot_err)?;
    mesh(&mut chart, ("epoch", q.axis), &q.fmt)?;
    for (g, l, pts) in &lines {
        draw_band(&mut chart, pts, lighter(g.color, *l))?;
    }
    for (g, l, pts) in lines {
        let label = format!("{} layer {}", g.label, l + 1);
        let xy = pts.iter().map(|p| (p.0, p.1)).collect();
        let width = if l == 0 { 2 } else { 1 };
        draw_line(&mut chart, xy, (lighter(g.color, l), g.kind), width, label)?;
    }
    legend(&mut chart, true)
}

/// The telemetry of the groups' runs, five panels in a 3 x 2 grid, the sixth saying how to
/// read them. Groups without telemetry (non-Rprop optimizers) draw nothing.
pub fn telemetry_chart(path: &Path, groups: &[Group], opts: &ChartOptions) -> Result<()> {
    render_png(path, opts.width * 2, opts.height * 3, |root| {
        let areas = root.split_evenly((3, 2));
        for (area, q) in areas.iter().zip(&QUANTITIES) {
            draw_quantity(area, groups, q)?;
        }
        let note = [
            "Rprop telemetry, per epoch and per layer",
            "(layer 1 dark, layer 2 lighter; bands: ± 1 sd over seeds).",
            "Sign changes: g * g_prev < 0 at the update.",
            "Backtracks: Rprop+ undoes every sign change;",
            "iRprop+ only when the loss went up.",
            "Step sizes after the epoch's last update;",
            "median from a 512-bin log histogram (±1.8%).",
        ];
        for (i, line) in note.iter().enumerate() {
            areas[5]
                .draw(&Text::new(
                    *line,
                    (40, 60 + 34 * i as i32),
                    (FAMILY, 22).into_font(),
                ))
                .map_err(plot_err)?;
        }
        Ok(())
    })
}
