//! Invariant 3: the cache never breaks a call.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cache_runtime::backend::{Backend, BackendError, BoxFuture, MemoryBackend};
use cache_runtime::{Cache, Settings, Ttl};
use serde::{Deserialize, Serialize};

use crate::support::{Calls, key};

/// What a misbehaving backend returns from `get`.
#[derive(Clone, Copy)]
enum Garbage {
    Random,
    Truncated,
    Empty,
}

/// Stores faithfully but corrupts what `get` returns while `corrupt` is set.
struct Corrupting {
    inner: MemoryBackend,
    mode: Garbage,
    corrupt: Arc<AtomicBool>,
}

impl Backend for Corrupting {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, BackendError>> {
        Box::pin(async move {
            let stored = self.inner.get(key).await?;
            if !self.corrupt.load(Ordering::SeqCst) {
                return Ok(stored);
            }
            Ok(stored.map(|bytes| match self.mode {
                Garbage::Random => (0..bytes.len()).map(|i| (i * 7919 % 251) as u8).collect(),
                Garbage::Truncated => bytes[..bytes.len() / 2].to_vec(),
                Garbage::Empty => Vec::new(),
            }))
        })
    }
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        self.inner.set(key, value, ttl)
    }
    fn delete<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<(), BackendError>> {
        self.inner.delete(keys)
    }
    fn clear_prefix<'a>(&'a self, p: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        self.inner.clear_prefix(p)
    }
}

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
        let corrupt = Arc::new(AtomicBool::new(false));
        let backend = Corrupting {
            inner: inner.clone(),
            mode,
            corrupt: corrupt.clone(),
        };
        let cache = Cache::with_backend(Settings::default(), backend).unwrap();
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
        corrupt.store(true, Ordering::SeqCst);
        let user = get().await.unwrap().unwrap();
        assert_eq!(user.name, "ada");
        assert_eq!(calls.get(), 2, "the corrupt entry was a miss");
        assert_eq!(cache.stats().decode_errors, 1);
        // The loader's fresh value replaced the corrupt one.
        corrupt.store(false, Ordering::SeqCst);
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

/// A backend that is down: every operation fails.
struct Down;

impl Backend for Down {
    fn get<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, BackendError>> {
        Box::pin(async { Err(BackendError::new("connection refused")) })
    }
    fn set<'a>(
        &'a self,
        _: &'a str,
        _: Vec<u8>,
        _: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async { Err(BackendError::new("connection refused")) })
    }
    fn delete<'a>(&'a self, _: &'a [String]) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async { Err(BackendError::new("connection refused")) })
    }
    fn clear_prefix<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async { Err(BackendError::new("connection refused")) })
    }
}

/// Mechanism: backend errors are counted and the loader runs. Without it, reads, writes
/// and invalidations would fail or panic while the backend is down.
#[tokio::test]
async fn a_backend_outage_never_fails_a_call() {
    let cache = Cache::with_backend(Settings::default(), Down).unwrap();
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
