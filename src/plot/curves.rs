//! The four curves of a run (train/eval loss and accuracy), one line per group of runs.
//! Accuracy panels are zoomed on the epochs where the variants differ (from a fifth of the
//! run on, or a line's best epoch if earlier); loss panels are on a log axis by default.
//! The legend stands in the emptiest corner, or beside the plot when there are many lines.

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use super::axes::{label_digits, line_start, log_ticks, mesh, tick_label, zoom_start};
use super::legend::{draw_side, emptiest_corner, legend_box, side_width, unit_lines, value_text};
use super::series::{mean_band, Draw, Group, LineKind, Point};
use super::{plot_err, render_png, FAMILY, MORE_COLOURS, PALETTE};
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

/// Where a panel's legend goes: inside the plot (at the corner [`plot_panel`] picks), or
/// beside it, in the area given.
enum Legend<DB: DrawingBackend> {
    Inside,
    Beside(DrawingArea<DB, plotters::coord::Shift>),
}

/// Draws one panel (one line per group) into a drawing area; its legend beside the plot
/// when there are more lines than fit inside ([`side_width`]).
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    groups: &[Group],
    panel: Panel,
    opts: &ChartOptions,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    match side_width(groups, opts.x) {
        Some(w) => {
            let (aw, _) = area.dim_in_pixel();
            let (plot, side) = area.split_horizontally(aw.saturating_sub(w) as i32);
            plot_panel(&plot, groups, panel, opts, Legend::Beside(side))
        }
        None => plot_panel(area, groups, panel, opts, Legend::Inside),
    }
}

/// The epochs a panel shows: the last, and the first (1 for a loss; for an accuracy the
/// zoom's start, or a line's best epoch if earlier) for each group.
fn epoch_span(groups: &[Group], panel: Panel) -> (Vec<usize>, usize) {
    let max_epoch = groups
        .iter()
        .flat_map(|g| g.runs.iter().flat_map(|m| m.epochs.last().map(|r| r.epoch)))
        .max()
        .unwrap_or(1)
        .max(2);
    let firsts = groups
        .iter()
        .map(|g| match panel.is_loss() {
            true => 1,
            false => {
                let best = g.runs.iter().map(|m| m.best_epoch).min().unwrap_or(0);
                line_start(zoom_start(max_epoch), best)
            }
        })
        .collect();
    (firsts, max_epoch)
}

/// [`draw_panel`] on the plot's area, with its legend as `legend` says.
fn plot_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    groups: &[Group],
    panel: Panel,
    opts: &ChartOptions,
    legend: Legend<DB>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let log = panel.is_loss() && opts.log_loss;
    let (firsts, max_epoch) = epoch_span(groups, panel);
    let first = firsts.iter().copied().min().unwrap_or(1);
    let lines = panel_lines(groups, panel, opts.x, &firsts, log);
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
    let x = x_range(&lines, groups, opts.x, (first, max_epoch));
    let legend_box = legend_box(groups, area.dim_in_pixel());
    let (x0, x1) = (x.start, x.end);
    let xs = |e: f64| (e - x0) / (x1 - x0).max(1e-12);
    let inside = matches!(legend, Legend::Inside);
    let at = |ys: &dyn Fn(f64) -> f64| {
        inside.then(|| emptiest_corner(&unit_lines(&lines, xs, ys), legend_box))
    };
    // The two axis kinds are different types, so each builds its chart and shares the rest.
    let entries = if log {
        let (lo, hi) = (lo / 1.1, hi * 1.1);
        let ticks = log_ticks(lo, hi);
        let digits = label_digits(&ticks);
        let pos = at(&|v: f64| (v.max(lo).ln() - lo.ln()) / (hi.ln() - lo.ln()));
        let chart = builder
            .build_cartesian_2d(x, (lo..hi).log_scale().with_key_points(ticks))
            .map_err(plot_err)?;
        finish_panel(chart, groups, &lines, (panel, digits, opts.x), y_desc, pos)?
    } else {
        let pad = ((hi - lo) * 0.05).max(1e-6);
        let (lo, hi) = (lo - pad, hi + pad);
        let pos = at(&|v: f64| (v - lo) / (hi - lo));
        let chart = builder.build_cartesian_2d(x, lo..hi).map_err(plot_err)?;
        finish_panel(chart, groups, &lines, (panel, 3, opts.x), y_desc, pos)?
    };
    match legend {
        Legend::Beside(side) => draw_side(&side, &entries),
        Legend::Inside => Ok(()),
    }
}

/// Each group's points on a panel: from its epoch in `firsts` on, against the x axis,
/// dropping values a log axis cannot show.
fn panel_lines(
    groups: &[Group],
    panel: Panel,
    x: XAxis,
    firsts: &[usize],
    log: bool,
) -> Vec<Vec<Point>> {
    groups
        .iter()
        .zip(firsts)
        .map(|(g, &first)| {
            mean_band(g, |r| Some(panel.value(r)))
                .into_iter()
                .filter(|p| p.0 >= first as f64 && (!log || p.1 - p.2 > 1e-100))
                .map(|p| (x.at(g, p.0 as usize), p.1, p.2))
                .collect()
        })
        .collect()
}

/// The x axis's range: the epochs shown, or the span of the lines' evaluations or seconds.
fn x_range(
    lines: &[Vec<Point>],
    groups: &[Group],
    axis: XAxis,
    (first, max_epoch): (usize, usize),
) -> std::ops::Range<f64> {
    if axis == XAxis::Epochs {
        return first as f64..max_epoch as f64;
    }
    let xs = lines.iter().flatten().map(|p| p.0);
    let (lo, hi) = xs.fold((f64::INFINITY, 0f64), |(a, b), v| (a.min(v), b.max(v)));
    if lo < hi {
        lo..hi
    } else {
        0.0..axis.at(&groups[0], max_epoch).max(1.0)
    }
}

/// A line's colour and stroke.
pub type Style = (RGBColor, LineKind);

const KINDS: [LineKind; 3] = [LineKind::Solid, LineKind::Dashed, LineKind::Dotted];

/// Every line gets its own style: its wanted one (its optimizer's) when no earlier line has
/// it; else a colour no line has yet, in its wanted stroke; else the first style not taken.
/// Distinct for up to 45 lines (15 colours, 3 strokes); beyond that styles repeat.
pub fn distinct_styles(wanted: &[Style]) -> Vec<Style> {
    let colours: Vec<RGBColor> = PALETTE.iter().chain(&MORE_COLOURS).copied().collect();
    let all: Vec<Style> = KINDS
        .iter()
        .flat_map(|&k| colours.iter().map(move |&c| (c, k)))
        .collect();
    let mut out: Vec<Style> = Vec::with_capacity(wanted.len());
    for &w in wanted {
        let taken = |s: &Style| out.contains(s);
        let colour_free = |c: &RGBColor| out.iter().all(|s| s.0 != *c);
        let pick = if !taken(&w) {
            w
        } else if let Some(&c) = colours.iter().find(|c| colour_free(c)) {
            (c, w.1)
        } else {
            all.iter().copied().find(|s| !taken(s)).unwrap_or(w)
        };
        out.push(pick);
    }
    out
}

/// Mesh, bands, lines and (at `legend_at`, if given) legend of a panel, whatever its y
/// axis; returns the legend's entries (each line's style and label).
fn finish_panel<'a, DB, Y>(
    mut chart: ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    groups: &[Group],
    lines: &[Vec<Point>],
    (panel, digits, axis): (Panel, i32, XAxis),
    y_desc: &str,
    legend_at: Option<SeriesLabelPosition>,
) -> Result<Vec<(Style, String)>>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    Y: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let fmt_y = |v: &f64| {
        if !panel.is_loss() {
            format!("{:.1}%", v * 100.0)
        } else {
            // Enough digits that the close ticks of a short run's log axis read apart.
            tick_label(*v, digits)
        }
    };
    mesh(&mut chart, (axis.desc(), y_desc), &fmt_y)?;
    let wanted: Vec<Style> = groups.iter().map(|g| (g.color, g.kind)).collect();
    let styles = distinct_styles(&wanted);
    for (style, pts) in styles.iter().zip(lines) {
        chart.band(pts, style.0)?;
    }
    let mut entries = Vec::with_capacity(groups.len());
    for ((g, pts), &style) in groups.iter().zip(lines).zip(&styles) {
        let label = entry_label(g, pts, panel, axis);
        let pts = pts.iter().map(|p| (p.0, p.1)).collect();
        chart.line(pts, style, 2, label.clone())?;
        entries.push((style, label));
    }
    if let Some(at) = legend_at {
        chart.legend(at)?;
    }
    Ok(entries)
}

/// A line's legend text: its name and its last value, where the end of the curves is
/// where they differ least visibly and matter most.
fn entry_label(g: &Group, pts: &[Point], panel: Panel, axis: XAxis) -> String {
    let seeds = match g.runs.len() {
        1 => String::new(),
        n => format!(" (mean of {n})"),
    };
    let at = |e: f64| match axis {
        XAxis::Epochs => format!("epoch {e}"),
        XAxis::Evals => format!("{e:.0} evaluations"),
        XAxis::Seconds => format!("{e:.1} s"),
    };
    match pts.last() {
        Some(&(e, v, _)) if panel.is_loss() => {
            format!("{}{seeds}: {} at {}", g.label, value_text(v), at(e))
        }
        Some(&(e, v, _)) => format!("{}{seeds}: {:.2}% at {}", g.label, v * 100.0, at(e)),
        None => g.label.clone(),
    }
}

/// One chart of one quantity, one line per group.
pub fn chart(path: &Path, groups: &[Group], panel: Panel, opts: &ChartOptions) -> Result<()> {
    let width = opts.width + side_width(groups, opts.x).unwrap_or(0);
    render_png(path, width, opts.height, |root| {
        draw_panel(root, groups, panel, opts)
    })
}

/// The four quantities in a 2 x 2 grid (train/eval loss on top, accuracies below).
pub fn grid(path: &Path, groups: &[Group], opts: &ChartOptions) -> Result<()> {
    let width = opts.width + side_width(groups, opts.x).unwrap_or(0);
    render_png(path, width * 2, opts.height * 2, |root| {
        for (area, panel) in root.split_evenly((2, 2)).iter().zip(Panel::ALL) {
            draw_panel(area, groups, panel, opts)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_series_get_n_distinct_styles() {
        // The worst case: every line wants the same style (one optimizer, many configs).
        for n in 1..=45 {
            let styles = distinct_styles(&vec![(PALETTE[0], LineKind::Solid); n]);
            for (i, a) in styles.iter().enumerate() {
                assert!(
                    !styles[..i].contains(a),
                    "{n} lines: line {i} repeats {a:?}"
                );
            }
        }
        // Lines whose wanted styles differ keep them.
        let wanted: Vec<Style> = (0..11).map(|i| (PALETTE[i], KINDS[i % 3])).collect();
        assert_eq!(distinct_styles(&wanted), wanted);
    }

    #[test]
    fn registry_optimizers_and_repeats_are_told_apart() {
        // Every registered optimizer three times (configs and variants of them): 33 lines.
        let wanted: Vec<Style> = crate::optim::Variant::ALL
            .iter()
            .flat_map(|v| [0, 1, 2].map(|k| crate::plot::style_of(v.name(), k)))
            .collect();
        assert!(wanted.len() > PALETTE.len() * 2);
        let styles = distinct_styles(&wanted);
        for (i, a) in styles.iter().enumerate() {
            assert!(!styles[..i].contains(a), "line {i} repeats {a:?}");
        }
        // A line's colour changes only where it would repeat an earlier line's style.
        assert_eq!(styles[0], wanted[0]);
        assert_eq!(styles[1], wanted[1]);
    }
}
