//! Invariant 4: bounded memory.

use std::convert::Infallible;

use cache_runtime::backend::MemoryBackend;
use cache_runtime::{Cache, Settings, Ttl};

use crate::support::{Calls, key};

async fn fill(cache: &Cache, ids: std::ops::Range<i64>, tables: &[&str], calls: &Calls) {
    for id in ids {
        cache
            .get_or_load(key(cache, id), tables, Ttl::Forever, || async {
                calls.hit();
                Ok::<_, Infallible>(id)
            })
            .await
            .unwrap();
    }
}

/// Mechanism: the sharded LRU's per-shard capacity. Without it the store grows with every
/// distinct key.
#[tokio::test]
async fn max_entries_bounds_the_memory_store() {
    for max_entries in [1, 100, 5_000] {
        let cache = Cache::new(Settings {
            max_entries,
            ..Settings::default()
        })
        .unwrap();
        let calls = Calls::default();
        fill(
            &cache,
            0..(max_entries as i64 * 3),
            &["t_max_entries_bounds_the_memory_store"],
            &calls,
        )
        .await;
        let len = cache.entry_count().unwrap();
        assert!(len <= max_entries, "{len} > {max_entries}");
        assert!(
            len * 100 >= max_entries * 90,
            "capacity mostly used: {len}/{max_entries}"
        );
        assert_eq!(cache.stats().evictions as usize, max_entries * 3 - len);
    }
}

/// The most recently used entries survive eviction.
#[tokio::test]
async fn eviction_is_least_recently_used() {
    let cache = Cache::new(Settings {
        max_entries: 3,
        ..Settings::default()
    })
    .unwrap();
    let calls = Calls::default();
    fill(&cache, 0..3, &["t_eviction_is_least_recently_used"], &calls).await;
    fill(&cache, 0..1, &["t_eviction_is_least_recently_used"], &calls).await; // touch 0
    fill(&cache, 3..4, &["t_eviction_is_least_recently_used"], &calls).await; // evicts 1, the least recently used
    assert_eq!(calls.get(), 4);
    fill(&cache, 0..1, &["t_eviction_is_least_recently_used"], &calls).await;
    assert_eq!(calls.get(), 4, "0 survived");
    fill(&cache, 1..2, &["t_eviction_is_least_recently_used"], &calls).await;
    assert_eq!(calls.get(), 5, "1 was evicted");
}

/// Mechanism: per-table tracking capped at `max_keys_per_table`, dropping (and deleting)
/// the oldest key. Without it the tracked set grows without bound.
#[tokio::test]
async fn max_keys_per_table_bounds_tracking_and_deletes_the_oldest() {
    for backend in [false, true] {
        let settings = Settings {
            max_keys_per_table: 10,
            ..Settings::default()
        };
        let store = MemoryBackend::new(1_000);
        let cache = if backend {
            Cache::with_backend(settings, store.clone()).unwrap()
        } else {
            Cache::new(settings).unwrap()
        };
        let calls = Calls::default();
        fill(
            &cache,
            0..50,
            &[
                "users_max_keys_per_table_bounds_tracking_and_deletes_the_oldest",
                "posts_max_keys_per_table_bounds_tracking_and_deletes_the_oldest",
            ],
            &calls,
        )
        .await;
        assert_eq!(
            cache.tracked_keys("users_max_keys_per_table_bounds_tracking_and_deletes_the_oldest"),
            10
        );
        assert_eq!(
            cache.tracked_keys("posts_max_keys_per_table_bounds_tracking_and_deletes_the_oldest"),
            10
        );
        let stored = if backend {
            store.len()
        } else {
            cache.entry_count().unwrap()
        };
        assert_eq!(stored, 10, "untracked keys are deleted too");
        assert_eq!(cache.stats().table_evictions, 80);

        // The newest 10 are still served; the oldest were dropped.
        fill(
            &cache,
            40..50,
            &[
                "users_max_keys_per_table_bounds_tracking_and_deletes_the_oldest",
                "posts_max_keys_per_table_bounds_tracking_and_deletes_the_oldest",
            ],
            &calls,
        )
        .await;
        assert_eq!(calls.get(), 50);
        fill(
            &cache,
            0..1,
            &[
                "users_max_keys_per_table_bounds_tracking_and_deletes_the_oldest",
                "posts_max_keys_per_table_bounds_tracking_and_deletes_the_oldest",
            ],
            &calls,
        )
        .await;
        assert_eq!(calls.get(), 51);
    }
}

/// Mechanism: invalidation hands the tracked keys to a sweep that later stores drain, so
/// the writer's cost does not grow with the keys tracked. Without the sweep the stale
/// entries would only leave through LRU eviction; with an eager sweep that ignored fresh
/// refills, key 5 would be deleted and reloaded.
#[tokio::test]
async fn invalidated_entries_are_swept_by_later_stores_and_refills_survive() {
    let cache = Cache::new(Settings::default()).unwrap();
    let calls = Calls::default();
    fill(
        &cache,
        0..100,
        &["users_invalidated_entries_are_swept_by_later_stores_and_refills_survive"],
        &calls,
    )
    .await;
    assert_eq!(cache.entry_count(), Some(100));
    cache
        .invalidate(&["users_invalidated_entries_are_swept_by_later_stores_and_refills_survive"])
        .await;
    assert_eq!(
        cache.tracked_keys(
            "users_invalidated_entries_are_swept_by_later_stores_and_refills_survive"
        ),
        0
    );

    fill(
        &cache,
        5..6,
        &["users_invalidated_entries_are_swept_by_later_stores_and_refills_survive"],
        &calls,
    )
    .await; // refilled after the write: fresh
    fill(
        &cache,
        1000..1004,
        &["posts_invalidated_entries_are_swept_by_later_stores_and_refills_survive"],
        &calls,
    )
    .await; // four more stores sweep the rest
    assert_eq!(calls.get(), 105);
    assert_eq!(
        cache.entry_count(),
        Some(1 + 4),
        "only the fresh entries remain"
    );
    fill(
        &cache,
        5..6,
        &["users_invalidated_entries_are_swept_by_later_stores_and_refills_survive"],
        &calls,
    )
    .await;
    assert_eq!(calls.get(), 105, "the refilled entry was not swept");
}
