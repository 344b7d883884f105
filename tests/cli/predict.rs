//! `predict` and `samples` end to end on weights of a short CPU run, and the picture
//! preparation they share (`to_mnist`).

use std::path::{Path, PathBuf};

use rprop_lab::data::{self, Dataset, Part};
use rprop_lab::digits;

use crate::common::{self, ok, run};

/// Weights of 20 irprop-minus steps on 3000 images, saved in `dir/w.safetensors`, the test
/// set, and what the library predicts for each of its images.
fn trained_weights(dir: &Path) -> (PathBuf, Dataset, Vec<u8>) {
    let learn = data::load(&common::mnist_dir(), Part::Learn).unwrap();
    let (train, eval) = data::split(&learn, 3000, 500).unwrap();
    let cfg = rprop_lab::config::Config::report(rprop_lab::optim::Variant::IrpropMinus);
    let p = rprop_lab::model::Params::init(rprop_lab::model::Layout::MNIST, 0);
    let mut b = rprop_lab::cpu::CpuBackend::new(&train, &eval, p, cfg.optimizer, cfg.hyper());
    for _ in 0..20 {
        b.step();
    }
    let w = dir.join("w.safetensors");
    rprop_lab::checkpoint::save(&w, &b.params, &[]).unwrap();
    let test = data::load(&common::mnist_dir(), Part::Test).unwrap();
    let predictions = rprop_lab::cpu::evaluate(&b.params, &test).predictions;
    (w, test, predictions)
}

/// `predict` of `image` with weights `w`.
fn predict(w: &Path, image: &Path) -> std::process::Output {
    run(&[
        "predict",
        "--weights",
        w.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
    ])
}

// Test digits saved as PNGs are predicted as the library predicts them, with ten
// probabilities that sum to 1.
#[test]
fn predict_on_rendered_test_digits_agrees_with_test() {
    let d = tempfile::tempdir().unwrap();
    let (w, test, predictions) = trained_weights(d.path());
    for i in [0usize, 1, 2, 3, 4, 5, 6, 7, 8, 9, 18, 247] {
        let png = d.path().join(format!("{i}.png"));
        digits::save_digit(&png, test.image(i)).unwrap();
        let text = ok(&predict(&w, &png));
        assert!(
            text.starts_with(&format!("digit: {}\n", predictions[i])),
            "image {i}: {text}"
        );
        let probs: Vec<f32> = text
            .lines()
            .skip(1)
            .map(|l| l.split(':').nth(1).unwrap().trim().parse().unwrap())
            .collect();
        assert_eq!(probs.len(), 10);
        assert!((probs.iter().sum::<f32>() - 1.0).abs() < 2e-3);
    }
}

// A big dark-on-light picture of test digit 0 is inverted, centred and still read as the
// same class.
#[test]
fn predict_reads_a_big_dark_on_light_digit_as_its_class() {
    let d = tempfile::tempdir().unwrap();
    let (w, test, predictions) = trained_weights(d.path());
    let src = test.image(0);
    let mut big = image::GrayImage::from_pixel(200, 150, image::Luma([255]));
    for y in 0..112u32 {
        for x in 0..112u32 {
            let v = src[(y / 4 * 28 + x / 4) as usize];
            big.put_pixel(40 + x, 10 + y, image::Luma([255 - v]));
        }
    }
    let png = d.path().join("big.png");
    big.save(&png).unwrap();
    let text = ok(&predict(&w, &png));
    assert!(
        text.starts_with(&format!("digit: {}\n", predictions[0])),
        "{text}"
    );
}

// An unreadable picture is one clear error naming it.
#[test]
fn predict_of_an_unreadable_picture_names_it() {
    let d = tempfile::tempdir().unwrap();
    let (w, _, _) = trained_weights(d.path());
    let png = d.path().join("big.png");
    std::fs::write(&png, b"not an image").unwrap();
    let o = predict(&w, &png);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("big.png"));
}

// `samples` draws the misclassified test digits (at most --max) and says how many there are.
#[test]
fn samples_draws_the_misclassified_digits_and_counts_them() {
    let d = tempfile::tempdir().unwrap();
    let (w, test, predictions) = trained_weights(d.path());
    let grid = d.path().join("wrong.png");
    let text = ok(&run(&[
        "samples",
        "--weights",
        w.to_str().unwrap(),
        "--out",
        grid.to_str().unwrap(),
        "--max",
        "30",
    ]));
    let wrong = predictions
        .iter()
        .zip(&test.labels)
        .filter(|(p, l)| p != l)
        .count();
    assert!(
        text.starts_with(&format!(
            "{wrong} of 10000 test digits misclassified; drew 30"
        )),
        "{text}"
    );
    let width = image::open(&grid).unwrap().width();
    assert_eq!(width, 10 * (28 * 3 + 16) + 16);
}

#[test]
fn to_mnist_centres_and_inverts() {
    // A black square on white, off-centre, in a 100x60 picture.
    let mut img = image::GrayImage::from_pixel(100, 60, image::Luma([255]));
    for y in 5..25 {
        for x in 60..90 {
            img.put_pixel(x, y, image::Luma([0]));
        }
    }
    let px = digits::to_mnist(img);
    assert_eq!(px.len(), 784);
    // Inverted: border black, ink white; 30x20 scaled to 20x13, centred by mass near (14, 14).
    assert_eq!(px[0], 0);
    assert!(px[14 * 28 + 14] > 200);
    let (mut m, mut mx, mut my) = (0f64, 0f64, 0f64);
    for (i, &v) in px.iter().enumerate() {
        m += v as f64;
        mx += v as f64 * (i % 28) as f64;
        my += v as f64 * (i / 28) as f64;
    }
    assert!((mx / m - 14.0).abs() < 1.0 && (my / m - 14.0).abs() < 1.0);
    let ink = px.iter().filter(|&&v| v > 127).count();
    assert!((200..=300).contains(&ink), "{ink}");
}
