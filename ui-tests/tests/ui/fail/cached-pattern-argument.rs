use cache_runtime::cached;

#[cached(table = "points")]
async fn norm((x, y): (i64, i64), _: u8) -> Result<i64, ()> {
    Ok(x * x + y * y)
}

fn main() {}
