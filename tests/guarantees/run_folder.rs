//! The run folder: one writer at a time, `--out` resolved before any check, and names of
//! legal length work while longer ones are refused in a short line.

use crate::capped::{
    self, ok, refused, run, snapshot, tiny, tiny_data, tiny_train, trained, wait_first_epoch, with,
};
use std::path::Path;
use std::time::{Duration, Instant};

// `--out missing/..`: the path is resolved before any check, so a path
// through a missing folder cannot bypass "already holds a run", and nothing is created.
#[test]
fn out_through_a_missing_folder_never_bypasses_the_run_check() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "A");
    let before = snapshot(&d.path().join("A"));
    let args = tiny_train("irprop-plus", &data, 2, &["--out", "missing/../A"]);
    refused(&run(d.path(), &args), "already holds a run");
    assert!(snapshot(&d.path().join("A")) == before, "A changed");
    assert!(!d.path().join("missing").exists(), "missing/ was created");
    // `missing/..` is the current folder, which holds no run: the run is written there.
    let w = d.path().join("w");
    std::fs::create_dir(&w).unwrap();
    let args = tiny_train("irprop-plus", &data, 1, &["--out", "missing/.."]);
    ok(&run(&w, &args));
    assert!(w.join("optimizer.safetensors").is_file());
    assert!(!w.join("missing").exists(), "missing/ was created");
}

// A second writer (a `--force` run, a resume, a compare) is refused at once,
// naming the PID that holds the run; a reader is not blocked; the kernel frees the lock
// when the holder dies.
#[test]
fn a_second_writer_is_refused_at_once_naming_the_holder() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let args = tiny_train("rprop-plus", &data, 100_000, &["--out", "X"]);
    let mut child = capped::command(d.path(), &args).spawn().unwrap();
    wait_first_epoch(&d.path().join("X"));
    let pid = format!("PID {}", child.id());
    let force = tiny_train("irprop-plus", &data, 2, &["--out", "X", "--force"]);
    let t0 = Instant::now();
    refused(&run(d.path(), &force), &pid);
    let resume = ["train", "--resume", "X", "--epochs", "5", "-q"];
    refused(&run(d.path(), &resume), &pid);
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "not refused at once"
    );
    // A reader of the run is not blocked.
    ok(&run(
        d.path(),
        &["plot", "X/metrics.json", "--out", "p.png"],
    ));
    child.kill().unwrap();
    child.wait().unwrap();
    ok(&run(d.path(), &force));
    let config = std::fs::read_to_string(d.path().join("X/config.json")).unwrap();
    assert!(config.contains("irprop-plus"), "{config}");
    // Two comparisons into one folder: the second is refused while the first runs.
    std::fs::write(d.path().join("c.json"), r#"{"optimizer": "rprop-plus"}"#).unwrap();
    let cmp = with(
        &["compare", "--configs", "c.json", "--out", "C"],
        &tiny(&data, 100_000),
    );
    let mut first = capped::command(d.path(), &cmp).spawn().unwrap();
    wait_first_epoch(&d.path().join("C/rprop-plus"));
    let second = with(
        &["compare", "--configs", "c.json", "--out", "C", "--force"],
        &tiny(&data, 2),
    );
    refused(&run(d.path(), &second), &format!("PID {}", first.id()));
    first.kill().unwrap();
    first.wait().unwrap();
}

// A 250-byte run name (with its temp, lock and `--force` names) trains, is replaced with
// `--force` and resumed; a 252-byte chart name is written.
#[test]
fn a_250_byte_run_name_trains_is_forced_resumed_and_plotted() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let long = "n".repeat(250);
    for extra in [&[][..], &["--force"][..]] {
        let mut args = tiny_train("rprop-plus", &data, 2, &["--out", &long]);
        args.extend(extra.iter().map(|s| s.to_string()));
        ok(&run(d.path(), &args));
    }
    let resume = [
        "train",
        "--resume",
        &long,
        "--epochs",
        "3",
        "-q",
        "--no-test",
    ];
    ok(&run(d.path(), &resume));
    let png = format!("{}.png", "p".repeat(248));
    ok(&run(
        d.path(),
        &["plot", &format!("{long}/metrics.json"), "--out", &png],
    ));
    assert!(d.path().join(&png).is_file());
}

// A name over 255 bytes is refused before any epoch runs, and error lines name long paths
// by their start and end.
#[test]
fn names_too_long_are_refused_in_a_shortened_line() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let long = "c".repeat(300);
    let o = run(
        d.path(),
        &tiny_train("rprop-plus", &data, 2, &["--out", &long]),
    );
    let line = refused(&o, "a name of 300 bytes");
    assert!(line.split(' ').all(|w| w.chars().count() <= 80), "{line}");
    let sibling = rprop_lab::fsio::sibling(Path::new(&long), rprop_lab::fsio::NEW_RUN);
    assert!(!d.path().join(sibling).exists());
    let deep = format!("{}/x", "b/".repeat(150));
    let line = refused(
        &run(d.path(), &["train", "--resume", &deep]),
        "no such run folder",
    );
    assert!(line.split(' ').all(|w| w.chars().count() <= 80), "{line}");
}
