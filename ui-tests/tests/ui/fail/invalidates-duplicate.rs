use cache_runtime::{CacheEntity, invalidates};

#[derive(CacheEntity)]
#[cache(table = "users")]
struct User {
    id: i64,
}

#[invalidates(User, User, table = "users", tables = ["posts", "users"], cache = &C, cache = &C)]
async fn write(id: i64) -> Result<i64, ()> {
    Ok(id)
}

fn main() {}
