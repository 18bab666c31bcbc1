//! The cache against the field, in one process, on one ~200-byte row type.
//!
//! ```text
//! DATABASE_URL_PG=postgres://postgres@127.0.0.1:5432/test \
//! DATABASE_URL_MYSQL=mysql://root@127.0.0.1:3306/test \
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --release --example bench --features bench
//! ```
//!
//! Measures a `#[cached]` hit and a `Cache::get_or_load` hit on the in-memory store; the
//! same hit in quick_cache, moka, cached, cache-kit and hydracache; the same primary-key
//! query uncached through SQLx on SQLite, PostgreSQL and MariaDB; a Redis-backed hit against
//! a raw `GET`; hit throughput on 1 and 2 threads; invalidation cost by tracked keys; and
//! memory per entry. A server whose URL is unset is skipped with a note.
//!
//! Every figure is the median of [`SAMPLES`] samples; the samples of one group are taken
//! in interleaved rounds (one sample of each case per round), so that load drifting on a
//! shared machine hits every case alike. Writes `examples/bench/REPORT.md` and
//! `examples/bench/chart.svg`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use cache_redis::{RedisBackend, RedisOptions};
use cache_runtime::backend::Backend;
use cache_runtime::{Cache, KeyScope, Settings, Ttl};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

// ----- allocation counting -----

/// The system allocator, counting live heap bytes: the memory-per-entry figures.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Counting is off except around the memory measurements: a shared counter bumped on every
/// allocation would otherwise tax (and serialize) the allocating subjects.
static COUNTING: AtomicBool = AtomicBool::new(false);

fn count(delta: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE.fetch_add(delta, Ordering::Relaxed);
    }
}

// SAFETY: every call forwards to `System` with the caller's layout; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

// ----- the row -----

/// A typical ~200-byte row, as in `cache-runtime/benches/runtime.rs` (rmp-serde with field
/// names, `to_vec_named`: 223 bytes; the run prints the figure).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Row {
    id: i64,
    name: String,
    email: String,
    bio: String,
    created_at: i64,
    score: f64,
    active: bool,
}

const NAME: &str = "Ada Lovelace";
const EMAIL: &str = "ada.lovelace@analytical.engine";
const BIO: &str = "Wrote the first algorithm intended for a machine; translated and annotated \
                   Menabrea's memoir on the Analytical Engine.";

fn row(id: i64) -> Row {
    Row {
        id,
        name: NAME.into(),
        email: EMAIL.into(),
        bio: BIO.into(),
        created_at: 1_700_000_000,
        score: 97.5,
        active: true,
    }
}

/// What one `Row` costs on its own: inline size plus its strings' heap.
fn row_payload_bytes(r: &Row) -> usize {
    size_of::<Row>() + r.name.capacity() + r.email.capacity() + r.bio.capacity()
}

/// The id every hit reads.
const ID: i64 = 42;

// ----- the subjects: this crate -----

mod subject {
    use std::convert::Infallible;
    use std::sync::Arc;

    use cache_runtime::{Cache, cached};

    use super::{Row, row};

    /// The macro path, shared value.
    #[cached(table = "rows", ttl = true)]
    pub async fn find_row_arc(cache: &Cache, id: i64) -> Result<Arc<Row>, Infallible> {
        Ok(Arc::new(row(id)))
    }

    /// The macro path, owned value (each hit clones the row).
    #[cached(table = "rows", ttl = true)]
    pub async fn find_row_owned(cache: &Cache, id: i64) -> Option<Row> {
        Some(row(id))
    }
}

static FIND: KeyScope = KeyScope::new("bench::find_row");

async fn get_or_load_arc(cache: &Cache, id: i64, value: &Arc<Row>) -> Arc<Row> {
    let key = cache.key(&FIND, &id).expect("i64 serializes");
    let loaded = cache
        .get_or_load(key, &["rows"], Ttl::Forever, || async {
            Ok::<_, Infallible>(value.clone())
        })
        .await;
    match loaded {
        Ok(v) => v,
    }
}

// ----- the subjects: the peers -----

mod peers {
    use std::fmt;
    use std::sync::Arc;

    use super::{Row, row};

    /// The `cached` crate's async `#[cached]`: a global store behind an async lock.
    #[::cached::proc_macro::cached(max_size = 10_000)]
    pub async fn cached_find(id: i64) -> Arc<Row> {
        Arc::new(row(id))
    }

    #[derive(Debug)]
    pub struct LoadError;

    impl fmt::Display for LoadError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("load failed")
        }
    }

    impl std::error::Error for LoadError {}

    /// hydracache's `#[cacheable]`: the cache is an explicit argument.
    #[hydracache::cacheable(
        cache = cache,
        key_segments = ["row", id],
        tag_segments = [["rows"]],
        ttl_secs = 3600
    )]
    pub async fn hydra_find(cache: &hydracache::HydraCache, id: i64) -> Result<Row, LoadError> {
        Ok(row(id))
    }

    impl cache_kit::CacheEntity for Row {
        type Key = i64;
        fn cache_key(&self) -> i64 {
            self.id
        }
        fn cache_prefix() -> &'static str {
            "row"
        }
    }

    /// cache-kit's feeder: the read's key in, the row out.
    pub struct Feeder {
        pub id: i64,
        pub row: Option<Row>,
    }

    impl cache_kit::CacheFeed<Row> for Feeder {
        fn entity_id(&mut self) -> i64 {
            self.id
        }
        fn feed(&mut self, entity: Option<Row>) {
            self.row = entity;
        }
    }

    pub struct Repo;

    impl cache_kit::DataRepository<Row> for Repo {
        async fn fetch_by_id(&self, id: &i64) -> cache_kit::Result<Option<Row>> {
            Ok(Some(row(*id)))
        }
    }
}

// ----- measurement -----

/// Samples per case; the median is reported.
const SAMPLES: usize = 11;

/// One case: runs `iters` operations and returns how long they took.
type Run<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;

struct Case<'a> {
    name: String,
    run: Run<'a>,
}

impl<'a> Case<'a> {
    fn new(name: impl Into<String>, run: impl FnMut(u64) -> Duration + 'a) -> Case<'a> {
        Case {
            name: name.into(),
            run: Box::new(run),
        }
    }
}

/// A case's result: the median time per operation and the spread of the samples.
struct Measured {
    name: String,
    median_ns: f64,
    min_ns: f64,
    max_ns: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Calibrates each case to about `target` per sample, then takes [`SAMPLES`] samples of
/// every case in interleaved rounds.
fn measure(cases: &mut [Case<'_>], target: Duration) -> Vec<Measured> {
    let mut iters = Vec::new();
    for case in cases.iter_mut() {
        // Warm up, then grow the batch until it takes a tenth of the target.
        (case.run)(1);
        let mut n = 1_u64;
        loop {
            let took = (case.run)(n);
            if took >= target / 10 || n >= 1 << 30 {
                let per = took.as_secs_f64() / n as f64;
                iters.push(((target.as_secs_f64() / per.max(1e-10)) as u64).clamp(1, 1 << 32));
                break;
            }
            n *= 4;
        }
    }
    let mut samples = vec![Vec::with_capacity(SAMPLES); cases.len()];
    for _ in 0..SAMPLES {
        for (i, case) in cases.iter_mut().enumerate() {
            let took = (case.run)(iters[i]);
            samples[i].push(took.as_secs_f64() * 1e9 / iters[i] as f64);
        }
    }
    cases
        .iter()
        .zip(samples)
        .map(|(case, mut s)| {
            let m = median(&mut s);
            Measured {
                name: case.name.clone(),
                median_ns: m,
                min_ns: s[0],
                max_ns: s[s.len() - 1],
            }
        })
        .collect()
}

/// Times `iters` awaits of `op` inside one `block_on`, so every async subject pays the
/// same executor cost (once per batch, not per operation).
fn timed_async<'a, F, Fut>(rt: &'a Runtime, op: F) -> impl FnMut(u64) -> Duration + 'a
where
    F: Fn() -> Fut + 'a,
    Fut: Future,
{
    move |iters| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(op().await);
            }
            start.elapsed()
        })
    }
}

// ----- groups -----

fn in_process(rt: &Runtime) -> Vec<Measured> {
    let shared = Arc::new(row(ID));

    let qc: quick_cache::sync::Cache<i64, Arc<Row>> = quick_cache::sync::Cache::new(10_000);
    qc.insert(ID, shared.clone());

    let cache = Cache::new(Settings::default()).expect("valid settings");
    let direct = Cache::new(Settings::default()).expect("valid settings");
    let moka: moka::future::Cache<i64, Arc<Row>> = moka::future::Cache::new(10_000);
    let kit = cache_kit::CacheService::new(cache_kit::backend::InMemoryBackend::new());
    let hydra = hydracache::HydraCache::local().build();
    rt.block_on(async {
        subject::find_row_arc(&cache, ID).await.expect("infallible");
        subject::find_row_owned(&cache, ID).await.expect("a row");
        get_or_load_arc(&direct, ID, &shared).await;
        moka.insert(ID, shared.clone()).await;
        peers::cached_find(ID).await;
        let mut feeder = peers::Feeder { id: ID, row: None };
        kit.execute(&mut feeder, &peers::Repo, cache_kit::CacheStrategy::Refresh)
            .await
            .expect("cache-kit load");
        assert_eq!(feeder.row, Some(row(ID)));
        peers::hydra_find(&hydra, ID)
            .await
            .expect("hydracache load");
    });
    let before = cache.stats();

    let mut cases = vec![
        Case::new("quick_cache get + Arc clone (baseline)", |iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(qc.get(black_box(&ID)));
            }
            start.elapsed()
        }),
        Case::new(
            "#[cached] hit, Result<Arc<Row>, _>",
            timed_async(rt, || subject::find_row_arc(&cache, black_box(ID))),
        ),
        Case::new(
            "#[cached] hit, Option<Row> (owned clone)",
            timed_async(rt, || subject::find_row_owned(&cache, black_box(ID))),
        ),
        Case::new(
            "Cache::get_or_load hit (no macro)",
            timed_async(rt, || get_or_load_arc(&direct, black_box(ID), &shared)),
        ),
        Case::new(
            "moka future::Cache get",
            timed_async(rt, || moka.get(black_box(&ID))),
        ),
        Case::new(
            "cached async #[cached] hit",
            timed_async(rt, || peers::cached_find(black_box(ID))),
        ),
        Case::new(
            "cache-kit CacheService hit (in-memory)",
            timed_async(rt, || async {
                let mut feeder = peers::Feeder {
                    id: black_box(ID),
                    row: None,
                };
                kit.execute(&mut feeder, &peers::Repo, cache_kit::CacheStrategy::Refresh)
                    .await
                    .expect("cache-kit hit");
                feeder.row
            }),
        ),
        Case::new(
            "hydracache #[cacheable] hit",
            timed_async(rt, || async {
                peers::hydra_find(&hydra, black_box(ID))
                    .await
                    .expect("hydracache hit")
            }),
        ),
    ];
    let out = measure(&mut cases, Duration::from_millis(20));
    drop(cases);
    let after = cache.stats();
    assert_eq!(after.misses, before.misses, "every macro read was a hit");
    out
}

/// The primary-key read of one row, per server: `(label, result)`.
fn queries(rt: &Runtime, notes: &mut Vec<String>) -> Vec<Measured> {
    use sqlx::{AssertSqlSafe, MySqlPool, PgPool, SqlitePool};

    type Tuple = (i64, String, String, String, i64, f64, bool);
    fn to_row(t: Tuple) -> Row {
        Row {
            id: t.0,
            name: t.1,
            email: t.2,
            bio: t.3,
            created_at: t.4,
            score: t.5,
            active: t.6,
        }
    }
    let table = format!("bench_rows_{}", cache_suite::unique_suffix());
    let select = |p: &str| {
        AssertSqlSafe(format!(
            "SELECT id, name, email, bio, created_at, score, active FROM {table} WHERE id = {p}"
        ))
    };
    let create = |int: &str, real: &str, boolean: &str| {
        AssertSqlSafe(format!(
            "CREATE TABLE {table} (id {int} PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, \
             bio TEXT NOT NULL, created_at {int} NOT NULL, score {real} NOT NULL, \
             active {boolean} NOT NULL)"
        ))
    };
    let insert = |p: [&str; 7]| {
        AssertSqlSafe(format!(
            "INSERT INTO {table} (id, name, email, bio, created_at, score, active) \
             VALUES ({})",
            p.join(", ")
        ))
    };
    let drop_table = AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}"));
    const ROWS: i64 = 1_000;

    // SQLite: embedded, always measured (a WAL file in the temp dir).
    let (sqlite, _guard) = rt.block_on(cache_suite::sqlite(1));
    rt.block_on(async {
        sqlx::query(create("INTEGER", "REAL", "BOOLEAN"))
            .execute(&sqlite)
            .await
            .expect("create");
        for id in 0..ROWS {
            let r = row(id);
            sqlx::query(insert(["?"; 7]))
                .bind(r.id)
                .bind(r.name)
                .bind(r.email)
                .bind(r.bio)
                .bind(r.created_at)
                .bind(r.score)
                .bind(r.active)
                .execute(&sqlite)
                .await
                .expect("insert");
        }
    });
    let server = |var: &str, notes: &mut Vec<String>| match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let note = format!("skipped: {var} not set");
            println!("{note}");
            notes.push(note);
            None
        }
    };

    let pg: Option<PgPool> = server(cache_suite::PG, notes).map(|url| {
        rt.block_on(async {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .unwrap_or_else(|e| panic!("{url} is set but cannot be reached: {e}"));
            sqlx::query(create("BIGINT", "DOUBLE PRECISION", "BOOLEAN"))
                .execute(&pool)
                .await
                .expect("create");
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {table} SELECT g, $1, $2, $3, 1700000000, 97.5, TRUE \
                 FROM generate_series(0, {}) g",
                ROWS - 1
            )))
            .bind(NAME)
            .bind(EMAIL)
            .bind(BIO)
            .execute(&pool)
            .await
            .expect("insert");
            sqlx::query("ANALYZE").execute(&pool).await.ok();
            pool
        })
    });
    let mysql: Option<MySqlPool> = server(cache_suite::MYSQL, notes).map(|url| {
        rt.block_on(async {
            let pool = sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .unwrap_or_else(|e| panic!("{url} is set but cannot be reached: {e}"));
            sqlx::query(create("BIGINT", "DOUBLE", "BOOLEAN"))
                .execute(&pool)
                .await
                .expect("create");
            for id in 0..ROWS {
                let r = row(id);
                sqlx::query(insert(["?"; 7]))
                    .bind(r.id)
                    .bind(r.name)
                    .bind(r.email)
                    .bind(r.bio)
                    .bind(r.created_at)
                    .bind(r.score)
                    .bind(r.active)
                    .execute(&pool)
                    .await
                    .expect("insert");
            }
            pool
        })
    });
    let mut cases: Vec<Case<'_>> = Vec::new();
    let mut cleanup: Vec<Box<dyn FnOnce()>> = Vec::new();
    // The same primary-key read on each database: the pools are of different types.
    macro_rules! by_primary_key {
        ($name:expr, $pool:expr, $placeholder:expr) => {{
            let (pool, sql) = ($pool, select($placeholder));
            Case::new(
                $name,
                timed_async(rt, move || {
                    let sql = AssertSqlSafe(sql.0.clone());
                    async move {
                        let t: Tuple = sqlx::query_as(sql)
                            .bind(black_box(ID))
                            .fetch_one(pool)
                            .await
                            .expect("select");
                        to_row(t)
                    }
                }),
            )
        }};
    }
    let sqlite_ref: &SqlitePool = &sqlite;
    cases.push(by_primary_key!(
        "sqlx SQLite query by primary key",
        sqlite_ref,
        "?"
    ));

    if let Some(pool) = &pg {
        cases.push(by_primary_key!(
            "sqlx PostgreSQL query by primary key",
            pool,
            "$1"
        ));
        let (pool, drop_table) = (pool.clone(), AssertSqlSafe(drop_table.0.clone()));
        cleanup.push(Box::new(move || {
            rt.block_on(sqlx::query(drop_table).execute(&pool)).ok();
        }));
    }
    if let Some(pool) = &mysql {
        cases.push(by_primary_key!(
            "sqlx MariaDB query by primary key",
            pool,
            "?"
        ));
        let (pool, drop_table) = (pool.clone(), AssertSqlSafe(drop_table.0.clone()));
        cleanup.push(Box::new(move || {
            rt.block_on(sqlx::query(drop_table).execute(&pool)).ok();
        }));
    }
    let out = measure(&mut cases, Duration::from_millis(60));
    drop(cases);
    for c in cleanup {
        c();
    }
    out
}

/// A hit through the Redis backend against a raw redis-rs `GET` of the same bytes.
fn redis(rt: &Runtime, notes: &mut Vec<String>) -> Vec<Measured> {
    let Some(url) = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()) else {
        let note = "skipped: REDIS_URL not set".to_owned();
        println!("{note}");
        notes.push(note);
        return Vec::new();
    };
    let namespace = format!("bench-{}", cache_suite::unique_suffix());
    let settings = Settings {
        namespace: namespace.clone(),
        ..Settings::default()
    };
    let (cache, backend, remote, mut manager) = rt.block_on(async {
        let backend = RedisBackend::connect(&url, RedisOptions::default())
            .await
            .unwrap_or_else(|e| panic!("REDIS_URL is set but {url} cannot be reached: {e}"));
        let cache = Cache::with_shared_backend(settings, backend.clone()).expect("valid settings");
        let key = cache.key(&FIND, &ID).expect("key");
        let first: Result<Row, Infallible> = cache
            .get_or_load(key, &["rows"], Ttl::Forever, || async { Ok(row(ID)) })
            .await;
        first.expect("infallible");
        let remote = format!("{namespace}:{key}");
        let client = redis::Client::open(url.as_str()).expect("valid URL");
        let manager = redis::aio::ConnectionManager::new(client)
            .await
            .expect("connection");
        (cache, backend, remote, manager)
    });
    let bytes = rt
        .block_on(backend.get(&remote))
        .expect("GET")
        .expect("the entry was stored");
    println!("redis entry: {} bytes", bytes.len());
    // A near cache over the same server: the entry copied in process. Its push subscription
    // runs on a runtime of its own, so it stays live between samples.
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
    rt.block_on(async {
        while near.entry_count() != Some(1) {
            let key = near.key(&FIND, &ID).expect("key");
            let found: Result<Row, Infallible> = near
                .get_or_load(key, &["rows"], Ttl::Forever, || async { Ok(row(ID)) })
                .await;
            found.expect("infallible");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let before = cache.stats();
    let mut cases = vec![
        Case::new(
            "near cache hit (in-process copy of the Redis entry)",
            timed_async(rt, || async {
                let key = near.key(&FIND, &black_box(ID)).expect("key");
                let found: Result<Row, Infallible> = near
                    .get_or_load(key, &["rows"], Ttl::Forever, || async { Ok(row(0)) })
                    .await;
                found
            }),
        ),
        Case::new(
            "Redis backend hit (one MGET + decode)",
            timed_async(rt, || async {
                let key = cache.key(&FIND, &black_box(ID)).expect("key");
                let found: Result<Row, Infallible> = cache
                    .get_or_load(key, &["rows"], Ttl::Forever, || async { Ok(row(0)) })
                    .await;
                found
            }),
        ),
        Case::new("redis-rs raw GET of the same bytes", {
            let remote = remote.clone();
            move |iters| {
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
            }
        }),
    ];
    let out = measure(&mut cases, Duration::from_millis(60));
    drop(cases);
    assert_eq!(
        cache.stats().misses,
        before.misses,
        "every Redis read was a hit"
    );
    rt.block_on(backend.clear_prefix(&format!("{namespace}:")))
        .expect("clean up");
    out
}

fn thousands(n: i64) -> String {
    match n {
        n if n >= 1_000 => format!("{},{:03}", n / 1_000, n % 1_000),
        n => n.to_string(),
    }
}

/// Invalidation on the writer's path: one `invalidate` of a table tracking `n` keys.
fn invalidation(rt: &Runtime) -> Vec<Measured> {
    const SIZES: [i64; 3] = [100, 1_000, 10_000];
    let mut samples = vec![Vec::new(); SIZES.len()];
    let shared = Arc::new(row(ID));
    // Single operations of a few hundred ns: many samples, interleaved by size.
    for _ in 0..(SAMPLES * 3) {
        for (i, &n) in SIZES.iter().enumerate() {
            let cache = Cache::new(Settings {
                max_keys_per_table: 20_000,
                ..Settings::default()
            })
            .expect("valid settings");
            rt.block_on(async {
                for id in 0..n {
                    get_or_load_arc(&cache, id, &shared).await;
                }
            });
            assert_eq!(cache.tracked_keys("rows"), n as usize);
            let took = rt.block_on(async {
                let start = Instant::now();
                cache.invalidate(black_box(&["rows"])).await;
                start.elapsed()
            });
            samples[i].push(took.as_secs_f64() * 1e9);
            // Dropped (with its swept keys) outside the measurement.
            drop(cache);
        }
    }
    SIZES
        .iter()
        .zip(samples)
        .map(|(n, mut s)| {
            let m = median(&mut s);
            Measured {
                name: format!("invalidate, {} tracked keys", thousands(*n)),
                median_ns: m,
                min_ns: s[0],
                max_ns: s[s.len() - 1],
            }
        })
        .collect()
}

/// Polls a future that completes without waiting (every in-memory hit does) to completion,
/// so threads need no executor.
fn ready<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// Hit throughput on 1 and 2 threads, for one key pattern.
struct Throughput {
    name: String,
    one: f64,
    two: f64,
}

/// Which key thread `t` reads on its `n`th operation.
type KeyOf = fn(usize, u64) -> i64;

/// Total operations per second with `threads` OS threads running `op(key_of(thread, n))`.
fn throughput(threads: usize, key_of: KeyOf, op: &(dyn Fn(i64) + Sync)) -> f64 {
    const RUN: Duration = Duration::from_millis(100);
    let stop = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    let barrier = Barrier::new(threads + 1);
    let start = std::thread::scope(|s| {
        for t in 0..threads {
            let (stop, total, barrier) = (&stop, &total, &barrier);
            s.spawn(move || {
                barrier.wait();
                let mut n = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..64 {
                        op(key_of(t, n));
                        n += 1;
                    }
                }
                total.fetch_add(n, Ordering::Relaxed);
            });
        }
        barrier.wait();
        let start = Instant::now();
        std::thread::sleep(RUN);
        stop.store(true, Ordering::Relaxed);
        start
    });
    // The threads stop within one batch of 64 after `stop`: count from the start to when
    // they were all joined.
    total.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn scaling(rt: &Runtime) -> Vec<Throughput> {
    const KEYS: u64 = 1_000;
    let variants: [(&str, KeyOf); 3] = [
        ("distinct keys (1,000 per thread)", |t, n| {
            (t as u64 * KEYS + n % KEYS) as i64
        }),
        ("overlapping keys (the same 1,000)", |_, n| {
            (n % KEYS) as i64
        }),
        ("one hot key", |_, _| ID),
    ];
    let cache = Cache::new(Settings::default()).expect("valid settings");
    let qc: quick_cache::sync::Cache<i64, Arc<Row>> = quick_cache::sync::Cache::new(10_000);
    rt.block_on(async {
        // Each entry its own row, as with real query results: no shared reference count.
        for id in 0..(2 * KEYS as i64) {
            let value = Arc::new(row(id));
            qc.insert(id, value.clone());
            get_or_load_arc(&cache, id, &value).await;
        }
    });
    let misses = cache.stats().misses;
    let mut out = Vec::new();
    // Only ever loaded on a miss, which the prefill rules out.
    let unused = Arc::new(row(ID));
    let cached_hit = |id: i64| {
        black_box(ready(get_or_load_arc(&cache, black_box(id), &unused)));
    };
    let qc_hit = |id: i64| {
        black_box(qc.get(&black_box(id)));
    };
    // No shared memory at all: what this machine's two cores give when nothing is shared.
    let control = |id: i64| {
        let mut x = black_box(id as u64) | 1;
        for _ in 0..16 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        black_box(x);
    };
    {
        let (mut one, mut two) = (Vec::new(), Vec::new());
        for _ in 0..SAMPLES {
            one.push(throughput(1, |_, n| n as i64, &control));
            two.push(throughput(2, |_, n| n as i64, &control));
        }
        out.push(Throughput {
            name: "control: arithmetic only, nothing shared".to_owned(),
            one: median(&mut one),
            two: median(&mut two),
        });
    }
    for (name, key_of) in variants {
        let (mut one, mut two, mut qc_one, mut qc_two) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..SAMPLES {
            one.push(throughput(1, key_of, &cached_hit));
            two.push(throughput(2, key_of, &cached_hit));
            qc_one.push(throughput(1, key_of, &qc_hit));
            qc_two.push(throughput(2, key_of, &qc_hit));
        }
        out.push(Throughput {
            name: format!("get_or_load, {name}"),
            one: median(&mut one),
            two: median(&mut two),
        });
        out.push(Throughput {
            name: format!("quick_cache (baseline), {name}"),
            one: median(&mut qc_one),
            two: median(&mut qc_two),
        });
    }
    assert_eq!(
        cache.stats().misses,
        misses,
        "every threaded read was a hit"
    );
    out
}

/// Heap bytes per cached entry beyond the row itself.
struct Memory {
    name: &'static str,
    per_entry: f64,
    overhead: f64,
}

fn memory(rt: &Runtime) -> Vec<Memory> {
    const N: i64 = 50_000;
    COUNTING.store(true, Ordering::SeqCst);
    let payload = row_payload_bytes(&row(0)) as f64;
    let mut out = Vec::new();
    let mut record = |name, bytes: isize| {
        let per_entry = bytes as f64 / N as f64;
        out.push(Memory {
            name,
            per_entry,
            overhead: per_entry - payload,
        });
    };

    // Build each store empty first, so only what the entries add is counted.
    let settings = Settings {
        max_entries: 2 * N as usize,
        max_keys_per_table: 2 * N as usize,
        ..Settings::default()
    };
    let cache = Cache::new(settings.clone()).expect("valid settings");
    let start = live_bytes();
    rt.block_on(async {
        for id in 0..N {
            let found: Result<Row, Infallible> = cache
                .get_or_load(
                    cache.key(&FIND, &id).expect("key"),
                    &["rows"],
                    Ttl::Forever,
                    || async move { Ok(row(id)) },
                )
                .await;
            drop(found);
        }
    });
    record("cache-runtime, owned Row values", live_bytes() - start);
    drop(cache);

    let cache = Cache::new(settings).expect("valid settings");
    let start = live_bytes();
    rt.block_on(async {
        for id in 0..N {
            let value = Arc::new(row(id));
            get_or_load_arc(&cache, id, &value).await;
        }
    });
    record("cache-runtime, Arc<Row> values", live_bytes() - start);
    drop(cache);

    let qc: quick_cache::sync::Cache<i64, Arc<Row>> = quick_cache::sync::Cache::new(2 * N as usize);
    let start = live_bytes();
    for id in 0..N {
        qc.insert(id, Arc::new(row(id)));
    }
    record("quick_cache<i64, Arc<Row>>", live_bytes() - start);
    drop(qc);

    let moka: moka::future::Cache<i64, Arc<Row>> = moka::future::Cache::new(2 * N as u64);
    let start = live_bytes();
    rt.block_on(async {
        for id in 0..N {
            moka.insert(id, Arc::new(row(id))).await;
        }
        moka.run_pending_tasks().await;
    });
    record("moka future::Cache<i64, Arc<Row>>", live_bytes() - start);
    drop(moka);
    COUNTING.store(false, Ordering::SeqCst);
    out
}

// ----- the report -----

struct Report {
    latency: Vec<Measured>,
    redis: Vec<Measured>,
    invalidation: Vec<Measured>,
    scaling: Vec<Throughput>,
    memory: Vec<Memory>,
    notes: Vec<String>,
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// A case name for a Markdown table: `<` and `>` escaped, or `Option<Row>` would render as
/// an HTML tag.
fn md(name: &str) -> String {
    name.replace('<', "&lt;").replace('>', "&gt;")
}

fn fmt_ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}×")
    } else if r >= 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    }
}

impl Report {
    fn find(&self, prefix: &str) -> Option<&Measured> {
        self.latency
            .iter()
            .chain(&self.redis)
            .chain(&self.invalidation)
            .find(|m| m.name.starts_with(prefix))
    }

    fn markdown(&self) -> String {
        let qc = self.find("quick_cache").expect("measured").median_ns;
        let pg = self.find("sqlx PostgreSQL").map(|m| m.median_ns);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| case | median | vs quick_cache | PostgreSQL query / case |\n|---|---:|---:|---:|"
        );
        for m in self
            .latency
            .iter()
            .chain(&self.redis)
            .chain(&self.invalidation)
        {
            let vs_pg = pg.map_or("n/a".to_owned(), |pg| fmt_ratio(pg / m.median_ns));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                md(&m.name),
                fmt_ns(m.median_ns),
                fmt_ratio(m.median_ns / qc),
                vs_pg
            );
        }
        let _ = writeln!(
            s,
            "\n| hit throughput, shared `Cache` | 1 thread | 2 threads | scaling |\n|---|---:|---:|---:|"
        );
        for t in &self.scaling {
            let _ = writeln!(
                s,
                "| {} | {:.2} M/s | {:.2} M/s | {:.2}× |",
                t.name,
                t.one / 1e6,
                t.two / 1e6,
                t.two / t.one
            );
        }
        let _ = writeln!(
            s,
            "\n| memory per entry (50,000 entries) | heap per entry | beyond the row's own {} B |\n|---|---:|---:|",
            row_payload_bytes(&row(0))
        );
        for m in &self.memory {
            let _ = writeln!(
                s,
                "| {} | {:.0} B | {:.0} B |",
                md(m.name),
                m.per_entry,
                m.overhead
            );
        }
        if !self.notes.is_empty() {
            let _ = writeln!(s, "\n{}", self.notes.join("; "));
        }
        s
    }

    fn goals(&self) -> Vec<(String, bool)> {
        let get = |p: &str| self.find(p).map(|m| m.median_ns);
        let qc = get("quick_cache").expect("measured");
        let hit = get("#[cached] hit, Result<Arc").expect("measured");
        let mut goals = vec![(
            format!("macro hit <= 1.5x quick_cache: {:.2}x", hit / qc),
            hit <= 1.5 * qc,
        )];
        for peer in ["moka", "cached async", "cache-kit", "hydracache"] {
            if let Some(p) = get(peer) {
                goals.push((
                    format!(
                        "macro hit faster than {peer}: {} vs {}",
                        fmt_ns(hit),
                        fmt_ns(p)
                    ),
                    hit < p,
                ));
            }
        }
        if let Some(pg) = get("sqlx PostgreSQL") {
            goals.push((
                format!(">= 500x faster than the PostgreSQL query: {:.0}x", pg / hit),
                pg / hit >= 500.0,
            ));
        }
        for t in self
            .scaling
            .iter()
            .filter(|t| t.name.starts_with("get_or_load"))
        {
            goals.push((
                format!(
                    "2 threads >= 1.7x 1 thread, {}: {:.2}x",
                    t.name,
                    t.two / t.one
                ),
                t.two / t.one >= 1.7,
            ));
        }
        if let (Some(small), Some(large)) = (
            self.invalidation.first().map(|m| m.median_ns),
            self.invalidation.last().map(|m| m.median_ns),
        ) {
            goals.push((
                format!(
                    "invalidation flat within 2x from 100 to 10,000 keys: {:.2}x",
                    large / small
                ),
                large <= 2.0 * small,
            ));
        }
        for m in self
            .memory
            .iter()
            .filter(|m| m.name.starts_with("cache-runtime"))
        {
            goals.push((
                format!(
                    "<= 200 B overhead per entry, {}: {:.0} B",
                    m.name, m.overhead
                ),
                m.overhead <= 200.0,
            ));
        }
        goals
    }

    fn chart(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        use plotters::prelude::*;

        let bars: Vec<&Measured> = self
            .latency
            .iter()
            .chain(&self.redis)
            .chain(&self.invalidation)
            .collect();
        let n = bars.len();
        let height = 120 + 34 * n as u32;
        let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let max = bars.iter().map(|m| m.median_ns).fold(1.0, f64::max) * 4.0;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Median latency per operation (log scale, lower is better)",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(330)
            .build_cartesian_2d((1.0..max).log_scale(), -0.5..(n as f64 - 0.5))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|y| {
                let i = y.round();
                if (y - i).abs() < 0.01 && i >= 0.0 && (i as usize) < n {
                    bars[n - 1 - i as usize].name.clone()
                } else {
                    String::new()
                }
            })
            .x_desc("ns per operation")
            .x_label_formatter(&|x| fmt_ns(*x))
            .label_style(("sans-serif", 13))
            .draw()?;
        chart.draw_series(bars.iter().enumerate().map(|(i, m)| {
            let y = (n - 1 - i) as f64;
            let color = if m.name.starts_with('#') || m.name.starts_with("Cache::") {
                RGBColor(214, 96, 36)
            } else if m.name.starts_with("quick_cache") {
                RGBColor(70, 70, 70)
            } else if m.name.starts_with("sqlx")
                || m.name.contains("Redis")
                || m.name.contains("redis")
            {
                RGBColor(60, 110, 180)
            } else if m.name.starts_with("invalidate") {
                RGBColor(120, 160, 60)
            } else {
                RGBColor(150, 150, 150)
            };
            Rectangle::new([(1.0, y - 0.35), (m.median_ns, y + 0.35)], color.filled())
        }))?;
        chart.draw_series(bars.iter().enumerate().map(|(i, m)| {
            let y = (n - 1 - i) as f64;
            Text::new(
                fmt_ns(m.median_ns),
                (m.median_ns * 1.1, y + 0.2),
                ("sans-serif", 12).into_font(),
            )
        }))?;
        root.present()?;
        Ok(())
    }
}

/// `BENCH_PROFILE=hit`: only a million `#[cached]` hits and as many quick_cache gets, for
/// `valgrind --tool=callgrind target/release/examples/bench`.
fn profile(rt: &Runtime) {
    let cache = Cache::new(Settings::default()).expect("valid settings");
    let qc: quick_cache::sync::Cache<i64, Arc<Row>> = quick_cache::sync::Cache::new(10_000);
    qc.insert(ID, Arc::new(row(ID)));
    rt.block_on(async {
        for _ in 0..1_000_000 {
            black_box(subject::find_row_arc(&cache, black_box(ID)).await.ok());
        }
    });
    for _ in 0..1_000_000 {
        black_box(qc.get(black_box(&ID)));
    }
}

fn main() {
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    if std::env::var("BENCH_PROFILE").is_ok_and(|p| p == "hit") {
        profile(&rt);
        return;
    }
    let encoded = rmp_serde::to_vec_named(&row(ID)).expect("encodes");
    println!(
        "row: {} bytes as rmp-serde with names, {} B inline + heap; a `Key` is {} B inline; \
         {} samples per case, median reported",
        encoded.len(),
        row_payload_bytes(&row(ID)),
        size_of::<cache_runtime::Key>(),
        SAMPLES
    );
    let mut notes = Vec::new();

    println!("in-process hits ...");
    let mut latency = in_process(&rt);
    println!("uncached queries ...");
    latency.extend(queries(&rt, &mut notes));
    println!("redis ...");
    let redis = redis(&rt, &mut notes);
    println!("invalidation ...");
    let invalidation = invalidation(&rt);
    println!("threads ...");
    let scaling = scaling(&rt);
    println!("memory ...");
    let memory = memory(&rt);

    let report = Report {
        latency,
        redis,
        invalidation,
        scaling,
        memory,
        notes,
    };
    println!("\nspread of the samples (min .. median .. max):");
    for m in report
        .latency
        .iter()
        .chain(&report.redis)
        .chain(&report.invalidation)
    {
        println!(
            "  {:<48} {:>10} .. {:>10} .. {:>10}",
            m.name,
            fmt_ns(m.min_ns),
            fmt_ns(m.median_ns),
            fmt_ns(m.max_ns)
        );
    }
    let table = report.markdown();
    println!("\n<!-- BENCH_TABLE begin -->\n{table}<!-- BENCH_TABLE end -->\n");
    println!("goals:");
    let goals = report.goals();
    for (goal, met) in &goals {
        println!("  [{}] {goal}", if *met { "met" } else { "MISSED" });
    }

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bench");
    std::fs::create_dir_all(&dir).expect("create examples/bench");
    let mut doc = format!(
        "# Benchmark report\n\nGenerated by `cargo run --release --example bench --features bench` \
         (see `examples/bench.rs`). Medians of interleaved samples, one process, one ~200-byte \
         row ({} bytes as rmp-serde with field names). The last column is how many times \
         faster than the uncached PostgreSQL query the case is.\n\n",
        encoded.len()
    );
    doc.push_str(&table);
    doc.push_str("\n## Goals\n\n");
    for (goal, met) in &goals {
        let _ = writeln!(
            doc,
            "- {} {}",
            if *met { "met:" } else { "**missed**:" },
            md(goal)
        );
    }
    let _ = writeln!(doc, "\n![chart](chart.svg)");
    // The report's history (earlier runs, before/after tables) is written by hand below a
    // marker and kept from one run to the next.
    const HISTORY: &str = "\n## History\n";
    if let Ok(previous) = std::fs::read_to_string(dir.join("REPORT.md"))
        && let Some(at) = previous.find(HISTORY)
    {
        doc.push_str(&previous[at..]);
    }
    std::fs::write(dir.join("REPORT.md"), doc).expect("write REPORT.md");
    if let Err(e) = report.chart(&dir.join("chart.svg")) {
        eprintln!("chart not written: {e}");
    }
    println!(
        "wrote examples/bench/REPORT.md and examples/bench/chart.svg in {:.0?}",
        started.elapsed()
    );
}
