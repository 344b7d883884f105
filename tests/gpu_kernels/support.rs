//! Inputs the kernel tests share: synthetic MNIST-like sets and forced matmul strategies.

use rprop_lab::data::Dataset;
use rprop_lab::gpu::{GpuOptions, Strategy};
use rprop_lab::rng::Rng;

/// MNIST-like synthetic images: ~60% zero pixels, the rest random bytes.
pub fn dataset(n: usize, rows: usize, cols: usize, classes: usize, seed: u64) -> Dataset {
    let mut r = Rng::new(seed);
    let images = (0..n * rows * cols)
        .map(|_| {
            if r.unit() < 0.6 {
                0
            } else {
                (r.next_u64() % 256) as u8
            }
        })
        .collect();
    let labels = (0..n)
        .map(|_| (r.next_u64() % classes as u64) as u8)
        .collect();
    Dataset {
        images,
        labels,
        rows,
        cols,
    }
}

/// Backend options forcing matmul strategy `k`.
pub fn opts(k: Strategy) -> GpuOptions {
    GpuOptions {
        matmul_kernel: Some(k),
        ..Default::default()
    }
}

/// The bits of each value, for bit-for-bit comparisons.
pub fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|f| f.to_bits()).collect()
}
