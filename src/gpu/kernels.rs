//! The compute pipelines (one per WGSL entry point), built once, and the small helpers that
//! turn them into recorded dispatches.

use std::fmt;
use std::str::FromStr;

use anyhow::{ensure, Result};
use wgpu::util::DeviceExt;

use super::GpuContext;

/// Most storage buffers any entry point binds (optimizer.wgsl: 6; fwd_x_reg: 5).
pub const MAX_STORAGE_BINDINGS: u32 = 7;
/// Workgroup memory of `mm_tiled` (two 16x64 f32 tiles).
pub const WORKGROUP_BYTES: u32 = 2 * 16 * 64 * 4;

pub const MATMUL_WGSL: &str = include_str!("../../shaders/matmul.wgsl");
pub const MATMUL_SG_WGSL: &str = include_str!("../../shaders/matmul_sg.wgsl");
pub const RELU_WGSL: &str = include_str!("../../shaders/relu.wgsl");
pub const SOFTMAX_XENT_WGSL: &str = include_str!("../../shaders/softmax_xent.wgsl");
pub const REDUCE_WGSL: &str = include_str!("../../shaders/reduce.wgsl");
pub const RPROP_WGSL: &str = include_str!("../../shaders/optimizer.wgsl");

/// How the matrix products are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Workgroup-memory tiling: what real GPUs like.
    Tiled,
    /// Big register blocks, no workgroup memory, one operand at uniform addresses: what
    /// CPU-like SIMD adapters (lavapipe) like.
    Register,
    /// The register strategy with Z1 and dW1 from shaders/matmul_sg.wgsl: images and W1 in
    /// textures, the shared operand fetched once per 8-lane subgroup and broadcast. Needs
    /// subgroups of exactly 8 lanes (lavapipe on AVX2 CPUs).
    Texture,
}

impl Strategy {
    pub const ALL: [Strategy; 3] = [Strategy::Tiled, Strategy::Register, Strategy::Texture];
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Tiled => "tiled",
            Strategy::Register => "register",
            Strategy::Texture => "texture",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!("unknown matmul kernel {s:?} (expected tiled, register or texture)")
            })
    }
}

/// Every pipeline a run uses. The matmul ones depend on the strategy.
pub struct Kernels {
    pub strategy: Strategy,
    /// `mm_tiled` or `mm_reg`: the generic strided product.
    pub mm: wgpu::ComputePipeline,
    /// `fwd_x_reg`, `dw1_reg`, `z2_reg`, `dh_reg`, `dw2_reg` (register strategy only).
    pub fwd_x: Option<wgpu::ComputePipeline>,
    pub dw1: Option<wgpu::ComputePipeline>,
    pub z2: Option<wgpu::ComputePipeline>,
    pub dh: Option<wgpu::ComputePipeline>,
    pub dw2: Option<wgpu::ComputePipeline>,
    /// `pack_w1`, `fwd_x_sg`, `dw1_sg` (texture strategy only; used when the set has a
    /// texture, else the register kernels run).
    pub pack_w1: Option<wgpu::ComputePipeline>,
    pub fwd_tex: Option<wgpu::ComputePipeline>,
    pub dw1_tex: Option<wgpu::ComputePipeline>,
    pub relu_fwd: wgpu::ComputePipeline,
    pub relu_bwd: wgpu::ComputePipeline,
    pub softmax_xent: wgpu::ComputePipeline,
    pub cols_partial: wgpu::ComputePipeline,
    pub cols_final: wgpu::ComputePipeline,
    pub metrics_partial: wgpu::ComputePipeline,
    pub metrics_final: wgpu::ComputePipeline,
    pub rprop: wgpu::ComputePipeline,
    pub finish: wgpu::ComputePipeline,
}

/// Compiles one WGSL file. The matmul kernels (matmul.wgsl, matmul_sg.wgsl) are the hot loops: naga's bounds checks
/// (a clamp per load) would cost them dearly, and every index they compute is clamped or
/// guarded in the shader itself, so that module is created without them.
fn module(ctx: &GpuContext, label: &str, src: &str, trusted: bool) -> Result<wgpu::ShaderModule> {
    let desc = wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(src.into()),
    };
    ctx.scoped(&format!("compiling shaders/{label}"), || {
        if trusted {
            // SAFETY: matmul.wgsl and matmul_sg.wgsl clamp every row, column and texel index
            // to its matrix and the host sizes every buffer and texture for the shapes it
            // passes (see backend.rs), so no access is out of bounds; the shaders have no
            // loops without a bound.
            unsafe {
                ctx.device.create_shader_module_trusted(
                    desc,
                    wgpu::ShaderRuntimeChecks {
                        bounds_checks: false,
                        ..wgpu::ShaderRuntimeChecks::checked()
                    },
                )
            }
        } else {
            ctx.device.create_shader_module(desc)
        }
    })
}

/// True when the device runs subgroup operations on subgroups of exactly 8 lanes, which
/// the kernels of matmul_sg.wgsl are written for.
pub fn subgroups_of_8(ctx: &GpuContext) -> bool {
    ctx.device.features().contains(wgpu::Features::SUBGROUP)
        && ctx.info.subgroup_min_size == 8
        && ctx.info.subgroup_max_size == 8
}

fn pipeline(
    ctx: &GpuContext,
    m: &wgpu::ShaderModule,
    entry: &str,
) -> Result<wgpu::ComputePipeline> {
    ctx.scoped(&format!("creating pipeline {entry}"), || {
        ctx.device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: m,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
    })
}

impl Kernels {
    /// Compiles every pipeline of `strategy`, up front.
    pub fn new(ctx: &GpuContext, strategy: Strategy) -> Result<Kernels> {
        let mm = module(ctx, "matmul.wgsl", MATMUL_WGSL, true)?;
        let relu = module(ctx, "relu.wgsl", RELU_WGSL, false)?;
        let sx = module(ctx, "softmax_xent.wgsl", SOFTMAX_XENT_WGSL, false)?;
        let red = module(ctx, "reduce.wgsl", REDUCE_WGSL, false)?;
        let rp = module(ctx, "optimizer.wgsl", RPROP_WGSL, false)?;
        let reg = |name| -> Result<Option<wgpu::ComputePipeline>> {
            match strategy {
                Strategy::Tiled => Ok(None),
                Strategy::Register | Strategy::Texture => pipeline(ctx, &mm, name).map(Some),
            }
        };
        let sg = match strategy {
            Strategy::Texture => {
                ensure!(
                    subgroups_of_8(ctx),
                    "matmul kernel texture needs subgroups of exactly 8 lanes, which GPU adapter \
                     {:?} does not offer (subgroup sizes {}..={}); use register or tiled",
                    ctx.info.name,
                    ctx.info.subgroup_min_size,
                    ctx.info.subgroup_max_size
                );
                Some(module(ctx, "matmul_sg.wgsl", MATMUL_SG_WGSL, true)?)
            }
            _ => None,
        };
        let tex = |name| -> Result<Option<wgpu::ComputePipeline>> {
            sg.as_ref().map(|m| pipeline(ctx, m, name)).transpose()
        };
        let generic = match strategy {
            Strategy::Tiled => pipeline(ctx, &mm, "mm_tiled")?,
            Strategy::Register | Strategy::Texture => pipeline(ctx, &mm, "mm_reg")?,
        };
        Ok(Kernels {
            strategy,
            mm: generic,
            fwd_x: reg("fwd_x_reg")?,
            dw1: reg("dw1_reg")?,
            z2: reg("z2_reg")?,
            dh: reg("dh_reg")?,
            dw2: reg("dw2_reg")?,
            pack_w1: tex("pack_w1")?,
            fwd_tex: tex("fwd_x_sg")?,
            dw1_tex: tex("dw1_sg")?,
            relu_fwd: pipeline(ctx, &relu, "relu_fwd")?,
            relu_bwd: pipeline(ctx, &relu, "relu_bwd")?,
            softmax_xent: pipeline(ctx, &sx, "softmax_xent")?,
            cols_partial: pipeline(ctx, &red, "cols_partial")?,
            cols_final: pipeline(ctx, &red, "cols_final")?,
            metrics_partial: pipeline(ctx, &red, "metrics_partial")?,
            metrics_final: pipeline(ctx, &red, "metrics_final")?,
            rprop: pipeline(ctx, &rp, "optimizer")?,
            finish: pipeline(ctx, &rp, "finish")?,
        })
    }
}

/// What a group of dispatches computes, so benches and the debug path can run one stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Z1,
    Relu,
    Z2,
    SoftmaxXent,
    Metrics,
    DW2,
    DB2,
    DH,
    ReluBackward,
    DW1,
    DB1,
    Rprop,
}

/// One recorded dispatch: pipeline, its bind group (uniforms included) and grid.
pub struct Dispatch {
    pub stage: Stage,
    pub pipeline: wgpu::ComputePipeline,
    pub bind: wgpu::BindGroup,
    pub groups: [u32; 3],
}

impl Dispatch {
    /// A dispatch of `pipeline` over `groups` with the buffers `entries` bound.
    pub fn new(
        device: &wgpu::Device,
        stage: Stage,
        pipeline: &wgpu::ComputePipeline,
        entries: &[(u32, &wgpu::Buffer)],
        groups: [u32; 3],
    ) -> Dispatch {
        Dispatch {
            stage,
            pipeline: pipeline.clone(),
            bind: bind(device, pipeline, entries),
            groups,
        }
    }

    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(self.groups[0], self.groups[1], self.groups[2]);
    }
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

/// A uniform buffer holding `words` (padded to 16 bytes).
pub fn uniform(device: &wgpu::Device, words: &[u32]) -> wgpu::Buffer {
    let mut w = words.to_vec();
    w.resize(words.len().div_ceil(4).max(1) * 4, 0);
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("params"),
        contents: bytemuck::cast_slice(&w),
        usage: wgpu::BufferUsages::UNIFORM,
    })
}

/// A bind group for `pipeline` from (binding, buffer) pairs.
pub fn bind(
    device: &wgpu::Device,
    pipeline: &wgpu::ComputePipeline,
    entries: &[(u32, &wgpu::Buffer)],
) -> wgpu::BindGroup {
    bind_with_texture(device, pipeline, entries, &[])
}

/// [`bind`] plus (binding, texture view) pairs.
pub fn bind_with_texture(
    device: &wgpu::Device,
    pipeline: &wgpu::ComputePipeline,
    entries: &[(u32, &wgpu::Buffer)],
    textures: &[(u32, &wgpu::TextureView)],
) -> wgpu::BindGroup {
    let mut entries: Vec<wgpu::BindGroupEntry> = entries
        .iter()
        .map(|&(binding, buf)| wgpu::BindGroupEntry {
            binding,
            resource: buf.as_entire_binding(),
        })
        .collect();
    for &(binding, view) in textures {
        entries.push(wgpu::BindGroupEntry {
            binding,
            resource: wgpu::BindingResource::TextureView(view),
        });
    }
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    })
}

/// A 2-D grid of `groups` workgroups (x at most 65535), for the element-wise kernels.
pub fn grid(groups: usize) -> [u32; 3] {
    let g = groups.max(1);
    let x = g.min(65_535);
    [x as u32, g.div_ceil(x) as u32, 1]
}

/// Uniform words of the generic product (`struct Mm` of matmul.wgsl).
#[derive(Clone, Copy, Debug, Default)]
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
}

impl Mm {
    pub fn words(&self) -> [u32; 20] {
        [
            self.m,
            self.n,
            self.k,
            self.k_split,
            self.a_off,
            self.a_rs,
            self.a_cs,
            self.a_u8,
            self.b_off,
            self.b_rs,
            self.b_cs,
            self.b_u8,
            self.c_off,
            self.c_rs,
            self.c_split,
            self.bias,
            self.bias_off,
            0,
            0,
            0,
        ]
    }

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
            Strategy::Register | Strategy::Texture => [
                self.m.div_ceil(4).div_ceil(64),
                self.n.div_ceil(4),
                self.splits(),
            ],
        }
    }
}
