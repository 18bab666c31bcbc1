//! A Redis hit through the cache against a raw redis-rs `GET` of the same bytes, in one run.
//!
//! Run: `REDIS_URL=redis://127.0.0.1:6379 cargo bench -p cache-redis --bench redis`.
//! Without `REDIS_URL` it prints a skip message. The cache hit is one `MGET` (the entry and
//! its table's version) plus decoding; compare `cache_hit` with `raw_get`
//! (the same `ConnectionManager` kind the backend uses) and `raw_get_multiplexed`. The
//! `backend_*` rows are the backend alone (its timeout and backoff around the same
//! commands). A last `interleaved` line alternates the cache hit, the raw GET and the raw
//! MGET in rounds and prints the median ratios: on a shared machine whose load drifts, that
//! ratio is the figure to quote. `near_hit` is the same read through a near cache
//! (`Settings::near_cache`): an in-process copy, no round trip.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use cache_redis::{RedisBackend, RedisOptions};
use cache_runtime::backend::{Backend, SharedBackend};
use cache_runtime::{Cache, KeyScope, Settings, Ttl};
use criterion::{Criterion, criterion_group, criterion_main};

#[path = "../../cache-runtime/benches/support/mod.rs"]
mod support;

use support::row;

static FIND: KeyScope = KeyScope::new("bench::redis::find");

fn bench_redis_hit(c: &mut Criterion) {
    let Ok(url) = std::env::var("REDIS_URL") else {
        eprintln!("skipped: REDIS_URL not set (e.g. REDIS_URL=redis://127.0.0.1:6379)");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let namespace = format!("bench-redis-{}", std::process::id());
    let settings = Settings {
        namespace: namespace.clone(),
        ..Settings::default()
    };
    let (cache, backend, key, remote, mut manager, mut multiplexed) = rt.block_on(async {
        let backend = RedisBackend::connect(&url, RedisOptions::default())
            .await
            .expect("Redis at REDIS_URL answers");
        let cache = Cache::with_shared_backend(settings, backend.clone()).expect("valid settings");
        let key = cache.key(&FIND, &42_i64).expect("key");
        cache
            .get_or_load(key, &["users"], Ttl::Forever, || async {
                Ok::<_, Infallible>(row(42))
            })
            .await
            .expect("infallible");
        let remote = format!("{namespace}:{key}");
        let client = redis::Client::open(url.as_str()).expect("valid URL");
        let manager = redis::aio::ConnectionManager::new(client.clone())
            .await
            .expect("connection");
        let multiplexed = client
            .get_multiplexed_async_connection()
            .await
            .expect("connection");
        (cache, backend, key, remote, manager, multiplexed)
    });
    // The near cache (`Settings::near_cache`): the same entry, copied in process. Its push
    // subscription runs on a runtime of its own, so it stays live between measurements.
    let near_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let near = {
        let _inside = near_rt.enter();
        let settings = Settings {
            namespace: format!("{namespace}-near"),
            near_cache: true,
            ..Settings::default()
        };
        Cache::with_shared_backend(settings, backend.clone()).expect("a near cache")
    };
    let near_key = near.key(&FIND, &42_i64).expect("key");
    rt.block_on(async {
        // Copied once the subscription is confirmed.
        while near.entry_count() != Some(1) {
            let found = near
                .get_or_load(near_key, &["users"], Ttl::Forever, || async {
                    Ok::<_, Infallible>(row(42))
                })
                .await;
            black_box(found.expect("infallible"));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let near_hit = || {
        near.get_or_load(near_key, &["users"], Ttl::Forever, || async {
            Ok::<_, Infallible>(row(0))
        })
    };
    let bytes = rt
        .block_on(backend.get(&remote))
        .expect("GET")
        .expect("the entry was stored");
    println!("entry: {} bytes under {remote}", bytes.len());

    let mut group = c.benchmark_group("redis_hit");
    group.bench_function("cache_hit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let found = cache
                        .get_or_load(key, &["users"], Ttl::Forever, || async {
                            Ok::<_, Infallible>(row(0))
                        })
                        .await;
                    black_box(found.expect("infallible"));
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("near_hit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(near_hit().await.expect("infallible"));
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("raw_get", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let got: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(&remote)
                        .query_async(&mut manager)
                        .await
                        .expect("GET");
                    black_box(got);
                }
                start.elapsed()
            })
        })
    });
    // What the hit path sends: the entry and its table's version in one MGET.
    let version_key = format!("{namespace}:v:users");
    group.bench_function("raw_mget_entry_and_version", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let got: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                        .arg(&remote)
                        .arg(&version_key)
                        .query_async(&mut manager)
                        .await
                        .expect("MGET");
                    black_box(got);
                }
                start.elapsed()
            })
        })
    });
    // The backend alone: its timeout and breaker around the same commands.
    group.bench_function("backend_get", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(backend.get(&remote).await.expect("GET"));
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("backend_get_checked", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let got = backend
                        .get_checked(&namespace, &remote, &["users"])
                        .await
                        .expect("MGET");
                    black_box(got);
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("raw_get_multiplexed", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let got: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(&remote)
                        .query_async(&mut multiplexed)
                        .await
                        .expect("GET");
                    black_box(got);
                }
                start.elapsed()
            })
        })
    });
    group.finish();

    // Criterion measures one function after the other; on a loaded machine the load drifts
    // between them. Interleaved rounds compare like with like.
    rt.block_on(async {
        const ROUNDS: usize = 40;
        const OPS: u32 = 500;
        let (mut hit, mut raw, mut mget) = (Vec::new(), Vec::new(), Vec::new());
        let mut near_hits = Vec::new();
        for _ in 0..ROUNDS {
            let start = Instant::now();
            for _ in 0..OPS {
                black_box(near_hit().await.expect("infallible"));
            }
            near_hits.push(start.elapsed() / OPS);
            let start = Instant::now();
            for _ in 0..OPS {
                let found = cache
                    .get_or_load(key, &["users"], Ttl::Forever, || async {
                        Ok::<_, Infallible>(row(0))
                    })
                    .await;
                black_box(found.expect("infallible"));
            }
            hit.push(start.elapsed() / OPS);
            let start = Instant::now();
            for _ in 0..OPS {
                let got: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&remote)
                    .query_async(&mut manager)
                    .await
                    .expect("GET");
                black_box(got);
            }
            raw.push(start.elapsed() / OPS);
            let start = Instant::now();
            for _ in 0..OPS {
                let got: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                    .arg(&remote)
                    .arg(&version_key)
                    .query_async(&mut manager)
                    .await
                    .expect("MGET");
                black_box(got);
            }
            mget.push(start.elapsed() / OPS);
        }
        let median = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let (hit, raw, mget) = (median(&mut hit), median(&mut raw), median(&mut mget));
        let near_hit = median(&mut near_hits);
        println!(
            "interleaved, median of {ROUNDS} rounds of {OPS}: near cache hit {near_hit:?}, \
             Redis cache hit {hit:?}: the near hit is {:.0}x faster",
            hit.as_secs_f64() / near_hit.as_secs_f64()
        );
        println!(
            "interleaved, median of {ROUNDS} rounds of {OPS}: cache hit {hit:?}, raw GET {raw:?} \
             (ratio {:.2}), raw MGET of entry + version {mget:?} (cache hit / MGET {:.2})",
            hit.as_secs_f64() / raw.as_secs_f64(),
            hit.as_secs_f64() / mget.as_secs_f64(),
        );
    });

    let stats = cache.stats();
    println!(
        "cache: {} hits, {} misses, {} backend errors",
        stats.hits, stats.misses, stats.backend_errors
    );
    assert_eq!(stats.misses, 1, "every benchmarked read was a hit");
    let near_stats = near.stats();
    println!(
        "near cache: {} hits, {} misses, {} copies",
        near_stats.hits,
        near_stats.misses,
        near.entry_count().unwrap_or(0)
    );
    rt.block_on(backend.clear_prefix(&format!("{namespace}:")))
        .expect("clean up");
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_redis_hit
}
criterion_main!(benches);
