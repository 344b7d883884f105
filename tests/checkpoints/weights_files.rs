//! Weights files: safetensors with PyTorch names and shapes round trip (deep networks too),
//! and broken, orphaned or unknown tensors are errors naming the file.

use rprop_lab::checkpoint;
use rprop_lab::model::{Layout, Params};

use crate::common;

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
fn weights_files_with_orphan_or_unknown_tensors_are_refused() {
    let p = Params::init(Layout::MNIST, 0);
    let with = |extra: &str| common::weights_with(&[(extra, vec![0.0; 10])]);
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
