//! `logwarden scan`: store vulnerability-scan reports per application and stage, and list what
//! they found.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::outbox::StateArg;
use crate::parse::scan::Report;
use crate::scan::advisory::Advisories;
use crate::scan::evaluate::evaluate;
use crate::scan::store::{Scan, ScanStore};

/// Flags of `logwarden scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: ScanAction,
}

/// The `scan` subcommands. They open the state file, which redb locks: run them while the
/// daemon is stopped.
#[derive(Debug, Subcommand)]
pub enum ScanAction {
    /// Read reports (Trivy, Grype, OSV-Scanner, SARIF, CycloneDX; the format is recognized)
    /// and store them, merged, as the application stage's last scan. A report that does not
    /// read is an error naming the file and the JSON path, and nothing is stored.
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
        /// The reports.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run every stored scan's inventory (of one application with --app) against an OSV
    /// advisory directory and print the findings it has now, its stored ones included, as
    /// `list` does. Nothing is stored or notified yet.
    Evaluate {
        /// A directory of OSV JSON records (searched recursively).
        #[arg(long, value_name = "DIR")]
        advisories: PathBuf,
        /// Only this application.
        #[arg(long)]
        app: Option<String>,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// Where the state database is.
        #[command(flatten)]
        state: StateArg,
    },
    /// Print the findings of every stored scan (of one application with --app): a table, or
    /// one JSON object per finding with --json.
    List {
        /// Only this application.
        #[arg(long)]
        app: Option<String>,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// Where the state database is.
        #[command(flatten)]
        state: StateArg,
    },
}

/// Runs `logwarden scan ...`.
pub fn run(args: &ScanArgs) -> anyhow::Result<ExitCode> {
    match &args.action {
        ScanAction::Ingest { app, stage, state, files } => {
            let store = ScanStore::open(&state.path()?)?;
            let scan = store.ingest(app, stage, files, chrono::Utc::now())?;
            let formats: Vec<String> =
                scan.formats.iter().map(|f| format!("{f:?}").to_lowercase()).collect();
            println!(
                "{app} {stage}: {} findings in {} components from {} reports ({})",
                scan.report.findings.len(),
                scan.report.components.len(),
                scan.files.len(),
                formats.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        ScanAction::List { app, json, state } => {
            let store = ScanStore::open(&state.path()?)?;
            let scans = store.list(app.as_deref())?;
            print(scans.iter().map(|s| (s, &s.report)), *json)?;
            Ok(ExitCode::SUCCESS)
        }
        ScanAction::Evaluate { advisories, app, json, state } => {
            let db = Advisories::load(advisories)?;
            let store = ScanStore::open(&state.path()?)?;
            let scans = store.list(app.as_deref())?;
            let now: Vec<Report> = scans.iter().map(|s| evaluate(s, &db)).collect();
            print(scans.iter().zip(&now), *json)?;
            eprintln!("logwarden: {} scans against {} advisories", scans.len(), db.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The findings of each scan: a table, or one JSON object per finding.
fn print<'a>(
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
