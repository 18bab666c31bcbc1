// The cache's `Transaction` as a parameter: by `&mut`, `mut` binding, by value, generic
// over the database, next to a plain `sqlx::Transaction`. Reads are not keyed by it; writes
// register on it.
#![deny(warnings, unused_qualifications, unused_results)]

use cache_runtime::{Cache, CacheEntity, Transaction, cached, invalidates};
use serde::{Deserialize, Serialize};
use sqlx::{Database, PgPool, Postgres};

#[derive(Clone, Serialize, Deserialize, CacheEntity)]
#[cache(table = "transactions_users")]
struct User {
    id: i64,
}

#[cached]
async fn read(tx: &mut Transaction<'_, Postgres>, id: i64) -> sqlx::Result<User> {
    let row: (i64,) = sqlx::query_as("SELECT $1")
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(User { id: row.0 })
}

#[cached(table = "transactions_users")]
async fn read_generic<DB: Database>(tx: &mut Transaction<'_, DB>) -> sqlx::Result<i64> {
    Ok(i64::from(tx.has_written()))
}

#[cached(table = "transactions_users")]
async fn read_both(
    ours: &mut Transaction<'_, Postgres>,
    theirs: &mut sqlx::Transaction<'_, Postgres>,
) -> sqlx::Result<i64> {
    let _ = (ours, theirs);
    Ok(1)
}

#[invalidates(User)]
async fn write(tx: &mut Transaction<'_, Postgres>, id: i64) -> sqlx::Result<u64> {
    let done = sqlx::query("UPDATE users SET id = $1 WHERE id = $2")
        .bind(id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}

#[invalidates(User)]
async fn write_mut_binding(mut tx: &mut Transaction<'_, Postgres>) {
    tx.written(&[]);
    let _ = &mut tx;
}

#[invalidates(User)]
async fn write_generic<DB: Database>(tx: &mut Transaction<'_, DB>) -> Result<(), sqlx::Error> {
    tx.written(&[]);
    Ok(())
}

#[invalidates(tables = ["transactions_users"])]
async fn write_and_commit(tx: Transaction<'static, Postgres>) -> sqlx::Result<()> {
    tx.commit().await
}

#[invalidates(tables = ["transactions_users"])]
async fn write_and_commit_mut(mut tx: Transaction<'static, Postgres>) -> sqlx::Result<()> {
    tx.written(&["posts"]);
    tx.commit().await
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

async fn calls(cache: &Cache, pool: &PgPool) -> sqlx::Result<()> {
    let _ = sqlx::query("CREATE TABLE users (id INTEGER)")
        .execute(pool)
        .await?;
    let mut tx = cache.begin(pool).await?;
    let _ = assert_send(read(&mut tx, 1)).await?;
    let _ = read_generic(&mut tx).await?;
    let _ = assert_send(write(&mut tx, 1)).await?;
    let mut plain = pool.begin().await?;
    let _ = read_both(&mut tx, &mut plain).await?;
    plain.rollback().await?;
    write_generic(&mut tx).await?;
    {
        let mut savepoint = tx.begin().await?;
        write_mut_binding(&mut savepoint).await;
        savepoint.commit().await?;
    }
    tx.commit().await?;
    assert_send(write_and_commit(cache.begin(pool).await?)).await?;
    write_and_commit_mut(cache.begin(pool).await?).await
}

// Compiled, not run: the behaviour is tested against real databases in tests/.
#[test]
fn compiles_and_runs() {
    let _ = calls;
}
