//! Configs: the bundled ones are the report's, parse errors name the key and the file,
//! config.json holds the run's keys and only the chosen optimizer's settings.

use rprop_lab::config::{Config, KEYS, RECORDED, RUN_KEYS};
use rprop_lab::optim::{Variant, SETTINGS};
use std::collections::HashSet;
use std::path::Path;

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
fn config_errors_name_the_key() {
    for (text, want) in KEY_ERRORS {
        let e = parse_err(text);
        assert!(e.contains(want), "{text}: got {e:?}, wanted {want:?}");
    }
}

#[test]
fn config_load_errors_name_the_file() {
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
fn command_line_overrides_parse_each_keys_text_and_refuse_the_rest() {
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
