//! An OSV advisory database (a directory of OSV JSON records, as `osv.dev` exports them and as
//! a user refreshes them), indexed by ecosystem and package name, for re-evaluating stored
//! inventories without re-running a scanner (DESIGN §5).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::version::{Matcher, Range, Version, fixed_versions};
use crate::parse::scan::{Component, Finding, ScanError, Severity, decode, purl_type_of};

/// Why the advisory directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AdvisoryError {
    /// A record does not read: the file and the JSON path.
    #[error(transparent)]
    Record(#[from] ScanError),
    /// A file or directory could not be read.
    #[error("{path}: {source}", path = path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// An OSV record, as far as re-evaluation needs it.
#[derive(Deserialize)]
struct Record {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default)]
    affected: Vec<Affected>,
    #[serde(default)]
    database_specific: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Affected {
    #[serde(default)]
    package: Option<Package>,
    #[serde(default)]
    ranges: Vec<Range>,
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    database_specific: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Package {
    ecosystem: String,
    name: String,
}

/// One advisory's entry for one package.
struct Entry {
    /// Index of the advisory in [`Advisories::records`].
    advisory: usize,
    matcher: Matcher,
    /// Versions listed one by one (`affected[].versions`).
    versions: Vec<String>,
    fixed: Vec<String>,
    severity: Severity,
}

/// What an advisory says of itself.
struct Head {
    ids: Vec<String>,
    title: Option<String>,
    withdrawn: bool,
}

/// The loaded database: entries by (purl type, package name as OSV spells it).
#[derive(Default)]
pub struct Advisories {
    heads: Vec<Head>,
    by_package: HashMap<(String, String), Vec<Entry>>,
    /// Ids of withdrawn advisories, upper-cased.
    withdrawn: std::collections::HashSet<String>,
}

impl Advisories {
    /// Loads every `*.json` file under `dir` (recursively), one OSV record each. A record that
    /// does not read is an error naming its file and JSON path.
    pub fn load(dir: &Path) -> Result<Advisories, AdvisoryError> {
        let mut files = Vec::new();
        collect_json(dir, &mut files)?;
        files.sort();
        let mut db = Advisories::default();
        for file in files {
            let bytes = std::fs::read(&file)
                .map_err(|source| AdvisoryError::Io { path: file.clone(), source })?;
            let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                ScanError::at(
                    &file,
                    ".",
                    format!("not JSON: {e} (line {}, column {})", e.line(), e.column()),
                )
            })?;
            db.insert(&file, value)?;
        }
        Ok(db)
    }

    /// Adds one OSV record (`file` names it in errors).
    pub fn insert(&mut self, file: &Path, record: serde_json::Value) -> Result<(), ScanError> {
        self.add(decode(file, record)?);
        Ok(())
    }

    /// Advisories loaded.
    pub fn len(&self) -> usize {
        self.heads.len()
    }

    /// Whether none is loaded.
    pub fn is_empty(&self) -> bool {
        self.heads.is_empty()
    }

    /// Whether the vulnerability known by `ids` has a withdrawn advisory here (its own id
    /// among them): scanners' findings of it are set aside too.
    pub fn withdrawn(&self, ids: &[String]) -> bool {
        !self.withdrawn.is_empty()
            && ids.iter().any(|i| self.withdrawn.contains(&i.to_ascii_uppercase()))
    }

    fn add(&mut self, r: Record) {
        let advisory = self.heads.len();
        let mut ids = vec![r.id];
        ids.extend(r.aliases);
        let label = severity_label(r.database_specific.as_ref());
        if r.withdrawn.is_some() {
            self.withdrawn.insert(ids[0].to_ascii_uppercase());
        }
        self.heads.push(Head { ids, title: r.summary, withdrawn: r.withdrawn.is_some() });
        for a in r.affected {
            let Some(p) = a.package else { continue };
            let ecosystem = p.ecosystem.split(':').next().unwrap_or_default();
            let ty = purl_type_of(ecosystem).to_ascii_lowercase();
            let severity = severity_label(a.database_specific.as_ref()).max(label);
            let entry = Entry {
                advisory,
                matcher: Matcher::new(&p.ecosystem, &a.ranges),
                versions: a.versions,
                fixed: fixed_versions(&a.ranges),
                severity,
            };
            self.by_package.entry((ty, osv_name(&p.name, ecosystem))).or_default().push(entry);
        }
    }

    /// The findings the database gives `component` (withdrawn advisories give none), as
    /// findings of scanner `osv`.
    pub fn findings(&self, component: &Component, parsed: Option<&Version>) -> Vec<Finding> {
        let key = (component.ecosystem.clone(), name_of(component));
        let Some(entries) = self.by_package.get(&key) else { return Vec::new() };
        let mut out = Vec::new();
        for e in entries {
            let Some(head) = self.heads.get(e.advisory) else { continue };
            if head.withdrawn {
                continue;
            }
            let listed = e.versions.contains(&component.version);
            let in_range = match parsed {
                Some(v) => {
                    e.matcher.affects(v).or_else(|| e.matcher.affects_str(&component.version))
                }
                None => e.matcher.affects_str(&component.version),
            };
            if !(listed || in_range == Some(true)) {
                continue;
            }
            let ids: Vec<&str> = head.ids.iter().map(String::as_str).collect();
            let mut f = Finding::new(component.clone(), &ids, "osv").fixed_in(&e.fixed);
            if e.severity != Severity::Unknown {
                f = f.label(e.severity.as_str());
            }
            f.title.clone_from(&head.title);
            out.push(f);
        }
        out
    }
}

/// A package name as OSV spells it, from the component's purl: Maven `group:artifact`, npm
/// `@scope/name`, Go's whole module path, PyPI normalized; OS packages without their distro.
fn name_of(c: &Component) -> String {
    let path = c.purl.strip_prefix("pkg:").and_then(|p| p.split_once('/')).map_or("", |(_, p)| p);
    let path = path.rsplit_once('@').map_or(path, |(p, _)| p);
    let (namespace, name) = path.rsplit_once('/').map_or(("", path), |(ns, n)| (ns, n));
    let joined = match c.ecosystem.as_str() {
        "maven" if !namespace.is_empty() => format!("{namespace}:{name}"),
        "npm" if !namespace.is_empty() => format!("{}/{name}", namespace.replace("%40", "@")),
        "golang" if !namespace.is_empty() => format!("{namespace}/{name}"),
        _ => name.to_owned(),
    };
    osv_name(&joined, &c.ecosystem)
}

/// OSV names compared as their ecosystem compares them (PyPI: case and `_`/`.` insensitive).
fn osv_name(name: &str, ecosystem: &str) -> String {
    match purl_type_of(ecosystem) {
        "pypi" => name.to_ascii_lowercase().replace(['_', '.'], "-"),
        _ => name.to_owned(),
    }
}

/// A `database_specific.severity` label (GitHub's `HIGH`/`MODERATE`, ...), if any.
fn severity_label(v: Option<&serde_json::Value>) -> Severity {
    v.and_then(|v| v.get("severity"))
        .and_then(|s| s.as_str())
        .map_or(Severity::Unknown, Severity::from_label)
}

fn collect_json(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), AdvisoryError> {
    let io = |source| AdvisoryError::Io { path: dir.to_path_buf(), source };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        // Real directories only: a symlink loop would otherwise recurse without end. Files
        // are taken through symlinks.
        if entry.file_type().map_err(io)?.is_dir() {
            collect_json(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "json") && path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn write(dir: &Path, name: &str, v: serde_json::Value) {
        std::fs::write(dir.join(name), v.to_string()).unwrap();
    }

    fn comp(purl: &str) -> Component {
        let (path, version) = purl.rsplit_once('@').unwrap();
        let name = path.rsplit('/').next().unwrap();
        Component::new(Some(purl), "", name, version, vec![])
    }

    fn ids(db: &Advisories, purl: &str) -> Vec<String> {
        db.findings(&comp(purl), None).into_iter().map(|f| f.id).collect()
    }

    #[test]
    fn installed_versions_in_a_range_or_listed_are_found_and_others_not() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "GHSA-1.json",
            serde_json::json!({
                "id": "GHSA-jfh8-c2jp-5v3q", "aliases": ["CVE-2021-44228"], "summary": "Log4Shell",
                "database_specific": {"severity": "CRITICAL"},
                "affected": [{"package": {"ecosystem": "Maven", "name": "org.apache.logging.log4j:log4j-core"},
                              "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.0-beta9"}, {"fixed": "2.15.0"}]}]}]
            }),
        );
        std::fs::create_dir(dir.path().join("pypi")).unwrap();
        write(
            &dir.path().join("pypi"),
            "PYSEC-1.json",
            serde_json::json!({
                "id": "PYSEC-2023-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "Foo_Bar"},
                  "versions": ["1.0.0"], "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.0"}, {"fixed": "2.1"}]}]}]
            }),
        );
        write(
            dir.path(),
            "withdrawn.json",
            serde_json::json!({
                "id": "GHSA-old", "withdrawn": "2024-01-01T00:00:00Z",
                "affected": [{"package": {"ecosystem": "npm", "name": "@acme/x"},
                  "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}]
            }),
        );
        let db = Advisories::load(dir.path()).unwrap();
        assert_eq!(db.len(), 3);
        let log4j = "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1";
        let found = db.findings(&comp(log4j), None);
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!(
            (f.id.as_str(), f.severity, f.fixed.as_slice()),
            ("CVE-2021-44228", Severity::Critical, &["2.15.0".to_owned()][..])
        );
        assert_eq!(f.aliases, ["CVE-2021-44228", "GHSA-jfh8-c2jp-5v3q"]);
        assert_eq!(f.title.as_deref(), Some("Log4Shell"));
        assert!(ids(&db, "pkg:maven/org.apache.logging.log4j/log4j-core@2.15.0").is_empty());
        assert!(ids(&db, "pkg:maven/org.apache.logging.log4j/log4j-core@2.0-beta8").is_empty());
        assert_eq!(ids(&db, "pkg:pypi/foo-bar@1.0.0"), ["PYSEC-2023-1"], "listed");
        assert_eq!(ids(&db, "pkg:pypi/foo-bar@2.0.5"), ["PYSEC-2023-1"], "in range");
        assert!(ids(&db, "pkg:pypi/foo-bar@1.5").is_empty());
        assert!(ids(&db, "pkg:npm/%40acme/x@1.0.0").is_empty(), "withdrawn");
        assert!(db.withdrawn(&["CVE-2024-9".into(), "ghsa-old".into()]));
        assert!(!db.withdrawn(&["CVE-2021-44228".into()]));
    }

    #[test]
    fn a_symlink_loop_in_the_directory_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.json", serde_json::json!({"id": "X-1"}));
        std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
        assert_eq!(Advisories::load(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn a_broken_record_names_its_file_and_path() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.json",
            serde_json::json!({"id": "X-1", "affected": [{"package": {"ecosystem": "npm"}}]}),
        );
        let err = Advisories::load(dir.path()).err().unwrap().to_string();
        assert!(err.ends_with("a.json: affected[0].package: missing field `name`"), "{err}");
    }
}
