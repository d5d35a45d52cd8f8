//! The integration test binary: one module per area.

mod corpus;
mod golden_sshd;
mod replay_cli;
