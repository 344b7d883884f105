// lbfgs.wgsl: the vector operations of L-BFGS on the GPU (CPU twins in
// src/optim/lbfgs_ops.rs; the algorithm itself, lbfgs::run, runs on the host and reads each
// reduction's scalar back).
//
//   lbfgs_axpy:   y[i] = fma(x[i], alpha, y[i])        (torch's add_(x, alpha=...))
//   lbfgs_scale:  y[i] = y[i] * alpha
//   lbfgs_blocks: part[b] = the tree sum (op 0: x.z, op 1: sum |x|) or max (op 2: max |x|)
//                 of block b: BLOCK (256) consecutive terms i = 256 b + k, zero past n,
//                 summed as buf[k] += buf[k + w] for w = 128, 64, ..., 1: the order of
//                 lbfgs_ops::reduce (the CPU's), not the adapter's own.
//   lbfgs_total:  out[0] = part[0] + part[1] + ... in block order (one invocation), or
//                 their max.
//
// Buffers: x, z [n] (read), y [n] (read_write), part [blocks], out [1]; every vector is one
// buffer of the flat parameter layout (PyTorch order), so a history of k pairs is 2k
// separate buffers, none near the binding limit.

struct LHyp {
    n: u32,
    blocks: u32,
    // 0: dot, 1: abs sum, 2: abs max.
    op: u32,
    alpha: f32,
}

const BLOCK: u32 = 256u;
const OP_DOT: u32 = 0u;
const OP_ABS_MAX: u32 = 2u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read_write> part: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> h: LHyp;

var<workgroup> buf: array<f32, 256>;

// Element index of a 2-D grid of 256-wide workgroups.
fn index(lid: u32, wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * BLOCK + lid;
}

@compute @workgroup_size(256)
fn lbfgs_axpy(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(lid.x, wid, nwg);
    if (i < h.n) {
        y[i] = fma(x[i], h.alpha, y[i]);
    }
}

@compute @workgroup_size(256)
fn lbfgs_scale(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(lid.x, wid, nwg);
    if (i < h.n) {
        y[i] = y[i] * h.alpha;
    }
}

@compute @workgroup_size(256)
fn lbfgs_blocks(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = wid.y * nwg.x + wid.x;
    let i = b * BLOCK + lid.x;
    var v = 0.0;
    if (i < h.n) {
        if (h.op == OP_DOT) {
            v = x[i] * z[i];
        } else {
            v = abs(x[i]);
        }
    }
    buf[lid.x] = v;
    workgroupBarrier();
    for (var w = BLOCK / 2u; w > 0u; w = w / 2u) {
        if (lid.x < w) {
            if (h.op == OP_ABS_MAX) {
                buf[lid.x] = max(buf[lid.x], buf[lid.x + w]);
            } else {
                buf[lid.x] = buf[lid.x] + buf[lid.x + w];
            }
        }
        workgroupBarrier();
    }
    if (lid.x == 0u && b < h.blocks) {
        part[b] = buf[0];
    }
}

@compute @workgroup_size(1)
fn lbfgs_total() {
    var s = 0.0;
    for (var b = 0u; b < h.blocks; b++) {
        if (h.op == OP_ABS_MAX) {
            s = max(s, part[b]);
        } else {
            s = s + part[b];
        }
    }
    out[0] = s;
}
