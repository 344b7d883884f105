//! The backend's state across epochs: two runs give the same bits, a restart leaves nothing of
//! the run before it, and an epoch is one submission and 32 bytes read back.

use rprop_lab::backend::{Backend, RunStart};
use rprop_lab::gpu::{GpuBackend, Strategy};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, OptimState, Variant};

use crate::common::gpu::{strategies, GpuTest};
use crate::support::{bits, dataset, opts};

pub const TESTS: &[GpuTest] = &[
    (
        "backend::training_is_deterministic",
        training_is_deterministic,
    ),
    (
        "backend::restart_is_bit_identical_to_a_fresh_backend",
        restart_is_bit_identical_to_a_fresh_backend,
    ),
    (
        "backend::restart_with_another_layout_is_refused",
        restart_with_another_layout_is_refused,
    ),
    (
        "backend::an_epoch_is_one_submission_and_32_bytes_read",
        an_epoch_is_one_submission_and_32_bytes_read,
    ),
];

fn training_is_deterministic() {
    let l = Layout::new(64, 32, 10);
    let train = dataset(3000, 8, 8, 10, 5);
    let eval = dataset(500, 8, 8, 10, 6);
    for k in strategies(&Strategy::ALL) {
        let run = || {
            let p = Params::init(l, 3);
            let (v, h) = (Variant::IrpropPlus, Hyper::default());
            let mut g = GpuBackend::new(&train, &eval, p, v, h, &opts(k)).unwrap();
            let stats: Vec<_> = (0..3).map(|_| g.epoch().unwrap()).collect();
            (stats, bits(&g.params().unwrap().data))
        };
        let (s1, p1) = run();
        let (s2, p2) = run();
        assert_eq!(s1, s2, "{k}: metrics differ between two runs");
        assert_eq!(p1, p2, "{k}: weights differ between two runs");
        // And training did move the weights.
        assert_ne!(bits(&Params::init(l, 3).data), p1);
    }
}

/// (stats bits, params bits, state bits) after 3 epochs.
type Run = (Vec<[u32; 6]>, Vec<u32>, Vec<u32>);

fn run3(g: &mut GpuBackend) -> Run {
    let stats = (0..3)
        .map(|_| {
            let s = g.epoch().unwrap();
            [
                s.train.loss.to_bits(),
                s.train.correct,
                s.train.samples,
                s.eval.loss.to_bits(),
                s.eval.correct,
                s.eval.samples,
            ]
        })
        .collect();
    let p = g.params().unwrap();
    let st = g.state().unwrap();
    let mut sb = bits(&st.step);
    sb.extend(bits(&st.prev_grad));
    sb.extend(bits(&st.prev_change));
    sb.push(st.prev_loss.to_bits());
    (stats, bits(&p.data), sb)
}

fn restart_is_bit_identical_to_a_fresh_backend() {
    let l = Layout::new(64, 32, 10);
    let train = dataset(700, 8, 8, 10, 21);
    let eval = dataset(90, 8, 8, 10, 22);
    let h2 = Hyper {
        eta_plus: 1.3,
        ..Hyper::default()
    };
    for k in strategies(&Strategy::ALL) {
        // A first run with another variant, hyper-parameters and seed leaves every buffer
        // dirty; the restarted run must not notice.
        let (p1, v1) = (Params::init(l, 1), Variant::RpropPlus);
        let mut g = GpuBackend::new(&train, &eval, p1, v1, Hyper::default(), &opts(k)).unwrap();
        run3(&mut g);
        let p2 = Params::init(l, 2);
        let s2 = OptimState::new(p2.data.len(), &h2);
        g.restart(RunStart::new(
            p2.clone(),
            s2.clone(),
            Variant::IrpropPlus,
            h2,
        ))
        .unwrap();
        let restarted = run3(&mut g);
        assert_eq!(g.counters().submissions, 3 + 5, "{k}: counters restart");
        let mut fresh = GpuBackend::with_state(
            &train,
            &eval,
            RunStart::new(p2, s2, Variant::IrpropPlus, h2),
            &opts(k),
        )
        .unwrap();
        assert_eq!(g.name(), fresh.name(), "{k}: name");
        let f = run3(&mut fresh);
        assert_eq!(restarted.0, f.0, "{k}: epoch stats differ after restart");
        assert_eq!(restarted.1, f.1, "{k}: weights differ after restart");
        assert_eq!(
            restarted.2, f.2,
            "{k}: optimizer state differs after restart"
        );
    }
}

fn restart_with_another_layout_is_refused() {
    let l = Layout::new(64, 32, 10);
    let train = dataset(700, 8, 8, 10, 21);
    let eval = dataset(90, 8, 8, 10, 22);
    for k in strategies(&Strategy::ALL) {
        let (p, v, h) = (Params::init(l, 1), Variant::IrpropPlus, Hyper::default());
        let mut g = GpuBackend::new(&train, &eval, p, v, h, &opts(k)).unwrap();
        let other = Params::init(Layout::new(64, 16, 10), 0);
        let so = OptimState::new(other.data.len(), &h);
        assert!(
            g.restart(RunStart::new(other, so, v, h)).is_err(),
            "{k}: another layout"
        );
    }
}

fn an_epoch_is_one_submission_and_32_bytes_read() {
    let set = dataset(100, 28, 28, 10, 9);
    let p = Params::init(Layout::MNIST, 0);
    let (v, h) = (Variant::RpropMinus, Hyper::default());
    let mut g = GpuBackend::new(&set, &set, p, v, h, &opts(Strategy::Register)).unwrap();
    let c0 = g.counters();
    for _ in 0..3 {
        g.epoch().unwrap();
    }
    let c1 = g.counters();
    assert_eq!(c1.submissions - c0.submissions, 3);
    assert_eq!(c1.bytes_read - c0.bytes_read, 3 * 32);
}
