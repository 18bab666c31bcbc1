// An entity that is not Clone/Serialize/Deserialize still derives; returning it from a
// cached function is what fails, at the return type.
use cache_runtime::{CacheEntity, cached};

#[derive(CacheEntity)]
#[cache(table = "users")]
struct User {
    id: i64,
}

#[cached]
async fn find(id: i64) -> Option<User> {
    Some(User { id })
}

fn main() {}
