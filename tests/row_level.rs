//! Row-level invalidation (`cache_runtime::rows`): a read of one row by id follows that
//! row; a write whose rows the macro can see invalidates those rows and the table's other
//! reads (lists), and every other write the whole table. Each test names the mechanism
//! whose removal makes it fail; the property test checks, for any sequence of reads and
//! writes, that every read returns what the database holds.
//!
//! Tests run one at a time (`one_at_a_time`): an invalidation reaches every cache of the
//! process, and they share table names.

use cache_runtime::{Cache, Settings, Transaction, cached, invalidates};
use cache_suite::one_at_a_time;
use proptest::prelude::*;
use sqlx::SqlitePool;

type Article = (i64, String, i64);

async fn database() -> SqlitePool {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("an in-memory database");
    for sql in [
        "CREATE TABLE rl_articles (id INTEGER PRIMARY KEY, title TEXT NOT NULL, views INTEGER NOT NULL DEFAULT 0)",
        "INSERT INTO rl_articles (id, title) VALUES (1, 'one'), (2, 'two'), (3, 'three')",
    ] {
        sqlx::query(sql).execute(&pool).await.expect("schema");
    }
    pool
}

fn cache() -> Cache {
    Cache::new(Settings {
        row_level: true,
        ..Settings::default()
    })
    .expect("valid settings")
}

// ----- reads -----

#[cached(ttl = true)]
async fn article(cache: &Cache, pool: &SqlitePool, id: i64) -> sqlx::Result<Option<Article>> {
    sqlx::query_as("SELECT id, title, views FROM rl_articles WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
}

#[cached(ttl = true)]
async fn titles(cache: &Cache, pool: &SqlitePool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT title FROM rl_articles ORDER BY id")
        .fetch_all(pool)
        .await
}

// ----- writes whose rows are known -----

#[invalidates]
async fn retitle(cache: &Cache, pool: &SqlitePool, id: i64, title: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE rl_articles SET title = ? WHERE id = ?")
        .bind(title)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Two integers bound: the id is the second `?`.
#[invalidates]
async fn set_views(cache: &Cache, pool: &SqlitePool, views: i64, id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE rl_articles SET views = ? WHERE id = ?")
        .bind(views)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

#[invalidates]
async fn insert(cache: &Cache, pool: &SqlitePool, id: i64, title: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO rl_articles (id, title) VALUES (?, ?)")
        .bind(id)
        .bind(title)
        .execute(pool)
        .await?;
    Ok(())
}

#[invalidates]
async fn delete(cache: &Cache, pool: &SqlitePool, id: i64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM rl_articles WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

// ----- writes whose rows are not known -----

#[invalidates]
async fn insert_next(cache: &Cache, pool: &SqlitePool, title: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO rl_articles (title) VALUES (?)")
        .bind(title)
        .execute(pool)
        .await?;
    Ok(())
}

#[invalidates]
async fn retitle_all(cache: &Cache, pool: &SqlitePool, from: &str, to: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE rl_articles SET title = ? WHERE title = ?")
        .bind(to)
        .bind(from)
        .execute(pool)
        .await?;
    Ok(())
}

/// Writes the row after `id`: the id bound is not the parameter.
#[invalidates]
async fn retitle_next(cache: &Cache, pool: &SqlitePool, id: i64, title: &str) -> sqlx::Result<()> {
    let id = id + 1;
    sqlx::query("UPDATE rl_articles SET title = ? WHERE id = ?")
        .bind(title)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

#[invalidates]
async fn retitle_in(
    tx: &mut Transaction<'_, sqlx::Sqlite>,
    id: i64,
    title: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE rl_articles SET title = ? WHERE id = ?")
        .bind(title)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A trigger (declared in `also`) writes other rows of the same table.
#[invalidates(also = ["rl_articles"])]
async fn retitle_with_trigger(
    cache: &Cache,
    pool: &SqlitePool,
    id: i64,
    title: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE rl_articles SET title = ? WHERE id = ?")
        .bind(title)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

async fn title(cache: &Cache, pool: &SqlitePool, id: i64) -> Option<String> {
    article(cache, pool, id)
        .await
        .expect("the query succeeds")
        .map(|(_, title, _)| title)
}

async fn loads_of<F: std::future::Future>(cache: &Cache, f: F) -> (F::Output, u64) {
    let before = cache.stats().loads;
    let out = f.await;
    (out, cache.stats().loads - before)
}

/// Mechanism: the read is tagged with its row (`KeyArgs::row`), the write invalidates its
/// row's bucket and the table, not the all-rows tag (`Written::names`). Table-level, the
/// read of article 1 was reloaded.
#[tokio::test]
async fn a_write_to_one_row_leaves_reads_of_other_rows_fresh() {
    let _one = one_at_a_time().await;
    let (cache, pool) = (cache(), database().await);
    title(&cache, &pool, 1).await;
    title(&cache, &pool, 2).await;
    titles(&cache, &pool).await.expect("query");

    retitle(&cache, &pool, 2, "two, edited")
        .await
        .expect("write");

    let (one, loads) = loads_of(&cache, title(&cache, &pool, 1)).await;
    assert_eq!(
        (one.as_deref(), loads),
        (Some("one"), 0),
        "another row: a hit"
    );
    let (two, loads) = loads_of(&cache, title(&cache, &pool, 2)).await;
    assert_eq!(
        (two.as_deref(), loads),
        (Some("two, edited"), 1),
        "its row: reloaded"
    );
    let (list, loads) = loads_of(&cache, titles(&cache, &pool)).await;
    assert_eq!(
        list.expect("query")[1],
        "two, edited",
        "a list follows the table"
    );
    assert_eq!(loads, 1);
}

/// Mechanism: `?` placeholders are mapped to their binds in order (`rows::slot_of`). Taking
/// the first integer bound (the views) as the id would invalidate article 5's bucket and
/// leave article 1 stale.
#[tokio::test]
async fn the_id_is_the_value_bound_to_its_placeholder() {
    let _one = one_at_a_time().await;
    let (cache, pool) = (cache(), database().await);
    assert_eq!(
        article(&cache, &pool, 1).await.expect("query").map(|a| a.2),
        Some(0)
    );
    set_views(&cache, &pool, 5, 1).await.expect("write");
    assert_eq!(
        article(&cache, &pool, 1).await.expect("query").map(|a| a.2),
        Some(5)
    );
}

/// Mechanism: an `INSERT` of one row with its id invalidates that row. A cached `None`
/// ("no article 9") would otherwise outlive the article.
#[tokio::test]
async fn an_insert_invalidates_the_absence_of_its_row() {
    let _one = one_at_a_time().await;
    let (cache, pool) = (cache(), database().await);
    assert_eq!(title(&cache, &pool, 9).await, None);
    title(&cache, &pool, 1).await;
    insert(&cache, &pool, 9, "nine").await.expect("write");
    assert_eq!(title(&cache, &pool, 9).await.as_deref(), Some("nine"));
    let (_, loads) = loads_of(&cache, title(&cache, &pool, 1)).await;
    assert_eq!(loads, 0, "another row stays fresh");
}

/// Mechanism: an `INSERT` without an id writes a row the macro cannot name: every read of
/// one row goes stale (the all-rows tag). Row 4 did not exist when its `None` was cached.
#[tokio::test]
async fn an_insert_without_its_id_invalidates_every_row() {
    let _one = one_at_a_time().await;
    let (cache, pool) = (cache(), database().await);
    assert_eq!(title(&cache, &pool, 4).await, None);
    insert_next(&cache, &pool, "four").await.expect("write");
    assert_eq!(title(&cache, &pool, 4).await.as_deref(), Some("four"));
}

/// Mechanism: a write by anything but the id follows the table (`rows::row_write`).
#[tokio::test]
async fn a_write_by_another_column_invalidates_every_row() {
    let _one = one_at_a_time().await;
    let (cache, pool) = (cache(), database().await);
    assert_eq!(title(&cache, &pool, 3).await.as_deref(), Some("three"));
    retitle_all(&cache, &pool, "three", "3")
        .await
        .expect("write");
    assert_eq!(title(&cache, &pool, 3).await.as_deref(), Some("3"));
}

/// Mechanism: an id the body rebinds before binding it is not taken from the parameter
/// (`row_arg::param_value`). Taken, the write of row 2 invalidated row 1's bucket.
#[tokio::test]
async fn an_id_the_body_recomputes_follows_the_table() {
    let _one = one_at_a_time().await;
    let (cache, pool) = (cache(), database().await);
    assert_eq!(title(&cache, &pool, 2).await.as_deref(), Some("two"));
    retitle_next(&cache, &pool, 1, "deux").await.expect("write");
    assert_eq!(title(&cache, &pool, 2).await.as_deref(), Some("deux"));
}

/// Mechanism: a table in `also` is written by something the SQL does not show, so the
/// write covers its every row (`invalidates::check`). Row-level, the trigger's change to
/// article 3 was never seen.
#[tokio::test]
async fn a_table_written_by_a_trigger_too_is_invalidated_whole() {
    let _one = one_at_a_time().await;
    let (cache, pool) = (cache(), database().await);
    sqlx::query(
        "CREATE TRIGGER rl_touch AFTER UPDATE OF title ON rl_articles WHEN NEW.id = 1 \
         BEGIN UPDATE rl_articles SET views = views + 1 WHERE id = 3; END",
    )
    .execute(&pool)
    .await
    .expect("trigger");
    assert_eq!(
        article(&cache, &pool, 3).await.expect("query").map(|a| a.2),
        Some(0)
    );
    retitle_with_trigger(&cache, &pool, 1, "uno")
        .await
        .expect("write");
    assert_eq!(
        article(&cache, &pool, 3).await.expect("query").map(|a| a.2),
        Some(1)
    );
}

/// Mechanism: `Cache::invalidate` (a database event, a hand-written write, a transaction's
/// commit) adds the all-rows tag (`rows::with_all_rows`).
#[tokio::test]
async fn a_table_invalidation_reaches_reads_of_rows() {
    let _one = one_at_a_time().await;
    let (cache, pool) = (cache(), database().await);
    assert_eq!(title(&cache, &pool, 1).await.as_deref(), Some("one"));
    sqlx::query("UPDATE rl_articles SET title = 'uno' WHERE id = 1")
        .execute(&pool)
        .await
        .expect("write");
    cache.invalidate(&["rl_articles"]).await;
    assert_eq!(title(&cache, &pool, 1).await.as_deref(), Some("uno"));

    // A write of a known row inside a transaction: invalidated whole at its commit.
    let mut tx = cache.begin(&pool).await.expect("begin");
    retitle_in(&mut tx, 1, "eins").await.expect("write");
    tx.commit().await.expect("commit");
    assert_eq!(title(&cache, &pool, 1).await.as_deref(), Some("eins"));
}

/// Mechanism: a write names its rows by the writer's setting, and a reader's row tags are
/// bumped either way: a process with `row_level` off invalidates whole tables, which
/// reach the row reads of a process with it on.
#[tokio::test]
async fn a_writer_with_row_level_off_still_reaches_row_reads() {
    let _one = one_at_a_time().await;
    let reader = cache();
    let writer = Cache::new(Settings {
        row_level: false,
        ..Settings::default()
    })
    .expect("valid settings");
    let pool = database().await;
    assert_eq!(title(&reader, &pool, 1).await.as_deref(), Some("one"));
    title(&reader, &pool, 2).await;
    retitle(&writer, &pool, 1, "first").await.expect("write");
    assert_eq!(title(&reader, &pool, 1).await.as_deref(), Some("first"));
    let (_, loads) = loads_of(&reader, title(&reader, &pool, 2)).await;
    assert_eq!(loads, 1, "row_level off: the whole table");
}

/// Mechanism: row tags are names like any table's, so a shared backend keeps their
/// versions and tracks their keys: a write through one instance invalidates that row for
/// every instance, and only that row (and the table's lists).
#[tokio::test]
async fn through_redis_a_row_write_reaches_every_instance_and_only_its_row() {
    use cache_redis::{RedisBackend, RedisOptions};
    let Some(url) = cache_suite::database_url("REDIS_URL") else {
        return;
    };
    let _one = one_at_a_time().await;
    let namespace = format!("cache-suite-rows-{}", cache_suite::unique_suffix());
    let instance = || async {
        let backend = RedisBackend::connect(&url, RedisOptions::default())
            .await
            .unwrap_or_else(|e| panic!("REDIS_URL is set but {url} cannot be reached: {e}"));
        let settings = Settings {
            namespace: namespace.clone(),
            row_level: true,
            ..Settings::default()
        };
        Cache::with_shared_backend(settings, backend).expect("valid settings")
    };
    let (a, b, pool) = (instance().await, instance().await, database().await);
    title(&a, &pool, 1).await;
    title(&a, &pool, 2).await;
    titles(&a, &pool).await.expect("query");
    retitle(&b, &pool, 2, "deux").await.expect("write");

    let (one, loads) = loads_of(&a, title(&a, &pool, 1)).await;
    let (two, reloads) = loads_of(&a, title(&a, &pool, 2)).await;
    let (list, list_loads) = loads_of(&a, titles(&a, &pool)).await;
    a.clear().await;
    assert_eq!(
        (one.as_deref(), loads),
        (Some("one"), 0),
        "another row: a hit"
    );
    assert_eq!((two.as_deref(), reloads), (Some("deux"), 1));
    assert_eq!((list.expect("query")[1].as_str(), list_loads), ("deux", 1));
}

/// Reads one article and every title through a helper the macro cannot see into.
#[cached(tables = ["rl_articles"], ttl = true)]
async fn page(cache: &Cache, pool: &SqlitePool, id: i64) -> sqlx::Result<(String, Vec<String>)> {
    let title: String = sqlx::query_scalar("SELECT title FROM rl_articles WHERE id = ?")
        .bind(id)
        .fetch_one(pool)
        .await?;
    let all = all_titles(pool).await?;
    Ok((title, all))
}

async fn all_titles(pool: &SqlitePool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT title FROM rl_articles ORDER BY id")
        .fetch_all(pool)
        .await
}

/// Mechanism: a read is of one row only when all of its SQL is seen
/// (`analysis.complete()` in `cached.rs`). Taken as a read of article 1, `page` kept the
/// old list after article 2 changed.
#[tokio::test]
async fn a_read_that_awaits_a_helper_follows_the_table() {
    let _one = one_at_a_time().await;
    let (cache, pool) = (cache(), database().await);
    assert_eq!(page(&cache, &pool, 1).await.expect("query").1[1], "two");
    retitle(&cache, &pool, 2, "zwei").await.expect("write");
    assert_eq!(page(&cache, &pool, 1).await.expect("query").1[1], "zwei");
}

/// Mechanism: `row_level` is off by default: a foreign key from a table to itself
/// (`ON DELETE CASCADE`), which the macro cannot see, deletes other rows of the table, and
/// the whole table is invalidated.
#[tokio::test]
async fn by_default_a_cascade_within_the_table_is_seen() {
    let _one = one_at_a_time().await;
    let cache = Cache::new(Settings::default()).expect("valid settings");
    let pool = database().await;
    for sql in [
        "PRAGMA foreign_keys = ON",
        "CREATE TABLE rl_comments (id INTEGER PRIMARY KEY, parent INTEGER \
         REFERENCES rl_comments(id) ON DELETE CASCADE, body TEXT NOT NULL)",
        "INSERT INTO rl_comments (id, parent, body) VALUES (1, NULL, 'top'), (2, 1, 'reply')",
    ] {
        sqlx::query(sql).execute(&pool).await.expect("schema");
    }
    assert_eq!(
        comment(&cache, &pool, 2).await.expect("query").as_deref(),
        Some("reply")
    );
    delete_comment(&cache, &pool, 1).await.expect("write");
    assert_eq!(
        comment(&cache, &pool, 2).await.expect("query"),
        None,
        "cascaded"
    );
}

#[cached(ttl = true)]
async fn comment(cache: &Cache, pool: &SqlitePool, id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT body FROM rl_comments WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
}

#[invalidates]
async fn delete_comment(cache: &Cache, pool: &SqlitePool, id: i64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM rl_comments WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

#[cached(ttl = true)]
async fn auto_row(cache: &Cache, pool: &sqlx::MySqlPool, id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT title FROM rl_auto WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
}

#[invalidates]
async fn insert_auto(
    cache: &Cache,
    pool: &sqlx::MySqlPool,
    id: i64,
    title: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO rl_auto (id, title) VALUES (?, ?)")
        .bind(id)
        .bind(title)
        .execute(pool)
        .await?;
    Ok(())
}

/// Mechanism: an `INSERT` with id 0 names no row (`Written::add_inserted`): MariaDB gives
/// the row the next `AUTO_INCREMENT` id, whose cached "no such row" must go.
#[tokio::test]
async fn on_mariadb_an_insert_with_id_0_invalidates_every_row() {
    let Some(pool) = cache_suite::connect::<sqlx::MySql>(cache_suite::MYSQL, 1).await else {
        return;
    };
    let _one = one_at_a_time().await;
    let cache = cache();
    for sql in [
        "DROP TABLE IF EXISTS rl_auto",
        "CREATE TABLE rl_auto (id BIGINT AUTO_INCREMENT PRIMARY KEY, title TEXT NOT NULL)",
        "INSERT INTO rl_auto (id, title) VALUES (1, 'one')",
    ] {
        sqlx::query(sql).execute(&pool).await.expect("schema");
    }
    assert_eq!(auto_row(&cache, &pool, 2).await.expect("query"), None);
    insert_auto(&cache, &pool, 0, "two").await.expect("write");
    let got = auto_row(&cache, &pool, 2).await.expect("query");
    sqlx::query("DROP TABLE rl_auto")
        .execute(&pool)
        .await
        .expect("cleanup");
    assert_eq!(got.as_deref(), Some("two"));
}

// ----- any sequence of reads and writes -----

#[derive(Clone, Debug)]
enum Op {
    Read,
    List,
    Retitle(i64, u8),
    SetViews(i64, i64),
    Insert(i64),
    InsertNext,
    Delete(i64),
    RetitleAll(u8),
    RetitleNext(i64, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0_i64..8;
    prop_oneof![
        3 => Just(Op::Read),
        1 => Just(Op::List),
        2 => (id.clone(), any::<u8>()).prop_map(|(i, t)| Op::Retitle(i, t)),
        2 => (0_i64..8, id.clone()).prop_map(|(v, i)| Op::SetViews(v, i)),
        1 => id.clone().prop_map(Op::Insert),
        1 => Just(Op::InsertNext),
        1 => id.clone().prop_map(Op::Delete),
        1 => any::<u8>().prop_map(Op::RetitleAll),
        1 => (id, any::<u8>()).prop_map(|(i, t)| Op::RetitleNext(i, t)),
    ]
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (cache, pool) = (cache(), database().await);
    for op in ops {
        let t = |n: u8| format!("t{}", n % 4);
        // A write may fail (a duplicate id): it still invalidates.
        match op {
            Op::Read | Op::List => {}
            Op::Retitle(id, n) => drop(retitle(&cache, &pool, id, &t(n)).await),
            Op::SetViews(v, id) => drop(set_views(&cache, &pool, v, id).await),
            Op::Insert(id) => drop(insert(&cache, &pool, id, "new").await),
            Op::InsertNext => drop(insert_next(&cache, &pool, "next").await),
            Op::Delete(id) => drop(delete(&cache, &pool, id).await),
            Op::RetitleAll(n) => {
                drop(retitle_all(&cache, &pool, &t(n), &t(n.wrapping_add(1))).await)
            }
            Op::RetitleNext(id, n) => drop(retitle_next(&cache, &pool, id, &t(n)).await),
        }
        // Every read, cached or not, returns what the database holds.
        for id in 0..10 {
            let cached = article(&cache, &pool, id).await.expect("query");
            let truth: Option<Article> =
                sqlx::query_as("SELECT id, title, views FROM rl_articles WHERE id = ?")
                    .bind(id)
                    .fetch_optional(&pool)
                    .await
                    .expect("query");
            prop_assert_eq!(cached, truth, "article {}", id);
        }
        let truth: Vec<String> = sqlx::query_scalar("SELECT title FROM rl_articles ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("query");
        prop_assert_eq!(titles(&cache, &pool).await.expect("query"), truth);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Mechanism: all of the above together: the placeholder mapping (`rows::slot_of`) and
    /// the rebinding check (`row_arg::param_value`) each make it fail when removed.
    #[test]
    fn every_read_returns_what_the_database_holds(ops in proptest::collection::vec(op(), 1..24)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let _one = one_at_a_time().await;
            run(ops).await
        })?;
    }
}
