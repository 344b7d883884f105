//! `compare` runs each config where and as it says (issue 25, items 4 and 5): configs of
//! other networks, backends or CPU matmul strategies each get their own backend, and each
//! run ends bit-identical to `train` of the same config alone.

use std::path::Path;

use crate::capped::{ok, run, tiny_data};
use crate::common::{assert_same_checkpoints, tensors};

/// The tiny sets and epochs, with no backend option: each config says where it runs.
fn sizes(data: &Path) -> Vec<String> {
    [
        "--train-set-size",
        "200",
        "--train-batch-size",
        "200",
        "--eval-set-size",
        "100",
        "--eval-batch-size",
        "100",
        "-q",
        "--epochs",
        "3",
        "--data-dir",
        data.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

/// Writes config `name`.json holding `text` into `dir`; returns its path as text.
fn config(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(format!("{name}.json"));
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// `compare --configs CONFIGS --out OUT` on the tiny sets, then for each config the same
/// run by `train` alone: the two must hold the same weights and state, bit for bit.
fn compare_matches_train_alone(d: &Path, data: &Path, configs: &[(&str, &str)]) {
    let paths: Vec<String> = configs.iter().map(|(n, t)| config(d, n, t)).collect();
    let mut args: Vec<String> = vec!["compare".into(), "--configs".into()];
    args.extend(paths.iter().cloned());
    args.extend(["--out".into(), "C".into()]);
    args.extend(sizes(data));
    ok(&run(d, &args));
    for ((name, _), path) in configs.iter().zip(&paths) {
        let alone = format!("alone-{name}");
        let mut t: Vec<String> = ["train", "--config", path, "--out", &alone, "--no-test"]
            .map(String::from)
            .to_vec();
        t.extend(sizes(data));
        ok(&run(d, &t));
        let (a, b) = (d.join("C").join(name), d.join(&alone));
        assert_same_checkpoints(&a, &b);
        let rec = |dir: &Path| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap()
        };
        for key in ["backend", "cpu_matmul", "hidden"] {
            assert_eq!(rec(&a)[key], rec(&b)[key], "{name}: recorded {key}");
        }
    }
}

// Item 4: configs whose hidden layers differ ([16], [8], [16, 8]) each train their own
// network: exit 0, every run as `train` gives it alone.
#[test]
fn configs_of_other_hidden_layers_each_get_their_network() {
    let d = tempfile::tempdir().unwrap();
    let base = r#""optimizer": "rprop-plus", "backend": "cpu", "cpu_matmul": "dense""#;
    let data = tiny_data(d.path());
    compare_matches_train_alone(
        d.path(),
        &data,
        &[
            ("h16", &format!(r#"{{{base}, "hidden": [16]}}"#)),
            ("h8", &format!(r#"{{{base}, "hidden": [8]}}"#)),
            ("h16-8", &format!(r#"{{{base}, "hidden": [16, 8]}}"#)),
        ],
    );
    let fc1 = |name: &str| {
        let t = tensors(&d.path().join("C").join(name).join("best.safetensors"));
        t.iter()
            .find(|(n, _)| n == "fc1.weight")
            .map(|(_, b)| b.len() / 4)
            .unwrap()
    };
    assert_eq!((fc1("h16"), fc1("h8")), (16 * 784, 8 * 784));
}

// Item 5: a dense config, a sparse one, then a dense one again (same sets and batches):
// each runs with the matmul it names, and records it.
#[test]
fn each_config_runs_with_the_cpu_matmul_it_names() {
    let d = tempfile::tempdir().unwrap();
    let cfg =
        |m: &str| format!(r#"{{"optimizer": "adam", "backend": "cpu", "cpu_matmul": "{m}"}}"#);
    // MNIST's images, mostly zeros, where the sparse products sum in another order.
    compare_matches_train_alone(
        d.path(),
        &crate::common::mnist_dir(),
        &[
            ("dense", &cfg("dense")),
            ("sparse", &cfg("sparse")),
            ("dense2", &cfg("dense")),
        ],
    );
    // The two strategies round differently (Adam steps by the gradients' values, not only
    // their signs), so a run on the other one would show.
    let w = |n: &str| tensors(&d.path().join("C").join(n).join("last.safetensors"));
    assert!(
        w("dense") != w("sparse"),
        "dense and sparse runs are identical"
    );
    assert!(w("dense") == w("dense2"));
}
