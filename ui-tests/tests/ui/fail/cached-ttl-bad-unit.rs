use cache_runtime::cached;

#[cached(table = "users", ttl = "60x")]
async fn find(id: i64) -> Result<i64, ()> {
    Ok(id)
}

fn main() {}
