// lbfgs_admit.wgsl: torch's history test for L-BFGS's newest pair, on the device, so the
// two-loop recursion that follows needs no read-back (CPU twin cpu::lbfgs::lbfgs_admit).
//
//   joins      = ys > 1e-10                 (ys = y.s, yy = y.y of the pair, in sc)
//   rho        = 1 / ys
//   h_diag     = ys / yy if joins, else unchanged
//   act[pair]  = joins                      (1.0 or 0.0: the gate of the pair's kernels)
//   act[first] = !joins                     (only when the history is full: the oldest pair
//                                            leaves when the new one joins)
//   reset != 0: h_diag = 1 and nothing else (a run's first iteration).
//
// Buffers: sc [words] (gpu::ops::lbfgs::Words), every field below a word index of it.
// WGSL's division may differ from the CPU's by a few ulp (WGSL allows 2.5); lavapipe's
// agrees.

struct Admit {
    ys: u32,
    yy: u32,
    h_diag: u32,
    rho: u32,
    act: u32,
    // NONE unless the history is full.
    first_act: u32,
    reset: u32,
    _p0: u32,
}

const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<storage, read_write> sc: array<f32>;
@group(0) @binding(1) var<uniform> a: Admit;

@compute @workgroup_size(1)
fn lbfgs_admit() {
    if (a.reset != 0u) {
        sc[a.h_diag] = 1.0;
        return;
    }
    let ys = sc[a.ys];
    // 1e-10 rounded to f32, as the CPU's `ys > 1e-10` compares (bits, not a literal whose
    // conversion WGSL leaves to either neighbour).
    let joins = ys > bitcast<f32>(0x2edbe6ffu);
    sc[a.rho] = 1.0 / ys;
    if (joins) {
        sc[a.h_diag] = ys / sc[a.yy];
    }
    sc[a.act] = select(0.0, 1.0, joins);
    if (a.first_act != NONE) {
        sc[a.first_act] = select(1.0, 0.0, joins);
    }
}
