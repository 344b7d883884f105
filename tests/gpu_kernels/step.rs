//! The whole training step, kernel by kernel, against the CPU computed from the GPU's own state
//! (verify's check), on odd shapes, chunked images and the full MNIST size, for every matmul
//! strategy the adapter runs; then the eval pass's metrics.

use rprop_lab::backend::{Backend, RunStart};
use rprop_lab::cpu::{self, CpuBackend};
use rprop_lab::data::{normalize, Dataset};
use rprop_lab::gpu::buffers::blocks::usable;
use rprop_lab::gpu::{GpuBackend, GpuOptions, Strategy};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{Hyper, Variant};
use rprop_lab::verify::check_step;

use crate::common::gpu::{strategies, GpuTest};
use crate::support::{dataset, opts};

pub const TESTS: &[GpuTest] = &[
    (
        "step::every_kernel_matches_the_cpu_on_odd_shapes",
        every_kernel_matches_the_cpu_on_odd_shapes,
    ),
    (
        "step::every_kernel_matches_the_cpu_with_images_in_chunks",
        every_kernel_matches_the_cpu_with_images_in_chunks,
    ),
    (
        "step::full_mnist_size_step_matches_the_cpu",
        full_mnist_size_step_matches_the_cpu,
    ),
    (
        "step::normalization_is_bit_exact_for_every_pixel_value",
        normalization_is_bit_exact_for_every_pixel_value,
    ),
];

fn lavapipe(g: &GpuBackend) -> bool {
    g.adapter_info().name.contains("llvmpipe")
}

/// Checks that the forced strategy of `o` really runs its kernels on layout `l`.
fn assert_strategy_engaged(g: &GpuBackend, l: Layout, o: &GpuOptions) {
    if o.matmul_kernel == Some(Strategy::Texture)
        && l.inputs.is_multiple_of(4)
        && l.hidden.is_multiple_of(4)
    {
        // lavapipe has the 8-lane subgroups the texture kernels need: make sure they ran.
        assert!(
            g.uses_textures() || !lavapipe(g),
            "texture strategy without textures"
        );
    }
    if o.matmul_kernel == Some(Strategy::Sparse) {
        // Forced, the sparse strategy packs any set whose layout block_z1 takes.
        let one_binding = g.image_chunks().0 == 1;
        assert_eq!(
            g.uses_blocks(),
            usable(l) && one_binding,
            "{l:?}: sparse Z1"
        );
    }
}

/// Runs `steps` GPU steps on a layout and checks every intermediate against the CPU
/// computed from the GPU's state (verify's check), then the eval pass metrics. Returns the
/// image bindings per set.
fn check_layout(
    l: Layout,
    n: usize,
    n_eval: usize,
    variant: Variant,
    o: &GpuOptions,
    steps: usize,
) -> (usize, usize) {
    let train = dataset(n, 1, l.inputs, l.classes, 1);
    let eval = dataset(n_eval, 1, l.inputs, l.classes, 2);
    let h = Hyper::default();
    let mut g =
        GpuBackend::new(&train, &eval, Params::init(l, 7), variant, h, o).expect("GPU backend");
    assert_strategy_engaged(&g, l, o);
    let x = cpu::normalize_images(&train);
    for step in 0..steps {
        let p = g.params().unwrap();
        let st = g.state().unwrap();
        let dump = g.debug_step().unwrap();
        let diffs = check_step(&p, &st, &dump, &x, &train.labels, variant, &h);
        let bad: Vec<String> = diffs.iter().filter(|d| !d.pass).map(|d| d.line()).collect();
        assert!(
            bad.is_empty(),
            "{l:?} n={n} {:?} step {step}:\n{}",
            o.matmul_kernel,
            bad.join("\n")
        );
    }
    // The eval pass of an epoch: same metrics as the CPU's eval from the updated weights.
    let s = g.epoch().unwrap();
    let (p, st) = (g.params().unwrap(), g.state().unwrap());
    let e = CpuBackend::with_state(&train, &eval, RunStart::new(p, st, variant, h)).eval();
    assert_eq!(s.eval.samples, e.samples);
    assert!(
        (s.eval.loss - e.loss).abs() <= 1e-5 * e.loss.abs().max(1.0),
        "eval loss gpu {} cpu {}",
        s.eval.loss,
        e.loss
    );
    assert!(
        s.eval.correct.abs_diff(e.correct) <= 1,
        "eval correct gpu {} cpu {}",
        s.eval.correct,
        e.correct
    );
    g.image_chunks()
}

fn every_kernel_matches_the_cpu_on_odd_shapes() {
    // 4-aligned but not multiples of any tile: the register kernels' edge handling.
    let aligned = Layout::new(20, 12, 10);
    // Not 4-aligned, 13 classes: the generic fallbacks of the register strategy.
    let ragged = Layout::new(21, 13, 13);
    // Hidden in blocks of 16, rows not: the sparse strategy's block_z1 and its edges.
    let blocky = Layout::new(24, 32, 10);
    for k in strategies(&Strategy::ALL) {
        let shapes = [
            (aligned, 1),
            (aligned, 37),
            (ragged, 1),
            (ragged, 67),
            (blocky, 37),
        ];
        for (l, n) in shapes {
            check_layout(l, n, 5, Variant::IrpropPlus, &opts(k), 2);
        }
    }
}

fn every_kernel_matches_the_cpu_with_images_in_chunks() {
    // A 1 KiB cap on one image binding splits 300 images of 40 pixels into 12 bindings:
    // Z1 per chunk, dW1 summed over chunks.
    let l = Layout::new(40, 16, 10);
    for k in strategies(&Strategy::ALL) {
        let o = GpuOptions {
            max_binding_bytes: Some(1024),
            ..opts(k)
        };
        let chunks = check_layout(l, 300, 50, Variant::RpropPlus, &o, 2);
        assert_eq!(chunks, (12, 2), "{k}: image bindings per set");
    }
}

fn full_mnist_size_step_matches_the_cpu() {
    // N = 50,000 at the MNIST shape: every kernel, including the forward matmul (and, for
    // the texture strategy, images over several texture layers).
    for k in strategies(&[Strategy::Register, Strategy::Texture, Strategy::Sparse]) {
        check_layout(
            Layout::MNIST,
            50_000,
            1000,
            Variant::IrpropMinus,
            &opts(k),
            1,
        );
    }
}

fn normalization_is_bit_exact_for_every_pixel_value() {
    // W1 = identity, b1 = 0: Z1 is the normalized pixels themselves, which must equal
    // data::normalize bit for bit for all 256 values.
    let l = Layout::new(8, 8, 10);
    let images: Vec<u8> = (0..256u32).map(|p| p as u8).collect();
    let train = Dataset {
        images,
        labels: vec![0; 32],
        rows: 1,
        cols: 8,
    };
    let mut p = Params::zeros(l);
    let w1 = l.tensors()[0].offset;
    for j in 0..8 {
        p.data[w1 + j * 8 + j] = 1.0;
    }
    for k in strategies(&Strategy::ALL) {
        let h = Hyper::default();
        let mut g =
            GpuBackend::new(&train, &train, p.clone(), Variant::RpropMinus, h, &opts(k)).unwrap();
        let dump = g.debug_step().unwrap();
        for (i, (&z, &px)) in dump.z1().iter().zip(&train.images).enumerate() {
            assert_eq!(
                z.to_bits(),
                normalize(px).to_bits(),
                "{k}: pixel {px} (#{i})"
            );
        }
    }
}
