use cache_runtime::invalidates;

#[invalidates(tables = ["users"])]
fn write(id: i64) -> Result<i64, ()> {
    Ok(id)
}

fn main() {
    let _ = write(1);
}
