// sparse_first.wgsl: probes (built with `--features probes` only) of the first layer's two
// products from the u8 pixels' nonzeros, timed against the dense strategies; they lose (see
// docs/performance.md). The one that won, block_z1, is in block_z1.wgsl. CPU twins:
// cpu::sparse::forward_rows (sparse_z1, sparse_z1_tex), cpu::sparse::grad_rows + finish_grad
// (block_dw1 or block_dw1_16, then block_dw1_final).
//
//   X = a U + b (a = 2/255, b = -1, U the u8 pixels), so
//   Z1 = X W1^T + b1 = a (U W1^T) + c,   c[j] = b1[j] + b sum_k W1[j][k]   (host-computed)
//
// Only the nonzero pixels are read: row n's are entries starts[n] .. starts[n + 1] of `nz`
// (in u32s), each (column << 8) | pixel, rows padded with zero entries (column 0, pixel 0:
// adds nothing) to whole vec4s. W1^T is [inputs, hidden] row-major (hidden a multiple of
// 16), as vec4s in the storage buffer `wt` (sparse_z1) or as the rgba32float texture `wtt`
// whose texel (c, k) = W1^T[k][4c .. 4c + 3] (sparse_z1_tex; on lavapipe a texel fetch is one
// 16-byte load per lane).
//
// Grid: x = blocks of 128 hidden units (8 invocations of 16 columns each: one subgroup of
// lavapipe's 8 lanes runs one image row, so the loop over its nonzeros is uniform), y =
// image rows (8 per workgroup). Output z [rows, hidden] row-major, as vec4s.

// struct SparseZ1: shaders/sparse_z1_params.wgsl, prepended by the host.

@group(0) @binding(0) var<uniform> q: SparseZ1;
@group(0) @binding(1) var<storage, read> starts: array<u32>;
@group(0) @binding(2) var<storage, read> nz: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> wt: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> c: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> z: array<vec4<f32>>;
@group(0) @binding(6) var wtt: texture_2d<f32>;

// One invocation's 16 sums of one row: a (U W1^T) + c, written to z.
fn store(n: u32, b: u32, acc: array<vec4<f32>, 4>) {
    let h4 = q.hidden / 4u;
    for (var t = 0u; t < 4u; t++) {
        z[n * h4 + b + t] = fma(vec4<f32>(q.scale), acc[t], c[b + t]);
    }
}

@compute @workgroup_size(8, 8)
fn sparse_z1(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = gid.y;
    let b = gid.x * 4u; // the lane's first vec4 of the row
    if (n >= q.rows || 4u * b >= q.hidden) {
        return;
    }
    let h4 = q.hidden / 4u;
    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    for (var e = starts[n] / 4u; e < starts[n + 1u] / 4u; e++) {
        let p = nz[e];
        for (var i = 0u; i < 4u; i++) {
            let v = vec4<f32>(f32(p[i] & 255u));
            let w = (p[i] >> 8u) * h4 + b;
            acc[0] = fma(v, wt[w], acc[0]);
            acc[1] = fma(v, wt[w + 1u], acc[1]);
            acc[2] = fma(v, wt[w + 2u], acc[2]);
            acc[3] = fma(v, wt[w + 3u], acc[3]);
        }
    }
    store(n, b, acc);
}

@compute @workgroup_size(8, 8)
fn sparse_z1_tex(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = gid.y;
    let b = gid.x * 4u;
    if (n >= q.rows || 4u * b >= q.hidden) {
        return;
    }
    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    for (var e = starts[n] / 4u; e < starts[n + 1u] / 4u; e++) {
        let p = nz[e];
        for (var i = 0u; i < 4u; i++) {
            let v = vec4<f32>(f32(p[i] & 255u));
            let k = i32(p[i] >> 8u);
            acc[0] = fma(v, textureLoad(wtt, vec2<i32>(i32(b), k), 0), acc[0]);
            acc[1] = fma(v, textureLoad(wtt, vec2<i32>(i32(b) + 1, k), 0), acc[1]);
            acc[2] = fma(v, textureLoad(wtt, vec2<i32>(i32(b) + 2, k), 0), acc[2]);
            acc[3] = fma(v, textureLoad(wtt, vec2<i32>(i32(b) + 3, k), 0), acc[3]);
        }
    }
    store(n, b, acc);
}

@group(0) @binding(7) var<storage, read> xs: array<u32>;

fn px(w: u32) -> vec4<f32> {
    return vec4<f32>(unpack4xU8(w));
}

// block_dw1 + block_dw1_final: dW1 = dZ1^T X = a (dZ1^T U) + b db1 (x) 1, skipping the
// 16-image blocks where a 4-pixel word is zero in all 16 images. `dz`: dZ1 [rows, hidden] as
// vec4s; `wl`: per (word w, part s), the blocks of part s (a fixed range of block ids) where
// word w is nonzero, from wl[starts[w * q.parts + s]] on; `part`: part s's sums
// sum_n dZ1[n][j] U[n][k] as [parts, inputs, hidden] vec4s. block_dw1_final adds the parts in
// order s = 0, 1, ... (deterministic) into dW1 [hidden, inputs] (`z`, as vec4s along the
// inputs) with db1 in `c` (b = -1 is written into the kernel).
// Grid (block_dw1): x = blocks of 128 hidden units (8 invocations of 16), y = words, z =
// parts. Grid (block_dw1_final): x = words (64 per group), y = hidden units.
@group(0) @binding(8) var<storage, read> dz: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read> wl: array<u32>;
@group(0) @binding(10) var<storage, read_write> part: array<vec4<f32>>;

@compute @workgroup_size(8)
fn block_dw1(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let j0 = gid.x * 16u;
    let w = wid.y;
    let s = wid.z;
    if (j0 >= q.hidden || w >= q.kw) {
        return;
    }
    let h4 = q.hidden / 4u;
    let jb = j0 / 4u;
    var a00 = vec4<f32>(); var a01 = vec4<f32>(); var a02 = vec4<f32>(); var a03 = vec4<f32>();
    var a10 = vec4<f32>(); var a11 = vec4<f32>(); var a12 = vec4<f32>(); var a13 = vec4<f32>();
    var a20 = vec4<f32>(); var a21 = vec4<f32>(); var a22 = vec4<f32>(); var a23 = vec4<f32>();
    var a30 = vec4<f32>(); var a31 = vec4<f32>(); var a32 = vec4<f32>(); var a33 = vec4<f32>();
    for (var e = starts[w * q.parts + s]; e < starts[w * q.parts + s + 1u]; e++) {
        let r0 = wl[e] * 16u;
        let rn = min(r0 + 16u, q.rows);
        for (var n = r0; n < rn; n++) {
            let x = px(xs[n * q.kw + w]);
            let d0 = dz[n * h4 + jb]; let d1 = dz[n * h4 + jb + 1u];
            let d2 = dz[n * h4 + jb + 2u]; let d3 = dz[n * h4 + jb + 3u];
            a00 = fma(d0, vec4<f32>(x.x), a00); a01 = fma(d0, vec4<f32>(x.y), a01);
            a02 = fma(d0, vec4<f32>(x.z), a02); a03 = fma(d0, vec4<f32>(x.w), a03);
            a10 = fma(d1, vec4<f32>(x.x), a10); a11 = fma(d1, vec4<f32>(x.y), a11);
            a12 = fma(d1, vec4<f32>(x.z), a12); a13 = fma(d1, vec4<f32>(x.w), a13);
            a20 = fma(d2, vec4<f32>(x.x), a20); a21 = fma(d2, vec4<f32>(x.y), a21);
            a22 = fma(d2, vec4<f32>(x.z), a22); a23 = fma(d2, vec4<f32>(x.w), a23);
            a30 = fma(d3, vec4<f32>(x.x), a30); a31 = fma(d3, vec4<f32>(x.y), a31);
            a32 = fma(d3, vec4<f32>(x.z), a32); a33 = fma(d3, vec4<f32>(x.w), a33);
        }
    }
    // part[s][4w + p][j0 .. j0 + 15]
    let at = (s * q.kw * 4u + 4u * w) * h4 + jb;
    part[at] = a00; part[at + 1u] = a10; part[at + 2u] = a20; part[at + 3u] = a30;
    part[at + h4] = a01; part[at + h4 + 1u] = a11; part[at + h4 + 2u] = a21; part[at + h4 + 3u] = a31;
    part[at + 2u * h4] = a02; part[at + 2u * h4 + 1u] = a12; part[at + 2u * h4 + 2u] = a22; part[at + 2u * h4 + 3u] = a32;
    part[at + 3u * h4] = a03; part[at + 3u * h4 + 1u] = a13; part[at + 3u * h4 + 2u] = a23; part[at + 3u * h4 + 3u] = a33;
}

@compute @workgroup_size(64)
fn block_dw1_final(@builtin(global_invocation_id) gid: vec3<u32>) {
    let w = gid.x;
    let j = gid.y;
    if (w >= q.kw || j >= q.hidden) {
        return;
    }
    let h4 = q.hidden / 4u;
    var sum = vec4<f32>(0.0);
    for (var s = 0u; s < q.parts; s++) {
        let base = (s * q.kw * 4u + 4u * w) * h4 + j / 4u;
        let lane = j % 4u;
        sum += vec4<f32>(part[base][lane], part[base + h4][lane], part[base + 2u * h4][lane],
                         part[base + 3u * h4][lane]);
    }
    let db = c[j / 4u][j % 4u];
    z[j * q.kw + w] = fma(vec4<f32>(q.scale), sum, vec4<f32>(-db));
}

// block_dw1_16: block_dw1 with 16 x 16 tiles (16 hidden units x 4 words = 16 pixels per
// invocation, 4 + 4 loads per 256 multiply-adds per image row), skipping the 16-image blocks
// where all 4 words are zero; `wl` then lists blocks per (group of 4 words g, part s) at
// starts[g * q.parts + s]. Needs q.kw a multiple of 4. Grid: x = blocks of 128 hidden units,
// y = word groups, z = parts. Same `part` layout, so block_dw1_final finishes it.
@compute @workgroup_size(8)
fn block_dw1_16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let j0 = gid.x * 16u;
    let g = wid.y;
    let s = wid.z;
    if (j0 >= q.hidden || 4u * g >= q.kw) {
        return;
    }
    let h4 = q.hidden / 4u;
    let jb = j0 / 4u;
    var a00 = mat4x4<f32>(); var a01 = mat4x4<f32>(); var a02 = mat4x4<f32>(); var a03 = mat4x4<f32>();
    var a10 = mat4x4<f32>(); var a11 = mat4x4<f32>(); var a12 = mat4x4<f32>(); var a13 = mat4x4<f32>();
    var a20 = mat4x4<f32>(); var a21 = mat4x4<f32>(); var a22 = mat4x4<f32>(); var a23 = mat4x4<f32>();
    var a30 = mat4x4<f32>(); var a31 = mat4x4<f32>(); var a32 = mat4x4<f32>(); var a33 = mat4x4<f32>();
    for (var e = starts[g * q.parts + s]; e < starts[g * q.parts + s + 1u]; e++) {
        let r0 = wl[e] * 16u;
        let rn = min(r0 + 16u, q.rows);
        for (var n = r0; n < rn; n++) {
            let xb = n * q.kw + 4u * g;
            let x0 = px(xs[xb]); let x1 = px(xs[xb + 1u]); let x2 = px(xs[xb + 2u]); let x3 = px(xs[xb + 3u]);
            let d0 = dz[n * h4 + jb]; let d1 = dz[n * h4 + jb + 1u];
            let d2 = dz[n * h4 + jb + 2u]; let d3 = dz[n * h4 + jb + 3u];
            a00[0] = fma(d0, vec4<f32>(x0.x), a00[0]); a00[1] = fma(d0, vec4<f32>(x0.y), a00[1]); a00[2] = fma(d0, vec4<f32>(x0.z), a00[2]); a00[3] = fma(d0, vec4<f32>(x0.w), a00[3]);
            a01[0] = fma(d0, vec4<f32>(x1.x), a01[0]); a01[1] = fma(d0, vec4<f32>(x1.y), a01[1]); a01[2] = fma(d0, vec4<f32>(x1.z), a01[2]); a01[3] = fma(d0, vec4<f32>(x1.w), a01[3]);
            a02[0] = fma(d0, vec4<f32>(x2.x), a02[0]); a02[1] = fma(d0, vec4<f32>(x2.y), a02[1]); a02[2] = fma(d0, vec4<f32>(x2.z), a02[2]); a02[3] = fma(d0, vec4<f32>(x2.w), a02[3]);
            a03[0] = fma(d0, vec4<f32>(x3.x), a03[0]); a03[1] = fma(d0, vec4<f32>(x3.y), a03[1]); a03[2] = fma(d0, vec4<f32>(x3.z), a03[2]); a03[3] = fma(d0, vec4<f32>(x3.w), a03[3]);
            a10[0] = fma(d1, vec4<f32>(x0.x), a10[0]); a10[1] = fma(d1, vec4<f32>(x0.y), a10[1]); a10[2] = fma(d1, vec4<f32>(x0.z), a10[2]); a10[3] = fma(d1, vec4<f32>(x0.w), a10[3]);
            a11[0] = fma(d1, vec4<f32>(x1.x), a11[0]); a11[1] = fma(d1, vec4<f32>(x1.y), a11[1]); a11[2] = fma(d1, vec4<f32>(x1.z), a11[2]); a11[3] = fma(d1, vec4<f32>(x1.w), a11[3]);
            a12[0] = fma(d1, vec4<f32>(x2.x), a12[0]); a12[1] = fma(d1, vec4<f32>(x2.y), a12[1]); a12[2] = fma(d1, vec4<f32>(x2.z), a12[2]); a12[3] = fma(d1, vec4<f32>(x2.w), a12[3]);
            a13[0] = fma(d1, vec4<f32>(x3.x), a13[0]); a13[1] = fma(d1, vec4<f32>(x3.y), a13[1]); a13[2] = fma(d1, vec4<f32>(x3.z), a13[2]); a13[3] = fma(d1, vec4<f32>(x3.w), a13[3]);
            a20[0] = fma(d2, vec4<f32>(x0.x), a20[0]); a20[1] = fma(d2, vec4<f32>(x0.y), a20[1]); a20[2] = fma(d2, vec4<f32>(x0.z), a20[2]); a20[3] = fma(d2, vec4<f32>(x0.w), a20[3]);
            a21[0] = fma(d2, vec4<f32>(x1.x), a21[0]); a21[1] = fma(d2, vec4<f32>(x1.y), a21[1]); a21[2] = fma(d2, vec4<f32>(x1.z), a21[2]); a21[3] = fma(d2, vec4<f32>(x1.w), a21[3]);
            a22[0] = fma(d2, vec4<f32>(x2.x), a22[0]); a22[1] = fma(d2, vec4<f32>(x2.y), a22[1]); a22[2] = fma(d2, vec4<f32>(x2.z), a22[2]); a22[3] = fma(d2, vec4<f32>(x2.w), a22[3]);
            a23[0] = fma(d2, vec4<f32>(x3.x), a23[0]); a23[1] = fma(d2, vec4<f32>(x3.y), a23[1]); a23[2] = fma(d2, vec4<f32>(x3.z), a23[2]); a23[3] = fma(d2, vec4<f32>(x3.w), a23[3]);
            a30[0] = fma(d3, vec4<f32>(x0.x), a30[0]); a30[1] = fma(d3, vec4<f32>(x0.y), a30[1]); a30[2] = fma(d3, vec4<f32>(x0.z), a30[2]); a30[3] = fma(d3, vec4<f32>(x0.w), a30[3]);
            a31[0] = fma(d3, vec4<f32>(x1.x), a31[0]); a31[1] = fma(d3, vec4<f32>(x1.y), a31[1]); a31[2] = fma(d3, vec4<f32>(x1.z), a31[2]); a31[3] = fma(d3, vec4<f32>(x1.w), a31[3]);
            a32[0] = fma(d3, vec4<f32>(x2.x), a32[0]); a32[1] = fma(d3, vec4<f32>(x2.y), a32[1]); a32[2] = fma(d3, vec4<f32>(x2.z), a32[2]); a32[3] = fma(d3, vec4<f32>(x2.w), a32[3]);
            a33[0] = fma(d3, vec4<f32>(x3.x), a33[0]); a33[1] = fma(d3, vec4<f32>(x3.y), a33[1]); a33[2] = fma(d3, vec4<f32>(x3.z), a33[2]); a33[3] = fma(d3, vec4<f32>(x3.w), a33[3]);
        }
    }
    // part[s][16g + 4p + c][j0 + 4qq ..] = a{qq}{p}[c]
    let at = (s * q.kw * 4u + 16u * g) * h4 + jb;
    part[at + 0u * h4 + 0u] = a00[0]; part[at + 0u * h4 + 1u] = a10[0]; part[at + 0u * h4 + 2u] = a20[0]; part[at + 0u * h4 + 3u] = a30[0];
    part[at + 1u * h4 + 0u] = a00[1]; part[at + 1u * h4 + 1u] = a10[1]; part[at + 1u * h4 + 2u] = a20[1]; part[at + 1u * h4 + 3u] = a30[1];
    part[at + 2u * h4 + 0u] = a00[2]; part[at + 2u * h4 + 1u] = a10[2]; part[at + 2u * h4 + 2u] = a20[2]; part[at + 2u * h4 + 3u] = a30[2];
    part[at + 3u * h4 + 0u] = a00[3]; part[at + 3u * h4 + 1u] = a10[3]; part[at + 3u * h4 + 2u] = a20[3]; part[at + 3u * h4 + 3u] = a30[3];
    part[at + 4u * h4 + 0u] = a01[0]; part[at + 4u * h4 + 1u] = a11[0]; part[at + 4u * h4 + 2u] = a21[0]; part[at + 4u * h4 + 3u] = a31[0];
    part[at + 5u * h4 + 0u] = a01[1]; part[at + 5u * h4 + 1u] = a11[1]; part[at + 5u * h4 + 2u] = a21[1]; part[at + 5u * h4 + 3u] = a31[1];
    part[at + 6u * h4 + 0u] = a01[2]; part[at + 6u * h4 + 1u] = a11[2]; part[at + 6u * h4 + 2u] = a21[2]; part[at + 6u * h4 + 3u] = a31[2];
    part[at + 7u * h4 + 0u] = a01[3]; part[at + 7u * h4 + 1u] = a11[3]; part[at + 7u * h4 + 2u] = a21[3]; part[at + 7u * h4 + 3u] = a31[3];
    part[at + 8u * h4 + 0u] = a02[0]; part[at + 8u * h4 + 1u] = a12[0]; part[at + 8u * h4 + 2u] = a22[0]; part[at + 8u * h4 + 3u] = a32[0];
    part[at + 9u * h4 + 0u] = a02[1]; part[at + 9u * h4 + 1u] = a12[1]; part[at + 9u * h4 + 2u] = a22[1]; part[at + 9u * h4 + 3u] = a32[1];
    part[at + 10u * h4 + 0u] = a02[2]; part[at + 10u * h4 + 1u] = a12[2]; part[at + 10u * h4 + 2u] = a22[2]; part[at + 10u * h4 + 3u] = a32[2];
    part[at + 11u * h4 + 0u] = a02[3]; part[at + 11u * h4 + 1u] = a12[3]; part[at + 11u * h4 + 2u] = a22[3]; part[at + 11u * h4 + 3u] = a32[3];
    part[at + 12u * h4 + 0u] = a03[0]; part[at + 12u * h4 + 1u] = a13[0]; part[at + 12u * h4 + 2u] = a23[0]; part[at + 12u * h4 + 3u] = a33[0];
    part[at + 13u * h4 + 0u] = a03[1]; part[at + 13u * h4 + 1u] = a13[1]; part[at + 13u * h4 + 2u] = a23[1]; part[at + 13u * h4 + 3u] = a33[1];
    part[at + 14u * h4 + 0u] = a03[2]; part[at + 14u * h4 + 1u] = a13[2]; part[at + 14u * h4 + 2u] = a23[2]; part[at + 14u * h4 + 3u] = a33[2];
    part[at + 15u * h4 + 0u] = a03[3]; part[at + 15u * h4 + 1u] = a13[3]; part[at + 15u * h4 + 2u] = a23[3]; part[at + 15u * h4 + 3u] = a33[3];
}
