//! OSV-Scanner JSON (`osv-scanner --format json`): `results`, one per scanned source (a
//! lockfile, an SBOM, an image), each listing its vulnerable packages with their full OSV
//! records and the scanner's grouping of records that are one vulnerability.

use std::path::Path;

use serde::Deserialize;

use super::{
    Component, Finding, Report, ScanError, Severity, decode, nullable, purl_type_of, synthetic_purl,
};

const SCANNER: &str = "osv-scanner";

#[derive(Deserialize)]
struct Doc {
    #[serde(default, deserialize_with = "nullable")]
    results: Vec<SourceResult>,
}

#[derive(Deserialize)]
struct SourceResult {
    #[serde(default)]
    source: Source,
    #[serde(default, deserialize_with = "nullable")]
    packages: Vec<PackageResult>,
}

#[derive(Default, Deserialize)]
struct Source {
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
struct PackageResult {
    package: Package,
    #[serde(default, deserialize_with = "nullable")]
    vulnerabilities: Vec<Vulnerability>,
    #[serde(default, deserialize_with = "nullable")]
    groups: Vec<Group>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    ecosystem: String,
}

#[derive(Deserialize)]
struct Vulnerability {
    id: String,
    #[serde(default, deserialize_with = "nullable")]
    aliases: Vec<String>,
    #[serde(default)]
    summary: String,
    #[serde(default, deserialize_with = "nullable")]
    severity: Vec<SeverityEntry>,
    #[serde(default, deserialize_with = "nullable")]
    affected: Vec<Affected>,
    #[serde(default)]
    database_specific: Option<DatabaseSpecific>,
}

#[derive(Deserialize)]
struct SeverityEntry {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    score: String,
}

/// `database_specific` is each database's own; only GitHub's `severity` label is read, and as
/// any JSON value, so that another database's differently typed `severity` does not fail a
/// report.
#[derive(Deserialize)]
struct DatabaseSpecific {
    #[serde(default)]
    severity: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Affected {
    #[serde(default)]
    package: Option<AffectedPackage>,
    #[serde(default, deserialize_with = "nullable")]
    ranges: Vec<Range>,
}

#[derive(Deserialize)]
struct AffectedPackage {
    #[serde(default)]
    ecosystem: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct Range {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default, deserialize_with = "nullable")]
    events: Vec<Event>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(default)]
    fixed: Option<String>,
}

#[derive(Deserialize)]
struct Group {
    #[serde(default, deserialize_with = "nullable")]
    ids: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    aliases: Vec<String>,
    #[serde(default)]
    max_severity: String,
}

/// Reads an OSV-Scanner document.
pub fn read(file: &Path, doc: serde_json::Value) -> Result<Report, ScanError> {
    let doc: Doc = decode(file, doc)?;
    let mut report = Report::default();
    for r in doc.results {
        let location = Some(r.source.path).filter(|p| !p.is_empty());
        for p in r.packages {
            let pkg = &p.package;
            let (ty, distro) = ecosystem(&pkg.ecosystem);
            let purl = synthetic_purl(&ty, &distro, &pkg.name, &pkg.version);
            let component = Component::new(Some(&purl), &ty, &pkg.name, &pkg.version, vec![]);
            let one = |ids: Vec<&str>, members: &[&Vulnerability], max_severity: &str| {
                let mut f = finding(component.clone(), &ids, pkg, members, max_severity);
                f.location = location.clone();
                f
            };
            for g in &p.groups {
                // In the group's order, so that the title is its first record's.
                let members: Vec<&Vulnerability> = g
                    .ids
                    .iter()
                    .filter_map(|id| p.vulnerabilities.iter().find(|v| v.id == *id))
                    .collect();
                // The GHSA/OSV ids first, then every alias: older OSV-Scanners write groups
                // without `aliases`, and the CVE the finding is known by is only among the
                // records' aliases.
                let mut ids: Vec<&str> = g.ids.iter().map(String::as_str).collect();
                ids.extend(g.aliases.iter().map(String::as_str));
                ids.extend(members.iter().flat_map(|v| v.aliases.iter().map(String::as_str)));
                if ids.iter().any(|id| !id.trim().is_empty()) {
                    report.findings.push(one(ids, &members, &g.max_severity));
                }
            }
            // Records no group names (all of them, when the scanner wrote no groups) are a
            // finding each rather than lost.
            for v in &p.vulnerabilities {
                if p.groups.iter().any(|g| g.ids.contains(&v.id)) || v.id.trim().is_empty() {
                    continue;
                }
                let mut ids = vec![v.id.as_str()];
                ids.extend(v.aliases.iter().map(String::as_str));
                report.findings.push(one(ids, &[v], ""));
            }
            report.components.push(component);
        }
    }
    Ok(report)
}

/// One finding of `ids` in `component` from the OSV records `members`: rated by the highest
/// label any of them gives and by the group's `max_severity` score, fixed by the versions their
/// ranges for this package name.
fn finding(
    component: Component,
    ids: &[&str],
    pkg: &Package,
    members: &[&Vulnerability],
    max_severity: &str,
) -> Finding {
    let mut f = Finding::new(component, ids, SCANNER);
    let labels = members.iter().flat_map(|v| {
        let github =
            v.database_specific.as_ref().and_then(|d| d.severity.as_ref()).and_then(|s| s.as_str());
        // Ubuntu rates in `severity` itself, with a label for a score.
        let ubuntu = v.severity.iter().filter(|s| s.kind == "Ubuntu").map(|s| s.score.as_str());
        github.into_iter().chain(ubuntu)
    });
    let label = labels.map(Severity::from_label).max().unwrap_or_default();
    if label != Severity::Unknown {
        f = f.label(label.as_str());
    }
    // Empty when no record has a CVSS vector; the vectors themselves are not scored here.
    if let Ok(score) = max_severity.trim().parse::<f64>() {
        f = f.score(score);
    }
    let ty = ecosystem(&pkg.ecosystem).0;
    // Names as the ecosystem spells them may differ in case (PyPI's `Django`).
    let ours: Vec<(&Affected, &AffectedPackage)> = members
        .iter()
        .flat_map(|v| &v.affected)
        .filter_map(|a| Some((a, a.package.as_ref()?)))
        .filter(|(_, ap)| ap.name.eq_ignore_ascii_case(&pkg.name))
        .filter(|(_, ap)| ecosystem(&ap.ecosystem).0 == ty)
        .collect();
    // A distribution's record lists each release's fix (`Debian:11`, `Debian:12`); the
    // package's own release's is the one to upgrade to, when the record has it.
    let same_release = ours.iter().any(|(_, ap)| ap.ecosystem == pkg.ecosystem);
    let fixed = ours
        .into_iter()
        .filter(|(_, ap)| !same_release || ap.ecosystem == pkg.ecosystem)
        .flat_map(|(a, _)| &a.ranges)
        // A GIT range's events are commits, not versions.
        .filter(|r| r.kind != "GIT")
        .flat_map(|r| &r.events)
        .filter_map(|e| e.fixed.as_deref());
    f = f.fixed_in(fixed);
    f.title = members.iter().map(|v| v.summary.trim()).find(|s| !s.is_empty()).map(str::to_owned);
    f
}

/// An OSV ecosystem as a purl type and, for a distribution's packages, the purl namespace.
/// The release after `:` (`Debian:11`, `Alpine:v3.18`, `Ubuntu:22.04:LTS`) is dropped.
fn ecosystem(eco: &str) -> (String, String) {
    let base = eco.split_once(':').map_or(eco, |(b, _)| b).trim();
    let distro = match base {
        "Debian" | "Ubuntu" | "Alpine" | "Wolfi" | "Chainguard" | "SUSE" | "openSUSE"
        | "Mageia" | "openEuler" => base.to_ascii_lowercase(),
        "Red Hat" => "redhat".to_owned(),
        "Rocky Linux" => "rocky".to_owned(),
        "AlmaLinux" => "almalinux".to_owned(),
        "Photon OS" => "photon".to_owned(),
        _ => String::new(),
    };
    (purl_type_of(base).to_ascii_lowercase(), distro)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::parse::scan::ScanFormat;
    use crate::parse::scan::testing::{json_of, read_file};

    const FILE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/scanners/osv-scanner/test-vuln-results-a.json"
    );

    #[test]
    fn the_corpus_report_reads_to_one_finding_a_group() {
        let r = read_file(ScanFormat::Osv, FILE);
        let got: Vec<_> = r
            .findings
            .iter()
            .map(|f| (f.component.purl.as_str(), f.id.as_str(), f.severity, f.cvss))
            .collect();
        assert_eq!(
            got,
            [
                ("pkg:cargo/regex@1.5.1", "CVE-2022-24713", Severity::High, None),
                (
                    "pkg:golang/github.com/gogo/protobuf@v1.3.1",
                    "CVE-2021-3121",
                    Severity::Unknown,
                    None
                ),
            ]
        );
        let regex = &r.findings[0];
        assert!(regex.severity_labelled);
        assert_eq!(regex.aliases, ["CVE-2022-24713", "GHSA-m5pq-gvj9-9vr8", "RUSTSEC-2022-0013"]);
        assert_eq!(regex.fixed, ["1.5.5"]);
        assert_eq!(
            regex.title.as_deref(),
            Some("Rust's regex crate vulnerable to regular expression denial of service")
        );
        assert_eq!(regex.location.as_deref(), Some("/path/to/sub-rust-project/Cargo.lock"));
        assert_eq!(regex.scanners, ["osv-scanner"]);
        assert_eq!(regex.component.ecosystem, "cargo");
        let go = &r.findings[1];
        assert_eq!(go.aliases, ["CVE-2021-3121", "GHSA-c3h9-896r-86jm", "GO-2021-0053"]);
        assert_eq!(go.fixed, ["1.3.2"]);
        assert_eq!(
            go.title.as_deref(),
            Some("Panic due to improper input validation in github.com/gogo/protobuf")
        );
        assert_eq!(go.location.as_deref(), Some("/path/to/go.mod"));
        assert_eq!(
            (go.component.name.as_str(), go.component.version.as_str()),
            ("github.com/gogo/protobuf", "1.3.1")
        );
        let purls: Vec<_> = r.components.iter().map(|c| c.purl.as_str()).collect();
        assert_eq!(purls, ["pkg:cargo/regex@1.5.1", "pkg:golang/github.com/gogo/protobuf@v1.3.1"]);
    }

    /// What the corpus file lacks: groups with aliases and a score, several records in one
    /// group, release-suffixed ecosystems, packages with records but no groups, GIT ranges
    /// and affected entries for other packages.
    #[test]
    fn groups_scores_distributions_and_ungrouped_records() {
        let doc = serde_json::json!({"results": [{
            "source": {"path": "/img/var/lib/dpkg/status", "type": "os"},
            "packages": [
                {
                    "package": {"name": "openssl", "version": "3.0.11-1", "ecosystem": "Debian:12"},
                    "vulnerabilities": [
                        {"id": "DSA-5532-1", "aliases": ["CVE-2023-5363"], "summary": "",
                         "affected": [
                            {"package": {"ecosystem": "Debian:12", "name": "openssl"},
                             "ranges": [{"type": "ECOSYSTEM",
                                         "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]}]},
                            {"package": {"ecosystem": "Debian:11", "name": "openssl"},
                             "ranges": [{"type": "ECOSYSTEM",
                                         "events": [{"introduced": "0"}, {"fixed": "1.1.1w-0+deb11u1"}]}]},
                            {"package": {"ecosystem": "Debian:12", "name": "libssl3"},
                             "ranges": [{"type": "ECOSYSTEM", "events": [{"fixed": "9"}]}]}
                         ]},
                        {"id": "DEBIAN-CVE-2023-5363", "summary": "openssl: incorrect cipher key",
                         "severity": [{"type": "CVSS_V3",
                                       "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
                         "database_specific": {"severity": 3},
                         "affected": [{"package": {"ecosystem": "Debian", "name": "openssl"},
                                       "ranges": [{"type": "GIT", "repo": "x",
                                                   "events": [{"fixed": "abc123"}]}]}]}
                    ],
                    "groups": [{"ids": ["DEBIAN-CVE-2023-5363", "DSA-5532-1"],
                                "aliases": ["CVE-2023-5363", "DEBIAN-CVE-2023-5363", "DSA-5532-1"],
                                "max_severity": "7.5"}]
                },
                {
                    "package": {"name": "busybox", "version": "1.36.1-r2", "ecosystem": "Alpine:v3.18"},
                    "vulnerabilities": [
                        {"id": "ALPINE-CVE-2023-42363", "aliases": null, "summary": "use after free",
                         "database_specific": {"severity": "moderate"},
                         "affected": [{"package": {"ecosystem": "Alpine:v3.19", "name": "busybox"},
                                       "ranges": [{"type": "ECOSYSTEM",
                                                   "events": [{"fixed": "1.36.1-r15"}]}]}]},
                        {"id": "GHSA-aaaa-bbbb-cccc",
                         "severity": [{"type": "Ubuntu", "score": "low"}]}
                    ],
                    "groups": null
                },
                {"package": {"name": "org.apache.logging.log4j:log4j-core", "version": "2.14.1",
                             "ecosystem": "Maven"}}
            ]
        }]});
        let r = read(Path::new("o.json"), doc).unwrap();
        assert_eq!(r.findings.len(), 3);
        let ssl = &r.findings[0];
        assert_eq!(ssl.component.purl, "pkg:deb/debian/openssl@3.0.11-1");
        assert_eq!(ssl.component.ecosystem, "deb");
        assert_eq!(ssl.id, "CVE-2023-5363");
        assert_eq!(ssl.aliases, ["CVE-2023-5363", "DEBIAN-CVE-2023-5363", "DSA-5532-1"]);
        assert_eq!(
            (ssl.severity, ssl.severity_labelled, ssl.cvss),
            (Severity::High, false, Some(7.5))
        );
        assert_eq!(ssl.fixed, ["3.0.11-1~deb12u2"]);
        assert_eq!(ssl.title.as_deref(), Some("openssl: incorrect cipher key"));
        assert_eq!(ssl.location.as_deref(), Some("/img/var/lib/dpkg/status"));
        // No Alpine v3.18 fix in the record: another release's is the best said.
        assert_eq!(r.findings[1].fixed, ["1.36.1-r15"]);
        let bb: Vec<_> = r.findings[1..]
            .iter()
            .map(|f| (f.component.purl.as_str(), f.id.as_str(), f.severity, f.title.as_deref()))
            .collect();
        assert_eq!(
            bb,
            [
                (
                    "pkg:apk/alpine/busybox@1.36.1-r2",
                    "ALPINE-CVE-2023-42363",
                    Severity::Medium,
                    Some("use after free")
                ),
                ("pkg:apk/alpine/busybox@1.36.1-r2", "GHSA-aaaa-bbbb-cccc", Severity::Low, None),
            ]
        );
        let purls: Vec<_> = r.components.iter().map(|c| c.purl.as_str()).collect();
        assert_eq!(
            purls,
            [
                "pkg:deb/debian/openssl@3.0.11-1",
                "pkg:apk/alpine/busybox@1.36.1-r2",
                "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"
            ]
        );
    }

    #[test]
    fn a_wrong_type_is_an_error_naming_its_json_path() {
        let mut doc = json_of(FILE);
        doc["results"][1]["packages"][0]["vulnerabilities"][1]["aliases"][0] = serde_json::json!(7);
        let err = read(Path::new("o.json"), doc).unwrap_err();
        assert_eq!(err.path, "results[1].packages[0].vulnerabilities[1].aliases[0]");
        assert!(
            err.to_string().starts_with(
                "o.json: results[1].packages[0].vulnerabilities[1].aliases[0]: invalid type"
            ),
            "{err}"
        );
    }
}
