//! torch's `_strong_wolfe` line search and `_cubic_interpolate`, ported line for line (torch
//! ported them from the Lua torch/optim `lswolfe.lua` and `polyinterp.lua`). Losses and step
//! lengths are f64 (torch's Python floats), directional derivatives f32 dot products.

use crate::optim::lbfgs::{abs_max, directional, dot, Objective};

/// Sufficient decrease, curvature, and the bracket-width tolerance torch uses (its default,
/// not the optimizer's `tolerance_change`).
const C1: f64 = 1e-4;
const C2: f64 = 0.9;
const TOLERANCE_CHANGE: f64 = 1e-9;

/// Minimizer of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to `bounds` (default:
/// the interval between the points); the midpoint when the cubic has no minimum.
fn cubic_interpolate(
    (x1, f1, g1): (f64, f64, f64),
    (x2, f2, g2): (f64, f64, f64),
    bounds: Option<(f64, f64)>,
) -> f64 {
    let (lo, hi) = bounds.unwrap_or(if x1 <= x2 { (x1, x2) } else { (x2, x1) });
    let d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2);
    let d2_square = d1 * d1 - g1 * g2;
    if d2_square >= 0.0 {
        let d2 = d2_square.sqrt();
        let min_pos = if x1 <= x2 {
            x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
        } else {
            x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2))
        };
        min_pos.max(lo).min(hi)
    } else {
        (lo + hi) / 2.0
    }
}

/// One point of the search: step length, loss, gradient, directional derivative.
#[derive(Clone)]
struct Point {
    t: f64,
    f: f64,
    g: Vec<f32>,
    gtd: f64,
}

/// The strong-Wolfe search from `x` along `d` starting at step `t`, with the start's loss,
/// gradient and directional derivative in `at0`. Returns the chosen point's loss, gradient and
/// step length, and the evaluations made (at least 1, possibly past `max_ls` by none: torch's
/// caller checks `max_eval` only afterwards).
pub fn search(
    f: &mut impl Objective,
    x: &[f32],
    mut t: f64,
    d: &[f32],
    at0: (f64, &[f32], f32),
    max_ls: u32,
) -> (f64, Vec<f32>, f64, u32) {
    let (f0, g0, gtd0) = (at0.0, at0.1, at0.2 as f64);
    let d_norm = abs_max(d) as f64;
    let eval = |f: &mut _, t: f64| {
        let (fl, g) = directional(f, x, t, d);
        let gtd = dot(&g, d) as f64;
        Point { t, f: fl, g, gtd }
    };
    let mut new = eval(f, t);
    let mut evals = 1u32;
    let mut prev = Point {
        t: 0.0,
        f: f0,
        g: g0.to_vec(),
        gtd: gtd0,
    };
    let mut done = false;
    let mut ls_iter = 0;
    // Bracket an interval containing a point that satisfies the Wolfe conditions.
    let mut bracket: Vec<Point> = Vec::new();
    while ls_iter < max_ls {
        if new.f > f0 + C1 * new.t * gtd0 || (ls_iter > 1 && new.f >= prev.f) {
            bracket = vec![prev, new.clone()];
            break;
        }
        if new.gtd.abs() <= -C2 * gtd0 {
            bracket = vec![new.clone()];
            done = true;
            break;
        }
        if new.gtd >= 0.0 {
            bracket = vec![prev, new.clone()];
            break;
        }
        let bounds = (t + 0.01 * (t - prev.t), t * 10.0);
        t = cubic_interpolate(
            (prev.t, prev.f, prev.gtd),
            (t, new.f, new.gtd),
            Some(bounds),
        );
        prev = new;
        new = eval(f, t);
        evals += 1;
        ls_iter += 1;
    }
    if ls_iter == max_ls {
        let start = Point {
            t: 0.0,
            f: f0,
            g: g0.to_vec(),
            gtd: gtd0,
        };
        bracket = vec![start, new.clone()];
    }
    // Zoom: shrink the bracket until a point satisfies the conditions.
    let order = |b: &[Point]| {
        if b[0].f <= b[b.len() - 1].f {
            (0, 1)
        } else {
            (1, 0)
        }
    };
    let (mut low, mut high) = order(&bracket);
    let mut insuf_progress = false;
    while !done && ls_iter < max_ls {
        let (b0, b1) = (&bracket[0], &bracket[1]);
        if (b1.t - b0.t).abs() * d_norm < TOLERANCE_CHANGE {
            break;
        }
        t = cubic_interpolate((b0.t, b0.f, b0.gtd), (b1.t, b1.f, b1.gtd), None);
        let (bmax, bmin) = (b0.t.max(b1.t), b0.t.min(b1.t));
        let eps = 0.1 * (bmax - bmin);
        if (bmax - t).min(t - bmin) < eps {
            if insuf_progress || t >= bmax || t <= bmin {
                t = if (t - bmax).abs() < (t - bmin).abs() {
                    bmax - eps
                } else {
                    bmin + eps
                };
                insuf_progress = false;
            } else {
                insuf_progress = true;
            }
        } else {
            insuf_progress = false;
        }
        let p = eval(f, t);
        evals += 1;
        ls_iter += 1;
        if p.f > f0 + C1 * t * gtd0 || p.f >= bracket[low].f {
            bracket[high] = p;
            (low, high) = order(&bracket);
        } else {
            if p.gtd.abs() <= -C2 * gtd0 {
                done = true;
            } else if p.gtd * (bracket[high].t - bracket[low].t) >= 0.0 {
                bracket[high] = bracket[low].clone();
            }
            bracket[low] = p;
        }
    }
    let Point { t, f, g, .. } = bracket.swap_remove(low);
    (f, g, t, evals)
}
