//! TTL forms at runtime.

use std::convert::Infallible;
use std::time::{Duration, SystemTime};

use cache_runtime::{Cache, Ttl};

use crate::support::{Calls, cache, key};

async fn read(cache: &Cache, table: &str, ttl: Ttl, calls: &Calls) -> i64 {
    cache
        .get_or_load(key(cache, 1), &[table], ttl, || async {
            calls.hit();
            Ok::<_, Infallible>(calls.get() as i64)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_duration_expires() {
    let cache = cache();
    let calls = Calls::default();
    let ttl = Ttl::For(Duration::from_millis(150));
    read(&cache, "users_a_duration_expires", ttl, &calls).await;
    read(&cache, "users_a_duration_expires", ttl, &calls).await;
    assert_eq!(calls.get(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    read(&cache, "users_a_duration_expires", ttl, &calls).await;
    assert_eq!(calls.get(), 2);
    assert_eq!(cache.stats().expired, 1);
}

#[tokio::test]
async fn forever_lasts_until_invalidated() {
    let cache = cache();
    let calls = Calls::default();
    for _ in 0..5 {
        read(
            &cache,
            "users_forever_lasts_until_invalidated",
            Ttl::Forever,
            &calls,
        )
        .await;
    }
    assert_eq!(calls.get(), 1);
    cache
        .invalidate(&["users_forever_lasts_until_invalidated"])
        .await;
    read(
        &cache,
        "users_forever_lasts_until_invalidated",
        Ttl::Forever,
        &calls,
    )
    .await;
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn until_honours_the_instant() {
    let cache = cache();
    let calls = Calls::default();
    let past = Ttl::Until(SystemTime::now() - Duration::from_secs(1));
    read(&cache, "users_until_honours_the_instant", past, &calls).await;
    read(&cache, "users_until_honours_the_instant", past, &calls).await;
    assert_eq!(calls.get(), 2, "an instant in the past caches nothing");
    assert_eq!(cache.entry_count(), Some(0));

    let soon = Ttl::Until(SystemTime::now() + Duration::from_millis(150));
    read(&cache, "users_until_honours_the_instant", soon, &calls).await;
    read(&cache, "users_until_honours_the_instant", soon, &calls).await;
    assert_eq!(calls.get(), 3);
    tokio::time::sleep(Duration::from_millis(200)).await;
    read(&cache, "users_until_honours_the_instant", soon, &calls).await;
    assert_eq!(calls.get(), 4);
}

#[tokio::test]
async fn bypass_neither_reads_nor_writes() {
    let cache = cache();
    let calls = Calls::default();
    read(
        &cache,
        "users_bypass_neither_reads_nor_writes",
        Ttl::Forever,
        &calls,
    )
    .await; // cached
    read(
        &cache,
        "users_bypass_neither_reads_nor_writes",
        Ttl::Bypass,
        &calls,
    )
    .await; // ignores the cached entry
    assert_eq!(calls.get(), 2);
    cache.clear().await;
    read(
        &cache,
        "users_bypass_neither_reads_nor_writes",
        Ttl::Bypass,
        &calls,
    )
    .await;
    assert_eq!(cache.entry_count(), Some(0), "bypass stored nothing");
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (0, 1));
}

#[tokio::test]
async fn a_disabled_cache_always_loads() {
    let cache = Cache::new(cache_runtime::Settings {
        enabled: false,
        ..Default::default()
    })
    .unwrap();
    let calls = Calls::default();
    read(
        &cache,
        "users_a_disabled_cache_always_loads",
        Ttl::Forever,
        &calls,
    )
    .await;
    read(
        &cache,
        "users_a_disabled_cache_always_loads",
        Ttl::Forever,
        &calls,
    )
    .await;
    assert_eq!(calls.get(), 2);
    assert_eq!(cache.entry_count(), Some(0));
}
