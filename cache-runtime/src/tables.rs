//! Per-table state: the version that makes reads fresh, and the bounded set of keys a
//! write must delete.
//!
//! Versions come from one clock per cache, so no version value is ever given out twice,
//! to any table: a table forgotten to stay within `max_tables` (its versions bumped once
//! more, so every entry that holds it is stale) and met again later starts at a version no
//! entry anywhere was tagged with.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

impl<T> Tracked<T> {
    /// The tracked ids, oldest first.
    pub(crate) fn into_oldest_first(self) -> VecDeque<T> {
        self.order
    }
}

/// What a table tracks its reads by: the in-memory store finds entries by their key's
/// 64-bit hash (8 bytes per tracked read); a backend needs the whole key to name them.
pub(crate) trait TrackId: Copy + Hash + Eq + Send + Sync + 'static {
    fn of(key: &Key) -> Self;
}

impl TrackId for u64 {
    #[inline]
    fn of(key: &Key) -> u64 {
        key.hash_value()
    }
}

impl TrackId for Key {
    #[inline]
    fn of(key: &Key) -> Key {
        *key
    }
}

pub(crate) struct Table<T> {
    name: Box<str>,
    version: AtomicU64,
    /// The cache's version clock.
    clock: Arc<AtomicU64>,
    keys: Mutex<Tracked<T>>,
    max_keys: usize,
    /// Looked up since the CLOCK hand of `Tables` last passed.
    referenced: AtomicBool,
}

impl<T: TrackId> Table<T> {
    /// The current version. A read captures it before running its query.
    #[inline]
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Makes every entry read before now stale. Called after the write is visible. The
    /// new version is one no table of this cache ever had.
    pub(crate) fn bump(&self) {
        let next = self.clock.fetch_add(1, Ordering::AcqRel) + 1;
        self.version.store(next, Ordering::Release);
    }

    /// Tracks `key` as read from this table; returns the oldest read when the table now
    /// tracks more than `max_keys` (it is no longer tracked and its entry must go).
    pub(crate) fn track(&self, key: &Key) -> Option<T> {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .track(T::of(key), self.max_keys)
    }

    /// Stops tracking every read and returns them: O(1), whatever their number.
    pub(crate) fn take(&self) -> Tracked<T> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *keys, Tracked::new())
    }

    pub(crate) fn tracked(&self) -> usize {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The tables this cache knows, by name, at most `max_tables` of them: past it the least
/// recently used one is forgotten (second chance, as the entry store).
pub(crate) struct Tables<T> {
    /// Looked up on every miss and write: hashed with foldhash, not SipHash (table names
    /// come from the program, not from untrusted input).
    map: RwLock<HashMap<Box<str>, Arc<Table<T>>, foldhash::fast::RandomState>>,
    /// Tables in the order they were met, for the CLOCK hand.
    ring: Mutex<VecDeque<Arc<Table<T>>>>,
    max_keys: usize,
    max_tables: usize,
    /// The version clock. It starts at a random value per cache instance, so an entry left
    /// in a remote backend by another process (or an earlier run) whose versions this
    /// process does not share never matches by accident.
    clock: Arc<AtomicU64>,
    /// What forgotten tables tracked: their entries are stale, and a sweep deletes them.
    forgotten: Backlog<Tracked<T>>,
    forgotten_count: AtomicU64,
}

impl<T: TrackId> Tables<T> {
    pub(crate) fn new(max_keys: usize, max_tables: usize) -> Tables<T> {
        use std::hash::{BuildHasher, RandomState};
        // The top bit stays clear so versions never wrap in practice.
        let epoch = RandomState::new().hash_one(std::time::SystemTime::now()) >> 1;
        Tables {
            map: RwLock::new(HashMap::default()),
            ring: Mutex::new(VecDeque::new()),
            max_keys,
            max_tables: max_tables.max(1),
            clock: Arc::new(AtomicU64::new(epoch)),
            forgotten: Backlog::default(),
            forgotten_count: AtomicU64::new(0),
        }
    }

    pub(crate) fn get(&self, name: &str) -> Arc<Table<T>> {
        if let Some(t) = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            if !t.referenced.load(Ordering::Relaxed) {
                t.referenced.store(true, Ordering::Relaxed);
            }
            return t.clone();
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = map.get(name) {
            return t.clone();
        }
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.max_tables {
            self.forget_one(&mut map, &mut ring);
        }
        let table = Arc::new(Table {
            name: name.into(),
            version: AtomicU64::new(self.clock.fetch_add(1, Ordering::AcqRel) + 1),
            clock: self.clock.clone(),
            keys: Mutex::new(Tracked::new()),
            max_keys: self.max_keys,
            referenced: AtomicBool::new(true),
        });
        map.insert(name.into(), table.clone());
        ring.push_back(table.clone());
        table
    }

    /// Forgets the first table the hand finds not looked up since it last passed: bumped
    /// once more (every entry holding it, and every load that captured it, is stale), its
    /// tracked reads handed to the sweep.
    fn forget_one(
        &self,
        map: &mut HashMap<Box<str>, Arc<Table<T>>, foldhash::fast::RandomState>,
        ring: &mut VecDeque<Arc<Table<T>>>,
    ) {
        for turn in 0..=2 * ring.len() {
            let Some(table) = ring.pop_front() else {
                return;
            };
            if turn < 2 * map.len() && table.referenced.swap(false, Ordering::Relaxed) {
                ring.push_back(table);
                continue;
            }
            map.remove(&table.name);
            table.bump();
            let tracked = table.take();
            self.forgotten.push(tracked);
            self.forgotten_count.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }

    /// The tables forgotten so far.
    pub(crate) fn forgotten_count(&self) -> u64 {
        self.forgotten_count.load(Ordering::Relaxed)
    }

    /// The tracked reads of forgotten tables: their entries are stale and may be deleted.
    pub(crate) fn take_forgotten(&self) -> Vec<Tracked<T>> {
        self.forgotten.take()
    }

    /// Whether no forgotten table's reads wait to be deleted (one atomic load).
    pub(crate) fn nothing_forgotten(&self) -> bool {
        self.forgotten.is_empty()
    }

    /// The table named `name`, if this cache knows it. A table it does not know has no
    /// entries that may be served and no loads in flight: they resolve their tables before
    /// capturing versions, and a forgotten table was bumped on the way out.
    pub(crate) fn existing(&self, name: &str) -> Option<Arc<Table<T>>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// The tables named `names`, or `None` when one of them is not known (any more): a
    /// store after a load finds the tables its capture met, without meeting a forgotten
    /// one anew (it was bumped on the way out: the load's entry is stale anyway).
    pub(crate) fn existing_all(&self, names: &[&str]) -> Option<Vec<Arc<Table<T>>>> {
        names.iter().map(|n| self.existing(n)).collect()
    }

    /// The current versions of `names` (a read captures them before its query runs).
    pub(crate) fn versions(&self, names: &[&str]) -> Vec<u64> {
        names.iter().map(|n| self.get(n).version()).collect()
    }

    /// Bumps the table named `name` and hands over the keys it tracked; `None` for a table
    /// this cache never saw (or forgot), which has nothing to make stale (see
    /// [`Tables::existing`]). It is not created: writes to ever-new table names would push
    /// the tables reads use out.
    pub(crate) fn invalidate(&self, name: &str) -> Option<Tracked<T>> {
        let table = self.existing(name)?;
        table.bump();
        Some(table.take())
    }

    /// Bumps every table and forgets what they tracked.
    pub(crate) fn invalidate_all(&self) {
        let all: Vec<Arc<Table<T>>> = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for table in all {
            table.bump();
            drop(table.take());
        }
    }

    /// How many keys the table named `name` tracks.
    pub(crate) fn tracked(&self, name: &str) -> usize {
        self.existing(name).map_or(0, |t| t.tracked())
    }

    pub(crate) fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Work that writers hand to later stores (reads whose entries are stale): a list whose
/// empty case, the usual one, costs a store one atomic load and no lock.
pub(crate) struct Backlog<T> {
    /// Whether `items` is non-empty; written under its lock.
    any: AtomicBool,
    items: Mutex<Vec<T>>,
}

impl<T> Default for Backlog<T> {
    fn default() -> Backlog<T> {
        Backlog {
            any: AtomicBool::new(false),
            items: Mutex::new(Vec::new()),
        }
    }
}

impl<T> Backlog<T> {
    pub(crate) fn push(&self, item: T) {
        self.with(|items| items.push(item));
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }

    pub(crate) fn take(&self) -> Vec<T> {
        if self.is_empty() {
            return Vec::new();
        }
        self.with(std::mem::take)
    }

    /// Runs `f` on the items, under the lock.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Vec<T>) -> R) -> R {
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        let result = f(&mut items);
        self.any.store(!items.is_empty(), Ordering::Release);
        result
    }
}
