//! When stored scans are re-evaluated against new advisory data: `daily HH:MM` or a five-field
//! cron expression, in an IANA time zone.
//!
//! Daylight saving: a local time that does not exist on a day (spring-forward gap) runs at the
//! first instant after the gap, e.g. `daily 02:30` in Europe/Berlin on the spring-forward day
//! runs at 03:00 local; an ambiguous local time (fall-back) runs once, at the earlier instant.
//! That holds for every expression: unlike Vixie cron, `*/15 * * * *` does not run again
//! during the repeated hour (a re-evaluation has no reason to run twice in it).
//!
//! The syntax is Vixie cron's: lists, ranges, steps, `*`, month and weekday names, Sunday as 0
//! or 7, and when both day-of-month and day-of-week are restricted a day matching either runs.

use std::fmt;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Days searched before deciding a cron never fires: 8 years covers a 29 February across the
/// non-leap century years (2100).
const SEARCH_DAYS: u64 = 8 * 366 + 1;

/// When the re-evaluation runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    text: String,
    tz: Tz,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Vixie cron ORs the day fields when both are restricted, so whether each was `*` matters.
    days_star: bool,
    weekdays_star: bool,
}

/// Why a schedule does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// `daily` without a valid 24-hour `HH:MM`.
    #[error("schedule {text:?}: expected `daily HH:MM` with a 24-hour time, such as `daily 02:30`")]
    Daily {
        /// The text given.
        text: String,
    },
    /// Neither `daily` nor five fields.
    #[error(
        "schedule {text:?} has {found} fields: expected `daily HH:MM` or a five-field cron \
         expression (minute hour day-of-month month day-of-week)"
    )]
    FieldCount {
        /// The text given.
        text: String,
        /// How many whitespace-separated fields it has.
        found: usize,
    },
    /// A cron field that does not parse or is out of range.
    #[error("schedule {text:?}: cron {field} field {value:?} is invalid: expected {expected}")]
    Field {
        /// The text given.
        text: String,
        /// Which field (`minute`, `hour`, ...).
        field: &'static str,
        /// The field as written.
        value: String,
        /// What the field accepts.
        expected: &'static str,
    },
}

/// A cron field's name, bounds, accepted names (numbered from `min`) and description.
struct FieldSpec(&'static str, u32, u32, &'static [&'static str], &'static str);

const MONTHS: &[&str] =
    &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const FIELDS: [FieldSpec; 5] = [
    FieldSpec("minute", 0, 59, &[], "0-59, `*`, lists, ranges or steps"),
    FieldSpec("hour", 0, 23, &[], "0-23, `*`, lists, ranges or steps"),
    FieldSpec("day-of-month", 1, 31, &[], "1-31, `*`, lists, ranges or steps"),
    FieldSpec("month", 1, 12, MONTHS, "1-12 or jan-dec, `*`, lists, ranges or steps"),
    FieldSpec(
        "day-of-week",
        0,
        7,
        WEEKDAYS,
        "0-7 (0 and 7 are Sunday) or sun-sat, `*`, lists, ranges or steps",
    ),
];

impl Schedule {
    /// Parses `daily HH:MM` or a five-field cron expression, in zone `tz`.
    pub fn parse(text: &str, tz: Tz) -> Result<Schedule, ScheduleError> {
        let trimmed = text.trim();
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        if words.first().is_some_and(|w| w.eq_ignore_ascii_case("daily")) {
            let (hour, minute) = words
                .get(1)
                .filter(|_| words.len() == 2)
                .and_then(|t| parse_hh_mm(t))
                .ok_or_else(|| ScheduleError::Daily { text: text.to_owned() })?;
            let all = |spec: &FieldSpec| range_mask(spec.1, spec.2, 1);
            return Ok(Schedule {
                text: trimmed.to_owned(),
                tz,
                minutes: 1 << minute,
                hours: 1 << hour,
                days: all(&FIELDS[2]),
                months: all(&FIELDS[3]),
                weekdays: all(&FIELDS[4]),
                days_star: true,
                weekdays_star: true,
            });
        }
        if words.len() != 5 {
            return Err(ScheduleError::FieldCount { text: text.to_owned(), found: words.len() });
        }
        let mut masks = [0u64; 5];
        for ((mask, word), spec) in masks.iter_mut().zip(&words).zip(&FIELDS) {
            *mask = parse_field(word, spec).ok_or_else(|| ScheduleError::Field {
                text: text.to_owned(),
                field: spec.0,
                value: (*word).to_owned(),
                expected: spec.4,
            })?;
        }
        let [minutes, hours, days, months, weekdays] = masks;
        // Sunday may be written 7; fold it onto 0 so lookups use `num_days_from_sunday`.
        let weekdays = (weekdays | (weekdays >> 7)) & 0x7f;
        Ok(Schedule {
            text: trimmed.to_owned(),
            tz,
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_star: words[2].starts_with('*'),
            weekdays_star: words[4].starts_with('*'),
        })
    }

    /// The first run strictly after `after`; None only for a cron that never fires (`0 0 31 2 *`).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Starting from the local date of `after` is enough: a run's instant never decreases as
        // its local time increases, so earlier dates cannot run after `after`.
        let start = after.with_timezone(&self.tz).date_naive();
        (0..SEARCH_DAYS)
            .filter_map(|n| start.checked_add_days(Days::new(n)))
            .filter(|date| self.runs_on(*date))
            .find_map(|date| {
                bits(self.hours)
                    .flat_map(|h| bits(self.minutes).map(move |m| (h, m)))
                    .filter_map(|(h, m)| date.and_hms_opt(h, m, 0))
                    .filter_map(|local| self.first_instant_at_or_after(local))
                    .find(|run| *run > after)
            })
    }

    fn runs_on(&self, date: NaiveDate) -> bool {
        let day = self.days & (1 << date.day()) != 0;
        let weekday = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        let day_ok = match (self.days_star, self.weekdays_star) {
            (false, false) => day || weekday,
            _ => day && weekday,
        };
        day_ok && self.months & (1 << date.month()) != 0
    }

    /// The earliest instant whose local time is `local` or later: the earlier instant of an
    /// ambiguous time, the end of the gap for a skipped one.
    fn first_instant_at_or_after(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        if let Some(t) = self.tz.from_local_datetime(&local).earliest() {
            return Some(t.with_timezone(&Utc));
        }
        // No offset exceeds a day, so the local time two days either side of `local` read as UTC
        // brackets the gap; bisect to the second where the local clock passes `local`.
        let naive_utc = local.and_utc().timestamp();
        let (mut lo, mut hi) = (naive_utc - 2 * 86_400, naive_utc + 2 * 86_400);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let at = DateTime::from_timestamp(mid, 0)?;
            if at.with_timezone(&self.tz).naive_local() >= local {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        DateTime::from_timestamp(hi, 0)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The set bit positions of `mask`, ascending.
fn bits(mask: u64) -> impl Iterator<Item = u32> {
    (0..64).filter(move |i| mask & (1 << i) != 0)
}

fn range_mask(lo: u32, hi: u32, step: u32) -> u64 {
    (lo..=hi).step_by(step as usize).fold(0, |mask, i| mask | 1 << i)
}

fn parse_hh_mm(time: &str) -> Option<(u32, u32)> {
    let (h, m) = time.split_once(':')?;
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !(1..=2).contains(&h.len()) || m.len() != 2 || !all_digits(h) || !all_digits(m) {
        return None;
    }
    let (h, m) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some((h, m))
}

/// One cron field as a bitmask of the values it allows; None if it is invalid.
fn parse_field(field: &str, &FieldSpec(_, min, max, names, _): &FieldSpec) -> Option<u64> {
    let value = |s: &str| -> Option<u32> {
        let n = match names.iter().position(|name| name.eq_ignore_ascii_case(s)) {
            Some(i) => u32::try_from(i).ok()? + min,
            None if s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok()?,
            None => return None,
        };
        (min..=max).contains(&n).then_some(n)
    };
    field.split(',').try_fold(0, |mask, item| {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step.parse::<u32>().ok().filter(|s| *s > 0)?)),
            None => (item, None),
        };
        let (lo, hi) = match range.split_once('-') {
            _ if range == "*" => (min, max),
            Some((lo, hi)) => (value(lo)?, value(hi)?),
            // Vixie cron reads `a/n` as `a-max/n`.
            None if step.is_some() => (value(range)?, max),
            None => (value(range)?, value(range)?),
        };
        (lo <= hi).then(|| mask | range_mask(lo, hi, step.unwrap_or(1)))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use chrono_tz::America::New_York;
    use chrono_tz::Europe::Berlin;
    use chrono_tz::UTC;

    fn utc(s: &str) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap().and_utc()
    }

    fn next(text: &str, tz: Tz, after: &str) -> Option<DateTime<Utc>> {
        Schedule::parse(text, tz).unwrap().next_after(utc(after))
    }

    #[test]
    fn daily_utc_before_at_and_after_the_time() {
        let s = "daily 02:30";
        assert_eq!(next(s, UTC, "2024-05-01 01:00"), Some(utc("2024-05-01 02:30")));
        assert_eq!(next(s, UTC, "2024-05-01 02:30"), Some(utc("2024-05-02 02:30")));
        assert_eq!(next(s, UTC, "2024-05-01 03:00"), Some(utc("2024-05-02 02:30")));
        assert_eq!(next(s, UTC, "2024-12-31 23:59"), Some(utc("2025-01-01 02:30")));
    }

    #[test]
    fn daily_keeps_local_time_across_new_york_dst_changes() {
        let s = "daily 09:00";
        // 09:00 EST then 09:00 EDT (spring forward on 2024-03-10).
        assert_eq!(next(s, New_York, "2024-03-09 14:00"), Some(utc("2024-03-10 13:00")));
        // 09:00 EDT then 09:00 EST (fall back on 2024-11-03).
        assert_eq!(next(s, New_York, "2024-11-02 13:00"), Some(utc("2024-11-03 14:00")));
    }

    #[test]
    fn spring_forward_gap_runs_when_the_gap_ends() {
        let berlin = Schedule::parse("daily 02:30", Berlin).unwrap();
        let run = berlin.next_after(utc("2024-03-30 12:00")).unwrap();
        assert_eq!(run.with_timezone(&Berlin).to_string(), "2024-03-31 03:00:00 CEST");
        assert_eq!(berlin.next_after(run), Some(utc("2024-04-01 00:30")));
        let ny = Schedule::parse("30 2,3 * * *", New_York).unwrap();
        let run = ny.next_after(utc("2024-03-10 00:00")).unwrap();
        assert_eq!(run, utc("2024-03-10 07:00"));
        assert_eq!(ny.next_after(run), Some(utc("2024-03-10 07:30")));
        // Both 02:00 and 03:00 land on 03:00 EDT; it runs once.
        let ny = Schedule::parse("0 2,3 * * *", New_York).unwrap();
        let run = ny.next_after(utc("2024-03-10 00:00")).unwrap();
        assert_eq!(run, utc("2024-03-10 07:00"));
        assert_eq!(ny.next_after(run), Some(utc("2024-03-11 06:00")));
    }

    #[test]
    fn fall_back_ambiguity_runs_once_at_the_earlier_instant() {
        let s = Schedule::parse("daily 01:30", New_York).unwrap();
        let run = s.next_after(utc("2024-11-02 12:00")).unwrap();
        assert_eq!(run, utc("2024-11-03 05:30")); // 01:30 EDT
        assert_eq!(s.next_after(run), Some(utc("2024-11-04 06:30"))); // not 01:30 EST
    }

    #[test]
    fn weekday_step_skips_the_weekend() {
        assert_eq!(utc("2024-03-01 23:50").weekday(), chrono::Weekday::Fri);
        assert_eq!(next("*/15 * * * 1-5", UTC, "2024-03-01 23:50"), Some(utc("2024-03-04 00:00")));
        let run = next("*/15 * * * mon-fri", UTC, "2024-03-04 00:00");
        assert_eq!(run, Some(utc("2024-03-04 00:15")));
    }

    #[test]
    fn sunday_is_zero_and_seven() {
        let sunday = Some(utc("2024-03-03 02:00"));
        assert_eq!(next("0 2 * * 0", UTC, "2024-03-01 12:00"), sunday);
        assert_eq!(next("0 2 * * 7", UTC, "2024-03-01 12:00"), sunday);
        assert_eq!(next("0 2 * * sun", UTC, "2024-03-01 12:00"), sunday);
    }

    #[test]
    fn day_fields_or_when_both_restricted() {
        // 2024-03-04 is a Monday, before the 15th.
        assert_eq!(next("0 0 15 * mon", UTC, "2024-03-02 00:00"), Some(utc("2024-03-04 00:00")));
        assert_eq!(next("0 0 15 mar *", UTC, "2024-03-02 00:00"), Some(utc("2024-03-15 00:00")));
    }

    #[test]
    fn never_and_far_off_matches() {
        assert_eq!(next("0 0 31 2 *", UTC, "2024-01-01 00:00"), None);
        assert_eq!(next("0 0 29 2 *", UTC, "2024-03-01 00:00"), Some(utc("2028-02-29 00:00")));
        assert_eq!(next("0 0 29 2 *", UTC, "2096-03-01 00:00"), Some(utc("2104-02-29 00:00")));
    }

    #[test]
    fn displays_as_written() {
        for text in ["daily 02:30", "*/15 * * * 1-5", "0 9 1,15 jan-mar/2 *"] {
            assert_eq!(Schedule::parse(text, UTC).unwrap().to_string(), text);
        }
    }

    #[test]
    fn bad_inputs_name_the_text() {
        for (text, expected) in [
            ("daily 25:00", "daily HH:MM"),
            ("daily", "daily HH:MM"),
            ("daily 2:3", "daily HH:MM"),
            ("", "five-field cron"),
            ("0 2 * *", "five-field cron"),
            ("61 * * * *", "0-59"),
            ("* * * * 8", "0-7"),
            ("*/0 * * * *", "0-59"),
            ("5-1 * * * *", "0-59"),
            ("* * 0 * *", "1-31"),
            ("* * * foo *", "jan-dec"),
        ] {
            let err = Schedule::parse(text, UTC).unwrap_err().to_string();
            assert!(err.contains(&format!("{text:?}")), "{err}");
            assert!(err.contains(expected), "{err}");
        }
    }
}
