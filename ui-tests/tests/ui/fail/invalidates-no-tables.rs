use cache_runtime::invalidates;

#[invalidates]
async fn write(id: i64) -> Result<i64, ()> {
    Ok(id)
}

#[invalidates()]
async fn write_empty(id: i64) -> Result<i64, ()> {
    Ok(id)
}

fn main() {}
