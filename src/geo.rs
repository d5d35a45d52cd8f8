//! Geolocation of source addresses from a MaxMind DB file (GeoLite2-City or DB-IP City).
//!
//! The database is read whole into memory once; lookups walk its search tree and decode only
//! the city, country and location of the record. Login sources repeat (the same users from
//! the same offices and homes), so answers, misses included, are kept in a bounded LRU cache.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use compact_str::CompactString;
use lru::LruCache;
use maxminddb::{MaxMindDbError, Reader, geoip2};

/// Addresses whose answer is cached: at about 100 bytes an entry, under 7 MB.
const CACHE_ENTRIES: NonZeroUsize = match NonZeroUsize::new(65_536) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

/// A geolocation database that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file could not be read.
    #[error("{}: cannot read the GeoIP database", path.display())]
    Read {
        /// The database path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is not a MaxMind DB.
    #[error("{}: not a MaxMind DB file", path.display())]
    Invalid {
        /// The database path.
        path: PathBuf,
        /// What the reader found wrong.
        #[source]
        source: MaxMindDbError,
    },
    /// Bytes given directly are not a MaxMind DB.
    #[error("not a MaxMind DB")]
    InvalidBytes(#[source] MaxMindDbError),
}

impl GeoError {
    /// A short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            GeoError::Read { .. } => "read",
            GeoError::Invalid { .. } | GeoError::InvalidBytes(_) => "invalid",
        }
    }
}

/// Where the database places an address.
#[derive(Clone, Debug, PartialEq)]
pub struct Location {
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
    /// ISO 3166-1 alpha-2 country code.
    pub country_iso_code: Option<CompactString>,
    /// English city name.
    pub city_name: Option<CompactString>,
}

/// An open geolocation database.
pub struct Geo {
    reader: Reader<Vec<u8>>,
    cache: Mutex<LruCache<IpAddr, Option<Location>>>,
}

impl fmt::Debug for Geo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Geo")
            .field("database_type", &self.reader.metadata().database_type)
            .finish_non_exhaustive()
    }
}

impl Geo {
    /// Reads the database at `path`.
    pub fn open(path: &Path) -> Result<Geo, GeoError> {
        let bytes = std::fs::read(path)
            .map_err(|source| GeoError::Read { path: path.to_path_buf(), source })?;
        let reader = Reader::from_source(bytes)
            .map_err(|source| GeoError::Invalid { path: path.to_path_buf(), source })?;
        Ok(Geo::with_reader(reader))
    }

    /// A database from its bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Geo, GeoError> {
        Reader::from_source(bytes).map(Geo::with_reader).map_err(GeoError::InvalidBytes)
    }

    fn with_reader(reader: Reader<Vec<u8>>) -> Geo {
        Geo { reader, cache: Mutex::new(LruCache::new(CACHE_ENTRIES)) }
    }

    /// Where `ip` is, or `None` when the database has no record for it, or a record without
    /// coordinates (country-level entries): a distance needs both.
    pub fn lookup(&self, ip: IpAddr) -> Option<Location> {
        // IPv4-mapped IPv6 is how dual-stack sockets report IPv4 peers; the IPv4 record is the
        // one that exists in every database.
        let ip = match ip {
            IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        // A poisoned lock only means another lookup panicked; the cache holds whole entries,
        // so it is still consistent.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = cache.get(&ip) {
            return hit.clone();
        }
        let found = self.find(ip);
        cache.put(ip, found.clone());
        found
    }

    fn find(&self, ip: IpAddr) -> Option<Location> {
        // Errors (an IPv6 address in an IPv4-only database, a corrupt record) are answered as
        // "unknown": one bad record must not stop the pipeline, and travel counts the skip.
        let result = self.reader.lookup(ip).ok()?;
        let city: geoip2::City<'_> = result.decode().ok()??;
        Some(Location {
            lat: city.location.latitude?,
            lon: city.location.longitude?,
            country_iso_code: city.country.iso_code.map(CompactString::from),
            city_name: city.city.names.english.map(CompactString::from),
        })
    }
}

/// Test databases, shared with the integration tests.
#[cfg(test)]
#[path = "../tests/it/geodb.rs"]
pub(crate) mod geodb;

#[cfg(test)]
mod tests {
    use super::geodb::{BERLIN_V6, LONDON, NEW_YORK, city_db};
    use super::*;

    fn db() -> Geo {
        Geo::from_bytes(city_db(&[NEW_YORK, LONDON, BERLIN_V6])).unwrap()
    }

    #[test]
    fn lookups_return_the_locations_written() {
        let g = db();
        let ny = g.lookup("203.0.113.9".parse().unwrap()).unwrap();
        assert_eq!(ny.lat, NEW_YORK.lat);
        assert_eq!(ny.lon, NEW_YORK.lon);
        assert_eq!(ny.country_iso_code.as_deref(), Some("US"));
        assert_eq!(ny.city_name.as_deref(), Some("New York"));
        let london = g.lookup("198.51.100.200".parse().unwrap()).unwrap();
        assert_eq!(london.city_name.as_deref(), Some("London"));
        assert_eq!(london.country_iso_code.as_deref(), Some("GB"));
        let berlin = g.lookup("2001:db8:1::42".parse().unwrap()).unwrap();
        assert_eq!((berlin.lat, berlin.lon), (BERLIN_V6.lat, BERLIN_V6.lon));
    }

    #[test]
    fn ipv4_mapped_addresses_find_the_ipv4_record() {
        let g = db();
        let ny = g.lookup("::ffff:203.0.113.9".parse().unwrap()).unwrap();
        assert_eq!(ny.city_name.as_deref(), Some("New York"));
    }

    #[test]
    fn a_miss_is_none_and_cached_answers_repeat() {
        let g = db();
        for _ in 0..2 {
            assert_eq!(g.lookup("8.8.8.8".parse().unwrap()), None);
            assert_eq!(g.lookup("2001:db8:2::1".parse().unwrap()), None);
            assert!(g.lookup("203.0.113.1".parse().unwrap()).is_some());
        }
    }

    #[test]
    fn open_reads_a_file_and_bad_files_name_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("city.mmdb");
        std::fs::write(&good, city_db(&[LONDON])).unwrap();
        assert!(Geo::open(&good).unwrap().lookup("198.51.100.1".parse().unwrap()).is_some());

        let bad = dir.path().join("bad.mmdb");
        std::fs::write(&bad, b"not a database").unwrap();
        let e = Geo::open(&bad).unwrap_err();
        assert_eq!(e.kind(), "invalid");
        assert!(e.to_string().contains(&*bad.to_string_lossy()), "{e}");

        let missing = dir.path().join("missing.mmdb");
        let e = Geo::open(&missing).unwrap_err();
        assert_eq!(e.kind(), "read");
        assert!(e.to_string().contains(&*missing.to_string_lossy()), "{e}");

        assert_eq!(Geo::from_bytes(b"junk".to_vec()).unwrap_err().kind(), "invalid");
    }
}
