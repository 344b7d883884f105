//! The records a resume continues shape the run (its best epoch, what metrics.json says):
//! a resume applies `plot`'s record checks to metrics.jsonl, and refuses records whose
//! lowest eval loss is not the epoch best.safetensors holds.

use crate::capped::{copy_run, ok, refused, run, snapshot, tiny_data, tiny_train};
use std::path::Path;

/// Rewrites run `dir`'s metrics.jsonl with `edit` applied to record `i` (as JSON).
fn edit_record(dir: &Path, i: usize, edit: impl Fn(&mut serde_json::Value)) {
    let p = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&p).unwrap();
    let mut out = String::new();
    for (k, l) in text.lines().enumerate() {
        let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
        if k == i {
            edit(&mut v);
        }
        out += &format!("{v}\n");
    }
    std::fs::write(p, out).unwrap();
}

/// The epoch best.safetensors of run `dir` records.
fn best_epoch(dir: &Path) -> usize {
    let bytes = std::fs::read(dir.join("best.safetensors")).unwrap();
    let (_, h) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    h.metadata().as_ref().unwrap()["epoch"].parse().unwrap()
}

// A record `plot` refuses (the eval_loss of -1, and the other values no run
// writes) is refused by a resume too, naming metrics.jsonl and the epoch; so is a record
// edited within range to become the lowest eval loss, which would make the resumed run
// report a best epoch whose weights best.safetensors does not hold. Nothing changes.
#[test]
fn a_resume_refuses_records_plot_refuses_or_a_moved_best_epoch() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let args = ["--out", "base", "--hidden", "8", "--save-every", "1"];
    ok(&run(d.path(), &tiny_train("rprop-plus", &data, 4, &args)));
    let best = best_epoch(&d.path().join("base"));
    let other = if best == 3 { 1 } else { 3 };
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(usize, Edit, String)> = vec![
        (2, Box::new(|v| v["eval_loss"] = (-1).into()), "epoch 3: eval_loss is -1".into()),
        (1, Box::new(|v| v["train_acc"] = 7.into()), "epoch 2: train_acc is 7".into()),
        (0, Box::new(|v| v["seconds"] = 1e31.into()), "epoch 1: seconds is 1e31".into()),
        (3, Box::new(|v| v["train_loss"] = 2e30.into()), "epoch 4: train_loss is".into()),
        (
            other - 1,
            Box::new(|v| v["eval_loss"] = 1e-3.into()),
            format!("the lowest eval_loss up to epoch 4 is epoch {other}'s (0.001), but base/best.safetensors holds the weights of epoch {best}"),
        ),
    ];
    for (i, (record, edit, needle)) in cases.iter().enumerate() {
        let name = format!("r{i}");
        let dir = d.path().join(&name);
        copy_run(&d.path().join("base"), &dir);
        edit_record(&dir, *record, edit);
        let before = snapshot(&dir);
        let resume = ["train", "--resume", &name, "--epochs", "6", "-q"];
        let needle = needle.replace("base/", &format!("{name}/"));
        let line = refused(&run(d.path(), &resume), &needle);
        assert!(line.contains(&format!("{name}/metrics.jsonl")), "{line}");
        assert!(
            snapshot(&dir) == before,
            "case {i}: the refused resume changed the run"
        );
    }
    // Unedited, it resumes, and the best epoch it reports is the one whose weights it has.
    ok(&run(
        d.path(),
        &["train", "--resume", "base", "--epochs", "6", "-q"],
    ));
    let m = rprop_lab::metrics::Metrics::load(&d.path().join("base/metrics.json")).unwrap();
    assert_eq!(m.best_epoch, best_epoch(&d.path().join("base")));
}
