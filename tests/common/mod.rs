//! Helpers shared by the integration tests: tiny IDX datasets written to temp folders.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

pub mod gpu;
pub mod slurm;

/// Bytes of an IDX file: magic, big-endian dims, payload.
pub fn idx(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend_from_slice(payload);
    v
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Writes an MNIST-shaped folder with `n_learn` learning and `n_test` test images of
/// `side x side` pixels (deterministic pseudo-random pixels, labels i % 10).
pub fn write_dataset(dir: &Path, n_learn: u32, n_test: u32, side: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for (n, img, lbl) in [
        (
            n_learn,
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
        ),
        (
            n_test,
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ),
    ] {
        let pixels: Vec<u8> = (0..n * side * side)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        std::fs::write(dir.join(img), gzip(&idx(0x803, &[n, side, side], &pixels))).unwrap();
        std::fs::write(dir.join(lbl), gzip(&idx(0x801, &[n], &labels))).unwrap();
    }
}

/// The bundled MNIST folder.
pub fn mnist_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")
}

/// Asserts two run folders hold the same weights (best and last) and optimizer state, bit
/// for bit (metadata aside).
pub fn assert_same_checkpoints(a: &Path, b: &Path) {
    for f in [
        "last.safetensors",
        "best.safetensors",
        "optimizer.safetensors",
    ] {
        assert!(tensors(&a.join(f)) == tensors(&b.join(f)), "{f} differs");
    }
}

/// The tensors of a safetensors file (sorted by name), without its metadata.
pub fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.data().to_vec()))
        .collect();
    v.sort();
    v
}

/// The `rprop-lab` binary, run from the project folder (so `configs/` and `data/` resolve).
pub fn bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_rprop-lab"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// Runs the binary with `args` and returns what it did.
pub fn run(args: &[&str]) -> std::process::Output {
    bin().args(args).output().unwrap()
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the run succeeded; returns its stdout.
pub fn ok(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        stderr(o)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts exit 2 and exactly one line on stderr, `error: ...` containing `needle`.
pub fn refused(o: &std::process::Output, needle: &str) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "expected exit 2, stderr: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(needle), "missing {needle:?} in: {err}");
    assert!(
        lines[0].len() < 1200,
        "error line of {} bytes",
        lines[0].len()
    );
    lines[0].to_string()
}

/// Options of a quiet in-process run writing into `out_dir`, with nothing else set.
pub fn quiet_run(out_dir: std::path::PathBuf) -> rprop_lab::trainer::RunOptions {
    rprop_lab::trainer::RunOptions {
        out_dir,
        quiet: true,
        progress: None,
        data_dir: None,
        save_every: None,
        replace: None,
        budget_evals: None,
        data_hash: None,
    }
}

/// The bytes of a weights file of the MNIST network (init seed 0) with `extra` tensors added.
pub fn weights_with(extra: &[(&str, Vec<f32>)]) -> Vec<u8> {
    let p = rprop_lab::model::Params::init(rprop_lab::model::Layout::MNIST, 0);
    let mut tensors: Vec<(&str, Vec<usize>, &[f32])> = p
        .layout
        .tensors()
        .iter()
        .map(|t| (t.name, t.dims().to_vec(), &p.data[t.range()]))
        .collect();
    tensors.extend(extra.iter().map(|(n, v)| (*n, vec![v.len()], &v[..])));
    rprop_lab::checkpoint::serialize(&tensors, &[])
}

/// A file of tests/fixtures (the torch golden traces).
pub fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// ||a - b|| / ||b||, in f64: how far a run's weights land from torch's.
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        num += (x as f64 - y as f64).powi(2);
        den += (y as f64).powi(2);
    }
    (num / den).sqrt()
}
