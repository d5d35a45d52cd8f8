//! Command-line interface: the subcommands and their flags, and dispatch to the library.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::parse::Format;
use crate::parse::syslog::SyslogOptions;
use crate::replay::{Outputs, ReplayError, ReplayOptions, replay};
use crate::rule::engine::RuleStats;
use crate::rule::set::RuleSet;

pub mod api_client;
pub mod deliver;
pub mod outbox;
pub mod repeats;
pub mod scan;
pub mod silence;
pub mod state;

/// One stderr paragraph on what the rules did: totals, then each rule that matched anything
/// or set events aside.
fn rules_summary(rules: &[(String, RuleStats)]) -> String {
    let matches: u64 = rules.iter().map(|(_, s)| s.matches).sum();
    let alerts: u64 = rules.iter().map(|(_, s)| s.alerts).sum();
    let mut out = format!(
        "rules: {} loaded, {matches} match{}, {alerts} alert{}",
        rules.len(),
        if matches == 1 { "" } else { "es" },
        plural(alerts as usize)
    );
    for (id, s) in rules {
        let b = &s.behaviour;
        if s.matches == 0 && b.late == 0 && b.evicted == 0 {
            continue;
        }
        out.push_str(&format!("\n  {id}: {} matched, {} alerted", s.matches, s.alerts));
        for (n, label) in [
            (b.late, "late"),
            (b.evicted, "evicted"),
            (b.ungrouped, "without a group field"),
            (b.skipped, "skipped"),
        ] {
            if n > 0 {
                out.push_str(&format!(", {n} {label}"));
            }
        }
    }
    out
}

/// logwarden: collect, normalize and alert on security logs.
#[derive(Debug, Parser)]
#[command(name = "logwarden", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run log files through the pipeline offline and report what they contain.
    Replay(ReplayArgs),
    /// Write synthetic auth-log traffic (sshd-heavy RFC 3164) for load tests and demos.
    Generate(GenerateArgs),
    /// Validate rule files (the rule directory and its subdirectories, hidden ones skipped):
    /// every YAML, field, modifier, regex and condition error with its file:line:column,
    /// duplicate ids, and lint findings (unused selections, conditions that are always or never
    /// true). Exit status 1 when any is found, or when the directory holds no rule file. Rules
    /// that name fields no event of their logsource carries are warned about as unable to
    /// fire, without failing the check.
    Check(CheckArgs),
    /// Run every rule's own test cases and print pass or fail per case, with what differed.
    /// Exit status 1 when a case fails or a rule does not load.
    Test(TestArgs),
    /// Show the notifications waiting for delivery and re-queue dead letters.
    Outbox(outbox::OutboxArgs),
    /// Check the state database, move a damaged one aside and start anew (tailed files placed
    /// at their end), or back it up.
    State(state::StateArgs),
    /// Store vulnerability-scan reports (Trivy, Grype, OSV-Scanner, SARIF, CycloneDX) per
    /// application and stage, and list their findings.
    Scan(scan::ScanArgs),
    /// List, set and end silences on the running daemon, through its API (`api.listen`),
    /// with `api.token` or the token the daemon keeps beside its state database.
    Silence(silence::SilenceArgs),
    /// Run the daemon: live sources, rules, routing and delivery, the HTTP API; stops
    /// cleanly on SIGTERM or SIGINT.
    Run(RunArgs),
    /// Run as a sidecar forwarder: sources, parse, then the config's `forward:` target (an
    /// aggregator's /ingest or NATS JetStream) through an on-disk buffer. Same as `run` with
    /// `mode: forward`.
    Forward(ForwardArgs),
}

/// Flags of `logwarden forward`.
#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// The config (sources, forward, api, state).
    #[arg(short = 'c', long, value_name = "CONFIG")]
    pub config: PathBuf,
}

/// Flags of `logwarden run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The config (sources, sinks, routes, api, state).
    #[arg(short = 'c', long, value_name = "CONFIG")]
    pub config: PathBuf,
    /// Directory of rule files (default: the config's `rules:`).
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// MaxMind DB file for `travel` rules (default: the config's `geoip:`).
    #[arg(long, value_name = "FILE")]
    pub geoip: Option<PathBuf>,
}

/// Flags of `logwarden test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Directory of rule files.
    #[arg(default_value = "rules", value_name = "DIR")]
    pub rules: PathBuf,
    /// MaxMind DB file that places `source.ip` for `travel` rules' cases (without it, their
    /// cases need events that carry `source.geo`).
    #[arg(long, value_name = "FILE")]
    pub geoip: Option<PathBuf>,
}

/// Flags of `logwarden check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Directory of rule files (`*.yml`, `*.yaml`; several documents per file); default: the
    /// config's `rules:`, else `rules`.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Also validate this config (`logwarden.yml`): keys, durations, severities, that routes
    /// and rate limits name existing sinks, that every `${VAR}` is set, and that rule ids in
    /// routes and silences exist.
    #[arg(short = 'c', long, value_name = "CONFIG")]
    pub config: Option<PathBuf>,
}

/// Flags of `logwarden generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// How many lines to write.
    #[arg(long, default_value_t = 1_000_000)]
    pub lines: u64,
    /// Seed: the same seed writes the same log.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Send each line as one syslog datagram to this address (a UDP load test, loopback
    /// only) instead of writing to standard output.
    #[arg(long, value_name = "ADDR")]
    pub udp: Option<std::net::SocketAddr>,
    /// With `--udp`: datagrams per second at most (0: as fast as the socket takes them).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

/// Input format choices for `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Detect per file: gzip, a JSON object or array, else syslog.
    Auto,
    /// RFC 3164 / RFC 5424 syslog lines.
    Syslog,
    /// AWS CloudTrail: `{"Records":[...]}`, a JSON array, or one record per line.
    Cloudtrail,
    /// ECS JSON events, one per line.
    Json,
}

/// Flags of `logwarden replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Print every normalized event as one ECS JSON line on standard output.
    #[arg(long)]
    pub events: bool,
    /// Input format.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub format: FormatArg,
    /// IANA time zone of RFC 3164 timestamps, which carry none (e.g. Europe/Berlin).
    #[arg(long, default_value = "UTC", value_parser = parse_tz)]
    pub timezone: chrono_tz::Tz,
    /// Year of RFC 3164 timestamps, which carry none; default: from the clock, with December
    /// lines read in January taken as last year's.
    #[arg(long)]
    pub year: Option<i32>,
    /// Longest accepted line in bytes; longer lines are quarantined.
    #[arg(long, default_value_t = crate::parse::frame::DEFAULT_MAX_RECORD_BYTES)]
    pub max_line_bytes: usize,
    /// Write every quarantined record as a JSON line to this file.
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,
    /// Run the rules in this directory and print each alert as a JSON line on standard output
    /// (after the event that fired it, with `--events`).
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// With `--rules`: add to each alert the condition and the selections that matched.
    #[arg(long, requires = "rules")]
    pub explain: bool,
    /// With `--rules`: MaxMind DB file (GeoLite2-City or DB-IP City format) that places
    /// `source.ip` for `travel` rules.
    #[arg(long, value_name = "FILE", requires = "rules")]
    pub geoip: Option<PathBuf>,
    /// With `--rules`: send the alerts through this config's routes, silences and rate
    /// limits to its sinks (Slack, email, webhooks...), by way of its outbox, as the daemon
    /// would. The router's clock is the alerts' own time.
    #[arg(short = 'c', long, value_name = "CONFIG", requires = "rules")]
    pub config: Option<PathBuf>,
    /// With `-c`: how long to keep delivering after the input ends; what is still pending
    /// then stays in the outbox for the next run.
    #[arg(long, default_value = "60s", value_parser = parse_wait, requires = "config")]
    pub wait: std::time::Duration,
    /// Files to read (`-` for standard input); gzip is detected.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

pub(crate) fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("bad duration `{s}`: {e}"))
}

fn parse_tz(s: &str) -> Result<chrono_tz::Tz, String> {
    s.parse()
        .map_err(|_| format!("unknown time zone `{s}` (use an IANA name such as Europe/Berlin)"))
}

/// Runs a parsed command line; the exit code says whether it worked.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay(args) => run_replay(args),
        Command::Check(args) => Ok(run_check(&args)),
        Command::Test(args) => run_test(&args),
        Command::Outbox(args) => outbox::run(&args),
        Command::State(args) => state::run(&args),
        Command::Scan(args) => scan::run(&args),
        Command::Silence(args) => silence::run(&args),
        Command::Run(args) => run_daemon(&args),
        Command::Forward(args) => {
            let mut config = load_config(&args.config)?;
            if config.spec.forward.is_none() {
                anyhow::bail!(
                    "{}: `logwarden forward` needs a `forward:` section",
                    args.config.display()
                );
            }
            config.spec.mode = crate::config::Mode::Forward;
            crate::daemon::run(&config, Vec::new(), Default::default(), None)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate(args) if args.udp.is_some() => {
            let sent = crate::generate::send_udp(&args)?;
            eprintln!("sent {} datagrams in {:.2} s", sent.0, sent.1.as_secs_f64());
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate(args) => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match crate::generate::write_syslog(&mut out, args.lines, args.seed)
                .and_then(|()| out.flush())
            {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(ExitCode::SUCCESS),
            }
        }
    }
}

fn run_check(args: &CheckArgs) -> ExitCode {
    let mut failed = false;
    let config = match &args.config {
        None => None,
        Some(path) => match crate::config::load(path) {
            Ok(c) => {
                println!(
                    "{}: {} sink{}, {} route{}, {} silence{}",
                    path.display(),
                    c.spec.sinks.len(),
                    plural(c.spec.sinks.len()),
                    c.router.routes.len(),
                    plural(c.router.routes.len()),
                    c.router.silences.len(),
                    plural(c.router.silences.len())
                );
                Some(c)
            }
            Err(errors) => {
                for e in &errors {
                    eprintln!("{e}");
                }
                eprintln!("{}: {} error{}", path.display(), errors.len(), plural(errors.len()));
                failed = true;
                None
            }
        },
    };
    // A forwarder runs no rules: say where its events go instead of loading a rule directory.
    if let Some(c) = &config
        && c.spec.mode == crate::config::Mode::Forward
        && args.rules.is_none()
    {
        let to = match c.spec.forward.as_ref().map(|f| &f.value) {
            Some(f) => f.describe(),
            None => "nowhere: `mode: forward` needs a `forward:` section".to_owned(),
        };
        let n = c.spec.sources.len();
        println!("forward mode: {n} source{} -> {to}; no rules run here", plural(n));
        return if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS };
    }
    let dir = args
        .rules
        .clone()
        .or_else(|| config.as_ref().and_then(|c| c.spec.rules.clone()))
        .unwrap_or_else(|| PathBuf::from("rules"));
    let shown = dir.display();
    let loaded = crate::rule::load::rule_files(&dir)
        .and_then(|files| crate::rule::load::load_files(&files).map(|rules| (files.len(), rules)));
    match loaded {
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{}: {} error{}", shown, errors.len(), plural(errors.len()));
            failed = true;
        }
        Ok((files, rules)) => {
            let mut findings = 0;
            // Warnings, not errors: SigmaHQ packs hold many rules for logs logwarden does not
            // read, and loading them is harmless.
            let mut dead = 0;
            for rule in &rules {
                let reach = rule.reach();
                if !reach.can_fire {
                    dead += 1;
                    let fields = reach.missing.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>();
                    eprintln!(
                        "{}: warning: rule `{}` cannot fire: no event of its logsource ({}) \
                         carries {}",
                        rule.origin,
                        rule.id,
                        rule.logsource().label(),
                        fields.join(", ")
                    );
                }
            }
            for rule in &rules {
                for finding in crate::rule::load::lint(rule) {
                    eprintln!("{}: {finding}", rule.origin);
                    findings += 1;
                }
            }
            if let Some(c) = &config {
                let ids: std::collections::HashSet<&str> =
                    rules.iter().map(|r| r.id.as_str()).collect();
                for finding in crate::config::lint_rule_ids(c, &ids) {
                    eprintln!("{finding}");
                    findings += 1;
                }
            }
            println!(
                "{shown}: {files} rule file{}, {} rule{} loaded, {dead} cannot fire, {findings} \
                 lint finding{}",
                plural(files),
                rules.len(),
                plural(rules.len()),
                plural(findings)
            );
            failed |= findings > 0;
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn run_test(args: &TestArgs) -> anyhow::Result<ExitCode> {
    let dir = args.rules.display();
    let rules = match crate::rule::load::load_dir(&args.rules) {
        Ok(r) => r,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{}: {} error{}", dir, errors.len(), plural(errors.len()));
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut services = crate::rule::behaviour::Services::default();
    if let Some(path) = &args.geoip {
        services.geo = Some(std::sync::Arc::new(crate::geo::Geo::open(path)?));
    }
    let results = crate::rule::test::run(&rules, &services);
    let mut failed = 0;
    let mut out = std::io::stdout().lock();
    for r in &results {
        match &r.outcome {
            Ok(()) => {
                let _ = writeln!(out, "ok    {} :: {}", r.rule, r.name);
            }
            Err(diff) => {
                failed += 1;
                let _ = writeln!(out, "FAIL  {} :: {}", r.rule, r.name);
                for line in diff.lines() {
                    let _ = writeln!(out, "      {line}");
                }
            }
        }
    }
    let untested: Vec<&str> =
        rules.iter().filter(|r| r.tests.is_empty()).map(|r| r.id.as_str()).collect();
    let _ = writeln!(
        out,
        "{dir}: {} case{}, {} passed, {failed} failed; {} rule{} without tests{}{}",
        results.len(),
        plural(results.len()),
        results.len() - failed,
        untested.len(),
        plural(untested.len()),
        if untested.is_empty() { "" } else { ": " },
        untested.join(", ")
    );
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Loads a config, printing each of its errors; the error says how many there were.
pub(crate) fn load_config(path: &std::path::Path) -> anyhow::Result<crate::config::Config> {
    crate::config::load(path).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        anyhow::anyhow!("{}: {} config error{}", path.display(), errors.len(), plural(errors.len()))
    })
}

fn run_daemon(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    if config.spec.mode == crate::config::Mode::Forward {
        crate::daemon::run(&config, Vec::new(), Default::default(), None)?;
        return Ok(ExitCode::SUCCESS);
    }
    let dir = args.rules.clone().or_else(|| config.spec.rules.clone());
    let rules = match dir {
        None => Vec::new(),
        Some(dir) => load_rules(&dir)?,
    };
    let mut services = crate::rule::behaviour::Services::default();
    if let Some(path) = args.geoip.clone().or_else(|| config.spec.geoip.clone()) {
        services.geo = Some(std::sync::Arc::new(crate::geo::Geo::open(&path)?));
    }
    crate::daemon::run(&config, rules, services, args.rules.clone())?;
    Ok(ExitCode::SUCCESS)
}

/// Loads a rule directory, printing each of its errors; the error says how many there were.
pub(crate) fn load_rules(dir: &std::path::Path) -> anyhow::Result<Vec<crate::rule::Rule>> {
    crate::rule::load::load_dir(dir).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        anyhow::anyhow!("{}: {} rule error{}", dir.display(), errors.len(), plural(errors.len()))
    })
}

pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn run_replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let opts = ReplayOptions {
        format: match args.format {
            FormatArg::Auto => None,
            FormatArg::Syslog => Some(Format::Syslog),
            FormatArg::Cloudtrail => Some(Format::CloudTrail),
            FormatArg::Json => Some(Format::Json),
        },
        syslog: SyslogOptions {
            timezone: args.timezone,
            year: args.year,
            now: Some(crate::event::Timestamp::now()),
        },
        max_record_bytes: args.max_line_bytes.max(1),
        progress: std::io::stderr().is_terminal() && std::io::stdout().is_terminal(),
        parallel: true,
        rules: None,
        services: Default::default(),
        explain: args.explain,
    };
    let mut opts = opts;
    if let Some(path) = &args.geoip {
        opts.services.geo = Some(std::sync::Arc::new(crate::geo::Geo::open(path)?));
    }
    let config = match &args.config {
        Some(path) => Some(load_config(path)?),
        None => None,
    };
    if let Some(dir) = &args.rules {
        opts.rules = Some(std::sync::Arc::new(RuleSet::new(load_rules(dir)?)));
    }
    // Stdout (not its lock) because the writer runs on another thread; writes are 256 KiB
    // chunks, so the per-write lock costs nothing.
    let mut stdout = std::io::stdout();
    let mut dead_file = match &args.dead_letter {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        )),
        None => None,
    };
    let mut alert_out = repeats::RepeatMarker::new(
        opts.rules.as_ref().map_or(&[][..], |r| r.rules()),
        std::io::stdout(),
    );
    let mut routed = match (&config, &opts.rules) {
        (Some(config), Some(rules)) => {
            let tee: Box<dyn Write + Send> = Box::new(std::io::stdout());
            Some(deliver::start(config, rules.rules(), Some(tee))?)
        }
        _ => None,
    };
    let alerts: Option<&mut dyn crate::alert::AlertSink> = match (&mut routed, &opts.rules) {
        (Some((dispatcher, _)), _) => Some(dispatcher),
        (None, Some(_)) => Some(&mut alert_out),
        (None, None) => None,
    };
    let mut outputs = Outputs {
        events: if args.events { Some(&mut stdout) } else { None },
        dead_letter: dead_file.as_mut().map(|f| f as &mut (dyn Write + Send)),
        alerts,
    };
    let result = replay(&args.files, &opts, &mut outputs);
    match result {
        Ok(report) => {
            let mut err = std::io::stderr().lock();
            for l in &report.ledgers {
                let _ = writeln!(err, "{l}");
            }
            if !report.rules.is_empty() {
                let _ = writeln!(err, "{}", rules_summary(&report.rules));
            }
            let repeats: u64 = alert_out.repeats.values().sum();
            if routed.is_none() && repeats > 0 {
                let per_rule: Vec<String> =
                    alert_out.repeats.iter().map(|(id, n)| format!("{id} {n}")).collect();
                let _ = writeln!(
                    err,
                    "repeats: {repeats} alert{} {} an earlier one of the same rule and group within its \
                     alert.dedup window (marked \"repeat\":true; a router sends them at most as updates): {}",
                    plural(repeats as usize),
                    if repeats == 1 { "repeats" } else { "repeat" },
                    per_rule.join(", ")
                );
            }
            if let Some((dispatcher, delivery)) = routed {
                // The sink tasks log to stderr (a dead letter, a failed write) while `finish`
                // waits for them: holding its lock here would deadlock the two.
                drop(err);
                let summary = delivery.finish(dispatcher, args.wait)?;
                eprintln!("{summary}");
                if !summary.complete() {
                    return Ok(ExitCode::FAILURE);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        // `replay --events | head` closes the pipe early: that is the reader's choice, not a
        // failure.
        Err(ReplayError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e.into()),
    }
}
