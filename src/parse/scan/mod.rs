//! Vulnerability-scan reports read into one shape (DESIGN §5): Trivy JSON, Grype JSON,
//! OSV-Scanner JSON, SARIF 2.1.0 (any tool) and CycloneDX JSON (components, vulnerabilities and
//! VEX analysis). One file per format; [`read`] tells the format from the document itself.
//!
//! Each finding names its component by a canonical package URL (qualifiers and subpath
//! dropped; built from ecosystem, name and version where the scanner gave none) and its
//! vulnerability by the CVE among its ids when there is one, so that the same vulnerability in
//! the same component reported by two scanners, or in two formats, is one finding ([`merge`]).

pub mod cyclonedx;
pub mod grype;
pub mod osv;
pub mod sarif;
pub mod trivy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A report that could not be read: which file, where in it, and why. Nothing of a file that
/// fails is kept.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {path}: {detail}", file = file.display())]
pub struct ScanError {
    /// The report.
    pub file: PathBuf,
    /// The JSON path of the value at fault (`.` for the document).
    pub path: String,
    /// What is wrong.
    pub detail: String,
}

impl ScanError {
    /// An error at JSON path `path` of `file`.
    pub fn at(file: &Path, path: impl Into<String>, detail: impl Into<String>) -> ScanError {
        ScanError { file: file.to_path_buf(), path: path.into(), detail: detail.into() }
    }
}

/// Decodes `value` as `T`, naming the JSON path of the first value that does not fit.
pub(crate) fn decode<T: DeserializeOwned>(
    file: &Path,
    value: serde_json::Value,
) -> Result<T, ScanError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ScanError::at(file, path, e.into_inner().to_string())
    })
}

/// How bad a vulnerability is, in the scanners' common scale.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Not rated.
    #[default]
    Unknown,
    /// Low (also Grype's and Debian's "negligible", SARIF's "note").
    Low,
    /// Medium (also GitHub's "moderate", SARIF's "warning").
    Medium,
    /// High (also SARIF's "error").
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// A scanner's label, in any case; unknown labels are [`Severity::Unknown`].
    pub fn from_label(label: &str) -> Severity {
        match label.trim().to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" | "important" => Severity::High,
            "medium" | "moderate" => Severity::Medium,
            "low" | "negligible" | "minor" => Severity::Low,
            _ => Severity::Unknown,
        }
    }

    /// The CVSS v3 qualitative rating of a base score (0 is none: [`Severity::Unknown`]).
    pub fn from_cvss(score: f64) -> Severity {
        match score {
            s if s >= 9.0 => Severity::Critical,
            s if s >= 7.0 => Severity::High,
            s if s >= 4.0 => Severity::Medium,
            s if s > 0.0 => Severity::Low,
            _ => Severity::Unknown,
        }
    }

    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// A package a scan found installed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// Canonical package URL: `pkg:TYPE/[NAMESPACE/]NAME@VERSION` (see [`canonical_purl`]).
    pub purl: String,
    /// Package name.
    pub name: String,
    /// Installed version.
    pub version: String,
    /// Package ecosystem, as a purl type (`npm`, `pypi`, `maven`, `deb`, `apk`, ...).
    pub ecosystem: String,
    /// Declared licenses (SPDX ids or expressions, as given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub licenses: Vec<String>,
}

impl Component {
    /// A component from its parts; `purl` is the scanner's, if it gave one.
    pub fn new(
        purl: Option<&str>,
        ecosystem: &str,
        name: &str,
        version: &str,
        licenses: Vec<String>,
    ) -> Component {
        let purl = purl
            .filter(|p| p.starts_with("pkg:"))
            .map(canonical_purl)
            .unwrap_or_else(|| synthetic_purl(ecosystem, "", name, version));
        let ecosystem = purl_type(&purl).unwrap_or(ecosystem).to_owned();
        Component { purl, name: name.to_owned(), version: version.to_owned(), ecosystem, licenses }
    }
}

/// One vulnerability (or, for code scanners, one rule) in one component, as reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The component it is in.
    pub component: Component,
    /// The vulnerability: the CVE among its ids when there is one, else the scanner's id.
    pub id: String,
    /// Every id it is known by (the id included), sorted.
    pub aliases: Vec<String>,
    /// Severity.
    pub severity: Severity,
    /// Whether the severity was a scanner's label (true) or derived from a score (false):
    /// when two reports disagree, a label wins.
    #[serde(default)]
    pub severity_labelled: bool,
    /// Highest CVSS base score given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss: Option<f64>,
    /// Versions that fix it, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fixed: Vec<String>,
    /// Where it was found (a file in the image or the tree), if said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// A short title, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The scanners that reported it, sorted.
    pub scanners: Vec<String>,
}

impl Finding {
    /// A finding of `ids` (the scanner's id first) in `component`, reported by `scanner`.
    pub fn new(component: Component, ids: &[&str], scanner: &str) -> Finding {
        // CVE ids in one case, as canonical_id gives the id: an alias list always holds its id.
        let mut aliases: Vec<String> = ids
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| if is_cve(s) { s.to_ascii_uppercase() } else { s.to_owned() })
            .collect();
        aliases.sort();
        aliases.dedup();
        let id = canonical_id(ids).unwrap_or_default();
        Finding {
            component,
            id,
            aliases,
            severity: Severity::Unknown,
            severity_labelled: false,
            cvss: None,
            fixed: Vec::new(),
            location: None,
            title: None,
            scanners: vec![scanner.to_owned()],
        }
    }

    /// Sets the severity from a label (when it names one).
    pub fn label(mut self, label: &str) -> Finding {
        let s = Severity::from_label(label);
        if s != Severity::Unknown {
            self.severity = s;
            self.severity_labelled = true;
        }
        self
    }

    /// Adds a CVSS base score (the highest is kept); rates the finding by it when no label did.
    pub fn score(mut self, score: f64) -> Finding {
        if score.is_finite() && score > 0.0 {
            self.cvss = Some(self.cvss.map_or(score, |c| c.max(score)));
            if !self.severity_labelled {
                self.severity = self.severity.max(Severity::from_cvss(score));
            }
        }
        self
    }

    /// Adds fixed versions.
    pub fn fixed_in<S: AsRef<str>>(mut self, versions: impl IntoIterator<Item = S>) -> Finding {
        for v in versions {
            let v = v.as_ref().trim();
            if !v.is_empty() && !self.fixed.iter().any(|f| f == v) {
                self.fixed.push(v.to_owned());
            }
        }
        self.fixed.sort();
        self
    }

    /// The key that makes two reports' findings one: component and vulnerability.
    pub fn key(&self) -> (&str, &str) {
        (&self.component.purl, &self.id)
    }

    /// Folds another report's finding of the same key into this one.
    fn absorb(&mut self, other: Finding) {
        for a in other.aliases {
            if !self.aliases.contains(&a) {
                self.aliases.push(a);
            }
        }
        self.aliases.sort();
        match (self.severity_labelled, other.severity_labelled) {
            (false, true) => {
                self.severity = other.severity;
                self.severity_labelled = true;
            }
            (a, b) if a == b => self.severity = self.severity.max(other.severity),
            _ => {}
        }
        if let Some(c) = other.cvss {
            self.cvss = Some(self.cvss.map_or(c, |s| s.max(c)));
        }
        for v in other.fixed {
            if !self.fixed.contains(&v) {
                self.fixed.push(v);
            }
        }
        self.fixed.sort();
        self.location = self.location.take().or(other.location);
        self.title = self.title.take().or(other.title);
        for s in other.scanners {
            if !self.scanners.contains(&s) {
                self.scanners.push(s);
            }
        }
        self.scanners.sort();
    }
}

/// What a VEX statement says of a vulnerability in a component (CycloneDX
/// `analysis.state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VexState {
    /// The component is affected, or it is being looked at: the finding stands.
    Affected,
    /// Not affected (the code is not reachable, not present, ...): the finding is set aside.
    NotAffected,
    /// Not a real finding.
    FalsePositive,
    /// Fixed in this component.
    Resolved,
}

impl VexState {
    /// CycloneDX's `analysis.state`; `None` for a state that leaves the finding standing.
    pub fn from_cyclonedx(state: &str) -> Option<VexState> {
        match state {
            "not_affected" => Some(VexState::NotAffected),
            "false_positive" => Some(VexState::FalsePositive),
            "resolved" | "resolved_with_pedigree" => Some(VexState::Resolved),
            "exploitable" | "in_triage" => Some(VexState::Affected),
            _ => None,
        }
    }

    /// Whether a finding under this statement is set aside.
    pub fn sets_aside(self) -> bool {
        !matches!(self, VexState::Affected)
    }
}

/// A VEX statement: a vulnerability in a component, and what is known of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Vex {
    /// The component's canonical purl.
    pub purl: String,
    /// The vulnerability's ids.
    pub ids: Vec<String>,
    /// The state.
    pub state: VexState,
    /// Why (CycloneDX `analysis.justification` and `detail`), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
}

/// The formats [`read`] knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanFormat {
    /// `trivy --format json`.
    Trivy,
    /// `grype -o json`.
    Grype,
    /// `osv-scanner --format json`.
    Osv,
    /// SARIF 2.1.0, any tool.
    Sarif,
    /// CycloneDX JSON (an SBOM, with vulnerabilities and VEX when present).
    CycloneDx,
}

/// One report read: its findings, the components it lists (the inventory re-evaluation runs
/// on) and its VEX statements.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Findings, one per component and vulnerability.
    pub findings: Vec<Finding>,
    /// Every component the report names (those with findings included).
    pub components: Vec<Component>,
    /// VEX statements.
    pub vex: Vec<Vex>,
}

/// Reads a report of any known format; `file` names it in errors.
pub fn read(file: &Path, bytes: &[u8]) -> Result<(ScanFormat, Report), ScanError> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ScanError::at(
            file,
            ".",
            format!("not JSON: {e} (line {}, column {})", e.line(), e.column()),
        )
    })?;
    let format = detect(&doc).ok_or_else(|| {
        ScanError::at(file, ".", "not a Trivy, Grype, OSV-Scanner, SARIF or CycloneDX report")
    })?;
    let report = match format {
        ScanFormat::Trivy => trivy::read(file, doc)?,
        ScanFormat::Grype => grype::read(file, doc)?,
        ScanFormat::Osv => osv::read(file, doc)?,
        ScanFormat::Sarif => sarif::read(file, doc)?,
        ScanFormat::CycloneDx => cyclonedx::read(file, doc)?,
    };
    Ok((format, merge([report])))
}

/// The format of a parsed document, by the keys each format's top level has.
pub fn detect(doc: &serde_json::Value) -> Option<ScanFormat> {
    let o = doc.as_object()?;
    if o.get("bomFormat").and_then(|v| v.as_str()) == Some("CycloneDX") {
        Some(ScanFormat::CycloneDx)
    } else if o.contains_key("runs")
        && o.get("version").and_then(|v| v.as_str()).is_some_and(|v| v.starts_with("2.1"))
    {
        Some(ScanFormat::Sarif)
    } else if o.contains_key("matches")
        && (o.contains_key("descriptor") || o.contains_key("source"))
    {
        Some(ScanFormat::Grype)
    } else if o.contains_key("SchemaVersion")
        && (o.contains_key("Results") || o.contains_key("ArtifactName"))
    {
        Some(ScanFormat::Trivy)
    } else if o.contains_key("results") && o.get("results").is_some_and(|r| r.is_array()) {
        Some(ScanFormat::Osv)
    } else {
        None
    }
}

/// Several reports as one: findings of the same component and vulnerability folded together
/// (ids, scanners and fixed versions joined; a labelled severity preferred; the highest
/// score), components once each, and findings a VEX statement sets aside removed.
pub fn merge(reports: impl IntoIterator<Item = Report>) -> Report {
    let mut findings: BTreeMap<(String, String), Finding> = BTreeMap::new();
    let mut components: BTreeMap<String, Component> = BTreeMap::new();
    let mut vex: Vec<Vex> = Vec::new();
    for r in reports {
        for f in r.findings {
            // Looked up before cloning: re-evaluation merges half a million findings whose
            // components are nearly all known already.
            if !components.contains_key(&f.component.purl) {
                components.insert(f.component.purl.clone(), f.component.clone());
            }
            let key = (f.component.purl.clone(), f.id.clone());
            match findings.get_mut(&key) {
                Some(have) => have.absorb(f),
                None => {
                    findings.insert(key, f);
                }
            }
        }
        for c in r.components {
            match components.get_mut(&c.purl) {
                Some(have) if have.licenses.is_empty() => have.licenses = c.licenses,
                Some(_) => {}
                None => {
                    components.insert(c.purl.clone(), c);
                }
            }
        }
        for v in r.vex {
            if !vex.contains(&v) {
                vex.push(v);
            }
        }
    }
    let set_aside = |f: &Finding| {
        vex.iter().any(|v| {
            v.state.sets_aside()
                && v.purl == f.component.purl
                && v.ids.iter().any(|id| f.aliases.iter().any(|a| a.eq_ignore_ascii_case(id)))
        })
    };
    let findings = findings
        .into_values()
        .filter(|f| !set_aside(f))
        .map(|mut f| {
            // Licenses another report gave for the component.
            if f.component.licenses.is_empty()
                && let Some(c) = components.get(&f.component.purl)
            {
                f.component.licenses.clone_from(&c.licenses);
            }
            f
        })
        .collect();
    Report { findings, components: components.into_values().collect(), vex }
}

/// The CVE among `ids`, else the first non-empty one.
pub fn canonical_id(ids: &[&str]) -> Option<String> {
    let ids = ids.iter().map(|s| s.trim()).filter(|s| !s.is_empty());
    let mut first = None;
    for id in ids {
        if is_cve(id) {
            return Some(id.to_ascii_uppercase());
        }
        first.get_or_insert(id);
    }
    first.map(str::to_owned)
}

/// Whether `id` is a CVE id, in any case.
fn is_cve(id: &str) -> bool {
    id.len() > 4 && id.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("CVE-"))
}

/// A package URL without its qualifiers and subpath, its type in lower case: the same package
/// version named by two scanners (one adding `?arch=x86_64&distro=...`) is one component.
/// The spellings scanners differ on are made one: an npm scope's `@` percent-encoded as the
/// purl specification says (`%40babel`), a Go module version with its `v` (Go always writes
/// it; some tools drop it).
pub fn canonical_purl(purl: &str) -> String {
    let end = purl.find(['?', '#']).unwrap_or(purl.len());
    let base = &purl[..end];
    let Some((ty, rest)) = base.strip_prefix("pkg:").and_then(|rest| rest.split_once('/')) else {
        return base.to_owned();
    };
    let ty = ty.to_ascii_lowercase();
    let rest = match ty.as_str() {
        "npm" => match rest.strip_prefix('@') {
            Some(scoped) => format!("%40{scoped}"),
            None => rest.to_owned(),
        },
        "golang" => match rest.rsplit_once('@') {
            Some((path, v)) if v.starts_with(|c: char| c.is_ascii_digit()) => {
                format!("{path}@v{v}")
            }
            _ => rest.to_owned(),
        },
        _ => rest.to_owned(),
    };
    format!("pkg:{ty}/{rest}")
}

/// The purl of a package a scanner named without one, spelled as its purl type says, so that
/// another scanner's purl of the same package is the same string: Maven's `group:artifact` and
/// npm's `@scope/name` split into namespace and name, PyPI names normalised, OS packages
/// namespaced by their distribution (`distro`, empty when unknown). `ecosystem` is any name
/// [`purl_type_of`] knows.
pub fn synthetic_purl(ecosystem: &str, distro: &str, name: &str, version: &str) -> String {
    let ty = purl_type_of(ecosystem).to_ascii_lowercase();
    let ty = if ty.is_empty() { "generic".to_owned() } else { ty };
    let name = match ty.as_str() {
        "maven" => name.replace(':', "/"),
        "pypi" => name.to_ascii_lowercase().replace('_', "-"),
        "npm" => match name.strip_prefix('@') {
            Some(scoped) => format!("%40{scoped}"),
            None => name.to_owned(),
        },
        "apk" | "deb" | "rpm" if !distro.is_empty() => {
            format!("{}/{name}", distro.to_ascii_lowercase())
        }
        _ => name.to_owned(),
    };
    if version.is_empty() {
        format!("pkg:{ty}/{name}")
    } else {
        // The same spelling rules as a scanner's own purl (Go's `v`).
        canonical_purl(&format!("pkg:{ty}/{name}@{version}"))
    }
}

/// Lists and maps that some scanners write as `null` when empty read as empty.
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The type of a purl (`pkg:TYPE/...`).
fn purl_type(purl: &str) -> Option<&str> {
    purl.strip_prefix("pkg:")?.split('/').next()
}

/// An ecosystem as scanners name it (Grype's package types, Trivy's target types, OSV's
/// ecosystems, with or without OSV's `:release`) as a purl type; one table, so every reader
/// and the advisory index agree.
pub fn purl_type_of(ecosystem: &str) -> &str {
    let base = ecosystem.split_once(':').map_or(ecosystem, |(b, _)| b).trim();
    match base {
        "python" | "PyPI" | "pypi" | "pip" | "pipenv" | "poetry" | "uv" | "python-pkg" => "pypi",
        "java-archive" | "jenkins-plugin" | "Maven" | "maven" | "jar" | "pom" | "gradle"
        | "sbt" => "maven",
        "go-module" | "Go" | "go" | "golang" | "gomod" | "gobinary" => "golang",
        "rust-crate" | "crates.io" | "cargo" | "rustbinary" => "cargo",
        "npm" | "node" | "yarn" | "pnpm" | "bun" | "node-pkg" => "npm",
        "gem" | "RubyGems" | "bundler" | "gemspec" => "gem",
        "dotnet" | "NuGet" | "nuget" | "dotnet-core" | "packages-props" => "nuget",
        "php-composer" | "Packagist" | "composer" | "composer-vendor" => "composer",
        "Debian" | "deb" | "Ubuntu" | "debian" | "ubuntu" => "deb",
        "Alpine" | "apk" | "alpine" | "Wolfi" | "wolfi" | "Chainguard" | "chainguard" => "apk",
        "rpm"
        | "Red Hat"
        | "AlmaLinux"
        | "Rocky Linux"
        | "redhat"
        | "centos"
        | "rocky"
        | "alma"
        | "amazon"
        | "fedora"
        | "oracle"
        | "photon"
        | "cbl-mariner"
        | "azurelinux"
        | "opensuse"
        | "opensuse.leap"
        | "opensuse.tumbleweed"
        | "suse linux enterprise server"
        | "suse linux enterprise micro"
        | "SUSE"
        | "openSUSE"
        | "Photon OS"
        | "Mageia"
        | "openEuler" => "rpm",
        "conda-pkg" | "conda-environment" => "conda",
        "Pub" | "pub" => "pub",
        "Hex" | "hex" => "hex",
        "CRAN" => "cran",
        "Hackage" => "hackage",
        "SwiftURL" | "swift" => "swift",
        "ConanCenter" | "conan" => "conan",
        other => other,
    }
}

/// What the readers' tests share: a report read whole (format recognition and the merge
/// included), and a corpus file as JSON to damage.
#[cfg(test)]
pub(crate) mod testing {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::{Report, ScanFormat};
    use std::path::Path;

    /// `bytes` read as `file`, which must be recognized as `format`.
    pub fn read_as(format: ScanFormat, file: &str, bytes: &[u8]) -> Report {
        let (got, r) = super::read(Path::new(file), bytes).unwrap();
        assert_eq!(got, format, "{file}");
        r
    }

    /// A file read as `format`.
    pub fn read_file(format: ScanFormat, file: &str) -> Report {
        read_as(format, file, &std::fs::read(file).unwrap())
    }

    /// A document read as `format`.
    pub fn read_json(format: ScanFormat, doc: &serde_json::Value) -> Report {
        read_as(format, "t.json", &serde_json::to_vec(doc).unwrap())
    }

    /// A file's JSON, to change before reading.
    pub fn json_of(file: &str) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn comp(purl: &str) -> Component {
        Component::new(Some(purl), "", "x", "1", vec![])
    }

    #[test]
    fn purls_lose_qualifiers_and_packages_without_one_get_one() {
        assert_eq!(
            canonical_purl("pkg:APK/alpine/libcrypto1.1@1.1.1c-r0?arch=x86_64&distro=3.10.2"),
            "pkg:apk/alpine/libcrypto1.1@1.1.1c-r0"
        );
        assert_eq!(
            canonical_purl("pkg:npm/%40babel/core@7.0.0#sub/path"),
            "pkg:npm/%40babel/core@7.0.0"
        );
        assert_eq!(canonical_purl("pkg:npm/@babel/core@7.0.0"), "pkg:npm/%40babel/core@7.0.0");
        assert_eq!(
            canonical_purl("pkg:golang/github.com/x/y@1.2.3"),
            canonical_purl("pkg:golang/github.com/x/y@v1.2.3")
        );
        assert_eq!(
            canonical_purl("pkg:golang/github.com/x/y@v1.2.3"),
            "pkg:golang/github.com/x/y@v1.2.3"
        );
        assert_eq!(canonical_purl("pkg:golang/github.com/x/y"), "pkg:golang/github.com/x/y");
        assert_eq!(canonical_purl("pkg:npm/left-pad@1.0.0"), "pkg:npm/left-pad@1.0.0");
        assert_eq!(
            synthetic_purl("gomod", "", "github.com/x/y", "1.2.3"),
            "pkg:golang/github.com/x/y@v1.2.3"
        );
        let c = Component::new(None, "python", "requests", "2.0.0", vec![]);
        assert_eq!((c.purl.as_str(), c.ecosystem.as_str()), ("pkg:pypi/requests@2.0.0", "pypi"));
        assert_eq!(Component::new(Some(""), "", "a", "", vec![]).purl, "pkg:generic/a");
        assert_eq!(
            Component::new(Some("pkg:deb/debian/x@1?a=b"), "rpm", "x", "1", vec![]).ecosystem,
            "deb"
        );
    }

    #[test]
    fn every_reader_names_an_ecosystem_and_a_package_alike() {
        // Grype's, Trivy's and OSV's names of one ecosystem map to one purl type...
        for names in [
            ["python", "pip", "PyPI"],
            ["java-archive", "jar", "Maven"],
            ["apk", "wolfi", "Wolfi:2024"],
        ] {
            let types: Vec<&str> = names.iter().map(|n| purl_type_of(n)).collect();
            assert!(types.windows(2).all(|w| w[0] == w[1]), "{names:?} -> {types:?}");
        }
        // ...and a package without a purl is spelled as the purl type says.
        let c = Component::new(None, "python", "Foo_Bar", "1.0", vec![]);
        assert_eq!(c.purl, "pkg:pypi/foo-bar@1.0");
        assert_eq!(synthetic_purl("Maven", "", "org.x:y", "2"), "pkg:maven/org.x/y@2");
        assert_eq!(
            synthetic_purl("Alpine:v3.18", "alpine", "musl", "1.2"),
            "pkg:apk/alpine/musl@1.2"
        );
    }

    #[test]
    fn the_cve_names_a_vulnerability_whatever_id_came_first() {
        assert_eq!(canonical_id(&["GHSA-aaaa-bbbb-cccc", "cve-2024-1"]).unwrap(), "CVE-2024-1");
        assert_eq!(canonical_id(&["", "GHSA-aaaa-bbbb-cccc"]).unwrap(), "GHSA-aaaa-bbbb-cccc");
        assert_eq!(canonical_id(&[]), None);
        let f = Finding::new(comp("pkg:npm/x@1"), &["GHSA-1", "cve-2024-2"], "s");
        assert_eq!(
            (f.id.as_str(), f.aliases.as_slice()),
            ("CVE-2024-2", &["CVE-2024-2".to_owned(), "GHSA-1".to_owned()][..])
        );
    }

    #[test]
    fn merged_findings_join_ids_scanners_and_fixes_and_prefer_a_label() {
        let a = Finding::new(comp("pkg:npm/x@1"), &["GHSA-1", "CVE-2024-1"], "osv-scanner")
            .score(9.8)
            .fixed_in(["1.2.0"]);
        let b = Finding::new(comp("pkg:npm/x@1?x=y"), &["CVE-2024-1"], "trivy")
            .label("MEDIUM")
            .score(5.0)
            .fixed_in(["1.1.5", "1.2.0"]);
        assert_eq!(a.severity, Severity::Critical, "from the score: no label");
        let r = merge([
            Report { findings: vec![a], ..Report::default() },
            Report { findings: vec![b], ..Report::default() },
        ]);
        assert_eq!(r.findings.len(), 1);
        let f = &r.findings[0];
        assert_eq!(
            (f.id.as_str(), f.severity, f.cvss),
            ("CVE-2024-1", Severity::Medium, Some(9.8))
        );
        assert_eq!(f.aliases, ["CVE-2024-1", "GHSA-1"]);
        assert_eq!(f.scanners, ["osv-scanner", "trivy"]);
        assert_eq!(f.fixed, ["1.1.5", "1.2.0"]);
        assert_eq!(r.components.len(), 1);
    }

    #[test]
    fn a_vex_statement_sets_aside_its_finding_in_any_report() {
        let f = |id: &str| Finding::new(comp("pkg:npm/x@1"), &[id], "grype").label("high");
        let vex = |state| Vex {
            purl: "pkg:npm/x@1".into(),
            ids: vec!["CVE-1".into()],
            state,
            justification: None,
        };
        let r = merge([
            Report { findings: vec![f("CVE-1"), f("CVE-2")], ..Report::default() },
            Report { vex: vec![vex(VexState::NotAffected)], ..Report::default() },
        ]);
        let ids: Vec<&str> = r.findings.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["CVE-2"]);
        assert_eq!(r.vex.len(), 1);
        let r = merge([Report {
            findings: vec![f("CVE-1")],
            vex: vec![vex(VexState::Affected)],
            ..Report::default()
        }]);
        assert_eq!(r.findings.len(), 1, "in triage or exploitable: stands");
    }

    #[test]
    fn what_is_not_a_known_report_says_so() {
        let e = read(Path::new("r.json"), b"{\"hello\": 1}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "r.json: .: not a Trivy, Grype, OSV-Scanner, SARIF or CycloneDX report"
        );
        let e = read(Path::new("r.json"), b"{\"hello\": ").unwrap_err();
        assert!(e.to_string().starts_with("r.json: .: not JSON: "), "{e}");
    }
}
