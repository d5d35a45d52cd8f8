//! Event time as integer nanoseconds since the Unix epoch (UTC), with a fast RFC 3339 writer.

use std::fmt;

/// A UTC instant with nanosecond precision; cheap to copy, compare and subtract. Its serde form
/// is the bare nanosecond count (state snapshots); people read the RFC 3339 form.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

const NANOS_PER_SEC: i64 = 1_000_000_000;

impl Timestamp {
    /// The instant from seconds and nanoseconds since the epoch, clamped to the representable
    /// range (1677-09-21 to 2262-04-11) for the callers that compute times, not read them.
    pub fn from_secs_nanos(secs: i64, nanos: u32) -> Self {
        let ns = i128::from(secs) * i128::from(NANOS_PER_SEC) + i128::from(nanos);
        Timestamp(ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
    }

    /// The instant, or None when it falls outside 1677-09-21..2262-04-11: a log line dated
    /// year 1 is bad input to set aside, not a time to bend into range.
    pub fn checked_from_secs_nanos(secs: i64, nanos: u32) -> Option<Self> {
        let ns = i128::from(secs) * i128::from(NANOS_PER_SEC) + i128::from(nanos);
        i64::try_from(ns).ok().map(Timestamp)
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        let d =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp::from_secs_nanos(d.as_secs() as i64, d.subsec_nanos())
    }

    /// From a chrono instant in any zone; None when out of range.
    pub fn from_chrono<Tz: chrono::TimeZone>(t: &chrono::DateTime<Tz>) -> Option<Self> {
        Timestamp::checked_from_secs_nanos(t.timestamp(), t.timestamp_subsec_nanos())
    }

    /// Whole seconds since the epoch (floor).
    pub fn secs(self) -> i64 {
        self.0.div_euclid(NANOS_PER_SEC)
    }

    /// Parses an RFC 3339 timestamp such as `2023-07-10T11:42:31Z`.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        chrono::DateTime::parse_from_rfc3339(s).ok().and_then(|t| Timestamp::from_chrono(&t))
    }

    /// Appends the RFC 3339 UTC form, with 0, 3, 6 or 9 fractional digits as needed.
    pub fn write_rfc3339(self, out: &mut Vec<u8>) {
        let secs = self.secs();
        let nanos = self.0.rem_euclid(NANOS_PER_SEC) as u32;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        push_num(out, y.rem_euclid(10_000) as u32, 4);
        out.push(b'-');
        push_num(out, m, 2);
        out.push(b'-');
        push_num(out, d, 2);
        out.push(b'T');
        push_num(out, sod / 3600, 2);
        out.push(b':');
        push_num(out, sod / 60 % 60, 2);
        out.push(b':');
        push_num(out, sod % 60, 2);
        if nanos != 0 {
            out.push(b'.');
            if nanos.is_multiple_of(1_000_000) {
                push_num(out, nanos / 1_000_000, 3);
            } else if nanos.is_multiple_of(1_000) {
                push_num(out, nanos / 1_000, 6);
            } else {
                push_num(out, nanos, 9);
            }
        }
        out.push(b'Z');
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = Vec::with_capacity(32);
        self.write_rfc3339(&mut buf);
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

fn push_num(out: &mut Vec<u8>, mut v: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for i in (0..width).rev() {
        out[start + i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm, valid for all i64
/// days that fit a year in i64, so no calendar library is on the serialization path.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(t: Timestamp) -> String {
        t.to_string()
    }

    #[test]
    fn formats_with_minimal_fraction() {
        assert_eq!(fmt(Timestamp(0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            fmt(Timestamp::from_secs_nanos(1_700_000_000, 123_000_000)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            fmt(Timestamp::from_secs_nanos(1_700_000_000, 123_456_000)),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(
            fmt(Timestamp::from_secs_nanos(1_700_000_000, 1)),
            "2023-11-14T22:13:20.000000001Z"
        );
        assert_eq!(fmt(Timestamp(-1)), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn agrees_with_chrono_across_leap_years() {
        for secs in (-5_000_000_000i64..5_000_000_000).step_by(86_399 * 37) {
            let t = Timestamp::from_secs_nanos(secs, 0);
            let c = chrono::DateTime::from_timestamp(secs, 0)
                .map(|c| c.format("%Y-%m-%dT%H:%M:%SZ").to_string());
            assert_eq!(Some(fmt(t)), c, "secs {secs}");
        }
    }

    #[test]
    fn parses_what_it_writes() {
        let t = Timestamp::from_secs_nanos(1_688_989_351, 500_000_000);
        assert_eq!(Timestamp::parse_rfc3339(&fmt(t)), Some(t));
        assert_eq!(
            Timestamp::parse_rfc3339("2023-07-10T13:42:31+02:00"),
            Some(Timestamp::from_secs_nanos(1_688_989_351, 0))
        );
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
        assert_eq!(Timestamp::parse_rfc3339("0001-01-01T00:00:00Z"), None);
        assert_eq!(Timestamp::parse_rfc3339("9999-01-01T00:00:00Z"), None);
    }

    #[test]
    fn the_extremes_round_trip() {
        for t in [Timestamp(i64::MIN), Timestamp(i64::MAX), Timestamp(0)] {
            assert_eq!(Timestamp::parse_rfc3339(&fmt(t)), Some(t), "{t:?}");
        }
        assert_eq!(Timestamp::from_secs_nanos(i64::MIN / 2, 5), Timestamp(i64::MIN));
    }
}
