//! The sparse first-layer kernels against their CPU twin `cpu::sparse::forward_rows`: the
//! product's packing for `block_z1` always, and with `--features probes` the probes
//! (shaders/sparse_first.wgsl, and block_z1 through them) on odd shapes: rows not a multiple of the 8- and 16-row
//! blocks, a hidden width below one 128-wide block, rows with no nonzero pixel, and a 4-pixel
//! word zero in some images only. Tolerance 1e-5 relative to the largest |Z1| (sums over the
//! same nonzeros, in another order; block_z1 adds exact zeros too); block_dw1 against
//! `grad_rows` + `finish_grad` likewise.

#[cfg(feature = "probes")]
use rprop_lab::cpu::sparse::{self, SparseImages};
use rprop_lab::data::Dataset;
use rprop_lab::gpu::buffers::blocks::{block_lists, usable, BlockSet};
#[cfg(feature = "probes")]
use rprop_lab::gpu::ops::sparse_probes::{BlockDw1Probe, SparseKernel, SparseZ1Probe};
use rprop_lab::gpu::{GpuContext, Needs};
use rprop_lab::model::Layout;
#[cfg(feature = "probes")]
use rprop_lab::rng::Rng;

use crate::common::gpu::GpuTest;

pub const TESTS: &[GpuTest] = &[(
    "sparse::block_sets_are_packed_only_where_block_z1_may_run",
    block_sets_are_packed_only_where_block_z1_may_run,
)];

pub const CPU_TESTS: &[GpuTest] = &[(
    "sparse::block_lists_name_the_nonzero_words",
    block_lists_name_the_nonzero_words,
)];

#[cfg(feature = "probes")]
fn sparse_z1_probes_match_the_cpu_twin() {
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
        let (wt, c) = sparse::first_layer_consts(&w1, &b1, inputs);
        let mut want = vec![0f32; rows * hidden];
        sparse::forward_rows(&u, 0, &wt, &c, &mut want);
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

/// block_dw1 and block_dw1_16 (+ the fixed-order final sum) against `grad_rows` +
/// `finish_grad`, with more parts than some words have blocks, and rows not a multiple of 16;
/// block_dw1_16 refuses inputs that are not a multiple of 16.
#[cfg(feature = "probes")]
fn block_dw1_probes_match_the_cpu_twin() {
    let mut ctx = GpuContext::new(
        None,
        Needs {
            binding: 1 << 20,
            buffer: 1 << 20,
        },
    )
    .unwrap();
    let mut r = Rng::new(9);
    let shapes = [
        (37, 48, 32, 3),
        (100, 784, 128, 4),
        (16, 16, 144, 1),
        (21, 36, 16, 2),
    ];
    for (rows, inputs, hidden, parts) in shapes {
        let pixels: Vec<u8> = (0..rows * inputs)
            .map(|_| match r.unit() < 0.8 {
                true => 0,
                false => (r.next_u64() % 256) as u8,
            })
            .collect();
        let u = SparseImages::from_pixels(&pixels, inputs).unwrap();
        let dz: Vec<f32> = (0..rows * hidden).map(|_| r.unit() - 0.5).collect();
        let db: Vec<f32> = (0..hidden)
            .map(|j| (0..rows).map(|n| dz[n * hidden + j] as f64).sum::<f64>() as f32)
            .collect();
        let mut s = vec![0f32; inputs * hidden];
        sparse::grad_rows(&u, 0, &dz, hidden, &mut s);
        let mut want = vec![0f32; hidden * inputs];
        sparse::finish_grad(&s, &db, &mut want);
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.1);
        for wide in [false, true] {
            if wide && inputs % 16 != 0 {
                assert!(BlockDw1Probe::new(&ctx, &u, (&dz, &db), parts, wide).is_err());
                continue;
            }
            let probe = BlockDw1Probe::new(&ctx, &u, (&dz, &db), parts, wide).unwrap();
            probe.run(&mut ctx, 1).unwrap();
            let dw = probe.read_dw(&mut ctx).unwrap();
            let d = dw
                .iter()
                .zip(&want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                d / scale < 1e-5,
                "{rows}x{inputs}x{hidden}/{parts} wide {wide}: dW1 differs by {:e}",
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
                                  // Packed as BlockSet::for_set packs a set: 4 pixels a word, lowest byte first.
    let xs: Vec<u32> = pixels
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let (starts, list) = block_lists(&xs, inputs / 4);
    assert_eq!(starts, [0, 1, 2]);
    assert_eq!(list, [1, 2]);
    assert_eq!(xs[3 * 3 + 1], 7 << 8);
    assert_eq!(xs[17 * 3 + 2], 9 | 1 << 24);
    assert_eq!(xs.iter().filter(|&&w| w != 0).count(), 2);
}

/// The sparse strategy packs a set for block_z1 when the tuner may time it (pixel density
/// below 0.5) or it is forced, and never when the layout or one binding cannot take it.
fn block_sets_are_packed_only_where_block_z1_may_run() {
    let ctx = GpuContext::new(
        None,
        Needs {
            binding: 1 << 20,
            buffer: 1 << 20,
        },
    )
    .unwrap();
    let set = |density_of_255: usize| Dataset {
        // 40 images of 8 pixels: `density_of_255` of each 8 are 255, the rest 0.
        images: (0..40 * 8)
            .map(|i| if i % 8 < density_of_255 { 255 } else { 0 })
            .collect(),
        labels: vec![0; 40],
        rows: 1,
        cols: 8,
    };
    let (l, d) = (Layout::new(8, 16, 10), &ctx.device);
    let sparse = BlockSet::for_set(d, l, &set(2), true, false).expect("a sparse set");
    assert_eq!(sparse.density, 0.25);
    assert!(
        BlockSet::for_set(d, l, &set(4), true, false).is_none(),
        "density 0.5"
    );
    let forced = BlockSet::for_set(d, l, &set(6), true, true).expect("forced");
    assert_eq!(forced.density, 0.75);
    assert!(
        BlockSet::for_set(d, l, &set(2), false, true).is_none(),
        "several bindings"
    );
    assert!(!usable(Layout::new(8, 12, 10)) && usable(l));
    let odd = Layout::new(8, 12, 10); // hidden not in blocks of 16
    assert!(BlockSet::for_set(d, odd, &set(2), true, true).is_none());
}

/// The probes (src/gpu/ops/sparse_probes.rs) exist only with `--features probes`.
#[cfg(feature = "probes")]
pub fn probe_tests() -> Vec<GpuTest> {
    vec![
        (
            "sparse::sparse_z1_probes_match_the_cpu_twin",
            sparse_z1_probes_match_the_cpu_twin,
        ),
        (
            "sparse::block_dw1_probes_match_the_cpu_twin",
            block_dw1_probes_match_the_cpu_twin,
        ),
    ]
}

#[cfg(not(feature = "probes"))]
pub fn probe_tests() -> Vec<GpuTest> {
    Vec::new()
}
