//! What the daemon counts, and its Prometheus text form for `/metrics`.
//!
//! Counters are atomics written by the stage that owns them; the detection thread publishes
//! per-rule and router counters as snapshots once a second, so a scrape never waits on it.
//! Latencies are hdrhistogram histograms, exposed as Prometheus summaries (p50, p99, p999).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;

use crate::route::router::RouterStats;
use crate::rule::engine::RuleStats;
use crate::sink::outbox::Outbox;
use crate::source::SourceCounters;
use crate::source::conns::ConnCounters;
use crate::source::udp_drops::kernel_drops;

/// One configured source's numbers: what it read, and what the parser made of it.
#[derive(Debug, Default)]
pub struct SourceMetrics {
    /// The source's name in the config.
    pub name: String,
    /// Kept by the source task.
    pub counters: Arc<SourceCounters>,
    /// Events the parser made (a `message repeated N times` record makes N).
    pub events_out: AtomicU64,
    /// Records the parser set aside.
    pub quarantined: AtomicU64,
    /// Events whose peer the line names ambiguously (client text holding an address), made
    /// without `source.ip`.
    pub ambiguous: AtomicU64,
    /// Events `message repeated N times` lines named beyond the parser's cap, not made.
    pub repeats_capped: AtomicU64,
    /// Records the parser set aside, by reason.
    pub quarantine_reasons: Mutex<BTreeMap<&'static str, u64>>,
    /// Records handed to the parser.
    pub parsed: AtomicU64,
    /// When the source last delivered a record (ns since the epoch).
    pub last_seen_ns: AtomicI64,
}

/// Everything `/metrics` shows.
#[derive(Debug)]
pub struct Metrics {
    /// Per source, in config order.
    pub sources: Vec<SourceMetrics>,
    /// Parse failures by (parser, reason).
    pub parse_failures: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Per rule (id, counters), published by the detection thread.
    pub rules: Mutex<Vec<(String, RuleStats)>>,
    /// The router's counters, published by the detection thread.
    pub router: Mutex<RouterStats>,
    /// Alerts raised by rules and the daemon (silent sources).
    pub alerts: AtomicU64,
    /// Receipt of the firing event to its alert decided and queued, in microseconds.
    pub detection_latency_us: Mutex<Option<Histogram<u64>>>,
    /// Notifications written to the outbox.
    pub queued: AtomicU64,
    /// Sources that went silent past their `max_silence` (each time).
    pub silent_alerts: AtomicU64,
    /// Commits of the detection thread that failed and were retried (the state database could
    /// not be written).
    pub commit_failures: AtomicU64,
    /// The outbox, read at scrape time for its depth and dead letters.
    pub outbox: Arc<Outbox>,
    /// The latest alerts with what the router did, newest last, for `/api/alerts`.
    pub recent: Mutex<std::collections::VecDeque<serde_json::Value>>,
    /// The forwarder, in forward mode.
    pub forwarder: std::sync::OnceLock<Arc<crate::forward::Forwarder>>,
    /// The scan thread's counters.
    pub scan: ScanMetrics,
    /// The API listener's connections and requests.
    pub api_conns: Arc<ConnCounters>,
}

/// What the scan thread did.
#[derive(Debug, Default)]
pub struct ScanMetrics {
    /// Reports ingested from the watched directory.
    pub reports_ingested: AtomicU64,
    /// Reports set aside because they did not read.
    pub reports_failed: AtomicU64,
    /// Evaluations run (ingests, the schedule, on demand).
    pub evaluations: AtomicU64,
    /// Evaluations that failed.
    pub evaluation_failures: AtomicU64,
    /// Notices made (new, updated, resolved, withdrawn).
    pub notices: AtomicU64,
}

/// Alerts `/api/alerts` can show.
pub const RECENT_ALERTS: usize = 1000;

impl Metrics {
    /// Fresh metrics for sources named `names` with their counters.
    pub fn new(sources: Vec<(String, Arc<SourceCounters>)>, outbox: Arc<Outbox>) -> Metrics {
        let now = crate::event::Timestamp::now().0;
        Metrics {
            sources: sources
                .into_iter()
                .map(|(name, counters)| SourceMetrics {
                    name,
                    counters,
                    last_seen_ns: AtomicI64::new(now),
                    ..SourceMetrics::default()
                })
                .collect(),
            parse_failures: Mutex::default(),
            rules: Mutex::default(),
            router: Mutex::default(),
            alerts: AtomicU64::new(0),
            // 1 us to 1 h, 3 significant digits: a bound the recorder clamps to.
            detection_latency_us: Mutex::new(new_histogram()),
            queued: AtomicU64::new(0),
            silent_alerts: AtomicU64::new(0),
            commit_failures: AtomicU64::new(0),
            outbox,
            recent: Mutex::default(),
            forwarder: std::sync::OnceLock::new(),
            scan: ScanMetrics::default(),
            api_conns: Arc::default(),
        }
    }

    /// Why the daemon is not healthy, if it is not: for `/healthz`.
    pub fn unhealthy(&self) -> Option<String> {
        self.outbox.state().fault().map(|f| f.describe())
    }

    /// Keeps an alert and its routing for `/api/alerts`, forgetting the oldest past
    /// [`RECENT_ALERTS`].
    pub fn remember(&self, a: &crate::alert::Alert, routing: &serde_json::Value) {
        let mut json = a.to_json();
        json["routing"] = routing.clone();
        if let Ok(mut r) = self.recent.lock() {
            if r.len() >= RECENT_ALERTS {
                r.pop_front();
            }
            r.push_back(json);
        }
    }

    /// Records one detection latency.
    pub fn detection_latency(&self, us: u64) {
        if let Ok(mut h) = self.detection_latency_us.lock()
            && let Some(h) = h.as_mut()
        {
            h.saturating_record(us.max(1));
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut o = String::with_capacity(4096);
        family(&mut o, "logwarden_source_records_in_total", "counter", "Records read per source.");
        for s in &self.sources {
            sample(
                &mut o,
                "logwarden_source_records_in_total",
                &[("source", &s.name)],
                s.counters.records_in.load(Ordering::Relaxed),
            );
        }
        let per_source: [Series<SourceMetrics>; 10] = [
            ("logwarden_source_bytes_in_total", "Bytes read per source.", |s| {
                s.counters.bytes_in.load(Ordering::Relaxed)
            }),
            ("logwarden_source_events_out_total", "Events made from a source's records.", |s| {
                s.events_out.load(Ordering::Relaxed)
            }),
            (
                "logwarden_source_ambiguous_peer_total",
                "Events whose line could name two peers (client text holding an address): source.ip left out, candidates in related.ip.",
                |s| s.ambiguous.load(Ordering::Relaxed),
            ),
            (
                "logwarden_source_quarantined_total",
                "Records set aside: unparsable, too long or malformed.",
                |s| {
                    s.quarantined.load(Ordering::Relaxed)
                        + s.counters.too_long.load(Ordering::Relaxed)
                        + s.counters.malformed.load(Ordering::Relaxed)
                },
            ),
            (
                "logwarden_source_dropped_total",
                "Records dropped because the pipeline was full (UDP).",
                |s| s.counters.dropped.load(Ordering::Relaxed),
            ),
            ("logwarden_source_parsed_total", "Records handed to the parser.", |s| {
                s.parsed.load(Ordering::Relaxed)
            }),
            ("logwarden_source_connections_total", "TCP connections accepted.", |s| {
                s.counters.conns.accepted.load(Ordering::Relaxed)
            }),
            (
                "logwarden_source_connections_rejected_total",
                "TCP connections refused at max_connections, every one busy.",
                |s| s.counters.conns.rejected.load(Ordering::Relaxed),
            ),
            ("logwarden_source_idle_closed_total", "TCP connections closed for idleness.", |s| {
                s.counters.conns.idle_closed.load(Ordering::Relaxed)
            }),
            (
                "logwarden_source_last_record_timestamp_seconds",
                "When the source last delivered a record.",
                |s| (s.last_seen_ns.load(Ordering::Relaxed) / 1_000_000_000).max(0) as u64,
            ),
        ];
        for (name, help, get) in per_source {
            let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
            family(&mut o, name, kind, help);
            for s in &self.sources {
                sample(&mut o, name, &[("source", &s.name)], get(s));
            }
        }
        // Listeners under load: what the connection and request caps did.
        for (name, kind, help, get) in CONN_SERIES {
            let name = format!("logwarden_source_{name}");
            family(&mut o, &name, kind, help);
            for s in &self.sources {
                sample(&mut o, &name, &[("source", &s.name)], get(&s.counters.conns));
            }
        }
        for (name, kind, help, get) in API_CONN_SERIES.iter().chain(&CONN_SERIES) {
            let name = format!("logwarden_api_{name}");
            family(&mut o, &name, kind, help);
            sample(&mut o, &name, &[], get(&self.api_conns));
        }
        // Issue 15's honest ledgers: what a source could not make, set aside or read, and why.
        let unmade: [Series<SourceMetrics>; 3] = [
            (
                "logwarden_source_repeats_capped_total",
                "Events `message repeated N times` lines named beyond the per-line cap (README): counted, not made.",
                |s| s.repeats_capped.load(Ordering::Relaxed),
            ),
            (
                "logwarden_source_tls_failures_total",
                "TLS handshakes that failed or timed out (no client certificate, wrong CA, not TLS).",
                |s| s.counters.tls_failures.load(Ordering::Relaxed),
            ),
            (
                "logwarden_tail_rotated_lost_total",
                "Tailed files rotated while logwarden was stopped and not found among their rotated siblings: their unread end is lost.",
                |s| s.counters.rotated_lost.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, get) in unmade {
            family(&mut o, name, "counter", help);
            for s in &self.sources {
                sample(&mut o, name, &[("source", &s.name)], get(s));
            }
        }
        family(
            &mut o,
            "logwarden_source_quarantined_by_reason_total",
            "counter",
            "Records set aside per source, by reason (they sum to logwarden_source_quarantined_total).",
        );
        for s in &self.sources {
            let mut reasons = s.quarantine_reasons.lock().map(|m| m.clone()).unwrap_or_default();
            for (reason, n) in [
                ("line_too_long", s.counters.too_long.load(Ordering::Relaxed)),
                ("malformed_frame", s.counters.malformed.load(Ordering::Relaxed)),
            ] {
                if n > 0 {
                    *reasons.entry(reason).or_default() += n;
                }
            }
            for (reason, n) in reasons {
                sample(
                    &mut o,
                    "logwarden_source_quarantined_by_reason_total",
                    &[("source", &s.name), ("reason", reason)],
                    n,
                );
            }
        }
        family(
            &mut o,
            "logwarden_source_file_failures_total",
            "counter",
            "Whole files a source could not read (unreadable, bad gzip, not CloudTrail), by reason.",
        );
        for s in &self.sources {
            let failures = s.counters.file_failures.lock().map(|m| m.clone()).unwrap_or_default();
            for (reason, n) in failures {
                sample(
                    &mut o,
                    "logwarden_source_file_failures_total",
                    &[("source", &s.name), ("reason", reason)],
                    n,
                );
            }
        }
        // Read from the kernel at each scrape: these datagrams never reached the source.
        family(
            &mut o,
            "logwarden_source_kernel_dropped_total",
            "counter",
            "Datagrams the kernel dropped before they were read (UDP receive buffer full).",
        );
        for s in &self.sources {
            let inode = s.counters.udp_inode.load(Ordering::Relaxed);
            if let Some(n) = (inode != 0).then(|| kernel_drops(inode)).flatten() {
                sample(&mut o, "logwarden_source_kernel_dropped_total", &[("source", &s.name)], n);
            }
        }
        family(
            &mut o,
            "logwarden_parse_failures_total",
            "counter",
            "Records a parser could not read, by reason.",
        );
        if let Ok(m) = self.parse_failures.lock() {
            for ((parser, reason), n) in m.iter() {
                sample(
                    &mut o,
                    "logwarden_parse_failures_total",
                    &[("parser", parser), ("reason", reason)],
                    *n,
                );
            }
        }
        if let Ok(rules) = self.rules.lock() {
            let per_rule: [Series<RuleStats>; 4] = [
                ("logwarden_rule_matches_total", "Events that matched a rule's condition.", |s| {
                    s.matches
                }),
                ("logwarden_rule_alerts_total", "Alerts a rule raised.", |s| s.alerts),
                ("logwarden_rule_state_groups", "Groups a rule's behaviour tracks now.", |s| {
                    s.behaviour.groups as u64
                }),
                ("logwarden_rule_evictions_total", "Groups evicted at the group limit.", |s| {
                    s.behaviour.evicted
                }),
            ];
            for (name, help, get) in per_rule {
                let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
                family(&mut o, name, kind, help);
                for (id, s) in rules.iter() {
                    sample(&mut o, name, &[("rule", id)], get(s));
                }
            }
        }
        let scan: [(&str, &str, &AtomicU64); 5] = [
            (
                "logwarden_scan_reports_ingested_total",
                "Scan reports ingested from the watched directory.",
                &self.scan.reports_ingested,
            ),
            (
                "logwarden_scan_reports_failed_total",
                "Scan reports set aside because they did not read.",
                &self.scan.reports_failed,
            ),
            ("logwarden_scan_evaluations_total", "Scan evaluations run.", &self.scan.evaluations),
            (
                "logwarden_scan_evaluation_failures_total",
                "Scan evaluations that failed.",
                &self.scan.evaluation_failures,
            ),
            (
                "logwarden_scan_notices_total",
                "Scan violations notified (new, updated, resolved, withdrawn).",
                &self.scan.notices,
            ),
        ];
        for (name, help, v) in scan {
            family(&mut o, name, "counter", help);
            sample(&mut o, name, &[], v.load(Ordering::Relaxed));
        }
        family(
            &mut o,
            "logwarden_alerts_total",
            "counter",
            "Alerts raised (rules and silent sources).",
        );
        sample(&mut o, "logwarden_alerts_total", &[], self.alerts.load(Ordering::Relaxed));
        family(
            &mut o,
            "logwarden_source_silent_alerts_total",
            "counter",
            "Alerts for sources silent past max_silence.",
        );
        sample(
            &mut o,
            "logwarden_source_silent_alerts_total",
            &[],
            self.silent_alerts.load(Ordering::Relaxed),
        );
        if let Ok(rs) = self.router.lock() {
            family(
                &mut o,
                "logwarden_router_alerts_total",
                "counter",
                "Alerts the router took, by what it did.",
            );
            for (what, n) in [
                ("deduplicated", rs.deduplicated),
                ("silenced", rs.silenced),
                ("unrouted", rs.unrouted),
                ("held_back", rs.held_back),
                ("all", rs.alerts),
            ] {
                sample(&mut o, "logwarden_router_alerts_total", &[("decision", what)], n);
            }
            family(
                &mut o,
                "logwarden_notifications_total",
                "counter",
                "Notifications the router made.",
            );
            sample(&mut o, "logwarden_notifications_total", &[], rs.notifications);
        }
        family(
            &mut o,
            "logwarden_outbox_queued_total",
            "counter",
            "Notifications written to the outbox.",
        );
        sample(&mut o, "logwarden_outbox_queued_total", &[], self.queued.load(Ordering::Relaxed));
        family(&mut o, "logwarden_outbox_pending", "gauge", "Notifications waiting for delivery.");
        sample(&mut o, "logwarden_outbox_pending", &[], self.outbox.pending_len().unwrap_or(0));
        family(
            &mut o,
            "logwarden_outbox_dead_letters",
            "gauge",
            "Notifications that spent their retry budget.",
        );
        sample(
            &mut o,
            "logwarden_outbox_dead_letters",
            &[],
            self.outbox.dead_list().map_or(0, |d| d.len() as u64),
        );
        let state = self.outbox.state();
        family(
            &mut o,
            "logwarden_state_healthy",
            "gauge",
            "1 while the state database takes writes; 0 while they fail (a full disk) and the daemon holds what it has and retries.",
        );
        sample(&mut o, "logwarden_state_healthy", &[], u64::from(state.fault().is_none()));
        family(
            &mut o,
            "logwarden_state_write_errors_total",
            "counter",
            "Write transactions of the state database that failed.",
        );
        sample(&mut o, "logwarden_state_write_errors_total", &[], state.write_errors());
        family(
            &mut o,
            "logwarden_state_reopens_total",
            "counter",
            "Times the state database was closed and opened again after a failed write.",
        );
        sample(&mut o, "logwarden_state_reopens_total", &[], state.reopens());
        family(
            &mut o,
            "logwarden_commit_retries_total",
            "counter",
            "Commits of the detection thread that failed and were tried again.",
        );
        sample(
            &mut o,
            "logwarden_commit_retries_total",
            &[],
            self.commit_failures.load(Ordering::Relaxed),
        );
        if let Some(f) = self.forwarder.get() {
            let s = f.stats();
            for (name, kind, help, v) in [
                (
                    "logwarden_forward_buffered_events",
                    "gauge",
                    "Events in the forwarder's buffer.",
                    s.buffered_events,
                ),
                (
                    "logwarden_forward_buffered_bytes",
                    "gauge",
                    "Bytes in the forwarder's buffer.",
                    s.buffered_bytes,
                ),
                (
                    "logwarden_forward_sent_events_total",
                    "counter",
                    "Events the aggregator acknowledged.",
                    s.sent_events,
                ),
                (
                    "logwarden_forward_retries_total",
                    "counter",
                    "Failed sends, each retried.",
                    s.retries,
                ),
                (
                    "logwarden_forward_rejected_total",
                    "counter",
                    "Sends refused with a 4xx (retried slowly).",
                    s.rejected,
                ),
                (
                    "logwarden_forward_full_waits_total",
                    "counter",
                    "Times the full buffer held the sources back.",
                    s.full_waits,
                ),
                (
                    "logwarden_forward_filtered_out_total",
                    "counter",
                    "Events the forward `where:` kept back.",
                    s.filtered_out,
                ),
            ] {
                family(&mut o, name, kind, help);
                sample(&mut o, name, &[], v);
            }
        }
        if let Some(h) = self.outbox.delivery_latency() {
            summary(
                &mut o,
                "logwarden_delivery_latency_seconds",
                "A notification queued in the outbox to accepted by its sink (retries included).",
                &h,
            );
        }
        if let Ok(h) = self.detection_latency_us.lock()
            && let Some(h) = h.as_ref()
        {
            summary(
                &mut o,
                "logwarden_detection_latency_seconds",
                "Receipt of the firing event to its alert queued.",
                h,
            );
        }
        o
    }
}

/// A metric family drawn from each `T`: name, help, value.
type Series<T> = (&'static str, &'static str, fn(&T) -> u64);

/// A listener's family: name after the prefix, type, help, value.
type ConnSeries = (&'static str, &'static str, &'static str, fn(&ConnCounters) -> u64);

/// What every listener reports beside what sources always did (connections accepted,
/// rejected and idle-closed, in the per-source series above).
const CONN_SERIES: [ConnSeries; 6] = [
    ("connections_open", "gauge", "Connections open now.", |c| c.open.load(Ordering::Relaxed)),
    (
        "connections_rejected_per_address_total",
        "counter",
        "Connections refused over max_connections_per_address.",
        |c| c.rejected_per_address.load(Ordering::Relaxed),
    ),
    (
        "connections_evicted_total",
        "counter",
        "Idle connections closed to make room at max_connections.",
        |c| c.evicted.load(Ordering::Relaxed),
    ),
    (
        "accept_errors_total",
        "counter",
        "Failed accepts (out of file descriptors and the like).",
        |c| c.accept_errors.load(Ordering::Relaxed),
    ),
    (
        "connection_errors_total",
        "counter",
        "Connections ended by an error (reset by the peer, a failed TLS handshake, bad HTTP).",
        |c| c.errors.load(Ordering::Relaxed),
    ),
    (
        "requests_busy_total",
        "counter",
        "HTTP requests answered 503 busy (max_in_flight, max_buffered_bytes).",
        |c| c.busy.load(Ordering::Relaxed),
    ),
];

/// The API's share of what sources report in their per-source series.
const API_CONN_SERIES: [ConnSeries; 3] = [
    ("connections_total", "counter", "Connections accepted.", |c| {
        c.accepted.load(Ordering::Relaxed)
    }),
    (
        "connections_rejected_total",
        "counter",
        "Connections refused at max_connections, every one busy.",
        |c| c.rejected.load(Ordering::Relaxed),
    ),
    ("idle_closed_total", "counter", "Connections closed for idleness.", |c| {
        c.idle_closed.load(Ordering::Relaxed)
    }),
];

fn new_histogram() -> Option<Histogram<u64>> {
    // 1 us .. 1 h at 3 significant digits: constant bounds that hdrhistogram accepts.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).ok()
}

fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(o: &mut String, name: &str, labels: &[(&str, &str)], v: u64) {
    o.push_str(name);
    if !labels.is_empty() {
        o.push('{');
        for (i, (k, val)) in labels.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(o, "{k}=\"");
            for c in val.chars() {
                match c {
                    '\\' => o.push_str("\\\\"),
                    '"' => o.push_str("\\\""),
                    '\n' => o.push_str("\\n"),
                    c => o.push(c),
                }
            }
            o.push('"');
        }
        o.push('}');
    }
    let _ = writeln!(o, " {v}");
}

/// A histogram of microseconds as a Prometheus summary in seconds.
fn summary(o: &mut String, name: &str, help: &str, h: &Histogram<u64>) {
    family(o, name, "summary", help);
    for q in [0.5, 0.99, 0.999] {
        let v = if h.is_empty() { 0 } else { h.value_at_quantile(q) };
        let _ = writeln!(o, "{name}{{quantile=\"{q}\"}} {}", v as f64 / 1e6);
    }
    // The sum is approximate: hdrhistogram keeps buckets, not the raw values.
    let sum: f64 =
        h.iter_recorded().map(|v| v.value_iterated_to() as f64 * v.count_at_value() as f64).sum();
    let _ = writeln!(o, "{name}_sum {}", sum / 1e6);
    let _ = writeln!(o, "{name}_count {}", h.len());
}
