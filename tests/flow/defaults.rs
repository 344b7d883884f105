//! Defaults a user can trust, through the binary where it matters: configs are found from
//! any folder, a run records where and how it computed and a rerun from its config.json
//! reuses that, `auto` says why it chose its backend, and the CPU's sparse path is picked
//! by a fixed rule.

use crate::common;
use crate::common::{ok, run, stderr};
use rprop_lab::config::Config;
use rprop_lab::cpu::fused::{CpuMatmul, SparseSets, SPARSE_MIN_ROWS};
use rprop_lab::model::{Layout, Params};

const SMALL: [&str; 8] = [
    "--train-set-size",
    "1000",
    "--eval-set-size",
    "400",
    "--epochs",
    "2",
    "-q",
    "--no-test",
];

fn bin_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_rprop-lab"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn configs_are_found_from_any_folder_and_a_miss_says_where_it_looked() {
    let d = tempfile::tempdir().unwrap();
    let mut args = vec!["train", "--config", "configs/rprop-minus.json", "--backend"];
    args.extend(["cpu", "--out", "run"]);
    args.extend(SMALL);
    ok(&bin_in(d.path(), &args));
    assert_eq!(
        Config::load(&d.path().join("run/config.json"))
            .unwrap()
            .optimizer
            .name(),
        "rprop-minus"
    );
    let o = bin_in(d.path(), &["verify", "--config", "configs/nope.json"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    let bundled = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/nope.json");
    assert!(
        e.contains("configs/nope.json: no such config file (looked in configs/nope.json, ")
            && e.contains(&bundled.display().to_string()),
        "{e}"
    );
    // A glob the shell left unexpanded: expanded in the bundled configs, sorted.
    let mut args = vec!["compare", "--configs", "configs/irprop-*.json", "--backend"];
    args.extend(["cpu", "--out", "cmp"]);
    args.extend(&SMALL[..7]);
    let text = ok(&bin_in(d.path(), &args));
    assert!(
        text.contains("| irprop-minus |") && text.contains("| irprop-plus |"),
        "{text}"
    );
    assert!(!text.contains("| rprop-minus |"), "{text}");
}

#[test]
fn a_run_records_its_settings_and_a_rerun_from_its_config_reuses_them() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a");
    let mut args = vec!["train", "--optimizer", "irprop-plus", "--backend", "cpu"];
    args.extend(["--cpu-matmul", "sparse", "--out", a.to_str().unwrap()]);
    args.extend(SMALL);
    ok(&run(&args));
    let cfg = Config::load(&a.join("config.json")).unwrap();
    assert_eq!(cfg.run.backend.as_deref(), Some("cpu"));
    assert_eq!(cfg.run.cpu_matmul.as_deref(), Some("sparse"));
    assert_eq!(cfg.run.matmul_kernel, None);
    // No option given: the rerun takes backend and CPU matmul from the config (the rule
    // alone would run 1,000 images dense), so it ends bit-identical.
    let b = d.path().join("b");
    let cfg_a = a.join("config.json");
    let args = [
        "train",
        "--config",
        cfg_a.to_str().unwrap(),
        "--out",
        b.to_str().unwrap(),
        "-q",
        "--no-test",
    ];
    ok(&run(&args));
    let cfg_b = Config::load(&b.join("config.json")).unwrap();
    assert_eq!(cfg_b.run, cfg.run);
    common::assert_same_checkpoints(&a, &b);
    // An option still wins over the record.
    let c = d.path().join("c");
    let mut args = args.to_vec();
    args[4] = c.to_str().unwrap();
    args.extend(["--cpu-matmul", "dense"]);
    ok(&run(&args));
    let cfg_c = Config::load(&c.join("config.json")).unwrap();
    assert_eq!(cfg_c.run.cpu_matmul.as_deref(), Some("dense"));
    // A bad recorded value is an error naming the key.
    let bad = d.path().join("bad.json");
    std::fs::write(&bad, r#"{"optimizer": "sgd", "cpu_matmul": "fast"}"#).unwrap();
    let o = run(&["train", "--config", bad.to_str().unwrap(), "--out", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("key `cpu_matmul`"), "{}", stderr(&o));
}

#[test]
fn auto_says_why_it_chose_its_backend() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("r");
    let mut args = vec![
        "train",
        "--optimizer",
        "sgd",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(&SMALL[..6]);
    args.push("--no-test");
    let o = run(&args);
    ok(&o);
    let e = stderr(&o);
    let line = e.lines().find(|l| l.starts_with("training ")).unwrap_or("");
    assert!(line.contains(" [auto: "), "{e}");
    // Never a software adapter over the CPU backend.
    let software = rprop_lab::gpu::select_adapter(&rprop_lab::gpu::instance(), None)
        .map(|a| a.get_info().device_type == wgpu::DeviceType::Cpu);
    if !matches!(software, Ok(false)) {
        assert!(line.contains("training sgd on cpu "), "{line}");
        let cfg = Config::load(&out.join("config.json")).unwrap();
        assert_eq!(cfg.run.backend.as_deref(), Some("cpu"));
    }
}

/// `n` MNIST-like rows (a fifth of the pixels lit, or `dense`: all of them), normalized.
fn images(n: usize, dense: bool) -> Vec<f32> {
    (0..n * 784)
        .map(|i| {
            let lit = dense || (i * 7919) % 5 == 0;
            if lit {
                (2.0 * ((i % 251) as f32 + 4.0) / 255.0) - 1.0
            } else {
                -1.0
            }
        })
        .collect()
}

#[test]
fn the_cpu_sparse_path_is_chosen_by_a_fixed_rule() {
    let p = Params::init(Layout::MNIST, 0);
    let choose = |n: usize, dense: bool, choice| {
        let x = images(n, dense);
        let y = vec![0u8; n];
        SparseSets::choose(choice, &p, (&x, &y), &x[..784])
    };
    assert!(choose(SPARSE_MIN_ROWS, false, CpuMatmul::Auto)
        .train
        .is_some());
    let small = choose(SPARSE_MIN_ROWS - 1, false, CpuMatmul::Auto);
    assert!(small.train.is_none(), "{}", small.note);
    assert!(
        small.note.contains("9999 train images < 10000"),
        "{}",
        small.note
    );
    let dense = choose(SPARSE_MIN_ROWS, true, CpuMatmul::Auto);
    assert!(dense.train.is_none(), "{}", dense.note);
    assert!(choose(SPARSE_MIN_ROWS, false, CpuMatmul::Dense)
        .train
        .is_none());
    assert!(choose(10, false, CpuMatmul::Sparse).train.is_some());
    assert_eq!(CpuMatmul::default(), CpuMatmul::Auto);
}
