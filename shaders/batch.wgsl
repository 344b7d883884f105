// batch.wgsl: mini-batches gathered on the device, and the per-step cursor.
// CPU twin: CpuBackend's step on rows (it copies the rows in the same order).
//
//   order  [epoch rows] u32    the train rows of the submission's steps, batch after batch
//   cursor [4] u32             [first entry of order of the current batch, steps done, -, -]
//   gather_rows:   dst[r][w] = src[order[cursor[0] + dst_row0 + r] - src_row0][w] for the rows
//                  that fall in this chunk of the images (u8 pixels packed in u32 words,
//                  `row_words` words per row); one invocation per destination word
//   gather_tex:    the same rows between the images' textures (texture strategy): texel (c, r)
//                  of the batch texture = texel (c, s) of the train set's, s = order[cursor[0] + r],
//                  row s of a texture at (y, layer) = (s % layer_rows, s / layer_rows);
//                  one invocation per texel (16 pixels, padding texels included)
//   gather_labels: dst labels (u8, four per u32) of the batch's rows; one invocation per word
//   advance:       after a step: cursor[0] += rows, cursor[1] += 1, and the next step's
//                  Adam scalars table[2 s], table[2 s + 1] (s = cursor[1]) into loss[2], loss[3]
//                  (optimizer.wgsl's loss buffer), so several steps run in one submission
//                  with no host round trip.

struct Gather {
    rows: u32,      // destination rows (in this destination chunk)
    row_words: u32, // u32 words per image row (gather_rows); unused by gather_labels
    src_row0: u32,  // first image row of the source chunk
    src_rows: u32,  // rows of the source chunk
    dst_row0: u32,  // first batch row of the destination chunk
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<storage, read> order: array<u32>;
@group(0) @binding(1) var<storage, read_write> cursor: array<u32>;
@group(0) @binding(2) var<storage, read> src: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<u32>;
@group(0) @binding(4) var<uniform> g: Gather;

@compute @workgroup_size(256)
fn gather_rows(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (i >= g.rows * g.row_words) {
        return;
    }
    let r = i / g.row_words;
    let w = i % g.row_words;
    let s = order[cursor[0] + g.dst_row0 + r];
    if (s < g.src_row0 || s >= g.src_row0 + g.src_rows) {
        return;
    }
    dst[i] = src[(s - g.src_row0) * g.row_words + w];
}

@compute @workgroup_size(64)
fn gather_labels(@builtin(global_invocation_id) gid: vec3<u32>) {
    let w = gid.x;
    if (w * 4u >= g.rows) {
        return;
    }
    var v = 0u;
    for (var j = 0u; j < 4u; j++) {
        let r = w * 4u + j;
        if (r < g.rows) {
            let s = order[cursor[0] + r];
            let y = (src[s >> 2u] >> ((s & 3u) * 8u)) & 255u;
            v |= y << (8u * j);
        }
    }
    dst[w] = v;
}

struct Advance {
    rows: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(5) var<storage, read_write> loss: array<f32>;
@group(0) @binding(6) var<storage, read> table: array<f32>;
@group(0) @binding(7) var<uniform> a: Advance;

@compute @workgroup_size(1)
fn advance() {
    cursor[0] += a.rows;
    cursor[1] += 1u;
    let s = cursor[1];
    loss[2] = table[2u * s];
    loss[3] = table[2u * s + 1u];
}

struct GatherTex {
    rows: u32,           // batch rows
    cols: u32,           // texels per image row
    src_layer_rows: u32, // image rows per layer of the train set's texture
    dst_layer_rows: u32, // image rows per layer of the batch's texture
}

@group(0) @binding(8) var src_t: texture_2d_array<u32>;
@group(0) @binding(9) var dst_t: texture_storage_2d_array<rgba32uint, write>;
@group(0) @binding(10) var<uniform> gt: GatherTex;

// Grid: x = texel columns (64 per group), y = batch rows.
@compute @workgroup_size(64)
fn gather_tex(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let r = gid.y;
    if (c >= gt.cols || r >= gt.rows) {
        return;
    }
    let s = order[cursor[0] + r];
    let v = textureLoad(src_t, vec2<u32>(c, s % gt.src_layer_rows), s / gt.src_layer_rows, 0);
    textureStore(dst_t, vec2<u32>(c, r % gt.dst_layer_rows), r / gt.dst_layer_rows, v);
}
