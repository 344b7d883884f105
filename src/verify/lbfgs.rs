//! `verify` for L-BFGS, whose step makes several evaluations: the GPU runs its step with
//! every evaluation's weights, loss and gradient read back; then
//!
//! * each evaluation is checked as `verify` checks a step ([`check_step`]): the GPU's
//!   forward and backward pass at that evaluation's weights, op by op, against the CPU;
//! * the update: `cpu::lbfgs::step` on the CPU, from the GPU's weights and history before the
//!   step, fed the GPU's own losses and gradients in order, must land on the GPU's weights,
//!   direction and history (and ask for the same evaluation points) within
//!   [`UPDATE_TOL`]. Both sides run the same algorithm and reductions in the same order;
//!   on lavapipe they agree to about 1e-6 relative.

use anyhow::Result;

use super::compare::{check_step, diff, Diff, Tally, UPDATE_TOL};
use crate::gpu::lbfgs::TracedEval;
use crate::gpu::GpuBackend;
use crate::model::Params;
use crate::optim::lbfgs::{Settings, State};
use crate::optim::{Hyper, OptimState};

/// Runs `steps` L-BFGS steps on `gpu`, each checked; `(x, labels)` is the train set
/// (normalized images).
pub fn run(gpu: &mut GpuBackend, data: (&[f32], &[u8]), hyper: &Hyper, steps: usize) -> Result<()> {
    let mut tally = Tally::default();
    for step in 1..=steps {
        let p0 = crate::backend::Backend::params(gpu)?;
        let st0 = crate::backend::Backend::state(gpu)?;
        let trace = gpu.lbfgs_traced_step()?;
        let p1 = crate::backend::Backend::params(gpu)?;
        let st1 = crate::backend::Backend::state(gpu)?;
        println!(
            "step {step}: {} evaluations, first train loss {:.6} (gpu)",
            trace.len(),
            trace.first().map_or(f32::NAN, |e| e.loss)
        );
        for (k, ev) in trace.iter().enumerate() {
            println!(" evaluation {}:", k + 1);
            let diffs = check_eval(gpu, ev, &st1, data, hyper)?;
            tally.add(&format!("step {step} evaluation {}", k + 1), &diffs);
        }
        gpu.set_state(&p1, &st1)?;
        println!(" update (CPU from the GPU's gradients and history):");
        let diffs = check_update(hyper, (&p0, &st0), (&p1, &st1), &trace);
        tally.add(&format!("step {step} update"), &diffs);
    }
    tally.finish(steps)
}

/// One evaluation: the GPU's pass at its weights, op by op against the CPU, and the traced
/// loss and gradient against that pass's.
fn check_eval(
    gpu: &mut GpuBackend,
    ev: &TracedEval,
    st: &OptimState,
    (x, labels): (&[f32], &[u8]),
    hyper: &Hyper,
) -> Result<Vec<Diff>> {
    let layout = crate::backend::Backend::params(gpu)?.layout;
    let p = Params {
        layout,
        data: ev.w.clone(),
    };
    gpu.set_state(&p, st)?;
    let dump = gpu.debug_step()?;
    let mut out = check_step(&p, st, &dump, x, labels, gpu.variant(), hyper);
    out.push(diff("eval grads", &ev.g, &dump.grads, 0.0));
    out.push(diff("eval loss", &[ev.loss], &[dump.stats.loss], 1e-6));
    Ok(out)
}

/// The CPU's step from the GPU's state before it (`before`), replaying the GPU's
/// evaluations, against the GPU's state after it (`after`).
fn check_update(
    hyper: &Hyper,
    before: (&Params, &OptimState),
    after: (&Params, &OptimState),
    trace: &[TracedEval],
) -> Vec<Diff> {
    let cfg = Settings::from_hyper(hyper);
    let mut st = before.1.lbfgs.clone().unwrap_or_default();
    let mut w = before.0.data.clone();
    let (mut asked, mut k) = (Vec::new(), 0usize);
    let mut replay = |wq: &[f32], g: &mut [f32]| {
        asked.extend_from_slice(wq);
        let Some(ev) = trace.get(k) else {
            g.fill(f32::NAN);
            return f32::NAN;
        };
        k += 1;
        g.copy_from_slice(&ev.g);
        ev.loss
    };
    let out = crate::cpu::lbfgs::step(&cfg, &mut st, &mut w, &mut replay);
    let gpu_points: Vec<f32> = trace.iter().flat_map(|e| e.w.iter().copied()).collect();
    let g = after.1.lbfgs.clone().unwrap_or_default();
    let tol = UPDATE_TOL;
    let flat = |s: &State| -> (Vec<f32>, Vec<f32>) { (s.old_dirs.concat(), s.old_stps.concat()) };
    let ((gy, gs), (cy, cs)) = (flat(&g), flat(&st));
    vec![
        diff(
            "evaluations",
            &[trace.len() as f32],
            &[out.evals as f32],
            0.0,
        ),
        diff("eval points", &gpu_points, &asked, tol),
        diff("new weights", &after.0.data, &w, tol),
        diff("direction", &g.d, &st.d, tol),
        diff("prev grad", &g.prev_flat_grad, &st.prev_flat_grad, tol),
        diff("history y", &gy, &cy, tol),
        diff("history s", &gs, &cs, tol),
        diff("rho", &g.ro, &st.ro, tol),
        diff(
            "H_diag, t",
            &[g.h_diag, g.t as f32],
            &[st.h_diag, st.t as f32],
            tol,
        ),
    ]
}
