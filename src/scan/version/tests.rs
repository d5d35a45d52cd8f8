//! Ordering tables from each scheme's specification, OSV range cases, and properties.
use super::*;
use proptest::prelude::*;

/// Every pair of `chain`, both ways, orders as the positions do.
fn assert_ascending(ecosystem: &str, chain: &[&str]) {
    for (i, a) in chain.iter().enumerate() {
        for (j, b) in chain.iter().enumerate() {
            assert_eq!(compare(ecosystem, a, b), Some(i.cmp(&j)), "{ecosystem}: {a} vs {b}");
        }
    }
}

/// Every pair of `group` compares equal.
fn assert_equal(ecosystem: &str, group: &[&str]) {
    for a in group {
        for b in group {
            assert_eq!(compare(ecosystem, a, b), Some(Ordering::Equal), "{ecosystem}: {a} vs {b}");
        }
    }
}

/// `a` < `b`, checked both ways.
fn assert_less(ecosystem: &str, pairs: &[(&str, &str)]) {
    for (a, b) in pairs {
        assert_ascending(ecosystem, &[a, b]);
    }
}

#[test]
fn ecosystem_names() {
    for (name, scheme) in [
        ("npm", Scheme::SemVer),
        ("cargo", Scheme::SemVer),
        ("crates.io", Scheme::SemVer),
        ("golang", Scheme::SemVer),
        ("Go", Scheme::SemVer),
        ("pypi", Scheme::Pep440),
        ("PyPI", Scheme::Pep440),
        ("maven", Scheme::Maven),
        ("Maven:https://maven.google.com", Scheme::Maven),
        ("deb", Scheme::Debian),
        ("Debian", Scheme::Debian),
        ("Debian:12", Scheme::Debian),
        ("Ubuntu:22.04:LTS", Scheme::Debian),
        ("apk", Scheme::Alpine),
        ("Alpine:v3.18", Scheme::Alpine),
        ("gem", Scheme::RubyGems),
        ("RubyGems", Scheme::RubyGems),
        ("nuget", Scheme::NuGet),
        ("NuGet", Scheme::NuGet),
        ("composer", Scheme::Packagist),
        ("Packagist", Scheme::Packagist),
        ("rpm", Scheme::Rpm),
        ("Red Hat:rhel_aus:8.4::appstream", Scheme::Rpm),
    ] {
        assert_eq!(Scheme::of(name), Some(scheme), "{name}");
    }
    assert_eq!(Scheme::of("GitHub Actions"), None);
    assert_eq!(compare("swift", "1.0.0", "1.0.1"), None);
}

#[test]
fn semver_precedence_from_the_spec() {
    let chain = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
    ];
    for eco in ["npm", "cargo", "golang", "crates.io"] {
        assert_ascending(eco, &chain);
    }
    assert_ascending("npm", &["1.0.0", "2.0.0", "2.1.0", "2.1.1"]);
}

#[test]
fn semver_build_metadata_and_go_prefix() {
    assert_equal("npm", &["1.0.0", "1.0.0+build.1", "1.0.0+zzz"]);
    assert_equal("golang", &["v1.2.3", "1.2.3", "v1.2.3+incompatible"]);
    assert_less("Go", &[("v0.0.0-20210101000000-abcdef123456", "v0.0.1"), ("v1.9.9", "1.10.0")]);
    for bad in ["1.2", "01.2.3", "1.2.3.4", "", "latest"] {
        assert_eq!(compare("npm", bad, "1.0.0"), None, "{bad}");
    }
}

#[test]
fn pep440_ordering_from_the_pep() {
    // PEP 440, "Summary of permitted suffixes and relative ordering".
    assert_ascending(
        "PyPI",
        &[
            "1.dev0",
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
        ],
    );
    assert_less("pypi", &[("2013.10", "1!1.0"), ("1.0", "1.0.post1")]);
}

#[test]
fn pep440_normalization() {
    assert_equal("pypi", &["1.0.0a1", "1.0.0-alpha.1", "1.0.0.alpha1", "1.0.0A1"]);
    assert_equal("pypi", &["1.0", "1.0.0", "v1.0", "0!1.0"]);
    assert_equal("pypi", &["1.0c1", "1.0rc1", "1.0-pre1", "1.0preview1"]);
    assert_equal("pypi", &["1.0.post1", "1.0-1", "1.0-r1", "1.0rev1"]);
    assert_equal("pypi", &["1.0.dev0", "1.0-dev", "1.0dev"]);
    assert_eq!(compare("pypi", "not a version", "1.0"), None);
}

#[test]
fn maven_documented_ordering() {
    assert_ascending(
        "maven",
        &[
            "1.0-alpha",
            "1.0-beta",
            "1.0-milestone",
            "1.0-rc",
            "1.0-SNAPSHOT",
            "1.0",
            "1.0-sp",
            "1.0.1",
        ],
    );
    // Examples of the POM reference's "Version Order Specification".
    assert_less(
        "Maven",
        &[
            ("1", "1.1"),
            ("1-snapshot", "1"),
            ("1", "1-sp"),
            ("1-foo2", "1-foo10"),
            ("1-foo", "1-1"),
            ("1-1", "1.1"),
            ("1-ga", "1-sp"),
            ("1-ga.1", "1-sp.1"),
            ("1-sp-1", "1-ga-1"),
            ("1.0.RC2", "1.0-RC3"),
            ("1.0-RC3", "1.0.1"),
            ("1-alpha-1", "1-alpha-2"),
            ("2.0.0.Final", "2.0.1.Final"),
            ("1.0-abc", "1.0-xyz"),
            ("1.0-rc1", "1.0-abc"),
        ],
    );
    assert_equal("maven", &["1.foo", "1-foo"]);
    assert_equal("maven", &["1.ga", "1-ga", "1-0", "1.0", "1", "1.0.0", "1.0-final"]);
    assert_equal("maven", &["1.0.RELEASE", "1.0"]);
    assert_equal("maven", &["1-a1", "1-alpha-1", "1-ALPHA-1", "1.0-alpha1"]);
    assert_equal("maven", &["1.0-CR1", "1.0-rc1", "1.0-RC-1"]);
    assert_equal("maven", &["1.0-SNAPSHOT", "1.0-snapshot"]);
    assert_eq!(compare("maven", "", "1"), None);
}

#[test]
fn dpkg_ordering() {
    // dpkg: '~' sorts before everything, even the end; letters before non-letters.
    assert_ascending("deb", &["1.0~~", "1.0~~a", "1.0~", "1.0~rc1", "1.0", "1.0+b1"]);
    assert_ascending("Debian:12", &["1.0~rc1-1", "1.0-1", "1.0-1.1", "1.0-2", "1.0a", "1.0+"]);
    assert_less(
        "deb",
        &[
            ("2.0", "1:0.9"),
            ("1:1.0-1", "2:0.1-1"),
            ("1.2.9-1", "1.2.10-1"),
            ("2.30-1ubuntu1", "2.30-1ubuntu2"),
            ("7.88.1-10+deb12u4", "7.88.1-10+deb12u5"),
        ],
    );
    assert_equal("deb", &["1.0", "0:1.0", "1.00", "1.0-0"]);
    assert_eq!(compare("deb", "1.0 beta", "1.0"), None);
}

#[test]
fn apk_suffix_ordering() {
    assert_ascending(
        "apk",
        &[
            "1.0_alpha",
            "1.0_alpha1",
            "1.0_beta",
            "1.0_pre1",
            "1.0_rc1",
            "1.0_rc2",
            "1.0",
            "1.0-r1",
            "1.0-r2",
            "1.0_cvs",
            "1.0_svn",
            "1.0_git",
            "1.0_hg",
            "1.0_p1",
            "1.0_p2",
            "1.0a",
            "1.0b",
            "1.0.1",
        ],
    );
    assert_less(
        "Alpine:v3.18",
        &[
            ("0.1.0_alpha_pre2", "0.1.0_alpha"),
            ("1.3_pre1-r1", "1.3.2"),
            ("1.1_alpha1", "1.1"),
            ("1.2", "1.2.1"),
            ("1.0_p9-r0", "1.0_p10-r0"),
            ("1.0.0_pre20191002222144-r0", "1.0.0_pre20210530193627-r0"),
            ("2.5.1-r8", "2.5.1a-r1"),
            ("1.02", "1.03-r1"),
            ("1.02.07", "1.02.10-r1"),
            ("4.09-r1", "4.5.14"),
            ("1.06-r6", "006"),
            ("2.0", "2.0-r0"),
            ("3.3.3p1-r2", "3.3.3p1-r3"),
        ],
    );
    assert_equal("apk", &["1.0", "1.0"]);
    for bad in ["1.0bc", "23_foo", "a1", "1.0-1", "1..0", "1.0_"] {
        assert_eq!(compare("apk", bad, "1.0"), None, "{bad}");
    }
}

#[test]
fn rubygems_ordering() {
    assert_ascending(
        "gem",
        &["1.0.a", "1.0.a.2", "1.0.b1", "1.0.rc1", "1.0", "1.0.1", "1.1", "1.10"],
    );
    assert_less("RubyGems", &[("1.0-1", "1.0"), ("2.0.0.pre", "2.0.0")]);
    assert_equal("gem", &["1.0", "1", "1.0.0"]);
    assert_equal("gem", &["1.0.a", "1.a"]);
    assert_equal("gem", &["1.0-beta", "1.0.pre.beta"]);
    for bad in ["1a", "", "1.0-", "1..0", "junk"] {
        assert_eq!(compare("gem", bad, "1.0"), None, "{bad}");
    }
}

#[test]
fn nuget_ordering() {
    assert_ascending(
        "nuget",
        &[
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-Alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.0.1",
            "1.0.1",
        ],
    );
    assert_equal("NuGet", &["1.0", "1.0.0", "1.0.0.0", "1.0.0+meta"]);
    assert_equal("NuGet", &["1.0.0-BETA", "1.0.0-beta"]);
    for bad in ["1.0.0.0.0", "v1.0", "1.0-", ""] {
        assert_eq!(compare("nuget", bad, "1.0"), None, "{bad}");
    }
}

#[test]
fn packagist_ordering() {
    assert_ascending(
        "composer",
        &[
            "1.0.0-dev",
            "1.0.0-alpha1",
            "1.0.0-alpha2",
            "1.0.0-beta1",
            "1.0.0-RC1",
            "1.0.0",
            "1.0.0-p1",
            "1.0.1",
            "1.10.0",
        ],
    );
    assert_equal("Packagist", &["1.0", "1.0.0", "v1.0.0", "1.0.0.0"]);
    assert_equal("Packagist", &["1.0.0-beta1", "1.0.0beta1", "1.0.0-b1"]);
    assert_eq!(compare("composer", "dev-main", "1.0"), None);
}

#[test]
fn rpm_ordering() {
    assert_ascending(
        "rpm",
        &[
            "1.0~rc1-1",
            "1.0-1",
            "1.0-1.el8",
            "1.0-2.el8",
            "1.0^git1-1",
            "1.0a-1",
            "1.0.1-1",
            "1.10-1",
            "1:0.5-1",
        ],
    );
    assert_less(
        "Red Hat",
        &[
            ("2.28-151.el8", "2.28-225.el8"),
            ("1.1.1k-7.el8_6", "1.1.1k-12.el8_9"),
            ("1.0", "1.0-1"),
        ],
    );
    assert_equal("rpm", &["1.0-1", "0:1.0-1", "1_0-1", "1.00-1"]);
    assert_eq!(rpm::rpmvercmp(b"1.0", b"1.0^"), Ordering::Less);
    assert_eq!(rpm::rpmvercmp(b"1.0^", b"1.0.1"), Ordering::Less);
    assert_eq!(rpm::rpmvercmp(b"1.0~rc1", b"1.0~rc1~x"), Ordering::Greater);
}

fn range(kind: RangeKind, events: &[Event]) -> Range {
    Range { kind, events: events.to_vec() }
}

fn introduced(v: &str) -> Event {
    Event::Introduced(v.into())
}

fn fixed(v: &str) -> Event {
    Event::Fixed(v.into())
}

fn last_affected(v: &str) -> Event {
    Event::LastAffected(v.into())
}

fn limit(v: &str) -> Event {
    Event::Limit(v.into())
}

#[test]
fn affected_introduced_zero_fixed() {
    let ranges = [range(RangeKind::Semver, &[introduced("0"), fixed("1.2.3")])];
    assert_eq!(affected("npm", "0.0.1", &ranges), Some(true));
    assert_eq!(affected("npm", "1.2.3-rc.1", &ranges), Some(true));
    assert_eq!(affected("npm", "1.2.3", &ranges), Some(false));
    assert_eq!(affected("npm", "1.2.4", &ranges), Some(false));
    // Go inventories carry the "v" that OSV ranges omit.
    assert_eq!(affected("golang", "v1.2.2", &ranges), Some(true));
    assert_eq!(affected("golang", "v1.2.3", &ranges), Some(false));
}

#[test]
fn affected_last_affected_is_inclusive() {
    let ranges = [range(RangeKind::Ecosystem, &[introduced("1.0"), last_affected("1.4")])];
    assert_eq!(affected("PyPI", "0.9", &ranges), Some(false));
    assert_eq!(affected("PyPI", "1.0", &ranges), Some(true));
    assert_eq!(affected("PyPI", "1.4", &ranges), Some(true));
    assert_eq!(affected("PyPI", "1.4.0", &ranges), Some(true));
    assert_eq!(affected("PyPI", "1.4.post1", &ranges), Some(false));
    assert_eq!(affected("PyPI", "1.5", &ranges), Some(false));
}

#[test]
fn affected_two_ranges_and_unsorted_events() {
    let ranges = [
        range(RangeKind::Ecosystem, &[fixed("1.0.2"), introduced("1.0.0")]),
        range(RangeKind::Ecosystem, &[introduced("3.0.0"), fixed("3.2.5")]),
    ];
    for (v, want) in [
        ("0.9", false),
        ("1.0.0", true),
        ("1.0.1", true),
        ("1.0.2", false),
        ("2.0", false),
        ("3.0.0", true),
        ("3.2.4.1", true),
        ("3.2.5", false),
    ] {
        assert_eq!(affected("Maven", v, &ranges), Some(want), "{v}");
    }
    // One timeline with two windows behaves the same.
    let timeline = [range(
        RangeKind::Ecosystem,
        &[introduced("3.0.0"), fixed("1.0.2"), introduced("1.0.0"), fixed("3.2.5")],
    )];
    assert_eq!(affected("Maven", "1.0.1", &timeline), Some(true));
    assert_eq!(affected("Maven", "2.0", &timeline), Some(false));
    assert_eq!(affected("Maven", "3.1", &timeline), Some(true));
}

#[test]
fn affected_with_limit() {
    let ranges = [range(RangeKind::Ecosystem, &[introduced("0"), limit("2.0.0")])];
    assert_eq!(affected("gem", "1.9.9", &ranges), Some(true));
    assert_eq!(affected("gem", "2.0.0", &ranges), Some(false));
    let unlimited = [range(RangeKind::Ecosystem, &[introduced("1.0"), limit("*")])];
    assert_eq!(affected("gem", "99", &unlimited), Some(true));
    assert_eq!(affected("gem", "0.9", &unlimited), Some(false));
    let both =
        [range(RangeKind::Ecosystem, &[introduced("0"), fixed("3.0"), limit("2.0"), limit("1.0")])];
    assert_eq!(affected("gem", "1.5", &both), Some(true));
    assert_eq!(affected("gem", "2.5", &both), Some(false));
}

#[test]
fn affected_unknowns_are_none() {
    let ranges = [range(RangeKind::Ecosystem, &[introduced("0"), fixed("1.0.0")])];
    assert_eq!(affected("npm", "0.5.0", &ranges), Some(true));
    assert_eq!(affected("npm", "not-a-version", &ranges), None);
    assert_eq!(affected("Swift", "1.0.0", &ranges), None);
    let git = [range(RangeKind::Git, &[introduced("0"), fixed("6a4b0f1a2c3d4e5f")])];
    assert_eq!(affected("npm", "1.0.0", &git), None);
    assert_eq!(affected("npm", "1.0.0", &[]), None);
    // GIT ranges are skipped, not counted against a decision.
    let mixed = [git[0].clone(), ranges[0].clone()];
    assert_eq!(affected("npm", "0.5.0", &mixed), Some(true));
    assert_eq!(affected("npm", "1.5.0", &mixed), Some(false));
    // A range whose bound does not parse cannot vouch for "not affected", but another
    // range can still say "affected".
    let broken = [
        range(RangeKind::Ecosystem, &[introduced("0"), fixed("garbage!")]),
        range(RangeKind::Ecosystem, &[introduced("2.0.0"), fixed("2.1.0")]),
    ];
    assert_eq!(affected("npm", "2.0.5", &broken), Some(true));
    assert_eq!(affected("npm", "3.0.0", &broken), None);
}

#[test]
fn matcher_on_preparsed_versions() {
    let ranges = [range(RangeKind::Ecosystem, &[introduced("0"), fixed("1:2.3-4")])];
    let m = Matcher::new("Debian:12", &ranges);
    let old = parse("deb", "1:2.3-3").expect("parses");
    let new = parse("deb", "1:2.3-4+deb12u1").expect("parses");
    let other = parse("npm", "1.0.0").expect("parses");
    assert_eq!(m.affects(&old), Some(true));
    assert_eq!(m.affects(&new), Some(false));
    assert_eq!(m.affects(&other), None);
    assert_eq!(old.compare(&new), Some(Ordering::Less));
    assert_eq!(old.compare(&other), None);
}

#[test]
fn ranges_decode_from_osv_json() {
    let json = r#"[
        {"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.2.3"}]},
        {"type": "ECOSYSTEM", "events": [{"introduced": "2.0.0"}, {"last_affected": "2.4.0"},
                                         {"limit": "*"}], "database_specific": {"x": 1}},
        {"type": "GIT", "repo": "https://example.invalid/r.git",
         "events": [{"introduced": "abc"}, {"fixed": "def"}]},
        {"type": "SOMETHING_NEW", "events": []}
    ]"#;
    let ranges: Vec<Range> = serde_json::from_str(json).expect("decodes");
    assert_eq!(ranges[0].kind, RangeKind::Semver);
    assert_eq!(ranges[0].events, vec![introduced("0"), fixed("1.2.3")],);
    assert_eq!(ranges[1].events, vec![introduced("2.0.0"), last_affected("2.4.0"), limit("*")]);
    assert_eq!(ranges[2].kind, RangeKind::Git);
    assert_eq!(ranges[3].kind, RangeKind::Unknown);
    assert_eq!(fixed_versions(&ranges), vec!["1.2.3".to_string()]);
    assert_eq!(affected("npm", "1.0.0", &ranges), Some(true));
    assert_eq!(affected("npm", "2.2.0", &ranges), Some(true));
    assert_eq!(affected("npm", "1.5.0", &ranges), Some(false));
}

#[test]
fn fixed_versions_dedups_in_order() {
    let ranges = [
        range(RangeKind::Ecosystem, &[introduced("0"), fixed("2.0"), fixed("1.5")]),
        range(RangeKind::Semver, &[introduced("0"), fixed("1.5")]),
        range(RangeKind::Git, &[introduced("0"), fixed("abcdef")]),
    ];
    assert_eq!(fixed_versions(&ranges), vec!["2.0", "1.5"]);
}

fn semver_strategy() -> impl Strategy<Value = String> {
    let pre = prop::sample::select(vec![
        "",
        "-alpha",
        "-alpha.1",
        "-alpha.beta",
        "-beta",
        "-beta.2",
        "-beta.11",
        "-rc.1",
        "-0",
        "-1.a",
        "-x-y",
    ]);
    let build = prop::sample::select(vec!["", "+b1", "+exp.sha.5114f85"]);
    (0u64..3, 0u64..3, 0u64..3, pre, build)
        .prop_map(|(a, b, c, pre, build)| format!("{a}.{b}.{c}{pre}{build}"))
}

fn debian_strategy() -> impl Strategy<Value = String> {
    (prop::option::of(0u32..3), "[0-9][0-9a-c.+~]{0,5}", prop::option::of("[0-9a-c+~.]{1,4}"))
        .prop_map(|(epoch, upstream, revision)| {
            let mut v = String::new();
            if let Some(e) = epoch {
                v.push_str(&format!("{e}:"));
            }
            v.push_str(&upstream);
            if let Some(r) = revision {
                v.push('-');
                v.push_str(&r);
            }
            v
        })
}

fn apk_strategy() -> impl Strategy<Value = String> {
    "[0-9]{1,2}(\\.0?[0-9]{1,2}){0,2}[a-c]?(_(alpha|beta|rc|p|git)[0-9]?){0,2}(-r[0-9])?"
}

fn maven_strategy() -> impl Strategy<Value = String> {
    "[0-9]{1,2}([.-]([0-9]{1,2}|alpha|beta|rc|sp|ga|snapshot|foo|a1|m2)){0,3}"
}

fn gem_strategy() -> impl Strategy<Value = String> {
    "[0-9]{1,2}(\\.([0-9]|a|b|rc1|pre)){0,3}(-[a-c0-2]{1,2})?"
}

fn rpm_strategy() -> impl Strategy<Value = String> {
    "([0-2]:)?[0-9a-c.~^]{1,5}(-[0-9a-c.~^]{1,3})?"
}

fn check_order_laws(eco: &str, a: &str, b: &str, c: &str) -> Result<(), TestCaseError> {
    let (Some(ab), Some(bc), Some(ac)) =
        (compare(eco, a, b), compare(eco, b, c), compare(eco, a, c))
    else {
        return Err(TestCaseError::reject("unparseable"));
    };
    prop_assert_eq!(compare(eco, b, a), Some(ab.reverse()), "antisymmetry {} {}", a, b);
    prop_assert_eq!(compare(eco, a, a), Some(Ordering::Equal));
    if ab.is_le() && bc.is_le() {
        prop_assert!(ac.is_le(), "transitivity {} <= {} <= {}", a, b, c);
    }
    if ab.is_ge() && bc.is_ge() {
        prop_assert!(ac.is_ge(), "transitivity {} >= {} >= {}", a, b, c);
    }
    Ok(())
}

proptest! {
    #[test]
    fn semver_order_laws(a in semver_strategy(), b in semver_strategy(), c in semver_strategy()) {
        check_order_laws("npm", &a, &b, &c)?;
    }

    #[test]
    fn debian_order_laws(a in debian_strategy(), b in debian_strategy(), c in debian_strategy()) {
        check_order_laws("deb", &a, &b, &c)?;
    }

    #[test]
    fn maven_order_laws(a in maven_strategy(), b in maven_strategy(), c in maven_strategy()) {
        check_order_laws("maven", &a, &b, &c)?;
    }

    #[test]
    fn gem_order_laws(a in gem_strategy(), b in gem_strategy(), c in gem_strategy()) {
        check_order_laws("gem", &a, &b, &c)?;
    }

    #[test]
    fn rpm_order_laws(a in rpm_strategy(), b in rpm_strategy(), c in rpm_strategy()) {
        check_order_laws("rpm", &a, &b, &c)?;
    }

    #[test]
    fn apk_order_laws(a in apk_strategy(), b in apk_strategy(), c in apk_strategy()) {
        check_order_laws("apk", &a, &b, &c)?;
    }
}

/// Any text, in any ecosystem.
mod any_text {
    proptest::proptest! {
        /// Any text, in any ecosystem: an answer or None, never a panic.
        #[test]
        fn any_text_is_compared_or_refused(a in "\\PC{0,12}", b in "[0-9a-zé€.~_+-]{0,12}") {
            for eco in ["npm", "PyPI", "Maven", "Debian", "Alpine", "RubyGems", "NuGet", "Packagist", "rpm", "crates.io", "Go"] {
                let _ = super::compare(eco, &a, &b);
                let _ = super::compare(eco, &b, &a);
                let _ = super::compare(eco, &a, &a);
            }
        }
    }
}
