use cache_runtime::CacheEntity;

#[derive(CacheEntity)]
#[cache(table = "users")]
struct User {
    #[cache(id)]
    id: i64,
    #[cache(id)]
    uuid: String,
}

fn main() {}
