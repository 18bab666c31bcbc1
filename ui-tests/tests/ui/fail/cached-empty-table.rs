use cache_runtime::cached;

#[cached(table = "")]
async fn one(id: i64) -> Result<i64, ()> {
    Ok(id)
}

#[cached(tables = ["users", " "])]
async fn two(id: i64) -> Result<i64, ()> {
    Ok(id)
}

#[cached(tables = [])]
async fn none(id: i64) -> Result<i64, ()> {
    Ok(id)
}

fn main() {}
