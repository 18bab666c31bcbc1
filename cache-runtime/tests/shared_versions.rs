//! Caches over a backend that keeps table versions itself (a `SharedBackend`), as app
//! instances sharing one Redis are: here `SharedMemoryBackend`, wrapped so that tests can
//! take it down. The Redis suite (root tests/redis.rs) repeats the essentials against a
//! real server.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use cache_runtime::backend::{Backend, SharedBackend, SharedMemoryBackend};
use cache_runtime::{Cache, Key, KeyScope, Settings, Ttl};

static FIND: KeyScope = KeyScope::new("shared_versions::find");

#[path = "common/faulty.rs"]
mod faulty;

use faulty::Faulty;

/// `SharedMemoryBackend` with a switch that makes every operation fail, as an outage does.
type Switchable = Faulty<SharedMemoryBackend>;

fn cache(backend: impl SharedBackend) -> Cache {
    Cache::with_shared_backend(Settings::default(), backend).expect("default settings are valid")
}

fn key(cache: &Cache) -> Key {
    cache.key(&FIND, &1_i64).expect("i64 serializes")
}

async fn read(cache: &Cache, table: &str, value: &str) -> String {
    cache
        .get_or_load(key(cache), &[table], Ttl::Forever, || async {
            Ok::<_, Infallible>(value.to_owned())
        })
        .await
        .unwrap_or_else(|e| match e {})
}

fn remote_key(cache: &Cache) -> String {
    format!("{}:{}", cache.settings().namespace, key(cache))
}

#[tokio::test]
async fn a_write_through_one_cache_makes_the_others_entry_stale() {
    let store = SharedMemoryBackend::new(1_000);
    let (a, b) = (cache(store.clone()), cache(store.clone()));
    assert_eq!(
        read(
            &b,
            "users_a_write_through_one_cache_makes_the_others_entry_stale",
            "ada"
        )
        .await,
        "ada"
    );
    assert_eq!(
        read(
            &a,
            "users_a_write_through_one_cache_makes_the_others_entry_stale",
            "unused"
        )
        .await,
        "ada",
        "entries are shared"
    );
    assert_eq!(a.stats().loads, 0);
    a.invalidate(&["users_a_write_through_one_cache_makes_the_others_entry_stale"])
        .await;
    assert_eq!(
        read(
            &b,
            "users_a_write_through_one_cache_makes_the_others_entry_stale",
            "lovelace"
        )
        .await,
        "lovelace"
    );
    assert_eq!(
        store
            .tracked(
                &a.settings().namespace,
                "users_a_write_through_one_cache_makes_the_others_entry_stale"
            )
            .await
            .unwrap(),
        1,
        "the backend tracks the keys, once per key"
    );
    assert_eq!(
        a.tracked_keys("users_a_write_through_one_cache_makes_the_others_entry_stale"),
        0,
        "nothing is tracked in process"
    );
}

/// The read-time check: an entry tagged with versions from before a bump is a miss, even if
/// it reaches the backend after the bump (a slow or replayed write that skipped the
/// store-time check).
#[tokio::test]
async fn an_entry_tagged_before_a_bump_is_stale_whenever_it_arrives() {
    let store = SharedMemoryBackend::new(1_000);
    let (a, b) = (cache(store.clone()), cache(store.clone()));
    assert_eq!(
        read(
            &b,
            "users_an_entry_tagged_before_a_bump_is_stale_whenever_it_arrives",
            "ada"
        )
        .await,
        "ada"
    );
    let old = store.get(&remote_key(&b)).await.unwrap().expect("stored");
    a.invalidate(&["users_an_entry_tagged_before_a_bump_is_stale_whenever_it_arrives"])
        .await;
    store.set(&remote_key(&b), old, None).await.unwrap();
    assert_eq!(
        read(
            &b,
            "users_an_entry_tagged_before_a_bump_is_stale_whenever_it_arrives",
            "lovelace"
        )
        .await,
        "lovelace"
    );
    assert_eq!(b.stats().stale, 1);
}

/// A load that captured the versions before a write must not store its result after it.
#[tokio::test]
async fn a_load_overtaken_by_a_write_stores_nothing() {
    let store = SharedMemoryBackend::new(1_000);
    let (a, b) = (cache(store.clone()), cache(store.clone()));
    let loaded = b
        .get_or_load(
            key(&b),
            &["users_a_load_overtaken_by_a_write_stores_nothing"],
            Ttl::Forever,
            || async {
                a.invalidate(&["users_a_load_overtaken_by_a_write_stores_nothing"])
                    .await;
                Ok::<_, Infallible>("ada".to_owned())
            },
        )
        .await
        .unwrap_or_else(|e| match e {});
    assert_eq!(loaded, "ada");
    assert_eq!(store.get(&remote_key(&b)).await.unwrap(), None);
    assert_eq!(
        read(
            &b,
            "users_a_load_overtaken_by_a_write_stores_nothing",
            "lovelace"
        )
        .await,
        "lovelace"
    );
}

/// Invariant 1 across an outage: an invalidation the backend missed is remembered, this
/// cache serves nothing from the backend until it is delivered, and it is delivered before
/// the first operation once the backend is back, so the other caches see it too.
#[tokio::test]
async fn an_invalidation_missed_during_an_outage_is_delivered_when_the_backend_is_back() {
    let store = SharedMemoryBackend::new(1_000);
    let a_side = Switchable::new(store.clone());
    let (a, b) = (cache(a_side.clone()), cache(store.clone()));
    assert_eq!(
        read(
            &b,
            "users_an_invalidation_missed_during_an_outage_is_delivered_when_the_backend_is_back",
            "ada"
        )
        .await,
        "ada"
    );
    assert_eq!(
        read(
            &a,
            "users_an_invalidation_missed_during_an_outage_is_delivered_when_the_backend_is_back",
            "unused"
        )
        .await,
        "ada"
    );

    a_side.set_down(true);
    a.invalidate(&[
        "users_an_invalidation_missed_during_an_outage_is_delivered_when_the_backend_is_back",
    ])
    .await; // the write committed; the bump fails
    // At least: the other tests of this binary write too, and every write reaches every
    // cache of the process, `a`'s down backend included.
    assert!(a.stats().backend_errors >= 1, "{:?}", a.stats());
    assert_eq!(
        read(
            &a,
            "users_an_invalidation_missed_during_an_outage_is_delivered_when_the_backend_is_back",
            "lovelace"
        )
        .await,
        "lovelace",
        "down: the query runs"
    );
    // Only `a`'s connection is down. `b`, in the same process, was invalidated through its
    // own (the write reaches every cache of the process); another process would read the
    // old entry until `a` delivers the bump: the documented window.
    assert_eq!(
        read(
            &b,
            "users_an_invalidation_missed_during_an_outage_is_delivered_when_the_backend_is_back",
            "lovelace"
        )
        .await,
        "lovelace"
    );

    a_side.set_down(false);
    // Up, but the bump is not delivered yet: `a` delivers it before anything else, so its
    // first read is fresh although the old entry is still in the backend.
    assert_eq!(
        read(
            &a,
            "users_an_invalidation_missed_during_an_outage_is_delivered_when_the_backend_is_back",
            "lovelace"
        )
        .await,
        "lovelace"
    );
    assert_eq!(a.stats().hits, 1, "only the read before the outage hit");
    assert_eq!(
        read(
            &b,
            "users_an_invalidation_missed_during_an_outage_is_delivered_when_the_backend_is_back",
            "lovelace"
        )
        .await,
        "lovelace",
        "the delivered bump reaches every cache"
    );
    // Delivered once: `a` caches again.
    assert_eq!(
        read(
            &a,
            "users_an_invalidation_missed_during_an_outage_is_delivered_when_the_backend_is_back",
            "unused"
        )
        .await,
        "lovelace"
    );
    assert_eq!(a.stats().hits, 2);
}

/// While the pending bump still fails, nothing is read from or stored into the backend,
/// even when other operations would succeed.
#[tokio::test]
async fn nothing_is_served_while_an_invalidation_is_undelivered() {
    let store = SharedMemoryBackend::new(1_000);
    let a_side = Switchable::new(store.clone());
    let a = cache(a_side.clone());
    assert_eq!(
        read(
            &a,
            "users_nothing_is_served_while_an_invalidation_is_undelivered",
            "ada"
        )
        .await,
        "ada"
    );
    a_side.set_down(true);
    a.invalidate(&["users_nothing_is_served_while_an_invalidation_is_undelivered"])
        .await;
    for _ in 0..3 {
        assert_eq!(
            read(
                &a,
                "users_nothing_is_served_while_an_invalidation_is_undelivered",
                "lovelace"
            )
            .await,
            "lovelace"
        );
    }
    let stats = a.stats();
    assert_eq!((stats.hits, stats.loads), (0, 4), "{stats:?}");
    assert!(stats.backend_errors >= 4, "{stats:?}");
}

/// Mechanism: a load whose versions could not be captured shares no flight. It cannot
/// tell whether a write came between it and another such load: here another process's
/// write (a bump straight into the shared store) lands while the first load is in flight,
/// and a read that starts after it must not be handed the first load's (older) value. The
/// value is returned, and nothing is stored.
#[tokio::test]
async fn a_failed_capture_runs_the_query_alone_and_stores_nothing() {
    let table = "users_a_failed_capture_runs_the_query_alone";
    let tables = [table];
    let store = SharedMemoryBackend::new(1_000);
    let side = Switchable::new(store.clone());
    let a = cache(side.clone());
    side.set_down(true);
    let row = Arc::new(std::sync::Mutex::new("old".to_owned()));
    let started = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let k = key(&a);
    let first = tokio::spawn({
        let (a, row, started, release) = (a.clone(), row.clone(), started.clone(), release.clone());
        async move {
            a.get_or_load(k, &[table], Ttl::Forever, || async move {
                let value = row.lock().unwrap().clone();
                started.notify_one();
                release.notified().await;
                Ok::<_, Infallible>(value)
            })
            .await
            .unwrap()
        }
    });
    started.notified().await;
    // Another process commits a write and bumps the shared versions.
    *row.lock().unwrap() = "new".to_owned();
    store.bump(&a.settings().namespace, &[table]).await.unwrap();
    let second = a.get_or_load(k, &tables, Ttl::Forever, || async {
        Ok::<_, Infallible>(row.lock().unwrap().clone())
    });
    let second = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("the second read does not wait for the first load")
        .unwrap();
    assert_eq!(second, "new", "a read that started after the write");
    release.notify_one();
    assert_eq!(first.await.unwrap(), "old");
    assert_eq!(a.stats().loads, 2);
    side.set_down(false);
    assert_eq!(
        store.get(&remote_key(&a)).await.unwrap(),
        None,
        "nothing stored"
    );
}
