//! SARIF 2.1.0 from any tool: `runs[].results[]`, each a rule's finding at a location.
//!
//! Vulnerability scanners (Grype, Trivy) write SARIF for code-scanning dashboards, so the
//! package a result is about is only in the text (`Package: ...` lines of the rule's help and
//! the result's message); a result with no such line is a code-scanning finding in a file.

use std::path::Path;

use serde::Deserialize;

use super::{Component, Finding, Report, ScanError, Severity, decode};

#[derive(Deserialize)]
struct Doc {
    runs: Vec<Run>,
}

#[derive(Deserialize)]
struct Run {
    tool: Tool,
    // `null` is allowed: the tool failed before it produced results (SARIF §3.14.23).
    #[serde(default)]
    results: Option<Vec<SarifResult>>,
}

#[derive(Deserialize)]
struct Tool {
    driver: ToolComponent,
    #[serde(default)]
    extensions: Vec<ToolComponent>,
}

#[derive(Deserialize)]
struct ToolComponent {
    #[serde(default)]
    name: String,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    id: String,
    #[serde(default)]
    short_description: Option<Text>,
    #[serde(default)]
    help: Option<Text>,
    #[serde(default)]
    default_configuration: Option<Configuration>,
    #[serde(default)]
    properties: Option<RuleProperties>,
}

/// A SARIF message; `text` may be absent when a tool refers to a message string by id.
#[derive(Deserialize)]
struct Text {
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
struct Configuration {
    #[serde(default)]
    level: Option<Level>,
}

#[derive(Deserialize)]
struct RuleProperties {
    #[serde(default, rename = "security-severity")]
    security_severity: Option<Score>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    purls: Vec<String>,
}

/// GitHub's `security-severity` is a numeric string; some tools write a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Score {
    Number(f64),
    Text(String),
}

impl Score {
    fn value(&self) -> Option<f64> {
        match self {
            Score::Number(n) => Some(*n),
            // A property bag is free-form: a score that is not a number is no score, and the
            // level still rates the finding.
            Score::Text(s) => s.trim().parse().ok(),
        }
    }
}

#[derive(Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Level {
    None,
    Note,
    Warning,
    Error,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::None => "",
            Level::Note => "low",
            Level::Warning => "medium",
            Level::Error => "high",
        }
    }
}

#[derive(Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
enum Kind {
    NotApplicable,
    Pass,
    Fail,
    Review,
    Open,
    Informational,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult {
    #[serde(default)]
    rule_id: Option<String>,
    #[serde(default)]
    rule_index: Option<i64>,
    #[serde(default)]
    rule: Option<RuleReference>,
    #[serde(default)]
    kind: Option<Kind>,
    #[serde(default)]
    level: Option<Level>,
    message: Text,
    #[serde(default)]
    locations: Vec<Location>,
    #[serde(default)]
    suppressions: Vec<Suppression>,
}

#[derive(Deserialize)]
struct RuleReference {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    index: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Location {
    #[serde(default)]
    physical_location: Option<PhysicalLocation>,
    #[serde(default)]
    logical_locations: Vec<LogicalLocation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation {
    #[serde(default)]
    artifact_location: Option<ArtifactLocation>,
    #[serde(default)]
    region: Option<Region>,
}

#[derive(Deserialize)]
struct ArtifactLocation {
    #[serde(default)]
    uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    #[serde(default)]
    start_line: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogicalLocation {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    fully_qualified_name: Option<String>,
}

#[derive(Deserialize)]
struct Suppression {
    #[serde(default)]
    status: Option<SuppressionStatus>,
}

#[derive(Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
enum SuppressionStatus {
    Accepted,
    UnderReview,
    Rejected,
}

/// What a scanner says of a package in `Label: value` lines of its text.
#[derive(Default)]
struct Described {
    package: Option<String>,
    version: Option<String>,
    ecosystem: Option<String>,
    fixed: Option<String>,
    severity: Option<String>,
}

impl Described {
    fn parse(text: &str) -> Described {
        let mut d = Described::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let slot = match key.trim().to_ascii_lowercase().as_str() {
                "package" => &mut d.package,
                "version" | "installed version" => &mut d.version,
                "type" => &mut d.ecosystem,
                "fix version" | "fixed version" => &mut d.fixed,
                "severity" => &mut d.severity,
                _ => continue,
            };
            slot.get_or_insert_with(|| value.to_owned());
        }
        d
    }

    /// These fields, with `other`'s where these have none.
    fn or(self, other: Described) -> Described {
        Described {
            package: self.package.or(other.package),
            version: self.version.or(other.version),
            ecosystem: self.ecosystem.or(other.ecosystem),
            fixed: self.fixed.or(other.fixed),
            severity: self.severity.or(other.severity),
        }
    }
}

/// Reads a SARIF 2.1.0 document.
pub fn read(file: &Path, doc: serde_json::Value) -> Result<Report, ScanError> {
    let doc: Doc = decode(file, doc)?;
    let mut report = Report::default();
    for (r, run) in doc.runs.into_iter().enumerate() {
        let scanner = Some(run.tool.driver.name.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "sarif".to_owned());
        for (i, result) in run.results.unwrap_or_default().into_iter().enumerate() {
            let at = || format!("runs[{r}].results[{i}]");
            if let Some(f) = finding(file, &run.tool, &scanner, result, at)? {
                report.components.push(f.component.clone());
                report.findings.push(f);
            }
        }
    }
    Ok(report)
}

/// The finding a result reports; `None` for a result that is not one (a passed check, a
/// suppressed finding).
fn finding(
    file: &Path,
    tool: &Tool,
    scanner: &str,
    result: SarifResult,
    at: impl Fn() -> String,
) -> Result<Option<Finding>, ScanError> {
    let kind = result.kind.unwrap_or(Kind::Fail);
    if matches!(kind, Kind::Pass | Kind::NotApplicable) || suppressed(&result.suppressions) {
        return Ok(None);
    }
    let rule_id = result
        .rule_id
        .as_deref()
        .or(result.rule.as_ref().and_then(|r| r.id.as_deref()))
        .map(str::trim)
        .filter(|id| !id.is_empty());
    let index = result.rule_index.or(result.rule.as_ref().and_then(|r| r.index));
    let rule = find_rule(tool, rule_id, index);
    let Some(rule_id) = rule_id.or(rule.map(|r| r.id.as_str())).filter(|id| !id.is_empty()) else {
        return Err(ScanError::at(file, at(), "names no rule (ruleId or rule.id)"));
    };

    // The result speaks of one package; the rule's help (Trivy writes one rule per
    // vulnerability, for every package it is in) only fills what the result leaves out.
    let help = rule.and_then(|r| r.help.as_ref()).map_or("", |h| h.text.as_str());
    let text = Described::parse(&result.message.text).or(Described::parse(help));

    let location = result.locations.first();
    let physical = location.and_then(|l| l.physical_location.as_ref());
    let uri = physical
        .and_then(|p| p.artifact_location.as_ref())
        .and_then(|a| a.uri.as_deref())
        .map(|u| u.strip_prefix("file://").unwrap_or(u))
        .filter(|u| !u.is_empty());
    let line = physical.and_then(|p| p.region.as_ref()).and_then(|r| r.start_line);

    let properties = rule.and_then(|r| r.properties.as_ref());
    let mut f = match text.package.as_deref() {
        Some(package) => {
            // Grype (0.74 on) lists the package's purl on the rule: the same component as its
            // JSON report names, namespace and all.
            let purl = properties.and_then(|p| p.purls.first()).map(String::as_str);
            let component = Component::new(
                purl,
                text.ecosystem.as_deref().unwrap_or(""),
                package,
                text.version.as_deref().unwrap_or(""),
                Vec::new(),
            );
            let id = advisory_id(rule_id, package);
            let mut f = Finding::new(component, &[id], scanner);
            f = f.fixed_in(text.fixed.as_deref().unwrap_or("").split(','));
            let logical = location
                .and_then(|l| l.logical_locations.first())
                .and_then(|l| l.name.as_deref().or(l.fully_qualified_name.as_deref()))
                .filter(|n| !n.is_empty());
            f.location = logical.or(uri).map(str::to_owned);
            f
        }
        None => {
            // A finding in a file: the file is the component, so that the same rule in two
            // files is two findings and in one file (two lines) is one.
            let path = uri.unwrap_or(scanner);
            let component = Component::new(None, "generic", path, "", Vec::new());
            let mut f = Finding::new(component, &[rule_id], scanner);
            f.location = uri.map(|u| match line {
                Some(line) => format!("{u}:{line}"),
                None => u.to_owned(),
            });
            f
        }
    };

    f = f.label(text.severity.as_deref().unwrap_or(""));
    if f.severity == Severity::Unknown {
        // Trivy tags a rule with its severity; other tools' tags name no severity.
        let tag = properties
            .and_then(|p| p.tags.iter().find(|t| Severity::from_label(t) != Severity::Unknown));
        f = f.label(tag.map_or("", |t| t.as_str()));
    }
    if f.severity == Severity::Unknown {
        let score = properties.and_then(|p| p.security_severity.as_ref()).and_then(Score::value);
        if let Some(score) = score {
            f = f.score(score);
        }
    }
    if f.severity == Severity::Unknown {
        // SARIF §3.27.10: a failing result without a level has its rule's default, else
        // "warning"; any other kind has "none".
        let default = rule.and_then(|r| r.default_configuration.as_ref()).and_then(|c| c.level);
        let level = match kind {
            Kind::Fail => result.level.or(default).unwrap_or(Level::Warning),
            _ => result.level.unwrap_or(Level::None),
        };
        f = f.label(level.label());
    }
    let short = rule.and_then(|r| r.short_description.as_ref()).map(|d| d.text.trim());
    let first_line = result.message.text.lines().next().map(str::trim);
    f.title =
        short.filter(|s| !s.is_empty()).or(first_line.filter(|s| !s.is_empty())).map(str::to_owned);
    Ok(Some(f))
}

/// Whether a result is suppressed: SARIF §3.27.23, a suppression without a status is accepted.
fn suppressed(suppressions: &[Suppression]) -> bool {
    suppressions.iter().any(|s| matches!(s.status, None | Some(SuppressionStatus::Accepted)))
}

/// The rule a result names: by index when that rule has the result's id (an index may point
/// into an extension's rules), else by id in the driver and the extensions.
fn find_rule<'a>(tool: &'a Tool, id: Option<&str>, index: Option<i64>) -> Option<&'a Rule> {
    let by_index = index
        .and_then(|i| usize::try_from(i).ok())
        .and_then(|i| tool.driver.rules.get(i))
        .filter(|r| id.is_none_or(|id| r.id == id));
    by_index.or_else(|| {
        let id = id?;
        std::iter::once(&tool.driver)
            .chain(&tool.extensions)
            .flat_map(|c| &c.rules)
            .find(|r| r.id == id)
    })
}

/// The vulnerability id in a package result's rule id: Grype's is `<id>-<package>`, Trivy's
/// the id itself.
fn advisory_id<'a>(rule_id: &'a str, package: &str) -> &'a str {
    let stripped = rule_id.strip_suffix(package).and_then(|s| s.strip_suffix('-'));
    if let Some(id) = stripped.filter(|id| !id.is_empty()) {
        return id;
    }
    advisory_prefix(rule_id).unwrap_or(rule_id)
}

/// The CVE (`CVE-YYYY-NNNN...`) or GHSA (`GHSA-xxxx-xxxx-xxxx`) id `s` starts with.
fn advisory_prefix(s: &str) -> Option<&str> {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    if let Some(rest) = strip_prefix_ignore_case(s, "CVE-") {
        let year = rest.get(..5).filter(|y| digits(y) == 4 && y.ends_with('-'))?;
        let number = digits(&rest[year.len()..]);
        (number >= 4).then(|| &s[..4 + year.len() + number])
    } else if let Some(rest) = strip_prefix_ignore_case(s, "GHSA-") {
        let groups = rest.get(..14)?;
        let ok = groups.split('-').count() == 3
            && groups
                .split('-')
                .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_alphanumeric()));
        ok.then(|| &s[..19])
    } else {
        None
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::parse::scan::ScanFormat;
    use crate::parse::scan::testing::{json_of, read_file, read_json};

    const FILE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/scanners/grype/TestSarifPresenter_image.golden.sarif"
    );

    #[test]
    fn the_corpus_report_reads_to_its_two_package_findings() {
        let r = read_file(ScanFormat::Sarif, FILE);
        let got: Vec<_> = r
            .findings
            .iter()
            .map(|f| {
                (
                    f.component.purl.as_str(),
                    f.id.as_str(),
                    f.severity,
                    f.severity_labelled,
                    f.fixed.clone(),
                    f.location.as_deref(),
                )
            })
            .collect();
        // The text's "Severity:" wins over the quirky security-severity (4.0 for the low one,
        // 1.0 for the critical one).
        assert_eq!(
            got,
            [
                (
                    "pkg:deb/package-2@2.2.2",
                    "CVE-1999-0002",
                    Severity::Critical,
                    true,
                    vec![],
                    Some("/foo/bar/somefile-2.txt"),
                ),
                (
                    "pkg:rpm/package-1@1.1.1",
                    "CVE-1999-0001",
                    Severity::Low,
                    true,
                    vec!["the-next-version".to_owned()],
                    Some("/foo/bar/somefile-1.txt"),
                ),
            ]
        );
        let p1 = &r.findings[1];
        assert_eq!(p1.aliases, ["CVE-1999-0001"]);
        assert_eq!(p1.cvss, None);
        assert_eq!(p1.scanners, ["grype"]);
        assert_eq!(
            p1.title.as_deref(),
            Some("CVE-1999-0001 low vulnerability for package-1 package")
        );
        assert_eq!(p1.component.name, "package-1");
        assert_eq!(p1.component.version, "1.1.1");
        assert_eq!(p1.component.ecosystem, "rpm");
        assert_eq!(r.components.len(), 2);
        assert!(r.vex.is_empty());
    }

    #[test]
    fn the_corpus_report_is_the_same_two_findings_as_grypes_json() {
        let json = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/corpus/scanners/grype/TestJsonImgsPresenter.golden.json"
        );
        let sarif = read(Path::new(FILE), json_of(FILE)).unwrap();
        let json = crate::parse::scan::grype::read(Path::new(json), json_of(json)).unwrap();
        let merged = crate::parse::scan::merge([json, sarif]);
        let keys: Vec<_> = merged.findings.iter().map(|f| f.key()).collect();
        assert_eq!(
            keys,
            [
                ("pkg:deb/package-2@2.2.2", "CVE-1999-0002"),
                ("pkg:rpm/package-1@1.1.1", "CVE-1999-0001")
            ]
        );
        assert_eq!(merged.findings[1].fixed, ["1.2.1", "2.1.3", "3.4.0", "the-next-version"]);
    }

    #[test]
    fn a_code_scanning_result_is_a_finding_in_its_file() {
        let r = read_json(
            ScanFormat::Sarif,
            &serde_json::json!({
                "version": "2.1.0",
                "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
                "runs": [{
                    "tool": {"driver": {
                        "name": "Semgrep",
                        "rules": [{
                            "id": "python.lang.security.audit.eval-detected.eval-detected",
                            "name": "python.lang.security.audit.eval-detected.eval-detected",
                            "shortDescription": {"text": "Detected the use of eval()"},
                            "help": {"text": "Avoid eval() on untrusted input."},
                            "defaultConfiguration": {"level": "warning"},
                            "properties": {"tags": ["CWE-95: Eval Injection", "security", "MEDIUM CONFIDENCE"]}
                        }]
                    }},
                    "results": [{
                        "ruleId": "python.lang.security.audit.eval-detected.eval-detected",
                        "level": "error",
                        "message": {"text": "Detected the use of eval(). eval() can be dangerous."},
                        "locations": [{"physicalLocation": {
                            "artifactLocation": {"uri": "src/app.py", "uriBaseId": "%SRCROOT%"},
                            "region": {"startLine": 12, "startColumn": 5, "endLine": 12}
                        }}]
                    }]
                }]
            }),
        );
        assert_eq!(r.findings.len(), 1);
        let f = &r.findings[0];
        assert_eq!(f.component.purl, "pkg:generic/src/app.py");
        assert_eq!(f.component.ecosystem, "generic");
        assert_eq!(f.id, "python.lang.security.audit.eval-detected.eval-detected");
        assert_eq!(f.location.as_deref(), Some("src/app.py:12"));
        assert_eq!(f.severity, Severity::High);
        assert_eq!(f.cvss, None);
        assert_eq!(f.title.as_deref(), Some("Detected the use of eval()"));
        assert_eq!(f.scanners, ["semgrep"]);
    }

    #[test]
    fn security_severity_rates_a_code_finding_before_its_level_and_passes_are_skipped() {
        let r = read_json(
            ScanFormat::Sarif,
            &serde_json::json!({
                "version": "2.1.0",
                "runs": [{
                    "tool": {"driver": {
                        "name": "CodeQL",
                        "rules": [
                            {"id": "py/sql-injection", "properties": {"security-severity": "8.8"}},
                            {"id": "py/unused-import"}
                        ]
                    }},
                    "results": [
                        {"ruleId": "py/sql-injection", "ruleIndex": 0, "level": "error",
                         "message": {"text": "This query depends on a user-provided value."},
                         "locations": [{"physicalLocation": {"artifactLocation": {"uri": "app/db.py"},
                                                             "region": {"startLine": 40}}}]},
                        {"ruleId": "py/unused-import", "ruleIndex": 1,
                         "message": {"text": "Import of 'os' is not used."},
                         "locations": [{"physicalLocation": {"artifactLocation": {"uri": "app/db.py"}}}]},
                        {"ruleId": "py/unused-import", "kind": "pass", "message": {"text": "ok"}},
                        {"ruleId": "py/unused-import", "message": {"text": "suppressed"},
                         "locations": [{"physicalLocation": {"artifactLocation": {"uri": "app/x.py"}}}],
                         "suppressions": [{"kind": "inSource"}]}
                    ]
                }]
            }),
        );
        let got: Vec<_> = r
            .findings
            .iter()
            .map(|f| (f.id.as_str(), f.severity, f.cvss, f.location.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("py/sql-injection", Severity::High, Some(8.8), Some("app/db.py:40")),
                ("py/unused-import", Severity::Medium, None, Some("app/db.py")),
            ]
        );
        assert_eq!(r.findings[0].scanners, ["codeql"]);
    }

    #[test]
    fn trivys_result_text_names_the_installed_package() {
        let r = read_json(
            ScanFormat::Sarif,
            &serde_json::json!({
                "version": "2.1.0",
                "runs": [{
                    "tool": {"driver": {
                        "name": "Trivy",
                        "rules": [{
                            "id": "CVE-2022-4450",
                            "shortDescription": {"text": "openssl: double free after calling PEM_read_bio_ex"},
                            "help": {"text": "Vulnerability CVE-2022-4450\nSeverity: HIGH\nPackage: libssl1.1\nFixed Version: 1.1.1n-0+deb11u4\nLink: [CVE-2022-4450](https://avd.aquasec.com/nvd/cve-2022-4450)"},
                            "properties": {"security-severity": "7.5", "tags": ["vulnerability", "security", "HIGH"]}
                        }]
                    }},
                    "results": [{
                        "ruleId": "CVE-2022-4450",
                        "ruleIndex": 0,
                        "level": "error",
                        "message": {"text": "Package: openssl\nInstalled Version: 1.1.1n-0+deb11u3\nVulnerability CVE-2022-4450\nSeverity: HIGH\nFixed Version: 1.1.1n-0+deb11u4, 1.1.1n-0+deb11u5\nLink: [CVE-2022-4450](https://avd.aquasec.com/nvd/cve-2022-4450)"},
                        "locations": [{"physicalLocation": {"artifactLocation": {"uri": "library/debian", "uriBaseId": "ROOTPATH"},
                                                            "region": {"startLine": 1}}}]
                    }]
                }]
            }),
        );
        assert_eq!(r.findings.len(), 1);
        let f = &r.findings[0];
        assert_eq!(f.component.purl, "pkg:generic/openssl@1.1.1n-0+deb11u3");
        assert_eq!(f.id, "CVE-2022-4450");
        assert_eq!(f.severity, Severity::High);
        assert!(f.severity_labelled);
        assert_eq!(f.fixed, ["1.1.1n-0+deb11u4", "1.1.1n-0+deb11u5"]);
        assert_eq!(f.location.as_deref(), Some("library/debian"));
        assert_eq!(f.scanners, ["trivy"]);
    }

    #[test]
    fn a_purl_on_the_rule_names_the_component() {
        let r = read_json(
            ScanFormat::Sarif,
            &serde_json::json!({
                "version": "2.1.0",
                "runs": [{
                    "tool": {"driver": {
                        "name": "grype",
                        "rules": [{
                            "id": "GHSA-jfh8-c2jp-5v3q-log4j-core",
                            "help": {"text": "Vulnerability GHSA-jfh8-c2jp-5v3q\nSeverity: critical\nPackage: log4j-core\nVersion: 2.14.1\nFix Version: 2.15.0,2.12.2\nType: java-archive\nLocation: /app/lib/log4j-core-2.14.1.jar\nData Namespace: github:language:java\nLink: [GHSA-jfh8-c2jp-5v3q](https://github.com/advisories/GHSA-jfh8-c2jp-5v3q)"},
                            "properties": {
                                "security-severity": "10.0",
                                "purls": ["pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1?type=jar"]
                            }
                        }]
                    }},
                    "results": [{
                        "ruleId": "GHSA-jfh8-c2jp-5v3q-log4j-core",
                        "message": {"text": "A critical vulnerability in java-archive package: log4j-core, version 2.14.1 was found at: /app/lib/log4j-core-2.14.1.jar"},
                        "locations": [{"physicalLocation": {"artifactLocation": {"uri": "/app/lib/log4j-core-2.14.1.jar"}}}]
                    }]
                }]
            }),
        );
        assert_eq!(r.findings.len(), 1);
        let f = &r.findings[0];
        assert_eq!(
            f.key(),
            ("pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1", "GHSA-jfh8-c2jp-5v3q")
        );
        assert_eq!(f.component.ecosystem, "maven");
        assert_eq!((f.severity, f.cvss), (Severity::Critical, None));
        assert_eq!(f.fixed, ["2.12.2", "2.15.0"]);
        assert_eq!(f.location.as_deref(), Some("/app/lib/log4j-core-2.14.1.jar"));
    }

    #[test]
    fn advisory_ids_are_cut_from_rule_ids() {
        assert_eq!(advisory_id("CVE-1999-0001-package-1", "package-1"), "CVE-1999-0001");
        assert_eq!(
            advisory_id("GHSA-jfh8-c2jp-5v3q-log4j-core", "log4j-core"),
            "GHSA-jfh8-c2jp-5v3q"
        );
        assert_eq!(advisory_id("CVE-2021-44228-Log4j", "log4j"), "CVE-2021-44228");
        assert_eq!(advisory_id("CVE-2022-4450", "openssl"), "CVE-2022-4450");
        assert_eq!(advisory_id("ALAS-2023-1234", "openssl"), "ALAS-2023-1234");
    }

    #[test]
    fn a_wrong_type_is_an_error_naming_its_json_path() {
        let mut doc = json_of(FILE);
        doc["runs"][0]["results"][1]["ruleId"] = serde_json::json!(7);
        let err = read(Path::new("g.sarif"), doc).unwrap_err();
        assert_eq!(err.path, "runs[0].results[1].ruleId");
        assert!(
            err.to_string().starts_with("g.sarif: runs[0].results[1].ruleId: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn a_result_naming_no_rule_is_an_error_at_the_result() {
        let doc = serde_json::json!({
            "version": "2.1.0",
            "runs": [{"tool": {"driver": {"name": "x"}},
                      "results": [{"message": {"text": "what?"}}]}]
        });
        let err = read(Path::new("x.sarif"), doc).unwrap_err();
        assert_eq!(err.path, "runs[0].results[0]");
        assert_eq!(err.file, Path::new("x.sarif"));
    }
}
