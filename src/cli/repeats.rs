//! Marks the alerts of an offline replay that a router would not send as new: a firing of
//! the same rule and group (fingerprint) whose events begin within the rule's `alert.dedup`
//! window of the last one told, measured on event time as the router measures it. Without
//! `-c` a replay prints every firing; the mark (and the count on standard error) says which
//! ones are the same attack seen again, so a replay of one attack reads as one.

use std::collections::{BTreeMap, HashMap};

use crate::alert::{Alert, AlertSink};
use crate::rule::Rule;

/// An [`AlertSink`] that writes JSON lines, with `"repeat":true` on repeats.
pub struct RepeatMarker<W> {
    out: W,
    windows: HashMap<String, i64>,
    /// Per fingerprint, the last event time of the firing last told.
    told: HashMap<u64, i64>,
    /// Repeats per rule id.
    pub repeats: BTreeMap<String, u64>,
}

impl<W: std::io::Write + Send> RepeatMarker<W> {
    /// A marker for `rules`' dedup windows, writing to `out`.
    pub fn new(rules: &[Rule], out: W) -> Self {
        let windows =
            rules.iter().filter_map(|r| r.dedup.map(|d| (r.id.clone(), d.nanos()))).collect();
        RepeatMarker { out, windows, told: HashMap::new(), repeats: BTreeMap::new() }
    }

    /// Whether `a` repeats an alert told within its rule's window (and records it if not).
    fn is_repeat(&mut self, a: &Alert) -> bool {
        let Some(&window) = self.windows.get(&a.rule_id) else { return false };
        match self.told.get(&a.fingerprint) {
            Some(&last) if a.first_seen.0 <= last.saturating_add(window) => {
                *self.repeats.entry(a.rule_id.clone()).or_default() += 1;
                true
            }
            _ => {
                self.told.insert(a.fingerprint, a.last_seen.0);
                false
            }
        }
    }
}

impl<W: std::io::Write + Send> AlertSink for RepeatMarker<W> {
    fn alert(&mut self, a: Alert) -> std::io::Result<()> {
        let repeat = self.is_repeat(&a);
        let mut line = Vec::with_capacity(1024);
        a.write_line(&mut line);
        if repeat && line.first() == Some(&b'{') {
            line.splice(1..1, br#""repeat":true,"#.iter().copied());
        }
        self.out.write_all(&line)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;

    fn rules() -> Vec<Rule> {
        crate::rule::load::load_str(
            "id: r\ntitle: t\nseverity: low\ndetection:\n  s:\n    event.action: x\n  condition: s\nalert:\n  dedup: 1h\n",
            "r.yml",
        )
        .unwrap_or_default()
    }

    fn alert(fp: u64, first: i64, last: i64) -> Alert {
        Alert {
            rule_id: "r".into(),
            rule_title: "t".into(),
            severity: crate::rule::Severity::Low,
            tags: Vec::new(),
            title: "t".into(),
            group: Vec::new(),
            count: 1,
            first_seen: Timestamp(first * 1_000_000_000),
            last_seen: Timestamp(last * 1_000_000_000),
            fingerprint: fp,
            events: Vec::new(),
            sample: Vec::new(),
            detail: None,
            explain: None,
        }
    }

    #[test]
    fn firings_within_the_window_on_event_time_are_marked() {
        let mut m = RepeatMarker::new(&rules(), Vec::new());
        m.alert(alert(1, 0, 10)).unwrap_or_default();
        m.alert(alert(1, 20, 30)).unwrap_or_default();
        m.alert(alert(2, 20, 30)).unwrap_or_default();
        // Past the hour after the first one told: new again.
        m.alert(alert(1, 10 + 3601, 10 + 3602)).unwrap_or_default();
        let text = String::from_utf8(m.out.clone()).unwrap_or_default();
        let marks: Vec<bool> = text.lines().map(|l| l.starts_with(r#"{"repeat":true,"#)).collect();
        assert_eq!(marks, vec![false, true, false, false]);
        assert_eq!(m.repeats.get("r"), Some(&1));
    }
}
