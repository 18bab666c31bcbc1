//! `Cache`: the public facade. What happens on a miss is in `miss`; where entries live is
//! the store's business (`crate::store`); the process-wide cache and the registry of every
//! cache are in `global`.

mod global;
mod miss;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use serde::Serialize;

pub use global::{InstallError, global, install};

use crate::backend::{Backend, SharedBackend};
use crate::key::{Key, KeyBuilder, KeyError, KeyScope};
use crate::output::LoadOutput;
use crate::rows::WrittenRows;
use crate::stats::Stats;
use crate::store::{AnyStore, Core, MemoryStore, NearStore, PlainStore, PushTarget, SharedStore};
use crate::{Settings, SettingsError, Ttl};

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
    core: Core,
    store: AnyStore,
}

impl Cache {
    /// A cache in process memory, bounded by `settings.max_entries` and `max_bytes`.
    ///
    /// # Errors
    ///
    /// A [`SettingsError`] when a setting is invalid (see [`Settings::validate`]).
    pub fn new(settings: Settings) -> Result<Cache, SettingsError> {
        settings.validate()?;
        Ok(Cache::in_memory(settings))
    }

    /// A cache storing its entries in `backend`, with table versions kept in this process:
    /// entries written by another `Cache` instance (another process, an earlier run) are
    /// never served by this one, so they are never served stale, but they are not shared
    /// either. To share entries and invalidations between processes, give a
    /// [`SharedBackend`] to [`Cache::with_shared_backend`].
    ///
    /// # Errors
    ///
    /// A [`SettingsError`] when a setting is invalid (see [`Settings::validate`]).
    pub fn with_backend(settings: Settings, backend: impl Backend) -> Result<Cache, SettingsError> {
        settings.validate()?;
        let store = PlainStore::new(&settings, Box::new(backend));
        Ok(Cache::build(settings, AnyStore::Plain(store)))
    }

    /// A cache over a backend that keeps table versions and key tracking itself (Redis, or
    /// [`SharedMemoryBackend`](crate::backend::SharedMemoryBackend)): every cache using it,
    /// in every process, shares entries and invalidations. A write through one makes the
    /// entries of all of them stale; one round trip per hit checks that.
    ///
    /// # Errors
    ///
    /// A [`SettingsError`] when a setting is invalid (see [`Settings::validate`]).
    pub fn with_shared_backend(
        settings: Settings,
        backend: impl SharedBackend,
    ) -> Result<Cache, SettingsError> {
        settings.validate()?;
        let store = SharedStore::new(Box::new(backend));
        if !settings.near_cache {
            return Ok(Cache::build(settings, AnyStore::Shared(store)));
        }
        let heartbeat = (settings.near_lease / 5).max(std::time::Duration::from_millis(1));
        let namespace = settings.namespace.clone();
        let backend = store.backend();
        let inner = Arc::new(Inner {
            store: AnyStore::Near(NearStore::new(&settings, store)),
            core: Core::new(settings),
        });
        // Subscribed once the cache exists: the first push may come at once.
        let target: std::sync::Weak<dyn PushTarget> = Arc::downgrade(&inner) as _;
        let sink = crate::backend::InvalidationSink::new(target, heartbeat);
        backend
            .subscribe(&namespace, sink)
            .map_err(|e| SettingsError::NearCacheUnavailable(e.to_string()))?;
        global::register(&inner);
        Ok(Cache { inner })
    }

    fn build(settings: Settings, store: AnyStore) -> Cache {
        if settings.near_cache {
            tracing::warn!(target: "cache_runtime",
                "settings.near_cache is on, but a near cache needs a shared backend \
                 (Cache::with_shared_backend): this cache is not one");
        }
        let inner = Arc::new(Inner {
            core: Core::new(settings),
            store,
        });
        global::register(&inner);
        Cache { inner }
    }

    /// An in-memory cache over settings already valid (the process-wide one, unless
    /// installed, has the defaults).
    pub(crate) fn in_memory(settings: Settings) -> Cache {
        let store = MemoryStore::new(&settings);
        Cache::build(settings, AnyStore::Memory(store))
    }

    /// The settings this cache was built with.
    pub fn settings(&self) -> &Settings {
        &self.inner.core.settings
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let mut stats = self.inner.core.counters.snapshot();
        stats.tables_forgotten = self.inner.store.tables_forgotten();
        stats
    }

    /// The counters of each cached function this cache has served, busiest first. A
    /// function is named by its `name = "..."` or by its path; generic functions once per
    /// instantiation (`app::Repo<app::Pg>::find`).
    ///
    /// ```
    /// use cache_runtime::{Cache, Settings, cached};
    ///
    /// #[cached(table = "users", ttl = "60s", name = "users::name")]
    /// async fn user_name(cache: &Cache, id: i64) -> Result<String, std::io::Error> {
    ///     Ok(format!("user {id}"))
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cache = Cache::new(Settings::default()).unwrap();
    /// for _ in 0..3 {
    ///     user_name(&cache, 1).await?;
    /// }
    /// let stats = cache.function_stats();
    /// assert_eq!(stats[0].function, "users::name");
    /// assert_eq!((stats[0].hits, stats[0].misses), (2, 1));
    /// # Ok::<(), std::io::Error>(()) }).unwrap();
    /// ```
    pub fn function_stats(&self) -> Vec<crate::FunctionStats> {
        self.inner.core.functions.snapshot()
    }

    /// The key of `args` for the function identified by `scope`, in this cache's namespace.
    ///
    /// # Errors
    ///
    /// A [`KeyError`] when `args` fails to serialize.
    pub fn key<A: Serialize + ?Sized>(&self, scope: &KeyScope, args: &A) -> Result<Key, KeyError> {
        Key::build_in(self.inner.core.namespace, scope, args)
    }

    /// The stale windows of a read that names none: the settings'.
    pub(crate) fn windows(&self) -> crate::stale::Windows {
        self.inner.core.windows
    }

    /// How long before the deadline an entry stops being a plain hit, for reads that name
    /// no stale windows (`crate::stale`).
    #[inline]
    pub(crate) fn early(&self) -> u64 {
        self.inner.core.early
    }

    /// The key of arguments written into `builder`, in this cache's namespace.
    pub(crate) fn key_from(&self, builder: KeyBuilder, scope: u32) -> Key {
        builder.finish(self.inner.core.namespace, scope)
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
                let windows = self.inner.core.windows;
                if let Some(hit) = self.memory_hit(&key, &ttl, self.early()) {
                    return Poll::Ready(hit);
                }
                slow = Some(Box::pin(self.slow_path(
                    Ok(key),
                    tables,
                    ttl,
                    windows,
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
        *ttl != Ttl::Bypass && self.inner.core.settings.enabled
    }

    /// The value of a hit that needs no waiting (the in-memory store's), read with `ttl`;
    /// `None` for anything else (a miss, a remote store, a bypass), which
    /// [`Cache::slow_path`] handles.
    #[inline]
    pub(crate) fn memory_hit<O: LoadOutput>(&self, key: &Key, ttl: &Ttl, early: u64) -> Option<O> {
        if !self.caches(ttl) {
            return None;
        }
        let Inner { core, store } = &*self.inner;
        if core.sample != 0 && crate::observe::sample_due(core.sample) {
            // Re-checked against the database by the miss path, which has the loader.
            crate::observe::mark_sampled();
            return None;
        }
        let started = crate::observe::start_hit();
        let value = store.hit::<O::Value>(core, key, early)?;
        crate::observe::record_hit(&core.functions, key, started);
        Some(O::from_value(value))
    }

    /// Makes every cached read of `tables` stale, in this cache and in every other
    /// [`Cache`] of this process, and deletes the keys they track.
    ///
    /// Call it after the write is visible to other connections (after `COMMIT`): a read
    /// that starts after this returns will not be served anything read before it, by any
    /// cache of the process (a repository's own, the process-wide one), whichever cache
    /// the write named.
    ///
    /// With a shared backend, the backend's versions are bumped too, so every cache sharing
    /// it stops serving those entries. If that fails (the backend is down), the failure is
    /// counted and logged, this cache serves nothing from the backend until it has
    /// delivered the bump (retried before each backend operation), and other caches see the
    /// invalidation once it is delivered.
    ///
    /// Reads of single rows by id (see [`row_tags`](crate::row_tags)) of `tables` go stale
    /// too: the write's rows are not known. [`Cache::invalidate_rows`] names them.
    pub async fn invalidate(&self, tables: &[&str]) {
        self.invalidate_write(tables, &WrittenRows::new()).await;
    }

    /// Invalidates the rows `ids` of `table`: reads of those rows by id, and every read of
    /// the table that can include any row (lists, counts, joins), go stale; reads of other
    /// rows by id stay fresh. With [`Settings::row_level`] off, or no ids, the whole table,
    /// as [`Cache::invalidate`].
    ///
    /// ```
    /// use cache_runtime::{Cache, Settings};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cache = Cache::new(Settings::default()).unwrap();
    /// // After `UPDATE articles SET title = $1 WHERE id = $2` with id 7 has committed:
    /// cache.invalidate_rows("articles", &[7_i64]).await;
    /// # });
    /// ```
    pub async fn invalidate_rows<I: crate::RowId>(&self, table: &str, ids: &[I]) {
        let mut rows = WrittenRows::new();
        for id in ids {
            rows.add(table, Some(id.row_id()));
        }
        self.invalidate_write(&[table], &rows).await;
    }

    /// A write's invalidation: `tables` as [`Cache::invalidate`], except those `rows`
    /// names with every row the write touched, whose reads of other rows stay fresh. Bumps
    /// the tags it names in every cache.
    pub(crate) async fn invalidate_write(&self, tables: &[&str], rows: &WrittenRows<'_>) {
        let names = rows.names(tables, self.inner.core.settings.row_level);
        let tables = strs(&names);
        let tables = &tables[..];
        invalidation_event(tables, "write");
        let started = std::time::Instant::now();
        // The part that needs no waiting, for every cache, under the registry's lock; the
        // remote parts after it (rarely any: no allocation otherwise).
        let mut remote = Vec::new();
        global::for_each_cache(|inner| {
            let named = Arc::ptr_eq(inner, &self.inner);
            let work = inner.store.invalidate_local(&inner.core, tables, named);
            if !work.is_empty() {
                remote.push((inner.clone(), work));
            }
        });
        for (inner, work) in remote {
            // Boxed: its state (remote calls) would otherwise make every in-memory
            // invalidation's future larger.
            Box::pin(inner.store.invalidate_remote(&inner.core, tables, work)).await;
            crate::metrics::invalidation_delivered(started.elapsed());
        }
    }

    /// [`Cache::invalidate`] without waiting: for a write that can no longer await (its
    /// future was dropped, or it panicked). Every cache's local part (table versions,
    /// in-memory entries, pending shared bumps, which stop it serving from a shared
    /// backend) is done before this returns; the remote part runs in a task spawned on the
    /// current Tokio runtime, if there is one.
    pub(crate) fn invalidate_now(&self, tables: &[&str], rows: &WrittenRows<'_>) {
        let runtime = tokio::runtime::Handle::try_current().ok();
        self.invalidate_detached(tables, rows, "abandoned write", runtime);
    }

    /// [`Cache::invalidate`] for code that cannot await, such as a database driver's hook
    /// running on the driver's own thread: every cache's local part (table versions,
    /// in-memory entries, pending shared bumps) is done before this returns; a shared
    /// backend's part runs in a task spawned on `runtime`.
    ///
    /// ```
    /// use cache_runtime::{Cache, Settings};
    ///
    /// let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let cache = Cache::new(Settings::default()).unwrap();
    /// std::thread::spawn({
    ///     let (cache, handle) = (cache.clone(), runtime.handle().clone());
    ///     move || cache.invalidate_from_hook(&["users"], &handle)
    /// })
    /// .join()
    /// .unwrap();
    /// ```
    pub fn invalidate_from_hook(&self, tables: &[&str], runtime: &tokio::runtime::Handle) {
        let runtime = Some(runtime.clone());
        self.invalidate_detached(tables, &WrittenRows::new(), "database event", runtime);
    }

    fn invalidate_detached(
        &self,
        tables: &[&str],
        rows: &WrittenRows<'_>,
        cause: &'static str,
        runtime: Option<tokio::runtime::Handle>,
    ) {
        let names = rows.names(tables, self.inner.core.settings.row_level);
        let tables = strs(&names);
        let tables = &tables[..];
        invalidation_event(tables, cause);
        let owned: Vec<Box<str>> = tables.iter().map(|t| Box::<str>::from(*t)).collect();
        global::for_each_cache(|inner| {
            let named = Arc::ptr_eq(inner, &self.inner);
            let work = inner.store.invalidate_local(&inner.core, tables, named);
            if let (false, Some(runtime)) = (work.is_empty(), &runtime) {
                let (inner, owned) = (inner.clone(), owned.clone());
                runtime.spawn(async move {
                    let tables: Vec<&str> = owned.iter().map(|t| &**t).collect();
                    inner
                        .store
                        .invalidate_remote(&inner.core, &tables, work)
                        .await;
                });
            }
        });
    }

    /// Removes every entry of this cache and makes all loads in flight stale.
    pub async fn clear(&self) {
        self.inner.store.clear(&self.inner.core).await;
    }

    /// How many entries the in-memory store holds; `None` for a cache over a backend.
    pub fn entry_count(&self) -> Option<usize> {
        self.inner.store.entry_count()
    }

    /// The weight of the in-memory store's entries in bytes (see `Settings::max_bytes`);
    /// `None` for a cache over a backend.
    pub fn memory_bytes(&self) -> Option<usize> {
        self.inner.store.memory_bytes()
    }

    /// How many tables this cache keeps versions for (at most `Settings::max_tables`); 0
    /// for a shared backend, which keeps them itself.
    pub fn table_count(&self) -> usize {
        self.inner.store.table_count()
    }

    /// How many keys `table` currently tracks for invalidation in this process (at most
    /// `Settings::max_keys_per_table`). A shared backend tracks keys itself
    /// ([`SharedBackend::tracked`]), and this is then 0.
    pub fn tracked_keys(&self, table: &str) -> usize {
        self.inner.store.tracked_keys(table)
    }
}

fn strs(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).collect()
}

/// A `debug` event on target `cache_runtime::invalidate` (`cause`: `write` for
/// [`Cache::invalidate`], the macros and `Transaction` commits; `abandoned write` for a
/// write whose future was dropped or panicked; `database event` for a driver hook or a
/// database listener), and the invalidation counted per table in `metrics`.
fn invalidation_event(tables: &[&str], cause: &'static str) {
    tracing::debug!(target: "cache_runtime::invalidate", tables = ?tables, cause, "invalidated");
    crate::metrics::invalidated(tables);
}

/// A near cache's side of its backend's invalidation pushes.
impl PushTarget for Inner {
    fn pushed(&self, tables: &[&str]) {
        if let AnyStore::Near(near) = &self.store {
            tracing::debug!(target: "cache_runtime::invalidate", tables = ?tables,
                cause = "push", "invalidated");
            near.pushed(tables);
        }
    }

    fn connected(&self) {
        if let AnyStore::Near(near) = &self.store {
            near.connected();
        }
    }

    fn disconnected(&self) {
        if let AnyStore::Near(near) = &self.store {
            near.disconnected();
        }
    }

    fn caught_up(&self, as_of: std::time::Instant) {
        if let AnyStore::Near(near) = &self.store {
            near.caught_up(as_of);
        }
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("namespace", &self.inner.core.settings.namespace)
            .field("store", &self.inner.store.mode())
            .finish_non_exhaustive()
    }
}
