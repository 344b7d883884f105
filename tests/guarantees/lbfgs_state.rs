//! L-BFGS state on resume: a resume from an unedited state ends bit-identical to a run that
//! never stopped; any edit of the state (each field out of its range, the history out of
//! its bounds, a value changed within them) is refused in one line naming the tensor or
//! metadata key, and changes nothing.

use crate::capped::{copy_run, ok, refused, resume, run, snapshot, tiny_data, tiny_train};
use std::collections::BTreeMap;
use std::path::Path;

/// A state file's tensors (in file order) and metadata, to edit.
struct StateFile {
    tensors: Vec<(String, Vec<f32>)>,
    meta: BTreeMap<String, String>,
}

impl StateFile {
    fn read(path: &Path) -> StateFile {
        let bytes = std::fs::read(path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = header.metadata().clone().unwrap().into_iter().collect();
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(n, t)| {
                let v = t.data().chunks_exact(4);
                (
                    n,
                    v.map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                )
            })
            .collect();
        StateFile { tensors, meta }
    }

    fn write(&self, path: &Path) {
        let tensors: Vec<(&str, Vec<usize>, &[f32])> = (self.tensors.iter())
            .map(|(n, v)| (n.as_str(), vec![v.len()], &v[..]))
            .collect();
        let meta: Vec<(&str, String)> = (self.meta.iter())
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        std::fs::write(path, rprop_lab::checkpoint::serialize(&tensors, &meta)).unwrap();
    }

    fn tensor(&mut self, name: &str) -> &mut Vec<f32> {
        let t = self.tensors.iter_mut().find(|(n, _)| n == name);
        &mut t.unwrap_or_else(|| panic!("no tensor {name}")).1
    }

    fn set(&mut self, key: &str, value: String) {
        assert!(self.meta.contains_key(key), "no metadata {key}");
        self.meta.insert(key.into(), value);
    }

    fn f64_of(&self, key: &str) -> f64 {
        f64::from_bits(u64::from_str_radix(&self.meta[key], 16).unwrap())
    }
}

/// Metadata text of an f64 kept by its bits, and of an f32.
fn bits64(x: f64) -> String {
    format!("{:016x}", x.to_bits())
}
fn bits32(x: f32) -> String {
    format!("{:08x}", x.to_bits())
}

/// Edits run `dir`'s optimizer state with `edit`.
fn edit_state(dir: &Path, edit: impl Fn(&mut StateFile)) {
    let path = dir.join("optimizer.safetensors");
    let mut st = StateFile::read(&path);
    edit(&mut st);
    st.write(&path);
}

/// A tiny L-BFGS run of `epochs` epochs in `dir/name`: 8 hidden units, 5 iterations a step,
/// a history of 3 pairs (full after 2 epochs), on the dense CPU matmul, plus `extra`.
fn lbfgs_run(dir: &Path, data: &Path, name: &str, epochs: u32, extra: &[&str]) {
    let mut args = vec!["--out", name, "--hidden", "8", "--max-iter", "5"];
    args.extend(["--history-size", "3", "--cpu-matmul", "dense"]);
    args.extend(extra);
    ok(&run(dir, &tiny_train("lbfgs", data, epochs, &args)));
}

/// Asserts runs `a` and `b` hold the same checkpoints: the last weights and optimizer
/// state byte for byte, and best weights of the same epoch with the same bytes (their
/// metadata holds the config as it was when they were written: `epochs` differs).
fn same_files(a: &Path, b: &Path) {
    for f in ["last.safetensors", "optimizer.safetensors"] {
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
        );
        assert!(x == y, "{f} of {} and {} differ", a.display(), b.display());
    }
    let best = |d: &Path| {
        let mut st = StateFile::read(&d.join("best.safetensors"));
        st.tensors.sort_by(|a, b| a.0.cmp(&b.0));
        (st.tensors, st.meta["epoch"].clone())
    };
    assert!(best(a) == best(b), "best.safetensors differ");
}

type Edit = Box<dyn Fn(&mut StateFile)>;

/// Each edit of a 2-epoch state, and what the refusal names.
fn edits() -> Vec<(&'static str, Edit)> {
    vec![
        // The issue's cases.
        (
            "tensor `lbfgs.d` holds a non-finite value (NaN)",
            Box::new(|s| s.tensor("lbfgs.d")[3] = f32::NAN),
        ),
        (
            "tensor `lbfgs.prev_flat_grad` holds a non-finite value (NaN)",
            Box::new(|s| s.tensor("lbfgs.prev_flat_grad")[0] = f32::NAN),
        ),
        (
            "metadata `lbfgs_t` is NaN",
            Box::new(|s| s.set("lbfgs_t", bits64(f64::NAN))),
        ),
        (
            "metadata `lbfgs_t` is -inf",
            Box::new(|s| s.set("lbfgs_t", bits64(f64::NEG_INFINITY))),
        ),
        (
            "tensor `lbfgs.y.0` has 0 values",
            Box::new(|s| s.tensor("lbfgs.y.0").clear()),
        ),
        (
            "tensor `lbfgs.s.2` has 0 values",
            Box::new(|s| s.tensor("lbfgs.s.2").clear()),
        ),
        (
            "tensor `lbfgs.ro` holds -",
            Box::new(|s| s.tensor("lbfgs.ro")[1] *= -1.0),
        ),
        (
            "metadata `lbfgs_n_iter` is 0",
            Box::new(|s| s.set("lbfgs_n_iter", "0".into())),
        ),
        (
            "metadata `lbfgs_n_iter` is 18446744073709551615",
            Box::new(|s| s.set("lbfgs_n_iter", u64::MAX.to_string())),
        ),
        (
            "tensor `lbfgs.s.1` holds a non-finite value (inf)",
            Box::new(|s| s.tensor("lbfgs.s.1")[5] = f32::INFINITY),
        ),
        (
            "tensor `lbfgs.ro` holds inf",
            Box::new(|s| s.tensor("lbfgs.ro")[0] = f32::INFINITY),
        ),
        (
            "metadata `lbfgs_pairs` is 4, more than history_size 3",
            Box::new(|s| {
                // A fourth pair (a copy of the first), its rho, and the count.
                let (y, x) = (s.tensor("lbfgs.y.0").clone(), s.tensor("lbfgs.s.0").clone());
                let ro = s.tensor("lbfgs.ro")[0];
                s.tensor("lbfgs.ro").push(ro);
                s.tensors.push(("lbfgs.y.3".into(), y));
                s.tensors.push(("lbfgs.s.3".into(), x));
                s.set("lbfgs_pairs", "4".into());
            }),
        ),
        // Others a state file can carry wrongly.
        (
            "metadata `lbfgs_h_diag` is NaN",
            Box::new(|s| s.set("lbfgs_h_diag", bits32(f32::NAN))),
        ),
        (
            "metadata `lbfgs_h_diag` is -",
            Box::new(|s| s.set("lbfgs_h_diag", bits32(-0.5))),
        ),
        (
            "metadata `lbfgs_h_diag` is",
            Box::new(|s| {
                let h = f32::from_bits(u32::from_str_radix(&s.meta["lbfgs_h_diag"], 16).unwrap());
                s.set("lbfgs_h_diag", bits32(h * 2.0));
            }),
        ),
        (
            "tensor `lbfgs.ro` holds",
            Box::new(|s| s.tensor("lbfgs.ro")[2] *= 1.5),
        ),
        (
            "tensor `lbfgs.ro` holds",
            Box::new(|s| s.tensor("lbfgs.y.1").iter_mut().for_each(|x| *x *= 1.5)),
        ),
        (
            "metadata `lbfgs_t` is 0.5, but",
            Box::new(|s| s.set("lbfgs_t", bits64(0.5))),
        ),
        (
            "metadata `lbfgs_prev_loss` is NaN",
            Box::new(|s| s.set("lbfgs_prev_loss", bits64(f64::NAN))),
        ),
        (
            "metadata `lbfgs_prev_loss` is",
            Box::new(|s| {
                let p = s.f64_of("lbfgs_prev_loss");
                s.set("lbfgs_prev_loss", bits64(p + 1e-12));
            }),
        ),
        (
            "metadata `lbfgs_func_evals` is 18446744073709551615",
            Box::new(|s| s.set("lbfgs_func_evals", u64::MAX.to_string())),
        ),
        (
            "metadata `lbfgs_func_evals` is 1,",
            Box::new(|s| s.set("lbfgs_func_evals", "1".into())),
        ),
        (
            "metadata `lbfgs_n_iter` is 11, more than",
            Box::new(|s| s.set("lbfgs_n_iter", "11".into())),
        ),
        (
            "metadata `lbfgs_pairs` is 3, but 3 iterations",
            Box::new(|s| s.set("lbfgs_n_iter", "3".into())),
        ),
        (
            "tensor `lbfgs.d` is not [",
            Box::new(|s| {
                s.tensor("lbfgs.d").pop();
            }),
        ),
        (
            "tensor `lbfgs.d` is empty",
            Box::new(|s| s.tensor("lbfgs.d").clear()),
        ),
        (
            "tensor `lbfgs.ro` has 3 values, expected 2",
            Box::new(|s| s.set("lbfgs_pairs", "2".into())),
        ),
        (
            "missing metadata `lbfgs_pairs`",
            Box::new(|s| {
                s.tensors.retain(|(n, _)| !n.starts_with("lbfgs."));
                s.meta.retain(|k, _| !k.starts_with("lbfgs_"));
            }),
        ),
        // Within every range a field check allows: the state's fingerprint.
        (
            "does not match the fingerprint in metadata `state`",
            Box::new(|s| s.tensor("lbfgs.prev_flat_grad")[7] += 0.5),
        ),
        (
            "does not match the fingerprint in metadata `state`",
            Box::new(|s| s.tensor("lbfgs.d")[0] += 0.25),
        ),
        (
            "does not match the fingerprint in metadata `state`",
            Box::new(|s| s.set("lbfgs_n_iter", "9".into())),
        ),
    ]
}

// A resume of an unedited L-BFGS state (a full history, after two 5-iteration steps) ends
// byte for byte where a run that never stopped does; one with an edited state is refused,
// naming the tensor or key, and leaves the run as it was.
#[test]
fn an_edited_lbfgs_state_is_refused_naming_the_field() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    lbfgs_run(d.path(), &data, "ref", 4, &[]);
    lbfgs_run(d.path(), &data, "base", 2, &[]);
    let base = StateFile::read(&d.path().join("base/optimizer.safetensors"));
    assert_eq!(
        base.meta["lbfgs_pairs"], "3",
        "the history is full after 2 steps"
    );
    assert_eq!(base.meta["lbfgs_n_iter"], "10");
    for (i, (needle, edit)) in edits().iter().enumerate() {
        let name = format!("e{i}");
        let dir = d.path().join(&name);
        copy_run(&d.path().join("base"), &dir);
        edit_state(&dir, edit);
        let before = snapshot(&dir);
        let line = refused(&resume(d.path(), &name, 4, None), needle);
        assert!(line.contains("optimizer.safetensors"), "{line}");
        assert!(
            snapshot(&dir) == before,
            "case {i} ({needle}): the refused resume changed the run"
        );
    }
    // Unedited: resumed to the very bytes of the run that never stopped.
    copy_run(&d.path().join("base"), &d.path().join("same"));
    ok(&resume(d.path(), "same", 4, None));
    same_files(&d.path().join("same"), &d.path().join("ref"));
}

// The config.json and the checkpoint's own copy of the config edited alike (history_size
// down to 2): the history of 3 pairs no longer fits, and the resume says so.
#[test]
fn a_history_larger_than_both_config_copies_allow_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    lbfgs_run(d.path(), &data, "base", 2, &[]);
    let dir = d.path().join("base");
    let cfg_path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["history_size"] = 2.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    edit_state(&dir, |s| {
        let mut c: serde_json::Value = serde_json::from_str(&s.meta["config"]).unwrap();
        c["history_size"] = 2.into();
        s.set("config", c.to_string());
    });
    let before = snapshot(&dir);
    refused(
        &resume(d.path(), "base", 4, None),
        "metadata `lbfgs_pairs` is 3, more than history_size 2",
    );
    assert!(snapshot(&dir) == before);
}

// With the strong-Wolfe line search too, an unedited state resumes bit-identically, and a
// state file of an older version (no fingerprint) still resumes, checked field by field.
#[test]
fn lbfgs_states_resume_bit_identically_with_or_without_a_fingerprint() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let wolfe = ["--line-search", "strong-wolfe"];
    lbfgs_run(d.path(), &data, "ref", 4, &wolfe);
    lbfgs_run(d.path(), &data, "base", 2, &wolfe);
    copy_run(&d.path().join("base"), &d.path().join("old"));
    ok(&resume(d.path(), "base", 4, None));
    same_files(&d.path().join("base"), &d.path().join("ref"));
    edit_state(&d.path().join("old"), |s| drop(s.meta.remove("state")));
    ok(&resume(d.path(), "old", 4, None));
    same_files(&d.path().join("old"), &d.path().join("ref"));
    // An edit in range passes no fingerprint there, but one out of range is refused.
    copy_run(&d.path().join("base"), &d.path().join("x"));
    edit_state(&d.path().join("x"), |s| {
        s.meta.remove("state");
        s.tensor("lbfgs.ro")[0] = -1.0;
    });
    refused(
        &resume(d.path(), "x", 6, None),
        "tensor `lbfgs.ro` holds -1",
    );
}

// An L-BFGS history in the state of another optimizer is refused, naming the key.
#[test]
fn an_lbfgs_history_in_another_optimizers_state_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    lbfgs_run(d.path(), &data, "l", 2, &[]);
    let rprop = tiny_train("rprop-plus", &data, 2, &["--out", "r", "--hidden", "8"]);
    ok(&run(d.path(), &rprop));
    let lbfgs = StateFile::read(&d.path().join("l/optimizer.safetensors"));
    edit_state(&d.path().join("r"), |s| {
        s.tensors.extend(
            lbfgs
                .tensors
                .iter()
                .filter(|(n, _)| n.starts_with("lbfgs."))
                .cloned(),
        );
        for (k, v) in lbfgs.meta.iter().filter(|(k, _)| k.starts_with("lbfgs_")) {
            s.meta.insert(k.clone(), v.clone());
        }
    });
    refused(
        &resume(d.path(), "r", 3, None),
        "an L-BFGS history in the state of rprop-plus",
    );
}
