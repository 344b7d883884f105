//! Config parsing and checks (errors name the key), and safetensors checkpoints.

mod common;

use std::collections::HashSet;
use std::path::Path;

use rprop_lab::checkpoint;
use rprop_lab::config::{Config, KEYS, RECORDED, RUN_KEYS};
use rprop_lab::model::{Layout, Params};
use rprop_lab::optim::{OptimState, Variant, SETTINGS};

fn configs_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

#[test]
fn bundled_configs_are_the_reports() {
    for v in Variant::report_set() {
        let cfg = Config::load(&configs_dir().join(format!("{}.json", v.name()))).unwrap();
        assert_eq!(cfg, Config::report(v));
        assert_eq!(cfg.hyper.lr, 1e-3);
        assert_eq!((cfg.hyper.eta_minus, cfg.hyper.eta_plus), (0.5, 1.2));
        assert_eq!((cfg.hyper.step_min, cfg.hyper.step_max), (1e-6, 50.0));
        assert_eq!(
            (cfg.epochs, cfg.train_set_size, cfg.eval_set_size),
            (50, 50_000, 10_000)
        );
    }
}

#[test]
fn bundled_configs_of_the_other_optimizers_load() {
    for (v, lr) in [
        (Variant::Sgd, 0.1),
        (Variant::Rmsprop, 0.001),
        (Variant::Adam, 0.001),
        (Variant::Quickprop, 0.1),
    ] {
        let cfg = Config::load(&configs_dir().join(format!("{}.json", v.name()))).unwrap();
        assert_eq!((cfg.optimizer, cfg.hyper.lr), (v, lr));
        assert_eq!(
            cfg.hyper.momentum,
            if v == Variant::Sgd { 0.9 } else { 0.0 }
        );
        assert_eq!((cfg.epochs, cfg.train_set_size), (50, 50_000));
    }
    let e = parse_err(r#"{"optimizer": "sgd", "nesterov": true}"#);
    assert!(
        e.contains("key `nesterov`") && e.contains("momentum"),
        "{e}"
    );
    let e = parse_err(r#"{"optimizer": "adam", "beta2": 1.0}"#);
    assert!(e.contains("key `beta2`"), "{e}");
    let e = parse_err(r#"{"optimizer": "sgd", "weight_decay": -0.1}"#);
    assert!(e.contains("key `weight_decay`"), "{e}");
}

fn parse_err(text: &str) -> String {
    format!("{:#}", Config::parse(text).unwrap_err())
}

/// Bad configs and what their error must say.
const KEY_ERRORS: &[(&str, &str)] = &[
    (
        r#"{"optimizer": "rprop-minus", "epoch": 5}"#,
        "unknown key `epoch`",
    ),
    (r#"{"optimizer": "adamw"}"#, "unknown optimizer \"adamw\""),
    (r#"{"learning_rate": 0.1}"#, "missing key `optimizer`"),
    (
        r#"{"optimizer": "rprop-plus", "epochs": "5"}"#,
        "key `epochs`",
    ),
    (
        r#"{"optimizer": "rprop-plus", "epochs": 0}"#,
        "key `epochs`",
    ),
    (
        r#"{"optimizer": "rprop-plus", "epochs": -3}"#,
        "key `epochs`",
    ),
    (
        r#"{"optimizer": "rprop-plus", "eta_minus": 1.0}"#,
        "key `eta_minus`",
    ),
    (
        r#"{"optimizer": "rprop-plus", "eta_plus": 0.9}"#,
        "key `eta_plus`",
    ),
    (
        r#"{"optimizer": "rprop-plus", "step_min": 0}"#,
        "key `step_min`",
    ),
    (
        r#"{"optimizer": "rprop-plus", "step_max": 1e-9}"#,
        "key `step_max`",
    ),
    (
        r#"{"optimizer": "rprop-plus", "learning_rate": -1}"#,
        "key `learning_rate`",
    ),
    (
        r#"{"optimizer": "rprop-plus", "criterion": "mse"}"#,
        "key `criterion`",
    ),
    (
        r#"{"optimizer": "rprop-plus", "train_set_size": 0, "train_batch_size": 0}"#,
        "key `train_set_size`",
    ),
    (
        r#"{"optimizer": "rprop-plus", "train_set_size": 60000, "train_batch_size": 60000}"#,
        "exceeds",
    ),
    (
        r#"{"optimizer": "rprop-plus", "train_batch_size": 50001}"#,
        "key `train_batch_size`",
    ),
    (
        r#"{"optimizer": "rprop-plus", "train_batch_size": 0}"#,
        "key `train_batch_size`",
    ),
    (
        r#"{"optimizer": "rprop-plus", "eval_batch_size": 100}"#,
        "key `eval_batch_size`",
    ),
    (r#"{"optimizer": "rprop-plus", "seed": 1.5}"#, "key `seed`"),
    (
        r#"{"optimizer": "rprop-plus", "hidden": []}"#,
        "key `hidden`",
    ),
    (
        r#"{"optimizer": "rprop-plus", "hidden": [1, 2, 3, 4, 5]}"#,
        "key `hidden`",
    ),
    (
        r#"{"optimizer": "rprop-plus", "hidden": 128}"#,
        "key `hidden`",
    ),
    (
        r#"{"optimizer": "rprop-plus", "hidden": [128, -1]}"#,
        "key `hidden`",
    ),
    (r#"{"optimizer": "rprop-plus",}"#, "malformed JSON"),
    (r#"[1, 2]"#, "JSON object"),
];

#[test]
fn errors_name_the_key() {
    for (text, want) in KEY_ERRORS {
        let e = parse_err(text);
        assert!(e.contains(want), "{text}: got {e:?}, wanted {want:?}");
    }
}

#[test]
fn load_names_the_file() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bad.json");
    std::fs::write(&p, r#"{"optimizer": "rprop-plus", "step_min": "x"}"#).unwrap();
    let e = format!("{:#}", Config::load(&p).unwrap_err());
    assert!(
        e.contains("bad.json") && e.contains("key `step_min`"),
        "{e}"
    );
    let e = format!(
        "{:#}",
        Config::load(&d.path().join("none.json")).unwrap_err()
    );
    assert!(e.contains("none.json"), "{e}");
}

#[test]
fn deep_checkpoints_round_trip_and_broken_chains_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("deep.safetensors");
    let l = Layout::with_hidden(784, &[40, 30, 20, 10], 10).unwrap();
    let p = Params::init(l, 3);
    checkpoint::save(&path, &p, &[]).unwrap();
    assert_eq!(checkpoint::load(&path, 784, 10).unwrap(), p);
    // fc2 expecting 41 inputs where fc1 gives 40: not one MLP.
    let bad = Layout::with_hidden(784, &[40, 30], 10).unwrap();
    let mut bytes = checkpoint::to_bytes(&Params::init(bad, 1), &[]).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + n].to_vec()).unwrap();
    let broken = header.replace("[30,40]", "[30,41]");
    assert_ne!(broken, header);
    bytes.splice(8..8 + n, broken.into_bytes());
    let e = format!("{:#}", checkpoint::from_bytes(&bytes, 784, 10).unwrap_err());
    assert!(
        e.contains("do not form an MLP") || e.contains("not a safetensors"),
        "{e}"
    );
}

#[test]
fn overrides_from_text() {
    let mut cfg = Config::report(Variant::RpropMinus);
    cfg.set_str("epochs", "5").unwrap();
    cfg.set_str("learning_rate", "1e-2").unwrap();
    cfg.set_str("optimizer", "irprop-plus").unwrap();
    assert_eq!(
        (cfg.epochs, cfg.hyper.lr, cfg.optimizer),
        (5, 1e-2, Variant::IrpropPlus)
    );
    assert!(cfg.set_str("epochs", "five").is_err());
    cfg.set_str("hidden", "200,150,100").unwrap();
    assert_eq!(cfg.hidden, vec![200, 150, 100]);
    cfg.set_str("hidden", "[64]").unwrap();
    assert_eq!(cfg.hidden, vec![64]);
    cfg.set_str("nesterov", "true").unwrap();
    assert!(cfg.hyper.nesterov);
    assert!(cfg.set_str("no_such", "1").is_err());
}

#[test]
fn checkpoint_round_trip_keeps_pytorch_names_and_shapes() {
    let d = tempfile::tempdir().unwrap();
    let p = Params::init(Layout::MNIST, 9);
    let path = d.path().join("w.safetensors");
    checkpoint::save(&path, &p, &[("optimizer", "rprop-plus".into())]).unwrap();
    assert!(
        !checkpoint::tmp_path(&path).exists(),
        "temp file renamed away"
    );
    let q = checkpoint::load(&path, 784, 10).unwrap();
    assert_eq!(p, q);
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    assert_eq!(names, ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]);
    assert_eq!(st.tensor("fc1.weight").unwrap().shape(), &[128, 784]);
    assert_eq!(st.tensor("fc2.weight").unwrap().shape(), &[10, 128]);
    // Row-major [out, in]: fc1.weight[1][2] is element 1*784+2.
    let w = st.tensor("fc1.weight").unwrap();
    let at = 4 * (784 + 2);
    assert_eq!(
        f32::from_le_bytes(w.data()[at..at + 4].try_into().unwrap()),
        p.w1()[786]
    );
}

#[test]
fn bad_checkpoints_are_errors_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("w.safetensors");
    std::fs::write(&path, b"garbage").unwrap();
    let e = format!("{:#}", checkpoint::load(&path, 784, 10).unwrap_err());
    assert!(
        e.contains("w.safetensors") && e.contains("not a safetensors"),
        "{e}"
    );

    // Wrong shape: a model for 100-pixel inputs is refused for 784-pixel data.
    let small = Params::init(Layout::new(100, 16, 10), 1);
    checkpoint::save(&path, &small, &[]).unwrap();
    let e = format!("{:#}", checkpoint::load(&path, 784, 10).unwrap_err());
    assert!(
        e.contains("w.safetensors") && e.contains("784 inputs"),
        "{e}"
    );

    // Truncated file.
    let p = Params::init(Layout::MNIST, 1);
    checkpoint::save(&path, &p, &[]).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    assert!(checkpoint::load(&path, 784, 10).is_err());

    // Missing file.
    let e = format!(
        "{:#}",
        checkpoint::load(&d.path().join("no.safetensors"), 784, 10).unwrap_err()
    );
    assert!(e.contains("no.safetensors"), "{e}");
}

#[test]
fn every_key_is_listed_once() {
    let keys: HashSet<&str> = KEYS.iter().copied().collect();
    assert_eq!(keys.len(), KEYS.len(), "a key listed twice: {:?}", *KEYS);
    assert_eq!(KEYS.len(), RUN_KEYS.len() + SETTINGS.len());
    for k in RECORDED {
        assert!(
            !keys.contains(k.key),
            "{} is both a run key and recorded",
            k.key
        );
    }
    for k in RUN_KEYS.iter().chain(RECORDED) {
        assert!(!k.help.trim().is_empty(), "{} has no help", k.key);
    }
}

#[test]
fn config_json_holds_the_run_keys_and_only_the_chosen_optimizers_settings() {
    for v in Variant::ALL {
        let json = Config::report(*v).to_json();
        let mut got: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut want: Vec<&str> = RUN_KEYS.iter().map(|k| k.key).collect();
        want.extend(v.spec().keys);
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "{v}");
    }
    let mut cfg = Config::report(Variant::Lbfgs);
    cfg.run.backend = Some("cpu".into());
    assert_eq!(cfg.to_json()["backend"], "cpu");
    assert_eq!(Config::parse(&cfg.to_json().to_string()).unwrap(), cfg);
}

/// A config.json as runs wrote it before it held only the chosen optimizer's settings:
/// every key, each optimizer's own at its default.
fn old_config_json(v: Variant) -> serde_json::Value {
    let cfg = Config::report(v);
    let mut json = cfg.to_json();
    for s in SETTINGS {
        json[s.key] = (s.get)(&cfg.hyper);
    }
    json
}

#[test]
fn old_config_files_listing_every_optimizers_settings_still_load() {
    for v in Variant::ALL {
        let old = old_config_json(*v);
        assert_eq!(old.as_object().unwrap().len(), KEYS.len());
        let cfg = Config::parse(&old.to_string()).unwrap_or_else(|e| panic!("{v}: {e:#}"));
        assert_eq!(cfg, Config::report(*v), "{v}");
    }
}

#[test]
fn a_setting_the_optimizer_does_not_read_is_refused_away_from_its_default() {
    for (v, key, value) in [
        ("lbfgs", "weight_decay", "0.01"),
        ("irprop-plus", "momentum", "0.9"),
        ("sgd", "beta1", "0.8"),
        ("adam", "eta_plus", "1.3"),
        ("rprop-minus", "max_iter", "5"),
    ] {
        let e = parse_err(&format!(r#"{{"optimizer": "{v}", "{key}": {value}}}"#));
        assert!(
            e.contains(&format!("key `{key}`: {v} does not read it")) && e.contains(value),
            "{e}"
        );
    }
    // At its default it is accepted: the key changes nothing.
    let cfg = Config::parse(r#"{"optimizer": "lbfgs", "weight_decay": 0}"#).unwrap();
    assert_eq!(cfg, Config::report(Variant::Lbfgs));
}

/// A state of `len` weights for `v` with distinct values in the slots it keeps (zeros in
/// the others, as a state it never wrote).
fn filled_state(v: Variant, len: usize) -> OptimState {
    let mut s = OptimState::for_variant(len, v, &v.defaults());
    let slots = [&mut s.step, &mut s.prev_grad, &mut s.prev_change];
    for (k, (slot, name)) in slots.into_iter().zip(v.spec().slots).enumerate() {
        for (i, x) in slot.iter_mut().enumerate() {
            *x = if name.is_empty() {
                0.0
            } else {
                (k * 10 + i) as f32 * 0.25
            };
        }
    }
    s.t = 3;
    s.prev_loss = 0.75;
    s
}

/// Saves `state` as a run does (with its optimizer named in the metadata).
fn save_state_of(path: &Path, v: Variant, state: &OptimState) {
    let meta = [("optimizer", v.name().to_string())];
    let tmp = checkpoint::save_state_tmp(path, state, 3, None, &meta).unwrap();
    rprop_lab::fsio::commit_tmps(&[(tmp, path.to_path_buf())]).unwrap();
}

#[test]
fn state_tensors_are_named_for_what_each_optimizer_keeps() {
    let d = tempfile::tempdir().unwrap();
    for v in Variant::ALL.iter().filter(|v| !v.is_multi_eval()) {
        let path = d.path().join(format!("{v}.safetensors"));
        let state = filled_state(*v, 7);
        save_state_of(&path, *v, &state);
        let names: Vec<String> = common::tensors(&path).into_iter().map(|t| t.0).collect();
        let mut want: Vec<String> = v
            .spec()
            .slots
            .iter()
            .filter(|n| !n.is_empty())
            .map(|n| n.to_string())
            .collect();
        want.sort();
        assert_eq!(names, want, "{v}");
        let (back, epoch) = checkpoint::load_state(&path, 7).unwrap();
        assert_eq!((back, epoch), (state, 3), "{v}");
    }
    let names = |v: Variant| v.spec().slots;
    assert_eq!(names(Variant::Adam), ["exp_avg_sq", "exp_avg", ""]);
    assert_eq!(
        names(Variant::IrpropPlus),
        ["step", "prev_grad", "prev_change"]
    );
    assert_eq!(names(Variant::Sgd), ["", "", "momentum_buffer"]);
}

/// An optimizer state file as written before the slots had per-optimizer names: the
/// generic `step`, `prev_grad` and `prev_change`, whatever the optimizer.
fn write_old_state(path: &Path, v: Variant, state: &OptimState, extra: &[(&str, Vec<f32>)]) {
    let mut tensors: Vec<(&str, Vec<usize>, &[f32])> = vec![
        ("step", vec![state.step.len()], &state.step),
        ("prev_grad", vec![state.prev_grad.len()], &state.prev_grad),
        (
            "prev_change",
            vec![state.prev_change.len()],
            &state.prev_change,
        ),
    ];
    tensors.extend(extra.iter().map(|(n, x)| (*n, vec![x.len()], &x[..])));
    let meta = [
        (
            "prev_loss_bits",
            format!("{:08x}", state.prev_loss.to_bits()),
        ),
        ("epoch", "3".to_string()),
        ("t", state.t.to_string()),
        ("optimizer", v.name().to_string()),
    ];
    std::fs::write(path, checkpoint::serialize(&tensors, &meta)).unwrap();
}

#[test]
fn old_state_files_with_the_generic_slot_names_still_load() {
    let d = tempfile::tempdir().unwrap();
    for v in Variant::ALL.iter().filter(|v| !v.is_multi_eval()) {
        let path = d.path().join(format!("{v}.safetensors"));
        let state = filled_state(*v, 5);
        write_old_state(&path, *v, &state, &[]);
        let (back, _) = checkpoint::load_state(&path, 5).unwrap_or_else(|e| panic!("{v}: {e:#}"));
        assert_eq!(back, state, "{v}");
    }
}

#[test]
fn state_files_with_unknown_or_doubled_tensors_are_refused_naming_file_and_tensor() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("optimizer.safetensors");
    let state = filled_state(Variant::IrpropPlus, 5);
    write_old_state(
        &path,
        Variant::IrpropPlus,
        &state,
        &[("momentum", vec![0.0; 5])],
    );
    let e = format!("{:#}", checkpoint::load_state(&path, 5).unwrap_err());
    assert!(
        e.contains("optimizer.safetensors: unexpected tensor `momentum`"),
        "{e}"
    );
    // A slot under its new name and its old one: which one holds the state is unknown.
    let state = filled_state(Variant::Adam, 5);
    let v = state.step.clone();
    write_old_state(&path, Variant::Adam, &state, &[("exp_avg_sq", v)]);
    let e = format!("{:#}", checkpoint::load_state(&path, 5).unwrap_err());
    assert!(e.contains("unexpected tensor `step`"), "{e}");
}

#[test]
fn weights_files_with_orphan_or_unknown_tensors_are_refused() {
    let p = Params::init(Layout::MNIST, 0);
    let with = |extra: &str| {
        let mut tensors: Vec<(&str, Vec<usize>, &[f32])> = p
            .layout
            .tensors()
            .iter()
            .map(|t| (t.name, t.dims().to_vec(), &p.data[t.range()]))
            .collect();
        let ten = [0.0f32; 10];
        tensors.push((extra, vec![10], &ten));
        checkpoint::serialize(&tensors, &[])
    };
    let e = format!(
        "{:#}",
        checkpoint::from_bytes(&with("fc3.bias"), 784, 10).unwrap_err()
    );
    assert!(e.contains("tensor `fc3.bias` has no `fc3.weight`"), "{e}");
    let e = format!(
        "{:#}",
        checkpoint::from_bytes(&with("fc9.bias"), 784, 10).unwrap_err()
    );
    assert!(e.contains("tensor `fc9.bias` has no `fc9.weight`"), "{e}");
    let e = format!(
        "{:#}",
        checkpoint::from_bytes(&with("extra"), 784, 10).unwrap_err()
    );
    assert!(e.contains("unexpected tensor `extra`"), "{e}");
    assert!(checkpoint::from_bytes(&checkpoint::to_bytes(&p, &[]).unwrap(), 784, 10).is_ok());
}

#[test]
fn a_run_with_an_old_state_file_resumes_bit_identically() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    let train = |out: &Path, epochs: &str| {
        common::ok(&common::run(&[
            "train",
            "--optimizer",
            "adam",
            "--train-set-size",
            "300",
            "--eval-set-size",
            "100",
            "--hidden",
            "8",
            "--backend",
            "cpu",
            "-q",
            "--no-test",
            "--epochs",
            epochs,
            "--out",
            out.to_str().unwrap(),
        ]));
    };
    train(&a, "4");
    train(&b, "2");
    // Rewrite b's state the old way: its slots under the generic names.
    let path = b.join("optimizer.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta: Vec<(String, String)> = header.metadata().clone().unwrap().into_iter().collect();
    let floats = |name: &str| -> Vec<f32> {
        let t = st.tensor(name).unwrap();
        t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let (sq, avg, w) = (floats("exp_avg_sq"), floats("exp_avg"), floats("weights"));
    let zeros = vec![0.0f32; w.len()];
    let tensors: Vec<(&str, Vec<usize>, &[f32])> = vec![
        ("step", vec![w.len()], &sq),
        ("prev_grad", vec![w.len()], &avg),
        ("prev_change", vec![w.len()], &zeros),
        ("weights", vec![w.len()], &w),
    ];
    let meta: Vec<(&str, String)> = meta.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    std::fs::write(&path, checkpoint::serialize(&tensors, &meta)).unwrap();
    assert!(common::tensors(&path).iter().any(|t| t.0 == "step"));
    common::ok(&common::run(&[
        "train",
        "--resume",
        b.to_str().unwrap(),
        "--epochs",
        "4",
        "-q",
        "--no-test",
    ]));
    common::assert_same_checkpoints(&a, &b);
}

#[test]
fn a_resume_refuses_a_state_file_with_an_unknown_tensor_naming_it() {
    let d = tempfile::tempdir().unwrap();
    let b = d.path().join("b");
    common::ok(&common::run(&[
        "train",
        "--optimizer",
        "irprop-plus",
        "--train-set-size",
        "300",
        "--eval-set-size",
        "100",
        "--hidden",
        "8",
        "--backend",
        "cpu",
        "-q",
        "--no-test",
        "--epochs",
        "2",
        "--out",
        b.to_str().unwrap(),
    ]));
    let path = b.join("optimizer.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta: Vec<(String, String)> = header.metadata().clone().unwrap().into_iter().collect();
    let meta: Vec<(&str, String)> = meta.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let mut owned: Vec<(String, Vec<f32>)> = common::tensors(&path)
        .into_iter()
        .map(|(n, raw)| {
            let v = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()));
            (n, v.collect())
        })
        .collect();
    owned.push(("fc3.bias".into(), vec![0.0; 10]));
    let tensors: Vec<(&str, Vec<usize>, &[f32])> = owned
        .iter()
        .map(|(n, v)| (n.as_str(), vec![v.len()], &v[..]))
        .collect();
    std::fs::write(&path, checkpoint::serialize(&tensors, &meta)).unwrap();
    let o = common::run(&[
        "train",
        "--resume",
        b.to_str().unwrap(),
        "--epochs",
        "3",
        "-q",
    ]);
    let e = common::stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(
        e.contains("optimizer.safetensors: unexpected tensor `fc3.bias`"),
        "{e}"
    );
}
