// optimizer.wgsl: one fused optimizer step over every weight of the flat parameter vector, in
// place. One function per optimizer, the twin of its rule in src/optim/NAME.rs (followed
// operation by operation; the Rprop variants are bit-identical to it), and a dispatch with
// one case per registered optimizer (the case is its registry entry's `wgsl_case`).
//
// Buffers (all [len] f32, the flat parameter layout): w (weights), g (gradients), and three
// state slots named for Rprop (step, prev_grad, prev_change; what each optimizer keeps there
// is its registry entry's `slots`); loss = [E_t, E_{t-1}, adam_step_size, adam_bc2_sqrt] (E_t
// written by reduce.wgsl's metrics_final; `finish` then stores E_t as E_{t-1}, so no host
// round trip; the host writes Adam's per-step bias corrections before each submission).
// Every optimizer first adds the L2 term: g += weight_decay * w (fused multiply-add, as torch).

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

// One weight and its three state slots (optim::Elem).
struct Elem {
    w: f32,
    step: f32,
    pg: f32,
    pc: f32,
}

// Rprop's step adaptation (optim::rprop::adapt_step); returns sign(g * prev_grad).
fn adapt(e: ptr<function, Elem>, gi: f32) -> i32 {
    let prod = gi * (*e).pg;
    var s = 0;
    var f = 1.0;
    if (prod > 0.0) {
        s = 1;
        f = h.eta_plus;
    } else if (prod < 0.0) {
        s = -1;
        f = h.eta_minus;
    }
    (*e).step = min(max((*e).step * f, h.step_min), h.step_max);
    return s;
}

// descend: dw = -sign(g) * step; w += dw; prev_change = dw; prev_grad = g
fn descend(e: ptr<function, Elem>, gi: f32) {
    let dw = descent(gi, (*e).step);
    (*e).w += dw;
    (*e).pc = dw;
    (*e).pg = gi;
}

// backtrack: dw = -prev_change; w += dw; prev_change = dw; prev_grad = 0
fn backtrack(e: ptr<function, Elem>) {
    let dw = neg((*e).pc);
    (*e).w += dw;
    (*e).pc = dw;
    (*e).pg = 0.0;
}

fn rprop_minus(e: ptr<function, Elem>, gi: f32) {
    adapt(e, gi);
    descend(e, gi);
}

fn rprop_plus(e: ptr<function, Elem>, gi: f32) {
    if (adapt(e, gi) < 0) {
        backtrack(e);
    } else {
        descend(e, gi);
    }
}

fn irprop_plus(e: ptr<function, Elem>, gi: f32, loss_up: bool) {
    if (adapt(e, gi) < 0) {
        if (loss_up) {
            backtrack(e);
        } else {
            (*e).pc = 0.0;
            (*e).pg = 0.0;
        }
    } else {
        descend(e, gi);
    }
}

fn irprop_minus(e: ptr<function, Elem>, gi: f32) {
    if (adapt(e, gi) < 0) {
        descend(e, 0.0);
    } else {
        descend(e, gi);
    }
}

// SGD: buf (prev_change) = momentum * buf + g; d = nesterov ? g + momentum * buf : buf (or
// g without momentum); w -= lr * d
fn sgd(e: ptr<function, Elem>, gi: f32) {
    var d = gi;
    if (h.momentum != 0.0) {
        (*e).pc = (*e).pc * h.momentum + gi;
        d = (*e).pc;
        if (h.nesterov != 0u) {
            d = fma((*e).pc, h.momentum, gi);
        }
    }
    (*e).w = fma(d, -h.lr, (*e).w);
}

// RMSprop: sq (step) = alpha * sq + (1 - alpha) * g^2; avg = sqrt(sq) + eps;
// w -= lr * g / avg, or buf (prev_change) = momentum * buf + g / avg; w -= lr * buf
fn rmsprop(e: ptr<function, Elem>, gi: f32) {
    (*e).step = fma(h.one_minus_alpha * gi, gi, (*e).step * h.alpha);
    let avg = sqrt((*e).step) + h.eps;
    if (h.momentum > 0.0) {
        (*e).pc = (*e).pc * h.momentum + gi / avg;
        (*e).w = fma((*e).pc, -h.lr, (*e).w);
    } else {
        (*e).w = (*e).w + (-h.lr * gi) / avg;
    }
}

// Adam: m (prev_grad) += (1 - beta1) * (g - m); v (step) = beta2 * v + (1 - beta2) * g^2;
// w -= step_size * m / (sqrt(v) / bc2_sqrt + eps)
fn adam(e: ptr<function, Elem>, gi: f32) {
    (*e).pg = (*e).pg + h.one_minus_beta1 * (gi - (*e).pg);
    (*e).step = fma(h.one_minus_beta2 * gi, gi, (*e).step * h.beta2);
    let denom = sqrt((*e).step) / loss[3] + h.eps;
    (*e).w = (*e).w + (-loss[2] * (*e).pg) / denom;
}

// Quickprop: slope s = -g; no previous change: dw = lr * s; else the parabola step
// dw_prev * s / (s_prev - s), capped at mu * dw_prev, plus lr * s while s keeps the previous
// change's direction
fn quickprop(e: ptr<function, Elem>, gi: f32) {
    let s = -gi;
    let sp = -(*e).pg;
    let pc = (*e).pc;
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
    (*e).w += dw;
    (*e).pc = dw;
    (*e).pg = gi;
}

// GRprop (slr and sag): Rprop-'s step adaptation only; the pick, the sum and the move
// follow in grprop.wgsl.
fn grprop_adapt(e: ptr<function, Elem>, gi: f32) {
    adapt(e, gi);
}

// L-BFGS's step is not per weight: its algorithm (src/optim/lbfgs.rs) drives the kernels of
// lbfgs.wgsl and the backend's passes; its case leaves the weight as it is.
fn lbfgs(e: ptr<function, Elem>, gi: f32) {
}

// The dispatch: one explicit case per registered optimizer (Spec::wgsl_case); a code with
// no case writes NaN everywhere, so a missing case fails every check instead of running
// another optimizer.
@compute @workgroup_size(256)
fn optimizer(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (i >= h.len) {
        return;
    }
    var gi = g[i];
    var e = Elem(w[i], step[i], prev_grad[i], prev_change[i]);
    if (h.weight_decay != 0.0) {
        gi = fma(e.w, h.weight_decay, gi);
    }
    switch h.variant {
        case 0u: { rprop_minus(&e, gi); }
        case 1u: { rprop_plus(&e, gi); }
        case 2u: { irprop_plus(&e, gi, loss[0] > loss[1]); }
        case 3u: { irprop_minus(&e, gi); }
        case 4u: { sgd(&e, gi); }
        case 5u: { rmsprop(&e, gi); }
        case 6u: { adam(&e, gi); }
        case 7u: { quickprop(&e, gi); }
        case 8u: { grprop_adapt(&e, gi); }
        case 9u: { grprop_adapt(&e, gi); }
        case 20u: { lbfgs(&e, gi); }
        default: {
            let nan = bitcast<f32>(0x7fc00000u);
            e = Elem(nan, nan, nan, nan);
        }
    }
    w[i] = e.w;
    step[i] = e.step;
    prev_grad[i] = e.pg;
    prev_change[i] = e.pc;
}

// After every optimizer invocation has read E_{t-1}: E_{t-1} = E_t.
@compute @workgroup_size(1)
fn finish() {
    loss[1] = loss[0];
}
