//! `logwarden silence list|add|end -c CONFIG`: silences on the running daemon, through its
//! API at `api.listen`. The token is `api.token` from the config, or without one the token the
//! daemon keeps beside its state database (`api.token`, mode 0600), as CrowdSec's `cscli`
//! reads its local API's credentials: whoever may read the daemon's state may silence it.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::config::ConfigError;
use crate::daemon::token::{self, TokenError};
use crate::event::Timestamp;
use crate::state::silences::{MatchRecord, SilenceRecord};

/// Longest wait for the daemon's answer (it answers once the silence is durable).
const TIMEOUT: Duration = Duration::from_secs(30);

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

/// Why a `silence` command failed.
#[derive(Debug, thiserror::Error)]
pub enum SilenceCliError {
    /// The config could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config has no `api:`.
    #[error("{config}: no `api:` section, so the daemon serves no API to set silences through")]
    NoApi {
        /// The config.
        config: String,
    },
    /// `api.listen` is not an address.
    #[error("{config}: `api.listen` `{listen}` is not an address such as 127.0.0.1:9600")]
    Listen {
        /// The config.
        config: String,
        /// What it says.
        listen: String,
    },
    /// No `api.token`, and the daemon's own token cannot be read.
    #[error(
        "{config} sets no `api.token` (or its variable is unset here), so the daemon's own \
         token is needed, and it cannot be used (run as the daemon's user or root, or set \
         `api.token`)"
    )]
    Token {
        /// The config.
        config: String,
        /// Why.
        #[source]
        source: TokenError,
    },
    /// Nothing answers at the API's address.
    #[error("no logwarden answers at {url} (is the daemon running with this config?)")]
    NotRunning {
        /// The API.
        url: String,
        /// What the connection said.
        #[source]
        source: reqwest::Error,
    },
    /// The daemon answered 401.
    #[error(
        "the daemon at {url} refused the token from {from}: a daemon started with `api.token` \
         needs the same value here"
    )]
    Refused {
        /// The API.
        url: String,
        /// Where the token came from.
        from: String,
    },
    /// The daemon answered with another error.
    #[error("the daemon refused ({status}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// Its `error`, or the body.
        message: String,
    },
    /// The request failed midway, or the answer did not read.
    #[error("talking to the daemon at {url}")]
    Http {
        /// The API.
        url: String,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
}

impl SilenceCliError {
    /// A short name for the failure.
    pub fn kind(&self) -> &'static str {
        match self {
            SilenceCliError::Config(_) => "config",
            SilenceCliError::NoApi { .. } => "no_api",
            SilenceCliError::Listen { .. } => "listen",
            SilenceCliError::Token { .. } => "token",
            SilenceCliError::NotRunning { .. } => "not_running",
            SilenceCliError::Refused { .. } => "refused",
            SilenceCliError::Rejected { .. } => "rejected",
            SilenceCliError::Http { .. } => "http",
            SilenceCliError::Runtime(_) => "runtime",
        }
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

/// The daemon's API, with the token to call it with.
struct Client {
    base: reqwest::Url,
    token: String,
    /// Where the token came from, for a refusal's message.
    token_from: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    fn connect(config: &Path) -> Result<Client, SilenceCliError> {
        let shown = config.display().to_string();
        let api = crate::config::api_section(config)?
            .ok_or(SilenceCliError::NoApi { config: shown.clone() })?;
        let listen = &api.listen.value;
        let addr: SocketAddr = listen.parse().map_err(|_| SilenceCliError::Listen {
            config: shown.clone(),
            listen: listen.clone(),
        })?;
        let (token, token_from) = match api.token {
            Some(t) => (t, format!("`api.token` in {shown}")),
            None => {
                let path = token::path_for(&crate::config::state_path(config)?);
                let t = token::read(&path)
                    .map_err(|source| SilenceCliError::Token { config: shown.clone(), source })?;
                (t, path.display().to_string())
            }
        };
        let base = base_url(addr);
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|source| SilenceCliError::Http { url: base.to_string(), source })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(SilenceCliError::Runtime)?;
        Ok(Client { base, token, token_from, http, runtime })
    }

    /// The API URL of these path segments (each escaped).
    fn url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.clear().extend(segments);
        }
        url
    }

    /// Sends one request; the answer's JSON (`null` for none), or why not.
    fn call(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
        body: Option<Value>,
    ) -> Result<Value, SilenceCliError> {
        let shown = self.base.to_string();
        let mut req = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.runtime.block_on(async {
            let resp = req.send().await.map_err(|source| {
                if source.is_connect() {
                    SilenceCliError::NotRunning { url: shown.clone(), source }
                } else {
                    SilenceCliError::Http { url: shown.clone(), source }
                }
            })?;
            let status = resp.status();
            let text = resp
                .text()
                .await
                .map_err(|source| SilenceCliError::Http { url: shown.clone(), source })?;
            if status == reqwest::StatusCode::UNAUTHORIZED {
                return Err(SilenceCliError::Refused {
                    url: shown.clone(),
                    from: self.token_from.clone(),
                });
            }
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if !status.is_success() {
                let message =
                    value["error"].as_str().map_or_else(|| text.trim().to_owned(), str::to_owned);
                return Err(SilenceCliError::Rejected { status: status.as_u16(), message });
            }
            Ok(value)
        })
    }
}

/// `http://ADDR/`, where an address bound on every interface is reached on loopback.
fn base_url(addr: SocketAddr) -> reqwest::Url {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let text = format!("http://{}/", SocketAddr::new(ip, addr.port()));
    // A SocketAddr always makes a valid URL.
    #[allow(clippy::expect_used)]
    reqwest::Url::parse(&text).expect("an address is a valid URL host")
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
    fn an_address_on_every_interface_is_reached_on_loopback() {
        assert_eq!(base_url("0.0.0.0:9600".parse().unwrap()).as_str(), "http://127.0.0.1:9600/");
        assert_eq!(base_url("[::]:9600".parse().unwrap()).as_str(), "http://[::1]:9600/");
        assert_eq!(base_url("10.0.0.5:80".parse().unwrap()).as_str(), "http://10.0.0.5/");
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
