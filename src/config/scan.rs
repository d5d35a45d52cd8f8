//! The config's scan sections: `applications:` (who owns what is scanned, and whether it is
//! watched) and `scan:` (where reports arrive, the advisory database, when it is re-run).
//!
//! ```yaml
//! applications:
//!   - name: shop
//!     owners: [team-payments]     # the alert's `app.owner` label, one alert per owner
//!     criticality: high
//!     monitor: true               # re-evaluated on the schedule (default true)
//!     stage: release              # the stage monitoring watches (default: every stage)
//! scan:
//!   watch: /var/lib/logwarden/reports   # DIR/APP/STAGE/*.json, or DIR/APP/*.json (stage build)
//!   advisories: /var/lib/osv            # a directory of OSV JSON records
//!   schedule: daily 02:30               # or a cron expression: "30 2 * * *"
//!   timezone: Europe/Berlin             # of the schedule (default UTC)
//! ```

use std::path::PathBuf;

use serde::Deserialize;

/// How much an application matters, carried on its alerts (`app.criticality`) for routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Criticality {
    /// Internal tools, prototypes.
    Low,
    /// Most applications.
    Medium,
    /// Customer-facing.
    High,
    /// Money, credentials, safety.
    Critical,
}

impl Criticality {
    /// The config keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Low => "low",
            Criticality::Medium => "medium",
            Criticality::High => "high",
            Criticality::Critical => "critical",
        }
    }
}

/// One entry of `applications:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// The name scans are ingested under (`scan ingest --app`).
    pub name: String,
    /// Teams told about its violations: each is an `app.owner` label routes match on.
    #[serde(default)]
    pub owners: Vec<String>,
    /// How much it matters.
    #[serde(default)]
    pub criticality: Option<Criticality>,
    /// Whether scheduled re-evaluation watches it (default true).
    #[serde(default = "yes")]
    pub monitor: bool,
    /// The build stage monitoring watches (default: every stored stage).
    #[serde(default)]
    pub stage: Option<String>,
}

fn yes() -> bool {
    true
}

/// `scan:`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanSpec {
    /// A directory the daemon watches for reports: `DIR/APP/STAGE/FILE` or `DIR/APP/FILE`.
    #[serde(default)]
    pub watch: Option<PathBuf>,
    /// The OSV advisory directory re-evaluation runs against.
    #[serde(default)]
    pub advisories: Option<PathBuf>,
    /// When the daemon re-evaluates: `daily HH:MM` or a five-field cron expression.
    #[serde(default)]
    pub schedule: Option<String>,
    /// IANA zone of the schedule (default UTC).
    #[serde(default)]
    pub timezone: Option<String>,
    /// How often the watched directory is looked at (default 10s).
    #[serde(default)]
    pub poll: Option<String>,
}
