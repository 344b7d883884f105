// matmul.wgsl: the five matrix products of the MLP (CPU twin: cpu::matmul / cpu::linear).
//
//   Z1 = X W1^T + b1    X [n, inputs] u8 pixels, W1 [hidden, inputs]
//   Z2 = H W2^T + b2    H [n, hidden],  W2 [classes, hidden]
//   dW2 = dZ2^T H       dZ2 [n, classes]
//   dH = dZ2 W2
//   dW1 = dZ1^T X       dZ1 [n, hidden]
//
// Transposes are done by indexing (strides), never by copying. Pixels are u8 packed four
// per u32 (little-endian: the lowest byte is the first pixel) and normalized here exactly
// like data::normalize: (p / 255 - 0.5) / 0.5, each operation rounded in f32.
//
// Strategies, chosen per adapter by timing (see src/gpu/tune.rs); a third, `texture`, is
// the register one with Z1 and dW1 taken from matmul_sg.wgsl:
//  * `mm_tiled`: classic workgroup-memory tiling (64x64 tile per workgroup, 4x4 per
//    invocation, k-tile 16) with generic strides: what real GPUs like.
//  * register blocking, for CPU-like SIMD adapters (lavapipe) where per-lane loads are
//    scalar gathers and workgroup memory is slow: `fwd_x_reg` (Z1, and H = relu(Z1) fused)
//    and `dw1_reg` (dW1) compute 16x16 outputs per invocation with mat4x4 FMA chains and
//    read one operand at a workgroup-uniform address; `z2_reg`, `dh_reg` (dH, with the ReLU
//    mask fused: it also writes dZ1 = dH * (Z1 > 0)) and `dw2_reg` do the three small
//    products the same way; `mm_reg` (4x4 per invocation, generic strides) is their
//    fallback for shapes those do not cover.
//
// Generic layout (mm_tiled, mm_reg): C[c_off + z*c_split + m*c_rs + n] = sum_k A(m,k) B(k,n)
// (+ bias[bias_off + n]) over the k range of split z, where A(m,k) is element
// a_off + m*a_rs + k*a_cs of binding `a` (an f32 stored as its bits, or a u8 pixel when
// a_u8 = 1, in which case offsets and strides count bytes), and likewise B.

struct Mm {
    m: u32, n: u32, k: u32, k_split: u32,
    a_off: u32, a_rs: u32, a_cs: u32, a_u8: u32,
    b_off: u32, b_rs: u32, b_cs: u32, b_u8: u32,
    c_off: u32, c_rs: u32, c_split: u32, bias: u32,
    bias_off: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<storage, read> a: array<u32>;
@group(0) @binding(1) var<storage, read> b: array<u32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<uniform> p: Mm;

fn norm1(px: u32) -> f32 {
    return (f32(px) / 255.0 - 0.5) / 0.5;
}

fn norm4(w: u32) -> vec4<f32> {
    return (vec4<f32>(unpack4xU8(w)) / 255.0 - 0.5) / 0.5;
}

fn load_a(m: u32, k: u32) -> f32 {
    let i = p.a_off + m * p.a_rs + k * p.a_cs;
    if (p.a_u8 != 0u) {
        return norm1((a[i >> 2u] >> ((i & 3u) * 8u)) & 255u);
    }
    return bitcast<f32>(a[i]);
}

fn load_b(k: u32, n: u32) -> f32 {
    let i = p.b_off + k * p.b_rs + n * p.b_cs;
    if (p.b_u8 != 0u) {
        return norm1((b[i >> 2u] >> ((i & 3u) * 8u)) & 255u);
    }
    return bitcast<f32>(b[i]);
}

fn store_c(z: u32, m: u32, n: u32, v: f32) {
    if (m < p.m && n < p.n) {
        var out = v;
        if (p.bias != 0u) {
            out += bias[p.bias_off + n];
        }
        c[p.c_off + z * p.c_split + m * p.c_rs + n] = out;
    }
}

// ---------------------------------------------------------------- workgroup tiling
const TILE: u32 = 64u;
const KT: u32 = 16u;
var<workgroup> ta: array<array<f32, 64>, 16>;
var<workgroup> tb: array<array<f32, 64>, 16>;

@compute @workgroup_size(16, 16)
fn mm_tiled(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let m0 = wid.x * TILE;
    let n0 = wid.y * TILE;
    let z = wid.z;
    let k_begin = z * p.k_split;
    let k_end = min(p.k, k_begin + p.k_split);
    let t = lid.y * 16u + lid.x;
    var acc: array<array<f32, 4>, 4>;
    for (var k0 = k_begin; k0 < k_end; k0 += KT) {
        // 1024 elements of each tile, four per invocation; zeros outside the matrices.
        for (var e = 0u; e < 4u; e++) {
            let idx = t + e * 256u;
            let kk = idx / TILE;
            let mm = idx % TILE;
            var va = 0.0;
            var vb = 0.0;
            if (k0 + kk < k_end && m0 + mm < p.m) {
                va = load_a(m0 + mm, k0 + kk);
            }
            if (k0 + kk < k_end && n0 + mm < p.n) {
                vb = load_b(k0 + kk, n0 + mm);
            }
            ta[kk][mm] = va;
            tb[kk][mm] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                av[i] = ta[kk][lid.x * 4u + i];
                bv[i] = tb[kk][lid.y * 4u + i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] = fma(av[i], bv[j], acc[i][j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            store_c(z, m0 + lid.x * 4u + i, n0 + lid.y * 4u + j, acc[i][j]);
        }
    }
}

// ---------------------------------------------------------------- small register blocks
// 4x4 outputs per invocation; invocations of a workgroup share the n block (workgroup_id.y)
// so the B loads are at uniform addresses. Grid: x = m blocks (64 per group), y = n blocks,
// z = k splits.
@compute @workgroup_size(64)
fn mm_reg(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let m0 = gid.x * 4u;
    if (m0 >= p.m) {
        return;
    }
    let n0 = wid.y * 4u;
    let z = wid.z;
    let k_begin = z * p.k_split;
    let k_end = min(p.k, k_begin + p.k_split);
    let ml = p.m - 1u;
    let nl = p.n - 1u;
    var acc = mat4x4<f32>();
    for (var k = k_begin; k < k_end; k++) {
        // Clamped indices keep loads in bounds; the extra outputs are never stored.
        let av = vec4<f32>(load_a(min(m0, ml), k), load_a(min(m0 + 1u, ml), k),
                           load_a(min(m0 + 2u, ml), k), load_a(min(m0 + 3u, ml), k));
        let bv = vec4<f32>(load_b(k, min(n0, nl)), load_b(k, min(n0 + 1u, nl)),
                           load_b(k, min(n0 + 2u, nl)), load_b(k, min(n0 + 3u, nl)));
        acc += mat4x4<f32>(av * bv.x, av * bv.y, av * bv.z, av * bv.w);
    }
    for (var j = 0u; j < 4u; j++) {
        for (var i = 0u; i < 4u; i++) {
            store_c(z, m0 + i, n0 + j, acc[j][i]);
        }
    }
}

// ---------------------------------------------------------------- big register blocks
// Shared parameters of fwd_x_reg and dw1_reg (all counts in elements unless named *4/*w).
struct Big {
    rows: u32,      // samples in this image chunk
    hidden: u32,    // multiple of 4
    inputs: u32,    // multiple of 4
    xw: u32,        // u32 words per image row = inputs / 4
    w_off: u32,     // offset of W1 in the params buffer (multiple of 4)
    b_off: u32,     // offset of b1
    out_off: u32,   // fwd: first output element (chunk row0 * hidden); dw1: offset of dW1
    dz_row0: u32,   // dw1: first dZ1 row of this chunk
}

@group(0) @binding(5) var<storage, read> xs: array<u32>;
@group(0) @binding(6) var<storage, read> pv: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> pf: array<f32>;
@group(0) @binding(8) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> hout4: array<vec4<f32>>;
@group(0) @binding(10) var<uniform> q: Big;

// Writes the 4x4 block `blk` (blk[j][i] = output (row r + i, column j0 + j)) of Z1 and
// relu(Z1), rows as vec4 along the hidden dimension.
fn fwd_store(r: u32, j0: u32, blk: mat4x4<f32>) {
    if (j0 >= q.hidden) {
        return;
    }
    let t = transpose(blk);
    let bias4 = vec4<f32>(pf[q.b_off + j0], pf[q.b_off + j0 + 1u], pf[q.b_off + j0 + 2u],
                          pf[q.b_off + j0 + 3u]);
    for (var i = 0u; i < 4u; i++) {
        if (r + i < q.rows) {
            let z = t[i] + bias4;
            let at = (q.out_off + (r + i) * q.hidden + j0) / 4u;
            out4[at] = z;
            // relu exactly as cpu::relu: z if z > 0 else +0.
            hout4[at] = select(vec4<f32>(0.0), z, z > vec4<f32>(0.0));
        }
    }
}

// Z1 = X W1^T + b1 and H = relu(Z1) for 16 samples x 16 hidden units per invocation.
// Grid: x = sample blocks of 16 (32 per group), y = hidden blocks of 16 (uniform W1 reads).
@compute @workgroup_size(32)
fn fwd_x_reg(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let r0 = gid.x * 16u;
    if (r0 >= q.rows) {
        return;
    }
    let j0 = wid.y * 16u;
    let rl = q.rows - 1u;
    let jl = q.hidden - 1u;
    let kw = q.xw;
    // Word index of each of the 16 image rows (clamped: extra rows are never stored).
    let x0 = min(r0, rl) * kw;        let x1 = min(r0 + 1u, rl) * kw;
    let x2 = min(r0 + 2u, rl) * kw;   let x3 = min(r0 + 3u, rl) * kw;
    let x4 = min(r0 + 4u, rl) * kw;   let x5 = min(r0 + 5u, rl) * kw;
    let x6 = min(r0 + 6u, rl) * kw;   let x7 = min(r0 + 7u, rl) * kw;
    let x8 = min(r0 + 8u, rl) * kw;   let x9 = min(r0 + 9u, rl) * kw;
    let x10 = min(r0 + 10u, rl) * kw; let x11 = min(r0 + 11u, rl) * kw;
    let x12 = min(r0 + 12u, rl) * kw; let x13 = min(r0 + 13u, rl) * kw;
    let x14 = min(r0 + 14u, rl) * kw; let x15 = min(r0 + 15u, rl) * kw;
    // vec4 index of each of the 16 W1 rows.
    let wb = q.w_off / 4u;
    let w0 = wb + min(j0, jl) * kw;        let w1 = wb + min(j0 + 1u, jl) * kw;
    let w2 = wb + min(j0 + 2u, jl) * kw;   let w3 = wb + min(j0 + 3u, jl) * kw;
    let w4 = wb + min(j0 + 4u, jl) * kw;   let w5 = wb + min(j0 + 5u, jl) * kw;
    let w6 = wb + min(j0 + 6u, jl) * kw;   let w7 = wb + min(j0 + 7u, jl) * kw;
    let w8 = wb + min(j0 + 8u, jl) * kw;   let w9 = wb + min(j0 + 9u, jl) * kw;
    let w10 = wb + min(j0 + 10u, jl) * kw; let w11 = wb + min(j0 + 11u, jl) * kw;
    let w12 = wb + min(j0 + 12u, jl) * kw; let w13 = wb + min(j0 + 13u, jl) * kw;
    let w14 = wb + min(j0 + 14u, jl) * kw; let w15 = wb + min(j0 + 15u, jl) * kw;
    var c00 = mat4x4<f32>(); var c01 = mat4x4<f32>(); var c02 = mat4x4<f32>(); var c03 = mat4x4<f32>();
    var c10 = mat4x4<f32>(); var c11 = mat4x4<f32>(); var c12 = mat4x4<f32>(); var c13 = mat4x4<f32>();
    var c20 = mat4x4<f32>(); var c21 = mat4x4<f32>(); var c22 = mat4x4<f32>(); var c23 = mat4x4<f32>();
    var c30 = mat4x4<f32>(); var c31 = mat4x4<f32>(); var c32 = mat4x4<f32>(); var c33 = mat4x4<f32>();
    for (var k = 0u; k < kw; k++) {
        // a_i: transposed so that (a_i * b_j)[col][row] = dot(x_row, w_col) over 4 pixels.
        let a0 = transpose(mat4x4<f32>(norm4(xs[x0 + k]), norm4(xs[x1 + k]), norm4(xs[x2 + k]), norm4(xs[x3 + k])));
        let a1 = transpose(mat4x4<f32>(norm4(xs[x4 + k]), norm4(xs[x5 + k]), norm4(xs[x6 + k]), norm4(xs[x7 + k])));
        let a2 = transpose(mat4x4<f32>(norm4(xs[x8 + k]), norm4(xs[x9 + k]), norm4(xs[x10 + k]), norm4(xs[x11 + k])));
        let a3 = transpose(mat4x4<f32>(norm4(xs[x12 + k]), norm4(xs[x13 + k]), norm4(xs[x14 + k]), norm4(xs[x15 + k])));
        let b0 = mat4x4<f32>(pv[w0 + k], pv[w1 + k], pv[w2 + k], pv[w3 + k]);
        let b1 = mat4x4<f32>(pv[w4 + k], pv[w5 + k], pv[w6 + k], pv[w7 + k]);
        let b2 = mat4x4<f32>(pv[w8 + k], pv[w9 + k], pv[w10 + k], pv[w11 + k]);
        let b3 = mat4x4<f32>(pv[w12 + k], pv[w13 + k], pv[w14 + k], pv[w15 + k]);
        c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
        c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
        c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
        c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
    }
    fwd_store(r0, j0, c00); fwd_store(r0, j0 + 4u, c01); fwd_store(r0, j0 + 8u, c02); fwd_store(r0, j0 + 12u, c03);
    fwd_store(r0 + 4u, j0, c10); fwd_store(r0 + 4u, j0 + 4u, c11); fwd_store(r0 + 4u, j0 + 8u, c12); fwd_store(r0 + 4u, j0 + 12u, c13);
    fwd_store(r0 + 8u, j0, c20); fwd_store(r0 + 8u, j0 + 4u, c21); fwd_store(r0 + 8u, j0 + 8u, c22); fwd_store(r0 + 8u, j0 + 12u, c23);
    fwd_store(r0 + 12u, j0, c30); fwd_store(r0 + 12u, j0 + 4u, c31); fwd_store(r0 + 12u, j0 + 8u, c32); fwd_store(r0 + 12u, j0 + 12u, c33);
}

// Writes the 4x4 block `blk` (blk[j][i] = dW1[m + i][n0 + j]) as rows of vec4 along inputs.
fn dw1_store(m: u32, n0: u32, blk: mat4x4<f32>) {
    if (n0 >= q.inputs) {
        return;
    }
    let t = transpose(blk);
    for (var i = 0u; i < 4u; i++) {
        if (m + i < q.hidden) {
            out4[(q.out_off + (m + i) * q.inputs + n0) / 4u] = t[i];
        }
    }
}

// dZ1 rows k..k+3 at hidden units m..m+3 as the columns of a mat4x4; zero past the chunk.
fn dz_cols(k: u32, m: u32) -> mat4x4<f32> {
    let base = (q.dz_row0 + k) * q.hidden + m;
    var r = mat4x4<f32>();
    for (var t = 0u; t < 4u; t++) {
        if (k + t < q.rows) {
            r[t] = pv[(base + t * q.hidden) / 4u];
        }
    }
    return r;
}

// dW1 = dZ1^T X over the samples of one image chunk: 16 hidden units x 16 pixels per
// invocation. Grid: x = pixel blocks of 16 (8 per group), y = hidden blocks of 16 (uniform
// dZ1 reads). dZ1 is bound as `pv`.
@compute @workgroup_size(8)
fn dw1_reg(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let n0 = gid.x * 16u;
    if (n0 >= q.inputs) {
        return;
    }
    let m0 = wid.y * 16u;
    let kw = q.xw;
    let wl = kw - 1u;
    // Word column of each group of 4 pixels (clamped: extra pixels are never stored).
    let p0 = min(n0 / 4u, wl);
    let p1 = min(n0 / 4u + 1u, wl);
    let p2 = min(n0 / 4u + 2u, wl);
    let p3 = min(n0 / 4u + 3u, wl);
    let hl = q.hidden - 4u;
    let m_0 = min(m0, hl);
    let m_1 = min(m0 + 4u, hl);
    let m_2 = min(m0 + 8u, hl);
    let m_3 = min(m0 + 12u, hl);
    let rl = q.rows - 1u;
    var c00 = mat4x4<f32>(); var c01 = mat4x4<f32>(); var c02 = mat4x4<f32>(); var c03 = mat4x4<f32>();
    var c10 = mat4x4<f32>(); var c11 = mat4x4<f32>(); var c12 = mat4x4<f32>(); var c13 = mat4x4<f32>();
    var c20 = mat4x4<f32>(); var c21 = mat4x4<f32>(); var c22 = mat4x4<f32>(); var c23 = mat4x4<f32>();
    var c30 = mat4x4<f32>(); var c31 = mat4x4<f32>(); var c32 = mat4x4<f32>(); var c33 = mat4x4<f32>();
    for (var k = 0u; k < q.rows; k += 4u) {
        let a0 = dz_cols(k, m_0);
        let a1 = dz_cols(k, m_1);
        let a2 = dz_cols(k, m_2);
        let a3 = dz_cols(k, m_3);
        // Sample rows k..k+3 (clamped; their dZ1 columns are zero past the chunk).
        let s0 = min(k, rl) * kw;
        let s1 = min(k + 1u, rl) * kw;
        let s2 = min(k + 2u, rl) * kw;
        let s3 = min(k + 3u, rl) * kw;
        // b_j columns: pixels n0+4j..+3 of the four samples.
        let b0 = transpose(mat4x4<f32>(norm4(xs[s0 + p0]), norm4(xs[s1 + p0]), norm4(xs[s2 + p0]), norm4(xs[s3 + p0])));
        let b1 = transpose(mat4x4<f32>(norm4(xs[s0 + p1]), norm4(xs[s1 + p1]), norm4(xs[s2 + p1]), norm4(xs[s3 + p1])));
        let b2 = transpose(mat4x4<f32>(norm4(xs[s0 + p2]), norm4(xs[s1 + p2]), norm4(xs[s2 + p2]), norm4(xs[s3 + p2])));
        let b3 = transpose(mat4x4<f32>(norm4(xs[s0 + p3]), norm4(xs[s1 + p3]), norm4(xs[s2 + p3]), norm4(xs[s3 + p3])));
        // (a * b)[j][i] = sum_t dZ1[k+t][m+i] * X[k+t][n+j]
        c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
        c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
        c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
        c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
    }
    // Blocks whose hidden rows were clamped (hidden not a multiple of 16) are skipped by
    // the m + i < hidden test only if m is the true start, so store from the true start.
    if (m0 < q.hidden && m_0 == m0) { dw1_store(m0, n0, c00); dw1_store(m0, n0 + 4u, c01); dw1_store(m0, n0 + 8u, c02); dw1_store(m0, n0 + 12u, c03); }
    if (m0 + 4u < q.hidden && m_1 == m0 + 4u) { dw1_store(m0 + 4u, n0, c10); dw1_store(m0 + 4u, n0 + 4u, c11); dw1_store(m0 + 4u, n0 + 8u, c12); dw1_store(m0 + 4u, n0 + 12u, c13); }
    if (m0 + 8u < q.hidden && m_2 == m0 + 8u) { dw1_store(m0 + 8u, n0, c20); dw1_store(m0 + 8u, n0 + 4u, c21); dw1_store(m0 + 8u, n0 + 8u, c22); dw1_store(m0 + 8u, n0 + 12u, c23); }
    if (m0 + 12u < q.hidden && m_3 == m0 + 12u) { dw1_store(m0 + 12u, n0, c30); dw1_store(m0 + 12u, n0 + 4u, c31); dw1_store(m0 + 12u, n0 + 8u, c32); dw1_store(m0 + 12u, n0 + 12u, c33); }
}

// ---------------------------------------------------------------- small products, registers
struct Small {
    n: u32,         // samples
    hidden: u32,    // multiple of 4
    classes: u32,   // at most 12 for z2_reg / dw2_reg
    k_split: u32,   // dw2_reg: samples per split
    w_off: u32,     // offset of W2 in the params buffer (multiple of 4)
    b_off: u32,     // offset of b2
    out_off: u32,   // dw2_reg: offset of the output (W2 gradient or a split slot)
    c_split: u32,   // dw2_reg: elements between split outputs
}

@group(0) @binding(11) var<storage, read> sa: array<f32>;
@group(0) @binding(12) var<storage, read> sv: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read_write> outf: array<f32>;
@group(0) @binding(14) var<uniform> u: Small;

// Z2 = H W2^T + b2: 8 samples x 12 classes per invocation; W2 (`pv`) at uniform addresses,
// H rows (`sv`) as vec4 along hidden. Grid: x = sample blocks of 8 (64 per group).
@compute @workgroup_size(64)
fn z2_reg(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r0 = gid.x * 8u;
    if (r0 >= u.n) {
        return;
    }
    let kw = u.hidden / 4u;
    let rl = u.n - 1u;
    let cl = u.classes - 1u;
    var h: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        h[i] = min(r0 + i, rl) * kw;
    }
    var w: array<u32, 12>;
    for (var j = 0u; j < 12u; j++) {
        w[j] = u.w_off / 4u + min(j, cl) * kw;
    }
    var c00 = mat4x4<f32>(); var c01 = mat4x4<f32>(); var c02 = mat4x4<f32>();
    var c10 = mat4x4<f32>(); var c11 = mat4x4<f32>(); var c12 = mat4x4<f32>();
    for (var k = 0u; k < kw; k++) {
        let a0 = transpose(mat4x4<f32>(sv[h[0] + k], sv[h[1] + k], sv[h[2] + k], sv[h[3] + k]));
        let a1 = transpose(mat4x4<f32>(sv[h[4] + k], sv[h[5] + k], sv[h[6] + k], sv[h[7] + k]));
        let b0 = mat4x4<f32>(pv[w[0] + k], pv[w[1] + k], pv[w[2] + k], pv[w[3] + k]);
        let b1 = mat4x4<f32>(pv[w[4] + k], pv[w[5] + k], pv[w[6] + k], pv[w[7] + k]);
        let b2 = mat4x4<f32>(pv[w[8] + k], pv[w[9] + k], pv[w[10] + k], pv[w[11] + k]);
        c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2;
        c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2;
    }
    z2_store(r0, 0u, c00); z2_store(r0, 4u, c01); z2_store(r0, 8u, c02);
    z2_store(r0 + 4u, 0u, c10); z2_store(r0 + 4u, 4u, c11); z2_store(r0 + 4u, 8u, c12);
}

// blk[j][i] = Z2[r + i][j0 + j] before the bias.
fn z2_store(r: u32, j0: u32, blk: mat4x4<f32>) {
    for (var j = 0u; j < 4u; j++) {
        if (j0 + j < u.classes) {
            let b = pf[u.b_off + j0 + j];
            for (var i = 0u; i < 4u; i++) {
                if (r + i < u.n) {
                    outf[(r + i) * u.classes + j0 + j] = blk[j][i] + b;
                }
            }
        }
    }
}

// dH = dZ2 W2 and dZ1 = dH * (Z1 > 0) (select on z <= 0, as cpu::relu_backward): 4 samples
// x 16 hidden units per invocation; dZ2 in `sa`, W2 rows in `pv` (uniform), Z1 in `sv`,
// dH to `out4`, dZ1 to `hout4`. Grid: x = sample blocks of 4 (64 per group), y = hidden
// blocks of 16.
@compute @workgroup_size(64)
fn dh_reg(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let r0 = gid.x * 4u;
    if (r0 >= u.n) {
        return;
    }
    let j0 = wid.y * 16u;
    let rl = u.n - 1u;
    let kw = u.hidden / 4u;
    // vec4 column of each 4-block of hidden units (clamped; extra blocks never stored).
    let q0 = min(j0 / 4u, kw - 1u);
    let q1 = min(j0 / 4u + 1u, kw - 1u);
    let q2 = min(j0 / 4u + 2u, kw - 1u);
    let q3 = min(j0 / 4u + 3u, kw - 1u);
    let s0 = min(r0, rl) * u.classes;
    let s1 = min(r0 + 1u, rl) * u.classes;
    let s2 = min(r0 + 2u, rl) * u.classes;
    let s3 = min(r0 + 3u, rl) * u.classes;
    var c0 = mat4x4<f32>(); var c1 = mat4x4<f32>(); var c2 = mat4x4<f32>(); var c3 = mat4x4<f32>();
    for (var k = 0u; k < u.classes; k++) {
        let a = vec4<f32>(sa[s0 + k], sa[s1 + k], sa[s2 + k], sa[s3 + k]);
        let wr = u.w_off / 4u + k * kw;
        let b0 = pv[wr + q0];
        let b1 = pv[wr + q1];
        let b2 = pv[wr + q2];
        let b3 = pv[wr + q3];
        c0 += mat4x4<f32>(a * b0.x, a * b0.y, a * b0.z, a * b0.w);
        c1 += mat4x4<f32>(a * b1.x, a * b1.y, a * b1.z, a * b1.w);
        c2 += mat4x4<f32>(a * b2.x, a * b2.y, a * b2.z, a * b2.w);
        c3 += mat4x4<f32>(a * b3.x, a * b3.y, a * b3.z, a * b3.w);
    }
    dh_store(r0, j0, c0);
    dh_store(r0, j0 + 4u, c1);
    dh_store(r0, j0 + 8u, c2);
    dh_store(r0, j0 + 12u, c3);
}

// blk[j][i] = dH[r + i][j0 + j].
fn dh_store(r: u32, j0: u32, blk: mat4x4<f32>) {
    if (j0 >= u.hidden) {
        return;
    }
    let t = transpose(blk);
    for (var i = 0u; i < 4u; i++) {
        if (r + i < u.n) {
            let at = ((r + i) * u.hidden + j0) / 4u;
            let d = t[i];
            out4[at] = d;
            hout4[at] = select(d, vec4<f32>(0.0), sv[at] <= vec4<f32>(0.0));
        }
    }
}

// dW2 = dZ2^T H over the samples of split wid.y: 12 classes x 4 hidden units per
// invocation; dZ2 (`sa`) at uniform addresses, H (`sv`) as vec4. Output slot wid.y at
// out_off + wid.y * c_split in `outf`. Grid: x = hidden blocks of 4 (32 per group),
// y = splits.
@compute @workgroup_size(32)
fn dw2_reg(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let q = gid.x;
    let kw = u.hidden / 4u;
    if (q >= kw) {
        return;
    }
    let k0 = wid.y * u.k_split;
    let k1 = min(u.n, k0 + u.k_split);
    let cl = u.classes - 1u;
    var c0 = mat4x4<f32>(); var c1 = mat4x4<f32>(); var c2 = mat4x4<f32>();
    for (var k = k0; k < k1; k++) {
        let hv = sv[k * kw + q];
        let d = k * u.classes;
        let a0 = vec4<f32>(sa[d], sa[d + min(1u, cl)], sa[d + min(2u, cl)], sa[d + min(3u, cl)]);
        let a1 = vec4<f32>(sa[d + min(4u, cl)], sa[d + min(5u, cl)], sa[d + min(6u, cl)], sa[d + min(7u, cl)]);
        let a2 = vec4<f32>(sa[d + min(8u, cl)], sa[d + min(9u, cl)], sa[d + min(10u, cl)], sa[d + min(11u, cl)]);
        c0 += mat4x4<f32>(a0 * hv.x, a0 * hv.y, a0 * hv.z, a0 * hv.w);
        c1 += mat4x4<f32>(a1 * hv.x, a1 * hv.y, a1 * hv.z, a1 * hv.w);
        c2 += mat4x4<f32>(a2 * hv.x, a2 * hv.y, a2 * hv.z, a2 * hv.w);
    }
    let base = u.out_off + wid.y * u.c_split;
    dw2_store(base, 0u, q * 4u, c0);
    dw2_store(base, 4u, q * 4u, c1);
    dw2_store(base, 8u, q * 4u, c2);
}

// blk[j][i] = dW2[c0 + i][h0 + j].
fn dw2_store(base: u32, c0: u32, h0: u32, blk: mat4x4<f32>) {
    for (var i = 0u; i < 4u; i++) {
        if (c0 + i < u.classes) {
            for (var j = 0u; j < 4u; j++) {
                outf[base + (c0 + i) * u.hidden + h0 + j] = blk[j][i];
            }
        }
    }
}
