//! The compute pipelines (one per WGSL entry point), built once; the op recorders in
//! [`super::ops`] turn them into recorded dispatches.

use anyhow::{ensure, Result};

pub use super::ops::Stage;
use super::GpuContext;
pub use crate::matmul_kernel::Strategy;

/// Most storage buffers any entry point binds (grprop_move: 7; optimizer.wgsl: 6).
pub const MAX_STORAGE_BINDINGS: u32 = 7;
/// Workgroup memory of `mm_tiled` (two 16x64 f32 tiles).
pub const WORKGROUP_BYTES: u32 = 2 * 16 * 64 * 4;

pub const MATMUL_WGSL: &str = include_str!("../../shaders/matmul.wgsl");
pub const MATMUL_SG_WGSL: &str = include_str!("../../shaders/matmul_sg.wgsl");
pub const RELU_WGSL: &str = include_str!("../../shaders/relu.wgsl");
pub const SOFTMAX_XENT_WGSL: &str = include_str!("../../shaders/softmax_xent.wgsl");
pub const REDUCE_WGSL: &str = include_str!("../../shaders/reduce.wgsl");
pub const OPTIMIZER_WGSL: &str = include_str!("../../shaders/optimizer.wgsl");
pub const GRPROP_WGSL: &str = include_str!("../../shaders/grprop.wgsl");
pub const BATCH_WGSL: &str = include_str!("../../shaders/batch.wgsl");
pub const TELEMETRY_WGSL: &str = include_str!("../../shaders/telemetry.wgsl");
/// block_z1.wgsl after the `SparseZ1` it shares with the probes (WGSL has no include).
pub const BLOCK_Z1_WGSL: &str = concat!(
    include_str!("../../shaders/sparse_z1_params.wgsl"),
    include_str!("../../shaders/block_z1.wgsl")
);
pub const FIRST_CONSTS_WGSL: &str = include_str!("../../shaders/first_consts.wgsl");

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
    /// `block_z1` (shaders/block_z1.wgsl) and `first_layer_consts`
    /// (shaders/first_consts.wgsl): the sparse strategy's Z1 of full passes.
    pub block_z1: Option<wgpu::ComputePipeline>,
    pub first_consts: Option<wgpu::ComputePipeline>,
    pub relu_fwd: wgpu::ComputePipeline,
    pub relu_bwd: wgpu::ComputePipeline,
    pub softmax_xent: wgpu::ComputePipeline,
    pub cols_partial: wgpu::ComputePipeline,
    pub cols_final: wgpu::ComputePipeline,
    pub metrics_partial: wgpu::ComputePipeline,
    pub metrics_final: wgpu::ComputePipeline,
    pub optimizer: wgpu::ComputePipeline,
    pub finish: wgpu::ComputePipeline,
    pub grprop_pick: wgpu::ComputePipeline,
    pub grprop_sum: wgpu::ComputePipeline,
    pub grprop_move: wgpu::ComputePipeline,
    /// `gather_rows`, `gather_labels`, `advance` (shaders/batch.wgsl).
    pub gather_rows: wgpu::ComputePipeline,
    pub gather_labels: wgpu::ComputePipeline,
    /// `gather_tex` (shaders/batch.wgsl): a mini-batch's rows of the images' texture.
    pub gather_tex: wgpu::ComputePipeline,
    pub advance: wgpu::ComputePipeline,
    /// `signs`, `steps`, `close` (shaders/telemetry.wgsl).
    pub tele_signs: wgpu::ComputePipeline,
    pub tele_steps: wgpu::ComputePipeline,
    pub tele_close: wgpu::ComputePipeline,
}

/// Compiles one WGSL file. The matmul kernels (matmul.wgsl, matmul_sg.wgsl) are the hot
/// loops: naga's bounds checks (a clamp per load) would cost them dearly, and every index they compute is clamped or
/// guarded in the shader itself, so that module is created without them.
pub fn module(
    ctx: &GpuContext,
    label: &str,
    src: &str,
    trusted: bool,
) -> Result<wgpu::ShaderModule> {
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

/// Why `strategy` cannot run on `adapter` (None: it can). Only `texture` needs something
/// (8-lane subgroups); `sparse` falls back to register kernels without them.
pub fn unsupported(adapter: &wgpu::Adapter, strategy: Strategy) -> Option<String> {
    let info = adapter.get_info();
    let sg8 = adapter.features().contains(wgpu::Features::SUBGROUP)
        && info.subgroup_min_size == 8
        && info.subgroup_max_size == 8;
    (strategy == Strategy::Texture && !sg8).then(|| {
        format!(
            "needs subgroups of exactly 8 lanes; {} ({:?}) has {}",
            info.name,
            info.backend,
            if adapter.features().contains(wgpu::Features::SUBGROUP) {
                format!(
                    "subgroups of {}..={} lanes",
                    info.subgroup_min_size, info.subgroup_max_size
                )
            } else {
                "no subgroups".to_string()
            }
        )
    })
}

/// True when the device runs subgroup operations on subgroups of exactly 8 lanes, which
/// the kernels of matmul_sg.wgsl are written for.
pub fn subgroups_of_8(ctx: &GpuContext) -> bool {
    ctx.device.features().contains(wgpu::Features::SUBGROUP)
        && ctx.info.subgroup_min_size == 8
        && ctx.info.subgroup_max_size == 8
}

/// The pipeline of entry point `entry` of `m`.
pub fn pipeline(
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
        let rp = module(ctx, "optimizer.wgsl", OPTIMIZER_WGSL, false)?;
        let gr = module(ctx, "grprop.wgsl", GRPROP_WGSL, false)?;
        let tele = module(ctx, "telemetry.wgsl", TELEMETRY_WGSL, false)?;
        let batch = module(ctx, "batch.wgsl", BATCH_WGSL, false)?;
        let reg = |name| -> Result<Option<wgpu::ComputePipeline>> {
            match strategy {
                Strategy::Tiled => Ok(None),
                _ => pipeline(ctx, &mm, name).map(Some),
            }
        };
        let sg = subgroup_module(ctx, strategy)?;
        let (block_z1, first_consts) = sparse_pipelines(ctx, strategy)?;
        let tex = |name| -> Result<Option<wgpu::ComputePipeline>> {
            sg.as_ref().map(|m| pipeline(ctx, m, name)).transpose()
        };
        let generic = match strategy {
            Strategy::Tiled => pipeline(ctx, &mm, "mm_tiled")?,
            _ => pipeline(ctx, &mm, "mm_reg")?,
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
            block_z1,
            first_consts,
            relu_fwd: pipeline(ctx, &relu, "relu_fwd")?,
            relu_bwd: pipeline(ctx, &relu, "relu_bwd")?,
            softmax_xent: pipeline(ctx, &sx, "softmax_xent")?,
            cols_partial: pipeline(ctx, &red, "cols_partial")?,
            cols_final: pipeline(ctx, &red, "cols_final")?,
            metrics_partial: pipeline(ctx, &red, "metrics_partial")?,
            metrics_final: pipeline(ctx, &red, "metrics_final")?,
            optimizer: pipeline(ctx, &rp, "optimizer")?,
            finish: pipeline(ctx, &rp, "finish")?,
            grprop_pick: pipeline(ctx, &gr, "grprop_pick")?,
            grprop_sum: pipeline(ctx, &gr, "grprop_sum")?,
            grprop_move: pipeline(ctx, &gr, "grprop_move")?,
            gather_rows: pipeline(ctx, &batch, "gather_rows")?,
            gather_labels: pipeline(ctx, &batch, "gather_labels")?,
            gather_tex: pipeline(ctx, &batch, "gather_tex")?,
            advance: pipeline(ctx, &batch, "advance")?,
            tele_signs: pipeline(ctx, &tele, "signs")?,
            tele_steps: pipeline(ctx, &tele, "steps")?,
            tele_close: pipeline(ctx, &tele, "close")?,
        })
    }
}

/// matmul_sg.wgsl, for the texture strategy (which needs subgroups of 8) and the sparse one
/// (its dW1, where subgroups of 8 exist).
fn subgroup_module(ctx: &GpuContext, strategy: Strategy) -> Result<Option<wgpu::ShaderModule>> {
    Ok(match strategy {
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
        Strategy::Sparse if subgroups_of_8(ctx) => {
            Some(module(ctx, "matmul_sg.wgsl", MATMUL_SG_WGSL, true)?)
        }
        _ => None,
    })
}

/// The sparse strategy's `block_z1` and `first_layer_consts` pipelines.
fn sparse_pipelines(
    ctx: &GpuContext,
    strategy: Strategy,
) -> Result<(Option<wgpu::ComputePipeline>, Option<wgpu::ComputePipeline>)> {
    Ok(match strategy {
        Strategy::Sparse => {
            let fc = module(ctx, "first_consts.wgsl", FIRST_CONSTS_WGSL, false)?;
            (
                Some(block_z1_pipeline(ctx)?),
                Some(pipeline(ctx, &fc, "first_layer_consts")?),
            )
        }
        _ => (None, None),
    })
}

/// The `block_z1` pipeline. Its module keeps naga's bounds checks (the word lists index the
/// images; the cost was part of what the timing of the strategy measured).
pub fn block_z1_pipeline(ctx: &GpuContext) -> Result<wgpu::ComputePipeline> {
    let m = module(ctx, "block_z1.wgsl", BLOCK_Z1_WGSL, false)?;
    pipeline(ctx, &m, "block_z1")
}
