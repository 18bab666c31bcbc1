use cache_runtime::cached;

const USERS: &str = "users";

#[cached(table = USERS)]
async fn one(id: i64) -> Result<i64, ()> {
    Ok(id)
}

#[cached(tables = "users")]
async fn two(id: i64) -> Result<i64, ()> {
    Ok(id)
}

fn main() {}
