//! `logwarden scan`: store vulnerability-scan reports per application and stage, judge them
//! with policies, notify new and changed violations once, and waive what must wait.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use super::outbox::StateArg;
use crate::config::Config;
use crate::parse::scan::Report;
use crate::rule::{Rule, RuleKind};
use crate::scan::advisory::Advisories;
use crate::scan::app::Applications;
use crate::scan::evaluate::{Inputs, Scope, evaluate, plan};
use crate::scan::monitor::{Notified, Plan, Standing};
use crate::scan::store::{Scan, ScanStore};
use crate::scan::waiver::{Waiver, WaiverStore, parse_until};

/// Flags of `logwarden scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: ScanAction,
}

/// What the judging subcommands share: the state, the policies, the advisories.
#[derive(Debug, Args)]
pub struct JudgeArgs {
    /// Where the state database is; with -c, notifications go through the config's routes.
    #[command(flatten)]
    pub state: StateArg,
    /// The directory of policies (`kind: policy` documents; default: the config's `rules:`,
    /// else `rules`).
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// A directory of OSV JSON records (searched recursively) to re-evaluate inventories
    /// against (default: the config's `scan.advisories`, else only the stored findings).
    #[arg(long, value_name = "DIR")]
    pub advisories: Option<PathBuf>,
    /// Only this application.
    #[arg(long)]
    pub app: Option<String>,
    /// JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The time to judge at, RFC 3339 (default now): waivers end by it.
    #[arg(long, hide = true, value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,
}

/// The `scan` subcommands. They open the state file, which redb locks: run them while the
/// daemon is stopped.
#[derive(Debug, Subcommand)]
pub enum ScanAction {
    /// Read reports (Trivy, Grype, OSV-Scanner, SARIF, CycloneDX; the format is recognized)
    /// and store them, merged, as the application stage's last scan. A report that does not
    /// read is an error naming the file and the JSON path, and nothing is stored. With -c,
    /// the policies judge the new scan and its new violations are notified.
    Ingest {
        /// The application scanned.
        #[arg(long)]
        app: String,
        /// The build stage the scan belongs to.
        #[arg(long, default_value = "build")]
        stage: String,
        /// Where the state database is.
        #[command(flatten)]
        state: StateArg,
        /// With -c: the policy directory (default: the config's `rules:`, else `rules`).
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
        /// The reports.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Judge every stored scan (re-evaluated against the advisories) and notify what is new
    /// or changed since the last evaluation, and what was resolved. With -c the notices go
    /// through the config's routes and are recorded; with --state they are only printed.
    Evaluate {
        /// What to judge with.
        #[command(flatten)]
        judge: JudgeArgs,
        /// Only monitored applications (at their monitored stage) and monitored policies, as
        /// the daemon's schedule does.
        #[arg(long)]
        monitored: bool,
        /// With -c: how long to keep delivering; what is still pending then stays in the
        /// outbox for the daemon.
        #[arg(long, default_value = "30s", value_parser = super::parse_wait)]
        wait: std::time::Duration,
    },
    /// Print the current violations: a table, or JSON lines with --json.
    List {
        /// What to judge with.
        #[command(flatten)]
        judge: JudgeArgs,
        /// Only violations not notified yet, or changed since.
        #[arg(long, conflicts_with = "waived")]
        new: bool,
        /// The waivers instead, expired ones included.
        #[arg(long)]
        waived: bool,
    },
    /// Print the findings of every stored scan (re-evaluated with --advisories), before
    /// policies: a table, or one JSON object per finding with --json.
    Findings {
        /// Only this application.
        #[arg(long)]
        app: Option<String>,
        /// A directory of OSV JSON records to re-evaluate inventories against.
        #[arg(long, value_name = "DIR")]
        advisories: Option<PathBuf>,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// Where the state database is.
        #[command(flatten)]
        state: StateArg,
    },
    /// Keep a vulnerability of an application quiet until a date: not notified, not listed
    /// as new; notified again once the waiver ends.
    Waive {
        /// The application.
        #[arg(long)]
        app: String,
        /// The vulnerability id (CVE, GHSA, OSV: any of its aliases).
        #[arg(long)]
        vuln: String,
        /// When the waiver ends: a date (it ends as the day starts, UTC) or an RFC 3339 time.
        #[arg(long, value_parser = parse_until)]
        until: DateTime<Utc>,
        /// Why (recorded).
        #[arg(long)]
        reason: String,
        /// Who (default: $USER).
        #[arg(long)]
        by: Option<String>,
        /// Where the state database is.
        #[command(flatten)]
        state: StateArg,
        /// The time the waiver is set at (default now).
        #[arg(long, hide = true, value_parser = parse_now)]
        now: Option<DateTime<Utc>>,
    },
}

fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s).map(|t| t.to_utc()).map_err(|e| format!("`{s}`: {e}"))
}

/// Everything a judging command opened.
struct Judge {
    config: Option<Config>,
    db: Arc<crate::state::StateDb>,
    path: PathBuf,
    store: ScanStore,
    notified: Notified,
    waivers: WaiverStore,
    policies: Vec<Rule>,
    apps: Applications,
    advisories: Option<Advisories>,
}

impl Judge {
    fn open(
        state: &StateArg,
        rules: Option<&Path>,
        advisories: Option<&Path>,
    ) -> anyhow::Result<Judge> {
        let config = match state.config_path() {
            Some(c) => Some(super::load_config(c)?),
            None => None,
        };
        let path = match &config {
            Some(c) => c.state.clone(),
            None => state.path()?,
        };
        let db = crate::state::open(&path)?;
        let store = ScanStore::new(Arc::clone(&db), path.clone())?;
        let notified = Notified::new(Arc::clone(&db), path.clone())?;
        let waivers = WaiverStore::new(Arc::clone(&db), path.clone())?;
        let dir = rules
            .map(Path::to_path_buf)
            .or_else(|| config.as_ref().and_then(|c| c.spec.rules.clone()))
            .unwrap_or_else(|| PathBuf::from("rules"));
        let policies = load_policies(&dir)?;
        let apps = config
            .as_ref()
            .map(|c| Applications::new(c.spec.applications.iter().map(|a| a.value.clone())))
            .unwrap_or_default();
        let adv_dir = advisories.map(Path::to_path_buf).or_else(|| {
            config.as_ref().and_then(|c| c.spec.scan.as_ref()?.value.advisories.clone())
        });
        let advisories = adv_dir.as_deref().map(Advisories::load).transpose()?;
        Ok(Judge { config, db, path, store, notified, waivers, policies, apps, advisories })
    }

    fn plan(
        &self,
        app: Option<&str>,
        scope: Scope<'_>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Plan> {
        let scans = self.store.list(app)?;
        self.plan_of(&scans, scope, now)
    }

    fn plan_of(
        &self,
        scans: &[Scan],
        scope: Scope<'_>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Plan> {
        let waivers = self.waivers.list(None)?;
        let inputs = Inputs {
            policies: &self.policies,
            apps: &self.apps,
            advisories: self.advisories.as_ref(),
            waivers: &waivers,
        };
        Ok(plan(scans, &self.notified, inputs, scope, now)?)
    }

    /// Sends `plan`'s notices through the config's routes and records them with their
    /// outbox entries in one transaction; waits up to `wait` for delivery.
    /// `fresh`, a scan just read, is stored in the same transaction.
    fn notify(
        &self,
        plan: &Plan,
        now: DateTime<Utc>,
        wait: std::time::Duration,
        fresh: Option<&Scan>,
    ) -> anyhow::Result<bool> {
        let Some(config) = &self.config else {
            anyhow::bail!("notifying needs -c CONFIG (its routes and sinks)");
        };
        let outbox = Arc::new(crate::sink::outbox::Outbox::with_database(
            Arc::clone(&self.db),
            self.path.clone(),
        )?);
        let (dispatcher, delivery) =
            super::deliver::start_with(config, &self.policies, None, outbox)?;
        let mut dispatcher = dispatcher.deferred();
        crate::scan::dispatch::notify_with(
            plan,
            &self.policies,
            &self.apps,
            &mut dispatcher,
            now,
            |txn| fresh.map_or(Ok(()), |scan| ScanStore::put_in(txn, scan)),
        )?;
        let summary = delivery.finish(dispatcher, wait)?;
        eprintln!("{summary}");
        Ok(summary.complete())
    }
}

fn load_policies(dir: &Path) -> anyhow::Result<Vec<Rule>> {
    let rules = super::load_rules(dir)?;
    Ok(rules.into_iter().filter(|r| r.kind == RuleKind::Policy).collect())
}

/// Runs `logwarden scan ...`.
pub fn run(args: &ScanArgs) -> anyhow::Result<ExitCode> {
    match &args.action {
        ScanAction::Ingest { app, stage, state, rules, files } => {
            let judge = match state.config_path() {
                Some(_) => Some(Judge::open(state, rules.as_deref(), None)?),
                None => None,
            };
            let now = Utc::now();
            // With -c the scan is stored in the transaction that queues its notices: a
            // failure on the way stores neither, and the ingest can simply be run again.
            let scan = match &judge {
                Some(_) => ScanStore::read(app, stage, files, now)?,
                None => ScanStore::open(&state.path()?)?.ingest(app, stage, files, now)?,
            };
            let formats: Vec<String> =
                scan.formats.iter().map(|f| format!("{f:?}").to_lowercase()).collect();
            println!(
                "{app} {stage}: {} findings in {} components from {} reports ({})",
                scan.report.findings.len(),
                scan.report.components.len(),
                scan.files.len(),
                formats.join(", ")
            );
            let Some(j) = judge else { return Ok(ExitCode::SUCCESS) };
            let plan = j.plan_of(std::slice::from_ref(&scan), Scope::Stage { app, stage }, now)?;
            print_notices(&plan, false)?;
            let ok = j.notify(&plan, now, std::time::Duration::from_secs(30), Some(&scan))?;
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ScanAction::Evaluate { judge, monitored, wait } => {
            let j = Judge::open(&judge.state, judge.rules.as_deref(), judge.advisories.as_deref())?;
            let now = judge.now.unwrap_or_else(Utc::now);
            let scope = if *monitored { Scope::Monitored } else { Scope::Everything };
            let plan = j.plan(judge.app.as_deref(), scope, now)?;
            print_notices(&plan, judge.json)?;
            eprintln!(
                "logwarden: {} violations: {} to notify, {} already notified, {} waived{}",
                plan.current.len(),
                plan.notices.len(),
                plan.quiet,
                plan.current.iter().filter(|(_, s)| *s == Standing::Waived).count(),
                match &j.advisories {
                    Some(db) => format!("; {} advisories", db.len()),
                    None => String::new(),
                }
            );
            if j.config.is_none() {
                eprintln!("logwarden: --state only: nothing notified or recorded (give -c CONFIG)");
                return Ok(ExitCode::SUCCESS);
            }
            let ok = j.notify(&plan, now, *wait, None)?;
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        ScanAction::List { judge, new, waived } => {
            let j = Judge::open(&judge.state, judge.rules.as_deref(), judge.advisories.as_deref())?;
            let now = judge.now.unwrap_or_else(Utc::now);
            if *waived {
                print_waivers(&j.waivers.list(judge.app.as_deref())?, now, judge.json)?;
                return Ok(ExitCode::SUCCESS);
            }
            let plan = j.plan(judge.app.as_deref(), Scope::Everything, now)?;
            let rows = plan
                .current
                .iter()
                .filter(|(_, s)| !*new || matches!(s, Standing::New | Standing::Updated));
            print_violations(rows, &j.policies, judge.json)?;
            Ok(ExitCode::SUCCESS)
        }
        ScanAction::Findings { app, advisories, json, state } => {
            let store = ScanStore::open(&state.path()?)?;
            let scans = store.list(app.as_deref())?;
            let db = advisories.as_deref().map(Advisories::load).transpose()?;
            let now: Vec<Report> = scans
                .iter()
                .map(|s| match &db {
                    Some(db) => evaluate(s, db),
                    None => s.report.clone(),
                })
                .collect();
            print_findings(scans.iter().zip(&now), *json)?;
            if let Some(db) = &db {
                eprintln!("logwarden: {} scans against {} advisories", scans.len(), db.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        ScanAction::Waive { app, vuln, until, reason, by, state, now } => {
            let now = now.unwrap_or_else(Utc::now);
            if *until <= now {
                anyhow::bail!("--until {} is not in the future", until.to_rfc3339());
            }
            let by = by
                .clone()
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "unknown".into());
            let path = state.path()?;
            let store = WaiverStore::new(crate::state::open(&path)?, path)?;
            let w = Waiver {
                app: app.clone(),
                vuln: vuln.clone(),
                until: until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                reason: reason.clone(),
                by,
                created: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            };
            store.put(&w)?;
            println!("{} {}: waived until {} by {}: {}", w.app, w.vuln, w.until, w.by, w.reason);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The notices of `plan`, one line each (or their JSON).
fn print_notices(plan: &Plan, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for n in &plan.notices {
        let (app, stage, policy, package, id) = &n.key;
        let purl = if n.record.purl.is_empty() { package } else { &n.record.purl };
        if json {
            let line = serde_json::json!({
                "change": n.change,
                "changed": n.changed,
                "app": app, "stage": stage, "policy": policy, "component": purl, "id": id,
                "revision": n.record.revision,
                "details": n.record.details,
                "previous": n.previous,
            });
            writeln!(out, "{line}")?;
        } else {
            let changed = if n.changed.is_empty() {
                String::new()
            } else {
                format!(" ({})", n.changed.join(", "))
            };
            let id = if id.is_empty() { "-" } else { id.as_str() };
            writeln!(
                out,
                "{}{changed}\t{app}\t{stage}\t{policy}\t{id}\t{purl}",
                n.change.as_str()
            )?;
        }
    }
    Ok(())
}

fn print_violations<'a>(
    rows: impl Iterator<Item = &'a (crate::scan::violation::Violation, Standing)>,
    policies: &[Rule],
    json: bool,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if !json {
        writeln!(out, "APP\tSTAGE\tPOLICY\tSEVERITY\tID\tCOMPONENT\tFIXED\tSTATUS")?;
    }
    for (v, standing) in rows {
        let severity =
            policies.iter().find(|p| p.id == v.policy).map_or("-", |p| p.severity.as_str());
        if json {
            let line = serde_json::json!({
                "app": v.app, "stage": v.stage, "policy": v.policy, "severity": severity,
                "id": v.id, "component": v.purl, "status": standing, "details": v.details,
            });
            writeln!(out, "{line}")?;
        } else {
            let fixed =
                if v.details.fixed.is_empty() { "-".into() } else { v.details.fixed.join(",") };
            let id = if v.id.is_empty() { "-" } else { v.id.as_str() };
            let status = serde_json::to_value(standing)?;
            writeln!(
                out,
                "{}\t{}\t{}\t{severity}\t{id}\t{}\t{fixed}\t{}",
                v.app,
                v.stage,
                v.policy,
                v.purl,
                status.as_str().unwrap_or("-")
            )?;
        }
    }
    Ok(())
}

fn print_waivers(waivers: &[Waiver], now: DateTime<Utc>, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if !json {
        writeln!(out, "APP\tVULN\tUNTIL\tACTIVE\tBY\tREASON")?;
    }
    for w in waivers {
        let active = w.ends().is_some_and(|end| now < end);
        if json {
            let mut v = serde_json::to_value(w)?;
            v["active"] = serde_json::json!(active);
            writeln!(out, "{v}")?;
        } else {
            let active = if active { "yes" } else { "expired" };
            writeln!(out, "{}\t{}\t{}\t{active}\t{}\t{}", w.app, w.vuln, w.until, w.by, w.reason)?;
        }
    }
    Ok(())
}

/// The findings of each scan: a table, or one JSON object per finding.
fn print_findings<'a>(
    scans: impl Iterator<Item = (&'a Scan, &'a Report)>,
    json: bool,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if !json {
        writeln!(out, "APP\tSTAGE\tSEVERITY\tCVSS\tID\tCOMPONENT\tFIXED\tSCANNERS")?;
    }
    for (s, report) in scans {
        for f in &report.findings {
            if json {
                let line = serde_json::json!({
                    "app": s.app,
                    "stage": s.stage,
                    "scanned_at": s.scanned_at,
                    "finding": f,
                });
                writeln!(out, "{line}")?;
            } else {
                let cvss = f.cvss.map(|c| format!("{c:.1}")).unwrap_or_else(|| "-".into());
                let fixed = if f.fixed.is_empty() { "-".into() } else { f.fixed.join(",") };
                writeln!(
                    out,
                    "{}\t{}\t{}\t{cvss}\t{}\t{}\t{fixed}\t{}",
                    s.app,
                    s.stage,
                    f.severity.as_str(),
                    f.id,
                    f.component.purl,
                    f.scanners.join(",")
                )?;
            }
        }
    }
    Ok(())
}
