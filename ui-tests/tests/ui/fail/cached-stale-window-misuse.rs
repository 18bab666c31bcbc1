use cache_runtime::cached;

const SOON: &str = "30s";

// A window is a duration literal: an expression, a bad unit and a repeat are errors.
#[cached(ttl = "60s", table = "users", swr = SOON, stale_on_error = "5 fortnights")]
async fn find(id: i64) -> Result<i64, ()> {
    Ok(id)
}

#[cached(ttl = "60s", table = "users", refresh_ahead = "1s", refresh_ahead = "2s", swr = "60d")]
async fn again(id: i64) -> Result<i64, ()> {
    Ok(id)
}

fn main() {}
