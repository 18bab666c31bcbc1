use cache_runtime::invalidates;

#[invalidates(tabels = ["users"], cash = &CACHE)]
async fn write(id: i64) -> Result<i64, ()> {
    Ok(id)
}

fn main() {}
