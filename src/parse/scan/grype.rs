//! Grype JSON (`grype -o json`): `matches`, each a vulnerability in an artifact.

use std::path::Path;

use serde::Deserialize;

use super::{Component, Finding, Report, ScanError, decode};

#[derive(Deserialize)]
struct Doc {
    matches: Vec<Match>,
    #[serde(default)]
    descriptor: Option<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Match {
    vulnerability: Vulnerability,
    #[serde(default)]
    related_vulnerabilities: Vec<Related>,
    artifact: Artifact,
}

#[derive(Deserialize)]
struct Vulnerability {
    id: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    cvss: Vec<Cvss>,
    #[serde(default)]
    fix: Option<Fix>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct Related {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cvss {
    #[serde(default)]
    metrics: Option<Metrics>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metrics {
    #[serde(default)]
    base_score: Option<f64>,
}

#[derive(Deserialize)]
struct Fix {
    #[serde(default)]
    versions: Vec<String>,
}

#[derive(Deserialize)]
struct Artifact {
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    purl: String,
    #[serde(default)]
    licenses: Vec<License>,
    #[serde(default)]
    locations: Vec<Location>,
}

/// Grype writes licenses as strings, newer versions as objects with a `value`.
#[derive(Deserialize)]
#[serde(untagged)]
enum License {
    Name(String),
    Object { value: String },
}

#[derive(Deserialize)]
struct Location {
    #[serde(default)]
    path: String,
}

/// Reads a Grype document.
pub fn read(file: &Path, doc: serde_json::Value) -> Result<Report, ScanError> {
    let doc: Doc = decode(file, doc)?;
    let scanner = doc.descriptor.map(|d| d.name).filter(|n| !n.is_empty());
    let scanner = scanner.as_deref().unwrap_or("grype");
    let mut report = Report::default();
    for m in doc.matches {
        let a = m.artifact;
        let licenses = a
            .licenses
            .into_iter()
            .map(|l| match l {
                License::Name(n) | License::Object { value: n } => n,
            })
            .collect();
        let purl = Some(a.purl.as_str()).filter(|p| !p.is_empty());
        let component = Component::new(purl, &a.kind, &a.name, &a.version, licenses);
        let v = m.vulnerability;
        let mut ids = vec![v.id.as_str()];
        ids.extend(m.related_vulnerabilities.iter().map(|r| r.id.as_str()));
        let mut f = Finding::new(component.clone(), &ids, scanner).label(&v.severity);
        for c in &v.cvss {
            if let Some(score) = c.metrics.as_ref().and_then(|m| m.base_score) {
                f = f.score(score);
            }
        }
        f = f.fixed_in(v.fix.map(|x| x.versions).unwrap_or_default());
        f.location = a.locations.into_iter().map(|l| l.path).find(|p| !p.is_empty());
        f.title = v.description;
        report.components.push(component);
        report.findings.push(f);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::parse::scan::testing::{json_of, read_file};
    use crate::parse::scan::{ScanFormat, Severity};

    const FILE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/scanners/grype/TestJsonImgsPresenter.golden.json"
    );

    #[test]
    fn the_corpus_report_reads_to_its_two_findings() {
        let r = read_file(ScanFormat::Grype, FILE);
        let got: Vec<_> = r
            .findings
            .iter()
            .map(|f| (f.component.purl.as_str(), f.id.as_str(), f.severity, f.cvss))
            .collect();
        assert_eq!(
            got,
            [
                ("pkg:deb/package-2@2.2.2", "CVE-1999-0002", Severity::Critical, Some(8.5)),
                ("pkg:rpm/package-1@1.1.1", "CVE-1999-0001", Severity::Low, Some(8.2)),
            ]
        );
        let p1 = &r.findings[1];
        assert_eq!(p1.fixed, ["1.2.1", "2.1.3", "3.4.0"]);
        assert_eq!(p1.location.as_deref(), Some("/foo/bar/somefile-1.txt"));
        assert_eq!(p1.scanners, ["grype"]);
        assert_eq!(r.findings[0].component.licenses, ["Apache-2.0", "MIT"]);
        assert_eq!(r.components.len(), 2);
    }

    #[test]
    fn a_wrong_type_is_an_error_naming_its_json_path() {
        let mut doc = json_of(FILE);
        doc["matches"][1]["artifact"]["name"] = serde_json::json!(7);
        let err = read(Path::new("g.json"), doc).unwrap_err();
        assert_eq!(err.path, "matches[1].artifact.name");
        assert!(
            err.to_string().starts_with("g.json: matches[1].artifact.name: invalid type"),
            "{err}"
        );
    }
}
