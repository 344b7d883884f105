//! The AVX-512 kernels of [`super`]: columns in blocks of 128 (8 registers), then 16, then
//! one by one.

use std::arch::x86_64::*;

use super::{SparseImages, BLOCK, SCALE};

/// Walks the `h` output columns: `$block::<8>` on each 128 from `$j`, then `$block::<1>` on
/// each 16, then `$tail` on each column left. A macro, so each kernel's loop is the same
/// code as if written out in its `#[target_feature]` function.
macro_rules! lanes {
    ($h:expr, |$j:ident| $block:ident($($arg:expr),*), $tail:block) => {{
        let mut $j = 0;
        while $j + 128 <= $h {
            $block::<8>($($arg),*);
            $j += 128;
        }
        while $j + 16 <= $h {
            $block::<1>($($arg),*);
            $j += 16;
        }
        for $j in $j..$h $tail
    }};
}

/// See [`super::forward_rows`]. Safety: AVX-512F present, shapes checked, indices of `u`
/// below `u.cols`.
#[target_feature(enable = "avx512f")]
pub unsafe fn forward(
    u: &SparseImages,
    start: usize,
    count: usize,
    wt: &[f32],
    c: &[f32],
    z: &mut [f32],
) {
    let h = c.len();
    // Rows two at a time through the 128-wide blocks: twice the independent loads in
    // flight (the kernel waits on L2, not on arithmetic).
    let pairs = count / 2;
    for p in 0..pairs {
        let (i, n) = (2 * p, start + 2 * p);
        let a = (u.starts[n], u.starts[n + 1]);
        let b = (u.starts[n + 1], u.starts[n + 2]);
        let rows = [
            (&u.idx[a.0..a.1], &u.vals[a.0..a.1]),
            (&u.idx[b.0..b.1], &u.vals[b.0..b.1]),
        ];
        let mut j = 0;
        while j + 128 <= h {
            forward_pair(
                rows,
                wt.as_ptr().add(j),
                h,
                c.as_ptr().add(j),
                z.as_mut_ptr().add(i * h + j),
            );
            j += 128;
        }
        for (r, (cols, vals)) in rows.into_iter().enumerate() {
            forward_rest(cols, vals, wt, c, j, z.as_mut_ptr().add((i + r) * h));
        }
    }
    for (i, (cols, vals)) in u.rows_of(start + 2 * pairs, count - 2 * pairs).enumerate() {
        let i = i + 2 * pairs;
        let zrow = z.as_mut_ptr().add(i * h);
        let mut j = 0;
        while j + 128 <= h {
            forward_block::<8>(
                cols,
                vals,
                wt.as_ptr().add(j),
                h,
                c.as_ptr().add(j),
                zrow.add(j),
            );
            j += 128;
        }
        forward_rest(cols, vals, wt, c, j, zrow);
    }
}

/// Columns `j..` of one row: 16-wide blocks, then one by one.
#[inline(always)]
unsafe fn forward_rest(
    cols: &[u16],
    vals: &[f32],
    wt: &[f32],
    c: &[f32],
    mut j: usize,
    zrow: *mut f32,
) {
    let h = c.len();
    while j + 16 <= h {
        forward_block::<1>(
            cols,
            vals,
            wt.as_ptr().add(j),
            h,
            c.as_ptr().add(j),
            zrow.add(j),
        );
        j += 16;
    }
    for (j, &cj) in c.iter().enumerate().skip(j) {
        let mut acc = 0f32;
        for (&k, &v) in cols.iter().zip(vals) {
            acc += v * *wt.get_unchecked(k as usize * h + j);
        }
        *zrow.add(j) = SCALE * acc + cj;
    }
}

/// [`forward_block`] with V = 8 for two rows at once (`z` and `z + h`).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // t indexes two register arrays in step
unsafe fn forward_pair(
    rows: [(&[u16], &[f32]); 2],
    w: *const f32,
    h: usize,
    c: *const f32,
    z: *mut f32,
) {
    let mut acc = [[_mm512_setzero_ps(); 8]; 2];
    let [(ca, va), (cb, vb)] = rows;
    let both = ca.len().min(cb.len());
    for i in 0..both {
        let (ra, rb) = (w.add(ca[i] as usize * h), w.add(cb[i] as usize * h));
        let (xa, xb) = (_mm512_set1_ps(va[i]), _mm512_set1_ps(vb[i]));
        for t in 0..8 {
            acc[0][t] = _mm512_fmadd_ps(xa, _mm512_loadu_ps(ra.add(16 * t)), acc[0][t]);
            acc[1][t] = _mm512_fmadd_ps(xb, _mm512_loadu_ps(rb.add(16 * t)), acc[1][t]);
        }
    }
    for (r, (cols, vals)) in [(ca, va), (cb, vb)].into_iter().enumerate() {
        for (&k, &v) in cols[both..].iter().zip(&vals[both..]) {
            let row = w.add(k as usize * h);
            for t in 0..8 {
                let x = _mm512_loadu_ps(row.add(16 * t));
                acc[r][t] = _mm512_fmadd_ps(_mm512_set1_ps(v), x, acc[r][t]);
            }
        }
    }
    let scale = _mm512_set1_ps(SCALE);
    for (r, acc) in acc.iter().enumerate() {
        for (t, a) in acc.iter().enumerate() {
            let out = _mm512_fmadd_ps(scale, *a, _mm512_loadu_ps(c.add(16 * t)));
            _mm512_storeu_ps(z.add(r * h + 16 * t), out);
        }
    }
}

/// `z[0..16V] = a·Σ v·w[k·h ..][0..16V] + c[0..16V]` over one row's nonzeros.
#[inline(always)]
unsafe fn forward_block<const V: usize>(
    cols: &[u16],
    vals: &[f32],
    w: *const f32,
    h: usize,
    c: *const f32,
    z: *mut f32,
) {
    let mut acc = [_mm512_setzero_ps(); V];
    for (&k, &v) in cols.iter().zip(vals) {
        let vv = _mm512_set1_ps(v);
        let row = w.add(k as usize * h);
        for (t, a) in acc.iter_mut().enumerate() {
            *a = _mm512_fmadd_ps(vv, _mm512_loadu_ps(row.add(16 * t)), *a);
        }
    }
    let scale = _mm512_set1_ps(SCALE);
    for (t, a) in acc.iter().enumerate() {
        let r = _mm512_fmadd_ps(scale, *a, _mm512_loadu_ps(c.add(16 * t)));
        _mm512_storeu_ps(z.add(16 * t), r);
    }
}

/// See [`super::grad_rows`]. Safety: as for [`forward`].
#[target_feature(enable = "avx512f")]
pub unsafe fn grad(
    u: &SparseImages,
    start: usize,
    count: usize,
    dz: &[f32],
    h: usize,
    s: &mut [f32],
) {
    // Rows before the first block boundary by rows, then whole blocks by column.
    let end = start + count;
    let lead = (start.next_multiple_of(BLOCK) - start).min(count);
    grad_by_rows(u, start, lead, dz, h, s);
    for b0 in (start + lead..end).step_by(BLOCK) {
        let rows = (end - b0).min(BLOCK);
        grad_by_columns(u, b0 / BLOCK, rows, &dz[(b0 - start) * h..], h, s);
    }
}

/// [`grad`] for block `b`'s first `rows` rows, column by column: each column's 128
/// sums stay in registers over its nonzeros, which read rows of dZ1 (in cache).
#[target_feature(enable = "avx512f")]
unsafe fn grad_by_columns(
    u: &SparseImages,
    b: usize,
    rows: usize,
    dz: &[f32],
    h: usize,
    s: &mut [f32],
) {
    let (sp, d) = (s.as_mut_ptr(), dz.as_ptr());
    let starts = &u.bstarts[b * (u.cols + 1)..(b + 1) * (u.cols + 1)];
    for (k, w) in starts.windows(2).enumerate() {
        if w[0] == w[1] {
            continue;
        }
        // The block's rows increase within a column: keep those below `rows`.
        let r = &u.brow[w[0]..w[1]];
        let len = if rows < BLOCK {
            r.partition_point(|&x| (x as usize) < rows)
        } else {
            r.len()
        };
        let (r, v) = (&r[..len], &u.bval[w[0]..w[0] + len]);
        let out = sp.add(k * h);
        lanes!(h, |j| column_block(r, v, d.add(j), h, out.add(j)), {
            for (&n, &x) in r.iter().zip(v) {
                *out.add(j) += x * *d.add(n as usize * h + j);
            }
        });
    }
}

/// `s[0..16V] += Σ v·d[n·h ..][0..16V]` over one column's nonzeros (n, v).
#[inline(always)]
unsafe fn column_block<const V: usize>(
    rows: &[u8],
    vals: &[f32],
    d: *const f32,
    h: usize,
    s: *mut f32,
) {
    let mut acc = [_mm512_setzero_ps(); V];
    for (t, a) in acc.iter_mut().enumerate() {
        *a = _mm512_loadu_ps(s.add(16 * t));
    }
    for (&n, &v) in rows.iter().zip(vals) {
        let (vv, row) = (_mm512_set1_ps(v), d.add(n as usize * h));
        for (t, a) in acc.iter_mut().enumerate() {
            *a = _mm512_fmadd_ps(vv, _mm512_loadu_ps(row.add(16 * t)), *a);
        }
    }
    for (t, a) in acc.iter().enumerate() {
        _mm512_storeu_ps(s.add(16 * t), *a);
    }
}

/// [`grad`] row by row (rows not starting a block).
#[target_feature(enable = "avx512f")]
unsafe fn grad_by_rows(
    u: &SparseImages,
    start: usize,
    count: usize,
    dz: &[f32],
    h: usize,
    s: &mut [f32],
) {
    let sp = s.as_mut_ptr();
    for (i, (cols, vals)) in u.rows_of(start, count).enumerate() {
        let drow = dz.as_ptr().add(i * h);
        lanes!(h, |j| grad_block(cols, vals, drow.add(j), h, sp.add(j)), {
            for (&k, &v) in cols.iter().zip(vals) {
                *sp.add(k as usize * h + j) += v * *drow.add(j);
            }
        });
    }
}

/// `s[k·h ..][0..16V] += v·d[0..16V]` for each of one row's nonzeros (k, v).
#[inline(always)]
unsafe fn grad_block<const V: usize>(
    cols: &[u16],
    vals: &[f32],
    d: *const f32,
    h: usize,
    s: *mut f32,
) {
    let mut dv = [_mm512_setzero_ps(); V];
    for (t, x) in dv.iter_mut().enumerate() {
        *x = _mm512_loadu_ps(d.add(16 * t));
    }
    for (&k, &v) in cols.iter().zip(vals) {
        let vv = _mm512_set1_ps(v);
        let row = s.add(k as usize * h);
        for (t, x) in dv.iter().enumerate() {
            let p = row.add(16 * t);
            _mm512_storeu_ps(p, _mm512_fmadd_ps(vv, *x, _mm512_loadu_ps(p)));
        }
    }
}
