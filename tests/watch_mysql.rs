//! Writes from anywhere on MariaDB/MySQL (`cache-watch` feature `mysql`, `DATABASE_URL_MYSQL`):
//! a write from the `mariadb` command line in another process, a table that does not exist
//! (nothing installed), and the propagation delay of the polled versions.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, KeyScope, Settings, Ttl};
use cache_suite::{MYSQL, database_url, unique_suffix};
use sqlx::{AssertSqlSafe, MySqlPool};

static SCOPE: KeyScope = KeyScope::new("watch_mysql::count");
const INTERVAL: Duration = Duration::from_millis(20);

async fn exec(pool: &MySqlPool, sql: &str) {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The `mariadb` client in a process of its own, on the URL's host, port, user and database.
fn mariadb(url: &str, sql: &str) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (user, rest) = rest.split_once('@').unwrap_or(("root", rest));
    let (hostport, db) = rest.split_once('/').unwrap_or((rest, "test"));
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
    let user = user.split(':').next().unwrap_or(user);
    let status = Command::new("mariadb")
        .args(["-h", host, "-P", port, "-u", user, db, "-e", sql])
        .status()
        .expect("run the mariadb client");
    assert!(status.success(), "mariadb -e {sql:?} failed");
}

async fn count(cache: &Cache, pool: &MySqlPool, table: &str, loads: &AtomicUsize) -> i64 {
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

async fn until_count(
    cache: &Cache,
    pool: &MySqlPool,
    table: &str,
    loads: &AtomicUsize,
    n: i64,
) -> Duration {
    let start = Instant::now();
    while count(cache, pool, table, loads).await != n {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{table}: never saw {n}"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_writes_from_anywhere() {
    let _alone = cache_suite::one_at_a_time().await;
    let Some(url) = database_url(MYSQL) else {
        return;
    };
    let pool = cache_suite::connect::<sqlx::MySql>(MYSQL, 4)
        .await
        .expect("a pool");
    let s = unique_suffix().replace('-', "_");
    let table = format!("watch_my_{s}");
    exec(&pool, &format!("CREATE TABLE {table} (id INT)")).await;

    // A table that does not exist: an error, and no trigger on the one that does.
    let missing = format!("watch_missing_{s}");
    let e = cache_watch::mysql::install(&pool, &[&table, &missing])
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains(&missing) && e.to_string().contains("nothing was installed"),
        "{e}"
    );
    let triggers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.triggers WHERE event_object_table = ?",
    )
    .bind(&table)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(triggers, 0);

    cache_watch::mysql::install(&pool, &[&table])
        .await
        .expect("install");
    cache_watch::mysql::install(&pool, &[&table])
        .await
        .expect("install again: idempotent");
    let cache = Cache::new(Settings::default()).expect("valid settings");
    let poll = cache_watch::mysql::listen(&pool, cache.clone(), &[&table], INTERVAL)
        .await
        .expect("listen");
    let loads = AtomicUsize::new(0);
    assert_eq!(count(&cache, &pool, &table, &loads).await, 0);

    // From the mariadb command line, in another process.
    mariadb(&url, &format!("INSERT INTO {table} VALUES (1), (2)"));
    until_count(&cache, &pool, &table, &loads, 2).await;

    // The propagation delay over 1,000 writes on another connection.
    let writer = cache_suite::connect::<sqlx::MySql>(MYSQL, 1)
        .await
        .expect("a writer");
    let mut delays = Vec::with_capacity(1000);
    for n in 3..=1002_i64 {
        exec(&writer, &format!("INSERT INTO {table} VALUES ({n})")).await;
        delays.push(until_count(&cache, &pool, &table, &loads, n).await);
    }
    delays.sort();
    let at = |q: f64| delays[((delays.len() as f64 * q) as usize).min(delays.len() - 1)];
    println!(
        "propagation delay over {} writes (MariaDB, versions polled every {INTERVAL:?}): \
         p50 {:?}, p99 {:?}, max {:?}",
        delays.len(),
        at(0.5),
        at(0.99),
        delays[delays.len() - 1]
    );
    assert!(poll.polls() > 0);
    poll.stop();
    exec(&pool, &format!("DROP TABLE {table}")).await;
    exec(
        &pool,
        &format!("DELETE FROM cache_runtime_versions WHERE table_name = '{table}'"),
    )
    .await;
}
