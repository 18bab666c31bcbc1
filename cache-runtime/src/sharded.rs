//! A capacity-bounded LRU split into independently locked shards, for
//! [`MemoryBackend`](crate::backend::MemoryBackend)'s encoded entries.

use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, MutexGuard, PoisonError};

use lru::LruCache;

const MAX_SHARDS: usize = 64;
/// Below this many entries per shard, LRU order degrades into "whatever hashed here last":
/// small caches get fewer shards instead.
const MIN_PER_SHARD: usize = 64;

/// How many shards a store of `capacity` entries gets: a power of two (a shard is picked
/// with a mask), at most [`MAX_SHARDS`], and few enough that each holds at least
/// [`MIN_PER_SHARD`] entries where the capacity allows. The one rule for both sharded stores.
pub(crate) fn shard_count(capacity: usize) -> usize {
    let wanted = (capacity.max(1) / MIN_PER_SHARD).clamp(1, MAX_SHARDS);
    // Largest power of two not above `wanted`.
    1usize << (usize::BITS - 1 - wanted.leading_zeros())
}

#[repr(align(128))]
struct Shard<K, V, S>(Mutex<LruCache<K, V, S>>);

pub(crate) struct Sharded<K, V, S> {
    shards: Box<[Shard<K, V, S>]>,
    mask: usize,
    per_shard: usize,
}

impl<K: Hash + Eq, V, S: BuildHasher + Clone> Sharded<K, V, S> {
    /// Holds at most `capacity` entries in total (`capacity >= 1`): each shard holds
    /// `capacity / shards`, so the bound is exact and never exceeded.
    pub(crate) fn new(capacity: usize, hasher: S) -> Self {
        let capacity = capacity.max(1);
        let count = shard_count(capacity);
        let shards = (0..count)
            // Unbounded maps grow on demand; `LruCache::new(cap)` would allocate every
            // slot up front.
            .map(|_| Shard(Mutex::new(LruCache::unbounded_with_hasher(hasher.clone()))))
            .collect();
        Sharded {
            shards,
            mask: count - 1,
            per_shard: capacity / count,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.per_shard * self.shards.len()
    }

    /// Locks shard `index` (taken modulo the shard count). A poisoned lock is recovered:
    /// the LRU's own invariants hold between its method calls.
    #[inline]
    pub(crate) fn lock(&self, index: usize) -> MutexGuard<'_, LruCache<K, V, S>> {
        self.shards[index & self.mask]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Inserts (or replaces) an entry; returns how many other entries were evicted.
    /// The evicted values are dropped after the shard lock is released.
    pub(crate) fn insert(&self, index: usize, key: K, value: V) -> u64 {
        let mut evicted = Vec::new();
        {
            let mut shard = self.lock(index);
            shard.put(key, value);
            while shard.len() > self.per_shard {
                match shard.pop_lru() {
                    Some(entry) => evicted.push(entry),
                    None => break,
                }
            }
        }
        evicted.len() as u64
    }

    pub(crate) fn len(&self) -> usize {
        (0..self.shards.len()).map(|i| self.lock(i).len()).sum()
    }

    /// Removes every entry for which `keep` returns false.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool)
    where
        K: Clone,
    {
        for i in 0..self.shards.len() {
            let mut shard = self.lock(i);
            let doomed: Vec<K> = shard
                .iter()
                .filter(|(k, v)| !keep(k, v))
                .map(|(k, _)| k.clone())
                .collect();
            for k in doomed {
                shard.pop(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::hash::RandomState;

    use super::*;

    #[test]
    fn never_holds_more_than_capacity() {
        for capacity in [1, 7, 64, 100, 1000, 100_000] {
            let s: Sharded<u64, u64, RandomState> = Sharded::new(capacity, RandomState::new());
            assert!(s.capacity() <= capacity);
            assert!(
                s.capacity() * 100 >= capacity * 95 || capacity < 128,
                "{capacity}"
            );
            for k in 0..(capacity as u64 * 3) {
                s.insert(k as usize, k, k);
            }
            assert!(s.len() <= capacity, "{capacity}: {}", s.len());
        }
    }

    #[test]
    fn evicts_least_recently_used_first() {
        let s: Sharded<u64, &str, RandomState> = Sharded::new(2, RandomState::new());
        s.insert(0, 1, "a");
        s.insert(0, 2, "b");
        assert!(s.lock(0).get(&1).is_some()); // 1 is now the most recent
        assert_eq!(s.insert(0, 3, "c"), 1);
        assert!(s.lock(0).get(&2).is_none());
        assert!(s.lock(0).get(&1).is_some());
    }
}
