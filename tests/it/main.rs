//! The integration test binary: one module per area.

mod check_cli;
mod cli;
mod cloudtrail;
mod corpus;
mod golden_sshd;
mod props;
mod replay_cli;
mod replay_parallel;
mod rules;
mod sigma_cloudtrail;
