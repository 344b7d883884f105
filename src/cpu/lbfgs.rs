//! L-BFGS on the CPU: the one algorithm of `optim::lbfgs::run` over slices ([`CpuOps`]),
//! with the CPU twins of the L-BFGS kernels: the fixed-order reductions and vector ops of
//! shaders/lbfgs.wgsl ([`dot`], [`abs_sum`], [`abs_max`], [`axpy`], from `optim::lbfgs_ops`,
//! where the order is defined), the history test of
//! shaders/lbfgs_admit.wgsl ([`lbfgs_admit`]) and the two-loop recursion the GPU records
//! from them ([`two_loop`]). [`cpu_step`] is the CPU backend's step: the objective is the
//! fused forward+backward pass over the train set.

use super::fused::{self, Input};
use super::reference::Workspace;
use crate::model::Params;
use crate::optim::lbfgs::VecOps;
// The fixed-order reductions are the algorithm's (optim::lbfgs_ops), which state checks
// also use; here they are the twins of lbfgs.wgsl's.
use crate::optim::lbfgs::{self, Candidate, Dir, Hist, Pair, Settings, State, StepOutcome};
pub use crate::optim::lbfgs_ops::{abs_max, abs_sum, axpy, dot, BLOCK};
use crate::pass_stats::PassStats;

/// torch's history test for a pair with y . s = `ys` and y . y = `yy` (`lbfgs_admit`):
/// whether it joins the history (ys > 1e-10), its rho = 1 / ys, and the new H_diag
/// (ys / yy when it joins, else `h_diag`).
pub fn lbfgs_admit(ys: f32, yy: f32, h_diag: f32) -> (bool, f32, f32) {
    let joins = ys > 1e-10;
    (joins, 1.0 / ys, if joins { ys / yy } else { h_diag })
}

/// torch's two-loop recursion: -H g over the pairs (y, s, rho), oldest first, with the
/// initial inverse Hessian `h_diag` I. The GPU records the same loop, one kernel per dot
/// product and update (gpu::ops::lbfgs).
pub fn two_loop(pairs: &[(&[f32], &[f32], f32)], h_diag: f32, g: &[f32]) -> Vec<f32> {
    let mut q: Vec<f32> = g.iter().map(|v| v * -1.0).collect();
    let mut al = vec![0f32; pairs.len()];
    for (i, &(y, s, ro)) in pairs.iter().enumerate().rev() {
        al[i] = dot(s, &q) * ro;
        axpy(&mut q, -al[i], y);
    }
    q.iter_mut().for_each(|v| *v *= h_diag);
    for (&(y, s, ro), a) in pairs.iter().zip(al) {
        let be = dot(y, &q) * ro;
        axpy(&mut q, a - be, s);
    }
    q
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

/// The CPU's vectors: slices, with `f` as the objective; scalars are their values.
pub struct CpuOps<'a, F> {
    pub f: &'a mut F,
    pub n: usize,
}

impl<F: Objective> VecOps for CpuOps<'_, F> {
    type V = Vec<f32>;
    type S = f32;
    fn alloc(&mut self) -> Vec<f32> {
        vec![0f32; self.n]
    }
    fn value(&mut self, s: f32) -> f32 {
        s
    }
    fn dot(&mut self, a: &Vec<f32>, b: &Vec<f32>) -> f32 {
        dot(a, b)
    }
    fn abs_sum(&mut self, a: &Vec<f32>) -> f32 {
        abs_sum(a)
    }
    fn abs_max(&mut self, a: &Vec<f32>) -> f32 {
        abs_max(a)
    }
    fn axpy(&mut self, y: &mut Vec<f32>, alpha: f32, x: &Vec<f32>) {
        axpy(y, alpha, x)
    }
    fn scale(&mut self, y: &mut Vec<f32>, a: f32) {
        y.iter_mut().for_each(|v| *v *= a);
    }
    fn copy(&mut self, dst: &mut Vec<f32>, src: &Vec<f32>) {
        dst.clone_from(src);
    }
    fn dup(&mut self, a: &Vec<f32>) -> Vec<f32> {
        a.clone()
    }
    fn eval(&mut self, w: &Vec<f32>, g: &mut Vec<f32>) -> f32 {
        self.f.eval(w, g)
    }
    fn eval_if_descent(
        &mut self,
        gtd: f32,
        limit: f32,
        w: &Vec<f32>,
        g: &mut Vec<f32>,
    ) -> Option<f32> {
        (gtd <= limit || gtd.is_nan()).then(|| self.f.eval(w, g))
    }
    fn first_direction(&mut self, h_diag: &mut f32, g: &Vec<f32>) -> Dir<Vec<f32>, f32> {
        *h_diag = 1.0;
        let d: Vec<f32> = g.iter().map(|v| v * -1.0).collect();
        let (gtd, d_max) = (dot(g, &d), abs_max(&d));
        Dir {
            d,
            ro: None,
            gtd,
            d_max,
        }
    }
    fn direction(
        &mut self,
        pairs: &[Pair<Vec<f32>, f32>],
        cand: Option<&Candidate<Vec<f32>, f32>>,
        full: bool,
        h_diag: &mut f32,
        g: &Vec<f32>,
    ) -> Dir<Vec<f32>, f32> {
        let admitted = cand.map(|c| {
            let (joins, ro, hd) = lbfgs_admit(c.ys, c.yy, *h_diag);
            *h_diag = hd;
            (joins, ro, c)
        });
        let joins = admitted.is_some_and(|a| a.0);
        let kept = &pairs[usize::from(joins && full).min(pairs.len())..];
        let mut list: Vec<(&[f32], &[f32], f32)> =
            kept.iter().map(|p| (&p.y[..], &p.s[..], p.ro)).collect();
        if let Some((true, ro, c)) = admitted {
            list.push((&c.y, &c.s, ro));
        }
        let d = two_loop(&list, *h_diag, g);
        let (gtd, d_max) = (dot(g, &d), abs_max(&d));
        Dir {
            d,
            ro: admitted.map(|a| a.1),
            gtd,
            d_max,
        }
    }
}

/// One `torch.optim.LBFGS.step(closure)` on the weights `w` on the CPU, `f` the closure.
pub fn step(cfg: &Settings, st: &mut State, w: &mut [f32], f: &mut impl Objective) -> StepOutcome {
    let mut o = CpuOps { f, n: w.len() };
    let mut h = Hist::from_state(std::mem::take(st), |v| v, |s| s);
    let mut wv = w.to_vec();
    let out = lbfgs::run(&mut o, cfg, &mut h, &mut wv);
    w.copy_from_slice(&wv);
    *st = into_state(h);
    out
}

/// The saved form of a CPU history (its vectors moved, not copied).
fn into_state(h: Hist<Vec<f32>, f32>) -> State {
    let (mut old_dirs, mut old_stps, mut ro) = (Vec::new(), Vec::new(), Vec::new());
    for p in h.pairs {
        old_dirs.push(p.y);
        old_stps.push(p.s);
        ro.push(p.ro);
    }
    State {
        d: h.d.unwrap_or_default(),
        prev_flat_grad: h.prev_flat_grad.unwrap_or_default(),
        t: h.t,
        old_dirs,
        old_stps,
        ro,
        h_diag: h.h_diag,
        prev_loss: h.prev_loss,
        n_iter: h.n_iter,
        func_evals: h.func_evals,
    }
}

/// One step on the whole train set with the CPU passes as the objective (a fused
/// forward+backward, `cpu::fused::train_pass`). Returns the first evaluation's stats (the
/// epoch's train stats, as torch's `step()` returns the first loss) and the evaluations made.
pub fn cpu_step(
    cfg: &Settings,
    st: &mut State,
    params: &mut Params,
    (x, y): (Input, &[u8]),
    ws: &mut Workspace,
) -> (PassStats, u32) {
    let mut at = params.clone();
    let mut first = None;
    let mut objective = |w: &[f32], g: &mut [f32]| {
        at.data.copy_from_slice(w);
        let s = fused::train_pass(&at, x, y, ws);
        g.copy_from_slice(&ws.grads);
        first.get_or_insert(s);
        s.loss
    };
    let out = step(cfg, st, &mut params.data, &mut objective);
    (first.unwrap_or_default(), out.evals)
}
