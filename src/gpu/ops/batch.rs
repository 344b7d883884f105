//! Mini-batches on the device (shaders/batch.wgsl): a batch's image rows and labels
//! gathered by index from the uploaded train set (no re-upload per batch), and the cursor
//! that moves to the next batch and the next step's Adam scalars after each step, so an
//! epoch's steps run in one submission.

use bytemuck::{Pod, Zeroable};

use super::{grid, Plan, Res, Stage};
use crate::gpu::buffers::{Pass, Shared};
use crate::gpu::kernels::Kernels;

/// `struct Gather` of batch.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Gather {
    pub rows: u32,
    pub row_words: u32,
    pub src_row0: u32,
    pub src_rows: u32,
    pub dst_row0: u32,
    pub _pad: [u32; 3],
}

/// `struct GatherTex` of batch.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct GatherTex {
    pub rows: u32,
    pub cols: u32,
    pub src_layer_rows: u32,
    pub dst_layer_rows: u32,
}

/// `struct Advance` of batch.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Advance {
    pub rows: u32,
    pub _pad: [u32; 3],
}

super::bindings! {
    /// Bindings of batch.wgsl.
    mod bind { ORDER, CURSOR, SRC, DST, G, LOSS, TABLE, A, SRC_T, DST_T, GT }
}

/// The current batch's rows of `src` (the train set) into `dst` (a batch pass): the labels,
/// and the images either into the image chunks or, when `tex` (the first layer runs from
/// textures, as the texture strategy's kernels do on the full set), into the images'
/// texture only (nothing else reads the chunks then).
pub fn gather(
    plan: &mut Plan,
    k: &Kernels,
    s: &Shared,
    (src, dst): (&Pass, &Pass),
    row_words: usize,
    tex: bool,
) {
    if let (true, Some(st), Some(dt)) = (tex, &src.tex, &dst.tex) {
        // Texels of 16 pixels per row (= buffers::tex_cols).
        let cols = row_words.div_ceil(4);
        let u = GatherTex {
            rows: dst.n as u32,
            cols: cols as u32,
            src_layer_rows: st.layer_rows as u32,
            dst_layer_rows: dt.layer_rows as u32,
        };
        let bufs = [
            (bind::ORDER, Res::Buf(&s.order)),
            (bind::CURSOR, Res::Buf(&s.cursor)),
            (bind::SRC_T, Res::Tex(&st.view)),
            (bind::DST_T, Res::Tex(&dt.view)),
        ];
        let groups = [cols.div_ceil(64) as u32, dst.n as u32, 1];
        plan.push(Stage::Gather, &k.gather_tex, (bind::GT, &u), &bufs, groups);
    }
    for d in dst.x.iter().filter(|_| !tex) {
        for c in &src.x {
            let u = Gather {
                rows: d.rows as u32,
                row_words: row_words as u32,
                src_row0: c.row0 as u32,
                src_rows: c.rows as u32,
                dst_row0: d.row0 as u32,
                _pad: [0; 3],
            };
            let groups = grid((d.rows * row_words).div_ceil(256));
            gather_buf(plan, (&k.gather_rows, &u), s, (&c.buf, &d.buf), groups);
        }
    }
    let u = Gather {
        rows: dst.n as u32,
        ..Gather::default()
    };
    let groups = [dst.n.div_ceil(4).div_ceil(64) as u32, 1, 1];
    gather_buf(
        plan,
        (&k.gather_labels, &u),
        s,
        (&src.labels, &dst.labels),
        groups,
    );
}

/// One of batch.wgsl's gathers between buffers: the batch's rows of `src` into `dst`.
fn gather_buf(
    plan: &mut Plan,
    (pipe, u): (&wgpu::ComputePipeline, &Gather),
    s: &Shared,
    (src, dst): (&wgpu::Buffer, &wgpu::Buffer),
    groups: [u32; 3],
) {
    let bufs = [
        (bind::ORDER, Res::Buf(&s.order)),
        (bind::CURSOR, Res::Buf(&s.cursor)),
        (bind::SRC, Res::Buf(src)),
        (bind::DST, Res::Buf(dst)),
    ];
    plan.push(Stage::Gather, pipe, (bind::G, u), &bufs, groups);
}

/// After a step over `rows` rows: the cursor moves on, the next step's Adam scalars load.
pub fn advance(plan: &mut Plan, k: &Kernels, s: &Shared, rows: usize) {
    plan.push(
        Stage::Optimizer,
        &k.advance,
        (
            bind::A,
            &Advance {
                rows: rows as u32,
                _pad: [0; 3],
            },
        ),
        &[
            (bind::CURSOR, Res::Buf(&s.cursor)),
            (bind::LOSS, Res::Buf(&s.lossbuf)),
            (bind::TABLE, Res::Buf(&s.table)),
        ],
        [1, 1, 1],
    );
}
