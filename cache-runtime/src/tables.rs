//! Per-table state: the version that makes reads fresh, and the bounded set of keys a
//! write must delete.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use lru::LruCache;

use crate::key::{BuildKeyHasher, Key};

/// The keys a table tracks, oldest first out.
pub(crate) type Tracked = LruCache<Key, (), BuildKeyHasher>;

pub(crate) struct Table {
    name: Box<str>,
    version: AtomicU64,
    keys: Mutex<Tracked>,
    max_keys: usize,
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

    /// Tracks `key` as read from this table; returns the oldest key when the table now
    /// tracks more than `max_keys` (it is no longer tracked and must be deleted).
    pub(crate) fn track(&self, key: Key) -> Option<Key> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.put(key, ());
        if keys.len() > self.max_keys {
            keys.pop_lru().map(|(k, ())| k)
        } else {
            None
        }
    }

    /// Stops tracking every key and returns them.
    pub(crate) fn take_keys(&self) -> Vec<Key> {
        self.take_tracking().iter().map(|(k, ())| *k).collect()
    }

    /// Stops tracking every key and returns the set itself: O(1), whatever its size.
    pub(crate) fn take_tracking(&self) -> Tracked {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(
            &mut *keys,
            LruCache::unbounded_with_hasher(BuildKeyHasher::default()),
        )
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
    map: RwLock<HashMap<Box<str>, Arc<Table>>>,
    max_keys: usize,
    /// First version of every table. Random per cache instance, so an entry left in a
    /// remote backend by another process (or an earlier run) whose versions this process
    /// does not share never matches by accident.
    epoch: u64,
}

impl Tables {
    pub(crate) fn new(max_keys: usize) -> Tables {
        use std::hash::{BuildHasher, RandomState};
        // The top bit stays clear so versions never wrap in practice.
        let epoch = RandomState::new().hash_one(std::time::SystemTime::now()) >> 1;
        Tables {
            map: RwLock::new(HashMap::new()),
            max_keys,
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
                    keys: Mutex::new(LruCache::unbounded_with_hasher(BuildKeyHasher::default())),
                    max_keys: self.max_keys,
                })
            })
            .clone()
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
