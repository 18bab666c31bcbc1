//! `MemoryBackend`: the sharded LRU behind the `Backend` trait, storing bytes.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Backend, BackendError, BoxFuture};
use crate::sharded::Sharded;

struct Stored {
    bytes: Vec<u8>,
    deadline: Option<Instant>,
}

/// An in-process [`Backend`]: a sharded LRU of byte strings, bounded in entries.
///
/// [`Cache::new`](crate::Cache::new) does not go through it: the default cache stores
/// decoded values in the same sharded LRU design and skips encoding entirely. Use
/// `MemoryBackend` as a reference implementation, to exercise the encoded path in tests,
/// or to share one store between several caches.
///
/// ```
/// use cache_runtime::backend::{Backend, MemoryBackend};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let backend = MemoryBackend::new(1_000);
/// backend.set("app:k", b"v".to_vec(), None).await?;
/// assert_eq!(backend.get("app:k").await?, Some(b"v".to_vec()));
/// # Ok::<(), cache_runtime::backend::BackendError>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct MemoryBackend {
    inner: Arc<Inner>,
}

struct Inner {
    map: Sharded<String, Stored, RandomState>,
    pick: RandomState,
}

impl MemoryBackend {
    /// A backend holding at most `max_entries` entries (at least 1).
    pub fn new(max_entries: usize) -> MemoryBackend {
        MemoryBackend {
            inner: Arc::new(Inner {
                map: Sharded::new(max_entries, RandomState::new()),
                pick: RandomState::new(),
            }),
        }
    }

    /// How many entries are stored (expired ones included until they are read).
    pub fn len(&self) -> usize {
        self.inner.map.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &str) -> usize {
        self.inner.pick.hash_one(key) as usize
    }

    fn get_now(&self, key: &str) -> Option<Vec<u8>> {
        let index = self.shard(key);
        let mut shard = self.inner.map.lock(index);
        let stored = shard.get(key)?;
        if stored.deadline.is_some_and(|d| Instant::now() >= d) {
            shard.pop(key);
            return None;
        }
        Some(stored.bytes.clone())
    }
}

impl fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("capacity", &self.inner.map.capacity())
            .finish_non_exhaustive()
    }
}

impl Backend for MemoryBackend {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, BackendError>> {
        let found = self.get_now(key);
        Box::pin(async move { Ok(found) })
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        let stored = Stored {
            bytes: value,
            deadline: ttl.and_then(|t| Instant::now().checked_add(t)),
        };
        self.inner
            .map
            .insert(self.shard(key), key.to_owned(), stored);
        Box::pin(async { Ok(()) })
    }

    fn delete<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<(), BackendError>> {
        for key in keys {
            self.inner.map.remove(self.shard(key), key);
        }
        Box::pin(async { Ok(()) })
    }

    fn clear_prefix<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        self.inner.map.retain(|k, _| !k.starts_with(prefix));
        Box::pin(async { Ok(()) })
    }
}
