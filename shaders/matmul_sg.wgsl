// matmul_sg.wgsl: the two big products of the `texture` matmul strategy, for adapters that
// run 8-lane subgroups on a CPU (lavapipe). CPU twin: cpu::matmul / cpu::linear.
//
//   Z1 = X W1^T + b1, H = relu(Z1)   X [n, inputs] u8 pixels, W1 [hidden, inputs]
//   dW1 = dZ1^T X                    dZ1 [n, hidden]
//
// Why: on lavapipe every lane of a subgroup is one lane of a CPU SIMD vector, and each load
// costs per lane (a per-lane gather), whether or not the address is uniform. So
//  * the images are an rgba32uint 2D array texture `xt`: texel (c, y) of layer l holds the
//    16 pixels 16c..16c+15 of image row l * layer_rows + y, four per u32, the lowest byte
//    first (rows padded with zero pixels to whole texels): one fetch per 16 pixels;
//  * W1 is copied each step (`pack_w1`) into an rgba32float texture `w1t`: texel (c, j) =
//    W1[j][4c..4c+3], zero past `inputs`, matching the pixel padding;
//  * the operand all lanes share (W1 rows in Z1, dZ1 rows in dW1) is fetched once per
//    subgroup, a different piece by each lane, and handed around with subgroupBroadcast;
//  * register blocks of 4 x 32 (Z1) and 32 x 16 (dW1) outputs per invocation, unrolled
//    (written out by a generator; mat4x4 products are the FMA chains).
// Every index is clamped to its matrix, so no access is out of bounds (the module is
// compiled without runtime bounds checks). Pixels are normalized exactly like
// data::normalize: (p / 255 - 0.5) / 0.5, each operation rounded in f32.
// The kernels assume subgroups of exactly 8 lanes (the host checks) and keep every lane
// alive up to the last broadcast (no early return).

struct Tex {
    rows: u32,       // samples (one texture holds the whole set)
    hidden: u32,     // multiple of 4
    inputs: u32,     // multiple of 4
    xw: u32,         // texels per image row = ceil(inputs / 16)
    w_off: u32,      // offset of W1 in the params buffer (multiple of 4)
    b_off: u32,      // offset of b1
    out_off: u32,    // dw1_sg: offset of dW1 in the gradient buffer (multiple of 4)
    layer_rows: u32, // image rows per texture layer
}

@group(0) @binding(6) var<storage, read> pv: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> pf: array<f32>;
@group(0) @binding(8) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> hout4: array<vec4<f32>>;
@group(0) @binding(15) var xt: texture_2d_array<u32>;
@group(0) @binding(16) var<uniform> qt: Tex;
@group(0) @binding(17) var w1t: texture_2d<f32>;
@group(0) @binding(18) var w1s: texture_storage_2d<rgba32float, write>;

fn norm4(w: u32) -> vec4<f32> {
    return (vec4<f32>(unpack4xU8(w)) / 255.0 - 0.5) / 0.5;
}

// w1t = W1 from the params buffer (`pv`), zero-padded to 4 * xw texels per row.
// Grid: x = texel columns (64 per group), y = hidden units.
@compute @workgroup_size(64)
fn pack_w1(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let j = gid.y;
    if (c >= 4u * qt.xw || j >= qt.hidden) {
        return;
    }
    var v = vec4<f32>(0.0);
    if (4u * c < qt.inputs) {
        v = pv[(qt.w_off + j * qt.inputs) / 4u + c];
    }
    textureStore(w1s, vec2<u32>(c, j), v);
}

// Writes the 4x4 block `blk` (blk[j][i] = Z1[r + i][j0 + j] before the bias) of Z1 and
// relu(Z1) (as cpu::relu: z if z > 0 else +0).
fn fwd_store(r: u32, j0: u32, blk: mat4x4<f32>) {
    if (j0 >= qt.hidden) {
        return;
    }
    let t = transpose(blk);
    let bias4 = vec4<f32>(pf[qt.b_off + j0], pf[qt.b_off + j0 + 1u], pf[qt.b_off + j0 + 2u],
                          pf[qt.b_off + j0 + 3u]);
    for (var i = 0u; i < 4u; i++) {
        if (r + i < qt.rows) {
            let z = t[i] + bias4;
            let at = ((r + i) * qt.hidden + j0) / 4u;
            out4[at] = z;
            hout4[at] = select(vec4<f32>(0.0), z, z > vec4<f32>(0.0));
        }
    }
}

// Writes the 4x4 block `blk` (blk[j][i] = dW1[m + i][n0 + j]) as rows of vec4 along inputs.
fn dw1_store(m: u32, n0: u32, blk: mat4x4<f32>) {
    if (n0 >= qt.inputs) {
        return;
    }
    let t = transpose(blk);
    for (var i = 0u; i < 4u; i++) {
        if (m + i < qt.hidden) {
            out4[(qt.out_off + (m + i) * qt.inputs + n0) / 4u] = t[i];
        }
    }
}

// Z1 = X W1^T + b1 and H = relu(Z1): 4 samples x 32 hidden units per invocation, 16
// pixels per step. All invocations of a subgroup (8 lanes) share the hidden block: lane t
// fetches W1 rows j0 + t + 8m and subgroupBroadcast hands them to the others, so each W1
// texel is fetched once per subgroup instead of once per lane. No early return (the
// broadcasts need every lane): rows past the set are clamped and not stored.
// Grid: x = sample blocks of 4 (32 per group), y = hidden blocks of 32.
@compute @workgroup_size(32)
fn fwd_x_sg(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(subgroup_invocation_id) sl: u32) {
    let r0 = gid.x * 4u;
    let j0 = wid.y * 32u;
    let rl = qt.rows - 1u;
    let lr = qt.layer_rows;
    let jl = qt.hidden - 1u;
    let s0 = min(r0 + 0u, rl); let y0 = s0 % lr; let l0 = s0 / lr;
    let s1 = min(r0 + 1u, rl); let y1 = s1 % lr; let l1 = s1 / lr;
    let s2 = min(r0 + 2u, rl); let y2 = s2 % lr; let l2 = s2 / lr;
    let s3 = min(r0 + 3u, rl); let y3 = s3 % lr; let l3 = s3 / lr;
    let h0 = min(j0 + sl + 0u, jl);
    let h1 = min(j0 + sl + 8u, jl);
    let h2 = min(j0 + sl + 16u, jl);
    let h3 = min(j0 + sl + 24u, jl);
    var c0_0 = mat4x4<f32>(); var c0_1 = mat4x4<f32>(); var c0_2 = mat4x4<f32>(); var c0_3 = mat4x4<f32>(); var c0_4 = mat4x4<f32>(); var c0_5 = mat4x4<f32>(); var c0_6 = mat4x4<f32>(); var c0_7 = mat4x4<f32>();
    for (var k = 0u; k < qt.xw; k++) {
        let x0 = textureLoad(xt, vec2<u32>(k, y0), l0, 0);
        let x1 = textureLoad(xt, vec2<u32>(k, y1), l1, 0);
        let x2 = textureLoad(xt, vec2<u32>(k, y2), l2, 0);
        let x3 = textureLoad(xt, vec2<u32>(k, y3), l3, 0);
        let k4 = k * 4u;
        {
            let w0 = textureLoad(w1t, vec2<u32>(k4 + 0u, h0), 0);
            let w1 = textureLoad(w1t, vec2<u32>(k4 + 0u, h1), 0);
            let w2 = textureLoad(w1t, vec2<u32>(k4 + 0u, h2), 0);
            let w3 = textureLoad(w1t, vec2<u32>(k4 + 0u, h3), 0);
            let a0 = transpose(mat4x4<f32>(norm4(x0.x), norm4(x1.x), norm4(x2.x), norm4(x3.x)));
            let b0 = mat4x4<f32>(subgroupBroadcast(w0, 0u), subgroupBroadcast(w0, 1u), subgroupBroadcast(w0, 2u), subgroupBroadcast(w0, 3u));
            let b1 = mat4x4<f32>(subgroupBroadcast(w0, 4u), subgroupBroadcast(w0, 5u), subgroupBroadcast(w0, 6u), subgroupBroadcast(w0, 7u));
            let b2 = mat4x4<f32>(subgroupBroadcast(w1, 0u), subgroupBroadcast(w1, 1u), subgroupBroadcast(w1, 2u), subgroupBroadcast(w1, 3u));
            let b3 = mat4x4<f32>(subgroupBroadcast(w1, 4u), subgroupBroadcast(w1, 5u), subgroupBroadcast(w1, 6u), subgroupBroadcast(w1, 7u));
            let b4 = mat4x4<f32>(subgroupBroadcast(w2, 0u), subgroupBroadcast(w2, 1u), subgroupBroadcast(w2, 2u), subgroupBroadcast(w2, 3u));
            let b5 = mat4x4<f32>(subgroupBroadcast(w2, 4u), subgroupBroadcast(w2, 5u), subgroupBroadcast(w2, 6u), subgroupBroadcast(w2, 7u));
            let b6 = mat4x4<f32>(subgroupBroadcast(w3, 0u), subgroupBroadcast(w3, 1u), subgroupBroadcast(w3, 2u), subgroupBroadcast(w3, 3u));
            let b7 = mat4x4<f32>(subgroupBroadcast(w3, 4u), subgroupBroadcast(w3, 5u), subgroupBroadcast(w3, 6u), subgroupBroadcast(w3, 7u));
            c0_0 += a0 * b0; c0_1 += a0 * b1; c0_2 += a0 * b2; c0_3 += a0 * b3; c0_4 += a0 * b4; c0_5 += a0 * b5; c0_6 += a0 * b6; c0_7 += a0 * b7;
        }
        {
            let w0 = textureLoad(w1t, vec2<u32>(k4 + 1u, h0), 0);
            let w1 = textureLoad(w1t, vec2<u32>(k4 + 1u, h1), 0);
            let w2 = textureLoad(w1t, vec2<u32>(k4 + 1u, h2), 0);
            let w3 = textureLoad(w1t, vec2<u32>(k4 + 1u, h3), 0);
            let a0 = transpose(mat4x4<f32>(norm4(x0.y), norm4(x1.y), norm4(x2.y), norm4(x3.y)));
            let b0 = mat4x4<f32>(subgroupBroadcast(w0, 0u), subgroupBroadcast(w0, 1u), subgroupBroadcast(w0, 2u), subgroupBroadcast(w0, 3u));
            let b1 = mat4x4<f32>(subgroupBroadcast(w0, 4u), subgroupBroadcast(w0, 5u), subgroupBroadcast(w0, 6u), subgroupBroadcast(w0, 7u));
            let b2 = mat4x4<f32>(subgroupBroadcast(w1, 0u), subgroupBroadcast(w1, 1u), subgroupBroadcast(w1, 2u), subgroupBroadcast(w1, 3u));
            let b3 = mat4x4<f32>(subgroupBroadcast(w1, 4u), subgroupBroadcast(w1, 5u), subgroupBroadcast(w1, 6u), subgroupBroadcast(w1, 7u));
            let b4 = mat4x4<f32>(subgroupBroadcast(w2, 0u), subgroupBroadcast(w2, 1u), subgroupBroadcast(w2, 2u), subgroupBroadcast(w2, 3u));
            let b5 = mat4x4<f32>(subgroupBroadcast(w2, 4u), subgroupBroadcast(w2, 5u), subgroupBroadcast(w2, 6u), subgroupBroadcast(w2, 7u));
            let b6 = mat4x4<f32>(subgroupBroadcast(w3, 0u), subgroupBroadcast(w3, 1u), subgroupBroadcast(w3, 2u), subgroupBroadcast(w3, 3u));
            let b7 = mat4x4<f32>(subgroupBroadcast(w3, 4u), subgroupBroadcast(w3, 5u), subgroupBroadcast(w3, 6u), subgroupBroadcast(w3, 7u));
            c0_0 += a0 * b0; c0_1 += a0 * b1; c0_2 += a0 * b2; c0_3 += a0 * b3; c0_4 += a0 * b4; c0_5 += a0 * b5; c0_6 += a0 * b6; c0_7 += a0 * b7;
        }
        {
            let w0 = textureLoad(w1t, vec2<u32>(k4 + 2u, h0), 0);
            let w1 = textureLoad(w1t, vec2<u32>(k4 + 2u, h1), 0);
            let w2 = textureLoad(w1t, vec2<u32>(k4 + 2u, h2), 0);
            let w3 = textureLoad(w1t, vec2<u32>(k4 + 2u, h3), 0);
            let a0 = transpose(mat4x4<f32>(norm4(x0.z), norm4(x1.z), norm4(x2.z), norm4(x3.z)));
            let b0 = mat4x4<f32>(subgroupBroadcast(w0, 0u), subgroupBroadcast(w0, 1u), subgroupBroadcast(w0, 2u), subgroupBroadcast(w0, 3u));
            let b1 = mat4x4<f32>(subgroupBroadcast(w0, 4u), subgroupBroadcast(w0, 5u), subgroupBroadcast(w0, 6u), subgroupBroadcast(w0, 7u));
            let b2 = mat4x4<f32>(subgroupBroadcast(w1, 0u), subgroupBroadcast(w1, 1u), subgroupBroadcast(w1, 2u), subgroupBroadcast(w1, 3u));
            let b3 = mat4x4<f32>(subgroupBroadcast(w1, 4u), subgroupBroadcast(w1, 5u), subgroupBroadcast(w1, 6u), subgroupBroadcast(w1, 7u));
            let b4 = mat4x4<f32>(subgroupBroadcast(w2, 0u), subgroupBroadcast(w2, 1u), subgroupBroadcast(w2, 2u), subgroupBroadcast(w2, 3u));
            let b5 = mat4x4<f32>(subgroupBroadcast(w2, 4u), subgroupBroadcast(w2, 5u), subgroupBroadcast(w2, 6u), subgroupBroadcast(w2, 7u));
            let b6 = mat4x4<f32>(subgroupBroadcast(w3, 0u), subgroupBroadcast(w3, 1u), subgroupBroadcast(w3, 2u), subgroupBroadcast(w3, 3u));
            let b7 = mat4x4<f32>(subgroupBroadcast(w3, 4u), subgroupBroadcast(w3, 5u), subgroupBroadcast(w3, 6u), subgroupBroadcast(w3, 7u));
            c0_0 += a0 * b0; c0_1 += a0 * b1; c0_2 += a0 * b2; c0_3 += a0 * b3; c0_4 += a0 * b4; c0_5 += a0 * b5; c0_6 += a0 * b6; c0_7 += a0 * b7;
        }
        {
            let w0 = textureLoad(w1t, vec2<u32>(k4 + 3u, h0), 0);
            let w1 = textureLoad(w1t, vec2<u32>(k4 + 3u, h1), 0);
            let w2 = textureLoad(w1t, vec2<u32>(k4 + 3u, h2), 0);
            let w3 = textureLoad(w1t, vec2<u32>(k4 + 3u, h3), 0);
            let a0 = transpose(mat4x4<f32>(norm4(x0.w), norm4(x1.w), norm4(x2.w), norm4(x3.w)));
            let b0 = mat4x4<f32>(subgroupBroadcast(w0, 0u), subgroupBroadcast(w0, 1u), subgroupBroadcast(w0, 2u), subgroupBroadcast(w0, 3u));
            let b1 = mat4x4<f32>(subgroupBroadcast(w0, 4u), subgroupBroadcast(w0, 5u), subgroupBroadcast(w0, 6u), subgroupBroadcast(w0, 7u));
            let b2 = mat4x4<f32>(subgroupBroadcast(w1, 0u), subgroupBroadcast(w1, 1u), subgroupBroadcast(w1, 2u), subgroupBroadcast(w1, 3u));
            let b3 = mat4x4<f32>(subgroupBroadcast(w1, 4u), subgroupBroadcast(w1, 5u), subgroupBroadcast(w1, 6u), subgroupBroadcast(w1, 7u));
            let b4 = mat4x4<f32>(subgroupBroadcast(w2, 0u), subgroupBroadcast(w2, 1u), subgroupBroadcast(w2, 2u), subgroupBroadcast(w2, 3u));
            let b5 = mat4x4<f32>(subgroupBroadcast(w2, 4u), subgroupBroadcast(w2, 5u), subgroupBroadcast(w2, 6u), subgroupBroadcast(w2, 7u));
            let b6 = mat4x4<f32>(subgroupBroadcast(w3, 0u), subgroupBroadcast(w3, 1u), subgroupBroadcast(w3, 2u), subgroupBroadcast(w3, 3u));
            let b7 = mat4x4<f32>(subgroupBroadcast(w3, 4u), subgroupBroadcast(w3, 5u), subgroupBroadcast(w3, 6u), subgroupBroadcast(w3, 7u));
            c0_0 += a0 * b0; c0_1 += a0 * b1; c0_2 += a0 * b2; c0_3 += a0 * b3; c0_4 += a0 * b4; c0_5 += a0 * b5; c0_6 += a0 * b6; c0_7 += a0 * b7;
        }
    }
    if (r0 >= qt.rows) {
        return;
    }
    fwd_store(r0 + 0u, j0 + 0u, c0_0); fwd_store(r0 + 0u, j0 + 4u, c0_1); fwd_store(r0 + 0u, j0 + 8u, c0_2); fwd_store(r0 + 0u, j0 + 12u, c0_3); fwd_store(r0 + 0u, j0 + 16u, c0_4); fwd_store(r0 + 0u, j0 + 20u, c0_5); fwd_store(r0 + 0u, j0 + 24u, c0_6); fwd_store(r0 + 0u, j0 + 28u, c0_7);
}

// dW1 = dZ1^T X over all samples: 32 hidden units x 16 pixels per invocation, 4 samples
// per step. The lanes of a subgroup share the hidden block: each lane loads 4 of the
// 32 dZ1 vec4s a step needs and subgroupBroadcast hands them to the others. No early
// return (the broadcasts need every lane): extra lanes are clamped and store nothing.
// Grid: x = pixel blocks of 16 (8 per group), y = hidden blocks of 32.
@compute @workgroup_size(8)
fn dw1_sg(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
          @builtin(subgroup_invocation_id) sl: u32) {
    let c = min(gid.x, qt.xw - 1u); // texel column: pixels 16c..16c+15
    let j0 = wid.y * 32u;
    let rl = qt.rows - 1u;
    let lr = qt.layer_rows;
    let hq = qt.hidden / 4u - 1u;
    let q0 = 0u + sl; let i0 = q0 / 8u; let g0 = min(j0 / 4u + q0 % 8u, hq);
    let q1 = 8u + sl; let i1 = q1 / 8u; let g1 = min(j0 / 4u + q1 % 8u, hq);
    let q2 = 16u + sl; let i2 = q2 / 8u; let g2 = min(j0 / 4u + q2 % 8u, hq);
    let q3 = 24u + sl; let i3 = q3 / 8u; let g3 = min(j0 / 4u + q3 % 8u, hq);
    var c0_0 = mat4x4<f32>(); var c0_1 = mat4x4<f32>(); var c0_2 = mat4x4<f32>(); var c0_3 = mat4x4<f32>();
    var c1_0 = mat4x4<f32>(); var c1_1 = mat4x4<f32>(); var c1_2 = mat4x4<f32>(); var c1_3 = mat4x4<f32>();
    var c2_0 = mat4x4<f32>(); var c2_1 = mat4x4<f32>(); var c2_2 = mat4x4<f32>(); var c2_3 = mat4x4<f32>();
    var c3_0 = mat4x4<f32>(); var c3_1 = mat4x4<f32>(); var c3_2 = mat4x4<f32>(); var c3_3 = mat4x4<f32>();
    var c4_0 = mat4x4<f32>(); var c4_1 = mat4x4<f32>(); var c4_2 = mat4x4<f32>(); var c4_3 = mat4x4<f32>();
    var c5_0 = mat4x4<f32>(); var c5_1 = mat4x4<f32>(); var c5_2 = mat4x4<f32>(); var c5_3 = mat4x4<f32>();
    var c6_0 = mat4x4<f32>(); var c6_1 = mat4x4<f32>(); var c6_2 = mat4x4<f32>(); var c6_3 = mat4x4<f32>();
    var c7_0 = mat4x4<f32>(); var c7_1 = mat4x4<f32>(); var c7_2 = mat4x4<f32>(); var c7_3 = mat4x4<f32>();
    for (var k = 0u; k < qt.rows; k += 4u) {
        let r0 = min(k + 0u, rl);
        let x0 = textureLoad(xt, vec2<u32>(c, r0 % lr), r0 / lr, 0);
        let r1 = min(k + 1u, rl);
        let x1 = textureLoad(xt, vec2<u32>(c, r1 % lr), r1 / lr, 0);
        let r2 = min(k + 2u, rl);
        let x2 = textureLoad(xt, vec2<u32>(c, r2 % lr), r2 / lr, 0);
        let r3 = min(k + 3u, rl);
        let x3 = textureLoad(xt, vec2<u32>(c, r3 % lr), r3 / lr, 0);
        let d0 = select(vec4<f32>(0.0), pv[min(k + i0, rl) * (qt.hidden / 4u) + g0], k + i0 < qt.rows);
        let d1 = select(vec4<f32>(0.0), pv[min(k + i1, rl) * (qt.hidden / 4u) + g1], k + i1 < qt.rows);
        let d2 = select(vec4<f32>(0.0), pv[min(k + i2, rl) * (qt.hidden / 4u) + g2], k + i2 < qt.rows);
        let d3 = select(vec4<f32>(0.0), pv[min(k + i3, rl) * (qt.hidden / 4u) + g3], k + i3 < qt.rows);
        let a0 = mat4x4<f32>(subgroupBroadcast(d0, 0u), subgroupBroadcast(d1, 0u), subgroupBroadcast(d2, 0u), subgroupBroadcast(d3, 0u));
        let a1 = mat4x4<f32>(subgroupBroadcast(d0, 1u), subgroupBroadcast(d1, 1u), subgroupBroadcast(d2, 1u), subgroupBroadcast(d3, 1u));
        let a2 = mat4x4<f32>(subgroupBroadcast(d0, 2u), subgroupBroadcast(d1, 2u), subgroupBroadcast(d2, 2u), subgroupBroadcast(d3, 2u));
        let a3 = mat4x4<f32>(subgroupBroadcast(d0, 3u), subgroupBroadcast(d1, 3u), subgroupBroadcast(d2, 3u), subgroupBroadcast(d3, 3u));
        let a4 = mat4x4<f32>(subgroupBroadcast(d0, 4u), subgroupBroadcast(d1, 4u), subgroupBroadcast(d2, 4u), subgroupBroadcast(d3, 4u));
        let a5 = mat4x4<f32>(subgroupBroadcast(d0, 5u), subgroupBroadcast(d1, 5u), subgroupBroadcast(d2, 5u), subgroupBroadcast(d3, 5u));
        let a6 = mat4x4<f32>(subgroupBroadcast(d0, 6u), subgroupBroadcast(d1, 6u), subgroupBroadcast(d2, 6u), subgroupBroadcast(d3, 6u));
        let a7 = mat4x4<f32>(subgroupBroadcast(d0, 7u), subgroupBroadcast(d1, 7u), subgroupBroadcast(d2, 7u), subgroupBroadcast(d3, 7u));
        let b0 = transpose(mat4x4<f32>(norm4(x0.x), norm4(x1.x), norm4(x2.x), norm4(x3.x)));
        let b1 = transpose(mat4x4<f32>(norm4(x0.y), norm4(x1.y), norm4(x2.y), norm4(x3.y)));
        let b2 = transpose(mat4x4<f32>(norm4(x0.z), norm4(x1.z), norm4(x2.z), norm4(x3.z)));
        let b3 = transpose(mat4x4<f32>(norm4(x0.w), norm4(x1.w), norm4(x2.w), norm4(x3.w)));
        c0_0 += a0 * b0; c0_1 += a0 * b1; c0_2 += a0 * b2; c0_3 += a0 * b3;
        c1_0 += a1 * b0; c1_1 += a1 * b1; c1_2 += a1 * b2; c1_3 += a1 * b3;
        c2_0 += a2 * b0; c2_1 += a2 * b1; c2_2 += a2 * b2; c2_3 += a2 * b3;
        c3_0 += a3 * b0; c3_1 += a3 * b1; c3_2 += a3 * b2; c3_3 += a3 * b3;
        c4_0 += a4 * b0; c4_1 += a4 * b1; c4_2 += a4 * b2; c4_3 += a4 * b3;
        c5_0 += a5 * b0; c5_1 += a5 * b1; c5_2 += a5 * b2; c5_3 += a5 * b3;
        c6_0 += a6 * b0; c6_1 += a6 * b1; c6_2 += a6 * b2; c6_3 += a6 * b3;
        c7_0 += a7 * b0; c7_1 += a7 * b1; c7_2 += a7 * b2; c7_3 += a7 * b3;
    }
    if (gid.x >= qt.xw) {
        return;
    }
    dw1_store(j0 + 0u, gid.x * 16u + 0u, c0_0); dw1_store(j0 + 0u, gid.x * 16u + 4u, c0_1); dw1_store(j0 + 0u, gid.x * 16u + 8u, c0_2); dw1_store(j0 + 0u, gid.x * 16u + 12u, c0_3);
    dw1_store(j0 + 4u, gid.x * 16u + 0u, c1_0); dw1_store(j0 + 4u, gid.x * 16u + 4u, c1_1); dw1_store(j0 + 4u, gid.x * 16u + 8u, c1_2); dw1_store(j0 + 4u, gid.x * 16u + 12u, c1_3);
    dw1_store(j0 + 8u, gid.x * 16u + 0u, c2_0); dw1_store(j0 + 8u, gid.x * 16u + 4u, c2_1); dw1_store(j0 + 8u, gid.x * 16u + 8u, c2_2); dw1_store(j0 + 8u, gid.x * 16u + 12u, c2_3);
    dw1_store(j0 + 12u, gid.x * 16u + 0u, c3_0); dw1_store(j0 + 12u, gid.x * 16u + 4u, c3_1); dw1_store(j0 + 12u, gid.x * 16u + 8u, c3_2); dw1_store(j0 + 12u, gid.x * 16u + 12u, c3_3);
    dw1_store(j0 + 16u, gid.x * 16u + 0u, c4_0); dw1_store(j0 + 16u, gid.x * 16u + 4u, c4_1); dw1_store(j0 + 16u, gid.x * 16u + 8u, c4_2); dw1_store(j0 + 16u, gid.x * 16u + 12u, c4_3);
    dw1_store(j0 + 20u, gid.x * 16u + 0u, c5_0); dw1_store(j0 + 20u, gid.x * 16u + 4u, c5_1); dw1_store(j0 + 20u, gid.x * 16u + 8u, c5_2); dw1_store(j0 + 20u, gid.x * 16u + 12u, c5_3);
    dw1_store(j0 + 24u, gid.x * 16u + 0u, c6_0); dw1_store(j0 + 24u, gid.x * 16u + 4u, c6_1); dw1_store(j0 + 24u, gid.x * 16u + 8u, c6_2); dw1_store(j0 + 24u, gid.x * 16u + 12u, c6_3);
    dw1_store(j0 + 28u, gid.x * 16u + 0u, c7_0); dw1_store(j0 + 28u, gid.x * 16u + 4u, c7_1); dw1_store(j0 + 28u, gid.x * 16u + 8u, c7_2); dw1_store(j0 + 28u, gid.x * 16u + 12u, c7_3);
}
