//! Element-wise ops: the ReLU and its mask (shaders/relu.wgsl; CPU twins `cpu::relu`,
//! `cpu::relu_backward`) and the fused softmax cross-entropy (shaders/softmax_xent.wgsl;
//! CPU twin `cpu::softmax_xent`).

use bytemuck::{Pod, Zeroable};

use super::{grid, Plan, Res, Stage};
use crate::gpu::kernels::Kernels;

/// `struct Len` of relu.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Len {
    pub len: u32,
    pub _pad: [u32; 3],
}

/// Bindings of relu.wgsl.
mod relu_bind {
    pub const Z: u32 = 0;
    pub const DST: u32 = 1;
    pub const P: u32 = 2;
    pub const DH: u32 = 3;
}

/// h = max(z, 0) over `len` values.
pub fn relu(plan: &mut Plan, k: &Kernels, z: &wgpu::Buffer, h: &wgpu::Buffer, len: usize) {
    plan.push(
        Stage::Relu,
        &k.relu_fwd,
        (
            relu_bind::P,
            &Len {
                len: len as u32,
                ..Len::default()
            },
        ),
        &[(relu_bind::Z, Res::Buf(z)), (relu_bind::DST, Res::Buf(h))],
        grid(len.div_ceil(256)),
    );
}

/// dz = dh * (z > 0) over `len` values.
pub fn relu_backward(
    plan: &mut Plan,
    k: &Kernels,
    z: &wgpu::Buffer,
    dh: &wgpu::Buffer,
    dz: &wgpu::Buffer,
    len: usize,
) {
    plan.push(
        Stage::ReluBackward,
        &k.relu_bwd,
        (
            relu_bind::P,
            &Len {
                len: len as u32,
                ..Len::default()
            },
        ),
        &[
            (relu_bind::Z, Res::Buf(z)),
            (relu_bind::DST, Res::Buf(dz)),
            (relu_bind::DH, Res::Buf(dh)),
        ],
        grid(len.div_ceil(256)),
    );
}

/// `struct Sx` of softmax_xent.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Sx {
    pub n: u32,
    pub classes: u32,
    /// Samples the loss is the mean over (dz = (p - onehot) / total).
    pub total: u32,
    pub _pad: u32,
}

/// Per sample of logits `z` [n, classes]: loss, correct and dz.
#[allow(clippy::too_many_arguments)] // the kernel's five buffers
pub fn softmax_xent(
    plan: &mut Plan,
    k: &Kernels,
    z: &wgpu::Buffer,
    labels: &wgpu::Buffer,
    (loss, correct, dz): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
    n: usize,
    classes: usize,
) {
    let u = Sx {
        n: n as u32,
        classes: classes as u32,
        total: n as u32,
        _pad: 0,
    };
    plan.push(
        Stage::SoftmaxXent,
        &k.softmax_xent,
        (5, &u),
        &[
            (0, Res::Buf(z)),
            (1, Res::Buf(labels)),
            (2, Res::Buf(loss)),
            (3, Res::Buf(correct)),
            (4, Res::Buf(dz)),
        ],
        grid(n.div_ceil(64)),
    );
}
