//! A GPU run's numbers follow from its recorded settings: config.json records the
//! backend, adapter and matmul strategy; the strategy cache may only choose among
//! strategies with the same arithmetic, so the same command gives the same numbers whatever
//! the cache holds; a rerun from config.json, `--resume` and `verify` reuse the strategy.

use std::path::Path;

use rprop_lab::config::Config;
use rprop_lab::gpu::{self, tune, Strategy};

use crate::common;
use crate::common::gpu::GpuTest;

pub const TESTS: &[GpuTest] = &[
    (
        "settings::same_numbers_whatever_the_cache_holds",
        same_numbers_whatever_the_cache_holds,
    ),
    (
        "settings::sparse_is_chosen_by_rule_on_a_software_adapter",
        sparse_is_chosen_by_rule_on_a_software_adapter,
    ),
    (
        "settings::rerun_resume_and_verify_reuse_the_recorded_strategy",
        rerun_resume_and_verify_reuse_the_recorded_strategy,
    ),
];

const SMALL: [&str; 10] = [
    "--optimizer",
    "adam",
    "--train-set-size",
    "1000",
    "--eval-set-size",
    "200",
    "--epochs",
    "2",
    "-q",
    "--no-test",
];

fn adapter() -> wgpu::AdapterInfo {
    gpu::select_adapter(&gpu::instance(), None)
        .expect("adapter")
        .get_info()
}

/// Runs the binary with the strategy cache at `cache` (an XDG_CACHE_HOME).
fn train_with_cache(cache: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_rprop-lab"))
        .env("XDG_CACHE_HOME", cache)
        .args(args)
        .output()
        .unwrap()
}

/// The weights' bytes (the safetensors data, without the header's metadata).
fn weights(dir: &Path) -> Vec<u8> {
    let b = std::fs::read(dir.join("last.safetensors")).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    b[8 + n..].to_vec()
}

fn same_numbers_whatever_the_cache_holds() {
    let info = adapter();
    let key = tune::adapter_key(&info);
    let d = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    // An empty cache (the timing runs), a strategy a timing may choose, and one it may not
    // (it rounds differently) planted in it.
    for planted in ["", "register", "sparse"] {
        let cache = d.path().join(format!("cache-{planted}"));
        if !planted.is_empty() {
            std::fs::create_dir_all(cache.join("rprop-lab")).unwrap();
            let json = serde_json::json!({ key.clone(): planted });
            std::fs::write(cache.join("rprop-lab/matmul-kernel.json"), json.to_string()).unwrap();
        }
        let out = d.path().join(format!("run-{planted}"));
        let mut args = vec!["train", "--backend", "gpu", "--out", out.to_str().unwrap()];
        args.extend(SMALL);
        common::ok(&train_with_cache(&cache, &args));
        let cfg = Config::load(&out.join("config.json")).unwrap();
        assert_eq!(cfg.run.backend.as_deref(), Some("gpu"));
        assert_eq!(cfg.run.adapter.as_deref(), Some(info.name.as_str()));
        let k: Strategy = cfg.run.matmul_kernel.as_deref().unwrap().parse().unwrap();
        // 1,000 images: never sparse; tiled only by the hardware rule.
        let expected: &[Strategy] = if tune::software(&info) {
            &tune::TIMED
        } else {
            &[Strategy::Tiled]
        };
        assert!(expected.contains(&k), "cache {planted:?}: ran {k}");
        let m = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
        let losses: Vec<String> = m
            .lines()
            .map(|l| l.split(',').take(5).collect::<Vec<_>>().join(","))
            .collect();
        runs.push((planted, losses, weights(&out)));
    }
    for (planted, losses, w) in &runs[1..] {
        assert_eq!(losses, &runs[0].1, "cache {planted:?}: other losses");
        assert!(w == &runs[0].2, "cache {planted:?}: other weights");
    }
}

fn sparse_is_chosen_by_rule_on_a_software_adapter() {
    let info = adapter();
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("big");
    let args = [
        "train",
        "--backend",
        "gpu",
        "--optimizer",
        "irprop-plus",
        "--train-set-size",
        "10000",
        "--eval-set-size",
        "100",
        "--epochs",
        "1",
        "-q",
        "--no-test",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = train_with_cache(&d.path().join("cache"), &args);
    common::ok(&o);
    let cfg = Config::load(&out.join("config.json")).unwrap();
    let k = cfg.run.matmul_kernel.unwrap();
    if tune::software(&info) {
        assert_eq!(k, "sparse", "{}", common::stderr(&o));
        assert!(common::stderr(&o).contains("matmul kernel: sparse (rule: "));
    } else {
        assert_eq!(k, "tiled");
    }
}

fn rerun_resume_and_verify_reuse_the_recorded_strategy() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let a = d.path().join("a");
    // Register is the strategy every adapter runs and no rule picks at this size.
    let mut args = vec!["train", "--backend", "gpu", "--matmul-kernel", "register"];
    args.extend(["--out", a.to_str().unwrap()]);
    args.extend(SMALL);
    common::ok(&train_with_cache(&cache, &args));
    let b = d.path().join("b");
    let cfg_a = a.join("config.json");
    let rerun = [
        "train",
        "--config",
        cfg_a.to_str().unwrap(),
        "--out",
        b.to_str().unwrap(),
        "-q",
        "--no-test",
    ];
    common::ok(&train_with_cache(&cache, &rerun));
    let cfg_b = Config::load(&b.join("config.json")).unwrap();
    assert_eq!(cfg_b.run.matmul_kernel.as_deref(), Some("register"));
    assert_eq!(cfg_b.run.backend.as_deref(), Some("gpu"));
    assert!(weights(&a) == weights(&b), "the rerun ended elsewhere");
    let resume = [
        "train",
        "--resume",
        b.to_str().unwrap(),
        "--epochs",
        "3",
        "-q",
    ];
    let o = train_with_cache(&cache, &[&resume[..], &["--no-test"]].concat());
    common::ok(&o);
    let cfg_b = Config::load(&b.join("config.json")).unwrap();
    assert_eq!(cfg_b.run.matmul_kernel.as_deref(), Some("register"));
    let verify = [
        "verify",
        "--config",
        cfg_a.to_str().unwrap(),
        "--steps",
        "1",
    ];
    let text = common::ok(&train_with_cache(&cache, &verify));
    assert!(text.contains("matmul register"), "{text}");
}
