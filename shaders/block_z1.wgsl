// block_z1.wgsl: the `sparse` strategy's Z1 of a full pass from the u8 pixels (CPU twin
// cpu::sparse::forward_rows). X = a U + b (a = 2/255, b = -1, U the u8 pixels), so
//   Z1 = X W1^T + b1 = a (U W1^T) + c,   c[j] = b1[j] + b sum_k W1[j][k]   (first_consts.wgsl)
//
// block_z1: the register kernel's 16 x 16 output blocks (shaders/matmul.wgsl fwd_x_reg),
// skipping the 4-pixel words that are zero in all 16 images of a row block. Same Z1 =
// a (U W1^T) + c (zero pixels must add nothing, so U, not X). `xs`: the u8 pixels, 4 per
// u32 (lowest byte first), q.kw words per image; `w4`: W1 [hidden, inputs] as vec4s along
// the inputs (inputs a multiple of 4); `kl`: per block of 16 images, the words nonzero in
// any of them, block b's from kl[starts[b]] to kl[starts[b + 1] - 1]; `c` as above.
// Grid: x = blocks of 128 hidden units (8 invocations of 16: one lavapipe subgroup shares a
// row block, so its loop is uniform), y = row blocks of 16.

// struct SparseZ1: shaders/sparse_z1_params.wgsl, prepended by the host.

@group(0) @binding(0) var<uniform> q: SparseZ1;
@group(0) @binding(1) var<storage, read> starts: array<u32>;
@group(0) @binding(2) var<storage, read> c: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> z: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> kl: array<u32>;
@group(0) @binding(5) var<storage, read> xs: array<u32>;
@group(0) @binding(6) var<storage, read> w4: array<vec4<f32>>;

fn px(w: u32) -> vec4<f32> {
    return vec4<f32>(unpack4xU8(w));
}

// Writes rows r .. r + 3, columns j0 .. j0 + 3 from blk[j][i] = sum (row r + i, col j0 + j).
fn block_store(r: u32, j0: u32, blk: mat4x4<f32>) {
    let t = transpose(blk);
    let h4 = q.hidden / 4u;
    for (var i = 0u; i < 4u; i++) {
        if (r + i < q.rows) {
            z[(r + i) * h4 + j0 / 4u] = fma(vec4<f32>(q.scale), t[i], c[j0 / 4u]);
        }
    }
}


@compute @workgroup_size(8)
fn block_z1(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let j0 = gid.x * 16u;
    let blk = wid.y;
    let r0 = blk * 16u;
    if (j0 >= q.hidden || r0 >= q.rows) {
        return;
    }
    let kw = q.kw;
    let rl = q.rows - 1u;
    var xr: array<u32, 16>;
    for (var i = 0u; i < 16u; i++) {
        xr[i] = min(r0 + i, rl) * kw;
    }
    var wr: array<u32, 16>;
    for (var j = 0u; j < 16u; j++) {
        wr[j] = (j0 + j) * kw;
    }
    var c00 = mat4x4<f32>(); var c01 = mat4x4<f32>(); var c02 = mat4x4<f32>(); var c03 = mat4x4<f32>();
    var c10 = mat4x4<f32>(); var c11 = mat4x4<f32>(); var c12 = mat4x4<f32>(); var c13 = mat4x4<f32>();
    var c20 = mat4x4<f32>(); var c21 = mat4x4<f32>(); var c22 = mat4x4<f32>(); var c23 = mat4x4<f32>();
    var c30 = mat4x4<f32>(); var c31 = mat4x4<f32>(); var c32 = mat4x4<f32>(); var c33 = mat4x4<f32>();
    for (var e = starts[blk]; e < starts[blk + 1u]; e++) {
        let k = kl[e];
        let a0 = transpose(mat4x4<f32>(px(xs[xr[0] + k]), px(xs[xr[1] + k]), px(xs[xr[2] + k]), px(xs[xr[3] + k])));
        let a1 = transpose(mat4x4<f32>(px(xs[xr[4] + k]), px(xs[xr[5] + k]), px(xs[xr[6] + k]), px(xs[xr[7] + k])));
        let a2 = transpose(mat4x4<f32>(px(xs[xr[8] + k]), px(xs[xr[9] + k]), px(xs[xr[10] + k]), px(xs[xr[11] + k])));
        let a3 = transpose(mat4x4<f32>(px(xs[xr[12] + k]), px(xs[xr[13] + k]), px(xs[xr[14] + k]), px(xs[xr[15] + k])));
        let b0 = mat4x4<f32>(w4[wr[0] + k], w4[wr[1] + k], w4[wr[2] + k], w4[wr[3] + k]);
        let b1 = mat4x4<f32>(w4[wr[4] + k], w4[wr[5] + k], w4[wr[6] + k], w4[wr[7] + k]);
        let b2 = mat4x4<f32>(w4[wr[8] + k], w4[wr[9] + k], w4[wr[10] + k], w4[wr[11] + k]);
        let b3 = mat4x4<f32>(w4[wr[12] + k], w4[wr[13] + k], w4[wr[14] + k], w4[wr[15] + k]);
        c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
        c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
        c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
        c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
    }
    block_store(r0, j0, c00); block_store(r0, j0 + 4u, c01); block_store(r0, j0 + 8u, c02); block_store(r0, j0 + 12u, c03);
    block_store(r0 + 4u, j0, c10); block_store(r0 + 4u, j0 + 4u, c11); block_store(r0 + 4u, j0 + 8u, c12); block_store(r0 + 4u, j0 + 12u, c13);
    block_store(r0 + 8u, j0, c20); block_store(r0 + 8u, j0 + 4u, c21); block_store(r0 + 8u, j0 + 8u, c22); block_store(r0 + 8u, j0 + 12u, c23);
    block_store(r0 + 12u, j0, c30); block_store(r0 + 12u, j0 + 4u, c31); block_store(r0 + 12u, j0 + 8u, c32); block_store(r0 + 12u, j0 + 12u, c33);
}
