//! Geolocation of source addresses from a MaxMind DB file (not built yet).

/// An open geolocation database.
#[derive(Debug)]
pub struct Geo;
