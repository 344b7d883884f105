//! Checkpoints as safetensors with PyTorch's names (`fc1.weight` [128, 784], ...), so
//! `model.load_state_dict(safetensors.torch.load_file(path))` works, and atomic file writes.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::model::{Layout, Params, MAX_HIDDEN};
use crate::optim::RpropState;

/// Writes `bytes` to `path` atomically: into `path.tmp` first, flushed to disk, then renamed
/// over `path`, so a crash leaves either the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.with_context(|| format!("{}: cannot write", path.display()))
}

/// The temporary name [`write_atomic`] writes to before renaming.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Serializes parameters (and optional string metadata) as safetensors bytes.
pub fn to_bytes(params: &Params, metadata: &[(&str, String)]) -> Result<Vec<u8>> {
    let tensors = params.layout.tensors();
    let bytes: Vec<&[u8]> = tensors
        .iter()
        .map(|t| bytemuck::cast_slice(&params.data[t.range()]))
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            TensorView::new(Dtype::F32, t.dims().to_vec(), b).map(|v| (t.name.to_string(), v))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let meta: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Ok(safetensors::serialize(
        views,
        if meta.is_empty() { None } else { Some(meta) },
    )?)
}

/// Saves parameters to a safetensors file, atomically.
pub fn save(path: &Path, params: &Params, metadata: &[(&str, String)]) -> Result<()> {
    write_atomic(path, &to_bytes(params, metadata)?)
}

/// Reads parameters from safetensors bytes, checking names, dtype and that the shapes of
/// fc1, fc2, ... chain into one MLP. `inputs`/`classes`, when given, must match the data it will run on.
pub fn from_bytes(bytes: &[u8], inputs: usize, classes: usize) -> Result<Params> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| anyhow!("not a safetensors file: {e}"))?;
    let get = |name: &str, rank: usize| -> Result<(Vec<usize>, Vec<f32>)> {
        let t = st
            .tensor(name)
            .map_err(|_| anyhow!("missing tensor `{name}`"))?;
        if t.dtype() != Dtype::F32 {
            bail!("tensor `{name}` has dtype {:?}, expected F32", t.dtype());
        }
        if t.shape().len() != rank {
            bail!(
                "tensor `{name}` has shape {:?}, expected rank {rank}",
                t.shape()
            );
        }
        let data = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok((t.shape().to_vec(), data))
    };
    // fc1, fc2, ... up to the first missing layer; each layer's input is the last one's
    // output.
    let mut layers = Vec::new();
    for k in 1..=MAX_HIDDEN + 1 {
        let name = format!("fc{k}.weight");
        if st.tensor(&name).is_err() {
            break;
        }
        let (sw, w) = get(&name, 2)?;
        let (sb, b) = get(&format!("fc{k}.bias"), 1)?;
        layers.push((sw, w, sb, b));
    }
    if layers.len() < 2 {
        bail!("missing tensor `fc{}.weight`", layers.len() + 1);
    }
    let shapes = || {
        layers
            .iter()
            .enumerate()
            .map(|(k, (sw, _, sb, _))| {
                format!("fc{}.weight {sw:?}, fc{}.bias {sb:?}", k + 1, k + 1)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chained = layers
        .iter()
        .all(|(sw, _, sb, _)| sw[0] > 0 && sb[0] == sw[0])
        && layers.windows(2).all(|w| w[1].0[1] == w[0].0[0]);
    if !chained {
        bail!("tensor shapes do not form an MLP: {}", shapes());
    }
    let hidden: Vec<usize> = layers[..layers.len() - 1].iter().map(|l| l.0[0]).collect();
    let (file_inputs, file_classes) = (layers[0].0[1], layers[layers.len() - 1].0[0]);
    let layout = Layout::with_hidden(file_inputs, &hidden, file_classes)
        .ok_or_else(|| anyhow!("tensor shapes do not form an MLP: {}", shapes()))?;
    if (file_inputs, file_classes) != (inputs, classes) {
        bail!(
            "model is {}, but the data needs {inputs} inputs and {classes} classes",
            layout.describe()
        );
    }
    let mut p = Params::zeros(layout);
    let tensors = layout.tensors();
    for (k, (_, w, _, b)) in layers.into_iter().enumerate() {
        p.data[tensors[2 * k].range()].copy_from_slice(&w);
        p.data[tensors[2 * k + 1].range()].copy_from_slice(&b);
    }
    Ok(p)
}

/// Loads parameters from a safetensors file; errors name the file.
pub fn load(path: &Path, inputs: usize, classes: usize) -> Result<Params> {
    let bytes =
        fs::read(path).with_context(|| format!("{}: cannot read weights", path.display()))?;
    from_bytes(&bytes, inputs, classes).with_context(|| format!("{}", path.display()))
}

/// Saves an optimizer state (step sizes, previous gradients, previous changes as flat f32
/// tensors in the parameter layout; the previous loss and the epoch as exact metadata).
pub fn save_state(path: &Path, state: &RpropState, epoch: usize) -> Result<()> {
    let tensors: [(&str, &[f32]); 3] = [
        ("step", &state.step),
        ("prev_grad", &state.prev_grad),
        ("prev_change", &state.prev_change),
    ];
    let views = tensors
        .iter()
        .map(|(name, v)| {
            TensorView::new(Dtype::F32, vec![v.len()], bytemuck::cast_slice(v))
                .map(|t| (name.to_string(), t))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let meta = HashMap::from([
        // The bits, so the loss compared by iRprop+ after a resume is exactly the same.
        (
            "prev_loss_bits".to_string(),
            format!("{:08x}", state.prev_loss.to_bits()),
        ),
        ("epoch".to_string(), epoch.to_string()),
        ("t".to_string(), state.t.to_string()),
    ]);
    write_atomic(path, &safetensors::serialize(views, Some(meta))?)
}

/// Loads an optimizer state saved by [`save_state`] for a model of `len` flat parameters;
/// returns it with the number of epochs it has seen. Errors name the file.
pub fn load_state(path: &Path, len: usize) -> Result<(RpropState, usize)> {
    let bytes = fs::read(path)
        .with_context(|| format!("{}: cannot read optimizer state", path.display()))?;
    state_from_bytes(&bytes, len).with_context(|| format!("{}", path.display()))
}

fn state_from_bytes(bytes: &[u8], len: usize) -> Result<(RpropState, usize)> {
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| anyhow!("not a safetensors file: {e}"))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| anyhow!("not a safetensors file: {e}"))?;
    let info = meta.metadata().clone().unwrap_or_default();
    let field = |k: &str| {
        info.get(k)
            .ok_or_else(|| anyhow!("missing metadata `{k}` (not an optimizer state file)"))
    };
    let prev_loss = u32::from_str_radix(field("prev_loss_bits")?, 16)
        .map(f32::from_bits)
        .map_err(|_| anyhow!("bad metadata `prev_loss_bits`"))?;
    let epoch: usize = field("epoch")?
        .parse()
        .map_err(|_| anyhow!("bad metadata `epoch`"))?;
    let get = |name: &str| -> Result<Vec<f32>> {
        let t = st
            .tensor(name)
            .map_err(|_| anyhow!("missing tensor `{name}`"))?;
        if t.dtype() != Dtype::F32 || t.shape() != [len] {
            bail!(
                "tensor `{name}` is {:?} {:?}, expected F32 [{len}]",
                t.dtype(),
                t.shape()
            );
        }
        Ok(t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    Ok((
        RpropState {
            step: get("step")?,
            prev_grad: get("prev_grad")?,
            prev_change: get("prev_change")?,
            prev_loss,
            t: match info.get("t") {
                Some(t) => t.parse().map_err(|_| anyhow!("bad metadata `t`"))?,
                None => epoch as u64,
            },
        },
        epoch,
    ))
}
