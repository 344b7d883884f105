// grprop.wgsl: GRprop's global part, after optimizer.wgsl's case 8/9 has adapted every step
// size as Rprop- does. CPU twins: grprop_pick, grprop_sum and grprop in src/optim/grprop.rs.
//
//   grprop_pick: among the weights with g != 0, the smallest (key, index), key = the step's
//                bits (slr) or |g|'s bits (sag): the bits of a non-negative f32 order as its
//                value. A minimum: the same whatever the order.
//   grprop_sum:  sum over j != i, g_j != 0 of step_j * g_j, as s + step_j * g_j, in the
//                tree's fixed order: BLOCK (256) consecutive terms per invocation, in index
//                order, then the partial sums 256 at a time, level by level, down to one.
//   grprop_move: step_i = clamp(-(sum + delta) / g_i, step_min, step_max); every weight
//                moves by -sign(g) * step; prev_grad = g; prev_change = the move.
//
// `g` is the gradient with the L2 term added, g + weight_decay * w (fused, as everywhere).
// Both reductions run one dispatch per level of the tree; a level's outputs follow the
// previous level's in the scratch buffers (picks: (key, index) pairs; sums: f32).

struct GHyp {
    len: u32,
    // Items this level reduces (weights at level 0, else the previous level's outputs).
    n: u32,
    // Offsets (in items) of this level's input and output in the scratch buffer.
    src: u32,
    dst: u32,
    level: u32,
    // 0: slr (smallest step), 1: sag (smallest |g|).
    pick: u32,
    // Where the final pick and the final sum lie.
    pick_at: u32,
    sum_at: u32,
    step_min: f32,
    step_max: f32,
    delta: f32,
    weight_decay: f32,
}

const BLOCK: u32 = 256u;
const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<storage, read_write> w: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> step: array<f32>;
@group(0) @binding(3) var<storage, read_write> prev_grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> prev_change: array<f32>;
@group(0) @binding(5) var<storage, read_write> picks: array<u32>;
@group(0) @binding(6) var<storage, read_write> sums: array<f32>;
@group(0) @binding(7) var<uniform> h: GHyp;

fn index(lid: vec3<u32>, wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 64u + lid.x;
}

// The gradient the rule sees (optim::decayed).
fn grad(j: u32) -> f32 {
    if (h.weight_decay != 0.0) {
        return fma(w[j], h.weight_decay, g[j]);
    }
    return g[j];
}

// (key, index) of a candidate is below (bk, bi)?
fn below(key: u32, idx: u32, bk: u32, bi: u32) -> bool {
    return key < bk || (key == bk && idx < bi);
}

@compute @workgroup_size(64)
fn grprop_pick(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = index(lid, wid, nwg);
    let first = b * BLOCK;
    if (first >= h.n) {
        return;
    }
    let last = min(h.n, first + BLOCK);
    var bk = NONE;
    var bi = NONE;
    for (var j = first; j < last; j++) {
        var key = NONE;
        var idx = NONE;
        if (h.level == 0u) {
            let gj = grad(j);
            if (gj != 0.0) {
                idx = j;
                if (h.pick == 0u) {
                    key = bitcast<u32>(step[j]);
                } else {
                    key = bitcast<u32>(abs(gj));
                }
            }
        } else {
            key = picks[2u * (h.src + j)];
            idx = picks[2u * (h.src + j) + 1u];
        }
        if (below(key, idx, bk, bi)) {
            bk = key;
            bi = idx;
        }
    }
    picks[2u * (h.dst + b)] = bk;
    picks[2u * (h.dst + b) + 1u] = bi;
}

@compute @workgroup_size(64)
fn grprop_sum(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = index(lid, wid, nwg);
    let first = b * BLOCK;
    if (first >= h.n) {
        return;
    }
    let last = min(h.n, first + BLOCK);
    let chosen = picks[2u * h.pick_at + 1u];
    var s = 0.0;
    for (var j = first; j < last; j++) {
        if (h.level == 0u) {
            let gj = grad(j);
            if (j != chosen && gj != 0.0) {
                s = s + step[j] * gj;
            }
        } else {
            s = s + sums[h.src + j];
        }
    }
    sums[h.dst + b] = s;
}

// -x by flipping the sign bit (as optimizer.wgsl's neg).
fn neg(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) ^ 0x80000000u);
}

// -sign(g) * step as the CPU rounds it (as optimizer.wgsl's descent).
fn descent(gj: f32, st: f32) -> f32 {
    if (gj > 0.0) {
        return neg(st);
    }
    if (gj < 0.0) {
        return st;
    }
    return bitcast<f32>((bitcast<u32>(st) & 0x80000000u) ^ 0x80000000u);
}

@compute @workgroup_size(64)
fn grprop_move(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = index(lid, wid, nwg);
    if (j >= h.len) {
        return;
    }
    let gj = grad(j);
    var st = step[j];
    if (j == picks[2u * h.pick_at + 1u]) {
        st = min(max(-(sums[h.sum_at] + h.delta) / gj, h.step_min), h.step_max);
        step[j] = st;
    }
    let dw = descent(gj, st);
    w[j] += dw;
    prev_change[j] = dw;
    prev_grad[j] = gj;
}
