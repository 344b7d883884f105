//! Issue 10, hostile input files and values: each gets exit 2 and one clear line (or, where
//! legitimate, is accepted), in bounded time and memory (see hostile_util).

mod common;
mod hostile_util;

use std::path::Path;

use hostile_util::{ok, refused, run, snapshot, tiny, tiny_data, with};
use rprop_lab::checkpoint;
use rprop_lab::model::{Layout, Params};

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

// 2. A huge picture claimed by a tiny PNG is refused before it is decoded.
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

// 4. plot of +-1.7e308 ends; samples of more than 107k wrong digits; networks too big
// for memory are refused up front.
#[test]
fn extreme_values_and_sizes_end_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    ok(&run(
        d.path(),
        &with(
            &["train", "--optimizer", "rprop-plus", "--out", "A"],
            &tiny(&data, 2),
        ),
    ));
    let m = std::fs::read_to_string(d.path().join("A/metrics.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&m).unwrap();
    // A 20 MB optimizer name: the legend is cut, not drawn for minutes.
    v["optimizer"] = "o".repeat(20 << 20).into();
    std::fs::write(d.path().join("big.json"), v.to_string()).unwrap();
    for panel in [None, Some("train-acc")] {
        let mut args = vec!["plot", "big.json", "--out", "big.png"];
        args.extend(panel.iter().flat_map(|p| ["--panel", p]));
        ok(&run(d.path(), &args));
    }

    // 120,000 4x4 test digits, all labelled 1, and weights that always say 0.
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

    for hidden in ["65536,65536", "65536"] {
        let args = with(
            &[
                "train",
                "--optimizer",
                "rprop-plus",
                "--out",
                "H",
                "--hidden",
                hidden,
            ],
            &tiny(&data, 2),
        );
        refused(&run(d.path(), &args), "key `hidden`");
    }
    // [65536] with the full MNIST batch of 50,000.
    let mnist = common::mnist_dir();
    let args = [
        "train",
        "--optimizer",
        "rprop-plus",
        "--hidden",
        "65536",
        "--backend",
        "cpu",
        "--out",
        "H",
        "--data-dir",
        mnist.to_str().unwrap(),
    ];
    refused(&run(d.path(), &args), "needs about");
    assert!(!d.path().join("H").exists() && !d.path().join("runs").exists());
}

// 5. Unbounded inputs: devices, FIFOs, folders, huge values.
#[test]
fn devices_fifos_and_huge_values_are_refused() {
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
    // Huge values (a 120 KB argument, the most Linux passes; a 900 KB string in a config) echo as 80 characters.
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

// 8. Silently accepted before: each is now a clear error.
#[test]
fn nonsense_that_used_to_pass_is_refused() {
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
        let args = with(
            &[
                "train",
                "--optimizer",
                "rprop-plus",
                "--init-weights",
                "bad.safetensors",
            ],
            &tiny(&data, 1),
        );
        refused(&run(d.path(), &args), "non-finite");
    }
    std::fs::write(
        d.path().join("dup.json"),
        r#"{"optimizer": "rprop-plus", "epochs": 3, "epochs": 4}"#,
    )
    .unwrap();
    refused(
        &run(d.path(), &["train", "--config", "dup.json"]),
        "key `epochs` appears twice",
    );
    // Weights of a 784-64-10 network with the default hidden [128].
    weights(&d.path().join("w64.safetensors"), 64, 0.01);
    let args = with(
        &[
            "train",
            "--optimizer",
            "rprop-plus",
            "--init-weights",
            "w64.safetensors",
            "--out",
            "R",
        ],
        &tiny(&data, 1),
    );
    refused(&run(d.path(), &args), "--hidden 64");
    assert!(!d.path().join("R").exists());
    // An empty test set.
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

// 9. Small ones: --hidden 128, causes once, "does not exist" only when so, multi-member
// gzip.
#[test]
fn small_ones() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let args = with(
        &[
            "train",
            "--optimizer",
            "rprop-plus",
            "--out",
            "A",
            "--hidden",
            "32",
        ],
        &tiny(&data, 1),
    );
    ok(&run(d.path(), &args));
    let cfg = std::fs::read_to_string(d.path().join("A/config.json")).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["hidden"], serde_json::json!([32]));

    let w = "A/best.safetensors";
    let before = snapshot(d.path());
    let line = refused(
        &run(d.path(), &["test", "--weights", w, "--data-dir", w]),
        "is not a directory",
    );
    assert!(!line.contains("does not exist"), "{line}");
    refused(
        &run(d.path(), &["test", "--weights", w, "--data-dir", "nope"]),
        "does not exist",
    );

    // Truncated gzip: the cause is printed once.
    let img = data.join("t10k-images-idx3-ubyte.gz");
    let gz = std::fs::read(&img).unwrap();
    std::fs::write(&img, &gz[..gz.len() / 2]).unwrap();
    let line = refused(
        &run(
            d.path(),
            &["test", "--weights", w, "--data-dir", data.to_str().unwrap()],
        ),
        "truncated",
    );
    let words: Vec<&str> = line.split(": ").collect();
    let mut dedup = words.clone();
    dedup.dedup();
    assert_eq!(words, dedup, "a cause printed twice: {line}");

    // The same test images as two gzip members: valid, zcat reads it.
    let pixels: Vec<u8> = (0..50 * 784u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let raw = common::idx(0x803, &[50, 28, 28], &pixels);
    let mut two = common::gzip(&raw[..1000]);
    two.extend(common::gzip(&raw[1000..]));
    std::fs::write(&img, &two).unwrap();
    let out = ok(&run(
        d.path(),
        &["test", "--weights", w, "--data-dir", data.to_str().unwrap()],
    ));
    assert!(out.contains("on 50 images from"), "{out}");
    let now = snapshot(d.path());
    assert!(now.len() == before.len() && now[Path::new(w)] == before[Path::new(w)]);
}
