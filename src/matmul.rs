//! Dense matrix products for the CPU backend, through the `gemm` crate (built with its
//! `x86-v4` feature so AVX-512 machines run its 512-bit kernels; it falls back at run time
//! on CPUs without them). Twin of `shaders/matmul.wgsl`.

use gemm::Parallelism;

/// A strided read-only matrix view: element (r, c) is `data[r*rs + c*cs]`.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> View<'a> {
        assert!(data.len() >= rows * cols, "matrix view out of bounds");
        View {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose, by swapping strides (no copy).
    pub fn t(self) -> View<'a> {
        View {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// `out = a · b` (or `out += a · b` when `accumulate`), `out` row-major `a.rows x b.cols`.
/// Twin of `shaders/matmul.wgsl`.
pub fn matmul(out: &mut [f32], a: View, b: View, accumulate: bool) {
    matmul_with(out, a, b, accumulate, Parallelism::Rayon(0));
}

/// [`matmul`] on one thread, for callers that already split the work across threads
/// (the fused step in `cpu/fused.rs` runs one per row block).
pub fn matmul_seq(out: &mut [f32], a: View, b: View, accumulate: bool) {
    matmul_with(out, a, b, accumulate, Parallelism::None);
}

fn matmul_with(out: &mut [f32], a: View, b: View, accumulate: bool, par: Parallelism) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "matmul inner dimensions differ");
    assert_eq!(out.len(), m * n, "matmul output has the wrong size");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out.fill(0.0);
        }
        return;
    }
    for v in [&a, &b] {
        let last = (v.rows - 1) * v.rs + (v.cols - 1) * v.cs;
        assert!(last < v.data.len(), "matmul operand view out of bounds");
    }
    // SAFETY: every index the views can produce was bounds-checked just above, `out` holds
    // exactly m*n elements and does not alias the inputs (it is a unique borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}
