//! The IDX loader on real MNIST and on broken files: each error names the file.

use crate::common::{gzip, idx, mnist_dir, write_dataset};
use rprop_lab::data::{self, normalize, Part};

#[test]
fn loads_bundled_mnist() {
    let learn = data::load(&mnist_dir(), Part::Learn).unwrap();
    let test = data::load(&mnist_dir(), Part::Test).unwrap();
    assert_eq!((learn.len(), learn.rows, learn.cols), (60_000, 28, 28));
    assert_eq!(test.len(), 10_000);
    assert_eq!(learn.images.len(), 60_000 * 784);
    // MNIST's well-known first labels: train starts 5 0 4 1 9, test starts 7 2 1 0 4.
    assert_eq!(&learn.labels[..5], &[5, 0, 4, 1, 9]);
    assert_eq!(&test.labels[..5], &[7, 2, 1, 0, 4]);
    // Every class is present, about 10% each.
    for c in 0..10u8 {
        let k = test.labels.iter().filter(|&&l| l == c).count();
        assert!((800..1200).contains(&k), "class {c}: {k}");
    }
    let (train, eval) = data::split(&learn, 50_000, 10_000).unwrap();
    assert_eq!(train.len(), 50_000);
    assert_eq!(eval.image(0), learn.image(50_000));
    assert!(data::split(&learn, 50_001, 10_000).is_err());
}

#[test]
fn normalization_matches_torchvision() {
    assert_eq!(normalize(0), -1.0);
    assert_eq!(normalize(255), 1.0);
    // ToTensor: 128/255 in f32, then (x - 0.5) / 0.5.
    assert_eq!(normalize(128), (128f32 / 255.0 - 0.5) / 0.5);
    assert!((normalize(128) - 0.003_921_628).abs() < 1e-7);
}

fn err_of(dir: &std::path::Path) -> String {
    data::load(dir, Part::Learn).unwrap_err().to_string()
}

#[test]
fn missing_dir_is_named() {
    let e = err_of(std::path::Path::new("/no/such/dir"));
    assert!(
        e.contains("/no/such/dir") && e.contains("does not exist"),
        "{e}"
    );
}

#[test]
fn missing_file_is_named() {
    let d = tempfile::tempdir().unwrap();
    write_dataset(d.path(), 20, 10, 4);
    std::fs::remove_file(d.path().join("train-labels-idx1-ubyte.gz")).unwrap();
    let e = err_of(d.path());
    assert!(e.contains("train-labels-idx1-ubyte.gz"), "{e}");
}

#[test]
fn small_dataset_round_trips() {
    let d = tempfile::tempdir().unwrap();
    write_dataset(d.path(), 20, 10, 4);
    let s = data::load(d.path(), Part::Learn).unwrap();
    assert_eq!((s.len(), s.features()), (20, 16));
    assert_eq!(s.labels[13], 3);
}

#[test]
fn truncated_gzip_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    write_dataset(d.path(), 200, 10, 8);
    let p = d.path().join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = err_of(d.path());
    assert!(e.contains("train-images-idx3-ubyte.gz"), "{e}");
    assert!(e.contains("gzip") || e.contains("truncated"), "{e}");
}

#[test]
fn not_gzip_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    write_dataset(d.path(), 20, 10, 4);
    std::fs::write(
        d.path().join("train-images-idx3-ubyte.gz"),
        b"this is not gzip at all",
    )
    .unwrap();
    let e = err_of(d.path());
    assert!(
        e.contains("train-images-idx3-ubyte.gz") && e.contains("gzip"),
        "{e}"
    );
}

#[test]
fn wrong_magic_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    write_dataset(d.path(), 20, 10, 4);
    // A labels file where images are expected.
    std::fs::write(
        d.path().join("train-images-idx3-ubyte.gz"),
        gzip(&idx(0x801, &[20], &[0; 20])),
    )
    .unwrap();
    let e = err_of(d.path());
    assert!(
        e.contains("train-images-idx3-ubyte.gz") && e.contains("magic"),
        "{e}"
    );
}

#[test]
fn count_mismatch_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    write_dataset(d.path(), 20, 10, 4);
    std::fs::write(
        d.path().join("train-labels-idx1-ubyte.gz"),
        gzip(&idx(0x801, &[19], &[1; 19])),
    )
    .unwrap();
    let e = err_of(d.path());
    assert!(e.contains("20 images") && e.contains("19 labels"), "{e}");
}

#[test]
fn lying_header_is_caught_before_allocating() {
    let d = tempfile::tempdir().unwrap();
    write_dataset(d.path(), 20, 10, 4);
    // Claims 4 billion 65535x65535 images but holds 16 bytes.
    std::fs::write(
        d.path().join("train-images-idx3-ubyte.gz"),
        gzip(&idx(0x803, &[u32::MAX, 65_535, 65_535], &[0; 16])),
    )
    .unwrap();
    let e = err_of(d.path());
    assert!(e.contains("train-images-idx3-ubyte.gz"), "{e}");
    assert!(e.contains("overflow") || e.contains("holds"), "{e}");
}

#[test]
fn label_out_of_range_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    write_dataset(d.path(), 20, 10, 4);
    let mut labels = vec![1u8; 20];
    labels[7] = 10;
    std::fs::write(
        d.path().join("train-labels-idx1-ubyte.gz"),
        gzip(&idx(0x801, &[20], &labels)),
    )
    .unwrap();
    let e = err_of(d.path());
    assert!(e.contains("label 10 at index 7"), "{e}");
}

#[test]
fn short_header_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    write_dataset(d.path(), 20, 10, 4);
    std::fs::write(
        d.path().join("train-images-idx3-ubyte.gz"),
        gzip(&[0, 0, 8, 3, 0, 0]),
    )
    .unwrap();
    let e = err_of(d.path());
    assert!(e.contains("truncated IDX header"), "{e}");
}
