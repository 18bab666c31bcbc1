//! Single-flight: concurrent misses on one key run one load and share its value.
//!
//! A flight remembers the table versions its leader captured before loading. A caller
//! whose own captured versions differ (a write completed in between) never joins it: it
//! started after that write, so the leader's result may be older than it is allowed to see.
//!
//! Loads end for everyone: a waiter waits at most `Settings::max_load_wait` (then runs its
//! own query), a flight older than that is joined by no one, and a load that asks for its
//! own key again (a loader calling its own cached function) runs alone instead of waiting
//! for itself.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

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
    started: Instant,
}

impl Flight {
    /// Waits for the leader's outcome, until `deadline` (`None`: no deadline, the wait is
    /// longer than this clock can count): then `State::Running`.
    pub(crate) async fn wait(&self, deadline: Option<Instant>) -> State {
        let mut rx = self.state.subscribe();
        let mut outcome = std::pin::pin!(rx.wait_for(|s| !matches!(s, State::Running)));
        let mut timer = Timer::default();
        std::future::poll_fn(|cx| match outcome.as_mut().poll(cx) {
            Poll::Ready(Ok(state)) => Poll::Ready(state.clone()),
            // The sender lives as long as this flight, so this is unreachable; treat it
            // as an abandoned load rather than trusting that.
            Poll::Ready(Err(_)) => Poll::Ready(State::Abandoned),
            Poll::Pending => match deadline {
                Some(deadline) if Instant::now() >= deadline => Poll::Ready(State::Running),
                Some(deadline) => {
                    timer.arm(deadline, cx.waker());
                    Poll::Pending
                }
                None => Poll::Pending,
            },
        })
        .await
    }

    /// When a waiter that joins now stops waiting.
    /// `None` when that is further than `Instant` reaches (`Duration::MAX` waits forever).
    pub(crate) fn deadline(&self, max_wait: Duration) -> Option<Instant> {
        self.started.checked_add(max_wait)
    }
}

pub(crate) enum Role<'a> {
    Leader(LeaderGuard<'a>),
    Waiter(Arc<Flight>),
    /// A load of this key is being led by the caller itself (its loader asked for its own
    /// key): load without a flight.
    Alone,
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

    /// Whether a flight for `key` is loading with the same table versions, started less
    /// than `max_wait` ago: one [`Flights::join_or_lead`] would join.
    pub(crate) fn running(&self, key: &Key, versions: &[u64], max_wait: Duration) -> bool {
        let map = self.lock(key);
        map.get(key).is_some_and(|flight| {
            matches!(*flight.state.borrow(), State::Running)
                && *flight.versions == *versions
                && flight.started.elapsed() < max_wait
        })
    }

    /// Joins the flight for `key` if one is loading with the same table versions and
    /// started less than `max_wait` ago, otherwise starts one (replacing an older flight).
    pub(crate) fn join_or_lead(&self, key: Key, versions: &[u64], max_wait: Duration) -> Role<'_> {
        if self.leading_here(&key) {
            return Role::Alone;
        }
        let mut map = self.lock(&key);
        if let Some(flight) = map.get(&key) {
            let usable = !matches!(*flight.state.borrow(), State::Failed | State::Abandoned);
            if usable && *flight.versions == *versions && flight.started.elapsed() < max_wait {
                return Role::Waiter(flight.clone());
            }
        }
        let flight = Arc::new(Flight {
            versions: versions.into(),
            state: watch::Sender::new(State::Running),
            started: Instant::now(),
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

thread_local! {
    /// The flights whose loaders are being polled on this thread, innermost last.
    static LEADING: RefCell<Vec<(usize, Key)>> = const { RefCell::new(Vec::new()) };
}

impl Flights {
    fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Whether this thread is polling the loader of `key`'s flight right now, i.e. the
    /// caller is that load asking for its own key.
    fn leading_here(&self, key: &Key) -> bool {
        let id = self.id();
        LEADING.with(|l| l.borrow().iter().any(|(f, k)| *f == id && k == key))
    }

    /// Runs a leader's loader, marking its key as led by whatever it polls.
    pub(crate) async fn lead<F: Future>(&self, key: Key, loader: F) -> F::Output {
        struct Mark;
        impl Drop for Mark {
            fn drop(&mut self) {
                LEADING.with(|l| l.borrow_mut().pop());
            }
        }
        let id = self.id();
        let mut loader = std::pin::pin!(loader);
        std::future::poll_fn(|cx| {
            LEADING.with(|l| l.borrow_mut().push((id, key)));
            let _mark = Mark;
            loader.as_mut().poll(cx)
        })
        .await
    }
}

/// Returns at `deadline`, woken by the timer thread below: no runtime timer needed.
pub(crate) async fn sleep_until(deadline: Instant) {
    let mut timer = Timer::default();
    std::future::poll_fn(|cx| {
        if Instant::now() >= deadline {
            std::task::Poll::Ready(())
        } else {
            timer.arm(deadline, cx.waker());
            std::task::Poll::Pending
        }
    })
    .await;
}

/// Wakes a waiter at its deadline, from one timer thread shared by every cache: no async
/// runtime timer is needed (a runtime built without `enable_time` still works). Dropping
/// the timer (the wait ended) takes its entry out.
#[derive(Default)]
struct Timer {
    entry: Option<(Instant, u64)>,
}

struct Timers {
    due: Mutex<BTreeMap<(Instant, u64), Waker>>,
    next: AtomicU64,
    changed: Condvar,
}

fn timers() -> &'static Timers {
    static TIMERS: OnceLock<&'static Timers> = OnceLock::new();
    TIMERS.get_or_init(|| {
        let timers: &'static Timers = Box::leak(Box::new(Timers {
            due: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(0),
            changed: Condvar::new(),
        }));
        let spawned = std::thread::Builder::new()
            .name("cache-runtime-timer".into())
            .spawn(move || {
                let mut due = timers.due.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    let now = Instant::now();
                    while let Some(entry) = due.first_entry() {
                        if entry.key().0 > now {
                            break;
                        }
                        entry.remove().wake();
                    }
                    due = match due.keys().next().map(|(at, _)| *at) {
                        Some(at) => {
                            timers
                                .changed
                                .wait_timeout(due, at.saturating_duration_since(now))
                                .unwrap_or_else(PoisonError::into_inner)
                                .0
                        }
                        None => timers
                            .changed
                            .wait(due)
                            .unwrap_or_else(PoisonError::into_inner),
                    };
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(target: "cache_runtime", error = %e,
                "no timer thread: waiters of a load wait for it to end");
        }
        timers
    })
}

impl Timer {
    fn arm(&mut self, deadline: Instant, waker: &Waker) {
        let timers = timers();
        let mut due = timers.due.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = self.entry.take() {
            due.remove(&entry);
        }
        let entry = (deadline, timers.next.fetch_add(1, Ordering::Relaxed));
        let first = due.keys().next().is_none_or(|first| entry < *first);
        due.insert(entry, waker.clone());
        self.entry = Some(entry);
        if first {
            timers.changed.notify_one();
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            timers()
                .due
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&entry);
        }
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
