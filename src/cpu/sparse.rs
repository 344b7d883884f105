//! The first layer's products from the sparse u8 pixels: the `sparse` CPU matmul strategy.
//!
//! A normalized image is X = a·U + b with U the u8 pixels (0..=255), a = 2/255 and b = -1,
//! and most of U is zero (about 81% on MNIST). So, with W1 in [hidden, inputs]:
//!
//! * forward:  Z1 = X·W1ᵀ + b1 = a·(U·W1ᵀ) + c,  c[j] = b1[j] + b·Σ_k W1[j][k]
//! * backward: dW1 = dZ1ᵀ·X = a·(dZ1ᵀ·U) + b·db1 ⊗ 1,  db1 = Σ_n dZ1[n] (already computed)
//!
//! Only the nonzero pixels are touched: ~5x fewer multiply-adds than the dense products.
//! The results equal the dense ones up to f32 rounding (torch's normalization rounds each
//! pixel slightly differently from a·U + b, and the sums run in another order); the dense
//! path stays the exact reference and tests/flow/fused.rs bounds the difference.
//!
//! The kernels keep a tile of the output (128 floats: 8 AVX-512 registers) in registers and
//! run one multiply-add of a 128-float row per nonzero pixel: written with AVX-512
//! intrinsics, and as plain loops (compiled for AVX2 + FMA where the CPU has it) elsewhere;
//! picked at run time. The forward kernel sums rows of W1ᵀ (400 KB, in L2) into a row of
//! Z1, two image rows at once to keep more of those reads in flight. (Column blocks of W1ᵀ
//! small enough for L1 were tried: the per-nonzero overhead, paid once per block, cost more.)
//! The AVX-512 gradient kernel walks each block of [`BLOCK`] images by pixel column (a
//! second, column-sorted copy of the nonzeros made once): a column's 128 sums of dZ1ᵀ·U stay
//! in registers while it reads the block's dZ1 rows (64 KB, in cache), instead of a
//! read-modify-write of a 512-byte row of the sums per nonzero: 1.3x faster on the epoch.

use crate::data::normalize_table;

/// a in X = a·U + b.
pub const SCALE: f32 = 2.0 / 255.0;
/// b in X = a·U + b.
pub const OFFSET: f32 = -1.0;
/// Output columns handled per pass over a row's nonzeros (4 AVX-512 registers).
const TILE: usize = 64;

/// Calls `$wide` (a hand-written kernel of [`avx512`]) on AVX-512 CPUs, else
/// `$f::<FMA>(args)` compiled for AVX2 + FMA when the CPU has them (plain otherwise).
macro_rules! dispatch {
    ($wide:expr, $f:ident($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F (checked); the caller checked the shapes
                // ([`checked_rows`]) and every column index in `u` is below `u.cols` (by
                // construction).
                return unsafe { $wide };
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn narrow(
                    u: &SparseImages, start: usize, count: usize, a: &[f32], b: &[f32],
                    hidden: usize, out: &mut [f32],
                ) {
                    $f::<true>(u, start, count, a, b, hidden, out)
                }
                // SAFETY: the CPU supports the features `narrow` is compiled for (checked).
                return unsafe { narrow($($arg),*) };
            }
        }
        $f::<false>($($arg),*)
    }};
}

/// Images as compressed sparse rows of their nonzero u8 pixels.
#[derive(Clone, Debug, Default)]
pub struct SparseImages {
    pub rows: usize,
    pub cols: usize,
    /// Row n's nonzeros are `idx[starts[n]..starts[n + 1]]` (columns) and `vals[..]`.
    starts: Vec<usize>,
    idx: Vec<u16>,
    /// The pixel values, as f32 (exact) so the kernels broadcast them straight from memory.
    vals: Vec<f32>,
    /// The same nonzeros by column within each block of [`BLOCK`] rows (for the gradient):
    /// block b's column k is `brow[r]`, `bval[r]` for r in `bstarts[b·(cols+1) + k]..` up
    /// to the next column's start; `brow` is the row within the block, increasing.
    bstarts: Vec<usize>,
    brow: Vec<u8>,
    bval: Vec<f32>,
}

const _: () = assert!(BLOCK <= 256, "rows within a block are stored as u8");

/// Rows per column-sorted block: the fused pass's chunk (one block's dZ1 rows stay in cache
/// while the gradient kernel reads them by column).
pub const BLOCK: usize = 128;

impl SparseImages {
    /// From u8 pixels, `cols` per image. None when a column index would not fit in u16.
    pub fn from_pixels(pixels: &[u8], cols: usize) -> Option<SparseImages> {
        if cols == 0 || cols > u16::MAX as usize + 1 {
            return None;
        }
        let rows = pixels.len() / cols;
        let mut s = SparseImages {
            rows,
            cols,
            starts: Vec::with_capacity(rows + 1),
            ..SparseImages::default()
        };
        s.starts.push(0);
        for row in pixels.chunks_exact(cols) {
            for (k, &v) in row.iter().enumerate() {
                if v != 0 {
                    s.idx.push(k as u16);
                    s.vals.push(v as f32);
                }
            }
            s.starts.push(s.idx.len());
        }
        s.by_column_blocks();
        Some(s)
    }

    /// Fills `bstarts`/`brow`/`bval` from the rows (a counting sort per block).
    fn by_column_blocks(&mut self) {
        let cols = self.cols;
        let blocks = self.rows.div_ceil(BLOCK);
        self.bstarts = Vec::with_capacity(blocks * (cols + 1));
        self.brow = vec![0; self.idx.len()];
        self.bval = vec![0.0; self.idx.len()];
        let mut next = vec![0usize; cols];
        for b in 0..blocks {
            let rows = b * BLOCK..self.rows.min((b + 1) * BLOCK);
            let (e0, e1) = (self.starts[rows.start], self.starts[rows.end]);
            next.fill(0);
            for &k in &self.idx[e0..e1] {
                next[k as usize] += 1;
            }
            let mut at = e0;
            for n in next.iter_mut() {
                self.bstarts.push(at);
                at += std::mem::replace(n, at);
            }
            self.bstarts.push(at);
            for (r, n) in rows.enumerate() {
                for e in self.starts[n]..self.starts[n + 1] {
                    let slot = &mut next[self.idx[e] as usize];
                    self.brow[*slot] = r as u8;
                    self.bval[*slot] = self.vals[e];
                    *slot += 1;
                }
            }
        }
    }

    /// From images already normalized by [`crate::data::normalize`], recovering each pixel.
    /// None if some value is not a normalized pixel (then only the dense path applies).
    pub fn from_normalized(x: &[f32], cols: usize) -> Option<SparseImages> {
        let table = normalize_table();
        let mut pixels = Vec::with_capacity(x.len());
        for &v in x {
            // The table is increasing, so the nearest a·U + b names the candidate pixel.
            let p = ((v - OFFSET) / SCALE).round().clamp(0.0, 255.0) as usize;
            if table[p].to_bits() != v.to_bits() {
                return None;
            }
            pixels.push(p as u8);
        }
        SparseImages::from_pixels(&pixels, cols)
    }

    /// Fraction of nonzero pixels.
    pub fn density(&self) -> f64 {
        self.idx.len() as f64 / (self.rows * self.cols).max(1) as f64
    }

    /// Row `n`'s nonzeros: (columns, pixel values).
    pub fn row(&self, n: usize) -> (&[u16], &[f32]) {
        let r = self.starts[n]..self.starts[n + 1];
        (&self.idx[r.clone()], &self.vals[r])
    }

    /// The nonzeros of rows `start..start + count`, one (columns, values) pair per row.
    fn rows_of(&self, start: usize, count: usize) -> impl Iterator<Item = (&[u16], &[f32])> {
        (start..start + count).map(move |n| {
            let r = self.starts[n]..self.starts[n + 1];
            (&self.idx[r.clone()], &self.vals[r])
        })
    }
}

/// The first layer's constants for [`forward_rows`]: `wt` = W1ᵀ (inputs x hidden,
/// row-major) and `c[j] = b1[j] + b·Σ_k W1[j][k]` (summed in f64).
pub fn first_layer_consts(w: &[f32], b: &[f32], inputs: usize) -> (Vec<f32>, Vec<f32>) {
    let hidden = b.len();
    let mut wt = vec![0f32; inputs * hidden];
    for (j, row) in w.chunks_exact(inputs).enumerate() {
        for (k, &v) in row.iter().enumerate() {
            wt[k * hidden + j] = v;
        }
    }
    let c = w
        .chunks_exact(inputs)
        .zip(b)
        .map(|(row, &bj)| {
            let s: f64 = row.iter().map(|&v| v as f64).sum();
            (bj as f64 + OFFSET as f64 * s) as f32
        })
        .collect();
    (wt, c)
}

/// `z = a·(U·W1ᵀ) + c` for the `z.len() / c.len()` rows of `u` from `start`, with `wt`
/// and `c` from [`first_layer_consts`].
pub fn forward_rows(u: &SparseImages, start: usize, wt: &[f32], c: &[f32], z: &mut [f32]) {
    let h = c.len();
    let count = checked_rows(u, start, (z.len(), wt.len()), h, "sparse forward");
    dispatch!(
        avx512::forward(u, start, count, wt, c, z),
        forward_impl(u, start, count, wt, c, h, z)
    )
}

/// `s += dZ1ᵀ·U` laid out as `s[k][j]` (inputs x hidden), for the `dz.len() / hidden`
/// rows of `u` from `start`.
pub fn grad_rows(u: &SparseImages, start: usize, dz: &[f32], hidden: usize, s: &mut [f32]) {
    let count = checked_rows(u, start, (dz.len(), s.len()), hidden, "sparse grad");
    dispatch!(
        avx512::grad(u, start, count, dz, hidden, s),
        grad_impl(u, start, count, dz, &[], hidden, s)
    )
}

/// The rows that `per_row` values a row of the row-major operand (`rows`, its length)
/// cover from `start`. Panics (the caller's bug) unless they lie in `u` and the dense
/// operand (`dense`, its length) is `u.cols` x `per_row`.
fn checked_rows(
    u: &SparseImages,
    start: usize,
    (rows, dense): (usize, usize),
    per_row: usize,
    what: &str,
) -> usize {
    let count = rows / per_row.max(1);
    assert!(
        start + count <= u.rows && dense == u.cols * per_row,
        "{what}: bad shapes"
    );
    count
}

/// dW1 (hidden x inputs, PyTorch's layout) from `s` = dZ1ᵀ·U summed over all rows (inputs x
/// hidden) and db1: `dw[j][k] = a·s[k][j] + b·db1[j]`.
pub fn finish_grad(s: &[f32], db: &[f32], dw: &mut [f32]) {
    let hidden = db.len();
    let inputs = s.len() / hidden.max(1);
    for (j, row) in dw.chunks_exact_mut(inputs).enumerate() {
        for (k, d) in row.iter_mut().enumerate() {
            *d = SCALE * s[k * hidden + j] + OFFSET * db[j];
        }
    }
}

/// `acc + v·w`, fused where the instruction set has it.
#[inline(always)]
fn madd<const FMA: bool>(v: f32, w: f32, acc: f32) -> f32 {
    if FMA {
        v.mul_add(w, acc)
    } else {
        acc + v * w
    }
}

// The kernels share one signature so `dispatch!` can wrap either: (images, first row, row
// count, the dense operand, the per-column constants or dZ1, hidden width, output).

#[inline(always)]
fn forward_impl<const FMA: bool>(
    u: &SparseImages,
    start: usize,
    count: usize,
    wt: &[f32],
    c: &[f32],
    _hidden: usize,
    z: &mut [f32],
) {
    let h = c.len();
    for ((cols, vals), zrow) in u.rows_of(start, count).zip(z.chunks_exact_mut(h)) {
        let mut j0 = 0;
        while j0 + TILE <= h {
            let mut acc = [0f32; TILE];
            for (&k, &v) in cols.iter().zip(vals) {
                let w: &[f32; TILE] = wt[k as usize * h + j0..][..TILE].try_into().unwrap();
                for t in 0..TILE {
                    acc[t] = madd::<FMA>(v, w[t], acc[t]);
                }
            }
            for t in 0..TILE {
                zrow[j0 + t] = madd::<FMA>(SCALE, acc[t], c[j0 + t]);
            }
            j0 += TILE;
        }
        for j in j0..h {
            let mut acc = 0f32;
            for (&k, &v) in cols.iter().zip(vals) {
                acc = madd::<FMA>(v, wt[k as usize * h + j], acc);
            }
            zrow[j] = madd::<FMA>(SCALE, acc, c[j]);
        }
    }
}

#[inline(always)]
fn grad_impl<const FMA: bool>(
    u: &SparseImages,
    start: usize,
    count: usize,
    dz: &[f32],
    _unused: &[f32],
    hidden: usize,
    s: &mut [f32],
) {
    let h = hidden;
    for ((cols, vals), drow) in u.rows_of(start, count).zip(dz.chunks_exact(h)) {
        let mut j0 = 0;
        while j0 + TILE <= h {
            let d: &[f32; TILE] = drow[j0..j0 + TILE].try_into().unwrap();
            for (&k, &v) in cols.iter().zip(vals) {
                let out: &mut [f32; TILE] =
                    (&mut s[k as usize * h + j0..][..TILE]).try_into().unwrap();
                for t in 0..TILE {
                    out[t] = madd::<FMA>(v, d[t], out[t]);
                }
            }
            j0 += TILE;
        }
        for (&k, &v) in cols.iter().zip(vals) {
            for j in j0..h {
                let o = &mut s[k as usize * h + j];
                *o = madd::<FMA>(v, drow[j], *o);
            }
        }
    }
}

/// The AVX-512 kernels.
#[cfg(target_arch = "x86_64")]
mod avx512;
