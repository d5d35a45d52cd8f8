//! Detector state stays at most 160 bytes per tracked group key, measured at one million keys
//! with a counting allocator (its own test binary, so no other test's allocations count).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicIsize, Ordering};

use logwarden::event::{Event, Geo, Outcome, Timestamp};
use logwarden::rule::behaviour::Services;
use logwarden::rule::load::load_str;

/// Bytes currently allocated.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const KEYS: u32 = 1_000_000;
/// Requested bytes per key allowed (the allocator's own headers come on top of these).
const LIMIT: f64 = 160.0;

fn event(i: u32) -> Event {
    Event {
        // 100 µs apart: a million events span 100 s, inside every window, so none expires.
        timestamp: Timestamp(1_700_000_000_000_000_000 + i64::from(i) * 100_000),
        dataset: Some("sshd".into()),
        action: Some("ssh_login".into()),
        outcome: Some(Outcome::Failure),
        // A different public address and user per event: a million groups for every group field.
        source_ip: Some(IpAddr::V4(Ipv4Addr::from(0x2d00_0000 + i))),
        user_name: Some(format!("user{i}").into()),
        source_geo: Some(Box::new(Geo {
            country_iso_code: Some("DE".into()),
            city_name: None,
            location: Some((50.0 + f64::from(i % 90) / 10.0, 8.0)),
        })),
        host_name: Some("web1".into()),
        ..Event::default()
    }
}

fn bytes_per_key(behaviour: &str) -> f64 {
    let text = format!(
        "id: r\ntitle: r\nseverity: low\ndetection:\n  failed: {{event.dataset: sshd}}\n  other: {{event.action: x}}\n  condition: failed or other\n{behaviour}"
    );
    let rules = load_str(&text, "r.yml").unwrap_or_else(|e| panic!("{e:?}"));
    let Some(b) = rules[0].behaviour.clone() else { panic!("no behaviour: {behaviour}") };
    let mut detector = b.start(&Services::default());
    let mut fired = Vec::new();
    // Warm-up outside the measurement: the first groups size the table's initial buckets.
    let before = LIVE.load(Ordering::Relaxed);
    for i in 0..KEYS {
        let e = event(i);
        detector.observe(&e, 1, &mut fired);
        fired.clear();
    }
    let after = LIVE.load(Ordering::Relaxed);
    assert_eq!(detector.stats().groups, KEYS as usize, "{behaviour}");
    assert_eq!(detector.stats().evicted, 0);
    (after - before) as f64 / f64::from(KEYS)
}

#[test]
fn every_behaviour_keeps_at_most_160_bytes_per_group_at_a_million_groups() {
    let cases = [
        (
            "threshold",
            "threshold:\n  group_by: [source.ip]\n  count: 5\n  window: 10m\n  max_groups: 2000000\n",
        ),
        (
            "threshold distinct",
            "threshold:\n  group_by: [source.ip]\n  distinct: user.name\n  count: 5\n  window: 10m\n  max_groups: 2000000\n",
        ),
        (
            "sequence",
            "sequence:\n  group_by: [source.ip]\n  within: 30m\n  steps: [{condition: failed, count: 5}, {condition: other}]\n  max_groups: 2000000\n",
        ),
        ("travel", "travel:\n  group_by: [user.name]\n  max_groups: 2000000\n"),
        (
            "spike",
            "spike:\n  group_by: [user.name]\n  window: 1h\n  baseline: 7d\n  factor: 3\n  max_groups: 2000000\n",
        ),
        (
            "new_value",
            "new_value:\n  group_by: [user.name]\n  field: source.ip\n  learning: 7d\n  max_groups: 2000000\n",
        ),
    ];
    let mut report = Vec::new();
    for (name, yaml) in cases {
        let per_key = bytes_per_key(yaml);
        report.push(format!("{name}: {per_key:.0} B/key"));
    }
    eprintln!("{}", report.join(", "));
    for line in &report {
        let n: f64 = line
            .rsplit(": ")
            .next()
            .and_then(|s| s.trim_end_matches(" B/key").parse().ok())
            .unwrap_or(f64::MAX);
        assert!(n <= LIMIT, "{}", report.join(", "));
    }
}
