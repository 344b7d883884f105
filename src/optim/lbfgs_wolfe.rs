//! torch's `_strong_wolfe` line search and `_cubic_interpolate`, ported line for line (torch
//! ported them from the Lua torch/optim `lswolfe.lua` and `polyinterp.lua`). Losses and step
//! lengths are f64 (torch's Python floats), directional derivatives f32 dot products.

use crate::optim::lbfgs_ops::{directional, VecOps};

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
struct Point<V> {
    t: f64,
    f: f64,
    g: V,
    gtd: f64,
}

/// A copy of `p` (its gradient copied in `o`).
fn dup<O: VecOps>(o: &mut O, p: &Point<O::V>) -> Point<O::V> {
    Point {
        g: o.dup(&p.g),
        ..*p
    }
}

/// Loss, gradient and directional derivative at `x + t d`.
fn eval<O: VecOps>(o: &mut O, x: &O::V, d: &O::V, t: f64) -> Point<O::V> {
    let (f, g) = directional(o, x, t, d);
    let gtd = o.dot(&g, d) as f64;
    Point { t, f, g, gtd }
}

/// The start point (step 0) of a search.
fn start<O: VecOps>(o: &mut O, (f0, g0, gtd0): (f64, &O::V, f64)) -> Point<O::V> {
    Point {
        t: 0.0,
        f: f0,
        g: o.dup(g0),
        gtd: gtd0,
    }
}

/// The bracketing phase: an interval (two points) containing a point that satisfies the
/// Wolfe conditions, or one point that does (`done`). Returns the bracket, `done`, the step
/// and the evaluations so far, and the search iterations used.
#[allow(clippy::type_complexity)]
fn bracket<O: VecOps>(
    o: &mut O,
    (x, d): (&O::V, &O::V),
    mut t: f64,
    at0: (f64, &O::V, f64),
    max_ls: u32,
) -> (Vec<Point<O::V>>, bool, u32, u32) {
    let (f0, gtd0) = (at0.0, at0.2);
    let mut new = eval(o, x, d, t);
    let mut evals = 1u32;
    let mut prev = start(o, at0);
    let mut ls_iter = 0;
    loop {
        if ls_iter >= max_ls {
            o.recycle(prev.g);
            let s = start(o, at0);
            return (vec![s, new], false, evals, ls_iter);
        }
        if new.f > f0 + C1 * new.t * gtd0 || (ls_iter > 1 && new.f >= prev.f) {
            return (vec![prev, new], false, evals, ls_iter);
        }
        if new.gtd.abs() <= -C2 * gtd0 {
            o.recycle(prev.g);
            return (vec![new], true, evals, ls_iter);
        }
        if new.gtd >= 0.0 {
            return (vec![prev, new], false, evals, ls_iter);
        }
        let bounds = (t + 0.01 * (t - prev.t), t * 10.0);
        t = cubic_interpolate(
            (prev.t, prev.f, prev.gtd),
            (t, new.f, new.gtd),
            Some(bounds),
        );
        let old = std::mem::replace(&mut prev, new);
        o.recycle(old.g);
        new = eval(o, x, d, t);
        evals += 1;
        ls_iter += 1;
    }
}

/// (low, high): the bracket's ends by loss, lower first.
fn order<V>(b: &[Point<V>]) -> (usize, usize) {
    if b[0].f <= b[b.len() - 1].f {
        (0, 1)
    } else {
        (1, 0)
    }
}

/// The next trial step of the zoom phase inside bracket `(b0, b1)`, kept away from its
/// ends (`insuf_progress` as torch tracks it).
fn zoom_step<V>(b0: &Point<V>, b1: &Point<V>, insuf_progress: &mut bool) -> f64 {
    let mut t = cubic_interpolate((b0.t, b0.f, b0.gtd), (b1.t, b1.f, b1.gtd), None);
    let (bmax, bmin) = (b0.t.max(b1.t), b0.t.min(b1.t));
    let eps = 0.1 * (bmax - bmin);
    if (bmax - t).min(t - bmin) < eps {
        if *insuf_progress || t >= bmax || t <= bmin {
            t = if (t - bmax).abs() < (t - bmin).abs() {
                bmax - eps
            } else {
                bmin + eps
            };
            *insuf_progress = false;
        } else {
            *insuf_progress = true;
        }
    } else {
        *insuf_progress = false;
    }
    t
}

/// The strong-Wolfe search from `x` along `d` starting at step `t`, with the start's loss,
/// gradient and directional derivative in `at0`. Returns the chosen point's loss, gradient and
/// step length, and the evaluations made (at least 1, possibly past `max_ls` by none: torch's
/// caller checks `max_eval` only afterwards).
pub fn search<O: VecOps>(
    o: &mut O,
    x: &O::V,
    t: f64,
    d: &O::V,
    at0: (f64, &O::V, f32),
    max_ls: u32,
) -> (f64, O::V, f64, u32) {
    let (f0, gtd0) = (at0.0, at0.2 as f64);
    let d_norm = o.abs_max(d) as f64;
    let (mut bracket, mut done, mut evals, mut ls_iter) =
        bracket(o, (x, d), t, (f0, at0.1, gtd0), max_ls);
    // Zoom: shrink the bracket until a point satisfies the conditions.
    let (mut low, mut high) = order(&bracket);
    let mut insuf_progress = false;
    while !done && ls_iter < max_ls {
        let (b0, b1) = (&bracket[0], &bracket[1]);
        if (b1.t - b0.t).abs() * d_norm < TOLERANCE_CHANGE {
            break;
        }
        let t = zoom_step(b0, b1, &mut insuf_progress);
        let p = eval(o, x, d, t);
        evals += 1;
        ls_iter += 1;
        let old = if p.f > f0 + C1 * t * gtd0 || p.f >= bracket[low].f {
            let old = std::mem::replace(&mut bracket[high], p);
            (low, high) = order(&bracket);
            old
        } else {
            if p.gtd.abs() <= -C2 * gtd0 {
                done = true;
            } else if p.gtd * (bracket[high].t - bracket[low].t) >= 0.0 {
                let c = dup(o, &bracket[low]);
                let old = std::mem::replace(&mut bracket[high], c);
                o.recycle(old.g);
            }
            std::mem::replace(&mut bracket[low], p)
        };
        o.recycle(old.g);
    }
    let Point { t, f, g, .. } = bracket.swap_remove(low);
    for p in bracket {
        o.recycle(p.g);
    }
    (f, g, t, evals)
}
