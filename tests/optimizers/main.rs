//! The optimizers: Rprop's rules by hand, the others against torch.optim or by hand, GRprop,
//! the registry that lists them all, and whole runs against torch (Rprop, L-BFGS).

#[path = "../common/mod.rs"]
mod common;

mod grprop;
mod lbfgs_torch;
mod others;
mod registry;
mod rprop_rules;
mod rprop_torch;
