//! logwarden (bootstrap)
#![warn(missing_docs)]
pub mod event;
