//! Behaviour of `#[derive(CacheEntity)]`, `#[cached]` and `#[invalidates]`: what is cached,
//! what is keyed, which cache is used, and when a write invalidates.
//!
//! Most tests count loader runs with an `AtomicUsize` and give each function its own
//! `Cache` (a `&Cache` parameter or `cache = ...`), so they run in parallel without
//! sharing state. The SQLite tests use a real in-memory database.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use cache_runtime::{Cache, CacheEntity, Settings, Ttl, cached, invalidates};
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use sqlx::sqlite::SqlitePoolOptions;

fn cache() -> Cache {
    Cache::new(Settings::default()).expect("default settings are valid")
}

fn cache_with(settings: Settings) -> Cache {
    Cache::new(settings).expect("valid settings")
}

/// One connection that never closes, so the in-memory database lives as long as the pool.
async fn sqlite() -> SqlitePool {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite");
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&pool)
        .await
        .expect("schema");
    sqlx::query("INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'grace')")
        .execute(&pool)
        .await
        .expect("seed");
    pool
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, CacheEntity)]
#[cache(table = "users")]
struct User {
    #[cache(id)]
    id: i64,
    name: String,
}

// ----- real SQLite: table inference from the entity -----

static FIND_USER_LOADS: AtomicUsize = AtomicUsize::new(0);

// No `table =`: the table comes from `User`'s derive, through `Result<Option<User>, _>`.
#[cached(ttl = "1h")]
async fn find_user(pool: &SqlitePool, cache: &Cache, id: i64) -> sqlx::Result<Option<User>> {
    FIND_USER_LOADS.fetch_add(1, SeqCst);
    let row: Option<(i64, String)> = sqlx::query_as("SELECT id, name FROM users WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|(id, name)| User { id, name }))
}

#[invalidates(User)]
async fn rename(pool: &SqlitePool, cache: &Cache, id: i64, name: &str) -> sqlx::Result<u64> {
    let done = sqlx::query("UPDATE users SET name = ? WHERE id = ?")
        .bind(name)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

#[tokio::test]
async fn entity_table_is_inferred_and_a_write_to_it_invalidates_the_read() {
    let pool = sqlite().await;
    let cache = cache();

    let first = find_user(&pool, &cache, 1).await.unwrap();
    assert_eq!(first.unwrap().name, "ada");
    find_user(&pool, &cache, 1).await.unwrap();
    assert_eq!(FIND_USER_LOADS.load(SeqCst), 1, "second read is a hit");
    assert_eq!(
        cache.tracked_keys("users"),
        1,
        "the read is tracked under `users`"
    );

    assert_eq!(rename(&pool, &cache, 1, "lovelace").await.unwrap(), 1);
    let after = find_user(&pool, &cache, 1).await.unwrap();
    assert_eq!(
        after.unwrap().name,
        "lovelace",
        "no stale read after the write"
    );
    assert_eq!(FIND_USER_LOADS.load(SeqCst), 2);

    // A write to the entity's table by name invalidates it as well.
    cache.invalidate(&[User::TABLE]).await;
    find_user(&pool, &cache, 1).await.unwrap();
    assert_eq!(FIND_USER_LOADS.load(SeqCst), 3);
}

static BROKEN_QUERY_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(table = "no_such_table")]
async fn broken_query(pool: &SqlitePool, cache: &Cache) -> Result<i64, sqlx::Error> {
    BROKEN_QUERY_LOADS.fetch_add(1, SeqCst);
    sqlx::query_scalar("SELECT count(*) FROM no_such_table")
        .fetch_one(pool)
        .await
}

#[tokio::test]
async fn a_failing_sqlite_query_is_never_cached() {
    let pool = sqlite().await;
    let cache = cache();
    assert!(broken_query(&pool, &cache).await.is_err());
    assert!(broken_query(&pool, &cache).await.is_err());
    assert_eq!(BROKEN_QUERY_LOADS.load(SeqCst), 2);
    assert_eq!(cache.entry_count(), Some(0));
}

// ----- errors are never cached, whatever the `Result` alias -----

#[derive(Debug)]
struct MyError;

type MyResult<T> = Result<T, MyError>;

static SQLX_LOADS: AtomicUsize = AtomicUsize::new(0);
static ANYHOW_LOADS: AtomicUsize = AtomicUsize::new(0);
static ALIAS_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(table = "t")]
async fn via_sqlx_result(cache: &Cache, fail: bool) -> sqlx::Result<i64> {
    SQLX_LOADS.fetch_add(1, SeqCst);
    if fail {
        return Err(sqlx::Error::RowNotFound);
    }
    Ok(7)
}

#[cached(table = "t")]
async fn via_anyhow_result(cache: &Cache, fail: bool) -> anyhow::Result<i64> {
    ANYHOW_LOADS.fetch_add(1, SeqCst);
    anyhow::ensure!(!fail, "failed");
    Ok(7)
}

#[cached(table = "t")]
async fn via_user_alias(cache: &Cache, fail: bool) -> MyResult<i64> {
    ALIAS_LOADS.fetch_add(1, SeqCst);
    if fail { Err(MyError) } else { Ok(7) }
}

#[tokio::test]
async fn err_is_never_cached_through_any_result_alias() {
    let cache = cache();
    for _ in 0..2 {
        assert!(via_sqlx_result(&cache, true).await.is_err());
        assert!(via_anyhow_result(&cache, true).await.is_err());
        assert!(via_user_alias(&cache, true).await.is_err());
    }
    assert_eq!(SQLX_LOADS.load(SeqCst), 2);
    assert_eq!(ANYHOW_LOADS.load(SeqCst), 2);
    assert_eq!(ALIAS_LOADS.load(SeqCst), 2);
    assert_eq!(cache.entry_count(), Some(0));

    // `Ok` of each is cached: the second call is a hit.
    for _ in 0..2 {
        assert_eq!(via_sqlx_result(&cache, false).await.unwrap(), 7);
        assert_eq!(via_anyhow_result(&cache, false).await.unwrap(), 7);
        assert_eq!(via_user_alias(&cache, false).await.unwrap(), 7);
    }
    assert_eq!(SQLX_LOADS.load(SeqCst), 3);
    assert_eq!(ANYHOW_LOADS.load(SeqCst), 3);
    assert_eq!(ALIAS_LOADS.load(SeqCst), 3);
}

// ----- what is keyed: skip, key, name -----

static SKIP_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(table = "t", skip(request_id))]
async fn skipped(cache: &Cache, id: i64, request_id: u64) -> i64 {
    SKIP_LOADS.fetch_add(1, SeqCst);
    let _ = request_id;
    id
}

#[tokio::test]
async fn skipped_arguments_are_not_keyed() {
    let cache = cache();
    skipped(&cache, 1, 100).await;
    skipped(&cache, 1, 200).await;
    assert_eq!(
        SKIP_LOADS.load(SeqCst),
        1,
        "request_id is not part of the key"
    );
    skipped(&cache, 2, 100).await;
    assert_eq!(SKIP_LOADS.load(SeqCst), 2, "id is");
}

#[derive(Clone, Serialize)]
struct Query {
    user: i64,
    trace: String,
}

static KEY_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(table = "t", key = query.user)]
async fn keyed_by_expr(cache: &Cache, query: Query) -> String {
    KEY_LOADS.fetch_add(1, SeqCst);
    format!("{}:{}", query.user, query.trace)
}

#[tokio::test]
async fn key_expression_replaces_the_arguments() {
    let cache = cache();
    let q = |user, trace: &str| Query {
        user,
        trace: trace.into(),
    };
    assert_eq!(keyed_by_expr(&cache, q(1, "a")).await, "1:a");
    assert_eq!(keyed_by_expr(&cache, q(1, "b")).await, "1:a", "same key");
    assert_eq!(KEY_LOADS.load(SeqCst), 1);
    assert_eq!(keyed_by_expr(&cache, q(2, "b")).await, "2:b");
    assert_eq!(KEY_LOADS.load(SeqCst), 2);
}

// Two versions of one query, moved between modules, sharing a stable `name`: the code hash
// still tells them apart, so one never serves the other's entries.
mod v1 {
    use super::*;

    #[cached(table = "t", name = "shared::lookup")]
    pub async fn lookup(cache: &Cache, id: i64) -> i64 {
        id
    }
}

mod v2 {
    use super::*;

    #[cached(table = "t", name = "shared::lookup")]
    pub async fn lookup(cache: &Cache, id: i64) -> i64 {
        id * 100
    }
}

#[tokio::test]
async fn same_name_different_code_gives_different_keys() {
    let cache = cache();
    assert_eq!(v1::lookup(&cache, 3).await, 3);
    assert_eq!(v2::lookup(&cache, 3).await, 300);
    assert_eq!(v1::lookup(&cache, 3).await, 3);
    assert_eq!(cache.entry_count(), Some(2));
    assert_eq!(cache.stats().hits, 1);
}

// `name` keeps the identity when the function is renamed or moved: identical code under
// one name shares entries, where the default identity (module path + fn name) would not.
mod before_move {
    use super::*;

    #[cached(table = "t", name = "stable::answer")]
    pub async fn answer(cache: &Cache) -> i64 {
        42
    }
}

mod after_move {
    use super::*;

    #[cached(table = "t", name = "stable::answer")]
    pub async fn answer(cache: &Cache) -> i64 {
        42
    }

    #[cached(table = "t")]
    pub async fn unnamed(cache: &Cache) -> i64 {
        42
    }
}

#[tokio::test]
async fn name_gives_a_stable_identity() {
    let cache = cache();
    before_move::answer(&cache).await;
    after_move::answer(&cache).await;
    assert_eq!(cache.stats().hits, 1, "same name and code: same key");
    after_move::unnamed(&cache).await;
    assert_eq!(
        cache.stats().hits,
        1,
        "no name: module path and fn name are the identity"
    );
}

// ----- which cache: `&Cache` parameter, `cache = expr`, `&self` methods -----

struct Repo {
    cache: Cache,
    loads: AtomicUsize,
}

impl Repo {
    // `self.loads` counts calls: the result does not depend on it, so `self` is not keyed.
    #[cached(table = "repo", cache = &self.cache, skip(self))]
    async fn get(&self, id: i64) -> Result<String, std::io::Error> {
        self.loads.fetch_add(1, SeqCst);
        Ok(format!("item {id}"))
    }

    #[invalidates(tables = ["repo"], cache = &self.cache)]
    async fn put(&self, fail: bool) -> Result<(), std::io::Error> {
        if fail {
            return Err(std::io::Error::other("write failed"));
        }
        Ok(())
    }
}

#[tokio::test]
async fn self_methods_with_a_cache_expression() {
    let repo = Repo {
        cache: cache(),
        loads: AtomicUsize::new(0),
    };
    assert_eq!(repo.get(1).await.unwrap(), "item 1");
    repo.get(1).await.unwrap();
    assert_eq!(repo.loads.load(SeqCst), 1);
    assert_eq!(repo.cache.stats().hits, 1, "the entry is in `self.cache`");
    repo.put(false).await.unwrap();
    repo.get(1).await.unwrap();
    assert_eq!(repo.loads.load(SeqCst), 2);
}

static PARAM_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(table = "param")]
async fn with_cache_param(id: i64, cache: &Cache) -> i64 {
    PARAM_LOADS.fetch_add(1, SeqCst);
    id
}

#[tokio::test]
async fn a_cache_parameter_is_the_cache_and_not_keyed() {
    let a = cache();
    let b = cache();
    with_cache_param(1, &a).await;
    with_cache_param(1, &a).await;
    assert_eq!(PARAM_LOADS.load(SeqCst), 1);
    assert_eq!((a.entry_count(), b.entry_count()), (Some(1), Some(0)));
    with_cache_param(1, &b).await;
    assert_eq!(PARAM_LOADS.load(SeqCst), 2, "another cache, another entry");
    assert_eq!(b.entry_count(), Some(1));
}

// ----- #[invalidates]: however the write ends, and only when enabled -----

static TRACKED_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(table = "inv")]
async fn tracked(cache: &Cache) -> i64 {
    TRACKED_LOADS.fetch_add(1, SeqCst);
    1
}

#[invalidates(tables = ["inv"])]
async fn write(cache: &Cache, fail: bool) -> MyResult<()> {
    if fail { Err(MyError) } else { Ok(()) }
}

#[invalidates(table = "inv")]
async fn write_unit(cache: &Cache) {}

/// Mechanism: `WriteGuard::finish` runs after any return. An `Err` does not prove that
/// nothing was written.
#[tokio::test]
async fn invalidates_runs_after_any_return() {
    let cache = cache();
    tracked(&cache).await;
    assert!(write(&cache, true).await.is_err());
    tracked(&cache).await;
    assert_eq!(
        TRACKED_LOADS.load(SeqCst),
        2,
        "a failed write invalidates too"
    );
    assert_eq!(cache.stats().invalidations, 1);

    write(&cache, false).await.unwrap();
    tracked(&cache).await;
    assert_eq!(
        TRACKED_LOADS.load(SeqCst),
        3,
        "a successful write invalidates"
    );

    write_unit(&cache).await;
    tracked(&cache).await;
    assert_eq!(
        TRACKED_LOADS.load(SeqCst),
        4,
        "a non-Result write invalidates on return"
    );
}

static OFF_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(table = "off")]
async fn read_off(cache: &Cache) -> i64 {
    OFF_LOADS.fetch_add(1, SeqCst);
    1
}

#[invalidates(tables = ["off"])]
async fn write_off(cache: &Cache) -> Result<(), MyError> {
    Ok(())
}

#[tokio::test]
async fn invalidate_on_write_false_turns_invalidation_off() {
    let cache = cache_with(Settings {
        invalidate_on_write: false,
        ..Settings::default()
    });
    read_off(&cache).await;
    write_off(&cache).await.unwrap();
    read_off(&cache).await;
    assert_eq!(OFF_LOADS.load(SeqCst), 1, "still served from the cache");
    assert_eq!(cache.stats().invalidations, 0);
}

// ----- TTLs -----

#[derive(Clone, Serialize, Deserialize, CacheEntity)]
#[cache(table = "short", ttl = 1)]
struct ShortLived {
    id: i64,
}

static SHORT_LOADS: AtomicUsize = AtomicUsize::new(0);
static BYPASS_LOADS: AtomicUsize = AtomicUsize::new(0);

// No `ttl`: the entity's 1 ms.
#[cached]
async fn short_lived(cache: &Cache) -> ShortLived {
    SHORT_LOADS.fetch_add(1, SeqCst);
    ShortLived { id: 1 }
}

#[cached(table = "t", ttl = false)]
async fn bypassed(cache: &Cache) -> i64 {
    BYPASS_LOADS.fetch_add(1, SeqCst);
    1
}

#[tokio::test]
async fn entity_default_ttl_and_bypass() {
    let cache = cache();
    short_lived(&cache).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    short_lived(&cache).await;
    assert_eq!(
        SHORT_LOADS.load(SeqCst),
        2,
        "expired after the entity's 1 ms"
    );
    assert_eq!(cache.stats().expired, 1);

    bypassed(&cache).await;
    bypassed(&cache).await;
    assert_eq!(BYPASS_LOADS.load(SeqCst), 2);
    assert_eq!(cache.entry_count(), Some(1));
}

static EXPR_TTL_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(table = "t", ttl = ttl)]
async fn ttl_per_call(cache: &Cache, ttl: Ttl) -> i64 {
    EXPR_TTL_LOADS.fetch_add(1, SeqCst);
    1
}

#[tokio::test]
async fn ttl_expression_is_evaluated_per_call() {
    let cache = cache();
    ttl_per_call(&cache, Ttl::Bypass).await;
    assert_eq!(cache.entry_count(), Some(0), "bypass stores nothing");
    ttl_per_call(&cache, Ttl::Forever).await;
    assert_eq!(cache.entry_count(), Some(1));
    assert_eq!(EXPR_TTL_LOADS.load(SeqCst), 2);
}

// ----- a key that fails to serialize runs the body uncached -----

struct FailsToSerialize;

impl Serialize for FailsToSerialize {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("no"))
    }
}

static UNKEYABLE_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(table = "t")]
async fn unkeyable(cache: &Cache, arg: FailsToSerialize) -> i64 {
    let _ = arg;
    UNKEYABLE_LOADS.fetch_add(1, SeqCst);
    5
}

#[tokio::test]
async fn key_errors_fall_back_to_running_the_body() {
    let cache = cache();
    assert_eq!(unkeyable(&cache, FailsToSerialize).await, 5);
    assert_eq!(unkeyable(&cache, FailsToSerialize).await, 5);
    assert_eq!(UNKEYABLE_LOADS.load(SeqCst), 2);
    assert_eq!(cache.entry_count(), Some(0));
}
