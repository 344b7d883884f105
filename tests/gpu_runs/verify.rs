//! `verify` on the GPU: every tensor of a step against the CPU computed from the GPU's state,
//! for every optimizer on deep nets and mini-batches, each matmul strategy's own path, and
//! L-BFGS's multi-evaluation step; its comparison flags a mismatch.

use rprop_lab::gpu::Strategy;
use rprop_lab::optim::Variant;

use crate::common;
use crate::common::gpu::{strategies, GpuTest};

pub const TESTS: &[GpuTest] = &[
    (
        "verify::prints_a_line_for_every_tensor_and_passes",
        prints_a_line_for_every_tensor_and_passes,
    ),
    (
        "verify::passes_for_deep_nets_and_mini_batches_with_every_optimizer",
        passes_for_deep_nets_and_mini_batches_with_every_optimizer,
    ),
    (
        "verify::passes_with_the_sparse_matmul_kernel",
        passes_with_the_sparse_matmul_kernel,
    ),
    (
        "verify::texture_mini_batches_match_the_cpu",
        texture_mini_batches_match_the_cpu,
    ),
    (
        "verify::passes_for_lbfgs_without_a_line_search",
        passes_for_lbfgs_without_a_line_search,
    ),
    (
        "verify::passes_for_lbfgs_with_strong_wolfe",
        passes_for_lbfgs_with_strong_wolfe,
    ),
    (
        "verify::passes_for_lbfgs_with_a_full_history",
        passes_for_lbfgs_with_a_full_history,
    ),
];

pub const CPU_TESTS: &[GpuTest] = &[("verify::diff_flags_a_mismatch", diff_flags_a_mismatch)];

/// `verify` of `steps` steps on 900 train / 100 eval images in batches of `batch`, with
/// `args` (optimizer, network, strategy): asserts it passes every tensor; returns its output.
fn verify_passes(args: &[&str], batch: &str, steps: &str, what: &str) -> String {
    let sets = [
        "--steps",
        steps,
        "--train-set-size",
        "900",
        "--train-batch-size",
        batch,
        "--eval-set-size",
        "100",
        "--eval-batch-size",
        "100",
    ];
    let o = common::run(&[&["verify"][..], args, &sets].concat());
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what}: {text}{}",
        common::stderr(&o)
    );
    assert!(!text.contains("FAIL"), "{what}: {text}");
    assert!(text.trim_end().ends_with("verify: PASS"), "{what}: {text}");
    text
}

/// Full batch, one hidden layer: a line for each intermediate, gradient and state tensor.
fn prints_a_line_for_every_tensor_and_passes() {
    for config in ["configs/irprop-plus.json", "configs/quickprop.json"] {
        let o = common::run(&[
            "verify",
            "--config",
            config,
            "--steps",
            "2",
            "--train-set-size",
            "700",
            "--train-batch-size",
            "700",
            "--eval-set-size",
            "100",
            "--eval-batch-size",
            "100",
        ]);
        let text = String::from_utf8_lossy(&o.stdout);
        let err = common::stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{text}{err}");
        for t in [
            "Z1",
            "H1",
            "Z2",
            "loss",
            "dZ2",
            "dW2",
            "db2",
            "dH",
            "dW1",
            "db1",
            "weights",
            "step sizes",
            "prev grads",
            "prev changes",
        ] {
            let line = format!("  {t}");
            assert!(text.contains(&line), "{config}: no line for {t}:\n{text}");
        }
        assert!(!text.contains("FAIL"), "{text}");
        assert!(text.trim_end().ends_with("verify: PASS"), "{text}");
    }
}

fn passes_for_deep_nets_and_mini_batches_with_every_optimizer() {
    // L-BFGS's multi-evaluation step has its own tests below.
    let optimizers: Vec<&str> = Variant::ALL
        .iter()
        .filter(|v| !v.is_multi_eval())
        .map(|v| v.name())
        .collect();
    // Each optimizer on a deep net, once full-batch (900 rows) and once on mini-batches of a
    // size that leaves a short last batch; the report's one-hidden-layer net too.
    for (i, optimizer) in optimizers.iter().enumerate() {
        for (hidden, batch) in [
            ("48,20,12", "900"),
            ("40,16", ["300", "250"][i % 2]),
            ("128", "400"),
        ] {
            // One hidden layer of 128 is the config's default.
            let net: &[&str] = match hidden {
                "128" => &[],
                _ => &["--hidden", hidden],
            };
            let what = format!("{optimizer}, hidden {hidden}, batch {batch}");
            let args = [&["--optimizer", *optimizer][..], net].concat();
            let text = verify_passes(&args, batch, "3", &what);
            let last = hidden.split(',').count() + 1;
            for t in [
                format!("Z{last}"),
                format!("dZ{last}"),
                format!("dW{last}"),
                "dW1".to_string(),
                "weights".to_string(),
            ] {
                assert!(text.contains(&format!("  {t} ")), "{what}: no {t}:\n{text}");
            }
        }
    }
}

/// The sparse strategy's Z1 (block_z1 over the packed set) within verify's tolerances
/// (Z: norm-relative 1e-5), full batch and on gathered mini-batches (dense Z1).
fn passes_with_the_sparse_matmul_kernel() {
    for batch in ["900", "300"] {
        let args = ["--optimizer", "irprop-minus", "--matmul-kernel", "sparse"];
        let text = verify_passes(&args, batch, "3", &format!("sparse, batch {batch}"));
        assert!(text.contains("matmul sparse"), "batch {batch}: {text}");
        assert!(text.contains("  Z1 "), "batch {batch}: no Z1:\n{text}");
    }
}

/// The texture kernels on gathered mini-batches match the CPU step by step, a short last
/// batch included (that they run: training::texture_strategy_gathers_mini_batches_into_textures).
fn texture_mini_batches_match_the_cpu() {
    if strategies(&[Strategy::Texture]).is_empty() {
        return; // named as skipped on stderr
    }
    let args = ["--optimizer", "irprop-plus", "--matmul-kernel", "texture"];
    verify_passes(&args, "250", "4", "texture, batch 250");
}

/// `verify` for a multi-evaluation step: each evaluation op by op, then the update from the
/// GPU's gradients and history; two steps, so the second starts from a history.
fn lbfgs_verify_passes(line_search: &str, history_size: &str) {
    let o = common::run(&[
        "verify",
        "--optimizer",
        "lbfgs",
        "--line-search",
        line_search,
        "--history-size",
        history_size,
        "--max-iter",
        "6",
        "--hidden",
        "32,16",
        "--steps",
        "2",
        "--train-set-size",
        "600",
        "--eval-set-size",
        "100",
        "--eval-batch-size",
        "100",
    ]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let ls = line_search;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{ls}: {text}{}",
        common::stderr(&o)
    );
    assert!(!text.contains("FAIL"), "{ls}: {text}");
    for t in [
        "dW1",
        "eval grads",
        "eval points",
        "new weights",
        "history y",
        "rho",
    ] {
        assert!(text.contains(&format!("  {t} ")), "{ls}: no {t}:\n{text}");
    }
    assert!(text.trim_end().ends_with("verify: PASS"), "{ls}: {text}");
}

fn passes_for_lbfgs_without_a_line_search() {
    lbfgs_verify_passes("none", "100");
}

fn passes_for_lbfgs_with_strong_wolfe() {
    lbfgs_verify_passes("strong-wolfe", "100");
}

/// Two pairs kept: from the third iteration on, each new pair pushes the oldest out (the
/// GPU gates it out of the two-loop on the device, then drops it).
fn passes_for_lbfgs_with_a_full_history() {
    lbfgs_verify_passes("none", "2");
}

fn diff_flags_a_mismatch() {
    use rprop_lab::verify::{diff, exact};
    assert!(diff("x", &[1.0, 2.0], &[1.0, 2.0], 1e-5).pass);
    assert!(!diff("x", &[1.0, 2.001], &[1.0, 2.0], 1e-5).pass);
    assert!(!diff("x", &[f32::NAN], &[1.0], 1e-5).pass);
    assert!(!exact("w", &[1.0], &[f32::from_bits(1.0f32.to_bits() + 1)]).pass);
    assert!(exact("w", &[-0.0, 3.0], &[-0.0, 3.0]).pass);
    assert!(!exact("w", &[0.0], &[-0.0]).pass, "signed zeros count");
}
