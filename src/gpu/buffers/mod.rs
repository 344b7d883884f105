//! The GPU buffers of a run: those every pass shares ([`Shared`]: weights, gradients,
//! optimizer state, metrics, split-k scratch, the mini-batch order) and those of one pass
//! over a set or a batch ([`Pass`]: images, labels, and a Vec of per-layer activations).

pub mod blocks;

use wgpu::util::DeviceExt;

use crate::data::Dataset;
use crate::model::Layout;
use crate::pass_stats::PassStats;
use blocks::BlockSet;

/// Rows per first-level chunk of the deterministic reductions.
pub const RED_ROWS: usize = 128;
/// Metrics words: train [sum, mean, correct, -], eval [sum, mean, correct, -].
pub const METRIC_BYTES: u64 = 32;

pub const RW: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// The f32s of bytes read back from a buffer.
pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytemuck::pod_collect_to_vec(bytes)
}

/// A pass's stats from its metrics slot: [sum, mean, correct, samples].
pub fn slot_stats(m: &[f32]) -> PassStats {
    let samples = m[3].to_bits();
    PassStats {
        loss: if samples == 0 {
            0.0
        } else {
            m[0] / samples as f32
        },
        correct: m[2].to_bits(),
        samples,
    }
}

pub fn storage(device: &wgpu::Device, label: &str, bytes: usize) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (bytes.max(4).div_ceil(4) * 4) as u64,
        usage: RW,
        mapped_at_creation: false,
    })
}

pub fn storage_init(device: &wgpu::Device, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    let mut v = bytes.to_vec();
    v.resize(bytes.len().max(4).div_ceil(4) * 4, 0);
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: &v,
        usage: RW,
    })
}

/// Bytes of one packed image row (u8 pixels, four per u32).
pub fn row_bytes(l: Layout) -> usize {
    l.inputs.div_ceil(4) * 4
}

/// Texels (16 pixels each) per image row in the texture strategy.
pub fn tex_cols(l: Layout) -> usize {
    l.inputs.div_ceil(16)
}

/// Rows `row0..row0 + rows` of a set's images, in one binding.
pub struct XChunk {
    pub buf: wgpu::Buffer,
    pub row0: usize,
    pub rows: usize,
}

/// A whole image set as an rgba32uint 2D array texture (texture strategy): texel (c, y) of
/// layer l = pixels 16c..16c+15 of row l * layer_rows + y (see shaders/matmul_sg.wgsl).
pub struct XTex {
    // Kept with its view so the texture's lifetime is explicit.
    _texture: wgpu::Texture,
    pub view: wgpu::TextureView,
    pub layer_rows: usize,
}

/// W1 as a texture: texel (c, j) = W1[j][4c..4c+3], zero past `inputs`.
pub struct W1Tex {
    _texture: wgpu::Texture,
    pub view: wgpu::TextureView,
}

/// The activations of one layer in one pass.
pub struct LayerBufs {
    /// Pre-activation Z [n, width] (the logits for the output layer).
    pub z: wgpu::Buffer,
    /// H = relu(Z) (hidden layers).
    pub h: Option<wgpu::Buffer>,
    /// dLoss/dH (hidden layers of a train pass).
    pub dh: Option<wgpu::Buffer>,
    /// dLoss/dZ (every layer of a train pass; the output layer's in every pass, which the
    /// fused softmax writes).
    pub dz: Option<wgpu::Buffer>,
}

/// The buffers of one pass: a set (train, eval) or a mini-batch gathered from the train set.
pub struct Pass {
    pub n: usize,
    /// The images, in bindings of at most the adapter's size.
    pub x: Vec<XChunk>,
    /// The same images as a texture, when the texture strategy may run and the set fits.
    pub tex: Option<XTex>,
    /// The same images packed for the sparse strategy's `block_z1` (full passes only).
    pub blocks: Option<BlockSet>,
    pub labels: wgpu::Buffer,
    pub layers: Vec<LayerBufs>,
    pub loss: wgpu::Buffer,
    pub correct: wgpu::Buffer,
    pub red: wgpu::Buffer,
    pub red_count: wgpu::Buffer,
    /// A train pass (backward, metrics into the train slot, E_t for the optimizer).
    pub train: bool,
}

/// Buffers shared by every pass.
pub struct Shared {
    /// W1 as an rgba32float texture, refreshed each step (texture strategy).
    pub w1t: Option<W1Tex>,
    pub params: wgpu::Buffer,
    /// The parameters of the best epoch so far (a device-side copy).
    pub best: wgpu::Buffer,
    pub grads: wgpu::Buffer,
    pub step: wgpu::Buffer,
    pub prev_grad: wgpu::Buffer,
    pub prev_change: wgpu::Buffer,
    /// [E_t, E_{t-1}, Adam's step size, Adam's sqrt(bias correction 2)]
    pub lossbuf: wgpu::Buffer,
    /// GRprop's reduction trees: (key, index) pairs and partial sums of every level.
    pub gr_picks: wgpu::Buffer,
    pub gr_sums: wgpu::Buffer,
    pub metrics: wgpu::Buffer,
    pub staging: wgpu::Buffer,
    /// Split-k partial products, summed in a fixed order.
    pub scratch: wgpu::Buffer,
    /// The train rows of the queued mini-batch steps, batch after batch (batch.wgsl).
    pub order: wgpu::Buffer,
    /// [first entry of `order` of the current batch, steps done in this submission, -, -]
    pub cursor: wgpu::Buffer,
    /// Adam's scalars of each queued step, two floats per step.
    pub table: wgpu::Buffer,
    /// Entries of `order` and steps of `table` one submission can hold.
    pub capacity: usize,
    /// Rprop telemetry counts and history (ops::sign_counts).
    pub tele: TeleBuffers,
}

/// Rprop telemetry on the device: running counts (plus the row counter) and the history.
pub struct TeleBuffers {
    pub counts: wgpu::Buffer,
    pub history: wgpu::Buffer,
}

/// The sizes of the [`Shared`] buffers that the kernels' own rules set.
pub struct SharedSizes {
    /// Bytes of split-k scratch ([`scratch_floats`] floats).
    pub scratch: u64,
    /// Entries of the mini-batch order and steps of the Adam table one submission holds.
    pub capacity: usize,
    /// Items of GRprop's reduction trees (`ops::grprop::scratch_items`).
    pub gr_items: usize,
    /// Words of the telemetry counts and history (`ops::sign_counts::words`).
    pub tele_words: (usize, usize),
}

/// Most k splits of one chunk of a long product (split-k weight gradients).
pub const MAX_SPLITS: usize = 32;

/// k per split for a product of length `k` (at most MAX_SPLITS splits, at least 1024 each).
pub fn k_split(k: usize) -> usize {
    k.div_ceil(MAX_SPLITS).max(1024).min(k.max(1))
}

/// Number of split-k slots of a product of length `k`.
pub fn slots(k: usize) -> usize {
    k.div_ceil(k_split(k))
}

/// Floats of split-k scratch any train pass over at most `n` rows may need.
pub fn scratch_floats(l: Layout, n: usize, chunk_rows: usize) -> usize {
    let sizes = l.layer_sizes();
    let later = sizes[1..]
        .iter()
        .map(|&(i, o)| slots(n) * i * o)
        .max()
        .unwrap_or(0);
    let chunks: usize = (0..n.div_ceil(chunk_rows))
        .map(|c| slots(chunk_rows.min(n - c * chunk_rows)))
        .sum();
    later.max(chunks * sizes[0].0 * sizes[0].1)
}

pub fn create_shared(
    device: &wgpu::Device,
    l: Layout,
    sizes: SharedSizes,
    want_tex: bool,
) -> Shared {
    let total = l.total();
    let (capacity, gr) = (sizes.capacity, sizes.gr_items);
    let lim = device.limits();
    let width = 4 * tex_cols(l);
    let fits = width.max(l.hidden) <= lim.max_texture_dimension_2d as usize;
    let w1t = (want_tex && fits).then(|| {
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("w1 (texture)"),
            size: wgpu::Extent3d {
                width: width as u32,
                height: l.hidden as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::STORAGE_BINDING,
            view_formats: &[],
        });
        let view = texture.create_view(&Default::default());
        W1Tex {
            _texture: texture,
            view,
        }
    });
    Shared {
        w1t,
        params: storage(device, "params", total * 4),
        best: storage(device, "best params", total * 4),
        grads: storage(device, "grads", total * 4),
        step: storage(device, "step", total * 4),
        prev_grad: storage(device, "prev_grad", total * 4),
        prev_change: storage(device, "prev_change", total * 4),
        lossbuf: storage(device, "loss", 16),
        gr_picks: storage(device, "grprop picks", 8 * gr),
        gr_sums: storage(device, "grprop sums", 4 * gr),
        metrics: storage(device, "metrics", METRIC_BYTES as usize),
        staging: device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("metrics read-back"),
            size: METRIC_BYTES,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }),
        scratch: storage(device, "split-k scratch", sizes.scratch as usize),
        order: storage(device, "batch order", capacity * 4),
        cursor: storage(device, "batch cursor", 16),
        table: storage(device, "adam scalars", (capacity + 1) * 8),
        capacity,
        tele: TeleBuffers {
            counts: storage(device, "telemetry counts", sizes.tele_words.0 * 4),
            history: storage(device, "telemetry history", sizes.tele_words.1 * 4),
        },
    }
}

/// The size of an images' texture of `rows` rows: texels of 16 pixels per row (rows padded
/// with zero pixels to whole texels; W1's texture is zero there), the fewest layers, rows
/// spread evenly over them (no padding rows for 50,000); None past the texture limits.
fn texture_size(device: &wgpu::Device, l: Layout, rows: usize) -> Option<wgpu::Extent3d> {
    let lim = device.limits();
    let (width, max_dim) = (tex_cols(l), lim.max_texture_dimension_2d as usize);
    if rows == 0 || width == 0 || width > max_dim {
        return None;
    }
    let layers = rows.div_ceil(max_dim);
    if layers > lim.max_texture_array_layers as usize {
        return None;
    }
    Some(wgpu::Extent3d {
        width: width as u32,
        height: rows.div_ceil(layers) as u32,
        depth_or_array_layers: layers as u32,
    })
}

/// The descriptor of an images' texture (rgba32uint: 16 u8 pixels per texel).
fn texture_desc(
    label: &'static str,
    size: wgpu::Extent3d,
    usage: wgpu::TextureUsages,
) -> wgpu::TextureDescriptor<'static> {
    wgpu::TextureDescriptor {
        label: Some(label),
        size,
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba32Uint,
        usage,
        view_formats: &[],
    }
}

impl XTex {
    fn new(texture: wgpu::Texture) -> XTex {
        let view = texture.create_view(&wgpu::TextureViewDescriptor {
            dimension: Some(wgpu::TextureViewDimension::D2Array),
            ..Default::default()
        });
        XTex {
            layer_rows: texture.height() as usize,
            _texture: texture,
            view,
        }
    }
}

/// The images of `set` as an rgba32uint 2D array texture, or None when the adapter's
/// texture limits cannot hold them (the texture strategy then uses the storage kernels).
pub fn create_texture(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    l: Layout,
    set: &Dataset,
) -> Option<XTex> {
    let size = texture_size(device, l, set.len())?;
    let rb = size.width as usize * 16;
    let texels = (size.height * size.depth_or_array_layers) as usize;
    let mut bytes = vec![0u8; texels * rb];
    for r in 0..set.len() {
        bytes[r * rb..r * rb + l.inputs].copy_from_slice(set.image(r));
    }
    let desc = texture_desc(
        "images (texture)",
        size,
        wgpu::TextureUsages::TEXTURE_BINDING,
    );
    Some(XTex::new(device.create_texture_with_data(
        queue,
        &desc,
        wgpu::util::TextureDataOrder::LayerMajor,
        &bytes,
    )))
}

/// An empty images' texture for a mini-batch of `rows` rows, filled on the device from the
/// train set's texture by `gather_tex` (shaders/batch.wgsl) at each step; None when it
/// would exceed the texture limits (the batch then runs the register kernels).
pub fn create_batch_texture(device: &wgpu::Device, l: Layout, rows: usize) -> Option<XTex> {
    let usage = wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::STORAGE_BINDING;
    let size = texture_size(device, l, rows)?;
    Some(XTex::new(device.create_texture(&texture_desc(
        "batch images (texture)",
        size,
        usage,
    ))))
}

/// The images of `set` in chunks of `chunk_rows` rows (each row padded to whole u32 words),
/// or, with no set, empty chunks for a mini-batch of `n` rows to gather into.
pub fn image_chunks(
    device: &wgpu::Device,
    l: Layout,
    set: Option<&Dataset>,
    n: usize,
    chunk_rows: usize,
) -> Vec<XChunk> {
    let f = l.inputs;
    let rb = row_bytes(l);
    let mut x = Vec::new();
    let mut row0 = 0;
    while row0 < n {
        let rows = chunk_rows.min(n - row0);
        let buf = match set {
            Some(set) if rb == f => {
                storage_init(device, "images", &set.images[row0 * f..(row0 + rows) * f])
            }
            Some(set) => {
                // Pad each row to whole u32 words (the padding is never read as a pixel).
                let mut v = vec![0u8; rows * rb];
                for r in 0..rows {
                    v[r * rb..r * rb + f].copy_from_slice(set.image(row0 + r));
                }
                storage_init(device, "images", &v)
            }
            None => storage(device, "batch images", rows * rb),
        };
        x.push(XChunk { buf, row0, rows });
        row0 += rows;
    }
    x
}

/// The buffers of a pass over `n` rows: `x` and `labels` given (a set's upload or a
/// batch's gather targets), activations per layer allocated here.
pub fn create_pass(
    device: &wgpu::Device,
    l: Layout,
    n: usize,
    (x, tex, labels): (Vec<XChunk>, Option<XTex>, wgpu::Buffer),
    train: bool,
) -> Pass {
    let sizes = l.layer_sizes();
    let last = sizes.len() - 1;
    let f32s = |w: usize| n * w * 4;
    let layers = sizes
        .iter()
        .enumerate()
        .map(|(k, &(_, w))| {
            let hidden = k < last;
            LayerBufs {
                z: storage(device, "z", f32s(w)),
                h: hidden.then(|| storage(device, "h", f32s(w))),
                dh: (hidden && train).then(|| storage(device, "dh", f32s(w))),
                dz: (train || !hidden).then(|| storage(device, "dz", f32s(w))),
            }
        })
        .collect();
    let widest = sizes.iter().map(|s| s.1).max().unwrap_or(1);
    let red_chunks = n.div_ceil(RED_ROWS);
    Pass {
        n,
        x,
        tex,
        blocks: None,
        labels,
        layers,
        loss: storage(device, "loss", n * 4),
        correct: storage(device, "correct", n * 4),
        red: storage(device, "reduce partials", red_chunks * widest.max(1) * 4),
        red_count: storage(device, "reduce counts", red_chunks * 4),
        train,
    }
}
