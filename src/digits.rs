//! Single digits in and out of picture files: `predict` reads any PNG/JPEG and turns it into
//! an MNIST-like 28x28 digit; `samples` draws a grid of misclassified test digits.

use std::path::Path;

use anyhow::{Context, Result};
use image::{imageops, GrayImage, Luma};
use plotters::prelude::*;

use crate::cpu;
use crate::data::Dataset;
use crate::model::Params;
use crate::plot::{render_png, write_png};

pub const SIDE: u32 = 28;
/// MNIST fits each digit into a 20x20 box, centred by its centre of mass in 28x28.
const BOX: u32 = 20;

/// Reads an image file (PNG, JPEG, ...) as an MNIST-like digit: 28x28 grey-scale, white
/// digit on black.
pub fn load_digit(path: &Path) -> Result<Vec<u8>> {
    let bytes = crate::fsio::read_capped(path, "image", crate::fsio::MAX_IMAGE)?;
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .with_context(|| format!("{}: cannot read image", path.display()))?;
    // The header's dimensions bound the decode and the resize before anything is
    // allocated (a few-KB PNG may claim 500,000,000 x 1 pixels).
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(256 << 20);
    reader.limits(limits);
    let img = reader
        .decode()
        .with_context(|| {
            format!(
                "{}: cannot read image (PNG or JPEG of at most {MAX_SIDE}x{MAX_SIDE} pixels)",
                path.display()
            )
        })?
        .to_luma8();
    Ok(to_mnist(img))
}

/// Largest picture side `predict` reads (a photo of a digit needs far less).
pub const MAX_SIDE: u32 = 8192;

/// Converts a grey-scale picture to MNIST's form: inverted when its background (border) is
/// light, then, unless it is already 28x28, cropped to the digit, scaled to fit 20x20 and
/// centred by centre of mass.
pub fn to_mnist(mut img: GrayImage) -> Vec<u8> {
    let (w, h) = img.dimensions();
    let border: Vec<u8> = (0..w)
        .flat_map(|x| [(x, 0), (x, h - 1)])
        .chain((0..h).flat_map(|y| [(0, y), (w - 1, y)]))
        .map(|(x, y)| img.get_pixel(x, y).0[0])
        .collect();
    let border_mean = border.iter().map(|&v| v as f64).sum::<f64>() / border.len() as f64;
    if border_mean > 127.0 {
        imageops::invert(&mut img);
    }
    if (w, h) == (SIDE, SIDE) {
        return img.into_raw();
    }
    // Bounding box of the ink.
    let ink = |p: &Luma<u8>| p.0[0] > 40;
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for (x, y, p) in img.enumerate_pixels() {
        if ink(p) {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
    }
    if x0 > x1 {
        // No ink at all: just scale the whole picture.
        return imageops::resize(&img, SIDE, SIDE, imageops::FilterType::Triangle).into_raw();
    }
    let crop = imageops::crop_imm(&img, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image();
    let (cw, ch) = crop.dimensions();
    let scale = BOX as f64 / cw.max(ch) as f64;
    let (nw, nh) = (
        ((cw as f64 * scale).round() as u32).clamp(1, BOX),
        ((ch as f64 * scale).round() as u32).clamp(1, BOX),
    );
    let small = imageops::resize(&crop, nw, nh, imageops::FilterType::Lanczos3);
    // Centre of mass of the scaled digit, placed at the canvas centre.
    let (mut m, mut mx, mut my) = (0f64, 0f64, 0f64);
    for (x, y, p) in small.enumerate_pixels() {
        let v = p.0[0] as f64;
        m += v;
        mx += v * x as f64;
        my += v * y as f64;
    }
    let (cx, cy) = if m > 0.0 {
        (mx / m, my / m)
    } else {
        (nw as f64 / 2.0, nh as f64 / 2.0)
    };
    let mut canvas = GrayImage::new(SIDE, SIDE);
    let ox = (SIDE as f64 / 2.0 - cx).round() as i64;
    let oy = (SIDE as f64 / 2.0 - cy).round() as i64;
    imageops::overlay(&mut canvas, &small, ox, oy);
    canvas.into_raw()
}

/// Classifies one 28x28 digit: the predicted class and the 10 probabilities.
pub fn predict(params: &Params, pixels: &[u8]) -> (u8, Vec<f32>) {
    let one = Dataset {
        images: pixels.to_vec(),
        labels: vec![0],
        rows: SIDE as usize,
        cols: SIDE as usize,
    };
    let ev = cpu::evaluate(params, &one);
    (ev.predictions[0], ev.probabilities)
}

/// Writes one digit as a 28x28 grey PNG (white on black, as MNIST stores it).
pub fn save_digit(path: &Path, pixels: &[u8]) -> Result<()> {
    let rgb = pixels.iter().flat_map(|&v| [v, v, v]).collect();
    write_png(path, SIDE, SIDE, rgb)
}

/// Most digits a grid draws (100 rows of 10).
pub const MAX_GRID: usize = 1000;

/// Draws up to `max` (at most [`MAX_GRID`]) misclassified digits in a grid, each captioned "true -> predicted".
/// Returns how many were misclassified in all.
pub fn misclassified_grid(
    path: &Path,
    set: &Dataset,
    predictions: &[u8],
    max: usize,
) -> Result<usize> {
    let wrong: Vec<usize> = (0..set.len())
        .filter(|&i| predictions[i] != set.labels[i])
        .collect();
    // The grid's pixel buffer grows with the rows; a cap keeps it (and u32 sizes) small.
    let shown = wrong.len().min(max).min(MAX_GRID);
    const SCALE: u32 = 3;
    const CELL_W: u32 = SIDE * SCALE + 16;
    const CELL_H: u32 = SIDE * SCALE + 34;
    const TOP: u32 = 50;
    let cols = 10u32;
    let rows = (shown as u32).div_ceil(cols).max(1);
    let (width, height) = (cols * CELL_W + 16, TOP + rows * CELL_H + 8);
    render_png(path, width, height, |root| {
        let err = |e| anyhow::anyhow!("drawing failed: {e:?}");
        root.draw_text(
            &format!(
                "Misclassified test digits: {} of {} shown (caption: true \u{2192} predicted)",
                shown,
                wrong.len()
            ),
            &("sans-serif", 20).into_font().color(&BLACK),
            (12, 14),
        )
        .map_err(err)?;
        for (k, &i) in wrong.iter().take(shown).enumerate() {
            let (cx, cy) = (
                8 + (k as u32 % cols) * CELL_W,
                TOP + (k as u32 / cols) * CELL_H,
            );
            for (p, &v) in set.image(i).iter().enumerate() {
                let (px, py) = (p as u32 % SIDE, p as u32 / SIDE);
                let color = RGBColor(v, v, v);
                let x = (cx + px * SCALE) as i32;
                let y = (cy + py * SCALE) as i32;
                root.draw(&Rectangle::new(
                    [(x, y), (x + SCALE as i32, y + SCALE as i32)],
                    color.filled(),
                ))
                .map_err(err)?;
            }
            root.draw_text(
                &format!("{} \u{2192} {}", set.labels[i], predictions[i]),
                &("sans-serif", 18).into_font().color(&RGBColor(200, 0, 0)),
                (cx as i32 + 24, (cy + SIDE * SCALE + 6) as i32),
            )
            .map_err(err)?;
        }
        Ok(())
    })?;
    Ok(wrong.len())
}
