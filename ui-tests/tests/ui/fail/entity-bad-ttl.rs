use cache_runtime::CacheEntity;

#[derive(CacheEntity)]
#[cache(table = "users", ttl = "5 minutes from now")]
struct User {
    id: i64,
}

#[derive(CacheEntity)]
#[cache(table = "posts", ttl = 0)]
struct Post {
    id: i64,
}

fn main() {}
