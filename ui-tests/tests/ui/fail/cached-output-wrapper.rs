// A response wrapper is not a cacheable value: return the data and wrap it where it is used.
use cache_runtime::cached;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct User {
    id: i64,
}

struct Json<T>(T);

#[cached(table = "users")]
async fn user(id: i64) -> Json<Option<User>> {
    Json(Some(User { id }))
}

fn main() {}
