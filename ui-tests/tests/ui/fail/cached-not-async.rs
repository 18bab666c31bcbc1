use cache_runtime::cached;

#[cached(table = "users")]
fn find(id: i64) -> Result<i64, ()> {
    Ok(id)
}

fn main() {
    // The function is still emitted as written: no follow-on errors.
    let _ = find(1);
}
