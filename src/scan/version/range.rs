//! OSV `affected[].ranges`: decoding, and evaluation against parsed versions.

use super::*;

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
