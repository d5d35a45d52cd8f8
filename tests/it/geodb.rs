//! Tiny City-format MaxMind DBs for tests, written with `mmdb-writer`.
//!
//! Shared by the library's unit tests (`src/geo.rs` includes this file by path) and the
//! integration tests, so both read databases built the same way, in the GeoLite2-City layout
//! (`city.names.en`, `country.iso_code`, `location.latitude/longitude`).
// Each includer uses a different subset of the places.
#![allow(dead_code)]

use mmdb_writer::ipnet::IpNet;
use mmdb_writer::{Value, Writer};

/// One network and where the database says it is.
#[derive(Clone, Copy, Debug)]
pub struct Place {
    /// `address/prefix`.
    pub network: &'static str,
    /// ISO 3166-1 alpha-2 country code.
    pub iso: &'static str,
    /// English city name.
    pub city: &'static str,
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
}

/// Brisbane, where CrowdSec's test database puts 1.2.3.4.
pub const BRISBANE: Place =
    Place { network: "1.2.3.0/24", iso: "AU", city: "Brisbane", lat: -27.4679, lon: 153.0281 };
/// Ashburn, Virginia: a US data-centre town, for 9.8.8.8.
pub const ASHBURN: Place =
    Place { network: "9.8.8.0/24", iso: "US", city: "Ashburn", lat: 39.0437, lon: -77.4875 };
/// New York City.
pub const NEW_YORK: Place =
    Place { network: "203.0.113.0/24", iso: "US", city: "New York", lat: 40.7128, lon: -74.0060 };
/// London.
pub const LONDON: Place =
    Place { network: "198.51.100.0/24", iso: "GB", city: "London", lat: 51.5074, lon: -0.1278 };
/// An IPv6 network in Berlin.
pub const BERLIN_V6: Place =
    Place { network: "2001:db8:1::/48", iso: "DE", city: "Berlin", lat: 52.52, lon: 13.405 };

/// The bytes of a City database holding `places`.
pub fn city_db(places: &[Place]) -> Vec<u8> {
    let mut w = Writer::new("GeoLite2-City");
    for p in places {
        let net: IpNet = p.network.parse().unwrap_or_else(|e| panic!("{}: {e}", p.network));
        let record = Value::map([
            ("city", Value::map([("names", Value::map([("en", Value::from(p.city))]))])),
            ("country", Value::map([("iso_code", Value::from(p.iso))])),
            (
                "location",
                Value::map([("latitude", Value::from(p.lat)), ("longitude", Value::from(p.lon))]),
            ),
        ]);
        w.insert_value(net, record).unwrap_or_else(|e| panic!("{}: {e}", p.network));
    }
    w.to_bytes().unwrap_or_else(|e| panic!("writing the test database: {e}"))
}
