//! `MemoryBackend`: the sharded LRU behind the `Backend` trait, storing bytes, and
//! optionally keeping shared table versions the way a Redis backend does.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lru::LruCache;

use super::{Backend, BackendError, BoxFuture, Checked, StoreOutcome};
use crate::sharded::Sharded;

struct Stored {
    bytes: Vec<u8>,
    deadline: Option<Instant>,
}

/// An in-process [`Backend`]: a sharded LRU of byte strings, bounded in entries.
///
/// [`Cache::new`](crate::Cache::new) does not go through it: the default cache stores
/// decoded values in its own store, whose reads take no lock, and skips encoding entirely. Use
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
    /// Table versions and tracked keys, by (namespace, table), for a backend built with
    /// [`MemoryBackend::shared`].
    versions: Option<Mutex<HashMap<(String, String), TableState>>>,
}

struct TableState {
    version: u64,
    /// Tracked entry keys, least recently stored first.
    keys: LruCache<String, ()>,
}

impl MemoryBackend {
    /// A backend holding at most `max_entries` entries (at least 1).
    pub fn new(max_entries: usize) -> MemoryBackend {
        MemoryBackend::build(max_entries, None)
    }

    /// Like [`MemoryBackend::new`], but the backend also keeps table versions and key
    /// tracking ([`Backend::shared_versions`]), as the Redis backend does: caches built on
    /// clones of it share invalidations as caches in several processes sharing one Redis
    /// do. Use it to test multi-instance behaviour without a server.
    ///
    /// ```
    /// use cache_runtime::backend::MemoryBackend;
    /// use cache_runtime::{Cache, KeyScope, Settings, Ttl};
    ///
    /// static FIND: KeyScope = KeyScope::new("find");
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let shared = MemoryBackend::shared(1_000);
    /// let a = Cache::with_backend(Settings::default(), shared.clone())?;
    /// let b = Cache::with_backend(Settings::default(), shared)?;
    /// let key = b.key(&FIND, &1)?;
    /// let load = |v: &'static str| move || async move { Ok::<_, std::io::Error>(v.to_owned()) };
    ///
    /// assert_eq!(b.get_or_load(key, &["t"], Ttl::Forever, load("old")).await?, "old");
    /// assert_eq!(b.get_or_load(key, &["t"], Ttl::Forever, load("new")).await?, "old"); // a hit
    /// a.invalidate(&["t"]).await;                                                   // on `a`
    /// assert_eq!(b.get_or_load(key, &["t"], Ttl::Forever, load("new")).await?, "new");
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub fn shared(max_entries: usize) -> MemoryBackend {
        MemoryBackend::build(max_entries, Some(Mutex::new(HashMap::new())))
    }

    fn build(
        max_entries: usize,
        versions: Option<Mutex<HashMap<(String, String), TableState>>>,
    ) -> MemoryBackend {
        MemoryBackend {
            inner: Arc::new(Inner {
                map: Sharded::new(max_entries, RandomState::new()),
                pick: RandomState::new(),
                versions,
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

    fn set_now(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) {
        let stored = Stored {
            bytes: value,
            deadline: ttl.and_then(|t| Instant::now().checked_add(t)),
        };
        self.inner
            .map
            .insert(self.shard(key), key.to_owned(), stored);
    }

    fn delete_now(&self, key: &str) {
        let dead = self.inner.map.lock(self.shard(key)).pop(key);
        drop(dead);
    }

    /// Runs `f` on the version table of a shared backend.
    fn with_versions<T>(
        &self,
        f: impl FnOnce(&mut HashMap<(String, String), TableState>) -> T,
    ) -> Result<T, BackendError> {
        let versions = self.inner.versions.as_ref().ok_or_else(|| {
            BackendError::new(
                "this MemoryBackend keeps no table versions: build it with MemoryBackend::shared",
            )
        })?;
        Ok(f(&mut versions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)))
    }
}

/// A version no earlier one of any table equals (in practice): random, below 2^52 so it
/// can be bumped for ever, and never 0.
fn fresh_version() -> u64 {
    let random = RandomState::new().hash_one(Instant::now());
    (random >> 12) | 1 << 40
}

fn table<'m>(
    map: &'m mut HashMap<(String, String), TableState>,
    namespace: &str,
    table: &str,
) -> &'m mut TableState {
    map.entry((namespace.to_owned(), table.to_owned()))
        .or_insert_with(|| TableState {
            version: fresh_version(),
            keys: LruCache::unbounded(),
        })
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
        self.set_now(key, value, ttl);
        Box::pin(async { Ok(()) })
    }

    fn delete<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<(), BackendError>> {
        for key in keys {
            self.delete_now(key);
        }
        Box::pin(async { Ok(()) })
    }

    fn clear_prefix<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        self.inner.map.retain(|k, _| !k.starts_with(prefix));
        Box::pin(async { Ok(()) })
    }
    fn shared_versions(&self) -> bool {
        self.inner.versions.is_some()
    }

    fn versions<'a>(
        &'a self,
        namespace: &'a str,
        tables: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<u64>, BackendError>> {
        let versions = self.with_versions(|map| {
            tables
                .iter()
                .map(|t| table(map, namespace, t).version)
                .collect()
        });
        Box::pin(async { versions })
    }

    fn get_checked<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        tables: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Checked, BackendError>> {
        let found = self.with_versions(|map| {
            let versions = tables
                .iter()
                .map(|t| {
                    map.get(&(namespace.to_owned(), (*t).to_owned()))
                        .map_or(0, |s| s.version)
                })
                .collect();
            (self.get_now(key), versions)
        });
        Box::pin(async { found })
    }

    fn set_tracked<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        tags: &'a [(&'a str, u64)],
        max_keys: usize,
    ) -> BoxFuture<'a, Result<StoreOutcome, BackendError>> {
        // The version lock is held from the check to the insert, so a bump cannot slip in
        // between.
        let outcome = self.with_versions(|map| {
            let moved = tags.iter().any(|(t, v)| {
                map.get(&(namespace.to_owned(), (*t).to_owned()))
                    .is_none_or(|s| s.version != *v)
            });
            if moved {
                return StoreOutcome::Stale;
            }
            self.set_now(key, value, ttl);
            let mut evicted = 0;
            for (t, _) in tags {
                let state = table(map, namespace, t);
                state.keys.put(key.to_owned(), ());
                while state.keys.len() > max_keys.max(1) {
                    if let Some((old, ())) = state.keys.pop_lru() {
                        self.delete_now(&old);
                        evicted += 1;
                    }
                }
            }
            StoreOutcome::Stored { evicted }
        });
        Box::pin(async { outcome })
    }

    fn bump<'a>(
        &'a self,
        namespace: &'a str,
        tables: &'a [&'a str],
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        let done = self.with_versions(|map| {
            for t in tables {
                let state = table(map, namespace, t);
                state.version += 1;
                while let Some((key, ())) = state.keys.pop_lru() {
                    self.delete_now(&key);
                }
            }
        });
        Box::pin(async { done })
    }

    fn tracked<'a>(
        &'a self,
        namespace: &'a str,
        table: &'a str,
    ) -> BoxFuture<'a, Result<usize, BackendError>> {
        let count = self.with_versions(|map| {
            map.get(&(namespace.to_owned(), table.to_owned()))
                .map_or(0, |s| s.keys.len())
        });
        Box::pin(async { count })
    }
}
