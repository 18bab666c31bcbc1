// SQL the parser rejects, and no tables declared: the error names the parse error.
use cache_runtime::cached;

#[cached(ttl = "60s")]
async fn broken(id: i64) -> Result<Option<String>, ()> {
    let _ = sqlx::raw_sql("SELEC name FROM users WHERE id = $1");
    let _ = id;
    Ok(None)
}

fn main() {}
