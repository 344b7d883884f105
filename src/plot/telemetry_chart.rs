//! The Rprop telemetry chart: per epoch, for each group of runs and each layer, the fraction
//! of weights whose gradient changed sign, the backtracks, the step sizes at the bounds and
//! the median step size (see `crate::telemetry`).

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use super::axes::mesh;
use super::series::{mean_band, Draw, Group, LineKind};
use super::{plot_err, render_png, ChartOptions, FAMILY};
use crate::telemetry::LayerTelemetry;

/// A quantity of the telemetry chart: title, axis, value, and how to label the axis.
struct Quantity {
    title: &'static str,
    axis: &'static str,
    value: fn(&LayerTelemetry) -> f64,
    fmt: fn(&f64) -> String,
    /// Least padding above and below the data, in axis units: a flat line still gets an
    /// axis with distinct labels.
    pad: f64,
    /// Never below zero (counts and fractions).
    non_negative: bool,
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
        pad: 1e-2,
        non_negative: true,
    },
    Quantity {
        title: "Backtracks (weights moved back)",
        axis: "weights per epoch",
        value: |t| t.backtracks as f64,
        // Whole counts only: an all-zero panel is labelled 0 once, not "0, 0, -0".
        fmt: |v| {
            if (v - v.round()).abs() < 1e-9 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        },
        pad: 1.0,
        non_negative: true,
    },
    Quantity {
        title: "Step sizes at step_min",
        axis: "fraction of weights",
        value: |t| t.at_min,
        fmt: pct,
        pad: 1e-2,
        non_negative: true,
    },
    Quantity {
        title: "Step sizes at step_max",
        axis: "fraction of weights",
        value: |t| t.at_max,
        fmt: pct,
        pad: 1e-2,
        non_negative: true,
    },
    Quantity {
        title: "Median step size",
        axis: "step size (log10 axis)",
        value: |t| (t.median_step as f64).max(1e-12).log10(),
        // Two digits, and at least 0.15 decade either side: ticks ~12% apart read apart.
        fmt: |v| format!("{:.1e}", 10f64.powf(*v)),
        pad: 0.15,
        non_negative: false,
    },
];

/// Layer 2 and deeper: the group's colour lightened, so layers of one optimizer pair up.
fn lighter(c: RGBColor, layer: usize) -> RGBColor {
    let t = 1.0 - 0.55f64.powi(layer as i32);
    let mix = |x: u8| (x as f64 + (255.0 - x as f64) * t * 0.8) as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

/// The most layers any epoch of the groups' runs has telemetry for.
fn layers(groups: &[Group]) -> usize {
    groups
        .iter()
        .flat_map(|g| g.runs.iter().flat_map(|m| m.epochs.iter()))
        .map(|r| r.telemetry.len())
        .max()
        .unwrap_or(0)
}

fn draw_quantity<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    groups: &[Group],
    q: &Quantity,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let layers = layers(groups);
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
    let pad = ((hi - lo) * 0.05).max(q.pad);
    let (lo, hi) = (lo - pad, hi + pad);
    let lo = if q.non_negative { lo.max(0.0) } else { lo };
    let max_epoch = lines
        .iter()
        .flat_map(|(_, _, p)| p.last().map(|x| x.0))
        .fold(2.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(q.title, (FAMILY, 24))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(1.0..max_epoch, lo..hi)
        .map_err(plot_err)?;
    mesh(&mut chart, ("epoch", q.axis), &q.fmt)?;
    for (g, l, pts) in &lines {
        chart.band(pts, lighter(g.color, *l))?;
    }
    for (g, l, pts) in lines {
        let label = format!("{} layer {}", g.label, l + 1);
        let xy = pts.iter().map(|p| (p.0, p.1)).collect();
        let width = if l == 0 { 2 } else { 1 };
        chart.line(xy, (lighter(g.color, l), g.kind), width, label)?;
    }
    Ok(())
}

/// The telemetry of the groups' runs, five panels in a 3 x 2 grid, the sixth saying how to
/// read them, with the legend. Groups without telemetry (non-Rprop optimizers) draw nothing.
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
        // One legend for the five panels, here beside them: in a panel it would cover data.
        let layers = layers(groups);
        let top = 60 + 34 * note.len() as i32 + 20;
        let per_column = ((opts.height as i32 - top - 10) / 30).max(1);
        let mut row = 0;
        let with_telemetry = groups.iter().filter(|g| {
            g.runs
                .iter()
                .any(|m| m.epochs.iter().any(|r| !r.telemetry.is_empty()))
        });
        for g in with_telemetry {
            for l in 0..layers {
                // Deep networks' many layers: further columns.
                let x = 40 + 430 * (row / per_column);
                let y = top + 30 * (row % per_column);
                let color = lighter(g.color, l);
                let style = color.stroke_width(if l == 0 { 3 } else { 2 });
                areas[5]
                    .draw(&PathElement::new(vec![(x, y), (x + 60, y)], style))
                    .map_err(plot_err)?;
                if g.kind == LineKind::Dashed {
                    areas[5]
                        .draw(&Circle::new((x + 30, y), 4, color.filled()))
                        .map_err(plot_err)?;
                }
                let label = format!("{} layer {}", g.label, l + 1);
                areas[5]
                    .draw(&Text::new(
                        label,
                        (x + 72, y - 11),
                        (FAMILY, 20).into_font(),
                    ))
                    .map_err(plot_err)?;
                row += 1;
            }
        }
        Ok(())
    })
}
