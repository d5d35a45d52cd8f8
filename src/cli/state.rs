//! `logwarden state check|reset|backup`: what an operator does about the state database.
//!
//! - `check` opens a copy of the file (so that redb's repair, if it wants one, does not touch
//!   the original) and says whether it can be used, what it holds, and what to do if not.
//! - `reset` moves the file aside (never deletes it) and writes a new one in which every file
//!   the config's file and CloudTrail sources match now is marked read to its end: a daemon
//!   started on it does not read history again and alert on it a second time. With
//!   `--from-beginning` no positions are written and the sources start as `read_from` says.
//! - `backup` writes a consistent copy (see [`crate::state::StateDb::backup_to`]).
//!
//! The daemon holds the file locked: `check` and `reset` refuse while it runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use redb::{ReadableTableMetadata as _, TableHandle as _};

use super::outbox::StateArg;
use crate::source::{Checkpoint, SourceConfig};
use crate::state::db::{FORMAT, Opened};
use crate::state::{StateDb, StateError};

/// Flags of `logwarden state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// What to do with the state database.
    #[command(subcommand)]
    pub action: StateAction,
}

/// The `state` subcommands.
#[derive(Debug, Subcommand)]
pub enum StateAction {
    /// Check the file (on a copy: the original is not changed) and list what it holds. Exit
    /// status 0 when a daemon can use it, 1 when not (the message says what to do).
    Check {
        /// Where the state database is.
        #[command(flatten)]
        state: StateArg,
    },
    /// Move the file aside (to FILE.damaged-TIME) and start a new one in which the files the
    /// config's sources match now are marked read to their end, so history is not alerted on
    /// again. Run it while the daemon is stopped.
    Reset {
        /// Where the state database is.
        #[command(flatten)]
        state: StateArg,
        /// Write no positions: the sources read their files as `read_from` says (history
        /// included, with its alerts).
        #[arg(long)]
        from_beginning: bool,
    },
    /// Write a consistent copy of the file to TO (which must not exist), checked after it is
    /// written. While a daemon runs on it (give -c), the daemon makes the copy through its API
    /// (`POST /api/state/backup`, with the API's token) and it is moved to TO.
    Backup {
        /// Where the state database is.
        #[command(flatten)]
        state: StateArg,
        /// The copy.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
}

/// Runs `logwarden state ...`.
pub fn run(args: &StateArgs) -> anyhow::Result<ExitCode> {
    match &args.action {
        StateAction::Check { state } => check(&state.path()?),
        StateAction::Reset { state, from_beginning } => {
            let config = match (state.config_path(), from_beginning) {
                (Some(c), false) => Some(
                    crate::config::load(c)
                        .map_err(|es| {
                            let lines: Vec<String> = es.iter().map(ToString::to_string).collect();
                            anyhow::anyhow!(
                                "{}\n(the sources are needed to place their files' positions; \
                                 fix the config, or give --from-beginning)",
                                lines.join("\n")
                            )
                        })?
                        .spec
                        .sources
                        .into_iter()
                        .map(|(n, s)| (n, s.value))
                        .collect(),
                ),
                _ => None,
            };
            reset(&state.path()?, config)
        }
        StateAction::Backup { state, to } => {
            let path = state.path()?;
            if to.exists() {
                anyhow::bail!("{} exists; name a new file", to.display());
            }
            if in_use(&path) {
                let Some(config) = state.config_path() else {
                    anyhow::bail!(
                        "{} is in use by a running daemon: give -c CONFIG so that the daemon \
                         writes the copy (through its API)",
                        path.display()
                    );
                };
                let api = super::api_client::Client::connect(config)?;
                let made =
                    api.call(reqwest::Method::POST, api.url(&["api", "state", "backup"]), None)?;
                let made_at = PathBuf::from(made["path"].as_str().unwrap_or_default());
                // The daemon wrote it beside the state; it is moved where it was asked for.
                if std::fs::rename(&made_at, to).is_err() {
                    std::fs::copy(&made_at, to)?;
                    std::fs::remove_file(&made_at)?;
                }
                println!(
                    "{}: a checked copy of {} made by the running daemon ({} bytes)",
                    to.display(),
                    path.display(),
                    made["bytes"]
                );
                return Ok(ExitCode::SUCCESS);
            }
            let db = StateDb::open(&path)?;
            let bytes = db.backup_to(to)?;
            println!("{}: a checked copy of {} ({bytes} bytes)", to.display(), path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Whether a running daemon holds the file (redb locks it exclusively).
fn in_use(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else { return false };
    matches!(file.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock))
}

/// Fails when a running daemon holds the file (redb locks it exclusively).
fn refuse_in_use(path: &Path, instead: &str) -> anyhow::Result<()> {
    if in_use(path) {
        anyhow::bail!("{} is in use by a running daemon: {instead}", path.display());
    }
    Ok(())
}

fn check(path: &Path) -> anyhow::Result<ExitCode> {
    if !path.exists() {
        println!("{}: no such file (a daemon creates it on its first start)", path.display());
        return Ok(ExitCode::FAILURE);
    }
    refuse_in_use(
        path,
        "`logwarden state backup -c CONFIG --to FILE` makes a copy to check instead",
    )?;
    let copy =
        std::env::temp_dir().join(format!("logwarden-state-check-{}.redb", std::process::id()));
    std::fs::copy(path, &copy)?;
    let result = check_copy(path, &copy);
    let _ = std::fs::remove_file(&copy);
    result
}

fn check_copy(path: &Path, copy: &Path) -> anyhow::Result<ExitCode> {
    let shown = |e: StateError| {
        e.to_string().replace(&copy.display().to_string(), &path.display().to_string())
    };
    let (db, how) = match StateDb::open_checked(copy) {
        Ok(v) => v,
        Err(e) => {
            println!("{}: cannot be used: {}", path.display(), shown(e));
            return Ok(ExitCode::FAILURE);
        }
    };
    match how {
        Opened::Repaired => println!(
            "{}: failed redb's integrity check; a daemon repairs it to its last consistent \
             commit on start (what was written after that is lost, as after a crash)",
            path.display()
        ),
        _ => println!("{}: intact (layout version {FORMAT})", path.display()),
    }
    for (table, rows) in tables(&db)? {
        println!("  {table}: {rows} record{}", if rows == 1 { "" } else { "s" });
    }
    // Reading every outbox record decodes it: damage inside a record shows here, not as a
    // delivery task that fails on it for ever.
    let outbox = crate::sink::outbox::Outbox::with_database(db, path.to_path_buf())?;
    let pending = outbox.pending_list()?;
    let dead = outbox.dead_list()?;
    println!("  outbox: {} notifications pending, {} dead letters", pending.len(), dead.len());
    Ok(ExitCode::SUCCESS)
}

/// Every table with its number of records.
fn tables(db: &StateDb) -> anyhow::Result<Vec<(String, u64)>> {
    let txn = db.begin_read()?;
    let mut out = Vec::new();
    for handle in txn.list_tables()? {
        let name = handle.name().to_owned();
        let rows = txn.open_untyped_table(handle)?.len()?;
        out.push((name, rows));
    }
    Ok(out)
}

fn reset(path: &Path, sources: Option<Vec<(String, SourceConfig)>>) -> anyhow::Result<ExitCode> {
    refuse_in_use(path, "stop it first")?;
    let mut positions: Vec<Checkpoint> = Vec::new();
    let mut notes = Vec::new();
    for (name, source) in sources.iter().flatten() {
        match source {
            SourceConfig::File(cfg) => {
                let found = crate::source::tail::positions_at_end(name, cfg)?;
                notes.push(format!("source `{name}`: {} files placed at their end", found.len()));
                positions.extend(found);
            }
            SourceConfig::CloudtrailDir(cfg) => {
                let found = crate::source::cloudtrail_dir::positions_at_end(cfg);
                notes.push(format!("source `{name}`: {} files marked read", found.len()));
                positions.extend(found);
            }
            _ => {}
        }
    }
    if path.exists() {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let mut aside = path.as_os_str().to_owned();
        aside.push(format!(".damaged-{stamp}"));
        let aside = PathBuf::from(aside);
        std::fs::rename(path, &aside)?;
        println!("{}: moved aside to {}", path.display(), aside.display());
    }
    let db = StateDb::open(path)?;
    let checkpoints = crate::state::checkpoint::Checkpoints::new(db, path.to_path_buf())?;
    checkpoints.commit(positions.iter())?;
    println!("{}: new state database", path.display());
    for n in notes {
        println!("  {n}");
    }
    if sources.is_none() {
        println!("  no positions written: file sources read their files as `read_from` says");
    }
    Ok(ExitCode::SUCCESS)
}
