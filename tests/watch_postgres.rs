//! Writes from anywhere: `cache-watch` over a real PostgreSQL (`DATABASE_URL_PG`). A write
//! from the `psql` command line in another process, a cascade delete, the listener's
//! connection killed with `pg_terminate_backend`, bad input that installs nothing, and the
//! propagation delay from a committed write to a fresh read here.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, KeyScope, Settings, Ttl};
use cache_suite::{PG, database_url, unique_suffix};
use sqlx::{AssertSqlSafe, PgPool};

static SCOPE: KeyScope = KeyScope::new("watch::count");

async fn pool() -> Option<(PgPool, String)> {
    let url = database_url(PG)?;
    let pool = cache_suite::connect::<sqlx::Postgres>(PG, 4).await?;
    Some((pool, url))
}

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// `psql` in a process of its own: a write the application never sees.
fn psql(url: &str, sql: &str) {
    let status = Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .status()
        .expect("run psql");
    assert!(status.success(), "psql -c {sql:?} failed");
}

/// `SELECT count(*) FROM table`, cached for ever under `table`; `loads` counts queries.
async fn count(cache: &Cache, pool: &PgPool, table: &str, loads: &AtomicUsize) -> i64 {
    let key = cache.key(&SCOPE, &table).expect("a key");
    let load = || async {
        loads.fetch_add(1, Ordering::SeqCst);
        sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(pool)
            .await
    };
    cache
        .get_or_load(key, &[table], Ttl::Forever, load)
        .await
        .expect("the query succeeds")
}

/// Polls until the cached count is `expected`, returning how long that took.
async fn until_count(
    cache: &Cache,
    pool: &PgPool,
    table: &str,
    loads: &AtomicUsize,
    expected: i64,
) -> Duration {
    let start = Instant::now();
    loop {
        if count(cache, pool, table, loads).await == expected {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{table}: the cache never saw the write (still not {expected} after 5 s)"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

fn cache() -> Cache {
    Cache::new(Settings::default()).expect("valid settings")
}

/// A fresh table `{prefix}_{suffix}` with the triggers installed, and a cache listening.
async fn watched_table(pool: &PgPool, prefix: &str) -> (String, Cache, cache_watch::Watch) {
    let table = format!("{prefix}_{}", unique_suffix().replace('-', "_"));
    exec(pool, &format!("CREATE TABLE {table} (id INT)")).await;
    cache_watch::install(pool, &[&table])
        .await
        .expect("install");
    let cache = cache();
    let watch = cache_watch::listen(pool, cache.clone(), &[&table])
        .await
        .expect("listen");
    (table, cache, watch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_from_psql_and_cascades_invalidate() {
    let _alone = cache_suite::one_at_a_time().await;
    let Some((pool, url)) = pool().await else {
        return;
    };
    let s = unique_suffix().replace('-', "_");
    let (parent, child) = (format!("watch_parent_{s}"), format!("watch_child_{s}"));
    exec(
        &pool,
        &format!("CREATE TABLE {parent} (id INT PRIMARY KEY)"),
    )
    .await;
    exec(
        &pool,
        &format!(
            "CREATE TABLE {child} (id INT PRIMARY KEY, parent INT REFERENCES {parent} (id) ON DELETE CASCADE)"
        ),
    )
    .await;
    exec(
        &pool,
        &format!("INSERT INTO {parent} VALUES (1); INSERT INTO {child} VALUES (1, 1), (2, 1)"),
    )
    .await;

    cache_watch::install(&pool, &[&parent, &child])
        .await
        .expect("install");
    cache_watch::install(&pool, &[&parent, &child])
        .await
        .expect("install again: idempotent");
    let cache = cache();
    let watch = cache_watch::listen(&pool, cache.clone(), &[&parent, &child])
        .await
        .expect("listen");
    let loads = AtomicUsize::new(0);
    assert_eq!(count(&cache, &pool, &child, &loads).await, 2);
    assert_eq!(count(&cache, &pool, &child, &loads).await, 2);
    assert_eq!(loads.load(Ordering::SeqCst), 1, "a hit");

    // A write from psql, in another process.
    psql(&url, &format!("INSERT INTO {child} VALUES (3, 1)"));
    until_count(&cache, &pool, &child, &loads, 3).await;

    // A cascade: deleting the parent deletes the children, whose trigger fires too.
    psql(&url, &format!("DELETE FROM {parent} WHERE id = 1"));
    until_count(&cache, &pool, &child, &loads, 0).await;
    assert_eq!(watch.gaps(), 0);

    watch.stop();
    exec(&pool, &format!("DROP TABLE {child}; DROP TABLE {parent}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listener_invalidates_every_watched_table() {
    let _alone = cache_suite::one_at_a_time().await;
    let Some((pool, url)) = pool().await else {
        return;
    };
    let (table, cache, watch) = watched_table(&pool, "watch_gap").await;
    let loads = AtomicUsize::new(0);
    assert_eq!(count(&cache, &pool, &table, &loads).await, 0);

    // Kill the listener's connection, and write while it is gone: that notification is
    // lost. Disabling the trigger for this one write makes it a write nothing notifies,
    // standing for every notification a gap loses.
    let terminated: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'",
    )
    .fetch_one(&pool)
    .await
    .expect("terminate");
    assert!(terminated >= 1, "the listener's backend was found");
    psql(
        &url,
        &format!(
            "BEGIN; ALTER TABLE {table} DISABLE TRIGGER ALL; INSERT INTO {table} VALUES (1); \
             ALTER TABLE {table} ENABLE TRIGGER ALL; COMMIT;"
        ),
    );
    let start = Instant::now();
    while watch.gaps() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the listener reconnected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        count(&cache, &pool, &table, &loads).await,
        1,
        "the gap invalidated every watched table"
    );
    watch.stop();
    exec(&pool, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_error_and_installs_nothing() {
    let _alone = cache_suite::one_at_a_time().await;
    let Some((pool, url)) = pool().await else {
        return;
    };
    let s = unique_suffix().replace('-', "_");
    let table = format!("watch_bad_{s}");
    exec(&pool, &format!("CREATE TABLE {table} (id INT)")).await;
    let triggers = |pool: PgPool, table: String| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = 'cache_runtime_notify'",
        )
        .bind(table)
        .fetch_one(&pool)
        .await
        .expect("count triggers")
    };

    // A table that does not exist, after one that does: nothing is installed.
    let missing = format!("watch_missing_{s}");
    let e = cache_watch::install(&pool, &[&table, &missing])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nothing was installed"), "{e}");
    assert!(
        e.to_string().contains(&missing),
        "the error names the table: {e}"
    );
    assert_eq!(triggers(pool.clone(), table.clone()).await, 0);
    assert!(
        cache_watch::install(&pool, &["users; DROP TABLE x"])
            .await
            .is_err()
    );

    // A role that may not create triggers on the table.
    let role = format!("watch_role_{s}");
    exec(&pool, &format!("CREATE ROLE {role} LOGIN")).await;
    let role_url = match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{role}@{host}")
        }
        None => panic!("a URL"),
    };
    let role_pool = PgPool::connect(&role_url)
        .await
        .expect("connect as the role");
    let e = cache_watch::install(&role_pool, &[&table])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nothing was installed"), "{e}");
    role_pool.close().await;
    assert_eq!(triggers(pool.clone(), table.clone()).await, 0);

    exec(&pool, &format!("DROP TABLE {table}; DROP ROLE {role}")).await;
}

/// The propagation delay: a write committed on another connection until a read here
/// returns the new row, over 1,000 writes. Printed, not asserted (README has a run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagation_delay() {
    let _alone = cache_suite::one_at_a_time().await;
    let Some((pool, _url)) = pool().await else {
        return;
    };
    let (table, cache, watch) = watched_table(&pool, "watch_delay").await;
    let writer = cache_suite::connect::<sqlx::Postgres>(PG, 1)
        .await
        .expect("a writer pool");
    let loads = Arc::new(AtomicUsize::new(0));
    let mut delays = Vec::with_capacity(1000);
    for n in 1..=1000_i64 {
        assert_eq!(count(&cache, &pool, &table, &loads).await, n - 1);
        exec(&writer, &format!("INSERT INTO {table} VALUES ({n})")).await;
        delays.push(until_count(&cache, &pool, &table, &loads, n).await);
    }
    delays.sort();
    let at = |q: f64| delays[((delays.len() as f64 * q) as usize).min(delays.len() - 1)];
    println!(
        "propagation delay over {} writes (PostgreSQL LISTEN/NOTIFY): p50 {:?}, p99 {:?}, max {:?}",
        delays.len(),
        at(0.50),
        at(0.99),
        delays[delays.len() - 1]
    );
    watch.stop();
    exec(&pool, &format!("DROP TABLE {table}")).await;
}

/// With the Redis backend, one instance's listener bumps the shared versions: another
/// instance with no listener of its own stops serving the old entry too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_listener_invalidates_every_instance_sharing_redis() {
    let _alone = cache_suite::one_at_a_time().await;
    let Some((pool, url)) = pool().await else {
        return;
    };
    let Some(redis_url) = database_url("REDIS_URL") else {
        return;
    };
    let s = unique_suffix().replace('-', "_");
    let table = format!("watch_shared_{s}");
    exec(&pool, &format!("CREATE TABLE {table} (id INT)")).await;
    cache_watch::install(&pool, &[&table])
        .await
        .expect("install");
    let settings = Settings {
        namespace: format!("watch-shared-{s}"),
        ..Settings::default()
    };
    let instance = || async {
        let backend =
            cache_redis::RedisBackend::connect(&redis_url, cache_redis::RedisOptions::default())
                .await
                .expect("Redis answers");
        Cache::with_shared_backend(settings.clone(), backend).expect("valid settings")
    };
    let (a, b) = (instance().await, instance().await);
    let watch = cache_watch::listen(&pool, a.clone(), &[&table])
        .await
        .expect("listen");
    let loads = AtomicUsize::new(0);
    assert_eq!(count(&b, &pool, &table, &loads).await, 0);
    assert_eq!(count(&b, &pool, &table, &loads).await, 0);
    assert_eq!(loads.load(Ordering::SeqCst), 1, "B is served from Redis");

    psql(&url, &format!("INSERT INTO {table} VALUES (1)"));
    until_count(&b, &pool, &table, &loads, 1).await;

    watch.stop();
    a.clear().await;
    exec(&pool, &format!("DROP TABLE {table}")).await;
}
