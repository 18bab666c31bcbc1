use cache_runtime::CacheEntity;

#[derive(CacheEntity)]
#[cache(table = "users", ttl = "1m")]
#[cache(table = "people", ttl = "2m")]
struct User {
    #[cache(id, id)]
    id: i64,
}

fn main() {}
