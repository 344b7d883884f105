//! A sweep's charts: `sensitivity.png`, eval accuracy against each varied key (a log axis
//! where the key was drawn log-uniformly, names where it is a choice; one colour per
//! optimizer; the chosen best ringed; failed trials as grey crosses at the bottom), and
//! `best_so_far.png`, the best eval accuracy so far against the trials ended and against
//! the wall time.

use std::path::{Path, PathBuf};

use anyhow::Result;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use serde_json::Value;

use super::plan::SweepRecord;
use super::report::{cell, Row};
use super::space::Dist;
use super::status::State;
use crate::plot::{emptiest_corner, render_png, sig_digits, style_of, FAMILY};

const GREY: RGBColor = RGBColor(150, 150, 150);
const GRID: RGBColor = RGBColor(220, 220, 220);

/// Writes both charts into `out`; returns their paths.
pub fn write(
    out: &Path,
    sweep: &SweepRecord,
    rows: &[Row],
    ranked: &[usize],
) -> Result<Vec<PathBuf>> {
    let sens = out.join("sensitivity.png");
    sensitivity(&sens, sweep, rows, ranked)?;
    let best = out.join("best_so_far.png");
    best_so_far(&best, rows)?;
    Ok(vec![sens, best])
}

/// One varied key's axis: how a value maps onto it and how its ticks read.
struct Axis {
    key: String,
    log: bool,
    /// The choices, for a key that is not a number on a line.
    names: Option<Vec<String>>,
    choices: Vec<Value>,
}

impl Axis {
    fn of(key: &str, dist: Option<&Dist>) -> Axis {
        let (log, choices) = match dist {
            Some(Dist::Choice(v)) => (false, Some(v.clone())),
            Some(d) => (d.is_log(), None),
            None => (false, None),
        };
        Axis {
            key: key.to_string(),
            log,
            names: choices.as_ref().map(|c| c.iter().map(cell).collect()),
            choices: choices.unwrap_or_default(),
        }
    }

    /// Where `v` lies on the axis (log10 of it on a log axis; a choice's position).
    fn x(&self, v: &Value) -> Option<f64> {
        if self.names.is_some() {
            return self.choices.iter().position(|c| c == v).map(|i| i as f64);
        }
        let x = match v {
            // One hidden layer drawn as a number is recorded as [n].
            Value::Array(a) if a.len() == 1 => a[0].as_f64(),
            v => v.as_f64(),
        }?;
        match self.log {
            true if x > 0.0 => Some(x.log10()),
            true => None,
            false => Some(x),
        }
    }

    fn label(&self, x: f64) -> String {
        match &self.names {
            Some(n) if (x - x.round()).abs() < 1e-6 && x >= 0.0 => {
                n.get(x.round() as usize).cloned().unwrap_or_default()
            }
            Some(_) => String::new(),
            None if self.log => {
                let digits = if (x - x.round()).abs() < 1e-6 { 1 } else { 2 };
                sig_digits(10f64.powf(x), digits)
            }
            None => sig_digits(x, 3),
        }
    }

    fn desc(&self) -> String {
        match (self.log, &self.names) {
            (true, _) => format!("{} (log scale)", self.key),
            _ => self.key.clone(),
        }
    }
}

/// `lo..hi` padded by a twentieth (a category axis: half a step each side).
fn padded(xs: impl Iterator<Item = f64>, categories: bool) -> std::ops::Range<f64> {
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    if categories {
        return lo - 0.5..hi + 0.5;
    }
    let pad = ((hi - lo) * 0.05).max(1e-3 * lo.abs().max(1.0));
    lo - pad..hi + pad
}

/// Eval accuracy against each varied key, a panel per key (two columns).
fn sensitivity(path: &Path, sweep: &SweepRecord, rows: &[Row], ranked: &[usize]) -> Result<()> {
    let axes: Vec<(usize, Axis)> = (sweep.dists().iter().enumerate())
        .map(|(i, (k, d))| (i, Axis::of(k, d.as_ref())))
        .take(12)
        .collect();
    let cols = axes.len().min(2);
    let lines = axes.len().div_ceil(cols.max(1));
    let accs = rows.iter().filter_map(|r| r.scores().map(|s| s.0));
    let y = padded(accs, false);
    let y = y.start.max(0.0)..y.end.min(1.0);
    let best = ranked.first().copied();
    render_png(path, 700 * cols as u32, 480 * lines as u32, |root| {
        let areas = root.split_evenly((lines, cols));
        for (area, (k, axis)) in areas.iter().zip(&axes) {
            panel(area, axis, *k, rows, best, y.clone())?;
        }
        Ok(())
    })
}

/// One key's panel.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    axis: &Axis,
    k: usize,
    rows: &[Row],
    best: Option<usize>,
    y: std::ops::Range<f64>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = crate::plot::plot_err;
    let at = |r: &Row| r.settings.get(k).and_then(|v| axis.x(v));
    let x = padded(rows.iter().filter_map(at), axis.names.is_some());
    let mut chart = ChartBuilder::on(area)
        .caption(format!("eval accuracy vs {}", axis.key), (FAMILY, 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x.clone(), y.clone())
        .map_err(err)?;
    let ticks = axis.names.as_ref().map_or(8, |n| n.len().clamp(2, 12));
    chart
        .configure_mesh()
        .x_desc(axis.desc())
        .y_desc("eval accuracy (best epoch)")
        .axis_desc_style((FAMILY, 16))
        .label_style((FAMILY, 13))
        .x_labels(ticks)
        .x_label_formatter(&|v| axis.label(*v))
        .y_label_formatter(&|v| format!("{:.1}%", v * 100.0))
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .draw()
        .map_err(err)?;
    points(&mut chart, &at, rows, best, &y)?;
    // The legend goes to the corner where it hides the fewest points, and never over the
    // chosen best (it counts as every other point together).
    let unit: Vec<(f64, f64)> = (rows.iter().enumerate())
        .flat_map(|(i, r)| std::iter::repeat_n(r, if best == Some(i) { rows.len() } else { 1 }))
        .filter_map(|r| Some((at(r)?, r.scores()?.0)))
        .map(|(a, b)| {
            let u = (a - x.start) / (x.end - x.start);
            (u, (b - y.start) / (y.end - y.start).max(1e-12))
        })
        .collect();
    let legend = (0.3, 0.07 * (optimizers_shown(rows) + 2) as f64);
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(GRID)
        .label_font((FAMILY, 13))
        .position(emptiest_corner(&unit, legend))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// A panel's chart: both axes plain numbers (a log axis holds log10 of the values).
type Panel<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The done trials' points (a colour per optimizer), the failed ones as crosses at the
/// bottom, and a ring around the chosen best.
fn points<DB: DrawingBackend>(
    chart: &mut Panel<'_, DB>,
    at: &dyn Fn(&Row) -> Option<f64>,
    rows: &[Row],
    best: Option<usize>,
    y: &std::ops::Range<f64>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = crate::plot::plot_err;
    let mut optimizers: Vec<&str> = rows.iter().map(|r| r.optimizer.as_str()).collect();
    optimizers.sort();
    optimizers.dedup();
    for name in optimizers {
        let colour = style_of(name, 0).0;
        let pts: Vec<(f64, f64)> = (rows.iter())
            .filter(|r| r.optimizer == name)
            .filter_map(|r| Some((at(r)?, r.scores()?.0)))
            .collect();
        if pts.is_empty() {
            continue;
        }
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, colour.filled())))
            .map_err(err)?
            .label(name.to_string())
            .legend(move |(a, b)| Circle::new((a, b), 4, colour.filled()));
    }
    let failed: Vec<(f64, f64)> = (rows.iter())
        .filter(|r| matches!(r.state, State::Failed(_)))
        .filter_map(|r| Some((at(r)?, y.start + (y.end - y.start) * 0.02)))
        .collect();
    if !failed.is_empty() {
        chart
            .draw_series(
                failed
                    .iter()
                    .map(|&p| Cross::new(p, 5, GREY.stroke_width(2))),
            )
            .map_err(err)?
            .label("failed or diverged")
            .legend(|(a, b)| Cross::new((a, b), 5, GREY.stroke_width(2)));
    }
    if let Some(p) = best.and_then(|b| Some((at(&rows[b])?, rows[b].scores()?.0))) {
        chart
            .draw_series(std::iter::once(Circle::new(p, 10, BLACK.stroke_width(2))))
            .map_err(err)?
            .label(format!("chosen: {}", rows[best.unwrap_or(0)].name))
            .legend(|(a, b)| Circle::new((a, b), 7, BLACK.stroke_width(2)));
    }
    Ok(())
}

/// The optimizers with a done trial (a legend row each).
fn optimizers_shown(rows: &[Row]) -> usize {
    let mut v: Vec<&str> = (rows.iter())
        .filter(|r| r.scores().is_some())
        .map(|r| r.optimizer.as_str())
        .collect();
    v.sort();
    v.dedup();
    v.len()
}

/// The best eval accuracy so far, after each ended trial (in the order they ended): by
/// count and by minutes since the first of them started.
fn best_so_far(path: &Path, rows: &[Row]) -> Result<()> {
    let mut ended: Vec<(f64, f64, Option<f64>)> = (rows.iter())
        .filter_map(|r| match &r.state {
            State::Done(o) | State::Failed(o) => {
                Some((o.finished_unix, o.started_unix, r.scores().map(|s| s.0)))
            }
            _ => None,
        })
        .collect();
    ended.sort_by(|a, b| a.0.total_cmp(&b.0));
    let t0 = ended.iter().map(|e| e.1).fold(f64::INFINITY, f64::min);
    let span = ended.last().map_or(0.0, |e| e.0 - t0);
    let (unit, per) = match span {
        s if s < 120.0 => ("seconds", 1.0),
        s if s < 7200.0 => ("minutes", 60.0),
        _ => ("hours", 3600.0),
    };
    let mut best: Option<f64> = None;
    let mut by_count = Vec::new();
    let mut by_time = Vec::new();
    for (n, (end, _, acc)) in ended.iter().enumerate() {
        best = match (best, acc) {
            (Some(b), Some(a)) => Some(b.max(*a)),
            (b, a) => b.or(*a),
        };
        if let Some(b) = best {
            by_count.push(((n + 1) as f64, b));
            by_time.push(((end - t0).max(0.0) / per, b));
        }
    }
    let time_desc = format!("wall time ({unit}) since the first trial started");
    let y = padded(by_count.iter().map(|p| p.1), false);
    let y = y.start.max(0.0)..y.end.min(1.0);
    render_png(path, 1400, 520, |root| {
        let areas = root.split_evenly((1, 2));
        let panels = [
            (
                &by_count,
                "trials ended",
                "best eval accuracy vs trials ended",
            ),
            (
                &by_time,
                time_desc.as_str(),
                "best eval accuracy vs wall time",
            ),
        ];
        for (area, (pts, xd, title)) in areas.iter().zip(panels) {
            steps(area, pts, xd, title, y.clone())?;
        }
        Ok(())
    })
}

/// A step line through `pts` (the best so far holds until the next improvement).
fn steps<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    pts: &[(f64, f64)],
    x_desc: &str,
    title: &str,
    y: std::ops::Range<f64>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = crate::plot::plot_err;
    let x_hi = pts.iter().map(|p| p.0).fold(0.0, f64::max).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_hi * 1.03, y)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("best eval accuracy so far")
        .axis_desc_style((FAMILY, 16))
        .label_style((FAMILY, 13))
        .x_label_formatter(&|v| {
            if (v - v.round()).abs() < 1e-9 {
                format!("{v:.0}")
            } else {
                sig_digits(*v, 2)
            }
        })
        .y_label_formatter(&|v| format!("{:.1}%", v * 100.0))
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .draw()
        .map_err(err)?;
    let mut line = Vec::new();
    for (i, &(x, b)) in pts.iter().enumerate() {
        if i > 0 {
            line.push((x, pts[i - 1].1));
        }
        line.push((x, b));
    }
    let colour = crate::plot::PALETTE[0];
    chart
        .draw_series(LineSeries::new(line, colour.stroke_width(2)))
        .map_err(err)?;
    // A marker where the best improved.
    let gains = (pts.iter().enumerate())
        .filter(|(i, p)| *i == 0 || p.1 > pts[i - 1].1)
        .map(|(_, &p)| Circle::new(p, 4, colour.filled()));
    chart.draw_series(gains).map_err(err)?;
    Ok(())
}
