//! Where a chart's legend goes: in the plot's emptiest corner while it is small, beside
//! the plot once there are more lines than fit there (twelve configs' legend would hide
//! half the curves), and the text of its entries.

use anyhow::Result;
use plotters::prelude::*;

use super::series::{Group, LineKind, Point};
use super::{plot_err, FAMILY};

/// Most lines whose legend goes inside the plot; with more it stands beside it.
pub const INSIDE_MAX: usize = 5;

/// Pixels of a legend row beside the plot, and of its text.
const ROW: i32 = 22;
const TEXT: u32 = 15;

/// The legend's share of a `(w, h)`-pixel plot: one ~24 px row per group, ~9 px per
/// character.
pub fn legend_box(groups: &[Group], (w, h): (u32, u32)) -> (f64, f64) {
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

/// The lines' points, with 8 points between each pair, in the plot's unit square.
pub fn unit_lines(
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

/// The width of a legend beside the plot (None: it fits inside, see [`INSIDE_MAX`]): a
/// stroke sample and the longest label, measured in the legend's font (a group's name and
/// the widest last value the x axis `axis` gives it).
pub fn side_width(groups: &[Group], axis: super::XAxis) -> Option<u32> {
    if groups.len() <= INSIDE_MAX {
        return None;
    }
    super::ensure_font();
    let font = (FAMILY, TEXT).into_font();
    let tail = match axis {
        super::XAxis::Epochs => ": 100.00% at epoch 10000",
        super::XAxis::Evals => ": 100.00% at 1000000 evaluations",
        super::XAxis::Seconds => ": 100.00% at 10000.0 s",
    };
    let widest = groups
        .iter()
        .map(|g| {
            let seeds = if g.runs.len() > 1 {
                " (mean of 1000)"
            } else {
                ""
            };
            let text = format!("{}{seeds}{tail}", g.label);
            // ~8 px a character where the font cannot measure it.
            font.box_size(&text)
                .map_or(text.chars().count() as u32 * 8, |(w, _)| w)
        })
        .max()
        .unwrap_or(0);
    Some((widest + 56).min(640))
}

/// Draws the legend `entries` (a style and a label each) into `area`, beside the plot: a
/// row per line from the plot's top edge down (rows shrink to fit many lines).
pub fn draw_side<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[((RGBColor, LineKind), String)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (_, h) = area.dim_in_pixel();
    let top = 52;
    let row = ROW
        .min((h as i32 - top - 20) / entries.len().max(1) as i32)
        .max(12);
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let text = TextStyle::from((FAMILY, TEXT).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, ((color, kind), label)) in entries.iter().enumerate() {
        let y = top + i as i32 * row + row / 2;
        let s = color.stroke_width(3);
        let segments: Vec<(i32, i32)> = match kind {
            LineKind::Solid => vec![(4, 30)],
            LineKind::Dashed => vec![(4, 13), (21, 30)],
            LineKind::Dotted => vec![(4, 8), (12, 16), (20, 24), (28, 30)],
        };
        for (a, b) in segments {
            area.draw(&PathElement::new(vec![(a, y), (b, y)], s))
                .map_err(plot_err)?;
        }
        if *kind == LineKind::Dashed {
            area.draw(&Circle::new((17, y), 4, color.filled()))
                .map_err(plot_err)?;
        }
        area.draw(&Text::new(label.clone(), (38, y), text.clone()))
            .map_err(plot_err)?;
    }
    Ok(())
}

/// A legend's last value: 4 decimals, or 3 significant digits where those would read 0.0000.
pub fn value_text(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        format!("{v:.2e}")
    } else {
        format!("{v:.4}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn last_values_read_at_their_size() {
        assert_eq!(super::value_text(4.77e-12), "4.77e-12");
        assert_eq!(super::value_text(0.58), "0.5800");
    }
}
