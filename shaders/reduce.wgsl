// reduce.wgsl: deterministic reductions (no atomics): bias gradients and pass metrics.
// CPU twins: cpu::reduce_cols and cpu::reduce_metrics.
//
// Two fixed-order levels, so the result depends only on the data, never on scheduling:
//   1. partial[c][col] = sum of rows [c*rows_per_chunk, (c+1)*rows_per_chunk) in row order
//   2. out[col]        = sum of partial[0..chunks][col] in chunk order
//
//   cols_partial / cols_final: m [n, cols] row-major -> out[out_off + col] (db1, db2 into the
//       flat gradient buffer)
//   metrics_partial / metrics_final: loss [n] f32 and correct [n] u32 ->
//       metrics[slot + 0] = loss sum, [slot + 1] = mean = sum / n, [slot + 2] = correct,
//       [slot + 3] = samples (u32 bits); a train pass adds its sum, correct and samples to
//       the slot (the steps of an epoch accumulate; the host clears the slot per epoch) and
//       sets lossbuf[0] = its mean (the E_t that the optimizer reads).

struct Red {
    n: u32,
    cols: u32,
    rows_per_chunk: u32,
    chunks: u32,
    out_off: u32,
    slot: u32,
    train: u32,
    _p0: u32,
}

@group(0) @binding(0) var<storage, read> m: array<f32>;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Red;
@group(0) @binding(4) var<storage, read> mcount: array<u32>;
@group(0) @binding(5) var<storage, read_write> pcount: array<u32>;
@group(0) @binding(6) var<storage, read_write> lossbuf: array<f32>;

// One invocation per (chunk, col): index = chunk * cols + col.
@compute @workgroup_size(64)
fn cols_partial(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x;
    if (idx >= p.cols * p.chunks) {
        return;
    }
    let col = idx % p.cols;
    let chunk = idx / p.cols;
    let r0 = chunk * p.rows_per_chunk;
    let r1 = min(p.n, r0 + p.rows_per_chunk);
    var s = 0.0;
    for (var r = r0; r < r1; r++) {
        s += m[r * p.cols + col];
    }
    partial[idx] = s;
}

@compute @workgroup_size(64)
fn cols_final(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    if (col >= p.cols) {
        return;
    }
    var s = 0.0;
    for (var c = 0u; c < p.chunks; c++) {
        s += partial[c * p.cols + col];
    }
    out[p.out_off + col] = s;
}

@compute @workgroup_size(64)
fn metrics_partial(@builtin(global_invocation_id) gid: vec3<u32>) {
    let chunk = gid.x;
    if (chunk >= p.chunks) {
        return;
    }
    let r0 = chunk * p.rows_per_chunk;
    let r1 = min(p.n, r0 + p.rows_per_chunk);
    var s = 0.0;
    var k = 0u;
    for (var r = r0; r < r1; r++) {
        s += m[r];
        k += mcount[r];
    }
    partial[chunk] = s;
    pcount[chunk] = k;
}

@compute @workgroup_size(1)
fn metrics_final() {
    var s = 0.0;
    var k = 0u;
    for (var c = 0u; c < p.chunks; c++) {
        s += partial[c];
        k += pcount[c];
    }
    let mean = select(s / f32(p.n), 0.0, p.n == 0u);
    out[p.slot + 1u] = mean;
    if (p.train != 0u) {
        // The train slot sums over the steps of an epoch (mini-batches); the host clears it.
        out[p.slot] += s;
        out[p.slot + 2u] = bitcast<f32>(bitcast<u32>(out[p.slot + 2u]) + k);
        out[p.slot + 3u] = bitcast<f32>(bitcast<u32>(out[p.slot + 3u]) + p.n);
        lossbuf[0] = mean;
    } else {
        out[p.slot] = s;
        out[p.slot + 2u] = bitcast<f32>(k);
        out[p.slot + 3u] = bitcast<f32>(p.n);
    }
}
