//! The linear layer's products (shaders/matmul.wgsl, shaders/matmul_sg.wgsl; CPU twins
//! `cpu::linear` and `cpu::matmul`): Z = A W^T + b, dW = dZ^T A and dA = dZ W, each by the
//! strategy's specialized kernel where the shape allows it, else by the generic strided
//! product (`mm_tiled` / `mm_reg`).

use bytemuck::{Pod, Zeroable};

use super::{Plan, Res, Stage};
use crate::gpu::buffers::k_split;
use crate::gpu::kernels::{Kernels, Strategy};

super::bindings! {
    /// Bindings of matmul.wgsl.
    pub mod bind { A, B, C, BIAS, MM, XS, PV, PF, OUT4, HOUT4, BIG, SA, SV, OUTF, SMALL }
}

super::bindings! {
    /// Bindings of matmul_sg.wgsl (the texture strategy's first layer).
    pub mod bind_sg { PV, PF, OUT4, HOUT4, XT, TEX, W1T, W1S }
}

/// fwd_x_sg: (samples, hidden units) per invocation, invocations per workgroup.
pub const FWD_SG: (usize, usize, usize) = (4, 32, 32);
/// dw1_sg: (hidden units, pixels) per invocation, invocations per workgroup.
pub const DW1_SG: (usize, usize, usize) = (32, 16, 8);

/// `struct Mm` of matmul.wgsl: the generic strided product (see the shader's header).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Mm {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub k_split: u32,
    pub a_off: u32,
    pub a_rs: u32,
    pub a_cs: u32,
    pub a_u8: u32,
    pub b_off: u32,
    pub b_rs: u32,
    pub b_cs: u32,
    pub b_u8: u32,
    pub c_off: u32,
    pub c_rs: u32,
    pub c_split: u32,
    pub bias: u32,
    pub bias_off: u32,
    pub _pad: [u32; 3],
}

impl Mm {
    /// Number of k splits.
    pub fn splits(&self) -> u32 {
        if self.k == 0 {
            1
        } else {
            self.k.div_ceil(self.k_split.max(1))
        }
    }

    /// The grid of the generic product for `strategy`.
    pub fn groups(&self, strategy: Strategy) -> [u32; 3] {
        match strategy {
            Strategy::Tiled => [self.m.div_ceil(64), self.n.div_ceil(64), self.splits()],
            Strategy::Register | Strategy::Texture | Strategy::Sparse => [
                self.m.div_ceil(4).div_ceil(64),
                self.n.div_ceil(4),
                self.splits(),
            ],
        }
    }
}

/// `struct Big` of matmul.wgsl (fwd_x_reg, dw1_reg: the products over the images).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Big {
    pub rows: u32,
    pub hidden: u32,
    pub inputs: u32,
    pub xw: u32,
    pub w_off: u32,
    pub b_off: u32,
    pub out_off: u32,
    pub dz_row0: u32,
}

/// `struct Small` of matmul.wgsl (z2_reg, dh_reg, dw2_reg: products with a small side).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Small {
    pub n: u32,
    pub hidden: u32,
    pub classes: u32,
    pub k_split: u32,
    pub w_off: u32,
    pub b_off: u32,
    pub out_off: u32,
    pub c_split: u32,
}

impl Small {
    /// A product of `n` samples between `hidden` and `classes` units, the rest zero.
    fn shape(n: usize, hidden: usize, classes: usize) -> Small {
        Small {
            n: n as u32,
            hidden: hidden as u32,
            classes: classes as u32,
            ..Small::default()
        }
    }
}

/// `struct Tex` of matmul_sg.wgsl (the texture strategy's first layer).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Tex {
    pub rows: u32,
    pub hidden: u32,
    pub inputs: u32,
    pub xw: u32,
    pub w_off: u32,
    pub b_off: u32,
    pub out_off: u32,
    pub layer_rows: u32,
}

/// The register kernels read rows as vec4: widths must be multiples of 4.
pub fn aligned(width: usize) -> bool {
    width >= 4 && width.is_multiple_of(4)
}

/// `z2_reg` and `dw2_reg` hold up to 12 outputs in registers.
pub fn small_ok(k: &Kernels, fan_in: usize, fan_out: usize) -> bool {
    k.z2.is_some() && aligned(fan_in) && (1..=12).contains(&fan_out)
}

/// The generic product `c = a · b (+ bias)` laid out by `mm`.
pub fn generic(
    plan: &mut Plan,
    k: &Kernels,
    stage: Stage,
    mm: Mm,
    [a, b, c, bias]: [&wgpu::Buffer; 4],
) {
    let bufs = [
        (bind::A, Res::Buf(a)),
        (bind::B, Res::Buf(b)),
        (bind::C, Res::Buf(c)),
        (bind::BIAS, Res::Buf(bias)),
    ];
    let groups = mm.groups(k.strategy);
    plan.push(stage, &k.mm, (bind::MM, &mm), &bufs, groups);
}

/// Z = A W^T + b for a layer whose input `a` is an f32 activation [n, fan_in]; `w`/`b` are
/// the offsets of its tensors in `params`. The output layer's small product runs `z2_reg`.
#[allow(clippy::too_many_arguments)] // the operands of one product; a struct would rename them
pub fn forward(
    plan: &mut Plan,
    k: &Kernels,
    params: &wgpu::Buffer,
    a: &wgpu::Buffer,
    z: &wgpu::Buffer,
    (n, fan_in, fan_out): (usize, usize, usize),
    (w, b): (usize, usize),
    stage: Stage,
) {
    if let Some(p) = k.z2.as_ref().filter(|_| small_ok(k, fan_in, fan_out)) {
        let u = Small {
            w_off: w as u32,
            b_off: b as u32,
            ..Small::shape(n, fan_in, fan_out)
        };
        let bufs = [
            (bind::SV, Res::Buf(a)),
            (bind::PV, Res::Buf(params)),
            (bind::PF, Res::Buf(params)),
            (bind::OUTF, Res::Buf(z)),
        ];
        let groups = [n.div_ceil(8).div_ceil(64) as u32, 1, 1];
        plan.push(stage, p, (bind::SMALL, &u), &bufs, groups);
        return;
    }
    let mm = Mm {
        m: n as u32,
        n: fan_out as u32,
        k: fan_in as u32,
        k_split: fan_in as u32,
        a_rs: fan_in as u32,
        a_cs: 1,
        b_off: w as u32,
        b_rs: 1,
        b_cs: fan_in as u32,
        c_rs: fan_out as u32,
        bias: 1,
        bias_off: b as u32,
        ..Mm::default()
    };
    generic(plan, k, stage, mm, [a, params, z, params]);
}

/// dW = dZ^T A for an f32 input `a` [n, fan_in] and `dz` [n, fan_out], into
/// `grads[w..]`: split over samples into `scratch` and summed in a fixed order when long.
#[allow(clippy::too_many_arguments)] // the operands of one product
pub fn weight_grad(
    plan: &mut Plan,
    k: &Kernels,
    (dz, a): (&wgpu::Buffer, &wgpu::Buffer),
    (grads, scratch): (&wgpu::Buffer, &wgpu::Buffer),
    (n, fan_in, fan_out): (usize, usize, usize),
    w: usize,
    stage: Stage,
) {
    let ks = k_split(n);
    let slots = n.div_ceil(ks);
    let len = fan_out * fan_in;
    let direct = slots == 1;
    let target = if direct { grads } else { scratch };
    let c_off = if direct { w } else { 0 };
    if let Some(p) = k.dw2.as_ref().filter(|_| small_ok(k, fan_in, fan_out)) {
        let u = Small {
            k_split: ks as u32,
            out_off: c_off as u32,
            c_split: len as u32,
            ..Small::shape(n, fan_in, fan_out)
        };
        let bufs = [
            (bind::SA, Res::Buf(dz)),
            (bind::SV, Res::Buf(a)),
            (bind::OUTF, Res::Buf(target)),
        ];
        let groups = [(fan_in / 4).div_ceil(32) as u32, slots as u32, 1];
        plan.push(stage, p, (bind::SMALL, &u), &bufs, groups);
    } else {
        let mm = Mm {
            m: fan_out as u32,
            n: fan_in as u32,
            k: n as u32,
            k_split: ks as u32,
            a_rs: 1,
            a_cs: fan_out as u32,
            b_rs: fan_in as u32,
            b_cs: 1,
            c_off: c_off as u32,
            c_rs: fan_in as u32,
            c_split: len as u32,
            ..Mm::default()
        };
        // The bias binding is unused (bias = 0): any read-only buffer will do.
        generic(plan, k, stage, mm, [dz, a, target, a]);
    }
    if !direct {
        super::reduce::sum_slots(plan, k, stage, scratch, grads, len, slots, w);
    }
}

/// dA = dZ W for the layer below (`dz` [n, fan_out], W [fan_out, fan_in] at `w`), and
/// that layer's dZ = dA * (Z > 0) from its pre-activation `z_below`: `dh_reg` does both in
/// one pass; otherwise the generic product then the ReLU mask.
#[allow(clippy::too_many_arguments)] // the operands of one product
pub fn input_grad(
    plan: &mut Plan,
    k: &Kernels,
    params: &wgpu::Buffer,
    dz: &wgpu::Buffer,
    (z_below, dh, dz_below): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
    (n, fan_in, fan_out): (usize, usize, usize),
    w: usize,
) {
    if let Some(p) = k.dh.as_ref().filter(|_| aligned(fan_in)) {
        let u = Small {
            w_off: w as u32,
            ..Small::shape(n, fan_in, fan_out)
        };
        let bufs = [
            (bind::SA, Res::Buf(dz)),
            (bind::PV, Res::Buf(params)),
            (bind::SV, Res::Buf(z_below)),
            (bind::OUT4, Res::Buf(dh)),
            (bind::HOUT4, Res::Buf(dz_below)),
        ];
        let groups = [
            n.div_ceil(4).div_ceil(64) as u32,
            fan_in.div_ceil(16) as u32,
            1,
        ];
        plan.push(Stage::DH, p, (bind::SMALL, &u), &bufs, groups);
        return;
    }
    let mm = Mm {
        m: n as u32,
        n: fan_in as u32,
        k: fan_out as u32,
        k_split: fan_out as u32,
        a_rs: fan_out as u32,
        a_cs: 1,
        b_off: w as u32,
        b_rs: fan_in as u32,
        b_cs: 1,
        c_rs: fan_in as u32,
        ..Mm::default()
    };
    generic(plan, k, Stage::DH, mm, [dz, params, dh, params]);
    super::pointwise::relu_backward(plan, k, z_below, dh, dz_below, n * fan_in);
}
