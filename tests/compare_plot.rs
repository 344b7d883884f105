//! `compare`, `plot`, `predict` and `samples` end to end (CPU backend, small subsets).

mod common;

use common::{ok, run};

use rprop_lab::data::{self, Part};
use rprop_lab::digits;

/// 4 epochs on 600 train / 200 eval images on the CPU: the runs compared alone and in
/// `compare` must see the same settings.
const SMALL_RUN: [&str; 12] = [
    "--epochs",
    "4",
    "--train-set-size",
    "600",
    "--train-batch-size",
    "600",
    "--eval-set-size",
    "200",
    "--eval-batch-size",
    "200",
    "--backend",
    "cpu",
];

fn png_size(path: &std::path::Path) -> (u32, u32) {
    let img = image::open(path).unwrap();
    (img.width(), img.height())
}

#[test]
fn compare_writes_results_and_charts_and_plot_redraws_them() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("cmp");
    let text = ok(&run(&[
        "compare",
        "--configs",
        "configs/rprop-minus.json",
        "configs/irprop-plus.json",
        "configs/rprop-plus.json",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]
    .iter()
    .chain(&SMALL_RUN)
    .copied()
    .collect::<Vec<_>>()));
    assert!(text.contains("| rprop-minus | "), "{text}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows.iter().map(|r| r[0]).collect::<Vec<_>>(),
        ["rprop-minus", "irprop-plus", "rprop-plus"]
    );
    for r in &rows {
        let best: usize = r[3].parse().unwrap();
        assert!((1..=4).contains(&best));
        let test_acc: f64 = r[5].parse().unwrap();
        assert!(test_acc > 0.2 && test_acc <= 1.0, "{r:?}");
        // The test accuracy is that of the run's best checkpoint.
        let set = data::load(&common::mnist_dir(), Part::Test).unwrap();
        let p =
            rprop_lab::checkpoint::load(&out.join(r[0]).join("best.safetensors"), 784, 10).unwrap();
        let ev = rprop_lab::cpu::evaluate(&p, &set);
        assert_eq!(format!("{}", ev.stats.accuracy()), r[5]);
        // And the eval accuracy is the one its metrics recorded at the best epoch.
        let m = rprop_lab::metrics::Metrics::load(&out.join(r[0]).join("metrics.json")).unwrap();
        assert_eq!(m.epochs.len(), 4);
        assert_eq!(format!("{}", m.epochs[best - 1].eval_acc), r[4]);
    }
    // Runs after the first reuse its backend (data uploaded once): each still equals a run
    // of its own.
    let alone = d.path().join("alone");
    ok(&run(&[
        "train",
        "--config",
        "configs/rprop-plus.json",
        "--out",
        alone.to_str().unwrap(),
        "-q",
    ]
    .iter()
    .chain(&SMALL_RUN)
    .copied()
    .collect::<Vec<_>>()));
    let (a, b) = (
        rprop_lab::metrics::Metrics::load(&alone.join("metrics.json")).unwrap(),
        rprop_lab::metrics::Metrics::load(&out.join("rprop-plus/metrics.json")).unwrap(),
    );
    for (x, y) in a.epochs.iter().zip(&b.epochs) {
        assert_eq!(x.train_loss.to_bits(), y.train_loss.to_bits());
        assert_eq!(x.eval_loss.to_bits(), y.eval_loss.to_bits());
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    // The report's numbers sit beside its own settings only, not beside 4-epoch runs.
    assert!(
        md.contains("| irprop-plus | ") && !md.contains("0.9557"),
        "{md}"
    );
    assert!(md
        .lines()
        .all(|l| !l.starts_with("| irprop-plus") || l.ends_with("| - | - |")));
    assert_eq!(png_size(&out.join("telemetry.png")), (1800, 1800));
    for f in ["train_loss", "eval_loss", "train_acc", "eval_acc"] {
        assert_eq!(png_size(&out.join(format!("{f}.png"))), (900, 600));
    }
    assert_eq!(png_size(&out.join("curves.png")), (1800, 1200));

    let chart = d.path().join("chart.png");
    let m1 = out.join("rprop-minus/metrics.json");
    let m2 = out.join("rprop-plus/metrics.json");
    ok(&run(&[
        "plot",
        m1.to_str().unwrap(),
        m2.to_str().unwrap(),
        "--out",
        chart.to_str().unwrap(),
    ]));
    assert_eq!(png_size(&chart), (1800, 1200));
    ok(&run(&[
        "plot",
        m1.to_str().unwrap(),
        "--out",
        chart.to_str().unwrap(),
        "--panel",
        "eval-acc",
        "--linear-loss",
    ]));
    assert_eq!(png_size(&chart), (900, 600));
}

#[test]
fn plot_rejects_malformed_metrics() {
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("metrics.json");
    for text in [
        "{\"optimizer\": 3}",
        "not json",
        "{\"optimizer\":\"x\",\"backend\":\"cpu\",\"best_epoch\":0,\"epochs\":[]}",
    ] {
        std::fs::write(&bad, text).unwrap();
        let o = run(&[
            "plot",
            bad.to_str().unwrap(),
            "--out",
            d.path().join("c.png").to_str().unwrap(),
        ]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{e}");
        assert!(
            e.starts_with("error: ") && e.contains("metrics.json"),
            "{e}"
        );
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert!(!d.path().join("c.png").exists());
    }
}

#[test]
fn predict_on_rendered_test_digits_agrees_with_test() {
    let d = tempfile::tempdir().unwrap();
    let learn = data::load(&common::mnist_dir(), Part::Learn).unwrap();
    let (train, eval) = data::split(&learn, 3000, 500).unwrap();
    let cfg = rprop_lab::config::Config::report(rprop_lab::optim::Variant::IrpropMinus);
    let p = rprop_lab::model::Params::init(rprop_lab::model::Layout::MNIST, 0);
    let mut b = rprop_lab::cpu::CpuBackend::new(&train, &eval, p, cfg.optimizer, cfg.hyper());
    for _ in 0..20 {
        b.step();
    }
    let w = d.path().join("w.safetensors");
    rprop_lab::checkpoint::save(&w, &b.params, &[]).unwrap();
    let test = data::load(&common::mnist_dir(), Part::Test).unwrap();
    let ev = rprop_lab::cpu::evaluate(&b.params, &test);
    for i in [0usize, 1, 2, 3, 4, 5, 6, 7, 8, 9, 18, 247] {
        let png = d.path().join(format!("{i}.png"));
        digits::save_digit(&png, test.image(i)).unwrap();
        let text = ok(&run(&[
            "predict",
            "--weights",
            w.to_str().unwrap(),
            "--image",
            png.to_str().unwrap(),
        ]));
        assert!(
            text.starts_with(&format!("digit: {}\n", ev.predictions[i])),
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
    // A big dark-on-light picture of test digit 0 is inverted, centred and still read as
    // the same class.
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
    let text = ok(&run(&[
        "predict",
        "--weights",
        w.to_str().unwrap(),
        "--image",
        png.to_str().unwrap(),
    ]));
    assert!(
        text.starts_with(&format!("digit: {}\n", ev.predictions[0])),
        "{text}"
    );
    // An unreadable picture is one clear error.
    std::fs::write(&png, b"not an image").unwrap();
    let o = run(&[
        "predict",
        "--weights",
        w.to_str().unwrap(),
        "--image",
        png.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("big.png"));

    // samples draws the misclassified ones and says how many.
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
    let wrong = ev
        .predictions
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
    assert_eq!(png_size(&grid).0, 10 * (28 * 3 + 16) + 16);
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
