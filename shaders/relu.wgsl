// relu.wgsl: the ReLU and its backward mask, element-wise over n*hidden values.
// CPU twins: cpu::relu and cpu::relu_backward.
//
//   forward:  h[i]  = z[i] if z[i] > 0 else +0            (z, h: [n, hidden] row-major)
//   backward: dz[i] = 0 if z[i] <= 0 else dh[i]           (dh kept: verify reads it)
//
// Written with select() on the same comparisons as the CPU so -0, NaN and 0 behave alike.
// The register matmul strategy fuses the forward into its epilogue (fwd_x_reg); the tiled
// strategy uses this pass. Grid: 256 invocations per group, groups on a 2-D grid (row-major)
// so n*hidden may exceed 65535 groups.

struct Len {
    len: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<storage, read> z: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Len;
@group(0) @binding(3) var<storage, read> dh: array<f32>;

fn index(lid: vec3<u32>, wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn relu_fwd(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(lid, wid, nwg);
    if (i < p.len) {
        let v = z[i];
        dst[i] = select(0.0, v, v > 0.0);
    }
}

@compute @workgroup_size(256)
fn relu_bwd(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(lid, wid, nwg);
    if (i < p.len) {
        dst[i] = select(dh[i], 0.0, z[i] <= 0.0);
    }
}
