use cache_runtime::invalidates;

#[invalidates(tables = ["users", ""])]
async fn write(id: i64) -> Result<i64, ()> {
    Ok(id)
}

fn main() {}
