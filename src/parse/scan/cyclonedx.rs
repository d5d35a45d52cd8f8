//! CycloneDX JSON 1.4–1.7: the SBOM's components, its vulnerabilities (one finding per
//! affected component) and their VEX analysis.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{Component, Finding, Report, ScanError, Severity, Vex, VexState, decode};

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    components: Vec<CdxComponent>,
    #[serde(default)]
    vulnerabilities: Vec<Vulnerability>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    tools: Option<Tools>,
    #[serde(default)]
    component: Option<CdxComponent>,
}

/// Before 1.5 `tools` was a list of tools; since, an object of components and services.
#[derive(Deserialize)]
#[serde(untagged)]
enum Tools {
    Legacy(Vec<Tool>),
    Current {
        #[serde(default)]
        components: Vec<Tool>,
    },
}

#[derive(Deserialize)]
struct Tool {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct CdxComponent {
    #[serde(default, rename = "bom-ref")]
    bom_ref: Option<String>,
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    purl: Option<String>,
    #[serde(default)]
    licenses: Vec<LicenseChoice>,
    #[serde(default)]
    properties: Vec<Property>,
    #[serde(default)]
    components: Vec<CdxComponent>,
}

#[derive(Deserialize)]
struct LicenseChoice {
    #[serde(default)]
    license: Option<License>,
    #[serde(default)]
    expression: Option<String>,
}

#[derive(Deserialize)]
struct License {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Property {
    name: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
struct Vulnerability {
    id: String,
    #[serde(default)]
    references: Vec<Reference>,
    #[serde(default)]
    ratings: Vec<Rating>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    affects: Vec<Affects>,
    #[serde(default)]
    analysis: Option<Analysis>,
}

#[derive(Deserialize)]
struct Reference {
    id: String,
}

#[derive(Deserialize)]
struct Rating {
    #[serde(default)]
    score: Option<f64>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    method: Option<String>,
}

#[derive(Deserialize)]
struct Affects {
    #[serde(rename = "ref")]
    reference: String,
    #[serde(default)]
    versions: Vec<AffectedVersion>,
}

#[derive(Deserialize)]
struct AffectedVersion {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    range: Option<String>,
    #[serde(default)]
    status: Option<Status>,
}

#[derive(Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Status {
    Affected,
    Unaffected,
    Unknown,
}

#[derive(Deserialize)]
struct Analysis {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    justification: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

/// A component as read, with what a finding in it needs besides the [`Component`].
struct Listed {
    component: Component,
    location: Option<String>,
}

/// Component properties that name the file a package was found in (Syft's, Trivy's).
const LOCATION_PROPERTIES: [&str; 2] = ["syft:location:0:path", "aquasecurity:trivy:FilePath"];

/// Reads a CycloneDX JSON document.
pub fn read(file: &Path, doc: serde_json::Value) -> Result<Report, ScanError> {
    let doc: Doc = decode(file, doc)?;
    let scanner = doc
        .metadata
        .as_ref()
        .and_then(|m| m.tools.as_ref())
        .and_then(|t| {
            let tools = match t {
                Tools::Legacy(tools) | Tools::Current { components: tools } => tools,
            };
            tools.iter().map(|t| t.name.trim()).find(|n| !n.is_empty())
        })
        .map_or_else(|| "cyclonedx".to_owned(), str::to_ascii_lowercase);

    let mut report = Report::default();
    let mut by_ref: HashMap<String, usize> = HashMap::new();
    let mut listed: Vec<Listed> = Vec::new();
    flatten(doc.components, &mut listed, &mut by_ref);
    report.components = listed.iter().map(|l| l.component.clone()).collect();
    // The document's subject (an image, an application) is not an installed package, but a
    // vulnerability may name it.
    if let Some(subject) = doc.metadata.and_then(|m| m.component) {
        flatten(vec![subject], &mut listed, &mut by_ref);
    }

    for v in doc.vulnerabilities {
        let mut ids = vec![v.id.as_str()];
        ids.extend(v.references.iter().map(|r| r.id.as_str()));
        let vex_ids = {
            let mut seen: Vec<String> = Vec::new();
            for id in ids.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
                if !seen.iter().any(|s| s == id) {
                    seen.push(id.to_owned());
                }
            }
            seen
        };
        let state =
            v.analysis.as_ref().and_then(|a| a.state.as_deref()).and_then(VexState::from_cyclonedx);
        let justification = v.analysis.as_ref().and_then(|a| {
            let parts: Vec<&str> = [a.justification.as_deref(), a.detail.as_deref()]
                .into_iter()
                .flatten()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            (!parts.is_empty()).then(|| parts.join(": "))
        });

        for affects in &v.affects {
            let (component, location) = match lookup(&affects.reference, &by_ref) {
                Some(i) => (listed[i].component.clone(), listed[i].location.clone()),
                None => (unlisted(&affects.reference), None),
            };
            if let Some(state) = state {
                report.vex.push(Vex {
                    purl: component.purl.clone(),
                    ids: vex_ids.clone(),
                    state,
                    justification: justification.clone(),
                });
            }
            let installed_unaffected = affects.versions.iter().any(|av| {
                av.status == Some(Status::Unaffected)
                    && !component.version.is_empty()
                    && av.version.as_deref() == Some(component.version.as_str())
            });
            if installed_unaffected {
                continue;
            }
            let mut f = Finding::new(component, &ids, &scanner);
            let mut label = Severity::Unknown;
            for r in &v.ratings {
                let method = r.method.as_deref().unwrap_or("").trim();
                // "other" carries EPSS probabilities and KEV flags, not severities.
                if method.eq_ignore_ascii_case("other") {
                    continue;
                }
                label = label
                    .max(r.severity.as_deref().map_or(Severity::Unknown, Severity::from_label));
                let is_cvss = method.get(..4).is_some_and(|m| m.eq_ignore_ascii_case("cvss"));
                if let (true, Some(score)) = (is_cvss, r.score) {
                    f = f.score(score);
                }
            }
            // Sources may disagree (NVD against a distribution); the worst is kept.
            f = f.label(label.as_str());
            f = f.fixed_in(
                affects
                    .versions
                    .iter()
                    .filter_map(|av| match (av.status, &av.range) {
                        (Some(Status::Unaffected), Some(range)) => Some(fixed_versions(range)),
                        _ => None,
                    })
                    .flatten(),
            );
            f.location = location;
            f.title = v.description.as_ref().map(|d| d.trim().to_owned()).filter(|d| !d.is_empty());
            report.findings.push(f);
        }
    }
    Ok(report)
}

/// Lists `components` and the components nested in them, in document order, indexing them by
/// bom-ref (the first of a repeated bom-ref wins).
fn flatten(
    components: Vec<CdxComponent>,
    listed: &mut Vec<Listed>,
    by_ref: &mut HashMap<String, usize>,
) {
    for c in components {
        let licenses = c
            .licenses
            .into_iter()
            .filter_map(|l| match (l.license, l.expression) {
                (Some(license), _) => license.id.or(license.name),
                (None, expression) => expression,
            })
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        let property = |name: &str| {
            c.properties
                .iter()
                .find(|p| p.name == name)
                .and_then(|p| p.value.as_deref())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let ecosystem = property("syft:package:type").unwrap_or("");
        let location =
            LOCATION_PROPERTIES.iter().find_map(|name| property(name)).map(str::to_owned);
        let purl = c.purl.as_deref().filter(|p| !p.is_empty());
        let component = Component::new(purl, ecosystem, &c.name, &c.version, licenses);
        if let Some(r) = c.bom_ref.filter(|r| !r.is_empty()) {
            by_ref.entry(r).or_insert(listed.len());
        }
        listed.push(Listed { component, location });
        flatten(c.components, listed, by_ref);
    }
}

/// The component a vulnerability's `ref` names: a bom-ref, or a BOM-Link
/// (`urn:cdx:SERIAL/VERSION#bom-ref`) to one in this document.
fn lookup(reference: &str, by_ref: &HashMap<String, usize>) -> Option<usize> {
    let reference = reference.trim();
    by_ref.get(reference).copied().or_else(|| {
        let fragment = reference.strip_prefix("urn:cdx:")?.split_once('#')?.1;
        by_ref.get(fragment).copied()
    })
}

/// The component of a `ref` no listed component has: a VEX document may name the package by
/// its purl alone. Any other ref still gets a finding, on a component named by the ref, rather
/// than none.
fn unlisted(reference: &str) -> Component {
    let reference = reference.trim();
    if reference.starts_with("pkg:") {
        let (name, version) = purl_name_version(reference);
        Component::new(Some(reference), "", name, version, Vec::new())
    } else {
        Component::new(None, "generic", reference, "", Vec::new())
    }
}

/// The name and version of a purl (`pkg:TYPE/NAMESPACE/NAME@VERSION?...`).
fn purl_name_version(purl: &str) -> (&str, &str) {
    let end = purl.find(['?', '#']).unwrap_or(purl.len());
    let base = purl.get(..end).unwrap_or(purl);
    let path =
        base.strip_prefix("pkg:").and_then(|rest| rest.split_once('/')).map_or(base, |(_, p)| p);
    // An npm scope may be written `@scope` unencoded: the version's `@` is the one after the
    // last `/`.
    let slash = path.rfind('/').map_or(0, |i| i + 1);
    let (name_path, version) = match path[slash..].rfind('@') {
        Some(at) => (&path[..slash + at], &path[slash + at + 1..]),
        None => (path, ""),
    };
    let name = name_path.rsplit('/').next().unwrap_or(name_path);
    (name, version)
}

/// The versions a `vers:` range of unaffected versions starts at: Grype writes a fix as
/// `vers:generic/>=1.2.1`.
fn fixed_versions(range: &str) -> Vec<String> {
    let constraints = range
        .trim()
        .strip_prefix("vers:")
        .and_then(|r| r.split_once('/'))
        .map_or(range, |(_, c)| c);
    constraints
        .split('|')
        .filter_map(|c| c.trim().strip_prefix(">="))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::parse::scan::ScanFormat;
    use crate::parse::scan::testing::{json_of, read_file, read_json};

    const FILE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/scanners/grype/TestCycloneDxPresenterImage.golden.cdx.json"
    );

    #[test]
    fn the_corpus_report_reads_to_its_two_findings_and_components() {
        let r = read_file(ScanFormat::CycloneDx, FILE);
        let got: Vec<_> = r
            .findings
            .iter()
            .map(|f| {
                (
                    f.component.purl.as_str(),
                    f.id.as_str(),
                    f.severity,
                    f.severity_labelled,
                    f.cvss,
                    f.location.as_deref(),
                )
            })
            .collect();
        // The labels win over the CVSS scores; the EPSS and KEV ("other") ratings count for
        // nothing.
        assert_eq!(
            got,
            [
                (
                    "pkg:deb/package-2@2.2.2",
                    "CVE-1999-0002",
                    Severity::Critical,
                    true,
                    Some(8.5),
                    Some("/foo/bar/somefile-2.txt"),
                ),
                (
                    "pkg:rpm/package-1@1.1.1",
                    "CVE-1999-0001",
                    Severity::Low,
                    true,
                    Some(8.2),
                    Some("/foo/bar/somefile-1.txt"),
                ),
            ]
        );
        assert_eq!(r.findings[0].fixed, Vec::<String>::new());
        assert_eq!(r.findings[1].fixed, ["1.2.1", "2.1.3", "3.4.0"]);
        assert_eq!(r.findings[1].aliases, ["CVE-1999-0001"]);
        assert_eq!(r.findings[1].scanners, ["grype"]);
        assert_eq!(r.findings[0].component.licenses, ["Apache-2.0", "MIT"]);
        assert_eq!(
            r.components,
            [
                Component {
                    purl: "pkg:deb/package-2@2.2.2".into(),
                    name: "package-2".into(),
                    version: "2.2.2".into(),
                    ecosystem: "deb".into(),
                    licenses: vec!["Apache-2.0".into(), "MIT".into()],
                },
                Component {
                    purl: "pkg:rpm/package-1@1.1.1".into(),
                    name: "package-1".into(),
                    version: "1.1.1".into(),
                    ecosystem: "rpm".into(),
                    licenses: vec![],
                },
            ]
        );
        assert!(r.vex.is_empty());
    }

    #[test]
    fn the_corpus_report_is_the_same_two_findings_as_grypes_json() {
        let json = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/corpus/scanners/grype/TestJsonImgsPresenter.golden.json"
        );
        let cdx = read(Path::new(FILE), json_of(FILE)).unwrap();
        let json = crate::parse::scan::grype::read(Path::new(json), json_of(json)).unwrap();
        let single = crate::parse::scan::merge([json.clone()]);
        let merged = crate::parse::scan::merge([json, cdx]);
        type Seen<'a> = ((&'a str, &'a str), Severity, Option<f64>, &'a [String]);
        fn strip(r: &Report) -> Vec<Seen<'_>> {
            r.findings.iter().map(|f| (f.key(), f.severity, f.cvss, f.fixed.as_slice())).collect()
        }
        assert_eq!(strip(&merged), strip(&single));
        assert_eq!(merged.components.len(), 2);
    }

    #[test]
    fn a_not_affected_analysis_sets_its_finding_aside_and_is_kept() {
        let r = read_json(
            ScanFormat::CycloneDx,
            &serde_json::json!({
                "bomFormat": "CycloneDX",
                "specVersion": "1.4",
                "version": 1,
                "metadata": {"tools": [{"vendor": "openvex", "name": "VEXctl", "version": "0.2"}]},
                "components": [{
                    "bom-ref": "log4j",
                    "type": "library",
                    "group": "org.apache.logging.log4j",
                    "name": "log4j-core",
                    "version": "2.14.1",
                    "purl": "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1?type=jar"
                }],
                "vulnerabilities": [
                    {
                        "id": "CVE-2021-44228",
                        "references": [{"id": "GHSA-jfh8-c2jp-5v3q", "source": {"name": "GitHub"}}],
                        "ratings": [{"score": 10.0, "severity": "critical", "method": "CVSSv31"}],
                        "affects": [{"ref": "log4j"}],
                        "analysis": {
                            "state": "not_affected",
                            "justification": "code_not_reachable",
                            "detail": "JNDI lookups are disabled",
                            "response": ["will_not_fix"]
                        }
                    },
                    {
                        "id": "CVE-2021-45046",
                        "ratings": [{"score": 9.0, "method": "CVSSv31"}],
                        "affects": [{"ref": "log4j"}],
                        "analysis": {"state": "in_triage"}
                    },
                    {
                        "id": "GHSA-xvch-5gv4-984h",
                        "affects": [{"ref": "pkg:npm/minimist@1.2.5"}],
                        "analysis": {"state": "exploitable"}
                    }
                ]
            }),
        );
        let got: Vec<_> = r.findings.iter().map(|f| (f.key(), f.severity)).collect();
        assert_eq!(
            got,
            [
                (
                    ("pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1", "CVE-2021-45046"),
                    Severity::Critical,
                ),
                (("pkg:npm/minimist@1.2.5", "GHSA-xvch-5gv4-984h"), Severity::Unknown),
            ]
        );
        assert_eq!(r.findings[0].scanners, ["vexctl"]);
        let minimist = &r.findings[1].component;
        assert_eq!((minimist.name.as_str(), minimist.version.as_str()), ("minimist", "1.2.5"));
        assert_eq!(r.vex.len(), 3);
        assert_eq!(
            r.vex[0],
            Vex {
                purl: "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1".into(),
                ids: vec!["CVE-2021-44228".into(), "GHSA-jfh8-c2jp-5v3q".into()],
                state: VexState::NotAffected,
                justification: Some("code_not_reachable: JNDI lookups are disabled".into()),
            }
        );
        assert_eq!(r.vex[1].state, VexState::Affected);
        assert_eq!(r.vex[2].purl, "pkg:npm/minimist@1.2.5");
    }

    #[test]
    fn nested_components_license_forms_and_an_unaffected_installed_version() {
        let r = read_json(
            ScanFormat::CycloneDx,
            &serde_json::json!({
                "bomFormat": "CycloneDX",
                "specVersion": "1.6",
                "version": 1,
                "metadata": {"tools": {"components": [{"type": "application", "group": "aquasecurity", "name": "trivy"}]}},
                "components": [{
                    "bom-ref": "app",
                    "type": "application",
                    "name": "app",
                    "version": "1.0",
                    "licenses": [{"expression": "Apache-2.0 OR MIT"}],
                    "properties": [{"name": "syft:package:type", "value": "npm"}],
                    "components": [{
                        "bom-ref": "pkg:npm/%40babel/core@7.0.0",
                        "name": "core",
                        "version": "7.0.0",
                        "purl": "pkg:npm/%40babel/core@7.0.0",
                        "licenses": [{"license": {"name": "Custom licence"}}],
                        "properties": [{"name": "aquasecurity:trivy:FilePath", "value": "app/package-lock.json"}]
                    }]
                }],
                "vulnerabilities": [
                    {
                        "id": "CVE-2099-0001",
                        "ratings": [
                            {"severity": "medium", "method": "OWASP", "score": 9.9},
                            {"severity": "high", "source": {"name": "ghsa"}},
                            {"score": 6.1, "method": "CVSSv4"}
                        ],
                        "affects": [
                            {"ref": "urn:cdx:3e671687-395b-41f5-a30f-a58921a69b79/1#pkg:npm/%40babel/core@7.0.0",
                             "versions": [{"range": "vers:npm/>=7.1.0|<8.0.0", "status": "unaffected"}]},
                            {"ref": "app", "versions": [{"version": "1.0", "status": "unaffected"}]}
                        ]
                    }
                ]
            }),
        );
        assert_eq!(
            r.components.iter().map(|c| (c.purl.as_str(), c.licenses.clone())).collect::<Vec<_>>(),
            [
                ("pkg:npm/%40babel/core@7.0.0", vec!["Custom licence".to_owned()]),
                ("pkg:npm/app@1.0", vec!["Apache-2.0 OR MIT".to_owned()]),
            ]
        );
        assert_eq!(r.components[1].ecosystem, "npm");
        assert_eq!(r.findings.len(), 1);
        let f = &r.findings[0];
        assert_eq!(f.key(), ("pkg:npm/%40babel/core@7.0.0", "CVE-2099-0001"));
        assert_eq!((f.severity, f.severity_labelled, f.cvss), (Severity::High, true, Some(6.1)));
        assert_eq!(f.fixed, ["7.1.0"]);
        assert_eq!(f.location.as_deref(), Some("app/package-lock.json"));
        assert_eq!(f.scanners, ["trivy"]);
    }

    #[test]
    fn purl_parts() {
        assert_eq!(purl_name_version("pkg:npm/@babel/core@7.0.0?x=y"), ("core", "7.0.0"));
        assert_eq!(purl_name_version("pkg:npm/@babel/core"), ("core", ""));
        assert_eq!(purl_name_version("pkg:deb/debian/openssl@3.0.2-1#sub"), ("openssl", "3.0.2-1"));
        assert_eq!(fixed_versions("vers:generic/>=1.2.1"), ["1.2.1"]);
        assert_eq!(fixed_versions("vers:semver/<1.0.0|>=1.0.5"), ["1.0.5"]);
    }

    #[test]
    fn a_wrong_type_is_an_error_naming_its_json_path() {
        let mut doc = json_of(FILE);
        doc["vulnerabilities"][1]["ratings"][0]["score"] = serde_json::json!("high");
        let err = read(Path::new("c.json"), doc).unwrap_err();
        assert_eq!(err.path, "vulnerabilities[1].ratings[0].score");
        assert!(
            err.to_string()
                .starts_with("c.json: vulnerabilities[1].ratings[0].score: invalid type"),
            "{err}"
        );
    }
}
