//! What a service can see of each cached call, on SQLite: the outcome of the calls of one
//! request (`observe`, for a `Cache-Status` header), counters per function, `tracing`
//! events, and the freshness sampler finding a write that bypassed invalidation.

use std::sync::{Arc, Mutex};

use cache_runtime::{Cache, Outcome, Settings, cached, invalidates, observe};
use sqlx::SqlitePool;

#[cached(ttl = "60s", name = "observe::user_name")]
async fn user_name(pool: &SqlitePool, cache: &Cache, id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT name FROM users WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
}

#[cached(ttl = "60s", name = "observe::user_count")]
async fn user_count(pool: &SqlitePool, cache: &Cache) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await
}

#[cached(ttl = false, name = "observe::uncached_name")]
async fn uncached_name(pool: &SqlitePool, cache: &Cache, id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT name FROM users WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Only the tracing test calls it: its events are told apart from the other tests'.
#[cached(ttl = "60s", name = "observe::traced_name")]
async fn traced_name(pool: &SqlitePool, cache: &Cache, id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT name FROM users WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
}

#[invalidates]
async fn rename(pool: &SqlitePool, cache: &Cache, id: i64, name: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET name = ? WHERE id = ?")
        .bind(name)
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
}

async fn database() -> (SqlitePool, cache_suite::TempDb) {
    let (pool, db) = cache_suite::sqlite(2).await;
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&pool)
        .await
        .expect("schema");
    sqlx::query("INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'bob')")
        .execute(&pool)
        .await
        .expect("rows");
    (pool, db)
}

/// Mechanism: every call reports its outcome to the enclosing `observe` scope, and the
/// miss path says why it missed (stale after a write).
#[tokio::test]
async fn each_request_knows_how_its_reads_were_served() {
    let _serial = cache_suite::one_at_a_time().await;
    let (pool, _db) = database().await;
    let cache = Cache::new(Settings::default()).expect("settings");

    let (name, served) = observe(user_name(&pool, &cache, 1)).await;
    assert_eq!(name.expect("query").as_deref(), Some("ada"));
    assert_eq!((served.misses, served.hits), (1, 0));
    assert_eq!(served.cache_status("app"), "app; fwd=miss");

    // One request, two reads, both cached by now: a hit.
    user_count(&pool, &cache).await.expect("query");
    let (_, served) = observe(async {
        user_name(&pool, &cache, 1).await.expect("query");
        user_count(&pool, &cache).await.expect("query")
    })
    .await;
    assert_eq!(served.hits, 2);
    assert_eq!(served.cache_status("app"), "app; hit");

    rename(&pool, &cache, 1, "ada l.").await.expect("write");
    let (name, served) = observe(user_name(&pool, &cache, 1)).await;
    assert_eq!(name.expect("query").as_deref(), Some("ada l."));
    assert_eq!(
        served.stale, 1,
        "the entry was read before the write: {served:?}"
    );
    assert_eq!(served.cache_status("app"), "app; fwd=stale");

    let (_, served) = observe(uncached_name(&pool, &cache, 1)).await;
    assert_eq!(served.bypassed, 1);
    assert_eq!(served.cache_status("app"), "app; fwd=bypass");

    // Nested scopes: the outer one sees the inner one's calls.
    let (_, outer) = observe(async {
        let (_, inner) = observe(user_name(&pool, &cache, 2)).await;
        assert_eq!(inner.misses, 1);
        user_name(&pool, &cache, 2).await.expect("query");
    })
    .await;
    assert_eq!((outer.misses, outer.hits), (1, 1));
}

/// Mechanism: counters per function (scope id carried by every key), next to the totals.
#[tokio::test]
async fn counters_per_function() {
    let _serial = cache_suite::one_at_a_time().await;
    let (pool, _db) = database().await;
    let cache = Cache::new(Settings::default()).expect("settings");
    for _ in 0..3 {
        user_name(&pool, &cache, 1).await.expect("query");
    }
    user_count(&pool, &cache).await.expect("query");
    rename(&pool, &cache, 1, "ada l.").await.expect("write");
    user_name(&pool, &cache, 1).await.expect("query");
    uncached_name(&pool, &cache, 1).await.expect("query");

    let stats = cache.function_stats();
    let of = |name: &str| {
        stats
            .iter()
            .find(|f| f.function == name)
            .unwrap_or_else(|| panic!("{name} in {stats:#?}"))
            .clone()
    };
    let name = of("observe::user_name");
    assert_eq!((name.hits, name.misses, name.stale), (2, 2, 1));
    assert!(name.load_micros > 0);
    let count = of("observe::user_count");
    assert_eq!((count.hits, count.misses), (0, 1));
    assert_eq!(of("observe::uncached_name").bypassed, 1);
    assert_eq!(stats[0].function, "observe::user_name", "busiest first");
    let totals = cache.stats();
    assert_eq!(totals.hits, stats.iter().map(|f| f.hits).sum::<u64>());
    // As JSON for a `/stats` endpoint.
    let json = serde_json::to_value(&stats).expect("json");
    assert_eq!(json[0]["function"], "observe::user_name");
}

/// Mechanism: the sampler re-runs the query behind a hit and compares. A write that
/// bypasses invalidation (raw SQL, no `#[invalidates]`) is found, counted per function,
/// and repaired; an invalidated write is no mismatch.
#[tokio::test]
async fn the_freshness_sampler_finds_a_write_that_bypassed_invalidation() {
    let _serial = cache_suite::one_at_a_time().await;
    let (pool, _db) = database().await;
    let settings = Settings {
        freshness_sample: 1.0,
        ..Settings::default()
    };
    let cache = Cache::new(settings).expect("settings");
    user_name(&pool, &cache, 1).await.expect("query");
    // Sampled hits of an unchanged row: checked, no mismatch.
    user_name(&pool, &cache, 1).await.expect("query");
    assert_eq!(cache.stats().freshness_checks, 1);
    assert_eq!(cache.stats().freshness_mismatches, 0);

    // A write through the cache: invalidated, so the next read is a miss, not a mismatch.
    rename(&pool, &cache, 1, "ada l.").await.expect("write");
    user_name(&pool, &cache, 1).await.expect("query");
    assert_eq!(cache.stats().freshness_mismatches, 0);

    // A write the cache never hears of.
    sqlx::query("UPDATE users SET name = 'eve' WHERE id = 1")
        .execute(&pool)
        .await
        .expect("write");
    let name = user_name(&pool, &cache, 1).await.expect("query");
    assert_eq!(
        name.as_deref(),
        Some("eve"),
        "a sampled call returns the fresh value"
    );
    let stats = cache.stats();
    assert_eq!((stats.freshness_checks, stats.freshness_mismatches), (2, 1));
    let function = cache
        .function_stats()
        .into_iter()
        .find(|f| f.function == "observe::user_name")
        .expect("counted");
    assert_eq!(function.freshness_mismatches, 1);

    // Repaired: the mismatch invalidated `users`, so the next call is a miss.
    let loads = cache.stats().loads;
    let name = user_name(&pool, &cache, 1).await.expect("query");
    assert_eq!(name.as_deref(), Some("eve"));
    assert_eq!(cache.stats().loads, loads + 1);
    assert_eq!(cache.stats().freshness_mismatches, 1);
}

/// Mechanism: a mismatch invalidates, so it repairs even a value that cannot be stored
/// (`None` with `cache_none` off, after a delete behind the cache's back).
#[tokio::test]
async fn a_mismatch_repairs_even_what_cannot_be_stored() {
    let _serial = cache_suite::one_at_a_time().await;
    let (pool, _db) = database().await;
    let settings = Settings {
        freshness_sample: 1.0,
        cache_none: false,
        ..Settings::default()
    };
    let cache = Cache::new(settings).expect("settings");
    user_name(&pool, &cache, 2).await.expect("query");
    sqlx::query("DELETE FROM users WHERE id = 2")
        .execute(&pool)
        .await
        .expect("delete");
    assert_eq!(user_name(&pool, &cache, 2).await.expect("query"), None);
    assert_eq!(cache.stats().freshness_mismatches, 1);
    // The entry of `bob` is gone: this call is a miss, not another sampled hit of it.
    let checks = cache.stats().freshness_checks;
    assert_eq!(user_name(&pool, &cache, 2).await.expect("query"), None);
    assert_eq!(cache.stats().freshness_checks, checks);
    assert_eq!(cache.stats().freshness_mismatches, 1);
}

/// Mechanism: one `tracing` event per call on target `cache_runtime::call`, with the
/// function, the outcome, the latency and a short key digest.
#[tokio::test]
async fn every_call_is_a_tracing_event() {
    let events = Arc::new(Mutex::new(Vec::new()));
    // Global: a scoped subscriber misses events while other tests' threads register the
    // same call sites. The other tests call other functions, and are filtered out below.
    tracing::subscriber::set_global_default(Collect(events.clone())).expect("the only one");
    // The other tests write `users`, which every cache of the process invalidates.
    let _serial = cache_suite::one_at_a_time().await;
    let (pool, _db) = database().await;
    let cache = Cache::new(Settings::default()).expect("settings");
    traced_name(&pool, &cache, 1).await.expect("query");
    traced_name(&pool, &cache, 1).await.expect("query");
    cache.invalidate(&["traced"]).await;

    let events = events.lock().expect("events");
    let calls: Vec<&Event> = events
        .iter()
        .filter(|e| e.target == "cache_runtime::call")
        .filter(|e| e.field("function") == "observe::traced_name")
        .collect();
    assert_eq!(calls.len(), 2, "{events:#?}");
    for (event, outcome, level) in [
        (calls[0], Outcome::Miss, tracing::Level::DEBUG),
        (calls[1], Outcome::Hit, tracing::Level::TRACE),
    ] {
        assert_eq!(event.level, level);
        assert_eq!(event.field("outcome"), outcome.as_str());
        assert_eq!(event.field("key").len(), 16, "{event:?}");
        assert!(event.field("latency_us").parse::<f64>().expect("a number") > 0.0);
    }
    let invalidation = events
        .iter()
        .find(|e| e.target == "cache_runtime::invalidate" && e.field("tables").contains("traced"))
        .expect("an invalidation event");
    assert_eq!(invalidation.field("cause"), "write");
}

#[derive(Debug)]
struct Event {
    target: String,
    level: tracing::Level,
    fields: Vec<(String, String)>,
}

impl Event {
    fn field(&self, name: &str) -> String {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no field {name} in {self:?}"))
    }
}

/// A subscriber that keeps every event (no `tracing-subscriber` needed).
struct Collect(Arc<Mutex<Vec<Event>>>);

impl tracing::Subscriber for Collect {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Fields(Vec<(String, String)>);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push((field.name().to_owned(), format!("{value:?}")));
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.push((field.name().to_owned(), value.to_owned()));
            }
        }
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        if let Ok(mut events) = self.0.lock() {
            events.push(Event {
                target: event.metadata().target().to_owned(),
                level: *event.metadata().level(),
                fields: fields.0,
            });
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Mechanism: the sampler's 100 ms settle uses the cache's own timer thread, so a runtime
/// built without `enable_time` (as the crate's examples build theirs) does not panic.
#[test]
fn the_sampler_needs_no_runtime_timer() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    static SCOPE: cache_runtime::KeyScope = cache_runtime::KeyScope::new("observe::no_timer");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime without timers");
    let db = Arc::new(AtomicI64::new(1));
    runtime.block_on(async {
        let settings = Settings {
            freshness_sample: 1.0,
            ..Settings::default()
        };
        let cache = Cache::new(settings).expect("settings");
        let key = cache.key(&SCOPE, &0_i64).expect("a key");
        let read = || {
            let db = Arc::clone(&db);
            cache.get_or_load(
                key,
                &["no_timer"],
                cache_runtime::Ttl::Forever,
                move || async move { Ok::<_, std::io::Error>(db.load(Ordering::SeqCst)) },
            )
        };
        assert_eq!(read().await.expect("read"), 1);
        db.store(2, Ordering::SeqCst); // behind the cache's back
        assert_eq!(read().await.expect("read"), 2);
        assert_eq!(cache.stats().freshness_mismatches, 1);
    });
}

/// Mechanism: a sampled hit whose re-run query fails returns the cached value: the check
/// never breaks a call, and counts nothing.
#[tokio::test]
async fn a_failing_recheck_returns_the_cached_value() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    static SCOPE: cache_runtime::KeyScope = cache_runtime::KeyScope::new("observe::failing");
    let settings = Settings {
        freshness_sample: 1.0,
        ..Settings::default()
    };
    let cache = Cache::new(settings).expect("settings");
    let key = cache.key(&SCOPE, &0_i64).expect("a key");
    let down = Arc::new(AtomicBool::new(false));
    let read = || {
        let down = Arc::clone(&down);
        cache.get_or_load(
            key,
            &["failing"],
            cache_runtime::Ttl::Forever,
            move || async move {
                if down.load(Ordering::SeqCst) {
                    Err(std::io::Error::other("the database is down"))
                } else {
                    Ok(7_i64)
                }
            },
        )
    };
    assert_eq!(read().await.expect("loaded"), 7);
    down.store(true, Ordering::SeqCst);
    assert_eq!(read().await.expect("the cached value, not the error"), 7);
    let stats = cache.stats();
    assert_eq!((stats.freshness_checks, stats.freshness_mismatches), (0, 0));
}
