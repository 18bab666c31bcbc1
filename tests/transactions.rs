//! Commit-time invalidation with `cache_runtime::Transaction`, on SQLite (a WAL file),
//! PostgreSQL (`DATABASE_URL_PG`) and MariaDB/MySQL (`DATABASE_URL_MYSQL`).
//!
//! Every test uses two connections: the transaction's, and the pool's others for reads
//! "from elsewhere". The interleavings are fixed, so each test fails deterministically when
//! its mechanism is removed: a read made while the transaction is open caches the old row
//! (the write is not visible yet), so only an invalidation after `COMMIT` makes the next
//! read see the new one.

use std::future::Future;
use std::task::Poll;

use cache_runtime::{Cache, CacheEntity, Settings, Transaction, cached, invalidates};
use cache_suite::{Dialect, Names, TempDb};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, CacheEntity)]
#[cache(table = "users")]
struct User {
    id: i64,
    name: String,
}

macro_rules! transaction_tests {
    () => {
        use sqlx::Pool;

        use super::*;

        cache_suite::fixture!();

        impl Fx {
            /// `find_user(id)` through the pool, i.e. another connection than a
            /// transaction's: the name, and whether the cache served it.
            async fn read(&self, id: i64) -> (Option<String>, bool) {
                let hits = self.cache.stats().hits;
                let user = find_user(&self.pool, &self.cache, &self.t, id)
                    .await
                    .unwrap();
                (user.map(|u| u.name), self.cache.stats().hits > hits)
            }
        }

        /// The read every cached function below runs, through whichever executor it has.
        async fn select_user<'e>(
            db: impl sqlx::Executor<'e, Database = Db>,
            t: &Names,
            id: i64,
        ) -> sqlx::Result<Option<User>> {
            let row: Option<(i64, String)> =
                sqlx::query_as(t.sql("SELECT id, name FROM {users} WHERE id = ?"))
                    .bind(id)
                    .fetch_optional(db)
                    .await?;
            Ok(row.map(|(id, name)| User { id, name }))
        }

        /// The write every `rename*` function below runs: the rows it changed.
        async fn update_name<'e>(
            db: impl sqlx::Executor<'e, Database = Db>,
            t: &Names,
            id: i64,
            name: &str,
        ) -> sqlx::Result<u64> {
            let done = sqlx::query(t.sql("UPDATE {users} SET name = ? WHERE id = ?"))
                .bind(name)
                .bind(id)
                .execute(db)
                .await?;
            Ok(done.rows_affected())
        }

        #[cached(ttl = true)]
        async fn find_user(
            pool: &Pool<Db>,
            cache: &Cache,
            t: &Names,
            id: i64,
        ) -> sqlx::Result<Option<User>> {
            select_user(pool, t, id).await
        }

        /// The same read through a transaction (same key space: `tx` is not keyed).
        #[cached(ttl = true)]
        async fn find_user_in(
            tx: &mut Transaction<'_, Db>,
            cache: &Cache,
            t: &Names,
            id: i64,
        ) -> sqlx::Result<Option<User>> {
            select_user(&mut **tx, t, id).await
        }

        /// The same read through a connection, however it arrives: `&mut *tx`, a generic
        /// executor, the database's own executor trait, `impl Acquire`. None of them is
        /// keyed, and each one that is inside a transaction must run uncached.
        #[cached(ttl = true)]
        async fn find_user_conn(
            conn: &mut <Db as sqlx::Database>::Connection,
            cache: &Cache,
            t: &Names,
            id: i64,
        ) -> sqlx::Result<Option<User>> {
            select_user(conn, t, id).await
        }

        #[cached(ttl = true)]
        async fn find_user_generic<'e, E>(
            db: E,
            cache: &Cache,
            t: &Names,
            id: i64,
        ) -> sqlx::Result<Option<User>>
        where
            E: sqlx::Executor<'e, Database = Db>,
        {
            select_user(db, t, id).await
        }

        #[cached(ttl = true)]
        async fn find_user_db_executor(
            db: impl DbExecutor<'_>,
            cache: &Cache,
            t: &Names,
            id: i64,
        ) -> sqlx::Result<Option<User>> {
            select_user(db, t, id).await
        }

        #[cached(ttl = true)]
        async fn find_user_acquire<'a, A: sqlx::Acquire<'a, Database = Db>>(
            db: A,
            cache: &Cache,
            t: &Names,
            id: i64,
        ) -> sqlx::Result<Option<User>> {
            let mut conn = db.acquire().await?;
            select_user(&mut *conn, t, id).await
        }

        /// Registers `users` on the transaction; invalidates after its COMMIT.
        #[invalidates(User)]
        async fn rename_in(
            tx: &mut Transaction<'_, Db>,
            t: &Names,
            id: i64,
            name: &str,
        ) -> sqlx::Result<u64> {
            update_name(&mut **tx, t, id, name).await
        }

        #[invalidates(User)]
        async fn add_user_in(
            tx: &mut Transaction<'_, Db>,
            t: &Names,
            id: i64,
            name: &str,
        ) -> sqlx::Result<u64> {
            let done = sqlx::query(t.sql("INSERT INTO {users} (id, name) VALUES (?, ?)"))
                .bind(id)
                .bind(name)
                .execute(&mut **tx)
                .await?;
            Ok(done.rows_affected())
        }

        /// Takes the transaction by value and commits it.
        #[invalidates(User)]
        async fn rename_and_commit(
            mut tx: Transaction<'static, Db>,
            t: &Names,
            id: i64,
            name: &str,
        ) -> sqlx::Result<()> {
            sqlx::query(t.sql("UPDATE {users} SET name = ? WHERE id = ?"))
                .bind(name)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }

        /// The write of `rename_in`, given the connection instead of the transaction, in
        /// each form SQLx code passes one: `&mut *tx` as a connection, a generic executor,
        /// the database's own executor trait, `impl Acquire`.
        #[invalidates(User)]
        async fn rename_conn(
            conn: &mut <Db as sqlx::Database>::Connection,
            t: &Names,
            id: i64,
            name: &str,
        ) -> sqlx::Result<u64> {
            update_name(conn, t, id, name).await
        }

        #[invalidates(User)]
        async fn rename_generic<'e, E>(db: E, t: &Names, id: i64, name: &str) -> sqlx::Result<u64>
        where
            E: sqlx::Executor<'e, Database = Db>,
        {
            update_name(db, t, id, name).await
        }

        #[invalidates(User)]
        async fn rename_db_executor(
            db: impl DbExecutor<'_>,
            t: &Names,
            id: i64,
            name: &str,
        ) -> sqlx::Result<u64> {
            update_name(db, t, id, name).await
        }

        #[invalidates(User)]
        async fn rename_acquire<'a, A: sqlx::Acquire<'a, Database = Db>>(
            db: A,
            t: &Names,
            id: i64,
            name: &str,
        ) -> sqlx::Result<u64> {
            let mut conn = db.acquire().await?;
            update_name(&mut *conn, t, id, name).await
        }

        /// A repository built over a transaction's connection.
        struct Repo<'c> {
            conn: &'c mut <Db as sqlx::Database>::Connection,
            cache: &'c Cache,
            t: &'c Names,
            tenant: i64,
        }

        impl Repo<'_> {
            #[invalidates(User, cache = self.cache)]
            async fn rename(&mut self, id: i64, name: &str) -> sqlx::Result<u64> {
                update_name(&mut *self.conn, self.t, id, name).await
            }

            /// Keyed by `self_key`: the connection is still asked whether it is inside
            /// a transaction.
            #[cached(ttl = true, self_key = self.tenant, cache = self.cache)]
            async fn find(&mut self, id: i64) -> sqlx::Result<Option<User>> {
                select_user(&mut *self.conn, self.t, id).await
            }
        }

        /// A connection one struct down, under a field the body also reads as a whole.
        struct Handles<'c> {
            conn: &'c mut <Db as sqlx::Database>::Connection,
            label: &'static str,
        }

        impl Handles<'_> {
            fn label(&self) -> &'static str {
                self.label
            }
        }

        struct NestedRepo<'c> {
            db: Handles<'c>,
            cache: &'c Cache,
            t: &'c Names,
            tenant: i64,
        }

        impl NestedRepo<'_> {
            #[cached(ttl = true, self_key = self.tenant, cache = self.cache)]
            async fn find(&mut self, id: i64) -> sqlx::Result<Option<User>> {
                let _ = self.db.label();
                select_user(&mut *self.db.conn, self.t, id).await
            }
        }

        /// Pins: a write given the connection of a cache `Transaction` (`&mut *tx`), in
        /// any form, registers on that transaction and invalidates after its COMMIT (it
        /// invalidates as it returns too). Mechanism: the transaction binds its
        /// connection's address as it hands it out, and `#[invalidates]` looks the
        /// connection up (`__private::connection_write`). Without it the only invalidation
        /// comes before COMMIT: the read made in between caches the old row, and it is
        /// served after COMMIT.
        #[tokio::test]
        async fn a_write_through_the_transactions_connection_invalidates_after_commit() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run_local(|fx| async move {
                let t = &fx.t;
                for (form, name) in ["conn", "generic", "db_executor", "acquire", "repo"]
                    .into_iter()
                    .enumerate()
                {
                    let before = fx.read(1).await.0;
                    let mut tx = fx.cache.begin(&fx.pool).await.unwrap();
                    let written = match form {
                        0 => rename_conn(&mut tx, t, 1, name).await,
                        1 => rename_generic(&mut *tx, t, 1, name).await,
                        2 => rename_db_executor(&mut *tx, t, 1, name).await,
                        3 => rename_acquire(&mut *tx, t, 1, name).await,
                        _ => {
                            let mut repo = Repo {
                                conn: &mut tx,
                                cache: &fx.cache,
                                t,
                                tenant: 0,
                            };
                            repo.rename(1, name).await
                        }
                    };
                    assert_eq!(written.unwrap(), 1, "{name}");
                    assert!(tx.has_written(), "{name}: registered on the transaction");
                    assert_eq!(fx.read(1).await.0, before, "{name}: the old row");
                    assert_eq!(
                        fx.read(1).await,
                        (before, true),
                        "{name}: the old row, cached"
                    );
                    tx.commit().await.unwrap();
                    assert_eq!(
                        fx.read(1).await,
                        (Some(name.to_string()), false),
                        "{name}: after COMMIT, the new row"
                    );
                }
            })
            .await;
        }

        /// Pins: a savepoint borrows its transaction's connection, so a write through
        /// `&mut *savepoint` registers on the savepoint; released, it hands the tables to
        /// the transaction, which invalidates them after its COMMIT.
        #[tokio::test]
        async fn a_write_through_a_savepoints_connection_waits_for_the_outer_commit() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                let t = &fx.t;
                assert_eq!(fx.read(1).await, (Some("ada".into()), false));
                let mut tx = fx.cache.begin(&fx.pool).await.unwrap();
                rename_conn(&mut tx, t, 2, "before savepoint")
                    .await
                    .unwrap();
                let mut savepoint = tx.begin().await.unwrap();
                rename_conn(&mut savepoint, t, 1, "in savepoint")
                    .await
                    .unwrap();
                savepoint.commit().await.unwrap();
                assert_eq!(fx.read(1).await.0.as_deref(), Some("ada"));
                assert_eq!(fx.read(1).await, (Some("ada".into()), true), "cached");
                tx.commit().await.unwrap();
                assert_eq!(fx.read(1).await, (Some("in savepoint".into()), false));
            })
            .await;
        }

        /// Pins: the latest binding of a connection address wins. A transaction moved
        /// away leaves its binding behind; another one whose connection now lives at the
        /// same address must take its own writes, or they would wait for the first one's
        /// end (and be forgotten when it rolls back). Without it, the write below is never
        /// invalidated and the old row is served after COMMIT.
        #[tokio::test]
        async fn a_moved_transaction_never_takes_another_ones_writes() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                let t = &fx.t;
                assert_eq!(fx.read(1).await, (Some("ada".into()), false));
                let mut slot = Some(fx.cache.begin(&fx.pool).await.unwrap());
                let first = std::ptr::from_mut(&mut **slot.as_mut().unwrap()).addr();
                let moved = slot.take().unwrap();
                slot = Some(fx.cache.begin(&fx.pool).await.unwrap());
                let tx = slot.as_mut().unwrap();
                assert_eq!(
                    std::ptr::from_mut(&mut **tx).addr(),
                    first,
                    "the second transaction's connection lives where the first one's did"
                );
                rename_conn(tx, t, 1, "lovelace").await.unwrap();
                moved.rollback().await.unwrap();
                assert_eq!(fx.read(1).await.0.as_deref(), Some("ada"));
                assert_eq!(fx.read(1).await, (Some("ada".into()), true), "cached");
                slot.take().unwrap().commit().await.unwrap();
                assert_eq!(fx.read(1).await, (Some("lovelace".into()), false));
            })
            .await;
        }

        /// Pins: a write given the connection of a transaction the cache does not know
        /// (a plain `sqlx::Transaction`'s `&mut *tx`) still invalidates, as it returns:
        /// nothing would after its COMMIT. (It also logs a warning naming the call site.)
        #[tokio::test]
        async fn a_write_through_an_unknown_transactions_connection_invalidates_at_once() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                assert_eq!(fx.read(1).await, (Some("ada".into()), false));
                let mut tx = fx.pool.begin().await.unwrap();
                rename_conn(&mut tx, &fx.t, 1, "lovelace").await.unwrap();
                assert_eq!(fx.cache.stats().invalidations, 1);
                tx.commit().await.unwrap();
                assert_eq!(fx.read(1).await, (Some("lovelace".into()), false));
            })
            .await;
        }

        /// Pins: a cached method keyed by `self_key` still asks the connection in `self`
        /// whether it is inside a transaction: a repository built over `&mut *tx` neither
        /// reads nor fills the cache. Mechanism: the fields of `self` the body reads are
        /// probed even when they are not keyed. Without it, the uncommitted row is cached
        /// and served to the pool after ROLLBACK.
        #[tokio::test]
        async fn a_self_keyed_repository_over_a_transaction_stores_nothing() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                let t = &fx.t;
                let mut tx = fx.cache.begin(&fx.pool).await.unwrap();
                let mut repo = Repo {
                    conn: &mut tx,
                    cache: &fx.cache,
                    t,
                    tenant: 0,
                };
                repo.rename(1, "uncommitted").await.unwrap();
                let read = repo.find(1).await.unwrap().map(|u| u.name);
                assert_eq!(read.as_deref(), Some("uncommitted"));
                assert_eq!(fx.cache.entry_count(), Some(0), "nothing stored");
                // The connection under `self.db`, which the body also reads as a whole:
                // every path is probed, not only the shortest.
                let mut nested = NestedRepo {
                    db: Handles {
                        conn: &mut tx,
                        label: "main",
                    },
                    cache: &fx.cache,
                    t,
                    tenant: 0,
                };
                let read = nested.find(1).await.unwrap().map(|u| u.name);
                assert_eq!(read.as_deref(), Some("uncommitted"));
                assert_eq!(fx.cache.entry_count(), Some(0), "nothing stored");
                tx.rollback().await.unwrap();
                assert_eq!(fx.read(1).await, (Some("ada".into()), false));
            })
            .await;
        }

        /// Pins: invalidation happens after COMMIT, not when the write registers. A read
        /// from another connection between the write and the commit caches the old row
        /// (with the current versions); only the bump after COMMIT makes it stale.
        #[tokio::test]
        async fn commit_invalidates_after_commit_not_before() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                let mut tx = fx.cache.begin(&fx.pool).await.unwrap();
                assert!(!tx.has_written());
                assert_eq!(rename_in(&mut tx, &fx.t, 1, "lovelace").await.unwrap(), 1);
                assert!(tx.has_written());
                assert_eq!(fx.cache.stats().invalidations, 0, "nothing before COMMIT");

                assert_eq!(
                    fx.read(1).await,
                    (Some("ada".into()), false),
                    "loads the old row"
                );
                assert_eq!(
                    fx.read(1).await,
                    (Some("ada".into()), true),
                    "and caches it"
                );

                tx.commit().await.unwrap();
                assert_eq!(fx.cache.stats().invalidations, 1);
                assert_eq!(
                    fx.read(1).await,
                    (Some("lovelace".into()), false),
                    "the first read after COMMIT returns the new row"
                );
            })
            .await;
        }

        /// Pins: rollback invalidates nothing; the cached old row is still served.
        #[tokio::test]
        async fn rollback_invalidates_nothing() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                assert_eq!(fx.read(1).await, (Some("ada".into()), false));
                let mut tx = fx.cache.begin(&fx.pool).await.unwrap();
                rename_in(&mut tx, &fx.t, 1, "lovelace").await.unwrap();
                tx.rollback().await.unwrap();
                assert_eq!(fx.cache.stats().invalidations, 0);
                assert_eq!(fx.read(1).await, (Some("ada".into()), true), "a hit");
            })
            .await;
        }

        /// Pins: dropping without COMMIT invalidates nothing (SQLx rolls back).
        #[tokio::test]
        async fn drop_without_commit_invalidates_nothing() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                assert_eq!(fx.read(1).await, (Some("ada".into()), false));
                let mut tx = fx.cache.begin(&fx.pool).await.unwrap();
                rename_in(&mut tx, &fx.t, 1, "lovelace").await.unwrap();
                drop(tx);
                assert_eq!(fx.cache.stats().invalidations, 0);
                assert_eq!(fx.read(1).await, (Some("ada".into()), true), "a hit");
                // And the database agrees: the cached row is the committed one.
                let loads = fx.cache.stats().loads;
                fx.cache.invalidate(&["users"]).await;
                assert_eq!(fx.read(1).await, (Some("ada".into()), false));
                assert_eq!(fx.cache.stats().loads, loads + 1);
            })
            .await;
        }

        /// Pins: reads through the transaction bypass the cache. After its write, such a
        /// read sees the transaction's own uncommitted row, and that row is never stored
        /// for others; the committed row stays cached.
        #[tokio::test]
        async fn reads_through_a_transaction_bypass_the_cache() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                let (c, t) = (&fx.cache, &fx.t);
                assert_eq!(fx.read(1).await, (Some("ada".into()), false));
                let mut tx = c.begin(&fx.pool).await.unwrap();
                let before = c.stats();
                let read = find_user_in(&mut tx, c, t, 1).await.unwrap();
                assert_eq!(read.unwrap().name, "ada");

                rename_in(&mut tx, t, 1, "lovelace").await.unwrap();
                let read = find_user_in(&mut tx, c, t, 1).await.unwrap();
                assert_eq!(read.unwrap().name, "lovelace", "its own uncommitted row");
                let after = c.stats();
                assert_eq!(
                    (after.hits, after.misses, after.loads),
                    (before.hits, before.misses, before.loads),
                    "the cache was neither read nor filled"
                );
                assert_eq!(c.entry_count(), Some(1));

                assert_eq!(
                    fx.read(1).await,
                    (Some("ada".into()), true),
                    "the uncommitted row was not stored for others"
                );
                tx.rollback().await.unwrap();
                assert_eq!(fx.read(1).await, (Some("ada".into()), true));
            })
            .await;
        }

        /// Pins (invariant 7): a read given a connection inside a transaction neither reads
        /// nor stores entries, however the connection arrives; the same reads outside a
        /// transaction still cache. Mechanism: parameters are classified by type
        /// (`__private::Arg`) and asked `is_in_transaction`. Before, only a parameter whose
        /// type was named `Transaction` was seen: `&mut *tx` cached the uncommitted row, and
        /// after ROLLBACK the pool served it.
        #[tokio::test]
        async fn no_handle_form_reads_or_stores_inside_a_transaction() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run_local(|fx| async move {
                let (c, t) = (&fx.cache, &fx.t);
                let mut tx = fx.pool.begin().await.unwrap();
                sqlx::query(t.sql("UPDATE {users} SET name = 'uncommitted' WHERE id = 1"))
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                let before = c.stats();
                for round in 0..2 {
                    let reads = [
                        find_user_conn(&mut tx, c, t, 1).await,
                        find_user_generic(&mut *tx, c, t, 1).await,
                        find_user_db_executor(&mut *tx, c, t, 1).await,
                        find_user_acquire(&mut *tx, c, t, 1).await,
                        find_user_acquire(&mut tx, c, t, 1).await,
                    ];
                    for (form, read) in reads.into_iter().enumerate() {
                        let name = read.unwrap().map(|u| u.name);
                        assert_eq!(
                            name.as_deref(),
                            Some("uncommitted"),
                            "round {round}, form {form}"
                        );
                    }
                }
                let after = c.stats();
                assert_eq!(
                    (after.hits, after.misses, after.loads),
                    (before.hits, before.misses, before.loads),
                    "the cache was neither read nor filled"
                );
                assert_eq!(c.entry_count(), Some(0));
                tx.rollback().await.unwrap();
                assert_eq!(
                    fx.read(1).await,
                    (Some("ada".into()), false),
                    "after ROLLBACK the committed row, from the database"
                );

                // Outside a transaction the same forms cache: a pool, a connection.
                let mut conn = fx.pool.acquire().await.unwrap();
                for _ in 0..2 {
                    find_user_conn(&mut conn, c, t, 2).await.unwrap();
                    find_user_generic(&fx.pool, c, t, 2).await.unwrap();
                    find_user_db_executor(&mut *conn, c, t, 2).await.unwrap();
                    find_user_acquire(&fx.pool, c, t, 2).await.unwrap();
                }
                assert!(c.stats().hits >= 4, "{:?}", c.stats());
            })
            .await;
        }

        /// Pins: a transaction that has not written does not fill the cache either. Its
        /// snapshot (REPEATABLE READ: MariaDB's default, asked for on PostgreSQL; SQLite's
        /// WAL read snapshot) may predate a write another connection has committed and
        /// invalidated; storing what it reads would tag the old row with the new versions.
        #[tokio::test]
        async fn a_transaction_snapshot_never_fills_the_cache() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                let (c, t) = (&fx.cache, &fx.t);
                let mut tx = c.transaction(begin_snapshot(&fx.pool).await);
                // The first read fixes the snapshot.
                let count: i64 = sqlx::query_scalar(t.sql("SELECT COUNT(*) FROM {users}"))
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                assert_eq!(count, 3);

                let mut other = c.begin(&fx.pool).await.unwrap();
                rename_in(&mut other, t, 1, "lovelace").await.unwrap();
                other.commit().await.unwrap();
                assert_eq!(c.stats().invalidations, 1);

                let read = find_user_in(&mut tx, c, t, 1).await.unwrap();
                assert_eq!(
                    read.unwrap().name,
                    "ada",
                    "the snapshot predates the rename"
                );
                assert_eq!(c.entry_count(), Some(0), "nothing was stored");
                tx.commit().await.unwrap();
                assert_eq!(
                    c.stats().invalidations,
                    1,
                    "a clean commit invalidates nothing"
                );

                assert_eq!(fx.read(1).await, (Some("lovelace".into()), false));
                let mut later = c.begin(&fx.pool).await.unwrap();
                let read = find_user_in(&mut later, c, t, 1).await.unwrap();
                assert_eq!(
                    read.unwrap().name,
                    "lovelace",
                    "a later transaction reads the rename"
                );
                later.commit().await.unwrap();
            })
            .await;
        }

        /// Pins: a `commit` cancelled while COMMIT is in flight (polled once, then dropped)
        /// still invalidates, since the server may have committed.
        #[tokio::test]
        async fn a_cancelled_commit_still_invalidates() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                assert_eq!(fx.read(1).await, (Some("ada".into()), false));
                let mut tx = fx.cache.begin(&fx.pool).await.unwrap();
                rename_in(&mut tx, &fx.t, 1, "lovelace").await.unwrap();
                // Poll the commit once (sending COMMIT), then drop it.
                let mut commit = Box::pin(tx.commit());
                let first = std::future::poll_fn(|cx| Poll::Ready(commit.as_mut().poll(cx)));
                if let Poll::Ready(done) = first.await {
                    println!("COMMIT finished within one poll ({done:?}): not cancelled");
                }
                drop(commit);
                assert_eq!(fx.cache.stats().invalidations, 1);
                assert!(
                    !fx.read(1).await.1,
                    "the entry read before COMMIT is not served"
                );
            })
            .await;
        }

        /// Pins: a savepoint's tables are invalidated by the enclosing COMMIT, not by
        /// releasing the savepoint; a rolled-back savepoint's are forgotten.
        #[tokio::test]
        async fn savepoints_defer_to_the_enclosing_commit() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                let (c, t) = (&fx.cache, &fx.t);
                let mut tx = c.begin(&fx.pool).await.unwrap();
                let mut savepoint = tx.begin().await.unwrap();
                rename_in(&mut savepoint, t, 1, "lovelace").await.unwrap();
                savepoint.commit().await.unwrap();
                assert!(tx.has_written());
                assert_eq!(c.stats().invalidations, 0, "released, not committed");
                assert_eq!(fx.read(1).await, (Some("ada".into()), false));
                tx.commit().await.unwrap();
                assert_eq!(c.stats().invalidations, 1);
                assert_eq!(fx.read(1).await, (Some("lovelace".into()), false));

                let mut tx = c.begin(&fx.pool).await.unwrap();
                tx.begin().await.unwrap().commit().await.unwrap();
                assert!(!tx.has_written(), "an empty savepoint wrote nothing");
                let mut savepoint = tx.begin().await.unwrap();
                rename_in(&mut savepoint, t, 2, "hopper").await.unwrap();
                savepoint.rollback().await.unwrap();
                assert!(!tx.has_written());
                tx.commit().await.unwrap();
                assert_eq!(
                    c.stats().invalidations,
                    1,
                    "the rolled-back write is forgotten"
                );
            })
            .await;
        }

        /// Pins: writes registered by hand, failed writes, `invalidate_on_write = false`,
        /// and a transaction taken by value and committed inside the write function. (A
        /// plain `sqlx::Transaction` taken by an `#[invalidates]` function is a compile
        /// error: `ui-tests/tests/ui/fail/invalidates-plain-transaction.rs`.)
        #[tokio::test]
        async fn registration_rules() {
            let Some(fx) = Fx::setup(Settings::default()).await else {
                return;
            };
            fx.run(|fx| async move {
                let (c, t) = (&fx.cache, &fx.t);

                // A failed write registers too: an error does not prove that nothing was
                // written (an earlier statement of the body may have been), and the
                // caller may still commit.
                let mut tx = c.begin(&fx.pool).await.unwrap();
                let error = add_user_in(&mut tx, t, 9, "ada").await.unwrap_err();
                assert!(
                    error
                        .as_database_error()
                        .is_some_and(|e| e.is_unique_violation())
                );
                assert!(tx.has_written());
                tx.rollback().await.unwrap();

                // A write without the macro, registered by hand.
                assert_eq!(fx.read(3).await, (Some("edsger".into()), false));
                let mut tx = c.begin(&fx.pool).await.unwrap();
                sqlx::query(t.sql("UPDATE {users} SET name = 'dijkstra' WHERE id = 3"))
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.written(&["users"]);
                tx.commit().await.unwrap();
                assert_eq!(fx.read(3).await, (Some("dijkstra".into()), false));

                // By value: registered before the body commits it.
                assert_eq!(fx.read(2).await, (Some("grace".into()), false));
                let tx = c.begin(&fx.pool).await.unwrap();
                rename_and_commit(tx, t, 2, "hopper").await.unwrap();
                assert_eq!(fx.read(2).await, (Some("hopper".into()), false));
            })
            .await;

            let settings = Settings {
                invalidate_on_write: false,
                ..Settings::default()
            };
            let Some(fx) = Fx::setup(settings).await else {
                return;
            };
            fx.run(|fx| async move {
                assert_eq!(fx.read(1).await, (Some("ada".into()), false));
                let mut tx = fx.cache.begin(&fx.pool).await.unwrap();
                rename_in(&mut tx, &fx.t, 1, "lovelace").await.unwrap();
                tx.commit().await.unwrap();
                assert_eq!(
                    fx.cache.stats().invalidations,
                    0,
                    "invalidate_on_write is off"
                );
                assert_eq!(fx.read(1).await, (Some("ada".into()), true));
            })
            .await;
        }
    };
}

mod sqlite {
    type Db = sqlx::Sqlite;
    use sqlx::SqliteExecutor as DbExecutor;
    const DIALECT: Dialect = Dialect::Sqlite;

    async fn pool() -> Option<(sqlx::Pool<Db>, Option<TempDb>)> {
        let (pool, file) = cache_suite::sqlite(4).await;
        Some((pool, Some(file)))
    }

    /// SQLite in WAL mode: a read transaction's snapshot is fixed by its first read.
    async fn begin_snapshot(pool: &sqlx::Pool<Db>) -> sqlx::Transaction<'static, Db> {
        pool.begin().await.unwrap()
    }

    transaction_tests!();
}

mod postgres {
    type Db = sqlx::Postgres;
    use sqlx::PgExecutor as DbExecutor;
    const DIALECT: Dialect = Dialect::Postgres;

    async fn pool() -> Option<(sqlx::Pool<Db>, Option<TempDb>)> {
        Some((cache_suite::connect(cache_suite::PG, 4).await?, None))
    }

    /// PostgreSQL defaults to READ COMMITTED (a snapshot per statement): ask for one per
    /// transaction.
    async fn begin_snapshot(pool: &sqlx::Pool<Db>) -> sqlx::Transaction<'static, Db> {
        pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .await
            .unwrap()
    }

    transaction_tests!();
}

mod mariadb {
    type Db = sqlx::MySql;
    use sqlx::MySqlExecutor as DbExecutor;
    const DIALECT: Dialect = Dialect::MySql;

    async fn pool() -> Option<(sqlx::Pool<Db>, Option<TempDb>)> {
        Some((cache_suite::connect(cache_suite::MYSQL, 4).await?, None))
    }

    /// InnoDB's default isolation is REPEATABLE READ.
    async fn begin_snapshot(pool: &sqlx::Pool<Db>) -> sqlx::Transaction<'static, Db> {
        pool.begin().await.unwrap()
    }

    transaction_tests!();
}
