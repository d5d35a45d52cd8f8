//! Pacing: a sink whose receiver takes at most one message per interval waits its turn, so a
//! backlog is spread out instead of being refused (Slack's incoming webhooks take about one
//! message a second per channel and answer 429 beyond that).
//!
//! This is not the router's `rate_limit`: that one holds alerts back and summarizes them; a
//! pacer drops nothing, it only decides when the outbox may start the next send, and the
//! outbox picks the most urgent notification at that moment.

use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// Turns to send, one per interval (governor's GCRA, no burst: after a quiet spell the first
/// message goes at once, the next one an interval later).
pub struct Pacer<C: Clock = DefaultClock> {
    interval: Duration,
    clock: C,
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
}

impl<C: Clock> std::fmt::Debug for Pacer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer").field("interval", &self.interval).finish_non_exhaustive()
    }
}

impl Pacer {
    /// One turn per `interval` on the monotonic clock; `None` for a zero interval (no pacing).
    pub fn new(interval: Duration) -> Option<Pacer> {
        Pacer::with_clock(interval, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Pacer<C> {
    /// One turn per `interval` on `clock` (tests pass governor's `FakeRelativeClock`).
    pub fn with_clock(interval: Duration, clock: C) -> Option<Pacer<C>> {
        let quota = Quota::with_period(interval)?;
        let limiter = RateLimiter::direct_with_clock(quota, clock.clone());
        Some(Pacer { interval, clock, limiter })
    }

    /// The interval between two turns.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Takes a turn if there is one now, else says how long until the next.
    pub fn turn(&self) -> Result<(), Duration> {
        self.limiter.check().map_err(|not_yet| not_yet.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::{FakeRelativeClock, Reference};

    use super::*;

    /// Sends `n` messages as the outbox does (take a turn, or wait as long as told), on a fake
    /// clock; returns when each went, in ms since the start.
    fn send_times(
        pacer: &Pacer<FakeRelativeClock>,
        clock: &FakeRelativeClock,
        n: usize,
    ) -> Vec<u128> {
        let start = clock.now();
        let mut at = Vec::new();
        while at.len() < n {
            match pacer.turn() {
                Ok(()) => at.push(Duration::from(clock.now().duration_since(start)).as_millis()),
                Err(wait) => {
                    assert!(!wait.is_zero(), "a refused turn must name a wait");
                    clock.advance(wait);
                }
            }
        }
        at
    }

    #[test]
    fn one_message_per_second_however_many_wait() {
        let clock = FakeRelativeClock::default();
        let pacer = Pacer::with_clock(Duration::from_secs(1), clock.clone()).unwrap();
        let at = send_times(&pacer, &clock, 10);
        assert_eq!(at, [0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000]);
        // Every one-second window holds at most one send.
        for w in at.windows(2) {
            assert!(w[1] - w[0] >= 1000, "{at:?}");
        }
    }

    #[test]
    fn a_quiet_spell_gives_one_turn_not_a_burst() {
        let clock = FakeRelativeClock::default();
        let pacer = Pacer::with_clock(Duration::from_millis(500), clock.clone()).unwrap();
        assert_eq!(pacer.turn(), Ok(()));
        clock.advance(Duration::from_secs(60));
        assert_eq!(pacer.turn(), Ok(()));
        assert_eq!(pacer.turn(), Err(Duration::from_millis(500)));
        clock.advance(Duration::from_millis(200));
        assert_eq!(pacer.turn(), Err(Duration::from_millis(300)));
    }

    #[test]
    fn a_zero_interval_is_no_pacer() {
        assert!(Pacer::new(Duration::ZERO).is_none());
        assert_eq!(
            Pacer::new(Duration::from_secs(1)).map(|p| p.interval()),
            Some(Duration::from_secs(1))
        );
    }
}
