// lbfgs.wgsl: the vector work of L-BFGS on the GPU, its scalars kept on the device (CPU
// twins in src/cpu/lbfgs.rs: dot, abs_sum, abs_max, axpy, and two_loop for the chain of
// lbfgs_link; the algorithm itself, optim::lbfgs::run, runs on the host and reads the
// scalars back only where it branches on them).
//
// Scalars are f32 words of one buffer, `sc` (layout: gpu::ops::lbfgs::Words). Reductions
// sum in one fixed order, optim::lbfgs_ops::reduce's: blocks of 256 consecutive terms (zero
// past n), each summed as the binary tree buf[k] += buf[k + w] for w = 128, 64, ..., 1, then
// the block sums added in block order. One invocation sums a whole block with no workgroup
// barrier (which software adapters such as lavapipe make slow): it reads the block as 64
// vec4s, whose four components are the block's four residue classes mod 4, so the tree's
// first six levels (w = 128 ... 4) are a tree over the vec4s, visited in bit-reversed order
// and added as a binary counter carries, and its last two levels are (x + z) + (y + w).
//
//   lbfgs_axpy:   y[i] = fma(x[i], alpha, y[i])        (torch's add_(x, alpha=...))
//   lbfgs_scale:  y[i] = y[i] * alpha
//   lbfgs_blocks: part[b] = the block sum of x[i] z[i] (op 0) or |x[i]| (op 1), or the
//                 block's max |x[i]| (op 2)
//   lbfgs_total:  sc[dst] = part[0] + part[1] + ... in block order (op 0, 1) or their max
//                 (op 2), times sc[mul] unless mul == NONE; and sc[dst2] likewise over
//                 part[blocks..2 blocks] with op2, unless dst2 == NONE
//   lbfgs_pair:   the candidate pair: y = fma(prev, -1, g) (= g - prev), s = d * alpha,
//                 part[b] = block sum of y s, part[blocks + b] = block sum of y y
//   lbfgs_link:   one link of the two-loop recursion q = -H g, per block b:
//                 v = (sum of pin in block order) * sc[mul]      (fin: the last dot's end;
//                      sc[dst] = v unless dst == NONE, mul == NONE: times 1)
//                 q = fma(x, c, q) (upd 1) or q = x * c (upd 2), unless sc[gate] == 0,
//                     c = (ca) - (cb), negated when neg != 0, where each is v (LOCAL),
//                     alpha / 0 (NONE), or sc[word]
//                 q = q * sc[scale] unless scale == NONE (not gated)
//                 part[b] = block sum of z q (nxt >= 1), part[blocks + b] = block max |q|
//                     (nxt 2): the next dot's start (or g.d and max |d| after the last)
//
// Buffers: x, z, w [n] (read), y, s [n] (read_write), as n / 4 vec4s (n, the flat
// parameter layout's length, is a multiple of 64); pin [2 blocks] (read), part
// [2 blocks], sc [words]. Every vector is one buffer (PyTorch order), so a history of k
// pairs is 2k separate buffers, none near the binding limit. Element-wise kernels loop over
// the vector with a grid stride; block kernels run one invocation per block, on a 2-D grid
// of 16-wide workgroups (small, so a software adapter spreads a vector of a few hundred
// blocks over all its threads: 16 measured best on lavapipe, 8 alike, 64 and 4 worse).

struct LHyp {
    n: u32,
    blocks: u32,
    // 0: dot, 1: abs sum, 2: abs max.
    op: u32,
    op2: u32,
    alpha: f32,
    fin: u32,
    mul: u32,
    dst: u32,
    dst2: u32,
    upd: u32,
    ca: u32,
    cb: u32,
    neg: u32,
    gate: u32,
    scale: u32,
    nxt: u32,
}

const BLOCK4: u32 = 64u;
const NONE: u32 = 0xffffffffu;
const LOCAL: u32 = 0xfffffffeu;
const OP_DOT: u32 = 0u;
const OP_ABS_MAX: u32 = 2u;

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> z: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> s: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> part: array<f32>;
@group(0) @binding(6) var<storage, read> pin: array<f32>;
@group(0) @binding(7) var<storage, read_write> sc: array<f32>;
@group(0) @binding(8) var<uniform> h: LHyp;

// The invocation's index on a 2-D grid of 16-wide workgroups.
fn flat(lid: u32, wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 16u + lid;
}

// Adds the i-th vec4 (in bit-reversed visiting order) of a block's tree: acc[l] holds the
// pending sum of 2^l vec4s.
fn carry(acc: ptr<function, array<vec4<f32>, 7>>, i: u32, term: vec4<f32>) {
    var v = term;
    var c = i;
    var l = 0u;
    while ((c & 1u) == 1u) {
        v = (*acc)[l] + v;
        c = c >> 1u;
        l = l + 1u;
    }
    (*acc)[l] = v;
}

// The block's sum from its tree over vec4s: the residue classes 0 + 2, 1 + 3, then both.
fn block_sum(acc: ptr<function, array<vec4<f32>, 7>>) -> f32 {
    let v = (*acc)[6];
    return (v.x + v.z) + (v.y + v.w);
}

fn max4(v: vec4<f32>) -> f32 {
    return max(max(v.x, v.y), max(v.z, v.w));
}

// The vec4 of block b visited i-th: the tree pairs vec4 k with k + 32 first.
fn elem(b: u32, i: u32) -> u32 {
    return b * BLOCK4 + (reverseBits(i) >> 26u);
}

@compute @workgroup_size(64)
fn lbfgs_axpy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < h.n / 4u; i += nwg.x * 64u) {
        y[i] = fma(x[i], vec4<f32>(h.alpha), y[i]);
    }
}

@compute @workgroup_size(64)
fn lbfgs_scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < h.n / 4u; i += nwg.x * 64u) {
        y[i] = y[i] * h.alpha;
    }
}

@compute @workgroup_size(16)
fn lbfgs_blocks(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = flat(lid.x, wid, nwg);
    if (b >= h.blocks) {
        return;
    }
    var acc: array<vec4<f32>, 7>;
    var m = vec4<f32>(0.0);
    for (var i = 0u; i < BLOCK4; i++) {
        let j = elem(b, i);
        var v = vec4<f32>(0.0);
        if (j < h.n / 4u) {
            if (h.op == OP_DOT) {
                v = x[j] * z[j];
            } else {
                v = abs(x[j]);
            }
        }
        carry(&acc, i, v);
        m = max(m, v);
    }
    if (h.op == OP_ABS_MAX) {
        part[b] = max4(m);
    } else {
        part[b] = block_sum(&acc);
    }
}

// op over part[off..off + blocks] in block order.
fn fold(op: u32, off: u32) -> f32 {
    var t = 0.0;
    for (var b = 0u; b < h.blocks; b++) {
        if (op == OP_ABS_MAX) {
            t = max(t, part[off + b]);
        } else {
            t = t + part[off + b];
        }
    }
    return t;
}

@compute @workgroup_size(1)
fn lbfgs_total() {
    var t = fold(h.op, 0u);
    if (h.mul != NONE) {
        t = t * sc[h.mul];
    }
    sc[h.dst] = t;
    if (h.dst2 != NONE) {
        sc[h.dst2] = fold(h.op2, h.blocks);
    }
}

@compute @workgroup_size(16)
fn lbfgs_pair(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    // x = g, z = prev, w = d; y, s: the pair.
    let b = flat(lid.x, wid, nwg);
    if (b >= h.blocks) {
        return;
    }
    var ys: array<vec4<f32>, 7>;
    var yy: array<vec4<f32>, 7>;
    for (var i = 0u; i < BLOCK4; i++) {
        let j = elem(b, i);
        var yv = vec4<f32>(0.0);
        var sv = vec4<f32>(0.0);
        if (j < h.n / 4u) {
            yv = fma(z[j], vec4<f32>(-1.0), x[j]);
            sv = w[j] * h.alpha;
            y[j] = yv;
            s[j] = sv;
        }
        carry(&ys, i, yv * sv);
        carry(&yy, i, yv * yv);
    }
    part[b] = block_sum(&ys);
    part[h.blocks + b] = block_sum(&yy);
}

// A coefficient's term: v (LOCAL), `none` (NONE), or sc[word].
fn term(word: u32, v: f32, none: f32) -> f32 {
    if (word == LOCAL) {
        return v;
    }
    if (word == NONE) {
        return none;
    }
    return sc[word];
}

@compute @workgroup_size(16)
fn lbfgs_link(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    // x: the update's vector, y: q, z: the next dot's other vector, pin: the last dot's
    // block sums.
    let b = flat(lid.x, wid, nwg);
    if (b >= h.blocks) {
        return;
    }
    var v = 0.0;
    if (h.fin != 0u) {
        for (var k = 0u; k < h.blocks; k++) {
            v = v + pin[k];
        }
        if (h.mul != NONE) {
            v = v * sc[h.mul];
        }
        if (b == 0u && h.dst != NONE) {
            sc[h.dst] = v;
        }
    }
    let on = h.upd != 0u && !(h.gate != NONE && sc[h.gate] == 0.0);
    var c = term(h.ca, v, h.alpha) - term(h.cb, v, 0.0);
    if (h.neg != 0u) {
        c = -c;
    }
    let sw = term(h.scale, 1.0, 1.0);
    // One pass over the block in the tree's visiting order: update, then the next sums.
    var acc: array<vec4<f32>, 7>;
    var m = vec4<f32>(0.0);
    for (var i = 0u; i < BLOCK4; i++) {
        let j = elem(b, i);
        var t = vec4<f32>(0.0);
        if (j < h.n / 4u) {
            var q = y[j];
            if (on) {
                if (h.upd == 1u) {
                    q = fma(x[j], vec4<f32>(c), q);
                } else {
                    q = x[j] * c;
                }
            }
            if (h.scale != NONE) {
                q = q * sw;
            }
            y[j] = q;
            t = z[j] * q;
            m = max(m, abs(q));
        }
        carry(&acc, i, t);
    }
    if (h.nxt >= 1u) {
        part[b] = block_sum(&acc);
    }
    if (h.nxt == 2u) {
        part[h.blocks + b] = max4(m);
    }
}
