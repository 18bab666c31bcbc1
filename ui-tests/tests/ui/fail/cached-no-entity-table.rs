use cache_runtime::cached;

// No `table`, and `i64` is no `CacheEntity`: the tables cannot be inferred.
#[cached(ttl = "60s")]
async fn count(id: i64) -> Result<i64, std::io::Error> {
    Ok(id)
}

fn main() {}
