//! Per-table state: the version that makes reads fresh, and the bounded set of keys a
//! write must delete.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::key::{BuildKeyHasher, Key};

/// A set of tracked ids, oldest first out: tracking an id already tracked changes nothing.
pub(crate) struct Tracked<T> {
    set: HashSet<T, BuildKeyHasher>,
    order: VecDeque<T>,
}

impl<T: Copy + Hash + Eq> Tracked<T> {
    fn new() -> Tracked<T> {
        Tracked {
            set: HashSet::default(),
            order: VecDeque::new(),
        }
    }

    /// Tracks `id`; returns the oldest id when more than `max` are now tracked.
    fn track(&mut self, id: T, max: usize) -> Option<T> {
        if !self.set.insert(id) {
            return None;
        }
        self.order.push_back(id);
        if self.order.len() > max {
            self.pop_oldest()
        } else {
            None
        }
    }

    pub(crate) fn pop_oldest(&mut self) -> Option<T> {
        let id = self.order.pop_front()?;
        self.set.remove(&id);
        Some(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// What a table tracks its reads by: the in-memory store finds entries by their key's
/// 64-bit hash (8 bytes per tracked read); a backend needs the whole key to name them.
enum Tracking {
    Hashes(Tracked<u64>),
    Keys(Tracked<Key>),
}

impl Tracking {
    fn new(by_hash: bool) -> Tracking {
        if by_hash {
            Tracking::Hashes(Tracked::new())
        } else {
            Tracking::Keys(Tracked::new())
        }
    }

    fn len(&self) -> usize {
        match self {
            Tracking::Hashes(t) => t.len(),
            Tracking::Keys(t) => t.len(),
        }
    }
}

/// A read a table stopped tracking (its entry must be deleted).
pub(crate) enum Untracked {
    Hash(u64),
    Key(Key),
}

pub(crate) struct Table {
    name: Box<str>,
    version: AtomicU64,
    keys: Mutex<Tracking>,
    max_keys: usize,
    by_hash: bool,
}

impl Table {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The current version. A read captures it before running its query.
    #[inline]
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Makes every entry read before now stale. Called after the write is visible.
    pub(crate) fn bump(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Tracks `key` as read from this table; returns the oldest read when the table now
    /// tracks more than `max_keys` (it is no longer tracked and must be deleted).
    pub(crate) fn track(&self, key: &Key) -> Option<Untracked> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *keys {
            Tracking::Hashes(t) => t
                .track(key.hash_value(), self.max_keys)
                .map(Untracked::Hash),
            Tracking::Keys(t) => t.track(*key, self.max_keys).map(Untracked::Key),
        }
    }

    /// Stops tracking every read and returns the set: O(1), whatever its size.
    fn take(&self) -> Tracking {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *keys, Tracking::new(self.by_hash))
    }

    /// Stops tracking every read and returns their keys (a backend's tables).
    pub(crate) fn take_keys(&self) -> Vec<Key> {
        match self.take() {
            Tracking::Keys(t) => t.order.into(),
            Tracking::Hashes(_) => Vec::new(),
        }
    }

    /// Stops tracking every read and returns their hashes (the in-memory store's tables).
    pub(crate) fn take_hashes(&self) -> Tracked<u64> {
        match self.take() {
            Tracking::Hashes(t) => t,
            Tracking::Keys(_) => Tracked::new(),
        }
    }

    pub(crate) fn tracked(&self) -> usize {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Every table this cache has seen, by name. Tables are never removed: their number is
/// bounded by the table names in the program.
pub(crate) struct Tables {
    /// Looked up on every miss and write: hashed with foldhash, not SipHash (table names
    /// come from the program, not from untrusted input).
    map: RwLock<HashMap<Box<str>, Arc<Table>, foldhash::fast::RandomState>>,
    max_keys: usize,
    /// Whether tables track reads by hash (the in-memory store) or by key (a backend).
    by_hash: bool,
    /// First version of every table. Random per cache instance, so an entry left in a
    /// remote backend by another process (or an earlier run) whose versions this process
    /// does not share never matches by accident.
    epoch: u64,
}

impl Tables {
    pub(crate) fn new(max_keys: usize, by_hash: bool) -> Tables {
        use std::hash::{BuildHasher, RandomState};
        // The top bit stays clear so versions never wrap in practice.
        let epoch = RandomState::new().hash_one(std::time::SystemTime::now()) >> 1;
        Tables {
            map: RwLock::new(HashMap::default()),
            max_keys,
            by_hash,
            epoch,
        }
    }

    pub(crate) fn get(&self, name: &str) -> Arc<Table> {
        if let Some(t) = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return t.clone();
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        map.entry(name.into())
            .or_insert_with(|| {
                Arc::new(Table {
                    name: name.into(),
                    version: AtomicU64::new(self.epoch),
                    keys: Mutex::new(Tracking::new(self.by_hash)),
                    max_keys: self.max_keys,
                    by_hash: self.by_hash,
                })
            })
            .clone()
    }

    /// The table named `name`, if this cache has seen it. A table it has not seen has no
    /// entries and no loads in flight: they resolve their tables before capturing versions.
    pub(crate) fn existing(&self, name: &str) -> Option<Arc<Table>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    pub(crate) fn resolve(&self, names: &[&str]) -> Vec<Arc<Table>> {
        names.iter().map(|n| self.get(n)).collect()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Table>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}
