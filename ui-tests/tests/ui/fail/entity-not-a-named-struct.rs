use cache_runtime::CacheEntity;

#[derive(CacheEntity)]
#[cache(table = "users")]
enum Kind {
    A,
}

#[derive(CacheEntity)]
#[cache(table = "users")]
struct Tuple(i64);

#[derive(CacheEntity)]
#[cache(table = "users")]
union Bits {
    id: i64,
}

fn main() {}
