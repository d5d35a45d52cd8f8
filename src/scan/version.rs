//! Version ordering per package ecosystem, and OSV range evaluation, for continuous monitoring
//! (DESIGN §5): stored inventories (purl type, name, version) are re-checked against an OSV
//! advisory directory without re-running a scanner.
//!
//! Each ecosystem orders versions by its own rules; [`Scheme`] names the rule set and
//! [`Scheme::parse`] turns a string into a [`Version`] once, so that the hot loop (hundreds of
//! thousands of components against tens of thousands of advisories) only compares parsed
//! values. [`Matcher`] does the same for an advisory's `affected[].ranges`.
//!
//! Where a well-kept crate implements a scheme it is used: `semver` (npm, crates.io, Go, Hex),
//! `pep440_rs` (PyPI) and `debversion` (dpkg). For Maven, Alpine apk, RubyGems, NuGet, Composer
//! and RPM no small, well-kept crate was found, so they are written here after their reference
//! implementations; each section says which behaviour it follows and where it approximates.

use std::cmp::Ordering;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A version ordering scheme; several ecosystems share one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// SemVer 2.0 precedence (npm, crates.io, Go, Hex); build metadata ignored.
    SemVer,
    /// PEP 440 (PyPI).
    Pep440,
    /// Maven's `ComparableVersion`.
    Maven,
    /// dpkg (Debian, Ubuntu).
    Debian,
    /// apk-tools (Alpine, Wolfi, Chainguard).
    Alpine,
    /// `Gem::Version` (RubyGems).
    RubyGems,
    /// NuGet's SemVer variant with up to four release numbers.
    NuGet,
    /// Composer (Packagist): PHP `version_compare` on Composer-normalised versions.
    Packagist,
    /// `rpmvercmp` on epoch:version-release (Red Hat, SUSE, Rocky, Alma, ...).
    Rpm,
}

/// Ecosystem names, purl types first, then OSV names; matched without regard to ASCII case
/// because purl types are lowercase and OSV names are not.
const ECOSYSTEMS: &[(&str, Scheme)] = &[
    ("npm", Scheme::SemVer),
    ("cargo", Scheme::SemVer),
    ("golang", Scheme::SemVer),
    ("hex", Scheme::SemVer),
    ("pypi", Scheme::Pep440),
    ("maven", Scheme::Maven),
    ("deb", Scheme::Debian),
    ("apk", Scheme::Alpine),
    ("gem", Scheme::RubyGems),
    ("nuget", Scheme::NuGet),
    ("composer", Scheme::Packagist),
    ("rpm", Scheme::Rpm),
    ("crates.io", Scheme::SemVer),
    ("go", Scheme::SemVer),
    ("debian", Scheme::Debian),
    ("ubuntu", Scheme::Debian),
    ("alpine", Scheme::Alpine),
    ("wolfi", Scheme::Alpine),
    ("chainguard", Scheme::Alpine),
    ("rubygems", Scheme::RubyGems),
    ("packagist", Scheme::Packagist),
    ("red hat", Scheme::Rpm),
    ("rocky linux", Scheme::Rpm),
    ("almalinux", Scheme::Rpm),
    ("opensuse", Scheme::Rpm),
    ("suse", Scheme::Rpm),
    ("mageia", Scheme::Rpm),
    ("openeuler", Scheme::Rpm),
    ("photon os", Scheme::Rpm),
];

impl Scheme {
    /// The scheme of an ecosystem given as a purl type or an OSV ecosystem name.
    pub fn of(ecosystem: &str) -> Option<Scheme> {
        // OSV scopes ecosystems with a suffix ("Debian:12", "Alpine:v3.18",
        // "Maven:https://..."); the ordering never depends on it.
        let name = ecosystem.split_once(':').map_or(ecosystem, |(name, _)| name).trim();
        ECOSYSTEMS
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|&(_, scheme)| scheme)
    }

    /// Parses `v` under this scheme; `None` when it is not a version of the scheme.
    pub fn parse(self, v: &str) -> Option<Version> {
        let repr = match self {
            Scheme::SemVer => Repr::SemVer(parse_semver(v)?),
            Scheme::Pep440 => Repr::Pep440(pep440_rs::Version::from_str(v.trim()).ok()?),
            Scheme::Maven => Repr::Maven(MavenVersion::parse(v)?),
            Scheme::Debian => Repr::Debian(debversion::Version::from_str(v.trim()).ok()?),
            Scheme::Alpine => Repr::Alpine(ApkVersion::parse(v)?),
            Scheme::RubyGems => Repr::RubyGems(GemVersion::parse(v)?),
            Scheme::NuGet => Repr::NuGet(NuGetVersion::parse(v)?),
            Scheme::Packagist => Repr::Packagist(ComposerVersion::parse(v)?),
            Scheme::Rpm => Repr::Rpm(RpmVersion::parse(v)?),
        };
        Some(Version(repr))
    }
}

/// Parses `v` under the scheme of `ecosystem` (see [`compare`] for the names understood).
pub fn parse(ecosystem: &str, v: &str) -> Option<Version> {
    Scheme::of(ecosystem)?.parse(v)
}

/// Orders two versions of one ecosystem; `None` for an unknown ecosystem or a version that
/// does not parse under its scheme.
///
/// Ecosystems are purl types (`npm`, `cargo`, `golang`, `pypi`, `maven`, `deb`, `apk`, `gem`,
/// `nuget`, `composer`, `rpm`) or OSV names (`npm`, `crates.io`, `Go`, `PyPI`, `Maven`,
/// `Debian:12`, `Alpine:v3.18`, `RubyGems`, `NuGet`, `Packagist`, ...).
pub fn compare(ecosystem: &str, a: &str, b: &str) -> Option<Ordering> {
    let scheme = Scheme::of(ecosystem)?;
    Some(scheme.parse(a)?.cmp(&scheme.parse(b)?))
}

/// A version parsed under one [`Scheme`].
///
/// `Ord` is the scheme's ordering; versions of different schemes never meet in practice, and
/// are ordered by scheme so that `Ord` stays total. Equality is the scheme's equality, so
/// `1.0` and `1.0.0` are equal under Maven and PEP 440.
#[derive(Clone, Debug)]
pub struct Version(Repr);

#[derive(Clone, Debug)]
enum Repr {
    SemVer(semver::Version),
    Pep440(pep440_rs::Version),
    Maven(MavenVersion),
    Debian(debversion::Version),
    Alpine(ApkVersion),
    RubyGems(GemVersion),
    NuGet(NuGetVersion),
    Packagist(ComposerVersion),
    Rpm(RpmVersion),
}

impl Version {
    /// The scheme this version was parsed under.
    pub fn scheme(&self) -> Scheme {
        match &self.0 {
            Repr::SemVer(_) => Scheme::SemVer,
            Repr::Pep440(_) => Scheme::Pep440,
            Repr::Maven(_) => Scheme::Maven,
            Repr::Debian(_) => Scheme::Debian,
            Repr::Alpine(_) => Scheme::Alpine,
            Repr::RubyGems(_) => Scheme::RubyGems,
            Repr::NuGet(_) => Scheme::NuGet,
            Repr::Packagist(_) => Scheme::Packagist,
            Repr::Rpm(_) => Scheme::Rpm,
        }
    }

    /// The scheme's ordering, or `None` when the two versions belong to different schemes.
    pub fn compare(&self, other: &Version) -> Option<Ordering> {
        (self.scheme() == other.scheme()).then(|| self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            (Repr::SemVer(a), Repr::SemVer(b)) => cmp_semver(a, b),
            (Repr::Pep440(a), Repr::Pep440(b)) => a.cmp(b),
            (Repr::Maven(a), Repr::Maven(b)) => a.cmp(b),
            (Repr::Debian(a), Repr::Debian(b)) => a.cmp(b),
            (Repr::Alpine(a), Repr::Alpine(b)) => a.cmp(b),
            (Repr::RubyGems(a), Repr::RubyGems(b)) => a.cmp(b),
            (Repr::NuGet(a), Repr::NuGet(b)) => a.cmp(b),
            (Repr::Packagist(a), Repr::Packagist(b)) => a.cmp(b),
            (Repr::Rpm(a), Repr::Rpm(b)) => a.cmp(b),
            _ => self.scheme().cmp(&other.scheme()),
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

// ---------------------------------------------------------------------------------------------
// Numbers

/// A decimal number of any length: versions carry dates and build stamps that overflow `u64`
/// now and then, and rejecting them would hide a component from every advisory.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Num {
    Small(u64),
    /// Digits without leading zeros, only for values above `u64::MAX`.
    Big(Box<str>),
}

impl Num {
    const ZERO: Num = Num::Small(0);

    /// `digits` holds ASCII digits only; empty reads as zero, as every scheme here does.
    fn parse(digits: &str) -> Num {
        let trimmed = digits.trim_start_matches('0');
        if trimmed.is_empty() {
            return Num::ZERO;
        }
        match trimmed.parse::<u64>() {
            Ok(n) => Num::Small(n),
            Err(_) => Num::Big(trimmed.into()),
        }
    }

    fn is_zero(&self) -> bool {
        *self == Num::ZERO
    }
}

impl Ord for Num {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Num::Small(a), Num::Small(b)) => a.cmp(b),
            (Num::Small(_), Num::Big(_)) => Ordering::Less,
            (Num::Big(_), Num::Small(_)) => Ordering::Greater,
            (Num::Big(a), Num::Big(b)) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
        }
    }
}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares two ASCII digit strings by value without parsing them.
fn cmp_digits(a: &[u8], b: &[u8]) -> Ordering {
    let a = strip_zeros(a);
    let b = strip_zeros(b);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn strip_zeros(digits: &[u8]) -> &[u8] {
    let start = digits.iter().position(|&c| c != b'0').unwrap_or(digits.len());
    &digits[start..]
}

/// End of the run of bytes from `start` that satisfy `pred`.
fn span(bytes: &[u8], start: usize, pred: impl Fn(u8) -> bool) -> usize {
    bytes[start..].iter().position(|&c| !pred(c)).map_or(bytes.len(), |n| start + n)
}

// ---------------------------------------------------------------------------------------------
// SemVer (npm, crates.io, Go, Hex)

fn parse_semver(v: &str) -> Option<semver::Version> {
    let v = v.trim();
    // Go module versions always carry the "v" (OSV strips it); npm tolerates it too.
    let v = v.strip_prefix('v').unwrap_or(v);
    semver::Version::parse(v).ok()
}

/// SemVer §11 precedence: the `semver` crate's own `Ord` also orders build metadata, which the
/// spec says must not count (and Go's `+incompatible` would otherwise split equal versions).
fn cmp_semver(a: &semver::Version, b: &semver::Version) -> Ordering {
    (a.major, a.minor, a.patch).cmp(&(b.major, b.minor, b.patch)).then_with(|| a.pre.cmp(&b.pre))
}

// ---------------------------------------------------------------------------------------------
// Maven: org.apache.maven.artifact.versioning.ComparableVersion as of Maven 3.9 (trailing
// "null" items trimmed per sub-list, ".X" qualifiers treated as "-X", "release" = "ga").

#[derive(Clone, Debug)]
struct MavenVersion(Vec<MavenItem>);

#[derive(Clone, Debug)]
enum MavenItem {
    Int(Num),
    Str(Qualifier),
    List(Vec<MavenItem>),
}

/// A string item; `(rank, text)` orders the way Maven's `comparableQualifier` strings do:
/// known qualifiers by rank, then unknown ones lexically.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Qualifier {
    rank: u8,
    /// Empty for known qualifiers.
    text: Box<str>,
}

const MAVEN_QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];
const MAVEN_RELEASE_RANK: u8 = 5;
const MAVEN_UNKNOWN_RANK: u8 = 7;

impl Qualifier {
    fn new(value: &str, followed_by_digit: bool) -> Qualifier {
        let value = match value {
            // "a1" is alpha-1, but a lone "a" is an unknown qualifier.
            "a" if followed_by_digit => "alpha",
            "b" if followed_by_digit => "beta",
            "m" if followed_by_digit => "milestone",
            "ga" | "final" | "release" => "",
            "cr" => "rc",
            other => other,
        };
        match MAVEN_QUALIFIERS.iter().position(|q| *q == value) {
            Some(rank) => Qualifier { rank: rank as u8, text: "".into() },
            None => Qualifier { rank: MAVEN_UNKNOWN_RANK, text: value.into() },
        }
    }
}

impl MavenItem {
    fn parse(is_digit: bool, text: &str) -> MavenItem {
        if is_digit {
            MavenItem::Int(Num::parse(text))
        } else {
            MavenItem::Str(Qualifier::new(text, false))
        }
    }

    fn is_null(&self) -> bool {
        match self {
            MavenItem::Int(n) => n.is_zero(),
            MavenItem::Str(q) => q.rank == MAVEN_RELEASE_RANK,
            MavenItem::List(items) => items.is_empty(),
        }
    }

    /// `ComparableVersion.Item.compareTo`, where `None` is the padding of a shorter list.
    fn compare(&self, other: Option<&MavenItem>) -> Ordering {
        use MavenItem::{Int, List, Str};
        match (self, other) {
            (Int(n), None) => {
                if n.is_zero() {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                }
            }
            (Int(a), Some(Int(b))) => a.cmp(b),
            (Int(_), Some(_)) => Ordering::Greater,
            (Str(q), None) => q.rank.cmp(&MAVEN_RELEASE_RANK),
            (Str(_), Some(Int(_) | List(_))) => Ordering::Less,
            (Str(a), Some(Str(b))) => a.cmp(b),
            (List(items), None) => items
                .iter()
                .map(|item| item.compare(None))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal),
            (List(_), Some(Int(_))) => Ordering::Less,
            (List(_), Some(Str(_))) => Ordering::Greater,
            (List(a), Some(List(b))) => cmp_maven_lists(a, b),
        }
    }
}

fn cmp_maven_lists(a: &[MavenItem], b: &[MavenItem]) -> Ordering {
    for i in 0..a.len().max(b.len()) {
        let o = match (a.get(i), b.get(i)) {
            (Some(l), r) => l.compare(r),
            (None, Some(r)) => r.compare(None).reverse(),
            (None, None) => Ordering::Equal,
        };
        if o.is_ne() {
            return o;
        }
    }
    Ordering::Equal
}

/// Drops trailing null items; a non-empty sub-list does not stop the scan, so "1.0-1" keeps
/// its "-1" but loses the "0" before it, exactly as Maven does.
fn normalize_maven(items: &mut Vec<MavenItem>) {
    let mut i = items.len();
    while i > 0 {
        i -= 1;
        if items[i].is_null() {
            items.remove(i);
        } else if !matches!(items[i], MavenItem::List(_)) {
            break;
        }
    }
}

impl MavenVersion {
    fn parse(v: &str) -> Option<MavenVersion> {
        let v = v.trim().to_lowercase();
        if v.is_empty() {
            return None;
        }
        // Maven nests a new list at each '-' and digit/letter transition; the innermost list
        // is always the last item of its parent, so a stack of open lists is enough.
        let mut stack: Vec<Vec<MavenItem>> = vec![Vec::new()];
        let mut is_digit = false;
        let mut start = 0;
        for (i, c) in v.char_indices() {
            let top = stack.last_mut()?;
            match c {
                '.' | '-' => {
                    top.push(if i == start {
                        MavenItem::Int(Num::ZERO)
                    } else {
                        MavenItem::parse(is_digit, &v[start..i])
                    });
                    start = i + 1;
                    if c == '-' {
                        stack.push(Vec::new());
                    }
                }
                _ if c.is_ascii_digit() => {
                    if !is_digit && i > start {
                        // "1.0.0.X1" < "1.0.0-X2": a qualifier after '.' opens a list too.
                        if !top.is_empty() {
                            stack.push(Vec::new());
                        }
                        let top = stack.last_mut()?;
                        top.push(MavenItem::Str(Qualifier::new(&v[start..i], true)));
                        start = i;
                        stack.push(Vec::new());
                    }
                    is_digit = true;
                }
                _ => {
                    if is_digit && i > start {
                        top.push(MavenItem::parse(true, &v[start..i]));
                        start = i;
                        stack.push(Vec::new());
                    }
                    is_digit = false;
                }
            }
        }
        if v.len() > start {
            if !is_digit && !stack.last()?.is_empty() {
                stack.push(Vec::new());
            }
            stack.last_mut()?.push(MavenItem::parse(is_digit, &v[start..]));
        }
        let mut current = stack.pop()?;
        normalize_maven(&mut current);
        while let Some(mut parent) = stack.pop() {
            parent.push(MavenItem::List(current));
            normalize_maven(&mut parent);
            current = parent;
        }
        Some(MavenVersion(current))
    }
}

impl Ord for MavenVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_maven_lists(&self.0, &other.0)
    }
}

impl PartialOrd for MavenVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for MavenVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for MavenVersion {}

// ---------------------------------------------------------------------------------------------
// Alpine: apk-tools' token comparison, `digit{.digit}...{letter}{_suffix{number}}...{~hash}
// {-r#}`, with the suffix order alpha < beta < pre < rc < (none) < cvs < svn < git < hg < p.
// Components after a '.' that start with '0' compare as strings (the Gentoo rule of the
// rewritten apk-tools tokenizer); the older tokenizer weighed them by their count of zeros,
// which disagrees only on padded oddities such as 1.05 against 1.045. Digits straight after the
// letter ("3.3.3p1"), which the rewrite rejects but older apk-tools accepts, read as a plain
// number rather than making the version unparseable.

/// Token kinds in apk-tools' order: when two versions agree up to the point where one has a
/// token the other lacks, the later kind is the lesser version (a pre-release suffix aside).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ApkKind {
    Initial,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    Hash,
    Revision,
    End,
}

/// The suffix that sorts level with no suffix at all; lower ranks are pre-releases.
const APK_SUFFIX_NONE: u8 = 5;

#[derive(Clone, Copy, Debug)]
struct ApkToken {
    kind: ApkKind,
    start: u32,
    end: u32,
    /// Suffix rank for `Suffix`; for `Digit`, 1 when it follows a letter (no string sort).
    extra: u8,
}

#[derive(Clone, Debug)]
struct ApkVersion {
    text: Box<str>,
    tokens: Vec<ApkToken>,
}

fn apk_suffix_rank(name: &[u8]) -> Option<u8> {
    Some(match name {
        b"alpha" => 1,
        b"beta" => 2,
        b"pre" => 3,
        b"rc" => 4,
        b"cvs" => 6,
        b"svn" => 7,
        b"git" => 8,
        b"hg" => 9,
        b"p" => 10,
        _ => return None,
    })
}

impl ApkVersion {
    fn parse(v: &str) -> Option<ApkVersion> {
        let v = v.trim();
        let b = v.as_bytes();
        // Token offsets are u32 to keep tokens small; no real version comes near that.
        if b.len() > u32::MAX as usize {
            return None;
        }
        let token = |kind, start: usize, end: usize, extra| ApkToken {
            kind,
            start: start as u32,
            end: end as u32,
            extra,
        };
        let mut i = span(b, 0, |c| c.is_ascii_digit());
        if i == 0 {
            return None;
        }
        let mut tokens = vec![token(ApkKind::Initial, 0, i, 0)];
        let mut last = ApkKind::Initial;
        while let Some(&c) = b.get(i) {
            match c {
                b'a'..=b'z' => {
                    if last > ApkKind::Digit {
                        return None;
                    }
                    tokens.push(token(ApkKind::Letter, i, i + 1, 0));
                    i += 1;
                    last = ApkKind::Letter;
                }
                b'.' => {
                    if last > ApkKind::Digit {
                        return None;
                    }
                    let end = span(b, i + 1, |c| c.is_ascii_digit());
                    if end == i + 1 {
                        return None;
                    }
                    tokens.push(token(ApkKind::Digit, i + 1, end, 0));
                    i = end;
                    last = ApkKind::Digit;
                }
                b'0'..=b'9' => {
                    let end = span(b, i, |c| c.is_ascii_digit());
                    let (kind, extra) = match last {
                        ApkKind::Suffix => (ApkKind::SuffixNo, 0),
                        ApkKind::Letter => (ApkKind::Digit, 1),
                        _ => return None,
                    };
                    tokens.push(token(kind, i, end, extra));
                    i = end;
                    last = kind;
                }
                b'_' => {
                    if last > ApkKind::SuffixNo {
                        return None;
                    }
                    let end = span(b, i + 1, |c| c.is_ascii_lowercase());
                    let rank = apk_suffix_rank(&b[i + 1..end])?;
                    tokens.push(token(ApkKind::Suffix, i + 1, end, rank));
                    i = end;
                    last = ApkKind::Suffix;
                }
                b'~' => {
                    if last > ApkKind::SuffixNo {
                        return None;
                    }
                    let end = span(b, i + 1, |c| c.is_ascii_hexdigit());
                    if end == i + 1 {
                        return None;
                    }
                    tokens.push(token(ApkKind::Hash, i + 1, end, 0));
                    i = end;
                    last = ApkKind::Hash;
                }
                b'-' => {
                    if last >= ApkKind::Revision || b.get(i + 1) != Some(&b'r') {
                        return None;
                    }
                    let end = span(b, i + 2, |c| c.is_ascii_digit());
                    tokens.push(token(ApkKind::Revision, i + 2, end, 0));
                    i = end;
                    last = ApkKind::Revision;
                }
                _ => return None,
            }
        }
        Some(ApkVersion { text: v.into(), tokens })
    }

    fn bytes(&self, t: &ApkToken) -> &[u8] {
        self.text.as_bytes().get(t.start as usize..t.end as usize).unwrap_or_default()
    }

    fn kind_at(&self, i: usize) -> ApkKind {
        self.tokens.get(i).map_or(ApkKind::End, |t| t.kind)
    }

    /// A pre-release suffix at `i` makes a version lesser than one that ends there.
    fn pre_release_at(&self, i: usize) -> bool {
        self.tokens.get(i).is_some_and(|t| t.kind == ApkKind::Suffix && t.extra < APK_SUFFIX_NONE)
    }

    fn cmp_token(&self, a: &ApkToken, other: &ApkVersion, b: &ApkToken) -> Ordering {
        let (x, y) = (self.bytes(a), other.bytes(b));
        match a.kind {
            ApkKind::Digit
                if a.extra == 0
                    && b.extra == 0
                    && (x.first() == Some(&b'0') || y.first() == Some(&b'0')) =>
            {
                x.cmp(y)
            }
            ApkKind::Initial | ApkKind::Digit | ApkKind::SuffixNo | ApkKind::Revision => {
                cmp_digits(x, y)
            }
            ApkKind::Suffix => a.extra.cmp(&b.extra),
            ApkKind::Letter | ApkKind::Hash | ApkKind::End => x.cmp(y),
        }
    }
}

impl Ord for ApkVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let mut i = 0;
        loop {
            let (ka, kb) = (self.kind_at(i), other.kind_at(i));
            if ka != kb || ka == ApkKind::End {
                if ka == kb {
                    return Ordering::Equal;
                }
                if self.pre_release_at(i) {
                    return Ordering::Less;
                }
                if other.pre_release_at(i) {
                    return Ordering::Greater;
                }
                // The version that goes on with an earlier kind of token is the greater.
                return kb.cmp(&ka);
            }
            if let (Some(a), Some(b)) = (self.tokens.get(i), other.tokens.get(i)) {
                let o = self.cmp_token(a, other, b);
                if o.is_ne() {
                    return o;
                }
            }
            i += 1;
        }
    }
}

impl PartialOrd for ApkVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ApkVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for ApkVersion {}

// ---------------------------------------------------------------------------------------------
// RubyGems: Gem::Version. "-" reads as ".pre.", segments are digit or letter runs, any letter
// segment makes a pre-release, and trailing zeros of the release and of the pre-release part
// are dropped before a zero-padded comparison.

#[derive(Clone, Debug, PartialEq, Eq)]
enum GemSegment {
    Num(Num),
    Str(Box<str>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct GemVersion(Vec<GemSegment>);

/// `Gem::Version::ANCHORED_VERSION_PATTERN`:
/// `[0-9]+(\.[0-9a-zA-Z]+)*(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?`.
fn gem_valid(v: &str) -> bool {
    let (release, pre) = match v.split_once('-') {
        Some((release, pre)) => (release, Some(pre)),
        None => (v, None),
    };
    let mut parts = release.split('.');
    let first_ok =
        parts.next().is_some_and(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
    let rest_ok = parts.all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphanumeric()));
    let pre_ok = pre.is_none_or(|pre| {
        pre.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
    });
    first_ok && rest_ok && pre_ok
}

fn trim_zero_segments(segments: &mut Vec<GemSegment>) {
    while matches!(segments.last(), Some(GemSegment::Num(n)) if n.is_zero()) {
        segments.pop();
    }
}

impl GemVersion {
    fn parse(v: &str) -> Option<GemVersion> {
        let v = v.trim();
        if !gem_valid(v) {
            return None;
        }
        let b = v.as_bytes();
        let mut segments = Vec::new();
        let mut i = 0;
        while let Some(&c) = b.get(i) {
            if c.is_ascii_digit() {
                let end = span(b, i, |c| c.is_ascii_digit());
                segments.push(GemSegment::Num(Num::parse(&v[i..end])));
                i = end;
            } else if c.is_ascii_alphabetic() {
                let end = span(b, i, |c| c.is_ascii_alphabetic());
                segments.push(GemSegment::Str(v[i..end].into()));
                i = end;
            } else {
                if c == b'-' {
                    segments.push(GemSegment::Str("pre".into()));
                }
                i += 1;
            }
        }
        // Gem::Version#canonical_segments, so that "1.0.a" == "1.a" and "1.0" == "1".
        let first_str =
            segments.iter().position(|s| matches!(s, GemSegment::Str(_))).unwrap_or(segments.len());
        let mut pre = segments.split_off(first_str);
        trim_zero_segments(&mut segments);
        trim_zero_segments(&mut pre);
        segments.append(&mut pre);
        Some(GemVersion(segments))
    }
}

impl Ord for GemVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        const ZERO: GemSegment = GemSegment::Num(Num::ZERO);
        for i in 0..self.0.len().max(other.0.len()) {
            let l = self.0.get(i).unwrap_or(&ZERO);
            let r = other.0.get(i).unwrap_or(&ZERO);
            let o = match (l, r) {
                (GemSegment::Num(a), GemSegment::Num(b)) => a.cmp(b),
                (GemSegment::Str(a), GemSegment::Str(b)) => a.cmp(b),
                (GemSegment::Str(_), GemSegment::Num(_)) => Ordering::Less,
                (GemSegment::Num(_), GemSegment::Str(_)) => Ordering::Greater,
            };
            if o.is_ne() {
                return o;
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for GemVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

// ---------------------------------------------------------------------------------------------
// NuGet: NuGet.Versioning's VersionComparer. Up to four release numbers (missing ones are 0),
// SemVer 2.0 pre-release labels compared case-insensitively, build metadata ignored.

#[derive(Clone, Debug, PartialEq, Eq)]
enum NuGetLabel {
    Num(Num),
    /// Lowercased, since NuGet compares labels ignoring case.
    Str(Box<str>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct NuGetVersion {
    release: [Num; 4],
    pre: Vec<NuGetLabel>,
}

fn identifier_ok(p: &str) -> bool {
    !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

impl NuGetVersion {
    fn parse(v: &str) -> Option<NuGetVersion> {
        let v = v.trim();
        let (v, build) = match v.split_once('+') {
            Some((v, build)) => (v, Some(build)),
            None => (v, None),
        };
        if build.is_some_and(|b| !b.split('.').all(identifier_ok)) {
            return None;
        }
        let (release, pre) = match v.split_once('-') {
            Some((release, pre)) => (release, Some(pre)),
            None => (v, None),
        };
        let mut numbers = std::array::from_fn(|_| Num::ZERO);
        for (i, part) in release.split('.').enumerate() {
            if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            // A fifth number makes it no NuGet version.
            *numbers.get_mut(i)? = Num::parse(part);
        }
        let mut labels = Vec::new();
        if let Some(pre) = pre {
            for label in pre.split('.') {
                if !identifier_ok(label) {
                    return None;
                }
                labels.push(if label.bytes().all(|c| c.is_ascii_digit()) {
                    NuGetLabel::Num(Num::parse(label))
                } else {
                    NuGetLabel::Str(label.to_ascii_lowercase().into())
                });
            }
        }
        Some(NuGetVersion { release: numbers, pre: labels })
    }
}

impl Ord for NuGetVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.release.cmp(&other.release).then_with(|| {
            match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => {
                    for (a, b) in self.pre.iter().zip(&other.pre) {
                        let o = match (a, b) {
                            (NuGetLabel::Num(x), NuGetLabel::Num(y)) => x.cmp(y),
                            (NuGetLabel::Str(x), NuGetLabel::Str(y)) => x.cmp(y),
                            (NuGetLabel::Num(_), NuGetLabel::Str(_)) => Ordering::Less,
                            (NuGetLabel::Str(_), NuGetLabel::Num(_)) => Ordering::Greater,
                        };
                        if o.is_ne() {
                            return o;
                        }
                    }
                    self.pre.len().cmp(&other.pre.len())
                }
            }
        })
    }
}

impl PartialOrd for NuGetVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

// ---------------------------------------------------------------------------------------------
// Packagist: Composer compares normalised versions with PHP's version_compare. Normalisation
// is approximated by dropping a leading "v", padding the numeric release to four parts and
// lowercasing the stability words; version_compare then splits on digit/letter runs and ranks
// words by prefix: anything else < dev < alpha = a < beta = b < rc < number < pl = p (patch).
// Branch names ("dev-main") have no order and do not parse.

/// Rank of a number among PHP's special forms.
const PHP_NUMBER: i8 = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
enum PhpPart {
    Num(Num),
    Word(i8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ComposerVersion(Vec<PhpPart>);

fn php_word_rank(word: &str) -> i8 {
    const FORMS: [(&str, i8); 9] = [
        ("dev", 0),
        ("alpha", 1),
        ("a", 1),
        ("beta", 2),
        ("b", 2),
        ("rc", 3),
        ("#", PHP_NUMBER),
        ("pl", 5),
        ("p", 5),
    ];
    FORMS.iter().find(|(form, _)| word.starts_with(form)).map_or(-6, |&(_, rank)| rank)
}

impl PhpPart {
    fn rank(&self) -> i8 {
        match self {
            PhpPart::Num(_) => PHP_NUMBER,
            PhpPart::Word(rank) => *rank,
        }
    }
}

impl ComposerVersion {
    fn parse(v: &str) -> Option<ComposerVersion> {
        let v = v.trim();
        let v = v.strip_prefix(['v', 'V']).unwrap_or(v);
        if !v.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let b = v.as_bytes();
        let release_end = span(b, 0, |c| c.is_ascii_digit() || c == b'.');
        let mut parts: Vec<PhpPart> = v[..release_end]
            .split('.')
            .filter(|p| !p.is_empty())
            .map(|p| PhpPart::Num(Num::parse(p)))
            .collect();
        // Composer writes 1.2 as 1.2.0.0, so 1.2 == 1.2.0 there (PHP alone would disagree).
        if parts.len() < 4 {
            parts.resize(4, PhpPart::Num(Num::ZERO));
        }
        let mut i = release_end;
        while let Some(&c) = b.get(i) {
            if c.is_ascii_digit() {
                let end = span(b, i, |c| c.is_ascii_digit());
                parts.push(PhpPart::Num(Num::parse(&v[i..end])));
                i = end;
            } else if c.is_ascii_alphabetic() {
                let end = span(b, i, |c| c.is_ascii_alphabetic());
                let word = v[i..end].to_ascii_lowercase();
                // Composer normalises "-stable" away; PHP would rank it below "dev".
                if word != "stable" {
                    parts.push(PhpPart::Word(php_word_rank(&word)));
                }
                i = end;
            } else {
                i += 1;
            }
        }
        Some(ComposerVersion(parts))
    }
}

impl Ord for ComposerVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        for (a, b) in self.0.iter().zip(&other.0) {
            let o = match (a, b) {
                (PhpPart::Num(x), PhpPart::Num(y)) => x.cmp(y),
                _ => a.rank().cmp(&b.rank()),
            };
            if o.is_ne() {
                return o;
            }
        }
        // PHP decides a longer version by its next part alone: a number makes it greater, a
        // word is weighed against a number.
        let n = self.0.len().min(other.0.len());
        match (self.0.get(n), other.0.get(n)) {
            (Some(PhpPart::Num(_)), _) => Ordering::Greater,
            (Some(word), _) => word.rank().cmp(&PHP_NUMBER),
            (None, Some(PhpPart::Num(_))) => Ordering::Less,
            (None, Some(word)) => PHP_NUMBER.cmp(&word.rank()),
            (None, None) => Ordering::Equal,
        }
    }
}

impl PartialOrd for ComposerVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

// ---------------------------------------------------------------------------------------------
// RPM: [epoch:]version[-release], each compared with rpmvercmp (alphanumeric runs, '~' sorts
// before anything, '^' after the end but before anything else). A missing release sorts below
// any release so that the order stays total (rpm itself treats it as a wildcard).

#[derive(Clone, Debug)]
struct RpmVersion {
    epoch: Num,
    /// "version-release" without the epoch.
    text: Box<str>,
    version_len: usize,
    has_release: bool,
}

impl RpmVersion {
    fn parse(v: &str) -> Option<RpmVersion> {
        let v = v.trim();
        if v.is_empty() || v.contains(char::is_whitespace) {
            return None;
        }
        let (epoch, rest) = match v.split_once(':') {
            Some((e, rest)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => {
                (Num::parse(e), rest)
            }
            Some(_) => return None,
            None => (Num::ZERO, v),
        };
        let (version, release) = match rest.rsplit_once('-') {
            Some((version, release)) => (version, Some(release)),
            None => (rest, None),
        };
        if version.is_empty() || release == Some("") {
            return None;
        }
        Some(RpmVersion {
            epoch,
            text: rest.into(),
            version_len: version.len(),
            has_release: release.is_some(),
        })
    }

    fn version(&self) -> &[u8] {
        self.text.as_bytes().get(..self.version_len).unwrap_or_default()
    }

    fn release(&self) -> Option<&[u8]> {
        self.has_release.then(|| self.text.as_bytes().get(self.version_len + 1..)).flatten()
    }
}

/// rpm's `rpmvercmp`.
fn rpmvercmp(a: &[u8], b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let significant = |c: u8| c.is_ascii_alphanumeric() || c == b'~' || c == b'^';
    let (mut i, mut j) = (0, 0);
    loop {
        i = span(a, i, |c| !significant(c));
        j = span(b, j, |c| !significant(c));
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca == Some(b'^') || cb == Some(b'^') {
            match (ca, cb) {
                (None, _) => return Ordering::Less,
                (_, None) => return Ordering::Greater,
                (Some(x), _) if x != b'^' => return Ordering::Greater,
                (_, Some(y)) if y != b'^' => return Ordering::Less,
                _ => {}
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(ca), Some(_)) = (ca, cb) else {
            break;
        };
        let numeric = ca.is_ascii_digit();
        let class = |c: u8| {
            if numeric { c.is_ascii_digit() } else { c.is_ascii_alphabetic() }
        };
        let (ea, eb) = (span(a, i, class), span(b, j, class));
        if eb == j {
            // Runs of different kinds: a number beats letters.
            return if numeric { Ordering::Greater } else { Ordering::Less };
        }
        let o = if numeric { cmp_digits(&a[i..ea], &b[j..eb]) } else { a[i..ea].cmp(&b[j..eb]) };
        if o.is_ne() {
            return o;
        }
        i = ea;
        j = eb;
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

impl Ord for RpmVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| rpmvercmp(self.version(), other.version()))
            .then_with(|| match (self.release(), other.release()) {
                (Some(a), Some(b)) => rpmvercmp(a, b),
                (a, b) => a.is_some().cmp(&b.is_some()),
            })
    }
}

impl PartialOrd for RpmVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for RpmVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for RpmVersion {}

// ---------------------------------------------------------------------------------------------
// OSV ranges

/// `affected[].ranges[].type` of an OSV record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RangeKind {
    /// Versions are SemVer 2.0, whatever the ecosystem.
    Semver,
    /// Versions follow the ecosystem's own ordering.
    Ecosystem,
    /// Commit hashes; not comparable without the repository, so ignored here.
    Git,
    /// A type this code does not know (a newer schema); ignored like `Git`.
    #[serde(other)]
    Unknown,
}

/// One `affected[].ranges[]` entry of an OSV record; decodes from the record's JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// The `type` field.
    #[serde(rename = "type")]
    pub kind: RangeKind,
    /// The `events` timeline, in any order.
    #[serde(default)]
    pub events: Vec<Event>,
}

/// One `events[]` entry: `{"introduced": "0"}`, `{"fixed": "1.2.3"}`, ...
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// Affected from this version on; "0" means from the start of time.
    Introduced(String),
    /// Not affected from this version on.
    Fixed(String),
    /// Affected up to and including this version.
    LastAffected(String),
    /// The range ends below this version; "*" means no end.
    Limit(String),
}

/// A parsed event of one range; `Introduced(None)` is "0".
#[derive(Clone, Debug)]
enum Point {
    Introduced(Option<Version>),
    Fixed(Version),
    LastAffected(Version),
}

impl Point {
    fn version(&self) -> Option<&Version> {
        match self {
            Point::Introduced(v) => v.as_ref(),
            Point::Fixed(v) | Point::LastAffected(v) => Some(v),
        }
    }
}

#[derive(Clone, Debug)]
struct CompiledRange {
    scheme: Scheme,
    /// Sorted by version, "0" first; equal versions keep the record's order (stable sort).
    points: Vec<Point>,
    /// `None` when the range has no limit or an infinite one.
    limits: Option<Vec<Version>>,
}

impl CompiledRange {
    fn compile(scheme: Scheme, range: &Range) -> Option<CompiledRange> {
        let mut points = Vec::with_capacity(range.events.len());
        let mut limits = Some(Vec::new());
        let mut any_limit = false;
        for event in &range.events {
            match event {
                Event::Introduced(v) if v.trim() == "0" => points.push(Point::Introduced(None)),
                Event::Introduced(v) => points.push(Point::Introduced(Some(scheme.parse(v)?))),
                Event::Fixed(v) => points.push(Point::Fixed(scheme.parse(v)?)),
                Event::LastAffected(v) => points.push(Point::LastAffected(scheme.parse(v)?)),
                Event::Limit(v) => {
                    any_limit = true;
                    if v.contains('*') {
                        limits = None;
                    } else if let Some(limits) = &mut limits {
                        limits.push(scheme.parse(v)?);
                    }
                }
            }
        }
        points.sort_by(|a, b| a.version().cmp(&b.version()));
        Some(CompiledRange { scheme, points, limits: limits.filter(|_| any_limit) })
    }

    /// OSV's `IncludedInRanges` for one range (schema "Evaluation" pseudocode).
    fn includes(&self, v: &Version) -> bool {
        if let Some(limits) = &self.limits
            && !limits.iter().any(|limit| v < limit)
        {
            return false;
        }
        let mut vulnerable = false;
        for point in &self.points {
            match point {
                Point::Introduced(None) => vulnerable = true,
                Point::Introduced(Some(at)) if v >= at => vulnerable = true,
                Point::Fixed(at) if v >= at => vulnerable = false,
                Point::LastAffected(at) if v > at => vulnerable = false,
                _ => {}
            }
        }
        vulnerable
    }
}

/// The ranges of one `affected[]` entry, parsed once for many version checks.
#[derive(Clone, Debug)]
pub struct Matcher {
    ranges: Vec<CompiledRange>,
    /// A non-GIT range could not be used (unknown ecosystem, unparseable event version), so
    /// "not affected" cannot be claimed.
    incomplete: bool,
}

impl Matcher {
    /// Parses `ranges` of an advisory for `ecosystem` (purl type or OSV name).
    pub fn new(ecosystem: &str, ranges: &[Range]) -> Matcher {
        let ecosystem = Scheme::of(ecosystem);
        let mut compiled = Vec::with_capacity(ranges.len());
        let mut incomplete = false;
        for range in ranges {
            let scheme = match range.kind {
                RangeKind::Semver => Some(Scheme::SemVer),
                RangeKind::Ecosystem => ecosystem,
                RangeKind::Git | RangeKind::Unknown => continue,
            };
            match scheme.and_then(|s| CompiledRange::compile(s, range)) {
                Some(range) => compiled.push(range),
                None => incomplete = true,
            }
        }
        Matcher { ranges: compiled, incomplete }
    }

    /// Whether a pre-parsed version is affected; `None` when no usable range decides it.
    ///
    /// A range whose scheme differs from the version's (a SEMVER range in a PyPI record) cannot
    /// decide; use [`Matcher::affects_str`] for those records.
    pub fn affects(&self, version: &Version) -> Option<bool> {
        let mut undecided = self.incomplete;
        for range in &self.ranges {
            if range.scheme != version.scheme() {
                undecided = true;
            } else if range.includes(version) {
                return Some(true);
            }
        }
        (!undecided && !self.ranges.is_empty()).then_some(false)
    }

    /// Whether `version` is affected, parsing it under each range's scheme.
    pub fn affects_str(&self, version: &str) -> Option<bool> {
        let mut undecided = self.incomplete;
        // At most two schemes meet in one record (SEMVER and ECOSYSTEM), so a short list
        // parses the version once per scheme.
        let mut parsed: Vec<(Scheme, Option<Version>)> = Vec::with_capacity(2);
        for range in &self.ranges {
            let v = match parsed.iter().find(|(s, _)| *s == range.scheme) {
                Some((_, v)) => v.as_ref(),
                None => {
                    parsed.push((range.scheme, range.scheme.parse(version)));
                    parsed.last().and_then(|(_, v)| v.as_ref())
                }
            };
            match v {
                Some(v) if range.includes(v) => return Some(true),
                Some(_) => {}
                None => undecided = true,
            }
        }
        (!undecided && !self.ranges.is_empty()).then_some(false)
    }
}

/// Whether `version` of a package in `ecosystem` lies in any of `ranges`, per the OSV schema's
/// evaluation algorithm.
///
/// `Some(false)` only when every non-GIT range could be evaluated and none includes the
/// version; `None` when the version or a range does not parse, the ecosystem is unknown, or
/// there is no non-GIT range at all.
pub fn affected(ecosystem: &str, version: &str, ranges: &[Range]) -> Option<bool> {
    Matcher::new(ecosystem, ranges).affects_str(version)
}

/// The `fixed` versions of the non-GIT ranges, first occurrence order, without duplicates.
pub fn fixed_versions(ranges: &[Range]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for range in ranges {
        if !matches!(range.kind, RangeKind::Semver | RangeKind::Ecosystem) {
            continue;
        }
        for event in &range.events {
            if let Event::Fixed(v) = event
                && !out.contains(v)
            {
                out.push(v.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
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
                assert_eq!(
                    compare(ecosystem, a, b),
                    Some(Ordering::Equal),
                    "{ecosystem}: {a} vs {b}"
                );
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
        assert_less(
            "Go",
            &[("v0.0.0-20210101000000-abcdef123456", "v0.0.1"), ("v1.9.9", "1.10.0")],
        );
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
        assert_eq!(rpmvercmp(b"1.0", b"1.0^"), Ordering::Less);
        assert_eq!(rpmvercmp(b"1.0^", b"1.0.1"), Ordering::Less);
        assert_eq!(rpmvercmp(b"1.0~rc1", b"1.0~rc1~x"), Ordering::Greater);
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
        let both = [range(
            RangeKind::Ecosystem,
            &[introduced("0"), fixed("3.0"), limit("2.0"), limit("1.0")],
        )];
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
}

#[cfg(test)]
mod unicode_tests {
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
