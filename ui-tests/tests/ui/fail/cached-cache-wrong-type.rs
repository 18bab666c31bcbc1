use cache_runtime::cached;

#[cached(table = "users", cache = "main")]
async fn find(id: i64) -> Result<i64, ()> {
    Ok(id)
}

fn main() {}
