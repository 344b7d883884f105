//! The checks a resume makes beyond the pair of weights and state: L-BFGS's history
//! checked field by field, the whole state against the fingerprint it was saved with, and
//! the records it continues (the checks `plot` makes, each metrics file a regular file
//! within the cap, and the best epoch they show being the one best.safetensors holds).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, bail, Result};

use crate::checkpoint;
use crate::config::Config;
use crate::fsio::{self, MAX_METRICS};
use crate::metrics::{self, EpochRecord};
use crate::optim::{lbfgs, OptimState};

/// L-BFGS's state: present exactly when the optimizer is L-BFGS, and each of its fields
/// one that `epoch` steps of the config's settings can leave (see `lbfgs::State::check`).
pub fn check_lbfgs(cfg: &Config, state: &OptimState, len: usize, epoch: usize) -> Result<()> {
    match (&state.lbfgs, cfg.optimizer.is_multi_eval()) {
        (Some(st), true) => {
            let settings = lbfgs::Settings::from_hyper(&cfg.hyper());
            st.check(&settings, len, epoch as u64)
        }
        (None, true) => {
            bail!("missing metadata `lbfgs_pairs`: an L-BFGS state without its history")
        }
        (Some(_), false) => bail!(
            "metadata `lbfgs_pairs`: an L-BFGS history in the state of {}",
            cfg.optimizer.name()
        ),
        (None, false) => Ok(()),
    }
}

/// The state as loaded must be the one saved: its fingerprint (metadata `state`) must
/// match. State files saved before the fingerprint existed have none and get the field
/// checks alone.
pub fn check_fingerprint(
    state: &OptimState,
    meta: &HashMap<String, String>,
    epoch: usize,
) -> Result<()> {
    let Some(saved) = meta.get("state") else {
        return Ok(());
    };
    let names = checkpoint::slot_names(meta.get("optimizer").map(String::as_str));
    let now = state.fingerprint(names, epoch);
    if *saved != now {
        bail!(
            "its optimizer state does not match the fingerprint in metadata `state` ({} recorded, {now} now): an edited or damaged file",
            crate::config::cut(saved)
        );
    }
    Ok(())
}

/// Every metrics file of `dir` that exists is a regular file within the cap (metrics.csv
/// too, which the resume rewrites unread), and the lowest eval loss of the records
/// (`shown` names their file) up to the saved `epoch` is that of the epoch
/// best.safetensors holds.
pub fn check_records(
    dir: &Path,
    shown: &Path,
    records: &[EpochRecord],
    epoch: usize,
) -> Result<()> {
    for name in [metrics::JSON, metrics::JSONL, metrics::CSV] {
        let path = dir.join(name);
        if std::fs::symlink_metadata(&path).is_ok() {
            fsio::open_capped(&path, "metrics", MAX_METRICS)?;
        }
    }
    let best_path = dir.join(super::BEST);
    let Some(best) = weights_epoch(&best_path)? else {
        return Ok(());
    };
    // A crash after best.safetensors was written but before the save committed leaves it
    // past the saved epoch; the resume runs those epochs again and writes it anew.
    if best > epoch {
        return Ok(());
    }
    let lowest = records[..epoch]
        .iter()
        .min_by(|a, b| a.eval_loss.total_cmp(&b.eval_loss));
    if let Some(r) = lowest.filter(|r| r.epoch != best) {
        bail!(
            "{}: the lowest eval_loss up to epoch {epoch} is epoch {}'s ({}), but {} holds the weights of epoch {best}; the records were edited or the weights replaced",
            shown.display(),
            r.epoch,
            r.eval_loss,
            best_path.display()
        );
    }
    Ok(())
}

/// The epoch a weights file's metadata records (None: no file, or no epoch recorded),
/// read from its header alone.
fn weights_epoch(path: &Path) -> Result<Option<usize>> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    let (mut f, len) = fsio::open_capped(path, "weights", fsio::MAX_WEIGHTS)?;
    let bad = || anyhow!("{}: not a safetensors file (its header)", path.display());
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(|_| bad())?;
    let n = u64::from_le_bytes(n);
    // safetensors' own limit on a header.
    if n > (100 << 20) || n > len.saturating_sub(8) {
        return Err(bad());
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|_| bad())?;
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__", default)]
        meta: HashMap<String, String>,
    }
    let h: Header = serde_json::from_slice(&header).map_err(|_| bad())?;
    match h.meta.get("epoch") {
        None => Ok(None),
        Some(e) => e.parse().map(Some).map_err(|_| {
            anyhow!(
                "{}: bad metadata `epoch` ({})",
                path.display(),
                crate::config::cut(e)
            )
        }),
    }
}
