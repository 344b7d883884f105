// softmax_xent.wgsl: fused softmax cross-entropy, one invocation per sample.
// CPU twin: cpu::softmax_xent.
//
//   z      [n, classes] logits (row-major)
//   labels u8 labels packed four per u32 (lowest byte first)
//   loss[i]    = logsumexp(z_i) - z_i[y_i]         computed as m + ln(sum_j exp(z_ij - m)) - z_i[y_i],
//                                                  m = z_i[a], a = first arg-max
//   correct[i] = 1 if a == y_i else 0
//   dz[i][j]   = (exp(z_ij - m) / s - [j == y_i]) / total     (gradient of the mean loss)
//
// Same operation order as the CPU; exp/ln differ from Rust's by a few ulps.

struct Sx {
    n: u32,
    classes: u32,
    total: u32,
    _p0: u32,
}

@group(0) @binding(0) var<storage, read> z: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;
@group(0) @binding(3) var<storage, read_write> correct: array<u32>;
@group(0) @binding(4) var<storage, read_write> dz: array<f32>;
@group(0) @binding(5) var<uniform> p: Sx;

@compute @workgroup_size(64)
fn softmax_xent(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i >= p.n) {
        return;
    }
    let y = (labels[i >> 2u] >> ((i & 3u) * 8u)) & 255u;
    let base = i * p.classes;
    var arg = 0u;
    for (var j = 1u; j < p.classes; j++) {
        if (z[base + j] > z[base + arg]) {
            arg = j;
        }
    }
    let m = z[base + arg];
    var s = 0.0;
    for (var j = 0u; j < p.classes; j++) {
        s += exp(z[base + j] - m);
    }
    loss[i] = m + log(s) - z[base + y];
    correct[i] = select(0u, 1u, arg == y);
    let scale = f32(p.total);
    for (var j = 0u; j < p.classes; j++) {
        let prob = exp(z[base + j] - m) / s;
        let onehot = select(0.0, 1.0, j == y);
        dz[base + j] = (prob - onehot) / scale;
    }
}
