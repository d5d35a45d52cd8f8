//! The stateful half of detection: feeds matched events to each rule's behaviour in order and
//! turns what fires into [`Alert`]s.
//!
//! Its state (each rule's detector and counters) can be snapshotted and restored, keyed by rule
//! id and [`Rule::digest`], so that a restart resumes every unchanged rule where it was. The
//! snapshot, version 1, after the header (see [`crate::snapshot`]): the number of rules, then
//! per rule `(id, digest, matches, alerts, has state)` and, with state, its length as 8 bytes
//! little-endian and the detector's own snapshot. Detector snapshots are written in place,
//! behind a length patched afterwards, so a million groups are not copied twice.
//!
//! A change set (header kind `E`) has the same layout with each detector's change set (see
//! [`Detector::snapshot_changes`]): the groups touched and dropped since the last
//! [`Engine::mark`]. A full snapshot then change sets, applied in order, give the state the
//! last one was taken from; a change set costs what changed, not what is tracked. The
//! protocol for a caller that persists state often:
//! 1. at start, [`Engine::restore`] the base and [`Engine::apply_changes`] each change set
//!    stored after it, or start fresh;
//! 2. write a full [`Engine::snapshot`], and [`Engine::mark`] once it is durable;
//! 3. then, each time, write [`Engine::snapshot_changes`] and mark once it is durable (a
//!    change set that failed to be written is covered by the next one, as long as there was
//!    no mark in between);
//! 4. write a new base (step 2) when the change sets add up to about the base's size, and
//!    after [`Engine::carry_over`] (a reload: rules may have changed).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::alert::{Alert, Explain, fingerprint, render_title};
use crate::event::Event;
use crate::rule::Rule;
use crate::rule::behaviour::{Detector, EventRef, Fired, Services, Stats};
use crate::rule::group::GroupBy;
use crate::rule::set::{Hit, RuleSet};
use crate::snapshot::{Bytes, Format, Out, SnapshotError, Spill};

/// Snapshot header of the engine (the detectors' snapshots inside have their own).
const SNAPSHOT: Format = Format { what: "engine", tag: b'e', version: 1 };
/// Header of an engine change set.
const CHANGES: Format = Format { what: "engine changes", tag: b'E', version: 1 };
/// Bytes of the length before a detector's snapshot.
const LEN: usize = 8;

/// Per-rule counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleStats {
    /// Events that matched the rule's condition.
    pub matches: u64,
    /// Alerts the rule raised.
    pub alerts: u64,
    /// The behaviour's counters (zero for single-event rules).
    pub behaviour: Stats,
}

/// What [`Engine::restore`] did with each rule, by rule id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Rules that took their state from the snapshot (same id, same text).
    pub resumed: Vec<String>,
    /// Rules whose text changed since the snapshot: they start fresh.
    pub changed: Vec<String>,
    /// Rules the snapshot does not have (added since): they start fresh.
    pub added: Vec<String>,
    /// Rules the snapshot has that are no longer loaded: their state is dropped.
    pub removed: Vec<String>,
}

impl fmt::Display for RestoreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rules resumed their state", self.resumed.len())?;
        for (what, ids) in [
            ("changed since, started fresh", &self.changed),
            ("new, started fresh", &self.added),
            ("no longer loaded, state dropped", &self.removed),
        ] {
            if !ids.is_empty() {
                write!(f, "; {} {what}: {}", ids.len(), ids.join(", "))?;
            }
        }
        Ok(())
    }
}

/// Rule state for one stream of events.
#[derive(Debug)]
pub struct Engine {
    set: Arc<RuleSet>,
    services: Services,
    detectors: Vec<Option<Box<dyn Detector>>>,
    counts: Vec<(u64, u64)>,
    explain: bool,
    fired: Vec<Fired>,
    /// Size of the last snapshot: the next one is allocated at about that size at once, not
    /// grown (and copied) step by step through tens of megabytes.
    last_snapshot: AtomicUsize,
}

impl Engine {
    /// Fresh state for every rule of `set`; `explain` adds [`Explain`] to alerts.
    pub fn new(set: Arc<RuleSet>, services: &Services, explain: bool) -> Engine {
        let detectors = fresh(&set, services);
        let counts = vec![(0, 0); set.rules().len()];
        Engine {
            set,
            services: services.clone(),
            detectors,
            counts,
            explain,
            fired: Vec::new(),
            last_snapshot: AtomicUsize::new(0),
        }
    }

    /// The whole rule state as a versioned snapshot (see the module docs): every rule's
    /// counters and its detector's groups.
    pub fn snapshot(&self) -> Result<Vec<u8>, SnapshotError> {
        let last = self.last_snapshot.load(Ordering::Relaxed);
        let mut out = Vec::with_capacity(last + last / 8);
        self.snapshot_into(&mut out)?;
        Ok(out)
    }

    /// [`Engine::snapshot`] into `out` (cleared first), for a caller that snapshots often and
    /// keeps one buffer: a large state then costs no fresh pages each time.
    pub fn snapshot_into(&self, out: &mut Vec<u8>) -> Result<(), SnapshotError> {
        out.clear();
        let mut o = Out::memory(std::mem::take(out));
        let r = self.write(SNAPSHOT, &mut o, |d, out| d.snapshot_to(out));
        *out = o.finish()?;
        r?;
        self.last_snapshot.store(out.len(), Ordering::Relaxed);
        Ok(())
    }

    /// [`Engine::snapshot`] handed to `spill` in parts of `part` bytes as it is made, so that
    /// a large state is never in memory whole; returns its length.
    pub fn snapshot_spilling(
        &self,
        spill: &mut dyn Spill,
        part: usize,
    ) -> Result<usize, SnapshotError> {
        let mut o = Out::spilling(spill, part);
        self.write(SNAPSHOT, &mut o, |d, out| d.snapshot_to(out))?;
        let len = o.len();
        o.finish()?;
        Ok(len)
    }

    /// What changed since the last [`Engine::mark`], as a change set (see the module docs).
    pub fn snapshot_changes(&self) -> Result<Vec<u8>, SnapshotError> {
        let mut out = Vec::new();
        self.snapshot_changes_into(&mut out)?;
        Ok(out)
    }

    /// [`Engine::snapshot_changes`] into `out` (cleared first).
    pub fn snapshot_changes_into(&self, out: &mut Vec<u8>) -> Result<(), SnapshotError> {
        out.clear();
        let mut o = Out::memory(std::mem::take(out));
        let r = self.write(CHANGES, &mut o, |d, out| d.snapshot_changes_to(out));
        *out = o.finish()?;
        r
    }

    /// Starts a new change set for every rule: call it once the snapshot or change set taken
    /// before is durable (see the module docs).
    pub fn mark(&mut self) {
        for d in self.detectors.iter_mut().flatten() {
            d.mark();
        }
    }

    /// Applies a change set made by [`Engine::snapshot_changes`] after the state restored or
    /// applied so far, rule by rule as [`Engine::restore`] matches them (a rule whose text
    /// changed, or that is gone, skips its part). On error some rules may have taken their
    /// part and others not: start over from a fresh engine. Leaves the engine unmarked.
    pub fn apply_changes(&mut self, bytes: &[u8]) -> Result<RestoreReport, SnapshotError> {
        let saved = read_rules(CHANGES, bytes)?;
        let (report, matched) = self.match_rules(&saved)?;
        for (i, s) in matched {
            match (self.detectors.get_mut(i).and_then(Option::as_mut), s.state) {
                (Some(d), Some(state)) => {
                    d.apply_changes(state).map_err(|e| rule_error(s.id, e))?;
                }
                (None, None) => {}
                _ => return Err(mismatch(s.id)),
            }
            if let Some(c) = self.counts.get_mut(i) {
                *c = (s.matches, s.alerts);
            }
        }
        Ok(report)
    }

    /// Writes the engine's framing around each detector's part, made by `part`.
    fn write(
        &self,
        format: Format,
        out: &mut Out<'_>,
        part: impl Fn(&dyn Detector, &mut Out<'_>) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        format.header(out);
        format.append(&(self.set.rules().len() as u64), out)?;
        for ((rule, d), &(matches, alerts)) in
            self.set.rules().iter().zip(&self.detectors).zip(&self.counts)
        {
            let head = (rule.id.as_str(), rule.digest, matches, alerts, d.is_some());
            format.append(&head, out)?;
            let Some(d) = d else { continue };
            let at = out.len();
            out.put(&[0; LEN]);
            part(d.as_ref(), out).map_err(|e| rule_error(&rule.id, e))?;
            let len = (out.len() - at - LEN) as u64;
            out.patch(at, &len.to_le_bytes());
        }
        Ok(())
    }

    /// Replaces the state of every rule: a rule with the same id and text ([`Rule::digest`])
    /// as in the snapshot takes its state from it; any other starts fresh. All or nothing: on
    /// error the engine is unchanged.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<RestoreReport, SnapshotError> {
        let saved = read_rules(SNAPSHOT, bytes)?;
        let (report, matched) = self.match_rules(&saved)?;
        let mut detectors = fresh(&self.set, &self.services);
        let mut counts = vec![(0, 0); self.set.rules().len()];
        for (i, s) in matched {
            match (detectors.get_mut(i).and_then(Option::as_mut), s.state) {
                (Some(d), Some(state)) => {
                    d.restore(state).map_err(|e| rule_error(s.id, e))?;
                }
                (None, None) => {}
                _ => return Err(mismatch(s.id)),
            }
            if let Some(c) = counts.get_mut(i) {
                *c = (s.matches, s.alerts);
            }
        }
        self.detectors = detectors;
        self.counts = counts;
        Ok(report)
    }

    /// Pairs saved rules with loaded ones by id and digest, and reports the rest.
    fn match_rules<'s, 'a>(
        &self,
        saved: &'s [SavedRule<'a>],
    ) -> Result<(RestoreReport, Matched<'s, 'a>), SnapshotError> {
        let mut report = RestoreReport::default();
        let mut matched = Vec::new();
        let by_id: HashMap<&str, usize> =
            self.set.rules().iter().enumerate().map(|(i, r)| (r.id.as_str(), i)).collect();
        let mut seen = vec![false; self.set.rules().len()];
        for s in saved {
            let Some(&i) = by_id.get(s.id) else {
                report.removed.push(s.id.to_owned());
                continue;
            };
            if std::mem::replace(&mut seen[i], true) {
                return Err(SnapshotError::invalid(
                    SNAPSHOT.what,
                    format!("rule `{}` twice", s.id),
                ));
            }
            if s.digest != self.set.rules()[i].digest {
                report.changed.push(s.id.to_owned());
                continue;
            }
            report.resumed.push(s.id.to_owned());
            matched.push((i, s));
        }
        for (rule, seen) in self.set.rules().iter().zip(seen) {
            if !seen {
                report.added.push(rule.id.clone());
            }
        }
        Ok((report, matched))
    }

    /// Takes over the state of every rule of `old` that is unchanged here (same id, same
    /// text), so a reload does not forget half-counted windows; returns how many kept theirs.
    pub fn carry_over(&mut self, mut old: Engine) -> usize {
        let mut kept = 0;
        let by_id: std::collections::HashMap<&str, usize> =
            old.set.rules().iter().enumerate().map(|(i, r)| (r.id.as_str(), i)).collect();
        for (i, rule) in self.set.rules().iter().enumerate() {
            let Some(&j) = by_id.get(rule.id.as_str()) else { continue };
            if old.set.rules()[j].digest != rule.digest {
                continue;
            }
            if let (Some(slot), Some(prev)) = (self.detectors.get_mut(i), old.detectors.get_mut(j))
            {
                *slot = prev.take();
            }
            if let (Some(c), Some(p)) = (self.counts.get_mut(i), old.counts.get(j)) {
                *c = *p;
            }
            kept += 1;
        }
        kept
    }

    /// The rule set, shared.
    pub fn set(&self) -> &Arc<RuleSet> {
        &self.set
    }

    /// The rule set.
    pub fn rules(&self) -> &RuleSet {
        &self.set
    }

    /// Matches `e` against the rules and feeds it on.
    pub fn process(&mut self, e: &Event, out: &mut Vec<Alert>) {
        let mut hits = Vec::new();
        self.set.hits(e, &mut hits);
        self.observe(e, &hits, out);
    }

    /// Feeds an event with the hits [`RuleSet::hits`] found for it (perhaps on another thread).
    pub fn observe(&mut self, e: &Event, hits: &[Hit], out: &mut Vec<Alert>) {
        let set = Arc::clone(&self.set);
        for hit in hits {
            let i = hit.rule as usize;
            let Some(rule) = set.rules().get(i) else { continue };
            if let Some(c) = self.counts.get_mut(i) {
                c.0 += 1;
            }
            let before = out.len();
            match self.detectors.get_mut(i).and_then(Option::as_mut) {
                Some(d) => {
                    self.fired.clear();
                    d.observe(e, hit.steps, &mut self.fired);
                    let group_by = rule.behaviour.as_ref().map(|b| b.group_by());
                    for f in self.fired.drain(..) {
                        out.push(make_alert(rule, group_by, f, e, self.explain));
                    }
                }
                None => {
                    let fired = Fired {
                        key: rule.group_by.key_or_dash(e),
                        count: 1,
                        first_seen: e.timestamp,
                        last_seen: e.timestamp,
                        events: vec![EventRef::of(e)],
                        detail: None,
                    };
                    out.push(make_alert(rule, Some(&rule.group_by), fired, e, self.explain));
                }
            }
            if let Some(c) = self.counts.get_mut(i) {
                c.1 += (out.len() - before) as u64;
            }
        }
    }

    /// Counters per rule, in rule order.
    pub fn stats(&self) -> Vec<RuleStats> {
        self.counts
            .iter()
            .zip(&self.detectors)
            .map(|(&(matches, alerts), d)| RuleStats {
                matches,
                alerts,
                behaviour: d.as_ref().map(|d| d.stats()).unwrap_or_default(),
            })
            .collect()
    }
}

/// A fresh detector for every rule with a behaviour.
fn fresh(set: &RuleSet, services: &Services) -> Vec<Option<Box<dyn Detector>>> {
    set.rules().iter().map(|r| r.behaviour.as_ref().map(|b| b.start(services))).collect()
}

fn rule_error(id: &str, e: SnapshotError) -> SnapshotError {
    SnapshotError::Rule { rule: id.to_owned(), source: Box::new(e) }
}

/// The same text makes the same behaviour, so state that does not fit it is damage.
fn mismatch(id: &str) -> SnapshotError {
    SnapshotError::invalid(
        SNAPSHOT.what,
        format!("rule `{id}`: state does not match its behaviour"),
    )
}

/// Saved rules paired with the index of the loaded rule they belong to.
type Matched<'s, 'a> = Vec<(usize, &'s SavedRule<'a>)>;

/// One rule as an engine snapshot holds it.
struct SavedRule<'a> {
    id: &'a str,
    digest: u64,
    matches: u64,
    alerts: u64,
    state: Option<&'a [u8]>,
}

/// Splits an engine snapshot or change set into its rules.
fn read_rules(format: Format, bytes: &[u8]) -> Result<Vec<SavedRule<'_>>, SnapshotError> {
    let body = format.body(bytes)?;
    let (n, mut rest): (u64, _) = format.take(body)?;
    // No capacity from `n`: it is input, and every rule takes bytes, so the loop below ends
    // with the bytes whatever it says.
    let mut rules = Vec::new();
    for _ in 0..n {
        let ((id, digest, matches, alerts, has_state), after) =
            format.take::<(&str, u64, u64, u64, bool)>(rest)?;
        rest = after;
        let state = if has_state {
            let truncated = || SnapshotError::Decode {
                what: format.what,
                detail: format!("rule `{id}`: state truncated"),
            };
            let (len, after) = rest.split_first_chunk::<LEN>().ok_or_else(truncated)?;
            let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| truncated())?;
            if after.len() < len {
                return Err(truncated());
            }
            let (state, after) = after.split_at(len);
            rest = after;
            Some(state)
        } else {
            None
        };
        rules.push(SavedRule { id, digest, matches, alerts, state });
    }
    if !rest.is_empty() {
        return Err(SnapshotError::Decode {
            what: format.what,
            detail: format!("{} bytes after the last rule", rest.len()),
        });
    }
    Ok(rules)
}

fn make_alert(
    rule: &Rule,
    group_by: Option<&GroupBy>,
    f: Fired,
    e: &Event,
    explain: bool,
) -> Alert {
    let group: Vec<(String, String)> = group_by
        .map(|g| g.pairs(&f.key).map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
        .unwrap_or_default();
    let template = rule.alert.title.as_deref().unwrap_or(&rule.title);
    let title = render_title(template, &group, f.count, e);
    Alert {
        rule_id: rule.id.clone(),
        rule_title: rule.title.clone(),
        severity: rule.severity,
        tags: rule.tags.clone(),
        title,
        fingerprint: fingerprint(&rule.id, &group),
        group,
        count: f.count,
        first_seen: f.first_seen,
        last_seen: f.last_seen,
        events: f.events,
        sample: vec![e.clone()],
        detail: f.detail,
        explain: explain.then(|| Explain {
            condition: rule.condition_text.clone(),
            selections: rule.explain(e).unwrap_or_default(),
            behaviour: rule.behaviour.as_ref().map(|b| b.name()),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::path::Path;

    use super::*;
    use crate::event::{Sym, Timestamp};
    use crate::parse::Parser;
    use crate::parse::syslog::{SyslogOptions, SyslogParser};
    use crate::rule::load::{load_dir, load_str};
    use crate::source::{Origin, RawRecord};

    /// The rule pack as shipped, loaded afresh (as a restarted daemon loads it).
    fn pack() -> Arc<RuleSet> {
        let rules = load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")).unwrap();
        Arc::new(RuleSet::new(rules))
    }

    /// Events of syslog lines, as the daemon makes them from a tailed file.
    fn parse(lines: &[String]) -> Vec<Event> {
        let mut parser = SyslogParser::new(SyslogOptions {
            year: Some(2024),
            now: Some(Timestamp(0)),
            ..SyslogOptions::default()
        });
        let path = Sym::from("/var/log/auth.log");
        let mut events = Vec::new();
        let mut offset = 0;
        for (i, line) in lines.iter().enumerate() {
            let rec = RawRecord {
                bytes: bytes::Bytes::copy_from_slice(line.as_bytes()),
                origin: Origin { source: path.clone(), record: i as u64 + 1, offset },
                received: None,
            };
            offset += line.len() as u64 + 1;
            let from = events.len();
            parser.parse(&rec, &mut events).unwrap();
            for e in &mut events[from..] {
                e.log_file_path = Some(path.clone());
            }
        }
        events
    }

    /// An afternoon of sshd attacks from seven addresses (brute force, spraying, brute force
    /// that got in) and the sudo history of `rules/testdata/sudo-spike.log` before it.
    fn auth_log() -> Vec<String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let sudo = std::fs::read_to_string(root.join("rules/testdata/sudo-spike.log")).unwrap();
        let mut lines: Vec<String> = sudo.lines().map(str::to_owned).collect();
        for i in 0..400u32 {
            let t = 12 * 3600 + i * 20;
            let stamp = format!("Sep 30 {:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60);
            let ip = format!("203.0.113.{}", i % 7 * 10 + 1);
            let port = 40_000 + i;
            let what = match i % 13 {
                12 => format!("Accepted password for test from {ip} port {port} ssh2"),
                3 | 7 => format!("Invalid user u{} from {ip} port {port}", i % 9),
                _ => format!("Failed password for root from {ip} port {port} ssh2"),
            };
            lines.push(format!("{stamp} db1 sshd[{}]: {what}", 1000 + i));
        }
        lines
    }

    fn run(engine: &mut Engine, events: &[Event]) -> Vec<Alert> {
        let mut out = Vec::new();
        for e in events {
            engine.process(e, &mut out);
        }
        out
    }

    #[test]
    fn the_pack_resumes_from_a_snapshot_as_if_never_stopped() {
        let events = parse(&auth_log());
        let mut whole = Engine::new(pack(), &Services::default(), false);
        let want = run(&mut whole, &events);
        let fired: std::collections::BTreeSet<&str> =
            want.iter().map(|a| a.rule_id.as_str()).collect();
        for id in ["ssh-bruteforce", "ssh-bruteforce-success", "sudo-activity-spike"] {
            assert!(
                fired.contains(id),
                "{id} must fire for the comparison to mean much: {fired:?}"
            );
        }
        let n = events.len();
        for cut in [0, 1, 17, 18, 19, n / 3, n / 2, n - 40, n - 1, n] {
            let mut first = Engine::new(pack(), &Services::default(), false);
            let mut got = run(&mut first, &events[..cut]);
            let bytes = first.snapshot().unwrap();
            let mut second = Engine::new(pack(), &Services::default(), false);
            let report = second.restore(&bytes).unwrap();
            assert_eq!(report.resumed.len(), second.rules().rules().len(), "{report}");
            assert_eq!(second.snapshot().unwrap(), bytes, "cut at {cut}");
            got.extend(run(&mut second, &events[cut..]));
            assert_eq!(got, want, "cut at {cut}");
            assert_eq!(second.stats(), whole.stats(), "cut at {cut}");
        }
    }

    #[test]
    fn the_pack_resumes_from_a_base_and_change_sets() {
        let events = parse(&auth_log());
        let mut whole = Engine::new(pack(), &Services::default(), false);
        let want = run(&mut whole, &events);
        let n = events.len();
        for (base, every) in [(0, 50), (18, 7), (n / 2, 100), (n - 5, 1)] {
            let mut first = Engine::new(pack(), &Services::default(), false);
            let mut got = run(&mut first, &events[..base]);
            let base_bytes = first.snapshot().unwrap();
            first.mark();
            let mut changes = Vec::new();
            let mut at = base;
            while at < n {
                let to = (at + every).min(n);
                got.extend(run(&mut first, &events[at..to]));
                changes.push(first.snapshot_changes().unwrap());
                first.mark();
                at = to;
            }
            let mut second = Engine::new(pack(), &Services::default(), false);
            second.restore(&base_bytes).unwrap();
            for c in &changes {
                let report = second.apply_changes(c).unwrap();
                assert!(report.changed.is_empty() && report.removed.is_empty());
            }
            assert_eq!(second.snapshot().unwrap(), first.snapshot().unwrap(), "base {base}");
            assert_eq!(got, want);
            assert_eq!(second.stats(), whole.stats());
        }
    }

    const RULES: &str = "
id: burst
title: Burst
severity: high
detection:
  failed:
    event.outcome: failure
  condition: failed
threshold:
  group_by: [source.ip]
  count: 3
  window: 10m
---
id: burst-by-user
title: Burst by user
severity: low
detection:
  failed:
    event.outcome: failure
  condition: failed
threshold:
  group_by: [user.name]
  count: 3
  window: 10m
---
id: any-failure
title: Any failure
severity: info
detection:
  failed:
    event.outcome: failure
  condition: failed
";

    fn failure(secs: i64) -> Event {
        Event {
            timestamp: Timestamp::from_secs_nanos(1_700_000_000 + secs, 0),
            outcome: Some(crate::event::Outcome::Failure),
            source_ip: "192.0.2.1".parse().ok(),
            user_name: Some("root".into()),
            ..Event::default()
        }
    }

    fn engine(text: &str) -> Engine {
        Engine::new(
            Arc::new(RuleSet::new(load_str(text, "r.yml").unwrap())),
            &Services::default(),
            false,
        )
    }

    fn ids(alerts: &[Alert]) -> Vec<&str> {
        alerts.iter().map(|a| a.rule_id.as_str()).collect()
    }

    #[test]
    fn a_rule_whose_text_changed_starts_fresh_and_only_it() {
        let mut before = engine(RULES);
        run(&mut before, &[failure(0), failure(1)]);
        let bytes = before.snapshot().unwrap();
        // burst-by-user now wants four; burst and any-failure are as they were.
        let changed = RULES
            .replace("  group_by: [user.name]\n  count: 3", "  group_by: [user.name]\n  count: 4");
        assert_ne!(changed, RULES);
        let mut after = engine(&changed);
        let report = after.restore(&bytes).unwrap();
        assert_eq!(report.resumed, ["burst", "any-failure"]);
        assert_eq!(report.changed, ["burst-by-user"]);
        assert!(report.added.is_empty() && report.removed.is_empty());
        // The third failure completes `burst` (resumed at two); `burst-by-user` counts from
        // zero, and needs four of its own.
        let alerts = run(&mut after, &[failure(2)]);
        assert_eq!(ids(&alerts), ["burst", "any-failure"]);
        let alerts = run(&mut after, &[failure(3), failure(4)]);
        assert_eq!(ids(&alerts), ["any-failure", "any-failure"]);
        let mut fifth = ids(&run(&mut after, &[failure(5)])).join(" ");
        fifth = fifth.replace("any-failure", "").split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(fifth, "burst burst-by-user");
        // Counters: resumed for kept rules, from zero for the changed one.
        let stats = after.stats();
        assert_eq!((stats[0].matches, stats[1].matches, stats[2].matches), (6, 4, 6));
    }

    #[test]
    fn change_sets_of_a_rule_whose_text_changed_are_skipped() {
        let mut before = engine(RULES);
        let base = before.snapshot().unwrap();
        before.mark();
        run(&mut before, &[failure(0), failure(1)]);
        let changes = before.snapshot_changes().unwrap();
        let changed = RULES
            .replace("  group_by: [user.name]\n  count: 3", "  group_by: [user.name]\n  count: 4");
        let mut after = engine(&changed);
        after.restore(&base).unwrap();
        let report = after.apply_changes(&changes).unwrap();
        assert_eq!(report.changed, ["burst-by-user"]);
        // burst resumed at two failures; burst-by-user from none.
        assert_eq!(ids(&run(&mut after, &[failure(2)])), ["burst", "any-failure"]);
        let stats = after.stats();
        assert_eq!((stats[0].matches, stats[1].matches), (3, 1));
        // A full snapshot is not a change set of the engine's, nor the other way round.
        assert!(matches!(after.apply_changes(&base), Err(SnapshotError::Header { .. })));
        assert!(matches!(after.restore(&changes), Err(SnapshotError::Header { .. })));
    }

    #[test]
    fn added_and_removed_rules_are_reported() {
        let mut before = engine(RULES);
        run(&mut before, &[failure(0)]);
        let bytes = before.snapshot().unwrap();
        let (kept, _) = RULES.split_once("---\nid: burst-by-user").unwrap();
        let extra = "---\nid: new-one\ntitle: New\nseverity: low\ndetection:\n  s:\n    event.outcome: failure\n  condition: s\n";
        let mut after = engine(&format!("{kept}{extra}"));
        let report = after.restore(&bytes).unwrap();
        assert_eq!(report.resumed, ["burst"]);
        assert_eq!(report.added, ["new-one"]);
        assert_eq!(report.removed, ["burst-by-user", "any-failure"]);
        assert_eq!(
            report.to_string(),
            "1 rules resumed their state; 1 new, started fresh: new-one; \
             2 no longer loaded, state dropped: burst-by-user, any-failure"
        );
    }

    /// Parts in memory, as the state database keeps them.
    #[derive(Default)]
    struct Parts(Vec<Vec<u8>>);

    impl Spill for Parts {
        fn write(&mut self, part: &[u8]) -> Result<(), String> {
            self.0.push(part.to_vec());
            Ok(())
        }
        fn patch(&mut self, at: usize, bytes: &[u8]) -> Result<(), String> {
            let size = self.0[0].len();
            for (i, b) in bytes.iter().enumerate() {
                let p = at + i;
                *self
                    .0
                    .get_mut(p / size)
                    .and_then(|v| v.get_mut(p % size))
                    .ok_or("past the end")? = *b;
            }
            Ok(())
        }
    }

    #[test]
    fn a_spilled_snapshot_is_the_same_bytes_in_parts() {
        let mut e = engine(RULES);
        run(&mut e, &[failure(0), failure(1), failure(2)]);
        let whole = e.snapshot().unwrap();
        // Every part size, so each rule's length falls across a boundary somewhere.
        for part in 1..whole.len() + 2 {
            let mut parts = Parts::default();
            let len = e.snapshot_spilling(&mut parts, part).unwrap();
            assert_eq!(len, whole.len());
            assert!(parts.0.iter().rev().skip(1).all(|p| p.len() == part));
            assert_eq!(parts.0.concat(), whole, "parts of {part} bytes");
        }
    }

    #[test]
    fn a_damaged_engine_snapshot_is_an_error_and_changes_nothing() {
        let mut before = engine(RULES);
        run(&mut before, &[failure(0), failure(1)]);
        let bytes = before.snapshot().unwrap();
        let try_one = |damaged: &[u8]| {
            let mut e = engine(RULES);
            let fresh = e.snapshot().unwrap();
            match e.restore(damaged) {
                Ok(_) => {
                    run(&mut e, &[failure(2), failure(3)]);
                }
                Err(err) => {
                    assert!(!err.to_string().is_empty());
                    assert_eq!(e.snapshot().unwrap(), fresh, "a failed restore changed the state");
                }
            }
        };
        for len in 0..bytes.len() {
            try_one(&bytes[..len]);
        }
        for i in 0..bytes.len() {
            for x in [0x01, 0x40, 0xff] {
                let mut damaged = bytes.clone();
                damaged[i] ^= x;
                try_one(&damaged);
            }
        }
        proptest::proptest!(|(junk in proptest::collection::vec(proptest::num::u8::ANY, 0..300))| {
            try_one(&junk);
            let mut headed = bytes[..4].to_vec();
            headed.extend_from_slice(&junk);
            try_one(&headed);
        });
        // A router's snapshot is not an engine's.
        let e = engine(RULES).restore(b"LWr\x01").unwrap_err();
        assert!(matches!(e, SnapshotError::Header { what: "engine" }), "{e}");
    }
}
