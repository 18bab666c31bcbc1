//! Invariant 1: no stale read after a completed write.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use cache_runtime::backend::MemoryBackend;
use cache_runtime::{Cache, Settings, Ttl};
use tokio::sync::Notify;

use crate::faulty::Faulty;
use crate::support::{Calls, cache, key};

type Row = Arc<Mutex<String>>;

fn read(row: &Row) -> String {
    row.lock().unwrap().clone()
}

/// `row`, read through `cache` under key `id` of `table`.
async fn read_through(cache: &Cache, row: &Row, table: &str, id: i64) -> String {
    cache
        .get_or_load(key(cache, id), &[table], Ttl::Forever, || async {
            Ok::<_, Infallible>(read(row))
        })
        .await
        .unwrap()
}

/// Mechanism: versions are captured *before* the load and compared on read (and before
/// storing). Without them the paused reader stores "old" after the invalidation and every
/// later read is served "old".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_that_read_before_a_write_is_never_served_after_it() {
    let cache = cache();
    let row: Row = Arc::new(Mutex::new("old".into()));
    let read_done = Arc::new(Notify::new());
    let resume = Arc::new(Notify::new());

    let slow_reader = tokio::spawn({
        let (cache, row, read_done, resume) = (
            cache.clone(),
            row.clone(),
            read_done.clone(),
            resume.clone(),
        );
        async move {
            let k = key(&cache, 1);
            cache
                .get_or_load(
                    k,
                    &["users_a_load_that_read_before_a_write_is_never_served_after_it"],
                    Ttl::Forever,
                    || async move {
                        let value = read(&row);
                        read_done.notify_one();
                        resume.notified().await;
                        Ok::<_, Infallible>(value)
                    },
                )
                .await
        }
    });

    read_done.notified().await;
    // The write commits, then invalidates: from here on no read may return "old".
    *row.lock().unwrap() = "new".into();
    cache
        .invalidate(&["users_a_load_that_read_before_a_write_is_never_served_after_it"])
        .await;
    resume.notify_one();

    // The slow read started before the write: it may return the old row...
    assert_eq!(slow_reader.await.unwrap().unwrap(), "old");
    // ...but nothing it stored may be served afterwards.
    for _ in 0..3 {
        let k = key(&cache, 1);
        let got = cache
            .get_or_load(
                k,
                &["users_a_load_that_read_before_a_write_is_never_served_after_it"],
                Ttl::Forever,
                || async { Ok::<_, Infallible>(read(&row)) },
            )
            .await
            .unwrap();
        assert_eq!(got, "new");
    }
}

/// Mechanism: a caller only joins an in-flight load whose captured versions equal its own.
/// Without that check, a read that starts after the write joins the load that read the
/// old row and returns "old".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_started_after_a_write_does_not_join_an_older_load() {
    let cache = cache();
    let row: Row = Arc::new(Mutex::new("old".into()));
    let read_done = Arc::new(Notify::new());
    let resume = Arc::new(Notify::new());

    let slow_reader = tokio::spawn({
        let (cache, row, read_done, resume) = (
            cache.clone(),
            row.clone(),
            read_done.clone(),
            resume.clone(),
        );
        async move {
            cache
                .get_or_load(
                    key(&cache, 1),
                    &["users_a_read_started_after_a_write_does_not_join_an_older_load"],
                    Ttl::Forever,
                    || async move {
                        let value = read(&row);
                        read_done.notify_one();
                        resume.notified().await;
                        Ok::<_, Infallible>(value)
                    },
                )
                .await
        }
    });
    read_done.notified().await;
    *row.lock().unwrap() = "new".into();
    cache
        .invalidate(&["users_a_read_started_after_a_write_does_not_join_an_older_load"])
        .await;

    // The old load is still in flight (paused) while this read runs: joining it would
    // wait for it (forever, here) and then return "old".
    let fresh = cache.get_or_load(
        key(&cache, 1),
        &["users_a_read_started_after_a_write_does_not_join_an_older_load"],
        Ttl::Forever,
        || async { Ok::<_, Infallible>(read(&row)) },
    );
    let fresh = tokio::time::timeout(std::time::Duration::from_secs(5), fresh)
        .await
        .expect("the read joined the older load instead of running its own")
        .unwrap();
    assert_eq!(fresh, "new");

    resume.notify_one();
    assert_eq!(slow_reader.await.unwrap().unwrap(), "old");
    let again = cache
        .get_or_load(
            key(&cache, 1),
            &["users_a_read_started_after_a_write_does_not_join_an_older_load"],
            Ttl::Forever,
            || async { Ok::<_, Infallible>(read(&row)) },
        )
        .await
        .unwrap();
    assert_eq!(again, "new");
}

/// Mechanism: entries carry the versions they were read at, checked on every read. Deleting
/// tracked keys alone is not enough: here the delete fails and the entry survives in the
/// backend, yet it must not be served.
#[tokio::test]
async fn an_entry_that_survives_invalidation_is_still_never_served() {
    let backend = MemoryBackend::new(100);
    let faulty = Faulty::new(backend.clone());
    faulty.set_deletes_fail(true);
    let cache = Cache::with_backend(Settings::default(), faulty).unwrap();
    let row: Row = Arc::new(Mutex::new("old".into()));
    let get = || {
        cache.get_or_load(
            key(&cache, 1),
            &["users_an_entry_that_survives_invalidation_is_still_never_served"],
            Ttl::Forever,
            || async { Ok::<_, Infallible>(read(&row)) },
        )
    };
    assert_eq!(get().await.unwrap(), "old");
    assert_eq!(get().await.unwrap(), "old");
    assert_eq!(cache.stats().hits, 1);

    *row.lock().unwrap() = "new".into();
    cache
        .invalidate(&["users_an_entry_that_survives_invalidation_is_still_never_served"])
        .await;
    assert_eq!(
        backend.len(),
        1,
        "the delete failed, the old entry is still stored"
    );
    assert_eq!(get().await.unwrap(), "new");
    let stats = cache.stats();
    assert_eq!(stats.stale, 1);
    assert!(stats.backend_errors >= 1);
}

/// Invalidation is per table: other tables' entries stay; a join is invalidated by either.
#[tokio::test]
async fn invalidation_reaches_exactly_the_tables_read() {
    let cache = cache();
    let calls = Calls::default();
    let load = |id: i64, tables: &'static [&'static str]| {
        let (cache, calls) = (cache.clone(), calls.clone());
        async move {
            cache
                .get_or_load(key(&cache, id), tables, Ttl::Forever, || async {
                    calls.hit();
                    Ok::<_, Infallible>(id)
                })
                .await
                .unwrap()
        }
    };
    load(1, &["users_invalidation_reaches_exactly_the_tables_read"]).await;
    load(2, &["posts_invalidation_reaches_exactly_the_tables_read"]).await;
    load(
        3,
        &[
            "users_invalidation_reaches_exactly_the_tables_read",
            "posts_invalidation_reaches_exactly_the_tables_read",
        ],
    )
    .await;
    assert_eq!(calls.get(), 3);

    cache
        .invalidate(&["posts_invalidation_reaches_exactly_the_tables_read"])
        .await;
    load(1, &["users_invalidation_reaches_exactly_the_tables_read"]).await; // still cached
    assert_eq!(calls.get(), 3);
    load(2, &["posts_invalidation_reaches_exactly_the_tables_read"]).await;
    load(
        3,
        &[
            "users_invalidation_reaches_exactly_the_tables_read",
            "posts_invalidation_reaches_exactly_the_tables_read",
        ],
    )
    .await;
    assert_eq!(calls.get(), 5);
    assert_eq!(cache.stats().invalidations, 1);
}

#[tokio::test]
async fn clear_removes_everything() {
    let cache = cache();
    for id in 0..10 {
        cache
            .get_or_load(
                key(&cache, id),
                &["users_clear_removes_everything"],
                Ttl::Forever,
                || async { Ok::<_, Infallible>(id) },
            )
            .await
            .unwrap();
    }
    assert_eq!(cache.entry_count(), Some(10));
    cache.clear().await;
    assert_eq!(cache.entry_count(), Some(0));
    assert_eq!(cache.tracked_keys("users_clear_removes_everything"), 0);
}

/// Mechanism: a table forgotten to stay within `max_tables` is bumped on the way out.
/// Entries hold their table; without the bump, an entry of a forgotten table never sees a
/// later write (which bumps the table created anew) and is served stale.
#[tokio::test]
async fn a_forgotten_table_never_lets_a_stale_entry_look_fresh() {
    let cache = cache_runtime::Cache::new(cache_runtime::Settings {
        max_tables: 2,
        ..cache_runtime::Settings::default()
    })
    .unwrap();
    let row: Row = Arc::new(Mutex::new("old".into()));
    let read_as = |table: &'static str, id: i64| read_through(&cache, &row, table, id);
    assert_eq!(read_as("forgotten_a", 1).await, "old");
    read_as("forgotten_b", 2).await;
    read_as("forgotten_c", 3).await; // `forgotten_a` is forgotten
    assert!(cache.stats().tables_forgotten >= 1);
    *row.lock().unwrap() = "new".into();
    cache.invalidate(&["forgotten_a"]).await;
    assert_eq!(read_as("forgotten_a", 1).await, "new");
}

/// Mechanism: an invalidation of a table this cache has never seen creates nothing. A
/// service that writes to ever-new table names (per-day partitions, say) and reads one hot
/// table must keep that table and its hits; were each write to create its table, the hot
/// one would be forgotten (its entries made stale) and the forgotten list would grow with
/// every write, since only stores drain it.
#[tokio::test]
async fn writes_to_unseen_tables_never_push_a_read_table_out() {
    let cache = cache_runtime::Cache::new(cache_runtime::Settings {
        max_tables: 2,
        ..cache_runtime::Settings::default()
    })
    .unwrap();
    let calls = Calls::default();
    let read_hot = || {
        let (cache, calls) = (cache.clone(), calls.clone());
        async move {
            cache
                .get_or_load(
                    key(&cache, 1),
                    &["unseen_hot"],
                    Ttl::Forever,
                    || async move {
                        calls.hit();
                        Ok::<_, Infallible>("row".to_string())
                    },
                )
                .await
                .unwrap()
        }
    };
    read_hot().await;
    for day in 0..50 {
        cache.invalidate(&[&format!("unseen_events_{day}")]).await;
    }
    assert_eq!(read_hot().await, "row");
    assert_eq!(calls.get(), 1, "the hot table's entry must still be served");
    assert_eq!(cache.stats().tables_forgotten, 0);
    assert_eq!(cache.table_count(), 1);
}

/// Mechanism: versions come from one clock per cache and are never given out twice. An
/// entry in a backend is tagged (table, version); a table forgotten and met again must not
/// start at a version that entry carries, or a write made meanwhile (through another cache:
/// this one no longer knew the table, so it had nothing to bump) would go unseen. The
/// backend refuses deletes, so the old entry survives its table being forgotten.
#[tokio::test]
async fn a_table_met_again_never_reuses_a_version() {
    let cache = cache_runtime::Cache::with_backend(
        cache_runtime::Settings {
            max_tables: 1,
            ..cache_runtime::Settings::default()
        },
        {
            let faulty = Faulty::new(MemoryBackend::new(100));
            faulty.set_deletes_fail(true);
            faulty
        },
    )
    .unwrap();
    let elsewhere = cache_runtime::Cache::new(cache_runtime::Settings::default()).unwrap();
    let row: Row = Arc::new(Mutex::new("old".into()));
    let read_as = |table: &'static str, id: i64| read_through(&cache, &row, table, id);
    for round in 0..5 {
        *row.lock().unwrap() = format!("v{round}");
        elsewhere.invalidate(&["reused_a"]).await;
        // Another read meets the table again first (and so creates it anew).
        read_as("reused_a", 100 + round).await;
        assert_eq!(read_as("reused_a", 1).await, format!("v{round}"));
        read_as("reused_b", 2).await; // forgets `reused_a`
    }
}

/// Mechanism: each cache's version clock starts at a random epoch. Over a plain backend,
/// versions live in each process, so two caches (two processes, or two runs of one) must
/// never serve each other's entries: another process's writes never reach this one's
/// versions. With a constant epoch, both caches tag their first read alike, and `b` would
/// be served what `a` stored.
#[tokio::test]
async fn two_caches_over_one_plain_backend_never_serve_each_others_entries() {
    let store = MemoryBackend::new(100);
    let a = Cache::with_backend(Settings::default(), store.clone()).unwrap();
    let b = Cache::with_backend(Settings::default(), store.clone()).unwrap();
    let read = |cache: &Cache, id: i64, value: &'static str| {
        let cache = cache.clone();
        async move {
            cache
                .get_or_load(
                    key(&cache, id),
                    &["users_two_caches_over_one_plain_backend"],
                    Ttl::Forever,
                    || async move { Ok::<_, Infallible>(value.to_owned()) },
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(read(&a, 1, "a's row").await, "a's row");
    assert_eq!(store.len(), 1, "a stored its read");
    // `b` knows the table too (another read of it), so only the versions can tell.
    read(&b, 2, "b's other row").await;
    assert_eq!(
        read(&b, 1, "b's row").await,
        "b's row",
        "b never serves a's entry"
    );
    assert_eq!(b.stats().hits, 0);
}
