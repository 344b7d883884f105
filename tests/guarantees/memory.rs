//! Sizes that cannot fit in the memory cap: networks, their saves, weights files and data
//! sets are refused up front in one line, never aborted by an allocation.

use crate::capped::{self, refused, run, tiny_data, tiny_train};
use crate::common;
use std::os::unix::process::CommandExt;
use std::path::Path;

// The estimate counts the copies a save makes: a network that trains in the
// memory but whose save would not fit is refused up front, not aborted after training.
#[test]
fn a_network_whose_save_cannot_fit_is_refused_up_front() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    // 784-4500-4500-10: 23.8 M parameters, 1.45 GB with its save, over the 1.2 GB the
    // 1.5 GiB cap leaves (the old estimate, 1.07 GB, let it train and abort in the save).
    let mut args = tiny_train("rprop-plus", &data, 1, &["--out", "H"]);
    args.extend(["--hidden", "4500,4500", "--no-test"].map(String::from));
    let line = refused(&run(d.path(), &args), "key `hidden`");
    assert!(!d.path().join("H").exists());
    // The two sizes never print equal (they are whole MiB, need rounded up).
    let mib: Vec<u64> = line
        .split(" MiB")
        .filter_map(|t| t.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(mib.len() == 2 && mib[0] > mib[1], "{line}");
}

/// A valid safetensors file of a 784-65536-3000-10 network of zeros (0.99 GB, sparse on
/// disk, so it costs no time to write).
fn big_weights(path: &Path) {
    let dims: [(&str, Vec<u64>); 6] = [
        ("fc1.weight", vec![65536, 784]),
        ("fc1.bias", vec![65536]),
        ("fc2.weight", vec![3000, 65536]),
        ("fc2.bias", vec![3000]),
        ("fc3.weight", vec![10, 3000]),
        ("fc3.bias", vec![10]),
    ];
    let mut off = 0u64;
    let mut parts = Vec::new();
    for (name, shape) in &dims {
        let end = off + 4 * shape.iter().product::<u64>();
        parts.push(format!(
            "\"{name}\":{{\"dtype\":\"F32\",\"shape\":{shape:?},\"data_offsets\":[{off},{end}]}}"
        ));
        off = end;
    }
    let mut header = format!("{{{}}}", parts.join(",")).into_bytes();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut head = (header.len() as u64).to_le_bytes().to_vec();
    head.extend(&header);
    std::fs::write(path, &head).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(head.len() as u64 + off).unwrap();
    assert!(f.metadata().unwrap().len() > 900_000_000);
}

// A valid weights file too large to load in the memory is an error naming it.
#[test]
fn weights_too_large_for_memory_are_refused_not_aborted() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    big_weights(&d.path().join("big.safetensors"));
    let data_dir = data.to_str().unwrap();
    for cmd in ["test", "samples"] {
        let mut args = vec![cmd, "--weights", "big.safetensors", "--data-dir", data_dir];
        if cmd == "samples" {
            args.extend(["--out", "s.png"]);
        }
        refused(&run(d.path(), &args), "big.safetensors");
    }
    assert!(!d.path().join("s.png").exists());
}

// A data set that is valid but cannot fit beside the run under the address
// space cap is one clear line, not an allocation abort.
#[test]
fn data_too_large_for_memory_is_one_line() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    // A header claiming 60000 images of 130x130 (1.01 GB), then a little of the data.
    let head = common::idx(0x803, &[60_000, 130, 130], &[0u8; 4096]);
    std::fs::write(data.join("train-images-idx3-ubyte.gz"), common::gzip(&head)).unwrap();
    let args = tiny_train("rprop-plus", &data, 1, &["--out", "B"]);
    let mut c = capped::command(d.path(), &args);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs before exec.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = capped::wait(c.spawn().unwrap(), "train on big data");
    refused(&o, "train-images-idx3-ubyte.gz");
    assert!(capped::stderr(&o).contains("MiB this process may use"));
    assert!(!d.path().join("B").exists());
}

// Networks too big for the memory are refused up front, on the tiny data and with the
// full MNIST batch of 50,000, and nothing is created.
#[test]
fn networks_too_big_for_the_memory_are_refused_up_front() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    for hidden in ["65536,65536", "65536"] {
        let args = ["--out", "H", "--hidden", hidden];
        refused(
            &run(d.path(), &tiny_train("rprop-plus", &data, 2, &args)),
            "key `hidden`",
        );
    }
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
