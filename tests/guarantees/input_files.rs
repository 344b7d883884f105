//! Hostile input files: huge PNGs, devices, FIFOs, folders, non-finite or mis-shaped weights,
//! broken and multi-member gzip, data past its header. Each is refused in one line (or, where
//! legitimate, accepted) in bounded time and memory.

use crate::capped::{ok, refused, run, snapshot, tiny_data, tiny_train, trained};
use crate::common;
use rprop_lab::checkpoint;
use rprop_lab::model::{Layout, Params};
use std::path::Path;

/// A grey-scale PNG of `w` x `h` black pixels (a few KB however large it claims to be).
fn png(w: u32, h: u32) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let row = vec![0u8; w as usize + 1];
    for _ in 0..h {
        z.write_all(&row).unwrap();
    }
    let idat = z.finish().unwrap();
    let chunk = |t: &[u8], d: &[u8]| {
        let mut c = (d.len() as u32).to_be_bytes().to_vec();
        c.extend(t);
        c.extend(d);
        let mut h = flate2::Crc::new();
        h.update(t);
        h.update(d);
        c.extend(h.sum().to_be_bytes());
        c
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]);
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend(chunk(b"IHDR", &ihdr));
    v.extend(chunk(b"IDAT", &idat));
    v.extend(chunk(b"IEND", &[]));
    v
}

/// Weights of a 784-`hidden`-10 network saved in `path`, all `x`.
fn weights(path: &Path, hidden: usize, x: f32) {
    let mut p = Params::zeros(Layout::new(784, hidden, 10));
    p.data.iter_mut().for_each(|v| *v = x);
    checkpoint::save(path, &p, &[]).unwrap();
}

// A huge picture claimed by a tiny PNG is refused before it is decoded; a legal one is read.
#[test]
fn predict_bounds_the_decode_by_the_header() {
    let d = tempfile::tempdir().unwrap();
    weights(&d.path().join("w.safetensors"), 16, 0.01);
    for (w, h) in [(20_000_000, 1), (500_000_000, 1), (1, 9000)] {
        std::fs::write(d.path().join("big.png"), png(w, h)).unwrap();
        let args = [
            "predict",
            "--weights",
            "w.safetensors",
            "--image",
            "big.png",
        ];
        refused(&run(d.path(), &args), "8192x8192");
    }
    std::fs::write(d.path().join("ok.png"), png(100, 40)).unwrap();
    let out = ok(&run(
        d.path(),
        &["predict", "--weights", "w.safetensors", "--image", "ok.png"],
    ));
    assert!(out.starts_with("digit: "), "{out}");
}

// A 60 KiB optimizer name in a metrics file: the legend is cut, not drawn for minutes. A
// 20 MB one is more than a metrics file may hold in a string (64 KiB; it would be held
// whole in memory): refused in one line.
#[test]
fn plot_of_a_long_optimizer_name_ends() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "A");
    let m = std::fs::read_to_string(d.path().join("A/metrics.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&m).unwrap();
    v["optimizer"] = "o".repeat(60 << 10).into();
    std::fs::write(d.path().join("big.json"), v.to_string()).unwrap();
    for panel in [None, Some("train-acc")] {
        let mut args = vec!["plot", "big.json", "--out", "big.png"];
        args.extend(panel.iter().flat_map(|p| ["--panel", p]));
        ok(&run(d.path(), &args));
    }
    v["optimizer"] = "o".repeat(20 << 20).into();
    std::fs::write(d.path().join("huge.json"), v.to_string()).unwrap();
    let o = run(d.path(), &["plot", "huge.json", "--out", "huge.png"]);
    refused(
        &o,
        "huge.json: not a metrics file: holds a string longer than 65536 bytes",
    );
}

// 120,000 4x4 test digits, all labelled 1, and weights that always say 0: `samples` counts
// them all and draws at most 1000.
#[test]
fn samples_of_120000_wrong_digits_draws_1000() {
    let d = tempfile::tempdir().unwrap();
    let many = d.path().join("many");
    std::fs::create_dir(&many).unwrap();
    let n = 120_000u32;
    for (img, lbl) in [
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    ] {
        let pixels = vec![0u8; (n * 16) as usize];
        std::fs::write(
            many.join(img),
            common::gzip(&common::idx(0x803, &[n, 4, 4], &pixels)),
        )
        .unwrap();
        let labels = vec![1u8; n as usize];
        std::fs::write(
            many.join(lbl),
            common::gzip(&common::idx(0x801, &[n], &labels)),
        )
        .unwrap();
    }
    let mut p = Params::zeros(Layout::new(16, 2, 10));
    let bias = p.layout.tensors()[3].range();
    p.data[bias.start] = 1.0;
    checkpoint::save(&d.path().join("zero.safetensors"), &p, &[]).unwrap();
    let out = ok(&run(
        d.path(),
        &[
            "samples",
            "--weights",
            "zero.safetensors",
            "--data-dir",
            "many",
            "--max",
            "1000000",
            "--out",
            "wrong.png",
        ],
    ));
    assert!(
        out.starts_with("120000 of 120000 test digits misclassified; drew 1000"),
        "{out}"
    );
}

// Devices, FIFOs and folders given as a config, weights, metrics or data file are refused
// without reading them.
#[test]
fn devices_fifos_and_folders_are_refused_as_input_files() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let fifo = d.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let dd = data.to_str().unwrap();
    for (args, needle) in [
        (vec!["train", "--config", "/dev/zero"], "not a regular file"),
        (vec!["train", "--config", "fifo"], "not a regular file"),
        (
            vec!["test", "--weights", "/dev/zero", "--data-dir", dd],
            "not a regular file",
        ),
        (
            vec!["test", "--weights", "fifo", "--data-dir", dd],
            "not a regular file",
        ),
        (vec!["plot", "/dev/zero"], "not a regular file"),
        (vec!["plot", "fifo"], "not a regular file"),
        (
            vec!["predict", "--weights", "fifo", "--image", "x.png"],
            "not a regular file",
        ),
        (vec!["train", "--config", "data"], "a folder"),
    ] {
        refused(&run(d.path(), &args), needle);
    }
    // A data file that is a FIFO.
    std::fs::remove_file(data.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    std::fs::rename(&fifo, data.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    weights(&d.path().join("w.safetensors"), 8, 0.0);
    refused(
        &run(
            d.path(),
            &["test", "--weights", "w.safetensors", "--data-dir", dd],
        ),
        "not a regular file",
    );
}

// NaN and infinite weights are refused by `test` and by `--init-weights`.
#[test]
fn non_finite_weights_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let dd = data.to_str().unwrap();
    for x in [f32::NAN, f32::INFINITY] {
        weights(&d.path().join("bad.safetensors"), 128, x);
        refused(
            &run(
                d.path(),
                &["test", "--weights", "bad.safetensors", "--data-dir", dd],
            ),
            "non-finite",
        );
        let init = ["--init-weights", "bad.safetensors"];
        refused(
            &run(d.path(), &tiny_train("rprop-plus", &data, 1, &init)),
            "non-finite",
        );
    }
}

// A config naming a key twice is refused naming it.
#[test]
fn a_config_with_a_key_twice_is_refused() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("dup.json"),
        r#"{"optimizer": "rprop-plus", "epochs": 3, "epochs": 4}"#,
    )
    .unwrap();
    refused(
        &run(d.path(), &["train", "--config", "dup.json"]),
        "key `epochs` appears twice",
    );
}

// Weights of a 784-64-10 network with the default hidden [128]: the line says which
// `--hidden` they fit, and no run folder is made.
#[test]
fn init_weights_of_another_hidden_size_name_the_size_they_fit() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    weights(&d.path().join("w64.safetensors"), 64, 0.01);
    let args = ["--init-weights", "w64.safetensors", "--out", "R"];
    refused(
        &run(d.path(), &tiny_train("rprop-plus", &data, 1, &args)),
        "--hidden 64",
    );
    assert!(!d.path().join("R").exists());
}

// A test set of no images is refused.
#[test]
fn an_empty_test_set_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let empty = d.path().join("empty");
    common::write_dataset(&empty, 300, 0, 28);
    weights(&d.path().join("w.safetensors"), 8, 0.0);
    refused(
        &run(
            d.path(),
            &[
                "test",
                "--weights",
                "w.safetensors",
                "--data-dir",
                empty.to_str().unwrap(),
            ],
        ),
        "holds no images",
    );
}

// "does not exist" is said only when so: a data folder that is a file is "not a directory".
#[test]
fn a_data_folder_that_is_a_file_is_not_said_missing() {
    let d = tempfile::tempdir().unwrap();
    weights(&d.path().join("w.safetensors"), 8, 0.0);
    let before = snapshot(d.path());
    let w = "w.safetensors";
    let line = refused(
        &run(d.path(), &["test", "--weights", w, "--data-dir", w]),
        "is not a directory",
    );
    assert!(!line.contains("does not exist"), "{line}");
    refused(
        &run(d.path(), &["test", "--weights", w, "--data-dir", "nope"]),
        "does not exist",
    );
    assert!(snapshot(d.path()) == before, "a refused test wrote a file");
}

// A truncated gzip: the cause is printed once.
#[test]
fn a_truncated_gzip_prints_its_cause_once() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    weights(&d.path().join("w.safetensors"), 8, 0.0);
    let img = data.join("t10k-images-idx3-ubyte.gz");
    let gz = std::fs::read(&img).unwrap();
    std::fs::write(&img, &gz[..gz.len() / 2]).unwrap();
    let dd = data.to_str().unwrap();
    let line = refused(
        &run(
            d.path(),
            &["test", "--weights", "w.safetensors", "--data-dir", dd],
        ),
        "truncated",
    );
    let words: Vec<&str> = line.split(": ").collect();
    let mut dedup = words.clone();
    dedup.dedup();
    assert_eq!(words, dedup, "a cause printed twice: {line}");
}

// The same test images as two gzip members: valid (zcat reads it), and read whole.
#[test]
fn a_multi_member_gzip_is_read_whole() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    weights(&d.path().join("w.safetensors"), 8, 0.0);
    let pixels: Vec<u8> = (0..50 * 784u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let raw = common::idx(0x803, &[50, 28, 28], &pixels);
    let mut two = common::gzip(&raw[..1000]);
    two.extend(common::gzip(&raw[1000..]));
    std::fs::write(data.join("t10k-images-idx3-ubyte.gz"), &two).unwrap();
    let dd = data.to_str().unwrap();
    let out = ok(&run(
        d.path(),
        &["test", "--weights", "w.safetensors", "--data-dir", dd],
    ));
    assert!(out.contains("on 50 images from"), "{out}");
}

// A tiny IDX header followed by 1.2 GB of zeros was blamed on the file ("not a valid gzip
// file or truncated: out of memory"); it is refused by its size, naming the file, and
// without reading the rest.
#[test]
fn data_past_its_header_is_refused_by_size() {
    use std::io::Write;
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let file = data.join("train-images-idx3-ubyte.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&file).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(&common::idx(0x803, &[1, 1, 1], &[0])).unwrap();
    let zeros = vec![0u8; 1 << 24];
    for _ in 0..72 {
        gz.write_all(&zeros).unwrap();
    }
    gz.finish().unwrap();
    let o = run(
        d.path(),
        &tiny_train("rprop-plus", &data, 1, &["--out", "Z"]),
    );
    let line = refused(
        &o,
        "train-images-idx3-ubyte.gz: holds more data than the 1 bytes its header claims",
    );
    assert!(!line.contains("gzip"), "{line}");
}
