//! Alpine apk version ordering.
//!
//! Alpine: apk-tools' token comparison, `digit{.digit}...{letter}{_suffix{number}}...{~hash}
//! {-r#}`, with the suffix order alpha < beta < pre < rc < (none) < cvs < svn < git < hg < p.
//! Components after a '.' that start with '0' compare as strings (the Gentoo rule of the
//! rewritten apk-tools tokenizer); the older tokenizer weighed them by their count of zeros,
//! which disagrees only on padded oddities such as 1.05 against 1.045. Digits straight after the
//! letter ("3.3.3p1"), which the rewrite rejects but older apk-tools accepts, read as a plain
//! number rather than making the version unparseable.

use super::*;

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
pub(super) struct ApkVersion {
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
    pub(super) fn parse(v: &str) -> Option<ApkVersion> {
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
