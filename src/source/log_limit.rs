//! A log line that may repeat per connection, file or record, printed at most once per
//! interval: the ones held back are counted and said with the next one that is printed, so
//! a flood of bad input costs a metric increment each, not a line of standard error each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Allows one line per `every_secs`; lock-free, so it can be a `static` shared by every task
/// of a listener, and cheap enough to ask on every occurrence.
#[derive(Debug)]
pub struct LogLimit {
    every_secs: u64,
    /// Seconds since the epoch from which the next line is allowed.
    next: AtomicU64,
    /// Lines held back since the last one printed.
    held: AtomicU64,
}

impl LogLimit {
    /// One line per `every_secs` seconds (at least one).
    pub const fn new(every_secs: u64) -> LogLimit {
        let every_secs = if every_secs == 0 { 1 } else { every_secs };
        LogLimit { every_secs, next: AtomicU64::new(0), held: AtomicU64::new(0) }
    }

    /// `Some(held)` when a line may be printed now, with how many were held back since the
    /// last one; `None` (and counted) otherwise.
    pub fn allow(&self) -> Option<u64> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.allow_at(now)
    }

    /// [`LogLimit::allow`] at `now` (seconds): the clock is a parameter so tests need no
    /// sleeps. A clock stepping back only delays the next line.
    pub fn allow_at(&self, now: u64) -> Option<u64> {
        let next = self.next.load(Ordering::Relaxed);
        if now >= next
            && self
                .next
                .compare_exchange(
                    next,
                    now.saturating_add(self.every_secs),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.held.swap(0, Ordering::AcqRel));
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// `" (N more held back since the last message)"`, or nothing for N = 0: the tail of a line
/// printed through a [`LogLimit`].
pub fn held_back(n: u64) -> String {
    if n == 0 { String::new() } else { format!(" ({n} more like it held back since the last)") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_the_held_ones_are_counted() {
        let limit = LogLimit::new(60);
        assert_eq!(limit.allow_at(1000), Some(0));
        for t in 1000..1059 {
            assert_eq!(limit.allow_at(t), None, "at {t}");
        }
        // 59 held back, said with the next line.
        assert_eq!(limit.allow_at(1060), Some(59));
        assert_eq!(limit.allow_at(1061), None);
        assert_eq!(limit.allow_at(5000), Some(1));
        assert_eq!(held_back(0), "");
        assert_eq!(held_back(3), " (3 more like it held back since the last)");
    }

    #[test]
    fn threads_asking_at_once_print_one_line() {
        let limit = std::sync::Arc::new(LogLimit::new(3600));
        let allowed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let limit = &limit;
                    s.spawn(move || (0..1000).filter(|_| limit.allow_at(7).is_some()).count())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        assert_eq!(allowed, 1);
        assert_eq!(limit.held.load(Ordering::Relaxed), 3999);
    }
}
