//! The miss protocol, whatever the store: look the key up where waiting is needed, then
//! capture the tables' versions, join or lead the key's flight, run the loader, and store
//! what it returns under the captured versions.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::Cache;
use crate::Ttl;
use crate::flight::{Role, Shared, State};
use crate::key::Key;
use crate::output::LoadOutput;
use crate::stats::Counter;
use crate::store::Captured;

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
        let (core, store) = (&self.inner.core, &self.inner.store);
        if let Some(value) = store.lookup::<O::Value>(core, &key, tables).await {
            return O::from_value(value);
        }
        self.load(key, tables, ttl, loader).await
    }

    async fn load<O, F, Fut>(&self, key: Key, tables: &[&str], ttl: Ttl, loader: F) -> O
    where
        O: LoadOutput,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        let (core, store) = (&self.inner.core, &self.inner.store);
        let counters = &core.counters;
        counters.bump(Counter::Misses);
        let max_wait = core.settings.max_load_wait;
        loop {
            // Captured before the query runs: a write that completes after this point
            // bumps a version, and whatever this load stores is stale from then on.
            let captured = store.capture(core, tables).await;
            if captured.unknown {
                // Versions unknown: the load cannot tell whether a write came between it
                // and another caller's, so it shares no flight (and stores nothing).
                counters.bump(Counter::Loads);
                return loader().await;
            }
            match core.flights.join_or_lead(key, &captured.versions, max_wait) {
                Role::Leader(guard) => {
                    counters.bump(Counter::Loads);
                    let output = core.flights.lead(key, loader()).await;
                    return match output.into_value() {
                        Ok(value) => {
                            let shared: Shared = Arc::new(value.clone());
                            store.store(core, key, tables, &captured, ttl, &value).await;
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
                // for itself. Nothing was awaited since the capture: it still holds.
                Role::Alone => return self.run_alone(key, tables, ttl, &captured, loader).await,
                Role::Waiter(flight) => match flight.wait(flight.deadline(max_wait)).await {
                    State::Done(shared) => {
                        if let Some(value) = shared.downcast_ref::<O::Value>() {
                            counters.bump(Counter::Coalesced);
                            return O::from_value(value.clone());
                        }
                        // Same key, another value type (a hand-built key reused): load alone.
                        return self.load_alone(key, tables, ttl, loader).await;
                    }
                    State::Failed => return self.load_alone(key, tables, ttl, loader).await,
                    // Waited `max_load_wait`: the leader may never return.
                    State::Running => {
                        counters.bump(Counter::LoadWaitTimeouts);
                        tracing::warn!(target: "cache_runtime", key = %key,
                            max_load_wait = ?max_wait,
                            "a load of this key took longer than max_load_wait; \
                             running the query instead of waiting for it");
                        return self.load_alone(key, tables, ttl, loader).await;
                    }
                    State::Abandoned => {
                        // The leader panicked or was cancelled: someone else may have
                        // stored the value meanwhile; otherwise elect a new leader.
                        if let Some(value) = store.hit::<O::Value>(core, &key) {
                            return O::from_value(value);
                        }
                        let found = Box::pin(store.lookup::<O::Value>(core, &key, tables));
                        if let Some(value) = found.await {
                            return O::from_value(value);
                        }
                    }
                },
            }
        }
    }

    /// Captures the versions anew (after a wait), then [`Cache::run_alone`].
    async fn load_alone<O, F, Fut>(&self, key: Key, tables: &[&str], ttl: Ttl, loader: F) -> O
    where
        O: LoadOutput,
        F: FnOnce() -> Fut,
        Fut: Future<Output = O>,
    {
        let captured = self.inner.store.capture(&self.inner.core, tables).await;
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

#[cold]
fn key_error(error: &dyn fmt::Display) {
    tracing::warn!(target: "cache_runtime", error = %error,
        "cache key arguments failed to serialize; running the query uncached");
}
