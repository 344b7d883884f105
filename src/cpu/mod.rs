//! The CPU side, in layers that import one way only: [`backend`] (`CpuBackend`) runs
//! [`fused`] (the fast forward+backward over blocks of rows), which uses [`sparse`] (the first
//! layer from the sparse u8 pixels) and [`reference`] (the plain oracle, each kernel named like
//! its WGSL twin); for L-BFGS it runs [`lbfgs`] (the algorithm over slices, with the twins of
//! the L-BFGS kernels), whose objective is the fused pass. [`SharedSets`] lets many backends
//! share one copy of the sets they train on.

mod backend;
pub mod fused;
pub mod lbfgs;
pub mod reference;
mod shared;
pub mod sparse;

pub use backend::{CpuBackend, CpuSets};
pub use reference::*;
pub use shared::SharedSets;
