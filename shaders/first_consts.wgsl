// first_consts.wgsl: the constant term of the first layer's sparse product, recomputed on
// the device each step before block_z1 (shaders/sparse_first.wgsl) reads it. CPU twin: the
// `c` of cpu_sparse::first_layer_consts.
//
//   X = a U + b (b = -1), so Z1 = a (U W1^T) + c,   c[j] = b1[j] - sum_k W1[j][k]
//
// One invocation per hidden unit sums its row k = 0, 1, ... in order, so c is the same bit
// for bit every run (deterministic). `p`: the flat parameters, W1 [hidden, inputs] row-major
// from p[q.w_off], b1 [hidden] from p[q.b_off]; `c`: [hidden].

struct FirstConsts {
    hidden: u32,
    inputs: u32,
    w_off: u32,
    b_off: u32,
}

@group(0) @binding(0) var<uniform> q: FirstConsts;
@group(0) @binding(1) var<storage, read> p: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(64)
fn first_layer_consts(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if (j >= q.hidden) {
        return;
    }
    let base = q.w_off + j * q.inputs;
    var s = 0.0;
    for (var k = 0u; k < q.inputs; k++) {
        s += p[base + k];
    }
    c[j] = p[q.b_off + j] - s;
}
