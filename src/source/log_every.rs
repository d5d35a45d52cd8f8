//! A log line that can repeat per connection or per datagram (a reset, a failed handshake,
//! an ICMP error) is written at most once per interval, with how many it stands for: a
//! flood of them costs a line every few seconds, not one per event. The clock is passed in.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one line per interval; what is not written is counted into the next one.
#[derive(Debug)]
pub struct LogEvery {
    interval: Duration,
    last: Option<Instant>,
    /// Occurrences since the last line written.
    unlogged: u64,
}

impl LogEvery {
    /// A limiter of one line per `interval`.
    pub const fn new(interval: Duration) -> LogEvery {
        LogEvery { interval, last: None, unlogged: 0 }
    }

    /// One occurrence at `now`: `Some(n)` when a line is due, `n` the occurrences it stands
    /// for (this one included).
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        let due = self.last.is_none_or(|t| now.saturating_duration_since(t) >= self.interval);
        due.then(|| {
            self.last = Some(now);
            std::mem::take(&mut self.unlogged)
        })
    }
}

/// A [`LogEvery`] shared by the tasks of one listener, writing `logwarden: <prefix>: <line>`
/// and, when it stands for more than one, the count.
#[derive(Debug)]
pub struct SharedLog {
    prefix: String,
    every: Mutex<LogEvery>,
}

impl SharedLog {
    /// Lines prefixed `prefix`, at most one per `interval`.
    pub fn new(prefix: String, interval: Duration) -> SharedLog {
        SharedLog { prefix, every: Mutex::new(LogEvery::new(interval)) }
    }

    /// Logs `line` if one is due, else counts it.
    pub fn log(&self, line: impl std::fmt::Display) {
        let due = self.every.lock().map_or(None, |mut e| e.hit(Instant::now()));
        match due {
            Some(1) => eprintln!("logwarden: {}: {line}", self.prefix),
            Some(n) => {
                eprintln!("logwarden: {}: {line} ({n} like it since the last report)", self.prefix)
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_counting_what_it_held_back() {
        let mut l = LogEvery::new(Duration::from_secs(10));
        let t = Instant::now();
        assert_eq!(l.hit(t), Some(1));
        let held: Vec<_> = (1..=5).map(|s| l.hit(t + Duration::from_secs(s))).collect();
        assert_eq!(held, [None; 5]);
        assert_eq!(l.hit(t + Duration::from_secs(10)), Some(6));
        assert_eq!(l.hit(t + Duration::from_secs(19)), None);
        assert_eq!(l.hit(t + Duration::from_secs(25)), Some(2));
    }
}
