//! NuGet version ordering.
//!
//! NuGet: NuGet.Versioning's VersionComparer. Up to four release numbers (missing ones are 0),
//! SemVer 2.0 pre-release labels compared case-insensitively, build metadata ignored.

use super::*;

#[derive(Clone, Debug, PartialEq, Eq)]
enum NuGetLabel {
    Num(Num),
    /// Lowercased, since NuGet compares labels ignoring case.
    Str(Box<str>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct NuGetVersion {
    release: [Num; 4],
    pre: Vec<NuGetLabel>,
}

fn identifier_ok(p: &str) -> bool {
    !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

impl NuGetVersion {
    pub(super) fn parse(v: &str) -> Option<NuGetVersion> {
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
