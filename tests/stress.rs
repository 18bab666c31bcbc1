//! Freshness under load on PostgreSQL (`DATABASE_URL_PG`): writers bump counters through
//! `#[invalidates]` functions (autocommit, and inside the cache's `Transaction`, committed),
//! readers read them through a `#[cached]` function, for a few seconds, with the freshness
//! sampler re-checking one hit in ten.
//!
//! A writer publishes the counter it wrote once its write (or COMMIT) has returned; a reader
//! notes the published value before it starts, so a read returning less is a stale read: it
//! started after a completed write and did not see it. There must be none.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, Settings, Transaction, cached, invalidates};
use cache_suite::{Dialect, Names, guarded};
use sqlx::{PgPool, Postgres};

const WRITERS: usize = 8;
const READERS: usize = 16;
const ROWS: usize = 3;
const DURATION: Duration = Duration::from_secs(4);

/// `ttl = true`: only invalidation can make a read fresh.
#[cached(table = "users", ttl = true)]
async fn read_counter(pool: &PgPool, cache: &Cache, t: &Names, id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(t.sql("SELECT counter FROM {users} WHERE id = ?"))
        .bind(id)
        .fetch_one(pool)
        .await
}

#[invalidates(tables = ["users"])]
async fn bump(pool: &PgPool, cache: &Cache, t: &Names, id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        t.sql("UPDATE {users} SET counter = counter + 1 WHERE id = ? RETURNING counter"),
    )
    .bind(id)
    .fetch_one(pool)
    .await
}

#[invalidates(tables = ["users"])]
async fn bump_in(tx: &mut Transaction<'_, Postgres>, t: &Names, id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        t.sql("UPDATE {users} SET counter = counter + 1 WHERE id = ? RETURNING counter"),
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await
}

#[derive(Default)]
struct Tally {
    /// Per row: the highest counter whose write has completed.
    completed: [AtomicU64; ROWS],
    writes: AtomicU64,
    reads: AtomicU64,
    stale: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_stale_read_under_concurrent_writes() {
    let Some(pool) = cache_suite::connect::<Postgres>(cache_suite::PG, 16).await else {
        return;
    };
    let t = Names::new(Dialect::Postgres);
    for statement in t.schema() {
        sqlx::query(statement).execute(&pool).await.expect("schema");
    }
    // One hit in ten is re-checked against the database: with every write invalidating,
    // the sampler must find nothing.
    let settings = Settings {
        freshness_sample: 0.1,
        ..Settings::default()
    };
    let cache = Cache::new(settings).expect("valid settings");

    let body = {
        let (pool, cache, t) = (pool.clone(), cache.clone(), t.clone());
        async move { run(pool, cache, t).await }
    };
    let cleanup = async {
        for statement in t.teardown() {
            let _ = sqlx::query(statement).execute(&pool).await;
        }
    };
    let (tally, elapsed) = guarded(body, cleanup).await;
    pool.close().await;

    let stats = cache.stats();
    let (writes, reads, stale) = (
        tally.writes.load(SeqCst),
        tally.reads.load(SeqCst),
        tally.stale.load(SeqCst),
    );
    println!(
        "stress: {WRITERS} writers, {READERS} readers, {elapsed:.1?}: {writes} writes, \
         {reads} reads ({} hits, {} shared loads, {} queries), {stale} stale reads, \
         {} freshness checks, {} mismatches",
        stats.hits,
        stats.coalesced,
        stats.loads,
        stats.freshness_checks,
        stats.freshness_mismatches
    );
    assert!(writes > 0 && reads > 0);
    assert!(
        stats.hits > 0,
        "the cache served reads: the test is not vacuous"
    );
    assert_eq!(stale, 0, "reads that missed a completed write");
    assert!(stats.freshness_checks > 0, "the sampler re-checked hits");
    assert_eq!(
        stats.freshness_mismatches, 0,
        "the sampler found cached values that differ from the database"
    );
}

async fn run(pool: PgPool, cache: Cache, t: Names) -> (Arc<Tally>, Duration) {
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (pool, cache, t, tally) = (pool.clone(), cache.clone(), t.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while started.elapsed() < DURATION {
                let row = (w + n) % ROWS;
                let id = row as i64 + 1;
                // Half the writers commit through the cache's transaction.
                let counter = if w % 2 == 0 {
                    bump(&pool, &cache, &t, id).await.unwrap()
                } else {
                    let mut tx = cache.begin(&pool).await.unwrap();
                    let counter = bump_in(&mut tx, &t, id).await.unwrap();
                    tx.commit().await.unwrap();
                    counter
                };
                tally.completed[row].fetch_max(counter as u64, SeqCst);
                tally.writes.fetch_add(1, SeqCst);
                n += 1;
                // Leave the readers some time between writes to hit the cache.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    for r in 0..READERS {
        let (pool, cache, t, tally) = (pool.clone(), cache.clone(), t.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while started.elapsed() < DURATION {
                let row = (r + n) % ROWS;
                let noted = tally.completed[row].load(SeqCst);
                let counter = read_counter(&pool, &cache, &t, row as i64 + 1)
                    .await
                    .unwrap();
                if (counter as u64) < noted {
                    tally.stale.fetch_add(1, SeqCst);
                }
                tally.reads.fetch_add(1, SeqCst);
                n += 1;
                // A hit never waits: yield, or readers would starve the writers.
                tokio::task::yield_now().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (tally, started.elapsed())
}
