//! In-process backends: [`MemoryBackend`], a sharded LRU of byte strings, and
//! [`SharedMemoryBackend`], the same entries plus table versions and key tracking kept the
//! way a Redis backend keeps them.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use lru::LruCache;

use super::{Backend, BackendError, Checked, SharedBackend, StoreOutcome, async_trait};
use crate::sharded::Sharded;

struct Stored {
    bytes: Vec<u8>,
    deadline: Option<Instant>,
}

/// Byte strings by key, bounded in entries.
struct Entries {
    map: Sharded<String, Stored, RandomState>,
    pick: RandomState,
}

impl Entries {
    fn new(max_entries: usize) -> Entries {
        Entries {
            map: Sharded::new(max_entries, RandomState::new()),
            pick: RandomState::new(),
        }
    }

    fn shard(&self, key: &str) -> usize {
        self.pick.hash_one(key) as usize
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut shard = self.map.lock(self.shard(key));
        let stored = shard.get(key)?;
        if stored.deadline.is_some_and(|d| Instant::now() >= d) {
            shard.pop(key);
            return None;
        }
        Some(stored.bytes.clone())
    }

    fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) {
        let stored = Stored {
            bytes: value,
            deadline: ttl.and_then(|t| Instant::now().checked_add(t)),
        };
        self.map.insert(self.shard(key), key.to_owned(), stored);
    }

    fn delete(&self, key: &str) {
        let dead = self.map.lock(self.shard(key)).pop(key);
        drop(dead);
    }

    fn clear_prefix(&self, prefix: &str) {
        self.map.retain(|k, _| !k.starts_with(prefix));
    }
}

/// An in-process [`Backend`]: a sharded LRU of byte strings, bounded in entries.
///
/// [`Cache::new`](crate::Cache::new) does not go through it: the default cache stores
/// decoded values in its own store, whose reads take no lock, and skips encoding entirely.
/// Use `MemoryBackend` as a reference implementation, or to exercise the encoded path in
/// tests.
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
    entries: Arc<Entries>,
}

impl MemoryBackend {
    /// A backend holding at most `max_entries` entries (at least 1).
    pub fn new(max_entries: usize) -> MemoryBackend {
        MemoryBackend {
            entries: Arc::new(Entries::new(max_entries)),
        }
    }
}

/// An in-process [`SharedBackend`]: [`MemoryBackend`]'s entries, plus table versions and
/// key tracking kept as the Redis backend keeps them. Caches built on clones of it share
/// entries and invalidations as caches in several processes sharing one Redis do: use it
/// to test multi-instance behaviour without a server, and as a reference implementation.
///
/// ```
/// use cache_runtime::backend::SharedMemoryBackend;
/// use cache_runtime::{Cache, KeyScope, Settings, Ttl};
///
/// static FIND: KeyScope = KeyScope::new("find");
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let shared = SharedMemoryBackend::new(1_000);
/// let a = Cache::with_shared_backend(Settings::default(), shared.clone())?;
/// let b = Cache::with_shared_backend(Settings::default(), shared)?;
/// let key = b.key(&FIND, &1)?;
/// let load = |v: &'static str| move || async move { Ok::<_, std::io::Error>(v.to_owned()) };
///
/// assert_eq!(b.get_or_load(key, &["t"], Ttl::Forever, load("old")).await?, "old");
/// assert_eq!(a.get_or_load(key, &["t"], Ttl::Forever, load("new")).await?, "old"); // shared
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct SharedMemoryBackend {
    entries: Arc<Entries>,
    /// Table versions and tracked keys, by (namespace, table).
    tables: Arc<Mutex<HashMap<(String, String), TableState>>>,
}

struct TableState {
    version: u64,
    /// Tracked entry keys, least recently stored first.
    keys: LruCache<String, ()>,
}

impl SharedMemoryBackend {
    /// A backend holding at most `max_entries` entries (at least 1).
    pub fn new(max_entries: usize) -> SharedMemoryBackend {
        SharedMemoryBackend {
            entries: Arc::new(Entries::new(max_entries)),
            tables: Arc::default(),
        }
    }

    fn tables(&self) -> MutexGuard<'_, HashMap<(String, String), TableState>> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
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

/// What both in-memory backends share: their entries, as a [`Backend`].
macro_rules! entries_backend {
    ($($name:ident),*) => {$(
        impl $name {
            /// How many entries are stored (expired ones included until they are read).
            pub fn len(&self) -> usize {
                self.entries.map.len()
            }

            /// Whether nothing is stored.
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("capacity", &self.entries.map.capacity())
                    .finish_non_exhaustive()
            }
        }

        #[async_trait]
        impl Backend for $name {
            async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
                Ok(self.entries.get(key))
            }

            async fn set(
                &self,
                key: &str,
                value: Vec<u8>,
                ttl: Option<Duration>,
            ) -> Result<(), BackendError> {
                self.entries.set(key, value, ttl);
                Ok(())
            }

            async fn delete(&self, keys: &[String]) -> Result<(), BackendError> {
                for key in keys {
                    self.entries.delete(key);
                }
                Ok(())
            }

            async fn clear_prefix(&self, prefix: &str) -> Result<(), BackendError> {
                self.entries.clear_prefix(prefix);
                Ok(())
            }
        }
    )*};
}

entries_backend!(MemoryBackend, SharedMemoryBackend);

#[async_trait]
impl SharedBackend for SharedMemoryBackend {
    async fn versions(&self, namespace: &str, tables: &[&str]) -> Result<Vec<u64>, BackendError> {
        let mut map = self.tables();
        Ok(tables
            .iter()
            .map(|t| table(&mut map, namespace, t).version)
            .collect())
    }

    async fn get_checked(
        &self,
        namespace: &str,
        key: &str,
        tables: &[&str],
    ) -> Result<Checked, BackendError> {
        let map = self.tables();
        let versions = tables
            .iter()
            .map(|t| {
                map.get(&(namespace.to_owned(), (*t).to_owned()))
                    .map_or(0, |s| s.version)
            })
            .collect();
        Ok((self.entries.get(key), versions))
    }

    async fn set_tracked(
        &self,
        namespace: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        tags: &[(&str, u64)],
        max_keys: usize,
    ) -> Result<StoreOutcome, BackendError> {
        // The version lock is held from the check to the insert, so a bump cannot slip in
        // between.
        let mut map = self.tables();
        let moved = tags.iter().any(|(t, v)| {
            map.get(&(namespace.to_owned(), (*t).to_owned()))
                .is_none_or(|s| s.version != *v)
        });
        if moved {
            return Ok(StoreOutcome::Stale);
        }
        self.entries.set(key, value, ttl);
        let mut evicted = 0;
        for (t, _) in tags {
            let state = table(&mut map, namespace, t);
            state.keys.put(key.to_owned(), ());
            while state.keys.len() > max_keys.max(1) {
                if let Some((old, ())) = state.keys.pop_lru() {
                    self.entries.delete(&old);
                    evicted += 1;
                }
            }
        }
        Ok(StoreOutcome::Stored { evicted })
    }

    async fn bump(&self, namespace: &str, tables: &[&str]) -> Result<(), BackendError> {
        let mut map = self.tables();
        for t in tables {
            let state = table(&mut map, namespace, t);
            state.version += 1;
            while let Some((key, ())) = state.keys.pop_lru() {
                self.entries.delete(&key);
            }
        }
        Ok(())
    }

    async fn tracked(&self, namespace: &str, table: &str) -> Result<usize, BackendError> {
        Ok(self
            .tables()
            .get(&(namespace.to_owned(), table.to_owned()))
            .map_or(0, |s| s.keys.len()))
    }
}
