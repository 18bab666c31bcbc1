//! Quickstart: a small repository on embedded SQLite, cached with the macros.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Creates and seeds a users/posts schema in an in-memory SQLite database, then runs a
//! scripted session: each read prints HIT or MISS (from the cache's statistics before and
//! after the call) and its latency; a write invalidates the reads of its table; the final
//! statistics close the run. Needs nothing installed or running.

use std::future::Future;
use std::time::{Duration, Instant};

use cache_runtime::{Cache, CacheEntity, Settings, cached, invalidates};
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use sqlx::sqlite::SqlitePoolOptions;

// ----- entities: the table each row type is read from -----

#[derive(Clone, Debug, Serialize, Deserialize, CacheEntity)]
#[cache(table = "users")]
struct User {
    #[cache(id)]
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

// ----- the repository -----

/// Cached for 60 s; the table, `users`, comes from `User`.
#[cached(ttl = "60s")]
async fn find_user(pool: &SqlitePool, id: i64) -> sqlx::Result<Option<User>> {
    let row: Option<(i64, String)> = sqlx::query_as("SELECT id, name FROM users WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|(id, name)| User { id, name }))
}

/// No `ttl` or `table`: both come from `Post` (`posts`, 5 minutes).
#[cached]
async fn posts_by(pool: &SqlitePool, author_id: i64) -> sqlx::Result<Vec<Post>> {
    let rows: Vec<(i64, i64, String)> =
        sqlx::query_as("SELECT id, author_id, title FROM posts WHERE author_id = ? ORDER BY id")
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

/// A join: cached until a write to either table (`ttl = true` never expires).
#[cached(ttl = true, tables = ["users", "posts"])]
async fn feed(pool: &SqlitePool, limit: i64) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT u.name, p.title FROM posts p JOIN users u ON u.id = p.author_id \
         ORDER BY p.id DESC LIMIT ?",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Invalidates `users` when it returns (after an `Err` too).
#[invalidates(User)]
async fn rename(pool: &SqlitePool, id: i64, name: &str) -> sqlx::Result<u64> {
    let done = sqlx::query("UPDATE users SET name = ? WHERE id = ?")
        .bind(name)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Invalidates `posts` when it returns.
#[invalidates(Post)]
async fn publish(pool: &SqlitePool, author_id: i64, title: &str) -> sqlx::Result<i64> {
    let done = sqlx::query("INSERT INTO posts (author_id, title) VALUES (?, ?)")
        .bind(author_id)
        .bind(title)
        .execute(pool)
        .await?;
    Ok(done.last_insert_rowid())
}

// ----- setup -----

async fn database() -> sqlx::Result<SqlitePool> {
    // One connection kept open: an in-memory database lives as long as its connection.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect("sqlite::memory:")
        .await?;
    for statement in [
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id INTEGER NOT NULL \
         REFERENCES users (id), title TEXT NOT NULL)",
        "INSERT INTO users (id, name) VALUES (1, 'Ada'), (2, 'Grace'), (3, 'Edsger')",
        "INSERT INTO posts (author_id, title) VALUES (1, 'Notes on the Analytical Engine'), \
         (2, 'Compilers for everyone'), (1, 'On Bernoulli numbers'), (3, 'Goto, considered')",
    ] {
        sqlx::query(statement).execute(&pool).await?;
    }
    Ok(pool)
}

// ----- the scripted session -----

/// Runs one read, printing HIT or MISS (did the cache's hit count move?) and its latency.
async fn read<T, F>(cache: &Cache, label: &str, call: F, show: impl Fn(&T) -> String) -> T
where
    F: Future<Output = sqlx::Result<T>>,
{
    let before = cache.stats().hits;
    let started = Instant::now();
    let result = call.await;
    let took = started.elapsed();
    let outcome = if cache.stats().hits > before {
        "HIT "
    } else {
        "MISS"
    };
    match result {
        Ok(value) => {
            println!(
                "  {label:<22} {outcome}  {:>9}   {}",
                micros(took),
                show(&value)
            );
            value
        }
        Err(e) => fail(label, &e),
    }
}

/// Runs one write and says which tables it invalidated.
async fn write<T, F>(label: &str, call: F, tables: &str)
where
    T: std::fmt::Display,
    F: Future<Output = sqlx::Result<T>>,
{
    let started = Instant::now();
    match call.await {
        Ok(out) => println!(
            "  {label:<22} WRITE {:>9}   -> {out}; invalidates `{tables}`",
            micros(started.elapsed())
        ),
        Err(e) => fail(label, &e),
    }
}

fn fail(label: &str, error: &sqlx::Error) -> ! {
    eprintln!("quickstart: {label} failed: {error}");
    std::process::exit(1)
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn user(u: &Option<User>) -> String {
    u.as_ref()
        .map_or_else(|| "no such user".to_owned(), |u| u.name.clone())
}

fn titles(posts: &[Post]) -> String {
    let titles: Vec<&str> = posts.iter().map(|p| p.title.as_str()).collect();
    format!("{titles:?}")
}

fn lines(feed: &[(String, String)]) -> String {
    format!("{} entries, newest: {:?}", feed.len(), feed.first())
}

#[tokio::main]
async fn main() {
    let settings = Settings {
        namespace: "quickstart".into(),
        ..Settings::default()
    };
    let cache = match Cache::new(settings) {
        Ok(cache) => cache,
        Err(e) => {
            eprintln!("quickstart: {e}");
            std::process::exit(1);
        }
    };
    // The macros use the process-wide cache unless a function takes a `&Cache` or names
    // one with `cache = ...`: install ours before the first cached call.
    if let Err(e) = cache_runtime::install(cache.clone()) {
        eprintln!("quickstart: {e}");
        std::process::exit(1);
    }
    let pool = match database().await {
        Ok(pool) => pool,
        Err(e) => fail("setting up SQLite", &e),
    };

    println!("quickstart: users and posts in in-memory SQLite, reads cached in process memory\n");
    println!("  {:<22} {:<5} {:>9}   result", "call", "cache", "latency");

    read(&cache, "find_user(1)", find_user(&pool, 1), user).await;
    read(&cache, "find_user(1)", find_user(&pool, 1), user).await;
    read(&cache, "find_user(2)", find_user(&pool, 2), user).await;
    read(&cache, "posts_by(1)", posts_by(&pool, 1), |p| titles(p)).await;
    read(&cache, "posts_by(1)", posts_by(&pool, 1), |p| titles(p)).await;
    read(&cache, "feed(10)", feed(&pool, 10), |f| lines(f)).await;
    read(&cache, "feed(10)", feed(&pool, 10), |f| lines(f)).await;

    println!();
    write("rename(1, ..)", rename(&pool, 1, "Ada Lovelace"), "users").await;
    read(&cache, "find_user(1)", find_user(&pool, 1), user).await;
    read(&cache, "find_user(1)", find_user(&pool, 1), user).await;
    read(&cache, "posts_by(1)", posts_by(&pool, 1), |p| titles(p)).await;
    read(&cache, "feed(10)", feed(&pool, 10), |f| lines(f)).await;

    println!();
    write(
        "publish(2, ..)",
        publish(&pool, 2, "Nanoseconds, visualised"),
        "posts",
    )
    .await;
    read(&cache, "posts_by(2)", posts_by(&pool, 2), |p| titles(p)).await;
    read(&cache, "feed(10)", feed(&pool, 10), |f| lines(f)).await;
    read(&cache, "find_user(1)", find_user(&pool, 1), user).await;

    let stats = cache.stats();
    println!(
        "\nstats: {} hits, {} misses ({:.0}% hit ratio), {} queries run, \
         {} table invalidations, {} entries cached",
        stats.hits,
        stats.misses,
        stats.hit_ratio() * 100.0,
        stats.loads,
        stats.invalidations,
        cache.entry_count().unwrap_or(0),
    );
}
