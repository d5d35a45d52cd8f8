//! Scan results and continuous monitoring (DESIGN §5): reports read by [`crate::parse::scan`]
//! are kept per application and build stage ([`store`]), for `scan list` and for re-evaluation
//! against new advisory data.

pub mod advisory;
pub mod app;
pub mod dispatch;
pub mod evaluate;
pub mod monitor;
pub mod notice;
pub mod schedule;
pub mod store;
pub mod version;
pub mod violation;
pub mod waiver;
