//! The optimizer registry is the one list: every registered optimizer has its WGSL case, its
//! docs row, a bundled config, its settings known, its defaults in `--help`, and resumes
//! bit-identically on the CPU. Loops run over the registry, so a new optimizer is covered
//! with no edit here.

use std::collections::HashSet;
use std::path::Path;

use crate::common::{assert_same_checkpoints, ok, run};
use rprop_lab::config::{Config, KEYS};
use rprop_lab::optim::settings::setting;
use rprop_lab::optim::{Hyper, Variant};

fn repo(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn names_and_wgsl_cases_are_unique() {
    let names: HashSet<_> = Variant::ALL.iter().map(|v| v.name()).collect();
    let cases: HashSet<_> = Variant::ALL.iter().map(|v| v.code()).collect();
    assert_eq!(names.len(), Variant::ALL.len());
    assert_eq!(cases.len(), Variant::ALL.len());
    for v in Variant::ALL {
        assert_eq!(v.name().parse::<Variant>(), Ok(*v));
        for k in v.spec().keys {
            assert!(setting(k).is_some(), "{v}: unknown setting {k}");
        }
    }
}

#[test]
fn state_slots_have_distinct_names_and_unnamed_slots_start_at_zero() {
    for v in Variant::ALL {
        let named: Vec<&str> = v
            .spec()
            .slots
            .iter()
            .copied()
            .filter(|n| !n.is_empty())
            .collect();
        let unique: HashSet<&str> = named.iter().copied().collect();
        assert_eq!(unique.len(), named.len(), "{v}: two slots share a name");
        for n in &named {
            assert!(
                *n != "weights" && !n.starts_with("lbfgs."),
                "{v}: {n} is taken"
            );
        }
        // An unnamed slot is not saved: a resume must find it where a fresh run starts it.
        let fresh = rprop_lab::optim::OptimState::for_variant(3, *v, &v.defaults());
        let slots = [&fresh.step, &fresh.prev_grad, &fresh.prev_change];
        for (name, slot) in v.spec().slots.iter().zip(slots) {
            if name.is_empty() {
                assert!(
                    slot.iter().all(|&x| x == 0.0),
                    "{v}: an unnamed slot starts at {slot:?}"
                );
            }
        }
    }
}

/// The dispatch's cases, as `case Nu: { NAME(...` lines of shaders/optimizer.wgsl.
fn wgsl_cases() -> Vec<(u32, String)> {
    let text = std::fs::read_to_string(repo("shaders/optimizer.wgsl")).unwrap();
    text.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("case ")?;
            let (n, body) = rest.split_once("u:")?;
            let call = body.trim().trim_start_matches('{').trim();
            let name = call.split('(').next()?.to_string();
            Some((n.parse().ok()?, name))
        })
        .collect()
}

#[test]
fn every_registered_optimizer_has_its_wgsl_case_and_unknown_codes_write_nan() {
    let text = std::fs::read_to_string(repo("shaders/optimizer.wgsl")).unwrap();
    let cases = wgsl_cases();
    for v in Variant::ALL {
        let (_, f) = cases
            .iter()
            .find(|(n, _)| *n == v.code())
            .unwrap_or_else(|| panic!("{v}: no `case {}u` in optimizer.wgsl", v.code()));
        assert!(
            text.contains(&format!("fn {f}(")),
            "{v}: case {} calls {f}, which optimizer.wgsl does not define",
            v.code()
        );
    }
    assert_eq!(cases.len(), Variant::ALL.len(), "a case with no optimizer");
    // The default case writes NaN (its run on a GPU: tests/gpu_kernels/optimizer.rs).
    let default = &text[text.find("default: {").unwrap()..];
    assert!(default[..200].contains("0x7fc00000u"), "{default}");
}

#[test]
fn docs_table_lists_every_registered_optimizer_in_order() {
    let text = std::fs::read_to_string(repo("docs/optimizers.md")).unwrap();
    let rows: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
            (!name.starts_with("--")).then(|| (cells[1].to_string(), name.to_string()))
        })
        .collect();
    let want: Vec<(String, String)> = Variant::ALL
        .iter()
        .map(|v| (v.label().to_string(), v.name().to_string()))
        .collect();
    assert_eq!(
        rows, want,
        "docs/optimizers.md's table differs from the registry"
    );
}

#[test]
fn every_registered_optimizer_has_a_bundled_config() {
    for v in Variant::ALL {
        let cfg = Config::load(&repo(&format!("configs/{}.json", v.name()))).unwrap();
        assert_eq!(cfg.optimizer, *v);
    }
}

#[test]
fn every_setting_is_a_key_and_json_round_trips_with_per_optimizer_defaults() {
    for s in rprop_lab::optim::SETTINGS {
        assert!(KEYS.contains(&s.key), "{}", s.key);
    }
    for v in Variant::ALL {
        let cfg = Config::report(*v);
        assert_eq!(cfg.hyper, v.defaults(), "{v}");
        let back = Config::parse(&cfg.to_json().to_string()).unwrap();
        assert_eq!(back, cfg, "{v}");
        // Keys left out take the optimizer's own defaults.
        let bare = Config::parse(&format!(r#"{{"optimizer": "{v}"}}"#)).unwrap();
        assert_eq!(bare.hyper, v.defaults(), "{v}");
    }
    // Switching optimizers keeps a value the user set, and moves defaults along.
    let mut c = Config::report(Variant::IrpropPlus);
    c.set("learning_rate", &serde_json::json!(0.01)).unwrap();
    c.set("optimizer", &serde_json::json!("adam")).unwrap();
    assert_eq!(c.hyper.lr, 0.01);
    assert_eq!(c.hyper.beta1, Hyper::BASE.beta1);
}

#[test]
fn help_lists_every_setting_and_optimizer() {
    let text = ok(&run(&["train", "--help"]));
    for s in rprop_lab::optim::SETTINGS {
        let flag = format!("--{}", s.key.replace('_', "-"));
        assert!(text.contains(&flag), "train --help lacks {flag}");
    }
    for v in Variant::ALL {
        assert!(text.contains(v.name()), "train --help lacks {v}");
    }
    assert!(text.contains("[default: 0.001"), "{text}");
}

#[test]
fn every_registered_optimizer_resumes_bit_identically_on_the_cpu() {
    let d = tempfile::tempdir().unwrap();
    for v in Variant::ALL {
        let (a, b) = (
            d.path().join(format!("{v}-a")),
            d.path().join(format!("{v}-b")),
        );
        let config = repo(&format!("configs/{v}.json"));
        let train = |out: &Path, epochs: &str| {
            ok(&run(&[
                "train",
                "--config",
                config.to_str().unwrap(),
                "--train-set-size",
                "400",
                "--eval-set-size",
                "100",
                "--hidden",
                "16",
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
        ok(&run(&[
            "train",
            "--resume",
            b.to_str().unwrap(),
            "--epochs",
            "4",
            "-q",
            "--no-test",
        ]));
        assert_same_checkpoints(&a, &b);
    }
}
