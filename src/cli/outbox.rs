//! `logwarden outbox`: show the notifications waiting for delivery and re-queue dead letters.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::sink::outbox::Outbox;

/// Flags of `logwarden outbox`.
#[derive(Debug, Args)]
pub struct OutboxArgs {
    /// What to do with the outbox.
    #[command(subcommand)]
    pub action: OutboxAction,
}

/// The `outbox` subcommands. Both open the state file, which redb locks: run them while the
/// daemon is stopped.
#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Print one line per pending notification (id, sink, attempts, next attempt, last error),
    /// then one per dead letter (id, sink, attempts, error).
    List {
        /// Where the state database is.
        #[command(flatten)]
        state: StateArg,
    },
    /// Move dead letters back to pending, attempts reset, due at once: the one with ID, or all.
    Retry {
        /// Where the state database is.
        #[command(flatten)]
        state: StateArg,
        /// The notification id (default: every dead letter).
        id: Option<String>,
    },
}

/// The state database: named, or the one a config names.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct StateArg {
    /// The state database file.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// The config whose `state:` it is.
    #[arg(short = 'c', long, value_name = "CONFIG")]
    config: Option<PathBuf>,
}

impl StateArg {
    /// The database file.
    pub(crate) fn path(&self) -> anyhow::Result<PathBuf> {
        Ok(match (&self.state, &self.config) {
            (Some(p), _) => p.clone(),
            // Only `state:` is read: the sinks' secrets need not be set to look at the state.
            (None, Some(c)) => crate::config::state_path(c)?,
            (None, None) => anyhow::bail!("give --state FILE or -c CONFIG"),
        })
    }

    /// The config, when one was given.
    pub(crate) fn config_path(&self) -> Option<&std::path::Path> {
        self.config.as_deref()
    }

    fn open(&self) -> anyhow::Result<Outbox> {
        Ok(Outbox::open(self.path()?)?)
    }
}

/// Runs `logwarden outbox ...`.
pub fn run(args: &OutboxArgs) -> anyhow::Result<ExitCode> {
    match &args.action {
        OutboxAction::List { state } => {
            let outbox = state.open()?;
            let mut out = std::io::stdout().lock();
            let pending = outbox.pending_list()?;
            let dead = outbox.dead_list()?;
            for p in &pending {
                let n = &p.notification;
                writeln!(
                    out,
                    "pending {} sink={} attempts={} next={} last_error={}",
                    n.id,
                    n.sink,
                    p.attempts,
                    time(p.next_attempt_ns),
                    p.last_error.as_deref().unwrap_or("-")
                )?;
            }
            for d in &dead {
                let n = &d.notification;
                writeln!(
                    out,
                    "dead    {} sink={} attempts={} dead_at={} error={}",
                    n.id,
                    n.sink,
                    d.attempts,
                    time(d.dead_at_ns),
                    d.last_error
                )?;
            }
            eprintln!(
                "{}: {} pending, {} dead",
                outbox.path().display(),
                pending.len(),
                dead.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        OutboxAction::Retry { state, id } => {
            let outbox = state.open()?;
            let moved = outbox.retry_dead(id.as_deref())?;
            println!("{moved} dead letter{} re-queued", if moved == 1 { "" } else { "s" });
            // Naming an id that is not dead is most likely a typo: say so in the exit status.
            Ok(if id.is_some() && moved == 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
    }
}

/// RFC 3339 UTC to the second.
fn time(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
