//! From a scan notice to alerts the router takes, one per owner of the application, so that a
//! route matching `app.owner` tells each team about its own applications only.
//!
//! The monitor (not the router's dedup window) decides what is new: each notice numbers its
//! violation's notifications, and the fingerprint covers that number, so the router sends
//! every notice once and never merges an update with the alert it updates.

use serde_json::json;

use super::monitor::{Change, Notice};
use super::violation::event;
use crate::alert::{Alert, Fnv, fingerprint, render_title};
use crate::event::Timestamp;
use crate::rule::Rule;

/// The alerts for `notice` of `policy`, stamped `now`: one per entry of `owners`, or one
/// without an owner.
pub fn alerts(notice: &Notice, policy: &Rule, owners: &[String], now: Timestamp) -> Vec<Alert> {
    let (app, stage, _, package, id) = &notice.key;
    let purl = if notice.record.purl.is_empty() { package } else { &notice.record.purl };
    let mut base = vec![
        ("app.name".to_owned(), app.clone()),
        ("app.stage".to_owned(), stage.clone()),
        ("component.purl".to_owned(), purl.to_owned()),
    ];
    if !id.is_empty() {
        base.push(("finding.id".to_owned(), id.clone()));
    }
    // A stored document always parses (it was written from one); an empty one only names
    // nothing in titles.
    let mut subject: serde_json::Value =
        serde_json::from_str(&notice.subject).unwrap_or_else(|_| json!({}));
    if let Some(doc) = subject.as_object_mut() {
        doc.insert(
            "notice".into(),
            json!({ "change": notice.change.as_str(), "revision": notice.record.revision }),
        );
    }
    let e = event(subject, now);
    let template = policy.alert.title.clone().unwrap_or_else(|| {
        if id.is_empty() {
            format!("{}: {{component.purl}} in {{app.name}}", policy.title)
        } else {
            format!("{}: {{finding.id}} in {{component.purl}} ({{app.name}})", policy.title)
        }
    });
    let prefix = match notice.change {
        Change::New => "",
        Change::Updated => "Updated: ",
        Change::Resolved => "Resolved: ",
        Change::Withdrawn => "Withdrawn: ",
    };
    let first_seen = chrono::DateTime::parse_from_rfc3339(&notice.record.first_notified)
        .ok()
        .and_then(|t| Timestamp::from_chrono(&t))
        .unwrap_or(now);
    let mut detail = json!({
        "change": notice.change.as_str(),
        "revision": notice.record.revision,
        "details": notice.record.details,
    });
    if !notice.changed.is_empty() {
        detail["changed"] = json!(notice.changed);
    }
    if let Some(p) = &notice.previous {
        detail["previous"] = json!(p);
    }
    let groups: Vec<Vec<(String, String)>> = if owners.is_empty() {
        vec![base]
    } else {
        owners
            .iter()
            .map(|o| {
                let mut g = base.clone();
                g.push(("app.owner".to_owned(), o.clone()));
                g
            })
            .collect()
    };
    groups
        .into_iter()
        .map(|group| {
            let mut h = Fnv::new();
            h.feed(&fingerprint(&policy.id, &group).to_le_bytes());
            h.feed(&notice.record.revision.to_le_bytes());
            Alert {
                rule_id: policy.id.clone(),
                rule_title: policy.title.clone(),
                severity: policy.severity,
                tags: policy.tags.clone(),
                title: format!("{prefix}{}", render_title(&template, &group, 1, &e)),
                count: 1,
                first_seen: first_seen.min(now),
                last_seen: now,
                fingerprint: h.finish(),
                events: Vec::new(),
                sample: vec![e.clone()],
                detail: Some(detail.clone()),
                explain: None,
                group,
            }
        })
        .collect()
}
