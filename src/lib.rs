//! logwarden: a log-aggregation and alerting agent for security teams.
//!
//! ```text
//! source/ ──RawRecord──► parse/ ──Event──► rule/ ──Alert──► route/ ──Dispatch──► sink/
//! ```
//!
//! Sources frame bytes into records, parsers turn records into normalized [`event::Event`]s with
//! Elastic Common Schema names; `replay` runs files through that pipeline offline.
#![warn(missing_docs)]

pub mod alert;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod event;
pub mod forward;
pub mod generate;
pub mod geo;
pub mod ledger;
pub mod output;
pub mod parse;
pub mod replay;
pub mod route;
pub mod rule;
pub mod scan;
pub mod sink;
pub mod snapshot;
pub mod source;
pub mod state;
