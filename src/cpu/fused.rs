//! The CPU backend's fast passes: the same math as [`reference::forward`] +
//! [`reference::backward`]
//! (the readable reference, kept as the oracle), fused over blocks of rows.
//!
//! The samples are split into [`LANES`] fixed row ranges run in parallel, and each lane walks
//! its rows [`CHUNK`] at a time through the whole network: Z1 (bias + product), ReLU, the
//! small layers, softmax-xent, then back down, adding each chunk's dW = dZᵀ·A_in into the
//! lane's own gradient sums (the long k = N products are blocked by lane and chunk). So
//! every intermediate is still in cache when the next stage reads it, and X is streamed
//! from memory once per step instead of twice. The lanes' sums are added in lane order:
//! results do not depend on the thread count or scheduling.
//!
//! Forward outputs are the reference's (same per-row products); gradients differ from it
//! only by summation order. The first layer's products can instead come from the sparse
//! u8 pixels ([`super::sparse`]), chosen by [`CpuMatmul`].

use std::str::FromStr;

use rayon::prelude::*;

use super::reference::{self, HiddenLayer, Workspace};
use super::sparse::{self, SparseImages};
use crate::matmul::{matmul_seq, View};
use crate::model::Params;
use crate::pass_stats::PassStats;

/// Fixed row ranges summed separately (a multiple of any likely core count's small factors).
pub const LANES: usize = 8;
/// Rows per fused chunk: X's chunk (784 floats a row) and the lane's dW1 sums stay in L2;
/// the sparse pixels' column-sorted blocks are as long.
pub const CHUNK: usize = sparse::BLOCK;

/// How the first layer's two big products are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CpuMatmul {
    /// Dense GEMM on the normalized f32 images: the exact reference (torch's arithmetic).
    Dense,
    /// From the nonzero u8 pixels plus a rank-1 correction (equal up to f32 rounding).
    Sparse,
    /// A fixed rule, never a timing (the two differ in rounding, so a rerun must pick the
    /// same): sparse when the train set has at least [`SPARSE_MIN_ROWS`] images and a
    /// pixel density below [`SPARSE_MAX_DENSITY`], else dense.
    #[default]
    Auto,
}

/// Smallest train set `auto` runs sparse: below it the sparse copies' setup is not repaid,
/// and small test sets stay on the exact dense path.
pub const SPARSE_MIN_ROWS: usize = 10_000;
/// Densest pixels `auto` runs sparse (MNIST: 0.19; above one half dense is faster).
pub const SPARSE_MAX_DENSITY: f64 = 0.5;

impl FromStr for CpuMatmul {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dense" => Ok(CpuMatmul::Dense),
            "sparse" => Ok(CpuMatmul::Sparse),
            "auto" => Ok(CpuMatmul::Auto),
            _ => Err(format!("unknown CPU matmul {s:?} (dense, sparse or auto)")),
        }
    }
}

/// One pass's input: the normalized images, and their sparse pixels when the sparse
/// strategy is on.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    pub x: &'a [f32],
    pub sparse: Option<&'a SparseImages>,
}

impl<'a> Input<'a> {
    pub fn dense(x: &'a [f32]) -> Input<'a> {
        Input { x, sparse: None }
    }
}

/// Forward and backward over `input` (n x inputs) with its labels: fills `ws` like
/// [`reference::forward`] then [`reference::backward`] and returns the pass's stats.
pub fn train_pass(p: &Params, input: Input, labels: &[u8], ws: &mut Workspace) -> PassStats {
    run(p, input, labels, ws, true)
}

/// Forward only (an eval pass): fills `ws` like [`reference::forward`].
pub fn eval_pass(p: &Params, input: Input, labels: &[u8], ws: &mut Workspace) -> PassStats {
    run(p, input, labels, ws, false)
}

/// One lane's rows of every buffer of the workspace, and its own gradient sums.
struct Lane<'a> {
    start: usize,
    len: usize,
    z: Vec<&'a mut [f32]>,
    h: Vec<&'a mut [f32]>,
    dh: Vec<&'a mut [f32]>,
    dz: Vec<&'a mut [f32]>,
    logits: &'a mut [f32],
    loss: &'a mut [f32],
    correct: &'a mut [u32],
    dlogits: &'a mut [f32],
    /// Weight gradients in the flat layout (for the sparse strategy the first layer's
    /// range holds dZ1ᵀ·U as inputs x hidden instead).
    grads: Vec<f32>,
    /// Bias gradients per layer, summed in f64 like [`reference::reduce_cols`].
    bias: Vec<Vec<f64>>,
}

/// The first layer's sparse operands for one pass.
struct SparseFirst<'a> {
    u: &'a SparseImages,
    wt: Vec<f32>,
    c: Vec<f32>,
}

fn run(p: &Params, input: Input, labels: &[u8], ws: &mut Workspace, backward: bool) -> PassStats {
    let l = p.layout;
    let sizes = l.layer_sizes();
    let n = labels.len();
    assert_eq!(ws.n, n, "workspace sized for another batch");
    assert_eq!(input.x.len(), n * l.inputs, "input sized for another batch");
    let sparse = input.sparse.map(|u| {
        assert!(
            u.rows == n && u.cols == l.inputs,
            "sparse input of another shape"
        );
        let (w, b) = p.layer(0);
        let (wt, c) = sparse::first_layer_consts(w, b, l.inputs);
        SparseFirst { u, wt, c }
    });
    if backward {
        for (layer, &(_, width)) in ws.hidden.iter_mut().zip(&sizes) {
            layer.dh.resize(n * width, 0.0);
            layer.dz.resize(n * width, 0.0);
        }
        ws.grads.clear();
        ws.grads.resize(l.total(), 0.0);
    }
    if n == 0 {
        return reference::reduce_metrics(&ws.loss, &ws.correct);
    }
    // The sparse gradient kernel reads whole column-sorted blocks: lanes start on one.
    let per_lane = match sparse {
        Some(_) => n.div_ceil(LANES).next_multiple_of(CHUNK),
        None => n.div_ceil(LANES),
    };
    let bufs = (
        &mut ws.hidden[..],
        &mut ws.logits[..],
        &mut ws.dlogits[..],
        &mut ws.loss[..],
        &mut ws.correct[..],
    );
    let mut lanes = split_lanes(bufs, &sizes, (n, per_lane), backward, l.total());
    lanes
        .par_iter_mut()
        .for_each(|lane| run_lane(p, &sizes, input.x, sparse.as_ref(), labels, n, lane));
    if backward {
        let t = l.tensors();
        let mut bias: Vec<Vec<f64>> = sizes.iter().map(|&(_, w)| vec![0f64; w]).collect();
        for lane in &lanes {
            for (g, &v) in ws.grads.iter_mut().zip(&lane.grads) {
                *g += v;
            }
            for (acc, part) in bias.iter_mut().zip(&lane.bias) {
                for (a, &v) in acc.iter_mut().zip(part) {
                    *a += v;
                }
            }
        }
        drop(lanes);
        for (k, acc) in bias.iter().enumerate() {
            for (g, &a) in ws.grads[t[2 * k + 1].range()].iter_mut().zip(acc) {
                *g = a as f32;
            }
        }
        if sparse.is_some() {
            let s = ws.grads[t[0].range()].to_vec();
            let db = ws.grads[t[1].range()].to_vec();
            sparse::finish_grad(&s, &db, &mut ws.grads[t[0].range()]);
        }
    }
    reference::reduce_metrics(&ws.loss, &ws.correct)
}

/// Cuts every workspace buffer into the lanes' row ranges.
#[allow(clippy::type_complexity)]
fn split_lanes<'a>(
    (hidden, logits, dlogits, loss, correct): (
        &'a mut [HiddenLayer],
        &'a mut [f32],
        &'a mut [f32],
        &'a mut [f32],
        &'a mut [u32],
    ),
    sizes: &[(usize, usize)],
    (n, per_lane): (usize, usize),
    backward: bool,
    total: usize,
) -> Vec<Lane<'a>> {
    let c = sizes[sizes.len() - 1].1;
    let mut lanes: Vec<Lane<'a>> = logits
        .chunks_mut(per_lane * c)
        .zip(dlogits.chunks_mut(per_lane * c))
        .zip(loss.chunks_mut(per_lane))
        .zip(correct.chunks_mut(per_lane))
        .enumerate()
        .map(|(i, (((logits, dlogits), loss), correct))| Lane {
            start: i * per_lane,
            len: per_lane.min(n - i * per_lane),
            z: Vec::new(),
            h: Vec::new(),
            dh: Vec::new(),
            dz: Vec::new(),
            logits,
            loss,
            correct,
            dlogits,
            grads: if backward {
                vec![0.0; total]
            } else {
                Vec::new()
            },
            bias: if backward {
                sizes.iter().map(|&(_, w)| vec![0f64; w]).collect()
            } else {
                Vec::new()
            },
        })
        .collect();
    for (layer, &(_, w)) in hidden.iter_mut().zip(sizes) {
        for (lane, (z, h)) in lanes.iter_mut().zip(
            layer
                .z
                .chunks_mut(per_lane * w)
                .zip(layer.h.chunks_mut(per_lane * w)),
        ) {
            lane.z.push(z);
            lane.h.push(h);
        }
        if backward {
            for (lane, (dh, dz)) in lanes.iter_mut().zip(
                layer
                    .dh
                    .chunks_mut(per_lane * w)
                    .zip(layer.dz.chunks_mut(per_lane * w)),
            ) {
                lane.dh.push(dh);
                lane.dz.push(dz);
            }
        }
    }
    lanes
}

/// One chunk of a lane: its offset in the lane, its row count and its first row in the set.
#[derive(Clone, Copy)]
struct Rows {
    c0: usize,
    rows: usize,
    first: usize,
}

/// One lane: its rows, `CHUNK` at a time, forward then (when the lane has gradient sums)
/// backward.
fn run_lane(
    p: &Params,
    sizes: &[(usize, usize)],
    x: &[f32],
    sparse: Option<&SparseFirst>,
    labels: &[u8],
    total: usize,
    lane: &mut Lane,
) {
    for c0 in (0..lane.len).step_by(CHUNK) {
        let rows = CHUNK.min(lane.len - c0);
        let first = lane.start + c0;
        let at = Rows { c0, rows, first };
        let x_rows = &x[first * sizes[0].0..(first + rows) * sizes[0].0];
        lane_forward(p, sizes, (x_rows, sparse), (labels, total), lane, at);
        if !lane.grads.is_empty() {
            lane_backward(p, sizes, (x_rows, sparse), lane, at);
        }
    }
}

/// Forward over one chunk: Z = A Wᵀ + b and H = relu(Z) per hidden layer, then the logits,
/// the loss and dlogits.
fn lane_forward(
    p: &Params,
    sizes: &[(usize, usize)],
    (x_rows, sparse): (&[f32], Option<&SparseFirst>),
    (labels, total): (&[u8], usize),
    lane: &mut Lane,
    Rows { c0, rows, first }: Rows,
) {
    let out = sizes.len() - 1;
    let classes = sizes[out].1;
    for (k, &(fan_in, width)) in sizes[..out].iter().enumerate() {
        let (w, b) = p.layer(k);
        let (below, rest) = lane.h.split_at_mut(k);
        let z = &mut lane.z[k][c0 * width..(c0 + rows) * width];
        match (k, sparse) {
            (0, Some(s)) => sparse::forward_rows(s.u, first, &s.wt, &s.c, z),
            _ => {
                let a = if k == 0 {
                    x_rows
                } else {
                    &below[k - 1][c0 * fan_in..(c0 + rows) * fan_in]
                };
                linear_seq(z, View::row_major(a, rows, fan_in), w, b);
            }
        }
        reference::relu(z, &mut rest[0][c0 * width..(c0 + rows) * width]);
    }
    let (w, b) = p.layer(out);
    let fan_in = sizes[out].0;
    let h_last = &lane.h[out - 1][c0 * fan_in..(c0 + rows) * fan_in];
    let logits = &mut lane.logits[c0 * classes..(c0 + rows) * classes];
    linear_seq(logits, View::row_major(h_last, rows, fan_in), w, b);
    reference::softmax_xent(
        logits,
        &labels[first..first + rows],
        total,
        &mut lane.loss[c0..c0 + rows],
        &mut lane.correct[c0..c0 + rows],
        &mut lane.dlogits[c0 * classes..(c0 + rows) * classes],
    );
}

/// Backward over one chunk: dW += dZᵀ A_in, db += Σ dZ, and for the layer below dH = dZ W,
/// dZ = dH * relu'(Z).
fn lane_backward(
    p: &Params,
    sizes: &[(usize, usize)],
    (x_rows, sparse): (&[f32], Option<&SparseFirst>),
    lane: &mut Lane,
    Rows { c0, rows, first }: Rows,
) {
    let out = sizes.len() - 1;
    let t = p.layout.tensors();
    for k in (0..=out).rev() {
        let (fan_in, width) = sizes[k];
        if k < out {
            let next = sizes[k + 1].1;
            let (below, above) = lane.dz.split_at_mut(k + 1);
            let dz_next: &[f32] = if k + 1 == out {
                &lane.dlogits[c0 * next..(c0 + rows) * next]
            } else {
                &above[0][c0 * next..(c0 + rows) * next]
            };
            let dh = &mut lane.dh[k][c0 * width..(c0 + rows) * width];
            matmul_seq(
                dh,
                View::row_major(dz_next, rows, next),
                View::row_major(p.layer(k + 1).0, next, width),
                false,
            );
            let z = &lane.z[k][c0 * width..(c0 + rows) * width];
            reference::relu_backward(dh, z, &mut below[k][c0 * width..(c0 + rows) * width]);
        }
        let dz: &[f32] = if k == out {
            &lane.dlogits[c0 * width..(c0 + rows) * width]
        } else {
            &lane.dz[k][c0 * width..(c0 + rows) * width]
        };
        let gw = &mut lane.grads[t[2 * k].range()];
        match (k, sparse) {
            (0, Some(s)) => sparse::grad_rows(s.u, first, dz, width, gw),
            _ => {
                let a = if k == 0 {
                    x_rows
                } else {
                    &lane.h[k - 1][c0 * fan_in..(c0 + rows) * fan_in]
                };
                matmul_seq(
                    gw,
                    View::row_major(dz, rows, width).t(),
                    View::row_major(a, rows, fan_in),
                    true,
                );
            }
        }
        for row in dz.chunks_exact(width) {
            for (acc, &v) in lane.bias[k].iter_mut().zip(row) {
                *acc += v as f64;
            }
        }
    }
}

/// [`reference::linear`] on one thread: `out = bias + x wᵀ`.
fn linear_seq(out: &mut [f32], x: View, w: &[f32], bias: &[f32]) {
    let outs = bias.len();
    for row in out.chunks_exact_mut(outs) {
        row.copy_from_slice(bias);
    }
    matmul_seq(out, x, View::row_major(w, outs, x.cols).t(), true);
}

/// The sparse copies of a backend's train and eval sets when the sparse strategy is on,
/// and a note saying which strategy runs and why.
#[derive(Clone, Debug, Default)]
pub struct SparseSets {
    pub train: Option<SparseImages>,
    pub eval: Option<SparseImages>,
    pub note: String,
}

impl SparseSets {
    /// Applies `choice` to the sets (`auto`: the rule of [`CpuMatmul::Auto`]). Sets that
    /// are not normalized u8 pixels (which the sparse path needs) stay dense, with a note.
    pub fn choose(
        choice: CpuMatmul,
        p: &Params,
        (train_x, _train_y): (&[f32], &[u8]),
        eval_x: &[f32],
    ) -> SparseSets {
        if choice == CpuMatmul::Dense {
            return SparseSets::default();
        }
        let inputs = p.layout.inputs;
        let Some(train) = SparseImages::from_normalized(train_x, inputs) else {
            return SparseSets::note("dense matmul (inputs are not u8 pixels)");
        };
        let density = train.density();
        if choice == CpuMatmul::Auto {
            if train.rows < SPARSE_MIN_ROWS {
                return SparseSets::note(&format!(
                    "dense matmul (auto: {} train images < {SPARSE_MIN_ROWS})",
                    train.rows
                ));
            }
            if density >= SPARSE_MAX_DENSITY {
                return SparseSets::note(&format!(
                    "dense matmul (auto: pixel density {density:.2} >= {SPARSE_MAX_DENSITY})"
                ));
            }
        }
        SparseSets {
            eval: SparseImages::from_normalized(eval_x, inputs),
            train: Some(train),
            note: format!("sparse matmul (density {density:.2})"),
        }
    }

    fn note(s: &str) -> SparseSets {
        SparseSets {
            note: s.to_string(),
            ..SparseSets::default()
        }
    }
}
