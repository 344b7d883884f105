//! The sparse first-layer kernels (shaders/sparse_first.wgsl) against their CPU twin
//! `cpu_sparse::forward_rows`, on odd shapes: rows not a multiple of the 8- and 16-row
//! blocks, a hidden width below one 128-wide block, rows with no nonzero pixel, and a 4-pixel
//! word zero in some images only. Tolerance 1e-5 relative to the largest |Z1| (sums over the
//! same nonzeros, in another order; block_z1 adds exact zeros too).

mod common;

use rprop_lab::cpu_sparse::{self, SparseImages};
use rprop_lab::gpu::ops::sparse::{pack_blocks, SparseKernel, SparseZ1Probe};
use rprop_lab::gpu::{GpuContext, Needs};
use rprop_lab::rng::Rng;

fn sparse_z1_kernels_match_the_cpu_twin() {
    let mut ctx = GpuContext::new(
        None,
        Needs {
            binding: 1 << 20,
            buffer: 1 << 20,
        },
    )
    .unwrap();
    let mut r = Rng::new(5);
    for (rows, inputs, hidden) in [(37, 36, 32), (50, 784, 128), (16, 8, 144)] {
        let mut pixels: Vec<u8> = (0..rows * inputs)
            .map(|_| match r.unit() < 0.8 {
                true => 0,
                false => (r.next_u64() % 256) as u8,
            })
            .collect();
        pixels[..inputs].fill(0); // an empty row
        let u = SparseImages::from_pixels(&pixels, inputs).unwrap();
        let w1: Vec<f32> = (0..hidden * inputs).map(|_| r.unit() - 0.5).collect();
        let b1: Vec<f32> = (0..hidden).map(|_| r.unit() - 0.5).collect();
        let (wt, c) = cpu_sparse::first_layer_consts(&w1, &b1, inputs);
        let mut want = vec![0f32; rows * hidden];
        cpu_sparse::forward_rows(&u, 0, &wt, &c, &mut want);
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.1);
        let probe = SparseZ1Probe::new(&ctx, &u, &w1, &b1).unwrap();
        for k in [
            SparseKernel::Buffer,
            SparseKernel::Texture,
            SparseKernel::Block,
        ] {
            probe.run(&mut ctx, k, 1).unwrap();
            let z = probe.read_z(&mut ctx).unwrap();
            let d = z
                .iter()
                .zip(&want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                d / scale < 1e-5,
                "{k:?} {rows}x{inputs}x{hidden}: Z1 differs by {:e}",
                d / scale
            );
        }
    }
}

/// block_z1's word lists: a word is listed for a 16-image block iff some image of the block
/// has a nonzero pixel in it; pixels packed lowest byte first.
fn block_lists_name_the_nonzero_words() {
    let (rows, inputs) = (20, 12);
    let mut pixels = vec![0u8; rows * inputs];
    pixels[3 * inputs + 5] = 7; // block 0, word 1
    pixels[17 * inputs + 8] = 9; // block 1, word 2
    pixels[17 * inputs + 11] = 1; // block 1, word 2 again
    let u = SparseImages::from_pixels(&pixels, inputs).unwrap();
    let (xs, starts, list) = pack_blocks(&u);
    assert_eq!(starts, [0, 1, 2]);
    assert_eq!(list, [1, 2]);
    assert_eq!(xs[3 * 3 + 1], 7 << 8);
    assert_eq!(xs[17 * 3 + 2], 9 | 1 << 24);
    assert_eq!(xs.iter().filter(|&&w| w != 0).count(), 2);
}

fn main() {
    common::gpu::main_with(
        &[(
            "sparse_z1_kernels_match_the_cpu_twin",
            sparse_z1_kernels_match_the_cpu_twin,
        )],
        &[(
            "block_lists_name_the_nonzero_words",
            block_lists_name_the_nonzero_words,
        )],
    )
}
