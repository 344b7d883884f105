//! `compare` runs each config where it says (issue 25, item 5), with a GPU config among
//! them: a GPU config first, then a CPU one of the same sets, each on its own backend,
//! each bit-identical to `train` of the same config alone. (The CPU-only cases are in the
//! guarantees binary: tests/guarantees/compare_backends.rs.)

use std::path::Path;

use crate::common;
use crate::common::gpu::GpuTest;

pub const TESTS: &[GpuTest] = &[(
    "compare_backends::a_gpu_config_then_a_cpu_one_each_run_where_they_say",
    a_gpu_config_then_a_cpu_one_each_run_where_they_say,
)];

const SIZES: [&str; 9] = [
    "--train-set-size",
    "300",
    "--eval-set-size",
    "100",
    "--epochs",
    "3",
    "-q",
    "--data-dir",
    "data/mnist",
];

/// config.json's record of where run `dir` computed.
fn recorded(dir: &Path, key: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()[key].clone()
}

fn a_gpu_config_then_a_cpu_one_each_run_where_they_say() {
    let d = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = d.path().join(format!("{name}.json"));
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let g = write("g", r#"{"optimizer": "adam", "backend": "gpu"}"#);
    let s = write(
        "s",
        r#"{"optimizer": "adam", "backend": "cpu", "cpu_matmul": "sparse"}"#,
    );
    let out = d.path().join("C");
    let mut args = vec![
        "compare",
        "--configs",
        &g,
        &s,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(SIZES);
    common::ok(&common::run(&args));
    assert_eq!(recorded(&out.join("g"), "backend"), "gpu");
    assert_eq!(recorded(&out.join("s"), "backend"), "cpu");
    assert_eq!(recorded(&out.join("s"), "cpu_matmul"), "sparse");
    for (name, cfg) in [("g", &g), ("s", &s)] {
        let alone = d.path().join(format!("alone-{name}"));
        let mut t = vec!["train", "--config", cfg, "--out", alone.to_str().unwrap()];
        t.extend(SIZES);
        t.push("--no-test");
        common::ok(&common::run(&t));
        common::assert_same_checkpoints(&out.join(name), &alone);
    }
}
