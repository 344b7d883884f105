//! The operations L-BFGS is written in ([`VecOps`]), so one algorithm (`lbfgs::run`) serves
//! both backends: the CPU's slices (`cpu::lbfgs`) and the GPU's device buffers
//! (`gpu::lbfgs`, shaders/lbfgs.wgsl and shaders/lbfgs_admit.wgsl).
//!
//! The reductions sum in one fixed order (`reduce`), the one the GPU kernels repeat; they
//! live here, not with the CPU's operations, because the state checks use them too.
//!
//! The scalars the operations compute (dot products, norms, losses) are handles ([`VecOps::S`]):
//! the CPU's are their values, the GPU's slots of a device buffer that stay there, feeding
//! the next kernels, until the algorithm asks for a value ([`VecOps::value`]) to decide
//! what to do next; then every scalar computed so far comes back in one read-back.

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

/// a . b in f32, in the fixed order of [`reduce`] (shaders/lbfgs.wgsl's `lbfgs_blocks` +
/// `lbfgs_total`, op 0).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    reduce(a.len(), |i| a[i] * b[i])
}

/// sum |a_i| in f32, in the fixed order of [`reduce`] (op 1).
pub fn abs_sum(a: &[f32]) -> f32 {
    reduce(a.len(), |i| a[i].abs())
}

/// max |a_i| (0 for an empty vector; op 2).
pub fn abs_max(a: &[f32]) -> f32 {
    a.iter().fold(0f32, |m, &v| m.max(v.abs()))
}

/// y += alpha * x, fused as torch's `add_(x, alpha=...)` is in its vector kernels
/// (`lbfgs_axpy`).
pub fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = x.mul_add(alpha, *y);
    }
}

/// A (y, s) pair of the history, with rho = 1 / (y . s).
pub struct Pair<V, S> {
    pub y: V,
    pub s: V,
    pub ro: S,
}

/// The pair an iteration made: y = g - prev_g, s = t d, with y . s and y . y. It enters the
/// history only if ys > 1e-10 (torch's test), so the backend's [`VecOps::direction`] applies
/// the test where ys is (on the device for the GPU), and the algorithm files the pair once
/// it reads ys.
pub struct Candidate<V, S> {
    pub y: V,
    pub s: V,
    pub ys: S,
    pub yy: S,
}

/// A direction and the scalars torch checks next: g . d and max |d|; with the candidate
/// pair's rho = 1 / ys (a scalar to keep if the pair joins the history).
pub struct Dir<V, S> {
    pub d: V,
    pub ro: Option<S>,
    pub gtd: S,
    pub d_max: S,
}

/// An evaluation along the direction: its point, gradient and scalars (loss, max |g|, and
/// g . d for the line search).
pub struct Trial<V, S> {
    pub w: V,
    pub g: V,
    pub loss: S,
    pub g_max: S,
    pub gtd: Option<S>,
}

/// What L-BFGS does with its vectors (all of the parameters' length) and scalars.
pub trait VecOps {
    /// A vector: a `Vec<f32>` on the CPU, a device buffer on the GPU.
    type V;
    /// A scalar: an f32 on the CPU, a slot of a device buffer on the GPU.
    type S: Copy;
    /// A vector of unspecified contents.
    fn alloc(&mut self) -> Self::V;
    /// Hands back a vector no longer needed (a GPU keeps it for the next [`VecOps::alloc`]).
    fn recycle(&mut self, _v: Self::V) {}
    /// Hands back a scalar no longer needed (a pair's rho, when the pair leaves).
    fn release(&mut self, _s: Self::S) {}
    /// The value of `s`; on the GPU it reads back every scalar not yet read, at once.
    fn value(&mut self, s: Self::S) -> f32;
    fn dot(&mut self, a: &Self::V, b: &Self::V) -> Self::S;
    fn abs_sum(&mut self, a: &Self::V) -> Self::S;
    fn abs_max(&mut self, a: &Self::V) -> Self::S;
    /// y += alpha * x (fused multiply-add).
    fn axpy(&mut self, y: &mut Self::V, alpha: f32, x: &Self::V);
    /// y *= a.
    fn scale(&mut self, y: &mut Self::V, a: f32);
    fn copy(&mut self, dst: &mut Self::V, src: &Self::V);
    /// The objective: loss at `w`, its gradient into `g`.
    fn eval(&mut self, w: &Self::V, g: &mut Self::V) -> Self::S;
    /// [`VecOps::eval`] unless `gtd > limit` (None then): torch evaluates along a direction
    /// only when it descends. The CPU checks first; the GPU evaluates at once, in the
    /// submission that computed `gtd`, and the caller takes the evaluation back with
    /// [`VecOps::withdraw`] when its own check (the same test on the same value) fails.
    fn eval_if_descent(
        &mut self,
        gtd: Self::S,
        limit: f32,
        w: &Self::V,
        g: &mut Self::V,
    ) -> Option<Self::S>;
    /// The last [`VecOps::eval_if_descent`] did not happen (torch made no such call).
    fn withdraw(&mut self) {}
    /// The first iteration's direction, d = -g, with `h_diag` set to 1.
    fn first_direction(&mut self, h_diag: &mut Self::S, g: &Self::V) -> Dir<Self::V, Self::S>;
    /// The direction d = -H g of torch's two-loop recursion over `pairs` (oldest first)
    /// with the scale `h_diag`, after `cand` is admitted: if its ys > 1e-10 it joins the
    /// pairs (the oldest leaving when the history is `full`) and `h_diag` becomes ys / yy.
    fn direction(
        &mut self,
        pairs: &[Pair<Self::V, Self::S>],
        cand: Option<&Candidate<Self::V, Self::S>>,
        full: bool,
        h_diag: &mut Self::S,
        g: &Self::V,
    ) -> Dir<Self::V, Self::S>;
    /// The candidate pair y = g - prev, s = t d, with y . s and y . y.
    fn candidate(
        &mut self,
        g: &Self::V,
        prev: &Self::V,
        d: &Self::V,
        t: f32,
    ) -> Candidate<Self::V, Self::S> {
        let mut y = self.dup(g);
        self.axpy(&mut y, -1.0, prev);
        let mut s = self.dup(d);
        self.scale(&mut s, t);
        let ys = self.dot(&y, &s);
        let yy = self.dot(&y, &y);
        Candidate { y, s, ys, yy }
    }
    /// A copy of `a`.
    fn dup(&mut self, a: &Self::V) -> Self::V {
        let mut v = self.alloc();
        self.copy(&mut v, a);
        v
    }
}

/// `x + t * d` in a new vector (torch's `_directional_evaluate` point).
pub(crate) fn point<O: VecOps>(o: &mut O, x: &O::V, t: f64, d: &O::V) -> O::V {
    let mut w = o.dup(x);
    o.axpy(&mut w, t as f32, d);
    w
}
