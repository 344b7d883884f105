//! The first layer's two products over the u8 images (shaders/matmul.wgsl,
//! shaders/matmul_sg.wgsl; CPU twins `cpu::linear`, `cpu::matmul`): Z1 = X W1^T + b1 (with
//! H = relu(Z1) fused where the kernel can) and dW1 = dZ1^T X, from the images' texture
//! (texture strategy), per image chunk with the register kernels, or with the generic
//! product reading pixels.

use super::linear::{aligned, bind, bind_sg, generic, Big, Mm, Tex, DW1_SG, FWD_SG};
use super::{Plan, Res, Stage};
use crate::gpu::buffers::{k_split, row_bytes, tex_cols, Pass, Shared, W1Tex, XChunk, XTex};
use crate::gpu::kernels::Kernels;
use crate::model::Layout;

/// The texture strategy's pipelines (pack_w1, fwd_x_sg, dw1_sg) and textures, when this
/// strategy, layout and pass can use them.
pub struct TexKernels<'a> {
    pub pack: &'a wgpu::ComputePipeline,
    pub fwd: &'a wgpu::ComputePipeline,
    pub dw1: &'a wgpu::ComputePipeline,
    pub x: &'a XTex,
    pub w1: &'a W1Tex,
}

pub fn tex_kernels<'a>(
    k: &'a Kernels,
    l: Layout,
    s: &'a Shared,
    p: &'a Pass,
) -> Option<TexKernels<'a>> {
    if !(aligned(l.inputs) && aligned(l.hidden)) {
        return None;
    }
    Some(TexKernels {
        pack: k.pack_w1.as_ref()?,
        fwd: k.fwd_tex.as_ref()?,
        dw1: k.dw1_tex.as_ref()?,
        x: p.tex.as_ref()?,
        w1: s.w1t.as_ref()?,
    })
}

/// The register kernels over image chunks, when the shape allows them.
fn fused(l: Layout, pipe: &Option<wgpu::ComputePipeline>) -> Option<&wgpu::ComputePipeline> {
    pipe.as_ref()
        .filter(|_| aligned(l.inputs) && aligned(l.hidden))
}

/// Z1 (and H when fused) of the first `cap` rows of `p`. Returns whether H was written
/// (else the caller runs the ReLU).
pub fn forward(plan: &mut Plan, k: &Kernels, l: Layout, s: &Shared, p: &Pass, cap: usize) -> bool {
    if super::sparse_z1::forward(plan, k, l, s, p, cap) {
        return false; // Z1 only: the caller runs the ReLU
    }
    if let Some(tk) = tex_kernels(k, l, s, p) {
        forward_tex(plan, l, s, p, &tk, p.n.min(cap));
        return true;
    }
    let reg = fused(l, &k.fwd_x);
    for ch in &p.x {
        let rows = ch.rows.min(cap.saturating_sub(ch.row0));
        if rows > 0 {
            forward_chunk(plan, k, l, (s, p), ch, rows, reg);
        }
    }
    reg.is_some()
}

/// All `rows` from the textures in one dispatch (relu fused), after W1's refresh.
fn forward_tex(plan: &mut Plan, l: Layout, s: &Shared, p: &Pass, tk: &TexKernels, rows: usize) {
    let t = l.tensors();
    let lb = &p.layers[0];
    let h = lb.h.as_ref().unwrap_or(&lb.z);
    let u = Tex {
        rows: rows as u32,
        hidden: l.hidden as u32,
        inputs: l.inputs as u32,
        xw: tex_cols(l) as u32,
        w_off: t[0].offset as u32,
        b_off: t[1].offset as u32,
        out_off: 0,
        layer_rows: tk.x.layer_rows as u32,
    };
    let bufs = [
        (bind_sg::PV, Res::Buf(&s.params)),
        (bind_sg::W1S, Res::Tex(&tk.w1.view)),
    ];
    let groups = [(4 * tex_cols(l)).div_ceil(64) as u32, l.hidden as u32, 1];
    plan.push(Stage::Z1, tk.pack, (bind_sg::TEX, &u), &bufs, groups);
    let bufs = [
        (bind_sg::PF, Res::Buf(&s.params)),
        (bind_sg::OUT4, Res::Buf(&lb.z)),
        (bind_sg::HOUT4, Res::Buf(h)),
        (bind_sg::XT, Res::Tex(&tk.x.view)),
        (bind_sg::W1T, Res::Tex(&tk.w1.view)),
    ];
    let groups = [
        rows.div_ceil(FWD_SG.0).div_ceil(FWD_SG.2) as u32,
        l.hidden.div_ceil(FWD_SG.1) as u32,
        1,
    ];
    plan.push(Stage::Z1, tk.fwd, (bind_sg::TEX, &u), &bufs, groups);
}

/// Z1 of the first `rows` rows of one image chunk: the register kernel (relu fused) when
/// `reg`, else the generic product.
fn forward_chunk(
    plan: &mut Plan,
    k: &Kernels,
    l: Layout,
    (s, p): (&Shared, &Pass),
    ch: &XChunk,
    rows: usize,
    reg: Option<&wgpu::ComputePipeline>,
) {
    let t = l.tensors();
    let (w1, b1) = (t[0].offset, t[1].offset);
    let rb = row_bytes(l);
    let lb = &p.layers[0];
    let h = lb.h.as_ref().unwrap_or(&lb.z);
    let Some(fx) = reg else {
        let mm = Mm {
            m: rows as u32,
            n: l.hidden as u32,
            k: l.inputs as u32,
            k_split: l.inputs as u32,
            a_rs: rb as u32,
            a_cs: 1,
            a_u8: 1,
            b_off: w1 as u32,
            b_rs: 1,
            b_cs: l.inputs as u32,
            c_off: (ch.row0 * l.hidden) as u32,
            c_rs: l.hidden as u32,
            bias: 1,
            bias_off: b1 as u32,
            ..Mm::default()
        };
        let bufs = [&ch.buf, &s.params, &lb.z, &s.params];
        return generic(plan, k, Stage::Z1, mm, bufs);
    };
    let u = Big {
        rows: rows as u32,
        hidden: l.hidden as u32,
        inputs: l.inputs as u32,
        xw: (rb / 4) as u32,
        w_off: w1 as u32,
        b_off: b1 as u32,
        out_off: (ch.row0 * l.hidden) as u32,
        dz_row0: 0,
    };
    let bufs = [
        (bind::XS, Res::Buf(&ch.buf)),
        (bind::PV, Res::Buf(&s.params)),
        (bind::PF, Res::Buf(&s.params)),
        (bind::OUT4, Res::Buf(&lb.z)),
        (bind::HOUT4, Res::Buf(h)),
    ];
    let groups = [
        rows.div_ceil(16).div_ceil(32) as u32,
        l.hidden.div_ceil(16) as u32,
        1,
    ];
    plan.push(Stage::Z1, fx, (bind::BIG, &u), &bufs, groups);
}

/// dW1 = dZ1^T X into the gradient: from the texture in one dispatch, or per image chunk
/// (split over samples) summed in a fixed order.
pub fn weight_grad(plan: &mut Plan, k: &Kernels, l: Layout, s: &Shared, p: &Pass) {
    let w1 = l.tensors()[0].offset;
    let Some(dz1) = p.layers[0].dz.as_ref() else {
        return;
    };
    let len1 = l.hidden * l.inputs;
    if let Some(tk) = tex_kernels(k, l, s, p) {
        return weight_grad_tex(plan, l, (s, p), dz1, &tk);
    }
    let reg = fused(l, &k.dw1);
    let slots_of = |rows: usize| {
        if reg.is_some() {
            1
        } else {
            rows.div_ceil(k_split(rows))
        }
    };
    let chunks: &[XChunk] = &p.x;
    let total_slots: usize = chunks.iter().map(|c| slots_of(c.rows)).sum();
    let direct = total_slots == 1;
    let target = if direct { &s.grads } else { &s.scratch };
    let mut slot = 0;
    for ch in chunks {
        let base = if direct { w1 } else { slot * len1 };
        weight_grad_chunk(plan, k, l, (s, dz1, target), ch, base, reg);
        slot += slots_of(ch.rows);
    }
    if !direct && !chunks.is_empty() {
        let (scratch, grads) = (&s.scratch, &s.grads);
        let stage = Stage::DW1;
        super::reduce::sum_slots(plan, k, stage, scratch, grads, len1, total_slots, w1);
    }
}

/// dW1 from the images' texture in one dispatch.
fn weight_grad_tex(
    plan: &mut Plan,
    l: Layout,
    (s, p): (&Shared, &Pass),
    dz1: &wgpu::Buffer,
    tk: &TexKernels,
) {
    let u = Tex {
        rows: p.n as u32,
        hidden: l.hidden as u32,
        inputs: l.inputs as u32,
        xw: tex_cols(l) as u32,
        w_off: 0,
        b_off: 0,
        out_off: l.tensors()[0].offset as u32,
        layer_rows: tk.x.layer_rows as u32,
    };
    let bufs = [
        (bind_sg::PV, Res::Buf(dz1)),
        (bind_sg::OUT4, Res::Buf(&s.grads)),
        (bind_sg::XT, Res::Tex(&tk.x.view)),
    ];
    let groups = [
        tex_cols(l).div_ceil(DW1_SG.2) as u32,
        l.hidden.div_ceil(DW1_SG.0) as u32,
        1,
    ];
    plan.push(Stage::DW1, tk.dw1, (bind_sg::TEX, &u), &bufs, groups);
}

/// One image chunk's dW1 (its split-k slots) at `base` of `target`: the register kernel
/// when `reg`, else the generic product.
fn weight_grad_chunk(
    plan: &mut Plan,
    k: &Kernels,
    l: Layout,
    (s, dz1, target): (&Shared, &wgpu::Buffer, &wgpu::Buffer),
    ch: &XChunk,
    base: usize,
    reg: Option<&wgpu::ComputePipeline>,
) {
    let rb = row_bytes(l);
    let Some(dw) = reg else {
        let mm = Mm {
            m: l.hidden as u32,
            n: l.inputs as u32,
            k: ch.rows as u32,
            k_split: k_split(ch.rows) as u32,
            a_off: (ch.row0 * l.hidden) as u32,
            a_rs: 1,
            a_cs: l.hidden as u32,
            b_rs: rb as u32,
            b_cs: 1,
            b_u8: 1,
            c_off: base as u32,
            c_rs: l.inputs as u32,
            c_split: (l.hidden * l.inputs) as u32,
            ..Mm::default()
        };
        return generic(plan, k, Stage::DW1, mm, [dz1, &ch.buf, target, &s.params]);
    };
    let u = Big {
        rows: ch.rows as u32,
        hidden: l.hidden as u32,
        inputs: l.inputs as u32,
        xw: (rb / 4) as u32,
        w_off: 0,
        b_off: 0,
        out_off: base as u32,
        dz_row0: ch.row0 as u32,
    };
    let bufs = [
        (bind::XS, Res::Buf(&ch.buf)),
        (bind::PV, Res::Buf(dz1)),
        (bind::OUT4, Res::Buf(target)),
    ];
    let groups = [
        l.inputs.div_ceil(16).div_ceil(8) as u32,
        l.hidden.div_ceil(16) as u32,
        1,
    ];
    plan.push(Stage::DW1, dw, (bind::BIG, &u), &bufs, groups);
}
