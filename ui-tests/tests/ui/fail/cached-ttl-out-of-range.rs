use cache_runtime::cached;

#[cached(table = "users", ttl = 0)]
async fn zero(id: i64) -> Result<i64, ()> {
    Ok(id)
}

#[cached(table = "users", ttl = "0s")]
async fn zero_string(id: i64) -> Result<i64, ()> {
    Ok(id)
}

#[cached(table = "users", ttl = 18446744073709551616)]
async fn too_large(id: i64) -> Result<i64, ()> {
    Ok(id)
}

#[cached(table = "users", ttl = -5)]
async fn negative(id: i64) -> Result<i64, ()> {
    Ok(id)
}

#[cached(table = "users", ttl = "-5s")]
async fn negative_string(id: i64) -> Result<i64, ()> {
    Ok(id)
}

fn main() {}
