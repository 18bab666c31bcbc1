//! Invariant 3: the cache never breaks a call.

use std::convert::Infallible;

use cache_runtime::backend::MemoryBackend;
use cache_runtime::{Cache, Settings, Ttl};
use serde::{Deserialize, Serialize};

use crate::faulty::{Faulty, Garbage};
use crate::support::{Calls, key};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct User {
    id: i64,
    name: String,
}

/// Mechanism: decode failures become misses (counted, deleted). Without it a corrupt
/// entry would panic or surface as an error to the caller.
#[tokio::test]
async fn corrupt_or_truncated_entries_are_misses_and_are_deleted() {
    for mode in [Garbage::Random, Garbage::Truncated, Garbage::Empty] {
        let inner = MemoryBackend::new(100);
        let backend = Faulty::new(inner.clone());
        let cache = Cache::with_backend(Settings::default(), backend.clone()).unwrap();
        let calls = Calls::default();
        let get = || {
            cache.get_or_load(
                key(&cache, 1),
                &["users_corrupt_or_truncated_entries_are_misses_and_are_deleted"],
                Ttl::Forever,
                || async {
                    calls.hit();
                    Ok::<_, Infallible>(Some(User {
                        id: 1,
                        name: "ada".into(),
                    }))
                },
            )
        };
        get().await.unwrap();
        assert_eq!(inner.len(), 1);
        backend.set_garbage(Some(mode));
        let user = get().await.unwrap().unwrap();
        assert_eq!(user.name, "ada");
        assert_eq!(calls.get(), 2, "the corrupt entry was a miss");
        assert_eq!(cache.stats().decode_errors, 1);
        // The loader's fresh value replaced the corrupt one.
        backend.set_garbage(None);
        get().await.unwrap();
        assert_eq!(calls.get(), 2);
    }
}

/// Mechanism: a type fingerprint in every envelope. `(i64, String)` and `User` have the
/// same msgpack shape when encoded as arrays; without the fingerprint one would be served
/// as the other.
#[tokio::test]
async fn an_entry_of_another_type_is_a_miss() {
    let inner = MemoryBackend::new(100);
    let cache = Cache::with_backend(Settings::default(), inner.clone()).unwrap();
    let k = key(&cache, 1);
    cache
        .get_or_load(
            k,
            &["users_an_entry_of_another_type_is_a_miss"],
            Ttl::Forever,
            || async {
                Ok::<_, Infallible>(User {
                    id: 1,
                    name: "ada".into(),
                })
            },
        )
        .await
        .unwrap();
    let other: (i64, String) = cache
        .get_or_load(
            k,
            &["users_an_entry_of_another_type_is_a_miss"],
            Ttl::Forever,
            || async { Ok::<_, Infallible>((2_i64, "bob".to_string())) },
        )
        .await
        .unwrap();
    assert_eq!(other, (2, "bob".to_string()));
    assert_eq!(cache.stats().decode_errors, 1);

    // The same holds in memory, where values are stored decoded.
    let mem = crate::support::cache();
    mem.get_or_load(
        k,
        &["users_an_entry_of_another_type_is_a_miss"],
        Ttl::Forever,
        || async { Ok::<_, Infallible>(1_i64) },
    )
    .await
    .unwrap();
    let s: String = mem
        .get_or_load(
            k,
            &["users_an_entry_of_another_type_is_a_miss"],
            Ttl::Forever,
            || async { Ok::<_, Infallible>("x".to_string()) },
        )
        .await
        .unwrap();
    assert_eq!(s, "x");
    assert_eq!(mem.stats().decode_errors, 1);
}

/// Mechanism: backend errors are counted and the loader runs. Without it, reads, writes
/// and invalidations would fail or panic while the backend is down.
#[tokio::test]
async fn a_backend_outage_never_fails_a_call() {
    let down = Faulty::new(MemoryBackend::new(10));
    down.set_down(true);
    let cache = Cache::with_backend(Settings::default(), down).unwrap();
    let calls = Calls::default();
    for i in 0..3 {
        let got = cache
            .get_or_load(
                key(&cache, 1),
                &["users_a_backend_outage_never_fails_a_call"],
                Ttl::Forever,
                || async {
                    calls.hit();
                    Ok::<_, Infallible>(i)
                },
            )
            .await
            .unwrap();
        assert_eq!(got, i);
    }
    cache
        .invalidate(&["users_a_backend_outage_never_fails_a_call"])
        .await;
    cache.clear().await;
    assert_eq!(calls.get(), 3);
    let stats = cache.stats();
    assert_eq!(
        stats.backend_errors,
        3 /* get */ + 3 /* set */ + 1 /* clear */
    );
    assert_eq!(stats.hits, 0);
}
