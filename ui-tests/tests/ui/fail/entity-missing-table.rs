use cache_runtime::CacheEntity;

#[derive(CacheEntity)]
struct User {
    id: i64,
}

fn main() {}
