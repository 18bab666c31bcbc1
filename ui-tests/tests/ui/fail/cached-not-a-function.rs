use cache_runtime::cached;

#[cached(table = "users")]
struct Users;

fn main() {}
