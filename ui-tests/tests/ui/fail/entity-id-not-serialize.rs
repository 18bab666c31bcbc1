use cache_runtime::CacheEntity;

struct UserId(i64);

#[derive(CacheEntity)]
#[cache(table = "users")]
struct User {
    id: UserId,
}

fn main() {}
