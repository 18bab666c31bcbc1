//! Where a cache keeps its entries: one store type per mode, all behind one contract.
//!
//! - [`MemoryStore`]: decoded values in process memory, table versions in process (the
//!   embedded default, `Cache::new`).
//! - [`PlainStore`]: encoded entries in a [`Backend`](crate::backend::Backend), table
//!   versions in process (`Cache::with_backend`).
//! - [`SharedStore`]: encoded entries, table versions and key tracking in a
//!   [`SharedBackend`](crate::backend::SharedBackend) every process shares
//!   (`Cache::with_shared_backend`), with the invalidations it has not taken yet.
//!
//! The facade ([`Cache`](crate::Cache)) and the miss protocol (`cache::miss`) call a store
//! only through [`AnyStore`], whose methods hand each call to the store of the cache's mode:
//! a new mode is one more type implementing [`Store`] and one more variant, never a branch
//! in the facade.

mod map;
mod memory;
mod near;
mod pending;
mod plain;
mod shared;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(crate) use map::{ClockMap, ENTRY_OVERHEAD};
pub(crate) use memory::MemoryStore;
pub(crate) use near::NearStore;
pub(crate) use plain::PlainStore;
pub(crate) use shared::{Lease, SharedStore};

use crate::envelope;
use crate::flight::Flights;
use crate::key::{Key, Namespace};
use crate::stats::{Counter, Counters};
use crate::tables::Table;
use crate::{CacheValue, Settings, Ttl};

/// What every store of a cache shares: its settings, key namespace, flights and counters.
pub(crate) struct Core {
    pub(crate) settings: Settings,
    /// `"{namespace}:"`, the prefix of every remote key.
    pub(crate) prefix: String,
    /// The namespace, interned for key building.
    pub(crate) namespace: Namespace,
    pub(crate) flights: Flights,
    pub(crate) counters: Counters,
    /// The same, per cached function.
    pub(crate) functions: crate::observe::Functions,
    /// The freshness sampler's threshold (`observe::threshold`); 0 when it is off.
    pub(crate) sample: u64,
    /// Freshness mismatches are logged at most once per [`LOG_EVERY`].
    pub(crate) mismatches_logged: LogGate,
    /// Backend failures are logged at most once per [`LOG_EVERY`].
    pub(crate) failures: LogGate,
    /// Whether an oversized value was logged (once per cache).
    oversized_logged: AtomicBool,
    /// The settings' stale windows, for reads that name none.
    pub(crate) windows: crate::stale::Windows,
    /// `windows.early_nanos()`, for the hit path.
    pub(crate) early: u64,
}

/// The shortest time between two warnings about one kind of backend failure: an outage
/// logs one line when it starts and one every ten seconds while it lasts, not one per call.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);

/// Rate-limits one kind of log line: [`LogGate::pass`] lets one through per [`LOG_EVERY`]
/// and reports how many it held back since the last.
pub(crate) struct LogGate {
    origin: Instant,
    /// Milliseconds since `origin` of the last line let through, plus one (0: never).
    last: AtomicU64,
    held: AtomicU64,
}

impl LogGate {
    pub(crate) fn new() -> LogGate {
        LogGate {
            origin: Instant::now(),
            last: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    /// `Some(lines held back since the last one)` when this line may be logged.
    pub(crate) fn pass(&self) -> Option<u64> {
        let now = u64::try_from(self.origin.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        let every = u64::try_from(LOG_EVERY.as_millis()).unwrap_or(u64::MAX);
        if last != 0 && now.saturating_sub(last) < every
            || self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.held.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.held.swap(0, Ordering::Relaxed))
    }
}

impl Core {
    pub(crate) fn new(settings: Settings) -> Core {
        Core {
            windows: crate::stale::Windows::from_settings(&settings),
            early: crate::stale::Windows::from_settings(&settings).early_nanos(),
            sample: crate::observe::threshold(settings.freshness_sample),
            prefix: format!("{}:", settings.namespace),
            namespace: Namespace::intern(&settings.namespace),
            settings,
            flights: Flights::new(),
            counters: Counters::default(),
            functions: crate::observe::Functions::default(),
            mismatches_logged: LogGate::new(),
            failures: LogGate::new(),
            oversized_logged: AtomicBool::new(false),
        }
    }

    /// `{namespace}:{key in lower-case hex}` (as `Key`'s `Display`), without the formatting
    /// machinery: this runs on every remote hit.
    pub(crate) fn remote_key(&self, key: &Key) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut name = String::with_capacity(self.prefix.len() + 64);
        name.push_str(&self.prefix);
        for b in key.digest() {
            name.push(char::from(HEX[usize::from(b >> 4)]));
            name.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        name
    }

    /// Counts a failed backend operation and logs it, at most once per [`LOG_EVERY`].
    pub(crate) fn backend_error(&self, op: &str, error: &dyn std::error::Error) {
        self.counters.bump(Counter::BackendErrors);
        if let Some(held) = self.failures.pass() {
            tracing::warn!(target: "cache_runtime", op, error = %error, similar_since_last = held,
                "cache backend failed; running the query instead (logged at most every 10 s)");
        }
    }

    /// Whether an encoded entry of `len` bytes may be sent to a remote backend; counts and
    /// logs (once) one that may not.
    pub(crate) fn fits_remote(&self, key: &Key, len: usize) -> bool {
        if len <= self.settings.max_entry_bytes {
            return true;
        }
        self.counters.bump(Counter::Oversized);
        if !self.oversized_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(target: "cache_runtime", key = %key, bytes = len,
                max_entry_bytes = self.settings.max_entry_bytes,
                "a value larger than max_entry_bytes is not cached (counted in \
                 Stats::oversized; logged once)");
        }
        false
    }

    /// Deletes remote entries; a failure is counted and logged (the entries are stale or
    /// unusable anyway: deleting only frees room).
    pub(crate) async fn delete_remote(
        &self,
        backend: &dyn crate::backend::Backend,
        names: &[String],
    ) {
        if names.is_empty() {
            return;
        }
        if let Err(e) = backend.delete(names).await {
            self.backend_error("delete", &e);
        }
    }

    pub(crate) fn decode_error(&self, key: &Key, error: &dyn fmt::Display) {
        self.counters.bump(Counter::DecodeErrors);
        tracing::warn!(target: "cache_runtime", key = %key, error = %error,
            "cached entry is unusable; treating it as a miss and deleting it");
    }
}

/// The table versions a load saw before its query ran, one per table the read names. A
/// store checks them again when the value arrives (versions are never reused, so a table
/// forgotten and met again in between never matches).
pub(crate) struct Captured {
    pub(crate) versions: Vec<u64>,
    /// The versions could not be read (a shared backend down): the load shares no flight
    /// and stores nothing, since it cannot tell whether a write came between it and another.
    pub(crate) unknown: bool,
    /// A near cache's in-process versions of the same tables, for its copy.
    pub(crate) local: Vec<u64>,
    /// How long past its TTL the entry is kept (`crate::stale`).
    pub(crate) keep: Duration,
}

impl Captured {
    pub(crate) fn known(versions: Vec<u64>) -> Captured {
        Captured {
            versions,
            unknown: false,
            local: Vec::new(),
            keep: Duration::ZERO,
        }
    }

    pub(crate) fn unknown() -> Captured {
        Captured {
            versions: Vec::new(),
            unknown: true,
            local: Vec::new(),
            keep: Duration::ZERO,
        }
    }

    /// Whether `tables` still have the captured versions.
    pub(crate) fn current<T: crate::tables::TrackId>(&self, tables: &[Arc<Table<T>>]) -> bool {
        !self.unknown
            && tables.len() == self.versions.len()
            && tables
                .iter()
                .zip(&self.versions)
                .all(|(t, v)| t.version() == *v)
    }

    /// The tables of an in-process store's load, if what it loaded may be stored: `None`
    /// when a write completed during the load, or a table was forgotten meanwhile (it was
    /// bumped on the way out, and is not met anew here).
    pub(crate) fn still_current<T: crate::tables::TrackId>(
        &self,
        tables: &crate::tables::Tables<T>,
        names: &[&str],
    ) -> Option<Vec<Arc<Table<T>>>> {
        let tables = tables.existing_all(names)?;
        self.current(&tables).then_some(tables)
    }
}

/// The invalidation work a store leaves for later, when it cannot be done without waiting:
/// remote keys to delete, shared versions to bump.
#[derive(Default)]
pub(crate) struct Remote {
    pub(crate) delete: Vec<Key>,
    pub(crate) bump: bool,
}

impl Remote {
    pub(crate) fn is_empty(&self) -> bool {
        self.delete.is_empty() && !self.bump
    }
}

/// The contract of a store, one implementation per mode. Methods that wait are `async`;
/// `hit` answers an in-memory hit in the caller's own poll.
pub(crate) trait Store: Send + Sync + 'static {
    /// An entry that may be served right now without waiting, if this store has one and
    /// it is not within `early` nanoseconds of the deadline it is kept until.
    fn hit<V: CacheValue>(&self, core: &Core, key: &Key, early: u64) -> Option<V>;

    /// An entry that may still be served, however close to the deadline it is kept until,
    /// and that deadline: what `crate::stale` serves past a TTL. Only the in-memory store
    /// keeps entries past their TTL.
    fn peek<V: CacheValue>(&self, _key: &Key) -> Option<(V, Option<Instant>)> {
        None
    }

    /// An entry found by waiting (a remote store), if any; `tables` are the read's tables.
    async fn lookup<V: CacheValue>(&self, core: &Core, key: &Key, tables: &[&str]) -> Option<V>;

    /// The versions of `tables` now, before the query runs.
    async fn capture(&self, core: &Core, tables: &[&str]) -> Captured;

    /// Stores `value`, read under `captured`, unless a write has made it stale already.
    async fn store<V: CacheValue>(
        &self,
        core: &Core,
        key: Key,
        tables: &[&str],
        captured: &Captured,
        ttl: Ttl,
        value: &V,
    );

    /// The part of an invalidation done at once: local versions, in-memory entries, and
    /// marking what the remote part still owes. `named`: this is the cache the write
    /// named (others skip tables they have never seen).
    fn invalidate_local(&self, core: &Core, tables: &[&str], named: bool) -> Remote;

    /// The remote part, which may wait.
    async fn invalidate_remote(&self, core: &Core, tables: &[&str], remote: Remote);

    /// Removes every entry; every load in flight becomes stale.
    async fn clear(&self, core: &Core);

    fn entry_count(&self) -> Option<usize>;
    fn memory_bytes(&self) -> Option<usize>;
    fn tracked_keys(&self, table: &str) -> usize;
    fn table_count(&self) -> usize;
    fn tables_forgotten(&self) -> u64;
    /// The mode's name, for `Debug`.
    fn mode(&self) -> &'static str;
}

/// The store of a cache, whichever its mode.
pub(crate) enum AnyStore {
    Memory(MemoryStore),
    Plain(PlainStore),
    Shared(SharedStore),
    Near(NearStore),
}

/// What a shared backend's invalidation pushes reach (through
/// [`InvalidationSink`](crate::backend::InvalidationSink)): a near cache.
pub(crate) trait PushTarget: Send + Sync {
    fn pushed(&self, tables: &[&str]);
    fn connected(&self);
    fn disconnected(&self);
    fn caught_up(&self, as_of: std::time::Instant);
}

/// Hands one call to the store of the cache's mode.
macro_rules! each {
    ($store:expr, $s:ident => $call:expr) => {
        match $store {
            AnyStore::Memory($s) => $call,
            AnyStore::Plain($s) => $call,
            AnyStore::Shared($s) => $call,
            AnyStore::Near($s) => $call,
        }
    };
}

impl AnyStore {
    #[inline]
    pub(crate) fn hit<V: CacheValue>(&self, core: &Core, key: &Key, early: u64) -> Option<V> {
        each!(self, s => s.hit(core, key, early))
    }

    pub(crate) fn peek<V: CacheValue>(&self, key: &Key) -> Option<(V, Option<Instant>)> {
        each!(self, s => s.peek(key))
    }

    pub(crate) async fn lookup<V: CacheValue>(
        &self,
        core: &Core,
        key: &Key,
        tables: &[&str],
    ) -> Option<V> {
        each!(self, s => s.lookup(core, key, tables).await)
    }

    pub(crate) async fn capture(&self, core: &Core, tables: &[&str]) -> Captured {
        each!(self, s => s.capture(core, tables).await)
    }

    /// A remote lookup for a read with stale windows: a hit, or an aging entry it may
    /// serve while another caller refreshes it. The in-memory store answers through
    /// `hit` and `peek` instead.
    pub(crate) async fn lookup_windowed<V: CacheValue>(
        &self,
        core: &Core,
        key: &Key,
        tables: &[&str],
        windows: crate::stale::Windows,
        count: bool,
    ) -> Option<Found<V>> {
        let keep = windows.keep();
        let (value, expires_at) = match self {
            AnyStore::Memory(_) => return None,
            AnyStore::Plain(s) => s.lookup_keeping(core, key, keep).await?,
            AnyStore::Shared(s) => s.lookup_keeping(core, key, tables, keep).await?,
            AnyStore::Near(n) => return n.lookup_windowed(core, key, tables, windows, count).await,
        };
        Some(Found::of(core, value, expires_at, windows, count))
    }

    /// The fleet-wide lease of a missing key (`Settings::shared_single_flight`): only a
    /// shared backend has one.
    pub(crate) async fn lease(&self, core: &Core, key: &Key) -> Lease {
        match self {
            AnyStore::Shared(s) => s.lease(core, key).await,
            AnyStore::Near(n) => n.shared().lease(core, key).await,
            AnyStore::Memory(_) | AnyStore::Plain(_) => Lease::Free,
        }
    }

    /// The entry another instance's load stored, if it is there (and current) yet.
    /// An entry past its TTL (kept for `windows`) is no fill, and is left in place.
    pub(crate) async fn fill<V: CacheValue>(
        &self,
        core: &Core,
        key: &Key,
        tables: &[&str],
        windows: crate::stale::Windows,
    ) -> Option<V> {
        if matches!(self, AnyStore::Memory(_) | AnyStore::Plain(_)) {
            return None;
        }
        match self
            .lookup_windowed(core, key, tables, windows, false)
            .await?
        {
            Found::Hit(value) => Some(value),
            Found::Aging(..) => None,
        }
    }

    pub(crate) async fn store<V: CacheValue>(
        &self,
        core: &Core,
        key: Key,
        tables: &[&str],
        captured: &Captured,
        ttl: Ttl,
        value: &V,
    ) {
        if !core.settings.cache_none && crate::output::is_empty(value) {
            return;
        }
        each!(self, s => s.store(core, key, tables, captured, ttl, value).await)
    }

    pub(crate) fn invalidate_local(&self, core: &Core, tables: &[&str], named: bool) -> Remote {
        each!(self, s => s.invalidate_local(core, tables, named))
    }

    pub(crate) async fn invalidate_remote(&self, core: &Core, tables: &[&str], remote: Remote) {
        if remote.is_empty() {
            return;
        }
        each!(self, s => s.invalidate_remote(core, tables, remote).await)
    }

    pub(crate) async fn clear(&self, core: &Core) {
        each!(self, s => s.clear(core).await)
    }

    pub(crate) fn entry_count(&self) -> Option<usize> {
        each!(self, s => s.entry_count())
    }

    pub(crate) fn memory_bytes(&self) -> Option<usize> {
        each!(self, s => s.memory_bytes())
    }

    pub(crate) fn tracked_keys(&self, table: &str) -> usize {
        each!(self, s => s.tracked_keys(table))
    }

    pub(crate) fn table_count(&self) -> usize {
        each!(self, s => s.table_count())
    }

    pub(crate) fn tables_forgotten(&self) -> u64 {
        each!(self, s => s.tables_forgotten())
    }

    pub(crate) fn mode(&self) -> &'static str {
        each!(self, s => s.mode())
    }
}

/// A value encoded for a backend, with the table tags it was stored under.
pub(crate) struct Entry<'t> {
    pub(crate) bytes: Vec<u8>,
    pub(crate) storage_ttl: Option<Duration>,
    pub(crate) tags: Vec<(&'t str, u64)>,
}

impl<'t> Entry<'t> {
    /// `None` when the TTL stores nothing, or (logged) when the value fails to encode.
    pub(crate) fn encode<V: CacheValue>(
        key: &Key,
        value: &V,
        tables: &[&'t str],
        versions: &[u64],
        ttl: Ttl,
        keep: Duration,
    ) -> Option<Entry<'t>> {
        let now = Instant::now();
        let deadline = ttl.deadline(now).ok()?;
        let tags: Vec<(&str, u64)> = tables
            .iter()
            .copied()
            .zip(versions.iter().copied())
            .collect();
        // The envelope says when the TTL ends; the backend keeps it `keep` longer.
        let expires = Ttl::storage_ttl(deadline, now);
        let storage_ttl = expires.map(|d| d.saturating_add(keep));
        match envelope::encode(value, &tags, expires) {
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

/// An envelope read from a backend, decoded; `None` (counted, logged) when it is unusable
/// or past its expiry (counted).
///
/// An entry may be served up to `keep` past its expiry (`crate::stale`).
pub(crate) fn decode_keeping<V: CacheValue>(
    core: &Core,
    key: &Key,
    bytes: &[u8],
    keep: Duration,
) -> Result<envelope::Envelope<V>, Fault> {
    let env = envelope::decode::<V>(bytes).map_err(|e| {
        core.decode_error(key, &e);
        Fault::Unusable
    })?;
    let keep = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX);
    if env.expires_at.is_some_and(|at| {
        envelope::unix_ms(std::time::SystemTime::now()) >= at.saturating_add(keep)
    }) {
        return Err(Fault::Counted(Counter::Expired));
    }
    Ok(env)
}

/// What a remote lookup with stale windows found.
pub(crate) enum Found<V> {
    /// A hit.
    Hit(V),
    /// An entry past its TTL, or within `refresh_ahead` of it, that may be served while
    /// another caller refreshes it (`crate::stale`).
    Aging(V, crate::stale::Age),
}

impl<V> Found<V> {
    /// A backend's current entry whose TTL ends at `expires_at` (Unix milliseconds): a hit
    /// (counted when `count`), or aging for `windows`. Without windows it is a hit: the
    /// lookup kept nothing past its TTL.
    pub(crate) fn of(
        core: &Core,
        value: V,
        expires_at: Option<u64>,
        windows: crate::stale::Windows,
        count: bool,
    ) -> Found<V> {
        let age = if windows.is_none() {
            None
        } else {
            windows.remote_age(expires_at)
        };
        match age {
            Some(age) => Found::Aging(value, age),
            None => {
                if count {
                    core.counters.bump(Counter::Hits);
                }
                Found::Hit(value)
            }
        }
    }
}

/// Why a backend's entry is not served (it is then deleted).
pub(crate) enum Fault {
    /// Undecodable: already counted and logged.
    Unusable,
    /// Expired or stale: count it under this.
    Counted(Counter),
}

impl Fault {
    pub(crate) fn count(self, counters: &Counters) {
        if let Fault::Counted(counter) = self {
            counters.discarded(counter);
        }
    }

    /// Counts the fault and deletes the remote entry `name` that had it: the read is a miss.
    pub(crate) async fn discard(
        self,
        core: &Core,
        backend: &dyn crate::backend::Backend,
        name: String,
    ) {
        core.delete_remote(backend, &[name]).await;
        // After the await: the reason is noted for this task's call, which reads it in
        // this same poll (`observe::take_discard`).
        self.count(&core.counters);
    }
}

#[cfg(test)]
mod tests {
    use super::LogGate;

    /// An outage logs one line, then holds the rest back (counting them) for `LOG_EVERY`.
    #[test]
    fn the_log_gate_lets_one_line_through_per_period() {
        let gate = LogGate::new();
        assert_eq!(gate.pass(), Some(0), "the first failure is logged");
        for _ in 0..100 {
            assert_eq!(gate.pass(), None, "later ones within the period are not");
        }
        assert_eq!(gate.held.load(std::sync::atomic::Ordering::Relaxed), 100);
    }
}
