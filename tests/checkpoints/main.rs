//! What a run saves and reads back: configs, weights and optimizer-state files, resuming
//! from them bit for bit, and what a fault leaves of them.

#[path = "../common/mod.rs"]
mod common;

mod config;
mod faults;
mod resume;
mod state_files;
mod weights_files;
