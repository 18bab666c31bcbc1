// Database handles are never keyed, recognised by their types: pools, connections,
// transactions, `impl Executor`, `impl PgExecutor`, `impl Acquire` and generics bounded
// by them, behind any reference (none of them is `Serialize`, so keying one would not
// compile). The calls are type-checked, not run (tests/ runs them on real databases).
use cache_runtime::{Cache, CacheEntity, Settings, cached, invalidates};
use serde::{Deserialize, Serialize};
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgConnection;
use sqlx::{Acquire, Executor, PgPool, Pool, Postgres, Transaction};

#[derive(Clone, Serialize, Deserialize, CacheEntity)]
#[cache(table = "executors_users")]
struct User {
    id: i64,
}

#[cached]
async fn by_pool(pool: &PgPool, id: i64) -> sqlx::Result<Option<User>> {
    let _ = pool;
    Ok(Some(User { id }))
}

#[cached]
async fn by_generic_pool(pool: &Pool<Postgres>, id: i64) -> sqlx::Result<User> {
    let _ = pool;
    Ok(User { id })
}

#[cached]
async fn by_connection(conn: &mut PgConnection, id: i64) -> sqlx::Result<Vec<User>> {
    let row: (i64,) = sqlx::query_as("SELECT $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(vec![User { id: row.0 }])
}

#[cached]
async fn by_pool_connection(conn: &mut PoolConnection<Postgres>, id: i64) -> sqlx::Result<User> {
    let _ = conn;
    Ok(User { id })
}

#[cached]
async fn by_transaction(tx: &mut Transaction<'_, Postgres>, id: i64) -> sqlx::Result<User> {
    let _ = tx;
    Ok(User { id })
}

#[cached]
async fn by_impl_executor(
    db: impl Executor<'_, Database = Postgres>,
    id: i64,
) -> sqlx::Result<User> {
    let row: (i64,) = sqlx::query_as("SELECT $1").bind(id).fetch_one(db).await?;
    Ok(User { id: row.0 })
}

#[cached]
async fn by_generic_executor<'c, E>(db: E, id: i64) -> sqlx::Result<User>
where
    E: Executor<'c, Database = Postgres>,
{
    let _ = db;
    Ok(User { id })
}

#[cached]
async fn by_acquire<'a, A: Acquire<'a, Database = Postgres>>(db: A, id: i64) -> sqlx::Result<User> {
    let _ = db;
    Ok(User { id })
}

#[cached]
async fn by_pg_executor(db: impl sqlx::PgExecutor<'_>, id: i64) -> sqlx::Result<User> {
    let row: (i64,) = sqlx::query_as("SELECT $1").bind(id).fetch_one(db).await?;
    Ok(User { id: row.0 })
}

#[cached]
async fn by_pool_value(pool: PgPool, shared: &&PgPool, id: i64) -> sqlx::Result<User> {
    let _ = (pool, shared);
    Ok(User { id })
}

#[cached]
async fn by_cache_transaction(
    tx: &mut cache_runtime::Transaction<'_, Postgres>,
    id: i64,
) -> sqlx::Result<User> {
    let _ = tx;
    Ok(User { id })
}

#[invalidates(User)]
async fn write(tx: &mut cache_runtime::Transaction<'_, Postgres>, id: i64) -> sqlx::Result<u64> {
    let done = sqlx::query("UPDATE users SET id = $1 WHERE id = $2")
        .bind(id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}

async fn calls(pool: &PgPool) -> sqlx::Result<()> {
    by_pool(pool, 1).await?;
    by_generic_pool(pool, 1).await?;
    let mut conn = pool.acquire().await?;
    by_pool_connection(&mut conn, 1).await?;
    by_connection(&mut conn, 1).await?;
    by_impl_executor(pool, 1).await?;
    by_generic_executor(pool, 1).await?;
    by_acquire(pool, 1).await?;
    by_pg_executor(pool, 1).await?;
    by_pg_executor(&mut *conn, 1).await?;
    by_pool_value(pool.clone(), &pool, 1).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("CREATE TABLE users (id INTEGER)")
        .execute(&mut *tx)
        .await?;
    by_transaction(&mut tx, 1).await?;
    by_acquire(&mut *tx, 1).await?;
    tx.commit().await?;
    let cache = Cache::new(Settings::default()).unwrap();
    let mut tx = cache.begin(pool).await?;
    by_cache_transaction(&mut tx, 1).await?;
    write(&mut tx, 1).await?;
    tx.commit().await
}

// Compiled, not run: the behaviour is tested against real databases in tests/.
#[test]
fn compiles_and_runs() {
    let _ = calls;
}
