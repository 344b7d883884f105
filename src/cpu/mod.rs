//! The CPU side, in layers that import one way only: [`backend`] (`CpuBackend`) runs
//! [`fused`] (the fast forward+backward over blocks of rows), which uses [`sparse`] (the first
//! layer from the sparse u8 pixels) and [`reference`] (the plain oracle, each kernel named like
//! its WGSL twin); for L-BFGS it runs [`lbfgs`] (the algorithm over slices, with the twins of
//! the L-BFGS kernels), whose objective is the fused pass.

mod backend;
pub mod fused;
pub mod lbfgs;
pub mod reference;
pub mod sparse;

pub use backend::CpuBackend;
pub use reference::*;
