//! Tables read from the SQL: `#[cached]` and `#[invalidates]` without declared tables use
//! the tables their SQL literals read and write, so an ordinary pair of functions stays
//! consistent with nothing declared; a `const` list of tables works too.
//!
//! The compile-time checks (an undeclared table, a declared one the SQL never names, SQL
//! that does not parse or is built at run time) are trybuild cases in `ui-tests/`.

use cache_runtime::{Cache, Settings, cached, cached_query, invalidates};
use sqlx::SqlitePool;

async fn db() -> (SqlitePool, cache_suite::TempDb, Cache) {
    let (pool, db) = cache_suite::sqlite(1).await;
    for sql in [
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
        "CREATE TABLE follows (follower INTEGER NOT NULL, followed INTEGER NOT NULL)",
        "INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'grace')",
    ] {
        sqlx::query(sql).execute(&pool).await.expect("schema");
    }
    let cache = Cache::new(Settings::default()).expect("valid settings");
    (pool, db, cache)
}

/// Reads `users` and `follows`: both inferred from the SQL.
#[cached(ttl = "1h")]
async fn profile(
    cache: &Cache,
    pool: &SqlitePool,
    viewer: i64,
    id: i64,
) -> sqlx::Result<(String, bool)> {
    sqlx::query_as(
        "SELECT u.name, EXISTS (SELECT 1 FROM follows f WHERE f.follower = ? AND f.followed = u.id)
         FROM users u WHERE u.id = ?",
    )
    .bind(viewer)
    .bind(id)
    .fetch_one(pool)
    .await
}

/// Writes `follows`: inferred from the SQL.
#[invalidates]
async fn follow(cache: &Cache, pool: &SqlitePool, viewer: i64, id: i64) -> sqlx::Result<u64> {
    let done = sqlx::query("INSERT INTO follows (follower, followed) VALUES (?, ?)")
        .bind(viewer)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

const USER_TABLES: [&str; 1] = ["users"];

/// Reads `users`, declared by a constant (taken as written).
#[cached(ttl = "1h", tables = USER_TABLES)]
async fn count_users(cache: &Cache, pool: &SqlitePool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(pool)
        .await
}

/// Writes `users`, declared by a constant (the SQL is not read then).
#[invalidates(tables = USER_TABLES)]
async fn rename(cache: &Cache, pool: &SqlitePool, id: i64, name: &str) -> sqlx::Result<u64> {
    let done = sqlx::query("UPDATE users SET name = ? WHERE id = ?")
        .bind(name)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Mechanism: the read's table set comes from its SQL (both tables of the join and the
/// subquery), and the write's from its INSERT. Without inference the read would have no
/// tables (a compile error) or only the declared ones: a follow would leave it stale.
#[tokio::test]
async fn inferred_tables_meet_inferred_writes() {
    // Invalidation reaches every cache of the process: one test at a time.
    let _alone = cache_suite::one_at_a_time().await;
    let (pool, _db, cache) = db().await;
    assert_eq!(
        profile(&cache, &pool, 1, 2).await.unwrap(),
        ("grace".into(), false)
    );
    assert_eq!(
        profile(&cache, &pool, 1, 2).await.unwrap(),
        ("grace".into(), false)
    );
    assert_eq!(cache.stats().hits, 1);

    follow(&cache, &pool, 1, 2).await.unwrap();
    assert_eq!(
        profile(&cache, &pool, 1, 2).await.unwrap(),
        ("grace".into(), true),
        "the follow invalidated the profile read through `follows`"
    );

    assert_eq!(count_users(&cache, &pool).await.unwrap(), 2);
    rename(&cache, &pool, 2, "hopper").await.unwrap();
    assert_eq!(
        profile(&cache, &pool, 1, 2).await.unwrap(),
        ("hopper".into(), true),
        "the rename invalidated it through `users`"
    );
    let hits = cache.stats().hits;
    assert_eq!(count_users(&cache, &pool).await.unwrap(), 2);
    assert_eq!(
        cache.stats().hits,
        hits,
        "`tables = USER_TABLES` named `users`: reloaded"
    );
}

/// `cached_query!`: one inline query, keyed by its SQL and bound arguments, with the tables
/// its SQL reads; uncached in a transaction; errors never cached.
#[tokio::test]
async fn an_inline_query_is_cached_keyed_and_invalidated() {
    // Invalidation reaches every cache of the process: one test at a time.
    let _alone = cache_suite::one_at_a_time().await;
    let (pool, _db, cache) = db().await;
    let name = |id: i64| {
        cached_query!(
            ttl = "1h",
            cache = &cache,
            sqlx::query_scalar::<_, String>("SELECT name FROM users WHERE id = ?")
                .bind(id)
                .fetch_optional(&pool)
        )
    };
    assert_eq!(name(1).await.unwrap().as_deref(), Some("ada"));
    assert_eq!(
        name(2).await.unwrap().as_deref(),
        Some("grace"),
        "keyed by the argument"
    );
    assert_eq!(name(1).await.unwrap().as_deref(), Some("ada"));
    assert_eq!((cache.stats().hits, cache.stats().loads), (1, 2));

    rename(&cache, &pool, 1, "lovelace").await.unwrap();
    assert_eq!(
        name(1).await.unwrap().as_deref(),
        Some("lovelace"),
        "the write to `users` (read from the SQL) invalidated it"
    );

    // In a transaction: read uncached, its uncommitted row never stored.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("UPDATE users SET name = 'uncommitted' WHERE id = 2")
        .execute(&mut *tx)
        .await
        .unwrap();
    // The same query as `name`'s (the same key), through the transaction's connection.
    let inside = cached_query!(
        cache = &cache,
        sqlx::query_scalar::<_, String>("SELECT name FROM users WHERE id = ?")
            .bind(2_i64)
            .fetch_optional(&mut *tx)
    )
    .await
    .unwrap();
    assert_eq!(inside.as_deref(), Some("uncommitted"));
    tx.rollback().await.unwrap();
    assert_eq!(name(2).await.unwrap().as_deref(), Some("grace"));

    // An error is returned, never cached.
    let missing = || {
        cached_query!(
            cache = &cache,
            table = "later",
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM later").fetch_one(&pool)
        )
    };
    assert!(missing().await.is_err());
    sqlx::query("CREATE TABLE later (id INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(missing().await.unwrap(), 0);
}
