//! The near mode: an in-process copy ([`MemoryStore`]) of what this instance reads from a
//! shared backend ([`SharedStore`]), dropped when the backend pushes an invalidation.
//!
//! A copy is served only while the push channel is *live*: subscribed, and proved caught
//! up (a heartbeat behind which every earlier invalidation was delivered) less than
//! `near_lease` ago. Each copy is tagged with the in-process versions of its tables
//! captured *before* the backend was read, so an invalidation pushed while the read was in
//! flight makes the copy stale on arrival. On every (re)subscription all copies are
//! dropped: what was pushed while the channel was down is lost.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::{Captured, Core, Found, MemoryStore, Remote, SharedStore, Store};
use crate::key::Key;
use crate::{CacheValue, Settings, Ttl};

/// What the push channel last said.
pub(crate) struct Push {
    origin: Instant,
    /// Subscribed, and every invalidation since is being delivered.
    up: AtomicBool,
    /// Nanoseconds since `origin` until which copies may be served (the lease from the
    /// last proof that the channel was caught up).
    live_until: AtomicU64,
    lease: Duration,
}

impl Push {
    fn new(lease: Duration) -> Push {
        Push {
            origin: Instant::now(),
            up: AtomicBool::new(false),
            live_until: AtomicU64::new(0),
            lease,
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether in-process copies may be served now.
    #[inline]
    fn live(&self) -> bool {
        self.up.load(Ordering::Acquire)
            && self.nanos(Instant::now()) < self.live_until.load(Ordering::Acquire)
    }

    /// Copies may be served until `from` plus the lease.
    fn renew(&self, from: Instant) {
        let until = self
            .nanos(from)
            .saturating_add(u64::try_from(self.lease.as_nanos()).unwrap_or(u64::MAX));
        self.live_until.fetch_max(until, Ordering::AcqRel);
    }
}

pub(crate) struct NearStore {
    local: MemoryStore,
    shared: SharedStore,
    push: Push,
}

impl NearStore {
    pub(crate) fn new(settings: &Settings, shared: SharedStore) -> NearStore {
        NearStore {
            local: MemoryStore::new(settings),
            shared,
            push: Push::new(settings.near_lease),
        }
    }

    pub(crate) fn shared(&self) -> &SharedStore {
        &self.shared
    }

    /// The backend's entry, as [`Found::of`], keeping an in-process copy of a hit.
    /// `count`: a hit of its own (not a wait for another instance's fill) is counted.
    pub(crate) async fn lookup_windowed<V: CacheValue>(
        &self,
        core: &Core,
        key: &Key,
        tables: &[&str],
        windows: crate::stale::Windows,
        count: bool,
    ) -> Option<Found<V>> {
        // Before the backend is read: an invalidation pushed meanwhile makes the copy stale.
        let local = Captured::known(self.local.versions(tables));
        let (value, expires_at) = self
            .shared
            .lookup_keeping::<V>(core, key, tables, windows.keep())
            .await?;
        let found = Found::of(core, value, expires_at, windows, count);
        if let (Found::Hit(value), true) = (&found, self.push.live()) {
            self.local
                .store(core, *key, tables, &local, copy_ttl(expires_at), value)
                .await;
        }
        Some(found)
    }

    /// Another process (or this one) invalidated `tables`.
    pub(crate) fn pushed(&self, tables: &[&str]) {
        self.local.drop_tables(tables);
    }

    /// Subscribed: every invalidation from now on is delivered; copies from before may have
    /// missed one, so they all go.
    pub(crate) fn connected(&self) {
        self.local.clear_now();
        self.push.renew(Instant::now());
        self.push.up.store(true, Ordering::Release);
        tracing::debug!(target: "cache_runtime", "near cache: invalidation push connected");
    }

    pub(crate) fn disconnected(&self) {
        if self.push.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(target: "cache_runtime",
                "near cache: invalidation push disconnected; in-process copies are not \
                 served until it is back");
        }
    }

    /// Every invalidation published before `as_of` has been handled.
    pub(crate) fn caught_up(&self, as_of: Instant) {
        self.push.renew(as_of);
    }
}

/// An in-process copy's TTL: the backend entry's expiry, if it has one.
fn copy_ttl(expires_at_ms: Option<u64>) -> Ttl {
    match expires_at_ms {
        Some(ms) => Ttl::Until(SystemTime::UNIX_EPOCH + Duration::from_millis(ms)),
        None => Ttl::Forever,
    }
}

impl Store for NearStore {
    #[inline]
    /// Copies expire at the entry's TTL and keep no stale windows: `_early` is not theirs.
    fn hit<V: CacheValue>(&self, core: &Core, key: &Key, _early: u64) -> Option<V> {
        if !self.push.live() {
            return None;
        }
        self.local.hit(core, key, 0)
    }

    async fn lookup<V: CacheValue>(&self, core: &Core, key: &Key, tables: &[&str]) -> Option<V> {
        match self
            .lookup_windowed(core, key, tables, crate::stale::Windows::default(), true)
            .await?
        {
            Found::Hit(value) => Some(value),
            Found::Aging(..) => None,
        }
    }

    async fn capture(&self, core: &Core, tables: &[&str]) -> Captured {
        let local = self.local.versions(tables);
        let mut captured = self.shared.capture(core, tables).await;
        captured.local = local;
        captured
    }

    /// In the backend, then (if the backend took it) a copy here, under the in-process
    /// versions captured before the query.
    async fn store<V: CacheValue>(
        &self,
        core: &Core,
        key: Key,
        tables: &[&str],
        captured: &Captured,
        ttl: Ttl,
        value: &V,
    ) {
        let stored = self
            .shared
            .store_checked(core, key, tables, captured, ttl, value)
            .await;
        if stored && self.push.live() {
            let local = Captured::known(captured.local.clone());
            self.local
                .store(core, key, tables, &local, ttl, value)
                .await;
        }
    }

    /// This instance's own write drops its copies at once, and owes the backend a bump
    /// (which the backend pushes to every other instance).
    fn invalidate_local(&self, core: &Core, tables: &[&str], named: bool) -> Remote {
        self.local.drop_tables(tables);
        self.shared.invalidate_local(core, tables, named)
    }

    async fn invalidate_remote(&self, core: &Core, tables: &[&str], remote: Remote) {
        self.shared.invalidate_remote(core, tables, remote).await;
    }

    async fn clear(&self, core: &Core) {
        self.local.clear_now();
        self.shared.clear(core).await;
    }

    fn entry_count(&self) -> Option<usize> {
        self.local.entry_count()
    }

    fn memory_bytes(&self) -> Option<usize> {
        self.local.memory_bytes()
    }

    fn tracked_keys(&self, table: &str) -> usize {
        self.local.tracked_keys(table)
    }

    fn table_count(&self) -> usize {
        self.local.table_count()
    }

    fn tables_forgotten(&self) -> u64 {
        self.local.tables_forgotten()
    }

    fn mode(&self) -> &'static str {
        "near (in-process copies over a shared backend)"
    }
}
