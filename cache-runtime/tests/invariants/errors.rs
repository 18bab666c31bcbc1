//! Invariant 2: errors are never cached; `None`/empty results only with `cache_none`.

use std::convert::Infallible;

use cache_runtime::{Cache, Settings, Ttl};

use crate::support::{Calls, cache, key};

#[derive(Debug, PartialEq)]
struct DbError;

/// A user alias: `Result` must be recognised through it (by type, not by name).
type Res<T> = std::result::Result<T, DbError>;

/// Mechanism: `LoadOutput for Result` caches only `Ok`. Caching `Err` would make the
/// second call return the error without running the loader.
#[tokio::test]
async fn errors_pass_through_and_are_never_cached() {
    let cache = cache();
    let calls = Calls::default();
    let fail = || {
        let (cache, calls) = (cache.clone(), calls.clone());
        async move {
            cache
                .get_or_load(
                    key(&cache, 1),
                    &["users_errors_pass_through_and_are_never_cached"],
                    Ttl::Forever,
                    || async {
                        calls.hit();
                        Res::<i64>::Err(DbError)
                    },
                )
                .await
        }
    };
    assert_eq!(fail().await, Err(DbError));
    assert_eq!(fail().await, Err(DbError));
    assert_eq!(calls.get(), 2);
    assert_eq!(cache.entry_count(), Some(0));

    // The next success is cached as usual.
    let ok = cache
        .get_or_load(
            key(&cache, 1),
            &["users_errors_pass_through_and_are_never_cached"],
            Ttl::Forever,
            || async { Res::Ok(7_i64) },
        )
        .await;
    assert_eq!(ok, Ok(7));
    assert_eq!(cache.entry_count(), Some(1));
}

async fn count_loads<T>(cache: &Cache, id: i64, value: T) -> usize
where
    T: cache_runtime::CacheValue + cache_runtime::LoadOutput,
{
    let calls = Calls::default();
    for _ in 0..3 {
        cache
            .get_or_load(key(cache, id), &["users"], Ttl::Forever, || async {
                calls.hit();
                value.clone()
            })
            .await;
    }
    calls.get()
}

/// Mechanism: the emptiness check before storing, gated by `cache_none`.
#[tokio::test]
async fn none_and_empty_are_cached_only_with_cache_none() {
    let on = cache();
    assert_eq!(count_loads(&on, 1, None::<i64>).await, 1);
    assert_eq!(count_loads(&on, 2, Vec::<i64>::new()).await, 1);

    let off = Cache::new(Settings {
        cache_none: false,
        ..Settings::default()
    })
    .unwrap();
    assert_eq!(count_loads(&off, 1, None::<i64>).await, 3);
    assert_eq!(count_loads(&off, 2, Vec::<i64>::new()).await, 3);
    assert_eq!(count_loads(&off, 3, Some(1_i64)).await, 1);
    assert_eq!(count_loads(&off, 4, vec![1_i64]).await, 1);

    // Inside a Result too.
    let calls = Calls::default();
    for _ in 0..2 {
        off.get_or_load(
            key(&off, 10),
            &["users_none_and_empty_are_cached_only_with_cache_none"],
            Ttl::Forever,
            || async {
                calls.hit();
                Ok::<Option<String>, Infallible>(None)
            },
        )
        .await
        .unwrap();
    }
    assert_eq!(calls.get(), 2);
}
