//! Optimizer-state files: tensors named for what each optimizer keeps, the generic names of
//! older files read as aliases (and resumed), exact round trips, and files holding a tensor
//! the loader would not read refused, naming the file and the tensor.

use std::path::Path;

use rprop_lab::checkpoint;
use rprop_lab::optim::{OptimState, Variant};

use crate::common;

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

#[test]
fn optimizer_state_round_trips_exactly() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("optimizer.safetensors");
    let mut s = OptimState::new(7, &rprop_lab::optim::Hyper::default());
    s.step[3] = 0.25;
    s.prev_grad[1] = -1e-30;
    s.prev_change[6] = f32::from_bits(1);
    s.prev_loss = 0.123_456_79;
    checkpoint::save_state(&p, &s, 42).unwrap();
    let (t, epoch) = checkpoint::load_state(&p, 7).unwrap();
    assert_eq!((t, epoch), (s, 42));
    assert!(checkpoint::load_state(&p, 8).is_err(), "wrong model size");
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

/// A quiet CPU run of `optimizer` on 300 train / 100 eval images of the bundled MNIST, with a
/// hidden layer of 8, into `out` (no test score).
fn train_small(optimizer: &str, out: &Path, epochs: &str) {
    common::ok(&common::run(&[
        "train",
        "--optimizer",
        optimizer,
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
}

#[test]
fn a_run_with_an_old_state_file_resumes_bit_identically() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    train_small("adam", &a, "4");
    train_small("adam", &b, "2");
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
    train_small("irprop-plus", &b, "2");
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
    common::refused(&o, "optimizer.safetensors: unexpected tensor `fc3.bias`");
}
