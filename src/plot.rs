//! PNG charts of runs' metrics (plotters' bitmap backend, encoded with `image`), and the
//! small raster helpers the digit pictures share. A font is embedded so charts have text on
//! any machine.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::checkpoint::write_atomic;
use crate::metrics::{EpochRecord, Metrics};

static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Registers the embedded font once (plotters' ab_glyph backend has no system fonts).
fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The font is compiled in and known good; a failure would only lose the text.
            let _ = plotters::style::register_font(FAMILY, style, FONT);
        }
    });
}

/// One line colour per run, chosen to stay apart for the colour-blind (Okabe-Ito).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
];

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

/// How to draw the charts.
#[derive(Clone, Copy, Debug)]
pub struct ChartOptions {
    /// Loss on a log10 axis (the fast early drop and the slow tail both stay readable).
    pub log_loss: bool,
    pub width: u32,
    pub height: u32,
}

impl Default for ChartOptions {
    fn default() -> Self {
        ChartOptions {
            log_loss: true,
            width: 900,
            height: 600,
        }
    }
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// A label for a run in a legend: its optimizer, plus what tells runs of it apart.
pub fn run_label(m: &Metrics, all: &[Metrics]) -> String {
    let same = all.iter().filter(|o| o.optimizer == m.optimizer).count();
    // A metrics file may hold any text there; a legend of 50 MB would never finish.
    let cut = |s: &str| s.chars().take(40).collect::<String>();
    if same > 1 {
        format!("{} ({})", cut(&m.optimizer), cut(&m.backend))
    } else {
        cut(&m.optimizer)
    }
}

/// Draws one panel (one line per run) into a drawing area.
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    runs: &[(String, &Metrics)],
    panel: Panel,
    opts: &ChartOptions,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let log = panel.is_loss() && opts.log_loss;
    let points: Vec<Vec<(f64, f64)>> = runs
        .iter()
        .map(|(_, m)| {
            m.epochs
                .iter()
                .map(|r| (r.epoch as f64, panel.value(r)))
                // Values beyond 1e100 (and non-finite ones) are not drawn: their range
                // would overflow the axis arithmetic (1.7e308 - -1.7e308 = inf).
                .filter(|p| p.1.abs() < 1e100 && (!log || p.1 > 1e-100))
                .collect()
        })
        .collect();
    let (mut lo, mut hi) = points
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    if !lo.is_finite() || !hi.is_finite() {
        (lo, hi) = (0.1, 1.0);
    }
    let max_epoch = runs
        .iter()
        .flat_map(|(_, m)| m.epochs.last().map(|r| r.epoch))
        .max()
        .unwrap_or(1)
        .max(2) as f64;
    let y_desc = match (panel.is_loss(), log) {
        (true, true) => "cross-entropy (log scale)",
        (true, false) => "cross-entropy",
        (false, _) => "accuracy",
    };
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(panel.title(), (FAMILY, 26))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(72);
    // The two axis kinds are different types, so each builds its chart and shares the rest.
    if log {
        let (lo, hi) = (lo / 1.1, hi * 1.1);
        // Ticks at 1-2-3-5 of each decade in range (plotters alone labels too few).
        let ticks: Vec<f64> = (lo.log10().floor() as i32..=hi.log10().ceil() as i32)
            .flat_map(|d| [1.0, 2.0, 3.0, 5.0].map(|m| m * 10f64.powi(d)))
            .filter(|t| (lo..=hi).contains(t))
            .collect();
        let chart = builder
            .build_cartesian_2d(1.0..max_epoch, (lo..hi).log_scale().with_key_points(ticks))
            .map_err(plot_err)?;
        finish_panel(chart, runs, points, panel, y_desc)
    } else {
        let pad = ((hi - lo) * 0.05).max(1e-6);
        let chart = builder
            .build_cartesian_2d(1.0..max_epoch, lo - pad..hi + pad)
            .map_err(plot_err)?;
        finish_panel(chart, runs, points, panel, y_desc)
    }
}

/// Mesh, lines and legend of a panel, whatever its y axis.
fn finish_panel<'a, DB, Y>(
    mut chart: ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    runs: &[(String, &Metrics)],
    points: Vec<Vec<(f64, f64)>>,
    panel: Panel,
    y_desc: &str,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    Y: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let fmt_y = |v: &f64| {
        if !panel.is_loss() {
            format!("{:.0}%", v * 100.0)
        } else if v.abs() >= 0.095 {
            format!("{v:.2}")
        } else {
            format!("{v:.3}")
        }
    };
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .axis_desc_style((FAMILY, 18))
        .label_style((FAMILY, 15))
        .y_labels(12)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&fmt_y)
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(205, 205, 205))
        .draw()
        .map_err(plot_err)?;
    let n = runs.len() as u32;
    for (i, ((label, _), pts)) in runs.iter().zip(points).enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        // The last value in the legend: the end of the curves is where they differ least
        // visibly and matter most.
        let label = match pts.last() {
            Some(&(e, v)) if panel.is_loss() => format!("{label}: {v:.4} at epoch {e}"),
            Some(&(e, v)) => format!("{label}: {:.2}% at epoch {e}", v * 100.0),
            None => label.clone(),
        };
        // Earlier lines drawn wider, so a later run that coincides still shows both colours.
        let width = 2 + (n - 1 - i as u32).min(3);
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(width)))
            .map_err(plot_err)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(4))
            });
    }
    chart
        .configure_series_labels()
        .position(if panel.is_loss() {
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

/// Renders into an RGB buffer with `draw`, then writes it as a PNG, atomically.
pub fn render_png(
    path: &Path,
    width: u32,
    height: u32,
    draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    ensure_font();
    let mut buf = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        draw(&root)?;
        root.present().map_err(plot_err)?;
    }
    write_png(path, width, height, buf)
}

/// Encodes an RGB buffer as PNG and writes it atomically.
pub fn write_png(path: &Path, width: u32, height: u32, rgb: Vec<u8>) -> Result<()> {
    let img = image::RgbImage::from_raw(width, height, rgb)
        .ok_or_else(|| anyhow!("image buffer has the wrong size"))?;
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .context("encoding PNG")?;
    write_atomic(path, &bytes)
}

fn labelled(runs: &[Metrics]) -> Vec<(String, &Metrics)> {
    runs.iter().map(|m| (run_label(m, runs), m)).collect()
}

/// One chart of one quantity, one line per run.
pub fn chart(path: &Path, runs: &[Metrics], panel: Panel, opts: &ChartOptions) -> Result<()> {
    let runs = labelled(runs);
    render_png(path, opts.width, opts.height, |root| {
        draw_panel(root, &runs, panel, opts)
    })
}

/// The four quantities in a 2 x 2 grid (train/eval loss on top, accuracies below).
pub fn grid(path: &Path, runs: &[Metrics], opts: &ChartOptions) -> Result<()> {
    let runs = labelled(runs);
    render_png(path, opts.width * 2, opts.height * 2, |root| {
        for (area, panel) in root.split_evenly((2, 2)).iter().zip(Panel::ALL) {
            draw_panel(area, &runs, panel, opts)?;
        }
        Ok(())
    })
}
