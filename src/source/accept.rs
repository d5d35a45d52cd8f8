//! What a listener does when `accept` fails: wait, longer each time it fails again (out of
//! file descriptors, every retry fails until one is freed), and say so in the log at most
//! once per interval with how many failures it stands for, rather than once per retry.

use std::time::{Duration, Instant};

use super::log_every::LogEvery;

/// The first wait after a failure.
pub const FIRST_DELAY: Duration = Duration::from_millis(5);
/// The longest wait: a listener out of descriptors looks again at least this often.
pub const MAX_DELAY: Duration = Duration::from_secs(1);
/// At most one log line per this long.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The backoff and log limiter of one accept loop; a pure state machine, the clock passed in.
#[derive(Debug)]
pub struct AcceptBackoff {
    delay: Duration,
    log: LogEvery,
}

impl Default for AcceptBackoff {
    fn default() -> AcceptBackoff {
        AcceptBackoff { delay: FIRST_DELAY, log: LogEvery::new(LOG_INTERVAL) }
    }
}

/// What to do after a failed `accept`.
#[derive(Debug, PartialEq, Eq)]
pub struct Retry {
    /// How long to wait before accepting again (zero: at once).
    pub wait: Duration,
    /// A line for the log, when one is due.
    pub log: Option<String>,
}

/// Whether `e` says the process (or system) is out of something that only time frees: then
/// retrying at once would fail again. Other errors concern one connection (reset before it
/// was accepted) and the next `accept` may well succeed.
pub fn is_exhaustion(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

impl AcceptBackoff {
    /// A failed accept at `now`.
    pub fn failed(&mut self, e: &std::io::Error, now: Instant) -> Retry {
        let wait = if is_exhaustion(e) {
            let wait = self.delay;
            self.delay = (self.delay * 2).min(MAX_DELAY);
            wait
        } else {
            Duration::ZERO
        };
        let log = self.log.hit(now).map(|n| match n {
            1 => format!("accept: {e}; retrying, waiting up to 1 s"),
            n => format!("accept: {e} ({n} failures since the last report)"),
        });
        Retry { wait, log }
    }

    /// A successful accept: the next failure waits the shortest time again.
    pub fn succeeded(&mut self) {
        self.delay = FIRST_DELAY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emfile() -> std::io::Error {
        std::io::Error::from_raw_os_error(libc::EMFILE)
    }

    #[test]
    fn exhaustion_waits_longer_each_time_up_to_a_second_and_logs_once_per_interval() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        let mut now = t0;
        let mut waits = Vec::new();
        let mut logs = Vec::new();
        // Ten seconds and a bit of failing at every retry, as a listener out of descriptors.
        while now < t0 + Duration::from_millis(10_500) {
            let r = b.failed(&emfile(), now);
            now += r.wait;
            waits.push(r.wait.as_millis());
            logs.extend(r.log);
        }
        assert_eq!(&waits[..9], [5, 10, 20, 40, 80, 160, 320, 640, 1000]);
        assert!(waits[9..].iter().all(|&w| w == 1000), "{waits:?}");
        // 9 waits reach 2.275 s, then one per second: the 18th failure comes after 10 s and
        // reports the 17 since the first.
        assert_eq!(waits.len(), 18);
        assert_eq!(logs.len(), 2, "{logs:?}");
        assert!(logs[0].starts_with("accept: Too many open files"), "{logs:?}");
        assert!(logs[1].ends_with("(17 failures since the last report)"), "{logs:?}");
        // Once accepting works again, the next failure waits the shortest time.
        b.succeeded();
        assert_eq!(b.failed(&emfile(), now).wait, FIRST_DELAY);
    }

    #[test]
    fn a_connection_reset_before_accept_is_retried_at_once() {
        let mut b = AcceptBackoff::default();
        let now = Instant::now();
        let aborted = std::io::Error::from_raw_os_error(libc::ECONNABORTED);
        let r = b.failed(&aborted, now);
        assert_eq!(r.wait, Duration::ZERO);
        assert!(r.log.is_some());
        // Counted for the next report, not logged again within the interval.
        assert_eq!(b.failed(&aborted, now + Duration::from_secs(1)).log, None);
        let r = b.failed(&aborted, now + LOG_INTERVAL);
        assert!(r.log.unwrap().contains("(2 failures"));
    }
}
