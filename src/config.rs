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

use crate::event::Timestamp;
use crate::route::matcher::{AlertMatcher, SeverityBound};
use crate::route::router::{RateLimit, Route, RouterConfig, Silence};
use crate::rule::duration::{self, Span};
use crate::sink::SinkConfig;
use crate::sink::outbox::RetryPolicy;

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
    /// Named sinks.
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
    /// Routes, in order.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// Silences.
    #[serde(default)]
    pub silences: Vec<SilenceSpec>,
    /// Retry policy of the outbox.
    #[serde(default)]
    pub delivery: Option<DeliverySpec>,
}

/// What a route or silence matches.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// `>= high`, `< medium`, `critical`...
    #[serde(default)]
    pub severity: Option<String>,
    /// Rule ids, any of.
    #[serde(default)]
    pub rules: Vec<String>,
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
    pub sinks: Vec<String>,
    /// Keep trying later routes after this one.
    #[serde(default, rename = "continue")]
    pub cont: bool,
    /// Alert fields that make a notification group (default: rule.id and the alert's group).
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    /// Default 30s.
    #[serde(default)]
    pub group_wait: Option<String>,
    /// Default 5m.
    #[serde(default)]
    pub group_interval: Option<String>,
    /// Default 4h.
    #[serde(default)]
    pub repeat_interval: Option<String>,
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
    pub starts: Option<String>,
    /// RFC 3339 end (required: a silence without an end is a muted rule).
    pub ends: String,
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
    pub attempts: Option<u32>,
    /// First backoff ceiling (default 1s).
    #[serde(default)]
    pub base: Option<String>,
    /// Largest backoff ceiling (default 5m).
    #[serde(default)]
    pub max: Option<String>,
    /// Longest single send (default 30s).
    #[serde(default)]
    pub send_timeout: Option<String>,
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

/// Replaces `${NAME}` and `${NAME:-default}` with environment values; `$${` stays `${`.
pub fn expand_env(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        // A commented-out line may name a variable nobody sets any more.
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("${") {
            if rest[..i].ends_with('$') {
                out.push_str(&rest[..i - 1]);
                out.push_str("${");
                rest = &rest[i + 2..];
                continue;
            }
            out.push_str(&rest[..i]);
            // A default may hold braces of its own (the example's link template,
            // `{fingerprint}`): the variable ends at the `}` that balances its `${`.
            let Some(end) = closing_brace(&rest[i + 2..]).map(|e| e + 2) else {
                return Err(ConfigError::Env {
                    file: file.to_owned(),
                    line: n as u64 + 1,
                    detail: "`${` without a closing `}`".into(),
                });
            };
            let inner = &rest[i + 2..i + end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, d)) => (name, Some(d)),
                None => (inner, None),
            };
            // `${file:PATH}`: a secret mounted as a file (systemd credentials, Kubernetes
            // and Docker secrets), its trailing newline dropped.
            let looked_up = match name.strip_prefix("file:") {
                // Relative to the config file, like every other path in it.
                Some(p) => match std::fs::read_to_string(
                    Path::new(file).parent().unwrap_or(Path::new(".")).join(p),
                ) {
                    Ok(text) => Some(text.trim_end_matches(['\n', '\r']).to_owned()),
                    Err(e) if default.is_none() => {
                        return Err(ConfigError::Env {
                            file: file.to_owned(),
                            line: n as u64 + 1,
                            detail: format!("secret file `{p}`: {e}"),
                        });
                    }
                    Err(_) => None,
                },
                None => env(name),
            };
            // As in the shell, `:-` also replaces a variable that is set but empty.
            let value = match (looked_up, default) {
                (Some(v), Some(d)) if v.is_empty() => d.to_owned(),
                (Some(v), _) => v,
                (None, Some(d)) => d.to_owned(),
                (None, None) => {
                    return Err(ConfigError::Env {
                        file: file.to_owned(),
                        line: n as u64 + 1,
                        detail: format!("environment variable `{name}` is not set"),
                    });
                }
            };
            if value.contains('\n') {
                return Err(ConfigError::Env {
                    file: file.to_owned(),
                    line: n as u64 + 1,
                    detail: format!("environment variable `{name}` spans lines"),
                });
            }
            out.push_str(&value);
            rest = &rest[i + end + 1..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// The byte offset of the `}` that closes a `${` whose inside starts `s`, counting nested
/// `{...}` pairs.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (k, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(k),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Reads and checks a config file with the process environment.
pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|source| vec![ConfigError::Io { file: file.clone(), source }])?;
    load_str(&text, path, &|name| std::env::var(name).ok())
}

/// Checks config text; `path` names it in errors and anchors relative paths.
pub fn load_str(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigError>> {
    let file = path.display().to_string();
    let text = expand_env(text, &file, env).map_err(|e| vec![e])?;
    let spec: ConfigSpec = if text.trim().is_empty() {
        ConfigSpec::default()
    } else {
        serde_saphyr::from_str(&text).map_err(|e| {
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
    for sink in spec.sinks.values_mut() {
        match sink {
            SinkConfig::File(f) => f.path = dir.join(&f.path),
            SinkConfig::Email(e) => e.ca_file = e.ca_file.as_ref().map(|p| dir.join(p)),
            _ => {}
        }
    }
    let mut errors = Vec::new();
    // The line of the last needle, each searched from the line of the one before: the
    // section, then the entry, then the key or value at fault.
    let line_of = |needles: &[&str]| -> u64 {
        let lines: Vec<&str> = text.lines().collect();
        let mut at = 0;
        for needle in needles {
            match lines[at..].iter().position(|l| l.contains(needle)) {
                Some(i) => at += i,
                None => break,
            }
        }
        at as u64 + 1
    };
    let mut invalid = |key: String, needles: &[&str], detail: String| {
        let line = line_of(needles);
        errors.push(ConfigError::Invalid { file: file.clone(), line, key, detail });
    };
    let span = |text: &str| duration::parse(text).map_err(|e| e.to_string());

    let mut router = RouterConfig::default();
    for (sink, cfg) in &spec.sinks {
        if let Err(e) = crate::sink::build(sink, cfg) {
            invalid(format!("sinks.{sink}"), &["sinks:", &format!("{sink}:")], e.to_string());
        }
        let Some(rl) = cfg.rate_limit() else { continue };
        match span(&rl.per) {
            Ok(per) if rl.count > 0 && per.nanos() > 0 => {
                let burst = rl.burst.unwrap_or(rl.count);
                router.rate_limits.insert(sink.clone(), RateLimit { count: rl.count, per, burst });
            }
            Ok(_) => invalid(
                format!("sinks.{sink}.rate_limit"),
                &["sinks:", &format!("{sink}:"), "rate_limit"],
                "count and per must be above zero".into(),
            ),
            Err(e) => invalid(
                format!("sinks.{sink}.rate_limit.per"),
                &["sinks:", &format!("{sink}:"), "rate_limit", &rl.per],
                e,
            ),
        }
    }
    for (i, r) in spec.routes.iter().enumerate() {
        let name = r.name.clone().unwrap_or_else(|| format!("routes[{i}]"));
        // Unnamed routes are found by their `sinks:` key alone, so their lines are a guess.
        let anchor = r.name.as_deref().unwrap_or("sinks:");
        if r.sinks.is_empty() {
            invalid(
                format!("{name}.sinks"),
                &["routes:", anchor, "sinks:"],
                "a route needs at least one sink".into(),
            );
        }
        for (k, s) in r.sinks.iter().enumerate() {
            if r.sinks[..k].contains(s) {
                invalid(
                    format!("{name}.sinks"),
                    &["routes:", anchor, "sinks:"],
                    format!("`{s}` is named twice: it would get every notification twice"),
                );
            }
            if !spec.sinks.contains_key(s) {
                let known: Vec<&str> = spec.sinks.keys().map(String::as_str).collect();
                invalid(
                    format!("{name}.sinks"),
                    &["routes:", anchor, s],
                    format!("no sink named `{s}` (sinks: {})", known.join(", ")),
                );
            }
        }
        let matcher = match compile_match(&r.matcher) {
            Ok(m) => m,
            Err(e) => {
                invalid(format!("{name}.match.severity"), &["routes:", anchor, "severity"], e);
                AlertMatcher::default()
            }
        };
        let mut dur = |key: &str, v: &Option<String>, default: Span, zero_ok: bool| match v {
            None => default,
            Some(t) => match span(t) {
                Ok(s) if zero_ok || s.nanos() > 0 => s,
                Ok(_) => {
                    invalid(
                        format!("{name}.{key}"),
                        &["routes:", anchor, t],
                        "must be longer than zero".into(),
                    );
                    default
                }
                Err(e) => {
                    invalid(format!("{name}.{key}"), &["routes:", anchor, t], e);
                    default
                }
            },
        };
        let route = Route {
            name: name.clone(),
            matcher,
            sinks: r.sinks.clone(),
            cont: r.cont,
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
        let time = |t: &str| Timestamp::parse_rfc3339(t);
        let starts = match &s.starts {
            None => Some(Timestamp(i64::MIN)),
            Some(t) => time(t),
        };
        let ends = time(&s.ends);
        let matcher = compile_match(&s.matcher);
        match (starts, ends, matcher) {
            (Some(starts), Some(ends), Ok(matcher)) if starts < ends => {
                router.silences.push(Silence {
                    id: s.id.clone(),
                    matcher,
                    starts,
                    ends,
                    created_by: s.created_by.clone().unwrap_or_default(),
                    comment: s.comment.clone().unwrap_or_default(),
                })
            }
            (_, _, Err(e)) => invalid(format!("silences.{}.match", s.id), &["silences:", &s.id], e),
            (None, _, _) | (_, None, _) => invalid(
                format!("silences.{}", s.id),
                &["silences:", &s.id],
                "`starts` and `ends` must be RFC 3339 times such as 2026-12-01T00:00:00Z".into(),
            ),
            _ => invalid(
                format!("silences.{}", s.id),
                &["silences:", &s.id, "ends"],
                "ends before it starts".into(),
            ),
        }
    }
    let mut retry = RetryPolicy::default();
    if let Some(d) = &spec.delivery {
        if let Some(a) = d.attempts {
            if a == 0 {
                invalid(
                    "delivery.attempts".into(),
                    &["delivery:", "attempts"],
                    "must be at least 1".into(),
                );
            }
            retry.attempts = a.max(1);
        }
        for (key, v, slot) in [
            ("base", &d.base, &mut retry.base),
            ("max", &d.max, &mut retry.max),
            ("send_timeout", &d.send_timeout, &mut retry.send_timeout),
        ] {
            if let Some(t) = v {
                match span(t) {
                    Ok(s) if s.nanos() > 0 => {
                        *slot = std::time::Duration::from_nanos(s.nanos() as u64)
                    }
                    Ok(_) => invalid(
                        format!("delivery.{key}"),
                        &["delivery:", key],
                        "must be longer than zero".into(),
                    ),
                    Err(e) => invalid(format!("delivery.{key}"), &["delivery:", key], e),
                }
            }
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
    let text = std::fs::read_to_string(&config.file).unwrap_or_default();
    let line_of = |id: &str| text.lines().position(|l| l.contains(id)).map_or(1, |i| i + 1);
    let file = config.file.display();
    let mut out = Vec::new();
    let named =
        config.router.routes.iter().map(|r| (format!("route `{}`", r.name), &r.matcher)).chain(
            config.router.silences.iter().map(|s| (format!("silence `{}`", s.id), &s.matcher)),
        );
    for (what, m) in named {
        for id in &m.rules {
            if !rules.contains(id.as_str()) {
                out.push(format!(
                    "{file}:{}: {what} matches rule `{id}`, which no rule file defines",
                    line_of(id)
                ));
            }
        }
    }
    out
}

fn compile_match(m: &MatchSpec) -> Result<AlertMatcher, String> {
    Ok(AlertMatcher {
        severity: m.severity.as_deref().map(SeverityBound::parse).transpose()?,
        rules: m.rules.clone(),
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
        let crate::sink::SinkConfig::Webhook(w) = &c.spec.sinks["hook"] else { panic!() };
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
    fn relative_paths_are_beside_the_config() {
        let c =
            load("state: state/lw.redb\nrules: ../rules\ngeoip: /geo/City.mmdb\n").expect("loads");
        assert_eq!(c.state, Path::new("/etc/logwarden/state/lw.redb"));
        assert_eq!(c.spec.rules.as_deref(), Some(Path::new("/etc/logwarden/../rules")));
        assert_eq!(c.spec.geoip.as_deref(), Some(Path::new("/geo/City.mmdb")));
    }

    #[test]
    fn env_expansion_defaults_escapes_and_comments() {
        let f = "f.yml";
        assert_eq!(expand_env("a: ${NOPE:-x}\n", f, &env).expect("ok"), "a: x\n");
        assert_eq!(expand_env("a: $${HOOK}\n", f, &env).expect("ok"), "a: ${HOOK}\n");
        assert_eq!(expand_env("# ${NOPE}\na: 1\n", f, &env).expect("ok"), "# ${NOPE}\na: 1\n");
        assert_eq!(
            expand_env("a: ${HOOK}${HOOK:-y}", f, &env).expect("ok"),
            "a: http://127.0.0.1:9/hookhttp://127.0.0.1:9/hook"
        );
    }

    #[test]
    fn an_empty_variable_takes_the_default_and_a_relative_secret_file_is_beside_the_config() {
        let f = "f.yml";
        let empty = |n: &str| (n == "EMPTY").then(String::new);
        assert_eq!(expand_env("a: ${EMPTY:-d}\n", f, &empty).expect("ok"), "a: d\n");
        assert_eq!(expand_env("a: ${EMPTY}\n", f, &empty).expect("ok"), "a: \n");
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("token"), "t0k\n").expect("write");
        let cfg = dir.path().join("logwarden.yml");
        let got = expand_env("a: ${file:token}\n", &cfg.display().to_string(), &env);
        assert_eq!(got.expect("read beside the config"), "a: t0k\n");
    }

    #[test]
    fn a_sink_named_twice_in_a_route_is_an_error() {
        let e = errors("sinks:\n  out: {type: stdout}\nroutes:\n  - sinks: [out, out]\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("`out` is named twice"), "{}", e[0]);
    }

    #[test]
    fn a_secret_file_is_read_without_its_newline() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("token");
        std::fs::write(&p, "s3cret\n").expect("write");
        let text = format!("a: ${{file:{}}}\n", p.display());
        assert_eq!(expand_env(&text, "f.yml", &env).expect("ok"), "a: s3cret\n");
        let missing = format!("a: ${{file:{}/nope}}\n", dir.path().display());
        let e = expand_env(&missing, "f.yml", &env).expect_err("missing file");
        assert!(e.to_string().starts_with("f.yml:1: secret file `"), "{e}");
        let fallback = format!("a: ${{file:{}/nope:-none}}\n", dir.path().display());
        assert_eq!(expand_env(&fallback, "f.yml", &env).expect("ok"), "a: none\n");
    }

    #[test]
    fn a_default_with_braces_of_its_own_ends_at_the_balancing_brace() {
        // The example's Slack link: a template default inside `${...}`.
        let f = "f.yml";
        let text = "link: ${LINK:-https://siem.example/alerts/{fingerprint}?r={rule.id}}\n";
        assert_eq!(
            expand_env(text, f, &env).expect("ok"),
            "link: https://siem.example/alerts/{fingerprint}?r={rule.id}\n"
        );
        // Set, the variable replaces the whole `${...}`: no brace of the default is left over.
        let text = "link: ${HOOK:-https://siem.example/alerts/{fingerprint}}\n";
        assert_eq!(expand_env(text, f, &env).expect("ok"), "link: http://127.0.0.1:9/hook\n");
        let e = expand_env("a: ${NOPE:-{x}\n", f, &env).expect_err("unbalanced");
        assert_eq!(e.to_string(), "f.yml:1: `${` without a closing `}`");
    }

    #[test]
    fn an_unset_variable_is_named_with_its_line() {
        let e = errors("sinks:\n  s:\n    type: slack\n    webhook_url: ${SLACK_URL}\n");
        assert_eq!(
            e,
            ["/etc/logwarden/logwarden.yml:4: environment variable `SLACK_URL` is not set"]
        );
        let e = errors("a: ${TWO}\n");
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
            format!("{f}:6: `sinks.slow.rate_limit.per`: "),
            format!("{f}:9: `r1.sinks`: no sink named `pager` (sinks: out, slow)"),
            format!("{f}:10: `r1.match.severity`: "),
            format!("{f}:11: `r1.group_wait`: "),
            format!("{f}:13: `r2.sinks`: a route needs at least one sink"),
            format!("{f}:14: `r2.repeat_interval`: must be longer than zero"),
            format!("{f}:19: `silences.backwards`: ends before it starts"),
            format!("{f}:20: `silences.bad-time`: `starts` and `ends` must be RFC 3339"),
            format!("{f}:23: `delivery.attempts`: must be at least 1"),
        ];
        assert_eq!(e.len(), want.len(), "{e:#?}");
        for (got, want) in e.iter().zip(&want) {
            assert!(got.starts_with(want.as_str()), "got {got:?}\nwant {want:?}");
        }
    }

    #[test]
    fn a_bad_sink_is_reported() {
        let e = errors("sinks:\n  mail:\n    type: webhook\n    url: not a url\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("/etc/logwarden/logwarden.yml:2: `sinks.mail`: "), "{}", e[0]);
    }

    #[test]
    fn an_empty_file_is_an_empty_config() {
        let c = load("# nothing yet\n").expect("loads");
        assert!(c.router.routes.is_empty() && c.spec.sinks.is_empty());
    }
}
