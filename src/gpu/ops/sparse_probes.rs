//! The first layer's products from the u8 pixels' nonzeros on the device
//! (shaders/sparse_first.wgsl): Z1 = a·(U·W1ᵀ) + c (CPU twin `cpu::sparse::forward_rows`) and
//! dW1 = a·(dZ1ᵀ·U) − db1 ⊗ 1 (CPU twin `cpu::sparse::grad_rows` + `finish_grad`).
//!
//! Probes, built with `--features probes` only: timed against the dense strategies by
//! `examples/gpu_sparse_z1.rs` (figures in docs/performance.md). The backend's `sparse`
//! strategy runs `block_z1` (shaders/block_z1.wgsl, wired in by [`super::sparse_z1`]), the one
//! that wins on lavapipe; the per-nonzero kernels and the block dW1 here lose there.

use anyhow::{ensure, Result};
use wgpu::util::DeviceExt;

use super::sparse_z1::{bind, SparseZ1};
use crate::cpu::sparse::{self, SparseImages};
use crate::gpu::buffers::blocks::{block_lists, BLOCK_ROWS};
use crate::gpu::{kernels, GpuContext};

/// sparse_first.wgsl after the `SparseZ1` it shares with block_z1 (WGSL has no include).
pub const SPARSE_FIRST_WGSL: &str = concat!(
    include_str!("../../../shaders/sparse_z1_params.wgsl"),
    include_str!("../../../shaders/sparse_first.wgsl")
);

/// Which kernel of shaders/sparse_first.wgsl computes Z1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SparseKernel {
    /// `sparse_z1`: per nonzero pixel, W1ᵀ's row from a storage buffer.
    Buffer,
    /// `sparse_z1_tex`: the same, W1ᵀ from a texture.
    Texture,
    /// `block_z1`: 16 x 16 register blocks, skipping 4-pixel words zero in all 16 images.
    Block,
}

/// `block_z1`'s u8 pixels as u32 words (4 pixels each, lowest byte first, `inputs / 4` per
/// image) and, per block of 16 images, the starts and the list of words nonzero in any.
pub fn pack_blocks(u: &SparseImages) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let kw = u.cols.div_ceil(4);
    let mut xs = vec![0u32; u.rows * kw];
    for n in 0..u.rows {
        let (cols, vals) = u.row(n);
        for (&k, &v) in cols.iter().zip(vals) {
            let k = k as usize;
            xs[n * kw + k / 4] |= (v as u32) << (8 * (k % 4));
        }
    }
    let (starts, list) = block_lists(&xs, kw);
    (xs, starts, list)
}

/// Rows per workgroup (the shader's workgroup_size y) and lanes per 128 hidden units (x).
const ROWS_PER_GROUP: usize = 8;

/// The shader's row starts (in u32 entries, multiples of 4) and entries, `(column << 8) |
/// pixel`, each row padded with zero entries to a multiple of 4.
pub fn pack_entries(u: &SparseImages) -> (Vec<u32>, Vec<u32>) {
    let mut starts = Vec::with_capacity(u.rows + 1);
    let mut nz = Vec::new();
    starts.push(0u32);
    for n in 0..u.rows {
        let (cols, vals) = u.row(n);
        nz.extend(
            cols.iter()
                .zip(vals)
                .map(|(&k, &v)| (k as u32) << 8 | v as u32),
        );
        nz.resize(nz.len().next_multiple_of(4), 0);
        starts.push(nz.len() as u32);
    }
    (starts, nz)
}

/// The pipeline of one entry point of shaders/sparse_first.wgsl. The module keeps naga's
/// bounds checks (their cost is part of what the probe measures).
pub fn pipeline(ctx: &GpuContext, entry: &str) -> Result<wgpu::ComputePipeline> {
    let m = kernels::module(ctx, "sparse_first.wgsl", SPARSE_FIRST_WGSL, false)?;
    kernels::pipeline(ctx, &m, entry)
}

/// Bind group entries for buffers at their bindings.
fn entries<'a>(list: &[(u32, &'a wgpu::Buffer)]) -> Vec<wgpu::BindGroupEntry<'a>> {
    list.iter()
        .map(|&(binding, b)| wgpu::BindGroupEntry {
            binding,
            resource: b.as_entire_binding(),
        })
        .collect()
}

/// The pipelines and buffers of one set's sparse Z1.
pub struct SparseZ1Probe {
    storage: wgpu::ComputePipeline,
    tex: wgpu::ComputePipeline,
    block: wgpu::ComputePipeline,
    bind_storage: wgpu::BindGroup,
    bind_tex: wgpu::BindGroup,
    bind_block: wgpu::BindGroup,
    pub z: wgpu::Buffer,
    groups: [u32; 3],
    pub rows: usize,
    pub hidden: usize,
}

/// A buffer holding `bytes`.
fn upload(d: &wgpu::Device, label: &str, bytes: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
    d.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytes,
        usage,
    })
}

/// An uninitialized buffer of `floats` f32s.
fn empty(d: &wgpu::Device, label: &str, floats: usize, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    d.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (floats * 4) as u64,
        usage,
        mapped_at_creation: false,
    })
}

/// A bind group of `p` with buffers at their bindings.
fn bind_group<'a>(
    d: &wgpu::Device,
    p: &wgpu::ComputePipeline,
    extra: Option<wgpu::BindGroupEntry<'a>>,
    list: &[(u32, &'a wgpu::Buffer)],
) -> wgpu::BindGroup {
    let mut e = entries(list);
    e.extend(extra);
    d.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &p.get_bind_group_layout(0),
        entries: &e,
    })
}

/// W1ᵀ [inputs, hidden] as the rgba32float texture `sparse_z1_tex` reads.
fn wt_texture(ctx: &GpuContext, wt: &[f32], hidden: usize, inputs: usize) -> wgpu::TextureView {
    let tex = ctx.device.create_texture_with_data(
        &ctx.queue,
        &wgpu::TextureDescriptor {
            label: Some("sparse wtt"),
            size: wgpu::Extent3d {
                width: (hidden / 4) as u32,
                height: inputs as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::TEXTURE_BINDING,
            view_formats: &[],
        },
        wgpu::util::TextureDataOrder::LayerMajor,
        bytemuck::cast_slice(wt),
    );
    tex.create_view(&Default::default())
}

/// `block_z1`'s bind group: `u` packed in words with its block lists, W1 as vec4s, and the
/// probe's q, c and z.
fn block_bind(
    d: &wgpu::Device,
    p: &wgpu::ComputePipeline,
    (u, w1): (&SparseImages, &[f32]),
    (q, c, z): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
) -> wgpu::BindGroup {
    let st = wgpu::BufferUsages::STORAGE;
    let (xs, bstarts, kl) = pack_blocks(u);
    let xs = upload(
        d,
        "block xs",
        bytemuck::cast_slice(&[&xs[..], &[0]].concat()),
        st,
    );
    let bstarts = upload(d, "block starts", bytemuck::cast_slice(&bstarts), st);
    let kl = upload(
        d,
        "block kl",
        bytemuck::cast_slice(&[&kl[..], &[0]].concat()),
        st,
    );
    let w4 = upload(d, "block w1", bytemuck::cast_slice(w1), st);
    let list = [
        (bind::Q, q),
        (bind::STARTS, &bstarts),
        (bind::C, c),
        (bind::Z, z),
        (bind::KL, &kl),
        (bind::XS, &xs),
        (bind::W4, &w4),
    ];
    bind_group(d, p, None, &list)
}

impl SparseZ1Probe {
    /// Uploads `u`'s nonzeros and W1ᵀ, c from (w1, b1) (W1 [hidden, u.cols]).
    pub fn new(ctx: &GpuContext, u: &SparseImages, w1: &[f32], b1: &[f32]) -> Result<Self> {
        let (hidden, inputs) = (b1.len(), u.cols);
        ensure!(
            hidden % 16 == 0 && inputs % 4 == 0 && w1.len() == hidden * inputs,
            "sparse Z1: hidden width {hidden} must be a multiple of 16, inputs {inputs} of 4"
        );
        ensure!(
            u.rows.div_ceil(ROWS_PER_GROUP) <= 65_535 && inputs <= 1 << 24,
            "sparse Z1: {} rows of {inputs} is beyond one dispatch",
            u.rows
        );
        let (starts, nz) = pack_entries(u);
        let (wt, c) = sparse::first_layer_consts(w1, b1, inputs);
        let d = &ctx.device;
        let st = wgpu::BufferUsages::STORAGE;
        let params = SparseZ1::new(u.rows, hidden, inputs.div_ceil(4));
        let q = upload(
            d,
            "sparse q",
            bytemuck::bytes_of(&params),
            wgpu::BufferUsages::UNIFORM,
        );
        let starts = upload(d, "sparse starts", bytemuck::cast_slice(&starts), st);
        // An empty set still binds a non-empty buffer.
        let nz = [&nz[..], &[0; 4]].concat();
        let nz = upload(d, "sparse nz", bytemuck::cast_slice(&nz), st);
        let wt_buf = upload(d, "sparse wt", bytemuck::cast_slice(&wt), st);
        let c = upload(d, "sparse c", bytemuck::cast_slice(&c), st);
        let z_len = u.rows.max(1) * hidden;
        let z = empty(d, "sparse z", z_len, st | wgpu::BufferUsages::COPY_SRC);
        let view = wt_texture(ctx, &wt, hidden, inputs);
        let (storage, texp, blockp) = (
            pipeline(ctx, "sparse_z1")?,
            pipeline(ctx, "sparse_z1_tex")?,
            crate::gpu::kernels::block_z1_pipeline(ctx)?,
        );
        let bind_block = block_bind(d, &blockp, (u, w1), (&q, &c, &z));
        // The per-nonzero kernels: q, starts, nz at 0..=2, c at 4, z at 5, then W1ᵀ.
        let common = [(0, &q), (1, &starts), (2, &nz), (4, &c), (5, &z)];
        let bind_storage = bind_group(d, &storage, None, &[&common[..], &[(3, &wt_buf)]].concat());
        let tex_entry = wgpu::BindGroupEntry {
            binding: 6,
            resource: wgpu::BindingResource::TextureView(&view),
        };
        let bind_tex = bind_group(d, &texp, Some(tex_entry), &common);
        ctx.check()?;
        Ok(SparseZ1Probe {
            storage,
            tex: texp,
            block: blockp,
            bind_storage,
            bind_tex,
            bind_block,
            z,
            groups: [
                hidden.div_ceil(128) as u32,
                u.rows.div_ceil(ROWS_PER_GROUP).max(1) as u32,
                1,
            ],
            rows: u.rows,
            hidden,
        })
    }

    /// Records `reps` runs of Z1 with `kernel`.
    pub fn encode(&self, enc: &mut wgpu::CommandEncoder, kernel: SparseKernel, reps: usize) {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: None,
        });
        let (p, b, groups) = match kernel {
            SparseKernel::Buffer => (&self.storage, &self.bind_storage, self.groups),
            SparseKernel::Texture => (&self.tex, &self.bind_tex, self.groups),
            SparseKernel::Block => (
                &self.block,
                &self.bind_block,
                [
                    self.hidden.div_ceil(128) as u32,
                    self.rows.div_ceil(BLOCK_ROWS).max(1) as u32,
                    1,
                ],
            ),
        };
        for _ in 0..reps {
            pass.set_pipeline(p);
            pass.set_bind_group(0, b, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
    }

    /// Runs Z1 `reps` times in one submission and waits.
    pub fn run(&self, ctx: &mut GpuContext, kernel: SparseKernel, reps: usize) -> Result<()> {
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        self.encode(&mut enc, kernel, reps);
        ctx.submit(enc.finish());
        ctx.wait()
    }

    /// Z1 as last computed, [rows, hidden] row-major.
    pub fn read_z(&self, ctx: &mut GpuContext) -> Result<Vec<f32>> {
        let bytes = ctx.read_buffer(&self.z, 0, (self.rows * self.hidden * 4) as u64)?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
    }
}

/// Per (group g of `group` words, part p) at `starts[g * parts + p]`: the 16-image blocks of
/// part p (block ids `p * blocks / parts ..` up to the next part's) where some word of the
/// group is nonzero in some image.
pub fn pack_word_blocks(
    xs: &[u32],
    (kw, group): (usize, usize),
    rows: usize,
    parts: usize,
) -> (Vec<u32>, Vec<u32>) {
    let blocks = rows.div_ceil(BLOCK_ROWS);
    let (mut starts, mut list) = (vec![0u32], Vec::new());
    for g in 0..kw / group {
        let words = g * group..(g + 1) * group;
        for p in 0..parts {
            for b in p * blocks / parts..(p + 1) * blocks / parts {
                let mut r = b * BLOCK_ROWS..rows.min((b + 1) * BLOCK_ROWS);
                if r.any(|n| {
                    xs[n * kw + words.start..n * kw + words.end]
                        .iter()
                        .any(|&w| w != 0)
                }) {
                    list.push(b as u32);
                }
            }
            starts.push(list.len() as u32);
        }
    }
    (starts, list)
}

/// dW1 = a·(dZ1ᵀ·U) − db1 ⊗ 1 by `block_dw1` (fixed-order split-k over `parts`) and
/// `block_dw1_final`; CPU twin `cpu::sparse::grad_rows` + `cpu::sparse::finish_grad`.
pub struct BlockDw1Probe {
    pipes: [wgpu::ComputePipeline; 2],
    binds: [wgpu::BindGroup; 2],
    groups: [[u32; 3]; 2],
    pub dw: wgpu::Buffer,
    len: usize,
}

impl BlockDw1Probe {
    /// For images `u` and dZ1 [u.rows, hidden], db1 [hidden]; `wide` runs `block_dw1_16`
    /// (16 pixels per invocation; inputs a multiple of 16), else `block_dw1` (4 pixels).
    pub fn new(
        ctx: &GpuContext,
        u: &SparseImages,
        (dz, db1): (&[f32], &[f32]),
        parts: usize,
        wide: bool,
    ) -> Result<Self> {
        let (hidden, inputs) = (db1.len(), u.cols);
        let group = if wide { 4 } else { 1 };
        ensure!(
            hidden % 16 == 0
                && inputs % (4 * group) == 0
                && dz.len() == u.rows * hidden
                && parts > 0,
            "block dW1: hidden width {hidden} must be a multiple of 16, inputs {inputs} of {}",
            4 * group
        );
        let kw = inputs / 4;
        let (xs, _, _) = pack_blocks(u);
        let (starts, wl) = pack_word_blocks(&xs, (kw, group), u.rows, parts);
        let d = &ctx.device;
        let st = wgpu::BufferUsages::STORAGE;
        let params = SparseZ1 {
            parts: parts as u32,
            ..SparseZ1::new(u.rows, hidden, kw)
        };
        let q = upload(
            d,
            "dw1 q",
            bytemuck::bytes_of(&params),
            wgpu::BufferUsages::UNIFORM,
        );
        let up = |label, bytes: &[u8]| upload(d, label, bytes, st);
        let starts = up("dw1 starts", bytemuck::cast_slice(&starts));
        let wl = up("dw1 wl", bytemuck::cast_slice(&[&wl[..], &[0]].concat()));
        let xs = up("dw1 xs", bytemuck::cast_slice(&[&xs[..], &[0]].concat()));
        let dzb = up("dw1 dz", bytemuck::cast_slice(&[dz, &[0.0; 4]].concat()));
        let db = upload(d, "dw1 db1", bytemuck::cast_slice(db1), st);
        let part = empty(d, "dw1 parts", parts * inputs * hidden, st);
        let dw = empty(d, "dw1", hidden * inputs, st | wgpu::BufferUsages::COPY_SRC);
        let entry = if wide { "block_dw1_16" } else { "block_dw1" };
        let pipes = [pipeline(ctx, entry)?, pipeline(ctx, "block_dw1_final")?];
        let sums = [
            (0, &q),
            (1, &starts),
            (7, &xs),
            (8, &dzb),
            (9, &wl),
            (10, &part),
        ];
        let last = [(0, &q), (4, &db), (5, &dw), (10, &part)];
        let binds = [
            bind_group(d, &pipes[0], None, &sums),
            bind_group(d, &pipes[1], None, &last),
        ];
        ctx.check()?;
        Ok(BlockDw1Probe {
            pipes,
            binds,
            groups: [
                [
                    hidden.div_ceil(128) as u32,
                    (kw / group) as u32,
                    parts as u32,
                ],
                [kw.div_ceil(64) as u32, hidden as u32, 1],
            ],
            dw,
            len: hidden * inputs,
        })
    }

    /// Runs dW1 `reps` times in one submission and waits.
    pub fn run(&self, ctx: &mut GpuContext, reps: usize) -> Result<()> {
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
            for _ in 0..reps {
                for i in 0..2 {
                    pass.set_pipeline(&self.pipes[i]);
                    pass.set_bind_group(0, &self.binds[i], &[]);
                    let g = self.groups[i];
                    pass.dispatch_workgroups(g[0], g[1], g[2]);
                }
            }
        }
        ctx.submit(enc.finish());
        ctx.wait()
    }

    /// dW1 as last computed, [hidden, inputs] row-major.
    pub fn read_dw(&self, ctx: &mut GpuContext) -> Result<Vec<f32>> {
        let bytes = ctx.read_buffer(&self.dw, 0, (self.len * 4) as u64)?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
    }
}
