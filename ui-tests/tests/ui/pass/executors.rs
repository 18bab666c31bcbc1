// Database handles are never keyed, recognised by their types: pools, connections,
// transactions, `impl Executor`, `impl SqliteExecutor`, `impl Acquire` and generics bounded
// by them, behind any reference (none of them is `Serialize`, so keying one would not
// compile).
use cache_runtime::{Cache, CacheEntity, Settings, cached, invalidates};
use serde::{Deserialize, Serialize};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Acquire, Executor, Pool, Sqlite, SqlitePool, Transaction};

#[derive(Clone, Serialize, Deserialize, CacheEntity)]
#[cache(table = "users")]
struct User {
    id: i64,
}

#[cached]
async fn by_pool(pool: &SqlitePool, id: i64) -> sqlx::Result<Option<User>> {
    let _ = pool;
    Ok(Some(User { id }))
}

#[cached]
async fn by_generic_pool(pool: &Pool<Sqlite>, id: i64) -> sqlx::Result<User> {
    let _ = pool;
    Ok(User { id })
}

#[cached]
async fn by_connection(conn: &mut SqliteConnection, id: i64) -> sqlx::Result<Vec<User>> {
    let row: (i64,) = sqlx::query_as("SELECT ?").bind(id).fetch_one(&mut *conn).await?;
    Ok(vec![User { id: row.0 }])
}

#[cached]
async fn by_pool_connection(conn: &mut PoolConnection<Sqlite>, id: i64) -> sqlx::Result<User> {
    let _ = conn;
    Ok(User { id })
}

#[cached]
async fn by_transaction(tx: &mut Transaction<'_, Sqlite>, id: i64) -> sqlx::Result<User> {
    let _ = tx;
    Ok(User { id })
}

#[cached]
async fn by_impl_executor(
    db: impl Executor<'_, Database = Sqlite>,
    id: i64,
) -> sqlx::Result<User> {
    let row: (i64,) = sqlx::query_as("SELECT ?").bind(id).fetch_one(db).await?;
    Ok(User { id: row.0 })
}

#[cached]
async fn by_generic_executor<'c, E>(db: E, id: i64) -> sqlx::Result<User>
where
    E: Executor<'c, Database = Sqlite>,
{
    let _ = db;
    Ok(User { id })
}

#[cached]
async fn by_acquire<'a, A: Acquire<'a, Database = Sqlite>>(db: A, id: i64) -> sqlx::Result<User> {
    let _ = db;
    Ok(User { id })
}

#[cached]
async fn by_sqlite_executor(db: impl sqlx::SqliteExecutor<'_>, id: i64) -> sqlx::Result<User> {
    let row: (i64,) = sqlx::query_as("SELECT ?").bind(id).fetch_one(db).await?;
    Ok(User { id: row.0 })
}

#[cached]
async fn by_pool_value(pool: SqlitePool, shared: &&SqlitePool, id: i64) -> sqlx::Result<User> {
    let _ = (pool, shared);
    Ok(User { id })
}

#[cached]
async fn by_cache_transaction(
    tx: &mut cache_runtime::Transaction<'_, Sqlite>,
    id: i64,
) -> sqlx::Result<User> {
    let _ = tx;
    Ok(User { id })
}

#[invalidates(User)]
async fn write(tx: &mut cache_runtime::Transaction<'_, Sqlite>, id: i64) -> sqlx::Result<u64> {
    let done = sqlx::query("UPDATE users SET id = ? WHERE id = ?")
        .bind(id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}

async fn calls(pool: &SqlitePool) -> sqlx::Result<()> {
    by_pool(pool, 1).await?;
    by_generic_pool(pool, 1).await?;
    let mut conn = pool.acquire().await?;
    by_pool_connection(&mut conn, 1).await?;
    by_connection(&mut conn, 1).await?;
    by_impl_executor(pool, 1).await?;
    by_generic_executor(pool, 1).await?;
    by_acquire(pool, 1).await?;
    by_sqlite_executor(pool, 1).await?;
    by_sqlite_executor(&mut *conn, 1).await?;
    by_pool_value(pool.clone(), &pool, 1).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("CREATE TABLE users (id INTEGER)").execute(&mut *tx).await?;
    by_transaction(&mut tx, 1).await?;
    by_acquire(&mut *tx, 1).await?;
    tx.commit().await?;
    let cache = Cache::new(Settings::default()).unwrap();
    let mut tx = cache.begin(pool).await?;
    by_cache_transaction(&mut tx, 1).await?;
    write(&mut tx, 1).await?;
    tx.commit().await
}

#[tokio::main]
async fn main() {
    let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
    calls(&pool).await.unwrap();
}
