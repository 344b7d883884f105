//! The `sparse` strategy's packed images: one set's u8 pixels as u32 words and, per block of
//! 16 images, the list of words nonzero in any of them (read by `block_z1`, see
//! `ops::sparse_z1`).

use wgpu::util::DeviceExt;

use super::storage;
use crate::data::Dataset;
use crate::model::Layout;

/// Images per `block_z1` row block.
pub const BLOCK_ROWS: usize = 16;

/// Per block of 16 images of `xs` (`kw` words each): the starts and the list of the words
/// nonzero in any of its images.
pub fn block_lists(xs: &[u32], kw: usize) -> (Vec<u32>, Vec<u32>) {
    let (mut starts, mut list) = (vec![0u32], Vec::new());
    for block in xs.chunks(BLOCK_ROWS * kw) {
        for k in 0..kw {
            if block.chunks(kw).any(|row| row[k] != 0) {
                list.push(k as u32);
            }
        }
        starts.push(list.len() as u32);
    }
    (starts, list)
}

/// Pixel density above which the tuner does not time the sparse strategy: with most words
/// nonzero there is nothing to skip.
pub const MAX_DENSITY: f64 = 0.5;

/// One set's packed images for `block_z1`, uploaded once with the set, and its c buffer.
pub struct BlockSet {
    /// u8 pixels as u32 words (4 per word, lowest byte first), inputs / 4 per image.
    pub xs: wgpu::Buffer,
    /// Per block of 16 images, the start of its nonzero words in `kl`.
    pub starts: wgpu::Buffer,
    pub kl: wgpu::Buffer,
    /// c = b1 − row sums of W1, rewritten before each Z1.
    pub c: wgpu::Buffer,
    /// Fraction of the set's pixels that are nonzero.
    pub density: f64,
}

/// True when `block_z1` can compute this layout's Z1: hidden in blocks of 16, whole 4-pixel
/// words, W1 at a vec4 boundary of the parameters (it is the first tensor).
pub fn usable(l: Layout) -> bool {
    let t = l.tensors();
    l.hidden.is_multiple_of(16) && l.inputs.is_multiple_of(4) && t[0].offset.is_multiple_of(4)
}

fn density(set: &Dataset) -> f64 {
    let nz = set.images.iter().filter(|&&v| v != 0).count();
    nz as f64 / set.images.len().max(1) as f64
}

impl BlockSet {
    /// The set's packed words and block lists, when the layout allows `block_z1`, the words
    /// fit one binding (`fits`), the row blocks one dispatch, and either the strategy is
    /// forced or the set is sparse enough to be worth timing.
    pub fn for_set(
        d: &wgpu::Device,
        l: Layout,
        set: &Dataset,
        fits: bool,
        forced: bool,
    ) -> Option<BlockSet> {
        let rows = set.len();
        if !usable(l) || !fits || rows == 0 || rows.div_ceil(BLOCK_ROWS) > 65_535 {
            return None;
        }
        let density = density(set);
        if !forced && density >= MAX_DENSITY {
            return None;
        }
        let kw = l.inputs / 4;
        let xs: Vec<u32> = set
            .images
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let (starts, kl) = block_lists(&xs, kw);
        let st = wgpu::BufferUsages::STORAGE;
        let buf = |label, words: &[u32]| {
            // An empty list still binds a non-empty buffer.
            d.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(&[words, &[0]].concat()),
                usage: st,
            })
        };
        Some(BlockSet {
            xs: buf("block xs", &xs),
            starts: buf("block starts", &starts),
            kl: buf("block kl", &kl),
            c: storage(d, "block c", l.hidden * 4),
            density,
        })
    }
}
