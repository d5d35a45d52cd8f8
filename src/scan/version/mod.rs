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

mod apk;
mod composer;
mod gem;
mod maven;
mod nuget;
mod range;
mod rpm;

use apk::ApkVersion;
use composer::ComposerVersion;
use gem::GemVersion;
use maven::MavenVersion;
use nuget::NuGetVersion;
pub use range::{Event, Matcher, Range, RangeKind, affected, fixed_versions};
use rpm::RpmVersion;

#[cfg(test)]
mod tests;
