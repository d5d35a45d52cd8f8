//! RubyGems version ordering.
//!
//! RubyGems: Gem::Version. "-" reads as ".pre.", segments are digit or letter runs, any letter
//! segment makes a pre-release, and trailing zeros of the release and of the pre-release part
//! are dropped before a zero-padded comparison.

use super::*;

#[derive(Clone, Debug, PartialEq, Eq)]
enum GemSegment {
    Num(Num),
    Str(Box<str>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct GemVersion(Vec<GemSegment>);

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
    pub(super) fn parse(v: &str) -> Option<GemVersion> {
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
