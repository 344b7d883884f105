//! The four curves of a run (train/eval loss and accuracy), one line per group of runs.
//! Accuracy panels are zoomed on the epochs where the variants differ (from a fifth of the
//! run on); loss panels are on a log axis by default.

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use super::series::{draw_band, draw_line, mean_band, Group, Point};
use super::{plot_err, render_png, FAMILY};
use crate::metrics::EpochRecord;

/// The four quantities a metrics file holds per epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Panel {
    TrainLoss,
    EvalLoss,
    TrainAcc,
    EvalAcc,
}

impl Panel {
    pub const ALL: [Panel; 4] = [
        Panel::TrainLoss,
        Panel::EvalLoss,
        Panel::TrainAcc,
        Panel::EvalAcc,
    ];

    /// File stem used by `compare` (`train_loss.png`, ...).
    pub fn stem(self) -> &'static str {
        match self {
            Panel::TrainLoss => "train_loss",
            Panel::EvalLoss => "eval_loss",
            Panel::TrainAcc => "train_acc",
            Panel::EvalAcc => "eval_acc",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Panel::TrainLoss => "Train loss",
            Panel::EvalLoss => "Eval loss",
            Panel::TrainAcc => "Train accuracy",
            Panel::EvalAcc => "Eval accuracy",
        }
    }

    fn is_loss(self) -> bool {
        matches!(self, Panel::TrainLoss | Panel::EvalLoss)
    }

    fn value(self, r: &EpochRecord) -> f64 {
        match self {
            Panel::TrainLoss => r.train_loss as f64,
            Panel::EvalLoss => r.eval_loss as f64,
            Panel::TrainAcc => r.train_acc,
            Panel::EvalAcc => r.eval_acc,
        }
    }
}

/// What the x axis of the curves counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XAxis {
    #[default]
    Epochs,
    /// Gradient evaluations summed over the epochs (runs of equal cost line up).
    Evals,
    /// Wall-clock seconds summed over the epochs.
    Seconds,
}

impl XAxis {
    fn desc(self) -> &'static str {
        match self {
            XAxis::Epochs => "epoch",
            XAxis::Evals => "gradient evaluations",
            XAxis::Seconds => "seconds",
        }
    }

    /// Where epoch `epoch` (1-based) ends on this axis: the mean over the group's runs.
    fn at(self, g: &Group, epoch: usize) -> f64 {
        let upto = |m: &&crate::metrics::Metrics, f: &dyn Fn(&EpochRecord) -> f64| {
            m.epochs.iter().take(epoch).map(f).sum::<f64>()
        };
        let f: &dyn Fn(&EpochRecord) -> f64 = match self {
            XAxis::Epochs => return epoch as f64,
            XAxis::Evals => &|r| r.grad_evals as f64,
            XAxis::Seconds => &|r| r.seconds,
        };
        g.runs.iter().map(|m| upto(m, f)).sum::<f64>() / g.runs.len().max(1) as f64
    }
}

/// How to draw the charts.
#[derive(Clone, Copy, Debug)]
pub struct ChartOptions {
    /// Loss on a log10 axis (the fast early drop and the slow tail both stay readable).
    pub log_loss: bool,
    pub x: XAxis,
    pub width: u32,
    pub height: u32,
}

impl Default for ChartOptions {
    fn default() -> Self {
        ChartOptions {
            log_loss: true,
            x: XAxis::Epochs,
            width: 900,
            height: 600,
        }
    }
}

/// The first epoch an accuracy panel shows: a fifth into the run, where the early climb
/// (from 10% to 80%) is over and the variants' differences of a fraction of a percent show.
pub fn zoom_start(max_epoch: usize) -> usize {
    (max_epoch / 5).max(1)
}

/// Draws one panel (one line per group) into a drawing area.
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    groups: &[Group],
    panel: Panel,
    opts: &ChartOptions,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let log = panel.is_loss() && opts.log_loss;
    let max_epoch = groups
        .iter()
        .flat_map(|g| g.runs.iter().flat_map(|m| m.epochs.last().map(|r| r.epoch)))
        .max()
        .unwrap_or(1)
        .max(2);
    let first = if panel.is_loss() {
        1
    } else {
        zoom_start(max_epoch)
    };
    let lines: Vec<Vec<Point>> = groups
        .iter()
        .map(|g| {
            mean_band(g, |r| Some(panel.value(r)))
                .into_iter()
                .filter(|p| p.0 >= first as f64 && (!log || p.1 - p.2 > 1e-100))
                .map(|p| (opts.x.at(g, p.0 as usize), p.1, p.2))
                .collect()
        })
        .collect();
    let (mut lo, mut hi) = lines
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1 - p.2), hi.max(p.1 + p.2))
        });
    if !lo.is_finite() || !hi.is_finite() {
        (lo, hi) = (0.1, 1.0);
    }
    let y_desc = match (panel.is_loss(), log) {
        (true, true) => "cross-entropy (log scale)",
        (true, false) => "cross-entropy",
        (false, _) => "accuracy",
    };
    let title = if first > 1 {
        format!("{} (epochs {first}-{max_epoch})", panel.title())
    } else {
        panel.title().to_string()
    };
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, (FAMILY, 26))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(72);
    let x = match opts.x {
        XAxis::Epochs => first as f64..max_epoch as f64,
        axis => {
            let xs = lines.iter().flatten().map(|p| p.0);
            let (lo, hi) = xs.fold((f64::INFINITY, 0f64), |(a, b), v| (a.min(v), b.max(v)));
            if lo < hi {
                lo..hi
            } else {
                0.0..axis.at(&groups[0], max_epoch).max(1.0)
            }
        }
    };
    // The two axis kinds are different types, so each builds its chart and shares the rest.
    if log {
        let (lo, hi) = (lo / 1.1, hi * 1.1);
        // Ticks at 1-2-3-5 of each decade in range (plotters alone labels too few).
        let ticks: Vec<f64> = (lo.log10().floor() as i32..=hi.log10().ceil() as i32)
            .flat_map(|d| [1.0, 2.0, 3.0, 5.0].map(|m| m * 10f64.powi(d)))
            .filter(|t| (lo..=hi).contains(t))
            .collect();
        let chart = builder
            .build_cartesian_2d(x, (lo..hi).log_scale().with_key_points(ticks))
            .map_err(plot_err)?;
        finish_panel(chart, groups, lines, (panel, opts.x), y_desc)
    } else {
        let pad = ((hi - lo) * 0.05).max(1e-6);
        let chart = builder
            .build_cartesian_2d(x, lo - pad..hi + pad)
            .map_err(plot_err)?;
        finish_panel(chart, groups, lines, (panel, opts.x), y_desc)
    }
}

/// Mesh, bands, lines and legend of a panel, whatever its y axis.
fn finish_panel<'a, DB, Y>(
    mut chart: ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    groups: &[Group],
    lines: Vec<Vec<Point>>,
    (panel, axis): (Panel, XAxis),
    y_desc: &str,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    Y: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let fmt_y = |v: &f64| {
        if !panel.is_loss() {
            format!("{:.1}%", v * 100.0)
        } else if v.abs() >= 0.095 {
            format!("{v:.2}")
        } else {
            format!("{v:.3}")
        }
    };
    mesh(&mut chart, (axis.desc(), y_desc), &fmt_y)?;
    for (g, pts) in groups.iter().zip(&lines) {
        draw_band(&mut chart, pts, g.color)?;
    }
    for (g, pts) in groups.iter().zip(lines) {
        // The last value in the legend: the end of the curves is where they differ least
        // visibly and matter most.
        let seeds = match g.runs.len() {
            1 => String::new(),
            n => format!(" (mean of {n})"),
        };
        let at = |e: f64| match axis {
            XAxis::Epochs => format!("epoch {e}"),
            XAxis::Evals => format!("{e:.0} evaluations"),
            XAxis::Seconds => format!("{e:.1} s"),
        };
        let label = match pts.last() {
            Some(&(e, v, _)) if panel.is_loss() => {
                format!("{}{seeds}: {v:.4} at {}", g.label, at(e))
            }
            Some(&(e, v, _)) => format!("{}{seeds}: {:.2}% at {}", g.label, v * 100.0, at(e)),
            None => g.label.clone(),
        };
        let pts = pts.iter().map(|p| (p.0, p.1)).collect();
        draw_line(&mut chart, pts, (g.color, g.kind), 2, label)?;
    }
    legend(&mut chart, panel.is_loss())
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
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .axis_desc_style((FAMILY, 18))
        .label_style((FAMILY, 15))
        .x_labels(10)
        .y_labels(8)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(fmt_y)
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(220, 220, 220))
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

pub(super) fn legend<'a, DB, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    upper: bool,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(if upper {
            SeriesLabelPosition::UpperRight
        } else {
            SeriesLabelPosition::LowerRight
        })
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(150, 150, 150))
        .label_font((FAMILY, 17))
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// One chart of one quantity, one line per group.
pub fn chart(path: &Path, groups: &[Group], panel: Panel, opts: &ChartOptions) -> Result<()> {
    render_png(path, opts.width, opts.height, |root| {
        draw_panel(root, groups, panel, opts)
    })
}

/// The four quantities in a 2 x 2 grid (train/eval loss on top, accuracies below).
pub fn grid(path: &Path, groups: &[Group], opts: &ChartOptions) -> Result<()> {
    render_png(path, opts.width * 2, opts.height * 2, |root| {
        for (area, panel) in root.split_evenly((2, 2)).iter().zip(Panel::ALL) {
            draw_panel(area, groups, panel, opts)?;
        }
        Ok(())
    })
}
