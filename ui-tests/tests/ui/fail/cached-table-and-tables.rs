use cache_runtime::cached;

#[cached(table = "users", tables = ["posts"])]
async fn feed(id: i64) -> Result<i64, ()> {
    Ok(id)
}

fn main() {}
