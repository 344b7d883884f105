//! The per-adapter matmul strategy cache: a small JSON object `{adapter key: strategy}` in
//! `$XDG_CACHE_HOME/rprop-lab/matmul-kernel.json` (or `~/.cache/...`, or the temp dir).
//! Failures to read or write it only cost a re-timing, so they are ignored.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::kernels::Strategy;

/// Identifies an adapter and its driver (a driver update may change the best strategy) and
/// the strategies there are to choose from (a new one must be timed, not shadowed by an
/// old entry).
pub fn adapter_key(info: &wgpu::AdapterInfo) -> String {
    let strategies: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
    format!(
        "{} | {:?} | {} {} | {}",
        info.name,
        info.backend,
        info.driver,
        info.driver_info,
        strategies.join(",")
    )
}

pub fn cache_path() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("rprop-lab").join("matmul-kernel.json")
}

fn load() -> Map<String, Value> {
    std::fs::read_to_string(cache_path())
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

/// The cached strategy for `key`, if any.
pub fn cached(key: &str) -> Option<Strategy> {
    load().get(key)?.as_str()?.parse().ok()
}

/// Records the strategy for `key` (best effort, written atomically).
pub fn store(key: &str, strategy: Strategy) {
    let path = cache_path();
    let mut map = load();
    map.insert(key.to_string(), Value::String(strategy.name().to_string()));
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if let Ok(text) = serde_json::to_string_pretty(&Value::Object(map)) {
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
}
