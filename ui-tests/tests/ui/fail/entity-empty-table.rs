use cache_runtime::CacheEntity;

#[derive(CacheEntity)]
#[cache(table = "  ")]
struct User {
    id: i64,
}

fn main() {}
