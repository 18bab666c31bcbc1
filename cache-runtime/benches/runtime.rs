//! Runtime benchmarks: the hit path against a bare `quick_cache` lookup, the parts of a hit,
//! the miss path, and invalidation cost by tracked keys.
//!
//! Run: `cargo bench -p cache-runtime --bench runtime`. Figures are compared as ratios to
//! the `baseline/quick_cache_get_arc_clone` run in the same process.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use cache_runtime::backend::MemoryBackend;
use cache_runtime::{Cache, KeyScope, Settings, Ttl};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

mod support;

use support::{Row, row};

static FIND: KeyScope = KeyScope::new("bench::find_row");

/// Polls a future that completes without waiting (every cache hit does) to completion,
/// with no executor overhead in the measurement.
fn ready<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn hit<T: cache_runtime::CacheValue>(cache: &Cache, id: i64, value: &T) -> T {
    let key = cache.key(&FIND, &id).expect("i64 serializes");
    ready(cache.get_or_load(key, &["rows"], Ttl::Forever, || async {
        Ok::<_, Infallible>(value.clone())
    }))
    .expect("infallible")
}

fn bench_hit(c: &mut Criterion) {
    let shared = Arc::new(row(42));

    let mut g = c.benchmark_group("hit");
    // The baseline: what a hand-written in-process cache costs.
    let qc: quick_cache::sync::Cache<i64, Arc<Row>> = quick_cache::sync::Cache::new(10_000);
    qc.insert(42, shared.clone());
    g.bench_function("baseline/quick_cache_get_arc_clone", |b| {
        b.iter(|| qc.get(black_box(&42)))
    });

    let cache = Cache::new(Settings::default()).expect("valid settings");
    hit(&cache, 42, &shared);
    g.bench_function("get_or_load/arc_row", |b| {
        b.iter(|| hit(&cache, black_box(42), &shared))
    });
    let owned = row(42);
    hit(&cache, 43, &owned);
    g.bench_function("get_or_load/owned_row_clone", |b| {
        b.iter(|| hit(&cache, black_box(43), &owned))
    });

    // The parts of a hit.
    g.bench_function("part/key_build", |b| {
        b.iter(|| cache.key(&FIND, black_box(&42_i64)))
    });
    g.bench_function("part/row_clone", |b| b.iter(|| black_box(&owned).clone()));
    let key = cache.key(&FIND, &42_i64).expect("i64 serializes");
    g.bench_function("part/lookup_prebuilt_key", |b| {
        b.iter(|| {
            ready(
                cache.get_or_load(black_box(key), &["rows"], Ttl::Forever, || async {
                    Ok::<_, Infallible>(shared.clone())
                }),
            )
        })
    });

    // The same hit through the encoded path (a `Backend` storing bytes): why the default
    // in-memory store keeps decoded values instead.
    let encoded =
        Cache::with_backend(Settings::default(), MemoryBackend::new(10_000)).expect("valid");
    hit(&encoded, 42, &owned);
    g.bench_function("get_or_load/encoded_memory_backend", |b| {
        b.iter(|| hit(&encoded, black_box(42), &owned))
    });
    g.finish();
}

fn bench_miss(c: &mut Criterion) {
    let mut g = c.benchmark_group("miss");
    let shared = Arc::new(row(1));
    let cache = Cache::new(Settings::default()).expect("valid settings");
    let mut id = 0_i64;
    g.bench_function("get_or_load_and_store/arc_row", |b| {
        b.iter(|| {
            id += 1;
            hit(&cache, id, &shared)
        })
    });
    g.finish();
}

fn filled(keys: i64) -> Cache {
    let cache = Cache::new(Settings {
        max_keys_per_table: 20_000,
        ..Settings::default()
    })
    .expect("valid settings");
    for id in 0..keys {
        hit(&cache, id, &id);
    }
    cache
}

fn bench_invalidate(c: &mut Criterion) {
    let mut g = c.benchmark_group("invalidate");
    g.sample_size(30);
    for keys in [100_i64, 10_000] {
        g.bench_function(format!("tracked_keys/{keys}"), |b| {
            b.iter_batched(
                || filled(keys),
                |cache| {
                    ready(cache.invalidate(&["rows"]));
                    // Dropped after the measurement ends.
                    cache
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_hit, bench_miss, bench_invalidate
}
criterion_main!(benches);
