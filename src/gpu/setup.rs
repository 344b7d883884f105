//! Opening a GPU backend: the checks on its inputs, a device sized for the sets, the shared
//! buffers, and the sets uploaded (with their packed blocks where the sparse strategy may
//! run) before the matmul strategy is chosen.

use anyhow::{ensure, Result};

use super::buffers::blocks::BlockSet;
use super::buffers::{self, Pass, Shared, SharedSizes};
use super::kernels::{Kernels, Strategy};
use super::{tune, GpuContext, GpuOptions, Needs};
use crate::data::Dataset;
use crate::model::{Layout, Params};
use crate::optim::OptimState;

/// A device with the run's buffers and uploaded sets, and the chosen kernels.
pub(super) struct Opened {
    pub ctx: GpuContext,
    pub kernels: Kernels,
    pub s: Shared,
    pub train: Pass,
    pub eval: Pass,
    /// Image rows per binding.
    pub chunk_rows: usize,
}

/// The inputs a GPU backend can run: the image width, non-empty sets, a state
/// of the parameters' size.
pub(super) fn check_inputs(
    (train, eval): (&Dataset, &Dataset),
    params: &Params,
    state: &OptimState,
) -> Result<()> {
    let l = params.layout;
    ensure!(
        train.features() == l.inputs && eval.features() == l.inputs,
        "images have {} pixels but the model expects {}",
        train.features(),
        l.inputs
    );
    ensure!(
        !train.is_empty() && !eval.is_empty(),
        "the GPU backend needs at least one train and one eval image"
    );
    ensure!(
        state.step.len() == params.data.len(),
        "optimizer state does not match the parameters"
    );
    Ok(())
}

/// Opens the device with limits for the sets, allocates the shared buffers, uploads both
/// sets and chooses the kernels.
pub(super) fn open(
    train: &Dataset,
    eval: &Dataset,
    l: Layout,
    opts: &GpuOptions,
) -> Result<Opened> {
    let (mut ctx, chunk_rows, scratch) = device_for((train, eval), l, opts)?;
    // Textures only when the texture strategy may run (forced, ruled, cached or to be
    // timed).
    let preset = tune::preset(&ctx.info, opts, train.len());
    let want_tex = super::ops::linear::aligned(l.inputs)
        && super::ops::linear::aligned(l.hidden)
        && super::kernels::subgroups_of_8(&ctx)
        && preset.is_none_or(|k| k == Strategy::Texture || k == Strategy::Sparse);
    let want_blocks = preset.is_none_or(|k| k == Strategy::Sparse);
    // Forced sparse runs even on dense pixels; by rule only on sparse ones.
    let forced = opts.matmul_kernel == Some(Strategy::Sparse);
    let s = ctx.scoped("allocating GPU buffers", || {
        let sizes = SharedSizes {
            scratch,
            capacity: train.len().max(1),
            gr_items: super::ops::grprop::scratch_items(l.total()),
            tele_words: super::ops::telemetry_counts::words(l),
        };
        buffers::create_shared(&ctx.device, l, sizes, want_tex)
    })?;
    let upload = |ctx: &GpuContext, set: &Dataset, is_train: bool| {
        let d = &ctx.device;
        let x = buffers::image_chunks(d, l, Some(set), set.len(), chunk_rows);
        let tex = want_tex
            .then(|| buffers::create_texture(d, &ctx.queue, l, set))
            .flatten();
        let labels = buffers::storage_init(d, "labels", &set.labels);
        let fits = x.len() == 1;
        let mut p = buffers::create_pass(d, l, set.len(), (x, tex, labels), is_train);
        p.blocks = want_blocks
            .then(|| BlockSet::for_set(d, l, set, fits, forced))
            .flatten();
        p
    };
    let train_pass = ctx.scoped("uploading the train set", || upload(&ctx, train, true))?;
    let eval_pass = ctx.scoped("uploading the eval set", || upload(&ctx, eval, false))?;
    ctx.counters.bytes_written += (train.images.len() + eval.images.len()) as u64;
    let kernels = tune::choose_kernels(&mut ctx, opts, l, &s, &train_pass)?;
    Ok(Opened {
        ctx,
        kernels,
        s,
        train: train_pass,
        eval: eval_pass,
        chunk_rows,
    })
}

/// A device whose limits take the largest binding the sets need; with the image rows per
/// binding (the adapter's limit, or the test cap) and the bytes of split-k scratch.
fn device_for(
    (train, eval): (&Dataset, &Dataset),
    l: Layout,
    opts: &GpuOptions,
) -> Result<(GpuContext, usize, u64)> {
    let rb = buffers::row_bytes(l) as u64;
    let probe = super::select_adapter(&super::instance(), opts.adapter.as_deref())?;
    let adapter_binding = probe.limits().max_storage_buffer_binding_size;
    drop(probe);
    let cap = opts
        .max_binding_bytes
        .unwrap_or(adapter_binding)
        .min(adapter_binding);
    let chunk_rows = (cap / rb).max(1) as usize;
    let n_max = train.len().max(eval.len());
    let widest = l.layer_sizes().iter().map(|s| s.1).max().unwrap_or(1);
    let act = (n_max * widest * 4) as u64;
    let scratch = buffers::scratch_floats(l, train.len(), chunk_rows) as u64 * 4;
    let x_bytes = (chunk_rows.min(n_max) as u64) * rb;
    let binding = act
        .max(scratch)
        .max(x_bytes)
        .max(l.total() as u64 * 4)
        .max(train.len() as u64 * 8 + 8);
    let ctx = GpuContext::new(
        opts.adapter.as_deref(),
        Needs {
            binding,
            buffer: binding,
        },
    )?;
    Ok((ctx, chunk_rows, scratch))
}
