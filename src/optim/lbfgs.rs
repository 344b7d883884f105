//! L-BFGS with the semantics of `torch.optim.LBFGS`: one [`step`] runs up to `max_iter`
//! iterations, each a two-loop-recursion direction and a fixed step (`line_search` none) or a
//! strong-Wolfe line search, calling the objective (a full forward+backward pass over the train
//! set) as torch calls its closure. Vectors are f32 like torch's; the scalars torch holds as
//! 0-d f32 tensors (ys, rho, H_diag, alpha, beta) are f32 here, the line search's step lengths
//! and losses (Python floats in torch) f64. The dot products sum in a fixed order
//! ([`dot`]), so a run is reproducible; torch sums in BLAS's order, so the two agree to float
//! rounding, not bit for bit.

use super::{Hyper, Rule, Spec, Traits};

/// The registry entry. The WGSL case leaves the weights alone: the step runs on the host,
/// which the GPU backend does not do yet (it refuses `lbfgs`).
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
    gpu_global: None,
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

/// Partial sums run over blocks of this many elements, each summed as a binary tree (the
/// shape of a GPU workgroup reduction); the block sums are then added in order.
pub const BLOCK: usize = 256;

/// Sums `f(i)` for i in 0..n in the fixed block/tree order.
fn reduce(n: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut total = 0f32;
    let mut buf = [0f32; BLOCK];
    for start in (0..n).step_by(BLOCK) {
        let len = BLOCK.min(n - start);
        for (k, b) in buf.iter_mut().enumerate() {
            *b = if k < len { f(start + k) } else { 0.0 };
        }
        let mut width = BLOCK / 2;
        while width > 0 {
            for k in 0..width {
                buf[k] += buf[k + width];
            }
            width /= 2;
        }
        total += buf[0];
    }
    total
}

/// a . b in f32, in the fixed order of [`reduce`].
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    reduce(a.len(), |i| a[i] * b[i])
}

/// sum |a_i| in f32, in the fixed order of [`reduce`].
pub fn abs_sum(a: &[f32]) -> f32 {
    reduce(a.len(), |i| a[i].abs())
}

/// max |a_i| (0 for an empty vector).
pub fn abs_max(a: &[f32]) -> f32 {
    a.iter().fold(0f32, |m, &v| m.max(v.abs()))
}

/// y += alpha * x, fused as torch's `add_(x, alpha=...)` is in its vector kernels.
pub fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = x.mul_add(alpha, *y);
    }
}

/// The objective: loss at `w`, its gradient written to `g`.
pub trait Objective {
    fn eval(&mut self, w: &[f32], g: &mut [f32]) -> f32;
}

impl<F: FnMut(&[f32], &mut [f32]) -> f32> Objective for F {
    fn eval(&mut self, w: &[f32], g: &mut [f32]) -> f32 {
        self(w, g)
    }
}

/// Loss and gradient at `x + t * d` (torch's `_directional_evaluate`).
pub(crate) fn directional(f: &mut impl Objective, x: &[f32], t: f64, d: &[f32]) -> (f64, Vec<f32>) {
    let mut w = x.to_vec();
    axpy(&mut w, t as f32, d);
    let mut g = vec![0f32; x.len()];
    let loss = f.eval(&w, &mut g);
    (loss as f64, g)
}

/// The two-loop recursion: the direction -H g from the history (torch's loop, one buffer).
fn direction(st: &State, g: &[f32]) -> Vec<f32> {
    let k = st.old_dirs.len();
    let mut q: Vec<f32> = g.iter().map(|v| -v).collect();
    let mut al = vec![0f32; k];
    for i in (0..k).rev() {
        al[i] = dot(&st.old_stps[i], &q) * st.ro[i];
        axpy(&mut q, -al[i], &st.old_dirs[i]);
    }
    for v in q.iter_mut() {
        *v *= st.h_diag;
    }
    for (i, a) in al.iter().enumerate() {
        let be = dot(&st.old_dirs[i], &q) * st.ro[i];
        axpy(&mut q, a - be, &st.old_stps[i]);
    }
    q
}

/// Adds the pair (y, s) = (g - prev_g, t d) to the history when y . s > 1e-10.
fn update_history(st: &mut State, g: &[f32], history_size: usize) {
    let y: Vec<f32> = g
        .iter()
        .zip(&st.prev_flat_grad)
        .map(|(a, b)| a - b)
        .collect();
    let t = st.t as f32;
    let s: Vec<f32> = st.d.iter().map(|v| v * t).collect();
    let ys = dot(&y, &s);
    if ys > 1e-10 {
        if st.old_dirs.len() == history_size {
            st.old_dirs.remove(0);
            st.old_stps.remove(0);
            st.ro.remove(0);
        }
        st.h_diag = ys / dot(&y, &y);
        st.old_dirs.push(y);
        st.old_stps.push(s);
        st.ro.push(1.0 / ys);
    }
}

/// One `torch.optim.LBFGS.step(closure)` on the weights `w`.
pub fn step(cfg: &Settings, st: &mut State, w: &mut [f32], f: &mut impl Objective) -> StepOutcome {
    let mut g = vec![0f32; w.len()];
    let first = f.eval(w, &mut g);
    let mut loss = first as f64;
    let mut evals = 1u32;
    st.func_evals += 1;
    if abs_max(&g) <= cfg.tolerance_grad as f32 {
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
        if st.n_iter == 1 {
            st.d = g.iter().map(|v| -v).collect();
            (st.old_dirs, st.old_stps, st.ro) = (Vec::new(), Vec::new(), Vec::new());
            st.h_diag = 1.0;
        } else {
            update_history(st, &g, cfg.history_size as usize);
            st.d = direction(st, &g);
        }
        st.prev_flat_grad.clone_from(&g);
        st.prev_loss = loss;
        st.t = if st.n_iter == 1 {
            // torch: min(1, 1/|g|_1) * lr, in f32.
            (1f32 / abs_sum(&g)).min(1.0) as f64 * cfg.lr as f64
        } else {
            cfg.lr as f64
        };
        let gtd = dot(&g, &st.d);
        if gtd > -tol_change as f32 {
            break;
        }
        let mut ls_evals = 0;
        let mut opt_cond = false;
        match cfg.line_search {
            LineSearch::StrongWolfe => {
                let max_ls = cfg.max_eval.saturating_sub(evals);
                let ls =
                    crate::optim::lbfgs_wolfe::search(f, w, st.t, &st.d, (loss, &g, gtd), max_ls);

                (loss, g, st.t, ls_evals) = ls;
                axpy(w, st.t as f32, &st.d);
                opt_cond = abs_max(&g) <= cfg.tolerance_grad as f32;
            }
            LineSearch::None => {
                axpy(w, st.t as f32, &st.d);
                // torch skips the evaluation after the last iteration.
                if n_iter != cfg.max_iter {
                    loss = f.eval(w, &mut g) as f64;
                    opt_cond = abs_max(&g) <= cfg.tolerance_grad as f32;
                    ls_evals = 1;
                }
            }
        }
        evals += ls_evals;
        st.func_evals += ls_evals as u64;
        let t32 = st.t as f32;
        if n_iter == cfg.max_iter
            || evals >= cfg.max_eval
            || opt_cond
            || st.d.iter().fold(0f32, |m, v| m.max((v * t32).abs())) <= tol_change as f32
            || (loss - st.prev_loss).abs() < tol_change
        {
            break;
        }
    }
    StepOutcome {
        first_loss: first,
        evals,
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
