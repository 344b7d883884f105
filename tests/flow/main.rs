//! The report's flow, piece by piece: data loading, the CPU reference and its fused and
//! sparse passes, the defaults a run picks, telemetry and seed statistics, comparing at
//! equal cost, and the shader sources the GPU path compiles.

#[path = "../common/mod.rs"]
mod common;

mod charts;
mod data;
mod defaults;
mod equal_cost;
mod fused;
mod learning;
mod reference;
mod reporting;
mod shaders;
mod telemetry;
