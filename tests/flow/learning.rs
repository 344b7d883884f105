//! Every Rprop variant of the report learns on a subset of MNIST through the CPU backend.

use crate::common;

#[test]
fn every_rprop_variant_learns_on_a_subset() {
    let learn = rprop_lab::data::load(&common::mnist_dir(), rprop_lab::data::Part::Learn).unwrap();
    let (train, eval) = rprop_lab::data::split(&learn, 2000, 500).unwrap();
    for v in rprop_lab::optim::Variant::report_set() {
        let cfg = rprop_lab::config::Config::report(v);
        let p = rprop_lab::model::Params::init(rprop_lab::model::Layout::MNIST, 0);
        let mut b = rprop_lab::cpu::CpuBackend::new(&train, &eval, p, v, cfg.hyper());
        let mut last = Default::default();
        for _ in 0..25 {
            last = rprop_lab::backend::Backend::epoch(&mut b).unwrap();
        }
        let s: rprop_lab::backend::EpochStats = last;
        assert!(
            s.eval.accuracy() > 0.8,
            "{v}: eval accuracy {}",
            s.eval.accuracy()
        );
        assert!(s.train.loss < 0.7, "{v}: train loss {}", s.train.loss);
    }
}
