// telemetry.wgsl: per-layer Rprop telemetry, accumulated on the device (issue 12).
// CPU twin: telemetry::signs / telemetry::steps / telemetry::median (src/telemetry.rs).
//
// counts: array<u32>, per layer STRIDE = 6 + BINS words
//   [updates, sign_changes, backtracks, weights, at_min, at_max, hist[BINS]],
//   then one word: the number of rows written to `history` so far.
// history: array<u32>, per epoch row and layer 7 words
//   [updates, sign_changes, backtracks, weights, at_min, at_max, median_bin]
//   (the host turns counts into fractions; read back only at save points).
//
// signs (before the optimizer update, per step and tensor [offset, offset+len)):
//   g' = fma(w, weight_decay, g);  changed = g' * prev_grad < 0
//   updates += len; sign_changes += changed; backtracks += changed && back
//   back = mode 1 (Rprop+) or mode 2 (iRprop+) with E_t > E_{t-1} (loss = [E_t, E_{t-1}, ..])
// steps (after the epoch's last update, per tensor): weights += len,
//   at_min += step <= step_min, at_max += step >= step_max,
//   hist[clamp(floor((log(step) - log_min) / log_span * BINS), 0, BINS-1)] += 1
// close (one workgroup): per layer the lower median's bin (rank (weights-1)/2) from hist,
//   the row into history[row], the layer's counts zeroed, row += 1.

const BINS: u32 = 512u;
const STRIDE: u32 = 518u;
const ROW: u32 = 7u;

struct Tele {
    offset: u32,
    len: u32,
    layer: u32,
    mode: u32,
    weight_decay: f32,
    step_min: f32,
    step_max: f32,
    log_min: f32,
    log_span: f32,
    layers: u32,
    capacity: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> step: array<f32>;
@group(0) @binding(3) var<storage, read> prev_grad: array<f32>;
@group(0) @binding(4) var<storage, read> loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(6) var<uniform> p: Tele;
@group(0) @binding(7) var<storage, read_write> history: array<u32>;

var<workgroup> wg_changed: atomic<u32>;
var<workgroup> wg_back: atomic<u32>;
var<workgroup> wg_min: atomic<u32>;
var<workgroup> wg_max: atomic<u32>;
var<workgroup> wg_hist: array<atomic<u32>, 512>;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

@compute @workgroup_size(256)
fn signs(@builtin(global_invocation_id) gid: vec3<u32>,
         @builtin(local_invocation_index) lid: u32,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    let base = p.layer * STRIDE;
    if (i < p.len) {
        let k = p.offset + i;
        var gi = g[k];
        if (p.weight_decay != 0.0) {
            gi = fma(w[k], p.weight_decay, gi);
        }
        if (gi * prev_grad[k] < 0.0) {
            atomicAdd(&wg_changed, 1u);
            let back = p.mode == 1u || (p.mode == 2u && loss[0] > loss[1]);
            if (back) {
                atomicAdd(&wg_back, 1u);
            }
        }
    }
    workgroupBarrier();
    if (lid == 0u) {
        if (i == 0u) {
            atomicAdd(&counts[base], p.len);
        }
        let c = atomicLoad(&wg_changed);
        if (c > 0u) {
            atomicAdd(&counts[base + 1u], c);
        }
        let b = atomicLoad(&wg_back);
        if (b > 0u) {
            atomicAdd(&counts[base + 2u], b);
        }
    }
}

@compute @workgroup_size(256)
fn steps(@builtin(global_invocation_id) gid: vec3<u32>,
         @builtin(local_invocation_index) lid: u32,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    let base = p.layer * STRIDE;
    if (i < p.len) {
        let s = step[p.offset + i];
        if (s <= p.step_min) {
            atomicAdd(&wg_min, 1u);
        }
        if (s >= p.step_max) {
            atomicAdd(&wg_max, 1u);
        }
        let x = (log(s) - p.log_min) / p.log_span * f32(BINS);
        var bin = 0u;
        if (x > 0.0) {
            bin = min(u32(x), BINS - 1u);
        }
        atomicAdd(&wg_hist[bin], 1u);
    }
    workgroupBarrier();
    for (var b = lid; b < BINS; b = b + 256u) {
        let c = atomicLoad(&wg_hist[b]);
        if (c > 0u) {
            atomicAdd(&counts[base + 6u + b], c);
        }
    }
    if (lid == 0u) {
        if (i == 0u) {
            atomicAdd(&counts[base + 3u], p.len);
        }
        atomicAdd(&counts[base + 4u], atomicLoad(&wg_min));
        atomicAdd(&counts[base + 5u], atomicLoad(&wg_max));
    }
}

@compute @workgroup_size(64)
fn close(@builtin(local_invocation_index) l: u32) {
    let row = atomicLoad(&counts[p.layers * STRIDE]);
    if (l < p.layers && row < p.capacity) {
        let base = l * STRIDE;
        let n = atomicLoad(&counts[base + 3u]);
        var median = BINS - 1u;
        if (n > 0u) {
            let rank = (n - 1u) / 2u;
            var seen = 0u;
            for (var b = 0u; b < BINS; b = b + 1u) {
                seen = seen + atomicLoad(&counts[base + 6u + b]);
                if (seen > rank) {
                    median = b;
                    break;
                }
            }
        }
        let out = (row * p.layers + l) * ROW;
        for (var k = 0u; k < 6u; k = k + 1u) {
            history[out + k] = atomicLoad(&counts[base + k]);
        }
        history[out + 6u] = median;
    }
    if (l < p.layers) {
        let base = l * STRIDE;
        for (var k = 0u; k < STRIDE; k = k + 1u) {
            atomicStore(&counts[base + k], 0u);
        }
    }
    storageBarrier();
    workgroupBarrier();
    if (l == 0u) {
        atomicAdd(&counts[p.layers * STRIDE], 1u);
    }
}
