//! `travel`: two successful logins of one user from places too far apart for the time
//! between them (impossible travel).
//!
//! Each group keeps only its last login: place, address, time and where the event came from.
//! A new login is compared with it by great-circle distance and implied speed, then takes its
//! place. Only the last login is compared, not every earlier one, as CrowdSec's
//! `impossible-travel` scenario and most SIEMs do: a trip that is plausible leg by leg is
//! plausible travel.

use std::net::IpAddr;
use std::sync::Arc;

use compact_str::CompactString;
use serde_json::{Value, json};

use super::snapshot::Formats;
use super::{BehaviourError, Detector, EventRef, Fired, GroupState, GroupTable, Limits, Stats};
use crate::event::{Event, Sym, Timestamp};
use crate::geo::Geo;
use crate::rule::duration::Span;
use crate::rule::group::GroupBy;
use crate::rule::spec::TravelSpec;
use crate::snapshot::{Out, PathIds, Paths, SnapshotError};

/// Snapshot headers: groups are their last login (see `super::snapshot` and [`LoginRecord`]).
const SNAPSHOT: Formats = Formats::new("travel", b'v', 2);

/// Default fastest plausible speed: a long-haul airliner's cruise.
pub const DEFAULT_MAX_SPEED_KMH: f64 = 900.0;
/// Default shortest distance worth an alert: city-level geolocation is often off by a few
/// hundred kilometres, and a VPN or mobile carrier can move a user's address across a country.
pub const DEFAULT_MIN_DISTANCE_KM: f64 = 500.0;
/// Mean Earth radius (IUGG), for haversine distances.
const EARTH_RADIUS_KM: f64 = 6371.0088;
/// Half the Earth's circumference: no two places are farther apart.
const MAX_DISTANCE_KM: f64 = 20_015.1;
const NANOS_PER_HOUR: f64 = 3_600e9;

/// A compiled `travel` block.
#[derive(Clone, Debug)]
pub struct Config {
    /// The group key fields.
    pub group_by: GroupBy,
    /// Fastest plausible speed in km/h.
    pub max_speed_kmh: f64,
    /// Shortest distance in km that can alert.
    pub min_distance_km: f64,
    /// Source networks never considered.
    pub ignore: Vec<Net>,
    /// Lateness and group bounds.
    pub limits: Limits,
}

impl Config {
    /// Compiles a `travel` block.
    pub fn compile(spec: &TravelSpec) -> Result<Config, BehaviourError> {
        let group_by = if spec.group_by.is_empty() {
            GroupBy::new(&["user.name".to_owned()])
        } else {
            GroupBy::new(&spec.group_by)
        };
        let max_speed_kmh = spec.max_speed_kmh.unwrap_or(DEFAULT_MAX_SPEED_KMH);
        if !(max_speed_kmh.is_finite() && max_speed_kmh > 0.0) {
            return Err(BehaviourError::new("max_speed_kmh", "must be a number above zero"));
        }
        let min_distance_km = spec.min_distance_km.unwrap_or(DEFAULT_MIN_DISTANCE_KM);
        if !(min_distance_km.is_finite() && min_distance_km >= 0.0) {
            return Err(BehaviourError::new("min_distance_km", "must be a number, zero or more"));
        }
        let ignore = spec
            .ignore_cidrs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Net::parse(s).ok_or_else(|| {
                    BehaviourError::new(
                        format!("ignore_cidrs[{i}]"),
                        format!("`{s}` is not an address or address/prefix"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Config {
            group_by,
            max_speed_kmh,
            min_distance_km,
            ignore,
            limits: Limits::compile(spec)?,
        })
    }

    /// How long a group's last login can matter: past the time the longest possible trip
    /// takes at the plausible speed, no login can be impossible travel from it.
    fn idle(&self) -> Span {
        let nanos = MAX_DISTANCE_KM / self.max_speed_kmh * NANOS_PER_HOUR;
        // `as` saturates: a speed near zero keeps groups (bounded by max_groups) for ever.
        Span((nanos.ceil() as i64).saturating_add(self.limits.lateness.nanos()))
    }
}

/// An IPv4 or IPv6 network, kept as an IPv6 prefix (IPv4 as IPv4-mapped) so one comparison
/// serves both families. (So an IPv6 block covering `::ffff:0:0/96`, such as `::/0`, covers
/// IPv4 too.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    net: u128,
    mask: u128,
}

impl Net {
    /// `address/prefix`, or a bare address as a single-host network.
    pub fn parse(s: &str) -> Option<Net> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u32>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        // An IPv4 prefix counts from bit 96 of its IPv4-mapped form.
        let (width, base) = if addr.is_ipv4() { (32, 96) } else { (128, 0) };
        let prefix = prefix.unwrap_or(width);
        if prefix > width {
            return None;
        }
        let prefix = base + prefix;
        let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
        Some(Net { net: bits(addr) & mask, mask })
    }

    /// Whether `ip` is inside.
    pub fn contains(self, ip: IpAddr) -> bool {
        bits(ip) & self.mask == self.net
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Addresses that say nothing about where a user is: private, loopback, link-local, carrier
/// NAT, unique-local and unspecified. A VPN concentrator or jump host logging them would
/// otherwise "travel" between the office and the user's home.
fn is_internal(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(a) => {
            let [o0, o1, ..] = a.octets();
            a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_unspecified()
                // 100.64.0.0/10, carrier-grade NAT (RFC 6598).
                || (o0 == 100 && (o1 & 0xc0) == 64)
        }
        IpAddr::V6(a) => {
            a.is_loopback()
                || a.is_unspecified()
                || a.is_unique_local()
                || a.is_unicast_link_local()
        }
    }
}

/// A group's last login: what the next one is compared with, and what an alert reports of it.
#[derive(Clone, Debug)]
struct Login {
    ts: Timestamp,
    ip: Option<IpAddr>,
    lat: f64,
    lon: f64,
    /// ISO 3166-1 alpha-2, kept as its two letters: a string would take 24 bytes of a state
    /// that must stay small.
    country: Option<[u8; 2]>,
    city: Option<CompactString>,
    path: Option<Sym>,
    offset: Option<u64>,
}

impl Login {
    fn event_ref(&self) -> EventRef {
        EventRef { timestamp: self.ts, path: self.path.clone(), offset: self.offset }
    }

    fn json(&self) -> Value {
        json!({
            "ip": self.ip.map(|ip| ip.to_string()),
            "country_iso_code": self.country.as_ref().and_then(|c| std::str::from_utf8(c).ok()),
            "city_name": self.city.as_deref(),
            "lat": self.lat,
            "lon": self.lon,
        })
    }
}

/// A group's state: its last login, once it has one.
#[derive(Debug, Default)]
struct Last(Option<Login>);

impl GroupState for Last {
    fn newest(&self) -> Timestamp {
        self.0.as_ref().map_or(Timestamp(i64::MIN), |l| l.ts)
    }
}

/// A login as a snapshot holds it: time, address, latitude, longitude, country, city, path
/// number, offset.
type LoginRecord<C> =
    (Timestamp, Option<IpAddr>, f64, f64, Option<[u8; 2]>, Option<C>, u32, Option<u64>);

impl super::snapshot::GroupRecord for Last {
    type Out<'a> = Option<LoginRecord<&'a str>>;
    type In = Option<LoginRecord<CompactString>>;

    fn out<'a>(&'a self, paths: &'a PathIds) -> Self::Out<'a> {
        self.0.as_ref().map(|l| {
            let path = paths.id(l.path.as_ref());
            (l.ts, l.ip, l.lat, l.lon, l.country, l.city.as_deref(), path, l.offset)
        })
    }

    fn from_in(r: Self::In, paths: &Paths) -> Result<Last, SnapshotError> {
        let Some((ts, ip, lat, lon, country, city, path, offset)) = r else {
            return Ok(Last(None));
        };
        let path = paths.get(path)?;
        Ok(Last(Some(Login { ts, ip, lat, lon, country, city, path, offset })))
    }
}

/// The `travel` state machine.
#[derive(Debug)]
pub struct Travel {
    config: Config,
    geo: Option<Arc<Geo>>,
    groups: GroupTable<Last>,
    late: u64,
    ungrouped: u64,
    skipped: u64,
}

impl Travel {
    /// A fresh state machine; without `geo`, only events that carry `source.geo.location`
    /// can be placed.
    pub fn new(config: Config, geo: Option<Arc<Geo>>) -> Travel {
        let groups = GroupTable::new(config.limits.max_groups);
        Travel { config, geo, groups, late: 0, ungrouped: 0, skipped: 0 }
    }

    /// Where the event's login came from, or `None` when it cannot or must not be placed.
    fn login(&self, e: &Event) -> Option<Login> {
        if let Some(ip) = e.source_ip
            && (is_internal(ip) || self.config.ignore.iter().any(|n| n.contains(ip)))
        {
            return None;
        }
        // The event's own location wins: an upstream enricher (or the log itself) may know
        // better than this database.
        let (lat, lon, country, city) =
            match e.source_geo.as_deref().and_then(|g| Some((g, g.location?))) {
                Some((g, (lat, lon))) => {
                    (lat, lon, country_code(g.country_iso_code.as_deref()), g.city_name.clone())
                }
                None => {
                    let l = self.geo.as_ref()?.lookup(e.source_ip?)?;
                    (l.lat, l.lon, country_code(l.country_iso_code.as_deref()), l.city_name)
                }
            };
        // An event's own location is input like any other field: a latitude of 400 is no
        // place, and must count as unknown rather than as a trip across the planet.
        if !(lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0) {
            return None;
        }
        Some(Login {
            ts: e.timestamp,
            ip: e.source_ip,
            lat,
            lon,
            country,
            city,
            path: e.log_file_path.clone(),
            offset: e.log_offset,
        })
    }
}

/// A two-letter country code; anything else is not one and is left out of alerts.
fn country_code(s: Option<&str>) -> Option<[u8; 2]> {
    match *s?.as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => Some([a, b]),
        _ => None,
    }
}

/// Great-circle distance in km (haversine).
fn distance_km(a: &Login, b: &Login) -> f64 {
    let (p1, p2) = (a.lat.to_radians(), b.lat.to_radians());
    let dp = p2 - p1;
    let dl = (b.lon - a.lon).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.clamp(0.0, 1.0).sqrt().asin()
}

/// Snapshots (see `super::snapshot`).
impl Travel {
    /// Reads a full snapshot or, with `changes`, a change set into the state.
    fn load(&mut self, bytes: &[u8], changes: bool) -> Result<(), SnapshotError> {
        let check = |_: &Last| Ok(());
        let extra = |_: &()| Ok(());
        let [late, ungrouped, skipped, _] = super::snapshot::load::<Last, ()>(
            SNAPSHOT,
            &mut self.groups,
            bytes,
            changes,
            check,
            extra,
        )?;
        (self.late, self.ungrouped, self.skipped) = (late, ungrouped, skipped);
        Ok(())
    }
}

impl Detector for Travel {
    fn observe(&mut self, e: &Event, _steps: u64, out: &mut Vec<Fired>) {
        let Some(key) = self.config.group_by.key(e) else {
            self.ungrouped += 1;
            return;
        };
        let Some(login) = self.login(e) else {
            self.skipped += 1;
            return;
        };
        let idle = self.config.idle();
        let lateness = self.config.limits.lateness;
        let last = self.groups.entry(&key, e.timestamp, idle, Last::default);
        let Some(prev) = &last.0 else {
            last.0 = Some(login);
            return;
        };
        if login.ts < lateness.before(prev.ts) {
            self.late += 1;
            return;
        }
        let newer = login.ts >= prev.ts;
        // The same address twice is the same place, whatever the database says today.
        let same_ip = login.ip.is_some() && login.ip == prev.ip;
        if !same_ip {
            let d = distance_km(prev, &login);
            let elapsed = login.ts.0.abs_diff(prev.ts.0);
            let speed =
                if elapsed == 0 { f64::INFINITY } else { d / (elapsed as f64 / NANOS_PER_HOUR) };
            if d > self.config.min_distance_km && speed > self.config.max_speed_kmh {
                let (from, to) = if newer { (prev, &login) } else { (&login, prev) };
                out.push(Fired {
                    key: key.clone(),
                    count: 2,
                    first_seen: from.ts,
                    last_seen: to.ts,
                    events: vec![from.event_ref(), to.event_ref()],
                    detail: Some(json!({
                        "from": from.json(),
                        "to": to.json(),
                        "distance_km": (d * 10.0).round() / 10.0,
                        "elapsed_s": (elapsed as f64 / 1e6).round() / 1e3,
                        // Whole km/h; `null` for two logins at the same instant.
                        "speed_kmh": speed.is_finite().then(|| speed.round() as u64),
                    })),
                });
            }
        }
        // A late login within lateness is judged against the newer one but does not replace
        // it: the next login must be compared with where the user was last.
        if newer {
            last.0 = Some(login);
        }
    }

    fn stats(&self) -> Stats {
        self.groups.stats(self.late, self.ungrouped, self.skipped)
    }

    fn snapshot_to(&self, out: &mut Out<'_>) -> Result<(), SnapshotError> {
        let counters = [self.late, self.ungrouped, self.skipped, 0];
        super::snapshot::write(SNAPSHOT, &self.groups, counters, &(), out)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.load(bytes, false)
    }

    fn snapshot_changes_to(&self, out: &mut Out<'_>) -> Result<(), SnapshotError> {
        let counters = [self.late, self.ungrouped, self.skipped, 0];
        super::snapshot::write_changes(SNAPSHOT, &self.groups, counters, &(), out)
    }

    fn apply_changes(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.load(bytes, true)
    }

    fn mark(&mut self) {
        self.groups.mark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Geo as EventGeo;

    use crate::geo::geodb;

    const NEW_YORK: (f64, f64) = (geodb::NEW_YORK.lat, geodb::NEW_YORK.lon);
    const LONDON: (f64, f64) = (geodb::LONDON.lat, geodb::LONDON.lon);
    const HOUR: i64 = 3600;

    fn spec() -> TravelSpec {
        TravelSpec {
            group_by: vec![],
            max_speed_kmh: None,
            min_distance_km: None,
            ignore_cidrs: vec![],
            lateness: Some("5m".into()),
            max_groups: Some(2),
        }
    }

    fn travel() -> Travel {
        Travel::new(Config::compile(&spec()).unwrap(), None)
    }

    /// A login by `user` at `secs` from `ip`, placed at `at` by an upstream enricher.
    fn login(secs: i64, user: &str, ip: &str, at: Option<(f64, f64)>) -> Event {
        Event {
            timestamp: Timestamp::from_secs_nanos(secs, 0),
            source_ip: ip.parse().ok(),
            source_geo: at.map(|location| {
                Box::new(EventGeo { location: Some(location), ..EventGeo::default() })
            }),
            user_name: Some(user.into()),
            log_offset: Some(secs as u64),
            ..Event::default()
        }
    }

    fn feed(t: &mut Travel, events: &[Event]) -> Vec<Fired> {
        let mut out = Vec::new();
        for e in events {
            t.observe(e, 0, &mut out);
        }
        out
    }

    #[test]
    fn new_york_to_london_in_an_hour_alerts() {
        let mut t = travel();
        let fired = feed(
            &mut t,
            &[
                login(1_000, "alice", "203.0.113.5", Some(NEW_YORK)),
                login(1_000 + HOUR, "alice", "198.51.100.7", Some(LONDON)),
            ],
        );
        assert_eq!(fired.len(), 1);
        let f = &fired[0];
        assert_eq!(f.key, "alice");
        assert_eq!(f.count, 2);
        assert_eq!(f.first_seen, Timestamp::from_secs_nanos(1_000, 0));
        assert_eq!(f.last_seen, Timestamp::from_secs_nanos(1_000 + HOUR, 0));
        let offsets: Vec<_> = f.events.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [Some(1_000), Some(1_000 + HOUR as u64)]);
        let d = f.detail.as_ref().unwrap();
        let km = d["distance_km"].as_f64().unwrap();
        assert!((km - 5570.0).abs() < 55.7, "{km}");
        assert_eq!(d["speed_kmh"].as_u64().unwrap(), km.round() as u64);
        assert_eq!(d["elapsed_s"], 3600.0);
        assert_eq!(d["from"]["ip"], "203.0.113.5");
        assert_eq!(d["to"]["ip"], "198.51.100.7");
        assert_eq!(d["to"]["lat"], LONDON.0);
        assert_eq!(d["to"]["lon"], LONDON.1);
    }

    #[test]
    fn the_same_trip_in_eight_hours_does_not() {
        let mut t = travel();
        let fired = feed(
            &mut t,
            &[
                login(0, "alice", "203.0.113.5", Some(NEW_YORK)),
                login(8 * HOUR, "alice", "198.51.100.7", Some(LONDON)),
            ],
        );
        assert!(fired.is_empty());
        assert_eq!(t.stats().groups, 1);
    }

    #[test]
    fn four_hundred_km_in_ten_minutes_is_under_the_minimum_distance() {
        // Paris to south of Lyon: about 420 km, 2500 km/h implied.
        let trip = [
            login(0, "alice", "203.0.113.5", Some((48.8566, 2.3522))),
            login(600, "alice", "198.51.100.7", Some((45.27, 4.1))),
        ];
        assert!(feed(&mut travel(), &trip).is_empty());
        // The speed alone would alert: with a 300 km minimum it does.
        let mut s = spec();
        s.min_distance_km = Some(300.0);
        let fired = feed(&mut Travel::new(Config::compile(&s).unwrap(), None), &trip);
        let km = fired[0].detail.as_ref().unwrap()["distance_km"].as_f64().unwrap();
        assert!((400.0..450.0).contains(&km), "{km}");
    }

    #[test]
    fn simultaneous_logins_far_apart_have_no_speed() {
        let mut t = travel();
        let fired = feed(
            &mut t,
            &[
                login(0, "alice", "203.0.113.5", Some(NEW_YORK)),
                login(0, "alice", "198.51.100.7", Some(LONDON)),
            ],
        );
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].detail.as_ref().unwrap()["speed_kmh"], Value::Null);
    }

    #[test]
    fn private_and_ignored_addresses_are_skipped() {
        let mut s = spec();
        s.ignore_cidrs = vec!["198.51.100.0/24".into()];
        let mut t = Travel::new(Config::compile(&s).unwrap(), None);
        let fired = feed(
            &mut t,
            &[
                login(0, "alice", "203.0.113.5", Some(NEW_YORK)),
                login(60, "alice", "10.1.2.3", Some(LONDON)),
                login(61, "alice", "100.64.0.1", Some(LONDON)),
                login(62, "alice", "fd00::1", Some(LONDON)),
                login(63, "alice", "::ffff:192.168.1.1", Some(LONDON)),
                login(64, "alice", "198.51.100.7", Some(LONDON)),
            ],
        );
        assert!(fired.is_empty());
        assert_eq!(t.stats().skipped, 5);
    }

    #[test]
    fn the_same_address_never_alerts_and_moves_the_state_on() {
        let mut t = travel();
        // The database moved the address between the two logins; the user did not move.
        let fired = feed(
            &mut t,
            &[
                login(0, "alice", "203.0.113.5", Some(NEW_YORK)),
                login(60, "alice", "203.0.113.5", Some(LONDON)),
                // Compared with the London login, not the New York one.
                login(120, "alice", "198.51.100.7", Some(LONDON)),
            ],
        );
        assert!(fired.is_empty());
    }

    #[test]
    fn unknown_locations_are_counted_as_skipped() {
        let mut t = travel();
        // No event location and no database.
        let fired = feed(&mut t, &[login(0, "alice", "203.0.113.5", None)]);
        assert!(fired.is_empty());
        assert_eq!(t.stats().skipped, 1);
        assert_eq!(t.stats().groups, 0);
        // Coordinates off the globe are no location either.
        for bad in [(400.0, 0.0), (0.0, 200.0), (f64::NAN, 0.0)] {
            assert!(feed(&mut t, &[login(1, "alice", "203.0.113.5", Some(bad))]).is_empty());
        }
        assert_eq!(t.stats().skipped, 4);
        assert_eq!(t.stats().groups, 0);
    }

    #[test]
    fn locations_come_from_the_database_when_the_event_has_none() {
        let db = geodb::city_db(&[geodb::NEW_YORK, geodb::LONDON]);
        let geo = Arc::new(Geo::from_bytes(db).unwrap());
        let mut t = Travel::new(Config::compile(&spec()).unwrap(), Some(geo));
        let fired = feed(
            &mut t,
            &[
                login(0, "alice", "203.0.113.5", None),
                login(HOUR, "alice", "198.51.100.7", None),
                login(HOUR + 1, "alice", "8.8.8.8", None),
            ],
        );
        assert_eq!(fired.len(), 1);
        assert_eq!(t.stats().skipped, 1);
    }

    #[test]
    fn late_logins_beyond_lateness_are_counted_and_within_it_compared_not_kept() {
        let mut t = travel();
        let fired = feed(
            &mut t,
            &[
                login(10 * HOUR, "alice", "203.0.113.5", Some(NEW_YORK)),
                // An hour behind: beyond the 5 minutes allowed.
                login(9 * HOUR, "alice", "198.51.100.7", Some(LONDON)),
            ],
        );
        assert!(fired.is_empty());
        assert_eq!(t.stats().late, 1);

        let fired = feed(
            &mut t,
            &[
                // Two minutes behind, from London: compared, and it is impossible.
                login(10 * HOUR - 120, "alice", "198.51.100.7", Some(LONDON)),
                // New York is still the last login, so a New York login later is fine.
                login(10 * HOUR + 60, "alice", "203.0.113.9", Some(NEW_YORK)),
            ],
        );
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].first_seen, Timestamp::from_secs_nanos(10 * HOUR - 120, 0));
        assert_eq!(fired[0].last_seen, Timestamp::from_secs_nanos(10 * HOUR, 0));
        let d = fired[0].detail.as_ref().unwrap();
        assert_eq!(d["from"]["ip"], "198.51.100.7");
        assert_eq!(d["to"]["ip"], "203.0.113.5");
    }

    #[test]
    fn group_limit_evicts_and_counts() {
        let mut t = travel();
        let fired = feed(
            &mut t,
            &[
                login(0, "alice", "203.0.113.5", Some(NEW_YORK)),
                login(1, "bob", "203.0.113.5", Some(NEW_YORK)),
                login(2, "carol", "203.0.113.5", Some(NEW_YORK)),
                // Alice was evicted: her London login starts her over.
                login(3, "alice", "198.51.100.7", Some(LONDON)),
            ],
        );
        assert!(fired.is_empty());
        assert_eq!(t.stats().groups, 2);
        assert_eq!(t.stats().evicted, 2);
    }

    #[test]
    fn missing_group_field_is_counted_as_ungrouped() {
        let mut t = travel();
        let mut e = login(0, "alice", "203.0.113.5", Some(NEW_YORK));
        e.user_name = None;
        assert!(feed(&mut t, &[e]).is_empty());
        assert_eq!(t.stats().ungrouped, 1);
    }

    #[test]
    fn group_state_stays_small() {
        // The table's LRU node adds the key (24 bytes) and two links (16), its index about 17:
        // with this, under 170 bytes a tracked group (the target is 200).
        assert!(std::mem::size_of::<Last>() <= 112, "{}", std::mem::size_of::<Last>());
    }

    #[test]
    fn compile_defaults_and_names_bad_keys() {
        let c = Config::compile(&spec()).unwrap();
        assert_eq!(c.group_by.names(), ["user.name"]);
        assert_eq!(c.max_speed_kmh, 900.0);
        assert_eq!(c.min_distance_km, 500.0);
        let bad = |f: fn(&mut TravelSpec)| {
            let mut s = spec();
            f(&mut s);
            Config::compile(&s).unwrap_err().key
        };
        assert_eq!(bad(|s| s.max_speed_kmh = Some(0.0)), "max_speed_kmh");
        assert_eq!(bad(|s| s.min_distance_km = Some(-1.0)), "min_distance_km");
        assert_eq!(
            bad(|s| s.ignore_cidrs = vec!["10.0.0.0/8".into(), "10/x".into()]),
            "ignore_cidrs[1]"
        );
        assert_eq!(bad(|s| s.ignore_cidrs = vec!["10.0.0.0/33".into()]), "ignore_cidrs[0]");
        assert_eq!(bad(|s| s.lateness = Some("soon".into())), "lateness");
    }

    /// Logins of three users (two groups kept: evictions) bouncing between New York, London
    /// and Tokyo at plausible and impossible speeds, some late, some without a place.
    fn trips() -> Vec<(Event, u64)> {
        let places = [Some(NEW_YORK), Some(LONDON), Some((35.68, 139.69)), None];
        (0..40i64)
            .map(|i| {
                let user = ["alice", "bob", "carol"][(i % 3) as usize];
                let t = i * 1800 - if i % 7 == 0 { 200 } else { 0 };
                let ip = format!("198.51.100.{}", i % 5);
                let mut e = login(t, user, &ip, places[(i * 5 % 4) as usize]);
                if i % 2 == 1 {
                    e.log_file_path = Some(Sym::from("/var/log/auth.log"));
                    e.source_geo.iter_mut().for_each(|g| g.city_name = Some("Somewhere".into()));
                    e.source_geo.iter_mut().for_each(|g| g.country_iso_code = Some("GB".into()));
                }
                (e, 0)
            })
            .collect()
    }

    #[test]
    fn a_restored_snapshot_resumes_exactly() {
        let make = || -> Box<dyn Detector> { Box::new(travel()) };
        super::super::snapshot::check::resumes_identically(make, &trips());
    }

    #[test]
    fn a_base_and_change_sets_resume_exactly() {
        let mut s = spec();
        s.max_groups = Some(10);
        let make = move || -> Box<dyn Detector> {
            Box::new(Travel::new(Config::compile(&s).unwrap(), None))
        };
        // Many users, so that most change sets leave most groups out.
        let mut events = trips();
        for (i, (e, _)) in events.iter_mut().enumerate() {
            e.user_name = Some(format!("user{}", i % 8).into());
        }
        super::super::snapshot::check::changes_resume_identically_everywhere(make, &events);
    }

    #[test]
    fn a_damaged_snapshot_is_an_error_not_a_panic() {
        let make = || -> Box<dyn Detector> { Box::new(travel()) };
        super::super::snapshot::check::survives_damage(make, &trips()[..12]);
    }

    #[test]
    fn networks_match_both_families() {
        let n = Net::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.200.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        let n = Net::parse("2001:db8::/32").unwrap();
        assert!(n.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!n.contains("10.0.0.1".parse().unwrap()));
        assert!(Net::parse("192.0.2.1").unwrap().contains("192.0.2.1".parse().unwrap()));
        assert!(!Net::parse("192.0.2.1").unwrap().contains("192.0.2.2".parse().unwrap()));
    }
}
