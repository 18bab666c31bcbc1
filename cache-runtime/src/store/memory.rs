//! The in-memory mode: decoded values in a [`ClockMap`], table versions in process, and
//! the sweep that deletes invalidated entries a few at a time.

use std::time::Instant;

use super::map::{Inserted, Lookup, Slot, Tags};
use super::{Captured, ClockMap, Core, Remote, Store};
use crate::key::Key;
use crate::stats::Counter;
use crate::tables::{Backlog, Tables, Tracked};
use crate::{CacheValue, Settings, Ttl};

/// How many swept keys one store checks: enough to keep up with any invalidation rate a
/// store rate can produce, small enough not to show on a miss (~1.7 µs).
const SWEEP_BATCH: usize = 32;

pub(crate) struct MemoryStore {
    map: ClockMap,
    /// Tables track reads by their key's hash: the map finds entries by it.
    tables: Tables<u64>,
    /// Reads of invalidated tables whose (stale) entries the map still holds; drained a
    /// few at a time by later stores.
    sweep: Backlog<Tracked<u64>>,
}

impl MemoryStore {
    pub(crate) fn new(settings: &Settings) -> MemoryStore {
        MemoryStore {
            map: ClockMap::new(settings.max_entries, settings.max_bytes),
            tables: Tables::new(settings.max_keys_per_table, settings.max_tables),
            sweep: Backlog::default(),
        }
    }

    /// The current in-process versions of `tables` (a near cache's capture).
    pub(crate) fn versions(&self, tables: &[&str]) -> Vec<u64> {
        self.tables.versions(tables)
    }

    /// Makes every entry read from `tables` stale, counting nothing (a near cache's copies:
    /// the shared backend's invalidation is what counts).
    pub(crate) fn drop_tables(&self, tables: &[&str]) {
        for name in tables {
            if let Some(tracked) = self.tables.invalidate(name)
                && !tracked.is_empty()
            {
                self.sweep.push(tracked);
            }
        }
    }

    /// Removes every entry, and makes every load in flight stale.
    pub(crate) fn clear_now(&self) {
        self.tables.invalidate_all();
        self.sweep.with(Vec::clear);
        self.map.clear();
    }

    /// Deletes up to `budget` entries of invalidated (or forgotten) tables, if they are
    /// still the stale ones (a key refilled since keeps its fresh entry). Each store tracks
    /// one key per table it read and sweeps at least twice that, so the sweep never falls
    /// behind.
    fn sweep(&self, budget: usize) {
        if self.sweep.is_empty() && self.tables.nothing_forgotten() {
            return;
        }
        let hashes = self.sweep.with(|sweep| {
            sweep.extend(self.tables.take_forgotten());
            let mut hashes = Vec::new();
            while hashes.len() < budget {
                let Some(tracked) = sweep.last_mut() else {
                    break;
                };
                match tracked.pop_oldest() {
                    Some(hash) => hashes.push(hash),
                    None => drop(sweep.pop()),
                }
            }
            hashes
        });
        let now = Instant::now();
        for hash in hashes {
            self.map
                .remove_hash_if(hash, |slot| slot.fault(|| now).is_some());
        }
    }
}

impl Store for MemoryStore {
    #[inline]
    fn hit<V: CacheValue>(&self, core: &Core, key: &Key, early: u64) -> Option<V> {
        match self.map.get::<V>(key, early) {
            Lookup::Hit(value) => {
                core.counters.bump(Counter::Hits);
                Some(value)
            }
            // The miss path serves it or refreshes it (`crate::stale`).
            Lookup::Miss | Lookup::Aging => None,
            Lookup::Fault(counter) => {
                core.counters.discarded(counter);
                None
            }
            Lookup::WrongType => {
                core.decode_error(key, &"entry holds a value of another type");
                None
            }
        }
    }

    fn peek<V: CacheValue>(&self, key: &Key) -> Option<(V, Option<Instant>)> {
        self.map.peek(key)
    }

    /// Everything in memory was answered by [`MemoryStore::hit`].
    async fn lookup<V: CacheValue>(&self, _: &Core, _: &Key, _: &[&str]) -> Option<V> {
        None
    }

    async fn capture(&self, _: &Core, tables: &[&str]) -> Captured {
        Captured::known(self.tables.versions(tables))
    }

    async fn store<V: CacheValue>(
        &self,
        core: &Core,
        key: Key,
        names: &[&str],
        captured: &Captured,
        ttl: Ttl,
        value: &V,
    ) {
        // Otherwise the entry would be stale on arrival.
        let Some(tables) = captured.still_current(&self.tables, names) else {
            return;
        };
        let Ok(deadline) = ttl.extended(captured.keep).deadline(Instant::now()) else {
            return;
        };
        let slot = Slot::new(
            Box::new(value.clone()),
            weight(value),
            deadline,
            Tags::new(&tables, &captured.versions),
        );
        match self.map.insert(key, slot) {
            Inserted::Stored { evicted } => {
                if evicted > 0 {
                    core.counters.add(Counter::Evictions, evicted);
                }
            }
            // Another live key has the same 64-bit hash: leave it be.
            Inserted::Collision => return,
            Inserted::TooLarge => {
                core.counters.bump(Counter::Oversized);
                oversized(&key, core.settings.max_bytes);
                return;
            }
            Inserted::NoRoom { evicted } => {
                core.counters.add(Counter::Evictions, evicted);
                return;
            }
        }
        for table in &tables {
            if let Some(hash) = table.track(&key) {
                core.counters.bump(Counter::TableEvictions);
                self.map.remove_hash_if(hash, |_| true);
            }
        }
        self.sweep(SWEEP_BATCH.max(2 * tables.len()));
    }

    /// The version bump is what makes entries stale; deleting them only frees memory. So
    /// the writer pays O(1) per table: the tracked keys are handed to the sweep, which
    /// later stores drain a few at a time.
    fn invalidate_local(&self, core: &Core, names: &[&str], named: bool) -> Remote {
        for name in names {
            let tracked = self.tables.invalidate(name);
            // Counted per table, not per row tag.
            if (named || tracked.is_some()) && crate::rows::is_table(name) {
                core.counters.bump(Counter::Invalidations);
            }
            let Some(tracked) = tracked else { continue };
            if !tracked.is_empty() {
                self.sweep.push(tracked);
            }
        }
        Remote::default()
    }

    async fn invalidate_remote(&self, _: &Core, _: &[&str], _: Remote) {}

    async fn clear(&self, _: &Core) {
        self.clear_now();
    }

    fn entry_count(&self) -> Option<usize> {
        Some(self.map.len())
    }

    fn memory_bytes(&self) -> Option<usize> {
        Some(self.map.bytes())
    }

    fn tracked_keys(&self, table: &str) -> usize {
        self.tables.tracked(table)
    }

    fn table_count(&self) -> usize {
        self.tables.len()
    }

    fn tables_forgotten(&self) -> u64 {
        self.tables.forgotten_count()
    }

    fn mode(&self) -> &'static str {
        "memory"
    }
}

/// What a value costs in the in-memory store: its encoded size (about its heap size for the
/// rows, strings and collections a query returns) plus a fixed cost per entry.
fn weight<V: CacheValue>(value: &V) -> usize {
    struct Count(usize);
    impl crate::key::encoder::Sink for Count {
        fn put(&mut self, bytes: &[u8]) {
            self.0 += bytes.len();
        }
    }
    let mut count = Count(std::mem::size_of::<V>());
    // A value that fails to serialize would fail for a backend too; weigh what was seen.
    let _ = crate::key::encoder::encode(&mut count, value);
    count.0.saturating_add(super::ENTRY_OVERHEAD)
}

/// Logged once per process: the value is over a quarter of `max_bytes`, so it is not kept.
#[cold]
fn oversized(key: &Key, max_bytes: usize) {
    static LOGGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !LOGGED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(target: "cache_runtime", key = %key, max_bytes,
            "a value larger than a quarter of max_bytes is not cached (counted in \
             Stats::oversized; logged once)");
    }
}
