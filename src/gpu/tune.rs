//! The choice of matmul strategy ([`choose_kernels`]): forced (`--matmul-kernel`, or a run's
//! recorded one), else a fixed rule for the strategies that round differently (never a
//! timing): `sparse` ([`sparse_rule`]) or, on a hardware GPU, `tiled`; else, on a software
//! adapter, the faster of [`TIMED`], which give bit-identical numbers, so the timing and its
//! cache decide only speed. The per-adapter cache is a small
//! JSON object `{adapter key: strategy}` in `$XDG_CACHE_HOME/rprop-lab/matmul-kernel.json`
//! (or `~/.cache/...`, or the temp dir); failures to read or write it only cost a re-timing,
//! so they are ignored.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{Map, Value};

use super::buffers::{Pass, Shared};
use super::kernels::{Kernels, Strategy};
use super::mlp::{self, Net};
use super::ops::{encode_all, Plan};
use super::{GpuContext, GpuOptions};
use crate::model::Layout;

/// Rows the strategy timing runs Z1 on.
const TUNE_ROWS: usize = 4096;
/// Timing rounds per candidate strategy (the best one counts).
const TUNE_ROUNDS: usize = 3;

/// The strategies a timing may choose among: the same register blocks (fed from buffers or
/// textures), so bit-identical numbers. `tiled` sums the small layers in another order.
pub const TIMED: [Strategy; 2] = [Strategy::Register, Strategy::Texture];

/// A software adapter (device type Cpu: lavapipe, llvmpipe), whose SIMD lanes like the
/// register blocks; a hardware GPU gets `tiled` (workgroup-memory tiles), by rule.
pub fn software(info: &wgpu::AdapterInfo) -> bool {
    info.device_type == wgpu::DeviceType::Cpu
}
/// Smallest train set the sparse rule applies to (as the CPU backend's `auto`).
pub const SPARSE_MIN_ROWS: usize = crate::cpu::fused::SPARSE_MIN_ROWS;

/// Whether the sparse strategy may run by rule on this adapter for `rows` train images,
/// before the set's density is known: a software adapter (device type Cpu, e.g.
/// lavapipe), where skipping zero pixels pays, and a set of at least [`SPARSE_MIN_ROWS`].
/// Hardware GPUs are not measured with it, so they keep the timed dense strategies.
pub fn sparse_candidate(info: &wgpu::AdapterInfo, rows: usize) -> bool {
    software(info) && rows >= SPARSE_MIN_ROWS
}

/// The rule's verdict once the train set is uploaded: its zero-skipping blocks were built
/// (layout, limits and a pixel density below the sparse kernel's limit permitting).
pub fn sparse_rule(info: &wgpu::AdapterInfo, train: &Pass) -> bool {
    sparse_candidate(info, train.n) && train.blocks.is_some()
}

/// The strategy known before the sets are uploaded (what the uploads must prepare for):
/// forced, a rule's (sparse only a candidate until the set's density is known), or the
/// cached timing.
pub fn preset(info: &wgpu::AdapterInfo, opts: &GpuOptions, rows: usize) -> Option<Strategy> {
    opts.matmul_kernel.or_else(|| {
        if sparse_candidate(info, rows) {
            Some(Strategy::Sparse)
        } else if !software(info) {
            Some(Strategy::Tiled)
        } else {
            cached(&adapter_key(info))
        }
    })
}

/// Identifies an adapter and its driver (a driver update may change the best strategy) and
/// the strategies there are to choose from (a new one must be timed, not shadowed by an
/// old entry).
pub fn adapter_key(info: &wgpu::AdapterInfo) -> String {
    let strategies: Vec<&str> = TIMED.iter().map(|s| s.name()).collect();
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

/// The cache, or nothing when it is missing or unreadable: read without blocking (a FIFO
/// there is refused) and within 64 KiB (a few entries), as every file this tool reads.
fn load() -> Map<String, Value> {
    crate::fsio::read_text(&cache_path(), "matmul-kernel cache", 64 << 10)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

/// The cached strategy for `key`, if any (only one of [`TIMED`]: an entry naming another,
/// hand-edited or from elsewhere, cannot change a run's arithmetic).
pub fn cached(key: &str) -> Option<Strategy> {
    let k: Strategy = load().get(key)?.as_str()?.parse().ok()?;
    TIMED.contains(&k).then_some(k)
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

/// The forced, ruled, cached or timed matmul strategy, with its pipelines.
pub fn choose_kernels(
    ctx: &mut GpuContext,
    opts: &GpuOptions,
    l: Layout,
    s: &Shared,
    train: &Pass,
) -> Result<Kernels> {
    if let Some(k) = opts.matmul_kernel {
        return Kernels::new(ctx, k);
    }
    if sparse_rule(&ctx.info, train) {
        if opts.verbose {
            eprintln!(
                "matmul kernel: sparse (rule: a software adapter, {} train images of sparse pixels)",
                train.n
            );
        }
        return Kernels::new(ctx, Strategy::Sparse);
    }
    if !software(&ctx.info) {
        if opts.verbose {
            eprintln!("matmul kernel: tiled (rule: a hardware GPU)");
        }
        return Kernels::new(ctx, Strategy::Tiled);
    }
    let key = adapter_key(&ctx.info);
    if let Some(k) = cached(&key) {
        if opts.verbose {
            eprintln!("matmul kernel: {k} (cached for this adapter)");
        }
        return Kernels::new(ctx, k);
    }
    let (kernels, report) = time_candidates(ctx, l, s, train)?;
    if opts.verbose {
        eprintln!(
            "matmul kernel: {} (timed on Z1, {} rows: {})",
            kernels.strategy,
            TUNE_ROWS.min(train.n),
            report.join(", ")
        );
    }
    store(&key, kernels.strategy);
    Ok(kernels)
}

/// Times Z1 of TUNE_ROWS train rows with each candidate strategy; returns the fastest's
/// kernels and a note of every candidate's time.
fn time_candidates(
    ctx: &mut GpuContext,
    l: Layout,
    s: &Shared,
    train: &Pass,
) -> Result<(Kernels, Vec<String>)> {
    // Every candidate's plan first, then the timing rounds interleaved (A B C, A B C, ...),
    // best of TUNE_ROUNDS each: a burst of load from another process then slows one round of
    // every candidate rather than all the runs of one, which would pick the wrong strategy
    // (and cache it).
    let mut candidates = Vec::new();
    for strategy in TIMED {
        if strategy == Strategy::Texture && (train.tex.is_none() || s.w1t.is_none()) {
            continue; // no subgroups of 8, layout or texture limits: it would time as register
        }
        let kernels = Kernels::new(ctx, strategy)?;
        let plan = ctx.scoped("recording the timing dispatches", || {
            let mut p = Plan::new(&ctx.device);
            let net = Net { k: &kernels, l, s };
            mlp::forward(&mut p, net, train, TUNE_ROWS);
            p.list
        })?;
        candidates.push((kernels, plan, f64::INFINITY));
    }
    let run = |ctx: &mut GpuContext, plan: &[_]| -> Result<f64> {
        let t0 = Instant::now();
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        encode_all(&mut enc, plan.iter());
        ctx.submit(enc.finish());
        ctx.wait()?;
        Ok(t0.elapsed().as_secs_f64())
    };
    for (_, plan, _) in &candidates {
        run(ctx, plan)?; // compiles (JIT) the pipelines
    }
    for _ in 0..TUNE_ROUNDS {
        for (_, plan, secs) in candidates.iter_mut() {
            *secs = secs.min(run(ctx, plan)?);
        }
    }
    let report: Vec<String> = candidates
        .iter()
        .map(|(k, _, secs)| format!("{} {:.1} ms", k.strategy, secs * 1e3))
        .collect();
    let best = candidates
        .into_iter()
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .map(|(k, _, secs)| (secs, k));
    let (_, kernels) = best.context("no matmul strategy")?;
    Ok((kernels, report))
}
