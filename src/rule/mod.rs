//! Detection rules: Sigma-style selections and conditions, compiled once at load, then
//! evaluated per event.

pub mod condition;
pub mod matcher;
