//! The integration test binary: one module per area.

mod behaviours;
mod check_cli;
mod cli;
mod cloudtrail;
mod corpus;
mod crowdsec_hub;
mod daemon;
mod daemon_faults;
mod email_tls;
mod fail2ban_parity;
mod golden_sshd;
mod outbox;
mod panther_parity;
mod props;
mod receivers;
mod replay_cli;
mod replay_parallel;
mod routing;
mod rule_pack;
mod rules;
mod scan_cli;
mod scan_monitor;
mod sigma_cloudtrail;
mod sigma_linux;
mod sinks;
mod travel;
