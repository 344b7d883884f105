//! L-BFGS with the semantics of `torch.optim.LBFGS`: one [`run`] runs up to `max_iter`
//! iterations, each a two-loop-recursion direction and a fixed step (`line_search` none) or a
//! strong-Wolfe line search, calling the objective (a full forward+backward pass over the train
//! set) as torch calls its closure. Vectors are f32 like torch's; the scalars torch holds as
//! 0-d f32 tensors (ys, rho, H_diag, alpha, beta) are f32 here, the line search's step lengths
//! and losses (Python floats in torch) f64. The dot products sum in a fixed order
//! ([`dot`], repeated by shaders/lbfgs.wgsl), so a run is reproducible; torch sums
//! in BLAS's order, so the two agree to float rounding, not bit for bit.
//!
//! The algorithm is written once, over the operations of [`VecOps`]; each backend drives it
//! with its own (`cpu::lbfgs`, `gpu::lbfgs`). It reads a scalar only where torch's host loop
//! branches on one, and orders its work so that the GPU reads back once per evaluation: an
//! iteration's direction, its checks and its first evaluation come back together.

use super::{Hyper, Rule, Spec, Traits};

/// The registry entry. The WGSL case leaves the weights alone: the GPU backend runs the step
/// as [`run`] on device vectors (gpu/lbfgs.rs), not as a per-weight kernel.
pub const LBFGS: Spec = Spec {
    name: "lbfgs",
    label: "L-BFGS",
    wgsl_case: 20,
    traits: Traits {
        full_batch_only: true,
        ..Traits::GRADIENT
    },
    slots: ["", "", ""],
    keys: &[
        "learning_rate",
        "max_iter",
        "max_eval",
        "tolerance_grad",
        "tolerance_change",
        "history_size",
        "line_search",
    ],
    defaults: |h| h.lr = 1.0,
    rule: Rule::MultiEval,
    global_pass: None,
    report: None,
};

impl Settings {
    /// The L-BFGS settings of `h` (`max_eval` 0: torch's default for `max_iter`).
    pub fn from_hyper(h: &Hyper) -> Settings {
        Settings {
            lr: h.lr,
            max_iter: h.max_iter,
            max_eval: match h.max_eval {
                0 => Settings::default_max_eval(h.max_iter),
                n => n,
            },
            tolerance_grad: h.tolerance_grad,
            tolerance_change: h.tolerance_change,
            history_size: h.history_size,
            line_search: h.line_search,
        }
    }
}

/// The step-length rule of each iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineSearch {
    /// A fixed step of `lr` (the first iteration of a run: `min(1, 1/|g|_1) * lr`).
    None,
    /// torch's `_strong_wolfe` (c1 1e-4, c2 0.9, at most `max_eval` evaluations left).
    StrongWolfe,
}

impl LineSearch {
    pub const NAMES: [&'static str; 2] = ["none", "strong-wolfe"];
    pub fn name(self) -> &'static str {
        match self {
            LineSearch::None => "none",
            LineSearch::StrongWolfe => "strong-wolfe",
        }
    }
    pub fn parse(s: &str) -> Option<LineSearch> {
        match s {
            "none" => Some(LineSearch::None),
            "strong-wolfe" => Some(LineSearch::StrongWolfe),
            _ => None,
        }
    }
}

/// torch.optim.LBFGS's arguments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    pub lr: f32,
    pub max_iter: u32,
    /// Evaluations per step; torch checks it only after a whole line search.
    pub max_eval: u32,
    /// Tolerances, f64 like torch's Python floats (compared in f32 against f32 tensors).
    pub tolerance_grad: f64,
    pub tolerance_change: f64,
    pub history_size: u32,
    pub line_search: LineSearch,
}

impl Settings {
    /// torch's default `max_eval` for `max_iter`.
    pub fn default_max_eval(max_iter: u32) -> u32 {
        max_iter.saturating_mul(5) / 4
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lr: 1.0,
            max_iter: 20,
            max_eval: Settings::default_max_eval(20),
            tolerance_grad: 1e-7,
            tolerance_change: 1e-9,
            history_size: 100,
            line_search: LineSearch::None,
        }
    }
}

/// What torch keeps in `optimizer.state` between steps.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct State {
    /// The last direction (empty before the first iteration).
    pub d: Vec<f32>,
    /// The last step length.
    pub t: f64,
    /// Gradient differences y_k and steps s_k, oldest first, with rho_k = 1 / (y_k . s_k).
    pub old_dirs: Vec<Vec<f32>>,
    pub old_stps: Vec<Vec<f32>>,
    pub ro: Vec<f32>,
    /// Scale of the initial inverse Hessian, ys / yy.
    pub h_diag: f32,
    /// The gradient at the start of the last iteration (empty before the first).
    pub prev_flat_grad: Vec<f32>,
    pub prev_loss: f64,
    /// Iterations and objective evaluations over the whole run.
    pub n_iter: u64,
    pub func_evals: u64,
}

/// What one [`run`] reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutcome {
    /// The loss of the step's first evaluation (what torch's `step()` returns).
    pub first_loss: f32,
    /// Objective evaluations (forward+backward passes) the step made.
    pub evals: u32,
}

pub use super::lbfgs_ops::{abs_max, abs_sum, axpy, dot, BLOCK};
pub use super::lbfgs_ops::{Candidate, Dir, Pair, Trial, VecOps};

/// [`State`] in the vectors and scalars of a [`VecOps`]: the history the algorithm works on
/// (a CPU step converts the saved form to it and back, a GPU keeps it on the device).
pub struct Hist<V, S> {
    /// The last direction and the gradient at the start of the last iteration (None
    /// before the first iteration).
    pub d: Option<V>,
    pub prev_flat_grad: Option<V>,
    pub t: f64,
    /// The (y, s) pairs, oldest first.
    pub pairs: Vec<Pair<V, S>>,
    pub h_diag: S,
    pub prev_loss: f64,
    pub n_iter: u64,
    pub func_evals: u64,
}

impl<V, S> Hist<V, S> {
    /// The history of `st`, its vectors converted by `f` and its scalars by `fs`.
    pub fn from_state(
        st: State,
        mut f: impl FnMut(Vec<f32>) -> V,
        mut fs: impl FnMut(f32) -> S,
    ) -> Hist<V, S> {
        let mut opt = |v: Vec<f32>| (!v.is_empty()).then(|| f(v));
        let (d, prev_flat_grad) = (opt(st.d), opt(st.prev_flat_grad));
        let pairs = (st.old_dirs.into_iter().zip(st.old_stps).zip(st.ro))
            .map(|((y, s), ro)| Pair {
                y: f(y),
                s: f(s),
                ro: fs(ro),
            })
            .collect();
        Hist {
            d,
            prev_flat_grad,
            t: st.t,
            pairs,
            h_diag: fs(st.h_diag),
            prev_loss: st.prev_loss,
            n_iter: st.n_iter,
            func_evals: st.func_evals,
        }
    }

    /// The saved form, its vectors converted by `f` (empty where None), its scalars by
    /// `fs`.
    pub fn to_state<E>(
        &self,
        mut f: impl FnMut(&V) -> Result<Vec<f32>, E>,
        mut fs: impl FnMut(&S) -> f32,
    ) -> Result<State, E> {
        let mut opt = |v: &Option<V>| v.as_ref().map_or(Ok(Vec::new()), &mut f);
        let (d, prev_flat_grad) = (opt(&self.d)?, opt(&self.prev_flat_grad)?);
        let mut vecs = |pick: fn(&Pair<V, S>) -> &V| -> Result<Vec<Vec<f32>>, E> {
            self.pairs.iter().map(|p| f(pick(p))).collect()
        };
        Ok(State {
            d,
            prev_flat_grad,
            t: self.t,
            old_dirs: vecs(|p| &p.y)?,
            old_stps: vecs(|p| &p.s)?,
            ro: self.pairs.iter().map(|p| fs(&p.ro)).collect(),
            h_diag: fs(&self.h_diag),
            prev_loss: self.prev_loss,
            n_iter: self.n_iter,
            func_evals: self.func_evals,
        })
    }
}

/// The candidate pair (y, s) = (g - prev_g, t d) of this iteration, with y . s and y . y
/// (None before the first iteration).
fn candidate<O: VecOps>(
    o: &mut O,
    st: &Hist<O::V, O::S>,
    g: &O::V,
) -> Option<Candidate<O::V, O::S>> {
    let (Some(prev), Some(d)) = (&st.prev_flat_grad, &st.d) else {
        return None;
    };
    Some(o.candidate(g, prev, d, st.t as f32))
}

/// Files the candidate as torch does once `ys` is read: in the history (the oldest pair out
/// when it is full) when ys > 1e-10, else dropped.
fn file<O: VecOps>(
    o: &mut O,
    st: &mut Hist<O::V, O::S>,
    c: Candidate<O::V, O::S>,
    ro: O::S,
    history_size: usize,
) {
    if o.value(c.ys) > 1e-10 {
        if st.pairs.len() == history_size {
            let old = st.pairs.remove(0);
            o.recycle(old.y);
            o.recycle(old.s);
            o.release(old.ro);
        }
        st.pairs.push(Pair { y: c.y, s: c.s, ro });
    } else {
        o.recycle(c.y);
        o.recycle(c.s);
        o.release(ro);
    }
}

/// Sets `slot` to `v`, recycling what it held.
fn replace<O: VecOps>(o: &mut O, slot: &mut Option<O::V>, v: O::V) {
    if let Some(old) = slot.replace(v) {
        o.recycle(old);
    }
}

/// The candidate pair and its rho, filed once its ys is read.
type Filed<V, S> = Option<(Candidate<V, S>, S)>;

/// The direction of iteration `st.n_iter` from gradient `g` into `st.d`; also records `g`
/// as the previous gradient. Returns the pair to file, g . d and max |d|.
#[allow(clippy::type_complexity)]
fn next_direction<O: VecOps>(
    o: &mut O,
    cfg: &Settings,
    st: &mut Hist<O::V, O::S>,
    g: &O::V,
) -> (Filed<O::V, O::S>, O::S, O::S) {
    let mut filed = None;
    let dir = if st.n_iter == 1 {
        for p in std::mem::take(&mut st.pairs) {
            o.recycle(p.y);
            o.recycle(p.s);
            o.release(p.ro);
        }
        o.first_direction(&mut st.h_diag, g)
    } else {
        let cand = candidate(o, st, g);
        let full = st.pairs.len() == cfg.history_size as usize;
        let dir = o.direction(&st.pairs, cand.as_ref(), full, &mut st.h_diag, g);
        filed = cand.zip(dir.ro);
        dir
    };
    replace(o, &mut st.d, dir.d);
    match &mut st.prev_flat_grad {
        Some(p) => o.copy(p, g),
        None => st.prev_flat_grad = Some(o.dup(g)),
    }
    (filed, dir.gtd, dir.d_max)
}

/// The first evaluation of iteration `n_iter` along `d` at step `t` from `w`, recorded
/// before the algorithm reads `gtd` (torch evaluates only when `gtd <= -tolerance_change`):
/// none after the last iteration without a line search.
fn first_trial<O: VecOps>(
    o: &mut O,
    cfg: &Settings,
    n_iter: u32,
    (w, t, d): (&O::V, f64, &O::V),
    gtd: O::S,
) -> Option<Trial<O::V, O::S>> {
    let wolfe = cfg.line_search == LineSearch::StrongWolfe;
    if !wolfe && n_iter == cfg.max_iter {
        return None;
    }
    let wt = super::lbfgs_ops::point(o, w, t, d);
    let mut g = o.alloc();
    let Some(loss) = o.eval_if_descent(gtd, -cfg.tolerance_change as f32, &wt, &mut g) else {
        o.recycle(wt);
        o.recycle(g);
        return None;
    };
    let g_max = o.abs_max(&g);
    let gtd = wolfe.then(|| o.dot(&g, d));
    Some(Trial {
        w: wt,
        g,
        loss,
        g_max,
        gtd,
    })
}

/// A step's running values: loss, gradient and its max |g|, evaluations.
struct Now<V> {
    loss: f64,
    g: V,
    g_max: f32,
    evals: u32,
}

/// Iteration `n_iter`'s move along `d` (with g . d = `gtd` and max |d| = `d_max`) after
/// its direction: the weights, loss and gradient it lands on. Returns whether to stop (torch's checks after a move), or None when `d` does
/// not descend (torch breaks before moving).
fn advance<O: VecOps>(
    o: &mut O,
    cfg: &Settings,
    st: &mut Hist<O::V, O::S>,
    (w, d, n_iter): (&mut O::V, &O::V, u32),
    (now, gtd, d_max): (&mut Now<O::V>, O::S, O::S),
) -> Option<bool> {
    let trial = first_trial(o, cfg, n_iter, (w, st.t, d), gtd);
    // One read-back on the GPU: gtd, max |d|, the candidate's ys, the trial's scalars.
    let gtd = o.value(gtd);
    if gtd > -cfg.tolerance_change as f32 {
        if let Some(tr) = trial {
            o.withdraw();
            for v in [tr.w, tr.g] {
                o.recycle(v);
            }
        }
        return None;
    }
    let evals = now.evals;
    match (cfg.line_search, trial) {
        (LineSearch::StrongWolfe, Some(tr)) => {
            let max_ls = cfg.max_eval.saturating_sub(now.evals);
            let d_norm = o.value(d_max);
            let at0 = (now.loss, &now.g, gtd as f64, now.g_max);
            let ls = super::lbfgs_wolfe::search(o, (w, d, d_norm), at0, (st.t, tr), max_ls);
            o.recycle(std::mem::replace(&mut now.g, ls.g));
            (now.loss, now.g_max, st.t) = (ls.f, ls.g_max, ls.t);
            now.evals += ls.evals;
            st.func_evals += ls.evals as u64;
            o.axpy(w, st.t as f32, d);
        }
        (_, Some(tr)) => {
            o.recycle(std::mem::replace(w, tr.w));
            o.recycle(std::mem::replace(&mut now.g, tr.g));
            now.loss = o.value(tr.loss) as f64;
            now.g_max = o.value(tr.g_max);
            now.evals += 1;
            st.func_evals += 1;
        }
        // The last iteration without a line search moves without evaluating.
        (_, None) => o.axpy(w, st.t as f32, d),
    }
    let opt_cond = now.evals > evals && now.g_max <= cfg.tolerance_grad as f32;
    let tol_change = cfg.tolerance_change;
    // max |d t| = max |d| * |t|: rounding is monotone.
    let moved = o.value(d_max) * (st.t as f32).abs();
    Some(
        n_iter == cfg.max_iter
            || now.evals >= cfg.max_eval
            || opt_cond
            || moved <= tol_change as f32
            || (now.loss - st.prev_loss).abs() < tol_change,
    )
}

/// One `torch.optim.LBFGS.step(closure)` on the weights `w`, in the vectors of `o`.
pub fn run<O: VecOps>(
    o: &mut O,
    cfg: &Settings,
    st: &mut Hist<O::V, O::S>,
    w: &mut O::V,
) -> StepOutcome {
    let mut g = o.alloc();
    let loss = o.eval(w, &mut g);
    let g_max = o.abs_max(&g);
    // torch's first step length, min(1, 1/|g|_1) * lr, needs |g|_1 on the run's first step.
    let g_sum = (st.n_iter == 0).then(|| o.abs_sum(&g));
    let first = o.value(loss);
    st.func_evals += 1;
    let mut now = Now {
        loss: first as f64,
        g,
        g_max: o.value(g_max),
        evals: 1,
    };
    let done = now.g_max <= cfg.tolerance_grad as f32;
    let mut n_iter = 0;
    while !done && n_iter < cfg.max_iter {
        n_iter += 1;
        st.n_iter += 1;
        let (filed, gtd, d_max) = next_direction(o, cfg, st, &now.g);
        st.prev_loss = now.loss;
        st.t = match g_sum {
            Some(s) if st.n_iter == 1 => (1f32 / o.value(s)).min(1.0) as f64 * cfg.lr as f64,
            _ => cfg.lr as f64,
        };
        let Some(d) = st.d.take() else {
            // (next_direction always sets d.)
            if let Some((c, ro)) = filed {
                file(o, st, c, ro, cfg.history_size as usize);
            }
            break;
        };
        let stop = advance(o, cfg, st, (w, &d, n_iter), (&mut now, gtd, d_max));
        st.d = Some(d);
        if let Some((c, ro)) = filed {
            file(o, st, c, ro, cfg.history_size as usize);
        }
        if stop != Some(false) {
            break;
        }
    }
    o.recycle(now.g);
    StepOutcome {
        first_loss: first,
        evals: now.evals,
    }
}

impl State {
    /// The vectors to save, by name: `d`, `prev_flat_grad`, then each pair's y and s, and
    /// `ro` (empty vectors before the first iteration).
    pub fn tensors(&self) -> Vec<(String, &[f32])> {
        let mut v: Vec<(String, &[f32])> = vec![
            ("lbfgs.d".into(), &self.d),
            ("lbfgs.prev_flat_grad".into(), &self.prev_flat_grad),
            ("lbfgs.ro".into(), &self.ro),
        ];
        for (i, (y, s)) in self.old_dirs.iter().zip(&self.old_stps).enumerate() {
            v.push((format!("lbfgs.y.{i}"), y));
            v.push((format!("lbfgs.s.{i}"), s));
        }
        v
    }

    /// The scalars to save, as exact bit patterns where they are floats.
    pub fn meta(&self) -> Vec<(&'static str, String)> {
        vec![
            ("lbfgs_pairs", self.old_dirs.len().to_string()),
            ("lbfgs_t", format!("{:016x}", self.t.to_bits())),
            ("lbfgs_h_diag", format!("{:08x}", self.h_diag.to_bits())),
            (
                "lbfgs_prev_loss",
                format!("{:016x}", self.prev_loss.to_bits()),
            ),
            ("lbfgs_n_iter", self.n_iter.to_string()),
            ("lbfgs_func_evals", self.func_evals.to_string()),
        ]
    }

    /// Rebuilds a saved state from its metadata (`field`) and tensors (`get`: a tensor by
    /// name, None when absent).
    pub fn load(
        field: impl Fn(&str) -> Option<String>,
        get: impl Fn(&str) -> anyhow::Result<Vec<f32>>,
    ) -> anyhow::Result<State> {
        let num = |k: &str| -> anyhow::Result<u64> {
            let v = field(k).ok_or_else(|| anyhow::anyhow!("missing metadata `{k}`"))?;
            u64::from_str_radix(
                &v,
                if k.ends_with("_t") || k.ends_with("loss") || k.ends_with("diag") {
                    16
                } else {
                    10
                },
            )
            .map_err(|_| anyhow::anyhow!("bad metadata `{k}`"))
        };
        let pairs = num("lbfgs_pairs")? as usize;
        let mut st = State {
            d: get("lbfgs.d")?,
            t: f64::from_bits(num("lbfgs_t")?),
            ro: get("lbfgs.ro")?,
            h_diag: f32::from_bits(num("lbfgs_h_diag")? as u32),
            prev_flat_grad: get("lbfgs.prev_flat_grad")?,
            prev_loss: f64::from_bits(num("lbfgs_prev_loss")?),
            n_iter: num("lbfgs_n_iter")?,
            func_evals: num("lbfgs_func_evals")?,
            ..State::default()
        };
        anyhow::ensure!(
            st.ro.len() == pairs,
            "tensor `lbfgs.ro` has {} values, expected {pairs}",
            st.ro.len()
        );
        for i in 0..pairs {
            st.old_dirs.push(get(&format!("lbfgs.y.{i}"))?);
            st.old_stps.push(get(&format!("lbfgs.s.{i}"))?);
        }
        Ok(st)
    }
}
