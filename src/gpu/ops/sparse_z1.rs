//! The `sparse` strategy's Z1 of a full pass (train step, eval pass): `first_layer_consts`
//! (shaders/first_consts.wgsl) recomputes c = b1 − row sums of W1 from the current
//! parameters, then `block_z1` (shaders/block_z1.wgsl) computes Z1 = a·(U·W1ᵀ) + c from
//! the set's packed u8 words, skipping the 4-pixel words zero in all 16 images of a block.
//! CPU twin `cpu::sparse::forward_rows`. The ReLU runs after (pointwise::relu); dW1 and the
//! gathered mini-batches keep the strategy's dense kernels.

use bytemuck::{Pod, Zeroable};

use super::{Plan, Res, Stage};
use crate::cpu::sparse::SCALE;
use crate::gpu::buffers::blocks::BLOCK_ROWS;
use crate::gpu::buffers::{Pass, Shared};
use crate::gpu::kernels::Kernels;
use crate::model::Layout;

/// Twin of the WGSL `struct SparseZ1` (shaders/sparse_z1_params.wgsl, which the host prepends
/// to block_z1.wgsl and sparse_first.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct SparseZ1 {
    pub rows: u32,
    pub hidden: u32,
    pub scale: f32,
    /// block_z1, block_dw1: u32 words (4 pixels) per image.
    pub kw: u32,
    /// block_dw1 (a probe): split-k parts.
    pub parts: u32,
    pub _pad: [u32; 3],
}

impl SparseZ1 {
    /// `rows` images of `kw` words into `hidden` units, at the pixel scale of
    /// [`crate::cpu::sparse`].
    pub fn new(rows: usize, hidden: usize, kw: usize) -> SparseZ1 {
        SparseZ1 {
            rows: rows as u32,
            hidden: hidden as u32,
            scale: SCALE,
            kw: kw as u32,
            ..SparseZ1::default()
        }
    }
}

super::bindings! {
    /// The bindings of shaders/block_z1.wgsl.
    pub mod bind { Q, STARTS, C, Z, KL, XS, W4 }
}

super::bindings! {
    /// The bindings of shaders/first_consts.wgsl.
    mod consts_bind { Q, PARAMS, C }
}

/// Twin of the WGSL `struct FirstConsts` (shaders/first_consts.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct FirstConsts {
    pub hidden: u32,
    pub inputs: u32,
    pub w_off: u32,
    pub b_off: u32,
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
    let bufs = [
        (consts_bind::PARAMS, Res::Buf(&s.params)),
        (consts_bind::C, Res::Buf(&b.c)),
    ];
    let groups = [l.hidden.div_ceil(64) as u32, 1, 1];
    plan.push(Stage::Z1, consts, (consts_bind::Q, &fc), &bufs, groups);
    let q = SparseZ1::new(rows, l.hidden, l.inputs / 4);
    // W1 is the parameters' first tensor (usable() checked its vec4 alignment): block_z1
    // reads it in place as w4.
    let bufs = [
        (bind::STARTS, Res::Buf(&b.starts)),
        (bind::C, Res::Buf(&b.c)),
        (bind::Z, Res::Buf(&p.layers[0].z)),
        (bind::KL, Res::Buf(&b.kl)),
        (bind::XS, Res::Buf(&b.xs)),
        (bind::W4, Res::Buf(&s.params)),
    ];
    let groups = [
        l.hidden.div_ceil(128) as u32,
        rows.div_ceil(BLOCK_ROWS).max(1) as u32,
        1,
    ];
    plan.push(Stage::Z1, block, (bind::Q, &q), &bufs, groups);
    true
}
