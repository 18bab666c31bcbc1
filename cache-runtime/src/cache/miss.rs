//! The miss protocol, whatever the store: look the key up where waiting is needed, then
//! capture the tables' versions, join or lead the key's flight, run the loader, and store
//! what it returns under the captured versions.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Cache;
use crate::Ttl;
use crate::flight::{Role, Shared, State};
use crate::key::Key;
use crate::observe::{self, Outcome};
use crate::output::LoadOutput;
use crate::stale::{Age, Windows};
use crate::stats::Counter;
use crate::store::{Captured, Found, Lease};

impl Cache {
    /// Everything but a hit that needs no waiting: a remote lookup, then the load; or the
    /// loader alone, for a key that could not be built or an `uncached` read (inside a
    /// transaction), a bypass or a disabled cache. The caller has already asked
    /// [`Cache::memory_hit`], and boxes this future so that its own, which every hit builds,
    /// stays small.
    pub(crate) async fn slow_path<O, F, Fut>(
        &self,
        key: Result<Key, String>,
        tables: &[&str],
        ttl: Ttl,
        windows: Windows,
        uncached: bool,
        loader: F,
    ) -> O
    where
        O: LoadOutput,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        let started = Instant::now();
        // Noted by `memory_hit` in this same poll: why it had no hit to serve.
        let (discarded, sampled) = (observe::take_discard(), observe::take_sampled());
        let (core, store) = (&self.inner.core, &self.inner.store);
        // Uncached reads do not need a key, so a key that failed to build is only worth a
        // warning for the others.
        let key = match key {
            Ok(key) if !uncached && self.caches(&ttl) => key,
            key => {
                if let (Err(error), false, true) = (&key, uncached, self.caches(&ttl)) {
                    key_error(error);
                }
                let output = loader().await;
                observe::record_call(&core.functions, key.as_ref().ok(), Outcome::Bypass, started);
                return output;
            }
        };
        // A sampled read (`Settings::freshness_sample`): the in-memory path marked it, or
        // one remote read in the fraction. Versions are captured before the cached value is
        // read, so a write that lands after it shows as a version change, not a mismatch.
        let remote = !matches!(store, crate::store::AnyStore::Memory(_));
        // A remote entry past its TTL, or near it, that may be served while another
        // caller refreshes it (`crate::stale`).
        let mut aging = None;
        if sampled || (remote && core.sample != 0 && observe::sample_due(core.sample)) {
            let before = store.capture(core, tables).await;
            let cached = self.plain_hit::<O::Value>(&key, tables, windows).await;
            if let Some(cached) = cached {
                return self
                    .verify(key, tables, cached, &before, loader, started)
                    .await;
            }
        } else if remote && !windows.is_none() {
            match store
                .lookup_windowed::<O::Value>(core, &key, tables, windows, true)
                .await
            {
                Some(Found::Hit(value)) => {
                    observe::record_call(&core.functions, Some(&key), Outcome::Hit, started);
                    return O::from_value(value);
                }
                Some(Found::Aging(value, age)) => aging = Some((value, age)),
                None => {}
            }
        } else if let Some(value) = store.lookup::<O::Value>(core, &key, tables).await {
            observe::record_call(&core.functions, Some(&key), Outcome::Hit, started);
            return O::from_value(value);
        }
        let discarded = discarded.or_else(observe::take_discard);
        let (output, outcome) = self.load(key, tables, ttl, windows, aging, loader).await;
        // Entries another instance's fill discarded while this one waited say nothing of
        // this call, nor of the next one on this thread.
        let _ = observe::take_discard();
        let outcome = match (outcome, discarded) {
            (Outcome::Miss, Some(why)) => why,
            (outcome, _) => outcome,
        };
        observe::record_call(&core.functions, Some(&key), outcome, started);
        output
    }

    /// An entry that is a plain hit, in memory or in a remote store: not one kept past its
    /// TTL for `windows` (`crate::stale`), which is left in place.
    async fn plain_hit<V: crate::CacheValue>(
        &self,
        key: &Key,
        tables: &[&str],
        windows: Windows,
    ) -> Option<V> {
        let (core, store) = (&self.inner.core, &self.inner.store);
        if let Some(value) = store.hit::<V>(core, key, windows.early_nanos()) {
            return Some(value);
        }
        if windows.is_none() {
            return Box::pin(store.lookup::<V>(core, key, tables)).await;
        }
        match Box::pin(store.lookup_windowed::<V>(core, key, tables, windows, true)).await? {
            Found::Hit(value) => Some(value),
            Found::Aging(..) => None,
        }
    }

    /// A sampled hit (`Settings::freshness_sample`): runs the query, compares its value
    /// with `cached` (read after `before` was captured), and returns the fresh one. A
    /// difference is a mismatch only if the tables' versions (shared, and a near cache's
    /// in-process ones) are still `before` 100 ms later: a write that committed before the
    /// query but had not invalidated yet has by then. A mismatch is counted, logged, and
    /// invalidates the entry's tables (a write bypassed invalidation: their other entries
    /// are suspect too). A failing query returns the cached value: the check never breaks
    /// a call.
    async fn verify<O, F, Fut>(
        &self,
        key: Key,
        tables: &[&str],
        cached: O::Value,
        before: &Captured,
        loader: F,
        started: Instant,
    ) -> O
    where
        O: LoadOutput,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        let (core, store) = (&self.inner.core, &self.inner.store);
        let fresh = match loader().await.into_value() {
            Ok(fresh) => fresh,
            Err(_) => {
                observe::record_call(&core.functions, Some(&key), Outcome::Hit, started);
                return O::from_value(cached);
            }
        };
        let mismatch = match observe::same_value(&cached, &fresh) {
            Some(false) if !before.unknown => {
                crate::flight::sleep_until(Instant::now() + SETTLE).await;
                let now = store.capture(core, tables).await;
                !now.unknown && now.versions == before.versions && now.local == before.local
            }
            _ => false,
        };
        core.counters.bump(Counter::FreshnessChecks);
        core.functions.freshness(key.scope(), mismatch);
        if mismatch {
            core.counters.bump(Counter::FreshnessMismatches);
            if let Some(held) = core.mismatches_logged.pass() {
                tracing::warn!(target: "cache_runtime", function = %crate::key::function_name(key.scope()),
                    key = %observe::short_digest(&key), tables = ?tables, more = held,
                    "freshness mismatch: a cached value differed from the database with no \
                     write to its tables since; a write bypasses invalidation (another \
                     program, raw SQL without #[invalidates]) or a table is missing from the \
                     read's tables; its tables are invalidated");
            }
            self.invalidate(tables).await;
        }
        observe::record_call(&core.functions, Some(&key), Outcome::Hit, started);
        O::from_value(fresh)
    }

    /// The load, and with `windows` (`crate::stale`): an aging entry served to the callers
    /// that find another one refreshing it, and the last good value when the query fails.
    async fn load<O, F, Fut>(
        &self,
        key: Key,
        tables: &[&str],
        ttl: Ttl,
        windows: Windows,
        aging: Option<(O::Value, Age)>,
        loader: F,
    ) -> (O, Outcome)
    where
        O: LoadOutput,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        let core = &self.inner.core;
        if windows.is_none() {
            return self
                .load_fresh(key, tables, ttl, windows, None, loader)
                .await;
        }
        // A remote store was asked by the caller's lookup already.
        let serve = aging
            .or_else(|| self.peek_aged(&key, windows))
            .filter(|(_, age)| windows.serves_while_refreshing(*age));
        let (output, outcome) = self
            .load_fresh(key, tables, ttl, windows, serve, loader)
            .await;
        match output.into_value() {
            Ok(value) => (O::from_value(value), outcome),
            // Looked up again: a write during the query makes the entry go.
            Err(output) => match self.aging::<O::Value>(&key, tables, windows).await {
                Some((value, age)) if windows.serves_on_error(age) => {
                    core.counters.bump(Counter::StaleOnError);
                    (O::from_value(value), Outcome::StaleOnError)
                }
                _ => (output, outcome),
            },
        }
    }

    /// The entry of `key` that may still be served past its TTL, and its age, looked up
    /// anew (versions checked): the in-memory store's, else a remote store's.
    async fn aging<V: crate::CacheValue>(
        &self,
        key: &Key,
        tables: &[&str],
        windows: Windows,
    ) -> Option<(V, Age)> {
        if let Some(found) = self.peek_aged(key, windows) {
            return Some(found);
        }
        let (core, store) = (&self.inner.core, &self.inner.store);
        match store
            .lookup_windowed::<V>(core, key, tables, windows, false)
            .await?
        {
            Found::Hit(value) => Some((value, Age::Fresh)),
            Found::Aging(value, age) => Some((value, age)),
        }
    }

    /// The in-memory entry of `key` kept past its TTL, and its age.
    fn peek_aged<V: crate::CacheValue>(&self, key: &Key, windows: Windows) -> Option<(V, Age)> {
        let (value, deadline) = self.inner.store.peek::<V>(key)?;
        Some((value, windows.age(deadline, Instant::now())))
    }

    /// Runs the query (or shares another caller's run) and stores its value. `serve`: an
    /// aging entry (and its age) that a caller finding another one refreshing the key is
    /// served at once instead of waiting.
    async fn load_fresh<O, F, Fut>(
        &self,
        key: Key,
        tables: &[&str],
        ttl: Ttl,
        windows: Windows,
        serve: Option<(O::Value, Age)>,
        loader: F,
    ) -> (O, Outcome)
    where
        O: LoadOutput,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        let (core, store) = (&self.inner.core, &self.inner.store);
        let counters = &core.counters;
        let max_wait = core.settings.max_load_wait;
        let mut counted = false;
        loop {
            // Captured before the query runs: a write that completes after this point
            // bumps a version, and whatever this load stores is stale from then on.
            let mut captured = store.capture(core, tables).await;
            captured.keep = windows.keep();
            if let Some((value, age)) = &serve
                && core.flights.running(&key, &captured.versions, max_wait)
            {
                // Another caller is refreshing the key: served the entry, not a wait.
                return (O::from_value(value.clone()), served_aging(counters, *age));
            }
            // Counted once the call is known not to be served the aging entry.
            let miss = |counted: &mut bool| {
                if !std::mem::replace(counted, true) {
                    counters.bump(Counter::Misses);
                    if serve.is_some() {
                        counters.bump(Counter::Refreshes);
                    }
                }
            };
            if captured.unknown {
                miss(&mut counted);
                // Versions unknown: the load cannot tell whether a write came between it
                // and another caller's, so it shares no flight (and stores nothing).
                counters.bump(Counter::Loads);
                return (loader().await, Outcome::Miss);
            }
            if serve.is_none() {
                miss(&mut counted);
            }
            match core.flights.join_or_lead(key, &captured.versions, max_wait) {
                // A refresh started since `running` was asked: served the entry, as there.
                Role::Waiter(_) if let Some((value, age)) = &serve => {
                    return (O::from_value(value.clone()), served_aging(counters, *age));
                }
                Role::Leader(guard) => {
                    // Across the fleet: one instance loads a missing key, the others wait
                    // for its fill. A new holder looks once more: the instance that held
                    // the lease before may have stored the entry and released it between
                    // this one's lookup and its lease.
                    let (lease, filled) = match store.lease(core, &key).await {
                        Lease::Held(lease) => {
                            let filled = store.fill::<O::Value>(core, &key, tables, windows).await;
                            (Some(lease), filled)
                        }
                        Lease::Free => (None, None),
                        // Another instance refreshes it: served the entry, not a wait.
                        // This process's waiters get no aging value from this flight (they
                        // may have started after a write): dropped, it is abandoned, and
                        // they look again or lead.
                        Lease::Busy if let Some((value, age)) = &serve => {
                            drop(guard);
                            return (O::from_value(value.clone()), served_aging(counters, *age));
                        }
                        Lease::Busy => {
                            match self.wait_fill::<O::Value>(&key, tables, windows).await {
                                Fill::Found(value) => (None, Some(value)),
                                Fill::Lead => (None, None),
                            }
                        }
                    };
                    miss(&mut counted);
                    if let Some(value) = filled {
                        guard.finish(State::Done(Arc::new(value.clone())));
                        if let Some(lease) = lease {
                            lease.release().await;
                        }
                        counters.bump(Counter::Coalesced);
                        counters.bump(Counter::LeaseWaits);
                        return (O::from_value(value), Outcome::Coalesced);
                    }
                    counters.bump(Counter::Loads);
                    let output = core.flights.lead(key, loader()).await;
                    let output = match output.into_value() {
                        Ok(value) => {
                            let shared: Shared = Arc::new(value.clone());
                            store.store(core, key, tables, &captured, ttl, &value).await;
                            // This process's waiters first; then the other instances', who
                            // find the entry.
                            guard.finish(State::Done(shared));
                            if let Some(lease) = lease {
                                lease.release().await;
                            }
                            O::from_value(value)
                        }
                        Err(output) => {
                            guard.finish(State::Failed);
                            output
                        }
                    };
                    return (output, Outcome::Miss);
                }
                // The loader of this key asked for its own key: waiting would be waiting
                // for itself. Nothing was awaited since the capture: it still holds.
                Role::Alone => {
                    miss(&mut counted);
                    let output = self.run_alone(key, tables, ttl, &captured, loader).await;
                    return (output, Outcome::Miss);
                }
                Role::Waiter(flight) => match flight.wait(flight.deadline(max_wait)).await {
                    State::Done(shared) => {
                        if let Some(value) = shared.downcast_ref::<O::Value>() {
                            counters.bump(Counter::Coalesced);
                            return (O::from_value(value.clone()), Outcome::Coalesced);
                        }
                        // Same key, another value type (a hand-built key reused): load alone.
                        let output = self.load_alone(key, tables, ttl, windows, loader).await;
                        return (output, Outcome::Miss);
                    }
                    State::Failed => {
                        return (
                            self.load_alone(key, tables, ttl, windows, loader).await,
                            Outcome::Miss,
                        );
                    }
                    // Waited `max_load_wait`: the leader may never return.
                    State::Running => {
                        counters.bump(Counter::LoadWaitTimeouts);
                        tracing::warn!(target: "cache_runtime", key = %key,
                            max_load_wait = ?max_wait,
                            "a load of this key took longer than max_load_wait; \
                             running the query instead of waiting for it");
                        return (
                            self.load_alone(key, tables, ttl, windows, loader).await,
                            Outcome::Miss,
                        );
                    }
                    State::Abandoned => {
                        // The leader panicked or was cancelled: someone else may have
                        // stored the value meanwhile; otherwise elect a new leader.
                        if let Some(value) = self.plain_hit::<O::Value>(&key, tables, windows).await
                        {
                            return (O::from_value(value), Outcome::Hit);
                        }
                    }
                },
            }
        }
    }

    /// Waits for another instance's load of `key` (it holds the key's lease): polls for
    /// the entry it stores. If the lease comes free with no entry (its holder failed, or
    /// stored nothing: an error, a value too large, a write during its load), every
    /// waiting instance loads at once rather than one after the other. After half of
    /// `max_load_wait`, this caller loads too, with time left before its own process's
    /// waiters give up on it.
    async fn wait_fill<V: crate::CacheValue>(
        &self,
        key: &Key,
        tables: &[&str],
        windows: Windows,
    ) -> Fill<V> {
        let (core, store) = (&self.inner.core, &self.inner.store);
        let deadline = Instant::now().checked_add(core.settings.max_load_wait / 2);
        let mut pause = Duration::from_millis(1);
        loop {
            let next = Instant::now() + pause;
            crate::flight::sleep_until(deadline.map_or(next, |d| next.min(d))).await;
            pause = (pause * 2).min(Duration::from_millis(10));
            if let Some(value) = store.fill::<V>(core, key, tables, windows).await {
                return Fill::Found(value);
            }
            match store.lease(core, key).await {
                Lease::Held(lease) => {
                    // Stored and released just now, perhaps.
                    let found = store.fill::<V>(core, key, tables, windows).await;
                    lease.release().await;
                    return found.map_or(Fill::Lead, Fill::Found);
                }
                Lease::Free => return Fill::Lead,
                Lease::Busy => {}
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                core.counters.bump(Counter::LoadWaitTimeouts);
                tracing::warn!(target: "cache_runtime", key = %key,
                    max_load_wait = ?core.settings.max_load_wait,
                    "another instance's load of this key took longer than half of \
                     max_load_wait; running the query instead of waiting for it");
                return Fill::Lead;
            }
        }
    }

    /// Captures the versions anew (after a wait), then [`Cache::run_alone`].
    async fn load_alone<O, F, Fut>(
        &self,
        key: Key,
        tables: &[&str],
        ttl: Ttl,
        windows: Windows,
        loader: F,
    ) -> O
    where
        O: LoadOutput,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        let mut captured = self.inner.store.capture(&self.inner.core, tables).await;
        captured.keep = windows.keep();
        self.run_alone(key, tables, ttl, &captured, loader).await
    }

    /// Runs `loader` without joining a flight and stores its value under `captured`.
    async fn run_alone<O, F, Fut>(
        &self,
        key: Key,
        tables: &[&str],
        ttl: Ttl,
        captured: &Captured,
        loader: F,
    ) -> O
    where
        O: LoadOutput,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        let (core, store) = (&self.inner.core, &self.inner.store);
        core.counters.bump(Counter::Loads);
        match loader().await.into_value() {
            Ok(value) => {
                store.store(core, key, tables, captured, ttl, &value).await;
                O::from_value(value)
            }
            Err(output) => output,
        }
    }
}

/// Counts an aging entry served while another caller refreshes it: a hit, and past its
/// TTL a stale one.
fn served_aging(counters: &crate::stats::Counters, age: Age) -> Outcome {
    counters.bump(Counter::Hits);
    match age {
        Age::Fresh => Outcome::Hit,
        Age::Expired(_) => {
            counters.bump(Counter::ServedStale);
            Outcome::ServedStale
        }
    }
}

/// What waiting for another instance's fill ended with.
enum Fill<V> {
    /// Its entry.
    Found(V),
    /// No entry: this instance loads (without the lease).
    Lead,
}

/// How long a freshness check waits before it trusts a difference: a write that committed
/// before the re-run query has invalidated by then (in this process, within microseconds;
/// through a shared backend or a database listener, within milliseconds).
const SETTLE: Duration = Duration::from_millis(100);

#[cold]
fn key_error(error: &dyn fmt::Display) {
    tracing::warn!(target: "cache_runtime", error = %error,
        "cache key arguments failed to serialize; running the query uncached");
}
