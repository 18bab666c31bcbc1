//! `Cache`: read-through loading with table-versioned freshness and single-flight.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::backend::pending::PendingBumps;
use crate::backend::{Backend, BackendError, StoreOutcome};
use crate::envelope;
use crate::flight::{Flights, Role, Shared, State};
use crate::key::{Key, KeyBuilder, KeyError, KeyScope, Namespace};
use crate::output::{self, LoadOutput};
use crate::stats::{Counter, Counters, Stats};
use crate::store::{Inserted, Lookup, MemoryStore, Slot, Tags};
use crate::tables::{Table, Tables, Tracked, Untracked};
use crate::{CacheValue, Settings, SettingsError, Ttl};

/// A query cache. Cheap to clone: clones share the same entries, tables and statistics.
///
/// Reads go through [`Cache::get_or_load`]; writes call [`Cache::invalidate`] once they
/// are visible (committed). The macros generate both calls.
///
/// ```
/// use cache_runtime::{Cache, KeyScope, Settings, Ttl};
///
/// static FIND_USER: KeyScope = KeyScope::new("users::find");
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let cache = Cache::new(Settings::default())?;
/// let id = 7_i64;
/// let load = || async move { Ok::<_, std::io::Error>(Some(format!("user {id}"))) };
///
/// let key = cache.key(&FIND_USER, &id)?;
/// let first = cache.get_or_load(key, &["users"], Ttl::secs(60), load).await?;  // runs `load`
/// let again = cache.get_or_load(key, &["users"], Ttl::secs(60), load).await?;  // a hit
/// assert_eq!(first, again);
/// assert_eq!(cache.stats().hits, 1);
///
/// cache.invalidate(&["users"]).await;                                         // after a write
/// cache.get_or_load(key, &["users"], Ttl::secs(60), load).await?;             // runs `load`
/// assert_eq!(cache.stats().loads, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    /// `"{namespace}:"`, the prefix of every remote key.
    prefix: String,
    /// The namespace, interned for key building.
    namespace: Namespace,
    store: Store,
    tables: Tables,
    flights: Flights,
    counters: Counters,
    /// Tables whose invalidation a shared-versions backend has not taken yet.
    pending: PendingBumps,
    /// Keys of invalidated tables whose (stale) entries the in-memory store still holds;
    /// drained a few at a time by later stores.
    sweep: Mutex<Vec<Tracked<u64>>>,
}

enum Store {
    /// Decoded values: a hit is a lock-free lookup and a clone, no decoding.
    Memory(MemoryStore),
    /// Any backend, through encoded envelopes.
    Backend(Box<dyn Backend>),
}

/// How many swept keys one store checks: enough to keep up with any invalidation rate a
/// store rate can produce, small enough not to show on a miss (~1.7 µs).
const SWEEP_BATCH: usize = 32;

/// The table versions a load captured before running its query.
struct Captured {
    versions: Vec<u64>,
    source: Source,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// This process's versions (the in-memory store, or a backend without shared versions).
    Local,
    /// The backend's shared versions.
    Shared,
    /// The backend's versions could not be read: the value is returned but not stored.
    /// `versions` holds the local ones plus a marker, so such a load never shares a flight
    /// with one that captured shared versions.
    Unavailable,
}

/// A value encoded for a backend, with the table tags it was stored under.
struct Entry<'t> {
    bytes: Vec<u8>,
    storage_ttl: Option<Duration>,
    tags: Vec<(&'t str, u64)>,
}

impl<'t> Entry<'t> {
    /// `None` (logged) when the value fails to encode: it is then not cached.
    fn encode<V: CacheValue>(
        key: &Key,
        value: &V,
        tables: &'t [Arc<Table>],
        versions: &[u64],
        deadline: Option<Instant>,
        now: Instant,
    ) -> Option<Entry<'t>> {
        let tags: Vec<(&str, u64)> = tables
            .iter()
            .zip(versions)
            .map(|(t, &v)| (t.name(), v))
            .collect();
        let storage_ttl = Ttl::storage_ttl(deadline, now);
        match envelope::encode(value, &tags, storage_ttl) {
            Ok(bytes) => Some(Entry {
                bytes,
                storage_ttl,
                tags,
            }),
            Err(e) => {
                tracing::warn!(target: "cache_runtime", key = %key, error = %e,
                    "value failed to encode; not cached");
                None
            }
        }
    }
}

/// What the read path found.
enum Found<V> {
    Hit(V),
    Miss,
}

impl Cache {
    /// A cache in process memory, bounded by `settings.max_entries`.
    ///
    /// # Errors
    ///
    /// A [`SettingsError`] when a setting is invalid (see [`Settings::validate`]).
    pub fn new(settings: Settings) -> Result<Cache, SettingsError> {
        settings.validate()?;
        let store = Store::Memory(MemoryStore::new(settings.max_entries, settings.max_bytes));
        Ok(Cache::build(settings, store))
    }

    /// A cache storing its entries in `backend` (e.g. Redis, or a
    /// [`MemoryBackend`](crate::backend::MemoryBackend) to exercise the encoded path).
    ///
    /// When the backend keeps table versions itself ([`Backend::shared_versions`], as the
    /// Redis backend does), every cache using it shares entries and invalidations: a write
    /// through one makes the entries of all of them stale, one round trip per hit checks
    /// that. Otherwise table versions stay in this process: entries written by another
    /// `Cache` instance are not served by this one, so several processes never serve each
    /// other's stale entries, but do not share them either.
    ///
    /// # Errors
    ///
    /// A [`SettingsError`] when a setting is invalid (see [`Settings::validate`]).
    pub fn with_backend(settings: Settings, backend: impl Backend) -> Result<Cache, SettingsError> {
        settings.validate()?;
        Ok(Cache::build(settings, Store::Backend(Box::new(backend))))
    }

    fn build(settings: Settings, store: Store) -> Cache {
        let inner = Arc::new(Inner {
            prefix: format!("{}:", settings.namespace),
            namespace: Namespace::intern(&settings.namespace),
            // The in-memory store finds entries by hash; a backend needs their keys.
            tables: Tables::new(
                settings.max_keys_per_table,
                settings.max_tables,
                matches!(store, Store::Memory(_)),
            ),
            settings,
            store,
            flights: Flights::new(),
            counters: Counters::default(),
            pending: PendingBumps::default(),
            // Room for a few invalidated tables: a write does not allocate.
            sweep: Mutex::new(Vec::with_capacity(8)),
        });
        register(&inner);
        Cache { inner }
    }

    /// The settings this cache was built with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let mut stats = self.inner.counters.snapshot();
        stats.tables_forgotten = self.inner.tables.forgotten_count();
        stats
    }

    /// The key of `args` for the function identified by `scope`, in this cache's namespace.
    ///
    /// # Errors
    ///
    /// A [`KeyError`] when `args` fails to serialize.
    pub fn key<A: Serialize + ?Sized>(&self, scope: &KeyScope, args: &A) -> Result<Key, KeyError> {
        Key::build_in(self.inner.namespace, scope, args)
    }

    /// The key of arguments written into `builder`, in this cache's namespace.
    pub(crate) fn key_from(&self, builder: KeyBuilder, scope: u32) -> Key {
        builder.finish(self.inner.namespace, scope)
    }

    /// Returns the cached value for `key`, or runs `loader`, caches its value for `ttl` and
    /// returns it.
    ///
    /// - `tables` are the tables the query reads; a write to any of them
    ///   ([`Cache::invalidate`]) makes the entry stale.
    /// - An `Err` from the loader is returned as is and never cached; `None` and empty
    ///   collections are cached only when `Settings::cache_none` is on.
    /// - Concurrent misses on one key run `loader` once and share its value.
    /// - Backend failures and undecodable entries never fail the call: they count as misses
    ///   (and in [`Stats`]) and the loader runs.
    ///
    /// With [`Ttl::Bypass`], or when the cache is disabled, `loader` runs and nothing is
    /// read or stored.
    pub fn get_or_load<O, F, Fut>(
        &self,
        key: Key,
        tables: &[&str],
        ttl: impl Into<Ttl>,
        loader: F,
    ) -> impl Future<Output = O>
    where
        O: LoadOutput,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        // A future written by hand rather than an `async fn`: its first poll answers an
        // in-memory hit directly, and everything else (a miss, a remote store, a bypass)
        // runs in one boxed future. So a hit never creates, moves or drops the miss path's
        // state. The lookup still happens at the first poll, not at the call: a future
        // created before a write and awaited after it does not return what was cached
        // before the write.
        let ttl = ttl.into();
        let mut start = Some((key, loader));
        let mut slow = None;
        std::future::poll_fn(move |cx| {
            if let Some((key, loader)) = start.take() {
                if let Some(hit) = self.memory_hit(&key, &ttl) {
                    return Poll::Ready(hit);
                }
                slow = Some(Box::pin(self.slow_path(
                    Ok(key),
                    tables,
                    ttl,
                    false,
                    loader,
                )));
            }
            match &mut slow {
                Some(future) => future.as_mut().poll(cx),
                None => panic!("`Cache::get_or_load` future polled after completion"),
            }
        })
    }

    /// Whether a read with `ttl` goes through the cache at all.
    #[inline]
    fn caches(&self, ttl: &Ttl) -> bool {
        *ttl != Ttl::Bypass && self.inner.settings.enabled
    }

    /// The value of an in-memory hit on `key`, read with `ttl`; `None` for anything else
    /// (a miss, a remote store, a bypass), which [`Cache::slow_path`] handles.
    #[inline]
    pub(crate) fn memory_hit<O: LoadOutput>(&self, key: &Key, ttl: &Ttl) -> Option<O> {
        let Store::Memory(map) = &self.inner.store else {
            return None;
        };
        if !self.caches(ttl) {
            return None;
        }
        match self.lookup_memory::<O::Value>(map, key) {
            Found::Hit(value) => Some(O::from_value(value)),
            Found::Miss => None,
        }
    }

    /// Everything but an in-memory hit: a remote lookup, then the load; or the loader
    /// alone, for a key that could not be built or an `uncached` read (inside a
    /// transaction), a bypass or a disabled cache. The caller has already asked
    /// [`Cache::memory_hit`], and boxes this future so that its own, which every hit
    /// builds, stays small.
    pub(crate) async fn slow_path<O, F, Fut>(
        &self,
        key: Result<Key, String>,
        tables: &[&str],
        ttl: Ttl,
        uncached: bool,
        loader: F,
    ) -> O
    where
        O: LoadOutput,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        // Uncached reads do not need a key, so a key that failed to build is only worth a
        // warning for the others.
        let key = match key {
            _ if uncached || !self.caches(&ttl) => return loader().await,
            Ok(key) => key,
            Err(error) => {
                key_error(&error);
                return loader().await;
            }
        };
        if let Store::Backend(backend) = &self.inner.store
            && let Found::Hit(value) = self
                .lookup_backend::<O::Value>(backend.as_ref(), &key, tables)
                .await
        {
            return O::from_value(value);
        }
        self.load(key, tables, ttl, loader).await
    }

    /// Makes every cached read of `tables` stale, in this cache and in every other
    /// [`Cache`] of this process, and deletes the keys they track.
    ///
    /// Call it after the write is visible to other connections (after `COMMIT`): a read
    /// that starts after this returns will not be served anything read before it, by any
    /// cache of the process (a repository's own, the process-wide one), whichever cache
    /// the write named.
    ///
    /// With a backend that shares versions, the backend's versions are bumped too, so
    /// every cache sharing it stops serving those entries. If that fails (the backend is
    /// down), the failure is counted and logged, this cache serves nothing from the
    /// backend until it has delivered the bump (retried before each backend operation),
    /// and other caches see the invalidation once it is delivered.
    pub async fn invalidate(&self, tables: &[&str]) {
        // The in-memory stores are invalidated right here; caches over a backend (rare:
        // no allocation otherwise) are gathered and awaited after the registry's lock.
        let mut remote: Vec<Arc<Inner>> = Vec::new();
        for_each_cache(|inner| {
            let named = Arc::ptr_eq(inner, &self.inner);
            match &inner.store {
                Store::Memory(_) => inner.invalidate_memory(tables, named),
                Store::Backend(_) => remote.push(inner.clone()),
            }
        });
        for inner in remote {
            let named = Arc::ptr_eq(&inner, &self.inner);
            // Boxed: its state (remote calls) would otherwise make every in-memory
            // invalidation's future larger.
            Box::pin(inner.invalidate_backend(tables, named)).await;
        }
    }

    /// [`Cache::invalidate`] without waiting: for a write that can no longer await (its
    /// future was dropped, or it panicked). Every in-memory store and every cache's local
    /// table versions are invalidated before this returns; a shared backend's versions are
    /// bumped by a task spawned on the current Tokio runtime, and until that lands the
    /// cache serves nothing from the backend.
    pub(crate) fn invalidate_now(&self, tables: &[&str]) {
        for_each_cache(|inner| match &inner.store {
            Store::Memory(_) => inner.invalidate_memory(tables, Arc::ptr_eq(inner, &self.inner)),
            Store::Backend(backend) => {
                for table in inner.tables_to_invalidate(tables, Arc::ptr_eq(inner, &self.inner)) {
                    table.bump();
                    inner.counters.bump(Counter::Invalidations);
                    drop(table.take_keys());
                }
                // Other processes may have read these tables: a shared backend is bumped
                // whether or not this cache has seen them.
                if backend.shared_versions() {
                    inner.pending.add(tables);
                    let cache = Cache {
                        inner: inner.clone(),
                    };
                    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                        runtime.spawn(async move {
                            if let Store::Backend(backend) = &cache.inner.store {
                                cache.deliver_pending(backend.as_ref()).await;
                            }
                        });
                    }
                }
            }
        });
    }

    /// Removes every entry of this cache and makes all loads in flight stale.
    pub async fn clear(&self) {
        for table in self.inner.tables.all() {
            table.bump();
            drop(table.take_hashes());
        }
        self.inner
            .sweep
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        match &self.inner.store {
            Store::Memory(map) => map.clear(),
            Store::Backend(backend) => {
                if let Err(e) = backend.clear_prefix(&self.inner.prefix).await {
                    self.backend_error("clear", &e);
                }
            }
        }
    }

    /// How many entries the in-memory store holds; `None` for a cache over a [`Backend`].
    pub fn entry_count(&self) -> Option<usize> {
        match &self.inner.store {
            Store::Memory(map) => Some(map.len()),
            Store::Backend(_) => None,
        }
    }

    /// The weight of the in-memory store's entries in bytes (see `Settings::max_bytes`),
    /// counting removed ones until their memory is freed; `None` for a cache over a
    /// [`Backend`].
    pub fn memory_bytes(&self) -> Option<usize> {
        match &self.inner.store {
            Store::Memory(map) => Some(map.bytes()),
            Store::Backend(_) => None,
        }
    }

    /// How many tables this cache keeps versions for (at most `Settings::max_tables`).
    pub fn table_count(&self) -> usize {
        self.inner.tables.len()
    }

    /// How many keys `table` currently tracks for invalidation in this process (at most
    /// `Settings::max_keys_per_table`). A backend that shares versions tracks keys itself
    /// ([`Backend::tracked`]), and this is then 0.
    pub fn tracked_keys(&self, table: &str) -> usize {
        self.inner.tables.existing(table).map_or(0, |t| t.tracked())
    }

    // ----- read path -----

    /// Looks `key` up in whichever store this cache has; used by a waiter whose leader
    /// was abandoned (hits on the first poll go through [`Cache::memory_hit`]). `tables` are the tables the read names: a backend with shared
    /// versions returns theirs with the entry, in one round trip.
    async fn lookup_in<V: CacheValue>(&self, key: &Key, tables: &[&str]) -> Found<V> {
        match &self.inner.store {
            Store::Memory(map) => self.lookup_memory(map, key),
            Store::Backend(backend) => {
                Box::pin(self.lookup_backend(backend.as_ref(), key, tables)).await
            }
        }
    }

    #[inline]
    fn lookup_memory<V: CacheValue>(&self, map: &MemoryStore, key: &Key) -> Found<V> {
        let counters = &self.inner.counters;
        match map.get::<V>(key) {
            Lookup::Hit(value) => {
                counters.bump(Counter::Hits);
                Found::Hit(value)
            }
            Lookup::Miss => Found::Miss,
            Lookup::Fault(counter) => {
                counters.bump(counter);
                Found::Miss
            }
            Lookup::WrongType => {
                self.decode_error(key, &"entry holds a value of another type");
                Found::Miss
            }
        }
    }

    async fn lookup_backend<V: CacheValue>(
        &self,
        backend: &dyn Backend,
        key: &Key,
        tables: &[&str],
    ) -> Found<V> {
        let shared = backend.shared_versions();
        if shared && !self.deliver_pending(backend).await {
            return Found::Miss;
        }
        let name = self.remote_key(key);
        let fetched = if shared {
            backend
                .get_checked(&self.inner.settings.namespace, &name, tables)
                .await
        } else {
            backend.get(&name).await.map(|bytes| (bytes, Vec::new()))
        };
        let (bytes, versions) = match fetched {
            Ok((Some(bytes), versions)) => (bytes, versions),
            Ok((None, _)) => return Found::Miss,
            Err(e) => {
                self.backend_error("get", &e);
                return Found::Miss;
            }
        };
        let env = match envelope::decode::<V>(&bytes) {
            Ok(env) => env,
            Err(e) => {
                self.decode_error(key, &e);
                self.delete_remote(backend, &[name]).await;
                return Found::Miss;
            }
        };
        let fault = if env
            .expires_at
            .is_some_and(|at| envelope::unix_ms(SystemTime::now()) >= at)
        {
            Some(Counter::Expired)
        } else if shared {
            match self
                .shared_tags_current(backend, &env.tags, tables, &versions)
                .await
            {
                Ok(true) => None,
                Ok(false) => Some(Counter::Stale),
                Err(e) => {
                    self.backend_error("versions", &e);
                    return Found::Miss;
                }
            }
        } else if env.tags.iter().any(|(table, version)| {
            // A table this cache does not know: the entry is not one it stored since
            // (its versions are this process's own).
            self.inner
                .tables
                .existing(table)
                .is_none_or(|t| t.version() != *version)
        }) {
            Some(Counter::Stale)
        } else {
            None
        };
        if let Some(counter) = fault {
            self.inner.counters.bump(counter);
            self.delete_remote(backend, &[name]).await;
            return Found::Miss;
        }
        self.inner.counters.bump(Counter::Hits);
        Found::Hit(env.value)
    }

    /// Whether every tag matches the backend's current version of its table. `versions`
    /// came with the entry for `tables`; a tag on another table (a read inside a
    /// transaction names none) costs a second round trip.
    async fn shared_tags_current(
        &self,
        backend: &dyn Backend,
        tags: &[(String, u64)],
        tables: &[&str],
        versions: &[u64],
    ) -> Result<bool, BackendError> {
        let mut others = Vec::new();
        for (table, version) in tags {
            match tables.iter().position(|t| t == table) {
                // A backend that returned too few versions makes the entry stale.
                Some(i) if versions.get(i) != Some(version) => return Ok(false),
                Some(_) => {}
                None => others.push((table.as_str(), *version)),
            }
        }
        if others.is_empty() {
            return Ok(true);
        }
        let names: Vec<&str> = others.iter().map(|(t, _)| *t).collect();
        let current = backend
            .versions(&self.inner.settings.namespace, &names)
            .await?;
        Ok(current.len() == others.len() && others.iter().zip(&current).all(|((_, v), c)| v == c))
    }

    // ----- miss path -----

    async fn load<O, F, Fut>(&self, key: Key, names: &[&str], ttl: Ttl, loader: F) -> O
    where
        O: LoadOutput,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        let counters = &self.inner.counters;
        counters.bump(Counter::Misses);
        let tables = self.inner.tables.resolve(names);
        let max_wait = self.inner.settings.max_load_wait;
        loop {
            // Captured before the query runs: a write that completes after this point
            // bumps a version, and whatever this load stores is stale from then on.
            let captured = self.capture(&tables).await;
            if captured.source == Source::Unavailable {
                // Versions unknown: the load cannot tell whether a write came between it
                // and another caller's, so it shares no flight (and stores nothing).
                counters.bump(Counter::Loads);
                return loader().await;
            }
            let flights = &self.inner.flights;
            match flights.join_or_lead(key, &captured.versions, max_wait) {
                Role::Leader(guard) => {
                    counters.bump(Counter::Loads);
                    let output = flights.lead(key, loader()).await;
                    return match output.into_value() {
                        Ok(value) => {
                            let shared: Shared = Arc::new(value.clone());
                            self.store(key, &tables, &captured, ttl, &value).await;
                            guard.finish(State::Done(shared));
                            O::from_value(value)
                        }
                        Err(output) => {
                            guard.finish(State::Failed);
                            output
                        }
                    };
                }
                // The loader of this key asked for its own key: waiting would be waiting
                // for itself.
                Role::Alone => return self.load_alone(key, &tables, ttl, loader).await,
                Role::Waiter(flight) => match flight.wait(flight.deadline(max_wait)).await {
                    State::Done(shared) => {
                        if let Some(value) = shared.downcast_ref::<O::Value>() {
                            counters.bump(Counter::Coalesced);
                            return O::from_value(value.clone());
                        }
                        // Same key, another value type (a hand-built key reused): load alone.
                        return self.load_alone(key, &tables, ttl, loader).await;
                    }
                    State::Failed => return self.load_alone(key, &tables, ttl, loader).await,
                    // Waited `max_load_wait`: the leader may never return.
                    State::Running => {
                        counters.bump(Counter::LoadWaitTimeouts);
                        tracing::warn!(target: "cache_runtime", key = %key,
                            max_load_wait = ?max_wait,
                            "a load of this key took longer than max_load_wait; \
                             running the query instead of waiting for it");
                        return self.load_alone(key, &tables, ttl, loader).await;
                    }
                    State::Abandoned => {
                        // The leader panicked or was cancelled: someone else may have
                        // stored the value meanwhile; otherwise elect a new leader.
                        if let Found::Hit(value) = self.lookup_in::<O::Value>(&key, names).await {
                            return O::from_value(value);
                        }
                    }
                },
            }
        }
    }

    /// Runs `loader` without joining a flight (the leader failed with an error that only
    /// it can return) and stores its value.
    async fn load_alone<O, F, Fut>(&self, key: Key, tables: &[Arc<Table>], ttl: Ttl, loader: F) -> O
    where
        O: LoadOutput,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        let captured = self.capture(tables).await;
        self.inner.counters.bump(Counter::Loads);
        match loader().await.into_value() {
            Ok(value) => {
                self.store(key, tables, &captured, ttl, &value).await;
                O::from_value(value)
            }
            Err(output) => output,
        }
    }

    /// The versions of `tables` now: the backend's when it shares them, else this
    /// process's.
    async fn capture(&self, tables: &[Arc<Table>]) -> Captured {
        let local = || tables.iter().map(|t| t.version()).collect::<Vec<u64>>();
        let Store::Backend(backend) = &self.inner.store else {
            return Captured {
                versions: local(),
                source: Source::Local,
            };
        };
        if !backend.shared_versions() {
            return Captured {
                versions: local(),
                source: Source::Local,
            };
        }
        if self.deliver_pending(backend.as_ref()).await {
            let names: Vec<&str> = tables.iter().map(|t| t.name()).collect();
            match backend
                .versions(&self.inner.settings.namespace, &names)
                .await
            {
                Ok(versions) if versions.len() == names.len() => {
                    return Captured {
                        versions,
                        source: Source::Shared,
                    };
                }
                Ok(versions) => self.backend_error(
                    "versions",
                    &BackendError::new(format!(
                        "asked for {} table versions, got {}",
                        names.len(),
                        versions.len()
                    )),
                ),
                Err(e) => self.backend_error("versions", &e),
            }
        }
        let mut versions = local();
        versions.push(u64::MAX);
        Captured {
            versions,
            source: Source::Unavailable,
        }
    }

    async fn store<V: CacheValue>(
        &self,
        key: Key,
        tables: &[Arc<Table>],
        captured: &Captured,
        ttl: Ttl,
        value: &V,
    ) {
        if !self.inner.settings.cache_none && output::is_empty(value) {
            return;
        }
        if let Store::Backend(backend) = &self.inner.store
            && backend.shared_versions()
        {
            self.store_shared(backend.as_ref(), key, tables, captured, ttl, value)
                .await;
            return;
        }
        let versions = &captured.versions;
        // A write completed during the load: the entry would be stale on arrival.
        if tables.iter().zip(versions).any(|(t, v)| t.version() != *v) {
            return;
        }
        let now = Instant::now();
        let Ok(deadline) = ttl.deadline(now) else {
            return;
        };
        match &self.inner.store {
            Store::Memory(map) => {
                let slot = Slot::new(
                    Box::new(value.clone()),
                    weight(value),
                    deadline,
                    Tags::new(tables, versions),
                );
                match map.insert(key, slot) {
                    Inserted::Stored { evicted } => {
                        if evicted > 0 {
                            self.inner.counters.add(Counter::Evictions, evicted);
                        }
                    }
                    // Another live key has the same 64-bit hash: leave it be.
                    Inserted::Collision => return,
                    Inserted::TooLarge => {
                        self.inner.counters.bump(Counter::Oversized);
                        oversized(&key, self.inner.settings.max_bytes);
                        return;
                    }
                    Inserted::NoRoom { evicted } => {
                        self.inner.counters.add(Counter::Evictions, evicted);
                        return;
                    }
                }
                self.sweep(map, SWEEP_BATCH.max(2 * tables.len()));
            }
            Store::Backend(backend) => {
                let Some(entry) = Entry::encode(&key, value, tables, versions, deadline, now)
                else {
                    return;
                };
                if let Err(e) = backend
                    .set(&self.remote_key(&key), entry.bytes, entry.storage_ttl)
                    .await
                {
                    self.backend_error("set", &e);
                    return;
                }
            }
        }
        // Forgotten tables' entries are stale: a backend's are deleted with the rest.
        let (_, mut dropped) = match &self.inner.store {
            Store::Backend(_) => self.inner.tables.take_forgotten(),
            Store::Memory(_) => (Vec::new(), Vec::new()),
        };
        for table in tables {
            match (table.track(&key), &self.inner.store) {
                (None, _) => {}
                (Some(Untracked::Hash(hash)), Store::Memory(map)) => {
                    self.inner.counters.bump(Counter::TableEvictions);
                    map.remove_hash_if(hash, |_| true);
                }
                (Some(Untracked::Key(oldest)), _) => {
                    self.inner.counters.bump(Counter::TableEvictions);
                    dropped.push(oldest);
                }
                // Tables track by hash exactly when the store is in memory.
                (Some(Untracked::Hash(_)), Store::Backend(_)) => {}
            }
        }
        self.delete(&dropped).await;
    }

    /// Stores through a backend that keeps versions and tracking itself: one call that
    /// stores only if the captured versions are still current.
    async fn store_shared<V: CacheValue>(
        &self,
        backend: &dyn Backend,
        key: Key,
        tables: &[Arc<Table>],
        captured: &Captured,
        ttl: Ttl,
        value: &V,
    ) {
        if captured.source != Source::Shared {
            return;
        }
        let now = Instant::now();
        let Ok(deadline) = ttl.deadline(now) else {
            return;
        };
        let Some(entry) = Entry::encode(&key, value, tables, &captured.versions, deadline, now)
        else {
            return;
        };
        if !self.deliver_pending(backend).await {
            return;
        }
        let stored = backend
            .set_tracked(
                &self.inner.settings.namespace,
                &self.remote_key(&key),
                entry.bytes,
                entry.storage_ttl,
                &entry.tags,
                self.inner.settings.max_keys_per_table,
            )
            .await;
        match stored {
            Ok(StoreOutcome::Stored { evicted }) if evicted > 0 => {
                self.inner
                    .counters
                    .add(Counter::TableEvictions, evicted as u64);
            }
            // Stale: a write completed during the load; the entry would be stale on arrival.
            Ok(_) => {}
            Err(e) => self.backend_error("set", &e),
        }
    }

    /// Bumps `tables` in a backend that shares versions, with any bumps still pending;
    /// remembers them when it fails.
    async fn bump_shared(&self, backend: &dyn Backend, tables: &[&str]) {
        let pending = self.inner.pending.waiting();
        let mut all: Vec<&str> = tables.to_vec();
        all.extend(pending.iter().flatten().map(|t| &**t));
        all.sort_unstable();
        all.dedup();
        match backend.bump(&self.inner.settings.namespace, &all).await {
            Ok(()) => {
                if let Some(pending) = pending {
                    self.inner.pending.delivered(&pending);
                }
            }
            Err(e) => {
                self.inner.pending.add(tables);
                self.backend_error("bump", &e);
                tracing::warn!(target: "cache_runtime", tables = ?tables,
                    "invalidation not delivered to the shared backend: this cache bypasses it \
                     until the invalidation is delivered; other caches may serve older \
                     entries of these tables until then");
            }
        }
    }

    /// Delivers the bumps a shared backend missed. `false` while that still fails: the
    /// backend's versions then lag behind a completed write, and the caller must neither
    /// read from nor store into it.
    async fn deliver_pending(&self, backend: &dyn Backend) -> bool {
        let Some(tables) = self.inner.pending.waiting() else {
            return true;
        };
        let names: Vec<&str> = tables.iter().map(|t| &**t).collect();
        match backend.bump(&self.inner.settings.namespace, &names).await {
            Ok(()) => {
                self.inner.pending.delivered(&tables);
                tracing::info!(target: "cache_runtime", tables = ?names,
                    "delivered invalidations the shared backend missed");
                true
            }
            Err(e) => {
                self.backend_error("bump", &e);
                false
            }
        }
    }

    /// Deletes up to `budget` entries of invalidated tables, if they are still the stale
    /// ones (a key refilled since its table was invalidated keeps its fresh entry). Each
    /// store tracks one key per table it read and sweeps at least twice that, so the sweep
    /// never falls behind.
    fn sweep(&self, map: &MemoryStore, budget: usize) {
        let mut hashes = Vec::new();
        {
            let mut sweep = self
                .inner
                .sweep
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Forgotten tables' reads are stale too.
            let (forgotten, _) = self.inner.tables.take_forgotten();
            sweep.extend(forgotten);
            while hashes.len() < budget {
                let Some(tracked) = sweep.last_mut() else {
                    break;
                };
                match tracked.pop_oldest() {
                    Some(hash) => hashes.push(hash),
                    None => drop(sweep.pop()),
                }
            }
        }
        let now = Instant::now();
        for hash in hashes {
            map.remove_hash_if(hash, |slot| slot.fault(|| now).is_some());
        }
    }

    // ----- helpers -----

    async fn delete(&self, keys: &[Key]) {
        if keys.is_empty() {
            return;
        }
        match &self.inner.store {
            Store::Memory(map) => {
                for key in keys {
                    map.remove(key);
                }
            }
            Store::Backend(backend) => {
                let names: Vec<String> = keys.iter().map(|k| self.remote_key(k)).collect();
                self.delete_remote(backend.as_ref(), &names).await;
            }
        }
    }

    async fn delete_remote(&self, backend: &dyn Backend, names: &[String]) {
        if let Err(e) = backend.delete(names).await {
            self.backend_error("delete", &e);
        }
    }

    /// `{namespace}:{key in lower-case hex}` (as `Key`'s `Display`), without the formatting
    /// machinery: this runs on every remote hit.
    fn remote_key(&self, key: &Key) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut name = String::with_capacity(self.inner.prefix.len() + 64);
        name.push_str(&self.inner.prefix);
        for b in key.digest() {
            name.push(char::from(HEX[usize::from(b >> 4)]));
            name.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        name
    }

    fn backend_error(&self, op: &str, error: &dyn std::error::Error) {
        self.inner.counters.bump(Counter::BackendErrors);
        tracing::warn!(target: "cache_runtime", op, error = %error,
            "cache backend failed; running the query instead");
    }

    fn decode_error(&self, key: &Key, error: &dyn fmt::Display) {
        self.inner.counters.bump(Counter::DecodeErrors);
        tracing::warn!(target: "cache_runtime", key = %key, error = %error,
            "cached entry is unusable; treating it as a miss and deleting it");
    }
}

/// What a value costs in the in-memory store: its encoded size (about its heap size for the
/// rows, strings and collections a query returns) plus a fixed cost per entry.
fn weight<V: CacheValue>(value: &V) -> usize {
    struct Count(usize);
    impl crate::key_encoder::Sink for Count {
        fn put(&mut self, bytes: &[u8]) {
            self.0 += bytes.len();
        }
    }
    let mut count = Count(std::mem::size_of::<V>());
    // A value that fails to serialize would fail for a backend too; weigh what was seen.
    let _ = crate::key_encoder::encode(&mut count, value);
    count.0.saturating_add(crate::store::ENTRY_OVERHEAD)
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

#[cold]
fn key_error(error: &dyn fmt::Display) {
    tracing::warn!(target: "cache_runtime", error = %error,
        "cache key arguments failed to serialize; running the query uncached");
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match self.inner.store {
            Store::Memory(_) => "memory",
            Store::Backend(_) => "custom",
        };
        f.debug_struct("Cache")
            .field("namespace", &self.inner.settings.namespace)
            .field("backend", &backend)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// The in-memory store's part of an invalidation. The version bump is what makes
    /// entries stale; deleting them only frees memory. So the writer pays O(1) per table:
    /// the tracked keys are handed to the sweep, which later misses drain a few at a time.
    fn invalidate_memory(&self, tables: &[&str], named: bool) {
        let mut sweep = self.sweep.lock().unwrap_or_else(PoisonError::into_inner);
        for table in self.tables_to_invalidate(tables, named) {
            table.bump();
            self.counters.bump(Counter::Invalidations);
            let tracked = table.take_hashes();
            if !tracked.is_empty() {
                sweep.push(tracked);
            }
        }
    }

    /// The tables of a write this cache must bump: all of them in the cache the write
    /// named (each counts as an invalidation), and those it has seen in the others (one it
    /// has not seen has nothing to make stale).
    fn tables_to_invalidate<'a>(
        &'a self,
        tables: &'a [&'a str],
        named: bool,
    ) -> impl Iterator<Item = Arc<Table>> + 'a {
        tables.iter().filter_map(move |name| {
            if named {
                Some(self.tables.get(name))
            } else {
                self.tables.existing(name)
            }
        })
    }

    async fn invalidate_backend(self: Arc<Inner>, tables: &[&str], named: bool) {
        let cache = Cache { inner: self };
        let inner = &cache.inner;
        let mut keys = Vec::new();
        for table in inner.tables_to_invalidate(tables, named) {
            table.bump();
            inner.counters.bump(Counter::Invalidations);
            keys.extend(table.take_keys());
        }
        if let Store::Backend(backend) = &inner.store
            && backend.shared_versions()
            && !tables.is_empty()
        {
            cache.bump_shared(backend.as_ref(), tables).await;
        }
        cache.delete(&keys).await;
    }
}

/// Every cache of this process, so that a write through one reaches them all.
static CACHES: RwLock<Vec<Weak<Inner>>> = RwLock::new(Vec::new());

fn register(inner: &Arc<Inner>) {
    let mut caches = CACHES.write().unwrap_or_else(PoisonError::into_inner);
    caches.retain(|c| c.strong_count() > 0);
    caches.push(Arc::downgrade(inner));
}

fn for_each_cache(mut f: impl FnMut(&Arc<Inner>)) {
    let caches = CACHES.read().unwrap_or_else(PoisonError::into_inner);
    for weak in caches.iter() {
        if let Some(inner) = weak.upgrade() {
            f(&inner);
        }
    }
}

static GLOBAL: OnceLock<Cache> = OnceLock::new();
/// Where the process-wide cache came from: `install`, or the first `global()` call.
static GLOBAL_ORIGIN: OnceLock<Origin> = OnceLock::new();

#[derive(Clone, Copy, Debug)]
enum Origin {
    Installed(&'static std::panic::Location<'static>),
    DefaultFirstUsedAt(&'static std::panic::Location<'static>),
}

/// Installs `cache` as the process-wide cache used by macro-generated code that has no
/// `&Cache` parameter and no `cache = ...` argument. Call it once at start-up, before any
/// cached function runs.
///
/// ```
/// use cache_runtime::{Cache, Settings};
///
/// let settings = Settings { namespace: "shop".into(), ..Settings::default() };
/// cache_runtime::install(Cache::new(settings)?)?;
/// assert_eq!(cache_runtime::global().settings().namespace, "shop");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// An [`InstallError`] when a process-wide cache is already in place: installed before,
/// or created with default settings because a cached function (or [`global`]) used it
/// first. The error says where that happened; it is also logged at `ERROR` level, so
/// ignoring it does not keep the mistake quiet. Its
/// [`into_cache`](InstallError::into_cache) gives `cache` back.
#[track_caller]
pub fn install(cache: Cache) -> Result<(), InstallError> {
    let at = std::panic::Location::caller();
    let mut cache = Some(cache);
    GLOBAL.get_or_init(|| {
        let _ = GLOBAL_ORIGIN.set(Origin::Installed(at));
        // Runs only while nothing is installed, so `cache` is still there.
        cache
            .take()
            .unwrap_or_else(|| Cache::build(Settings::default(), default_store()))
    });
    match cache {
        None => Ok(()),
        Some(rejected) => {
            let error = InstallError {
                cache: Some(rejected),
                origin: GLOBAL_ORIGIN.get().copied(),
                at,
            };
            tracing::error!(target: "cache_runtime", "{error}");
            Err(error)
        }
    }
}

/// The process-wide cache: the one [`install`]ed, or else an in-memory cache with
/// [`Settings::default`], created on first use (and a later [`install`] fails, saying
/// where that first use was).
#[track_caller]
pub fn global() -> &'static Cache {
    if let Some(cache) = GLOBAL.get() {
        return cache;
    }
    let at = std::panic::Location::caller();
    GLOBAL.get_or_init(|| {
        let _ = GLOBAL_ORIGIN.set(Origin::DefaultFirstUsedAt(at));
        Cache::build(Settings::default(), default_store())
    })
}

fn default_store() -> Store {
    let settings = Settings::default();
    Store::Memory(MemoryStore::new(settings.max_entries, settings.max_bytes))
}

/// [`install`] came too late: a process-wide cache was already in place.
pub struct InstallError {
    cache: Option<Cache>,
    origin: Option<Origin>,
    at: &'static std::panic::Location<'static>,
}

impl InstallError {
    /// The cache that was not installed.
    pub fn into_cache(self) -> Option<Cache> {
        self.cache
    }
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cache_runtime::install at {} came too late: ", self.at)?;
        match self.origin {
            Some(Origin::Installed(at)) => write!(
                f,
                "a process-wide cache was already installed at {at}; install one cache, once"
            ),
            Some(Origin::DefaultFirstUsedAt(at)) => write!(
                f,
                "the process-wide cache was first used at {at}, which created it with default \
                 settings; call install() at start-up, before any cached function or \
                 invalidation runs"
            ),
            None => f.write_str("a process-wide cache is already in place"),
        }
    }
}

impl fmt::Debug for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstallError({self})")
    }
}

impl std::error::Error for InstallError {}
