use cache_runtime::cached;

// A body that does not match the declared return type is reported at the body, against
// the return type as written.
#[cached(table = "users")]
async fn find(id: i64) -> Result<i64, std::io::Error> {
    Ok(id.to_string())
}

fn main() {}
