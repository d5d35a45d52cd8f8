//! `logwarden scan ingest` and `scan findings` through the binary, on the scanner corpus.

use crate::cli::logwarden;
use crate::corpus;

#[test]
fn one_vulnerability_in_one_component_from_three_formats_is_one_finding() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.redb");
    let state = state.to_str().unwrap();
    // Grype's JSON, SARIF and CycloneDX renderings of the same two findings.
    let files = [
        "scanners/grype/TestJsonImgsPresenter.golden.json",
        "scanners/grype/TestSarifPresenter_image.golden.sarif",
        "scanners/grype/TestCycloneDxPresenterImage.golden.cdx.json",
    ]
    .map(|f| corpus::path(f).display().to_string());
    let mut args = vec!["scan", "ingest", "--app", "shop", "--stage", "release", "--state", state];
    args.extend(files.iter().map(String::as_str));
    let run = logwarden(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "shop release: 2 findings in 2 components from 3 reports (grype, sarif, cyclonedx)\n"
    );
    let run = logwarden(["scan", "findings", "--state", state]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        rows,
        [
            "APP\tSTAGE\tSEVERITY\tCVSS\tID\tCOMPONENT\tFIXED\tSCANNERS",
            "shop\trelease\tcritical\t8.5\tCVE-1999-0002\tpkg:deb/package-2@2.2.2\t-\tgrype",
            // The SARIF rendering's fix version is the fixture's placeholder: a union keeps it.
            "shop\trelease\tlow\t8.2\tCVE-1999-0001\tpkg:rpm/package-1@1.1.1\t1.2.1,2.1.3,3.4.0,the-next-version\tgrype",
        ]
    );
    let run = logwarden(["scan", "findings", "--json", "--app", "shop", "--state", state]);
    let first: serde_json::Value =
        serde_json::from_str(run.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["finding"]["component"]["licenses"], serde_json::json!(["Apache-2.0", "MIT"]));
    assert_eq!(
        logwarden(["scan", "findings", "--app", "blog", "--state", state]).stdout.lines().count(),
        1
    );
}

#[test]
fn a_malformed_report_names_the_file_and_path_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.redb");
    let state = state.to_str().unwrap();
    let bad = dir.path().join("trivy.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&corpus::read("scanners/trivy/alpine-310.json.golden.json")).unwrap();
    doc["Results"][0]["Vulnerabilities"][2]["InstalledVersion"] = serde_json::json!(["x"]);
    std::fs::write(&bad, doc.to_string()).unwrap();
    let good = corpus::path("scanners/grype/TestJsonImgsPresenter.golden.json");
    let run = logwarden([
        "scan",
        "ingest",
        "--app",
        "shop",
        "--state",
        state,
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains(&format!(
            "{}: Results[0].Vulnerabilities[2].InstalledVersion: invalid type",
            bad.display()
        )),
        "{}",
        run.stderr
    );
    let run = logwarden(["scan", "findings", "--state", state]);
    assert_eq!(run.stdout.lines().count(), 1, "only the header: {}", run.stdout);
}

#[test]
fn evaluate_adds_what_a_new_advisory_says_of_an_installed_component() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.redb");
    let state = state.to_str().unwrap();
    let trivy = corpus::path("scanners/trivy/alpine-310.json.golden.json");
    let run =
        logwarden(["scan", "ingest", "--app", "base", "--state", state, trivy.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let adv = dir.path().join("osv");
    std::fs::create_dir(&adv).unwrap();
    // An Alpine advisory for libssl1.1 below 1.1.1d-r3: installed 1.1.1c-r0.
    let record = serde_json::json!({
        "id": "ALPINE-CVE-2099-0001", "aliases": ["CVE-2099-0001"],
        "database_specific": {"severity": "HIGH"},
        "affected": [{"package": {"ecosystem": "Alpine:v3.10", "name": "libssl1.1"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1.1d-r3"}]}]}]
    });
    std::fs::write(adv.join("a.json"), record.to_string()).unwrap();
    let listed = logwarden(["scan", "findings", "--state", state]);
    let run =
        logwarden(["scan", "findings", "--advisories", adv.to_str().unwrap(), "--state", state]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let new: Vec<&str> =
        run.stdout.lines().filter(|l| !listed.stdout.lines().any(|k| k == *l)).collect();
    assert_eq!(
        new,
        ["base\tbuild\thigh\t-\tCVE-2099-0001\tpkg:apk/alpine/libssl1.1@1.1.1c-r0\t1.1.1d-r3\tosv"]
    );
    assert_eq!(run.stdout.lines().count(), listed.stdout.lines().count() + 1);
    assert!(run.stderr.contains("1 scans against 1 advisories"), "{}", run.stderr);
}
