//! The in-memory store's map: decoded values in a concurrent map whose reads take no lock and
//! write nothing shared, bounded by a CLOCK (second-chance) eviction policy.
//!
//! Reads go straight to a [`papaya`] map: a hit is a lock-free probe, a check of the
//! entry's deadline and table versions, and a clone of the value. The only write a hit may
//! make is setting the entry's reference bit, and only when it is not set already, so
//! repeated hits on an entry leave its cache line shared between cores.
//!
//! Writes (stores, removals, evictions) lock one of up to 64 shards, chosen by the key's
//! hash. A shard owns a ring of positions, one per entry it holds, and at most `per_shard`
//! of them: a new entry takes a free position, or the CLOCK hand sweeps the ring, clearing
//! reference bits, until it finds an entry not read since the hand last passed (or one
//! that can no longer be served), and evicts it. Every change to the map happens under the
//! shard lock of its key, so the ring and the map always agree and the bound is exact.
//!
//! The ring holds keys' 64-bit hashes, not the keys: a store whose key hash equals a
//! different live key's is skipped (a miss, never a wrong value), so a hash names at most
//! one entry. Reads compare whole keys, so a collision can cost a miss, never serve
//! another key's value.
//!
//! Bytes are bounded too. Each entry weighs its value's encoded size plus a fixed cost; the
//! store evicts until a new entry fits in `max_bytes`, and refuses a value over a quarter
//! of it. The map hands removed entries to its collector, which frees them in batches
//! (once no reader can hold them), so a removed value's memory outlives its removal. For
//! small values that lag is bounded by the collector's batch (32 entries per thread, each
//! under [`HEAVY`]). Heavier values are kept out of the map, in a table of their own whose
//! entries are dropped the moment they are removed: their memory goes with them (or with
//! the last hit still cloning one), so large values never linger.

use std::any::Any;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use papaya::{Equivalent, Guard};

use crate::key::{BuildKeyHasher, Key};
use crate::stats::Counter;
use crate::tables::Table;

/// A table as the in-memory store tracks it: by key hash.
type MemTable = Table<u64>;

/// A ring position with no entry. Key hashes are never 0.
const EMPTY: u64 = 0;

/// A cached value with what decides whether it may still be served.
pub(crate) struct Slot {
    value: Box<dyn Any + Send + Sync>,
    /// Nanoseconds after [`epoch`] plus one at which the entry expires; 0 for never.
    deadline: u64,
    tags: Tags,
    /// Its weight in bytes, counted in the store's bytes while it is in the map.
    weight: u32,
    /// This entry's position in its shard's ring (low 31 bits; fixed while the entry is in
    /// the map) and, in the top bit, whether it was read since the CLOCK hand last passed
    /// (set by reads, cleared by the hand). One word, so a slot stays small; the position
    /// never changes while readers see the slot, so the bit is set with a plain store.
    state: AtomicU32,
}

/// The top bit of [`Slot::state`].
const REFERENCED: u32 = 1 << 31;

impl Slot {
    /// The entry's position in its shard's ring.
    #[inline]
    fn pos(&self) -> u32 {
        self.state.load(Ordering::Relaxed) & !REFERENCED
    }
}

/// In place of the value of a [`HEAVY`] entry: where it is in the out-of-line table.
struct OutOfLine(u64);

/// What an entry costs beyond its value's encoded bytes: the slot, the key, the map's and
/// the ring's share.
pub(crate) const ENTRY_OVERHEAD: usize = 160;

/// The versions of the tables an entry was read from, as they were before its query ran.
pub(crate) enum Tags {
    /// Most queries read one table: no allocation.
    One(Tag),
    Many(Box<[Tag]>),
}

pub(crate) struct Tag {
    pub(crate) table: Arc<MemTable>,
    pub(crate) version: u64,
}

impl Tags {
    pub(crate) fn new(tables: &[Arc<MemTable>], versions: &[u64]) -> Tags {
        let mut tags = tables.iter().zip(versions).map(|(table, &version)| Tag {
            table: table.clone(),
            version,
        });
        match (tables.len(), tags.next()) {
            (1, Some(tag)) => Tags::One(tag),
            (_, first) => Tags::Many(first.into_iter().chain(tags).collect()),
        }
    }

    fn as_slice(&self) -> &[Tag] {
        match self {
            Tags::One(tag) => std::slice::from_ref(tag),
            Tags::Many(tags) => tags,
        }
    }
}

/// The process's reference point for compact deadlines.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn nanos_since_epoch(at: Instant) -> u64 {
    // Saturates after 584 years of uptime.
    u64::try_from(at.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX - 1)
}

impl Slot {
    /// A slot weighing `weight` bytes (see [`ENTRY_OVERHEAD`]).
    pub(crate) fn new(
        value: Box<dyn Any + Send + Sync>,
        weight: usize,
        deadline: Option<Instant>,
        tags: Tags,
    ) -> Slot {
        Slot {
            value,
            deadline: deadline.map_or(0, |d| nanos_since_epoch(d) + 1),
            tags,
            weight: u32::try_from(weight).unwrap_or(u32::MAX),
            state: AtomicU32::new(0),
        }
    }

    /// Why this entry may no longer be served (past its TTL, or read before a write to one
    /// of its tables), counted under that reason; `None` while it may. `now` is only
    /// called for an entry that has a TTL.
    #[inline]
    pub(crate) fn fault(&self, now: impl FnOnce() -> Instant) -> Option<Counter> {
        if self.deadline != 0 && nanos_since_epoch(now()) + 1 >= self.deadline {
            Some(Counter::Expired)
        } else if self
            .tags
            .as_slice()
            .iter()
            .any(|t| t.table.version() != t.version)
        {
            Some(Counter::Stale)
        } else {
            None
        }
    }
}

/// What a read found.
pub(crate) enum Lookup<V> {
    Hit(V),
    Miss,
    /// An entry that may no longer be served; it was removed.
    Fault(Counter),
    /// An entry still usable, but within `early` of its deadline: not a plain hit (see
    /// `crate::stale`). It was left in place.
    Aging,
    /// An entry holding another type (one key reused for two value types by hand); it was
    /// removed.
    WrongType,
}

/// Looks an entry up by its key's hash alone: a hash names at most one entry.
struct ByHash(u64);

impl Hash for ByHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

impl Equivalent<Key> for ByHash {
    fn equivalent(&self, key: &Key) -> bool {
        key.hash_value() == self.0
    }
}

#[repr(align(128))]
struct Shard(Mutex<Clock>);

#[derive(Default)]
struct Clock {
    /// The hash of the entry at each position, or [`EMPTY`].
    ring: Vec<u64>,
    /// Positions whose entry was removed, taken before the hand evicts anything.
    free: Vec<u32>,
    hand: usize,
}

pub(crate) struct ClockMap {
    map: papaya::HashMap<Key, Slot, BuildKeyHasher>,
    shards: Box<[Shard]>,
    mask: usize,
    per_shard: usize,
    max_bytes: usize,
    /// The weight of the entries in the map.
    bytes: AtomicUsize,
    /// The values of [`HEAVY`] entries, dropped as soon as their entry is removed.
    heavy: Mutex<HashMap<u64, Arc<dyn Any + Send + Sync>>>,
    next_heavy: AtomicU64,
}

/// The outcome of [`ClockMap::insert`].
pub(crate) enum Inserted {
    /// Stored, after evicting this many other entries.
    Stored { evicted: u64 },
    /// Not stored: another live key has the same 64-bit hash.
    Collision,
    /// Not stored: heavier than a quarter of `max_bytes`.
    TooLarge,
    /// Not stored: no room could be made (the bytes are held by entries being freed, or by
    /// other shards' entries being written).
    NoRoom { evicted: u64 },
}

/// Entries at least this heavy keep their value out of the map (see the module's header).
const HEAVY: u32 = 64 << 10;

impl ClockMap {
    /// Holds at most `capacity` entries in total (`capacity >= 1`): each shard holds
    /// `capacity / shards`, so the bound is exact and never exceeded; and at most
    /// `max_bytes` of entry weight, freed memory included.
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> ClockMap {
        let capacity = capacity.max(1);
        let count = crate::sharded::shard_count(capacity);
        ClockMap {
            // Grows on demand: sizing it for `capacity` up front would allocate for
            // entries that may never exist.
            map: papaya::HashMap::builder()
                .hasher(BuildKeyHasher::default())
                .build(),
            shards: (0..count)
                .map(|_| Shard(Mutex::new(Clock::default())))
                .collect(),
            mask: count - 1,
            // Positions share a word with the reference bit: 31 bits.
            per_shard: (capacity / count).min((u32::MAX / 2) as usize),
            max_bytes: max_bytes.max(1),
            bytes: AtomicUsize::new(0),
            heavy: Mutex::new(HashMap::new()),
            next_heavy: AtomicU64::new(0),
        }
    }

    /// The weight of the entries stored, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    fn over_budget(&self, weight: usize) -> bool {
        self.bytes.load(Ordering::Relaxed) + weight > self.max_bytes
    }

    /// Locks the shard owning the keys with this hash. A poisoned lock is recovered: the
    /// ring is consistent between the statements that change it.
    fn lock(&self, hash: u64) -> MutexGuard<'_, Clock> {
        // High bits: the map indexes with the low ones.
        self.shards[((hash >> 40) as usize) & self.mask]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads `key`: a clone of its value if it holds a `V` that may still be served, and
    /// is not within `early` nanoseconds of its deadline (then [`Lookup::Aging`]). Entries
    /// that may not be served are removed.
    #[inline]
    pub(crate) fn get<V: Clone + 'static>(&self, key: &Key, early: u64) -> Lookup<V> {
        let guard = self.map.guard();
        let Some(slot) = self.map.get(key, &guard) else {
            return Lookup::Miss;
        };
        if let Some(counter) = slot.fault(Instant::now) {
            self.remove_exact(key, slot, &guard);
            return Lookup::Fault(counter);
        }
        // Load first: a hit on an entry already marked writes nothing. An aging entry is
        // read too: the eviction hand must not take a hot key while it is refreshed.
        let state = slot.state.load(Ordering::Relaxed);
        if state & REFERENCED == 0 {
            slot.state.store(state | REFERENCED, Ordering::Relaxed);
        }
        if early != 0
            && slot.deadline != 0
            && nanos_since_epoch(Instant::now())
                .saturating_add(1)
                .saturating_add(early)
                >= slot.deadline
        {
            return Lookup::Aging;
        }
        if let Some(value) = slot.value.downcast_ref::<V>() {
            return Lookup::Hit(value.clone());
        }
        if let Some(OutOfLine(id)) = slot.value.downcast_ref::<OutOfLine>() {
            let value = self.heavy_table().get(id).cloned();
            match value {
                Some(value) => {
                    if let Some(value) = value.downcast_ref::<V>() {
                        return Lookup::Hit(value.clone());
                    }
                }
                // Removed meanwhile.
                None => return Lookup::Miss,
            }
        }
        self.remove_exact(key, slot, &guard);
        Lookup::WrongType
    }

    /// `key`'s value and the deadline it is kept until, if it may still be served, whatever
    /// how close to that deadline: for a read that serves an aging entry. Nothing is
    /// removed or marked.
    pub(crate) fn peek<V: Clone + 'static>(&self, key: &Key) -> Option<(V, Option<Instant>)> {
        let guard = self.map.guard();
        let slot = self.map.get(key, &guard)?;
        if slot.fault(Instant::now).is_some() {
            return None;
        }
        let deadline = (slot.deadline != 0)
            .then(|| epoch() + std::time::Duration::from_nanos(slot.deadline - 1));
        if let Some(value) = slot.value.downcast_ref::<V>() {
            return Some((value.clone(), deadline));
        }
        let OutOfLine(id) = slot.value.downcast_ref::<OutOfLine>()?;
        let value = self.heavy_table().get(id).cloned()?;
        Some((value.downcast_ref::<V>()?.clone(), deadline))
    }

    fn heavy_table(&self) -> MutexGuard<'_, HashMap<u64, Arc<dyn Any + Send + Sync>>> {
        self.heavy.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Accounts for an entry that left the map: its weight, and its out-of-line value.
    fn removed(&self, slot: &Slot) {
        self.bytes
            .fetch_sub(slot.weight as usize, Ordering::Relaxed);
        if let Some(OutOfLine(id)) = slot.value.downcast_ref::<OutOfLine>() {
            let value = self.heavy_table().remove(id);
            // Dropped outside the lock: a large value takes a while to free.
            drop(value);
        }
    }

    /// Stores `slot` under `key`, replacing its entry if it has one, else taking a free
    /// position or evicting; then evicts until the bytes fit.
    pub(crate) fn insert(&self, key: Key, mut slot: Slot) -> Inserted {
        let weight = slot.weight as usize;
        if weight > self.max_bytes / 4 {
            return Inserted::TooLarge;
        }
        let hash = key.hash_value();
        let mut clock = self.lock(hash);
        let guard = self.map.guard();
        let mut evicted = 0;
        let replaced = match self.map.get_key_value(&ByHash(hash), &guard) {
            // The key's own entry: the new one takes its position.
            Some((old, current)) if *old == key => Some(current.pos()),
            Some(_) => return Inserted::Collision,
            None => None,
        };
        // Room in bytes: this shard's least recently read entries first (never the one
        // being replaced), then other shards' that are not being written right now.
        while self.over_budget(weight) {
            match self.evict_one(&mut clock, &guard, hash) {
                Some(_) => evicted += 1,
                None => break,
            }
        }
        if self.over_budget(weight) {
            for (i, shard) in self.shards.iter().enumerate() {
                if i == ((hash >> 40) as usize) & self.mask {
                    continue;
                }
                let Ok(mut other) = shard.0.try_lock() else {
                    continue;
                };
                while self.over_budget(weight) {
                    match self.evict_one(&mut other, &guard, hash) {
                        Some(_) => evicted += 1,
                        None => break,
                    }
                }
                if !self.over_budget(weight) {
                    break;
                }
            }
        }
        if self.over_budget(weight) {
            return Inserted::NoRoom { evicted };
        }
        let pos = match replaced {
            Some(pos) => pos,
            None => {
                let (pos, victim) = self.claim(&mut clock, &guard);
                evicted += u64::from(victim);
                clock.ring[pos] = hash;
                pos as u32
            }
        };
        // Positions stay below `per_shard`, itself at most `u32::MAX / 2` (see `new`).
        slot.state = AtomicU32::new(pos & !REFERENCED);
        if slot.weight >= HEAVY {
            let id = self.next_heavy.fetch_add(1, Ordering::Relaxed);
            let value = std::mem::replace(&mut slot.value, Box::new(OutOfLine(id)));
            self.heavy_table().insert(id, Arc::from(value));
        }
        self.bytes.fetch_add(weight, Ordering::Relaxed);
        if let Some(old) = self.map.insert(key, slot, &guard) {
            self.removed(old);
        }
        Inserted::Stored { evicted }
    }

    /// A position for a new entry: a never-used or freed one, else the position of the
    /// entry the CLOCK hand evicts. `true` when an entry was evicted.
    fn claim(&self, clock: &mut Clock, guard: &impl Guard) -> (usize, bool) {
        if let Some(pos) = clock.free.pop() {
            return (pos as usize, false);
        }
        if clock.ring.len() < self.per_shard {
            clock.ring.push(EMPTY);
            return (clock.ring.len() - 1, false);
        }
        match self.evict_one(clock, guard, EMPTY) {
            Some(pos) => {
                // Taken straight back from the free list `evict_one` put it on.
                clock.free.pop();
                (pos, true)
            }
            None => unreachable!("a full ring always has an entry to evict"),
        }
    }

    /// Evicts the first entry the CLOCK hand finds whose entry was not read since its
    /// last pass (or can no longer be served), except the one with hash `keep`; frees its
    /// position and returns it. `None` when the shard holds no other entry.
    fn evict_one(&self, clock: &mut Clock, guard: &impl Guard, keep: u64) -> Option<usize> {
        let len = clock.ring.len();
        if len == 0 {
            return None;
        }
        let now = Instant::now();
        // Readers may set bits again as the hand clears them: after two full turns, the
        // entry under the hand goes whatever its bit.
        for turn in 0..=2 * len {
            let pos = clock.hand % len;
            clock.hand = pos + 1;
            let hash = clock.ring[pos];
            if hash == EMPTY || hash == keep {
                continue;
            }
            let Some(slot) = self.map.get(&ByHash(hash), guard) else {
                // Not reachable while the ring and the map agree; the position is free.
                free(clock, pos as u32);
                return Some(pos);
            };
            let spare = turn < 2 * len
                && slot.fault(|| now).is_none()
                && slot.state.load(Ordering::Relaxed) & REFERENCED != 0;
            if spare {
                slot.state.store(slot.pos(), Ordering::Relaxed);
                continue;
            }
            if let Some(removed) = self.map.remove(&ByHash(hash), guard) {
                self.removed(removed);
            }
            free(clock, pos as u32);
            return Some(pos);
        }
        None
    }

    /// Removes `key`'s entry if it is still `slot` (not replaced since it was read).
    fn remove_exact(&self, key: &Key, slot: &Slot, guard: &impl Guard) {
        let mut clock = self.lock(key.hash_value());
        if let Ok(Some((_, removed))) =
            self.map
                .remove_if(key, |_, current| std::ptr::eq(current, slot), guard)
        {
            self.removed(removed);
            free(&mut clock, removed.pos());
        }
    }

    /// Removes the entry of the key with this hash when `doomed` says so; whether it did.
    /// Tables track reads by hash, so this may remove a later entry of another key with
    /// the same hash: a spurious miss, never a wrong value.
    pub(crate) fn remove_hash_if(&self, hash: u64, doomed: impl Fn(&Slot) -> bool) -> bool {
        let mut clock = self.lock(hash);
        let guard = self.map.guard();
        match self
            .map
            .remove_if(&ByHash(hash), |_, slot| doomed(slot), &guard)
        {
            Ok(Some((_, removed))) => {
                self.removed(removed);
                free(&mut clock, removed.pos());
                true
            }
            _ => false,
        }
    }

    /// Removes `key`'s entry, if any (and only `key`'s: not another key's with its hash).
    #[cfg(test)]
    pub(crate) fn remove(&self, key: &Key) {
        let mut clock = self.lock(key.hash_value());
        let guard = self.map.guard();
        if let Some(removed) = self.map.remove(key, &guard) {
            self.removed(removed);
            free(&mut clock, removed.pos());
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn clear(&self) {
        let mut clocks: Vec<_> = (0..self.shards.len())
            .map(|i| {
                self.shards[i]
                    .0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
            })
            .collect();
        self.map.pin().clear();
        for clock in &mut clocks {
            **clock = Clock::default();
        }
        // Every shard is locked: no store runs while these are reset.
        self.bytes.store(0, Ordering::Relaxed);
        let heavy = std::mem::take(&mut *self.heavy_table());
        drop(clocks);
        drop(heavy);
    }
}

fn free(clock: &mut Clock, pos: u32) {
    if let Some(hash) = clock.ring.get_mut(pos as usize) {
        *hash = EMPTY;
        clock.free.push(pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyScope;
    use crate::tables::Tables;

    static SCOPE: KeyScope = KeyScope::new("store tests");

    fn key(i: u64) -> Key {
        Key::build("ns", &SCOPE, &i).unwrap()
    }

    fn slot(value: u64, tables: &Tables<u64>) -> Slot {
        let table = tables.get("t");
        let version = table.version();
        Slot::new(Box::new(value), 100, None, Tags::new(&[table], &[version]))
    }

    fn hit(store: &ClockMap, i: u64) -> Option<u64> {
        match store.get::<u64>(&key(i), 0) {
            Lookup::Hit(v) => Some(v),
            _ => None,
        }
    }

    #[test]
    fn never_holds_more_than_capacity() {
        let tables = Tables::<u64>::new(usize::MAX, usize::MAX);
        for capacity in [1, 7, 64, 100, 1000, 100_000] {
            let s = ClockMap::new(capacity, usize::MAX);
            let bound = s.per_shard * s.shards.len();
            assert!(bound <= capacity);
            assert!(bound * 100 >= capacity * 95 || capacity < 128, "{capacity}");
            let mut evicted = 0;
            for i in 0..(capacity as u64 * 3) {
                if let Inserted::Stored { evicted: n } = s.insert(key(i), slot(i, &tables)) {
                    evicted += n;
                }
            }
            assert!(s.len() <= bound, "{capacity}: {}", s.len());
            assert_eq!(s.len() as u64 + evicted, capacity as u64 * 3);
        }
    }

    #[test]
    fn second_chance_spares_entries_read_since_the_last_pass() {
        let tables = Tables::<u64>::new(usize::MAX, usize::MAX);
        let s = ClockMap::new(2, usize::MAX);
        s.insert(key(1), slot(1, &tables));
        s.insert(key(2), slot(2, &tables));
        assert_eq!(hit(&s, 1), Some(1)); // 1 is now referenced
        assert!(matches!(
            s.insert(key(3), slot(3, &tables)),
            Inserted::Stored { evicted: 1 }
        ));
        assert_eq!(hit(&s, 2), None);
        assert_eq!(hit(&s, 1), Some(1));
        assert_eq!(hit(&s, 3), Some(3));
    }

    #[test]
    fn removed_positions_are_reused_before_evicting() {
        let tables = Tables::<u64>::new(usize::MAX, usize::MAX);
        let s = ClockMap::new(2, usize::MAX);
        s.insert(key(1), slot(1, &tables));
        s.insert(key(2), slot(2, &tables));
        s.remove(&key(1));
        assert!(matches!(
            s.insert(key(3), slot(3, &tables)),
            Inserted::Stored { evicted: 0 }
        ));
        assert_eq!((hit(&s, 2), hit(&s, 3)), (Some(2), Some(3)));
        // A replacement keeps its position and evicts nothing.
        assert!(matches!(
            s.insert(key(3), slot(33, &tables)),
            Inserted::Stored { evicted: 0 }
        ));
        assert_eq!((hit(&s, 2), hit(&s, 3), s.len()), (Some(2), Some(33), 2));
    }

    /// Mechanism: the by-hash check before a new entry is placed. Without it, two keys
    /// sharing a hash would share a ring position, and evicting or sweeping one by hash
    /// could remove the other.
    #[test]
    fn a_key_whose_hash_is_taken_is_not_stored_and_never_served_another_value() {
        let tables = Tables::<u64>::new(usize::MAX, usize::MAX);
        let s = ClockMap::new(10, usize::MAX);
        let a = key(1).with_hash(7);
        let b = key(2).with_hash(7);
        assert!(a != b);
        assert!(matches!(
            s.insert(a, slot(1, &tables)),
            Inserted::Stored { .. }
        ));
        assert!(matches!(s.insert(b, slot(2, &tables)), Inserted::Collision));
        assert!(matches!(s.get::<u64>(&b, 0), Lookup::Miss));
        assert!(matches!(s.get::<u64>(&a, 0), Lookup::Hit(1)));
        assert_eq!(s.len(), 1);
        // Removing `b` by key leaves `a`, which has its hash.
        s.remove(&b);
        assert!(matches!(s.get::<u64>(&a, 0), Lookup::Hit(1)));
        // Once `a` is gone, `b` may take the hash.
        s.remove(&a);
        assert!(matches!(
            s.insert(b, slot(2, &tables)),
            Inserted::Stored { evicted: 0 }
        ));
        assert!(matches!(s.get::<u64>(&b, 0), Lookup::Hit(2)));
        assert!(matches!(s.get::<u64>(&a, 0), Lookup::Miss));
    }

    /// Mechanism: `remove_exact` removes only the entry that was read. Without the
    /// identity check, a fault seen on an old entry would delete a fresh replacement.
    #[test]
    fn a_fault_removes_only_the_entry_it_was_seen_on() {
        let tables = Tables::<u64>::new(usize::MAX, usize::MAX);
        let s = ClockMap::new(10, usize::MAX);
        s.insert(key(1), slot(1, &tables));
        let guard = s.map.guard();
        let old = s.map.get(&key(1), &guard).unwrap();
        s.insert(key(1), slot(11, &tables)); // refilled meanwhile
        s.remove_exact(&key(1), old, &guard);
        drop(guard);
        assert!(matches!(s.get::<u64>(&key(1), 0), Lookup::Hit(11)));
        s.remove_exact(&key(1), &slot(0, &tables), &s.map.guard());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn faults_and_wrong_types_are_removed_on_read() {
        let tables = Tables::<u64>::new(usize::MAX, usize::MAX);
        let s = ClockMap::new(10, usize::MAX);
        s.insert(key(1), slot(1, &tables));
        assert!(matches!(s.get::<String>(&key(1), 0), Lookup::WrongType));
        assert_eq!(s.len(), 0);
        s.insert(key(1), slot(1, &tables));
        tables.get("t").bump();
        assert!(matches!(
            s.get::<u64>(&key(1), 0),
            Lookup::Fault(Counter::Stale)
        ));
        assert_eq!(s.len(), 0);
        let past = Instant::now();
        s.insert(
            key(2),
            Slot::new(Box::new(2u64), 100, Some(past), Tags::Many(Box::new([]))),
        );
        assert!(matches!(
            s.get::<u64>(&key(2), 0),
            Lookup::Fault(Counter::Expired)
        ));
        // Freed positions are taken again: ten more entries fit without eviction.
        for i in 10..20 {
            assert!(matches!(
                s.insert(key(i), slot(i, &tables)),
                Inserted::Stored { evicted: 0 }
            ));
        }
    }

    /// Mechanism: the byte budget. Entries are evicted until the new one fits, and a
    /// value over a quarter of the budget is refused.
    #[test]
    fn bytes_are_bounded() {
        let tables = Tables::<u64>::new(usize::MAX, usize::MAX);
        let table = tables.get("t");
        let version = table.version();
        let slot = |w: usize| {
            Slot::new(
                Box::new(w as u64),
                w,
                None,
                Tags::new(std::slice::from_ref(&table), &[version]),
            )
        };
        let s = ClockMap::new(1_000, 1_000);
        for i in 0..20 {
            assert!(matches!(
                s.insert(key(i), slot(200)),
                Inserted::Stored { .. }
            ));
            assert!(s.bytes() <= 1_000, "{}", s.bytes());
        }
        assert_eq!(s.len(), 5);
        assert!(matches!(s.insert(key(99), slot(251)), Inserted::TooLarge));
        s.clear();
        assert_eq!((s.bytes(), s.len()), (0, 0));
    }

    /// Mechanism: heavy values live out of the map and are dropped when their entry is
    /// removed, not when the map's collector gets to it.
    #[test]
    fn heavy_values_are_dropped_when_removed() {
        let tables = Tables::<u64>::new(usize::MAX, usize::MAX);
        let table = tables.get("t");
        let version = table.version();
        let value = Arc::new(());
        let s = ClockMap::new(10, usize::MAX);
        let heavy = || {
            Slot::new(
                Box::new(value.clone()),
                HEAVY as usize,
                None,
                Tags::new(std::slice::from_ref(&table), &[version]),
            )
        };
        s.insert(key(1), heavy());
        assert!(matches!(s.get::<Arc<()>>(&key(1), 0), Lookup::Hit(_)));
        assert_eq!(Arc::strong_count(&value), 2);
        s.insert(key(1), heavy()); // replaced: the first is dropped at once
        assert_eq!(Arc::strong_count(&value), 2);
        s.remove(&key(1));
        assert_eq!(Arc::strong_count(&value), 1, "dropped on removal");
        assert_eq!(s.bytes(), 0);
    }
}
