//! Trivy JSON (`trivy --format json`, schema 2): `Results`, one per scanned target (the OS
//! packages of an image, a lockfile, ...), each with its `Vulnerabilities` and, with
//! `--list-all-pkgs`, its `Packages`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use super::{
    Component, Finding, Report, ScanError, decode, nullable, purl_type_of, synthetic_purl,
};

const SCANNER: &str = "trivy";

#[derive(Deserialize)]
struct Doc {
    #[serde(rename = "Results", default, deserialize_with = "nullable")]
    results: Vec<Target>,
}

#[derive(Deserialize)]
struct Target {
    #[serde(rename = "Target", default)]
    target: String,
    #[serde(rename = "Class", default)]
    class: String,
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(rename = "Vulnerabilities", default, deserialize_with = "nullable")]
    vulnerabilities: Vec<Vulnerability>,
    #[serde(rename = "Packages", default, deserialize_with = "nullable")]
    packages: Vec<Package>,
}

#[derive(Deserialize)]
struct Vulnerability {
    #[serde(rename = "VulnerabilityID")]
    id: String,
    #[serde(rename = "VendorIDs", default, deserialize_with = "nullable")]
    vendor_ids: Vec<String>,
    #[serde(rename = "PkgName")]
    pkg_name: String,
    #[serde(rename = "PkgPath", default)]
    pkg_path: String,
    #[serde(rename = "PkgIdentifier", default)]
    pkg_identifier: Option<Identifier>,
    #[serde(rename = "InstalledVersion", default)]
    installed_version: String,
    #[serde(rename = "FixedVersion", default)]
    fixed_version: String,
    #[serde(rename = "Severity", default)]
    severity: String,
    #[serde(rename = "CVSS", default, deserialize_with = "nullable")]
    cvss: BTreeMap<String, Cvss>,
    #[serde(rename = "Title", default)]
    title: Option<String>,
}

#[derive(Deserialize)]
struct Identifier {
    #[serde(rename = "PURL", default)]
    purl: String,
}

/// One source's scores. V2 scores are left out: the v2 scale rates the same vulnerability
/// differently, and a source giving only v2 is rare in schema 2.
#[derive(Deserialize)]
struct Cvss {
    #[serde(rename = "V3Score", default)]
    v3: Option<f64>,
    #[serde(rename = "V40Score", default)]
    v40: Option<f64>,
}

#[derive(Deserialize)]
struct Package {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Version", default)]
    version: String,
    #[serde(rename = "Release", default)]
    release: String,
    #[serde(rename = "Epoch", default)]
    epoch: u64,
    #[serde(rename = "Identifier", default)]
    identifier: Option<Identifier>,
    #[serde(rename = "Licenses", default, deserialize_with = "nullable")]
    licenses: Vec<String>,
}

impl Package {
    /// The version as Trivy writes a vulnerability's `InstalledVersion`: RPM packages list
    /// epoch and release apart, and the purl built without Trivy's must match the finding's.
    fn full_version(&self) -> String {
        let mut v = self.version.clone();
        if !self.release.is_empty() {
            v = format!("{v}-{}", self.release);
        }
        if self.epoch > 0 {
            v = format!("{}:{v}", self.epoch);
        }
        v
    }
}

/// Reads a Trivy document.
pub fn read(file: &Path, doc: serde_json::Value) -> Result<Report, ScanError> {
    let doc: Doc = decode(file, doc)?;
    let mut report = Report::default();
    // Each component once, the first time it is named; a later listing can only add licenses.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut add = |report: &mut Report, c: Component| match seen.get(&c.purl) {
        Some(&i) => {
            if let Some(have) = report.components.get_mut(i).filter(|h| h.licenses.is_empty()) {
                have.licenses = c.licenses;
            }
        }
        None => {
            seen.insert(c.purl.clone(), report.components.len());
            report.components.push(c);
        }
    };
    for t in doc.results {
        let ty = purl_type_of(&t.kind);
        // OS packages' purls are namespaced by distribution, which Trivy names by `Type`.
        let distro = if t.class == "os-pkgs" { t.kind.as_str() } else { "" };
        let mut licenses: HashMap<String, Vec<String>> = HashMap::new();
        for p in t.packages {
            let version = p.full_version();
            let purl = match p.identifier.as_ref().map(|i| i.purl.as_str()) {
                Some(purl) if !purl.is_empty() => purl.to_owned(),
                _ => synthetic_purl(ty, distro, &p.name, &version),
            };
            let c = Component::new(Some(&purl), ty, &p.name, &version, p.licenses);
            if !c.licenses.is_empty() {
                licenses.insert(c.purl.clone(), c.licenses.clone());
            }
            add(&mut report, c);
        }
        for v in t.vulnerabilities {
            let purl = match v.pkg_identifier.as_ref().map(|i| i.purl.as_str()) {
                Some(purl) if !purl.is_empty() => purl.to_owned(),
                _ => synthetic_purl(ty, distro, &v.pkg_name, &v.installed_version),
            };
            let mut c = Component::new(Some(&purl), ty, &v.pkg_name, &v.installed_version, vec![]);
            // Vulnerabilities carry no licenses; the package list (when asked for) does.
            c.licenses = licenses.get(&c.purl).cloned().unwrap_or_default();
            let mut ids = vec![v.id.as_str()];
            ids.extend(v.vendor_ids.iter().map(String::as_str));
            let mut f = Finding::new(c.clone(), &ids, SCANNER).label(&v.severity);
            for s in v.cvss.values().flat_map(|c| [c.v3, c.v40]).flatten() {
                f = f.score(s);
            }
            // Several fixed versions, one per release line, are written as one string.
            f = f.fixed_in(v.fixed_version.split(','));
            f.location = [v.pkg_path, t.target.clone()].into_iter().find(|p| !p.is_empty());
            f.title = v.title.filter(|s| !s.trim().is_empty());
            add(&mut report, c);
            report.findings.push(f);
        }
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
        "/../shared/corpus/scanners/trivy/alpine-310.json.golden.json"
    );

    #[test]
    fn the_corpus_report_reads_to_its_four_findings() {
        let r = read_file(ScanFormat::Trivy, FILE);
        let got: Vec<_> = r
            .findings
            .iter()
            .map(|f| {
                (f.component.purl.as_str(), f.id.as_str(), f.severity, f.cvss, f.fixed.clone())
            })
            .collect();
        let crypto = "pkg:apk/alpine/libcrypto1.1@1.1.1c-r0";
        let ssl = "pkg:apk/alpine/libssl1.1@1.1.1c-r0";
        let m = Severity::Medium;
        assert_eq!(
            got,
            [
                (crypto, "CVE-2019-1549", m, Some(5.3), vec!["1.1.1d-r0".to_owned()]),
                (crypto, "CVE-2019-1551", m, Some(5.3), vec!["1.1.1d-r2".to_owned()]),
                (ssl, "CVE-2019-1549", m, Some(5.3), vec!["1.1.1d-r0".to_owned()]),
                (ssl, "CVE-2019-1551", m, Some(5.3), vec!["1.1.1d-r2".to_owned()]),
            ]
        );
        let f = &r.findings[1];
        assert!(f.severity_labelled);
        assert_eq!(f.aliases, ["CVE-2019-1551"]);
        assert_eq!(
            f.title.as_deref(),
            Some("openssl: Integer overflow in RSAZ modular exponentiation on x86_64")
        );
        assert_eq!(
            f.location.as_deref(),
            Some("testdata/fixtures/images/alpine-310.tar.gz (alpine 3.10.2)")
        );
        assert_eq!(f.scanners, ["trivy"]);
        assert_eq!(f.component.ecosystem, "apk");
        assert_eq!(f.component.name, "libcrypto1.1");
        assert_eq!(f.component.version, "1.1.1c-r0");
        let purls: Vec<_> = r.components.iter().map(|c| c.purl.as_str()).collect();
        assert_eq!(purls, [crypto, ssl]);
    }

    /// The parts of the format the corpus file lacks: a package list, vendor ids, several
    /// fixed versions, v4 scores, `null` lists and packages without a purl.
    #[test]
    fn packages_aliases_and_purl_less_packages() {
        let doc = serde_json::json!({
            "SchemaVersion": 2,
            "ArtifactName": ".",
            "Results": [
                {
                    "Target": "requirements.txt", "Class": "lang-pkgs", "Type": "pip",
                    "Packages": [
                        {"Name": "PyYAML_x", "Version": "5.3", "Licenses": ["MIT"]},
                        {"Name": "idna", "Version": "3.4",
                         "Identifier": {"PURL": "pkg:pypi/idna@3.4"}, "Licenses": null}
                    ],
                    "Vulnerabilities": [{
                        "VulnerabilityID": "GHSA-8q59-q68h-6hv4",
                        "VendorIDs": ["CVE-2020-14343"],
                        "PkgName": "PyYAML_x", "InstalledVersion": "5.3",
                        "FixedVersion": "5.4, 6.0.1", "Severity": "UNKNOWN",
                        "CVSS": {
                            "ghsa": {"V3Score": 9.8, "V40Score": 9.3},
                            "nvd": {"V2Score": 10.0}
                        }
                    }]
                },
                {"Target": "pom.xml", "Class": "lang-pkgs", "Type": "pom",
                 "Vulnerabilities": null},
                {
                    "Target": "app.jar", "Class": "lang-pkgs", "Type": "jar",
                    "Vulnerabilities": [{
                        "VulnerabilityID": "CVE-2021-44228",
                        "PkgName": "org.apache.logging.log4j:log4j-core",
                        "PkgPath": "app.jar/BOOT-INF/lib/log4j-core-2.14.1.jar",
                        "InstalledVersion": "2.14.1", "FixedVersion": "2.15.0",
                        "Severity": "CRITICAL", "CVSS": null, "Title": ""
                    }]
                }
            ]
        });
        let r = read(Path::new("t.json"), doc).unwrap();
        assert_eq!(r.findings.len(), 2);
        let py = &r.findings[0];
        assert_eq!(py.component.purl, "pkg:pypi/pyyaml-x@5.3");
        assert_eq!(py.component.ecosystem, "pypi");
        assert_eq!(py.component.licenses, ["MIT"]);
        assert_eq!(py.id, "CVE-2020-14343");
        assert_eq!(py.aliases, ["CVE-2020-14343", "GHSA-8q59-q68h-6hv4"]);
        assert_eq!(
            (py.severity, py.severity_labelled, py.cvss),
            (Severity::Critical, false, Some(9.8))
        );
        assert_eq!(py.fixed, ["5.4", "6.0.1"]);
        assert_eq!(py.location.as_deref(), Some("requirements.txt"));
        assert_eq!(py.title, None);
        let j = &r.findings[1];
        assert_eq!(j.component.purl, "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1");
        assert_eq!((j.severity, j.severity_labelled, j.cvss), (Severity::Critical, true, None));
        assert_eq!(j.location.as_deref(), Some("app.jar/BOOT-INF/lib/log4j-core-2.14.1.jar"));
        assert_eq!(j.title, None);
        let purls: Vec<_> = r.components.iter().map(|c| c.purl.as_str()).collect();
        assert_eq!(
            purls,
            [
                "pkg:pypi/pyyaml-x@5.3",
                "pkg:pypi/idna@3.4",
                "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"
            ]
        );
    }

    #[test]
    fn os_packages_without_a_purl_are_namespaced_by_their_distribution() {
        assert_eq!(
            synthetic_purl("debian", "debian", "openssl", "1.1.1n-0"),
            "pkg:deb/debian/openssl@1.1.1n-0"
        );
        assert_eq!(
            synthetic_purl("npm", "", "@babel/core", "7.0.0"),
            "pkg:npm/%40babel/core@7.0.0"
        );
        assert_eq!(synthetic_purl("", "", "thing", ""), "pkg:generic/thing");
    }

    #[test]
    fn a_wrong_type_is_an_error_naming_its_json_path() {
        let mut doc = json_of(FILE);
        doc["Results"][0]["Vulnerabilities"][0]["PkgName"] = serde_json::json!(7);
        let err = read(Path::new("t.json"), doc).unwrap_err();
        assert_eq!(err.path, "Results[0].Vulnerabilities[0].PkgName");
        assert!(
            err.to_string()
                .starts_with("t.json: Results[0].Vulnerabilities[0].PkgName: invalid type"),
            "{err}"
        );
    }
}
