//! Op recorders: each records the dispatches of one operation of a training step into a
//! [`Plan`], with its parameters as a typed `#[repr(C)]` struct (the twin of the WGSL
//! `struct` its shader declares) and its buffers named by the shader's binding constants.
//!
//! * [`input`]: the first layer's Z1 and dW1, over the u8 images;
//! * [`linear`]: Z = A W^T + b, dW = dZ^T A and dA = dZ W of the later layers;
//! * [`pointwise`]: ReLU and its mask, softmax cross-entropy;
//! * [`reduce`]: bias gradients, split-k sums and the pass metrics;
//! * [`optimizer`]: the fused optimizer step;
//! * [`grprop`]: GRprop's pick, sum and move after it;
//! * [`lbfgs`]: L-BFGS's vector operations, history test and two-loop recursion, with
//!   their scalars on the device;
//! * [`telemetry_counts`]: Rprop telemetry counts and the per-epoch history;
//! * `sparse_probes` (`--features probes` only): the measured sparse kernels that lost;
//! * [`sparse_z1`]: the sparse strategy's Z1 of full passes (`block_z1`);
//! * [`batch`]: gathering a mini-batch's rows by index on the device, and the per-step
//!   cursor.

/// Declares a shader's bindings as a module of named constants numbered in order from 0,
/// as the shader's `@binding(n)` declarations are: `bindings! { pub mod bind { A, B } }`
/// gives `bind::A = 0` and `bind::B = 1`, so every binding is named and none is a bare number.
macro_rules! bindings {
    ($(#[$m:meta])* $vis:vis mod $name:ident { $($b:ident),* $(,)? }) => {
        $(#[$m])*
        $vis mod $name {
            $crate::gpu::ops::bindings!(@at 0u32; $($b),*);
        }
    };
    (@at $i:expr; $b:ident $(, $rest:ident)*) => {
        pub const $b: u32 = $i;
        $crate::gpu::ops::bindings!(@at $i + 1; $($rest),*);
    };
    (@at $i:expr;) => {};
}
pub(crate) use bindings;

pub mod batch;
pub mod grprop;
pub mod input;
pub mod lbfgs;
pub mod linear;
pub mod optimizer;
pub mod pointwise;
pub mod reduce;
#[cfg(feature = "probes")]
pub mod sparse_probes;
pub mod sparse_z1;
pub mod telemetry_counts;

use bytemuck::Pod;
use wgpu::util::DeviceExt;

/// What a group of dispatches computes, so benches and the debug path can run one stage.
/// `Z1`/`DW1`/`DB1` are the first layer's (the products over the images);
/// `ZLater`/`DWLater`/`DBLater` those of every later layer; `DH` the gradient of a hidden
/// layer's output; `Optimizer` the update of every weight (any optimizer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Gather,
    Z1,
    Relu,
    ZLater,
    SoftmaxXent,
    Metrics,
    DWLater,
    DBLater,
    DH,
    ReluBackward,
    DW1,
    DB1,
    Optimizer,
}

/// One recorded dispatch: pipeline, its bind group (uniforms included) and grid.
pub struct Dispatch {
    pub stage: Stage,
    pub pipeline: wgpu::ComputePipeline,
    pub bind: wgpu::BindGroup,
    pub groups: [u32; 3],
}

impl Dispatch {
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(self.groups[0], self.groups[1], self.groups[2]);
    }
}

/// A resource bound at a binding of a shader.
#[derive(Clone, Copy)]
pub enum Res<'a> {
    Buf(&'a wgpu::Buffer),
    Tex(&'a wgpu::TextureView),
}

/// The recorded dispatches of a step or a pass, in order.
pub struct Plan<'d> {
    pub device: &'d wgpu::Device,
    pub list: Vec<Dispatch>,
}

impl<'d> Plan<'d> {
    pub fn new(device: &'d wgpu::Device) -> Plan<'d> {
        Plan {
            device,
            list: Vec::new(),
        }
    }

    /// Records `pipeline` over `groups` with `params` in a uniform at binding `uniform` and
    /// the resources `res` at their bindings.
    pub fn push<T: Pod>(
        &mut self,
        stage: Stage,
        pipeline: &wgpu::ComputePipeline,
        (uniform, params): (u32, &T),
        res: &[(u32, Res)],
        groups: [u32; 3],
    ) {
        let u = uniform_buffer(self.device, params);
        let mut entries: Vec<wgpu::BindGroupEntry> = res
            .iter()
            .map(|&(binding, r)| wgpu::BindGroupEntry {
                binding,
                resource: match r {
                    Res::Buf(b) => b.as_entire_binding(),
                    Res::Tex(v) => wgpu::BindingResource::TextureView(v),
                },
            })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: uniform,
            resource: u.as_entire_binding(),
        });
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        self.list.push(Dispatch {
            stage,
            pipeline: pipeline.clone(),
            bind,
            groups,
        });
    }
}

/// A uniform buffer holding `params` (padded to 16 bytes).
pub fn uniform_buffer<T: Pod>(device: &wgpu::Device, params: &T) -> wgpu::Buffer {
    let mut bytes = bytemuck::bytes_of(params).to_vec();
    bytes.resize(bytes.len().div_ceil(16).max(1) * 16, 0);
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("params"),
        contents: &bytes,
        usage: wgpu::BufferUsages::UNIFORM,
    })
}

/// Records `list` into one compute pass of `enc`.
pub fn encode_all<'a>(
    enc: &mut wgpu::CommandEncoder,
    list: impl IntoIterator<Item = &'a Dispatch>,
) {
    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: None,
        timestamp_writes: None,
    });
    for d in list {
        d.encode(&mut pass);
    }
}

/// A 2-D grid of `groups` workgroups (x at most 65535), for the element-wise kernels.
pub fn grid(groups: usize) -> [u32; 3] {
    let g = groups.max(1);
    let x = g.min(65_535);
    [x as u32, g.div_ceil(x) as u32, 1]
}
