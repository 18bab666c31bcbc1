//! One repository, three databases: the same scenarios run on SQLite (a file, always),
//! PostgreSQL (`DATABASE_URL_PG`) and MariaDB/MySQL (`DATABASE_URL_MYSQL`).
//!
//! Each test creates its own tables (`users_<pid>_<n>_<clock>`, ...) and its own `Cache`, and
//! drops the tables when it ends, also when an assertion fails. The cache's table names
//! stay `users` and `posts`: they name what a write invalidates, not the physical table.
//! Query runs are counted with `Cache::stats().loads`.

use std::time::Duration;

use cache_runtime::{Cache, CacheEntity, Settings, cached, invalidates};
use cache_suite::{Dialect, Names, TempDb};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, CacheEntity)]
#[cache(table = "users")]
struct User {
    id: i64,
    name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, CacheEntity)]
#[cache(table = "posts", ttl = "5m")]
struct Post {
    id: i64,
    author_id: i64,
    title: String,
}

fn user(id: i64, name: &str) -> User {
    User {
        id,
        name: name.into(),
    }
}

/// The scenarios, for the `Db`, `DIALECT` and `pool()` of the module they expand in.
macro_rules! scenarios {
    () => {
        use sqlx::Pool;

        use super::*;

        cache_suite::fixture!();

        impl Fx {
            fn loads(&self) -> u64 {
                self.cache.stats().loads
            }
        }

        // ----- the repository -----

        /// Table `users` and no TTL given: both from `User` (60 s default TTL here).
        #[cached(ttl = "60s")]
        async fn find_user(
            pool: &Pool<Db>,
            cache: &Cache,
            t: &Names,
            id: i64,
        ) -> sqlx::Result<Option<User>> {
            let row: Option<(i64, String)> =
                sqlx::query_as(t.sql("SELECT id, name FROM {users} WHERE id = ?"))
                    .bind(id)
                    .fetch_optional(pool)
                    .await?;
            Ok(row.map(|(id, name)| User { id, name }))
        }

        /// A filter; table from `User`.
        #[cached(ttl = "60s")]
        async fn users_like(
            pool: &Pool<Db>,
            cache: &Cache,
            t: &Names,
            prefix: &str,
        ) -> sqlx::Result<Vec<User>> {
            let rows: Vec<(i64, String)> =
                sqlx::query_as(t.sql("SELECT id, name FROM {users} WHERE name LIKE ? ORDER BY id"))
                    .bind(format!("{prefix}%"))
                    .fetch_all(pool)
                    .await?;
            Ok(rows
                .into_iter()
                .map(|(id, name)| User { id, name })
                .collect())
        }

        /// No `ttl` or `table`: both from `Post` (`posts`, 5 minutes).
        #[cached]
        async fn posts_by(
            pool: &Pool<Db>,
            cache: &Cache,
            t: &Names,
            author_id: i64,
        ) -> sqlx::Result<Vec<Post>> {
            let rows: Vec<(i64, i64, String)> = sqlx::query_as(
                t.sql("SELECT id, author_id, title FROM {posts} WHERE author_id = ? ORDER BY id"),
            )
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

        /// A join, cached under both tables until a write to either.
        #[cached(ttl = true, tables = ["users", "posts"])]
        async fn feed(
            pool: &Pool<Db>,
            cache: &Cache,
            t: &Names,
        ) -> sqlx::Result<Vec<(String, String)>> {
            sqlx::query_as(t.sql(
                "SELECT u.name, p.title FROM {posts} p JOIN {users} u ON u.id = p.author_id \
                 ORDER BY p.id",
            ))
            .fetch_all(pool)
            .await
        }

        /// The UPDATE of the `rename*` writes, without invalidating: the rows it changed.
        async fn update_name(pool: &Pool<Db>, t: &Names, id: i64, name: &str) -> sqlx::Result<u64> {
            let done = sqlx::query(t.sql("UPDATE {users} SET name = ? WHERE id = ?"))
                .bind(name)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        }

        #[invalidates(User)]
        async fn rename(
            pool: &Pool<Db>,
            cache: &Cache,
            t: &Names,
            id: i64,
            name: &str,
        ) -> sqlx::Result<u64> {
            update_name(pool, t, id, name).await
        }

        #[invalidates(User)]
        async fn add_user(
            pool: &Pool<Db>,
            cache: &Cache,
            t: &Names,
            id: i64,
            name: &str,
        ) -> sqlx::Result<u64> {
            let done = sqlx::query(t.sql("INSERT INTO {users} (id, name) VALUES (?, ?)"))
                .bind(id)
                .bind(name)
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        }

        /// Commits an UPDATE, then goes on with slow work: a request whose client went away,
        /// or a timeout, drops it there.
        #[invalidates(User)]
        async fn rename_then_linger(
            pool: &Pool<Db>,
            cache: &Cache,
            t: &Names,
            id: i64,
            name: &str,
        ) -> sqlx::Result<u64> {
            let done = update_name(pool, t, id, name).await?;
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            Ok(done)
        }

        #[invalidates(Post)]
        async fn publish(
            pool: &Pool<Db>,
            cache: &Cache,
            t: &Names,
            id: i64,
            author_id: i64,
            title: &str,
        ) -> sqlx::Result<u64> {
            let done =
                sqlx::query(t.sql("INSERT INTO {posts} (id, author_id, title) VALUES (?, ?, ?)"))
                    .bind(id)
                    .bind(author_id)
                    .bind(title)
                    .execute(pool)
                    .await?;
            Ok(done.rows_affected())
        }

        /// Reads a table that does not exist: an error from the database.
        #[cached(table = "users")]
        async fn broken(pool: &Pool<Db>, cache: &Cache, t: &Names) -> sqlx::Result<i64> {
            sqlx::query_scalar(t.sql("SELECT COUNT(*) FROM {users}_missing"))
                .fetch_one(pool)
                .await
        }

        // One count per TTL form.
        macro_rules! count_users {
            ($name:ident, $ttl:literal) => {
                #[cached(table = "users", ttl = $ttl)]
                async fn $name(pool: &Pool<Db>, cache: &Cache, t: &Names) -> sqlx::Result<i64> {
                    sqlx::query_scalar(t.sql("SELECT COUNT(*) FROM {users}"))
                        .fetch_one(pool)
                        .await
                }
            };
        }
        count_users!(count_for_duration, "300ms");
        count_users!(count_for_ms, 300);
        count_users!(count_forever, true);
        count_users!(count_until_future, "2099-01-01T00:00:00Z");
        count_users!(count_until_past, "2000-01-01T00:00:00Z");
        count_users!(count_bypass, false);

        // ----- scenarios -----

        #[tokio::test]
        async fn read_by_id_is_cached_until_a_write() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                let (p, c, t) = (&fx.pool, &fx.cache, &fx.t);
                assert_eq!(find_user(p, c, t, 1).await.unwrap(), Some(user(1, "ada")));
                assert_eq!(find_user(p, c, t, 1).await.unwrap(), Some(user(1, "ada")));
                assert_eq!((fx.loads(), c.stats().hits), (1, 1), "second read is a hit");

                assert_eq!(rename(p, c, t, 1, "lovelace").await.unwrap(), 1);
                assert_eq!(
                    find_user(p, c, t, 1).await.unwrap(),
                    Some(user(1, "lovelace")),
                    "no stale read after the write"
                );
                assert_eq!(fx.loads(), 2);
            })
            .await;
        }

        #[tokio::test]
        async fn read_by_filter_is_cached_until_a_write() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                let (p, c, t) = (&fx.pool, &fx.cache, &fx.t);
                let before = users_like(p, c, t, "g").await.unwrap();
                assert_eq!(before, vec![user(2, "grace")]);
                users_like(p, c, t, "g").await.unwrap();
                assert_eq!(fx.loads(), 1);
                users_like(p, c, t, "e").await.unwrap();
                assert_eq!(fx.loads(), 2, "another argument, another key");

                add_user(p, c, t, 4, "guido").await.unwrap();
                assert_eq!(
                    users_like(p, c, t, "g").await.unwrap(),
                    vec![user(2, "grace"), user(4, "guido")]
                );
                assert_eq!(fx.loads(), 3);
            })
            .await;
        }

        #[tokio::test]
        async fn a_join_is_invalidated_by_a_write_to_either_table() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                let (p, c, t) = (&fx.pool, &fx.cache, &fx.t);
                let first = feed(p, c, t).await.unwrap();
                assert_eq!(first.len(), 3);
                feed(p, c, t).await.unwrap();
                assert_eq!(fx.loads(), 1);
                assert_eq!((c.tracked_keys("users"), c.tracked_keys("posts")), (1, 1));

                rename(p, c, t, 2, "hopper").await.unwrap();
                let renamed = feed(p, c, t).await.unwrap();
                assert_eq!(renamed[1], ("hopper".into(), "compilers".into()));
                assert_eq!(fx.loads(), 2, "a write to `users` invalidates the join");

                publish(p, c, t, 4, 3, "goto").await.unwrap();
                let published = feed(p, c, t).await.unwrap();
                assert_eq!(published.len(), 4);
                assert_eq!(published[3], ("edsger".into(), "goto".into()));
                assert_eq!(fx.loads(), 3, "so does a write to `posts`");
            })
            .await;
        }

        #[tokio::test]
        async fn entity_tables_are_inferred() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                let (p, c, t) = (&fx.pool, &fx.cache, &fx.t);
                assert_eq!(posts_by(p, c, t, 1).await.unwrap().len(), 2);
                posts_by(p, c, t, 1).await.unwrap();
                assert_eq!(fx.loads(), 1);
                assert_eq!((c.tracked_keys("posts"), c.tracked_keys("users")), (1, 0));

                rename(p, c, t, 1, "lovelace").await.unwrap();
                posts_by(p, c, t, 1).await.unwrap();
                assert_eq!(
                    fx.loads(),
                    1,
                    "a write to `users` leaves `posts` reads alone"
                );

                publish(p, c, t, 4, 1, "sketch").await.unwrap();
                assert_eq!(posts_by(p, c, t, 1).await.unwrap().len(), 3);
                assert_eq!(fx.loads(), 2);
            })
            .await;
        }

        #[tokio::test]
        async fn duration_and_millisecond_ttls_expire() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                let (p, c, t) = (&fx.pool, &fx.cache, &fx.t);
                for _ in 0..2 {
                    assert_eq!(count_for_duration(p, c, t).await.unwrap(), 3);
                    assert_eq!(count_for_ms(p, c, t).await.unwrap(), 3);
                }
                assert_eq!(fx.loads(), 2, "both cached within their 300 ms");
                tokio::time::sleep(Duration::from_millis(450)).await;
                count_for_duration(p, c, t).await.unwrap();
                count_for_ms(p, c, t).await.unwrap();
                assert_eq!(fx.loads(), 4);
                assert_eq!(c.stats().expired, 2);
            })
            .await;
        }

        #[tokio::test]
        async fn forever_and_instant_ttls_keep_past_instant_and_false_store_nothing() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                let (p, c, t) = (&fx.pool, &fx.cache, &fx.t);
                for _ in 0..2 {
                    count_forever(p, c, t).await.unwrap();
                    count_until_future(p, c, t).await.unwrap();
                }
                assert_eq!(fx.loads(), 2, "`true` and a future instant cache");

                for _ in 0..2 {
                    count_until_past(p, c, t).await.unwrap();
                    count_bypass(p, c, t).await.unwrap();
                }
                assert_eq!(fx.loads(), 2 + 2, "a past instant stores nothing");
                assert_eq!(c.entry_count(), Some(2), "`false` neither stores nor reads");
                assert_eq!(
                    c.stats().misses,
                    2 + 2,
                    "`false` does not even look (only the two past-instant misses)"
                );

                add_user(p, c, t, 4, "barbara").await.unwrap();
                assert_eq!(
                    count_forever(p, c, t).await.unwrap(),
                    4,
                    "`true` until a write"
                );
                assert_eq!(count_until_future(p, c, t).await.unwrap(), 4);
            })
            .await;
        }

        #[tokio::test]
        async fn none_is_cached_only_with_cache_none() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                let (p, c, t) = (&fx.pool, &fx.cache, &fx.t);
                assert_eq!(find_user(p, c, t, 99).await.unwrap(), None);
                assert_eq!(find_user(p, c, t, 99).await.unwrap(), None);
                assert_eq!(fx.loads(), 1, "`None` is cached by default");
                add_user(p, c, t, 99, "new").await.unwrap();
                assert_eq!(find_user(p, c, t, 99).await.unwrap(), Some(user(99, "new")));
            })
            .await;

            let settings = Settings {
                cache_none: false,
                ..Settings::default()
            };
            let Some(fx) = Fx::setup(settings).await else {
                return;
            };
            fx.run(|fx| async move {
                let (p, c, t) = (&fx.pool, &fx.cache, &fx.t);
                assert_eq!(find_user(p, c, t, 99).await.unwrap(), None);
                assert_eq!(users_like(p, c, t, "zz").await.unwrap(), vec![]);
                assert_eq!(find_user(p, c, t, 99).await.unwrap(), None);
                assert_eq!(users_like(p, c, t, "zz").await.unwrap(), vec![]);
                assert_eq!(fx.loads(), 4, "no `None` or empty result is stored");
                assert_eq!(c.entry_count(), Some(0));
            })
            .await;
        }

        #[tokio::test]
        async fn database_errors_are_never_cached() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                let (p, c, t) = (&fx.pool, &fx.cache, &fx.t);
                for _ in 0..2 {
                    let error = broken(p, c, t).await.unwrap_err();
                    assert!(matches!(error, sqlx::Error::Database(_)), "{error}");
                }
                assert_eq!(fx.loads(), 2, "the failing query ran twice");
                assert_eq!(c.entry_count(), Some(0));
            })
            .await;
        }

        /// Pins (invariant 7): a write cancelled after its statement committed still
        /// invalidates. Mechanism: `WriteGuard` invalidates when the write's future is
        /// dropped. Before, nothing invalidated, and a `ttl = true` read stayed stale for
        /// good.
        #[tokio::test]
        async fn a_write_cancelled_after_it_committed_still_invalidates() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                let (p, c, t) = (&fx.pool, &fx.cache, &fx.t);
                assert_eq!(
                    find_user(p, c, t, 1).await.unwrap().map(|u| u.name),
                    Some("ada".into())
                );
                let write = rename_then_linger(p, c, t, 1, "lovelace");
                let cancelled =
                    tokio::time::timeout(std::time::Duration::from_millis(300), write).await;
                assert!(cancelled.is_err(), "the write was cancelled by the timeout");
                assert_eq!(
                    find_user(p, c, t, 1).await.unwrap().map(|u| u.name),
                    Some("lovelace".into()),
                    "the next read returns the committed row"
                );
            })
            .await;
        }

        /// A write that fails still invalidates: its `Err` does not prove that nothing was
        /// written (a body's first statement may have committed before its second failed).
        #[tokio::test]
        async fn a_failed_write_still_invalidates() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                let (p, c, t) = (&fx.pool, &fx.cache, &fx.t);
                find_user(p, c, t, 1).await.unwrap();

                let error = add_user(p, c, t, 5, "ada").await.unwrap_err();
                let unique = error
                    .as_database_error()
                    .is_some_and(|e| e.is_unique_violation());
                assert!(unique, "a unique-constraint violation: {error}");
                assert_eq!(c.stats().invalidations, 1);
                find_user(p, c, t, 1).await.unwrap();
                assert_eq!((fx.loads(), c.stats().hits), (2, 0), "read again");

                add_user(p, c, t, 5, "alan").await.unwrap();
                assert_eq!(c.stats().invalidations, 2);
                find_user(p, c, t, 1).await.unwrap();
                assert_eq!(fx.loads(), 3);
            })
            .await;
        }

        /// Many tasks on a multi-thread runtime and one pool: each renames its own row and
        /// must read its write back at once, while all of them read shared rows.
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn many_tasks_share_a_pool() {
            const TASKS: i64 = 16;
            const ROUNDS: i64 = 8;
            const READS: u64 = 20;
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                let seed = ["ada", "grace", "edsger"];
                let mut tasks = Vec::new();
                for i in 0..TASKS {
                    let fx = fx.clone();
                    tasks.push(tokio::spawn(async move {
                        let (p, c, t) = (&fx.pool, &fx.cache, &fx.t);
                        let id = 100 + i;
                        add_user(p, c, t, id, &format!("t{i}")).await.unwrap();
                        for n in 0..ROUNDS {
                            let name = format!("t{i}-{n}");
                            rename(p, c, t, id, &name).await.unwrap();
                            let read = find_user(p, c, t, id).await.unwrap();
                            assert_eq!(read, Some(user(id, &name)), "reads its own write");
                            let shared = (i + n) % 3 + 1;
                            let read = find_user(p, c, t, shared).await.unwrap();
                            assert_eq!(read, Some(user(shared, seed[shared as usize - 1])));
                        }
                    }));
                }
                for task in tasks {
                    task.await.unwrap();
                }

                // No writes now: each task misses each key at most once.
                let before = fx.cache.stats();
                let mut tasks = Vec::new();
                for i in 0..TASKS {
                    let fx = fx.clone();
                    tasks.push(tokio::spawn(async move {
                        for n in 0..READS {
                            let id = (i as u64 + n) % 3 + 1;
                            let read = find_user(&fx.pool, &fx.cache, &fx.t, id as i64);
                            assert!(read.await.unwrap().is_some());
                        }
                    }));
                }
                for task in tasks {
                    task.await.unwrap();
                }
                let after = fx.cache.stats();
                let reads = TASKS as u64 * READS;
                let misses = after.misses - before.misses;
                assert_eq!(after.hits - before.hits + misses, reads);
                assert!(misses <= 3 * TASKS as u64, "{misses} misses");
                assert!(after.loads - before.loads <= misses);
            })
            .await;
        }
    };
}

mod sqlite {
    type Db = sqlx::Sqlite;
    const DIALECT: Dialect = Dialect::Sqlite;

    async fn pool() -> Option<(sqlx::Pool<Db>, Option<TempDb>)> {
        let (pool, file) = cache_suite::sqlite(4).await;
        Some((pool, Some(file)))
    }

    scenarios!();
}

mod postgres {
    type Db = sqlx::Postgres;
    const DIALECT: Dialect = Dialect::Postgres;

    async fn pool() -> Option<(sqlx::Pool<Db>, Option<TempDb>)> {
        Some((cache_suite::connect(cache_suite::PG, 8).await?, None))
    }

    scenarios!();
}

mod mariadb {
    type Db = sqlx::MySql;
    const DIALECT: Dialect = Dialect::MySql;

    async fn pool() -> Option<(sqlx::Pool<Db>, Option<TempDb>)> {
        Some((cache_suite::connect(cache_suite::MYSQL, 8).await?, None))
    }

    scenarios!();
}
