//! GPU kernels one by one at the report's size (50,000 train / 10,000 eval MNIST-shaped
//! images), and one whole epoch on the GPU and on the CPU in the same run.
//!
//! Matmul throughput is reported as criterion "elements" per second where one element is
//! one floating-point operation: read `Gelem/s` as GFLOP/s.
//!
//! cargo bench --bench gpu_kernels [--matmul-kernel is not a criterion flag: set
//! RPROP_LAB_MATMUL=tiled|register|texture|sparse instead. criterion is built without its
//! plotting, which panics on machines without fonts]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rprop_lab::backend::Backend;
use rprop_lab::cpu::CpuBackend;
use rprop_lab::data::Dataset;
use rprop_lab::gpu::kernels::Stage;
use rprop_lab::gpu::{self, GpuBackend, GpuOptions};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, Variant};
use rprop_lab::rng::Rng;

fn dataset(n: usize, seed: u64) -> Dataset {
    let mut r = Rng::new(seed);
    Dataset {
        images: (0..n * 784)
            .map(|_| {
                if r.unit() < 0.8 {
                    0
                } else {
                    (r.next_u64() % 256) as u8
                }
            })
            .collect(),
        labels: (0..n).map(|_| (r.next_u64() % 10) as u8).collect(),
        rows: 28,
        cols: 28,
    }
}

fn benches(c: &mut Criterion) {
    if gpu::adapters(&gpu::instance()).is_empty() {
        eprintln!("no GPU adapter: nothing to bench (apt-get install mesa-vulkan-drivers)");
        return;
    }
    let (train, eval) = (dataset(50_000, 1), dataset(10_000, 2));
    let params = Params::init(Layout::MNIST, 0);
    let (v, h) = (Variant::IrpropPlus, Hyper::default());
    let opts = GpuOptions {
        matmul_kernel: std::env::var("RPROP_LAB_MATMUL")
            .ok()
            .and_then(|s| s.parse().ok()),
        verbose: true,
        ..Default::default()
    };
    let mut g = match GpuBackend::new(&train, &eval, params.clone(), v, h, &opts) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("GPU backend failed: {e:#}");
            return;
        }
    };
    eprintln!("benching {}", g.name());
    let n = 50_000u64;
    let (i, hid, k) = (784u64, 128, 10);
    let kernels: [(&str, &[Stage], u64); 10] = [
        (
            "matmul Z1=XW1^T+b1 (+relu)",
            &[Stage::Z1, Stage::Relu],
            2 * n * i * hid,
        ),
        ("matmul Z2=HW2^T+b2", &[Stage::ZLater], 2 * n * hid * k),
        ("matmul dW2=dZ2^T H", &[Stage::DWLater], 2 * n * hid * k),
        (
            "matmul dH=dZ2 W2 (+relu mask)",
            &[Stage::DH, Stage::ReluBackward],
            2 * n * hid * k,
        ),
        ("matmul dW1=dZ1^T X", &[Stage::DW1], 2 * n * i * hid),
        ("softmax_xent", &[Stage::SoftmaxXent], n),
        ("reduce metrics", &[Stage::Metrics], n),
        ("reduce db1", &[Stage::DB1], n * hid),
        ("reduce db2", &[Stage::DBLater], n * k),
        ("rprop", &[Stage::Optimizer], Layout::MNIST.total() as u64),
    ];
    let mut group = c.benchmark_group("gpu kernel");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (name, stages, elems) in kernels {
        group.throughput(Throughput::Elements(elems));
        group.bench_function(name, |b| b.iter(|| g.run_stages(stages, 1).expect("GPU")));
    }
    group.finish();

    // One full-batch epoch (train step + eval), GPU vs CPU, same data, same run.
    let mut group = c.benchmark_group("epoch 50k+10k");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    group.bench_function("gpu", |b| b.iter(|| g.epoch().expect("GPU epoch")));
    let mut cpu = CpuBackend::new(&train, &eval, params, v, h);
    group.bench_function("cpu", |b| b.iter(|| cpu.epoch().expect("CPU epoch")));
    group.finish();
    let c = g.counters();
    eprintln!(
        "gpu counters over the bench: {} submissions, {} bytes read back",
        c.submissions, c.bytes_read
    );
}

criterion_group!(gpu_benches, benches);
criterion_main!(gpu_benches);
