//! RPM version ordering (`rpmvercmp`).
//!
//! RPM: [epoch:]version[-release], each compared with rpmvercmp (alphanumeric runs, '~' sorts
//! before anything, '^' after the end but before anything else). A missing release sorts below
//! any release so that the order stays total (rpm itself treats it as a wildcard).

use super::*;

#[derive(Clone, Debug)]
pub(super) struct RpmVersion {
    epoch: Num,
    /// "version-release" without the epoch.
    text: Box<str>,
    version_len: usize,
    has_release: bool,
}

impl RpmVersion {
    pub(super) fn parse(v: &str) -> Option<RpmVersion> {
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
pub(super) fn rpmvercmp(a: &[u8], b: &[u8]) -> Ordering {
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
