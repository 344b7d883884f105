//! `--help` of the binary and its commands: the commands, the overrides, what `compare` runs
//! and where `--resume` applies.

use crate::common::{ok, run};

#[test]
fn help_lists_commands_and_overrides() {
    let o = run(&["--help"]);
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("train") && t.contains("test"), "{t}");
    let o = run(&["train", "--help"]);
    let t = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--config",
        "--epochs",
        "--train-set-size",
        "--eta-minus",
        "--backend",
        "--out",
        "--init-weights",
    ] {
        assert!(t.contains(flag), "train --help lacks {flag}");
    }
}

#[test]
fn help_says_what_compare_runs_and_where_resume_applies() {
    let text = ok(&run(&["compare", "--help"]));
    assert!(
        text.contains("By default it runs the four Rprop configs in configs/"),
        "{text}"
    );
    assert!(text.contains("--seeds <SEEDS>"), "{text}");
    let short = ok(&run(&["--help"]));
    assert!(
        short.contains("(by default the four Rprop configs in configs/"),
        "{short}"
    );
    let data_help = |cmd: &str| {
        let t = ok(&run(&[cmd, "--help"]));
        let i = t.find("--data-dir <DIR>").unwrap();
        let j = t[i..].find("\n\n").map_or(t.len(), |j| i + j);
        t[i..j].to_string()
    };
    assert!(data_help("train").contains("with --resume, the run's own"));
    for cmd in ["compare", "samples", "verify"] {
        let h = data_help(cmd);
        assert!(!h.contains("--resume"), "{cmd}: {h}");
        assert!(h.contains("the bundled MNIST, data/mnist"), "{cmd}: {h}");
    }
    let h = data_help("test");
    assert!(
        !h.contains("--resume") && h.contains("the run's own"),
        "{h}"
    );
}
