use cache_runtime::cached;

// A non-literal TTL must be `Into<Ttl>`; the error points at the expression.
#[cached(table = "users", ttl = String::from("60s"))]
async fn find(id: i64) -> Result<i64, ()> {
    Ok(id)
}

fn main() {}
