//! Bad input, each one error line naming the file and the key, exit 2, and no folder
//! created: missing or malformed space files, unknown keys, empty, inverted or invalid
//! ranges, ranges outside a key's bounds, a trial whose settings fail the checks across
//! keys, bad trial counts, an option for a varied key. Hostile files (huge numbers, deep
//! nesting, huge lists and counts) fail the same way, under the memory cap.

use crate::capped::{refused, tiny_data};
use crate::{space, sweep, tiny};

/// Runs a sweep of the space `text` with `extra` options; asserts it is refused with a
/// line holding every one of `needles`, and that nothing was written.
fn refused_space(text: &str, extra: &[&str], needles: &[&str]) {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let s = space(d.path(), "bad.json", text);
    let mut args = vec!["--space", s.to_str().unwrap(), "--out", "sw/inner"];
    args.extend(extra);
    let line = refused(&sweep(d.path(), &args, &tiny(&data, 2)), needles[0]);
    for n in needles {
        assert!(line.contains(n), "missing {n:?} in: {line}");
    }
    assert!(
        !d.path().join("sw").exists(),
        "{line}: a folder was created"
    );
}

const GOOD_KEYS: &str = r#""keys": {"learning_rate": {"log_uniform": [1e-4, 1e-2]}}"#;

#[test]
fn broken_space_files() {
    let d = tempfile::tempdir().unwrap();
    let o = sweep(d.path(), &["--space", "missing.json", "--out", "sw"], &[]);
    refused(&o, "missing.json: cannot read space");
    refused_space("{\"search\": ", &[], &["bad.json", "malformed JSON"]);
    refused_space("[1, 2]", &[], &["bad.json", "expected a JSON object"]);
    let dup = format!(r#"{{"search": "random", "search": "grid", "trials": 2, {GOOD_KEYS}}}"#);
    refused_space(&dup, &[], &["bad.json", "search"]);
    refused_space(
        &format!(r#"{{"trials": 2, {GOOD_KEYS}}}"#),
        &[],
        &["bad.json", "missing key `search`"],
    );
    let unknown_field = format!(r#"{{"search": "random", "trails": 2, {GOOD_KEYS}}}"#);
    refused_space(&unknown_field, &[], &["bad.json", "unknown key `trails`"]);
    refused_space(
        r#"{"search": "random", "trials": 2, "keys": {}}"#,
        &[],
        &["bad.json", "names no key"],
    );
    let bad_base =
        format!(r#"{{"base": "nowhere.json", "search": "random", "trials": 2, {GOOD_KEYS}}}"#);
    refused_space(&bad_base, &[], &["bad.json", "key `base`", "nowhere.json"]);
}

#[test]
fn bad_keys_and_ranges_name_the_file_and_the_key() {
    let cases: [(&str, &[&str]); 9] = [
        (
            r#""lerning_rate": {"log_uniform": [1e-4, 1e-2]}"#,
            &["unknown key `lerning_rate`"],
        ),
        (
            r#""learning_rate": {"log_uniform": [1e-2, 1e-4]}"#,
            &["key `learning_rate`", "inverted"],
        ),
        (
            r#""learning_rate": {"uniform": [0.1, 0.1]}"#,
            &["key `learning_rate`", "empty"],
        ),
        (
            r#""learning_rate": {"log_uniform": [0, 1]}"#,
            &["key `learning_rate`", "lo > 0"],
        ),
        (
            r#""learning_rate": {"normal": [0, 1]}"#,
            &["key `learning_rate`", "unknown distribution"],
        ),
        (
            r#""eta_minus": {"uniform": [0.1, 1.5]}"#,
            &["key `eta_minus`", "1.5", "in (0, 1)"],
        ),
        (
            r#""hidden": {"int": [0, 64]}"#,
            &["key `hidden`", "1..=65536"],
        ),
        (
            r#""optimizer": {"choice": ["sgd", "adamw"]}"#,
            &["key `optimizer`", "adamw"],
        ),
        (
            r#""seed": {"uniform": [1, 9]}"#,
            &["key `seed`", "non-negative integer"],
        ),
    ];
    for (keys, needles) in cases {
        let text = format!(
            r#"{{"base": {{"optimizer": "rprop-minus"}}, "search": "random", "trials": 2, "keys": {{{keys}}}}}"#
        );
        let mut all = vec!["bad.json"];
        all.extend(needles);
        refused_space(&text, &[], &all);
    }
    refused_space(
        r#"{"search": "random", "trials": 2, "keys": {"optimizer": {"choice": []}}}"#,
        &[],
        &["bad.json", "key `optimizer`", "empty"],
    );
}

// Each trial's settings pass the checks across keys too: step_min above step_max is caught
// before anything runs, naming the trial.
#[test]
fn every_trial_is_checked_before_anything_runs() {
    let text = r#"{"base": {"optimizer": "rprop-minus", "step_max": 5},
        "search": "grid", "keys": {"step_min": {"choice": [0.001, 10]}}}"#;
    refused_space(text, &[], &["bad.json", "trial 2", "step_max"]);
}

#[test]
fn bad_counts_and_options() {
    let random = format!(r#"{{"search": "random", "base": {{"optimizer": "sgd"}}, {GOOD_KEYS}}}"#);
    refused_space(&random, &["--trials", "0"], &["--trials 0", "1..=10000"]);
    refused_space(
        &random,
        &["--trials", "99999999999999999999999999"],
        &["--trials", "1..=10000"],
    );
    refused_space(&random, &["--trials", "10001"], &["--trials 10001"]);
    refused_space(&random, &[], &["bad.json", "how many trials"]);
    refused_space(
        &random,
        &["--trials", "3", "--learning-rate", "0.1"],
        &["--learning-rate", "varies `learning_rate`"],
    );
    let grid = r#"{"search": "grid", "values_per_key": 10000, "base": {"optimizer": "rprop-minus"},
        "keys": {"learning_rate": {"log_uniform": [1e-4, 1e-2]}, "eta_plus": {"uniform": [1.1, 2]}}}"#;
    refused_space(
        grid,
        &[],
        &["bad.json", "100000000 combinations", "more than the 10000"],
    );
    let small = r#"{"search": "grid-sample", "values_per_key": 2, "base": {"optimizer": "sgd"},
        "keys": {"learning_rate": {"log_uniform": [1e-4, 1e-2]}}}"#;
    refused_space(
        small,
        &["--trials", "3"],
        &["bad.json", "only 2 combinations"],
    );
    // Sets larger than the data are refused before any folder is made.
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let s = space(
        d.path(),
        "big.json",
        r#"{"search": "grid", "base": {"optimizer": "sgd", "eval_set_size": 100},
            "keys": {"train_set_size": {"choice": [200, 250]}}}"#,
    );
    let args = [
        "--space",
        s.to_str().unwrap(),
        "--out",
        "sw",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    refused(&sweep(d.path(), &args, &[]), "trial 2: ");
    assert!(!d.path().join("sw").exists());
}

#[test]
fn hostile_space_files_fail_in_bounded_memory() {
    let deep = format!(
        r#"{{"search": "random", "trials": 2, "keys": {{"hidden": {{"choice": [{}1{}]}}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    refused_space(&deep, &[], &["bad.json", "malformed JSON"]);
    let huge = r#"{"search": "random", "trials": 2, "base": {"optimizer": "sgd"},
        "keys": {"learning_rate": {"log_uniform": [1e-300, 1e308]}}}"#;
    refused_space(
        huge,
        &[],
        &["bad.json", "key `learning_rate`", "too small for f32"],
    );
    let beyond =
        r#"{"search": "random", "trials": 2, "keys": {"learning_rate": {"uniform": [0, 1e999]}}}"#;
    refused_space(beyond, &[], &["bad.json", "malformed JSON"]);
    let wide = r#"{"search": "random", "trials": 2, "base": {"optimizer": "sgd"},
        "keys": {"seed": {"int": [-9223372036854775808, 9223372036854775807]}}}"#;
    refused_space(wide, &[], &["bad.json", "key `seed`"]);
    let list: Vec<String> = (0..10_001).map(|i| i.to_string()).collect();
    let many = format!(
        r#"{{"search": "random", "trials": 2, "keys": {{"seed": {{"choice": [{}]}}}}}}"#,
        list.join(",")
    );
    refused_space(&many, &[], &["bad.json", "10001 values"]);
    let big = format!(
        r#"{{"about": "{}", "search": "random", "trials": 2, {GOOD_KEYS}}}"#,
        "x".repeat(2 << 20)
    );
    refused_space(&big, &[], &["bad.json", "more than the 1048576"]);
    // Three keys of 10,000 values each: 10^12 combinations, 5 drawn, quickly.
    let vast = r#"{"search": "grid-sample", "values_per_key": 10000, "base": {"optimizer": "rprop-minus"},
        "keys": {"learning_rate": {"log_uniform": [1e-4, 1e-2]}, "eta_plus": {"uniform": [1.1, 2]},
        "eta_minus": {"uniform": [0.2, 0.8]}}}"#;
    refused_space(
        vast,
        &["--trials", "5", "--hidden", "0"],
        &["bad.json", "trial 1", "key `hidden`"],
    );
}
