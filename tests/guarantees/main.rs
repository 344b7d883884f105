//! What a run promises a hostile user, through the binary under a memory cap and a timeout
//! (see `capped`): a saved run is never lost (`--force`, resume, signals, failed saves), one
//! writer per run folder, and every bad input gets exit 2 and one clear line.

#[path = "../common/mod.rs"]
mod common;

mod capped;
mod compare_backends;
mod fault_hook;
mod force;
mod input_files;
mod input_values;
mod lbfgs_state;
mod lock;
mod memory;
mod metrics;
mod metrics_caps;
mod reserved_names;
mod resume;
mod resume_records;
mod run_folder;
mod saves;
mod signals;
mod small_ones;
mod stale_runs;
