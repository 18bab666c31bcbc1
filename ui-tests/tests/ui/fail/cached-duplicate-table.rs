use cache_runtime::cached;

#[cached(tables = ["users", "posts", "users"])]
async fn feed(id: i64) -> Result<i64, ()> {
    Ok(id)
}

fn main() {}
