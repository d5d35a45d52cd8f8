//! The per-source ledger: records in = records parsed + records quarantined, with the first
//! reasons kept so an operator can find the bad input.

use std::collections::BTreeMap;
use std::fmt;

/// Quarantine samples kept per source; the counts by reason are always complete.
pub const MAX_SAMPLES: usize = 5;

/// One record set aside, located precisely.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    /// `line` or `record`, whichever `number` counts.
    pub unit: &'static str,
    /// 1-based line or record number.
    pub number: u64,
    /// Byte offset in the (decompressed) stream.
    pub offset: u64,
    /// The fixed reason label (`invalid_utf8`, `line_too_long`, ...).
    pub kind: &'static str,
    /// The full reason.
    pub detail: String,
}

/// Accounting for one source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    /// The file path or listener name.
    pub source: String,
    /// The format it was read as.
    pub format: &'static str,
    /// Records framed (parsed + quarantined).
    pub records: u64,
    /// Events emitted (may exceed records: `message repeated N times`).
    pub events: u64,
    /// Records set aside.
    pub quarantined: u64,
    /// Events whose line names its peer in two ways the grammar cannot tell apart (client
    /// text holding an address): emitted without `source.ip`, the candidates in `related.ip`.
    pub ambiguous: u64,
    /// Events `message repeated N times` lines named beyond the parser's cap
    /// (`parse::syslog::MAX_REPEAT` per line): counted here instead of made.
    pub repeats_capped: u64,
    /// Quarantined records by reason.
    pub reasons: BTreeMap<&'static str, u64>,
    /// The first few quarantined records.
    pub samples: Vec<Quarantined>,
}

impl Ledger {
    /// An empty ledger for a source.
    pub fn new(source: impl Into<String>, format: &'static str) -> Self {
        Ledger { source: source.into(), format, ..Ledger::default() }
    }

    /// Counts a record set aside (the caller has already counted it in `records`).
    pub fn quarantine(&mut self, q: Quarantined) {
        self.quarantined += 1;
        *self.reasons.entry(q.kind).or_default() += 1;
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(q);
        }
    }
}

impl fmt::Display for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}]: {} records read, {} events emitted, {} quarantined",
            self.source, self.format, self.records, self.events, self.quarantined
        )?;
        if self.ambiguous > 0 {
            write!(f, ", {} with an ambiguous peer (source.ip left out)", self.ambiguous)?;
        }
        if self.repeats_capped > 0 {
            // The cap is the parser's (parse::syslog::MAX_REPEAT, above this layer).
            write!(
                f,
                ", {} repeats not made (`message repeated` beyond the per-line cap)",
                self.repeats_capped
            )?;
        }
        if !self.reasons.is_empty() {
            let reasons: Vec<String> =
                self.reasons.iter().map(|(k, n)| format!("{k}={n}")).collect();
            write!(f, " ({})", reasons.join(", "))?;
        }
        for q in &self.samples {
            write!(
                f,
                "\n  {}:{} {} (byte {}): {}",
                self.source, q.number, q.unit, q.offset, q.detail
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reasons_and_keeps_first_samples() {
        let mut l = Ledger::new("auth.log", "syslog");
        l.records = 10;
        l.events = 3;
        for n in 0..7 {
            l.quarantine(Quarantined {
                unit: "line",
                number: n + 1,
                offset: n * 10,
                kind: if n % 2 == 0 { "invalid_utf8" } else { "line_too_long" },
                detail: format!("bad {n}"),
            });
        }
        assert_eq!((l.records, l.quarantined), (10, 7));
        assert_eq!(l.reasons.get("invalid_utf8"), Some(&4));
        assert_eq!(l.samples.len(), MAX_SAMPLES);
        let text = l.to_string();
        assert!(text.starts_with("auth.log [syslog]: 10 records read, 3 events emitted, 7 quarantined (invalid_utf8=4, line_too_long=3)"));
        assert!(text.contains("\n  auth.log:1 line (byte 0): bad 0"));
    }

    #[test]
    fn repeats_beyond_the_cap_are_said() {
        let mut l = Ledger::new("auth.log", "syslog");
        (l.records, l.events, l.repeats_capped) = (1, 1000, 4_294_966_295);
        assert_eq!(
            l.to_string(),
            "auth.log [syslog]: 1 records read, 1000 events emitted, 0 quarantined, 4294966295 \
             repeats not made (`message repeated` beyond the per-line cap)"
        );
    }
}
