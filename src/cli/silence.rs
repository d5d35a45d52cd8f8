//! `logwarden silence list|add|end -c CONFIG`: silences on the running daemon, through its
//! API at `api.listen`. The token is `api.token` from the config, or without one the token the
//! daemon keeps beside its state database (`api.token`, mode 0600), as CrowdSec's `cscli`
//! reads its local API's credentials: whoever may read the daemon's state may silence it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::api_client::Client;
use crate::event::Timestamp;
use crate::state::silences::{MatchRecord, SilenceRecord};

/// Flags of `logwarden silence`.
#[derive(Debug, Args)]
pub struct SilenceArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: SilenceAction,
}

/// The `silence` subcommands; each talks to the running daemon.
#[derive(Debug, Subcommand)]
pub enum SilenceAction {
    /// List silences: those set through the API, then those in the config.
    List {
        /// The daemon's config.
        #[command(flatten)]
        daemon: DaemonArg,
        /// Print the daemon's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a silence: alerts it matches are recorded, not sent, until it ends. The daemon
    /// records who set it, from where, what and why in an info alert (`logwarden.silence`)
    /// that reaches the sinks like any other.
    Add(AddArgs),
    /// End a silence set through the API (recorded as `add` is).
    End {
        /// The daemon's config.
        #[command(flatten)]
        daemon: DaemonArg,
        /// The silence's id.
        id: String,
        /// Who ends it (default: $USER).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
}

/// The config of the daemon to talk to.
#[derive(Debug, Args)]
pub struct DaemonArg {
    /// The daemon's config (`api.listen`, `api.token`, `state`).
    #[arg(short = 'c', long, value_name = "CONFIG")]
    pub config: PathBuf,
}

/// Flags of `logwarden silence add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The daemon's config.
    #[command(flatten)]
    pub daemon: DaemonArg,
    /// An alert field that must have this value (`rule.id`, `severity`, `source.ip`,
    /// `user.name`, `host.name`, a group field...); repeat for more, all must hold.
    #[arg(long = "match", value_name = "FIELD=VALUE", value_parser = parse_match)]
    pub matchers: Vec<(String, String)>,
    /// A severity bound the alerts must meet (`< high`, `= info`).
    #[arg(long, value_name = "BOUND")]
    pub severity: Option<String>,
    /// When it ends (RFC 3339, `2026-12-01T00:00:00Z`).
    #[arg(long, value_name = "TIME", conflicts_with = "for_", required_unless_present = "for_")]
    pub until: Option<String>,
    /// How long from now it lasts (`2h`, `3days`).
    #[arg(long = "for", value_name = "DURATION", value_parser = super::parse_wait)]
    pub for_: Option<Duration>,
    /// Why (shown with the silence and in the alert that records it).
    #[arg(long, value_name = "TEXT")]
    pub comment: String,
    /// Who sets it (default: $USER).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// Its id (default: made by the daemon); an existing id is replaced.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Set it even though it matches every alert or lasts over a year.
    #[arg(long)]
    pub force: bool,
}

fn parse_match(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not FIELD=VALUE (e.g. user.name=alice)")),
    }
}

/// Runs `logwarden silence ...`.
pub fn run(args: &SilenceArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match &args.action {
        SilenceAction::List { daemon, json } => {
            let api = Client::connect(&daemon.config)?;
            let listed = api.call(reqwest::Method::GET, api.url(&["api", "silences"]), None)?;
            if *json {
                writeln!(out, "{listed:#}")?;
            } else {
                for line in list_lines(&listed) {
                    writeln!(out, "{line}")?;
                }
            }
        }
        SilenceAction::Add(a) => {
            let api = Client::connect(&a.daemon.config)?;
            let body = add_body(a, Timestamp::now());
            let set = api.call(reqwest::Method::POST, api.url(&["api", "silences"]), Some(body))?;
            writeln!(
                out,
                "silence {} set until {}",
                set["id"].as_str().unwrap_or("?"),
                set["ends"].as_str().unwrap_or("?")
            )?;
        }
        SilenceAction::End { daemon, id, by } => {
            let api = Client::connect(&daemon.config)?;
            let mut url = api.url(&["api", "silences", id]);
            url.query_pairs_mut().append_pair("by", &by.clone().unwrap_or_else(whoami));
            api.call(reqwest::Method::DELETE, url, None)?;
            writeln!(out, "silence {id} ended")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The login name, for `--by`'s default.
fn whoami() -> String {
    std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_default()
}

/// The request `silence add` sends.
fn add_body(a: &AddArgs, now: Timestamp) -> Value {
    let ends = match (&a.until, a.for_) {
        (Some(t), _) => t.clone(),
        (None, d) => {
            let d = d.unwrap_or_default();
            let end =
                Timestamp(now.0.saturating_add(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)));
            let mut b = Vec::with_capacity(32);
            end.write_rfc3339(&mut b);
            String::from_utf8_lossy(&b).into_owned()
        }
    };
    let matcher = MatchRecord {
        severity: a.severity.clone(),
        labels: a.matchers.iter().cloned().collect(),
        ..MatchRecord::default()
    };
    let r = SilenceRecord {
        id: a.id.clone().unwrap_or_default(),
        matcher,
        starts: None,
        ends,
        created_by: a.by.clone().unwrap_or_else(whoami),
        comment: a.comment.clone(),
        force: a.force,
    };
    serde_json::to_value(&r).unwrap_or_else(|_| json!({}))
}

/// One line per silence: where it is set (`api` or `config`), id, end, who, what, why.
fn list_lines(listed: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    for (origin, key) in [("api", "api"), ("config", "config")] {
        for s in listed[key].as_array().into_iter().flatten() {
            let text = |k: &str| s[k].as_str().unwrap_or("").to_owned();
            let what = serde_json::from_value::<MatchRecord>(s["match"].clone())
                .map(|m| describe(&m))
                .unwrap_or_else(|_| "(see the config)".to_owned());
            lines.push(format!(
                "{origin}\t{}\tuntil {}\tby {}\t{what}{}\t{}",
                text("id"),
                text("ends"),
                if text("created_by").is_empty() { "-".into() } else { text("created_by") },
                if s["force"] == true { " (forced)" } else { "" },
                text("comment")
            ));
        }
    }
    if lines.is_empty() {
        lines.push("no silences".into());
    }
    lines
}

/// A matcher as one phrase: `severity >= high, rule.id in [a, b], user.name=alice`.
fn describe(m: &MatchRecord) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &m.severity {
        parts.push(format!("severity {s}"));
    }
    if !m.rules.is_empty() {
        parts.push(format!("rule.id in [{}]", m.rules.join(", ")));
    }
    if !m.tags.is_empty() {
        parts.push(format!("tags any of [{}]", m.tags.join(", ")));
    }
    parts.extend(m.labels.iter().map(|(k, v)| format!("{k}={v}")));
    if parts.is_empty() { "every alert".into() } else { parts.join(", ") }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        action: SilenceAction,
    }

    fn add(args: &[&str]) -> Result<AddArgs, clap::Error> {
        let argv = ["silence", "add", "-c", "lw.yml"].iter().chain(args);
        match Cli::try_parse_from(argv)?.action {
            SilenceAction::Add(a) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn add_sends_matchers_end_author_and_force() {
        let a = add(&[
            "--match",
            "user.name=mallory",
            "--match",
            "host.name=web=1",
            "--for",
            "2h",
            "--comment",
            "pentest",
            "--by",
            "alice",
            "--force",
        ])
        .unwrap();
        let now = Timestamp::parse_rfc3339("2026-03-01T10:00:00Z").unwrap();
        assert_eq!(
            add_body(&a, now),
            json!({
                "id": "", "match": {"labels": {"host.name": "web=1", "user.name": "mallory"}},
                "starts": null, "ends": "2026-03-01T12:00:00Z", "created_by": "alice",
                "comment": "pentest", "force": true
            })
        );
        let a = add(&["--until", "2026-12-01T00:00:00Z", "--comment", "x", "--by", "b"]).unwrap();
        let body = add_body(&a, now);
        assert_eq!(body["ends"], "2026-12-01T00:00:00Z");
        assert_eq!(body["match"], json!({}));
        assert!(body.get("force").is_none(), "{body}");
    }

    #[test]
    fn add_needs_an_end_a_comment_and_well_formed_matchers() {
        assert!(add(&["--comment", "x"]).unwrap_err().to_string().contains("--until"));
        let e = add(&["--for", "1h", "--until", "2026-12-01T00:00:00Z", "--comment", "x"]);
        assert!(e.unwrap_err().to_string().contains("cannot be used with"));
        assert!(add(&["--for", "1h"]).unwrap_err().to_string().contains("--comment"));
        let e = add(&["--for", "1h", "--comment", "x", "--match", "user.name"]).unwrap_err();
        assert!(e.to_string().contains("is not FIELD=VALUE"), "{e}");
        let e = add(&["--for", "soon", "--comment", "x"]).unwrap_err();
        assert!(e.to_string().contains("bad duration"), "{e}");
    }

    #[test]
    fn listings_name_where_each_silence_is_set() {
        let listed = json!({
            "api": [{"id": "m", "match": {"severity": "< high", "labels": {"user.name": "bob"}},
                     "ends": "2099-01-01T00:00:00Z", "created_by": "alice", "comment": "why",
                     "force": true}],
            "config": [{"id": "scanner", "ends": "2027-01-01T00:00:00Z", "created_by": null,
                        "comment": "ours", "starts": null}]
        });
        assert_eq!(
            list_lines(&listed),
            [
                "api\tm\tuntil 2099-01-01T00:00:00Z\tby alice\tseverity < high, user.name=bob (forced)\twhy",
                "config\tscanner\tuntil 2027-01-01T00:00:00Z\tby -\t(see the config)\tours",
            ]
        );
        assert_eq!(list_lines(&json!({"api": [], "config": []})), ["no silences"]);
    }
}
