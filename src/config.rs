//! `logwarden.yml`: sinks, routes, silences, rate limits and delivery, read with `${ENV}`
//! expansion and checked whole, every error with its file and line.
//!
//! ```yaml
//! state: /var/lib/logwarden/state.redb
//! sinks:
//!   soc-slack:
//!     type: slack
//!     webhook_url: "${LOGWARDEN_SLACK_URL}"
//!     rate_limit: {count: 30, per: 1m, burst: 10}
//! routes:
//!   - name: urgent
//!     match: {severity: ">= high"}
//!     sinks: [soc-slack]
//!     group_by: [rule.id, source.ip]
//!     group_wait: 30s
//! silences:
//!   - id: our-scanner
//!     match: {labels: {source.ip: 192.0.2.10}}
//!     starts: 2026-11-01T00:00:00Z
//!     ends: 2026-12-01T00:00:00Z
//! ```
//!
//! Secrets stay out of the file: `${NAME}` is replaced by the environment variable (an unset
//! one is an error naming it), `${NAME:-default}` falls back, `${file:/run/secrets/x}` reads a
//! secret file, and `$${` is a literal `${`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::event::Timestamp;
use crate::route::matcher::{AlertMatcher, SeverityBound};
use crate::route::router::{RateLimit, Route, RouterConfig, Silence};
use crate::rule::duration::{self, Span};
use crate::sink::SinkConfig;
use crate::sink::outbox::RetryPolicy;

mod env;
pub mod redact;
pub mod scan;
pub use env::{expand_env, expand_env_recording};

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read the config")]
    Io {
        /// The file.
        file: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// `${NAME}` names an unset variable, or its value spans lines.
    #[error("{file}:{line}: {detail}")]
    Env {
        /// The file.
        file: String,
        /// 1-based line.
        line: u64,
        /// What is wrong.
        detail: String,
    },
    /// Malformed YAML, an unknown key, a missing one, a wrong type.
    #[error("{file}:{line}:{column}: {message}")]
    Yaml {
        /// The file.
        file: String,
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: u64,
        /// serde-saphyr's message (it names the key).
        message: String,
    },
    /// A value that does not make sense: a bad duration or severity, a route naming a sink
    /// that does not exist, a silence that ends before it starts.
    #[error("{file}:{line}: `{key}`: {detail}")]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line of the key (found by text search; 1 when not found).
        line: u64,
        /// The dotted key (`routes[1].sinks`).
        key: String,
        /// What is wrong.
        detail: String,
    },
}

impl ConfigError {
    /// The error with what it quotes from the config passed through [`redact`]: substituted
    /// values shown as their references, URL passwords and query values masked.
    pub fn redacted(self, subs: &redact::Substituted) -> ConfigError {
        match self {
            ConfigError::Io { .. } => self,
            ConfigError::Env { file, line, detail } => {
                ConfigError::Env { file, line, detail: subs.redact(&detail) }
            }
            ConfigError::Yaml { file, line, column, message } => {
                ConfigError::Yaml { file, line, column, message: subs.redact(&message) }
            }
            ConfigError::Invalid { file, line, key, detail } => ConfigError::Invalid {
                file,
                line,
                key: subs.redact(&key),
                detail: subs.redact(&detail),
            },
        }
    }
}

/// The file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    /// The state database (outbox); default `logwarden-state.redb` beside the config.
    #[serde(default)]
    pub state: Option<PathBuf>,
    /// Rule directory for the daemon (replay takes `--rules`).
    #[serde(default)]
    pub rules: Option<PathBuf>,
    /// MaxMind / DB-IP City database for `travel` rules.
    #[serde(default)]
    pub geoip: Option<PathBuf>,
    /// Named sinks, each with where it is written (errors inside a sink point at it: its
    /// `type` tag makes serde read it whole, so its own keys carry no position).
    #[serde(default)]
    pub sinks: BTreeMap<String, Spanned<SinkConfig>>,
    /// Routes, in order.
    #[serde(default)]
    pub routes: Vec<Spanned<RouteSpec>>,
    /// Silences.
    #[serde(default)]
    pub silences: Vec<Spanned<SilenceSpec>>,
    /// Retry policy of the outbox.
    #[serde(default)]
    pub delivery: Option<DeliverySpec>,
    /// The daemon's live sources, by name (`logwarden run`).
    #[serde(default)]
    pub sources: BTreeMap<String, Spanned<crate::source::SourceConfig>>,
    /// The daemon's HTTP API and metrics.
    #[serde(default)]
    pub api: Option<ApiSpec>,
    /// How syslog without a zone (RFC 3164) is read.
    #[serde(default)]
    pub syslog: Option<SyslogSpec>,
    /// Where normalized events are archived (JSON lines), by name.
    #[serde(default)]
    pub outputs: BTreeMap<String, Spanned<crate::output::OutputConfig>>,
    /// Where a forwarder sends its events (`mode: forward`).
    #[serde(default)]
    pub forward: Option<Spanned<crate::forward::ForwardConfig>>,
    /// `detect` (default: rules, routing, sinks) or `forward` (sources, parse, then the
    /// `forward:` target, as a sidecar).
    #[serde(default)]
    pub mode: Mode,
    /// Applications whose scans are kept: owners, criticality, monitoring.
    #[serde(default)]
    pub applications: Vec<Spanned<scan::AppSpec>>,
    /// Scan reports arriving in a directory, the advisory database, the re-evaluation schedule.
    #[serde(default)]
    pub scan: Option<Spanned<scan::ScanSpec>>,
}

/// What the daemon does with the events of its sources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Rules, routing and sinks on this host.
    #[default]
    Detect,
    /// Forward events to an aggregator (`forward:`): the sidecar.
    Forward,
}

/// `api:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSpec {
    /// Address to bind (`127.0.0.1:9600`); any other than loopback needs `token`.
    pub listen: Spanned<String>,
    /// Bearer token required by everything but `/healthz` (from `${ENV}` or `${file:...}`).
    /// Empty or absent: the daemon makes its own in the state directory (`api.token`, mode
    /// 0600), required by everything but `/healthz` and `/metrics`.
    #[serde(default)]
    pub token: Option<String>,
    /// Connections at once (default 256); at the cap the longest-idle one is closed to make
    /// room for a new one.
    #[serde(default)]
    pub max_connections: Option<std::num::NonZeroUsize>,
    /// Connections at once from one address (an IPv6 client: its /64) (default 64); more are
    /// closed at once.
    #[serde(default)]
    pub max_connections_per_address: Option<std::num::NonZeroUsize>,
    /// Requests in progress at once (default 32); more are answered 503 with `Retry-After`.
    #[serde(default)]
    pub max_in_flight: Option<std::num::NonZeroUsize>,
    /// A request head must arrive whole within this of connecting or of the previous answer
    /// (closing idle keep-alive connections), and a body may not pause longer (default 30s).
    #[serde(default)]
    pub idle_timeout: Option<String>,
}

impl ApiSpec {
    /// The API listener's limits (an unreadable `idle_timeout`, which `check` reports, is
    /// the default).
    pub fn limits(&self) -> crate::source::http_serve::ServeLimits {
        crate::source::http_serve::ServeLimits {
            max_connections: self.max_connections.map_or(256, |n| n.get()),
            max_connections_per_address: self.max_connections_per_address.map_or(64, |n| n.get()),
            max_in_flight: self.max_in_flight.map_or(32, |n| n.get()),
            idle_timeout: std_duration(self.idle_timeout.as_deref())
                .unwrap_or(std::time::Duration::from_secs(30)),
        }
    }
}

/// A config duration (`30s`) as a `std` one; `None` when unset, unreadable or not positive.
pub fn std_duration(text: Option<&str>) -> Option<std::time::Duration> {
    let nanos = duration::parse(text?).ok()?.nanos();
    (nanos > 0).then(|| std::time::Duration::from_nanos(nanos.unsigned_abs()))
}

/// `syslog:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSpec {
    /// IANA zone of RFC 3164 timestamps (default UTC).
    #[serde(default)]
    pub timezone: Option<String>,
}

/// What a route or silence matches.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// `>= high`, `< medium`, `critical`...
    #[serde(default)]
    pub severity: Option<Spanned<String>>,
    /// Rule ids, any of.
    #[serde(default)]
    pub rules: Vec<Spanned<String>>,
    /// Tags, any of.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Alert field -> value, all of.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Name (default `routes[i]`).
    #[serde(default)]
    pub name: Option<String>,
    /// What it takes (everything when absent).
    #[serde(default, rename = "match")]
    pub matcher: MatchSpec,
    /// Sink names.
    pub sinks: Spanned<Vec<Spanned<String>>>,
    /// Keep trying later routes after this one.
    #[serde(default, rename = "continue")]
    pub cont: bool,
    /// Send notices that a scan violation was resolved; default false.
    #[serde(default)]
    pub send_resolved: bool,
    /// Alert fields that make a notification group (default: rule.id and the alert's group).
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    /// Default 30s.
    #[serde(default)]
    pub group_wait: Option<Spanned<String>>,
    /// Default 5m.
    #[serde(default)]
    pub group_interval: Option<Spanned<String>>,
    /// Default 4h.
    #[serde(default)]
    pub repeat_interval: Option<Spanned<String>>,
}

/// One silence.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceSpec {
    /// Stable id.
    pub id: String,
    /// What it silences.
    #[serde(rename = "match")]
    pub matcher: MatchSpec,
    /// RFC 3339 start (default: always).
    #[serde(default)]
    pub starts: Option<Spanned<String>>,
    /// RFC 3339 end (required: a silence without an end is a muted rule).
    pub ends: Spanned<String>,
    /// Who set it.
    #[serde(default)]
    pub created_by: Option<String>,
    /// Why.
    #[serde(default)]
    pub comment: Option<String>,
}

/// `delivery`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySpec {
    /// Attempts in all (default 8).
    #[serde(default)]
    pub attempts: Option<Spanned<u32>>,
    /// First backoff ceiling (default 1s).
    #[serde(default)]
    pub base: Option<Spanned<String>>,
    /// Largest backoff ceiling (default 5m).
    #[serde(default)]
    pub max: Option<Spanned<String>>,
    /// Longest single send (default 30s).
    #[serde(default)]
    pub send_timeout: Option<Spanned<String>>,
}

/// A loaded, checked config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub file: PathBuf,
    /// As written (after `${ENV}` expansion).
    pub spec: ConfigSpec,
    /// The state database path.
    pub state: PathBuf,
    /// What the router runs on.
    pub router: RouterConfig,
    /// The outbox's retry policy.
    pub retry: RetryPolicy,
}

/// Reads and checks a config file with the process environment.
pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|source| vec![ConfigError::Io { file: file.clone(), source }])?;
    load_str(&text, path, &|name| std::env::var(name).ok())
}

/// The state database a config names, read without checking the rest: `outbox list|retry`
/// need only that, and must work on a host where the sinks' secrets are not set.
pub fn state_path(path: &Path) -> Result<PathBuf, ConfigError> {
    #[derive(Deserialize)]
    struct StateOnly {
        #[serde(default)]
        state: Option<Spanned<PathBuf>>,
    }
    let file = path.display().to_string();
    let (spec, raw): (StateOnly, String) = read_lenient(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    match spec.state {
        None => Ok(dir.join("logwarden-state.redb")),
        Some(s) => {
            // The `state:` line itself is expanded again as `load` expands it (expansion is
            // line by line, so this is the same result): a variable it needs and lacks is an
            // error, while `${LOGWARDEN_STATE:-default}` takes its default.
            let line = line_of(&s);
            let own = raw.lines().nth(line.saturating_sub(1) as usize).unwrap_or("");
            expand_env(own, &file, &|name| std::env::var(name).ok()).map_err(|e| match e {
                ConfigError::Env { file, detail, .. } => ConfigError::Env { file, line, detail },
                other => other,
            })?;
            Ok(dir.join(s.value))
        }
    }
}

/// The keys `T` takes from a config file (others ignored), read with unset variables as
/// empty: a command that needs only those must work on a host where the sinks' secrets are
/// not set. Also the file's text as written.
fn read_lenient<T: serde::de::DeserializeOwned>(path: &Path) -> Result<(T, String), ConfigError> {
    let file = path.display().to_string();
    let raw = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Io { file: file.clone(), source })?;
    // An unset variable reads as empty here: the sinks' secrets are not ours to demand.
    let lenient = |name: &str| Some(std::env::var(name).unwrap_or_default());
    let mut subs = redact::Substituted::default();
    let text =
        expand_env_recording(&raw, &file, &lenient, &mut subs).map_err(|e| e.redacted(&subs))?;
    let spec = serde_saphyr::from_str(&text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let message = crate::rule::load::strip_location(&e.without_snippet().to_string());
        ConfigError::Yaml { file: file.clone(), line, column, message }.redacted(&subs)
    })?;
    Ok((spec, raw))
}

/// The `api:` section of a config, read without checking the rest (as [`state_path`]
/// does): how `logwarden silence` reaches the daemon. An empty token is none.
pub fn api_section(path: &Path) -> Result<Option<ApiSpec>, ConfigError> {
    #[derive(Deserialize)]
    struct ApiOnly {
        #[serde(default)]
        api: Option<ApiSpec>,
    }
    let (spec, _): (ApiOnly, String) = read_lenient(path)?;
    Ok(spec.api.map(|mut a| {
        a.token = a.token.filter(|t| !t.is_empty());
        a
    }))
}

/// Checks config text; `path` names it in errors and anchors relative paths. No error
/// echoes a secret: a value `${...}` put in the text is shown as its reference, and URLs
/// without their passwords and query values ([`redact`]).
pub fn load_str(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigError>> {
    let file = path.display().to_string();
    let mut subs = redact::Substituted::default();
    let checked = match expand_env_recording(text, &file, env, &mut subs) {
        Ok(text) => check(&text, path),
        Err(e) => Err(vec![e]),
    };
    checked.map_err(|errors| errors.into_iter().map(|e| e.redacted(&subs)).collect())
}

/// Checks config text after `${...}` expansion.
fn check(text: &str, path: &Path) -> Result<Config, Vec<ConfigError>> {
    let file = path.display().to_string();
    let spec: ConfigSpec = if text.trim().is_empty() {
        ConfigSpec::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            let message = crate::rule::load::strip_location(&e.without_snippet().to_string());
            vec![ConfigError::Yaml { file: file.clone(), line, column, message }]
        })?
    };
    // Relative paths are the config's neighbours, whatever directory logwarden starts in;
    // resolved before the sinks are built, since building reads `ca_file`.
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut spec = spec;
    spec.rules = spec.rules.map(|p| dir.join(p));
    spec.geoip = spec.geoip.map(|p| dir.join(p));
    for out in spec.outputs.values_mut() {
        if let crate::output::OutputConfig::File(f) = &mut out.value {
            f.path = dir.join(&f.path);
        }
    }
    for src in spec.sources.values_mut() {
        if let crate::source::SourceConfig::Http(h) = &mut src.value {
            // `token: ${LOGWARDEN_INTAKE_TOKEN:-}` unset reads as empty: no token.
            h.token = h.token.take().filter(|t| !t.is_empty());
        }
        if let crate::source::SourceConfig::CloudtrailDir(d) = &mut src.value {
            d.path = dir.join(&d.path);
        }
        if let crate::source::SourceConfig::File(f) = &mut src.value {
            let rel = |p: &String| dir.join(p).to_string_lossy().into_owned();
            f.paths = f.paths.iter().map(rel).collect();
        }
        if let crate::source::SourceConfig::SyslogTcp(t) = &mut src.value
            && let Some(tls) = &mut t.tls
        {
            tls.cert = dir.join(&tls.cert);
            tls.key = dir.join(&tls.key);
            tls.client_ca = tls.client_ca.as_ref().map(|p| dir.join(p));
        }
    }
    if let Some(sc) = &mut spec.scan {
        sc.value.watch = sc.value.watch.as_ref().map(|p| dir.join(p));
        sc.value.advisories = sc.value.advisories.as_ref().map(|p| dir.join(p));
    }
    for sink in spec.sinks.values_mut() {
        match &mut sink.value {
            SinkConfig::File(f) => f.path = dir.join(&f.path),
            SinkConfig::Email(e) => e.ca_file = e.ca_file.as_ref().map(|p| dir.join(p)),
            _ => {}
        }
    }
    let mut errors = Vec::new();
    // Each error is placed at the value at fault, from the position the YAML parser
    // recorded for it (`${ENV}` expansion never adds or removes a line).
    let mut invalid = |key: String, line: u64, detail: String| {
        errors.push(ConfigError::Invalid { file: file.clone(), line: line.max(1), key, detail });
    };
    let span = |text: &str| duration::parse(text).map_err(|e| e.to_string());

    let mut router = RouterConfig::default();
    for (sink, cfg) in &spec.sinks {
        let at = line_of(cfg);
        if let Err(e) = crate::sink::build(sink, &cfg.value) {
            invalid(format!("sinks.{sink}"), at, e.to_string());
        }
        let Some(rl) = cfg.value.rate_limit() else { continue };
        match span(&rl.per) {
            Ok(per) if rl.count > 0 && per.nanos() > 0 => {
                let burst = rl.burst.unwrap_or(rl.count);
                router.rate_limits.insert(sink.clone(), RateLimit { count: rl.count, per, burst });
            }
            Ok(_) => invalid(
                format!("sinks.{sink}.rate_limit"),
                at,
                "count and per must be above zero".into(),
            ),
            Err(e) => invalid(format!("sinks.{sink}.rate_limit.per"), at, e),
        }
    }
    for (i, r) in spec.routes.iter().enumerate() {
        let r_at = line_of(r);
        let r = &r.value;
        let name = r.name.clone().unwrap_or_else(|| format!("routes[{i}]"));
        if r.sinks.value.is_empty() {
            invalid(
                format!("{name}.sinks"),
                line_of(&r.sinks),
                "a route needs at least one sink".into(),
            );
        }
        for (k, s) in r.sinks.value.iter().enumerate() {
            if r.sinks.value[..k].iter().any(|o| o.value == s.value) {
                invalid(
                    format!("{name}.sinks"),
                    line_of(s),
                    format!("`{}` is named twice: it would get every notification twice", s.value),
                );
            }
            if !spec.sinks.contains_key(&s.value) {
                let known: Vec<&str> = spec.sinks.keys().map(String::as_str).collect();
                invalid(
                    format!("{name}.sinks"),
                    line_of(s),
                    format!("no sink named `{}` (sinks: {})", s.value, known.join(", ")),
                );
            }
        }
        let matcher = match compile_match(&r.matcher) {
            Ok(m) => m,
            Err(e) => {
                let at = r.matcher.severity.as_ref().map_or(r_at, line_of);
                invalid(format!("{name}.match.severity"), at, e);
                AlertMatcher::default()
            }
        };
        let mut dur = |key: &str, v: &Option<Spanned<String>>, default: Span, zero_ok: bool| {
            let Some(t) = v else { return default };
            match span(&t.value) {
                Ok(s) if zero_ok || s.nanos() > 0 => s,
                Ok(_) => {
                    invalid(format!("{name}.{key}"), line_of(t), "must be longer than zero".into());
                    default
                }
                Err(e) => {
                    invalid(format!("{name}.{key}"), line_of(t), e);
                    default
                }
            }
        };
        let route = Route {
            name: name.clone(),
            matcher,
            sinks: r.sinks.value.iter().map(|s| s.value.clone()).collect(),
            cont: r.cont,
            send_resolved: r.send_resolved,
            group_by: r
                .group_by
                .clone()
                .unwrap_or_else(|| vec!["rule.id".into(), "fingerprint".into()]),
            group_wait: dur("group_wait", &r.group_wait, Span::from_secs(30), true),
            group_interval: dur("group_interval", &r.group_interval, Span::from_secs(300), false),
            repeat_interval: dur(
                "repeat_interval",
                &r.repeat_interval,
                Span::from_secs(4 * 3600),
                false,
            ),
        };
        router.routes.push(route);
    }
    for s in &spec.silences {
        let s_at = line_of(s);
        let s = &s.value;
        let time = |t: &Spanned<String>| Timestamp::parse_rfc3339(&t.value).ok_or(line_of(t));
        let starts = match &s.starts {
            None => Ok(Timestamp(i64::MIN)),
            Some(t) => time(t),
        };
        let ends = time(&s.ends);
        let matcher = compile_match(&s.matcher);
        let rfc3339 = "`starts` and `ends` must be RFC 3339 times such as 2026-12-01T00:00:00Z";
        match (starts, ends, matcher) {
            (Ok(starts), Ok(ends), Ok(matcher)) if starts < ends => router.silences.push(Silence {
                id: s.id.clone(),
                matcher,
                starts,
                ends,
                created_by: s.created_by.clone().unwrap_or_default(),
                comment: s.comment.clone().unwrap_or_default(),
            }),
            (_, _, Err(e)) => {
                let at = s.matcher.severity.as_ref().map_or(s_at, line_of);
                invalid(format!("silences.{}.match", s.id), at, e)
            }
            (Err(at), _, _) | (_, Err(at), _) => {
                invalid(format!("silences.{}", s.id), at, rfc3339.into())
            }
            _ => invalid(
                format!("silences.{}", s.id),
                line_of(&s.ends),
                "ends before it starts".into(),
            ),
        }
    }
    let mut retry = RetryPolicy::default();
    if let Some(d) = &spec.delivery {
        if let Some(a) = &d.attempts {
            if a.value == 0 {
                invalid("delivery.attempts".into(), line_of(a), "must be at least 1".into());
            }
            retry.attempts = a.value.max(1);
        }
        for (key, v, slot) in [
            ("base", &d.base, &mut retry.base),
            ("max", &d.max, &mut retry.max),
            ("send_timeout", &d.send_timeout, &mut retry.send_timeout),
        ] {
            if let Some(t) = v {
                match span(&t.value) {
                    Ok(s) if s.nanos() > 0 => {
                        *slot = std::time::Duration::from_nanos(s.nanos() as u64)
                    }
                    Ok(_) => invalid(
                        format!("delivery.{key}"),
                        line_of(t),
                        "must be longer than zero".into(),
                    ),
                    Err(e) => invalid(format!("delivery.{key}"), line_of(t), e),
                }
            }
        }
    }
    for (name, src) in &spec.sources {
        use crate::source::SourceConfig;
        let at = line_of(src);
        let listen = match &src.value {
            SourceConfig::SyslogUdp(c) => Some(&c.listen),
            SourceConfig::SyslogTcp(c) => Some(&c.listen),
            SourceConfig::File(c) => {
                if let Err(e) = crate::source::tail::Tail::new(name, c, Default::default()) {
                    invalid(format!("sources.{name}"), at, e.to_string());
                }
                None
            }
            SourceConfig::CloudtrailDir(d) => {
                if !d.path.is_dir() {
                    invalid(
                        format!("sources.{name}.path"),
                        at,
                        format!("`{}` is not a directory", d.path.display()),
                    );
                }
                None
            }
            SourceConfig::Stdin(_) => None,
            SourceConfig::Http(h) => Some(&h.listen),
            SourceConfig::Nats(n) => {
                if let Err(e) = n.validate() {
                    invalid(format!("sources.{name}"), at, e.to_string());
                }
                if !cfg!(feature = "nats") {
                    invalid(
                        format!("sources.{name}"),
                        at,
                        "this logwarden was built without the `nats` feature".into(),
                    );
                }
                None
            }
        };
        if let Some(l) = listen
            && l.parse::<std::net::SocketAddr>().is_err()
        {
            invalid(
                format!("sources.{name}.listen"),
                at,
                format!("`{l}` is not an address such as 127.0.0.1:5514 or [::]:514"),
            );
        }
        if let SourceConfig::Http(h) = &src.value
            && h.token.is_none()
            && h.listen.parse::<std::net::SocketAddr>().is_ok_and(|a| !a.ip().is_loopback())
        {
            invalid(
                format!("sources.{name}.listen"),
                at,
                format!(
                    "`{}` is not a loopback address, so the intake needs `token` (the secret \
                     its forwarders send, from ${{ENV}} or ${{file:...}}): without one, anyone \
                     who reaches the port could feed it forged events",
                    h.listen
                ),
            );
        }
        let mut durations = vec![("max_silence", src.value.max_silence())];
        if let SourceConfig::SyslogTcp(c) = &src.value {
            durations.push(("idle_timeout", c.idle_timeout.as_deref()));
        }
        if let SourceConfig::Http(c) = &src.value {
            durations.push(("idle_timeout", c.idle_timeout.as_deref()));
        }
        for (key, v) in durations {
            if let Some(v) = v {
                match span(v) {
                    Ok(s) if s.nanos() > 0 => {}
                    Ok(_) => invalid(
                        format!("sources.{name}.{key}"),
                        at,
                        "must be longer than zero".into(),
                    ),
                    Err(e) => invalid(format!("sources.{name}.{key}"), at, e),
                }
            }
        }
    }
    for (name, out) in &spec.outputs {
        if let Err(e) = crate::output::Output::build(name, &out.value) {
            invalid(format!("outputs.{name}"), line_of(out), e.to_string());
        }
    }
    if let Some(f) = &spec.forward
        && let Err(e) = f.value.validate()
    {
        invalid("forward".into(), line_of(f), e.to_string());
    }
    if spec.mode == Mode::Forward && spec.forward.is_none() {
        invalid("mode".into(), 1, "`mode: forward` needs a `forward:` section".into());
    }
    if let Some(api) = &mut spec.api {
        // `token: ${LOGWARDEN_API_TOKEN:-}` unset reads as empty: no token.
        api.token = api.token.take().filter(|t| !t.is_empty());
        let at = line_of(&api.listen);
        match api.listen.value.parse::<std::net::SocketAddr>() {
            Err(_) => invalid(
                "api.listen".into(),
                at,
                format!("`{}` is not an address such as 127.0.0.1:9600", api.listen.value),
            ),
            Ok(addr) if !addr.ip().is_loopback() && api.token.is_none() => invalid(
                "api.listen".into(),
                at,
                format!(
                    "`{}` is not a loopback address, so the API needs `api.token` (from \
                     ${{ENV}} or ${{file:...}}): the daemon's own token, used when none is \
                     set, is for clients on this host, and /metrics would be open to the \
                     network",
                    api.listen.value
                ),
            ),
            Ok(_) => {}
        }
    }
    if let Some(t) = spec.api.as_ref().and_then(|a| a.idle_timeout.as_deref()) {
        match duration::parse(t) {
            Ok(s) if s.nanos() > 0 => {}
            Ok(_) => invalid("api.idle_timeout".into(), 1, "must be longer than zero".into()),
            Err(e) => invalid("api.idle_timeout".into(), 1, e.to_string()),
        }
    }
    if let Some(tz) = spec.syslog.as_ref().and_then(|s| s.timezone.as_deref())
        && tz.parse::<chrono_tz::Tz>().is_err()
    {
        invalid(
            "syslog.timezone".into(),
            1,
            format!("`{tz}` is not an IANA time zone such as Europe/Berlin"),
        );
    }
    for (i, app) in spec.applications.iter().enumerate() {
        let name = &app.value.name;
        if crate::scan::store::check_name("application", name).is_err() {
            invalid(
                format!("applications[{i}].name"),
                line_of(app),
                format!("`{name}` must be 1 to 200 printable characters"),
            );
        }
        if spec.applications[..i].iter().any(|o| o.value.name == *name) {
            invalid(
                format!("applications[{i}].name"),
                line_of(app),
                format!("`{name}` is listed twice"),
            );
        }
    }
    if let Some(sc) = &spec.scan {
        let at = line_of(sc);
        let tz = match sc.value.timezone.as_deref().map(str::parse::<chrono_tz::Tz>) {
            None => Some(chrono_tz::Tz::UTC),
            Some(Ok(tz)) => Some(tz),
            Some(Err(_)) => {
                let tz = sc.value.timezone.as_deref().unwrap_or_default();
                invalid(
                    "scan.timezone".into(),
                    at,
                    format!("`{tz}` is not an IANA time zone such as Europe/Berlin"),
                );
                None
            }
        };
        if let (Some(text), Some(tz)) = (&sc.value.schedule, tz)
            && let Err(e) = crate::scan::schedule::Schedule::parse(text, tz)
        {
            invalid("scan.schedule".into(), at, e.to_string());
        }
        match sc.value.poll.as_deref().map(span) {
            Some(Err(e)) => invalid("scan.poll".into(), at, e),
            Some(Ok(p)) if p.nanos() < 100_000_000 => {
                invalid("scan.poll".into(), at, "must be at least 100ms".into())
            }
            _ => {}
        }
        if sc.value.schedule.is_some() && sc.value.advisories.is_none() {
            invalid(
                "scan.schedule".into(),
                at,
                "re-evaluation needs `scan.advisories` (an OSV directory)".into(),
            );
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let state = dir.join(spec.state.as_deref().unwrap_or(Path::new("logwarden-state.redb")));
    Ok(Config { file: path.to_path_buf(), spec, state, router, retry })
}

/// Rule ids that routes and silences name but `rules` lacks: a typo there silently routes
/// nothing, so `check -c` reports each with its line.
pub fn lint_rule_ids(config: &Config, rules: &std::collections::HashSet<&str>) -> Vec<String> {
    let file = config.file.display();
    let mut out = Vec::new();
    let named = config
        .spec
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let name = r.value.name.clone().unwrap_or_else(|| format!("routes[{i}]"));
            (format!("route `{name}`"), &r.value.matcher)
        })
        .chain(
            config
                .spec
                .silences
                .iter()
                .map(|s| (format!("silence `{}`", s.value.id), &s.value.matcher)),
        );
    for (what, m) in named {
        for id in &m.rules {
            if !rules.contains(id.value.as_str()) {
                out.push(format!(
                    "{file}:{}: {what} matches rule `{}`, which no rule file defines",
                    line_of(id),
                    id.value
                ));
            }
        }
    }
    out
}

/// The line a value was read from (0 when the parser could not say).
fn line_of<T>(s: &Spanned<T>) -> u64 {
    s.referenced.line()
}

/// A silence sent to the API, checked as a config silence is: `starts` defaults to `now`,
/// `ends` must follow it, and the severity bound must parse.
pub fn silence_from_record(
    r: &crate::state::silences::SilenceRecord,
    now: Timestamp,
) -> Result<Silence, String> {
    let time = |t: &str| {
        Timestamp::parse_rfc3339(t)
            .ok_or_else(|| format!("`{t}` is not an RFC 3339 time such as 2026-12-01T00:00:00Z"))
    };
    let starts = match &r.starts {
        Some(t) => time(t)?,
        None => now,
    };
    let ends = time(&r.ends)?;
    if ends <= starts {
        return Err("`ends` must be after `starts`".into());
    }
    if r.id.is_empty() {
        return Err("a silence needs an id".into());
    }
    let m = &r.matcher;
    let matcher = AlertMatcher {
        severity: m.severity.as_deref().map(SeverityBound::parse).transpose()?,
        rules: m.rules.clone(),
        tags: m.tags.clone(),
        labels: m.labels.clone(),
    };
    Ok(Silence {
        id: r.id.clone(),
        matcher,
        starts,
        ends,
        created_by: r.created_by.clone(),
        comment: r.comment.clone(),
    })
}

fn compile_match(m: &MatchSpec) -> Result<AlertMatcher, String> {
    Ok(AlertMatcher {
        severity: m.severity.as_ref().map(|s| SeverityBound::parse(&s.value)).transpose()?,
        rules: m.rules.iter().map(|r| r.value.clone()).collect(),
        tags: m.tags.clone(),
        labels: m.labels.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOOK" => Some("http://127.0.0.1:9/hook".into()),
            "TWO" => Some("a\nb".into()),
            _ => None,
        }
    }

    fn load(text: &str) -> Result<Config, Vec<ConfigError>> {
        load_str(text, Path::new("/etc/logwarden/logwarden.yml"), &env)
    }

    fn errors(text: &str) -> Vec<String> {
        match load(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(es) => es.iter().map(ToString::to_string).collect(),
        }
    }

    const GOOD: &str = "\
sinks:
  hook:
    type: webhook
    url: ${HOOK}
    rate_limit: {count: 30, per: 1m, burst: 5}
  out: {type: stdout}
routes:
  - name: urgent
    match: {severity: \">= high\", tags: [attack.credential_access]}
    sinks: [hook]
    continue: true
    group_by: [rule.id, source.ip]
    group_wait: 10s
    repeat_interval: 1h
  - sinks: [out]
silences:
  - id: scanner
    match: {labels: {source.ip: 192.0.2.10}}
    starts: 2026-11-01T00:00:00Z
    ends: 2026-12-01T00:00:00Z
    comment: our own scanner
delivery: {attempts: 3, base: 100ms}
";

    #[test]
    fn a_full_config_loads_with_env_and_defaults() {
        let c = load(GOOD).expect("loads");
        assert_eq!(c.state, Path::new("/etc/logwarden/logwarden-state.redb"));
        let crate::sink::SinkConfig::Webhook(w) = &c.spec.sinks["hook"].value else { panic!() };
        assert_eq!(w.url, "http://127.0.0.1:9/hook");
        let rl = &c.router.rate_limits["hook"];
        assert_eq!((rl.count, rl.per, rl.burst), (30, Span::from_secs(60), 5));
        let [urgent, second] = &c.router.routes[..] else { panic!("two routes") };
        assert_eq!(urgent.name, "urgent");
        assert!(urgent.cont);
        assert_eq!(urgent.group_by, ["rule.id", "source.ip"]);
        assert_eq!(urgent.group_wait, Span::from_secs(10));
        assert_eq!(urgent.group_interval, Span::from_secs(300));
        assert_eq!(urgent.repeat_interval, Span::from_secs(3600));
        assert_eq!(urgent.matcher.tags, ["attack.credential_access"]);
        assert_eq!(second.name, "routes[1]");
        assert_eq!(second.group_by, ["rule.id", "fingerprint"]);
        assert_eq!(second.group_wait, Span::from_secs(30));
        let s = &c.router.silences[0];
        assert_eq!(s.id, "scanner");
        assert_eq!(s.ends, Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").expect("time"));
        assert_eq!(c.retry.attempts, 3);
        assert_eq!(c.retry.base, std::time::Duration::from_millis(100));
    }

    #[test]
    fn applications_and_the_scan_section_are_checked_with_their_lines() {
        let c = load(
            "applications:\n  - {name: shop, owners: [team-a], criticality: high, stage: release}\n\
             scan: {watch: reports, advisories: /osv, schedule: daily 02:30, timezone: Europe/Berlin}\n",
        )
        .expect("loads");
        let sc = &c.spec.scan.as_ref().unwrap().value;
        assert_eq!(sc.watch.as_deref(), Some(Path::new("/etc/logwarden/reports")));
        assert_eq!(sc.advisories.as_deref(), Some(Path::new("/osv")));
        assert_eq!(c.spec.applications[0].value.owners, ["team-a"]);
        assert!(c.spec.applications[0].value.monitor, "monitored unless said");
        let e = errors(
            "applications:\n  - {name: shop}\n  - {name: shop, monitor: false}\n\
             scan:\n  schedule: \"61 * * * *\"\n  timezone: Mars/Olympus\n",
        );
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(
            e[0].starts_with(
                "/etc/logwarden/logwarden.yml:3: `applications[1].name`: `shop` is listed twice"
            ),
            "{}",
            e[0]
        );
        assert!(e[1].contains("`scan.timezone`: `Mars/Olympus`"), "{}", e[1]);
        assert!(
            e[2].contains("`scan.schedule`: re-evaluation needs `scan.advisories`"),
            "{}",
            e[2]
        );
        let e = errors("scan: {advisories: /osv, schedule: \"61 * * * *\"}\n");
        assert!(e[0].contains("`scan.schedule`") && e[0].contains("61 * * * *"), "{e:?}");
        let e = errors("scan: {poll: 0s}\n");
        assert!(e[0].contains("`scan.poll`: must be at least 100ms"), "{e:?}");
        let e = errors("applications:\n  - {name: shop, owner: team-a}\n");

        assert!(e[0].contains(":2:") && e[0].contains("owner"), "{e:?}");
    }

    #[test]
    fn relative_paths_are_beside_the_config() {
        let c =
            load("state: state/lw.redb\nrules: ../rules\ngeoip: /geo/City.mmdb\n").expect("loads");
        assert_eq!(c.state, Path::new("/etc/logwarden/state/lw.redb"));
        assert_eq!(c.spec.rules.as_deref(), Some(Path::new("/etc/logwarden/../rules")));
        assert_eq!(c.spec.geoip.as_deref(), Some(Path::new("/geo/City.mmdb")));
    }

    #[test]
    fn a_sink_named_twice_in_a_route_is_an_error() {
        let e = errors("sinks:\n  out: {type: stdout}\nroutes:\n  - sinks: [out, out]\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("`out` is named twice"), "{}", e[0]);
    }

    #[test]
    fn an_unset_variable_is_named_with_its_line() {
        let e = errors("sinks:\n  s:\n    type: slack\n    webhook_url: ${SLACK_URL}\n");
        assert_eq!(
            e,
            ["/etc/logwarden/logwarden.yml:4: environment variable `SLACK_URL` is not set"]
        );
        let e = errors("state: /var/${TWO}\n");
        assert_eq!(e, ["/etc/logwarden/logwarden.yml:1: environment variable `TWO` spans lines"]);
        let e = errors("\na: ${OPEN\n");
        assert_eq!(e, ["/etc/logwarden/logwarden.yml:2: `${` without a closing `}`"]);
    }

    #[test]
    fn an_unknown_key_is_named_with_line_and_column() {
        let e =
            errors("sinks:\n  out: {type: stdout}\nroutes:\n  - sinks: [out]\n    groupby: [x]\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("/etc/logwarden/logwarden.yml:5:5: "), "{}", e[0]);
        assert!(e[0].contains("unknown field `groupby`"), "{}", e[0]);
        // `type` picks the variant, so serde reads a sink whole before its fields: a mistake
        // inside one is placed at the sink's name, and the message names the key.
        let e = errors(
            "sinks:\n  out:\n    type: stdout\n    rate_limit: {count: 1, per: 1s, brust: 2}\n",
        );
        assert!(e[0].starts_with("/etc/logwarden/logwarden.yml:2:3: "), "{}", e[0]);
        assert!(e[0].contains("unknown field `brust`"), "{}", e[0]);
    }

    #[test]
    fn listener_limits_have_safe_defaults_and_bad_ones_are_named() {
        let c = load("api: {listen: \"127.0.0.1:9600\"}\nsources:\n  in: {type: http, listen: \"127.0.0.1:9601\"}\n").expect("loads");
        let api = c.spec.api.as_ref().expect("api").limits();
        assert_eq!(
            (api.max_connections, api.max_connections_per_address, api.max_in_flight),
            (256, 64, 32)
        );
        assert_eq!(api.idle_timeout, std::time::Duration::from_secs(30));
        let crate::source::SourceConfig::Http(h) = &c.spec.sources["in"].value else { panic!() };
        let l = h.limits(None);
        assert_eq!(
            (l.max_connections, l.max_connections_per_address, l.max_in_flight),
            (1024, 64, 64)
        );
        assert_eq!(h.max_buffered_bytes(), 64 << 20);
        // A budget below two bodies would refuse every large request: raised to two.
        let c = load("sources:\n  in: {type: http, listen: \"127.0.0.1:9601\", max_body_bytes: 1000, max_buffered_bytes: 10}\n").expect("loads");
        let crate::source::SourceConfig::Http(h) = &c.spec.sources["in"].value else { panic!() };
        assert_eq!(h.max_buffered_bytes(), 2000);
        let e = errors(
            "api: {listen: \"127.0.0.1:9600\", idle_timeout: 0s}\nsources:\n  in: {type: http, listen: \"127.0.0.1:9601\", idle_timeout: soon}\n",
        );
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(e.iter().any(|e| e.contains("`sources.in.idle_timeout`")), "{e:#?}");
        assert!(
            e.iter().any(|e| e.contains("`api.idle_timeout`: must be longer than zero")),
            "{e:#?}"
        );
        // Zero connections is not a cap but an outage: refused as the file is read.
        let e = errors("api: {listen: \"127.0.0.1:9600\", max_in_flight: 0}\n");
        assert!(
            e[0].ends_with(":1:33: invalid value: integer `0`, expected a nonzero usize"),
            "{e:#?}"
        );
    }

    #[test]
    fn every_bad_value_is_reported_at_once_with_its_line() {
        let text = "\
sinks:
  out: {type: stdout}
  slow:
    type: webhook
    url: http://127.0.0.1:9/
    rate_limit: {count: 5, per: soon}
routes:
  - name: r1
    sinks: [out, pager]
    match: {severity: \"> severe\"}
    group_wait: 5 minutes please
  - name: r2
    sinks: []
    repeat_interval: 0s
silences:
  - id: backwards
    match: {rules: [x]}
    starts: 2026-12-01T00:00:00Z
    ends: 2026-11-01T00:00:00Z
  - id: bad-time
    match: {}
    ends: tomorrow
delivery: {attempts: 0}
";
        let e = errors(text);
        let f = "/etc/logwarden/logwarden.yml";
        let want = [
            // Inside a sink, the sink's first line (its `type` tag makes serde read it whole).
            format!("{f}:4: `sinks.slow.rate_limit.per`: "),
            format!("{f}:9: `r1.sinks`: no sink named `pager` (sinks: out, slow)"),
            format!("{f}:10: `r1.match.severity`: "),
            format!("{f}:11: `r1.group_wait`: "),
            format!("{f}:13: `r2.sinks`: a route needs at least one sink"),
            format!("{f}:14: `r2.repeat_interval`: must be longer than zero"),
            format!("{f}:19: `silences.backwards`: ends before it starts"),
            format!("{f}:22: `silences.bad-time`: `starts` and `ends` must be RFC 3339"),
            format!("{f}:23: `delivery.attempts`: must be at least 1"),
        ];
        assert_eq!(e.len(), want.len(), "{e:#?}");
        for (got, want) in e.iter().zip(&want) {
            assert!(got.starts_with(want.as_str()), "got {got:?}\nwant {want:?}");
        }
    }

    #[test]
    fn equal_values_and_unnamed_routes_are_placed_at_their_own_lines() {
        // A text search for the value found the first `5x` twice and could not tell
        // unnamed routes apart; the parser's positions can.
        let text = "\
sinks:
  timeout: {type: stdout}
routes:
  - sinks: [timeout]
    group_wait: 5x
  - sinks: [timeout]
    group_wait: 5x
  - sinks:
      - timeout
      - nope
";
        let e = errors(text);
        let f = "/etc/logwarden/logwarden.yml";
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(e[0].starts_with(&format!("{f}:5: `routes[0].group_wait`")), "{}", e[0]);
        assert!(e[1].starts_with(&format!("{f}:7: `routes[1].group_wait`")), "{}", e[1]);
        assert!(
            e[2].starts_with(&format!("{f}:10: `routes[2].sinks`: no sink named `nope`")),
            "{}",
            e[2]
        );
    }

    #[test]
    fn the_state_path_is_read_without_the_sinks_secrets() {
        let dir = tempfile::tempdir().expect("dir");
        let cfg = dir.path().join("logwarden.yml");
        std::fs::write(
            &cfg,
            "state: db/lw.redb\nsinks:\n  s: {type: slack, webhook_url: \"${LW_TEST_UNSET_SLACK}\"}\n",
        )
        .expect("write");
        assert_eq!(state_path(&cfg).expect("state"), dir.path().join("db/lw.redb"));
        std::fs::write(&cfg, "sinks: {}\n").expect("write");
        assert_eq!(state_path(&cfg).expect("state"), dir.path().join("logwarden-state.redb"));
        std::fs::write(&cfg, "\nstate: ${LW_TEST_UNSET_STATE}/x.redb\n").expect("write");
        let e = state_path(&cfg).expect_err("its own variable is needed").to_string();
        assert!(e.ends_with(":2: environment variable `LW_TEST_UNSET_STATE` is not set"), "{e}");
        // A default stands in for the unset variable, as `load` has it.
        std::fs::write(&cfg, "state: ${LW_TEST_UNSET_STATE:-db/d.redb}\n").expect("write");
        assert_eq!(state_path(&cfg).expect("state"), dir.path().join("db/d.redb"));
        std::fs::write(&cfg, "\n\nstate: ${LW_TEST_UNSET_STATE:-${LW_TEST_UNSET_DIR}}/x\n")
            .expect("write");
        let e = state_path(&cfg).expect_err("the default's variable is needed").to_string();
        assert!(e.ends_with(":3: environment variable `LW_TEST_UNSET_DIR` is not set"), "{e}");
    }

    #[test]
    fn a_bad_sink_is_reported() {
        let e = errors("sinks:\n  mail:\n    type: webhook\n    url: not a url\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("/etc/logwarden/logwarden.yml:3: `sinks.mail`: "), "{}", e[0]);
    }

    #[test]
    fn an_api_or_intake_off_loopback_needs_a_token_and_says_where() {
        let f = "/etc/logwarden/logwarden.yml";
        let text = "sinks: {}\napi:\n  listen: 0.0.0.0:9600\n  token: \"${UNSET:-}\"\n";
        let e = errors(text);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(
            e[0].starts_with(&format!(
                "{f}:3: `api.listen`: `0.0.0.0:9600` is not a loopback address, so the API \
                 needs `api.token`"
            )),
            "{}",
            e[0]
        );
        let c = load("api: {listen: \"0.0.0.0:9600\", token: s3cret}\n").expect("a token");
        assert_eq!(c.spec.api.as_ref().and_then(|a| a.token.as_deref()), Some("s3cret"));
        // On loopback an empty token is none: the daemon makes its own.
        for listen in ["127.0.0.1:9600", "[::1]:9600"] {
            let c = load(&format!("api: {{listen: \"{listen}\", token: \"\"}}\n")).expect("local");
            assert_eq!(c.spec.api.as_ref().map(|a| a.token.is_none()), Some(true));
        }
        let e = errors("\napi: {listen: \"localhost:9600\"}\n");
        assert!(e[0].starts_with(&format!("{f}:2: `api.listen`: `localhost:9600` is not an")));

        let intake = |listen: &str, token: &str| {
            format!(
                "sources:\n  local: {{type: stdin}}\n  fwd:\n    type: http\n    listen: \"{listen}\"\n{token}"
            )
        };
        let e = errors(&intake("0.0.0.0:9601", ""));
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(
            e[0].starts_with(&format!(
                "{f}:4: `sources.fwd.listen`: `0.0.0.0:9601` is not a loopback address, so the \
                 intake needs `token`"
            )),
            "{}",
            e[0]
        );
        assert_eq!(errors(&intake("[::]:9601", "    token: \"\"\n")).len(), 1);
        load(&intake("0.0.0.0:9601", "    token: fwd-s3cret\n")).expect("a token");
        let c = load(&intake("127.0.0.1:9601", "    token: \"\"\n")).expect("loopback");
        let crate::source::SourceConfig::Http(h) = &c.spec.sources["fwd"].value else { panic!() };
        assert_eq!(h.token, None);
    }

    #[test]
    fn the_api_section_is_read_without_the_sinks_secrets() {
        let dir = tempfile::tempdir().expect("dir");
        let cfg = dir.path().join("logwarden.yml");
        std::fs::write(
            &cfg,
            "sinks:\n  s: {type: slack, webhook_url: \"${LW_TEST_UNSET_SLACK}\"}\n\
             api:\n  listen: 127.0.0.1:9600\n  token: ${LW_TEST_UNSET_TOKEN:-}\n",
        )
        .expect("write");
        let api = api_section(&cfg).expect("read").expect("an api");
        assert_eq!(api.listen.value, "127.0.0.1:9600");
        assert_eq!(api.token, None);
        std::fs::write(&cfg, "api: {listen: \"127.0.0.1:1\", token: t0k}\n").expect("write");
        assert_eq!(api_section(&cfg).expect("read").and_then(|a| a.token).as_deref(), Some("t0k"));
        std::fs::write(&cfg, "sinks: {}\n").expect("write");
        assert!(api_section(&cfg).expect("read").is_none());
    }

    #[test]
    fn an_empty_file_is_an_empty_config() {
        let c = load("# nothing yet\n").expect("loads");
        assert!(c.router.routes.is_empty() && c.spec.sinks.is_empty());
    }
}
