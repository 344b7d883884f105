//! The CPU backend's results do not depend on its thread count, so a sweep may give each
//! trial a pool of any size (and `run-trial` on a cluster node any number of cores).

use rprop_lab::backend::Backend;
use rprop_lab::cpu::fused::CpuMatmul;
use rprop_lab::cpu::CpuBackend;
use rprop_lab::data;
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::Variant;

/// The weights after 4 epochs of `v` on the dataset in `dir`, in a pool of `threads`.
fn trained(dir: &std::path::Path, v: Variant, matmul: CpuMatmul, threads: usize) -> Vec<u32> {
    let learn = data::load(dir, data::Part::Learn).unwrap();
    let (train, eval) = data::split(&learn, 250, 50).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let layout = Layout::with_hidden(784, &[24, 12], 10).unwrap();
        let params = Params::init(layout, 3);
        let mut b = CpuBackend::new(&train, &eval, params, v, v.defaults()).with_matmul(matmul);
        assert!(
            b.name().contains(&format!("{threads} threads")),
            "{}",
            b.name()
        );
        for _ in 0..4 {
            b.epoch().unwrap();
        }
        b.params()
            .unwrap()
            .data
            .iter()
            .map(|x| x.to_bits())
            .collect()
    })
}

#[test]
fn one_thread_or_three_give_the_same_weights() {
    let d = tempfile::tempdir().unwrap();
    crate::common::write_dataset(d.path(), 300, 10, 28);
    for (v, m) in [
        (Variant::IrpropPlus, CpuMatmul::Dense),
        (Variant::Adam, CpuMatmul::Dense),
        (Variant::IrpropPlus, CpuMatmul::Sparse),
    ] {
        let one = trained(d.path(), v, m, 1);
        assert_eq!(one, trained(d.path(), v, m, 3), "{v} {m:?}");
        // The run moved the weights: the comparison is not of two untouched inits.
        let init = Params::init(Layout::with_hidden(784, &[24, 12], 10).unwrap(), 3);
        let init: Vec<u32> = init.data.iter().map(|x| x.to_bits()).collect();
        assert_ne!(one, init, "{v}");
    }
}
