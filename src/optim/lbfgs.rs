//! L-BFGS with the semantics of `torch.optim.LBFGS`: one [`step`] runs up to `max_iter`
//! iterations, each a two-loop-recursion direction and a fixed step (`line_search` none) or a
//! strong-Wolfe line search, calling the objective (a full forward+backward pass over the train
//! set) as torch calls its closure. Vectors are f32 like torch's; the scalars torch holds as
//! 0-d f32 tensors (ys, rho, H_diag, alpha, beta) are f32 here, the line search's step lengths
//! and losses (Python floats in torch) f64. The dot products sum in a fixed order
//! ([`dot`]), so a run is reproducible; torch sums in BLAS's order, so the two agree to float
//! rounding, not bit for bit.

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

/// What one [`step`] reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutcome {
    /// The loss of the step's first evaluation (what torch's `step()` returns).
    pub first_loss: f32,
    /// Objective evaluations (forward+backward passes) the step made.
    pub evals: u32,
}

pub use super::lbfgs_ops::{abs_max, abs_sum, axpy, dot, Objective, VecOps, BLOCK};

/// [`State`] in the vectors of a [`VecOps`]: the history the algorithm works on (a CPU
/// step converts the saved form to it and back, a GPU keeps it on the device).
pub struct Hist<V> {
    /// The last direction and the gradient at the start of the last iteration (None
    /// before the first iteration).
    pub d: Option<V>,
    pub prev_flat_grad: Option<V>,
    pub t: f64,
    pub old_dirs: Vec<V>,
    pub old_stps: Vec<V>,
    pub ro: Vec<f32>,
    pub h_diag: f32,
    pub prev_loss: f64,
    pub n_iter: u64,
    pub func_evals: u64,
}

impl<V> Hist<V> {
    /// The history of `st`, its vectors converted by `f`.
    pub fn from_state(st: State, mut f: impl FnMut(Vec<f32>) -> V) -> Hist<V> {
        let mut opt = |v: Vec<f32>| (!v.is_empty()).then(|| f(v));
        Hist {
            d: opt(st.d),
            prev_flat_grad: opt(st.prev_flat_grad),
            t: st.t,
            old_dirs: st.old_dirs.into_iter().map(&mut f).collect(),
            old_stps: st.old_stps.into_iter().map(&mut f).collect(),
            ro: st.ro,
            h_diag: st.h_diag,
            prev_loss: st.prev_loss,
            n_iter: st.n_iter,
            func_evals: st.func_evals,
        }
    }

    /// The saved form, its vectors converted by `f` (empty where None).
    pub fn to_state<E>(&self, mut f: impl FnMut(&V) -> Result<Vec<f32>, E>) -> Result<State, E> {
        let mut opt = |v: &Option<V>| v.as_ref().map_or(Ok(Vec::new()), &mut f);
        Ok(State {
            d: opt(&self.d)?,
            prev_flat_grad: opt(&self.prev_flat_grad)?,
            t: self.t,
            old_dirs: self.old_dirs.iter().map(&mut f).collect::<Result<_, E>>()?,
            old_stps: self.old_stps.iter().map(&mut f).collect::<Result<_, E>>()?,
            ro: self.ro.clone(),
            h_diag: self.h_diag,
            prev_loss: self.prev_loss,
            n_iter: self.n_iter,
            func_evals: self.func_evals,
        })
    }
}

/// The two-loop recursion: the direction -H g from the history (torch's loop, one buffer).
fn direction<O: VecOps>(o: &mut O, st: &Hist<O::V>, g: &O::V) -> O::V {
    let k = st.old_dirs.len();
    let mut q = o.dup(g);
    o.scale(&mut q, -1.0);
    let mut al = vec![0f32; k];
    for i in (0..k).rev() {
        al[i] = o.dot(&st.old_stps[i], &q) * st.ro[i];
        o.axpy(&mut q, -al[i], &st.old_dirs[i]);
    }
    o.scale(&mut q, st.h_diag);
    for (i, a) in al.iter().enumerate() {
        let be = o.dot(&st.old_dirs[i], &q) * st.ro[i];
        o.axpy(&mut q, a - be, &st.old_stps[i]);
    }
    q
}

/// Adds the pair (y, s) = (g - prev_g, t d) to the history when y . s > 1e-10.
fn update_history<O: VecOps>(o: &mut O, st: &mut Hist<O::V>, g: &O::V, history_size: usize) {
    let (Some(prev), Some(d)) = (&st.prev_flat_grad, &st.d) else {
        return;
    };
    let mut y = o.dup(g);
    o.axpy(&mut y, -1.0, prev);
    let mut s = o.dup(d);
    o.scale(&mut s, st.t as f32);
    let ys = o.dot(&y, &s);
    if ys > 1e-10 {
        if st.old_dirs.len() == history_size {
            let (y0, s0) = (st.old_dirs.remove(0), st.old_stps.remove(0));
            o.recycle(y0);
            o.recycle(s0);
            st.ro.remove(0);
        }
        st.h_diag = ys / o.dot(&y, &y);
        st.old_dirs.push(y);
        st.old_stps.push(s);
        st.ro.push(1.0 / ys);
    } else {
        o.recycle(y);
        o.recycle(s);
    }
}

/// Sets `slot` to `v`, recycling what it held.
fn replace<O: VecOps>(o: &mut O, slot: &mut Option<O::V>, v: O::V) {
    if let Some(old) = slot.replace(v) {
        o.recycle(old);
    }
}

/// The direction of iteration `st.n_iter` from gradient `g`; also records `g` as the
/// previous gradient.
fn next_direction<O: VecOps>(o: &mut O, cfg: &Settings, st: &mut Hist<O::V>, g: &O::V) {
    if st.n_iter == 1 {
        let mut d = o.dup(g);
        o.scale(&mut d, -1.0);
        replace(o, &mut st.d, d);
        for v in std::mem::take(&mut st.old_dirs) {
            o.recycle(v);
        }
        for v in std::mem::take(&mut st.old_stps) {
            o.recycle(v);
        }
        st.ro.clear();
        st.h_diag = 1.0;
    } else {
        update_history(o, st, g, cfg.history_size as usize);
        let d = direction(o, st, g);
        replace(o, &mut st.d, d);
    }
    match &mut st.prev_flat_grad {
        Some(p) => o.copy(p, g),
        None => st.prev_flat_grad = Some(o.dup(g)),
    }
}

/// One `torch.optim.LBFGS.step(closure)` on the weights `w`, in the vectors of `o`.
pub fn run<O: VecOps>(o: &mut O, cfg: &Settings, st: &mut Hist<O::V>, w: &mut O::V) -> StepOutcome {
    let mut g = o.alloc();
    let first = o.eval(w, &mut g);
    let mut loss = first as f64;
    let mut evals = 1u32;
    st.func_evals += 1;
    let tol_grad = cfg.tolerance_grad as f32;
    if o.abs_max(&g) <= tol_grad {
        o.recycle(g);
        return StepOutcome {
            first_loss: first,
            evals,
        };
    }
    let tol_change = cfg.tolerance_change;
    let mut n_iter = 0;
    while n_iter < cfg.max_iter {
        n_iter += 1;
        st.n_iter += 1;
        next_direction(o, cfg, st, &g);
        st.prev_loss = loss;
        st.t = if st.n_iter == 1 {
            // torch: min(1, 1/|g|_1) * lr, in f32.
            (1f32 / o.abs_sum(&g)).min(1.0) as f64 * cfg.lr as f64
        } else {
            cfg.lr as f64
        };
        let Some(d) = st.d.take() else { break };
        let gtd = o.dot(&g, &d);
        if gtd > -tol_change as f32 {
            st.d = Some(d);
            break;
        }
        let mut ls_evals = 0;
        let mut opt_cond = false;
        match cfg.line_search {
            LineSearch::StrongWolfe => {
                let max_ls = cfg.max_eval.saturating_sub(evals);
                let ls = crate::optim::lbfgs_wolfe::search(o, w, st.t, &d, (loss, &g, gtd), max_ls);
                let old_g;
                (loss, old_g, st.t, ls_evals) = (ls.0, std::mem::replace(&mut g, ls.1), ls.2, ls.3);
                o.recycle(old_g);
                o.axpy(w, st.t as f32, &d);
                opt_cond = o.abs_max(&g) <= tol_grad;
            }
            LineSearch::None => {
                o.axpy(w, st.t as f32, &d);
                // torch skips the evaluation after the last iteration.
                if n_iter != cfg.max_iter {
                    loss = o.eval(w, &mut g) as f64;
                    opt_cond = o.abs_max(&g) <= tol_grad;
                    ls_evals = 1;
                }
            }
        }
        evals += ls_evals;
        st.func_evals += ls_evals as u64;
        // max |d t| = max |d| * |t|: rounding is monotone.
        let t32 = st.t as f32;
        let stop = n_iter == cfg.max_iter
            || evals >= cfg.max_eval
            || opt_cond
            || o.abs_max(&d) * t32.abs() <= tol_change as f32
            || (loss - st.prev_loss).abs() < tol_change;
        st.d = Some(d);
        if stop {
            break;
        }
    }
    o.recycle(g);
    StepOutcome {
        first_loss: first,
        evals,
    }
}

/// One `torch.optim.LBFGS.step(closure)` on the weights `w` on the CPU.
pub fn step(cfg: &Settings, st: &mut State, w: &mut [f32], f: &mut impl Objective) -> StepOutcome {
    let mut o = super::lbfgs_ops::CpuOps { f, n: w.len() };
    let mut h = Hist::from_state(std::mem::take(st), |v| v);
    let mut wv = w.to_vec();
    let out = run(&mut o, cfg, &mut h, &mut wv);
    w.copy_from_slice(&wv);
    *st = h.into_state();
    out
}

impl Hist<Vec<f32>> {
    /// The saved form of a CPU history (its vectors moved, not copied).
    pub fn into_state(self) -> State {
        State {
            d: self.d.unwrap_or_default(),
            prev_flat_grad: self.prev_flat_grad.unwrap_or_default(),
            t: self.t,
            old_dirs: self.old_dirs,
            old_stps: self.old_stps,
            ro: self.ro,
            h_diag: self.h_diag,
            prev_loss: self.prev_loss,
            n_iter: self.n_iter,
            func_evals: self.func_evals,
        }
    }
}

/// One step on the whole train set with the CPU passes as the objective (a fused
/// forward+backward, `cpu::fused::train_pass`). Returns the first evaluation's stats (the
/// epoch's train stats, as torch's `step()` returns the first loss) and the evaluations made.
pub fn cpu_step(
    cfg: &Settings,
    st: &mut State,
    params: &mut crate::model::Params,
    (x, y): (crate::cpu::fused::Input, &[u8]),
    ws: &mut crate::cpu::reference::Workspace,
) -> (crate::pass_stats::PassStats, u32) {
    let mut at = params.clone();
    let mut first = None;
    let mut objective = |w: &[f32], g: &mut [f32]| {
        at.data.copy_from_slice(w);
        let s = crate::cpu::fused::train_pass(&at, x, y, ws);
        g.copy_from_slice(&ws.grads);
        first.get_or_insert(s);
        s.loss
    };
    let out = step(cfg, st, &mut params.data, &mut objective);
    (first.unwrap_or_default(), out.evals)
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
