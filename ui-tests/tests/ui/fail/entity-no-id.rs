use cache_runtime::CacheEntity;

#[derive(CacheEntity)]
#[cache(table = "users")]
struct User {
    user_id: i64,
    name: String,
}

fn main() {}
