//! Hand-computed Rprop sequences for every variant. The hyper-parameters are powers of two
//! so every expected value below is exact in f32 and can be checked by hand.

use rprop_lab::cpu;
use rprop_lab::optim::{self, Elem, Hyper, OptimState, Variant};

/// Exact-in-binary settings: D0 = 1/8, eta+ = 2, eta- = 1/2, min = 1/32, max = 1/2.
fn hyper() -> Hyper {
    Hyper {
        lr: 0.125,
        eta_minus: 0.5,
        eta_plus: 2.0,
        step_min: 0.03125,
        step_max: 0.5,
        ..Hyper::default()
    }
}

/// Runs `variant` on one weight starting at w = 0 with the given gradients (and
/// loss-went-up flags) and returns the element after each step.
fn run(variant: Variant, grads: &[f32], loss_up: &[bool]) -> Vec<Elem> {
    let h = hyper();
    let mut e = Elem::new(0.0, &h);
    grads
        .iter()
        .zip(loss_up)
        .map(|(&g, &up)| {
            optim::apply(variant, &mut e, g, &h, up);
            e
        })
        .collect()
}

fn wsteps(seq: &[Elem]) -> Vec<(f32, f32)> {
    seq.iter().map(|e| (e.w, e.step)).collect()
}

#[test]
fn first_step_moves_by_initial_step_for_every_variant() {
    for v in Variant::report_set() {
        let s = run(v, &[3.0], &[false]);
        assert_eq!(s[0].w, -0.125, "{v}");
        assert_eq!(
            s[0].step, 0.125,
            "{v}: the first step has no previous gradient"
        );
        assert_eq!(s[0].prev_grad, 3.0, "{v}");
        assert_eq!(s[0].prev_change, -0.125, "{v}");
    }
}

#[test]
fn growth_then_cap_at_step_max() {
    // Same sign four times: D = 1/8, 1/4, 1/2, min(1, 1/2); w = -(1/8+1/4+1/2+1/2).
    for v in Variant::report_set() {
        let s = run(v, &[1.0; 4], &[false; 4]);
        assert_eq!(
            wsteps(&s),
            vec![
                (-0.125, 0.125),
                (-0.375, 0.25),
                (-0.875, 0.5),
                (-1.375, 0.5)
            ],
            "{v}"
        );
    }
}

#[test]
fn rprop_minus_shrinks_to_floor_and_keeps_moving() {
    // Alternating signs: D = 1/8, 1/16, 1/32, max(1/64, 1/32) -> floor 1/32.
    let s = run(Variant::RpropMinus, &[1.0, -1.0, 1.0, -1.0], &[false; 4]);
    assert_eq!(
        wsteps(&s),
        vec![
            (-0.125, 0.125),
            (-0.0625, 0.0625),
            (-0.09375, 0.03125),
            (-0.0625, 0.03125)
        ]
    );
    assert_eq!(s[3].prev_grad, -1.0, "Rprop- always remembers g");
}

#[test]
fn rprop_plus_backtracks_and_forgets_gradient() {
    // +,+ (w = -1/8, -3/8), then - : D halves to 1/8 and the last change (-1/4) is undone;
    // gp = 0, so the next step (product 0) moves by -sign(g)*D with D unchanged.
    let s = run(Variant::RpropPlus, &[1.0, 1.0, -1.0, -1.0], &[false; 4]);
    assert_eq!(
        wsteps(&s),
        vec![
            (-0.125, 0.125),
            (-0.375, 0.25),
            (-0.125, 0.125),
            (0.0, 0.125)
        ]
    );
    assert_eq!(s[2].prev_grad, 0.0);
    assert_eq!(s[2].prev_change, 0.25);
    assert_eq!(s[3].prev_grad, -1.0);
}

#[test]
fn irprop_plus_backtracks_only_when_loss_went_up() {
    let up = run(
        Variant::IrpropPlus,
        &[1.0, 1.0, -1.0, -1.0],
        &[false, false, true, false],
    );
    assert_eq!(
        wsteps(&up),
        vec![
            (-0.125, 0.125),
            (-0.375, 0.25),
            (-0.125, 0.125),
            (0.0, 0.125)
        ]
    );
    let down = run(
        Variant::IrpropPlus,
        &[1.0, 1.0, -1.0, -1.0],
        &[false, false, false, false],
    );
    assert_eq!(
        wsteps(&down),
        vec![
            (-0.125, 0.125),
            (-0.375, 0.25),
            (-0.375, 0.125),
            (-0.25, 0.125)
        ]
    );
    assert_eq!(down[2].prev_grad, 0.0, "gp = 0 either way");
    assert_eq!(down[2].prev_change, 0.0, "no move when the loss went down");
    assert_eq!(up[2].prev_grad, 0.0);
}

#[test]
fn irprop_minus_does_not_move_on_sign_change() {
    let s = run(Variant::IrpropMinus, &[1.0, 1.0, -1.0, -1.0], &[true; 4]);
    assert_eq!(
        wsteps(&s),
        vec![
            (-0.125, 0.125),
            (-0.375, 0.25),
            (-0.375, 0.125),
            (-0.25, 0.125)
        ]
    );
    assert_eq!(s[2].prev_grad, 0.0);
}

#[test]
fn zero_gradient_never_moves_a_weight() {
    for v in Variant::report_set() {
        // From a state with history: previous gradient and change set.
        let h = hyper();
        let mut e = Elem {
            w: 1.0,
            step: 0.25,
            prev_grad: -2.0,
            prev_change: 0.25,
        };
        optim::apply(v, &mut e, 0.0, &h, true);
        assert_eq!(e.w, 1.0, "{v}");
        assert_eq!(e.step, 0.25, "{v}: product 0 keeps the step");
        assert_eq!(e.prev_grad, 0.0, "{v}");
    }
}

#[test]
fn step_sizes_follow_f32_clamp_of_product_like_pytorch() {
    // The report's hyper-parameters: the step after k growths is the f32 product chain
    // 1e-3 * 1.2 * 1.2 ..., each rounded, then clamped (not 1e-3 * 1.2^k in f64).
    let h = Hyper::default();
    let mut e = Elem::new(0.0, &h);
    let mut expect = 1e-3f32;
    optim::apply(Variant::IrpropMinus, &mut e, 1.0, &h, false);
    for _ in 0..60 {
        optim::apply(Variant::IrpropMinus, &mut e, 1.0, &h, false);
        expect = (expect * 1.2f32).clamp(1e-6, 50.0);
        assert_eq!(e.step.to_bits(), expect.to_bits());
    }
    assert_eq!(e.step, 50.0, "capped at step_max");
    // An f32 product that underflows to zero is no sign change (as torch's g.mul(prev)).
    let mut e = Elem {
        w: 0.0,
        step: 0.5,
        prev_grad: 1e-30,
        prev_change: 0.0,
    };
    optim::apply(Variant::IrpropMinus, &mut e, -1e-30, &h, false);
    assert_eq!(e.step, 0.5);
    assert_eq!(e.w, 0.5);
}

/// `torch.optim.Rprop`'s single-tensor step, transcribed line by line from PyTorch's
/// `_single_tensor_rprop` as an independent oracle for `irprop_minus`.
fn torch_rprop_step(
    param: &mut [f32],
    grad: &[f32],
    prev: &mut [f32],
    step_size: &mut [f32],
    h: &Hyper,
) {
    // sign = grad.mul(prev).sign(); sign[gt 0] = etaplus; sign[lt 0] = etaminus; sign[eq 0] = 1
    let sign: Vec<f32> = grad
        .iter()
        .zip(prev.iter())
        .map(|(g, p)| {
            let s = g * p;
            if s > 0.0 {
                h.eta_plus
            } else if s < 0.0 {
                h.eta_minus
            } else {
                1.0
            }
        })
        .collect();
    // step_size.mul_(sign).clamp_(step_size_min, step_size_max)
    for (st, s) in step_size.iter_mut().zip(&sign) {
        *st = (*st * s).clamp(h.step_min, h.step_max);
    }
    // grad = grad.clone(); grad[sign.eq(etaminus)] = 0
    let grad: Vec<f32> = grad
        .iter()
        .zip(&sign)
        .map(|(&g, &s)| if s == h.eta_minus { 0.0 } else { g })
        .collect();
    // param.addcmul_(grad.sign(), step_size, value=-1)
    for ((p, g), st) in param.iter_mut().zip(&grad).zip(step_size.iter()) {
        let sg = if *g > 0.0 {
            1.0
        } else if *g < 0.0 {
            -1.0
        } else {
            0.0
        };
        // value=-1: p + (-1) * (sign * step)
        *p += -(sg * st);
    }
    // prev.copy_(grad)
    prev.copy_from_slice(&grad);
}

#[test]
fn irprop_minus_matches_torch_rprop_bit_for_bit() {
    let h = Hyper::default();
    let n = 1000;
    let mut rng = rprop_lab::rng::Rng::new(7);
    let mut ours = vec![0f32; n];
    for w in &mut ours {
        *w = rng.uniform(-1.0, 1.0);
    }
    let mut theirs = ours.clone();
    let mut state = OptimState::new(n, &h);
    let mut prev = vec![0f32; n];
    let mut step = vec![h.lr; n];
    for t in 0..200 {
        // Gradients with random signs, some exact zeros and some tiny values.
        let grads: Vec<f32> = (0..n)
            .map(|i| {
                let u = rng.unit();
                if (i + t) % 17 == 0 {
                    0.0
                } else if u < 0.05 {
                    1e-25 * (u - 0.025)
                } else {
                    u - 0.45
                }
            })
            .collect();
        cpu::optimizer(Variant::IrpropMinus, &h, &mut ours, &grads, &mut state, 1.0);
        torch_rprop_step(&mut theirs, &grads, &mut prev, &mut step, &h);
        for i in 0..n {
            assert_eq!(ours[i].to_bits(), theirs[i].to_bits(), "w[{i}] at step {t}");
            assert_eq!(state.step[i].to_bits(), step[i].to_bits());
            assert_eq!(state.prev_grad[i].to_bits(), prev[i].to_bits());
        }
    }
}

#[test]
fn fused_cpu_rprop_applies_loss_comparison_and_stores_loss() {
    let h = hyper();
    let mut w = vec![0.0f32; 2];
    let mut st = OptimState::new(2, &h);
    assert_eq!(st.prev_loss, f32::INFINITY);
    cpu::optimizer(Variant::IrpropPlus, &h, &mut w, &[1.0, 1.0], &mut st, 2.0);
    assert_eq!(st.prev_loss, 2.0);
    cpu::optimizer(Variant::IrpropPlus, &h, &mut w, &[-1.0, 1.0], &mut st, 3.0);
    // Loss went up (3 > 2): weight 0 backtracks to 0, weight 1 keeps descending.
    assert_eq!(w, vec![0.0, -0.375]);
    cpu::optimizer(Variant::IrpropPlus, &h, &mut w, &[1.0, -1.0], &mut st, 1.0);
    // Weight 0: gp was zeroed, so it moves by D = 1/16; weight 1 flips with loss down: stays.
    assert_eq!(w, vec![-0.0625, -0.375]);
}
