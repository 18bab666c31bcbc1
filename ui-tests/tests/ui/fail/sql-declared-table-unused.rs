// A declared table the SQL never reads is reported; `also` says "on purpose".
use cache_runtime::cached;

#[cached(ttl = "60s", tables = ["users", "orders"])]
async fn name(id: i64) -> Result<Option<String>, ()> {
    let _ = sqlx::raw_sql("SELECT name FROM users WHERE id = $1");
    let _ = id;
    Ok(None)
}

// Fine: `user_stats` is a view over `orders`, which the SQL cannot show.
#[cached(ttl = "60s", tables = ["user_stats"], also = ["orders"])]
async fn stats(id: i64) -> Result<Option<i64>, ()> {
    let _ = sqlx::raw_sql("SELECT total FROM user_stats WHERE user_id = $1");
    let _ = id;
    Ok(None)
}

fn main() {}
