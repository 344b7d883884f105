//! PNG charts of runs' metrics (plotters' bitmap backend, encoded with `image`), and the
//! small raster helpers the digit pictures share. A font is embedded so charts have text on
//! any machine.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::checkpoint::write_atomic;

mod curves;
mod series;
mod telemetry_chart;

pub use curves::{
    chart, emptiest_corner, grid, label_digits, log_ticks, sig_digits, zoom_start, ChartOptions,
    Panel, XAxis,
};
pub use series::{group_runs, style_of, Group, LineKind};
pub use telemetry_chart::telemetry_chart;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
pub(crate) const FAMILY: &str = "sans-serif";

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

/// One colour per optimizer, the same in every chart, chosen to stay apart for the
/// colour-blind (Okabe-Ito); indexed by the optimizer's place in `Variant::ALL`.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(150, 130, 20),
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
