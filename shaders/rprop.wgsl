// rprop.wgsl: one fused Rprop step over every weight of the flat parameter vector, in place.
// CPU twin: cpu::rprop (rules in optim.rs, followed operation by operation so the result is
// bit-identical).
//
// Buffers (all [len] f32, the flat parameter layout): w (weights), g (gradients), step,
// prev_grad, prev_change; loss = [E_t, E_{t-1}] (E_t written by reduce.wgsl's
// metrics_final; `finish` then stores E_t as E_{t-1}, so no host round trip).
//
//   s    = sign(g * prev_grad)                 (sign of the f32 product; 0 for 0 and NaN)
//   step = min(max(step * f, step_min), step_max),  f = eta+ (s > 0), eta- (s < 0), 1 (s = 0)
//   variant 0 Rprop-:  descend
//   variant 1 Rprop+:  s < 0 ? backtrack : descend
//   variant 2 iRprop+: s < 0 ? (E_t > E_{t-1} ? backtrack : prev_change = prev_grad = 0)
//                            : descend
//   variant 3 iRprop-: descend with g = 0 where s < 0
//   descend:   dw = -sign(g) * step; w += dw; prev_change = dw; prev_grad = g
//   backtrack: dw = -prev_change;    w += dw; prev_change = dw; prev_grad = 0

struct Hyp {
    len: u32,
    variant: u32,
    eta_minus: f32,
    eta_plus: f32,
    step_min: f32,
    step_max: f32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<storage, read_write> w: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> step: array<f32>;
@group(0) @binding(3) var<storage, read_write> prev_grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> prev_change: array<f32>;
@group(0) @binding(5) var<storage, read_write> loss: array<f32>;
@group(0) @binding(6) var<uniform> h: Hyp;

// -x by flipping the sign bit: exact for zeros too (the compiler may not keep -0.0 from
// `0.0 - x` or fold `-sign(0) * step` to +0.0, and prev_change must match bit for bit).
fn neg(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) ^ 0x80000000u);
}

// -sign(g) * step as the CPU rounds it: -step, step, or a zero whose sign is that of
// -0.0 * step (-0.0 for a positive step). NaN g counts as 0, like optim::sign.
fn descent(g: f32, st: f32) -> f32 {
    if (g > 0.0) {
        return neg(st);
    }
    if (g < 0.0) {
        return st;
    }
    return bitcast<f32>((bitcast<u32>(st) & 0x80000000u) ^ 0x80000000u);
}

@compute @workgroup_size(256)
fn rprop(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (i >= h.len) {
        return;
    }
    let loss_up = loss[0] > loss[1];
    var gi = g[i];
    var wi = w[i];
    var pg = prev_grad[i];
    var pc = prev_change[i];
    let prod = gi * pg;
    var s = 0;
    var f = 1.0;
    if (prod > 0.0) {
        s = 1;
        f = h.eta_plus;
    } else if (prod < 0.0) {
        s = -1;
        f = h.eta_minus;
    }
    let st = min(max(step[i] * f, h.step_min), h.step_max);
    var back = false;
    var keep = false;
    if (s < 0) {
        switch h.variant {
            case 1u: { back = true; }
            case 2u: { back = loss_up; keep = !loss_up; }
            case 3u: { gi = 0.0; }
            default: {}
        }
    }
    if (back) {
        let dw = neg(pc);
        wi += dw;
        pc = dw;
        pg = 0.0;
    } else if (keep) {
        pc = 0.0;
        pg = 0.0;
    } else {
        let dw = descent(gi, st);
        wi += dw;
        pc = dw;
        pg = gi;
    }
    w[i] = wi;
    step[i] = st;
    prev_grad[i] = pg;
    prev_change[i] = pc;
}

// After every rprop invocation has read E_{t-1}: E_{t-1} = E_t.
@compute @workgroup_size(1)
fn finish() {
    loss[1] = loss[0];
}
