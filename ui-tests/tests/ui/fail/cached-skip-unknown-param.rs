use cache_runtime::cached;

#[cached(table = "users", skip(request_id, id))]
async fn find(id: i64, trace: u64) -> Result<i64, ()> {
    let _ = trace;
    Ok(id)
}

fn main() {}
