//! PNG charts of runs' metrics (plotters' bitmap backend, encoded with `image`), and the
//! small raster helpers the digit pictures share. A font is embedded so charts have text on
//! any machine.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::checkpoint::write_atomic;

mod axes;
mod curves;
mod legend;
mod series;
mod telemetry_chart;

pub use axes::{label_digits, line_start, log_ticks, sig_digits, tick_label, zoom_start};
pub use curves::{chart, grid, ChartOptions, Panel, XAxis};
pub use legend::{emptiest_corner, side_width, INSIDE_MAX};
pub use series::{group_runs, style_of, Group, LineKind};
pub use telemetry_chart::telemetry_chart;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
pub(crate) const FAMILY: &str = "sans-serif";

/// Registers the embedded font once (plotters' ab_glyph backend has no system fonts).
pub(crate) fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The font is compiled in and known good; a failure would only lose the text.
            let _ = plotters::style::register_font(FAMILY, style, FONT);
        }
    });
}

/// One colour per optimizer, the same in every chart, indexed by the optimizer's place in
/// `Variant::ALL`: Okabe-Ito's eight (chosen to stay apart for the colour-blind) for the
/// Rprop family, SGD, RMSprop, Adam and Quickprop, then purple, crimson and grey for
/// GRprop-SLR, GRprop-SAG and L-BFGS, so no two optimizers share one.
pub const PALETTE: [RGBColor; 11] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(150, 130, 20),
    RGBColor(117, 64, 160),
    RGBColor(165, 30, 45),
    RGBColor(110, 110, 110),
];

/// Colours after the optimizers' [`PALETTE`], for charts with more lines than it has
/// colours: still apart from it and from each other, and dark enough on white.
pub(crate) const MORE_COLOURS: [RGBColor; 4] = [
    RGBColor(0, 95, 85),
    RGBColor(140, 86, 75),
    RGBColor(30, 40, 120),
    RGBColor(225, 90, 150),
];

pub(crate) fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
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
