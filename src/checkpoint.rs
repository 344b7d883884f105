//! Checkpoints as safetensors with PyTorch's names (`fc1.weight` [128, 784], ...), so
//! `model.load_state_dict(safetensors.torch.load_file(path))` works, and atomic file writes.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors};

use crate::fsio;
use crate::model::{Layout, Params, MAX_HIDDEN};
use crate::optim::OptimState;

/// Writes `bytes` to `path` atomically (see [`fsio::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    fsio::write_atomic(path, bytes)
}

/// The temporary name [`write_atomic`] writes to before renaming.
pub fn tmp_path(path: &Path) -> PathBuf {
    fsio::tmp_path(path)
}

/// Serializes F32 tensors (name, shape, data) and string metadata as safetensors bytes,
/// everything in the order given: equal inputs give byte-identical files (the crate's own
/// serializer writes metadata in hash-map order, which varies from run to run).
pub fn serialize(tensors: &[(&str, Vec<usize>, &[f32])], metadata: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = serialize_to(&mut out, tensors, metadata);
    out
}

/// [`serialize`] straight into `w`, a block at a time: a save never holds a second full
/// copy of the tensors in memory (for a large network that copy alone could exhaust it).
pub fn serialize_to(
    w: &mut dyn Write,
    tensors: &[(&str, Vec<usize>, &[f32])],
    metadata: &[(&str, String)],
) -> std::io::Result<()> {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let mut parts = Vec::new();
    if !metadata.is_empty() {
        let kv: Vec<String> = metadata
            .iter()
            .map(|(k, v)| format!("{}:{}", q(k), q(v)))
            .collect();
        parts.push(format!("\"__metadata__\":{{{}}}", kv.join(",")));
    }
    let mut offset = 0usize;
    for (name, shape, data) in tensors {
        let end = offset + 4 * data.len();
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        parts.push(format!(
            "{}:{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            q(name),
            dims.join(",")
        ));
        offset = end;
    }
    let mut header = format!("{{{}}}", parts.join(",")).into_bytes();
    // The data starts 8-byte aligned, as the format asks.
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    w.write_all(&(header.len() as u64).to_le_bytes())?;
    w.write_all(&header)?;
    let mut block = Vec::with_capacity(1 << 16);
    for (_, _, data) in tensors {
        for chunk in data.chunks(1 << 14) {
            block.clear();
            for x in chunk {
                block.extend(x.to_le_bytes());
            }
            w.write_all(&block)?;
        }
    }
    Ok(())
}

/// The tensors of `params` as [`serialize`] takes them.
fn views(params: &Params) -> Vec<(&'static str, Vec<usize>, &[f32])> {
    params
        .layout
        .tensors()
        .iter()
        .map(|t| (t.name, t.dims().to_vec(), &params.data[t.range()]))
        .collect()
}

/// Serializes parameters (and optional string metadata) as safetensors bytes.
pub fn to_bytes(params: &Params, metadata: &[(&str, String)]) -> Result<Vec<u8>> {
    Ok(serialize(&views(params), metadata))
}

/// Saves parameters to a safetensors file, atomically, written as it is serialized.
pub fn save(path: &Path, params: &Params, metadata: &[(&str, String)]) -> Result<()> {
    fsio::write_atomic_with(path, |w| serialize_to(w, &views(params), metadata))
}

/// Writes parameters to the temp sibling of `path` (see [`fsio::write_tmp`]), for a save
/// of several files that become visible together.
pub fn save_tmp(path: &Path, params: &Params, metadata: &[(&str, String)]) -> Result<PathBuf> {
    fsio::write_tmp(path, |w| serialize_to(w, &views(params), metadata))
}

/// A fingerprint of a set of weights (FNV-1a over their bits), stored in the optimizer
/// state so a resume can tell that state and weights were saved together.
pub fn fingerprint(data: &[f32]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in data {
        for b in x.to_bits().to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Why `bytes` are not a weights file, in words: JSON text (a metrics.json or config given
/// as weights, which the parser would call a too-large header) is named as such.
fn not_weights(bytes: &[u8], e: safetensors::SafeTensorError) -> anyhow::Error {
    let first = bytes.iter().take(64).find(|b| !b.is_ascii_whitespace());
    if matches!(first, Some(b'{' | b'[')) {
        return anyhow!(
            "not a weights file: it is JSON text (a metrics.json or a config?); weights are the .safetensors files of a run, e.g. runs/NAME/best.safetensors"
        );
    }
    anyhow!("not a safetensors file: {e}")
}

/// Reads parameters from safetensors bytes, checking names, dtype and that the shapes of
/// fc1, fc2, ... chain into one MLP. `inputs`/`classes`, when given, must match the data it will run on.
pub fn from_bytes(bytes: &[u8], inputs: usize, classes: usize) -> Result<Params> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| not_weights(bytes, e))?;
    check_header_keys(bytes)?;
    // Checked here, copied straight into the parameters below (no second copy of a
    // large network in memory).
    let get = |name: &str, rank: usize| -> Result<(Vec<usize>, &[u8])> {
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
        let data = t.data();
        // NaN or inf weights would train or score as garbage without any error.
        if let Some((i, x)) = floats(data).enumerate().find(|(_, x)| !x.is_finite()) {
            bail!("tensor `{name}` holds a non-finite value ({x}) at index {i}");
        }
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
    refuse_others(&st, layers.len())?;
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
        for (dst, x) in p.data[tensors[2 * k].range()].iter_mut().zip(floats(w)) {
            *dst = x;
        }
        for (dst, x) in p.data[tensors[2 * k + 1].range()].iter_mut().zip(floats(b)) {
            *dst = x;
        }
    }
    Ok(p)
}

/// Refuses a weights file's tensors beyond its `layers` layers: an orphan (`fc3.bias`
/// without `fc3.weight`) or any other tensor, which loading would drop without a word.
fn refuse_others(st: &SafeTensors, layers: usize) -> Result<()> {
    let known = |name: &str| {
        (1..=layers).any(|k| name == format!("fc{k}.weight") || name == format!("fc{k}.bias"))
    };
    let mut names: Vec<&str> = st.names();
    names.sort_unstable();
    if let Some(name) = names.into_iter().find(|n| !known(n)) {
        match name.strip_suffix(".bias") {
            Some(layer) if layer.starts_with("fc") => bail!(
                "tensor `{}` has no `{}.weight` (an orphan; a weights file holds fc1 to fc{layers})",
                crate::limits::cut(name),
                crate::limits::cut(layer)
            ),
            _ => bail!(
                "unexpected tensor `{}` (a weights file holds only fc1 to fc{layers}'s weight and bias)",
                crate::limits::cut(name)
            ),
        }
    }
    Ok(())
}

/// Refuses a header (already parsed by the safetensors crate, so well-formed) naming a
/// tensor or metadata key twice: the crate keeps one of them silently.
fn check_header_keys(bytes: &[u8]) -> Result<()> {
    let n = bytes.get(..8).map_or(0, |b| {
        u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize
    });
    let header = bytes.get(8..8usize.saturating_add(n)).unwrap_or_default();
    serde_json::from_slice::<crate::limits::NoDuplicateKeys>(header)
        .map(|_| ())
        .map_err(|e| anyhow!("header: {e}"))
}

/// Little-endian f32s of a tensor's bytes.
fn floats(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// Loads parameters from a safetensors file; errors name the file.
pub fn load(path: &Path, inputs: usize, classes: usize) -> Result<Params> {
    Ok(load_with_meta(path, inputs, classes)?.0)
}

/// Refuses, before reading it, a weights file whose loading would not fit in memory: the
/// file's bytes and the parameters built from them (about its size each), next to the
/// weights and data of the run (`predict`, `test`, `samples` then abort, not error).
fn check_load_memory(path: &Path) -> Result<()> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(()); // read_capped names the problem
    };
    let need = 2 * meta.len() as u128 + (256 << 20);
    let limit = crate::limits::memory_limit() as u128;
    if meta.is_file() && need > limit {
        bail!(
            "{}: loading a weights file of {} bytes needs about {} MiB of memory, more than the {} MiB this process may use",
            path.display(),
            meta.len(),
            need >> 20,
            limit >> 20
        );
    }
    Ok(())
}

/// [`load`], also returning the file's metadata (epoch, optimizer, ...).
pub fn load_with_meta(
    path: &Path,
    inputs: usize,
    classes: usize,
) -> Result<(Params, HashMap<String, String>)> {
    check_load_memory(path)?;
    let bytes = fsio::read_capped(path, "weights", fsio::MAX_WEIGHTS)?;
    let params =
        from_bytes(&bytes, inputs, classes).with_context(|| format!("{}", path.display()))?;
    let meta = SafeTensors::read_metadata(&bytes)
        .ok()
        .and_then(|(_, m)| m.metadata().clone())
        .unwrap_or_default();
    Ok((params, meta))
}

/// Saves an optimizer state (its slots as flat f32 tensors in the parameter layout, under
/// generic names: see [`save_state_tmp`]; the previous loss and the epoch as exact
/// metadata).
pub fn save_state(path: &Path, state: &OptimState, epoch: usize) -> Result<()> {
    let tmp = save_state_tmp(path, state, epoch, None, &[])?;
    fsio::commit_tmps(&[(tmp, path.to_path_buf())])
}

/// The tensor names of the three state slots in a file saved by `optimizer` (its metadata):
/// the registry's [`crate::optim::Spec::slots`] ("" for a slot it leaves alone, which is
/// not saved), or the generic names ([`OptimState::SLOTS`]) when the optimizer is unknown.
pub fn slot_names(optimizer: Option<&str>) -> [&'static str; 3] {
    optimizer
        .and_then(|o| o.parse::<crate::optim::Variant>().ok())
        .map_or(OptimState::SLOTS, |v| v.spec().slots)
}

/// [`save_state`] into the temp sibling of `path`, with the weights the state goes with
/// (flat, tensor `weights`: the state file is then a save's one commit point) and extra
/// metadata (the optimizer, the weights' fingerprint, the config);
/// [`fsio::commit_tmps`] puts it in place. The slots are named for what the optimizer
/// named in `extra` keeps there ([`slot_names`]: Adam's `exp_avg`, ...).
pub fn save_state_tmp(
    path: &Path,
    state: &OptimState,
    epoch: usize,
    weights: Option<&[f32]>,
    extra: &[(&str, String)],
) -> Result<PathBuf> {
    let optimizer = extra.iter().find(|(k, _)| *k == "optimizer");
    let names = slot_names(optimizer.map(|(_, o)| o.as_str()));
    let slots = [&state.step, &state.prev_grad, &state.prev_change];
    let mut tensors: Vec<(&str, Vec<usize>, &[f32])> = names
        .iter()
        .zip(slots)
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, v)| (*name, vec![v.len()], &v[..]))
        .collect();
    if let Some(w) = weights {
        tensors.push(("weights", vec![w.len()], w));
    }
    let mut meta = vec![
        // The bits, so the loss compared by iRprop+ after a resume is exactly the same.
        (
            "prev_loss_bits",
            format!("{:08x}", state.prev_loss.to_bits()),
        ),
        ("epoch", epoch.to_string()),
        ("t", state.t.to_string()),
    ];
    // L-BFGS: its direction, history and scalars beside the slots.
    let lbfgs = state
        .lbfgs
        .as_ref()
        .map(|l| l.tensors())
        .unwrap_or_default();
    tensors.extend(lbfgs.iter().map(|(k, v)| (k.as_str(), vec![v.len()], *v)));
    meta.extend(state.lbfgs.as_ref().map(|l| l.meta()).unwrap_or_default());
    meta.extend(extra.iter().cloned());
    // What a resume checks the loaded state against (`run_folder`'s state checks).
    meta.push(("state", state.fingerprint(names, epoch)));
    fsio::write_tmp(path, |w| serialize_to(w, &tensors, &meta))
}

/// Loads an optimizer state saved by [`save_state`] for a model of `len` flat parameters;
/// returns it with the number of epochs it has seen. Errors name the file.
pub fn load_state(path: &Path, len: usize) -> Result<(OptimState, usize)> {
    let (state, epoch, _) = load_state_with_meta(path, len)?;
    Ok((state, epoch))
}

/// [`load_state`], also returning the file's metadata.
pub fn load_state_with_meta(
    path: &Path,
    len: usize,
) -> Result<(OptimState, usize, HashMap<String, String>)> {
    let (state, epoch, meta, _) = load_state_full(path, len)?;
    Ok((state, epoch, meta))
}

/// [`load_state_with_meta`], also returning the weights saved in the state file (absent
/// in files saved before the state held them).
pub fn load_state_full(path: &Path, len: usize) -> Result<StateFile> {
    // Four weight-sized slots, or L-BFGS's history: 2 x history_size copies of the weights,
    // which the memory estimate counts, so a state a run could save fits the memory limit.
    let cap = (4 * fsio::MAX_WEIGHTS).max(crate::limits::memory_limit());
    let bytes = fsio::read_capped(path, "optimizer state", cap)?;
    let (state, epoch) =
        state_from_bytes(&bytes, len).with_context(|| format!("{}", path.display()))?;
    let meta = SafeTensors::read_metadata(&bytes)
        .ok()
        .and_then(|(_, m)| m.metadata().clone())
        .unwrap_or_default();
    let weights = SafeTensors::deserialize(&bytes)
        .ok()
        .and_then(|st| st.tensor("weights").ok())
        .map(|t| {
            if t.dtype() != Dtype::F32 || t.shape() != [len] {
                bail!(
                    "{}: tensor `weights` is {:?} {:?}, expected F32 [{len}]",
                    path.display(),
                    t.dtype(),
                    t.shape()
                );
            }
            let w: Vec<f32> = floats(t.data()).collect();
            if let Some((i, x)) = w.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                bail!(
                    "{}: tensor `weights` holds a non-finite value ({x}) at index {i}",
                    path.display()
                );
            }
            Ok(w)
        })
        .transpose()?;
    Ok((state, epoch, meta, weights))
}

/// What an optimizer state file holds: the state, its epoch, metadata, and the weights.
pub type StateFile = (OptimState, usize, HashMap<String, String>, Option<Vec<f32>>);

fn state_from_bytes(bytes: &[u8], len: usize) -> Result<(OptimState, usize)> {
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| anyhow!("not a safetensors file: {e}"))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| anyhow!("not a safetensors file: {e}"))?;
    check_header_keys(bytes)?;
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
    let t = match info.get("t") {
        Some(t) => t.parse().map_err(|_| anyhow!("bad metadata `t`"))?,
        None => epoch as u64,
    };
    let reader = StateReader {
        st: &st,
        len,
        read: Default::default(),
    };
    let [step, prev_grad, prev_change] = reader.slots(info.get("optimizer").map(String::as_str))?;
    let lbfgs = match info.contains_key("lbfgs_pairs") {
        true => {
            let field = |k: &str| info.get(k).cloned();
            Some(crate::optim::lbfgs::State::load(field, |k| {
                let v = reader.get(k, None)?;
                let ok = v.is_empty() || v.len() == len || k == "lbfgs.ro";
                ok.then_some(v)
                    .ok_or_else(|| anyhow!("tensor `{k}` is not [{len}]"))
            })?)
        }
        false => None,
    };
    reader.refuse_unread()?;
    let state = OptimState {
        step,
        prev_grad,
        prev_change,
        prev_loss,
        t,
        lbfgs,
    };
    Ok((state, epoch))
}

/// Reads a state file's tensors, remembering which it read: any other is refused.
struct StateReader<'a> {
    st: &'a SafeTensors<'a>,
    len: usize,
    read: std::cell::RefCell<Vec<String>>,
}

impl StateReader<'_> {
    /// Tensor `name`, F32 of `len` values (any 1-D length for `None`: L-BFGS's history).
    fn get(&self, name: &str, len: Option<usize>) -> Result<Vec<f32>> {
        let t = self
            .st
            .tensor(name)
            .map_err(|_| anyhow!("missing tensor `{name}`"))?;
        let ok = match len {
            Some(len) => t.shape() == [len],
            None => t.shape().len() == 1,
        };
        if t.dtype() != Dtype::F32 || !ok {
            let len = len.map_or("n".into(), |n| n.to_string());
            bail!(
                "tensor `{name}` is {:?} {:?}, expected F32 [{len}]",
                t.dtype(),
                t.shape()
            );
        }
        self.read.borrow_mut().push(name.to_string());
        Ok(floats(t.data()).collect())
    }

    /// The three slots of a file saved by `optimizer`, by their names ([`slot_names`]) or,
    /// in files saved before the slots had them, by the generic ones; a slot the optimizer
    /// leaves alone is zero when the file does not hold it.
    fn slots(&self, optimizer: Option<&str>) -> Result<[Vec<f32>; 3]> {
        let names = slot_names(optimizer);
        let mut out: [Vec<f32>; 3] = Default::default();
        for (i, slot) in out.iter_mut().enumerate() {
            let generic = OptimState::SLOTS[i];
            let has = |n: &str| !n.is_empty() && self.st.tensor(n).is_ok();
            *slot = if has(names[i]) {
                self.get(names[i], Some(self.len))?
            } else if has(generic) {
                self.get(generic, Some(self.len))?
            } else if names[i].is_empty() {
                vec![0.0; self.len]
            } else {
                bail!("missing tensor `{}`", names[i]);
            };
        }
        Ok(out)
    }

    /// Refuses a tensor the state does not hold (the weights are read by the caller).
    fn refuse_unread(&self) -> Result<()> {
        let read = self.read.borrow();
        let mut names: Vec<&str> = self.st.names();
        names.sort_unstable();
        if let Some(n) = names
            .into_iter()
            .find(|n| *n != "weights" && !read.iter().any(|r| r == n))
        {
            bail!(
                "unexpected tensor `{}` (not part of this optimizer's state)",
                crate::limits::cut(n)
            );
        }
        Ok(())
    }
}
