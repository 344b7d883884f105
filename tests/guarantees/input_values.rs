//! Hostile values on the command line and in configs: numbers at the f32 limits, negative or
//! unknown values, set sizes that carry the batch along. Each is read exactly or refused in
//! one line naming its key.

use crate::capped::{ok, refused, resume, run, tiny_data, tiny_train};

// A value at the f32 limit reads back identically: the run resumes.
#[test]
fn a_step_max_at_the_f32_limit_reads_back_and_resumes() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let args = ["--step-max", "3.40282346e38", "--out", "M"];
    ok(&run(d.path(), &tiny_train("irprop-plus", &data, 2, &args)));
    ok(&resume(d.path(), "M", 3, None));
}

// Negative values are the key's error, not clap's; underflow and overflow say so.
#[test]
fn negative_and_out_of_range_numbers_are_refused_naming_the_key() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    for (flag, value, needle) in [
        ("--seed", "-1", "key `seed`"),
        ("--learning-rate", "-1", "learning_rate"),
        ("--learning-rate", "1e-46", "too small for f32"),
        ("--eta-plus", "1e39", "out of range"),
    ] {
        let args = tiny_train("rprop-plus", &data, 1, &[flag, value, "--out", "Z"]);
        refused(&run(d.path(), &args), needle);
    }
    assert!(!d.path().join("Z").exists());
}

// A full batch follows a smaller set size; a config file's settings are checked
// once the command-line options have completed them.
#[test]
fn set_sizes_carry_the_full_batch_along() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let dd = data.to_str().unwrap();
    let common = ["--backend", "cpu", "-q", "--epochs", "1", "--no-test"];
    std::fs::write(
        d.path().join("a.json"),
        r#"{"optimizer":"rprop-plus","eval_batch_size":100}"#,
    )
    .unwrap();
    std::fs::write(
        d.path().join("b.json"),
        r#"{"optimizer":"rprop-plus","train_set_size":200,"eval_set_size":100}"#,
    )
    .unwrap();
    let cases: [(&str, &[&str]); 3] = [
        (
            "A",
            &[
                "--optimizer",
                "rprop-plus",
                "--train-set-size",
                "200",
                "--eval-set-size",
                "100",
            ],
        ),
        (
            "B",
            &[
                "--config",
                "a.json",
                "--train-set-size",
                "200",
                "--eval-set-size",
                "100",
            ],
        ),
        ("C", &["--config", "b.json"]),
    ];
    for (out, extra) in cases {
        let mut args = vec!["train", "--out", out, "--data-dir", dd];
        args.extend(common);
        args.extend(extra);
        ok(&run(d.path(), &args));
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.path().join(out).join("config.json")).unwrap())
                .unwrap();
        assert_eq!(cfg["train_batch_size"], 200, "{out}");
        assert_eq!(cfg["eval_batch_size"], 100, "{out}");
    }
}

// A decimal too long for the JSON parser is still read as the number it is.
#[test]
fn a_decimal_of_100000_digits_is_read_as_its_value() {
    let d = tempfile::tempdir().unwrap();
    let nines = format!("0.{}", "9".repeat(100_000));
    let o = run(
        d.path(),
        &["train", "--optimizer", "rprop-plus", "--eta-minus", &nines],
    );
    refused(&o, "key `eta_minus`: must be in (0, 1), got 1");
}

// `--matmul-kernel` is checked even where it would not be used.
#[test]
fn an_unknown_matmul_kernel_is_refused_naming_the_option() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let args = ["--matmul-kernel", "bogus", "--out", "K"];
    refused(
        &run(d.path(), &tiny_train("rprop-plus", &data, 1, &args)),
        "--matmul-kernel",
    );
    assert!(!d.path().join("K").exists());
}

// A verify of zero steps would check nothing: refused.
#[test]
fn a_verify_of_zero_steps_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let dd = data.to_str().unwrap();
    let o = run(
        d.path(),
        &[
            "verify",
            "--optimizer",
            "rprop-plus",
            "--steps",
            "0",
            "--data-dir",
            dd,
        ],
    );
    refused(&o, "--steps 0");
}

// Huge values (a 120 KB argument, the most Linux passes; a 900 KB string in a config) echo
// as 80 characters; a config of more than 1 MiB is refused by its size.
#[test]
fn huge_values_are_refused_in_a_short_line() {
    let d = tempfile::tempdir().unwrap();
    let huge = "x".repeat(120_000);
    let line = refused(
        &run(
            d.path(),
            &["train", "--optimizer", "rprop-plus", "--epochs", &huge],
        ),
        "--epochs",
    );
    assert!(line.len() < 300, "{line}");
    std::fs::write(
        d.path().join("big.json"),
        format!(
            r#"{{"optimizer": "rprop-plus", "criterion": "{}"}}"#,
            "y".repeat(900_000)
        ),
    )
    .unwrap();
    let line = refused(
        &run(d.path(), &["train", "--config", "big.json"]),
        "criterion",
    );
    assert!(line.len() < 300, "{line}");
    std::fs::write(d.path().join("big.json"), " ".repeat(2 << 20)).unwrap();
    refused(
        &run(d.path(), &["train", "--config", "big.json"]),
        "more than",
    );
}

// `--hidden 32` is one hidden layer of 32, recorded as such.
#[test]
fn hidden_32_is_recorded_as_one_layer_of_32() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let args = tiny_train("rprop-plus", &data, 1, &["--out", "A", "--hidden", "32"]);
    ok(&run(d.path(), &args));
    let cfg = std::fs::read_to_string(d.path().join("A/config.json")).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["hidden"], serde_json::json!([32]));
}
