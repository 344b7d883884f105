//! The `sparse` strategy's Z1 of a full pass (train step, eval pass): `first_layer_consts`
//! (shaders/first_consts.wgsl) recomputes c = b1 − row sums of W1 from the current
//! parameters, then `block_z1` (shaders/sparse_first.wgsl) computes Z1 = a·(U·W1ᵀ) + c from
//! the set's packed u8 words, skipping the 4-pixel words zero in all 16 images of a block.
//! CPU twin `cpu_sparse::forward_rows`. The ReLU runs after (pointwise::relu); dW1 and the
//! gathered mini-batches keep the strategy's dense kernels.

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

use super::sparse::{block_lists, SparseZ1, BLOCK_ROWS};
use super::{Plan, Res, Stage};
use crate::cpu_sparse::SCALE;
use crate::data::Dataset;
use crate::gpu::buffers::{storage, Pass, Shared};
use crate::gpu::kernels::Kernels;
use crate::model::Layout;

/// Twin of the WGSL `struct FirstConsts` (shaders/first_consts.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct FirstConsts {
    pub hidden: u32,
    pub inputs: u32,
    pub w_off: u32,
    pub b_off: u32,
}

/// Pixel density above which the tuner does not time the sparse strategy: with most words
/// nonzero there is nothing to skip.
pub const MAX_DENSITY: f64 = 0.5;

/// One set's packed images for `block_z1`, uploaded once with the set, and its c buffer.
pub struct BlockSet {
    /// u8 pixels as u32 words (4 per word, lowest byte first), inputs / 4 per image.
    xs: wgpu::Buffer,
    /// Per block of 16 images, the start of its nonzero words in `kl`.
    starts: wgpu::Buffer,
    kl: wgpu::Buffer,
    /// c = b1 − row sums of W1, rewritten before each Z1.
    c: wgpu::Buffer,
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

/// Records c's refresh and `block_z1` over the first `cap` rows of `p` into Z1 (not H) when
/// the strategy is sparse and `p` has packed words; returns whether it did.
pub fn forward(plan: &mut Plan, k: &Kernels, l: Layout, s: &Shared, p: &Pass, cap: usize) -> bool {
    let (Some(block), Some(consts), Some(b)) = (&k.block_z1, &k.first_consts, &p.blocks) else {
        return false;
    };
    let t = l.tensors();
    let rows = p.n.min(cap);
    let fc = FirstConsts {
        hidden: l.hidden as u32,
        inputs: l.inputs as u32,
        w_off: t[0].offset as u32,
        b_off: t[1].offset as u32,
    };
    plan.push(
        Stage::Z1,
        consts,
        (0, &fc),
        &[(1, Res::Buf(&s.params)), (2, Res::Buf(&b.c))],
        [l.hidden.div_ceil(64) as u32, 1, 1],
    );
    let q = SparseZ1 {
        rows: rows as u32,
        hidden: l.hidden as u32,
        scale: SCALE,
        kw: (l.inputs / 4) as u32,
        ..SparseZ1::default()
    };
    // W1 is the parameters' first tensor (usable() checked its vec4 alignment): block_z1
    // reads it in place as w4.
    plan.push(
        Stage::Z1,
        block,
        (0, &q),
        &[
            (1, Res::Buf(&b.starts)),
            (4, Res::Buf(&b.c)),
            (5, Res::Buf(&p.layers[0].z)),
            (7, Res::Buf(&b.kl)),
            (8, Res::Buf(&b.xs)),
            (9, Res::Buf(&s.params)),
        ],
        [
            l.hidden.div_ceil(128) as u32,
            rows.div_ceil(BLOCK_ROWS).max(1) as u32,
            1,
        ],
    );
    true
}
