//! Charts a new user reads (issue 25, "Newcomer polish"): every optimizer in a colour of
//! its own, a twelve-config legend beside the plot instead of over it, an accuracy zoom that
//! keeps each line's best epoch, and a loss axis labelled near the lowest loss.

use rprop_lab::metrics::{EpochRecord, Metrics};
use rprop_lab::optim::Variant;
use rprop_lab::plot::{self, style_of, ChartOptions, Panel, XAxis};

#[test]
fn every_optimizer_has_a_colour_of_its_own() {
    let colours: Vec<_> = Variant::ALL
        .iter()
        .map(|v| style_of(v.name(), 0).0)
        .collect();
    for (i, c) in colours.iter().enumerate() {
        assert!(
            !colours[..i].contains(c),
            "{} has the colour of an earlier optimizer",
            Variant::ALL[i]
        );
    }
}

/// A run of `opt` over 20 epochs whose best (lowest eval loss) epoch is `best`.
fn run_of(opt: &str, best: usize) -> Metrics {
    let epochs = (1..=20)
        .map(|e| EpochRecord {
            epoch: e,
            train_loss: 1.0 / e as f32,
            train_acc: 0.5 + 0.02 * e as f64,
            eval_loss: 1.0 / e as f32,
            eval_acc: 0.5 + 0.02 * e as f64,
            seconds: 0.1,
            grad_evals: 1,
            telemetry: Vec::new(),
        })
        .collect();
    Metrics {
        optimizer: opt.into(),
        backend: "cpu".into(),
        best_epoch: best,
        data_dir: None,
        epochs,
        test: None,
    }
}

/// The chart of `runs` (one line each) as an image.
fn render(runs: &[(String, Metrics)], panel: Panel) -> image::RgbImage {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("c.png");
    let groups = plot::group_runs(runs);
    plot::chart(&path, &groups, panel, &ChartOptions::default()).unwrap();
    image::open(&path).unwrap().to_rgb8()
}

// Twelve lines (every optimizer, L-BFGS twice): the legend stands beside the plot, which
// keeps its full width; four lines keep theirs inside, in the emptiest corner.
#[test]
fn twelve_lines_put_the_legend_beside_the_plot() {
    let mut runs: Vec<(String, Metrics)> = Variant::ALL
        .iter()
        .map(|v| (v.name().to_string(), run_of(v.name(), 20)))
        .collect();
    runs.push(("lbfgs-wolfe".into(), run_of("lbfgs", 20)));
    let groups = plot::group_runs(&runs);
    let side = plot::side_width(&groups, XAxis::Epochs).expect("a legend beside");
    let img = render(&runs, Panel::EvalLoss);
    let width = ChartOptions::default().width;
    assert_eq!(img.width(), width + side);
    // The legend's text is there, right of the plot.
    let dark = (width + 40..width + side)
        .flat_map(|x| (0..img.height()).map(move |y| (x, y)))
        .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&c| c < 80))
        .count();
    assert!(dark > 500, "{dark} dark pixels beside the plot");
    let four = &runs[..4];
    assert!(plot::side_width(&plot::group_runs(four), XAxis::Epochs).is_none());
    assert_eq!(render(four, Panel::EvalLoss).width(), width);
}

// A 50-epoch run whose best epoch is 6 (L-BFGS overfits early): its accuracy line is drawn
// from epoch 6, not from the zoom's epoch 10; other lines still from 10.
#[test]
fn the_accuracy_zoom_keeps_each_lines_best_epoch() {
    assert_eq!(plot::zoom_start(50), 10);
    assert_eq!(plot::line_start(10, 6), 6);
    assert_eq!(plot::line_start(10, 40), 10);
    // A record without a best epoch (0) keeps the zoom.
    assert_eq!(plot::line_start(10, 0), 10);
}

// Final losses of 0.12 to 0.17 on an axis from 2.3: a labelled point below 0.2, and every
// label reads back as its point (0.12 is not labelled 0.1).
#[test]
fn a_loss_axis_has_a_point_near_its_lowest_loss() {
    let (lo, hi) = (0.12 / 1.1, 2.3 * 1.1);
    let ticks = plot::log_ticks(lo, hi);
    assert!(ticks.iter().any(|&t| t >= lo && t < 0.2), "{ticks:?}");
    let digits = plot::label_digits(&ticks);
    let labels: Vec<String> = ticks.iter().map(|t| plot::tick_label(*t, digits)).collect();
    for (t, label) in ticks.iter().zip(&labels) {
        let back: f64 = label.parse().unwrap();
        assert!((back - t).abs() <= 1e-9 * t, "{t} labelled {label}");
    }
    assert_eq!(labels[..2], ["0.12", "0.2"], "{labels:?}");
    // Where the lowest point is near the foot already, none is added.
    let ticks = plot::log_ticks(0.19, 2.5);
    assert_eq!(ticks.first(), Some(&0.2), "{ticks:?}");
}
