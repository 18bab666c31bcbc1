//! Single-flight: concurrent misses on one key run one load and share its value.
//!
//! A flight remembers the table versions its leader captured before loading. A caller
//! whose own captured versions differ (a write completed in between) never joins it: it
//! started after that write, so the leader's result may be older than it is allowed to see.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::key::{BuildKeyHasher, Key};

/// A value shared between the leader and its waiters (and the in-memory store).
pub(crate) type Shared = Arc<dyn Any + Send + Sync>;

#[derive(Clone)]
pub(crate) enum State {
    Running,
    /// The leader loaded this value.
    Done(Shared),
    /// The leader's loader returned an error (which only the leader can return): each
    /// waiter runs its own loader.
    Failed,
    /// The leader panicked or was cancelled: waiters elect a new leader.
    Abandoned,
}

pub(crate) struct Flight {
    versions: Box<[u64]>,
    state: watch::Sender<State>,
}

impl Flight {
    /// Waits for the leader's outcome.
    pub(crate) async fn wait(&self) -> State {
        let mut rx = self.state.subscribe();
        match rx.wait_for(|s| !matches!(s, State::Running)).await {
            Ok(state) => state.clone(),
            // The sender lives as long as this flight, so this is unreachable; treat it
            // as an abandoned load rather than trusting that.
            Err(_) => State::Abandoned,
        }
    }
}

pub(crate) enum Role<'a> {
    Leader(LeaderGuard<'a>),
    Waiter(Arc<Flight>),
}

const SHARDS: usize = 16;

pub(crate) struct Flights {
    shards: [Mutex<HashMap<Key, Arc<Flight>, BuildKeyHasher>>; SHARDS],
}

impl Flights {
    pub(crate) fn new() -> Flights {
        Flights {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::default())),
        }
    }

    fn lock(
        &self,
        key: &Key,
    ) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Flight>, BuildKeyHasher>> {
        self.shards[key.shard(SHARDS - 1)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the flight for `key` if one is loading with the same table versions,
    /// otherwise starts one (replacing a flight of older versions).
    pub(crate) fn join_or_lead(&self, key: Key, versions: &[u64]) -> Role<'_> {
        let mut map = self.lock(&key);
        if let Some(flight) = map.get(&key) {
            let usable = !matches!(*flight.state.borrow(), State::Failed | State::Abandoned);
            if usable && *flight.versions == *versions {
                return Role::Waiter(flight.clone());
            }
        }
        let flight = Arc::new(Flight {
            versions: versions.into(),
            state: watch::Sender::new(State::Running),
        });
        map.insert(key, flight.clone());
        Role::Leader(LeaderGuard {
            flights: self,
            key,
            flight,
            finished: false,
        })
    }
}

/// Held by the leader while it loads. Dropping it without [`LeaderGuard::finish`] (the
/// loader panicked, or the leader's future was dropped) releases the waiters to elect a
/// new leader, so they never hang.
pub(crate) struct LeaderGuard<'a> {
    flights: &'a Flights,
    key: Key,
    flight: Arc<Flight>,
    finished: bool,
}

impl LeaderGuard<'_> {
    pub(crate) fn finish(mut self, state: State) {
        self.flight.state.send_replace(state);
        self.finished = true;
    }
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.flight.state.send_replace(State::Abandoned);
        }
        let mut map = self.flights.lock(&self.key);
        // A newer flight may have replaced ours: only remove our own.
        if map
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            map.remove(&self.key);
        }
    }
}
