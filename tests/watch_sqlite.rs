//! Writes through a hooked SQLite pool invalidate at commit (`cache-watch`, feature
//! `sqlite`), annotated or not: strictly (done when the write returns), never before the
//! commit, and not at all for a rollback.

use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{Cache, KeyScope, Settings, Ttl};
use cache_suite::TempDb;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Connection as _, SqlitePool};

static SCOPE: KeyScope = KeyScope::new("watch_sqlite::names");

/// The names in `users`, cached for ever under that table.
async fn names(cache: &Cache, pool: &SqlitePool, loads: &AtomicUsize) -> Vec<String> {
    names_in(cache, pool, "users", loads).await
}

/// Invalidation reaches every cache of the process: each test reads tables of its own.
async fn names_in(
    cache: &Cache,
    pool: &SqlitePool,
    table: &str,
    loads: &AtomicUsize,
) -> Vec<String> {
    let key = cache.key(&SCOPE, &table).expect("a key");
    let load = || async {
        loads.fetch_add(1, Ordering::SeqCst);
        sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM {table} ORDER BY id"
        )))
        .fetch_all(pool)
        .await
    };
    cache
        .get_or_load(key, &[table], Ttl::Forever, load)
        .await
        .expect("the query succeeds")
}

fn options(db: &TempDb) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(db.path())
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unannotated_writes_invalidate_at_commit() {
    // Invalidation reaches every cache of the process: one test at a time.
    let _alone = cache_suite::one_at_a_time().await;
    let db = TempDb::new();
    let cache = Cache::new(Settings::default()).expect("valid settings");
    let pool = cache_watch::sqlite::pool_options(cache.clone())
        .max_connections(2)
        .connect_with(options(&db))
        .await
        .expect("a hooked pool");
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO users (name) VALUES ('ada')")
        .execute(&pool)
        .await
        .unwrap();
    let loads = AtomicUsize::new(0);
    assert_eq!(names(&cache, &pool, &loads).await, ["ada"]);
    assert_eq!(names(&cache, &pool, &loads).await, ["ada"]);
    assert_eq!(loads.load(Ordering::SeqCst), 1);

    // A plain write, no #[invalidates]: invalidated by the time it returns.
    sqlx::query("INSERT INTO users (name) VALUES ('grace')")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(names(&cache, &pool, &loads).await, ["ada", "grace"]);

    // In a transaction: nothing before COMMIT (a read on the other connection is a hit,
    // as the rows are not visible yet), everything after it.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO users (name) VALUES ('hopper')")
        .execute(&mut *tx)
        .await
        .unwrap();
    let before = loads.load(Ordering::SeqCst);
    assert_eq!(names(&cache, &pool, &loads).await, ["ada", "grace"]);
    assert_eq!(
        loads.load(Ordering::SeqCst),
        before,
        "not invalidated before COMMIT"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        names(&cache, &pool, &loads).await,
        ["ada", "grace", "hopper"]
    );

    // A rollback invalidates nothing.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("DELETE FROM users")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let before = loads.load(Ordering::SeqCst);
    assert_eq!(
        names(&cache, &pool, &loads).await,
        ["ada", "grace", "hopper"]
    );
    assert_eq!(
        loads.load(Ordering::SeqCst),
        before,
        "a rollback is not a write"
    );

    // A DELETE without WHERE (SQLite's truncate shortcut calls no update hook: the hooks
    // turn it off), in a committed transaction.
    sqlx::query("CREATE TABLE scratch (id INTEGER PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("DELETE FROM users")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO scratch (id) VALUES (1)")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(names(&cache, &pool, &loads).await, Vec::<String>::new());
    sqlx::query("INSERT INTO users (name) VALUES ('ada'), ('grace'), ('hopper')")
        .execute(&pool)
        .await
        .unwrap();

    // A write after the rollback on the same connection still counts alone.
    sqlx::query("UPDATE users SET name = 'lovelace' WHERE name = 'ada'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        names(&cache, &pool, &loads).await,
        ["lovelace", "grace", "hopper"]
    );
}

#[tokio::test]
async fn a_connection_without_wal_is_refused() {
    let db = TempDb::new();
    let cache = Cache::new(Settings::default()).expect("valid settings");
    let mut conn =
        sqlx::SqliteConnection::connect_with(&options(&db).journal_mode(SqliteJournalMode::Delete))
            .await
            .expect("a connection");
    let e = cache_watch::sqlite::install_hooks(&mut conn, cache)
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("WAL journal mode"), "{e}");
}

/// A table declared in upper case is reported so by SQLite, and read as `members` by the
/// macros' tags: both names are invalidated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upper_case_table_meets_lower_case_reads() {
    // Invalidation reaches every cache of the process: one test at a time.
    let _alone = cache_suite::one_at_a_time().await;
    let db = TempDb::new();
    let cache = Cache::new(Settings::default()).expect("valid settings");
    let pool = cache_watch::sqlite::pool_options(cache.clone())
        .connect_with(options(&db))
        .await
        .expect("a hooked pool");
    sqlx::query("CREATE TABLE Users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let loads = AtomicUsize::new(0);
    assert!(names(&cache, &pool, &loads).await.is_empty());
    sqlx::query("INSERT INTO Users (name) VALUES ('ada')")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(names(&cache, &pool, &loads).await, ["ada"]);
}
