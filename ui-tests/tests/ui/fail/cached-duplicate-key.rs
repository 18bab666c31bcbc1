use cache_runtime::cached;

#[cached(ttl = "60s", ttl = "1h", table = "users", name = "a", name = "b")]
async fn find(id: i64) -> Result<i64, ()> {
    Ok(id)
}

fn main() {}
