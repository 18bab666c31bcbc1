// The generated futures stay `Send` when the original is: they can be spawned on a
// multi-threaded runtime.
use cache_runtime::{Cache, CacheEntity, Settings, cached, invalidates};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

#[derive(Clone, Serialize, Deserialize, CacheEntity)]
#[cache(table = "send_users")]
struct User {
    id: i64,
}

#[cached(ttl = "60s")]
async fn find(_pool: PgPool, cache: Cache, id: i64) -> sqlx::Result<Option<User>> {
    let _ = cache;
    tokio::task::yield_now().await;
    Ok(Some(User { id }))
}

#[cached(table = "send_users", skip(cache))]
async fn count(cache: Cache, name: String) -> Result<usize, std::io::Error> {
    let _ = cache;
    tokio::task::yield_now().await;
    Ok(name.len())
}

#[invalidates(User)]
async fn write(id: i64) -> sqlx::Result<i64> {
    tokio::task::yield_now().await;
    Ok(id)
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[tokio::test]
async fn compiles_and_runs() {
    let cache = Cache::new(Settings::default()).unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://127.0.0.1/never-connected")
        .unwrap();
    let a = tokio::spawn(assert_send(find(pool, cache.clone(), 1)));
    let b = tokio::spawn(count(cache, "ab".into()));
    let c = tokio::spawn(write(1));
    assert!(a.await.unwrap().unwrap().is_some());
    assert_eq!(b.await.unwrap().unwrap(), 2);
    assert_eq!(c.await.unwrap().unwrap(), 1);
}
