//! The quickstart's repository on PostgreSQL, plus a write inside a transaction that
//! invalidates only once it commits.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --example postgres
//! ```
//!
//! Reads `DATABASE_URL`, else `DATABASE_URL_PG`. The tables are temporary (one connection,
//! dropped by PostgreSQL when it closes), so the example leaves nothing behind.

use std::future::Future;
use std::process::exit;

use cache_runtime::{Cache, CacheEntity, Settings, Transaction, cached, invalidates};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};

#[derive(Clone, Debug, Serialize, Deserialize, CacheEntity)]
#[cache(table = "users")]
struct User {
    id: i64,
    name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, CacheEntity)]
#[cache(table = "posts", ttl = "5m")]
struct Post {
    id: i64,
    author_id: i64,
    title: String,
}

#[cached(ttl = "60s")]
async fn find_user(pool: &PgPool, id: i64) -> sqlx::Result<Option<User>> {
    let row: Option<(i64, String)> = sqlx::query_as("SELECT id, name FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|(id, name)| User { id, name }))
}

#[cached]
async fn posts_by(pool: &PgPool, author_id: i64) -> sqlx::Result<Vec<Post>> {
    let rows: Vec<(i64, i64, String)> =
        sqlx::query_as("SELECT id, author_id, title FROM posts WHERE author_id = $1 ORDER BY id")
            .bind(author_id)
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(id, author_id, title)| Post {
            id,
            author_id,
            title,
        })
        .collect())
}

#[cached(ttl = true, tables = ["users", "posts"])]
async fn feed(pool: &PgPool) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT u.name, p.title FROM posts p JOIN users u ON u.id = p.author_id ORDER BY p.id",
    )
    .fetch_all(pool)
    .await
}

#[invalidates(User)]
async fn rename(pool: &PgPool, id: i64, name: &str) -> sqlx::Result<u64> {
    let done = sqlx::query("UPDATE users SET name = $1 WHERE id = $2")
        .bind(name)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Takes the cache's transaction: `posts` is invalidated when it commits.
#[invalidates(Post)]
async fn publish(
    tx: &mut Transaction<'_, Postgres>,
    author_id: i64,
    title: &str,
) -> sqlx::Result<i64> {
    sqlx::query_scalar("INSERT INTO posts (author_id, title) VALUES ($1, $2) RETURNING id")
        .bind(author_id)
        .bind(title)
        .fetch_one(&mut **tx)
        .await
}

async fn database(url: &str) -> sqlx::Result<PgPool> {
    // One connection that never closes: temporary tables live as long as it does.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect(url)
        .await?;
    for statement in [
        "CREATE TEMPORARY TABLE users (id BIGINT PRIMARY KEY, name TEXT NOT NULL)",
        "CREATE TEMPORARY TABLE posts (id BIGSERIAL PRIMARY KEY, author_id BIGINT NOT NULL, \
         title TEXT NOT NULL)",
        "INSERT INTO users (id, name) VALUES (1, 'Ada'), (2, 'Grace'), (3, 'Edsger')",
        "INSERT INTO posts (author_id, title) VALUES (1, 'Notes on the Analytical Engine'), \
         (2, 'Compilers for everyone'), (1, 'On Bernoulli numbers')",
    ] {
        sqlx::query(statement).execute(&pool).await?;
    }
    Ok(pool)
}

/// Runs one call, printing HIT or MISS (did the cache's hit count move?) and a summary.
async fn show<T>(
    cache: &Cache,
    label: &str,
    call: impl Future<Output = sqlx::Result<T>>,
    f: impl Fn(&T) -> String,
) {
    let hits = cache.stats().hits;
    match call.await {
        Ok(value) => {
            let outcome = if cache.stats().hits > hits {
                "HIT "
            } else {
                "MISS"
            };
            println!("  {label:<20} {outcome}  {}", f(&value));
        }
        Err(e) => fail(label, &e),
    }
}

fn fail(what: &str, error: &sqlx::Error) -> ! {
    eprintln!("postgres example: {what} failed: {error}");
    exit(1)
}

#[tokio::main]
async fn main() {
    let Some(url) = ["DATABASE_URL", "DATABASE_URL_PG"]
        .into_iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
    else {
        eprintln!(
            "postgres example: set DATABASE_URL (or DATABASE_URL_PG), e.g.\n  \
             DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --example postgres"
        );
        exit(2);
    };
    let cache = Cache::new(Settings::default()).unwrap_or_else(|e| {
        eprintln!("postgres example: {e}");
        exit(1)
    });
    if cache_runtime::install(cache.clone()).is_err() {
        eprintln!("postgres example: a process-wide cache was already installed");
        exit(1);
    }
    let pool = database(&url)
        .await
        .unwrap_or_else(|e| fail("connecting", &e));

    let name = |u: &Option<User>| u.as_ref().map_or("no such user".into(), |u| u.name.clone());
    let count = |p: &Vec<Post>| format!("{} posts", p.len());
    let lines = |f: &Vec<(String, String)>| format!("{} entries", f.len());

    show(&cache, "find_user(1)", find_user(&pool, 1), name).await;
    show(&cache, "find_user(1)", find_user(&pool, 1), name).await;
    show(&cache, "posts_by(1)", posts_by(&pool, 1), count).await;
    show(&cache, "posts_by(1)", posts_by(&pool, 1), count).await;
    show(&cache, "feed()", feed(&pool), lines).await;

    println!("\n  rename(1, ..)        invalidates `users` on return");
    rename(&pool, 1, "Ada Lovelace")
        .await
        .unwrap_or_else(|e| fail("rename", &e));
    show(&cache, "find_user(1)", find_user(&pool, 1), name).await;
    show(&cache, "posts_by(1)", posts_by(&pool, 1), count).await;

    println!("\n  publish(1, ..)       in a transaction: `posts` waits for COMMIT");
    let before = cache.stats().invalidations;
    let mut tx = cache
        .begin(&pool)
        .await
        .unwrap_or_else(|e| fail("BEGIN", &e));
    publish(&mut tx, 1, "Sketch of the engine")
        .await
        .unwrap_or_else(|e| fail("publish", &e));
    println!(
        "  before COMMIT        {} tables invalidated",
        cache.stats().invalidations - before
    );
    tx.commit().await.unwrap_or_else(|e| fail("COMMIT", &e));
    println!(
        "  after COMMIT         {} table invalidated (`posts`)",
        cache.stats().invalidations - before
    );
    show(&cache, "posts_by(1)", posts_by(&pool, 1), count).await;
    show(&cache, "feed()", feed(&pool), lines).await;

    let stats = cache.stats();
    println!(
        "\nstats: {} hits, {} misses, {} queries run, {} invalidations",
        stats.hits, stats.misses, stats.loads, stats.invalidations
    );
}
