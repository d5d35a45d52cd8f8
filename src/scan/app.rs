//! The applications scans belong to, as `applications:` in the config describes them. A scan
//! of an application the config does not name is still judged and monitored, with no owner.

use std::collections::BTreeMap;

use crate::config::scan::AppSpec;

/// The configured applications, by name.
#[derive(Clone, Debug, Default)]
pub struct Applications {
    apps: BTreeMap<String, AppSpec>,
}

impl Applications {
    /// From the config's `applications:` entries.
    pub fn new(specs: impl IntoIterator<Item = AppSpec>) -> Applications {
        Applications { apps: specs.into_iter().map(|a| (a.name.clone(), a)).collect() }
    }

    /// What the config says of `name`; an unnamed application is monitored at every stage
    /// and has no owner.
    pub fn get(&self, name: &str) -> AppSpec {
        self.apps.get(name).cloned().unwrap_or_else(|| AppSpec {
            name: name.to_owned(),
            owners: Vec::new(),
            criticality: None,
            monitor: true,
            stage: None,
        })
    }

    /// Whether scheduled re-evaluation watches `app` at `stage`.
    pub fn monitors(&self, app: &str, stage: &str) -> bool {
        match self.apps.get(app) {
            Some(a) => a.monitor && a.stage.as_deref().is_none_or(|s| s == stage),
            None => true,
        }
    }
}
