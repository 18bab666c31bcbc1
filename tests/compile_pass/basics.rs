// The forms of the README: an entity, reads with every TTL form, and writes.
use cache_runtime::{CacheEntity, cached, invalidates};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

#[derive(Clone, Serialize, Deserialize, CacheEntity)]
#[cache(table = "basics_users", ttl = "5m")]
struct User {
    #[cache(id)]
    id: i64,
    name: String,
}

#[derive(Clone, Serialize, Deserialize, CacheEntity)]
#[cache(table = "basics_posts")]
struct Post {
    id: i64,
    author: i64,
}

// A generic entity: the derive forwards the generics (and the table stays the struct's).
#[derive(Clone, Serialize, Deserialize, CacheEntity)]
#[cache(table = "basics_pages")]
struct Page<T> {
    id: u32,
    items: Vec<T>,
}

#[cached]
async fn page(id: u32) -> Result<Page<String>, std::io::Error> {
    Ok(Page { id, items: vec![] })
}

#[cached(ttl = "60s")]
async fn find_user(_pool: &PgPool, id: i64) -> Result<Option<User>, sqlx::Error> {
    Ok(Some(User {
        id,
        name: String::new(),
    }))
}

#[cached]
async fn bare_user(_pool: &PgPool, id: i64) -> Result<User, sqlx::Error> {
    Ok(User {
        id,
        name: String::new(),
    })
}

#[cached(ttl = 60000)]
async fn posts(_pool: &PgPool, author: i64) -> sqlx::Result<Vec<Post>> {
    Ok(vec![Post { id: 1, author }])
}

#[cached(ttl = true, tables = ["basics_users", "basics_posts"])]
async fn feed(_pool: &PgPool, user: i64, page: u32) -> Result<Vec<(i64, String)>, sqlx::Error> {
    Ok(vec![(user, page.to_string())])
}

#[cached(ttl = false, table = "basics_users")]
async fn count(_pool: &PgPool) -> Result<i64, sqlx::Error> {
    Ok(0)
}

#[cached(ttl = "2030-01-01T00:00:00Z", table = "basics_users")]
async fn until(name: &str) -> Result<String, sqlx::Error> {
    Ok(name.to_owned())
}

#[cached(ttl = std::time::Duration::from_secs(5), table = "basics_users")]
async fn expr_ttl(id: i64) -> i64 {
    id
}

#[invalidates(User)]
async fn rename(_pool: &PgPool, _id: i64, _name: &str) -> Result<u64, sqlx::Error> {
    Ok(1)
}

#[invalidates(tables = ["basics_users", "basics_posts"])]
async fn wipe(_pool: &PgPool) {}

#[test]
fn compiles_and_runs() {
    assert_eq!(<User as cache_runtime::CacheEntity>::TABLE, "basics_users");
    assert_eq!(<Post as cache_runtime::CacheEntity>::TABLE, "basics_posts");
    assert_eq!(User::default_ttl(), Some(cache_runtime::Ttl::secs(300)));
    assert_eq!(
        <Page<u8> as cache_runtime::CacheEntity>::TABLE,
        "basics_pages"
    );
    let _ = page;
    let _ = (
        find_user, bare_user, posts, feed, count, until, expr_ttl, rename, wipe,
    );
}
