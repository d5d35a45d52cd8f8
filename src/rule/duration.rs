//! Durations as rule and config files write them (`30s`, `5m`, `1h30m`, `7d`).

use crate::event::Timestamp;

/// A span of event time in nanoseconds, as rules use it for windows and lateness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub i64);

impl Span {
    /// The span in nanoseconds.
    pub fn nanos(self) -> i64 {
        self.0
    }

    /// Whole seconds, rounded down.
    pub fn secs(self) -> i64 {
        self.0 / 1_000_000_000
    }

    /// A span of whole seconds.
    pub fn from_secs(s: i64) -> Span {
        Span(s.saturating_mul(1_000_000_000))
    }

    /// `t - self`, saturating at the ends of time.
    pub fn before(self, t: Timestamp) -> Timestamp {
        Timestamp(t.0.saturating_sub(self.0))
    }

    /// `t + self`, saturating at the ends of time.
    pub fn after(self, t: Timestamp) -> Timestamp {
        Timestamp(t.0.saturating_add(self.0))
    }
}

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad duration `{text}`: {reason} (write e.g. 30s, 5m, 1h30m, 7d)")]
pub struct DurationError {
    /// The text as written.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Parses `30s`, `5m`, `1h30m`, `2h 15m`, `7d`, `500ms`. A bare number is refused: `10` could
/// be seconds or minutes, and a rule that guesses wrong is silently useless.
pub fn parse(text: &str) -> Result<Span, DurationError> {
    let err = |reason: &str| DurationError { text: text.to_owned(), reason: reason.to_owned() };
    let t = text.trim();
    if t.is_empty() {
        return Err(err("empty"));
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err("a unit is required"));
    }
    let d = humantime::parse_duration(t).map_err(|e| err(&e.to_string()))?;
    let nanos = i64::try_from(d.as_nanos()).map_err(|_| err("too long"))?;
    Ok(Span(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(parse("30s"), Ok(Span::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Span::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Span::from_secs(5400)));
        assert_eq!(parse("2h 15m"), Ok(Span::from_secs(8100)));
        assert_eq!(parse("7d"), Ok(Span::from_secs(7 * 86400)));
        assert_eq!(parse("500ms"), Ok(Span(500_000_000)));
    }

    #[test]
    fn refuses_bad_text_and_says_what_to_write() {
        for bad in ["", "10", "5 parsecs", "m5", "-5m"] {
            let e = parse(bad).unwrap_err();
            assert!(e.to_string().contains("write e.g. 30s"), "{bad}: {e}");
        }
        assert_eq!(parse("10").unwrap_err().reason, "a unit is required");
    }
}
