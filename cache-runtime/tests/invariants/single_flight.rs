//! Invariant 5: one load per key at a time.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use cache_runtime::Ttl;
use tokio::sync::Notify;

use crate::support::{Calls, cache, key};

/// Mechanism: the flight map. Without it all 64 callers run the loader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_run_the_loader_once() {
    let cache = cache();
    let calls = Calls::default();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (cache, calls) = (cache.clone(), calls.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(
                        key(&cache, 1),
                        &["users_concurrent_misses_run_the_loader_once"],
                        Ttl::Forever,
                        || async {
                            calls.hit();
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            Ok::<_, Infallible>("row".to_string())
                        },
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), "row");
    }
    assert_eq!(calls.get(), 1);
    let stats = cache.stats();
    assert_eq!(stats.loads, 1);
    assert_eq!(stats.hits + stats.coalesced, 63);
}

/// Starts a leader whose loader never finishes, then `waiters` callers of the same key.
/// Returns the leader's task and the waiters' tasks, once all are waiting.
async fn stuck_leader_and_waiters(
    cache: &cache_runtime::Cache,
    calls: &Calls,
    waiters: usize,
    panic: bool,
) -> (
    tokio::task::JoinHandle<()>,
    Vec<tokio::task::JoinHandle<String>>,
) {
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let leader = tokio::spawn({
        let (cache, started, release) = (cache.clone(), started.clone(), release.clone());
        async move {
            let _ = cache
                .get_or_load(key(&cache, 1), &["users"], Ttl::Forever, || async move {
                    started.notify_one();
                    release.notified().await;
                    if panic {
                        panic!("loader panicked");
                    }
                    Ok::<String, Infallible>("never".into())
                })
                .await;
        }
    });
    started.notified().await;
    let tasks = (0..waiters)
        .map(|_| {
            let (cache, calls) = (cache.clone(), calls.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(key(&cache, 1), &["users"], Ttl::Forever, || async {
                        calls.hit();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, Infallible>("row".to_string())
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    // Let every waiter reach the flight.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(calls.get(), 0, "waiters wait for the leader");
    if panic {
        release.notify_one();
    }
    (leader, tasks)
}

/// Mechanism: the leader's drop guard. Without it the waiters hang forever once the
/// leader's future is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_complete_when_the_leader_is_cancelled() {
    let cache = cache();
    let calls = Calls::default();
    let (leader, waiters) = stuck_leader_and_waiters(&cache, &calls, 16, false).await;
    leader.abort();
    let all = async {
        for w in waiters {
            assert_eq!(w.await.unwrap(), "row");
        }
    };
    tokio::time::timeout(Duration::from_secs(10), all)
        .await
        .expect("waiters must not hang");
    assert_eq!(calls.get(), 1, "exactly one waiter took over the load");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_complete_when_the_leader_panics() {
    let cache = cache();
    let calls = Calls::default();
    let (leader, waiters) = stuck_leader_and_waiters(&cache, &calls, 16, true).await;
    assert!(leader.await.unwrap_err().is_panic());
    let all = async {
        for w in waiters {
            assert_eq!(w.await.unwrap(), "row");
        }
    };
    tokio::time::timeout(Duration::from_secs(10), all)
        .await
        .expect("waiters must not hang");
    assert_eq!(calls.get(), 1, "exactly one waiter took over the load");
}

/// An error cannot be shared (it belongs to the leader's caller): each waiter then runs its
/// own loader and gets its own result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_run_their_own_loader_when_the_leader_fails() {
    let cache = cache();
    let calls = Calls::default();
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let leader = tokio::spawn({
        let (cache, started, release) = (cache.clone(), started.clone(), release.clone());
        async move {
            cache
                .get_or_load(
                    key(&cache, 1),
                    &["users_waiters_run_their_own_loader_when_the_leader_fails"],
                    Ttl::Forever,
                    || async move {
                        started.notify_one();
                        release.notified().await;
                        Err::<String, &str>("deadlock detected")
                    },
                )
                .await
        }
    });
    started.notified().await;
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let (cache, calls) = (cache.clone(), calls.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(
                        key(&cache, 1),
                        &["users_waiters_run_their_own_loader_when_the_leader_fails"],
                        Ttl::Forever,
                        || async {
                            calls.hit();
                            Ok::<_, &str>("row".to_string())
                        },
                    )
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    release.notify_one();
    assert_eq!(leader.await.unwrap(), Err("deadlock detected"));
    for w in waiters {
        assert_eq!(w.await.unwrap(), Ok("row".to_string()));
    }
    assert!(calls.get() >= 1);
}

/// Mechanism: `max_load_wait` (invariant 8, loads end). A loader that never returns holds
/// its waiters at most that long; then each runs its own query. Without the deadline they
/// wait for ever (this test times out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_of_a_hung_load_stop_waiting_and_run_their_own_query() {
    let cache = cache_runtime::Cache::new(cache_runtime::Settings {
        max_load_wait: Duration::from_millis(200),
        ..cache_runtime::Settings::default()
    })
    .unwrap();
    let table = "users_waiters_of_a_hung_load";
    let started = Arc::new(Notify::new());
    let hung = tokio::spawn({
        let (cache, started) = (cache.clone(), started.clone());
        async move {
            let _ = cache
                .get_or_load(key(&cache, 1), &[table], Ttl::Forever, || async move {
                    started.notify_one();
                    std::future::pending::<()>().await;
                    Ok::<String, Infallible>("never".into())
                })
                .await;
        }
    });
    started.notified().await;
    let calls = Calls::default();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let (cache, calls) = (cache.clone(), calls.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(key(&cache, 1), &[table], Ttl::Forever, || async {
                        calls.hit();
                        Ok::<_, Infallible>("row".to_string())
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let all = async {
        let mut out = Vec::new();
        for w in waiters {
            out.push(w.await.unwrap());
        }
        out
    };
    let results = tokio::time::timeout(Duration::from_secs(10), all)
        .await
        .expect("waiters of a hung load must stop waiting after max_load_wait");
    assert!(results.iter().all(|r| r == "row"));
    assert!(calls.get() >= 1);
    assert!(cache.stats().load_wait_timeouts >= 1, "{:?}", cache.stats());
    hung.abort();
}

/// Mechanism: a leader's loader marks its key while it runs. A loader that asks for its own
/// key (a cached function calling itself with the same arguments) loads alone instead of
/// joining its own flight, which it would wait on for ever (here: `max_load_wait`, 60 s).
#[tokio::test]
async fn a_loader_that_asks_for_its_own_key_does_not_wait_for_itself() {
    let cache = cache_runtime::Cache::new(cache_runtime::Settings {
        max_load_wait: Duration::from_secs(60),
        ..cache_runtime::Settings::default()
    })
    .unwrap();
    let table = "users_a_loader_that_asks_for_its_own_key";
    let tables = [table];
    let inner = cache.clone();
    let outer = cache.get_or_load(key(&cache, 1), &tables, Ttl::Forever, || async move {
        let again = inner
            .get_or_load(key(&inner, 1), &[table], Ttl::Forever, || async {
                Ok::<_, Infallible>(41)
            })
            .await
            .unwrap();
        Ok::<_, Infallible>(again + 1)
    });
    let value = tokio::time::timeout(Duration::from_secs(10), outer)
        .await
        .expect("a re-entrant load must not wait for itself")
        .unwrap();
    assert_eq!(value, 42);
}

/// Mechanism: a deadline past what `Instant` can count is no deadline. `max_load_wait:
/// Duration::MAX` ("wait for the leader, however long") passes validation; the waiter
/// must then wait for the leader's value, not panic adding the wait to the start time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbounded_max_load_wait_waits_for_the_leader() {
    let cache = cache_runtime::Cache::new(cache_runtime::Settings {
        max_load_wait: Duration::MAX,
        ..cache_runtime::Settings::default()
    })
    .unwrap();
    let table = "users_an_unbounded_max_load_wait";
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let calls = Calls::default();
    let leader = tokio::spawn({
        let (cache, started, release, calls) = (
            cache.clone(),
            started.clone(),
            release.clone(),
            calls.clone(),
        );
        async move {
            cache
                .get_or_load(key(&cache, 1), &[table], Ttl::Forever, || async move {
                    calls.hit();
                    started.notify_one();
                    release.notified().await;
                    Ok::<_, Infallible>("leader's row".to_string())
                })
                .await
        }
    });
    started.notified().await;
    let waiter = tokio::spawn({
        let (cache, calls) = (cache.clone(), calls.clone());
        async move {
            cache
                .get_or_load(key(&cache, 1), &[table], Ttl::Forever, || async move {
                    calls.hit();
                    Ok::<_, Infallible>("waiter's row".to_string())
                })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    release.notify_one();
    assert_eq!(leader.await.unwrap().unwrap(), "leader's row");
    assert_eq!(
        waiter.await.expect("the waiter must not panic").unwrap(),
        "leader's row"
    );
    assert_eq!(calls.get(), 1);
}
