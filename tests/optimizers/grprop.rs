//! GRprop's rule by hand: the pick (slr: smallest step, sag: smallest |g|, weights with g = 0
//! left out, ties to the lowest index), the chosen step from the others' sum, and the sum's
//! fixed order (the GPU's reduction tree).

use rprop_lab::cpu;
use rprop_lab::optim::grprop::{grprop_pick, grprop_sum, tree, Pick, BLOCK};
use rprop_lab::optim::{Hyper, OptimState, Variant};

fn state(step: &[f32]) -> OptimState {
    let mut st = OptimState::new(step.len(), &Hyper::default());
    st.step = step.to_vec();
    st
}

#[test]
fn slr_and_sag_pick_their_weight_and_solve_for_its_step() {
    let h = Hyper::default();
    let g = [-1.0f32, 0.5, 0.0, 2.0];
    // Weight 2 has the smallest step but g = 0: not a candidate. No previous gradient, so
    // no step adapts.
    let step = [0.1f32, 0.2, 0.05, 0.3];
    let (w0, v_slr, v_sag) = (
        vec![1.0f32; 4],
        "grprop-slr".parse::<Variant>().unwrap(),
        "grprop-sag".parse::<Variant>().unwrap(),
    );
    // slr: i = 0 (step 0.1); sum = 0.2 * 0.5 + 0.3 * 2 = 0.7; step_0 = -(0.7 + 1e-6) / -1.
    let mut w = w0.clone();
    let mut st = state(&step);
    cpu::optimizer(v_slr, &h, &mut w, &g, &mut st, 1.0);
    let s0 = -(0.2f32 * 0.5 + 0.3 * 2.0 + 1e-6) / -1.0;
    assert_eq!(st.step, vec![s0, 0.2, 0.05, 0.3]);
    assert_eq!(w, vec![1.0 + s0, 1.0 - 0.2, 1.0, 1.0 - 0.3]);
    assert_eq!(st.prev_grad, g.to_vec());
    assert_eq!(st.prev_change, vec![s0, -0.2, -0.0, -0.3]);
    // The point of the rule: with step_0 solved for, sum_j step_j * g_j = -delta.
    let first_order: f32 = (0..4).map(|j| st.step[j] * g[j]).sum();
    assert!((first_order + 1e-6).abs() < 1e-6, "{first_order}");
    // sag: i = 1 (|g| 0.5); sum = 0.1 * -1 + 0.3 * 2 = 0.5; -(0.5 + 1e-6) / 0.5 < 0: the
    // clamp gives step_min.
    let mut w = w0.clone();
    let mut st = state(&step);
    cpu::optimizer(v_sag, &h, &mut w, &g, &mut st, 1.0);
    assert_eq!(st.step, vec![0.1, h.step_min, 0.05, 0.3]);
    assert_eq!(w, vec![1.1, 1.0 - h.step_min, 1.0, 0.7]);
}

#[test]
fn ties_go_to_the_lowest_index_and_steps_adapt_first() {
    let g = [3.0f32, 1.0, 1.0, -1.0];
    let step = [0.1f32, 0.1, 0.1, 0.2];
    assert_eq!(grprop_pick(Pick::Slr, &step, &g), Some(0));
    assert_eq!(grprop_pick(Pick::Sag, &step, &g), Some(1));
    assert_eq!(grprop_pick(Pick::Sag, &step, &[0.0; 4]), None);
    // Rprop- adaptation before the pick: weight 0's sign flips (step * 0.5 = 0.05), weight 3
    // keeps it (0.2 * 1.2 = 0.24): slr picks weight 0.
    let h = Hyper::default();
    let mut st = state(&step);
    st.prev_grad = vec![-1.0, 0.0, 0.0, -1.0];
    let mut w = vec![0.0f32; 4];
    cpu::optimizer("grprop-slr".parse().unwrap(), &h, &mut w, &g, &mut st, 1.0);
    let sum = 0.1f32 + 0.1 - 0.24000001;
    let s0 = (-(sum + h.grprop_delta) / 3.0).max(h.step_min);
    assert_eq!(st.step, vec![s0, 0.1, 0.1, 0.24000001]);
    // No weight with g != 0: nothing moves.
    let mut st = state(&step);
    let mut w = vec![0.5f32; 4];
    cpu::optimizer(
        "grprop-sag".parse().unwrap(),
        &h,
        &mut w,
        &[0.0; 4],
        &mut st,
        1.0,
    );
    assert_eq!(w, vec![0.5; 4]);
    assert_eq!(st.step, step.to_vec());
}

#[test]
fn the_sum_follows_the_reduction_tree() {
    assert_eq!(tree(1), vec![1]);
    assert_eq!(tree(BLOCK), vec![1]);
    assert_eq!(tree(BLOCK + 1), vec![2, 1]);
    assert_eq!(tree(101_824), vec![398, 2, 1]);
    // Three levels: 70,000 terms of mixed magnitude, where the order shows in the bits.
    let n = 70_000;
    let g: Vec<f32> = (0..n)
        .map(|j| ((j * 7919 % 1000) as f32 - 500.0) * 1e-3)
        .collect();
    let step: Vec<f32> = (0..n).map(|j| 1e-3 * (1 + j % 37) as f32).collect();
    let i = 12_345;
    let mut level: Vec<f32> = g
        .chunks(BLOCK)
        .enumerate()
        .map(|(b, c)| {
            let mut s = 0.0f32;
            for (k, &gj) in c.iter().enumerate() {
                let j = b * BLOCK + k;
                if j != i && gj != 0.0 {
                    s += step[j] * gj;
                }
            }
            s
        })
        .collect();
    while level.len() > 1 {
        level = level.chunks(BLOCK).map(|c| c.iter().sum()).collect();
    }
    assert_eq!(grprop_sum(&step, &g, i).to_bits(), level[0].to_bits());
    let sequential: f32 = (0..n).filter(|&j| j != i).map(|j| step[j] * g[j]).sum();
    assert_ne!(
        sequential.to_bits(),
        level[0].to_bits(),
        "pick terms where the order matters"
    );
}
