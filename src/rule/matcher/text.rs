//! Sigma text patterns (`*`, `?`, escapes) compiled to byte comparisons or a regex, matched case-insensitively.

use regex::{Regex, RegexBuilder};

/// A case-insensitive Sigma wildcard pattern.
///
/// ASCII patterns with at most a leading and a trailing `*` become byte comparisons with ASCII
/// case folding; anything else (`?`, inner `*`, non-ASCII letters that need Unicode folding)
/// becomes an anchored regex, built here once. The ASCII path folds ASCII case only, so it does
/// not equate `k` with the Kelvin sign (or `s` with `ſ`) as the regex's Unicode folding would;
/// keeping the hot path on bytes is worth that corner.
#[derive(Clone, Debug)]
pub(super) enum Text {
    /// `*`: any value.
    Any,
    /// The remaining variants hold the ASCII literal, lowercased.
    Equals(Box<[u8]>),
    Prefix(Box<[u8]>),
    Suffix(Box<[u8]>),
    Contains(Box<[u8]>),
    Regex(Regex),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Tok {
    Lit(char),
    Star,
    One,
}

/// Splits a Sigma value into literals and wildcards: `\*`, `\?` and `\\` are literals, any
/// other backslash is itself (so Windows paths need no doubling).
pub(super) fn tokens(v: &str) -> Vec<Tok> {
    let mut out = Vec::with_capacity(v.len());
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push(Tok::Star),
            '?' => out.push(Tok::One),
            '\\' => match chars.peek() {
                Some(&n @ ('*' | '?' | '\\')) => {
                    chars.next();
                    out.push(Tok::Lit(n));
                }
                _ => out.push(Tok::Lit('\\')),
            },
            c => out.push(Tok::Lit(c)),
        }
    }
    out
}

impl Text {
    pub(super) fn compile(
        value: &str,
        star_before: bool,
        star_after: bool,
    ) -> Result<Text, regex::Error> {
        let mut toks = tokens(value);
        if star_before {
            toks.insert(0, Tok::Star);
        }
        if star_after {
            toks.push(Tok::Star);
        }
        toks.dedup_by(|a, b| *a == Tok::Star && *b == Tok::Star);
        let simple = toks.iter().all(|t| match t {
            Tok::Lit(c) => c.is_ascii(),
            Tok::Star => true,
            Tok::One => false,
        });
        if simple {
            let lead = toks.first() == Some(&Tok::Star);
            let trail = toks.len() > 1 && toks.last() == Some(&Tok::Star);
            let lits: Vec<Box<[u8]>> = toks
                .split(|t| *t == Tok::Star)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.iter()
                        .filter_map(|t| match t {
                            Tok::Lit(c) => Some(c.to_ascii_lowercase() as u8),
                            _ => None,
                        })
                        .collect()
                })
                .collect();
            let mut lits = lits.into_iter();
            match (lits.next(), lits.next(), lead, trail) {
                (None, _, false, _) => return Ok(Text::Equals(Box::default())),
                (None, _, true, _) => return Ok(Text::Any),
                (Some(l), None, false, false) => return Ok(Text::Equals(l)),
                (Some(l), None, false, true) => return Ok(Text::Prefix(l)),
                (Some(l), None, true, false) => return Ok(Text::Suffix(l)),
                (Some(l), None, true, true) => return Ok(Text::Contains(l)),
                _ => {}
            }
        }
        let mut re = String::with_capacity(value.len() * 2 + 8);
        re.push('^');
        let mut utf8 = [0u8; 4];
        for t in &toks {
            match t {
                Tok::Lit(c) => re.push_str(&regex::escape(c.encode_utf8(&mut utf8))),
                Tok::Star => re.push_str(".*"),
                Tok::One => re.push('.'),
            }
        }
        re.push('$');
        RegexBuilder::new(&re)
            .case_insensitive(true)
            .dot_matches_new_line(true)
            .build()
            .map(Text::Regex)
    }

    pub(super) fn matches(&self, s: &str) -> bool {
        let h = s.as_bytes();
        match self {
            Text::Any => true,
            Text::Equals(p) => h.eq_ignore_ascii_case(p),
            Text::Prefix(p) => h.get(..p.len()).is_some_and(|x| x.eq_ignore_ascii_case(p)),
            Text::Suffix(p) => h.len() >= p.len() && h[h.len() - p.len()..].eq_ignore_ascii_case(p),
            Text::Contains(p) => contains_ascii_ci(h, p),
            Text::Regex(r) => r.is_match(s),
        }
    }
}

/// Whether `hay` contains `needle` (ASCII, lowercase) ignoring ASCII case: memchr finds
/// candidates for the first byte in either case, then the rest is compared in place.
pub(super) fn contains_ascii_ci(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let Some(last) = hay.len().checked_sub(needle.len()) else {
        return false;
    };
    let upper = first.to_ascii_uppercase();
    let mut start = 0;
    while start <= last {
        let Some(off) = memchr::memchr2(first, upper, &hay[start..=last]) else {
            return false;
        };
        let i = start + off;
        if hay[i + 1..i + needle.len()].eq_ignore_ascii_case(rest) {
            return true;
        }
        start = i + 1;
    }
    false
}
