//! Composer (PHP) version ordering.
//!
//! Packagist: Composer compares normalised versions with PHP's version_compare. Normalisation
//! is approximated by dropping a leading "v", padding the numeric release to four parts and
//! lowercasing the stability words; version_compare then splits on digit/letter runs and ranks
//! words by prefix: anything else < dev < alpha = a < beta = b < rc < number < pl = p (patch).
//! Branch names ("dev-main") have no order and do not parse.

use super::*;

/// Rank of a number among PHP's special forms.
const PHP_NUMBER: i8 = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
enum PhpPart {
    Num(Num),
    Word(i8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ComposerVersion(Vec<PhpPart>);

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
    pub(super) fn parse(v: &str) -> Option<ComposerVersion> {
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
