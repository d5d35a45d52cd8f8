//! Detection rules: Sigma-style selections compiled once at load, then evaluated per event.

pub mod matcher;
