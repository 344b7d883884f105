//! The vector operations L-BFGS is written in ([`VecOps`]), so one algorithm
//! (`lbfgs::run`) serves both backends: the CPU's slices ([`CpuOps`]) and the GPU's device
//! buffers (`gpu::lbfgs`, shaders/lbfgs.wgsl). The reductions sum in one fixed order
//! ([`reduce`]) that the GPU kernels repeat; on lavapipe the two then agree to about 1e-6
//! relative (`verify`), not bit for bit: the driver may round an element differently.

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

/// What L-BFGS does with its vectors (all of the parameters' length). Scalars come back to
/// the caller as f32: the branches of the algorithm need them.
pub trait VecOps {
    /// A vector: a `Vec<f32>` on the CPU, a device buffer on the GPU.
    type V;
    /// A vector of unspecified contents.
    fn alloc(&mut self) -> Self::V;
    /// Hands back a vector no longer needed (a GPU keeps it for the next [`VecOps::alloc`]).
    fn recycle(&mut self, _v: Self::V) {}
    fn dot(&mut self, a: &Self::V, b: &Self::V) -> f32;
    fn abs_sum(&mut self, a: &Self::V) -> f32;
    fn abs_max(&mut self, a: &Self::V) -> f32;
    /// y += alpha * x (fused multiply-add).
    fn axpy(&mut self, y: &mut Self::V, alpha: f32, x: &Self::V);
    /// y *= a.
    fn scale(&mut self, y: &mut Self::V, a: f32);
    fn copy(&mut self, dst: &mut Self::V, src: &Self::V);
    /// The objective: loss at `w`, its gradient into `g`.
    fn eval(&mut self, w: &Self::V, g: &mut Self::V) -> f32;
    /// A copy of `a`.
    fn dup(&mut self, a: &Self::V) -> Self::V {
        let mut v = self.alloc();
        self.copy(&mut v, a);
        v
    }
}

/// Loss and gradient at `x + t * d` (torch's `_directional_evaluate`).
pub(crate) fn directional<O: VecOps>(o: &mut O, x: &O::V, t: f64, d: &O::V) -> (f64, O::V) {
    let mut w = o.dup(x);
    o.axpy(&mut w, t as f32, d);
    let mut g = o.alloc();
    let loss = o.eval(&w, &mut g);
    o.recycle(w);
    (loss as f64, g)
}

/// The CPU's vectors: slices, with `f` as the objective.
pub struct CpuOps<'a, F> {
    pub f: &'a mut F,
    pub n: usize,
}

impl<F: Objective> VecOps for CpuOps<'_, F> {
    type V = Vec<f32>;
    fn alloc(&mut self) -> Vec<f32> {
        vec![0f32; self.n]
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
    fn eval(&mut self, w: &Vec<f32>, g: &mut Vec<f32>) -> f32 {
        self.f.eval(w, g)
    }
    fn dup(&mut self, a: &Vec<f32>) -> Vec<f32> {
        a.clone()
    }
}
