//! Shared strings for values that repeat across events (host, dataset, action, process).

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use foldhash::HashMap;

/// An immutable string that is either a static literal or shared by reference count, so that
/// copying a host name or an action onto every event costs no allocation.
#[derive(Clone)]
pub struct Sym(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Sym {
    /// A symbol for a string literal; no allocation.
    pub const fn from_static(s: &'static str) -> Self {
        Sym(Repr::Static(s))
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
        }
    }
}

impl Deref for Sym {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Sym {
    fn from(s: &str) -> Self {
        Sym(Repr::Shared(Arc::from(s)))
    }
}

impl From<String> for Sym {
    fn from(s: String) -> Self {
        Sym(Repr::Shared(Arc::from(s)))
    }
}

impl PartialEq for Sym {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for Sym {}

impl PartialEq<str> for Sym {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Sym {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::hash::Hash for Sym {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

/// Serialized as its text (state snapshots); read back as a shared copy.
impl serde::Serialize for Sym {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Sym {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Sym;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            // From the borrowed text straight into the shared copy: no String in between.
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Sym, E> {
                Ok(Sym::from(v))
            }
        }
        d.deserialize_str(V)
    }
}

impl fmt::Debug for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bounded string interner: host and process names repeat on nearly every line, so a parser
/// keeps one of these and hands out shared copies. When full it starts over rather than grow,
/// because a flood of distinct names (an attacker spoofing hostnames over UDP) must not grow
/// memory without bound.
#[derive(Default)]
pub struct Interner {
    map: HashMap<Box<str>, Sym>,
    /// A direct-mapped cache in front of the map: a host's lines interleave with a handful of
    /// others, which a single last-seen slot misses and a hash lookup pays for every time.
    recent: [Option<Sym>; RECENT],
}

/// Names kept before the interner starts over.
const INTERNER_CAP: usize = 4096;
/// Slots in the direct-mapped cache (a power of two).
const RECENT: usize = 16;

impl Interner {
    /// The shared copy of `s`.
    pub fn intern(&mut self, s: &str) -> Sym {
        let b = s.as_bytes();
        let slot = (b.len()
            ^ usize::from(b.first().copied().unwrap_or(0)).wrapping_mul(31)
            ^ usize::from(b.last().copied().unwrap_or(0)).wrapping_mul(7))
            % RECENT;
        if let Some(sym) = &self.recent[slot]
            && sym.as_str() == s
        {
            return sym.clone();
        }
        let sym = match self.map.get(s) {
            Some(sym) => sym.clone(),
            None => {
                if self.map.len() >= INTERNER_CAP {
                    self.map.clear();
                }
                let sym = Sym::from(s);
                self.map.insert(s.into(), sym.clone());
                sym
            }
        };
        self.recent[slot] = Some(sym.clone());
        sym
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_names_share_storage() {
        let mut i = Interner::default();
        let a = i.intern("web-1");
        let b = i.intern("db-1");
        let c = i.intern("web-1");
        assert_eq!(a, c);
        assert_ne!(a, b);
        match (&a.0, &c.0) {
            (Repr::Shared(x), Repr::Shared(y)) => assert!(Arc::ptr_eq(x, y)),
            _ => panic!("expected shared symbols"),
        }
    }

    #[test]
    fn interner_stays_bounded() {
        let mut i = Interner::default();
        for n in 0..INTERNER_CAP * 3 {
            i.intern(&format!("host-{n}"));
        }
        assert!(i.map.len() <= INTERNER_CAP);
    }
}
