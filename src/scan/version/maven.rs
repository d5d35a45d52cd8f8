//! Maven's `ComparableVersion` ordering.
//!
//! Maven: org.apache.maven.artifact.versioning.ComparableVersion as of Maven 3.9 (trailing
//! "null" items trimmed per sub-list, ".X" qualifiers treated as "-X", "release" = "ga").

use super::*;

#[derive(Clone, Debug)]
pub(super) struct MavenVersion(Vec<MavenItem>);

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
    pub(super) fn parse(v: &str) -> Option<MavenVersion> {
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
