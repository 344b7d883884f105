//! torch's `_strong_wolfe` line search and `_cubic_interpolate`, ported line for line (torch
//! ported them from the Lua torch/optim `lswolfe.lua` and `polyinterp.lua`). Losses and step
//! lengths are f64 (torch's Python floats), directional derivatives f32 dot products.
//!
//! Each evaluation reads back (on the GPU) its loss, directional derivative and max |g| at
//! once: the search needs the first two to go on, and the step's stop test the third of the
//! point it picks.

use crate::optim::lbfgs_ops::{point, Trial, VecOps};

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

/// One point of the search: step length, loss, gradient, directional derivative, max |g|.
struct Point<V> {
    t: f64,
    f: f64,
    g: V,
    gtd: f64,
    g_max: f32,
}

/// The start of a search: loss, gradient, directional derivative and max |g| at step 0.
pub(crate) type Start<'a, V> = (f64, &'a V, f64, f32);

/// What a search found: the loss, gradient and max |g| of its point, its step length, and
/// the evaluations it made.
pub(crate) struct Found<V> {
    pub f: f64,
    pub g: V,
    pub g_max: f32,
    pub t: f64,
    pub evals: u32,
}

/// A copy of `p` (its gradient copied in `o`).
fn dup<O: VecOps>(o: &mut O, p: &Point<O::V>) -> Point<O::V> {
    Point {
        g: o.dup(&p.g),
        ..*p
    }
}

/// Loss, gradient, directional derivative and max |g| at `x + t d` (one read-back).
fn eval<O: VecOps>(o: &mut O, x: &O::V, d: &O::V, t: f64) -> Point<O::V> {
    let w = point(o, x, t, d);
    let mut g = o.alloc();
    let f = o.eval(&w, &mut g);
    o.recycle(w);
    let gtd = o.dot(&g, d);
    let g_max = o.abs_max(&g);
    let f = o.value(f) as f64;
    Point {
        t,
        f,
        gtd: o.value(gtd) as f64,
        g_max: o.value(g_max),
        g,
    }
}

/// The point of the iteration's first evaluation `tr`, at step `t`.
fn first_point<O: VecOps>(o: &mut O, t: f64, tr: Trial<O::V, O::S>) -> Point<O::V> {
    o.recycle(tr.w);
    let gtd = tr.gtd.map_or(f32::NAN, |s| o.value(s));
    Point {
        t,
        f: o.value(tr.loss) as f64,
        gtd: gtd as f64,
        g_max: o.value(tr.g_max),
        g: tr.g,
    }
}

/// The start point (step 0) of a search.
fn start<O: VecOps>(o: &mut O, (f0, g0, gtd0, g_max): Start<O::V>) -> Point<O::V> {
    Point {
        t: 0.0,
        f: f0,
        g: o.dup(g0),
        gtd: gtd0,
        g_max,
    }
}

/// The bracketing phase from the first point `new`: an interval (two points) containing a
/// point that satisfies the Wolfe conditions, or one point that does (`done`). Returns the
/// bracket, `done`, the evaluations so far, and the search iterations used.
#[allow(clippy::type_complexity)]
fn bracket<O: VecOps>(
    o: &mut O,
    (x, d): (&O::V, &O::V),
    mut new: Point<O::V>,
    at0: Start<O::V>,
    max_ls: u32,
) -> (Vec<Point<O::V>>, bool, u32, u32) {
    let (f0, gtd0) = (at0.0, at0.2);
    let mut t = new.t;
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

/// The strong-Wolfe search from `x` along `d` (max |d| = `d_norm`), with the start's loss,
/// gradient, directional derivative and max |g| in `at0`, and its first evaluation `first`
/// (step `t`) already made. Returns the chosen point and the evaluations made (at least 1,
/// possibly past `max_ls` by none: torch's caller checks `max_eval` only afterwards).
pub(crate) fn search<O: VecOps>(
    o: &mut O,
    (x, d, d_norm): (&O::V, &O::V, f32),
    at0: Start<O::V>,
    (t, first): (f64, Trial<O::V, O::S>),
    max_ls: u32,
) -> Found<O::V> {
    let (f0, gtd0, d_norm) = (at0.0, at0.2, d_norm as f64);
    let new = first_point(o, t, first);
    let (mut bracket, mut done, mut evals, mut ls_iter) = bracket(o, (x, d), new, at0, max_ls);
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
    let Point { t, f, g, g_max, .. } = bracket.swap_remove(low);
    for p in bracket {
        o.recycle(p.g);
    }
    Found {
        f,
        g,
        g_max,
        t,
        evals,
    }
}
