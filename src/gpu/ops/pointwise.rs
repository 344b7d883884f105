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

super::bindings! {
    /// Bindings of relu.wgsl.
    mod relu_bind { Z, DST, P, DH }
}

/// h = max(z, 0) over `len` values.
pub fn relu(plan: &mut Plan, k: &Kernels, z: &wgpu::Buffer, h: &wgpu::Buffer, len: usize) {
    let bufs = [(relu_bind::Z, Res::Buf(z)), (relu_bind::DST, Res::Buf(h))];
    record_relu(plan, (Stage::Relu, &k.relu_fwd), &bufs, len);
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
    let bufs = [
        (relu_bind::Z, Res::Buf(z)),
        (relu_bind::DST, Res::Buf(dz)),
        (relu_bind::DH, Res::Buf(dh)),
    ];
    record_relu(plan, (Stage::ReluBackward, &k.relu_bwd), &bufs, len);
}

/// One relu.wgsl entry point over `len` values.
fn record_relu(
    plan: &mut Plan,
    (stage, pipe): (Stage, &wgpu::ComputePipeline),
    bufs: &[(u32, Res)],
    len: usize,
) {
    let u = Len {
        len: len as u32,
        ..Len::default()
    };
    plan.push(
        stage,
        pipe,
        (relu_bind::P, &u),
        bufs,
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

super::bindings! {
    /// Bindings of softmax_xent.wgsl.
    mod sx_bind { Z, LABELS, LOSS, CORRECT, DZ, P }
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
    let bufs = [
        (sx_bind::Z, Res::Buf(z)),
        (sx_bind::LABELS, Res::Buf(labels)),
        (sx_bind::LOSS, Res::Buf(loss)),
        (sx_bind::CORRECT, Res::Buf(correct)),
        (sx_bind::DZ, Res::Buf(dz)),
    ];
    let groups = grid(n.div_ceil(64));
    plan.push(
        Stage::SoftmaxXent,
        &k.softmax_xent,
        (sx_bind::P, &u),
        &bufs,
        groups,
    );
}
