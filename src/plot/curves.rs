//! The four curves of a run (train/eval loss and accuracy), one line per group of runs.
//! Accuracy panels are zoomed on the epochs where the variants differ (from a fifth of the
//! run on); loss panels are on a log axis by default.

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use super::series::{mean_band, Draw, Group, LineKind, Point};
use super::{plot_err, render_png, FAMILY, PALETTE};
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
    let lines = panel_lines(groups, panel, opts.x, first, log);
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
    // The two axis kinds are different types, so each builds its chart and shares the rest.
    if log {
        let (lo, hi) = (lo / 1.1, hi * 1.1);
        let ticks = log_ticks(lo, hi);
        let digits = label_digits(&ticks);
        let ys = |v: f64| (v.max(lo).ln() - lo.ln()) / (hi.ln() - lo.ln());
        let pos = emptiest_corner(&unit_lines(&lines, xs, ys), legend_box);
        let chart = builder
            .build_cartesian_2d(x, (lo..hi).log_scale().with_key_points(ticks))
            .map_err(plot_err)?;
        finish_panel(chart, groups, lines, (panel, digits, opts.x), y_desc, pos)
    } else {
        let pad = ((hi - lo) * 0.05).max(1e-6);
        let (lo, hi) = (lo - pad, hi + pad);
        let ys = |v: f64| (v - lo) / (hi - lo);
        let pos = emptiest_corner(&unit_lines(&lines, xs, ys), legend_box);
        let chart = builder.build_cartesian_2d(x, lo..hi).map_err(plot_err)?;
        finish_panel(chart, groups, lines, (panel, 3, opts.x), y_desc, pos)
    }
}

/// Each group's points on a panel: from epoch `first` on, against the x axis, dropping
/// values a log axis cannot show.
fn panel_lines(
    groups: &[Group],
    panel: Panel,
    x: XAxis,
    first: usize,
    log: bool,
) -> Vec<Vec<Point>> {
    groups
        .iter()
        .map(|g| {
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

/// The legend's share of a `(w, h)`-pixel plot: one ~24 px row per group, ~9 px per
/// character.
fn legend_box(groups: &[Group], (w, h): (u32, u32)) -> (f64, f64) {
    let chars = groups
        .iter()
        .map(|g| g.label.len() + 34)
        .max()
        .unwrap_or(20);
    (
        (chars as f64 * 9.0 / (w as f64 - 100.0)).min(1.0),
        ((groups.len() * 24 + 16) as f64 / (h as f64 - 100.0)).min(1.0),
    )
}

/// Key points of a log axis over [lo, hi]: 1-2-3-5 of each decade, or, where that gives
/// fewer than three (a short run's loss spans less than a decade), 1 to 9.5 in halves,
/// or, failing that, four points evenly spaced on the log axis, rounded to 3 digits.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = lo.log10().floor() as i32..=hi.log10().ceil() as i32;
    let within = |mantissas: &[f64]| -> Vec<f64> {
        decades
            .clone()
            .flat_map(|d| mantissas.iter().map(move |m| m * 10f64.powi(d)))
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

/// The fewest significant digits that label `ticks` with distinct text.
pub fn label_digits(ticks: &[f64]) -> i32 {
    (1..=8)
        .find(|&d| {
            let mut l: Vec<String> = ticks.iter().map(|v| sig_digits(*v, d)).collect();
            l.sort();
            l.dedup();
            l.len() == ticks.len()
        })
        .unwrap_or(8)
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

/// A legend's last value: 4 decimals, or 3 significant digits where those would read 0.0000.
fn value_text(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        format!("{v:.2e}")
    } else {
        format!("{v:.4}")
    }
}

/// The lines' points, with 8 points between each pair, in the plot's unit square.
pub(super) fn unit_lines(
    lines: &[Vec<Point>],
    xs: impl Fn(f64) -> f64,
    ys: impl Fn(f64) -> f64,
) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for l in lines {
        for w in l.windows(2) {
            for k in 0..8 {
                let t = k as f64 / 8.0;
                let e = w[0].0 + (w[1].0 - w[0].0) * t;
                for sign in [-1.0, 0.0, 1.0] {
                    let v = |p: &Point| p.1 + sign * p.2;
                    out.push((xs(e), ys(v(&w[0]) + (v(&w[1]) - v(&w[0])) * t)));
                }
            }
        }
        if let Some(p) = l.last() {
            out.push((xs(p.0), ys(p.1)));
        }
    }
    out
}

/// The corner whose legend-sized box (`size`: width and height as fractions of the plot)
/// covers the fewest of `points` (in the unit square): where the legend hides least.
pub fn emptiest_corner(points: &[(f64, f64)], size: (f64, f64)) -> SeriesLabelPosition {
    let (w, h) = size;
    // (x range, y range) of each corner's box; ties keep the first (upper right, the
    // usual place).
    let boxes = [
        ((1.0 - w, 1.0), (1.0 - h, 1.0)),
        ((1.0 - w, 1.0), (0.0, h)),
        ((0.0, w), (1.0 - h, 1.0)),
        ((0.0, w), (0.0, h)),
    ];
    let covered = |((x0, x1), (y0, y1)): ((f64, f64), (f64, f64))| {
        points
            .iter()
            .filter(|p| p.0 >= x0 && p.0 <= x1 && p.1 >= y0 && p.1 <= y1)
            .count()
    };
    let best = (0..4).min_by_key(|&i| (covered(boxes[i]), i)).unwrap_or(0);
    match best {
        1 => SeriesLabelPosition::LowerRight,
        2 => SeriesLabelPosition::UpperLeft,
        3 => SeriesLabelPosition::LowerLeft,
        _ => SeriesLabelPosition::UpperRight,
    }
}

/// A line's colour and stroke.
pub type Style = (RGBColor, LineKind);

/// Colours after the optimizers' [`PALETTE`], for charts with more lines than it has
/// colours: still apart from it and from each other, and dark enough on white.
const MORE_COLOURS: [RGBColor; 4] = [
    RGBColor(117, 64, 160),
    RGBColor(165, 30, 45),
    RGBColor(100, 100, 100),
    RGBColor(0, 95, 85),
];

const KINDS: [LineKind; 3] = [LineKind::Solid, LineKind::Dashed, LineKind::Dotted];

/// Every line gets its own style: its wanted one (its optimizer's) when no earlier line has
/// it; else a colour no line has yet, in its wanted stroke; else the first style not taken.
/// Distinct for up to 36 lines (12 colours, 3 strokes); beyond that styles repeat.
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

/// Mesh, bands, lines and legend of a panel, whatever its y axis.
fn finish_panel<'a, DB, Y>(
    mut chart: ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    groups: &[Group],
    lines: Vec<Vec<Point>>,
    (panel, digits, axis): (Panel, i32, XAxis),
    y_desc: &str,
    legend_at: SeriesLabelPosition,
) -> Result<()>
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
            sig_digits(*v, digits)
        }
    };
    mesh(&mut chart, (axis.desc(), y_desc), &fmt_y)?;
    let wanted: Vec<Style> = groups.iter().map(|g| (g.color, g.kind)).collect();
    let styles = distinct_styles(&wanted);
    for (style, pts) in styles.iter().zip(&lines) {
        chart.band(pts, style.0)?;
    }
    for ((g, pts), &style) in groups.iter().zip(lines).zip(&styles) {
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
                format!("{}{seeds}: {} at {}", g.label, value_text(v), at(e))
            }
            Some(&(e, v, _)) => format!("{}{seeds}: {:.2}% at {}", g.label, v * 100.0, at(e)),
            None => g.label.clone(),
        };
        let pts = pts.iter().map(|p| (p.0, p.1)).collect();
        chart.line(pts, style, 2, label)?;
    }
    chart.legend(legend_at)
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
        assert_eq!(super::value_text(4.77e-12), "4.77e-12");
        assert_eq!(super::value_text(0.58), "0.5800");
    }

    use super::*;

    #[test]
    fn n_series_get_n_distinct_styles() {
        // The worst case: every line wants the same style (one optimizer, many configs).
        for n in 1..=36 {
            let styles = distinct_styles(&vec![(PALETTE[0], LineKind::Solid); n]);
            for (i, a) in styles.iter().enumerate() {
                assert!(
                    !styles[..i].contains(a),
                    "{n} lines: line {i} repeats {a:?}"
                );
            }
        }
        // Lines whose wanted styles differ keep them.
        let wanted: Vec<Style> = (0..8).map(|i| (PALETTE[i], KINDS[i % 3])).collect();
        assert_eq!(distinct_styles(&wanted), wanted);
    }

    #[test]
    fn registry_optimizers_and_repeats_are_told_apart() {
        // Every registered optimizer twice (a config and a variant of it): 22 lines.
        let wanted: Vec<Style> = crate::optim::Variant::ALL
            .iter()
            .flat_map(|v| [0, 1].map(|k| crate::plot::style_of(v.name(), k)))
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
