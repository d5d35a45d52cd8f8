//! Kept events name their file by a number: the file paths a host's events come from are a
//! handful, but a behaviour may keep a million events, and a shared path costs 24 bytes per
//! event where its number costs 4. The numbers come from one table for the process; paths are
//! never removed from it (there are as many as files were read).

use std::cell::RefCell;
use std::sync::{LazyLock, PoisonError, RwLock};

use crate::event::Sym;

/// A file path's number in the process's table; [`PathId::NONE`] when an event has no path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PathId(u32);

#[derive(Default)]
struct Table {
    /// Path of number `i + 1`.
    syms: Vec<Sym>,
    ids: foldhash::HashMap<Sym, u32>,
}

static TABLE: LazyLock<RwLock<Table>> = LazyLock::new(Default::default);

thread_local! {
    /// The path numbered last on this thread: consecutive events nearly always share one, and
    /// comparing it costs less than a lock and a hash. A clone, so the text stays its own.
    static LAST: RefCell<Option<(Sym, PathId)>> = const { RefCell::new(None) };
}

impl PathId {
    /// No path.
    pub const NONE: PathId = PathId(0);

    /// The number of `path`, given one if it is new.
    pub fn of(path: Option<&Sym>) -> PathId {
        let Some(p) = path else { return PathId::NONE };
        let cached = LAST.with(|l| match &*l.borrow() {
            Some((s, id)) if s.as_str() == p.as_str() => Some(*id),
            _ => None,
        });
        if let Some(id) = cached {
            return id;
        }
        let id = Self::lookup(p);
        LAST.with(|l| *l.borrow_mut() = Some((p.clone(), id)));
        id
    }

    fn lookup(p: &Sym) -> PathId {
        if let Some(&id) = TABLE.read().unwrap_or_else(PoisonError::into_inner).ids.get(p) {
            return PathId(id);
        }
        let mut t = TABLE.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(&id) = t.ids.get(p) {
            return PathId(id);
        }
        // Four billion distinct files cannot have been read: saturate rather than wrap.
        let id = u32::try_from(t.syms.len() + 1).unwrap_or(u32::MAX);
        t.syms.push(p.clone());
        t.ids.insert(p.clone(), id);
        PathId(id)
    }

    /// The number itself (0 for none): a key for caches.
    pub fn raw(self) -> u32 {
        self.0
    }

    /// The path, if any.
    pub fn sym(self) -> Option<Sym> {
        let i = self.0.checked_sub(1)?;
        TABLE.read().unwrap_or_else(PoisonError::into_inner).syms.get(i as usize).cloned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_same_text_gets_the_same_number_from_any_copy_and_thread() {
        let a = Sym::from("/var/log/path-id-test-a.log");
        let b = Sym::from("/var/log/path-id-test-b.log");
        let ia = PathId::of(Some(&a));
        let ib = PathId::of(Some(&b));
        assert_ne!(ia, ib);
        assert_ne!(ia, PathId::NONE);
        // Another allocation of the same text, on another thread.
        let again =
            std::thread::spawn(|| PathId::of(Some(&Sym::from("/var/log/path-id-test-a.log"))))
                .join()
                .unwrap();
        assert_eq!(again, ia);
        assert_eq!(PathId::of(Some(&a)), ia, "the cached last path");
        assert_eq!(ia.sym().as_deref(), Some("/var/log/path-id-test-a.log"));
        assert_eq!(ib.sym().as_deref(), Some("/var/log/path-id-test-b.log"));
        assert_eq!(PathId::of(None), PathId::NONE);
        assert_eq!(PathId::NONE.sym(), None);
    }
}
