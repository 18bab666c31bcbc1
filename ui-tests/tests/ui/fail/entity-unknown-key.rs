use cache_runtime::CacheEntity;

#[derive(CacheEntity)]
#[cache(tabel = "users", id)]
struct User {
    #[cache(primary)]
    id: i64,
    #[cache(id = true)]
    other: i64,
}

fn main() {}
