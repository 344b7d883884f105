// optimizer.wgsl: one fused optimizer step over every weight of the flat parameter vector, in
// place: the Rprop family (variants 0-3) and SGD, RMSprop, Adam, Quickprop (4-7).
// CPU twin: cpu::optimizer (rules in optim.rs, followed operation by operation; the Rprop
// variants are bit-identical to it).
//
// Buffers (all [len] f32, the flat parameter layout): w (weights), g (gradients), and three
// state slots named for Rprop (step, prev_grad, prev_change; what the other optimizers keep
// there is in optim.rs's table); loss = [E_t, E_{t-1}, adam_step_size, adam_bc2_sqrt] (E_t
// written by reduce.wgsl's metrics_final; `finish` then stores E_t as E_{t-1}, so no host
// round trip; the host writes Adam's per-step bias corrections before each submission).
//
//   every optimizer: g += weight_decay * w   (fused multiply-add, as torch)
//   s    = sign(g * prev_grad)                 (sign of the f32 product; 0 for 0 and NaN)
//   step = min(max(step * f, step_min), step_max),  f = eta+ (s > 0), eta- (s < 0), 1 (s = 0)
//   variant 0 Rprop-:  descend
//   variant 1 Rprop+:  s < 0 ? backtrack : descend
//   variant 2 iRprop+: s < 0 ? (E_t > E_{t-1} ? backtrack : prev_change = prev_grad = 0)
//                            : descend
//   variant 3 iRprop-: descend with g = 0 where s < 0
//   descend:   dw = -sign(g) * step; w += dw; prev_change = dw; prev_grad = g
//   backtrack: dw = -prev_change;    w += dw; prev_change = dw; prev_grad = 0
//   4 SGD:       buf = momentum * buf + g; d = nesterov ? g + momentum * buf : buf (or g
//                without momentum); w -= lr * d                       (buf: prev_change)
//   5 RMSprop:   sq = alpha * sq + (1 - alpha) * g^2; avg = sqrt(sq) + eps;
//                w -= lr * g / avg, or buf = momentum * buf + g / avg; w -= lr * buf
//                                                       (sq: step, buf: prev_change)
//   6 Adam:      m += (1 - beta1) * (g - m); v = beta2 * v + (1 - beta2) * g^2;
//                w -= step_size * m / (sqrt(v) / bc2_sqrt + eps)  (m: prev_grad, v: step)
//   7 Quickprop: slope s = -g; no previous change: dw = lr * s; else the parabola step
//                dw_prev * s / (s_prev - s), capped at mu * dw_prev, plus lr * s while s
//                keeps the previous change's direction        (prev_grad, prev_change)

struct Hyp {
    len: u32,
    variant: u32,
    eta_minus: f32,
    eta_plus: f32,
    step_min: f32,
    step_max: f32,
    lr: f32,
    weight_decay: f32,
    momentum: f32,
    nesterov: u32,
    alpha: f32,
    one_minus_alpha: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    mu: f32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
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
fn optimizer(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
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
    if (h.weight_decay != 0.0) {
        gi = fma(wi, h.weight_decay, gi);
    }
    if (h.variant >= 4u) {
        var sq = step[i];
        switch h.variant {
            case 4u: {
                var d = gi;
                if (h.momentum != 0.0) {
                    pc = pc * h.momentum + gi;
                    d = pc;
                    if (h.nesterov != 0u) {
                        d = fma(pc, h.momentum, gi);
                    }
                }
                wi = fma(d, -h.lr, wi);
            }
            case 5u: {
                sq = fma(h.one_minus_alpha * gi, gi, sq * h.alpha);
                let avg = sqrt(sq) + h.eps;
                if (h.momentum > 0.0) {
                    pc = pc * h.momentum + gi / avg;
                    wi = fma(pc, -h.lr, wi);
                } else {
                    wi = wi + (-h.lr * gi) / avg;
                }
            }
            case 6u: {
                pg = pg + h.one_minus_beta1 * (gi - pg);
                sq = fma(h.one_minus_beta2 * gi, gi, sq * h.beta2);
                let denom = sqrt(sq) / loss[3] + h.eps;
                wi = wi + (-loss[2] * pg) / denom;
            }
            default: {
                let s = -gi;
                let sp = -pg;
                let shrink = h.mu / (1.0 + h.mu);
                var dw = 0.0;
                var quad = 0.0;
                if (sp - s != 0.0) {
                    quad = pc * s / (sp - s);
                }
                if (pc > 0.0) {
                    if (s > 0.0) {
                        dw = h.lr * s;
                    }
                    if (s > shrink * sp) {
                        dw += h.mu * pc;
                    } else {
                        dw += quad;
                    }
                } else if (pc < 0.0) {
                    if (s < 0.0) {
                        dw = h.lr * s;
                    }
                    if (s < shrink * sp) {
                        dw += h.mu * pc;
                    } else {
                        dw += quad;
                    }
                } else {
                    dw = h.lr * s;
                }
                wi += dw;
                pc = dw;
                pg = gi;
            }
        }
        w[i] = wi;
        step[i] = sq;
        prev_grad[i] = pg;
        prev_change[i] = pc;
        return;
    }
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

// After every optimizer invocation has read E_{t-1}: E_{t-1} = E_t.
@compute @workgroup_size(1)
fn finish() {
    loss[1] = loss[0];
}
