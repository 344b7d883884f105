//! What the charts draw per line: runs grouped by name (one line per group, the mean over
//! its runs, e.g. seeds, with a band of one standard deviation), and a style per optimizer
//! (one colour per optimizer in every chart; iRprop- dashed with markers, so it shows on top
//! of iRprop+, whose curve it matches exactly with a full batch).

use anyhow::Result;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::{plot_err, FAMILY, PALETTE};
use crate::metrics::{EpochRecord, Metrics};
use crate::optim::Variant;

/// How a line is stroked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    Solid,
    /// Dashed, with a marker every few epochs.
    Dashed,
    Dotted,
}

/// Runs drawn as one line: their mean per epoch, with a band when there are several.
pub struct Group<'a> {
    /// The legend's name of the line (the run's name; runs of the same optimizer differ).
    pub label: String,
    pub optimizer: String,
    pub runs: Vec<&'a Metrics>,
    pub color: RGBColor,
    pub kind: LineKind,
}

/// The colour and stroke of the `occurrence`-th line (0-based) of `optimizer` in a chart:
/// the optimizer's own colour; iRprop- dashed; a second line of the same optimizer takes the
/// next stroke, so two of them stay apart.
pub fn style_of(optimizer: &str, occurrence: usize) -> (RGBColor, LineKind) {
    let idx = Variant::ALL
        .iter()
        .position(|v| v.name() == optimizer)
        .unwrap_or(PALETTE.len() - 1);
    let base = usize::from(optimizer == Variant::IrpropMinus.name());
    let kinds = [LineKind::Solid, LineKind::Dashed, LineKind::Dotted];
    (
        PALETTE[idx % PALETTE.len()],
        kinds[(base + occurrence) % kinds.len()],
    )
}

/// Groups labelled runs by label, in order of first appearance.
pub fn group_runs(runs: &[(String, Metrics)]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group> = Vec::new();
    for (label, m) in runs {
        match groups.iter_mut().find(|g| &g.label == label) {
            Some(g) => g.runs.push(m),
            None => {
                let seen = groups.iter().filter(|g| g.optimizer == m.optimizer).count();
                let (color, kind) = style_of(&m.optimizer, seen);
                groups.push(Group {
                    label: label.clone(),
                    optimizer: m.optimizer.clone(),
                    runs: vec![m],
                    color,
                    kind,
                });
            }
        }
    }
    groups
}

/// One point of a group's line: epoch, mean over the runs, standard deviation (0 for one run).
pub type Point = (f64, f64, f64);

/// The mean and sample standard deviation of `f` over the group's runs at every epoch all
/// of them have a finite value for.
pub fn mean_band(g: &Group, f: impl Fn(&EpochRecord) -> Option<f64>) -> Vec<Point> {
    let epochs = g.runs.iter().map(|m| m.epochs.len()).min().unwrap_or(0);
    (0..epochs)
        .filter_map(|i| {
            let vals: Vec<f64> = g
                .runs
                .iter()
                .map(|m| f(&m.epochs[i]))
                .collect::<Option<Vec<f64>>>()?;
            // Values beyond 1e100 (and non-finite ones) are not drawn: their range would
            // overflow the axis arithmetic (1.7e308 - -1.7e308 = inf).
            if vals.iter().any(|v| v.is_nan() || v.abs() >= 1e100) {
                return None;
            }
            let (mean, sd) = crate::stats::mean_std(&vals);
            Some((g.runs[0].epochs[i].epoch as f64, mean, sd))
        })
        .collect()
}

type Chart<'a, DB, Y> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>;

/// What the panels draw on a chart, over any backend and y axis (linear or log).
pub trait Draw {
    /// A band (mean ± sd) under a line, when the group has several runs.
    fn band(&mut self, pts: &[Point], color: RGBColor) -> Result<()>;
    /// A line in its stroke with a legend entry showing the same stroke.
    fn line(
        &mut self,
        pts: Vec<(f64, f64)>,
        style: (RGBColor, LineKind),
        width: u32,
        label: String,
    ) -> Result<()>;
    /// The legend at `at`.
    fn legend(&mut self, at: SeriesLabelPosition) -> Result<()>;
}

impl<'a, DB, Y> Draw for Chart<'a, DB, Y>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    Y: Ranged<ValueType = f64>,
{
    fn band(&mut self, pts: &[Point], color: RGBColor) -> Result<()> {
        if pts.iter().all(|p| p.2 == 0.0) {
            return Ok(());
        }
        let mut poly: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.1 + p.2)).collect();
        poly.extend(pts.iter().rev().map(|p| (p.0, p.1 - p.2)));
        self.draw_series(std::iter::once(Polygon::new(
            poly,
            color.mix(0.18).filled(),
        )))
        .map_err(plot_err)?;
        Ok(())
    }

    fn line(
        &mut self,
        pts: Vec<(f64, f64)>,
        (color, kind): (RGBColor, LineKind),
        width: u32,
        label: String,
    ) -> Result<()> {
        let style = color.stroke_width(width);
        let anno = match kind {
            LineKind::Solid => self
                .draw_series(LineSeries::new(pts, style))
                .map_err(plot_err)?,
            LineKind::Dashed => {
                // Markers every ~1/12 of the line, so the line is told apart even where it
                // lies exactly on another.
                let every = (pts.len() / 12).max(1);
                let marks: Vec<(f64, f64)> = pts.iter().copied().step_by(every).collect();
                self.draw_series(marks.into_iter().map(|p| Circle::new(p, 4, color.filled())))
                    .map_err(plot_err)?;
                self.draw_series(DashedLineSeries::new(pts, 10, 7, style))
                    .map_err(plot_err)?
            }
            LineKind::Dotted => self
                .draw_series(DashedLineSeries::new(pts, 3, 5, style))
                .map_err(plot_err)?,
        };
        let (gap, dot) = match kind {
            LineKind::Solid => (0, 0),
            LineKind::Dashed => (6, 4),
            LineKind::Dotted => (4, 0),
        };
        anno.label(label).legend(move |(x, y)| {
            let s = color.stroke_width(3);
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (12 - gap / 2, 0)], s)
                + PathElement::new(vec![(12 + gap / 2, 0), (26, 0)], s)
                + Circle::new((13, 0), dot, color.filled())
        });
        Ok(())
    }

    fn legend(&mut self, at: SeriesLabelPosition) -> Result<()> {
        self.configure_series_labels()
            .position(at)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(150, 150, 150))
            .label_font((FAMILY, 17))
            .draw()
            .map_err(plot_err)?;
        Ok(())
    }
}
