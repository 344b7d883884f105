//! One full-batch training step of the CPU backend on 50,000 MNIST images (forward, loss,
//! gradient, Rprop update), and the 10,000-image eval pass. Target: step <= 0.2 s on 2 cores.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rprop_lab::cpu::CpuBackend;
use rprop_lab::data::{self, Part};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, Variant};

fn bench(c: &mut Criterion) {
    let learn = data::load(std::path::Path::new("data/mnist"), Part::Learn).expect("bundled MNIST");
    let (train, eval) = data::split(&learn, 50_000, 10_000).expect("split");
    let params = Params::init(Layout::MNIST, 0);
    let mut b = CpuBackend::new(&train, &eval, params, Variant::IrpropPlus, Hyper::default());
    // Three products of 50,000 x 784 x 128 (Z1, dW1) and the small ones, 2 flops per MAC.
    let flops = 2 * 50_000u64 * (784 * 128 * 2 + 128 * 10 * 3);
    let mut g = c.benchmark_group("cpu");
    g.sample_size(10);
    g.throughput(Throughput::Elements(flops));
    g.bench_function("train_step_50k", |bn| bn.iter(|| b.step()));
    g.throughput(Throughput::Elements(2 * 10_000 * (784 * 128 + 128 * 10)));
    g.bench_function("eval_10k", |bn| bn.iter(|| b.eval()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
