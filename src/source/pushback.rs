//! Push-back from the pipeline to the sources that can pass it on to their clients.
//!
//! When what follows the sources cannot keep what they hand over (the state database cannot be
//! written: a full disk), every source is held back anyway by its bounded channel: TCP stops
//! reading, a tail stops reading, UDP drops and counts. A client that asked over HTTP would
//! only see its request hang; the intake reads this instead and answers 503 with `Retry-After`
//! at once, so a forwarder keeps its buffer and comes back later.

use std::sync::{Arc, RwLock};

/// Why the pipeline cannot take records now, if it cannot (shared, set by the daemon).
#[derive(Debug, Default)]
pub struct Pushback {
    reason: RwLock<Option<Arc<str>>>,
}

impl Pushback {
    /// Holds the sources back for `reason`, or lets them go on with `None`.
    pub fn set(&self, reason: Option<&str>) {
        if let Ok(mut r) = self.reason.write() {
            *r = reason.map(Arc::from);
        }
    }

    /// Why records cannot be taken now.
    pub fn reason(&self) -> Option<Arc<str>> {
        self.reason.read().ok().and_then(|r| r.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_set_is_read_until_cleared() {
        let p = Pushback::default();
        assert_eq!(p.reason(), None);
        p.set(Some("state database cannot be written"));
        assert_eq!(p.reason().as_deref(), Some("state database cannot be written"));
        p.set(None);
        assert_eq!(p.reason(), None);
    }
}
