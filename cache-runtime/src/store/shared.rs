//! The shared backend mode: encoded entries, table versions and key tracking in a
//! [`SharedBackend`] every process shares, and the invalidations it has not taken yet.
//!
//! An invalidation is first recorded as pending, then delivered (a bump of the shared
//! versions). While any is pending (the bump failed, or has not been sent yet), this cache
//! neither reads from nor stores into the backend: the backend's versions lag behind a
//! completed write. Pending bumps are retried before every operation, and by a background
//! task every [`RETRY_EVERY`] until they land, so an idle writer delivers them too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::pending::PendingBumps;
use super::{Captured, Core, Entry, Fault, LogGate, Remote, Store, decode_keeping};
use crate::backend::{BackendError, SharedBackend, StoreOutcome};
use crate::key::Key;
use crate::stats::Counter;
use crate::{CacheValue, Ttl};

/// How often the background task retries an undelivered invalidation. The backend's own
/// backoff decides when an attempt reaches the server.
pub(crate) const RETRY_EVERY: Duration = Duration::from_millis(100);

/// A fill lease's time to live, renewed every third of it while the load runs: a holder
/// that dies (or loses the backend) stops holding it within this.
const LEASE_TTL: Duration = Duration::from_secs(2);

/// Whether this instance may load a missing key.
pub(crate) enum Lease {
    /// This instance holds the key's lease: it loads, then releases it.
    Held(LeaseGuard),
    /// Another instance is loading the key: wait for its fill.
    Busy,
    /// No lease to take (none kept, or the backend failed): load.
    Free,
}

/// A held lease, released when dropped, however the load ended (a value, an error, a
/// panic, a dropped future): another instance need not wait for it to expire.
pub(crate) struct LeaseGuard(Option<HeldLease>);

struct HeldLease {
    backend: Arc<dyn SharedBackend>,
    name: String,
    token: u64,
    /// Renews the lease while the load runs; aborted when it is released.
    renewal: Option<tokio::task::JoinHandle<()>>,
}

impl HeldLease {
    fn stop_renewing(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
    }
}

impl LeaseGuard {
    /// Releases now (after the entry was stored, so waiters find it).
    pub(crate) async fn release(mut self) {
        if let Some(mut held) = self.0.take() {
            held.stop_renewing();
            let _ = held.backend.release_lease(&held.name, held.token).await;
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let Some(mut held) = self.0.take() else {
            return;
        };
        held.stop_renewing();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let _ = held.backend.release_lease(&held.name, held.token).await;
        });
    }
}

pub(crate) struct SharedStore {
    backend: Arc<dyn SharedBackend>,
    /// Tables whose invalidation the backend has not taken yet.
    pending: Arc<PendingBumps>,
    /// Whether a background task is retrying `pending`.
    retrying: Arc<AtomicBool>,
    undelivered_log: LogGate,
    /// One delivery at a time: the calls that find bumps pending while one is being sent
    /// wait for it rather than send their own.
    delivering: tokio::sync::Mutex<()>,
}

impl SharedStore {
    pub(crate) fn new(backend: Box<dyn SharedBackend>) -> SharedStore {
        SharedStore {
            backend: Arc::from(backend),
            pending: Arc::default(),
            retrying: Arc::default(),
            undelivered_log: LogGate::new(),
            delivering: tokio::sync::Mutex::new(()),
        }
    }

    /// Starts the task that retries the pending bumps until they land, unless one runs (or
    /// there is no Tokio runtime: then the next operation retries). It outlives the cache:
    /// a write's invalidation is owed to the other processes whether or not this cache is
    /// still used.
    fn retry_in_background(&self, namespace: &str) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.retrying.swap(true, Ordering::AcqRel) {
            return;
        }
        let backend = Arc::clone(&self.backend);
        let pending = Arc::clone(&self.pending);
        let retrying = Arc::clone(&self.retrying);
        let namespace = namespace.to_owned();
        runtime.spawn(async move {
            let mut attempts = 0_u64;
            loop {
                while let Some(tables) = pending.waiting() {
                    tokio::time::sleep(RETRY_EVERY).await;
                    attempts += 1;
                    let names: Vec<&str> = tables.iter().map(|(t, _)| &**t).collect();
                    if backend.bump(&namespace, &names).await.is_ok() {
                        pending.delivered(&tables);
                        tracing::info!(target: "cache_runtime", tables = ?names, attempts,
                            "invalidation delivered to the shared backend");
                    }
                }
                retrying.store(false, Ordering::Release);
                // A bump that failed while this task was finishing found it still running.
                if pending.waiting().is_none() || retrying.swap(true, Ordering::AcqRel) {
                    break;
                }
            }
        });
    }

    /// Delivers the pending bumps. `false` while that still fails: the backend's versions
    /// then lag behind a completed write, and the caller must neither read from nor store
    /// into it.
    async fn deliver_pending(&self, core: &Core) -> bool {
        if self.pending.waiting().is_none() {
            return true;
        }
        let _one = self.delivering.lock().await;
        // Delivered by the call this one waited for, perhaps.
        let Some(tables) = self.pending.waiting() else {
            return true;
        };
        let names: Vec<&str> = tables.iter().map(|(t, _)| &**t).collect();
        match self.backend.bump(&core.settings.namespace, &names).await {
            Ok(()) => {
                self.pending.delivered(&tables);
                true
            }
            Err(e) => {
                core.backend_error("bump", &e);
                if self.undelivered_log.pass().is_some() {
                    tracing::warn!(target: "cache_runtime", tables = ?names,
                        "invalidation not delivered to the shared backend: this cache \
                         bypasses it, and retries in the background, until it is delivered; \
                         other caches may serve older entries of these tables until then");
                }
                self.retry_in_background(&core.settings.namespace);
                false
            }
        }
    }

    /// Whether every tag matches the backend's current version of its table. `versions`
    /// came with the entry for `tables`; a tag on another table costs a second round trip.
    async fn tags_current(
        &self,
        core: &Core,
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
        let current = self
            .backend
            .versions(&core.settings.namespace, &names)
            .await?;
        Ok(current.len() == others.len() && others.iter().zip(&current).all(|((_, v), c)| v == c))
    }

    /// The entry and its expiry (Unix milliseconds, `None`: none), if current and not past
    /// it by `keep` or more (`crate::stale`); anything else is deleted. Counts nothing.
    pub(crate) async fn lookup_keeping<V: CacheValue>(
        &self,
        core: &Core,
        key: &Key,
        tables: &[&str],
        keep: Duration,
    ) -> Option<(V, Option<u64>)> {
        if !self.deliver_pending(core).await {
            return None;
        }
        let name = core.remote_key(key);
        let (bytes, versions) = match self
            .backend
            .get_checked(&core.settings.namespace, &name, tables)
            .await
        {
            Ok((Some(bytes), versions)) => (bytes, versions),
            Ok((None, _)) => return None,
            Err(e) => {
                core.backend_error("get", &e);
                return None;
            }
        };
        let fault = match decode_keeping::<V>(core, key, &bytes, keep) {
            Ok(env) => match self.tags_current(core, &env.tags, tables, &versions).await {
                Ok(true) => return Some((env.value, env.expires_at)),
                Ok(false) => Fault::Counted(Counter::Stale),
                Err(e) => {
                    core.backend_error("versions", &e);
                    return None;
                }
            },
            Err(fault) => fault,
        };
        fault.discard(core, &*self.backend, name).await;
        None
    }

    /// [`Store::store`]; `true` when the backend stored the entry (the captured versions
    /// were still current there).
    pub(crate) async fn store_checked<V: CacheValue>(
        &self,
        core: &Core,
        key: Key,
        names: &[&str],
        captured: &Captured,
        ttl: Ttl,
        value: &V,
    ) -> bool {
        if captured.unknown {
            return false;
        }
        let Some(entry) = Entry::encode(&key, value, names, &captured.versions, ttl, captured.keep)
        else {
            return false;
        };
        if !core.fits_remote(&key, entry.bytes.len()) {
            return false;
        }
        if !self.deliver_pending(core).await {
            return false;
        }
        let stored = self
            .backend
            .set_tracked(
                &core.settings.namespace,
                &core.remote_key(&key),
                entry.bytes,
                entry.storage_ttl,
                &entry.tags,
                core.settings.max_keys_per_table,
            )
            .await;
        match stored {
            Ok(StoreOutcome::Stored { evicted }) => {
                if evicted > 0 {
                    core.counters.add(Counter::TableEvictions, evicted as u64);
                }
                true
            }
            // Stale: a write completed during the load; the entry would be stale on arrival.
            Ok(StoreOutcome::Stale) => false,
            Err(e) => {
                core.backend_error("set", &e);
                false
            }
        }
    }

    /// The fill lease of `key` (`Settings::shared_single_flight`); a backend failure is
    /// `Free`: the caller loads, as it would without leases.
    pub(crate) async fn lease(&self, core: &Core, key: &Key) -> Lease {
        if !core.settings.shared_single_flight {
            return Lease::Free;
        }
        let name = core.remote_key(key);
        let ttl = core.settings.max_load_wait.min(LEASE_TTL);
        match self.backend.try_lease(&name, ttl).await {
            Ok(Some(token)) => {
                let backend = Arc::clone(&self.backend);
                let renewal = tokio::runtime::Handle::try_current().ok().map(|runtime| {
                    let (backend, name) = (Arc::clone(&backend), name.clone());
                    runtime.spawn(async move {
                        loop {
                            crate::flight::sleep_until(std::time::Instant::now() + ttl / 3).await;
                            match backend.renew_lease(&name, token, ttl).await {
                                Ok(true) => {}
                                // Lost (expired, or taken over): nothing left to renew.
                                Ok(false) | Err(_) => return,
                            }
                        }
                    })
                });
                Lease::Held(LeaseGuard(Some(HeldLease {
                    backend,
                    name,
                    token,
                    renewal,
                })))
            }
            Ok(None) => Lease::Busy,
            Err(e) => {
                core.backend_error("lease", &e);
                Lease::Free
            }
        }
    }

    /// The backend, shared: a near cache subscribes through it once it is built.
    pub(crate) fn backend(&self) -> Arc<dyn SharedBackend> {
        Arc::clone(&self.backend)
    }
}

impl Store for SharedStore {
    fn hit<V: CacheValue>(&self, _: &Core, _: &Key, _: u64) -> Option<V> {
        None
    }

    async fn lookup<V: CacheValue>(&self, core: &Core, key: &Key, tables: &[&str]) -> Option<V> {
        let (value, _) = self
            .lookup_keeping(core, key, tables, Duration::ZERO)
            .await?;
        core.counters.bump(Counter::Hits);
        Some(value)
    }

    async fn capture(&self, core: &Core, tables: &[&str]) -> Captured {
        if !self.deliver_pending(core).await {
            return Captured::unknown();
        }
        match self
            .backend
            .versions(&core.settings.namespace, tables)
            .await
        {
            Ok(versions) if versions.len() == tables.len() => Captured::known(versions),
            Ok(versions) => {
                core.backend_error(
                    "versions",
                    &BackendError::new(format!(
                        "asked for {} table versions, got {}",
                        tables.len(),
                        versions.len()
                    )),
                );
                Captured::unknown()
            }
            Err(e) => {
                core.backend_error("versions", &e);
                Captured::unknown()
            }
        }
    }

    /// One call that stores only if the captured versions are still current.
    async fn store<V: CacheValue>(
        &self,
        core: &Core,
        key: Key,
        names: &[&str],
        captured: &Captured,
        ttl: Ttl,
        value: &V,
    ) {
        self.store_checked(core, key, names, captured, ttl, value)
            .await;
    }

    /// Other processes may have read these tables: the shared versions are bumped whether
    /// or not this cache has seen them. Until the bump lands, this cache bypasses the
    /// backend.
    fn invalidate_local(&self, core: &Core, tables: &[&str], _: bool) -> Remote {
        if tables.is_empty() {
            return Remote::default();
        }
        let counted = tables.iter().filter(|t| crate::rows::is_table(t)).count();
        core.counters.add(Counter::Invalidations, counted as u64);
        self.pending.add(tables);
        Remote {
            delete: Vec::new(),
            bump: true,
        }
    }

    async fn invalidate_remote(&self, core: &Core, _: &[&str], _: Remote) {
        self.deliver_pending(core).await;
    }

    async fn clear(&self, core: &Core) {
        if let Err(e) = self.backend.clear_prefix(&core.prefix).await {
            core.backend_error("clear", &e);
        }
    }

    fn entry_count(&self) -> Option<usize> {
        None
    }

    fn memory_bytes(&self) -> Option<usize> {
        None
    }

    /// The backend tracks keys itself (see [`SharedBackend::tracked`]).
    fn tracked_keys(&self, _: &str) -> usize {
        0
    }

    fn table_count(&self) -> usize {
        0
    }

    fn tables_forgotten(&self) -> u64 {
        0
    }

    fn mode(&self) -> &'static str {
        "shared backend"
    }
}
