use cache_runtime::cached;

#[cached(table = "users", ttl = 1.5)]
async fn float(id: i64) -> Result<i64, ()> {
    Ok(id)
}

#[cached(table = "users", ttl = "1 month")]
async fn month(id: i64) -> Result<i64, ()> {
    Ok(id)
}

#[cached(table = "users", ttl = "2026-13-01T00:00:00Z")]
async fn bad_date(id: i64) -> Result<i64, ()> {
    Ok(id)
}

#[cached(table = "users", ttl = "")]
async fn empty(id: i64) -> Result<i64, ()> {
    Ok(id)
}

#[cached(table = "users", ttl = 60i32)]
async fn signed(id: i64) -> Result<i64, ()> {
    Ok(id)
}

fn main() {}
