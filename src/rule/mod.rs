//! Detection rules: Sigma-style selections and conditions, compiled once at load.

pub mod condition;
